"""Track A end to end: the Linux guest boots under QEMU with wslx-init as PID 1
and passes the same conformance suite as the reference agent."""
from __future__ import annotations

import subprocess
import sys

import pytest

from wslx.agentx.errors import AgentTimeout
from wslx.conformance import runner
from wslx.conformance.targets import TARGETS
from wslx.guests.linux import LinuxGuest

pytestmark = [pytest.mark.vm, pytest.mark.slow]
WSLX = [sys.executable, "-m", "wslx.cli"]


def test_run_uname_prints_the_guest_kernel_and_exits_zero():
    r = subprocess.run(WSLX + ["run", "linux", "--", "uname", "-a"], capture_output=True, text=True, timeout=180)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("Linux ") and "cloud-amd64" in r.stdout, r.stdout
    assert "HELLO after" in r.stderr  # progress goes to stderr, output to stdout


def test_run_exits_with_the_commands_status():
    r = subprocess.run(WSLX + ["run", "linux", "--", "sh", "-c", "echo to-stderr >&2; exit 3"],
                       capture_output=True, text=True, timeout=180)
    assert r.returncode == 3, r.stderr
    assert "to-stderr" in r.stderr


def test_run_of_a_missing_program_reports_errno():
    r = subprocess.run(WSLX + ["run", "linux", "--", "/no/such/program"], capture_output=True, text=True, timeout=180)
    assert r.returncode == 127
    assert "ENOENT" in r.stderr and "/no/such/program" in r.stderr


def test_boot_prints_hello_details_and_console_log():
    r = subprocess.run(WSLX + ["boot", "linux"], capture_output=True, text=True, timeout=180)
    assert r.returncode == 0, r.stderr
    assert "wslx-init" in r.stdout and "linux_init" in r.stdout
    assert "console log:" in r.stdout and "console.log" in r.stdout
    assert "capabilities: EXEC" in r.stdout


def test_conformance_suite_passes_against_the_linux_guest(tmp_path):
    with TARGETS["linux"](timeout=20) as t:
        report = runner.run_suite(t, timeout=20, log=lambda s: None)
    runner.write_junit(report, tmp_path / "linux.xml")
    assert report.ok, runner.format_table(report)
    passed = {r.name for r in report.results if r.status == "pass"}
    assert {"mount_and_unmount", "config_sets_hostname", "reconnect_after_host_disconnect",
            "malformed_garbage", "shutdown_ends_the_agent"} <= passed


def test_host_side_timeout_carries_console_tail_and_command_line():
    with LinuxGuest() as g:
        with pytest.raises(AgentTimeout) as ei:
            g.client.run(["sleep", "5"], timeout=0.5)
        msg = str(ei.value)
        assert "timed out waiting for EXIT" in msg
        assert "qemu-system-x86_64" in msg and "console (last lines)" in msg and "console.log" in msg
        assert g.client.ping(b"still-alive") == b"still-alive"
        g.shutdown()


def test_quiesce_flushes_guest_writes_to_the_portal_backing_file(tmp_path):
    """Bytes the guest writes to /dev/pmem0 reach the host file once QUIESCE has
    synced and flushed; CONFIG with a Portal device makes the agent advertise PORTAL."""
    backing = tmp_path / "portal.img"
    backing.write_bytes(bytes(16 << 20))
    with LinuxGuest(pmem_path=backing, pmem_size=16 << 20, log=lambda s: None) as g:
        # The writer keeps the device open, so only QUIESCE's sync and flush can push the
        # dirty page out (the kernel's own writeback waits 30 s for a dirty page).
        writer = g.client.exec(["sh", "-c", "exec 3>/dev/pmem0; printf WSLX-PORTAL-FLUSHED >&3; echo written; sleep 60"])
        writer.wait_for_output(b"written", timeout=10)
        assert backing.read_bytes()[:19] == bytes(19), "written back before QUIESCE: the test proves nothing"
        q = g.client.quiesce()
        assert q["flushed_regions"] >= 1, q
        assert backing.read_bytes()[:19] == b"WSLX-PORTAL-FLUSHED"
        writer.signal(9)
        writer.wait()
        g.client.resume()
        g.client.config(portal_device="/dev/pmem0", portal_size=16 << 20)
        assert "PORTAL" in g.client.negotiate().capability_names
        g.shutdown()


@pytest.mark.parametrize("forced", [True, False], ids=["forced-serial", "auto-fallback"])
def test_agent_falls_back_to_a_serial_line(forced):
    """Without vsock or the virtio-serial port, the agent serves AgentX on ttyS1 (forced with
    wslx.transport=serial, or chosen by auto after the other transports stay absent)."""
    from wslx.agentx.client import AgentClient
    from wslx.image.initramfs import find_default_kernel
    from wslx.vmm.qemu import QemuMachine
    from wslx.guests.linux import ensure_built, images_dir
    ensure_built(log=lambda s: None)
    append = "wslx.transport=serial" if forced else ""
    with QemuMachine(find_default_kernel(), images_dir() / "linux-initramfs.cpio", append=append,
                     serial_transport=True, log=lambda s: None) as vm:
        client = AgentClient(vm.serial_socket(timeout=30), default_timeout=30, name="serial")
        # A serial line cannot tell the agent that the host attached: ask for an announcement.
        vm.wait_console(r"wslx-init: agentx on serial", timeout=60)
        client.negotiate(timeout=10)
        assert client.run(["echo", "over-serial"]).stdout == b"over-serial\n"
        client.shutdown()
        assert vm.wait_exit(20) is not None


@pytest.mark.skipif(not __import__("os").path.exists("/dev/vhost-vsock"),
                    reason="no /dev/vhost-vsock on this host: QEMU cannot give the guest a virtio-vsock device")
def test_agent_prefers_vsock_when_the_host_offers_it():
    """Transport order: AF_VSOCK to CID 2 comes first. The host listens on the AgentX port
    and the guest dials it (as hv_sock, virtio-vsock and Firecracker give)."""
    import socket
    from wslx.agentx.client import AgentClient
    from wslx.spec.agentx import VSOCK_CONTROL_PORT
    listener = socket.socket(socket.AF_VSOCK, socket.SOCK_STREAM)
    listener.bind((socket.VMADDR_CID_ANY, VSOCK_CONTROL_PORT))
    listener.listen(1)
    listener.settimeout(60)
    from wslx.guests.linux import ensure_built, images_dir
    from wslx.image.initramfs import find_default_kernel
    from wslx.vmm.qemu import QemuMachine
    ensure_built(log=lambda s: None)
    try:
        with QemuMachine(find_default_kernel(), images_dir() / "linux-initramfs.cpio",
                         extra_args=["-device", "vhost-vsock-pci,guest-cid=42"], log=lambda s: None) as vm:
            conn, (cid, _port) = listener.accept()
            assert cid == 42
            client = AgentClient(conn, default_timeout=20, name="vsock")
            assert client.wait_hello().name.startswith("wslx-init")
            assert client.run(["echo", "over-vsock"]).stdout == b"over-vsock\n"
            client.shutdown()
            assert vm.wait_exit(20) is not None
    finally:
        listener.close()
