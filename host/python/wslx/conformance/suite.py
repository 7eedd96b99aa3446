"""AgentX conformance cases, written once for every agent.

Each case gets a Context (a connected AgentClient plus the target) and
asserts with `check`. Cases are selected by the capabilities the agent
advertises in HELLO, so Track B, which cannot MOUNT, runs the same suite. No case
needs a shell or any program of the guest's: processes are the conformance
program (Capability.PROGRAMS, spec/programs.py). The order matters only for the
last case (SHUTDOWN ends the agent).
"""
from __future__ import annotations

import dataclasses
import os
import time
from typing import Callable

from ..agentx import codec
from ..agentx.client import AgentClient, Hello
from ..agentx.errors import RemoteError, StdinClosed
from ..spec.agentx import (ARGV_MAX_COUNT, BY_TYPE, EXIT_EOF_GRACE_MS, HEADER_SIZE, MAGIC, MAX_PAYLOAD,
                           MAX_PAYLOAD_MIN, OUTPUT_BUFFER, PING_MAX_DATA, VERSION_MIN, OutputAckFlag, Stream,
                           SHUTDOWN_GRACE_MAX_MS, SIGNAL_MAX, STDIN_WINDOW, VERSION_MAX, Capability, ErrorCode, ExitHow, FrameFlag,
                           MsgType, Signal)
from ..spec.fields import size_range
from ..spec.programs import PROGRAM_NAME, USAGE_STATUS


class ConformanceFailure(AssertionError):
    pass


def check(cond, message: str):
    if not cond:
        raise ConformanceFailure(message)


@dataclasses.dataclass
class Context:
    client: AgentClient
    target: object
    timeout: float = 10.0

    @property
    def hello(self) -> Hello:
        """The agent's latest HELLO (a case that failed half-way through a reconnect leaves the
        client without a current one: the last announcement still says what the agent offers)."""
        c = self.client
        return c.hello or (c.hellos[-1] if c.hellos else None)

    def expect_remote_error(self, code: int, fn, *a, **kw) -> RemoteError:
        try:
            fn(*a, **kw)
        except RemoteError as e:
            check(e.code == code, f"expected ERROR {ErrorCode(code).name}, got {e}")
            return e
        raise ConformanceFailure(f"expected ERROR {ErrorCode(code).name}, the request succeeded")

    def expect_alive(self):
        data = os.urandom(16)
        check(self.client.ping(data, timeout=self.timeout) == data, "PING after the bad frame did not echo its data")


@dataclasses.dataclass
class Case:
    name: str
    func: Callable[[Context], None]
    doc: str
    requires: Capability = Capability(0)
    requires_absent: Capability = Capability(0)
    needs: str = ""      # a target feature, e.g. "reconnect"
    last: bool = False


CASES: list[Case] = []


def case(requires=Capability(0), *, absent=Capability(0), needs: str = "", last: bool = False):
    def deco(fn):
        CASES.append(Case(fn.__name__, fn, (fn.__doc__ or "").strip(), Capability(requires), Capability(absent),
                          needs, last))
        return fn
    return deco


# ---- session ------------------------------------------------------------------------------

@case()
def hello_announced(ctx: Context):
    """The agent announces HELLO with a sane version range, limits and a name."""
    h = ctx.hello
    check(h is not None, "no HELLO received")
    check(h.version_min <= 1 <= h.version_max, f"version range {h.version_min}..{h.version_max} lacks 1")
    check(h.version_selected == 0, "an unsolicited HELLO must have version_selected 0")
    check(h.max_payload >= 4096, f"max_payload {h.max_payload} below 4096")
    check(h.name, "HELLO name is empty")


@case()
def version_negotiation(ctx: Context):
    """HELLO request picks the highest common version; disjoint ranges get EPROTONOSUPPORT."""
    h = ctx.client.negotiate(1, VERSION_MAX + 3, timeout=ctx.timeout)
    check(h.version_selected == VERSION_MAX, f"selected {h.version_selected}, expected {VERSION_MAX}")
    ctx.expect_remote_error(ErrorCode.EPROTONOSUPPORT, ctx.client.negotiate, VERSION_MAX + 1, VERSION_MAX + 9,
                            timeout=ctx.timeout)


@case()
def hello_request_id_zero_reannounces(ctx: Context):
    """A host HELLO with request_id 0 makes the agent announce itself again."""
    c = ctx.client
    c.send_raw(codec.encode_frame(MsgType.HELLO, dict(version_min=1, version_max=VERSION_MAX, version_selected=0,
                                                       agent_kind=0, capabilities=0, max_payload=MAX_PAYLOAD,
                                                       uptime_ms=0, name="wslx-host", os_release="")))
    h = c.wait_new_hello(timeout=ctx.timeout)
    check(h.version_selected == 0 and h.name == ctx.hello.name, f"re-announcement differs: {h}")


@case(Capability.PING)
def ping_echoes_data(ctx: Context):
    """PONG echoes PING data of 0, 1, 4096 and the maximum size."""
    for n in (0, 1, 4096, PING_MAX_DATA):
        data = os.urandom(n)
        check(ctx.client.ping(data, timeout=ctx.timeout) == data, f"PONG data differs for {n} bytes")


@case(Capability.PING)
def replies_match_request_ids(ctx: Context):
    """Pipelined requests are answered with their own request_id and the REPLY flag."""
    ids = [0x7000_0001, 0x7000_0002, 0x7000_0003]
    c = ctx.client
    c.send_raw(b"".join(codec.encode_frame(MsgType.PING, dict(data=i.to_bytes(4, "little")), request_id=i)
                        for i in ids))
    for i in ids:
        f = c.wait_reply(i, timeout=ctx.timeout)
        check(f.type == MsgType.PONG, f"request {i:#x} answered with {f.name}")
        check(f.flags & FrameFlag.REPLY, "reply lacks the REPLY flag")
        check(f.body["data"] == i.to_bytes(4, "little"), f"PONG {i:#x} carries another request's data")


# ---- processes ----------------------------------------------------------------------------
# Every EXEC runs the conformance program (spec/programs.py), never a shell: each case behaves the
# same on every agent that advertises PROGRAMS.

RUNS = Capability.EXEC | Capability.PROGRAMS


def conform(*steps) -> list[str]:
    """argv of the conformance program running these steps (numbers become decimal words)."""
    return [PROGRAM_NAME] + [str(s) for s in steps]


@case(RUNS)
def exec_reports_exit_status(ctx: Context):
    """EXEC runs a program; EXIT reports its status after both streams' EOF."""
    for code in (0, 3, 255):
        r = ctx.client.run(conform("exit", code), timeout=ctx.timeout)
        check(r.status.how == ExitHow.EXITED and r.status.code == code, f"exit {code} reported as {r.status}")
    # The program exits at once; its background child keeps stdout open a little longer.
    p = ctx.client.exec(conform("bg", 300, "late\n", "out", "early\n"), timeout=ctx.timeout)
    p.wait(ctx.timeout)
    check(p.eof_before_exit, "EXIT arrived before the EOF of stdout and stderr")
    check(bytes(p.stdout) == b"early\nlate\n", f"output of the background child was lost: {bytes(p.stdout)!r}")


