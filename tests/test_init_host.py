"""Host-side tests of guest/init (images/wslx-init) without a VM.

The static musl binary runs on the host in test mode, `wslx-init --agent-fd N`:
no mounts, modules or power off; it serves AgentX on one end of a socketpair
and exits when that closes or on SHUTDOWN. As root it unshares its mount and
UTS namespaces first and mounts its own tmpfs on /mnt, so MOUNT and CONFIG
hostname never touch the host. Stdin tests follow STDIN_ACK credit (at most
STDIN_WINDOW unacknowledged bytes per process), as a conforming host does.

    .venv/bin/scons -Q images/wslx-init && .venv/bin/pytest -q tests/test_init_host.py
"""
from __future__ import annotations

import os
import select
import shutil
import signal
import socket
import struct
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "host" / "python"))

from wslx.agentx import codec  # noqa: E402
from wslx.agentx.errors import ProtocolError  # noqa: E402
from wslx.spec import agentx as spec  # noqa: E402
from helpers.init_sandbox import skip_without_sandbox  # noqa: E402

T = spec.MsgType
E = spec.ErrorCode
BINARY = ROOT / "images" / "wslx-init"
TIMEOUT = 5.0


@pytest.fixture(scope="session")
def binary() -> Path:
    if not BINARY.exists():
        scons = ROOT / ".venv" / "bin" / "scons"
        subprocess.run([str(scons if scons.exists() else "scons"), "-Q", "images/wslx-init"], cwd=ROOT, check=True)
    assert BINARY.exists(), "images/wslx-init was not built"
    skip_without_sandbox(BINARY)  # as root it refuses to run without its private namespaces
    return BINARY


class Agent:
    """wslx-init in test mode on a socketpair, with a frame reader that times out.
    wrap: argv prefix to run the agent under (e.g. unshare); proc is then the wrapper."""

    def __init__(self, binary: Path | None, env_extra: dict | None = None, wrap: list[str] = ()):
        self.rid = 0
        self.pending: list[codec.Frame] = []  # events that arrived while waiting for a reply
        self.acked: dict[int, int] = {}  # STDIN_ACK bytes per pid, counted by recv()
        self.acks: list[tuple[int, int, int]] = []  # every STDIN_ACK seen: (pid, bytes, flags)
        self.reader = codec.FrameReader()
        if binary is None:  # the caller sets sock and proc (see UnixHost)
            return
        self.sock, theirs = socket.socketpair()
        env = dict(os.environ, **(env_extra or {}))
        self.proc = subprocess.Popen([*wrap, str(binary), "--agent-fd", str(theirs.fileno())],
                                     pass_fds=[theirs.fileno()], stdin=subprocess.DEVNULL, env=env)
        theirs.close()

    def drain_pending(self) -> list[codec.Frame]:
        """The events kept while waiting for replies, STDIN_ACKs counted and left out."""
        frames, self.pending = self.pending, []
        for f in frames:
            if f.type == T.STDIN_ACK:
                self._count_ack(f)
        return [f for f in frames if f.type != T.STDIN_ACK]

    def _count_ack(self, f: codec.Frame) -> None:
        assert f.request_id == 0 and not f.is_reply and f.body["bytes"] > 0, f
        assert f.body["flags"] in (0, spec.StdinAckFlag.CLOSED, spec.StdinAckFlag.DROPPED), f
        self.acked[f.body["pid"]] = self.acked.get(f.body["pid"], 0) + f.body["bytes"]
        self.acks.append((f.body["pid"], f.body["bytes"], int(f.body["flags"])))

    def acked_as(self, pid: int, flags: int) -> int:
        """STDIN_ACK bytes of pid with exactly these flags."""
        return sum(n for p, n, fl in self.acks if p == pid and fl == flags)

    def send_raw(self, data: bytes) -> None:
        self.sock.sendall(data)

    def send(self, msg_type, body=None, *, request_id=None, flags=0) -> int:
        if request_id is None:
            self.rid += 1
            request_id = self.rid
        self.sock.sendall(codec.encode_frame(msg_type, body or {}, request_id=request_id, flags=flags))
        return request_id

    def recv(self, timeout: float = TIMEOUT, *, acks: bool = False) -> codec.Frame:
        """The next frame; STDIN_ACKs are counted into self.acked and skipped unless acks."""
        while True:
            f = self.pending.pop(0) if self.pending else self._recv_wire(timeout)
            if f.type == T.STDIN_ACK:
                self._count_ack(f)
                if not acks:
                    continue
            return f

    def _recv_wire(self, timeout: float = TIMEOUT) -> codec.Frame:
        deadline = time.monotonic() + timeout
        while True:
            f = self.reader.next()  # the agent must never send anything the codec rejects
            if f is not None:
                return f
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self.sock], [], [], left)[0]:
                raise TimeoutError("no frame from wslx-init within %.1fs" % timeout)
            data = self.sock.recv(1 << 20)
            if not data:
                raise EOFError("wslx-init closed the channel")
            self.reader.feed(data)

    def expect(self, msg_type, request_id=None, timeout: float = TIMEOUT) -> codec.Frame:
        f = self.recv(timeout)
        assert f.type == msg_type, f"expected {T(msg_type).name}, got {f.name} {f.body}"
        if request_id is not None:
            assert f.request_id == request_id
            assert f.is_reply
        return f

    def request(self, msg_type, body=None, reply=None) -> codec.Frame:
        rid = self.send(msg_type, body)
        while True:
            f = self._recv_wire()
            if f.request_id == 0 and f.type in (T.STDIO, T.EXIT, T.ERROR, T.STDIN_ACK):
                self.pending.append(f)  # an event of some process: keep it for collect()
                continue
            break
        assert f.request_id == rid and f.is_reply, f
        if reply is not None:
            assert f.type == reply, f"expected {T(reply).name}, got {f.name} {f.body}"
        return f

    def ping(self, data=b"alive") -> None:
        f = self.request(T.PING, {"data": data}, T.PONG)
        assert f.body["data"] == data

    def exec(self, argv, *, flags=0, env=(), cwd="") -> int:
        f = self.request(T.EXEC, {"flags": flags, "argv": list(argv), "env": list(env), "cwd": cwd}, T.EXEC_STARTED)
        return f.body["pid"]

    def collect(self, pid, timeout: float = TIMEOUT):
        """stdout, stderr and the EXIT body of pid; checks EXIT comes after both EOFs."""
        out = {1: bytearray(), 2: bytearray()}
        eof = set()
        while True:
            f = self.recv(timeout)
            if f.type == T.STDIO and f.body["pid"] == pid:
                assert f.body["stream"] not in eof, "data after EOF"
                assert len(f.body["data"]) <= spec.STDIO_MAX_DATA
                out[f.body["stream"]] += f.body["data"]
                if f.body["flags"] & spec.StdioFlag.EOF:
                    eof.add(f.body["stream"])
            elif f.type == T.EXIT and f.body["pid"] == pid:
                assert eof == {1, 2}, "EXIT before both EOFs"
                return bytes(out[1]), bytes(out[2]), f.body
            else:
                raise AssertionError(f"unexpected frame {f.name} {f.body}")

    def close(self) -> None:
        try:
            self.sock.close()
        finally:
            try:
                self.proc.wait(timeout=3)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@pytest.fixture
