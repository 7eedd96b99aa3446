"""AgentX client: drives one agent over any byte stream.

Requests are matched to replies by request_id; STDIO and EXIT events are
routed to the Process they belong to; every wait has a timeout; failures are
typed (wslx.agentx.errors). Model: m1n1's proxyclient, a host driving
bare-metal code over a binary protocol, but synchronous and single-threaded:
whoever waits pumps the stream.
"""
from __future__ import annotations

import collections
import dataclasses
import signal as _signal
import socket
import time
from typing import Callable

from ..spec.agentx import (AgentKind, Capability, ErrorCode, ExecFlag, ExitHow, FrameFlag, MsgType, OutputAckFlag,
                           ShutdownMode, StdinAckFlag, Stream, StdioFlag, OUTPUT_BUFFER, SESSION_START_VERSION,
                           STDIN_WINDOW, STDIO_MAX_DATA, VERSION_MAX, VERSION_MIN, MAX_PAYLOAD, MAX_PAYLOAD_MIN)
from . import codec
from .errors import (AgentTimeout, AgentXError, ConnectionLost, OutputGap, ProtocolError, RemoteError, StdinClosed,
                     StdinDropped)

ACK_EVERY = OUTPUT_BUFFER // 4   # acknowledge a stream's output after this many new bytes (version 2)
from .transport import FdTransport


@dataclasses.dataclass
class Hello:
    version_min: int
    version_max: int
    version_selected: int
    agent_kind: int
    capabilities: int
    max_payload: int
    uptime_ms: int
    name: str
    os_release: str

    @property
    def kind_name(self) -> str:
        try:
            return AgentKind(self.agent_kind).name.lower()
        except ValueError:
            return f"unknown({self.agent_kind})"

    def has(self, cap: Capability) -> bool:
        return bool(self.capabilities & cap)

    @property
    def capability_names(self) -> list[str]:
        return [c.name for c in Capability if self.capabilities & c]


@dataclasses.dataclass
class ExitStatus:
    pid: int
    how: int
    code: int

    @property
    def exit_code(self) -> int | None:
        return self.code if self.how == ExitHow.EXITED else None

    @property
    def signal(self) -> int | None:
        return self.code if self.how == ExitHow.SIGNALED else None

    @property
    def returncode(self) -> int:
        """Shell convention: status, or 128 + signal."""
        return self.code if self.how == ExitHow.EXITED else 128 + self.code

    def __str__(self) -> str:
        if self.how == ExitHow.EXITED:
            return f"exited {self.code}"
        try:
            return f"killed by {_signal.Signals(self.code).name}"
        except ValueError:
            return f"killed by signal {self.code}"


@dataclasses.dataclass
class Completed:
    status: ExitStatus
    stdout: bytes
    stderr: bytes

    @property
    def returncode(self) -> int:
        return self.status.returncode


