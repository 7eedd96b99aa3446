"""wslx.vmm.openvmm: command-line construction from OpenVMM's documented CLI."""
from __future__ import annotations

import subprocess

import pytest

from wslx.vmm.openvmm import (OpenVMMConfig, OpenVMMConfigError, find_openvmm, openvmm_cmdline,
                              vsock_connect_request, vsock_listen_path)


def _pairs(argv, flag):
    return [argv[i + 1] for i, a in enumerate(argv) if a == flag]


def test_direct_boot_minimal():
    a = openvmm_cmdline("/k/vmlinux", hv=False)
    assert a[:3] == ["openvmm", "-k", "/k/vmlinux"]
    assert "-r" not in a and "--hv" not in a
    assert _pairs(a, "-c") == ["console=ttyS0 panic=-1"]
    assert _pairs(a, "--memory") == ["512MB"] and _pairs(a, "--processors") == ["1"]


def test_full_wslx_guest():
    a = OpenVMMConfig("/k/bzImage", "/i/initramfs.cpio", cmdline="console=ttyS0 wslx.transport=vsock",
                      processors=2, memory=1024, com1="file=/run/vm/console.log",
                      vsock_path="/run/vm/vsock", pmem=["/run/vm/pmem.img"]).argv()
    assert _pairs(a, "-k") == ["/k/bzImage"] and _pairs(a, "-r") == ["/i/initramfs.cpio"]
    assert _pairs(a, "-c") == ["console=ttyS0 wslx.transport=vsock"]
    assert _pairs(a, "--memory") == ["1GB"] and _pairs(a, "--processors") == ["2"]
    assert "--hv" in a
    assert _pairs(a, "--com1") == ["file=/run/vm/console.log"]
    assert _pairs(a, "--vmbus-vsock-path") == ["/run/vm/vsock"]
    assert _pairs(a, "--pcie-root-complex") == ["rc0"]
    assert _pairs(a, "--pcie-root-port") == ["rc0:p0"]
    assert _pairs(a, "--virtio-pmem") == ["pcie_port=p0:/run/vm/pmem.img"]
    # root complex and port are declared before the device that uses them
    assert a.index("--pcie-root-complex") < a.index("--pcie-root-port") < a.index("--virtio-pmem")


def test_two_pmem_devices_get_two_ports():
    a = openvmm_cmdline("/k", pmem=["/a", "/b"])
    assert _pairs(a, "--pcie-root-port") == ["rc0:p0", "rc0:p1"]
    assert _pairs(a, "--virtio-pmem") == ["pcie_port=p0:/a", "pcie_port=p1:/b"]


@pytest.mark.parametrize("com1", ["console", "stderr", "file=/x", "listen=/x.sock", "listen=tcp:127.0.0.1:4444"])
def test_com1_forms(com1):
    assert _pairs(openvmm_cmdline("/k", com1=com1), "--com1") == [com1]


def test_com2_for_the_track_b_agent_channel():
    a = openvmm_cmdline("/trackb.elf", com1="file=/r/console.log", com2="listen=/r/com2.sock")
    assert _pairs(a, "--com2") == ["listen=/r/com2.sock"]
    assert "--com2" not in openvmm_cmdline("/k")


@pytest.mark.parametrize("kw", [dict(com1="/bare/path"), dict(com2="tcp:1.2.3.4:5"), dict(processors=0), dict(memory=0),
                                dict(hv=False, vsock_path="/v"),
                                dict(pmem=["/p"], restore_snapshot="/snap")])
def test_invalid_configs(kw):
    with pytest.raises(OpenVMMConfigError):
        openvmm_cmdline("/k", **kw)


def test_snapshot_memory_file_and_restore():
    a = openvmm_cmdline("/k", memory="2GB", memory_file="/m/mem.bin", restore_snapshot="/m/snap")
    assert _pairs(a, "--memory") == ["2GB,file=/m/mem.bin"]
    assert _pairs(a, "--restore-snapshot") == ["/m/snap"]


def test_vsock_helpers():
    assert str(vsock_listen_path("/run/vm/vsock", 50000)) == "/run/vm/vsock_50000"
    assert vsock_connect_request(5000) == b"CONNECT 5000\n"


@pytest.mark.skipif(find_openvmm() is None, reason="no openvmm binary on this host")
def test_openvmm_accepts_our_flags():
    out = subprocess.run([find_openvmm(), "--help"], capture_output=True, text=True, timeout=30).stdout
    for flag in ("--hv", "--com1", "--com2", "--vmbus-vsock-path", "--virtio-pmem", "--pcie-root-port", "--memory",
                 "--processors"):
        assert flag in out, flag
