"""Pure-Python reference AgentX agent.

It implements the protocol's semantics for real on the host: EXEC runs
processes (the conformance program `wslx-conform` is wslx.agentx.programs),
stdio is relayed in both directions, SIGNAL delivers signals, QUIESCE/RESUME
gate EXEC. It does not own an OS, so it offers neither MOUNT nor
SYSTEM (hostname/clock). Single-threaded selector loop, like guest/init, so
the conformance suite exercises the same shape of agent in milliseconds.

    python -m wslx.agentx.reference_agent --fd N     serve on an inherited fd
"""
from __future__ import annotations

import argparse
import errno
import os
import platform
import selectors
import signal
import subprocess
import sys
import threading
import time

from ..spec.agentx import (BY_TYPE, EXIT_EOF_GRACE_MS, MAX_PAYLOAD, MAX_PAYLOAD_MIN, OUTPUT_BUFFER, PROCESS_MAX,
                           SESSION_START_VERSION, SHUTDOWN_GRACE_MAX_MS, SIGNAL_MAX, STDIN_WINDOW, STDIO_MAX_DATA,
                           VERSION_MAX, VERSION_MIN,
                           AgentKind, Capability, ErrorCode, ExecFlag, ExitHow, FrameFlag, MsgType, OutputAckFlag,
                           ShutdownMode, StdinAckFlag, StdioFlag, Stream, stdio_data_max)
from ..spec.fields import size_range
from ..spec.programs import PROGRAM_NAME
from . import codec, programs
from .errors import ConnectionLost, InvalidMessage, MalformedPayload, ProtocolError
from .transport import FdTransport

CAPABILITIES = (Capability.EXEC | Capability.STDIN | Capability.SIGNAL | Capability.QUIESCE | Capability.SHUTDOWN
                | Capability.CONFIG | Capability.PING | Capability.PROGRAMS)
OUT_HIGH_WATER = 1 << 20     # stop reading children while this much output waits for the host
CONTROL_READ_SIZE = 256 << 10  # per read of the control stream: bounds the replies one read can cause
STDIN_QUEUE_MAX = STDIN_WINDOW  # the host never has more in flight (STDIN_ACK credits)
MAX_PROCESSES = PROCESS_MAX[AgentKind.REFERENCE]
PONG_MIN_SIZE = size_range(BY_TYPE[MsgType.PONG].body)[0]  # a PONG payload is this plus the data
DEFAULT_PATH = "PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin"


class _Output:
    """One output stream of a process: bytes from offset `base` (all before it are acknowledged, or in
    version 1 sent) up to what the pipe gave; `sent` of them are framed on this connection."""

    def __init__(self):
        self.buf = bytearray()
        self.base = 0
        self.sent = 0
        self.sent_max = 0      # highest offset ever framed (an ack may not go beyond it)
        self.ended = False     # the pipe is done (EOF, or closed after the grace)
        self.eof_sent = False

    @property
    def produced(self) -> int:
        return self.base + len(self.buf)

    def advance(self, offset: int) -> None:
        """Forget bytes below offset (acknowledged)."""
        if offset > self.base:
            del self.buf[:offset - self.base]
            self.base = offset
        self.sent = max(self.sent, self.base)


class _Child:
    def __init__(self, popen: subprocess.Popen, pidfd: int):
        self.popen = popen
        self.pid = popen.pid
        self.pidfd = pidfd
        self.output = {Stream.STDOUT: _Output(), Stream.STDERR: _Output()}
        self.exit_sent = False  # EXIT framed on this connection (version 2: the child stays until OUTPUT_ACK EXIT)
        self.exit_ever_sent = False
        self.finished = False   # reaped, pipes closed: only held output, EOFs and EXIT remain
        self.stdin_accepted = 0  # stdin bytes queued or written: the offset the next stdin frame must have
        self.open_streams: dict[int, int] = {}  # fd -> Stream
        self.stdin_fd: int | None = None
        self.stdin_queue = bytearray()
        self.stdin_eof = False
        self.status: tuple[int, int] | None = None
        self.exit_grace: float | None = None  # when to stop waiting for pipes held by grandchildren


