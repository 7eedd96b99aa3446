"""The Track B kernel under QEMU TCG: boot to HELLO over COM2, the CLI, the
conformance suite, and a built-in that faults on purpose."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

from wslx.agentx.errors import AgentXError
from wslx.conformance import runner
from wslx.conformance.targets import TARGETS
from wslx.guests.trackb import TrackBGuest
from wslx.spec.agentx import Capability, ExitHow

pytestmark = pytest.mark.vm


@pytest.fixture(scope="module")
def built(repo_root):
    r = subprocess.run([sys.executable, "-m", "SCons", "-Q", "trackb"], cwd=repo_root, capture_output=True, text=True)
    if r.returncode != 0:
        pytest.fail(f"scons trackb failed:\n{r.stdout}\n{r.stderr}")
    if not (repo_root / "images" / "trackb-kernel.elf").exists():
        pytest.skip("images/trackb-kernel.elf was not built")
    return repo_root / "images" / "trackb-kernel.elf"


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
        assert g.shutdown() is not None
        assert not g.vm.is_running()


def test_cli_run_echo_hello(built, repo_root):
    env = dict(os.environ, PYTHONPATH=str(repo_root / "host" / "python"))
    r = subprocess.run([sys.executable, "-m", "wslx.cli", "run", "trackb", "--", "echo", "hello"], cwd=repo_root,
                       env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout == "hello\n"
    r = subprocess.run([sys.executable, "-m", "wslx.cli", "run", "trackb", "--", "sh", "-c", "exit 7"], cwd=repo_root,
                       env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 7, r.stderr


def test_cli_boot(built, repo_root):
    env = dict(os.environ, PYTHONPATH=str(repo_root / "host" / "python"))
    r = subprocess.run([sys.executable, "-m", "wslx.cli", "boot", "trackb"], cwd=repo_root, env=env,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "agent:        wslx-trackb-agent" in r.stdout and "capabilities: EXEC" in r.stdout


def test_conformance_passes(built):
    with TARGETS["trackb"](timeout=10, kernel=built) as t:
        report = runner.run_suite(t, timeout=10, log=lambda s: None)
    bad = [r for r in report.results if r.status not in ("pass", "skip")]
    assert report.ok, "\n".join(f"{r.name}: {r.status}: {r.message}" for r in bad)
    for r in report.results:
        if r.status == "skip":
            assert "does not advertise" in r.message, f"{r.name} skipped: {r.message}"
    assert any(r.name == "reconnect_after_host_disconnect" and r.status == "pass" for r in report.results)


def test_sleep_is_interrupted_by_signal(built):
    with TrackBGuest(built, build=False, log=lambda s: None) as g:
        p = g.client.exec(["sleep", "1000"], timeout=10)
        assert g.client.ping(b"x", timeout=10) == b"x"
        g.client.signal(p.pid, 15, timeout=10)
        st = p.wait(10)
        assert st.how == ExitHow.SIGNALED and st.code == 15


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
