"""wslx.vmm.procs (the /proc process listing) and the suite's leftover-QEMU check on a
machine without procps (a minimal Debian 12 has no ps, pgrep or pkill)."""
from __future__ import annotations

import os
import select
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from wslx.vmm.procs import processes

TESTS = Path(__file__).resolve().parent
ROOT = TESTS.parent
TAIL = shutil.which("tail")   # coreutils: Essential in Debian, so on every machine

# The conftest's session-end check, alone, in a fresh interpreter: prints the pids it finds.
LEFTOVER_CHECK = """
import sys
sys.path.insert(0, sys.argv[1])
import conftest
for pid, cmd in conftest._leftover_qemu():
    print(pid)
"""


@pytest.fixture
def fake_qemu(tmp_path):
    """A process named qemu-system-x86_64 whose command line names a file under tmp_path/run
    (`tail -f` under that argv[0]: it runs until we end it), up and running: its first line
    of output is read (right after exec, /proc/PID/cmdline is still empty)."""
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "console.log").write_text("started\n")
    p = subprocess.Popen(["qemu-system-x86_64", "-f", str(run_dir / "console.log")], executable=TAIL,
                         stdout=subprocess.PIPE)
    try:
        assert select.select([p.stdout], [], [], 30)[0], "the stand-in QEMU did not start within 30 s"
        assert p.stdout.readline() == b"started\n"
        yield p, run_dir
    finally:
        p.kill()
        p.wait(timeout=10)


def test_leftover_check_runs_without_process_tools(fake_qemu, tmp_path):
    proc, run_dir = fake_qemu
    bare = tmp_path / "bin"   # PATH holds no ps, pgrep or pkill (nor anything else)
    bare.mkdir()
    env = {"PATH": str(bare), "WSLX_RUN_DIR": str(run_dir), "HOME": str(tmp_path)}
    r = subprocess.run([sys.executable, "-c", LEFTOVER_CHECK, str(TESTS)], env=env, capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == [str(proc.pid)]


def test_processes_by_program_name(fake_qemu):
    proc, run_dir = fake_qemu
    found = {p.pid: p for p in processes("qemu-system")}
    assert proc.pid in found
    assert found[proc.pid].argv == ("qemu-system-x86_64", "-f", str(run_dir / "console.log"))
    assert str(run_dir) in found[proc.pid].cmdline
    assert found[proc.pid].environ().get("PATH") == os.environ.get("PATH")
    assert all(os.path.basename(p.argv[0]).startswith("qemu-system") for p in found.values())
    assert os.getpid() not in {p.pid for p in processes()}


def test_zombies_are_not_listed():
    """An exited child not yet reaped is a zombie: gone for practical purposes."""
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    os.waitid(os.P_PID, p.pid, os.WEXITED | os.WNOWAIT)   # exited, left unreaped
    try:
        assert p.pid not in {q.pid for q in processes()}
    finally:
        p.wait(timeout=10)
