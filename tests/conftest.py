"""Shared test setup: markers, a per-run temporary root, and the session-end
check that no QEMU process started by the kit is left running."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "host" / "python"))

MARKERS = {
    "vm": "boots a QEMU guest (TCG); deselect with -m 'not vm'",
    "slow": "takes more than a few seconds",
    "kernel_build": "builds a Linux kernel from a kernel-config profile (minutes, cached)",
}


def pytest_configure(config):
    for name, doc in MARKERS.items():
        config.addinivalue_line("markers", f"{name}: {doc}")
    # Every temporary file of this run lives under one directory (QEMU run dirs included).
    if "WSLX_RUN_DIR" not in os.environ:
        os.environ["WSLX_RUN_DIR"] = tempfile.mkdtemp(prefix="wslx-test-run-")


def pytest_sessionfinish(session, exitstatus):
    leftovers = _leftover_qemu()
    if leftovers:
        for pid, cmd in leftovers:
            print(f"\nleftover QEMU process {pid}: {cmd[:200]}", file=sys.stderr)
            try:
                os.kill(pid, 9)
            except OSError:
                pass
        session.exitstatus = 1
        print(f"\nFAILED: {len(leftovers)} QEMU process(es) outlived the tests (killed now)", file=sys.stderr)
    else:
        print("\nleftover-process check: no QEMU processes left running", file=sys.stderr)
    run_dir = os.environ.get("WSLX_RUN_DIR", "")
    if exitstatus == 0 and run_dir.startswith(tempfile.gettempdir()) and "wslx-test-run-" in run_dir:
        shutil.rmtree(run_dir, ignore_errors=True)


def _leftover_qemu() -> list[tuple[int, str]]:
    """QEMU processes started by this test run: their command lines name files
    under this run's WSLX_RUN_DIR (other runs on the machine are not ours to judge).
    Read from /proc (wslx.vmm.procs): a minimal Debian has no pgrep."""
    from wslx.vmm.hvsim import leftover_model_processes
    from wslx.vmm.procs import processes
    run_dir = os.environ["WSLX_RUN_DIR"]
    return ([(p.pid, p.cmdline) for p in processes("qemu-system") if run_dir in p.cmdline]
            + leftover_model_processes(run_dir))   # hvsim's model processes name the run dir too


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return ROOT


@pytest.fixture(scope="session")
def generated(repo_root) -> Path:
    """build/gen with the AgentX generated files, built by SCons."""
    scons = [sys.executable, "-m", "SCons", "-Q", "gen"]
    subprocess.run(scons, cwd=repo_root, check=True, capture_output=True)
    return repo_root / "build" / "gen"