def agent(binary):
    a = Agent(binary)
    hello = a.expect(T.HELLO)
    a.hello = hello
    yield a
    a.close()


def frame(msg_type: int, payload: bytes, *, request_id=1, flags=0, version=spec.VERSION_MAX, payload_len=None,
          payload_crc=None, header_crc=None) -> bytes:
    """A frame with any field forced (for malformed input)."""
    return codec.raw_frame(msg_type, payload, request_id=request_id, flags=flags, version=version,
                           payload_len=payload_len, payload_crc=payload_crc, header_crc=header_crc)


def reference_errors(data: bytes):
    """(code, request_id) the Python FrameReader reports for data, in order."""
    r = codec.FrameReader()
    r.feed(data)
    errs = []
    while True:
        try:
            f = r.next()
        except ProtocolError as e:
            errs.append((int(e.code), e.request_id))
            continue
        if f is None:
            return errs
        if f.type not in {int(m.type) for m in spec.MESSAGES if m.direction != "agent->host"}:
            errs.append((int(E.EPROTO), f.request_id))  # valid frame, wrong direction
        else:
            errs.append(("frame", f.request_id))


# ---- handshake ---------------------------------------------------------------------

def test_hello_on_connect(agent):
    b = agent.hello.body
    assert agent.hello.request_id == 0 and not agent.hello.is_reply
    assert (b["version_min"], b["version_max"], b["version_selected"]) == (spec.VERSION_MIN, spec.VERSION_MAX, 0)
    assert b["agent_kind"] == spec.AgentKind.LINUX_INIT
    C = spec.Capability
    want = C.EXEC | C.STDIN | C.SIGNAL | C.MOUNT | C.QUIESCE | C.SHUTDOWN | C.CONFIG | C.PING
    assert b["capabilities"] & want == want
    assert not b["capabilities"] & C.PORTAL
    assert b["max_payload"] == spec.MAX_PAYLOAD
    assert b["name"].startswith("wslx-init ")
    assert b["os_release"] == os.uname().release


def test_host_hello_negotiates(agent):
    f = agent.request(T.HELLO, dict(version_min=1, version_max=7, version_selected=0, agent_kind=0, capabilities=0,
                                    max_payload=spec.MAX_PAYLOAD, uptime_ms=0, name="test", os_release=""), T.HELLO)
    assert f.body["version_selected"] == spec.VERSION_MAX
    f = agent.request(T.HELLO, dict(version_min=spec.VERSION_MAX + 1, version_max=spec.VERSION_MAX + 5,
                                    version_selected=0, agent_kind=0, capabilities=0, max_payload=spec.MAX_PAYLOAD,
                                    uptime_ms=0, name="test", os_release=""), T.ERROR)
    assert f.body["code"] == E.EPROTONOSUPPORT and f.body["request_type"] == T.HELLO


def test_ping_pong(agent):
    agent.ping(b"")
    agent.ping(bytes(range(256)) * 240)  # PING_MAX_DATA


# ---- EXEC --------------------------------------------------------------------------

def test_exec_echo_exit_code(agent):
    pid = agent.exec(["/bin/sh", "-c", "echo hi; exit 3"])
    out, err, ex = agent.collect(pid)
    assert (out, err) == (b"hi\n", b"")
    assert ex == {"pid": pid, "how": spec.ExitHow.EXITED, "code": 3}


def test_exec_stderr_and_merge(agent):
    pid = agent.exec(["/bin/sh", "-c", "echo out; echo err >&2"])
    out, err, ex = agent.collect(pid)
    assert (out, err, ex["code"]) == (b"out\n", b"err\n", 0)
    pid = agent.exec(["/bin/sh", "-c", "echo out; echo err >&2"], flags=spec.ExecFlag.STDERR_TO_STDOUT)
    out, err, ex = agent.collect(pid)
    assert (out, err) == (b"out\nerr\n", b"")


def test_exec_path_env_cwd(agent):
    pid = agent.exec(["sh", "-c", 'echo "$A:$PATH:$(pwd)"'], env=["A=1"])
    out, _, ex = agent.collect(pid)
    assert out == b"1:/bin:/sbin:/usr/bin:/usr/sbin:/\n" and ex["code"] == 0
    agent.request(T.CONFIG, dict(clock_realtime_ns=0, portal_size=0, hostname="", env=["A=dflt", "B=2"],
                                 portal_device=""), T.OK)
    pid = agent.exec(["sh", "-c", 'echo "$A $B"; pwd'], env=["A=over"], cwd="/tmp")
    out, _, _ = agent.collect(pid)
    assert out == b"over 2\n/tmp\n"


def test_exec_not_found(agent):
    f = agent.request(T.EXEC, {"flags": 0, "argv": ["/nonexistent"], "env": [], "cwd": ""}, T.ERROR)
    assert f.body["code"] == E.ENOENT and f.body["request_type"] == T.EXEC
    assert f.body["message"] == "execve /nonexistent: No such file or directory"
    agent.ping()  # nothing else (no EXEC_STARTED, no EXIT) was queued before the PONG


def test_exec_not_executable(agent, tmp_path):
    script = tmp_path / "noexec"
    script.write_text("#!/bin/sh\necho no\n")
    script.chmod(0o644)
    f = agent.request(T.EXEC, {"flags": 0, "argv": [str(script)], "env": [], "cwd": ""}, T.ERROR)
    assert f.body["code"] == E.EACCES  # no x bit: EACCES even for root
    f = agent.request(T.EXEC, {"flags": 0, "argv": ["/bin/true"], "env": [], "cwd": "/nonexistent-dir"}, T.ERROR)
    assert f.body["code"] == E.ENOENT


def test_exec_empty_argv(agent):
    f = agent.request(T.EXEC, {"flags": 0, "argv": [], "env": [], "cwd": ""}, T.ERROR)
    assert f.body["code"] == E.EINVAL


def test_error_message_is_valid_utf8_when_truncated(agent):
    # a 4000-byte argv0 of 2-byte characters: the message must be cut on a character boundary
    f = agent.request(T.EXEC, {"flags": 0, "argv": ["/x" + "é" * 1999], "env": [], "cwd": ""}, T.ERROR)
    assert f.body["code"] in (E.ENOENT, 36)  # ENAMETOOLONG is 36
    assert len(f.body["message"].encode()) <= spec.ERROR_MESSAGE_MAX_LEN


