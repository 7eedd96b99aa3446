"""`wslx` CLI: every listed command works, conformance exits by its result,
benchmarks write the JSON convention."""
from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest

from wslx import cli
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


@pytest.mark.parametrize("guest,vmm", [("linux", "qemu"), ("linux", "openvmm"), ("trackb", "qemu"),
                                       ("trackb", "openvmm")])
def test_boot_dry_run_builds_nothing(monkeypatch, capsys, guest, vmm):
    """--dry-run prints the command line and neither runs SCons nor makes an initramfs."""
    import wslx.guests.base as base
    import wslx.guests.linux as linux

    def refuse(*a, **kw):
        raise AssertionError(f"--dry-run built something: {a}")
    for mod, name in [(base, "ensure_built"), (linux, "ensure_built"), (linux, "initramfs_for"),
                      (linux, "build_initramfs")]:
        monkeypatch.setattr(mod, name, refuse)
    monkeypatch.setattr(base.subprocess, "run", refuse)
    assert cli.main(["boot", guest, "--vmm", vmm, "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("openvmm " if vmm == "openvmm" else "qemu-system-x86_64 ")


def _one_line_error(r) -> str:
    assert r.returncode == 2, (r.returncode, r.stdout, r.stderr)
    assert "Traceback" not in r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    return lines[0]


@pytest.mark.parametrize("argv,path,problem", [
    (["boot", "linux", "--kernel", "/nonexistent"], "/nonexistent", "not found"),
    (["run", "trackb", "--kernel", "/nonexistent", "--", "true"], "/nonexistent", "not found"),
    (["boot", "linux", "--initrd", "/nonexistent/initrd.cpio"], "/nonexistent/initrd.cpio", "not found"),
    (["boot", "linux", "--initrd", "/etc"], "/etc", "Is a directory"),
    (["boot", "linux", "--initrd", "/dev/null"], "/dev/null", "not a regular file"),
    (["bench", "boot", "--out", "/proc/nope"], "/proc/nope", "cannot create the folder"),
    (["bench", "codec", "--out", "/proc/nope", "--runs", "1"], "/proc/nope", "cannot create the folder"),
    (["conformance", "--target", "reference", "--junit", "/proc/nope/j.xml"], "/proc/nope/j.xml", "does not exist"),
    (["conformance", "--target", "linux", "--kernel", "/nonexistent"], "/nonexistent", "not found"),
    (["kconfig", "check", "/nonexistent.config"], "/nonexistent.config", "not found"),
])
def test_missing_or_unwritable_paths_are_one_line_exit_2(argv, path, problem):
    line = _one_line_error(run(*argv, timeout=60))
    assert path in line and problem in line


@pytest.mark.parametrize("argv,problem", [
    (["bench", "codec", "--runs", "0"], "must be positive"),
    (["boot", "linux", "--timeout", "soon"], "is not a number"),
    (["boot", "linux", "--timeout", "-1"], "positive"),
    (["boot", "windows"], "invalid choice"),
    (["conformance", "--target", "linux", "-k", "no_such_case"], "-k no_such_case matches no case"),
])
def test_bad_arguments_are_one_line_exit_2(argv, problem):
    assert problem in _one_line_error(run(*argv, timeout=60))


def test_a_file_that_is_not_a_kernel_is_named_before_qemu_starts(tmp_path):
    text = tmp_path / "notes.txt"
    text.write_text("not a kernel\n" * 100)
    line = _one_line_error(run("boot", "linux", "--kernel", str(text)))
    assert str(text) in line and "neither a bzImage" in line
    # an ELF, but a user program: no entry a guest can use (no PVH note, dynamically linked)
    line = _one_line_error(run("boot", "trackb", "--kernel", sys.executable))
    assert "an ELF file without an entry the guest can use" in line and "no PVH note" in line


def test_os_error_inside_a_command_is_one_line_exit_2(monkeypatch, capsys, tmp_path):
    """An OSError a command meets while it runs (not only in its arguments) names the path."""
    import wslx.commands.bench as bench_cmd

    def unwritable(*a, **kw):
        raise PermissionError(13, "Permission denied", str(tmp_path / "codec.json"))
    monkeypatch.setattr(bench_cmd, "run_benchmark", unwritable)
    assert cli.main(["bench", "codec", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err == f"wslx bench: {tmp_path / 'codec.json'}: Permission denied\n"


def test_missing_hv_harness_is_a_target_failure_not_a_traceback(monkeypatch, capsys, tmp_path):
    """The trackb-hv-host harness binary missing (a model-side HvError) is one line naming it and how to build it."""
    import wslx.conformance.trackb_hv_host as harness
    monkeypatch.setattr(harness, "binary_path", lambda: tmp_path / "trackb-hv-host")
    assert cli.main(["conformance", "--target", "trackb-hv-host"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and str(tmp_path / "trackb-hv-host") in err and "scons trackb-hv-host" in err, err
