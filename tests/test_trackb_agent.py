"""The Track B agent (guest/trackb-kernel/agent) on the host harness
(build/trackb/trackb-agent-host, ASan+UBSan): the conformance suite, hostile
frames and the built-in programs (no shell: processes are built-ins, the
conformance program wslx-conform among them). The same sources are linked into
the kernel; tests/test_trackb_guest.py runs them there."""
from __future__ import annotations

import os
import random
import re
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import agentx_fuzz
from wslx.agentx import codec
from wslx.agentx.errors import RemoteError
from wslx.conformance import runner
from wslx.conformance.targets import TARGETS
from wslx.spec.agentx import Capability, ErrorCode, ExitHow, MsgType, Signal, Stream
from wslx.spec.programs import PROGRAM_NAME

AGENT_DIR = Path(__file__).resolve().parents[1] / "guest" / "trackb-kernel" / "agent"
AGENT_SOURCES = ["agent.c", "agent_util.c", "proc.c", "builtins.c", "../lib/fmt.c", "../../agentx/agentx_rx.c",
                 "../../agentx/agentx_program.c"]


@pytest.fixture(scope="session")
def harness(repo_root) -> Path:
    r = subprocess.run([sys.executable, "-m", "SCons", "-Q", "trackb-agent-host"], cwd=repo_root,
                       capture_output=True, text=True)
    assert r.returncode == 0, f"scons trackb-agent-host failed:\n{r.stdout}\n{r.stderr}"
    return repo_root / "build" / "trackb" / "trackb-agent-host"


@pytest.fixture
def agent(harness):
    with TARGETS["trackb-host"](timeout=10, binary=harness) as t:
        t.client.wait_hello()
        yield t


def run(t, argv, **kw):
    return t.client.run(argv, timeout=10, **kw)


# ---- the agent is freestanding: nothing but agent_env.h and the compiler's helpers ----

def test_agent_objects_need_only_agent_env(repo_root, generated, tmp_path):
    """Compiled -ffreestanding and linked together, the agent leaves undefined only the
    agent_env.h functions (and the memcpy/memset the compiler may emit): no libc."""
    objs = []
    for src in AGENT_SOURCES:
        o = tmp_path / (Path(src).name + ".o")
        subprocess.run(["gcc", "-std=c11", "-O2", "-ffreestanding", "-fno-builtin", "-nostdlib", "-Wall", "-Wextra",
                        "-Werror", "-mno-red-zone", "-fno-pic", "-I", str(generated), "-I", str(AGENT_DIR),
                        "-c", str(AGENT_DIR / src), "-o", str(o)], check=True)
        objs.append(str(o))
    linked = tmp_path / "agent.o"
    subprocess.run(["ld", "-r", "-o", str(linked), *objs], check=True)
    undefined = set(subprocess.run(["nm", "-u", str(linked)], capture_output=True, text=True, check=True)
                    .stdout.split()) - {"U"}
    env_api = set(re.findall(r"\b(env_\w+)\s*\(", (AGENT_DIR / "agent_env.h").read_text()))
    assert undefined, "nm found no undefined symbols at all: the check itself is broken"
    assert undefined <= env_api | {"memcpy", "memset", "memmove"}, f"agent needs {undefined - env_api}"
    assert "agent_main" in subprocess.run(["nm", "--defined-only", str(linked)], capture_output=True, text=True).stdout


# ---- conformance ----

def test_conformance_suite_passes(harness):
    """The whole suite against the harness; only what HELLO does not offer (STDIN, MOUNT) and
    what the harness cannot do (reconnect) is skipped."""
    with TARGETS["trackb-host"](timeout=10, binary=harness) as t:
        report = runner.run_suite(t, timeout=10, log=lambda s: None)
    bad = [r for r in report.results if r.status not in ("pass", "skip")]
    assert report.ok, "\n".join(f"{r.name}: {r.status}: {r.message}" for r in bad)
    skipped = {r.name: r.message for r in report.results if r.status == "skip"}
    for name, why in skipped.items():
        assert ("STDIN" in why or "MOUNT" in why or "cannot reconnect" in why), f"{name} skipped: {why}"
    passed = {r.name for r in report.results if r.status == "pass"}
    assert {"exec_reports_exit_status", "signal_is_delivered", "quiesce_blocks_exec_until_resume",
            "mount_refused_without_capability", "shutdown_ends_the_agent"} <= passed