def test_stdin_relay_cat(agent):
    pid = agent.exec(["cat"], flags=spec.ExecFlag.STDIN_PIPE)
    agent.send(T.STDIO, {"pid": pid, "stream": 0, "flags": 0, "data": b"hello "}, request_id=0)
    agent.send(T.STDIO, {"pid": pid, "stream": 0, "flags": spec.StdioFlag.EOF, "data": b"world\n"}, request_id=0)
    out, err, ex = agent.collect(pid)
    assert (out, err, ex["code"]) == (b"hello world\n", b"", 0)


def _feed_with_credit(agent, pid, data: bytes, *, eof=True) -> bytes:
    """Send data to pid's stdin keeping at most STDIN_WINDOW unacknowledged (STDIN_ACK credit);
    returns the stdout that came back meanwhile. Any ERROR (EAGAIN...) fails the test."""
    step, got, sent = spec.STDIO_MAX_DATA, bytearray(), 0
    agent.acked.setdefault(pid, 0)
    while sent < len(data):
        chunk = data[sent:sent + step]
        if sent + len(chunk) - agent.acked[pid] <= spec.STDIN_WINDOW:
            agent.send(T.STDIO, {"pid": pid, "stream": 0, "flags": 0, "data": chunk}, request_id=0)
            sent += len(chunk)
            continue
        f = agent.recv()  # counts STDIN_ACKs
        assert f.type == T.STDIO and f.body["pid"] == pid and f.body["stream"] == 1 and not f.body["flags"], f
        got += f.body["data"]
    if eof:
        agent.send(T.STDIO, {"pid": pid, "stream": 0, "flags": spec.StdioFlag.EOF, "data": b""}, request_id=0)
    return bytes(got)


def test_stdin_bulk_with_credit(agent):
    # 2 MiB through cat, never more than STDIN_WINDOW in flight: no EAGAIN, and the STDIN_ACKs
    # add up to exactly the bytes sent (all of them before EXIT)
    data = os.urandom(2 << 20)
    pid = agent.exec(["cat"], flags=spec.ExecFlag.STDIN_PIPE)
    got = _feed_with_credit(agent, pid, data)
    out, _, ex = agent.collect(pid)
    assert got + out == data and ex["code"] == 0
    assert agent.acked[pid] == len(data)


def test_stdin_credit_is_window_sized(agent):
    # a process that does not read yet: the agent takes a whole window (pipe + queue) without EAGAIN
    pid = agent.exec(["sh", "-c", "sleep 0.5; exec cat"], flags=spec.ExecFlag.STDIN_PIPE)
    data = os.urandom(spec.STDIN_WINDOW)
    for i in range(0, len(data), spec.STDIO_MAX_DATA):
        agent.send(T.STDIO, {"pid": pid, "stream": 0, "flags": 0, "data": data[i:i + spec.STDIO_MAX_DATA]},
                   request_id=0)
    agent.send(T.STDIO, {"pid": pid, "stream": 0, "flags": spec.StdioFlag.EOF, "data": b""}, request_id=0)
    out, _, ex = agent.collect(pid)
    assert out == data and ex["code"] == 0 and agent.acked[pid] == len(data)


@pytest.mark.parametrize("argv", [["sh", "-c", "sleep 0.3"], ["head", "-c", "10"]], ids=["exits", "closes_stdin"])
def test_stdin_discarded_is_acknowledged(agent, argv):
    # bytes dropped because the process ended or closed its stdin still return their credit
    pid = agent.exec(argv, flags=spec.ExecFlag.STDIN_PIPE)
    n = 0
    for _ in range(4):  # 240 KiB: more than the 64 KiB pipe takes
        agent.send(T.STDIO, {"pid": pid, "stream": 0, "flags": 0, "data": b"y" * spec.STDIO_MAX_DATA}, request_id=0)
        n += spec.STDIO_MAX_DATA
    refused = 0
    while True:
        f = agent.recv()
        if f.type == T.EXIT and f.body["pid"] == pid:
            break
        if f.type == T.ERROR:  # a frame that came after stdin closed: STDIN_ACK CLOSED + EPIPE
            assert f.body["code"] == E.EPIPE and f.request_id == 0, f
            refused += spec.STDIO_MAX_DATA
            continue
        assert f.type == T.STDIO, f
    # A chunk the agent reads only after it freed the slot is refused as an unknown pid (ESRCH,
    # no credit: the process is gone). Everything else is acknowledged exactly once.
    late = 0
    agent.ping()  # everything sent before this PING has been handled once its PONG is back
    for f in agent.drain_pending():
        if f.type == T.ERROR and f.body["code"] == E.ESRCH:
            late += spec.STDIO_MAX_DATA
    assert refused < n and agent.acked[pid] + late == n
    closed = agent.acked_as(pid, spec.StdinAckFlag.CLOSED)
    assert closed >= refused and agent.acked_as(pid, 0) + closed + late == n
    assert agent.acked_as(pid, spec.StdinAckFlag.DROPPED) == 0


def test_stdin_queue_overflow_is_eagain(agent):
    pid = agent.exec(["sleep", "100"], flags=spec.ExecFlag.STDIN_PIPE)  # never reads its stdin
    chunk = b"x" * spec.STDIO_MAX_DATA
    for _ in range(20):  # 1.2 MB > pipe + window
        agent.send(T.STDIO, {"pid": pid, "stream": 0, "flags": 0, "data": chunk}, request_id=0)
    agent.ping()  # every STDIO above was handled before the PONG
    dropped = 0
    while agent.pending:
        f = agent.recv()
        assert f.type == T.ERROR, f
        assert f.body["code"] == E.EAGAIN and f.request_id == 0 and f.body["request_type"] == T.STDIO
        dropped += len(chunk)
    assert dropped > 0
    agent.request(T.SIGNAL, {"pid": pid, "signo": 9}, T.OK)
    while True:
        f = agent.recv()
        if f.type == T.EXIT:
            break
        assert f.type in (T.ERROR, T.STDIO)
    # all of it acknowledged: written, discarded at the reap (CLOSED), or refused (DROPPED)
    assert agent.acked[pid] == 20 * len(chunk)
    assert agent.acked_as(pid, spec.StdinAckFlag.DROPPED) == dropped
    assert agent.acked_as(pid, 0) + agent.acked_as(pid, spec.StdinAckFlag.CLOSED) == 20 * len(chunk) - dropped
    agent.ping()