class Process:
    """A process started by EXEC. Output accumulates unless callbacks consume it."""

    def __init__(self, client: "AgentClient", pid: int, argv):
        self.client, self.pid, self.argv = client, pid, list(argv)
        self.stdout = bytearray()
        self.stderr = bytearray()
        self.eof = {Stream.STDOUT: False, Stream.STDERR: False}
        self.status: ExitStatus | None = None
        self.eof_before_exit: bool | None = None  # the spec sends EXIT after both EOFs
        self.stdin_in_flight = 0  # stdin bytes sent and not yet acknowledged by STDIN_ACK
        self.stdin_closed = False  # STDIN_ACK said CLOSED: the process no longer reads stdin
        self.stdin_dropped = 0     # bytes the agent dropped as over the window (STDIN_ACK DROPPED)
        self.stdin_offset = 0      # stdin bytes sent so far (the offset of the next STDIO stdin frame, v2)
        self.received = {Stream.STDOUT: 0, Stream.STDERR: 0}  # bytes of each stream received (v2: offsets)
        self.acked = {Stream.STDOUT: 0, Stream.STDERR: 0}     # ... and acknowledged with OUTPUT_ACK
        self.duplicates = 0        # bytes received twice (a replay after a reconnect) and dropped
        self.unanchored: set = set()  # streams of an adopted process whose offset the first frame sets
        self.on_stdout: Callable[[bytes], None] | None = None
        self.on_stderr: Callable[[bytes], None] | None = None

    def _stdio(self, body: dict) -> None:
        """One STDIO frame: in version 2 its offset proves there is no gap (and trims a replay's duplicates)."""
        stream, data = body["stream"], body["data"]
        if stream not in self.received:
            return
        offset = body.get("offset")
        if offset is not None and stream in self.unanchored:  # adopted without offsets: start here
            self.unanchored.discard(stream)
            self.received[stream] = self.acked[stream] = offset
        have = self.received[stream]
        if offset is not None:
            if offset > have:
                raise OutputGap(f"pid {self.pid} {Stream(stream).name.lower()}: frame at offset {offset}, but only "
                                f"{have} bytes arrived: {offset - have} bytes lost", pid=self.pid, stream=stream,
                                expected=have, offset=offset)
            skip = min(have - offset, len(data))
            self.duplicates += skip
            data = data[skip:]
        self.received[stream] = have + len(data)
        self._data(stream, data, bool(body["flags"] & StdioFlag.EOF))

    def _data(self, stream: int, data: bytes, eof: bool) -> None:
        sink = {Stream.STDOUT: (self.on_stdout, self.stdout), Stream.STDERR: (self.on_stderr, self.stderr)}.get(stream)
        if sink and data:
            callback, buffer = sink
            if callback:
                callback(data)
            else:
                buffer.extend(data)
        if eof and stream in self.eof:
            self.eof[stream] = True

    def write(self, data: bytes, timeout: float | None = None) -> None:
        """Send stdin, never more than STDIN_WINDOW bytes ahead of the agent's STDIN_ACKs
        (while waiting for credit, output keeps flowing)."""
        deadline = self.client._deadline(timeout)
        view = memoryview(data)
        while view:
            self._check_stdin(len(view))
            if self.status is not None:
                raise StdinClosed(f"pid {self.pid} ended ({self.status}) with {len(view)} stdin bytes unsent")
            room = STDIN_WINDOW - self.stdin_in_flight
            if room <= 0:
                self.client._pump(deadline, f"STDIN_ACK credit for pid {self.pid}")
                continue
            chunk = bytes(view[:min(room, STDIO_MAX_DATA)])
            self.client.send_event(MsgType.STDIO, self._stdin_body(0, chunk),
                                   timeout=max(0.0, deadline - time.monotonic()))
            self.stdin_offset += len(chunk)
            self.stdin_in_flight += len(chunk)
            view = view[len(chunk):]

    def _check_stdin(self, unsent: int) -> None:
        if self.stdin_dropped:
            raise StdinDropped(f"agent dropped {self.stdin_dropped} stdin bytes of pid {self.pid} (window exceeded)")
        if self.stdin_closed:
            raise StdinClosed(f"stdin of pid {self.pid} is closed; {unsent} bytes not sent")

    def _stdin_body(self, flags: int, data: bytes) -> dict:
        return dict(pid=self.pid, stream=Stream.STDIN, flags=flags, offset=self.stdin_offset, data=data)

    def close_stdin(self, timeout: float | None = None) -> None:
        self.client.send_event(MsgType.STDIO, self._stdin_body(StdioFlag.EOF, b""), timeout=timeout)

    def signal(self, signo: int, timeout: float | None = None) -> None:
        self.client.signal(self.pid, signo, timeout=timeout)

    @property
    def done(self) -> bool:
        return self.status is not None

    def wait_for_output(self, needle: bytes, timeout: float | None = None) -> None:
        """Wait until the collected stdout contains `needle` (the process keeps running)."""
        deadline = self.client._deadline(timeout)
        while needle not in self.stdout:
            if self.status is not None:
                raise AgentXError(f"pid {self.pid} exited ({self.status}) without printing {needle!r}")
            self.client._pump(deadline, f"{needle!r} on stdout of pid {self.pid}")

    def wait(self, timeout: float | None = None) -> ExitStatus:
        deadline = self.client._deadline(timeout)
        while self.status is None:
            self.client._pump(deadline, f"EXIT of pid {self.pid} ({' '.join(self.argv)[:60]})")
        return self.status


