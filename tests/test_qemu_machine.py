"""wslx.vmm.qemu.QemuMachine on TCG with the Debian cloud kernel and a busybox-script /init.

Tests that boot a guest are marked `vm`.  The /init here is a shell script (the
AgentX agent may not exist yet) whose behaviour is picked by `wslx.test=MODE`
on the kernel command line.
"""
from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
import uuid
from pathlib import Path

import pytest

from wslx.image import initramfs as ir
from wslx.spec.agentx import VIRTIO_SERIAL_PORT_NAME
from wslx.vmm.errors import (ChannelTimeout, ConsoleTimeout, GuestExited, GuestPanicked, LaunchError, VMError)
from wslx.vmm.qemu import QemuMachine, leftover_qemu_processes

# qemu-system-x86, linux-image-cloud-amd64 and busybox-static come with tools/setup.sh.
KERNEL = ir.find_default_kernel()

MARKER = "WSLX-TEST-MARKER"
BOOT_TIMEOUT = 30

INIT_SCRIPT = r"""#!/bin/sh
export PATH=/bin:/sbin:/usr/bin:/usr/sbin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
while read -r m; do insmod "$m" 2>/dev/null || echo "wslx-test: insmod failed: $m"; done < /etc/wslx/modules.load
mode=$(sed -n 's/.*wslx\.test=\([a-z]*\).*/\1/p' /proc/cmdline)
port=
for p in /sys/class/virtio-ports/*; do
  [ "$(cat "$p/name" 2>/dev/null)" = @PORT@ ] && port=/dev/${p##*/}
done
echo "WSLX-TEST-MARKER mode=$mode uptime=$(cut -d' ' -f1 /proc/uptime) agentx=$port"
case "$mode" in
  exit) echo "wslx-test: init exits"; exit 3 ;;
  poweroff) poweroff -f ;;
  channel)
    [ -e /dev/pmem0 ] && echo "wslx-test: pmem0 present"
    exec 3<>"$port"
    # ttyS1 is opened once, raw, before the host may send: bytes that reach a closed 16550 port
    # are lost (opening it resets the receiver and eats one), and a cooked one echoes and flushes
    exec 4<>/dev/ttyS1
    stty raw -echo <&4
    echo "hello-from-guest" >&3
    read -r line <&3
    echo "echo:$line" >&3
    read -r sline <&4
    echo "serial:$sline" >&4
    echo "wslx-test: channel done"
    while true; do sleep 1; done ;;
  *) while true; do sleep 1; done ;;
esac
""".replace("@PORT@", VIRTIO_SERIAL_PORT_NAME)


@pytest.fixture(scope="module")
def initrd(tmp_path_factory):
    out = tmp_path_factory.mktemp("initrd") / "test-initramfs.cpio"
    return ir.build_initramfs(out, None, kernel=KERNEL, init_script=INIT_SCRIPT)


def _machine(initrd, mode, tmp_path, **kw):
    # Run directories default to fresh dirs under $WSLX_RUN_DIR (set by conftest), which is
    # what the session-end leftover check looks for in QEMU command lines.
    return QemuMachine(KERNEL, initrd, append=f"wslx.test={mode}", virtio_serial_port=VIRTIO_SERIAL_PORT_NAME, **kw)