def test_stdio_errors(agent):
    agent.send(T.STDIO, {"pid": 999999, "stream": 0, "flags": 0, "data": b"x"}, request_id=0)
    f = agent.expect(T.ERROR)
    assert f.body["code"] == E.ESRCH and f.request_id == 0
    agent.ping()
    assert 999999 not in agent.acked  # unknown pid: ESRCH only, no STDIN_ACK
    pid = agent.exec(["sleep", "100"], flags=spec.ExecFlag.STDIN_PIPE)
    agent.send(T.STDIO, {"pid": pid, "stream": 1, "flags": 0, "data": b"x"}, request_id=0)
    f = agent.expect(T.ERROR)
    assert f.body["code"] == E.EINVAL and f.request_id == 0
    agent.send(T.STDIO, {"pid": pid, "stream": 0, "flags": 0x80, "data": b"x"}, request_id=0)
    f = agent.expect(T.ERROR)
    assert f.body["code"] == E.EINVAL and f.request_id == 0
    agent.request(T.SIGNAL, {"pid": pid, "signo": 9}, T.OK)
    agent.collect(pid)


def _stdin_closed_ack(agent, pid, n):
    """After n bytes of stdin to pid whose stdin is closed: STDIN_ACK {n, CLOSED} and ERROR EPIPE."""
    f = agent.recv(acks=True)
    assert f.type == T.STDIN_ACK and f.body == {"pid": pid, "bytes": n, "flags": spec.StdinAckFlag.CLOSED}, f
    f = agent.expect(T.ERROR)
    assert f.body["code"] == E.EPIPE and f.request_id == 0 and f.body["request_type"] == T.STDIO


def test_stdin_to_closed_or_unpiped_stdin(agent):
    # not a pipe: data is acknowledged as CLOSED with EPIPE; an EOF-only frame is a silent no-op
    pid = agent.exec(["sleep", "100"])
    agent.send(T.STDIO, {"pid": pid, "stream": 0, "flags": 0, "data": b"abc"}, request_id=0)
    _stdin_closed_ack(agent, pid, 3)
    agent.send(T.STDIO, {"pid": pid, "stream": 0, "flags": spec.StdioFlag.EOF, "data": b""}, request_id=0)
    agent.ping()
    assert agent.drain_pending() == []
    agent.request(T.SIGNAL, {"pid": pid, "signo": 9}, T.OK)
    agent.collect(pid)
    # stdin the host closed: later data gets CLOSED + EPIPE, a second EOF nothing
    pid = agent.exec(["sleep", "100"], flags=spec.ExecFlag.STDIN_PIPE)
    agent.send(T.STDIO, {"pid": pid, "stream": 0, "flags": spec.StdioFlag.EOF, "data": b"x"}, request_id=0)
    agent.send(T.STDIO, {"pid": pid, "stream": 0, "flags": spec.StdioFlag.EOF, "data": b""}, request_id=0)
    agent.ping()
    assert agent.drain_pending() == [] and agent.acks[-1] == (pid, 1, 0)
    agent.send(T.STDIO, {"pid": pid, "stream": 0, "flags": spec.StdioFlag.EOF, "data": b"yz"}, request_id=0)
    _stdin_closed_ack(agent, pid, 2)
    agent.request(T.SIGNAL, {"pid": pid, "signo": 9}, T.OK)
    agent.collect(pid)


def _cpu_seconds(pid: int) -> float:
    """utime + stime of a process, from /proc/<pid>/stat."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def test_child_closing_stdin_does_not_spin(agent):
    # the reader of the stdin pipe goes away: EPOLLERR on our write end must not busy-loop the agent
    pid = agent.exec(["sh", "-c", "exec 0<&-; echo closed; sleep 3"], flags=spec.ExecFlag.STDIN_PIPE)
    f = agent.expect(T.STDIO)
    assert f.body["data"] == b"closed\n"
    c0 = _cpu_seconds(agent.proc.pid)
    time.sleep(2.0)
    used = _cpu_seconds(agent.proc.pid) - c0
    assert used < 0.3, f"agent used {used:.2f} s of CPU in 2 s while idle"
    agent.send(T.STDIO, {"pid": pid, "stream": 0, "flags": 0, "data": b"late"}, request_id=0)
    _stdin_closed_ack(agent, pid, 4)
    agent.request(T.SIGNAL, {"pid": pid, "signo": 9}, T.OK)
    out, _, ex = agent.collect(pid)
    assert ex["code"] == 9 and agent.acked[pid] == 4


def test_backpressure_with_exited_child_does_not_spin(agent):
    # the host does not read; the child exits with output left in its pipe (EPOLLHUP): no busy loop,
    # and once the host reads, every byte arrives, then the EOFs and EXIT
    size = 1_500_000
    c0 = _cpu_seconds(agent.proc.pid)
    rid = agent.send(T.EXEC, {"flags": 0, "argv": ["head", "-c", str(size), "/dev/zero"], "env": [], "cwd": ""})
    time.sleep(3.0)
    used = _cpu_seconds(agent.proc.pid) - c0
    assert used < 0.3, f"agent used {used:.2f} s of CPU in 3 s while the host did not read"
    f = agent.expect(T.EXEC_STARTED, rid)
    out, err, ex = agent.collect(f.body["pid"], timeout=10)
    assert (len(out), out.count(0), err, ex["code"]) == (size, size, b"", 0)


class UnixHost:
    """wslx-init --no-setup --connect-unix PATH: the test plays the host on a listening AF_UNIX
    socket, so it can drop the connection and take the agent's next one."""

    def __init__(self, binary: Path, path: Path):
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.listener.bind(str(path))
        self.listener.listen(1)
        self.proc = subprocess.Popen([str(binary), "--no-setup", "--connect-unix", str(path)],
                                     stdin=subprocess.DEVNULL)

    def accept(self, timeout: float = TIMEOUT) -> Agent:
        self.listener.settimeout(timeout)
        conn, _ = self.listener.accept()
        conn.settimeout(None)
        a = Agent(None)
        a.sock, a.proc = conn, self.proc
        a.hello = a.expect(T.HELLO)
        return a

    def close(self) -> None:
        self.listener.close()
        if self.proc.poll() is None:
            self.proc.kill()  # children die with it (PR_SET_PDEATHSIG)
        self.proc.wait(timeout=5)


