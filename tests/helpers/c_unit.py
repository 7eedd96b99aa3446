"""Host-side C unit tests: build guest sources with a test driver under ASan and UBSan."""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest


def build_sanitized(repo_root: Path, generated: Path, sources: list[str], includes: list[str], out: Path) -> Path:
    """gcc the sources (paths relative to the repository) into out; skip when gcc is missing."""
    if not shutil.which("gcc"):
        pytest.skip("gcc is not installed (tools/setup.sh installs it)")
    subprocess.run(["gcc", "-std=gnu11", "-g", "-O1", "-Wall", "-Wextra", "-Werror", "-fsanitize=address,undefined",
                    "-fno-sanitize-recover=all", f"-I{generated}", *[f"-I{repo_root / i}" for i in includes],
                    *[str(repo_root / s) for s in sources], "-o", str(out)], check=True)
    return out


def run_passes(binary: Path, names: tuple[str, ...], timeout: float = 60) -> str:
    """Run a test driver that prints "ok NAME" per test: it must exit 0 having passed every one of
    names, with no sanitizer report. Its stdout."""
    r = subprocess.run([str(binary)], capture_output=True, text=True, timeout=timeout)
    assert r.returncode == 0, r.stdout + r.stderr
    for name in names:
        assert f"ok {name}" in r.stdout, r.stdout
    assert "runtime error" not in r.stderr, r.stderr
    return r.stdout