def _gone(pid: int, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with open(f"/proc/{pid}/stat") as f:
                if ") Z " in f.read():
                    return True
        except FileNotFoundError:
            return True
        time.sleep(0.05)
    return False


def _recv_until(sock: socket.socket, needle: bytes, timeout: float) -> bytes:
    sock.settimeout(0.5)
    buf = b""
    deadline = time.monotonic() + timeout
    while needle not in buf:
        if time.monotonic() > deadline:
            raise AssertionError(f"did not receive {needle!r}, got {buf!r}")
        try:
            chunk = sock.recv(4096)
        except socket.timeout:
            continue
        if not chunk:
            raise AssertionError(f"EOF before {needle!r}, got {buf!r}")
        buf += chunk
    return buf


@pytest.mark.vm
def test_boot_to_console_marker(initrd, tmp_path):
    with _machine(initrd, "hang", tmp_path) as vm:
        m = vm.wait_console(MARKER + r" mode=(\w+) uptime=([\d.]+) agentx=(\S*)", BOOT_TIMEOUT)
        boot_s = time.monotonic() - vm.start_time
        assert m.group(1) == "hang"
        assert m.group(3).startswith("/dev/vport"), f"{VIRTIO_SERIAL_PORT_NAME} port not found in guest"
        assert "insmod failed: /lib/modules/virtio" not in vm.read_console()
        pid = vm.pid
        rd = vm.run_dir
        print(f"boot to marker: {boot_s:.2f} s wall, guest uptime {m.group(2)} s")
    assert _gone(pid)
    assert vm.exitcode is not None
    for f in ("qemu.log", "console.log", "cmdline.txt"):
        assert (rd / f).exists(), f
    cmd = (rd / "cmdline.txt").read_text()
    assert "-accel tcg" in cmd and f"name={VIRTIO_SERIAL_PORT_NAME}" in cmd and "-no-reboot" in cmd


@pytest.mark.vm
def test_virtio_serial_and_serial_channels_and_pmem(initrd, tmp_path):
    pmem = tmp_path / "pmem.img"
    with open(pmem, "wb") as f:
        f.truncate(16 << 20)
    with _machine(initrd, "channel", tmp_path, serial_transport=True, pmem_path=pmem) as vm:
        vm.wait_console(MARKER, BOOT_TIMEOUT)
        s = vm.virtio_serial_socket(timeout=10)
        _recv_until(s, b"hello-from-guest\n", 30)
        s.sendall(b"ping\n")
        _recv_until(s, b"echo:ping\n", 30)
        # the guest has had ttyS1 open and raw since before it answered: one line, sent once, arrives
        # whole. (The test used to resend while the guest set the port up; the port's reset on open ate
        # the first byte of what waited, and the guest echoed "ong" once: no "serial:pong" ever.)
        ser = vm.serial_socket(timeout=10)
        ser.sendall(b"pong\n")
        _recv_until(ser, b"serial:pong\n", 60)
        vm.wait_console(r"wslx-test: channel done", 30)
        assert "pmem0 present" in vm.read_console()


@pytest.mark.vm
def test_console_timeout_has_transcript_and_cmdline(initrd, tmp_path):
    with _machine(initrd, "hang", tmp_path) as vm:
        vm.wait_console(MARKER, BOOT_TIMEOUT)
        with pytest.raises(ConsoleTimeout) as ei:
            vm.wait_console(r"NEVER-PRINTED-\d+", 1.5)
    e = ei.value
    text = str(e)
    assert "NEVER-PRINTED-\\d+" in text
    assert MARKER in e.console_tail and MARKER in text
    assert str(vm.console_log) in text
    assert e.cmdline and e.cmdline[0].endswith("qemu-system-x86_64") and "qemu-system-x86_64" in text
    assert e.log_dir == vm.run_dir
    assert isinstance(e, VMError) and isinstance(e, TimeoutError)


@pytest.mark.vm
def test_init_exit_raises_guest_panicked(initrd, tmp_path):
    with _machine(initrd, "exit", tmp_path) as vm:
        with pytest.raises(GuestPanicked) as ei:
            vm.wait_console(r"NEVER-PRINTED", BOOT_TIMEOUT)
    e = ei.value
    assert "Attempted to kill init" in e.console_tail
    assert "Kernel panic" in str(e)
    assert e.cmdline and e.log_dir == vm.run_dir
    assert not vm.is_running()


@pytest.mark.vm
def test_guest_poweroff_raises_guest_exited(initrd, tmp_path):
    with _machine(initrd, "poweroff", tmp_path) as vm:
        with pytest.raises(GuestExited) as ei:
            vm.wait_console(r"NEVER-PRINTED", BOOT_TIMEOUT)
    assert ei.value.exitcode == 0


def test_launch_error_carries_cmdline_and_output(initrd, tmp_path):
    vm = _machine(initrd, "hang", tmp_path, extra_args=["-device", "no-such-device-wslx"])
    with pytest.raises(LaunchError) as ei:
        with vm:
            pass
    e = ei.value
    assert e.exitcode not in (None, 0)
    assert "no-such-device-wslx" in e.output
    assert "no-such-device-wslx" in " ".join(e.cmdline)
    assert "no-such-device-wslx" in str(e)
    assert not vm.is_running()


def test_missing_kernel_is_launch_error(tmp_path):
    with pytest.raises(LaunchError):
        with QemuMachine(tmp_path / "no-kernel", None):
            pass


@pytest.mark.vm
def test_process_gone_after_exception_in_with(initrd, tmp_path):
    class Boom(Exception):
        pass

    with pytest.raises(Boom):
        with _machine(initrd, "hang", tmp_path) as vm:
            pid = vm.pid
            assert vm.is_running()
            raise Boom()
    assert _gone(pid)


@pytest.mark.vm
def test_graceful_shutdown_steps(initrd, tmp_path):
    with _machine(initrd, "hang", tmp_path) as vm:
        vm.wait_console(MARKER, BOOT_TIMEOUT)
        t0 = time.monotonic()
        rc = vm.shutdown(wait=0.2)  # the guest ignores it; quit ends QEMU
        assert rc is not None and time.monotonic() - t0 < 5
        assert not vm.is_running()


CHILD = textwrap.dedent("""
    import sys, time
    from wslx.vmm.qemu import QemuMachine
    vm = QemuMachine(sys.argv[1], sys.argv[2], append="wslx.test=hang")
    vm.launch()
    print(vm.pid, flush=True)
    time.sleep(120)
""")


@pytest.mark.vm
def test_sigkilled_owner_leaves_no_qemu(initrd, tmp_path):
    session = f"test-{uuid.uuid4().hex[:8]}"
    env = dict(os.environ, WSLX_SESSION=session)
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(KERNEL), str(initrd)],
                             stdout=subprocess.PIPE, env=env, text=True)
    try:
        line = child.stdout.readline()
        assert line.strip().isdigit(), f"child did not report a pid: {line!r}"
        qpid = int(line)
        assert [p for p, _ in leftover_qemu_processes(session)] == [qpid]
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=10)
        assert _gone(qpid, 10), "QEMU survived its SIGKILLed owner"
        assert leftover_qemu_processes(session) == []
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()


