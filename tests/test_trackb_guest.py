"""The Track B kernel under QEMU TCG: boot to HELLO over its virtio-console port
(org.wslx.agentx) and, forced, over COM2; a host that connects after the boot;
the CLI, the conformance suite (reconnect included), a built-in that faults on
purpose, the Portal service over the kernel's direct map of virtio-pmem, and
hostile frames on both control channels."""
from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from wslx.agentx.errors import AgentXError
from wslx.conformance import runner
from wslx.conformance.targets import TARGETS
from wslx.guests.trackb import ISA_DEBUG_EXIT, TrackBGuest
from wslx.portal import Portal
from wslx.portal.trackb import TrackBPortalService, trackb_portal_kw
from wslx.spec import portal as pspec
from wslx.spec.agentx import Capability, ExitHow, Signal

vm = pytest.mark.vm   # every test but the --dry-run ones boots QEMU


@pytest.fixture(scope="module")
def built(repo_root):
    r = subprocess.run([sys.executable, "-m", "SCons", "-Q", "trackb"], cwd=repo_root, capture_output=True, text=True)
    if r.returncode != 0:
        pytest.fail(f"scons trackb failed:\n{r.stdout}\n{r.stderr}")
    assert (repo_root / "images" / "trackb-kernel.elf").exists(), "scons trackb succeeded but made no image"
    return repo_root / "images" / "trackb-kernel.elf"


@vm
def test_boots_to_hello(built):
    with TrackBGuest(built, build=False, log=lambda s: None) as g:
        h = g.hello
        assert h.kind_name.lower() == "trackb" and h.version_min <= 1 <= h.version_max
        assert h.has(Capability.EXEC) and not h.has(Capability.MOUNT)
        assert h.has(Capability.PORTAL), "the guest has a virtio-pmem device: PORTAL must be offered"
        r = g.client.run(["selftest"], timeout=30)
        assert r.returncode == 0, r.stdout.decode()
        assert b"ok   pmem region present" in r.stdout
        r = g.client.run(["meminfo"], timeout=30)
        assert b"Pmem: 16384 kB" in r.stdout
        # the host may connect before or after the kernel gets there: both are fine
        assert re.search(r"env: control channel virtio-console port 1, host (connected|not connected yet)",
                         g.vm.read_console())
        assert g.shutdown() is not None
        assert not g.vm.is_running()


@vm
def test_serial_channel_still_reaches_hello(built):
    """channel='serial': no virtio-serial device, so the kernel keeps AgentX on COM2 (as under
    OpenVMM); HELLO, a command, and a reconnect (the host asks for the announcement)."""
    with TrackBGuest(built, build=False, log=lambda s: None, channel="serial") as g:
        assert "virtio-serial-pci" not in " ".join(g.vm.cmdline)
        assert "env: control channel COM2 ready" in g.vm.read_console()
        assert g.hello.kind_name.lower() == "trackb"
        assert g.client.run(["echo", "on", "com2"], timeout=30).stdout == b"on com2\n"
        c = g.reconnect(g.client)
        assert c.wait_hello(timeout=20).name == g.hello.name
        assert c.ping(b"again", timeout=10) == b"again"
        assert g.shutdown() is not None


@vm
def test_host_connects_after_boot_gets_hello(built):
    """Nobody on the port while the kernel boots (its first HELLO goes nowhere); the host then
    connects and, without asking, gets a HELLO: the kernel saw PORT_OPEN and re-announced.
    Dropping the connection and connecting again gives another one."""
    from wslx.agentx.client import AgentClient
    g = TrackBGuest(built, build=False, log=lambda s: None)
    with g.machine() as vm_:
        vm_.wait_console(r"env: control channel virtio-console port \d+, host not connected yet", timeout=30)
        vm_.wait_console(r"announcing HELLO", timeout=30)
        for _ in range(2):
            with AgentClient(vm_.virtio_serial_socket(10), default_timeout=10) as c:
                h = c.wait_hello(timeout=10)
                assert h.kind_name.lower() == "trackb"
                assert c.ping(b"late", timeout=10) == b"late"
        console = vm_.read_console()
        assert "trap:" not in console and "panic:" not in console, console[-2000:]