@case(RUNS)
def exec_separates_stdout_and_stderr(ctx: Context):
    """stdout and stderr arrive on their own streams, byte-exact."""
    r = ctx.client.run(conform("out", "a\nb", "err", "E1", "out", "c"), timeout=ctx.timeout)
    check(r.stdout == b"a\nbc", f"stdout {r.stdout!r}")
    check(r.stderr == b"E1", f"stderr {r.stderr!r}")


@case(RUNS)
def exec_merges_stderr_into_stdout(ctx: Context):
    """STDERR_TO_STDOUT puts stderr bytes on stdout, in the order written; stderr only gets its EOF."""
    p = ctx.client.exec(conform("out", "1", "err", "2", "out", "3"), merge_stderr=True, timeout=ctx.timeout)
    st = p.wait(ctx.timeout)
    check(st.how == ExitHow.EXITED and st.code == 0, f"ended {st}")
    check(bytes(p.stdout) == b"123" and not p.stderr, f"stdout {bytes(p.stdout)!r}, stderr {bytes(p.stderr)!r}")
    check(p.eof_before_exit, "EXIT arrived before the EOFs")


@case(RUNS)
def program_rejects_bad_usage(ctx: Context):
    """The conformance program checks its whole argv first: a bad step runs nothing and exits USAGE_STATUS."""
    for steps in (("out", "x", "no-such-step"), ("out", "x", "sleep", "1.5"), ("exit", 256), ("out",)):
        r = ctx.client.run(conform(*steps), timeout=ctx.timeout)
        check(r.status.how == ExitHow.EXITED and r.status.code == USAGE_STATUS,
              f"{' '.join(map(str, steps))}: ended {r.status}, expected exit {USAGE_STATUS}")
        check(r.stdout == b"" and r.stderr, f"{' '.join(map(str, steps))}: stdout {r.stdout!r}, stderr {r.stderr!r}")


@case(Capability.EXEC)
def exec_missing_program_gives_errno(ctx: Context):
    """A program that cannot be started gets ERROR ENOENT naming it, and no process."""
    e = ctx.expect_remote_error(ErrorCode.ENOENT, ctx.client.exec, ["/nonexistent/wslx-conformance"],
                                timeout=ctx.timeout)
    check("/nonexistent/wslx-conformance" in e.message, f"error message does not name the program: {e.message!r}")
    check(e.request_type == MsgType.EXEC, f"request_type {e.request_type} is not EXEC")
    ctx.expect_remote_error(ErrorCode.EINVAL, ctx.client.exec, [], timeout=ctx.timeout)


@case(RUNS)
def exec_env_and_cwd(ctx: Context):
    """EXEC env and cwd reach the process."""
    r = ctx.client.run(conform("getenv", "WSLX_A", "getenv", "WSLX_B", "getenv", "WSLX_UNSET", "cwd"),
                       env=["WSLX_A=1", "WSLX_B=two words"], cwd="/tmp", timeout=ctx.timeout)
    check(r.stdout == b"1\ntwo words\n\n/tmp\n", f"output {r.stdout!r}")


@case(RUNS)
def exec_concurrent_processes(ctx: Context):
    """Two processes run at once and their output is not mixed up."""
    c = ctx.client
    lines = lambda tag: conform(*[w for i in (1, 2, 3) for w in ("out", f"{tag}{i}\n", "sleep", 50)])
    a = c.exec(lines("A"), timeout=ctx.timeout)
    b = c.exec(lines("B"), timeout=ctx.timeout)
    check(a.pid != b.pid, "two processes got the same pid")
    a.wait(ctx.timeout), b.wait(ctx.timeout)
    check(bytes(a.stdout) == b"A1\nA2\nA3\n" and bytes(b.stdout) == b"B1\nB2\nB3\n", f"{a.stdout!r} {b.stdout!r}")


@case(RUNS)
def exec_large_stdout(ctx: Context):
    """1 MiB of stdout arrives complete, in frames within STDIO_MAX_DATA."""
    r = ctx.client.run(conform("zeros", 1 << 20), timeout=ctx.timeout * 3)
    check(r.status.code == 0, f"zeros ended {r.status}")
    check(len(r.stdout) == 1 << 20 and not r.stdout.strip(b"\0"), f"got {len(r.stdout)} bytes")


@case(RUNS | Capability.STDIN)
def stdin_is_relayed(ctx: Context):
    """STDIO frames feed a process's stdin; EOF closes it."""
    data = os.urandom(200_000)
    r = ctx.client.run(conform("cat"), input=data, timeout=ctx.timeout * 3)
    check(r.stdout == data, f"cat returned {len(r.stdout)} bytes of {len(data)}, or different bytes")
    r = ctx.client.run(conform("cat", "out", "end"), input=b"", timeout=ctx.timeout)
    check(r.stdout == b"end" and r.status.code == 0, f"empty stdin: cat gave {r.stdout!r}, {r.status}")


@case(RUNS | Capability.STDIN)
def stdin_flow_control_moves_megabytes(ctx: Context):
    """Stdin far beyond STDIN_WINDOW arrives complete when the host follows STDIN_ACK credit."""
    data = os.urandom(4 << 20)
    r = ctx.client.run(conform("sleep", 300, "cat"), input=data, timeout=ctx.timeout * 6)
    check(len(r.stdout) == len(data), f"cat returned {len(r.stdout)} of {len(data)} bytes")
    check(r.stdout == data, "stdin bytes arrived altered or out of order")
    check(not ctx.client.unsolicited_errors, f"agent refused stdin: {list(ctx.client.unsolicited_errors)[:1]}")


@case(RUNS | Capability.STDIN)
def stdin_to_a_closed_stdin_is_reported(ctx: Context):
    """Stdin for a process that closed its stdin comes back as STDIN_ACK CLOSED: the host gets a
    typed error instead of waiting for credit forever."""
    p = ctx.client.exec(conform("close-stdin", "out", "closed\n", "sleep", 5000), stdin=True, timeout=ctx.timeout)
    try:
        p.wait_for_output(b"closed", timeout=ctx.timeout)
        try:
            p.write(os.urandom(3 * STDIN_WINDOW), timeout=ctx.timeout)
            raise ConformanceFailure("3 windows of stdin to a closed stdin were accepted")
        except StdinClosed:
            pass
    finally:
        p.signal(Signal.SIGKILL, timeout=ctx.timeout)
        p.wait(ctx.timeout)
        ctx.client.unsolicited_errors.clear()  # the EPIPE errors that came with the CLOSED acks