def test_silent_qmp_monitor_is_a_launch_error_within_the_timeout(tmp_path):
    """A QEMU whose monitor accepts but never greets must not hang launch()."""
    fake = tmp_path / "fake-qemu"
    fake.write_text(textwrap.dedent(f"""\
        #!{sys.executable}
        import re, socket, sys, time
        path = next(m.group(1) for a in sys.argv if (m := re.search(r"id=qmp,path=([^,]+)", a)))
        s = socket.socket(socket.AF_UNIX)
        s.bind(path)
        s.listen(1)
        conn, _ = s.accept()
        time.sleep(60)
        """))
    fake.chmod(0o755)
    t0 = time.monotonic()
    with pytest.raises(LaunchError, match="QMP greeting did not arrive"):
        with QemuMachine("/nonexistent-kernel", qemu_binary=str(fake), launch_timeout=2.0):
            pass
    assert time.monotonic() - t0 < 10


def test_panic_before_qmp_is_reported_as_a_panic(tmp_path):
    """A guest that panics (and takes QEMU down) before QMP answers is a GuestPanicked with
    the console tail, not a launch error; without the panic line it stays a LaunchError."""
    def fake_qemu(name: str, console_text: str) -> Path:
        fake = tmp_path / name
        fake.write_text(textwrap.dedent(f"""\
            #!{sys.executable}
            import re, sys
            path = next(m.group(1) for a in sys.argv if (m := re.search(r"id=con0,path=([^,]+)", a)))
            open(path, "w").write({console_text!r})
            sys.exit(0)
            """))
        fake.chmod(0o755)
        return fake

    text = "booting\ntrap: vector 14 (#PF page fault) rip=100123 cr2=dead0000000 error=2\ntrackb: stopped\n"
    with pytest.raises(GuestPanicked, match="during launch: trap: vector 14") as ei:
        with QemuMachine("/k", qemu_binary=str(fake_qemu("panics", text)), panic_regex=r"^trap: vector \d+",
                         run_dir=tmp_path / "a"):
            pass
    assert "trackb: stopped" in ei.value.console_tail
    with pytest.raises(LaunchError, match="exited with code 0 during launch"):
        with QemuMachine("/k", qemu_binary=str(fake_qemu("exits", "booting\n")), panic_regex=r"^trap: vector \d+",
                         run_dir=tmp_path / "b"):
            pass