def test_hello_describes_the_trackb_agent(agent):
    h = agent.client.hello
    assert h.kind_name.lower() == "trackb"
    assert h.has(Capability.EXEC) and h.has(Capability.SIGNAL) and h.has(Capability.QUIESCE)
    assert not h.has(Capability.MOUNT) and not h.has(Capability.STDIN)
    assert h.has(Capability.PORTAL), "the harness has a pmem file: PORTAL must be offered"


def test_no_portal_capability_without_pmem(harness):
    with TARGETS["trackb-host"](timeout=10, binary=harness, pmem_size=0) as t:
        h = t.client.wait_hello()
        assert not h.has(Capability.PORTAL)
        q = t.client.quiesce(timeout=10)
        assert q["flushed_regions"] == 0


# ---- hostile input ----

SEEDS = agentx_fuzz.base_seeds(pid=100) + [
    # the harness runs built-ins only, so EXEC, SIGNAL and CONFIG are safe to mutate here
    (MsgType.EXEC, dict(flags=0, argv=[PROGRAM_NAME, "out", "1\n", "bg", "5", "x", "getenv", "B", "exit", "3"],
                        env=[], cwd="/tmp")),
    (MsgType.EXEC, dict(flags=2, argv=["echo", "hi"], env=["A=1"], cwd="")),
    (MsgType.SIGNAL, dict(pid=100, signo=Signal.SIGTERM)),
    (MsgType.CONFIG, dict(clock_realtime_ns=0, portal_size=0, hostname="fz", env=["B=2"], portal_device="")),
]


def mutated_frames(rng: random.Random, count: int):
    """The shared generator (helpers.agentx_fuzz) with this agent's seeds; only SHUTDOWN is held back."""
    return agentx_fuzz.mutated_frames(rng, count, SEEDS, skip={MsgType.SHUTDOWN})


@pytest.mark.slow
def test_agent_survives_mutated_frames(agent):
    rng = random.Random(20261126)
    c = agent.client
    agentx_fuzz.send_and_ping(c, list(mutated_frames(rng, 3000)), context=agent.log_tail)
    assert agent.proc.poll() is None, f"the agent died:\n{agent.log_tail()}"
    agent.client.resume(timeout=5)   # a mutated QUIESCE may have been valid
    r = run(agent, ["echo", "still", "here"])
    assert r.stdout == b"still here\n"


def test_each_bad_frame_draws_one_error_then_ping_works(agent):
    c = agent.client
    good = codec.encode_frame(MsgType.PING, dict(data=b"x"), request_id=5)
    bad_crc = bytearray(good)
    bad_crc[24] ^= 0xFF
    c.send_raw(bytes(bad_crc))
    assert c.wait_reply(5, timeout=5).type == MsgType.ERROR
    assert c.ping(b"after", timeout=5) == b"after"
    c.send_raw(b"\x00" * 100 + good)   # garbage, then a good frame: one EBADMSG, one PONG
    assert c.wait_error(timeout=5).code == ErrorCode.EBADMSG
    assert c.wait_reply(5, timeout=5).type == MsgType.PONG
    assert c.ping(b"z", timeout=5) == b"z"
    assert not c.unsolicited_errors


def test_unsupported_requests_get_eopnotsupp(agent):
    with pytest.raises(RemoteError) as e:
        agent.client.mount("tmpfs", "x", "/mnt", timeout=5)
    assert e.value.code == ErrorCode.EOPNOTSUPP
    with pytest.raises(RemoteError) as e:
        agent.client.unmount("/mnt", timeout=5)
    assert e.value.code == ErrorCode.EOPNOTSUPP


def test_stdin_frames_are_refused_without_a_pipe(agent):
    p = agent.client.exec(["sleep", "5"], timeout=5)
    agent.client.send_event(MsgType.STDIO, dict(pid=p.pid, stream=Stream.STDIN, flags=0, data=b"abc"))
    assert agent.client.wait_error(timeout=5).code == ErrorCode.EPIPE
    agent.client.send_event(MsgType.STDIO, dict(pid=0x7777, stream=Stream.STDIN, flags=0, data=b"abc"))
    assert agent.client.wait_error(timeout=5).code == ErrorCode.ESRCH
    p.signal(Signal.SIGKILL, timeout=5)
    assert p.wait(5).how == ExitHow.SIGNALED


# ---- built-ins ----

