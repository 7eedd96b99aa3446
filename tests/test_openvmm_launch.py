"""`wslx boot|run trackb|linux --vmm openvmm` launches OpenVMM (wslx.guests.openvmm, wslx.vmm.openvmm_machine).

No OpenVMM runs here (it needs KVM, MSHV or WHP). Without a binary the CLI says so in one line and exits 2.
With tests/helpers/fake_openvmm.py installed as `openvmm` on PATH, the launcher runs a whole session: the
fake checks its argv against the documented CLI and records it, plays OpenVMM's hybrid vsock and runs a
real guest behind it (the Track B kernel under hvsim), so HELLO, EXEC and SHUTDOWN cross the launcher's
hv_sock sockets exactly as they would with OpenVMM. The recorded argv is checked against the usage
templates of shared/reference/hyperv-guest-facts.md (tests/test_openvmm_cmdline.py reads them)."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from test_openvmm_cmdline import _contains, _fill, _template, documented  # noqa: F401 (a fixture)
from wslx.vmm.hvsim import leftover_model_processes
from wslx.vmm.procs import processes

ROOT = Path(__file__).resolve().parents[1]
FAKE = ROOT / "tests" / "helpers" / "fake_openvmm.py"
WSLX = [sys.executable, "-m", "wslx.cli"]
vm = pytest.mark.vm


def _run(args, env, timeout=300):
    return subprocess.run(WSLX + args, capture_output=True, text=True, env=env, timeout=timeout)


@pytest.fixture
def fake_env():
    """PATH with the fake `openvmm` first; argv recorded in ROOT/argv.json; run dirs under a short root
    (Unix socket paths are limited to 108 bytes, and the fake nests its hvsim run dir in it)."""
    root = Path(tempfile.mkdtemp(prefix="wslx-ovt-"))
    bin_dir = root / "bin"
    bin_dir.mkdir()
    exe = bin_dir / "openvmm"
    exe.write_text(f"#!/bin/sh\nexec {sys.executable} {FAKE} \"$@\"\n")
    exe.chmod(0o755)
    env = dict(os.environ, PATH=f"{bin_dir}:{os.environ['PATH']}", FAKE_OPENVMM_RECORD=str(root / "argv.json"),
               WSLX_RUN_DIR=str(root), FAKE_OPENVMM_GUEST=str(ROOT / "images" / "trackb-kernel.elf"))
    yield env, root
    left = [p for p in processes() if str(root) in p.cmdline]
    assert not left, f"processes outlived the session: {left}"
    assert not leftover_model_processes(str(root))
    shutil.rmtree(root, ignore_errors=True)


def test_without_openvmm_one_line_and_exit_2(tmp_path):
    env = dict(os.environ, PATH=str(tmp_path))        # no openvmm anywhere
    for args in (["boot", "trackb", "--vmm", "openvmm"], ["run", "linux", "--vmm", "openvmm", "--", "true"]):
        r = subprocess.run([sys.executable, "-m", "wslx.cli"] + args, capture_output=True, text=True, env=env)
        assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
        assert r.stderr.strip().count("\n") == 0 and "no openvmm binary on PATH" in r.stderr


def test_the_fake_refuses_an_undocumented_command_line(tmp_path):
    kernel = ROOT / "images" / "trackb-kernel.elf"
    for argv in (["-k", str(kernel), "--vmbus-vsock-path", str(tmp_path / "v")],        # vsock without --hv
                 ["-k", str(kernel), "--com1", "tcp"],                                    # not a serial binding
                 ["-k", str(kernel), "--virtio-pmem", f"pcie_port=p0:{kernel}"],          # no root port
                 ["-k", str(kernel), "--no-such-flag"],
                 ["--hv"]):                                                               # no kernel
        r = subprocess.run([sys.executable, str(FAKE)] + argv, capture_output=True, text=True, timeout=30)
        assert r.returncode == 2 and "openvmm: error:" in r.stderr, (argv, r.stderr)


@vm
def test_boot_trackb_through_openvmm(fake_env, documented):
    env, tmp = fake_env
    r = _run(["boot", "trackb", "--vmm", "openvmm"], env)
    assert r.returncode == 0, r.stdout + r.stderr[-3000:]
    assert "agent:        wslx-trackb-agent" in r.stdout and "since openvmm start" in r.stdout
    argv = json.loads((tmp / "argv.json").read_text())
    kernel = str(ROOT / "images" / "trackb-kernel.elf")
    assert argv[:2] == _fill(_template(documented, "openvmm "), KERNEL=kernel)[1:3]
    assert _template(documented, "--hv") in argv
    vsock = argv[argv.index("--vmbus-vsock-path") + 1]
    assert _contains(argv, _fill(_template(documented, "--vmbus-vsock-path"), PATH=vsock))
    pmem = argv[argv.index("--virtio-pmem") + 1].split(":", 1)[1]
    assert _contains(argv, _fill(_template(documented, "--pcie-root-complex "), PATH=pmem))
    assert argv[argv.index("--com1") + 1].startswith("file=")


@vm
def test_run_linux_through_openvmm(fake_env, documented):
    """The Linux launch (initrd, wslx.transport=vsock) end to end; the fake's guest is Track B (no Linux
    under hvsim), which speaks the same AgentX over the same hv_sock port."""
    env, tmp = fake_env
    initrd = tmp / "initramfs.cpio"
    initrd.write_bytes(b"070701")
    r = _run(["run", "linux", "--vmm", "openvmm", "--kernel", str(ROOT / "images" / "trackb-kernel.elf"),
              "--initrd", str(initrd), "--", "echo", "through", "openvmm"], env)
    assert r.returncode == 0 and r.stdout == "through openvmm\n", r.stdout + r.stderr[-3000:]
    argv = json.loads((tmp / "argv.json").read_text())
    assert _contains(argv, ["-r", str(initrd)])
    assert "wslx.transport=vsock" in argv[argv.index("-c") + 1]
    assert "--virtio-pmem" not in argv
