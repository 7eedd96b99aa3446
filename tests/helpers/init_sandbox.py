"""Does wslx-init's host test mode work here? As root it must isolate itself (private mount
and UTS namespaces, its own tmpfs on /mnt) and refuses to run when it cannot, e.g. in a chroot
where / is not a mount point. Tests that run it skip with the init's own reason."""
from __future__ import annotations

import functools
import os
import subprocess
from pathlib import Path

SANDBOX_REFUSED = 3  # guest/init/main.c


@functools.lru_cache(maxsize=None)
def sandbox_problem(binary: Path) -> str | None:
    """None if `binary --no-setup --check-sandbox` can set the sandbox up (or need not: not
    root), else the init's reason."""
    r = subprocess.run([str(binary), "--no-setup", "--check-sandbox"], capture_output=True, text=True, timeout=30)
    if r.returncode == 0:
        return None
    if r.returncode == SANDBOX_REFUSED:
        return r.stderr.strip()
    raise RuntimeError(f"{binary} --check-sandbox failed with exit code {r.returncode}: {r.stdout}{r.stderr}")


def skip_without_sandbox(binary: Path) -> None:
    import pytest
    if os.geteuid() == 0 and (why := sandbox_problem(binary)):
        pytest.skip(f"wslx-init's test mode cannot isolate itself here: {why}")