@case(RUNS)
def exit_not_held_back_by_background_children(ctx: Context):
    """A background child holding stdout open delays EXIT by at most EXIT_EOF_GRACE_MS."""
    t0 = time.monotonic()
    p = ctx.client.exec(conform("bg", 10_000, "", "out", "hi\n"), timeout=ctx.timeout)
    st = p.wait(ctx.timeout)
    elapsed = time.monotonic() - t0
    check(st.how == ExitHow.EXITED and st.code == 0, f"program ended {st}")
    check(bytes(p.stdout) == b"hi\n", f"stdout {bytes(p.stdout)!r}")
    check(p.eof_before_exit, "EXIT arrived before the EOFs")
    check(elapsed < EXIT_EOF_GRACE_MS / 1000 + 3, f"EXIT took {elapsed:.1f} s")


@case(RUNS | Capability.SIGNAL)
def signal_is_delivered(ctx: Context):
    """SIGNAL reaches a running process; a pid the agent did not start gets ESRCH."""
    p = ctx.client.exec(conform("sleep", 100_000), timeout=ctx.timeout)
    ctx.client.signal(p.pid, Signal.SIGTERM, timeout=ctx.timeout)
    st = p.wait(ctx.timeout)
    check(st.how == ExitHow.SIGNALED and st.code == Signal.SIGTERM, f"sleep ended {st}, expected SIGTERM")
    ctx.expect_remote_error(ErrorCode.ESRCH, ctx.client.signal, p.pid, Signal.SIGTERM, timeout=ctx.timeout)
    ctx.expect_remote_error(ErrorCode.ESRCH, ctx.client.signal, 0x7FFF_FFF0, Signal.SIGTERM, timeout=ctx.timeout)
    q = ctx.client.exec(conform("sleep", 100_000), timeout=ctx.timeout)
    try:
        for bad in (0, SIGNAL_MAX + 1):
            ctx.expect_remote_error(ErrorCode.EINVAL, ctx.client.signal, q.pid, bad, timeout=ctx.timeout)
    finally:
        ctx.client.signal(q.pid, Signal.SIGKILL, timeout=ctx.timeout)
        q.wait(ctx.timeout)


# ---- configuration, mounts, quiesce ------------------------------------------------------

@case(Capability.CONFIG | RUNS)
def config_sets_default_env(ctx: Context):
    """CONFIG env becomes the default environment of later EXECs."""
    ctx.client.config(env=["WSLX_CONF=yes"], timeout=ctx.timeout)
    try:
        r = ctx.client.run(conform("getenv", "WSLX_CONF"), timeout=ctx.timeout)
        check(r.stdout == b"yes\n", f"default env not applied: {r.stdout!r}")
    finally:
        ctx.client.config(env=[], timeout=ctx.timeout)


@case(Capability.CONFIG | Capability.SYSTEM | RUNS)
def config_sets_hostname(ctx: Context):
    """CONFIG hostname changes the system's hostname."""
    ctx.client.config(hostname="wslx-conformance", timeout=ctx.timeout)
    r = ctx.client.run(conform("hostname"), timeout=ctx.timeout)
    check(r.stdout == b"wslx-conformance\n", f"hostname said {r.stdout!r}")


@case(Capability.MOUNT | RUNS)
def mount_and_unmount(ctx: Context):
    """MOUNT creates the target and mounts; UNMOUNT removes it; bad mounts give an errno."""
    target = "/mnt/wslx-conformance/tmp"
    ctx.client.mount("tmpfs", "wslxconf", target, "size=1m", timeout=ctx.timeout)
    r = ctx.client.run(conform("write-file", f"{target}/f", "data\n", "read-file", f"{target}/f", "mounted", target),
                       timeout=ctx.timeout)
    check(r.stdout == b"data\nyes\n", f"mounted tmpfs not usable: {r.stdout!r} {r.stderr!r}")
    ctx.client.unmount(target, timeout=ctx.timeout)
    r = ctx.client.run(conform("mounted", target), timeout=ctx.timeout)
    check(r.stdout == b"no\n", "still mounted after UNMOUNT")
    try:
        ctx.client.mount("no-such-fs", "x", target, timeout=ctx.timeout)
        raise ConformanceFailure("mount of an unknown filesystem type succeeded")
    except RemoteError as e:
        check(e.code > 0, f"bad errno {e.code}")


@case(absent=Capability.MOUNT)
def mount_refused_without_capability(ctx: Context):
    """An agent that does not offer MOUNT answers it with EOPNOTSUPP."""
    ctx.expect_remote_error(ErrorCode.EOPNOTSUPP, ctx.client.mount, "tmpfs", "x", "/mnt/x", timeout=ctx.timeout)


@case(Capability.QUIESCE | RUNS)
def quiesce_blocks_exec_until_resume(ctx: Context):
    """QUIESCE replies QUIESCE_COMPLETE, refuses EXEC with ECANCELED, is idempotent; RESUME undoes it."""
    q = ctx.client.quiesce(timeout=ctx.timeout * 2)
    check(q["elapsed_ns"] >= 0 and q["running_processes"] >= 0, f"odd QUIESCE_COMPLETE {q}")
    try:
        ctx.expect_remote_error(ErrorCode.ECANCELED, ctx.client.exec, conform(), timeout=ctx.timeout)
        ctx.client.quiesce(timeout=ctx.timeout * 2)
    finally:
        ctx.client.resume(timeout=ctx.timeout)
    check(ctx.client.run(conform(), timeout=ctx.timeout).returncode == 0, "EXEC fails after RESUME")
    ctx.client.resume(timeout=ctx.timeout)  # RESUME when not quiesced is a no-op


# ---- hostile input: every bad frame gets an ERROR and the agent keeps serving -------------

def _header(msg_type, payload, *, request_id=0, flags=0, version=VERSION_MAX, magic=MAGIC, length=None,
            payload_crc=None, header_crc=None):
    return codec.raw_frame(msg_type, payload, request_id=request_id, flags=flags, version=version, magic=magic,
                           payload_len=length, payload_crc=payload_crc, header_crc=header_crc)[:HEADER_SIZE]


def _bad_frame_case(name, doc, code, build, with_id=False):
    def fn(ctx: Context):
        rid = 0x6000_0000 + len(name)
        ctx.client.send_raw(build(rid))
        if with_id:
            f = ctx.client.wait_reply(rid, timeout=ctx.timeout)
            check(f.type == MsgType.ERROR, f"answered with {f.name}, expected ERROR")
            got = f.body["code"]
        else:
            got = ctx.client.wait_error(timeout=ctx.timeout).code
        check(got == code, f"ERROR code {got}, expected {ErrorCode(code).name} ({int(code)})")
        ctx.expect_alive()
        extra = list(ctx.client.unsolicited_errors)
        ctx.client.unsolicited_errors.clear()
        check(not extra, f"one bad frame drew more than one ERROR: also {extra[0]}" if extra else "")
    fn.__name__ = f"malformed_{name}"
    fn.__doc__ = doc
    case()(fn)