class AgentClient:
    """One AgentX session. `stream` is a socket or an FdTransport."""

    def __init__(self, stream, *, default_timeout: float = 10.0, name: str = "agent", negotiate: bool = True,
                 version_max: int = VERSION_MAX):
        """negotiate: wait_hello/wait_new_hello negotiate the highest common version up to version_max
        (a version-1 agent stays in version 1); False keeps the session in version 1, as an old host."""
        self.transport = stream if isinstance(stream, FdTransport) else FdTransport(stream, name=name)
        self.auto_negotiate = negotiate
        self.version_max = version_max
        self.version = SESSION_START_VERSION   # the version this connection's frames are sent in
        self._negotiated = False
        self._acks_due: dict[int, dict] = {}   # pid -> OUTPUT_ACK body to send (version 2)
        self._sending = False                  # inside send_raw: acks wait for the frame to be whole
        self.send_acks = True                  # False: withhold OUTPUT_ACK (tests of the agent's buffering)
        self.frame_versions: collections.Counter = collections.Counter()  # frames received, by version
        self.max_payload = MAX_PAYLOAD         # what this host's HELLOs say it accepts (binds the agent)
        self.on_frame: Callable[[codec.Frame], None] | None = None  # sees every frame received, before dispatch
        self.default_timeout = default_timeout
        self.name = name
        self.reader = codec.FrameReader()
        self.hello: Hello | None = None
        self.hellos: list[Hello] = []              # every unsolicited HELLO (one per (re)connect)
        self.unsolicited_errors: collections.deque[RemoteError] = collections.deque(maxlen=256)
        self.protocol_errors: collections.deque[ProtocolError] = collections.deque(maxlen=256)  # bad frames from the agent
        self._replies: dict[int, codec.Frame] = {}
        self._pending: set[int] = set()              # request ids still waiting for a reply
        self._failed: dict[int, ProtocolError] = {}  # their replies arrived broken
        self._processes: dict[int, Process] = {}
        self._orphan_events: collections.deque = collections.deque(maxlen=1024)
        self._next_id = 1
        self._closed_reason: str | None = None
        self.diagnostics: Callable[[], str] | None = None  # e.g. console tail + QEMU command line

    @property
    def orphan_events(self) -> list[codec.Frame]:
        """Frames that belong to no request or process of this client (oldest first, at most 1024)."""
        return list(self._orphan_events)

    # -- plumbing ------------------------------------------------------------------------
    def _deadline(self, timeout: float | None) -> float:
        return time.monotonic() + (self.default_timeout if timeout is None else timeout)

    def _alloc_id(self) -> int:
        rid = self._next_id
        self._next_id = rid + 1 if rid < 0xFFFFFFFF else 1
        return rid

    def send_raw(self, data: bytes, timeout: float | None = None) -> None:
        """Write bytes as they are (the conformance suite uses it for malformed frames).
        Incoming data is read meanwhile, so a chatty agent cannot deadlock us; OUTPUT_ACKs that
        reading makes due go out after these bytes, never inside them."""
        if self._closed_reason:
            raise ConnectionLost(f"{self.name}: connection closed: {self._closed_reason}")
        deadline = self._deadline(timeout)
        view = memoryview(data)
        outer = not self._sending
        self._sending = True
        try:
            while view:
                n = self.transport.send_some(view)
                view = view[n:]
                if not view:
                    break
                readable, _ = self.transport.wait(deadline, want_write=True)
                if readable:
                    self._read_some(deadline)
                if time.monotonic() >= deadline:
                    raise AgentTimeout(f"{self.name}: could not send {len(data)} bytes in time ({len(view)} left)")
        finally:
            if outer:
                self._sending = False
        if outer:
            self._send_acks(deadline)

    def send_event(self, msg_type: int, body: dict, timeout: float | None = None) -> None:
        self.send_raw(codec.encode_frame(msg_type, body, version=self.version), timeout)

    def _read_some(self, deadline: float) -> None:
        self._send_acks(deadline)  # acks owed by frames dispatched outside a read (exec's early events)
        data = self.transport.recv(deadline)
        if not data:
            reason = "agent closed the stream"
            try:
                self.reader.check_eof()
            except ProtocolError as e:
                reason += f" ({e})"
            self._closed_reason = reason
            raise ConnectionLost(f"{self.name}: {reason}")
        self.reader.feed(data)
        self._drain()
        self._send_acks(deadline)

    def _send_acks(self, deadline: float) -> None:
        """OUTPUT_ACKs owed (version 2), sent between whole frames: never inside another send."""
        if self._sending or not self._acks_due or self._closed_reason:
            return
        frames = b"".join(codec.encode_frame(MsgType.OUTPUT_ACK, body, version=self.version)
                          for body in self._acks_due.values())
        self._acks_due.clear()
        self.send_raw(frames, max(1.0, deadline - time.monotonic()))

    def _owe_ack(self, p: "Process", exited: bool = False) -> None:
        if self.version < 2 or not self.send_acks:
            return
        due = exited or any(p.received[s] - p.acked[s] >= ACK_EVERY or (p.eof[s] and p.received[s] != p.acked[s])
                            for s in p.received)
        if not due:
            return
        p.acked = dict(p.received)
        self._acks_due[p.pid] = dict(pid=p.pid, flags=int(OutputAckFlag.EXIT) if exited else 0,
                                     stdout_bytes=p.received[Stream.STDOUT], stderr_bytes=p.received[Stream.STDERR])

    def _drain(self) -> None:
        while True:
            try:
                frame = self.reader.next()
            except ProtocolError as e:  # the reader has already skipped the bad bytes
                self.protocol_errors.append(e)
                if e.request_id and e.request_id in self._pending:
                    self._failed[e.request_id] = e  # the waiting request fails with this reason
                continue
            if frame is None:
                return
            self._dispatch(frame)

    def _dispatch(self, f: codec.Frame) -> None:
        self.frame_versions[f.version] += 1
        if self.on_frame:
            self.on_frame(f)
        if f.request_id and (f.flags & FrameFlag.REPLY or f.type == MsgType.ERROR):
            if f.type == MsgType.HELLO and f.flags & FrameFlag.REPLY:
                # the session's version changes with this frame: frames right behind it (a replay)
                # are read before negotiate() returns
                self.version, self._negotiated = f.body["version_selected"], True
            if len(self._replies) >= 1024:  # replies nobody waits for must not pile up
                self._replies.pop(next(iter(self._replies)))
            self._replies[f.request_id] = f
        elif f.type == MsgType.STDIO:
            p = self._processes.get(f.body["pid"])
            if p:
                try:
                    p._stdio(f.body)
                finally:
                    self._owe_ack(p)
            else:
                self._orphan_events.append(f)
        elif f.type == MsgType.EXIT:
            b = f.body
            p = self._processes.get(b["pid"])
            if p:
                p.status = ExitStatus(b["pid"], b["how"], b["code"])
                p.eof_before_exit = all(p.eof.values())
                del self._processes[b["pid"]]  # EXIT is its last frame; the pid may be reused
                self._owe_ack(p, exited=True)
            else:
                self._orphan_events.append(f)
        elif f.type == MsgType.STDIN_ACK:
            p = self._processes.get(f.body["pid"])
            if p:
                b = f.body
                p.stdin_in_flight = max(0, p.stdin_in_flight - b["bytes"])
                if b["flags"] & StdinAckFlag.CLOSED:
                    p.stdin_closed = True
                if b["flags"] & StdinAckFlag.DROPPED:
                    p.stdin_dropped += b["bytes"]
        elif f.type == MsgType.HELLO:
            h = Hello(**f.body)
            self.hello = h
            self.hellos.append(h)
        elif f.type == MsgType.ERROR:
            b = f.body
            self.unsolicited_errors.append(RemoteError(b["code"], b["message"], b["request_type"], f.request_id))
        else:
            self._orphan_events.append(f)

    def _pump(self, deadline: float, what: str) -> None:
        try:
            self._read_some(deadline)
        except AgentTimeout:
            raise AgentTimeout(self._with_diagnostics(f"{self.name}: timed out waiting for {what}")) from None
        except ConnectionLost as e:
            raise ConnectionLost(self._with_diagnostics(f"{e} (while waiting for {what})")) from None

    def _with_diagnostics(self, message: str) -> str:
        """Append what the owner knows about the peer (a VM adds its console tail and command line)."""
        if self.diagnostics is None:
            return message
        try:
            return message + "\n" + self.diagnostics()
        except Exception as e:  # diagnostics must never hide the real error
            return f"{message}\n(diagnostics failed: {e})"

    # -- requests ------------------------------------------------------------------------
    def request(self, msg_type: int, body: dict | None = None, *, timeout: float | None = None,
                expect: tuple = ()) -> codec.Frame:
        """Send a request and wait for its reply; ERROR raises RemoteError."""
        deadline = self._deadline(timeout)
        rid = self._alloc_id()
        self._replies.pop(rid, None)  # a stale reply to a raw frame that reused this id
        self._pending.add(rid)
        try:
            self.send_raw(codec.encode_frame(msg_type, body or {}, request_id=rid, version=self.version), timeout)
            f = self._await_reply(rid, deadline, f"reply to {MsgType(msg_type).name} #{rid}")
        finally:
            self._pending.discard(rid)
        if f.type == MsgType.ERROR:
            raise RemoteError(f.body["code"], f.body["message"], f.body["request_type"], rid)
        if expect and f.type not in expect:
            raise ProtocolError(f"{self.name}: {MsgType(msg_type).name} answered with {f.name}, expected "
                                f"{'/'.join(MsgType(e).name for e in expect)}", request_id=rid, msg_type=f.type)
        return f

    def _await_reply(self, rid: int, deadline: float, what: str) -> codec.Frame:
        while rid not in self._replies:
            if rid in self._failed:
                e = self._failed.pop(rid)
                raise type(e)(f"{self.name}: {what} arrived malformed: {e}", request_id=rid, msg_type=e.msg_type)
            try:
                self._pump(deadline, what)
            except AgentTimeout as e:
                if self.protocol_errors:  # say what went wrong on the wire meanwhile
                    raise AgentTimeout(f"{e}\nlast protocol error from the agent: {self.protocol_errors[-1]!r}") from None
                raise
        return self._replies.pop(rid)

    def wait_reply(self, request_id: int, timeout: float | None = None) -> codec.Frame:
        """The raw reply frame (ERROR included) to a request sent with send_raw."""
        self._pending.add(request_id)
        try:
            return self._await_reply(request_id, self._deadline(timeout), f"reply #{request_id}")
        finally:
            self._pending.discard(request_id)

    def pump(self, timeout: float) -> None:
        """Process whatever arrives within `timeout` seconds (output callbacks run); no error if nothing does."""
        try:
            self._read_some(self._deadline(timeout))
        except AgentTimeout:
            pass

    def wait_hello(self, timeout: float | None = None) -> Hello:
        """Wait for the agent's unsolicited HELLO (returns at once if one arrived), then negotiate
        the session's version unless this client was made with negotiate=False."""
        deadline = self._deadline(timeout)
        while self.hello is None:
            self._pump(deadline, "HELLO")
        self._maybe_negotiate(deadline)
        return self.hello

    def wait_new_hello(self, timeout: float | None = None) -> Hello:
        """Wait for a HELLO after the ones already seen (a reconnect: a new session, negotiated again)."""
        deadline = self._deadline(timeout)
        seen = len(self.hellos)
        while len(self.hellos) == seen:
            self._pump(deadline, "a new HELLO")
        self.version, self._negotiated = SESSION_START_VERSION, False
        self._maybe_negotiate(deadline)
        return self.hellos[-1]

    def _maybe_negotiate(self, deadline: float) -> None:
        """An agent that announces only version 1 (an old agent) is left in version 1 without asking."""
        h = self.hellos[-1] if self.hellos else self.hello
        if (self.auto_negotiate and not self._negotiated and self.version_max > SESSION_START_VERSION
                and h is not None and h.version_max > SESSION_START_VERSION):
            self.negotiate(VERSION_MIN, self.version_max, timeout=max(0.0, deadline - time.monotonic()))

    def reattach(self, stream, timeout: float | None = None, *, ask_announce: bool = True) -> Hello:
        """Continue this session on a new connection (after the old one was lost): the agent's new HELLO is
        awaited and the version negotiated again; processes stay, and in version 2 the agent sends again
        what was not acknowledged, duplicates are dropped by offset and a gap raises OutputGap.
        ask_announce: also send HELLO with request_id 0, for channels where the agent may not see the
        host come back (a serial line; Linux's virtio-serial, where a quick close and open leave no trace)."""
        self.transport.close()
        self.transport = stream if isinstance(stream, FdTransport) else FdTransport(stream, name=self.name)
        self.reader = codec.FrameReader()
        self._closed_reason = None
        self._replies.clear()
        self._failed.clear()
        self._acks_due.clear()
        self.hello = None
        self.version, self._negotiated = SESSION_START_VERSION, False
        for p in self._processes.values():
            p.acked = {s: 0 for s in p.acked}   # acknowledge afresh: the agent may have missed the last acks
            p.stdin_in_flight = 0                 # stdin credit is per connection
        if ask_announce:
            self.ask_announce(timeout)
        return self.wait_hello(timeout)

    def ack_output(self, p: "Process", timeout: float | None = None) -> None:
        """Acknowledge everything received of p's output now (version 2), whatever the ack schedule."""
        p.acked = dict(p.received)
        body = dict(pid=p.pid, flags=int(OutputAckFlag.EXIT) if p.status else 0,
                    stdout_bytes=p.received[Stream.STDOUT], stderr_bytes=p.received[Stream.STDERR])
        self.send_event(MsgType.OUTPUT_ACK, body, timeout)

    def wait_error(self, timeout: float | None = None) -> RemoteError:
        """Next unsolicited ERROR (request_id 0), e.g. the answer to a malformed frame."""
        deadline = self._deadline(timeout)
        while not self.unsolicited_errors:
            self._pump(deadline, "an ERROR frame")
        return self.unsolicited_errors.popleft()

    def _host_hello(self, vmin: int = VERSION_MIN, vmax: int = VERSION_MAX) -> dict:
        return dict(version_min=vmin, version_max=vmax, version_selected=0, agent_kind=AgentKind.HOST,
                    capabilities=0, max_payload=self.max_payload, uptime_ms=0, name="wslx-host", os_release="")

    def negotiate(self, vmin: int = VERSION_MIN, vmax: int = VERSION_MAX, timeout: float | None = None) -> Hello:
        """HELLO request: the agent picks the highest common version, which this connection then uses."""
        f = self.request(MsgType.HELLO, self._host_hello(vmin, vmax), timeout=timeout, expect=(MsgType.HELLO,))
        h = Hello(**f.body)
        self.version, self._negotiated = h.version_selected, True
        return h

    def ask_announce(self, timeout: float | None = None) -> None:
        """Send HELLO with request_id 0, which asks the agent to announce itself again
        (an unsolicited HELLO, seen by wait_hello/wait_new_hello). A serial line has
        no connect event, so a host that connects late asks this way."""
        self.send_raw(codec.encode_frame(MsgType.HELLO, self._host_hello(), version=SESSION_START_VERSION), timeout)
        if self.max_payload >= MAX_PAYLOAD_MIN:   # below it the agent refuses (EINVAL) and nothing changes
            self.version, self._negotiated = SESSION_START_VERSION, False  # the agent starts a new session

    def ping(self, data: bytes = b"", timeout: float | None = None) -> bytes:
        return self.request(MsgType.PING, dict(data=data), timeout=timeout, expect=(MsgType.PONG,)).body["data"]

    def config(self, *, hostname: str = "", env=(), clock_realtime_ns: int = 0, portal_device: str = "",
               portal_size: int = 0, timeout: float | None = None) -> None:
        self.request(MsgType.CONFIG, dict(clock_realtime_ns=clock_realtime_ns, portal_size=portal_size,
                                          hostname=hostname, env=list(env), portal_device=portal_device),
                     timeout=timeout, expect=(MsgType.OK,))

    def mount(self, fstype: str, source: str, target: str, options: str = "", readonly: bool = False,
              timeout: float | None = None) -> None:
        self.request(MsgType.MOUNT, dict(flags=1 if readonly else 0, fstype=fstype, source=source, target=target,
                                         options=options), timeout=timeout, expect=(MsgType.OK,))

    def unmount(self, target: str, detach: bool = False, timeout: float | None = None) -> None:
        self.request(MsgType.UNMOUNT, dict(flags=1 if detach else 0, target=target), timeout=timeout,
                     expect=(MsgType.OK,))

    def exec(self, argv, *, env=(), cwd: str = "", stdin: bool = False, merge_stderr: bool = False,
             on_stdout=None, on_stderr=None, timeout: float | None = None) -> Process:
        flags = (ExecFlag.STDIN_PIPE if stdin else 0) | (ExecFlag.STDERR_TO_STDOUT if merge_stderr else 0)
        f = self.request(MsgType.EXEC, dict(flags=int(flags), argv=list(argv), env=list(env), cwd=cwd),
                         timeout=timeout, expect=(MsgType.EXEC_STARTED,))
        p = Process(self, f.body["pid"], argv)
        p.on_stdout, p.on_stderr = on_stdout, on_stderr
        return self._track(p)

    def _track(self, p: Process) -> Process:
        self._processes[p.pid] = p
        # Events for this pid may have arrived before it was tracked (before EXEC_STARTED was
        # read, or on a new connection before adopt): replay them.
        early = [e for e in self._orphan_events if e.body.get("pid") == p.pid]
        for e in early:
            self._orphan_events.remove(e)
            self._dispatch(e)
        return p

    def adopt(self, pid: int, argv=("?",), *, received: dict | None = None, stdin_offset: int = 0) -> Process:
        """Follow a process this session did not start (EXEC'd before a reconnect or a snapshot
        restore): its later STDIO and EXIT arrive on the returned Process. received: bytes of each
        stream an earlier host already has ({Stream.STDOUT: n, ...}): in version 2 the agent sends
        again what was not acknowledged, and bytes below these offsets are dropped as duplicates.
        Without it, each stream starts at the offset of its first frame (a new observer).
        stdin_offset: stdin bytes the agent already accepted (version 2 checks the offset of stdin)."""
        p = self._processes.get(pid)
        if p is not None:
            return p
        p = Process(self, pid, argv)
        p.stdin_offset = stdin_offset
        if received is None:
            p.unanchored = set(p.received)
        else:
            p.received.update(received)
            p.acked.update(received)
        return self._track(p)

    def run(self, argv, *, input: bytes | None = None, env=(), cwd: str = "", timeout: float | None = None,
            on_stdout=None, on_stderr=None) -> Completed:
        """EXEC, feed input, collect (or stream) output, wait for EXIT."""
        p = self.exec(argv, env=env, cwd=cwd, stdin=input is not None, on_stdout=on_stdout, on_stderr=on_stderr,
                      timeout=timeout)
        if input is not None:
            try:
                if input:
                    p.write(input, timeout=timeout)
                p.close_stdin(timeout=timeout)
            except StdinClosed:
                pass  # like subprocess.run: a program may stop reading early (head -c 10)
        status = p.wait(timeout)
        return Completed(status, bytes(p.stdout), bytes(p.stderr))

    def signal(self, pid: int, signo: int, timeout: float | None = None) -> None:
        self.request(MsgType.SIGNAL, dict(pid=pid, signo=int(signo)), timeout=timeout, expect=(MsgType.OK,))

    def quiesce(self, timeout_ms: int = 5000, timeout: float | None = None) -> dict:
        return self.request(MsgType.QUIESCE, dict(timeout_ms=timeout_ms), timeout=timeout,
                            expect=(MsgType.QUIESCE_COMPLETE,)).body

    def resume(self, timeout: float | None = None) -> None:
        self.request(MsgType.RESUME, {}, timeout=timeout, expect=(MsgType.OK,))

    def shutdown(self, mode: int = ShutdownMode.POWEROFF, grace_ms: int = 2000, timeout: float | None = None) -> None:
        self.request(MsgType.SHUTDOWN, dict(mode=int(mode), grace_ms=grace_ms), timeout=timeout, expect=(MsgType.OK,))

    def close(self) -> None:
        self.transport.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def connect_unix(path: str, timeout: float = 10.0, **kw) -> AgentClient:
    """Connect to an AgentX endpoint on a Unix socket (e.g. a QEMU chardev), retrying until timeout."""
    deadline = time.monotonic() + timeout
    while True:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            s.connect(path)
            return AgentClient(s, **kw)
        except (FileNotFoundError, ConnectionRefusedError) as e:
            s.close()
            if time.monotonic() >= deadline:
                raise AgentTimeout(f"could not connect to {path} within {timeout}s: {e}") from None
            time.sleep(0.05)