def test_echo_and_exit_status(agent):
    r = run(agent, ["echo", "hello", "world"])
    assert (r.stdout, r.stderr, r.returncode) == (b"hello world\n", b"", 0)
    assert run(agent, ["/bin/echo", "-n", "x"]).stdout == b"x"
    assert run(agent, [PROGRAM_NAME, "exit", "1"]).returncode == 1


def test_unknown_program_is_enoent(agent):
    for argv in (["nosuchprogram"], ["/usr/lib/echo"], ["./echo"], ["sh", "-c", "echo"], ["cat"], ["true"],
                 ["/bin/" + PROGRAM_NAME]):
        with pytest.raises(RemoteError) as e:
            agent.client.exec(argv, timeout=5)
        assert e.value.code == ErrorCode.ENOENT and argv[0] in e.value.message
    with pytest.raises(RemoteError) as e:   # no filesystem: any absolute path is a cwd, nothing else
        agent.client.exec(["echo"], cwd="relative/dir", timeout=5)
    assert e.value.code == ErrorCode.ENOENT


def test_uname_meminfo_hostname(agent):
    agent.client.config(hostname="tb-test", timeout=5)
    r = run(agent, ["uname", "-a"])
    assert r.stdout.split()[:2] == [b"wslx-trackb", b"tb-test"]
    assert run(agent, ["uname", "-n"]).stdout == b"tb-test\n"
    m = run(agent, ["meminfo"]).stdout.decode()
    fields = dict(line.split(":") for line in m.splitlines())
    assert int(fields["MemTotal"].split()[0]) > 0
    assert int(fields["Pmem"].split()[0]) == (2 << 20) // 1024


def test_selftest_passes(agent):
    r = run(agent, ["selftest"])
    assert r.returncode == 0, r.stdout.decode()
    assert b"FAIL" not in r.stdout and b"0 failed" in r.stdout


def test_sleep_is_interruptible(agent):
    p = agent.client.exec(["sleep", "100"], timeout=5)
    assert agent.client.ping(b"x", timeout=5) == b"x"  # the loop keeps serving while it sleeps
    agent.client.signal(p.pid, Signal.SIGTERM, timeout=5)
    st = p.wait(5)
    assert st.how == ExitHow.SIGNALED and st.code == Signal.SIGTERM
    assert p.eof_before_exit
    # ignored-by-default and stopping signals leave it running; SIGKILL ends it
    q = agent.client.exec([PROGRAM_NAME, "sleep", "100000"], timeout=5)
    for ignored in (Signal.SIGWINCH, Signal.SIGCHLD, Signal.SIGSTOP):
        agent.client.signal(q.pid, ignored, timeout=5)
    assert agent.client.ping(b"alive", timeout=5) == b"alive" and not q.done
    agent.client.signal(q.pid, Signal.SIGKILL, timeout=5)
    assert q.wait(5).code == Signal.SIGKILL


def test_sleep_finishes(agent):
    r = run(agent, ["sleep", "0.05"])
    assert r.returncode == 0
    r = run(agent, ["sleep", "bogus"])
    assert r.returncode == 1 and b"invalid time interval" in r.stderr


def test_merge_stderr_into_stdout(agent):
    p = agent.client.exec([PROGRAM_NAME, "out", "out\n", "err", "err\n"], merge_stderr=True, timeout=10)
    assert p.wait(10).code == 0
    assert bytes(p.stdout) == b"out\nerr\n" and bytes(p.stderr) == b""


def test_fault_ends_the_harness_with_a_diagnostic(harness):
    with TARGETS["trackb-host"](timeout=10, binary=harness) as t:
        t.client.wait_hello()
        t.client.exec(["fault"], timeout=5)
        assert t.wait_ended(10), "the harness did not stop after `fault`"
        assert t.proc.returncode == 70
        assert "EXCEPTION" in t.log_tail()


# ---- the Portal service (portal_svc.c around guest/portal's core) on the harness's pmem file ----