def test_reconnect_gives_the_new_host_a_whole_stdin_window(binary, tmp_path):
    # bytes a lost connection left in the stdin queue are neither acknowledged to the next host nor
    # counted against its window: it may send STDIN_WINDOW bytes at once
    host = UnixHost(binary, tmp_path / "agentx.sock")
    try:
        a = host.accept()
        pid = a.exec(["sleep", "100"], flags=spec.ExecFlag.STDIN_PIPE)  # never reads its stdin
        W, chunk = spec.STDIN_WINDOW, spec.STDIO_MAX_DATA

        def feed(agent, byte: bytes, total: int) -> None:
            for i in range(0, total, chunk):
                agent.send(T.STDIO, {"pid": pid, "stream": 0, "flags": 0, "data": byte * min(chunk, total - i)},
                           request_id=0)

        feed(a, b"a", W)  # a full window: the pipe takes 64 KiB, the queue keeps the rest
        a.ping()
        assert a.drain_pending() == []
        a.sock.close()

        b = host.accept()
        feed(b, b"b", W)  # the new host's own window
        b.ping()
        assert b.drain_pending() == [], "the new host's first window was refused"
        b.send(T.STDIO, {"pid": pid, "stream": 0, "flags": 0, "data": b"c" * chunk}, request_id=0)
        f = b.recv(acks=True)  # beyond the window: acknowledged as DROPPED, with EAGAIN
        assert f.type == T.STDIN_ACK and f.body == {"pid": pid, "bytes": chunk, "flags": spec.StdinAckFlag.DROPPED}
        f = b.expect(T.ERROR)
        assert f.body["code"] == E.EAGAIN and f.request_id == 0
        b.request(T.SIGNAL, {"pid": pid, "signo": 9}, T.OK)
        assert b.collect(pid)[2]["code"] == 9
        # the new host got credit for exactly what it sent (its queued window discarded at the
        # reap: CLOSED); nothing of the old host's
        assert b.acked[pid] == W + chunk
        assert b.acked_as(pid, spec.StdinAckFlag.CLOSED) == W
        assert b.acked_as(pid, spec.StdinAckFlag.DROPPED) == chunk
        b.request(T.SHUTDOWN, {"mode": spec.ShutdownMode.POWEROFF, "grace_ms": 0}, T.OK)
        assert host.proc.wait(timeout=5) == 0
    finally:
        host.close()


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("unshare") or not shutil.which("setsid"),
                    reason="needs root and unshare(1) for a pid namespace whose ns_last_pid can be set")
def test_pid_reuse_while_old_slot_relays_its_tail(binary):
    # the agent in a fresh pid namespace (as pid 2: a shell is its pid 1), where ns_last_pid makes the
    # kernel hand a reaped process's pid to the next EXEC while the old slot still waits out the EXIT
    # grace for a background child holding its stdout
    a = Agent(binary, wrap=["unshare", "--pid", "--fork", "sh", "-c", '"$@"; exit $?', "sh"])
    try:
        try:
            a.expect(T.HELLO)
        except (EOFError, TimeoutError):
            pytest.skip("could not start the agent in a new pid namespace")
        # the background child leaves the session (else the pid stays in use as its sid/pgid)
        old = a.exec(["sh", "-c", "setsid sleep 5 & exit 0"])
        time.sleep(0.1)  # reaped; its EXIT waits AGX_EXIT_EOF_GRACE_MS for the background sleep
        setter = a.exec(["sh", "-c", f"echo {old - 1} > /proc/sys/kernel/ns_last_pid"])
        assert a.collect(setter)[2]["code"] == 0
        new = a.exec(["sh", "-c", "read line; echo got $line; sleep 100"], flags=spec.ExecFlag.STDIN_PIPE)
        if new != old:
            a.request(T.SIGNAL, {"pid": new, "signo": 9}, T.OK)
            pytest.skip(f"pid {old} was not reused (got {new})")
        # stdin and SIGNAL go to the live process, not to the reaped slot holding the same pid;
        # the reap of the new process is matched to its own slot (else its EXIT never comes)
        a.send(T.STDIO, {"pid": new, "stream": 0, "flags": 0, "data": b"hi\n"}, request_id=0)
        out, exits = bytearray(), []
        while b"got hi\n" not in out:
            f = a.recv()
            assert f.type in (T.STDIO, T.EXIT) and f.body["pid"] == old, f
            if f.type == T.EXIT:
                exits.append((f.body["how"], f.body["code"]))
            else:
                out += f.body["data"]
        a.request(T.SIGNAL, {"pid": new, "signo": 9}, T.OK)
        while len(exits) < 2:
            f = a.recv()
            assert f.type in (T.STDIO, T.EXIT) and f.body["pid"] == old, f
            if f.type == T.EXIT:
                exits.append((f.body["how"], f.body["code"]))
        assert sorted(exits) == [(spec.ExitHow.EXITED, 0), (spec.ExitHow.SIGNALED, 9)]
        assert a.acks == [(new, 3, 0)]
    finally:
        a.close()


def test_signal(agent):
    pid = agent.exec(["sleep", "100"])
    agent.request(T.SIGNAL, {"pid": pid, "signo": 15}, T.OK)
    out, err, ex = agent.collect(pid)
    assert ex == {"pid": pid, "how": spec.ExitHow.SIGNALED, "code": 15}
    f = agent.request(T.SIGNAL, {"pid": pid, "signo": 15}, T.ERROR)
    assert f.body["code"] == E.ESRCH
    f = agent.request(T.SIGNAL, {"pid": 1, "signo": 15}, T.ERROR)
    assert f.body["code"] == E.ESRCH
    pid = agent.exec(["sleep", "100"])
    for bad in (0, spec.SIGNAL_MAX + 1, 1000):
        f = agent.request(T.SIGNAL, {"pid": pid, "signo": bad}, T.ERROR)
        assert f.body["code"] == E.EINVAL, bad
    agent.request(T.SIGNAL, {"pid": pid, "signo": 9}, T.OK)
    assert agent.collect(pid)[2]["code"] == 9


def test_signal_reaches_process_group(agent):
    """SIGNAL goes to the process group: the shell and the sleep it started both die. The
    shell prints the sleep's pid once it runs (the event the test waits for)."""
    pid = agent.exec(["/bin/sh", "-c", "sleep 100 & echo $!; wait $!; echo not-reached"])
    f = agent.recv()
    assert f.type == T.STDIO and f.body["pid"] == pid and f.body["stream"] == 1, f
    child = int(f.body["data"])
    agent.request(T.SIGNAL, {"pid": pid, "signo": 15}, T.OK)
    out, _, ex = agent.collect(pid)
    assert out == b"" and ex["how"] == spec.ExitHow.SIGNALED
    try:   # the sleep is gone, or dead and not yet reaped: not left running
        with open(f"/proc/{child}/stat", "rb") as st:
            assert st.read().rsplit(b")", 1)[1].split()[0] == b"Z", f"sleep {child} survived the group's SIGTERM"
    except FileNotFoundError:
        pass


