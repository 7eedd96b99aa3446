"""QemuMachine: one qemu-system-x86_64 process on TCG, owned by a `with` block.

Modelled on QEMU's python/qemu/machine QEMUMachine, reduced to what the WSLX
kit needs: direct kernel + initrd boot, a serial console logged to a file,
QMP through the `qemu.qmp` package, an optional named virtio-serial port and
an optional ttyS1, each a Unix socket, optional virtio-pmem and pvpanic. It
launches VMs and knows no guest protocol: what talks over those sockets (the
AgentX agent) is wslx.guests' business.

Per-VM run directory (given, or a fresh one under $WSLX_RUN_DIR or the temp dir):
    cmdline.txt   the full QEMU command line (shell-quoted)
    qemu.log      QEMU's own stdout+stderr
    console.log   the guest's ttyS0
    qmp.sock      QMP monitor (QEMU listens)
    vport.sock    the virtio-serial port, if one is named (QEMU listens)
    serial1.sock  ttyS1, if enabled (QEMU listens)

No QEMU outlives its owner: the process gets PR_SET_PDEATHSIG=SIGKILL and its
own session/process group; `__exit__` always ends it (quit, SIGTERM, SIGKILL);
`leftover_qemu_processes()` finds any tagged QEMU still running (from /proc).  Note that
PDEATHSIG fires when the *thread* that launched QEMU exits: launch from a
thread that lives as long as the machine (normally the main thread).

Measured here (Debian cloud kernel 6.1 + 21 modules, TCG, 2 cores), boot to an
initramfs marker printed after loading the modules: q35+SeaBIOS ~2.3 s wall,
q35+qboot ~2.2 s, microvm,pcie=on ~2.1 s but without virtio-pmem (no memory
hotplug).  The default is therefore q35 with qboot when available.
"""
from __future__ import annotations

import asyncio
import ctypes
import logging
import os
import re
import select
import shlex
import signal
import socket
import subprocess
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Callable, Sequence

from .errors import (ChannelTimeout, ConsoleTimeout, GuestExited, GuestPanicked, LaunchError,
                     MigrationError, ShutdownError, VMError)
from ..spec import gemini as gemini_spec
from .procs import processes

_log = logging.getLogger(__name__)

QEMU_BINARY = "qemu-system-x86_64"
QBOOT_ROM = Path("/usr/share/qemu/qboot.rom")
NAME_PREFIX = "wslx-"
OWNER_ENV = "WSLX_OWNER"      # pid of the Python process that launched QEMU
# A launcher's tag for the QEMUs it starts: set it in the environment to pick out your own
# with leftover_qemu_processes(session); unset, each QEMU gets its owner's pid.
SESSION_ENV = "WSLX_SESSION"
PANIC_RE = re.compile(r"Kernel panic - not syncing")
PANIC_LINE_TIMEOUT = 2.0      # seconds a panic report waits for the panic line to be complete
CONSOLE_TAIL_LINES = 40

PR_SET_PDEATHSIG = 1


def _tail(text: str, lines: int = CONSOLE_TAIL_LINES) -> str:
    return "\n".join(text.splitlines()[-lines:])


def _make_preexec(parent_pid: int):
    libc = ctypes.CDLL(None, use_errno=True)

    def preexec():  # runs in the child between fork and exec
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        if os.getppid() != parent_pid:  # owner died before prctl took effect
            os._exit(1)

    return preexec


def default_run_root() -> Path:
    root = os.environ.get("WSLX_RUN_DIR")
    if root:
        Path(root).mkdir(parents=True, exist_ok=True)
        return Path(root)
    return Path(tempfile.gettempdir())