class ReferenceAgent:
    def __init__(self, stream, *, capabilities: int = CAPABILITIES, name: str = "wslx-reference 0.1",
                 version_max: int = VERSION_MAX):
        """version_max=1 makes an agent from before version 2 (the negotiation tests' old agent)."""
        self.t = stream if isinstance(stream, FdTransport) else FdTransport(stream, name="reference-agent")
        self.capabilities = int(capabilities)
        self.version_max = version_max
        self.name = name
        self.reader = codec.FrameReader()
        self.out = bytearray()
        self.sel = selectors.DefaultSelector()
        self.children: dict[int, _Child] = {}
        self.env_defaults: list[str] = []
        self.quiesced = False
        self.running = False
        self.started = time.monotonic()
        self._paused_children = False
        self.version = SESSION_START_VERSION  # of this connection's frames, until HELLO negotiates
        self.session_open = False             # the host sent its first request: process events may flow
        self.max_payload = MAX_PAYLOAD        # no payload we send is larger; the host's HELLO sets it

    # -- output ----------------------------------------------------------------------------
    def _emit(self, msg_type, body, request_id=0, reply=False):
        self.out += codec.encode_frame(msg_type, body, request_id=request_id, flags=FrameFlag.REPLY if reply else 0,
                                       version=self.version)

    def _new_session(self):
        """A new host (HELLO with request_id 0): version 1 again, and in version 2 everything not
        acknowledged is sent again once the host has spoken."""
        self.version, self.session_open, self.max_payload = SESSION_START_VERSION, False, MAX_PAYLOAD
        for c in self.children.values():
            for o in c.output.values():
                o.sent = o.base
                o.eof_sent = False
            c.exit_sent = False

    def _pump_output(self):
        """Frame the processes' held output (then EOFs, then EXIT) while the host takes it."""
        if not self.session_open:
            return
        chunk = stdio_data_max(self.version, self.max_payload)  # the host's HELLO max_payload binds
        for c in list(self.children.values()):
            for stream, o in c.output.items():
                while o.sent < o.produced and len(self.out) < OUT_HIGH_WATER:
                    i = o.sent - o.base
                    data = bytes(o.buf[i:i + chunk])
                    self._emit_stdio(c, stream, 0, o.sent, data)
                    o.sent += len(data)
                    o.sent_max = max(o.sent_max, o.sent)
                    if self.version < 2:
                        o.advance(o.sent)  # version 1: delivered once handed to the channel
                if o.ended and not o.eof_sent and o.sent == o.produced:
                    self._emit_stdio(c, stream, StdioFlag.EOF, o.sent, b"")
                    o.eof_sent = True
            if c.status is not None and not c.open_streams and not c.exit_sent and \
                    all(o.eof_sent for o in c.output.values()):
                how, code = c.status
                self._emit(MsgType.EXIT, dict(pid=c.pid, how=how, code=code))
                c.exit_sent = c.exit_ever_sent = True
                if self.version < 2:
                    self.children.pop(c.pid, None)

    def _emit_stdio(self, c, stream, flags, offset, data):
        body = dict(pid=c.pid, stream=stream, flags=int(flags), data=data)
        if self.version >= 2:
            body["offset"] = offset
        self._emit(MsgType.STDIO, body)

    def _error(self, code, message, request_id=0, request_type=0):
        self._emit(MsgType.ERROR, dict(code=int(code), request_type=int(request_type) & 0xFFFF,
                                       message=message.encode()[:500].decode("utf-8", "ignore")),
                   request_id=request_id, reply=bool(request_id))

    def _flush(self, block: bool = False, timeout: float = 5.0):
        deadline = time.monotonic() + timeout
        while self.out:
            try:
                n = self.t.send_some(self.out)
            except ConnectionLost:  # the host went away: nothing to deliver to any more
                self.out.clear()
                self.running = False
                return
            del self.out[:n]
            if not block or not self.out:
                return
            if time.monotonic() > deadline:
                return
            self.t.wait(deadline, want_write=True)

    # -- main loop -------------------------------------------------------------------------
    def serve(self) -> None:
        self.running = True
        self.sel.register(self.t.rfd, selectors.EVENT_READ, ("control", None))
        self._emit(MsgType.HELLO, self._hello_body(0))
        try:
            while self.running:
                self._update_backpressure()
                waiting = self.out or any(c.exit_grace is not None and not c.finished for c in self.children.values())
                self._update_control_reading()
                events = self.sel.select(timeout=0.05 if waiting else 0.5)
                for key, _ in events:
                    kind, child = key.data
                    if kind == "control":
                        if not self._read_control():
                            self.running = False
                            break
                    elif kind == "pipe":
                        self._read_child(child, key.fd)
                    elif kind == "pidfd":
                        self._reap(child)
                    elif kind == "stdin":
                        self._write_stdin(child)
                for c in [c for c in self.children.values() if c.exit_grace is not None and not self.quiesced]:
                    self._maybe_exit(c)
                self._pump_output()
                self._flush()
                if self.out:
                    self.t.wait(time.monotonic() + 0.05, want_write=True)
        finally:
            self._kill_all(0)
            self._flush(block=True, timeout=2.0)
            self.sel.close()

    def _update_control_reading(self):
        """A host that sends requests but does not read replies must not grow our memory:
        stop reading its requests while the output backlog is above the high-water mark."""
        reading = self.t.rfd in self.sel.get_map()
        if len(self.out) > OUT_HIGH_WATER + MAX_PAYLOAD and reading:
            self.sel.unregister(self.t.rfd)
        elif len(self.out) <= OUT_HIGH_WATER and not reading:
            self.sel.register(self.t.rfd, selectors.EVENT_READ, ("control", None))

    def _update_backpressure(self):
        """A pipe is read while its stream holds less than OUTPUT_BUFFER bytes not acknowledged (version 2)
        or not sent (version 1), and the channel's backlog is below the high-water mark."""
        self._paused_children = self.quiesced or len(self.out) > OUT_HIGH_WATER  # quiesced: producers pause
        registered = self.sel.get_map()
        for c in self.children.values():
            for fd, stream in c.open_streams.items():
                want = not self._paused_children and len(c.output[stream].buf) < OUTPUT_BUFFER
                if want and fd not in registered:
                    self.sel.register(fd, selectors.EVENT_READ, ("pipe", c))
                elif not want and fd in registered:
                    self.sel.unregister(fd)

    def _read_control(self) -> bool:
        try:
            data = os.read(self.t.rfd, CONTROL_READ_SIZE)
        except BlockingIOError:
            return True
        except OSError:
            return False
        if not data:
            return False
        self.reader.feed(data)
        while self.running:
            try:
                frame = self.reader.next()
            except ProtocolError as e:
                self._error(*self._check_order(e), e.request_id, e.msg_type)
                continue
            if frame is None:
                break
            self._handle(frame)
        return True

    def _check_order(self, e: ProtocolError) -> tuple[int, str]:
        """The reader decodes bodies before _handle sees the frame; the spec checks the capability
        first (docs: "Order of checks"), so a malformed body of a type this agent does not offer
        gets EOPNOTSUPP, as from the C agents."""
        msg = BY_TYPE.get(e.msg_type)
        if (isinstance(e, MalformedPayload) and msg and msg.direction != "agent->host" and msg.capability
                and not self.capabilities & msg.capability):
            return ErrorCode.EOPNOTSUPP, f"{msg.type.name} needs capability {msg.capability.name}"
        return e.code, str(e)

    # -- requests --------------------------------------------------------------------------
    def _handle(self, f: codec.Frame):
        msg = BY_TYPE[f.type]
        if f.version > self.version_max:  # an old agent's header check
            return self._error(ErrorCode.EPROTONOSUPPORT, f"frame version {f.version} outside {VERSION_MIN}.."
                               f"{self.version_max}", f.request_id, f.type)
        if msg.direction == "agent->host" or f.flags & FrameFlag.REPLY:
            return self._error(ErrorCode.EPROTO, f"{msg.type.name} is not a host->agent message", f.request_id, f.type)
        if msg.capability and not self.capabilities & msg.capability:
            return self._error(ErrorCode.EOPNOTSUPP, f"{msg.type.name} needs capability {msg.capability.name}",
                               f.request_id, f.type)
        if msg.kind == "request" and f.request_id == 0 and f.type != MsgType.HELLO:
            return self._error(ErrorCode.EPROTO, f"{msg.type.name} request needs a non-zero request_id", 0, f.type)
        if not (f.type == MsgType.HELLO and f.request_id == 0):
            self.session_open = True  # the host has spoken on this connection: held output may flow
        handler = getattr(self, f"_on_{msg.name}")
        try:
            handler(f)
        except OSError as e:
            self._error(e.errno or ErrorCode.EIO, f"{msg.type.name}: {e.strerror or e}", f.request_id, f.type)
        except InvalidMessage as e:  # a reply we could not encode: report, keep serving
            self._error(ErrorCode.EPROTO, f"{msg.type.name}: {e}", f.request_id, f.type)

    def _ok(self, f):
        self._emit(MsgType.OK, {}, f.request_id, reply=True)

    def _hello_body(self, selected):
        return dict(version_min=VERSION_MIN, version_max=self.version_max, version_selected=selected,
                    agent_kind=AgentKind.REFERENCE, capabilities=self.capabilities, max_payload=MAX_PAYLOAD,
                    uptime_ms=int((time.monotonic() - self.started) * 1000) & 0xFFFFFFFF, name=self.name,
                    os_release=platform.release()[:256])

    def _on_hello(self, f):
        limit = f.body["max_payload"]
        if limit < MAX_PAYLOAD_MIN:  # a field value first (docs: order of checks); the HELLO changes nothing
            return self._error(ErrorCode.EINVAL, f"max_payload {limit} below the minimum {MAX_PAYLOAD_MIN}",
                               f.request_id, f.type)
        if f.request_id == 0:  # a new host asks for a fresh announcement: a new session
            self._new_session()
            self.max_payload = min(limit, MAX_PAYLOAD)
            return self._emit(MsgType.HELLO, self._hello_body(0))
        lo, hi = max(VERSION_MIN, f.body["version_min"]), min(self.version_max, f.body["version_max"])
        if lo > hi:
            return self._error(ErrorCode.EPROTONOSUPPORT, f"no common version: host {f.body['version_min']}.."
                               f"{f.body['version_max']}, agent {VERSION_MIN}..{self.version_max}", f.request_id,
                               f.type)
        self.version = hi  # the reply is the first frame in the selected version
        self.max_payload = min(limit, MAX_PAYLOAD)  # binds from the reply on
        self._emit(MsgType.HELLO, self._hello_body(hi), f.request_id, reply=True)

    def _on_config(self, f):
        b = f.body
        bad = _config_fault(b)
        if bad:
            return self._error(ErrorCode.EINVAL, bad, f.request_id, f.type)
        if b["portal_size"]:  # well-formed, but this agent maps no Portal (no PORTAL capability)
            return self._error(ErrorCode.EOPNOTSUPP, "the reference agent has no Portal device", f.request_id, f.type)
        self.env_defaults = list(b["env"])
        self._ok(f)

    def _on_ping(self, f):
        need = PONG_MIN_SIZE + len(f.body["data"])
        if need > self.max_payload:
            return self._error(ErrorCode.EMSGSIZE, f"PONG of {need} bytes would exceed the host's max_payload "
                               f"{self.max_payload}", f.request_id, f.type)
        self._emit(MsgType.PONG, dict(data=f.body["data"]), f.request_id, reply=True)

    def _on_exec(self, f):
        b = f.body
        bad = _exec_fault(b)  # fields first, as every agent checks them (guest/agentx agx_exec_check)
        if bad:
            return self._error(bad[0], bad[1], f.request_id, f.type)
        if self.quiesced:
            return self._error(ErrorCode.ECANCELED, "quiesced: EXEC refused until RESUME", f.request_id, f.type)
        if len(self.children) >= MAX_PROCESSES:
            return self._error(ErrorCode.EAGAIN, f"too many processes ({MAX_PROCESSES})", f.request_id, f.type)
        env = {}
        for item in [DEFAULT_PATH] + self.env_defaults + list(b["env"]):
            k, sep, v = item.partition("=")
            if sep:
                env[k] = v
        flags = b["flags"]
        argv = list(b["argv"])
        if argv[0] == PROGRAM_NAME and self.capabilities & Capability.PROGRAMS:
            argv = [sys.executable, "-I", "-S", programs.SCRIPT] + argv[1:]  # the conformance program
        try:
            p = subprocess.Popen(argv, env=env, cwd=b["cwd"] or "/",
                                 stdin=subprocess.PIPE if flags & ExecFlag.STDIN_PIPE else subprocess.DEVNULL,
                                 stdout=subprocess.PIPE,
                                 stderr=subprocess.STDOUT if flags & ExecFlag.STDERR_TO_STDOUT else subprocess.PIPE,
                                 start_new_session=True, close_fds=True)
        except OSError as e:
            return self._error(e.errno or ErrorCode.EIO, f"execve {b['argv'][0]}: {e.strerror}", f.request_id, f.type)
        c = _Child(p, os.pidfd_open(p.pid))
        self.children[c.pid] = c
        for pipe, stream in ((p.stdout, Stream.STDOUT), (p.stderr, Stream.STDERR)):
            if pipe is not None:
                os.set_blocking(pipe.fileno(), False)
                c.open_streams[pipe.fileno()] = stream
                if not self._paused_children:
                    self.sel.register(pipe.fileno(), selectors.EVENT_READ, ("pipe", c))
        if p.stdin is not None:
            c.stdin_fd = p.stdin.fileno()
            os.set_blocking(c.stdin_fd, False)
        self.sel.register(c.pidfd, selectors.EVENT_READ, ("pidfd", c))
        self._emit(MsgType.EXEC_STARTED, dict(pid=c.pid), f.request_id, reply=True)
        if flags & ExecFlag.STDERR_TO_STDOUT:
            c.output[Stream.STDERR].ended = True  # no data of its own: its EOF goes out first
        self._pump_output()

    def _on_stdio(self, f):
        b = f.body
        # fields before the pid, in the order every agent checks them (guest/agentx agx_stdin_check)
        if b["stream"] != Stream.STDIN:
            return self._error(ErrorCode.EINVAL, f"host can only send STDIN, not stream {b['stream']}", 0, f.type)
        if b["flags"] & ~int(StdioFlag.EOF):  # ~StdioFlag.EOF alone would be 0
            return self._error(ErrorCode.EINVAL, f"unknown STDIO flags 0x{b['flags']:x}", 0, f.type)
        c = self.children.get(b["pid"])
        if c is None:
            return self._error(ErrorCode.ESRCH, f"STDIO for unknown pid {b['pid']}", 0, f.type)
        data = b["data"]
        if c.stdin_fd is None or c.stdin_eof:
            if data:  # an EOF-only frame for a closed stdin is a no-op
                self._ack_stdin(c, len(data), StdinAckFlag.CLOSED)
                self._error(ErrorCode.EPIPE, f"stdin of pid {c.pid} is closed", 0, f.type)
            return
        if "offset" in b and b["offset"] != c.stdin_accepted:
            self._ack_stdin(c, len(data), StdinAckFlag.DROPPED)
            return self._error(ErrorCode.EINVAL, f"stdin of pid {c.pid}: frame at offset {b['offset']}, expected "
                               f"{c.stdin_accepted}", 0, f.type)
        if len(c.stdin_queue) + len(data) > STDIN_QUEUE_MAX:
            self._ack_stdin(c, len(data), StdinAckFlag.DROPPED)
            return self._error(ErrorCode.EAGAIN, f"stdin queue of pid {c.pid} is full", 0, f.type)
        c.stdin_accepted += len(data)
        c.stdin_queue += data
        if b["flags"] & StdioFlag.EOF:
            c.stdin_eof = True
        self._write_stdin(c)

    def _write_stdin(self, c: _Child):
        if c.stdin_fd is None:
            return
        done = 0
        try:
            while c.stdin_queue:
                n = os.write(c.stdin_fd, c.stdin_queue)
                del c.stdin_queue[:n]
                done += n
        except BlockingIOError:
            pass
        except OSError:  # the child closed its stdin: drop what is queued
            self._ack_stdin(c, done)
            done = 0
            self._ack_stdin(c, len(c.stdin_queue), StdinAckFlag.CLOSED)
            c.stdin_queue.clear()
            c.stdin_eof = True
        self._ack_stdin(c, done)
        registered = c.stdin_fd in self.sel.get_map()
        if c.stdin_queue and not registered:
            self.sel.register(c.stdin_fd, selectors.EVENT_WRITE, ("stdin", c))
        elif not c.stdin_queue and registered:
            self.sel.unregister(c.stdin_fd)
        if not c.stdin_queue and c.stdin_eof:
            os.close(c.stdin_fd)
            c.popen.stdin = None  # we closed it; keep Popen from closing it again
            c.stdin_fd = None

    def _ack_stdin(self, c: _Child, n: int, flags: int = 0):
        """Return stdin credit: these bytes were written (flags 0) or dropped (CLOSED, DROPPED)."""
        if n:
            self._emit(MsgType.STDIN_ACK, dict(pid=c.pid, bytes=n, flags=int(flags)))

    def _read_child(self, c: _Child, fd: int):
        stream = c.open_streams[fd]
        room = OUTPUT_BUFFER - len(c.output[stream].buf)
        if room <= 0:
            return  # _update_backpressure stops watching the pipe
        try:
            data = os.read(fd, min(room, STDIO_MAX_DATA))
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if data:
            c.output[stream].buf += data
            return
        self.sel.unregister(fd)
        del c.open_streams[fd]
        c.output[stream].ended = True
        self._maybe_exit(c)

    def _reap(self, c: _Child):
        rc = c.popen.wait()
        self.sel.unregister(c.pidfd)
        os.close(c.pidfd)
        c.status = (ExitHow.SIGNALED, -rc) if rc < 0 else (ExitHow.EXITED, rc)
        self._maybe_exit(c)

    def _maybe_exit(self, c: _Child):
        if c.status is None or c.finished:
            return
        if c.open_streams:
            # Exited, but something (a grandchild) may hold the pipes open: don't wait for it forever.
            if c.exit_grace is None:
                c.exit_grace = time.monotonic() + EXIT_EOF_GRACE_MS / 1000
            if time.monotonic() < c.exit_grace:
                return
            for fd, stream in list(c.open_streams.items()):
                if fd in self.sel.get_map():
                    self.sel.unregister(fd)
                c.output[stream].ended = True
            c.open_streams.clear()
        for pipe in (c.popen.stdout, c.popen.stderr):
            if pipe:
                pipe.close()
        if c.stdin_fd is not None:
            if c.stdin_fd in self.sel.get_map():
                self.sel.unregister(c.stdin_fd)
            os.close(c.stdin_fd)
            c.popen.stdin = None
            self._ack_stdin(c, len(c.stdin_queue), StdinAckFlag.CLOSED)  # never written: give the credit back
            c.stdin_queue.clear()
        c.finished = True
        self._pump_output()  # EOFs and EXIT follow the held output

    def _on_output_ack(self, f):
        b = f.body
        unknown = b["flags"] & ~int(OutputAckFlag.EXIT)
        if unknown:
            return self._error(ErrorCode.EINVAL, f"unknown OUTPUT_ACK flag bits 0x{unknown:x}", 0, f.type)
        c = self.children.get(b["pid"])
        if c is None:
            return self._error(ErrorCode.ESRCH, f"OUTPUT_ACK for pid {b['pid']}, which this agent does not hold",
                               0, f.type)
        acks = {Stream.STDOUT: b["stdout_bytes"], Stream.STDERR: b["stderr_bytes"]}
        for stream, offset in acks.items():
            if offset > c.output[stream].sent_max:
                return self._error(ErrorCode.EINVAL, f"OUTPUT_ACK pid {c.pid} {stream.name.lower()} {offset}: only "
                                   f"{c.output[stream].sent_max} bytes were sent", 0, f.type)
        if b["flags"] & OutputAckFlag.EXIT and not (c.exit_sent or c.exit_ever_sent):
            return self._error(ErrorCode.EINVAL, f"OUTPUT_ACK EXIT for pid {c.pid} before its EXIT was sent", 0,
                               f.type)
        for stream, offset in acks.items():
            c.output[stream].advance(offset)
        if b["flags"] & OutputAckFlag.EXIT:
            self.children.pop(c.pid, None)

    def _on_signal(self, f):
        pid, signo = f.body["pid"], f.body["signo"]
        if not 1 <= signo <= SIGNAL_MAX:  # fields before the pid, as every agent checks (agx_signal_check)
            return self._error(ErrorCode.EINVAL, f"invalid signal {signo}", f.request_id, f.type)
        c = self.children.get(pid)
        if c is None or c.status is not None:
            return self._error(ErrorCode.ESRCH, f"no running process {pid} started by this agent", f.request_id, f.type)
        os.killpg(pid, signo)  # EXEC made it a session and group leader: reach its children too
        self._ok(f)

    def _on_quiesce(self, f):
        t0 = time.monotonic_ns()
        self.quiesced = True
        os.sync()
        self._emit(MsgType.QUIESCE_COMPLETE, dict(flushed_regions=0, running_processes=len(self.children),
                                                  elapsed_ns=time.monotonic_ns() - t0), f.request_id, reply=True)

    def _on_resume(self, f):
        self.quiesced = False
        self._ok(f)

    def _on_shutdown(self, f):
        if f.body["mode"] not in ShutdownMode._value2member_map_:
            return self._error(ErrorCode.EINVAL, f"unknown shutdown mode {f.body['mode']}", f.request_id, f.type)
        if f.body["grace_ms"] > SHUTDOWN_GRACE_MAX_MS:
            return self._error(ErrorCode.EINVAL, f"grace_ms {f.body['grace_ms']} > {SHUTDOWN_GRACE_MAX_MS}",
                               f.request_id, f.type)
        self._kill_all(f.body["grace_ms"])
        self._ok(f)
        self.running = False

    def _on_mount(self, f):  # only reached if a caller enables MOUNT on purpose
        self._error(ErrorCode.EOPNOTSUPP, "the reference agent does not own a filesystem namespace", f.request_id, f.type)

    _on_unmount = _on_mount

    def _kill_all(self, grace_ms: int):
        for sig, wait_s in ((signal.SIGTERM, grace_ms / 1000), (signal.SIGKILL, 1.0)):
            live = [c for c in self.children.values() if c.popen.poll() is None]
            for c in live:
                try:
                    os.killpg(c.pid, sig)
                except OSError:
                    pass
            deadline = time.monotonic() + wait_s
            while live and time.monotonic() < deadline:
                live = [c for c in live if c.popen.poll() is None]
                time.sleep(0.01)


