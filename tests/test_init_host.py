"""Host-side tests of guest/init (images/wslx-init) without a VM.

The static musl binary runs on the host in test mode, `wslx-init --agent-fd N`:
no mounts, modules or power off; it serves AgentX on one end of a socketpair
and exits when that closes or on SHUTDOWN. As root it unshares its mount and
UTS namespaces first, so MOUNT and CONFIG hostname never touch the host.

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
import zlib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "host" / "python"))

from wslx.agentx import codec  # noqa: E402
from wslx.agentx.errors import ProtocolError  # noqa: E402
from wslx.spec import agentx as spec  # noqa: E402

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
    return BINARY


class Agent:
    """wslx-init in test mode on a socketpair, with a frame reader that times out."""

    def __init__(self, binary: Path, env_extra: dict | None = None):
        self.sock, theirs = socket.socketpair()
        env = dict(os.environ, **(env_extra or {}))
        self.proc = subprocess.Popen([str(binary), "--agent-fd", str(theirs.fileno())], pass_fds=[theirs.fileno()],
                                     stdin=subprocess.DEVNULL, env=env)
        theirs.close()
        self.reader = codec.FrameReader()
        self.rid = 0
        self.pending: list[codec.Frame] = []  # events that arrived while waiting for a reply

    def send_raw(self, data: bytes) -> None:
        self.sock.sendall(data)

    def send(self, msg_type, body=None, *, request_id=None, flags=0) -> int:
        if request_id is None:
            self.rid += 1
            request_id = self.rid
        self.sock.sendall(codec.encode_frame(msg_type, body or {}, request_id=request_id, flags=flags))
        return request_id

    def recv(self, timeout: float = TIMEOUT) -> codec.Frame:
        if self.pending:
            return self.pending.pop(0)
        return self._recv_wire(timeout)

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
            if f.request_id == 0 and f.type in (T.STDIO, T.EXIT, T.ERROR):
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
    plen = len(payload) if payload_len is None else payload_len
    pcrc = zlib.crc32(payload) if payload_crc is None else payload_crc
    head = struct.pack("<IBBHIII", spec.MAGIC, version, flags, msg_type, request_id, plen, pcrc)
    hcrc = zlib.crc32(head) if header_crc is None else header_crc
    return head + struct.pack("<I", hcrc) + payload


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


def test_stdin_bulk(agent):
    # The stdin queue is bounded (overflow -> ERROR EAGAIN), so the host keeps a window in flight.
    data = os.urandom(1 << 20)
    pid = agent.exec(["cat"], flags=spec.ExecFlag.STDIN_PIPE)
    step, window = spec.STDIO_MAX_DATA, 128 * 1024
    got = bytearray()
    sent = 0
    while sent < len(data) or len(got) < len(data):
        if sent < len(data) and sent - len(got) < window:
            agent.send(T.STDIO, {"pid": pid, "stream": 0, "flags": 0, "data": data[sent:sent + step]}, request_id=0)
            sent += len(data[sent:sent + step])
            continue
        f = agent.recv()
        assert f.type == T.STDIO and f.body["stream"] == 1 and not f.body["flags"], f
        got += f.body["data"]
    agent.send(T.STDIO, {"pid": pid, "stream": 0, "flags": spec.StdioFlag.EOF, "data": b""}, request_id=0)
    out, _, ex = agent.collect(pid)
    assert out == b"" and bytes(got) == data and ex["code"] == 0


def test_stdin_queue_overflow_is_eagain(agent):
    pid = agent.exec(["sleep", "100"], flags=spec.ExecFlag.STDIN_PIPE)  # never reads its stdin
    chunk = b"x" * spec.STDIO_MAX_DATA
    for _ in range(20):  # 1.2 MB > pipe + queue
        agent.send(T.STDIO, {"pid": pid, "stream": 0, "flags": 0, "data": chunk}, request_id=0)
    f = agent.expect(T.ERROR)
    assert f.body["code"] == E.EAGAIN and f.request_id == 0 and f.body["request_type"] == T.STDIO
    agent.request(T.SIGNAL, {"pid": pid, "signo": 9}, T.OK)
    while True:
        f = agent.recv()
        if f.type == T.EXIT:
            break
        assert f.type in (T.ERROR, T.STDIO)
    agent.ping()


def test_stdio_errors(agent):
    agent.send(T.STDIO, {"pid": 999999, "stream": 0, "flags": 0, "data": b"x"}, request_id=0)
    f = agent.expect(T.ERROR)
    assert f.body["code"] == E.ESRCH and f.request_id == 0
    pid = agent.exec(["sleep", "100"], flags=spec.ExecFlag.STDIN_PIPE)
    agent.send(T.STDIO, {"pid": pid, "stream": 1, "flags": 0, "data": b"x"}, request_id=0)
    f = agent.expect(T.ERROR)
    assert f.body["code"] == E.EINVAL and f.request_id == 0
    agent.request(T.SIGNAL, {"pid": pid, "signo": 9}, T.OK)
    agent.collect(pid)


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
    f = agent.request(T.SIGNAL, {"pid": pid, "signo": 1000}, T.ERROR)
    assert f.body["code"] == E.EINVAL
    agent.request(T.SIGNAL, {"pid": pid, "signo": 9}, T.OK)
    assert agent.collect(pid)[2]["code"] == 9


def test_signal_reaches_process_group(agent):
    pid = agent.exec(["/bin/sh", "-c", "sleep 100; echo not-reached"])
    time.sleep(0.2)
    agent.request(T.SIGNAL, {"pid": pid, "signo": 15}, T.OK)
    out, _, ex = agent.collect(pid)
    assert out == b"" and ex["how"] == spec.ExitHow.SIGNALED


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


def test_orphans_are_reaped(agent):
    pid = agent.exec(["/bin/sh", "-c", "(sleep 0.2 </dev/null >/dev/null 2>&1 &) ; exit 0"])
    assert agent.collect(pid)[2]["code"] == 0
    time.sleep(0.6)
    agent.ping()
    children = Path(f"/proc/{agent.proc.pid}/task/{agent.proc.pid}/children").read_text().split()
    zombies = [c for c in children if Path(f"/proc/{c}/stat").read_text().split(") ")[1].startswith("Z")]
    assert zombies == []


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
    dev.write_bytes(b"")
    agent.request(T.CONFIG, dict(clock_realtime_ns=0, portal_size=4096, hostname="", env=[],
                                 portal_device=str(dev)), T.OK)
    f = agent.request(T.HELLO, dict(version_min=1, version_max=1, version_selected=0, agent_kind=0, capabilities=0,
                                    max_payload=spec.MAX_PAYLOAD, uptime_ms=0, name="t", os_release=""), T.HELLO)
    assert f.body["capabilities"] & spec.Capability.PORTAL


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


def _exec_payload(argv_items: list[bytes]) -> bytes:
    p = struct.pack("<IH", 0, len(argv_items))
    for a in argv_items:
        p += struct.pack("<H", len(a)) + a
    return p + struct.pack("<H", 0) + struct.pack("<H", 0)


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
    "bad_utf8_argv": frame(T.EXEC, _exec_payload([b"/bin/\xff\xfe"]), request_id=14),
    "nul_in_argv": frame(T.EXEC, _exec_payload([b"/bin/t\x00rue"]), request_id=15),
    "bad_version": frame(T.PING, b"\0\0\0\0", request_id=16, version=9),
    "bad_version_long": frame(T.PING, b"\0" * 1000, request_id=17, version=9, payload_crc=0),
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