def test_run_to_exit_returns_status_or_kills_on_timeout(tmp_path):
    """run_to_exit: a QEMU that ends by itself gives its status and time, without QMP; one that
    does not is killed at the timeout and reported with its command line."""
    def fake_qemu(name: str, body: str) -> Path:
        fake = tmp_path / name
        fake.write_text(f"#!{sys.executable}\nimport sys, time\n{body}\n")
        fake.chmod(0o755)
        return fake

    vm = QemuMachine("/k", qemu_binary=str(fake_qemu("exits", "sys.exit(5)")), run_dir=tmp_path / "a")
    rc, seconds = vm.run_to_exit(10)
    assert rc == 5 and 0 < seconds < 10 and not vm.is_running()
    vm = QemuMachine("/k", qemu_binary=str(fake_qemu("hangs", "time.sleep(60)")), run_dir=tmp_path / "b")
    with pytest.raises(ChannelTimeout, match="did not exit by itself within 0.5 s") as ei:
        vm.run_to_exit(0.5)
    assert not vm.is_running() and "hangs" in " ".join(ei.value.cmdline)


class _QMPStub:
    """pull_event as qemu.qmp's legacy QEMUMonitorProtocol: wait>0 raises asyncio.TimeoutError
    when no event comes; `error` is raised by every pull (a broken connection)."""

    def __init__(self, events=(), error: BaseException | None = None):
        self.events, self.error = list(events), error

    def pull_event(self, wait=False):
        if self.error is not None:
            raise self.error
        if self.events:
            return self.events.pop(0)
        if wait:
            raise asyncio.TimeoutError
        return None


def test_poll_events_passes_every_error_but_its_own_timeout(tmp_path):
    vm = QemuMachine(KERNEL, None)
    vm.qmp = _QMPStub()
    assert vm.poll_events(wait=0.01) == []               # no event within the wait: nothing new
    vm.qmp = _QMPStub([{"event": "STOP"}, {"event": "GUEST_PANICKED"}])
    assert [e["event"] for e in vm.poll_events(wait=0.01)] == ["STOP", "GUEST_PANICKED"]
    assert [e["event"] for e in vm.events] == ["STOP", "GUEST_PANICKED"]
    vm.qmp = _QMPStub(error=ConnectionResetError(104, "Connection reset by peer"))
    with pytest.raises(ConnectionResetError):
        vm.poll_events(wait=0.01)


def test_panic_report_waits_for_the_panic_line(tmp_path):
    """The panic line is reported whole: check_alive waits (bounded) for its newline while
    QEMU runs, and takes the console as it is once QEMU is gone."""
    vm = QemuMachine(KERNEL, None, run_dir=tmp_path)
    vm.run_dir = tmp_path
    log = tmp_path / "console.log"
    log.write_text("boot\nKernel panic - not syncing: Attempted to kill in")
    vm.proc = subprocess.Popen(["sleep", "60"])          # a running "QEMU"
    try:
        t0 = time.monotonic()
        m = vm._wait_panic_line(0.3)                     # never completed: the timeout ends the wait
        assert m and time.monotonic() - t0 >= 0.3
        with open(log, "a") as f:
            f.write("it!\nmore\n")
        t0 = time.monotonic()
        m = vm._wait_panic_line(30)
        assert time.monotonic() - t0 < 5 and vm._line_at(m) == "Kernel panic - not syncing: Attempted to kill init!"
    finally:
        vm.proc.kill()
        vm.proc.wait()
    log.write_text("Kernel panic - not syncing: cut sho")
    vm._console_off, vm._console_text = 0, ""
    t0 = time.monotonic()
    assert vm._wait_panic_line(30) and time.monotonic() - t0 < 5   # QEMU gone: no waiting