def check_portal_rpcs(p, service) -> None:
    """echo, checksum and transform round trips, results computed on the host; then a
    forged span draws an error status and the service keeps serving. Shared with the VM
    test (tests/test_trackb_guest.py)."""
    from helpers.portal_checks import forged_span_faults
    from wslx.portal import PortalRemoteError
    from wslx.portal.layout import sum64
    from wslx.spec import portal as spec
    assert p.echo(0xFEEDFACECAFEBEEF) == 0xFEEDFACECAFEBEEF
    span = p.alloc((256 << 10) + 5)
    data = bytes((i * 131 + 7) & 0xFF for i in range(span.length))
    p.view(span)[:] = data
    assert p.checksum(span) == sum64(data)
    key = 0xA5A5_0F0F_3C3C_9696
    p.transform(span, key)
    kb = key.to_bytes(8, "little")
    assert bytes(p.view(span)) == bytes(b ^ kb[i % 8] for i, b in enumerate(data))
    assert p.checksum(span) == sum64(bytes(p.view(span)))  # the guest sees what it wrote, in place
    forged_span_faults(p, span.generation)
    with pytest.raises(PortalRemoteError):
        p.call(9)  # no such op: NOSYS
    assert p.echo(1) == 1
    assert p.pingpong(500) == 500
    assert p.stream(5000, batch=128) == 5000
    p.free(span)
    st = p.guest_status()
    assert st["state"] == spec.GuestState.SERVING and st["served"] >= 5000 + 500 + 6, st
    assert b"portal: serving generation" in service.output


def test_portal_service_round_trips_on_the_harness(harness):
    from wslx.portal import Portal
    from wslx.portal.trackb import TrackBPortalService
    with TARGETS["trackb-host"](timeout=10, binary=harness, pmem_size=8 << 20) as t:
        t.client.wait_hello()
        with Portal.create(Path(t._dir) / "pmem.img", 8 << 20) as p:   # the file the harness mapped
            r = run(t, ["portal", "info"])
            assert r.returncode == 0 and f"header ok generation {p.generation}".encode() in r.stdout, r.stdout
            with TrackBPortalService(t, p) as svc:
                check_portal_rpcs(p, svc)
                r = run(t, ["portal", "serve"])   # one server per region
                assert r.returncode == 1 and b"already running" in r.stderr
                # the host re-initialises: the service detaches and attaches to the new generation
                old = p.generation
                p.initialise()
                p.wait_guest(10)
                assert p.generation != old and p.echo(6) == 6
                svc.proc.wait_for_output(b"detached from generation", timeout=10)
            assert svc.status.how == ExitHow.SIGNALED and svc.status.code == Signal.SIGTERM
            r = run(t, ["portal", "memcpy", "--bytes", "65536", "--iters", "3"])
            a = b = 0x5A  # a starts as 0x5a; each step copies a->b / b->a, then XORs b with 0x01*(i+1)
            for i in range(3):
                if i & 1:
                    a = b
                else:
                    b = a
                b ^= i + 1
            assert r.returncode == 0 and re.fullmatch(
                rb"memcpy_gbps \d+\.\d{4} inplace_xor_gbps \d+\.\d{4} bytes 65536 check %d\n" % (a ^ b),
                r.stdout), r.stdout
            assert t.proc.poll() is None, t.log_tail()


def test_portal_bad_arguments_and_no_header(harness):
    with TARGETS["trackb-host"](timeout=10, binary=harness, pmem_size=8 << 20) as t:
        t.client.wait_hello()
        for argv, code, err in [
            (["portal"], 2, b"usage"),
            (["portal", "serve", "--budget", "0"], 2, b"bad --budget"),
            (["portal", "serve", "--bogus", "1"], 2, b"usage"),
            (["portal", "memcpy", "--bytes", str(64 << 20)], 2, b"--bytes"),
            (["portal", "serve", "--attach-timeout-ms", "50"], 3, b"no valid Portal header"),  # file is all zeros
            (["portal", "info"], 3, b"header HEADER"),
        ]:
            r = run(t, argv)
            assert r.returncode == code and err in r.stdout + r.stderr, (argv, r.stdout, r.stderr)


def test_portal_service_that_does_not_start_says_why(harness):
    """The host's error names the command, the generation it waited for, the service's own
    words, the region's guest status and the agent's log tail."""
    from wslx.portal import Portal, PortalError
    from wslx.portal.trackb import TrackBPortalService
    with TARGETS["trackb-host"](timeout=10, binary=harness, pmem_size=8 << 20) as t:
        t.client.wait_hello()
        with Portal.create(Path(t._dir) / "pmem.img", 8 << 20) as p:
            p._u64(0)[0] = 0   # no valid header: the service gives up after its attach timeout
            svc = TrackBPortalService(t, p, timeout=10, argv=["portal", "serve", "--attach-timeout-ms", "50"])
            with pytest.raises(PortalError) as e:
                svc.start()
            msg = str(e.value)
            assert f"portal serve --attach-timeout-ms 50) did not start serving generation {p.generation}" in msg
            assert "no valid Portal header (HEADER)" in msg and "Portal guest status: {'state': 0" in msg, msg
            assert t.proc.poll() is None, t.log_tail()