_ping = codec.encode_body(MsgType.PING, dict(data=b"x"))
_bad_frame_case("garbage", "Random bytes get EBADMSG; the agent resynchronises.", ErrorCode.EBADMSG,
                lambda rid: bytes(range(1, 200)))
_bad_frame_case("bad_magic", "A header with the wrong magic gets EBADMSG.", ErrorCode.EBADMSG,
                lambda rid: _header(MsgType.PING, _ping, request_id=rid, magic=0x12345678) + _ping)
_bad_frame_case("bad_header_crc", "A header whose CRC is wrong gets EBADMSG.", ErrorCode.EBADMSG,
                lambda rid: _header(MsgType.PING, _ping, request_id=rid, header_crc=0xDEADBEEF) + _ping)
_bad_frame_case("bad_payload_crc", "A payload whose CRC is wrong gets EBADMSG for that request.", ErrorCode.EBADMSG,
                lambda rid: _header(MsgType.PING, _ping, request_id=rid, payload_crc=0xDEADBEEF) + _ping, True)
_bad_frame_case("oversized", "payload_len above MAX_PAYLOAD gets EMSGSIZE and is never waited for.",
                ErrorCode.EMSGSIZE, lambda rid: _header(MsgType.PING, b"", request_id=rid, length=MAX_PAYLOAD + 1),
                True)
_bad_frame_case("unknown_type", "An unknown message type gets ENOSYS.", ErrorCode.ENOSYS,
                lambda rid: _header(0x7777, b"abc", request_id=rid) + b"abc", True)
_bad_frame_case("bad_version", "A frame of an unsupported version gets EPROTONOSUPPORT.", ErrorCode.EPROTONOSUPPORT,
                lambda rid: _header(MsgType.PING, _ping, request_id=rid, version=VERSION_MAX + 7) + _ping, True)
_bad_frame_case("unknown_flags", "Unknown header flag bits get EPROTO.", ErrorCode.EPROTO,
                lambda rid: _header(MsgType.PING, _ping, request_id=rid, flags=0x80) + _ping, True)
_bad_frame_case("truncated_body", "A payload shorter than its fixed part gets EPROTO.", ErrorCode.EPROTO,
                lambda rid: _header(MsgType.EXEC, b"\0\0", request_id=rid) + b"\0\0", True)
_bad_frame_case("trailing_bytes", "Bytes after the last field get EPROTO.", ErrorCode.EPROTO,
                lambda rid: _header(MsgType.PING, _ping + b"!", request_id=rid) + _ping + b"!", True)
_bad_frame_case("string_past_payload", "A string length beyond the payload gets EPROTO.", ErrorCode.EPROTO,
                lambda rid: (lambda p: _header(MsgType.EXEC, p, request_id=rid) + p)(
                    codec.raw_exec_body([b"x" * 5000])[:12]), True)
_bad_frame_case("invalid_utf8", "Invalid UTF-8 in argv gets EPROTO.", ErrorCode.EPROTO,
                lambda rid: (lambda p: _header(MsgType.EXEC, p, request_id=rid) + p)(codec.raw_exec_body([b"\xff\xfe"])),
                True)
_bad_frame_case("nul_in_string", "A NUL inside a string gets EPROTO.", ErrorCode.EPROTO,
                lambda rid: (lambda p: _header(MsgType.EXEC, p, request_id=rid) + p)(codec.raw_exec_body([PROGRAM_NAME.encode() + b"\0x"])),
                True)
_bad_frame_case("too_many_argv", "An argv count above the bound gets EPROTO.", ErrorCode.EPROTO,
                lambda rid: (lambda p: _header(MsgType.EXEC, p, request_id=rid) + p)(
                    codec.raw_exec_body([b"a"] * (ARGV_MAX_COUNT + 1))), True)
_bad_frame_case("wrong_direction", "A reply type (OK) sent to the agent gets EPROTO.", ErrorCode.EPROTO,
                lambda rid: _header(MsgType.OK, b"", request_id=rid), True)
_bad_frame_case("truncated_frame", "A frame cut short is detected when the bytes that follow break its CRC.",
                ErrorCode.EBADMSG,
                lambda rid: _header(MsgType.PING, bytes(100), request_id=rid)[:HEADER_SIZE] + bytes(10) + b"\xff" * 90,
                True)


_bad_frame_case("bad_version_huge_length", "A bad-version frame whose length is beyond MAX_PAYLOAD is not "
                "trusted: EPROTONOSUPPORT, then the agent resynchronises.", ErrorCode.EPROTONOSUPPORT,
                lambda rid: _header(MsgType.PING, b"", request_id=rid, version=VERSION_MAX + 1, length=0xFFFFFFF0),
                True)
_bad_frame_case("reply_flag_on_request", "A request carrying the REPLY flag gets EPROTO.", ErrorCode.EPROTO,
                lambda rid: _header(MsgType.PING, _ping, request_id=rid, flags=FrameFlag.REPLY) + _ping, True)


@case(RUNS)
def request_without_id_is_refused_and_not_run(ctx: Context):
    """A request with request_id 0 gets EPROTO and is not executed: no EXEC_STARTED, STDIO or EXIT follows."""
    seen = len(ctx.client.orphan_events)
    ctx.client.send_raw(codec.encode_frame(MsgType.EXEC, dict(flags=0, argv=conform("out", "ran\n"), env=[], cwd="")))
    e = ctx.client.wait_error(timeout=ctx.timeout)
    check(e.code == ErrorCode.EPROTO, f"ERROR {e}, expected EPROTO")
    # a process of our own that outlives what the refused one would have taken
    check(ctx.client.run(conform("sleep", 200), timeout=ctx.timeout).returncode == 0, "follow-up EXEC failed")
    ran = [f for f in ctx.client.orphan_events[seen:] if f.type in (MsgType.EXEC_STARTED, MsgType.STDIO, MsgType.EXIT)]
    check(not ran, f"the EXEC with request_id 0 was executed: {ran[0].name} {ran[0].body}" if ran else "")


@case(Capability.SHUTDOWN)
def shutdown_grace_above_the_bound_is_refused(ctx: Context):
    """SHUTDOWN with grace_ms above SHUTDOWN_GRACE_MAX_MS gets EINVAL and the agent stays up."""
    ctx.expect_remote_error(ErrorCode.EINVAL, ctx.client.shutdown, grace_ms=SHUTDOWN_GRACE_MAX_MS + 1,
                            timeout=ctx.timeout)
    ctx.expect_alive()


def _payload_size(f: codec.Frame) -> int:
    """The payload length of a received frame (the encoding is canonical: a strict decoder accepts one)."""
    return len(codec.encode_frame(f.type, f.body, request_id=f.request_id, flags=f.flags, version=f.version)) \
        - HEADER_SIZE