def test_bulk_output_and_backpressure(agent):
    size = 16 << 20
    pid = agent.exec(["head", "-c", str(size), "/dev/zero"])
    time.sleep(1.0)  # don't read: the agent must stop reading the pipe, not drop or grow without bound
    t0 = time.monotonic()
    out, _, ex = agent.collect(pid, timeout=30)
    assert len(out) == size and ex["code"] == 0
    print(f"16 MiB relayed in {time.monotonic() - t0:.2f}s")


def test_process_limit(agent):
    pids = [agent.exec(["sleep", "100"]) for _ in range(64)]
    f = agent.request(T.EXEC, {"flags": 0, "argv": ["sleep", "100"], "env": [], "cwd": ""}, T.ERROR)
    assert f.body["code"] == E.EAGAIN
    for pid in pids:
        agent.request(T.SIGNAL, {"pid": pid, "signo": 9}, T.OK)
    exits = set()
    while len(exits) < 64:
        f = agent.recv()
        if f.type == T.EXIT:
            exits.add(f.body["pid"])
    assert exits == set(pids)
    assert agent.collect(agent.exec(["true"]))[2]["code"] == 0


def test_exit_not_held_by_background_child(agent):
    # `sleep 30 &` inherits stdout/stderr: EXIT comes AGX_EXIT_EOF_GRACE_MS after the reap, not in 30 s
    t0 = time.monotonic()
    pid = agent.exec(["/bin/sh", "-c", "sleep 30 & echo hi"])
    out, err, ex = agent.collect(pid)
    elapsed = time.monotonic() - t0
    assert (out, err, ex["code"]) == (b"hi\n", b"", 0)
    assert elapsed < 2.0, elapsed
    assert elapsed >= spec.EXIT_EOF_GRACE_MS / 1000 * 0.9, elapsed  # the grace was honoured
    agent.ping()


def test_output_within_exit_grace_is_relayed(agent):
    pid = agent.exec(["/bin/sh", "-c", "(sleep 0.3; echo late; echo late2 >&2) & echo early"])
    out, err, ex = agent.collect(pid)
    assert (out, err, ex["code"]) == (b"early\nlate\n", b"late2\n", 0)


def test_exit_grace_merged_stderr(agent):
    t0 = time.monotonic()
    pid = agent.exec(["/bin/sh", "-c", "sleep 30 & echo hi >&2"], flags=spec.ExecFlag.STDERR_TO_STDOUT)
    out, err, ex = agent.collect(pid)
    assert (out, err, ex["code"]) == (b"hi\n", b"", 0) and time.monotonic() - t0 < 2.0


def test_orphans_are_reaped(agent):
    """The agent is a subreaper: an orphaned grandchild becomes its child and is reaped when it dies
    (waited for, not slept for: a zombie that stays until the deadline was never reaped)."""
    children = Path(f"/proc/{agent.proc.pid}/task/{agent.proc.pid}/children")
    pid = agent.exec(["/bin/sh", "-c", "(sleep 30 </dev/null >/dev/null 2>&1 &) ; exit 0"])
    assert agent.collect(pid)[2]["code"] == 0
    orphans = children.read_text().split()
    assert len(orphans) == 1, f"the orphaned sleep is not the agent's child: {orphans}"
    os.kill(int(orphans[0]), signal.SIGKILL)
    deadline = time.monotonic() + 10
    while children.read_text().split():
        assert time.monotonic() < deadline, f"left unreaped: {children.read_text().split()}"
        agent.ping()   # a round trip through the agent's event loop, where it reaps


# ---- QUIESCE / CONFIG / MOUNT / SHUTDOWN -------------------------------------------------

def test_quiesce_resume(agent):
    pid = agent.exec(["sleep", "100"])
    f = agent.request(T.QUIESCE, {"timeout_ms": 1000}, T.QUIESCE_COMPLETE)
    assert f.body["running_processes"] == 1
    agent.request(T.QUIESCE, {"timeout_ms": 1000}, T.QUIESCE_COMPLETE)  # idempotent
    f = agent.request(T.EXEC, {"flags": 0, "argv": ["true"], "env": [], "cwd": ""}, T.ERROR)
    assert f.body["code"] == E.ECANCELED
    agent.request(T.RESUME, {}, T.OK)
    agent.request(T.RESUME, {}, T.OK)
    assert agent.collect(agent.exec(["true"]))[2]["code"] == 0
    agent.request(T.SIGNAL, {"pid": pid, "signo": 9}, T.OK)
    agent.collect(pid)


@pytest.mark.skipif(os.geteuid() != 0, reason="MOUNT needs root (done in the agent's private mount namespace)")
def test_mount_unmount(agent, tmp_path):
    target = str(tmp_path / "a" / "b")
    agent.request(T.MOUNT, dict(flags=0, fstype="tmpfs", source="none", target=target, options="size=1m"), T.OK)
    out, _, _ = agent.collect(agent.exec(["sh", "-c", f"grep -c ' {target} tmpfs' /proc/self/mounts"]))
    assert out == b"1\n"
    assert not os.path.ismount(target)  # the host's namespace is untouched
    agent.request(T.UNMOUNT, dict(flags=spec.UnmountFlag.DETACH, target=target), T.OK)
    f = agent.request(T.UNMOUNT, dict(flags=0, target=target), T.ERROR)
    assert f.body["code"] == E.EINVAL
    f = agent.request(T.MOUNT, dict(flags=0, fstype="nosuchfs", source="none", target=target, options=""), T.ERROR)
    assert f.body["code"] == 19  # ENODEV


def test_config_portal(agent, tmp_path):
    dev = tmp_path / "pmem"
    dev.write_bytes(bytes(4096))  # a file stands in for the device in test mode; it must hold portal_size
    agent.request(T.CONFIG, dict(clock_realtime_ns=0, portal_size=4096, hostname="", env=[],
                                 portal_device=str(dev)), T.OK)
    f = agent.request(T.HELLO, dict(version_min=1, version_max=1, version_selected=0, agent_kind=0, capabilities=0,
                                    max_payload=spec.MAX_PAYLOAD, uptime_ms=0, name="t", os_release=""), T.HELLO)
    assert f.body["capabilities"] & spec.Capability.PORTAL


@pytest.mark.skipif(os.geteuid() != 0, reason="the test-mode sandbox needs root")
def test_mount_under_mnt_stays_private(agent):
    # the sandbox has its own tmpfs on /mnt: MOUNT's mkdir -p must not create directories on the host
    name = f"wslx-init-test-{os.getpid()}"
    target = f"/mnt/{name}/x"
    agent.request(T.MOUNT, dict(flags=0, fstype="tmpfs", source="none", target=target, options="size=1m"), T.OK)
    out, _, _ = agent.collect(agent.exec(["sh", "-c", f"grep -c ' {target} tmpfs' /proc/self/mounts"]))
    assert out == b"1\n"
    assert not os.path.exists(f"/mnt/{name}")