@vm
def test_host_leaving_mid_frame_does_not_corrupt_the_next_host(built):
    """A host sends half a frame and disconnects. The next host gets a fresh HELLO and its
    first request is answered: the agent dropped the partial frame on the connect event."""
    from wslx.agentx import codec
    from wslx.agentx.client import AgentClient
    from wslx.spec.agentx import MsgType
    half = codec.encode_frame(MsgType.PING, dict(data=b"x" * 200), request_id=7)[:100]
    with TrackBGuest(built, build=False, log=lambda s: None) as g:
        for _ in range(3):
            g.client.send_raw(half)
            g.client.close()
            time.sleep(0.2)
            with AgentClient(g.vm.virtio_serial_socket(10), default_timeout=10) as c:
                c.wait_hello(timeout=10)
                assert c.ping(b"after", timeout=10) == b"after"
                assert not c.unsolicited_errors, list(c.unsolicited_errors)
            g.client = AgentClient(g.vm.virtio_serial_socket(10), default_timeout=10)
            g.client.wait_hello(timeout=10)


@vm
def test_cli_run_echo_hello(built, repo_root):
    env = dict(os.environ, PYTHONPATH=str(repo_root / "host" / "python"))
    r = subprocess.run([sys.executable, "-m", "wslx.cli", "run", "trackb", "--", "echo", "hello"], cwd=repo_root,
                       env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout == "hello\n"
    r = subprocess.run([sys.executable, "-m", "wslx.cli", "run", "trackb", "--", "wslx-conform", "exit", "7"],
                       cwd=repo_root, env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 7, r.stderr


@vm
def test_cli_boot(built, repo_root):
    env = dict(os.environ, PYTHONPATH=str(repo_root / "host" / "python"))
    r = subprocess.run([sys.executable, "-m", "wslx.cli", "boot", "trackb"], cwd=repo_root, env=env,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "agent:        wslx-trackb-agent" in r.stdout and "capabilities: EXEC" in r.stdout


@vm
def test_conformance_passes(built):
    with TARGETS["trackb"](timeout=10, kernel=built) as t:
        report = runner.run_suite(t, timeout=10, log=lambda s: None)
    bad = [r for r in report.results if r.status not in ("pass", "skip")]
    assert report.ok, "\n".join(f"{r.name}: {r.status}: {r.message}" for r in bad)
    for r in report.results:
        if r.status == "skip":
            assert "does not advertise" in r.message, f"{r.name} skipped: {r.message}"
    assert any(r.name == "reconnect_after_host_disconnect" and r.status == "pass" for r in report.results)


@vm
def test_sleep_is_interrupted_by_signal(built):
    with TrackBGuest(built, build=False, log=lambda s: None) as g:
        p = g.client.exec(["sleep", "1000"], timeout=10)
        assert g.client.ping(b"x", timeout=10) == b"x"
        g.client.signal(p.pid, Signal.SIGTERM, timeout=10)
        st = p.wait(10)
        assert st.how == ExitHow.SIGNALED and st.code == 15


@vm
def test_fault_builtin_is_reported_with_the_diagnostic(built):
    """`fault` takes a #PF in the kernel: its handler prints vector/RIP/CR2/error code and
    stops through pvpanic; the host's error names the panic and carries the console tail."""
    with TrackBGuest(built, build=False, log=lambda s: None, timeout=10) as g:
        p = g.client.exec(["fault"], timeout=10)
        with pytest.raises(AgentXError) as e:
            p.wait(10)
        msg = str(e.value)
        assert "GuestPanicked" in msg, msg
        assert "trap: vector 14" in msg and "cr2=" in msg, msg
        assert "faulting on purpose" in g.vm.read_console()


@vm
def test_portal_round_trips_over_the_kernel(built, tmp_path):
    """The kernel's `portal serve` (guest/portal's core, unchanged) on the pmem range it maps
    directly, at the pinned address: RPCs checked on the host, a forged span refused, and
    the service still serving afterwards (tests/test_trackb_agent.py: check_portal_rpcs)."""
    from test_trackb_agent import check_portal_rpcs
    with Portal.create(tmp_path / "portal.img", 16 << 20) as p, \
            TrackBGuest(built, build=False, log=lambda s: None, **trackb_portal_kw(p)) as g:
        assert g.hello.has(Capability.PORTAL)
        r = g.client.run(["portal", "info"], timeout=30)
        assert r.returncode == 0 and f"header ok generation {p.generation}".encode() in r.stdout, r.stdout
        with TrackBPortalService(g, p) as svc:
            check_portal_rpcs(p, svc)
            assert g.client.ping(b"alive", timeout=10) == b"alive"   # the agent loop keeps serving AgentX
        assert svc.status.how == ExitHow.SIGNALED and svc.status.code == 15
        assert p.guest_status()["generation"] == p.generation
        console = g.vm.read_console()
        assert "trap:" not in console and "panic:" not in console, console[-2000:]
        assert f"pmem: region {pspec.DEFAULT_PMEM_GPA:x}" in console, console[-2000:]
        assert g.shutdown() is not None


@vm
@pytest.mark.parametrize("channel", ["agentx", "serial"])
def test_hostile_frames_on_the_control_channel(built, channel):
    """A few hundred mutated frames (half re-sealed so the decoders see the damage; the
    generator of tests/test_trackb_agent.py) go to the real kernel over virtio-console and
    over COM2: after each batch the agent still answers PING, and the console shows no trap
    or panic."""
    import random
    from helpers.agentx_fuzz import send_and_ping
    from test_trackb_agent import mutated_frames
    rng = random.Random(20261127)
    frames = list(mutated_frames(rng, 400))
    with TrackBGuest(built, build=False, log=lambda s: None, timeout=20, channel=channel) as g:
        c = g.client
        send_and_ping(c, frames, batch=50, timeout=30, context=lambda: g.vm.console_tail())
        c.resume(timeout=10)   # a mutated QUIESCE may have been valid
        r = c.run(["echo", "still", "here"], timeout=30)
        assert r.stdout == b"still here\n"
        console = g.vm.read_console()
        assert "trap:" not in console and "panic:" not in console, console[-3000:]
        assert g.vm.is_running()
        assert g.shutdown() is not None


def _cli(repo_root, *argv, env=None):
    e = dict(os.environ, PYTHONPATH=str(repo_root / "host" / "python"), **(env or {}))
    return subprocess.run([sys.executable, "-m", "wslx.cli", *argv], cwd=repo_root, env=e, capture_output=True,
                          text=True, timeout=60)


def test_boot_openvmm_dry_run_prints_the_trackb_command_line(repo_root, tmp_path):
    """OpenVMM direct boot of the ELF (64-bit entry), COM1 = console file, AgentX over hv_sock (the
    kernel finds Hyper-V: hybrid vsock, the guest dials <vsock>_50010), virtio-pmem over PCIe,
    Hyper-V enlightenments; nothing is created (the run directory is a placeholder)."""
    import shlex
    rd = tmp_path / "runs"
    r = _cli(repo_root, "boot", "trackb", "--vmm", "openvmm", "--dry-run", "--append", "trackb.hv_poll",
             env={"WSLX_RUN_DIR": str(rd)})
    assert r.returncode == 0, r.stderr
    argv = shlex.split(r.stdout.splitlines()[0])
    base = Path("<run-dir>")
    assert argv[:3] == ["openvmm", "-k", str(repo_root / "images" / "trackb-kernel.elf")]
    assert "-r" not in argv and "--hv" in argv and "--com2" not in argv
    opt = {argv[i]: argv[i + 1] for i in range(len(argv) - 1) if argv[i].startswith("--") and argv[i] != "--hv"}
    assert argv[argv.index("-c") + 1].split()[-1] == "trackb.hv_poll"
    assert opt["--com1"] == f"file={base / 'console.log'}"
    assert opt["--vmbus-vsock-path"] == str(base / "vsock")
    assert opt["--pcie-root-complex"] == "rc0" and opt["--pcie-root-port"] == "rc0:p0"
    assert opt["--virtio-pmem"] == f"pcie_port=p0:{base / 'pmem.img'}"
    assert "vsock_50010" in r.stdout.splitlines()[1]
    assert not rd.exists(), "--dry-run created files"


def test_boot_qemu_dry_run_creates_nothing(repo_root, tmp_path):
    import shlex
    rd = tmp_path / "runs"
    r = _cli(repo_root, "boot", "trackb", "--dry-run", env={"WSLX_RUN_DIR": str(rd)})
    assert r.returncode == 0, r.stderr
    argv = shlex.split(r.stdout)
    assert argv[0].startswith("qemu-system-x86_64") and "-kernel" in argv
    assert any("pmem.img" in a for a in argv) and ISA_DEBUG_EXIT[1] in argv
    assert not rd.exists() or not any(rd.iterdir()), f"--dry-run created {list(rd.rglob('*'))}"