def test_portal_needs_room_for_the_window(agent):
    r = run(agent, ["portal", "serve"])   # the default harness pmem is 2 MiB: all of it before the window
    assert r.returncode == 2 and b"leaves no Portal window" in r.stderr, r.stderr


def test_portal_without_pmem_says_so(harness):
    with TARGETS["trackb-host"](timeout=10, binary=harness, pmem_size=0) as t:
        t.client.wait_hello()
        r = run(t, ["portal", "serve"])
        assert r.returncode == 1 and b"no virtio-pmem device" in r.stderr


def test_too_many_processes_is_eagain(agent):
    procs = []
    with pytest.raises(RemoteError) as e:
        for _ in range(64):
            procs.append(agent.client.exec(["sleep", "100"], timeout=5))
    assert e.value.code == ErrorCode.EAGAIN and len(procs) >= 4
    for p in procs:
        p.signal(Signal.SIGKILL, timeout=5)
        p.wait(5)
    assert run(agent, [PROGRAM_NAME]).returncode == 0


def test_argv_larger_than_the_arena_is_e2big(agent):
    with pytest.raises(RemoteError) as e:
        agent.client.exec(["echo"] + ["x" * 4000] * 12, timeout=5)
    assert e.value.code == ErrorCode.E2BIG
    assert run(agent, ["echo", "x" * 4000]).stdout == b"x" * 4000 + b"\n"


# ---- the conformance program (the suite covers the rest) ----

def test_conformance_program_background_jobs_and_their_limit(agent):
    """bg steps are jobs of the process: their output comes before EXIT, and a fourth one at
    once is refused (FAILED_STATUS, a message on stderr)."""
    p = agent.client.exec([PROGRAM_NAME, "bg", "100", "late\n", "out", "early\n"], timeout=5)
    st = p.wait(5)
    assert st.code == 0 and bytes(p.stdout) == b"early\nlate\n" and p.eof_before_exit
    r = run(agent, [PROGRAM_NAME] + ["bg", "50", "x"] * 4)
    assert r.returncode == 1 and b"too many background jobs" in r.stderr and r.stdout == b"xxx"


def test_conformance_program_without_a_filesystem(agent):
    r = run(agent, [PROGRAM_NAME, "mounted", "/", "read-file", "/etc/hostname"])
    assert (r.stdout, r.returncode) == (b"no\n", 1) and b"no filesystem" in r.stderr
    r = run(agent, [PROGRAM_NAME, "cat", "close-stdin", "cwd"], cwd="/any/where")   # stdin is at EOF
    assert (r.stdout, r.returncode) == (b"/any/where\n", 0)


def test_env_order_and_large_output(agent):
    agent.client.config(env=["FROM_CONFIG=c", "OVER=config"], timeout=5)
    r = run(agent, [PROGRAM_NAME, "getenv", "FROM_CONFIG", "getenv", "OVER"], env=["OVER=exec"])
    assert r.stdout == b"c\nexec\n"
    r = agent.client.run([PROGRAM_NAME, "zeros", str(3 << 20)], timeout=30)
    assert r.returncode == 0 and len(r.stdout) == 3 << 20 and not r.stdout.strip(b"\0")


def test_quiesce_flushes_pmem_and_shutdown_exits(agent):
    q = agent.client.quiesce(timeout=5)
    assert q["flushed_regions"] == 1
    with pytest.raises(RemoteError) as e:
        agent.client.exec([PROGRAM_NAME], timeout=5)
    assert e.value.code == ErrorCode.ECANCELED
    agent.client.resume(timeout=5)
    p = agent.client.exec(["sleep", "100"], timeout=5)
    agent.client.shutdown(grace_ms=100, timeout=5)
    st = p.wait(5)   # SHUTDOWN ends the built-ins first: their EXIT comes before the OK
    assert st.how == ExitHow.SIGNALED and st.code == Signal.SIGTERM
    assert agent.wait_ended(5) and agent.proc.returncode == 0