def test_shutdown_grace_over_cap_is_einval(agent):
    pid = agent.exec(["sleep", "100"])
    f = agent.request(T.SHUTDOWN, {"mode": spec.ShutdownMode.POWEROFF, "grace_ms": spec.SHUTDOWN_GRACE_MAX_MS + 1},
                      T.ERROR)
    assert f.body["code"] == E.EINVAL and f.body["request_type"] == T.SHUTDOWN
    agent.ping()  # still serving; the child still runs
    assert agent.proc.poll() is None
    agent.request(T.SIGNAL, {"pid": pid, "signo": 9}, T.OK)
    assert agent.collect(pid)[2]["code"] == 9


def test_shutdown_kills_children_and_exits(agent):
    pid = agent.exec(["sleep", "100"])
    rid = agent.send(T.SHUTDOWN, {"mode": spec.ShutdownMode.POWEROFF, "grace_ms": 500})
    seen_exit = False
    while True:
        f = agent.recv()
        if f.type == T.EXIT:
            assert f.body["pid"] == pid
            seen_exit = True
        elif f.type == T.OK:
            assert f.request_id == rid
            break
    assert seen_exit
    assert agent.proc.wait(timeout=5) == 0


def test_exits_when_channel_closes(binary):
    a = Agent(binary)
    a.expect(T.HELLO)
    a.sock.close()
    assert a.proc.wait(timeout=5) == 0


# ---- malformed input ---------------------------------------------------------------

def _ping(rid):
    return codec.encode_frame(T.PING, {"data": b"p"}, request_id=rid)


MALFORMED = {
    "garbage": os.urandom(3) + b"\x00" * 200 + b"garbage!",
    "bad_header_crc": frame(T.PING, b"\0\0\0\0", request_id=7, header_crc=0x12345678),
    "bad_payload_crc": frame(T.PING, b"\0\0\0\0", request_id=8, payload_crc=0x1),
    "oversized": frame(T.EXEC, b"", request_id=9, payload_len=spec.MAX_PAYLOAD + 1),
    "huge_len": frame(T.EXEC, b"", request_id=9, payload_len=0xFFFFFFFF),
    "unknown_type": frame(0x7777, b"", request_id=10),
    "agent_type": frame(T.OK, b"", request_id=11),
    "truncated_body": frame(T.PING, b"\x05\0\0\0ab", request_id=12),
    "trailing_bytes": frame(T.PING, b"\x01\0\0\0ab", request_id=13),
    "bad_utf8_argv": frame(T.EXEC, codec.raw_exec_body([b"/bin/\xff\xfe"]), request_id=14),
    "nul_in_argv": frame(T.EXEC, codec.raw_exec_body([b"/bin/t\x00rue"]), request_id=15),
    "bad_version": frame(T.PING, b"\0\0\0\0", request_id=16, version=9),
    "bad_version_long": frame(T.PING, b"\0" * 1000, request_id=17, version=9, payload_crc=0),
    # a CRC-valid header of an unknown version with an absurd length: not trusted, resync on magic
    "bad_version_huge_len": frame(T.PING, b"", request_id=20, version=9, payload_len=0xFFFFFFF0),
    "bad_flags_huge_len": frame(T.PING, b"", request_id=21, flags=0x80, payload_len=spec.MAX_PAYLOAD + 1),
    "bad_flags": frame(T.PING, b"\0\0\0\0", request_id=18, flags=0x80),
    "reserved_nonzero": frame(T.STDIO, struct.pack("<IBBBBI", 1, 0, 0, 1, 0, 0), request_id=0),
    "empty_fixed": frame(T.SIGNAL, b"\1\0", request_id=19),
}


@pytest.mark.parametrize("name", sorted(MALFORMED))
def test_malformed_then_ping(agent, name):
    bad = MALFORMED[name]
    want = reference_errors(bad + _ping(99))
    assert want and want[-1] == ("frame", 99), want
    agent.send_raw(bad + _ping(99))
    got = []
    while True:
        f = agent.recv()
        if f.type == T.PONG:
            assert f.request_id == 99
            got.append(("frame", 99))
            break
        assert f.type == T.ERROR, f
        assert f.body["message"]
        got.append((f.body["code"], f.request_id))
    assert got == want
    agent.ping()


@pytest.mark.parametrize("kw", [dict(payload_len=spec.MAX_PAYLOAD + 1), dict(version=9, payload_len=0xFFFFFFF0)],
                         ids=["oversized", "bad_version_huge_len"])
def test_lone_untrusted_header_leaves_nothing_behind(agent, kw):
    # the header arrives alone: none of its bytes may be kept and misparsed with the next frame
    agent.send_raw(frame(T.PING, b"", request_id=3, **kw))
    f = agent.expect(T.ERROR)
    assert f.request_id == 3 and f.body["code"] in (E.EMSGSIZE, E.EPROTONOSUPPORT)
    time.sleep(0.05)
    agent.send_raw(_ping(4))
    agent.expect(T.PONG, 4)  # no EBADMSG first


def test_bad_version_huge_length_then_ping(agent):
    agent.send_raw(frame(T.PING, b"", request_id=3, version=9, payload_len=0xFFFFFFF0))
    agent.send_raw(_ping(4))
    f = agent.expect(T.ERROR)
    assert f.body["code"] == E.EPROTONOSUPPORT and f.request_id == 3
    agent.expect(T.PONG, 4)


def test_request_id_zero_is_eproto(agent, tmp_path):
    marker = tmp_path / "ran"
    agent.send(T.EXEC, {"flags": 0, "argv": ["touch", str(marker)], "env": [], "cwd": ""}, request_id=0)
    f = agent.expect(T.ERROR)
    assert f.body["code"] == E.EPROTO and f.request_id == 0 and not f.is_reply and f.body["request_type"] == T.EXEC
    for msg_type, body in ((T.PING, {"data": b"x"}), (T.SIGNAL, {"pid": 1, "signo": 15}), (T.RESUME, {})):
        agent.send(msg_type, body, request_id=0)
        f = agent.expect(T.ERROR)
        assert f.body["code"] == E.EPROTO and f.request_id == 0 and f.body["request_type"] == msg_type
    agent.ping()  # no EXEC_STARTED / EXIT was queued
    time.sleep(0.2)
    assert not marker.exists()
    # HELLO with request_id 0 is not an error: it asks for a fresh announcement
    agent.send(T.HELLO, dict(version_min=1, version_max=1, version_selected=0, agent_kind=0, capabilities=0,
                             max_payload=spec.MAX_PAYLOAD, uptime_ms=0, name="t", os_release=""), request_id=0)
    f = agent.expect(T.HELLO)
    assert f.request_id == 0 and not f.is_reply


