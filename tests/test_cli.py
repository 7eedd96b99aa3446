"""`wslx` CLI: every listed command works, conformance exits by its result,
benchmarks write the JSON convention."""
from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest

from wslx.spec.agentx import VIRTIO_SERIAL_PORT_NAME

WSLX = [sys.executable, "-m", "wslx.cli"]


def run(*args, **kw):
    return subprocess.run(WSLX + list(args), capture_output=True, text=True, timeout=kw.pop("timeout", 120), **kw)


def listed_commands() -> list[str]:
    out = run("--help").stdout
    m = re.search(r"\{([^}]*)\}", out)
    return m.group(1).split(",") if m else []


def test_help_lists_commands_and_each_has_working_help():
    cmds = listed_commands()
    assert "conformance" in cmds and "bench" in cmds
    for c in cmds:
        r = run(c, "--help")
        assert r.returncode == 0, f"wslx {c} --help failed: {r.stderr}"


def test_conformance_reference_exits_zero_and_prints_a_table(tmp_path):
    r = run("conformance", "--target", "reference", "--junit", str(tmp_path / "j.xml"),
            "--markdown", str(tmp_path / "r.md"))
    assert r.returncode == 0, r.stdout + r.stderr
    assert "malformed_garbage" in r.stdout and "PASS" in r.stdout
    assert (tmp_path / "j.xml").exists() and (tmp_path / "r.md").exists()


def test_bench_codec_writes_json_with_medians_runs_and_machine(tmp_path):
    r = run("bench", "codec", "--out", str(tmp_path), "--runs", "2", "--seconds", "0.05")
    assert r.returncode == 0, r.stderr
    doc = json.loads((tmp_path / "codec.json").read_text())
    assert doc["runs"] == 2 and len(doc["all_runs"]) == 2
    assert doc["median"]["small_frames_per_s"] > 1000
    assert doc["machine"]["cpus"] >= 1 and "git_commit" in doc["machine"]
    assert "run 2/2" in r.stdout  # progress is shown
    assert (tmp_path / "codec.png").stat().st_size > 1000


def test_boot_dry_run_prints_vmm_command_lines():
    q = run("boot", "linux", "--dry-run")
    assert q.returncode == 0, q.stderr
    assert "qemu-system-x86_64" in q.stdout and f"name={VIRTIO_SERIAL_PORT_NAME}" in q.stdout and "-accel tcg" in q.stdout
    o = run("boot", "linux", "--vmm", "openvmm", "--dry-run")
    assert o.returncode == 0, o.stderr
    assert o.stdout.startswith("openvmm -k ") and "--hv" in o.stdout and "--vmbus-vsock-path" in o.stdout
    assert "wslx.transport=vsock" in o.stdout and "vsock_50010" in o.stdout