PORTAL_SIZE_ALIGN, PORTAL_SIZE_LIMIT = 4096, 1 << 47  # guest/agentx/agentx_rx.h AGX_PORTAL_SIZE_*


def _exec_fault(b: dict) -> tuple[int, str] | None:
    """(errno, message) for EXEC fields every agent refuses (guest/agentx agx_exec_check)."""
    unknown = b["flags"] & ~int(ExecFlag.STDIN_PIPE | ExecFlag.STDERR_TO_STDOUT)  # ~ of an IntFlag keeps its bits
    if unknown:
        return ErrorCode.EINVAL, f"unknown EXEC flag bits 0x{unknown:x}"
    if not b["argv"]:
        return ErrorCode.EINVAL, "argv is empty"
    if not b["argv"][0]:
        return ErrorCode.ENOENT, "argv[0] is empty"  # what execve("") says
    return None


def _config_fault(b: dict) -> str | None:
    """Why CONFIG's Portal fields are invalid on any agent (EINVAL; guest/agentx agx_config_check)."""
    size, device = b["portal_size"], b["portal_device"]
    if bool(size) != bool(device):
        return f"portal_size ({size}) and portal_device ({device!r}) go together"
    if size % PORTAL_SIZE_ALIGN or size > PORTAL_SIZE_LIMIT:
        return f"portal_size {size}: not a multiple of {PORTAL_SIZE_ALIGN} or above {PORTAL_SIZE_LIMIT}"
    if device and not device.startswith("/"):
        return "portal_device must be an absolute path"
    return None


def serve_in_thread(stream, **kw) -> tuple[ReferenceAgent, threading.Thread]:
    agent = ReferenceAgent(stream, **kw)
    t = threading.Thread(target=agent.serve, name="wslx-reference-agent", daemon=True)
    t.start()
    return agent, t


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--fd", type=int, required=True, help="inherited stream fd to serve on")
    args = ap.parse_args(argv)
    ReferenceAgent(FdTransport(args.fd)).serve()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