class QemuMachine:
    """Context manager owning one QEMU process.

        with QemuMachine(kernel, initrd, virtio_serial_port="org.example.port") as vm:
            vm.wait_console(r"ready", timeout=20)
            sock = vm.virtio_serial_socket(timeout=20)

    Construction does nothing; `launch()` (or entering the `with`) starts QEMU
    and connects QMP.  Every wait takes a timeout.
    """

    def __init__(
        self,
        kernel: Path | str,
        initrd: Path | str | None = None,
        *,
        append: str | Sequence[str] = "",
        quiet: bool = True,
        run_dir: Path | str | None = None,
        machine: str = "q35",
        firmware: str | Path | None = "auto",
        accel: str = "tcg",
        memory: int = 512,
        cpus: int = 1,
        pvpanic: bool = True,
        virtio_serial_port: str | None = None,
        named_ports: Sequence[str] = (),
        serial_transport: bool = False,
        pmem_path: Path | str | None = None,
        pmem_size: int | str | None = None,
        pmem_addr: int | None = None,
        panic_regex: str | re.Pattern = PANIC_RE,
        extra_args: Sequence[str] = (),
        qemu_binary: str = QEMU_BINARY,
        name: str | None = None,
        launch_timeout: float = 10.0,
        exit_grace: float = 0.0,
        powerdown_grace: float = 0.0,
        log: Callable[[str], None] | None = None,
        ram_path: Path | str | None = None,
        ram_shared: bool = True,
        incoming: bool = False,
        control_socket: bool = False,
        vsock_cid: int | None = None,
    ):
        """machine: 'q35' or 'microvm' (microvm gets pcie=on; no virtio-pmem there).
        firmware: 'auto' (qboot if installed, else SeaBIOS), 'seabios'/None, 'qboot', or a ROM path.
        append: extra kernel command-line words after `console=ttyS0 panic=-1 [quiet]`.
        virtio_serial_port: name of a virtio-serial port whose host side is vport.sock
        (virtio_serial_socket()); None: no virtio-serial device. named_ports: more virtio-serial
        ports (e.g. Gemini's signal and upcall ports), host side port-<name>.sock
        (named_port_socket(name)). serial_transport: ttyS1's
        host side is serial1.sock (serial_socket()).
        pmem_path/pmem_size: back a virtio-pmem device with that file (size in bytes,
        or a QEMU size string; default the file's size).  pmem_addr: pin the device's
        guest-physical address (virtio-pmem-pci memaddr=), so a restored snapshot finds
        the region where the guest mapped it.  exit_grace/powerdown_grace:
        seconds `__exit__` waits for the guest to exit by itself / after system_powerdown.
        ram_path: guest RAM in this file (memory-backend-file, -machine memory-backend=) instead
        of anonymous memory; ram_shared: map it shared (share=on: guest stores land in the file,
        the snapshot fast path) or private (share=off: copy-on-write over the file, a clone).
        incoming: start paused with `-incoming defer`, waiting for migrate_incoming().
        control_socket: a second QMP monitor at qmp-ctl.sock, for another process (e.g.
        `wslx snapshot save --vm RUNDIR`) while this one holds qmp.sock.
        vsock_cid: give the guest a virtio-vsock device (vhost-vsock-pci, needs /dev/vhost-vsock)
        with this CID; Gemini's named ports are then vsock ports (the numbers in wslx.spec.gemini)
        that the guest dials and named_port_socket(name) accepts, not virtio-serial ports.
        """
        self.kernel = Path(kernel)
        self.initrd = Path(initrd) if initrd is not None else None
        self.append = append if isinstance(append, str) else " ".join(append)
        self.quiet = quiet
        self.machine = machine
        self.firmware = firmware
        self.accel = accel
        self.memory = memory
        self.cpus = cpus
        self.pvpanic = pvpanic
        self.virtio_serial_port = virtio_serial_port
        self.vsock_cid = vsock_cid
        # Gemini's named ports that are streams the guest dials (vsock; hv_sock under hvsim), by name
        self.stream_ports = {n: int(p) for n in named_ports
                             if self.gemini_streams() and (p := gemini_spec.port_named(n)) is not None}
        self.named_ports = [n for n in named_ports if n not in self.stream_ports]
        self._stream_listeners: dict[int, socket.socket] = {}
        self.serial_transport = serial_transport
        self.pmem_path = Path(pmem_path) if pmem_path is not None else None
        self.pmem_size = pmem_size
        self.pmem_addr = pmem_addr
        self.panic_re = re.compile(panic_regex, re.MULTILINE) if isinstance(panic_regex, str) else panic_regex
        self.extra_args = list(extra_args)
        self.ram_path = Path(ram_path) if ram_path is not None else None
        self.ram_shared = ram_shared
        self.incoming = incoming
        self.control_socket = control_socket
        self.qemu_binary = qemu_binary
        self.id = uuid.uuid4().hex[:10]
        self.name = name or f"{NAME_PREFIX}{self.id}"
        if not self.name.startswith(NAME_PREFIX):
            self.name = NAME_PREFIX + self.name
        self.launch_timeout = launch_timeout
        self.exit_grace = exit_grace
        self.powerdown_grace = powerdown_grace
        self._log_fn = log or _log.info
        self._given_run_dir = Path(run_dir) if run_dir is not None else None
        self.run_dir: Path | None = None
        self.cmdline: list[str] = []
        self.proc: subprocess.Popen | None = None
        self._end_reported = False   # the "ended with code" line, once (shutdown, then __exit__)
        self.qmp = None
        self.exitcode: int | None = None
        self.start_time: float | None = None  # time.monotonic() at process start
        self.events: list[dict] = []  # QMP events seen so far
        self._sockets: list[socket.socket] = []
        self._qemu_log = None
        self._console_text = ""
        self._console_off = 0

    # ------------------------------------------------------------------ paths

    def _path(self, name: str) -> Path:
        assert self.run_dir is not None, "machine not launched"
        return self.run_dir / name

    @property
    def console_log(self) -> Path:
        return self._path("console.log")

    @property
    def qemu_log(self) -> Path:
        return self._path("qemu.log")

    @property
    def qmp_socket_path(self) -> Path:
        return self._path("qmp.sock")

    @property
    def virtio_serial_socket_path(self) -> Path:
        return self._path("vport.sock")

    @property
    def control_socket_path(self) -> Path:
        return self._path("qmp-ctl.sock")

    @property
    def serial_socket_path(self) -> Path:
        return self._path("serial1.sock")

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    # ------------------------------------------------------------------ command line

    def kernel_cmdline(self) -> str:
        words = ["console=ttyS0", "panic=-1"]
        if self.quiet:
            words.append("quiet")
        if self.append:
            words.append(self.append)
        return " ".join(words)

    def _firmware_args(self) -> list[str]:
        fw = self.firmware
        if self.machine.startswith("microvm"):
            return []  # microvm brings its own qboot-based bios-microvm.bin
        if fw == "auto":
            return ["-bios", str(QBOOT_ROM)] if QBOOT_ROM.is_file() else []
        if fw in (None, "", "seabios"):
            return []
        if fw == "qboot":
            return ["-bios", str(QBOOT_ROM)]
        return ["-bios", str(fw)]

    def preview_cmdline(self) -> list[str]:
        """The argv launch() would run, without launching (run dir as given, or <run-dir>)."""
        saved = self.run_dir
        self.run_dir = self._given_run_dir or Path("<run-dir>")
        try:
            return self.build_cmdline()
        finally:
            self.run_dir = saved

    def build_cmdline(self) -> list[str]:
        """The QEMU argv (run_dir must be set)."""
        rd = self.run_dir
        assert rd is not None
        machine = self.machine
        if machine == "microvm":
            machine = "microvm,pcie=on"
        if self.ram_path is not None:
            machine += ",memory-backend=ram0"
        args = [
            self.qemu_binary,
            "-name", self.name,
            "-accel", self.accel,
            "-M", machine,
            "-nodefaults", "-no-user-config", "-nographic", "-no-reboot",
            "-smp", str(self.cpus),
        ]
        args += self._firmware_args()
        if self.pmem_path is not None:
            args += ["-m", f"{self.memory},slots=2,maxmem=2G"]
        else:
            args += ["-m", str(self.memory)]
        if self.ram_path is not None:
            args += ["-object", f"memory-backend-file,id=ram0,share={'on' if self.ram_shared else 'off'},"
                                f"mem-path={self.ram_path},size={self.memory}M"]
        args += ["-kernel", str(self.kernel)]
        if self.initrd is not None:
            args += ["-initrd", str(self.initrd)]
        args += ["-append", self.kernel_cmdline()]
        args += ["-chardev", f"socket,id=qmp,path={self.qmp_socket_path},server=on,wait=off",
                 "-mon", "chardev=qmp,mode=control"]
        if self.control_socket:
            args += ["-chardev", f"socket,id=qmpctl,path={self.control_socket_path},server=on,wait=off",
                     "-mon", "chardev=qmpctl,mode=control"]
        args += ["-chardev", f"file,id=con0,path={self.console_log}", "-serial", "chardev:con0"]
        if self.serial_transport:
            args += ["-chardev", f"socket,id=ser1,path={self.serial_socket_path},server=on,wait=off",
                     "-serial", "chardev:ser1"]
        if self.virtio_serial_port is not None or self.named_ports:
            args += ["-device", "virtio-serial-pci,id=vser0"]
        if self.virtio_serial_port is not None:
            args += ["-chardev", f"socket,id=vport,path={self.virtio_serial_socket_path},server=on,wait=off",
                     "-device", f"virtserialport,bus=vser0.0,chardev=vport,name={self.virtio_serial_port}"]
        for i, name in enumerate(self.named_ports):
            args += ["-chardev", f"socket,id=nport{i},path={self.named_port_path(name)},server=on,wait=off",
                     "-device", f"virtserialport,bus=vser0.0,chardev=nport{i},name={name}"]
        if self.vsock_cid is not None:
            args += ["-device", f"vhost-vsock-pci,guest-cid={self.vsock_cid}"]
        if self.pvpanic:
            args += ["-device", "pvpanic"]
        if self.pmem_path is not None:
            size = self.pmem_size if self.pmem_size is not None else os.stat(self.pmem_path).st_size
            args += ["-object", f"memory-backend-file,id=pmem0,share=on,mem-path={self.pmem_path},size={size}",
                     "-device", "virtio-pmem-pci,memdev=pmem0,id=pmem0"
                     + (f",memaddr={self.pmem_addr:#x}" if self.pmem_addr is not None else "")]
        if self.incoming:
            args += ["-incoming", "defer"]
        args += self.extra_args
        return args

    # ------------------------------------------------------------------ launch

    def __enter__(self) -> "QemuMachine":
        self.launch()
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        try:
            self.shutdown(wait=self.exit_grace, powerdown=self.powerdown_grace)
        except Exception:
            if exc_type is None:
                raise
            _log.exception("shutdown after an exception failed")

    def launch(self) -> None:
        self._start_process()
        try:
            self._connect_qmp()
        except BaseException as e:
            self._kill_now()
            # A guest that panics within milliseconds can take QEMU down (pvpanic's default
            # action) before QMP answers: report the panic, not a failed launch.
            m = self.panic_re.search(self.read_console())
            if m and isinstance(e, (LaunchError, OSError, EOFError)):
                raise GuestPanicked(f"guest panicked during launch: {self._line_at(m)}", exitcode=self.exitcode,
                                    event=None, **self._common()) from e
            raise
        self._log_fn(f"[vm {self.name}] QMP up after {time.monotonic() - self.start_time:.2f} s")

    def run_to_exit(self, timeout: float) -> tuple[int, float]:
        """Run a guest that ends by itself at once (the boot benchmark's floor kernel) without
        QMP, which it could outrun. Returns (QEMU's exit status, seconds from process start to
        exit); past `timeout` QEMU is killed and ChannelTimeout raised."""
        self._start_process()
        try:
            rc = _wait_promptly(self.proc, timeout)
        except subprocess.TimeoutExpired:
            self._kill_now()
            raise ChannelTimeout(f"QEMU did not exit by itself within {timeout} s", **self._common()) from None
        seconds = time.monotonic() - self.start_time
        self._reap(rc)
        return rc, seconds

    def _start_process(self) -> None:
        if self.proc is not None:
            raise VMError("machine already launched", log_dir=self.run_dir)
        if self._given_run_dir is not None:
            self.run_dir = self._given_run_dir
            self.run_dir.mkdir(parents=True, exist_ok=True)
        else:
            self.run_dir = Path(tempfile.mkdtemp(prefix="wslx-run-", dir=default_run_root()))
        for n in ("qmp.sock", "vport.sock", "serial1.sock", "console.log",
                  *(f"port-{name}.sock" for name in self.named_ports)):
            try:
                os.unlink(self._path(n))
            except FileNotFoundError:
                pass
        for port in self.stream_ports.values():   # before the guest's first dial
            self._stream_listen(port)
        self.cmdline = self.build_cmdline()
        self._path("cmdline.txt").write_text(shlex.join(self.cmdline) + "\n")
        env = dict(os.environ)
        env[OWNER_ENV] = str(os.getpid())
        env[SESSION_ENV] = os.environ.get(SESSION_ENV, str(os.getpid()))
        self._qemu_log = open(self.qemu_log, "wb")
        self.start_time = time.monotonic()
        try:
            self.proc = subprocess.Popen(
                self.cmdline, stdin=subprocess.DEVNULL, stdout=self._qemu_log, stderr=subprocess.STDOUT,
                env=env, start_new_session=True, preexec_fn=_make_preexec(os.getpid()), close_fds=True)
        except OSError as e:
            self._qemu_log.close()
            raise LaunchError(f"cannot start {self.qemu_binary}: {e}", cmdline=self.cmdline,
                              log_dir=self.run_dir) from e
        self._log_fn(f"[vm {self.name}] launched pid {self.proc.pid} ({self.machine}, {self.accel}); "
                     f"run dir {self.run_dir}")

    def _connect_qmp(self) -> None:
        from qemu.qmp.legacy import QEMUMonitorProtocol

        deadline = time.monotonic() + self.launch_timeout
        last_err: Exception | None = None
        while True:
            rc = self.proc.poll()
            if rc is not None:
                raise self._launch_error(f"QEMU exited with code {rc} during launch", rc)
            if self.qmp_socket_path.exists():
                qmp = QEMUMonitorProtocol(str(self.qmp_socket_path))
                try:
                    self._connect_with_deadline(qmp, deadline)
                    qmp.settimeout(10.0)
                    self.qmp = qmp
                    return
                except LaunchError:
                    raise
                except Exception as e:  # ConnectError, OSError
                    last_err = e
                    try:
                        qmp.close()
                    except Exception:
                        pass
            if time.monotonic() > deadline:
                raise self._launch_error(
                    f"QMP monitor did not come up within {self.launch_timeout} s (last error: {last_err})", None)
            time.sleep(0.02)

    def _connect_with_deadline(self, qmp, deadline: float) -> None:
        """qemu.qmp's connect() waits for the QMP greeting without a timeout; run it in a
        thread and, if QEMU stays silent past the deadline, kill QEMU (which ends the wait)."""
        result: list[BaseException | None] = []

        def connect():
            try:
                qmp.connect()
                result.append(None)
            except BaseException as e:  # handed to the launching thread
                result.append(e)

        t = threading.Thread(target=connect, name=f"{self.name}-qmp-connect", daemon=True)
        t.start()
        t.join(max(0.0, deadline - time.monotonic()))
        if t.is_alive():
            self._kill_now()
            t.join(5.0)
            raise self._launch_error(f"QMP greeting did not arrive within {self.launch_timeout} s", self.exitcode)
        if result and result[0] is not None:
            raise result[0]

    def _launch_error(self, msg: str, rc: int | None) -> LaunchError:
        return LaunchError(msg, exitcode=rc, output=self.read_qemu_log(), cmdline=self.cmdline,
                           console_tail=_tail(self.read_console()), log_dir=self.run_dir)

    # ------------------------------------------------------------------ logs, events

    def read_qemu_log(self) -> str:
        try:
            return self.qemu_log.read_text(errors="replace")
        except (FileNotFoundError, AssertionError):
            return ""

    def read_console(self) -> str:
        """Everything the guest wrote to ttyS0 so far (read incrementally)."""
        if self.run_dir is None:
            return ""
        try:
            with open(self.console_log, "rb") as f:
                f.seek(self._console_off)
                new = f.read()
        except FileNotFoundError:
            return self._console_text
        if new:
            # Keep an incomplete UTF-8 sequence for the next read.
            cut = len(new)
            for i in range(1, min(4, len(new)) + 1):
                b = new[-i]
                if b & 0xC0 == 0xC0:  # lead byte: is its sequence complete?
                    need = 2 if b < 0xE0 else 3 if b < 0xF0 else 4
                    if i < need:
                        cut = len(new) - i
                    break
                if b & 0x80 == 0:
                    break
            self._console_off += cut
            self._console_text += new[:cut].decode("utf-8", errors="replace")
        return self._console_text

    def console_tail(self, lines: int = CONSOLE_TAIL_LINES) -> str:
        return _tail(self.read_console(), lines)

    def poll_events(self, wait: float = 0.0) -> list[dict]:
        """New QMP events (also appended to `self.events`); `wait` s for the first one."""
        new = []
        if self.qmp is None:
            return new
        if wait > 0:
            try:
                new.append(self.qmp.pull_event(wait=float(wait)))
            except asyncio.TimeoutError:  # no event within `wait`: nothing new
                pass
        while (ev := self.qmp.pull_event(wait=False)) is not None:
            new.append(ev)
        self.events += new
        return new

    def _panic_event(self, wait: float = 0.0) -> dict | None:
        self.poll_events(wait)
        for ev in self.events:
            if ev.get("event") == "GUEST_PANICKED":
                return ev
        return None

    def _line_at(self, m: re.Match) -> str:
        """The console line holding match m (of read_console()'s text)."""
        s = self._console_text
        end = s.find("\n", m.start())
        return s[s.rfind("\n", 0, m.start()) + 1: end if end >= 0 else len(s)].strip()

    def _common(self) -> dict:
        return dict(cmdline=self.cmdline, console_tail=self.console_tail(), log_dir=self.run_dir)

    def check_alive(self, what: str = "") -> None:
        """Raise GuestPanicked / GuestExited if the guest panicked or QEMU exited."""
        rc = self.proc.poll() if self.proc else None
        # Once QEMU has exited, give the QMP reader a moment to deliver GUEST_PANICKED.
        ev = self._panic_event(0.2 if rc is not None and self.qmp is not None else 0.0)
        text = self.read_console()
        if ev is not None or self.panic_re.search(text):
            m = self._wait_panic_line(PANIC_LINE_TIMEOUT)
            line = self._line_at(m) if m else ""
            raise GuestPanicked(f"guest panicked{' while ' + what if what else ''}: {line or ev}",
                                exitcode=rc, event=ev, **self._common())
        if rc is not None:
            self._reap(rc)
            raise GuestExited(f"QEMU exited with code {rc}{' while ' + what if what else ''}",
                              exitcode=rc, **self._common())

    def _wait_panic_line(self, timeout: float) -> re.Match | None:
        """The panic message's match once its line is complete on the console (or QEMU has
        exited, so the console holds all there will be), waiting up to `timeout`: the guest
        may still be writing it when the QMP event or the first bytes arrive."""
        deadline = time.monotonic() + timeout
        while True:
            text = self.read_console()
            m = self.panic_re.search(text)
            if (m and "\n" in text[m.end():]) or not self.is_running() or time.monotonic() >= deadline:
                return m
            if self.qmp is not None:
                self._panic_event(0.05)   # a wait on QMP events (the console file has none)
            else:
                time.sleep(0.05)          # no QMP: poll the console file, as wait_console does

    # ------------------------------------------------------------------ waits

    def wait_console(self, regex: str | re.Pattern, timeout: float) -> re.Match:
        """Poll console.log until `regex` (re.MULTILINE) matches; return the match.

        Raises ConsoleTimeout (with console tail and command line), GuestPanicked,
        or GuestExited."""
        pat = regex if isinstance(regex, re.Pattern) else re.compile(regex, re.MULTILINE)
        t0 = time.monotonic()
        deadline = t0 + timeout
        self._log_fn(f"[vm {self.name}] waiting up to {timeout:.0f} s for console /{pat.pattern}/")
        while True:
            m = pat.search(self.read_console())
            if m:
                self._log_fn(f"[vm {self.name}] console matched /{pat.pattern}/ after {time.monotonic() - t0:.2f} s "
                             f"({time.monotonic() - self.start_time:.2f} s since launch)")
                return m
            self.check_alive(f"waiting for console /{pat.pattern}/")
            if time.monotonic() > deadline:
                raise ConsoleTimeout(
                    f"console did not match /{pat.pattern}/ within {timeout} s "
                    f"(console log {self.console_log})", pattern=pat.pattern, timeout=timeout, **self._common())
            time.sleep(0.05)

    def _connect_unix(self, path: Path, timeout: float, what: str) -> socket.socket:
        deadline = time.monotonic() + timeout
        last: Exception | None = None
        while True:
            self.check_alive(f"connecting to {what}")
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                s.connect(str(path))
                self._sockets.append(s)
                return s
            except OSError as e:
                s.close()
                last = e
            if time.monotonic() > deadline:
                raise ChannelTimeout(f"could not connect to {what} {path} within {timeout} s: {last}",
                                     **self._common())
            time.sleep(0.02)

    def virtio_serial_socket(self, timeout: float = 10.0) -> socket.socket:
        """Connect to the host side of the virtio-serial port (retrying until timeout)."""
        if self.virtio_serial_port is None:
            raise VMError("machine was created without a virtio_serial_port", log_dir=self.run_dir)
        return self._connect_unix(self.virtio_serial_socket_path, timeout,
                                  f"virtio-serial port {self.virtio_serial_port}")

    def named_port_path(self, name: str) -> Path:
        return self._path(f"port-{name}.sock")

    def gemini_streams(self) -> bool:
        """Whether Gemini's named ports are streams the guest dials (here: with a vsock device)."""
        return self.vsock_cid is not None

    def _stream_listen(self, port: int) -> None:
        s = socket.socket(socket.AF_VSOCK, socket.SOCK_STREAM)
        try:
            s.bind((socket.VMADDR_CID_ANY, port))
            s.listen(4)
        except OSError as e:
            s.close()
            raise LaunchError(f"cannot listen on vsock port {port}: {e}", log_dir=self.run_dir) from e
        self._stream_listeners[port] = s

    def _stream_accept(self, port: int, timeout: float) -> socket.socket:
        """The guest's next vsock connection to host port `port` (another CID's is refused)."""
        listener = self._stream_listeners[port]
        deadline = time.monotonic() + timeout
        while True:
            if select.select([listener], [], [], min(0.2, max(0.0, deadline - time.monotonic())))[0]:
                conn, (cid, _) = listener.accept()
                if cid == self.vsock_cid:
                    self._sockets.append(conn)
                    return conn
                conn.close()
            self.check_alive(f"waiting for the guest's vsock connection to port {port}")
            if time.monotonic() >= deadline:
                raise ChannelTimeout(f"no guest vsock connection to host port {port} within {timeout} s",
                                     **self._common())

    def has_named_port(self, name: str) -> bool:
        """Whether named_port_socket(name) has something to connect to."""
        return name in self.named_ports or name in self.stream_ports

    def named_port_socket(self, name: str, timeout: float = 10.0) -> socket.socket:
        """Connect to the host side of the named virtio-serial port `name` (named_ports), or accept
        the guest's connection to it when it is a stream port (stream_ports: vsock, hv_sock)."""
        if name in self.stream_ports:
            return self._stream_accept(self.stream_ports[name], timeout)
        if name not in self.named_ports:
            raise VMError(f"machine was created without the virtio-serial port {name}", log_dir=self.run_dir)
        return self._connect_unix(self.named_port_path(name), timeout, f"virtio-serial port {name}")

    def serial_socket(self, timeout: float = 10.0) -> socket.socket:
        """Connect to the host side of ttyS1 (serial_transport=True)."""
        if not self.serial_transport:
            raise VMError("machine was created with serial_transport=False", log_dir=self.run_dir)
        return self._connect_unix(self.serial_socket_path, timeout, "serial channel (ttyS1)")

    def qmp_command(self, cmd: str, timeout: float = 10.0, **args):
        """Run one QMP command and return its result; a QMP error, a timeout or a closed monitor
        raises MigrationError (with the console tail and run dir)."""
        if self.qmp is None:
            raise MigrationError(f"QMP {cmd}: no monitor (machine not running)", **self._common())
        try:
            self.qmp.settimeout(timeout)
            return self.qmp.cmd(cmd, **args)
        except Exception as e:  # qemu.qmp's ExecuteError, a timeout, EOF
            raise MigrationError(f"QMP {cmd} {args or ''} failed: {e}", **self._common()) from e
        finally:
            if self.qmp is not None:
                self.qmp.settimeout(10.0)

    def set_migration(self, *, ignore_shared: bool, max_bandwidth: int = 1 << 40) -> None:
        """Capabilities for a snapshot migration (both sides): `events` (MIGRATION events) and
        `x-ignore-shared` (RAM in a shared file is not copied into the stream); max-bandwidth
        raised, since the 128 MiB/s default throttles a stopped VM too."""
        self.qmp_command("migrate-set-capabilities", capabilities=[
            {"capability": "events", "state": True},
            {"capability": "x-ignore-shared", "state": bool(ignore_shared)}])
        self.qmp_command("migrate-set-parameters", **{"max-bandwidth": int(max_bandwidth)})

    def wait_migration(self, timeout: float, what: str) -> dict:
        """Poll query-migrate until completed; failed/cancelled, QEMU exiting (as it does when an
        incoming stream does not load) or the timeout raise MigrationError with QEMU's own output."""
        deadline = time.monotonic() + timeout
        delay = 0.001
        while True:
            try:
                info = self.qmp_command("query-migrate") or {}
                status = info.get("status")
                if status == "completed":
                    return info
                if status in ("failed", "cancelled"):
                    raise MigrationError(f"{what}: migration {status}: {info.get('error-desc', '')}".rstrip(": "),
                                         **self._common())
                self.check_alive(what)
            except VMError as e:
                if isinstance(e, MigrationError) and "QEMU said" in e.message:
                    raise
                out = _tail(self.read_qemu_log(), 15).strip()
                raise MigrationError(f"{what}: {e.message}" + (f"\nQEMU said:\n{out}" if out else ""),
                                     **self._common()) from e
            if time.monotonic() > deadline:
                raise MigrationError(f"{what}: migration still {status!r} after {timeout} s", **self._common())
            time.sleep(delay)
            delay = min(delay * 2, 0.004)

    def migrate_to_file(self, path: Path | str, timeout: float = 120.0) -> dict:
        """Write the (stopped) VM's device state, and RAM unless x-ignore-shared skips it, to `path`
        through an exec: URI (7.2 has no file: URIs)."""
        self.qmp_command("migrate", uri=f"exec:cat > {shlex.quote(str(path))}")
        return self.wait_migration(timeout, f"saving VM state to {path}")

    def migrate_from_file(self, path: Path | str, timeout: float = 120.0) -> dict:
        """Load state written by migrate_to_file into a machine started with incoming=True (it
        stays paused; `cont` runs it)."""
        if not self.incoming:
            raise MigrationError("migrate_from_file needs a machine started with incoming=True", **self._common())
        self.qmp_command("migrate-incoming", uri=f"exec:cat {shlex.quote(str(path))}")
        return self.wait_migration(timeout, f"loading VM state from {path}")

    def qemu_version(self) -> str:
        v = self.qmp_command("query-version") or {}
        q = v.get("qemu", {})
        return f"{q.get('major')}.{q.get('minor')}.{q.get('micro')}{v.get('package', '')}"

    # ------------------------------------------------------------------ shutdown

    def is_running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stay(self) -> None:
        """Block until QEMU exits or the user presses Ctrl-C (`--stay` options)."""
        try:
            while self.is_running():
                self.wait_exit(1.0)
        except KeyboardInterrupt:
            pass

    def wait_exit(self, timeout: float) -> int | None:
        """Wait up to `timeout` s for QEMU to exit by itself; exit code or None."""
        if self.proc is None:
            return None
        try:
            rc = self.proc.wait(timeout=max(0.0, timeout))
        except subprocess.TimeoutExpired:
            return None
        self._reap(rc)
        return rc

    def _signal(self, sig: int) -> None:
        try:
            os.killpg(self.proc.pid, sig)
        except ProcessLookupError:
            pass
        except PermissionError:
            self.proc.send_signal(sig)

    def shutdown(self, *, wait: float = 0.0, powerdown: float = 0.0, quit: float = 3.0,
                 term: float = 3.0, kill: float = 5.0) -> int | None:
        """End QEMU, escalating: let it exit by itself (`wait` s, e.g. after the
        caller's AgentX SHUTDOWN), system_powerdown (`powerdown` s, if > 0), QMP
        quit, SIGTERM, SIGKILL, each step with its timeout.  Returns the exit code."""
        if self.proc is None:
            return None
        t0 = time.monotonic()
        steps = []
        if self.proc.poll() is None and wait > 0:
            steps.append("wait")
            self.wait_exit(wait)
        if self.proc.poll() is None and powerdown > 0:
            steps.append("system_powerdown")
            self._qmp_cmd("system_powerdown")
            self.wait_exit(powerdown)
        if self.proc.poll() is None:
            steps.append("quit")
            self._qmp_cmd("quit")
            self.wait_exit(quit)
        if self.proc.poll() is None:
            steps.append("SIGTERM")
            self._signal(signal.SIGTERM)
            self.wait_exit(term)
        if self.proc.poll() is None:
            steps.append("SIGKILL")
            self._signal(signal.SIGKILL)
            if self.wait_exit(kill) is None:
                raise ShutdownError(f"QEMU pid {self.proc.pid} survived SIGKILL", **self._common())
        rc = self.proc.wait()
        self._reap(rc)
        if steps or not self._end_reported:
            self._log_fn(f"[vm {self.name}] ended with code {rc} in {time.monotonic() - t0:.2f} s "
                         f"({', '.join(steps) or 'had exited'})")
        self._end_reported = True
        return rc

    def _qmp_cmd(self, cmd: str, **args):
        if self.qmp is None:
            return None
        try:
            return self.qmp.cmd(cmd, **args)
        except Exception as e:  # EOF when QEMU exits mid-command, etc.
            _log.debug("QMP %s: %r", cmd, e)
            return None

    def _kill_now(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self._signal(signal.SIGKILL)
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass
        if self.proc is not None and self.proc.poll() is not None:
            self._reap(self.proc.returncode)

    def _reap(self, rc: int) -> None:
        """Release resources once the process is gone (idempotent)."""
        self.exitcode = rc
        if self.qmp is not None:
            self.poll_events()
            qmp, self.qmp = self.qmp, None
            try:
                qmp.close()
            except (EOFError, Exception):  # disconnect() after quit raises EOFError
                pass
        for s in [*self._sockets, *self._stream_listeners.values()]:
            try:
                s.close()
            except OSError:
                pass
        self._sockets.clear()
        self._stream_listeners.clear()
        if self._qemu_log is not None:
            self._qemu_log.close()
            self._qemu_log = None


# ---------------------------------------------------------------------- process bookkeeping


def _wait_promptly(proc: subprocess.Popen, timeout: float) -> int:
    """proc.wait(timeout), but woken by the exit itself: Popen.wait with a timeout polls with
    sleeps of up to 50 ms, which would swamp a 40 ms measurement. Blocks on a pidfd."""
    try:
        fd = os.pidfd_open(proc.pid)
    except OSError:
        return proc.wait(timeout=timeout)
    try:
        if not select.select([fd], [], [], timeout)[0]:
            raise subprocess.TimeoutExpired(proc.args, timeout)
    finally:
        os.close(fd)
    return proc.wait()


def leftover_qemu_processes(session: str | None = None) -> list[tuple[int, str]]:
    """(pid, command line) of running qemu-system processes started by this kit.

    A kit QEMU has `-name wslx-...` on its command line or WSLX_OWNER in its
    environment.  session: only those whose WSLX_SESSION equals it."""
    out = []
    for p in processes("qemu-system"):
        tagged = any(a == "-name" and i + 1 < len(p.argv) and p.argv[i + 1].startswith(NAME_PREFIX)
                     for i, a in enumerate(p.argv))
        env = p.environ()
        if not (tagged or OWNER_ENV in env):
            continue
        if session is not None and env.get(SESSION_ENV) != session:
            continue
        out.append((p.pid, p.cmdline))
    return out


def probe_kvm(timeout: float = 3.0, qemu_binary: str = QEMU_BINARY) -> bool:
    """Opt-in: True if /dev/kvm is usable and QEMU reports KVM enabled within `timeout`.

    Starts a paused VM (-S) only; on these hosts guests under KVM hang, so a
    True here does not prove guests boot.  Never called by default (accel='tcg')."""
    if not os.access("/dev/kvm", os.R_OK | os.W_OK):
        return False
    cmds = b'{"execute":"qmp_capabilities"}\n{"execute":"query-kvm"}\n{"execute":"quit"}\n'
    try:
        p = subprocess.run([qemu_binary, "-accel", "kvm", "-M", "q35", "-S", "-nodefaults", "-display", "none",
                            "-qmp", "stdio"], input=cmds, capture_output=True, timeout=timeout,
                           preexec_fn=_make_preexec(os.getpid()))
    except (subprocess.TimeoutExpired, OSError):
        return False
    return b'"enabled": true' in p.stdout