@case(RUNS | Capability.PING)
def host_max_payload_binds(ctx: Context):
    """The host's HELLO max_payload binds the agent. At MAX_PAYLOAD_MIN: 10,000 bytes of stdout come in
    STDIO frames no larger, every byte in order (contiguous offsets in version 2); a PING whose PONG would
    be one byte too big gets EMSGSIZE, one that just fits is echoed; no frame is larger. A HELLO below
    MAX_PAYLOAD_MIN (a request, or request_id 0) gets EINVAL and changes nothing."""
    c = ctx.client
    limit = MAX_PAYLOAD_MIN
    seen: list[codec.Frame] = []
    c.max_payload = limit
    try:
        h = c.negotiate(VERSION_MIN, VERSION_MAX, timeout=ctx.timeout)
        c.on_frame = seen.append
        for bad in (limit - 1, 100, 0):
            c.max_payload = bad
            ctx.expect_remote_error(ErrorCode.EINVAL, c.negotiate, VERSION_MIN, VERSION_MAX, timeout=ctx.timeout)
        hellos = len(c.hellos)
        c.ask_announce(timeout=ctx.timeout)   # request_id 0: refused alike, no new session
        e = c.wait_error(timeout=ctx.timeout)
        check(e.code == ErrorCode.EINVAL and e.request_type == MsgType.HELLO, f"HELLO request_id 0, max_payload 0: {e}")
        c.ping(b"", timeout=ctx.timeout)
        check(len(c.hellos) == hellos, "a refused HELLO with request_id 0 still started a new session")
        c.max_payload = limit
        check(c.version == h.version_selected, f"the client left version {h.version_selected} after a refused HELLO")
        text = "".join(f"{i:05d}" for i in range(2000)).encode()   # 10,000 bytes, each position distinct
        steps = [w for k in range(0, len(text), 2500) for w in ("out", text[k:k + 2500].decode())]
        p = c.exec(conform(*steps), timeout=ctx.timeout)
        st = p.wait(ctx.timeout * 3)
        check(st.code == 0 and bytes(p.stdout) == text, f"{st}: {len(p.stdout)} of {len(text)} bytes, or altered")
        check(c.version < 2 or (p.received[Stream.STDOUT] == len(text) and p.duplicates == 0),
              f"offsets {p.received}, {p.duplicates} duplicate bytes")
        pong_fixed = size_range(BY_TYPE[MsgType.PONG].body)[0]
        fits = os.urandom(limit - pong_fixed)
        check(c.ping(fits, timeout=ctx.timeout) == fits, "a PING whose PONG is exactly max_payload was not echoed")
        ctx.expect_remote_error(ErrorCode.EMSGSIZE, c.ping, fits + b"x", timeout=ctx.timeout)
        ctx.expect_alive()
        stdio = [f for f in seen if f.type == MsgType.STDIO and f.body["pid"] == p.pid]
        check(len(stdio) >= len(text) // limit + 1, f"10,000 bytes came in {len(stdio)} STDIO frames")
        big = [(f.name, _payload_size(f)) for f in seen if _payload_size(f) > limit]
        check(not big, f"frames above max_payload {limit}: {big[:3]}")
    finally:
        c.on_frame = None
        c.max_payload = MAX_PAYLOAD
        c.negotiate(VERSION_MIN, VERSION_MAX, timeout=ctx.timeout)
    data = os.urandom(4 * limit)
    check(c.ping(data, timeout=ctx.timeout) == data, "a new HELLO did not lift the limit")


@case(Capability.PING, needs="reconnect")
def max_payload_is_per_connection(ctx: Context):
    """A host's max_payload binds only its own connection: the next host gets MAX_PAYLOAD until its HELLO."""
    c = ctx.client
    big = os.urandom(4 * MAX_PAYLOAD_MIN)
    c.max_payload = MAX_PAYLOAD_MIN
    try:
        c.negotiate(VERSION_MIN, VERSION_MAX, timeout=ctx.timeout)
        ctx.expect_remote_error(ErrorCode.EMSGSIZE, c.ping, big, timeout=ctx.timeout)
    finally:
        c.max_payload = MAX_PAYLOAD
    ctx.client = c = ctx.target.reconnect(c)
    c.auto_negotiate = False   # no HELLO from this host yet
    try:
        c.wait_hello(timeout=ctx.timeout * 3)
        check(c.ping(big, timeout=ctx.timeout) == big, "the previous host's max_payload still binds a new connection")
    finally:
        c.auto_negotiate = True
    c.negotiate(VERSION_MIN, VERSION_MAX, timeout=ctx.timeout)


# ---- sessions (version 2): offsets, acknowledgements, replay -----------------------------------

V2 = "version2"  # needs: the agent offers version 2 (see _skip_reason)


@case(RUNS, needs=V2)
def stdio_offsets_are_contiguous(ctx: Context):
    """In version 2 every output frame carries its offset: 3 x OUTPUT_BUFFER of stdout arrive with no gap and
    no duplicate (the client raises OutputGap on a gap), the EOF at the final length, as the host acknowledges."""
    c = ctx.client
    check(c.version == 2, f"session is in version {c.version} after negotiation")
    n = 3 * OUTPUT_BUFFER + 123
    p = c.exec(conform("zeros", n, "err", "e"), timeout=ctx.timeout)
    st = p.wait(ctx.timeout * 3)
    check(st.code == 0 and len(p.stdout) == n and p.stderr == b"e", f"{st}, {len(p.stdout)} of {n} bytes")
    check(p.received == {Stream.STDOUT: n, Stream.STDERR: 1} and p.duplicates == 0,
          f"offsets {p.received}, {p.duplicates} duplicate bytes")


@case(RUNS, needs=V2)
def output_stops_at_output_buffer_until_acknowledged(ctx: Context):
    """A host that does not acknowledge gets at most OUTPUT_BUFFER bytes of a stream (an agent may stop
    earlier): the producer is then blocked (once its pipe is full too), not truncated; acknowledging lets
    the rest through, byte-exact."""
    c = ctx.client
    n = 32 * OUTPUT_BUFFER  # beyond any agent's pipe, so the producer must block
    c.send_acks = False
    try:
        p = c.exec(conform("zeros", n, "out", "end"), timeout=ctx.timeout)
        deadline = time.monotonic() + ctx.timeout
        while p.received[Stream.STDOUT] < OUTPUT_BUFFER and time.monotonic() < deadline:
            before = p.received[Stream.STDOUT]
            c.pump(0.5)
            if before and p.received[Stream.STDOUT] == before:
                break  # the agent stopped below the bound
        c.pump(0.5)  # more would arrive now if the agent did not hold to the bound
        got = p.received[Stream.STDOUT]
        check(0 < got <= OUTPUT_BUFFER, f"{got} bytes arrived without an acknowledgement; the bound is {OUTPUT_BUFFER}")
        check(p.status is None, f"the producer ended ({p.status}) while blocked")
    finally:
        c.send_acks = True
    c.ack_output(p, timeout=ctx.timeout)
    st = p.wait(ctx.timeout * 3)
    check(st.code == 0 and bytes(p.stdout) == bytes(n) + b"end", f"{st}, {len(p.stdout)} bytes, {p.duplicates} dup")


@case(RUNS, needs=V2)
def unacknowledged_output_is_replayed_in_a_new_session(ctx: Context):
    """A host HELLO with request_id 0 starts a new session: after the negotiation the agent sends again
    every byte, EOF and EXIT not acknowledged, at their offsets (the host drops the duplicates)."""
    c = ctx.client
    text = "x" * 4000
    c.send_acks = False
    try:
        p = c.exec(conform("out", text, "err", "E"), timeout=ctx.timeout)
        st = p.wait(ctx.timeout)
        seen = len(c.orphan_events)
        c.ask_announce(timeout=ctx.timeout)
        c.wait_new_hello(timeout=ctx.timeout)
        check(c.version == 2, f"new session in version {c.version}")
        c.ping(b"", timeout=ctx.timeout)  # the host's first request: held output flows
        deadline = time.monotonic() + ctx.timeout
        while not any(f.type == MsgType.EXIT for f in c.orphan_events[seen:]) and time.monotonic() < deadline:
            c.pump(0.2)
    finally:
        c.send_acks = True
    again = c.orphan_events[seen:]
    stdio = [f for f in again if f.type == MsgType.STDIO and f.body["pid"] == p.pid]
    exits = [f for f in again if f.type == MsgType.EXIT and f.body["pid"] == p.pid]
    check(st.code == 0 and bytes(p.stdout) == text.encode(), f"first delivery: {st}, {len(p.stdout)} bytes")
    out = b"".join(f.body["data"] for f in stdio if f.body["stream"] == Stream.STDOUT)
    check(out == text.encode() and all(f.body["offset"] >= 0 for f in stdio),
          f"replayed stdout {len(out)} bytes of {len(text)}")
    check(exits and exits[0].body["code"] == 0, "the unacknowledged EXIT was not sent again")
    eofs = {f.body["stream"]: f.body["offset"] for f in stdio if f.body["flags"] & 1}
    check(eofs == {Stream.STDOUT: len(text), Stream.STDERR: 1}, f"replayed EOFs at {eofs}")
    c.send_event(MsgType.OUTPUT_ACK, dict(pid=p.pid, flags=int(OutputAckFlag.EXIT), stdout_bytes=len(text),
                                          stderr_bytes=1))
    c.ask_announce(timeout=ctx.timeout)   # acknowledged: a further session replays nothing of it
    seen = len(c.orphan_events)
    c.wait_new_hello(timeout=ctx.timeout)
    c.ping(b"", timeout=ctx.timeout)
    c.pump(0.3)
    late = [f for f in c.orphan_events[seen:] if f.body.get("pid") == p.pid]
    check(not late, f"acknowledged output sent again: {late[0].name if late else ''}")


@case(RUNS, needs=V2)
def output_ack_errors(ctx: Context):
    """OUTPUT_ACK: unknown pid ESRCH; unknown flag bits, an offset beyond what was sent, EXIT before the
    EXIT: EINVAL (ERROR with request_id 0); in a version-1 frame the type does not exist: ENOSYS."""
    c = ctx.client
    p = c.exec(conform("out", "abc", "sleep", 100_000), timeout=ctx.timeout)
    try:
        p.wait_for_output(b"abc", timeout=ctx.timeout)
        for body, code in ((dict(pid=0x7FFF_FFF0, flags=0, stdout_bytes=0, stderr_bytes=0), ErrorCode.ESRCH),
                           (dict(pid=p.pid, flags=0x80, stdout_bytes=0, stderr_bytes=0), ErrorCode.EINVAL),
                           (dict(pid=p.pid, flags=0, stdout_bytes=4, stderr_bytes=0), ErrorCode.EINVAL),
                           (dict(pid=p.pid, flags=int(OutputAckFlag.EXIT), stdout_bytes=3, stderr_bytes=0),
                            ErrorCode.EINVAL)):
            c.send_event(MsgType.OUTPUT_ACK, body, timeout=ctx.timeout)
            e = c.wait_error(timeout=ctx.timeout)
            check(e.code == code and e.request_id == 0, f"OUTPUT_ACK {body}: {e} (request_id {e.request_id}), "
                  f"expected {ErrorCode(code).name}")
        raw = bytearray(codec.encode_frame(MsgType.OUTPUT_ACK, dict(pid=p.pid, flags=0, stdout_bytes=3,
                                                                   stderr_bytes=0)))
        raw[4] = 1
        codec.reseal(raw)
        c.send_raw(bytes(raw))
        e = c.wait_error(timeout=ctx.timeout)
        check(e.code == ErrorCode.ENOSYS, f"OUTPUT_ACK in a version-1 frame: {e}, expected ENOSYS")
        ctx.expect_alive()
    finally:
        p.signal(Signal.SIGKILL, timeout=ctx.timeout)
        p.wait(ctx.timeout)
        c.unsolicited_errors.clear()


@case(RUNS | Capability.STDIN, needs=V2)
def stdin_offset_must_follow_on(ctx: Context):
    """A version-2 stdin frame at the wrong offset is refused: ERROR EINVAL and STDIN_ACK DROPPED; the
    right offset is then still accepted (nothing was counted)."""
    c = ctx.client
    p = c.exec(conform("cat"), stdin=True, timeout=ctx.timeout)
    c.send_event(MsgType.STDIO, dict(pid=p.pid, stream=Stream.STDIN, flags=0, offset=5, data=b"late"))
    e = c.wait_error(timeout=ctx.timeout)
    check(e.code == ErrorCode.EINVAL, f"stdin at offset 5 of 0: {e}, expected EINVAL")
    deadline = time.monotonic() + ctx.timeout
    while not p.stdin_dropped and time.monotonic() < deadline:
        c.pump(0.1)
    check(p.stdin_dropped == 4, f"STDIN_ACK DROPPED for {p.stdin_dropped} bytes, expected 4")
    p.stdin_dropped = 0
    r_in = b"on time"
    c.send_event(MsgType.STDIO, dict(pid=p.pid, stream=Stream.STDIN, flags=0, offset=0, data=r_in))
    c.send_event(MsgType.STDIO, dict(pid=p.pid, stream=Stream.STDIN, flags=1, offset=len(r_in), data=b""))
    st = p.wait(ctx.timeout)
    check(st.code == 0 and bytes(p.stdout) == r_in, f"{st}, stdout {bytes(p.stdout)!r}")


@case(RUNS, needs=V2)
def version_1_session_has_no_offsets(ctx: Context):
    """A host that does not negotiate stays in version 1 (an old host): STDIO frames are version-1 frames
    without offsets and the output arrives all the same, with no acknowledgement."""
    c = ctx.client
    c.auto_negotiate = False
    try:
        c.ask_announce(timeout=ctx.timeout)
        c.wait_new_hello(timeout=ctx.timeout)
        check(c.version == 1, f"session in version {c.version} without negotiation")
        seen = len(c.protocol_errors)
        before = dict(c.frame_versions)
        frames = []
        r = c.run(conform("zeros", 2 * OUTPUT_BUFFER, "out", "!"), timeout=ctx.timeout * 3,
                  on_stdout=frames.append)
        check(r.status.code == 0 and sum(map(len, frames)) == 2 * OUTPUT_BUFFER + 1, f"{r.status}")
        check(len(c.protocol_errors) == seen, f"{list(c.protocol_errors)[seen:][:1]}")
        newer = {v: n - before.get(v, 0) for v, n in c.frame_versions.items() if v != 1 and n != before.get(v, 0)}
        check(not newer, f"the agent sent frames of version {sorted(newer)} in a version-1 session")
    finally:
        c.auto_negotiate = True
        c.ask_announce(timeout=ctx.timeout)
        c.wait_new_hello(timeout=ctx.timeout)
    check(c.version == 2, f"renegotiated version {c.version}")


@case(RUNS, needs="reconnect")
def output_while_disconnected_arrives_after_reconnect(ctx: Context):
    """Output produced while no host is connected is held (the producer blocks at the bound) and arrives on
    the next connection after its HELLO, in version 2 with offsets proving there is no gap (bug 4)."""
    c = ctx.client
    n = 3 * OUTPUT_BUFFER
    p = c.exec(conform("sleep", 300, "zeros", n, "out", "end"), timeout=ctx.timeout)
    ctx.target.drop_connection(c)
    time.sleep(1.5)  # the scenario: the host stays away while the program writes
    hello = c.reattach(ctx.target.new_connection(ctx.timeout * 3), timeout=ctx.timeout * 3)
    check(c.hellos and c.hellos[-1] is hello and hello.version_selected == 0, "no HELLO first on the new connection")
    c.ping(b"", timeout=ctx.timeout)  # the host's first request: held output flows
    st = p.wait(ctx.timeout * 3)
    check(st.how == ExitHow.EXITED and st.code == 0, f"program ended {st}")
    check(bytes(p.stdout) == bytes(n) + b"end", f"{len(p.stdout)} of {n + 3} bytes after the reconnect")
    check(c.version < 2 or p.received[Stream.STDOUT] == n + 3, f"offsets {p.received}")


@case(Capability.QUIESCE | RUNS, needs="reconnect")
def quiesce_holds_across_reconnects(ctx: Context):
    """QUIESCE is the agent's state, not the connection's: a new host still gets ECANCELED for EXEC
    until it sends RESUME."""
    c = ctx.client
    c.quiesce(timeout=ctx.timeout * 2)
    try:
        ctx.target.drop_connection(c)
        time.sleep(1.0)  # the scenario: the host is away for a while (quick reconnects: the storm test)
        c.reattach(ctx.target.new_connection(ctx.timeout * 3), timeout=ctx.timeout * 3)
        ctx.expect_remote_error(ErrorCode.ECANCELED, c.exec, conform(), timeout=ctx.timeout)
    finally:
        c.resume(timeout=ctx.timeout)
    check(c.run(conform(), timeout=ctx.timeout).returncode == 0, "EXEC fails after RESUME on the new connection")


@case(needs="reconnect")
def reconnect_after_host_disconnect(ctx: Context):
    """When the host side goes away and comes back, the agent reconnects and says HELLO again."""
    ctx.client = ctx.target.reconnect(ctx.client)
    h = ctx.client.wait_hello(timeout=ctx.timeout * 3)
    check(h.version_min <= 1 <= h.version_max, "HELLO after reconnect is malformed")
    ctx.expect_alive()


@case(Capability.SHUTDOWN, last=True)
def shutdown_ends_the_agent(ctx: Context):
    """SHUTDOWN is acknowledged with OK and the agent (or its VM) then ends."""
    ctx.client.shutdown(grace_ms=1000, timeout=ctx.timeout)
    check(ctx.target.wait_ended(ctx.timeout * 3), "the agent did not end after SHUTDOWN")


# ---- resynchronisation (issue 11, item 5): a bad header never swallows the frames after it ----

def _answered_pings(ctx: Context, rids: list[int]) -> None:
    for rid in rids:
        f = ctx.client.wait_reply(rid, timeout=ctx.timeout)
        check(f.type == MsgType.PONG, f"PING #{rid:#x} recovered after the bad header: answered with {f.name}")


@case(Capability.PING)
def lying_length_does_not_swallow_the_frames_after_it(ctx: Context):
    """A header promising 1,000 bytes, followed by 10 bytes and valid PINGs (sent until the
    promise is covered): EBADMSG for the lying frame, then every PING is answered, because the
    agent resumes scanning just after the bad header when the payload CRC fails."""
    liar = 0x6100_0000
    data = _header(MsgType.PING, b"", request_id=liar, length=1000, payload_crc=0) + b"0123456789"
    rids = []
    while len(data) < HEADER_SIZE + 1000 + HEADER_SIZE:
        rids.append(liar + 1 + len(rids))
        data += codec.encode_frame(MsgType.PING, dict(data=b"r"), request_id=rids[-1])
    ctx.client.unsolicited_errors.clear()
    ctx.client.send_raw(data, timeout=ctx.timeout)
    f = ctx.client.wait_reply(liar, timeout=ctx.timeout)
    check(f.type == MsgType.ERROR and f.body["code"] == ErrorCode.EBADMSG,
          f"the lying frame got {f.name} {f.body}, expected ERROR EBADMSG")
    _answered_pings(ctx, rids)
    check(not ctx.client.unsolicited_errors, f"more than one ERROR: {list(ctx.client.unsolicited_errors)[:2]}")


@case(Capability.PING)
def rejected_header_does_not_swallow_the_frames_after_it(ctx: Context):
    """An intact header of an unsupported version claiming 200 bytes, followed by filler and
    PINGs whose CRC is not the one it claimed: EPROTONOSUPPORT at once, and the PINGs inside
    the claimed payload are still answered (the filler is part of the same bad episode)."""
    rej = 0x6200_0000
    pings = b"".join(codec.encode_frame(MsgType.PING, dict(data=b"v"), request_id=rej + i) for i in (1, 2, 3))
    data = _header(MsgType.PING, b"", request_id=rej, version=VERSION_MAX + 1, length=200, payload_crc=0x1234)
    ctx.client.unsolicited_errors.clear()
    ctx.client.send_raw(data + bytes(200 - len(pings)) + pings, timeout=ctx.timeout)
    f = ctx.client.wait_reply(rej, timeout=ctx.timeout)
    check(f.type == MsgType.ERROR and f.body["code"] == ErrorCode.EPROTONOSUPPORT,
          f"the rejected frame got {f.name} {f.body}, expected ERROR EPROTONOSUPPORT")
    _answered_pings(ctx, [rej + 1, rej + 2, rej + 3])
    check(not ctx.client.unsolicited_errors, f"more than one ERROR: {list(ctx.client.unsolicited_errors)[:2]}")


@case(Capability.PING)
def magic_dense_garbage_is_one_error(ctx: Context):
    """64 KiB of repeated "AGTX" (a candidate header every 4 bytes, none valid) draws one
    EBADMSG, and the PING after it is answered. (Its speed is `wslx bench resync`.)"""
    rid = 0x6300_0000
    ctx.expect_alive()  # a good frame first: the garbage starts a new episode
    ctx.client.unsolicited_errors.clear()
    ctx.client.send_raw(codec.MAGIC_BYTES * (16 << 10) + codec.encode_frame(MsgType.PING, dict(data=b"m"), request_id=rid),
                        timeout=ctx.timeout)
    _answered_pings(ctx, [rid])
    errors = list(ctx.client.unsolicited_errors)
    ctx.client.unsolicited_errors.clear()
    check(len(errors) == 1 and errors[0].code == ErrorCode.EBADMSG,
          f"expected one EBADMSG for the whole garbage run, got {errors[:3]}")


# ---- strict validation (issue 11, item 7): one errno per fault, the same from every agent ----

def _exec_body(argv, flags=0):
    return dict(flags=flags, argv=list(argv), env=[], cwd="")


@case(Capability.EXEC)
def exec_unknown_flag_bits_are_einval(ctx: Context):
    """EXEC with flag bits the spec does not define gets EINVAL and runs nothing (STDIO, MOUNT
    and UNMOUNT refuse theirs the same way)."""
    e = ctx.expect_remote_error(ErrorCode.EINVAL, ctx.client.request, MsgType.EXEC, _exec_body(conform("exit", 0), 0x80),
                                timeout=ctx.timeout)
    check(e.request_type == MsgType.EXEC, f"ERROR names request type {e.request_type}, not EXEC")
    ctx.expect_alive()


@case(Capability.EXEC)
def exec_empty_argv0_is_enoent(ctx: Context):
    """EXEC with argv[0] = "" gets ENOENT (what execve("") says) from every agent."""
    ctx.expect_remote_error(ErrorCode.ENOENT, ctx.client.request, MsgType.EXEC, _exec_body(["", "x"]),
                            timeout=ctx.timeout)
    ctx.expect_alive()


@case(Capability.EXEC)
def stdio_to_a_non_stdin_stream_is_einval(ctx: Context):
    """STDIO from the host on stream 1 (STDOUT) gets EINVAL (request id 0: STDIO is an event),
    whether or not the pid exists: the fields are checked before the pid."""
    ctx.client.unsolicited_errors.clear()
    for pid in (0x7FFF_FFF0, 1):
        ctx.client.send_event(MsgType.STDIO, dict(pid=pid, stream=1, flags=0, offset=0, data=b"x"))
        e = ctx.client.wait_error(timeout=ctx.timeout)
        check(e.code == ErrorCode.EINVAL and e.request_id == 0,
              f"STDIO on stream 1 to pid {pid}: {e} (request id {e.request_id}), expected EINVAL with request id 0")
    ctx.expect_alive()


@case(Capability.SHUTDOWN)
def shutdown_unknown_mode_is_einval(ctx: Context):
    """SHUTDOWN with a mode the spec does not define (7) gets EINVAL and the agent stays up."""
    ctx.expect_remote_error(ErrorCode.EINVAL, ctx.client.request, MsgType.SHUTDOWN, dict(mode=7, grace_ms=0),
                            timeout=ctx.timeout)
    ctx.expect_alive()


@case(Capability.CONFIG)
def config_portal_fields_are_validated(ctx: Context):
    """CONFIG's portal_size and portal_device go together, portal_size is page-aligned and below
    2^47, portal_device is absolute: anything else gets EINVAL from every agent, before it asks
    whether it can map a Portal at all, and nothing of the CONFIG is applied."""
    for size, device in ((1 << 63, "/dev/pmem0"), (4096, ""), (0, "/dev/pmem0"), (4097, "/dev/pmem0"),
                         (2 << 20, "pmem0")):
        ctx.expect_remote_error(ErrorCode.EINVAL, ctx.client.config, portal_size=size, portal_device=device,
                                env=["WSLX_CONFORMANCE_REFUSED=1"], timeout=ctx.timeout)
    ctx.expect_alive()


@case(Capability.CONFIG | RUNS)
def config_refused_portal_applies_nothing(ctx: Context):
    """A CONFIG naming a device that does not exist is refused (ENOENT where the agent can map a
    Portal, EOPNOTSUPP where it cannot, EINVAL where it is too small) and its env is not applied."""
    ctx.client.config(env=[], timeout=ctx.timeout)
    try:
        ctx.client.config(portal_size=1 << 40, portal_device="/nonexistent/wslx-portal",
                          env=["WSLX_CONFORMANCE_REFUSED=1"], timeout=ctx.timeout)
    except RemoteError as e:
        check(e.code in (ErrorCode.ENOENT, ErrorCode.EOPNOTSUPP, ErrorCode.EINVAL), f"unexpected {e}")
    else:
        raise ConformanceFailure("CONFIG with a 1 TiB Portal on /nonexistent/wslx-portal was accepted")
    r = ctx.client.run(conform("getenv", "WSLX_CONFORMANCE_REFUSED"), timeout=ctx.timeout)
    check(r.stdout == b"\n", f"the refused CONFIG's env was applied (WSLX_CONFORMANCE_REFUSED={r.stdout!r})")


@case(Capability.EXEC)
def stdio_unknown_flag_bits_are_einval(ctx: Context):
    """STDIO from the host with flag bits other than EOF gets EINVAL (request id 0), before the
    pid is looked up."""
    ctx.client.unsolicited_errors.clear()
    ctx.client.send_event(MsgType.STDIO, dict(pid=0x7FFF_FFF0, stream=0, flags=0x80, offset=0, data=b"x"))
    e = ctx.client.wait_error(timeout=ctx.timeout)
    check(e.code == ErrorCode.EINVAL and e.request_id == 0, f"STDIO with flags 0x80: {e}, expected EINVAL")
    ctx.expect_alive()


@case(Capability.SIGNAL)
def signal_invalid_signo_is_einval_before_the_pid(ctx: Context):
    """SIGNAL with signo 0 or above SIGNAL_MAX gets EINVAL, for a pid that does not exist too:
    the fields are checked before the pid (ESRCH only for a valid signal)."""
    for signo in (0, SIGNAL_MAX + 1):
        ctx.expect_remote_error(ErrorCode.EINVAL, ctx.client.request, MsgType.SIGNAL,
                                dict(pid=0x7FFF_FF00, signo=signo), timeout=ctx.timeout)
    ctx.expect_remote_error(ErrorCode.ESRCH, ctx.client.request, MsgType.SIGNAL, dict(pid=0x7FFF_FF00, signo=Signal.SIGTERM),
                            timeout=ctx.timeout)
    ctx.expect_alive()
