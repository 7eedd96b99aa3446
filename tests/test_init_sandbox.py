"""wslx-init's host test mode fails closed (issue 11, item 8): in a root where / is not a
mount point (a chroot, as on a minimal build machine) it cannot make its mount namespace
private, and must refuse to serve instead of running with MOUNT and hostname changes
reaching the host.

The chroot is a plain directory under the test's tmp dir holding the static binary; it runs
under `unshare --mount --propagation private`, so even a misbehaving init could only change
a throwaway namespace and the directory, which the test inspects."""
from __future__ import annotations

import os
import select
import shutil
import socket
import subprocess
from pathlib import Path

import pytest

from helpers.init_sandbox import SANDBOX_REFUSED, sandbox_problem
from wslx.agentx import codec
from wslx.spec.agentx import MsgType

pytestmark = pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("unshare") or not shutil.which("chroot"),
                                reason="needs root, unshare(1) and chroot(8) to build a root that is not a mount point")


@pytest.fixture(scope="module")
def init_binary(repo_root) -> Path:
    r = subprocess.run([str(repo_root / ".venv" / "bin" / "scons"), "-Q", "images/wslx-init"], cwd=repo_root,
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    return repo_root / "images" / "wslx-init"


@pytest.fixture
def chroot_dir(tmp_path, init_binary) -> Path:
    root = tmp_path / "root"
    (root / "mnt").mkdir(parents=True)
    shutil.copy2(init_binary, root / "wslx-init")
    return root


def _in_chroot(root: Path, *args: str) -> list[str]:
    return ["unshare", "--mount", "--propagation", "private", "chroot", str(root), "/wslx-init", *args]


def _read_until_eof(sock: socket.socket, timeout: float) -> bytes:
    data = b""
    while True:
        ready, _, _ = select.select([sock], [], [], timeout)
        assert ready, f"the init neither spoke nor closed within {timeout} s (got {data[:64]!r})"
        try:
            chunk = sock.recv(65536)
        except ConnectionResetError:  # it exited with our MOUNT unread
            return data
        if not chunk:
            return data
        data += chunk


def test_agent_refuses_to_serve_when_root_is_not_a_mount_point(chroot_dir):
    """The issue's case: before, the init warned, said HELLO and a MOUNT under /mnt created
    directories in the real /mnt (here: the chroot's). Now it exits 3 with the reason and
    never speaks AgentX."""
    ours, theirs = socket.socketpair()
    with ours:
        proc = subprocess.Popen(_in_chroot(chroot_dir, "--agent-fd", str(theirs.fileno())),
                                pass_fds=[theirs.fileno()], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE)
        theirs.close()
        try:
            # a MOUNT that the old init would have carried out in the chroot's own /mnt
            ours.sendall(codec.encode_frame(MsgType.MOUNT, dict(flags=0, fstype="tmpfs", source="none",
                                                                target="/mnt/leak/x", options="size=1m"),
                                            request_id=1))
        except BrokenPipeError:
            pass  # it is already gone, as it should be
        try:
            spoken = _read_until_eof(ours, timeout=10)
            _, err = proc.communicate(timeout=10)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(5)
    assert proc.returncode == SANDBOX_REFUSED, (proc.returncode, err)
    assert spoken == b"", f"the init spoke AgentX without its sandbox: {spoken[:64]!r}"
    assert b"make / private" in err and b"not a mount point" in err and b"refusing to run" in err, err
    assert list((chroot_dir / "mnt").iterdir()) == [], "MOUNT created directories outside the sandbox"


def test_check_sandbox_reports_the_reason(chroot_dir, init_binary):
    r = subprocess.run(_in_chroot(chroot_dir, "--no-setup", "--check-sandbox"), capture_output=True, text=True,
                       timeout=30)
    assert r.returncode == SANDBOX_REFUSED and "/ is not a mount point" in r.stderr, r
    # where / is a mount point (this machine, as the test runs), the same binary sets the sandbox up
    if os.path.ismount("/"):
        assert sandbox_problem(init_binary) is None


def test_a_missing_mnt_is_refused_too(chroot_dir):
    """Every step fails closed, not only the first: a root that is a mount point (a tmpfs
    mounted on the chroot dir inside the throwaway namespace) but has no /mnt."""
    (chroot_dir / "mnt").rmdir()
    r = subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c",
                        'mount --bind "$1" "$1" && exec chroot "$1" /wslx-init --no-setup --check-sandbox', "sh",
                        str(chroot_dir)], capture_output=True, text=True, timeout=30)
    assert r.returncode == SANDBOX_REFUSED and "tmpfs on /mnt" in r.stderr, r
    assert not (chroot_dir / "mnt").exists()