def test_reply_flag_from_host_is_eproto(agent):
    agent.send(T.PING, {"data": b"x"}, request_id=7, flags=spec.FrameFlag.REPLY)
    f = agent.expect(T.ERROR, 7)
    assert f.body["code"] == E.EPROTO and f.body["request_type"] == T.PING
    pid = agent.exec(["cat"], flags=spec.ExecFlag.STDIN_PIPE)
    agent.send(T.STDIO, {"pid": pid, "stream": 0, "flags": spec.StdioFlag.EOF, "data": b"x"}, request_id=0,
               flags=spec.FrameFlag.REPLY)
    f = agent.expect(T.ERROR)
    assert f.body["code"] == E.EPROTO and f.body["request_type"] == T.STDIO
    agent.send(T.STDIO, {"pid": pid, "stream": 0, "flags": spec.StdioFlag.EOF, "data": b""}, request_id=0)
    assert agent.collect(pid)[0] == b""  # the REPLY-flagged STDIO was not executed
    agent.ping()


def test_garbage_episode_reported_once(agent):
    agent.send_raw(b"\x01\x02" * 5000 + b"AGT" + b"X" * 100)
    agent.send_raw(_ping(5))
    f = agent.expect(T.ERROR)
    assert f.body["code"] == E.EBADMSG and f.request_id == 0 and f.body["request_type"] == 0
    agent.expect(T.PONG, 5)


def test_oversized_payload_is_not_read(agent):
    # the bytes after an oversized header are scanned for the next frame, not swallowed
    agent.send_raw(frame(T.PING, b"", request_id=3, payload_len=1 << 20) + _ping(4))
    f = agent.expect(T.ERROR)
    assert f.body["code"] == E.EMSGSIZE and f.body["request_type"] == T.PING
    agent.expect(T.PONG, 4)


def test_byte_at_a_time_and_many_frames(agent):
    data = b"".join(_ping(i) for i in range(1, 201))
    agent.send_raw(data[:500])
    for i in range(500, 1000):
        agent.send_raw(data[i:i + 1])
    agent.send_raw(data[1000:])
    for i in range(1, 201):
        agent.expect(T.PONG, i)


def test_unread_replies_do_not_block_agent(agent):
    # flood PINGs without reading; the agent must apply backpressure, then answer them all
    n = 3000
    payload = b"".join(codec.encode_frame(T.PING, {"data": b"x" * 1000}, request_id=i) for i in range(1, n + 1))
    sent = 0
    agent.sock.setblocking(False)
    got = 0
    while got < n:
        if sent < len(payload):
            try:
                sent += agent.sock.send(payload[sent:sent + 65536])
            except BlockingIOError:
                pass
        r, _, _ = select.select([agent.sock], [], [], 0.01 if sent < len(payload) else TIMEOUT)
        if r:
            agent.reader.feed(agent.sock.recv(1 << 20))
            while (f := agent.reader.next()) is not None:
                got += 1
                assert f.type == T.PONG and f.request_id == got
        elif sent >= len(payload):
            raise TimeoutError(f"{got} of {n} PONGs")
    agent.sock.setblocking(True)


# ---- modules (vsock transport choice) ----------------------------------------------------

def _is_hyperv() -> bool:
    # same facts the agent reads with CPUID, as the kernel exposes them
    try:
        return Path("/sys/hypervisor/type").read_text().strip() == "hyperv" or \
            Path("/sys/bus/vmbus").is_dir()
    except OSError:
        return Path("/sys/bus/vmbus").is_dir()


def test_modules_vsock_transport_choice(binary, tmp_path):
    names = ["vsock", "vmw_vsock_virtio_transport_common", "vmw_vsock_virtio_transport", "hv_vmbus", "hv_sock",
             "hyperv_keyboard", "virtio_pmem"]
    lst = tmp_path / "modules.load"
    lst.write_text("".join(f"/lib/modules/{n}.ko\n" for n in names) + "# comment\n\n")
    r = subprocess.run([str(binary), "--modules-dry-run", str(lst)], capture_output=True, text=True, timeout=10)
    assert r.returncode == 0, r.stderr
    loaded = [Path(p).stem for p in r.stdout.split()]
    log = [line for line in r.stderr.splitlines() if "modules:" in line]
    assert len(log) == 1, r.stderr  # one line says which set and why
    if "Hyper-V" in log[0]:
        assert loaded == ["vsock", "hv_vmbus", "hv_sock", "hyperv_keyboard", "virtio_pmem"]
    else:
        assert "CPUID" in log[0] or "x86" in log[0]
        assert loaded == ["vsock", "vmw_vsock_virtio_transport_common", "vmw_vsock_virtio_transport", "virtio_pmem"]
    assert ("Hyper-V" in log[0]) == _is_hyperv()


@pytest.mark.parametrize("assume", ["hyperv", "other"])
def test_modules_assume_hypervisor(binary, tmp_path, assume):
    # both branches of the vsock transport choice, whatever this host is
    names = ["vsock", "vmw_vsock_virtio_transport_common", "vmw_vsock_virtio_transport", "hv_vmbus", "hv_sock",
             "hyperv_keyboard", "virtio_pmem"]
    lst = tmp_path / "modules.load"
    lst.write_text("".join(f"/lib/modules/{n}.ko\n" for n in names))
    r = subprocess.run([str(binary), "--assume-hypervisor", assume, "--modules-dry-run", str(lst)],
                       capture_output=True, text=True, timeout=10)
    assert r.returncode == 0, r.stderr
    loaded = [Path(p).stem for p in r.stdout.split()]
    log = [line for line in r.stderr.splitlines() if "modules:" in line]
    assert len(log) == 1 and f"--assume-hypervisor {assume}" in log[0], r.stderr
    if assume == "hyperv":
        assert "Hyper-V" in log[0] and "skipping vmw_vsock_virtio_transport" in log[0]
        assert loaded == ["vsock", "hv_vmbus", "hv_sock", "hyperv_keyboard", "virtio_pmem"]
    else:
        assert "virtio vsock" in log[0] and "skipping hv_* and hyperv*" in log[0]
        assert loaded == ["vsock", "vmw_vsock_virtio_transport_common", "vmw_vsock_virtio_transport", "virtio_pmem"]


def test_modules_assume_hypervisor_bad_usage(binary, tmp_path):
    lst = tmp_path / "modules.load"
    lst.write_text("/lib/modules/vsock.ko\n")
    r = subprocess.run([str(binary), "--assume-hypervisor", "kvm", "--modules-dry-run", str(lst)],
                       capture_output=True, text=True, timeout=10)
    assert r.returncode == 2 and not r.stdout
