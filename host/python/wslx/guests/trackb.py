"""Track B guest: the freestanding kernel images/trackb-kernel.elf under QEMU,
its AgentX agent on the virtio-serial port org.wslx.agentx (QemuMachine's
virtio_serial_port; the kernel's virtio-console driver) or, with channel='serial',
on the second UART (ttyS1/COM2), a virtio-pmem file for the Portal, and
isa-debug-exit for power-off. Used by `wslx boot/run trackb`, the
conformance target `trackb` and `wslx bench boot --guest trackb`, so all of
them boot the guest the same way (mirrors wslx.guests.linux.LinuxGuest)."""
from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Callable

from ..agentx.client import AgentClient
from ..spec import trackb as trackb_image
from ..vmm.errors import VMError
from ..vmm.qemu import QemuMachine, default_run_root
from .base import Guest, ensure_built, images_dir

ISA_DEBUG_EXIT = ["-device", f"isa-debug-exit,iobase={trackb_image.ISA_DEBUG_EXIT_IOBASE:#x},"
                             f"iosize={trackb_image.ISA_DEBUG_EXIT_IOSIZE:#04x}"]
# The kernel polls: a queue notify handled in the vCPU's own exit (no ioeventfd hop through
# QEMU's main loop) makes the console probe ~1.7 ms instead of ~2.4 and PING ~16,000/s, not ~9,000.
VIRTIO_SERIAL_SYNC_NOTIFY = ["-global", "virtio-serial-pci.ioeventfd=off"]
DEFAULT_PMEM_SIZE = 16 << 20
# The kernel's last words (kernel/trap.c, kernel/panic.c) before it raises pvpanic and halts.
PANIC_REGEX = r"^(?:trap: vector \d+|panic: )"


def default_kernel() -> Path:
    return images_dir() / "trackb-kernel.elf"


class TrackBGuest(Guest):
    """Boot the Track B kernel to AgentX HELLO.

        with TrackBGuest() as g:
            print(g.hello.name)
            g.client.run(["echo", "hello"])

    The AgentX client, its errors, reconnect and shutdown: wslx.guests.base.Guest."""

    NAME = "trackb"
    CHANNELS = ("agentx", "serial")
    MACHINE = QemuMachine        # wslx.guests.trackb_hvsim: HvsimMachine

    def __init__(self, kernel: Path | str | None = None, *, append: str = "", pmem_size: int | None = DEFAULT_PMEM_SIZE,
                 channel: str = "agentx", hello_timeout: float = 30.0, timeout: float = 30.0, build: bool = True,
                 log: Callable[[str], None] = print, **machine_kw):
        """channel: 'agentx' (virtio-serial port; the guest says HELLO on every host connect)
        or 'serial' (COM2 only: the machine gets no virtio-serial device, so the kernel
        falls back to its UART)."""
        if channel not in self.CHANNELS:
            raise ValueError(f"channel must be one of {self.CHANNELS}, not {channel!r}")
        super().__init__(Path(kernel) if kernel else default_kernel(), append=append, hello_timeout=hello_timeout,
                         timeout=timeout, build=build, log=log, machine_kw=machine_kw)
        self.CHANNEL = channel
        self.pmem_size = pmem_size
        self.pmem_path: Path | None = None

    def machine(self, *, dry_run: bool = False) -> QemuMachine:
        """The QemuMachine this guest boots (not launched); its run dir holds the pmem file.
        A pmem_path keyword (e.g. a Portal's file, see wslx.portal.trackb) is used as is;
        otherwise a scratch file of pmem_size bytes is made in the run dir. dry_run: create
        nothing (no run dir, no file), for printing the command line."""
        given = self.machine_kw.get("run_dir")
        kw = {k: v for k, v in self.machine_kw.items() if k != "run_dir"}
        if dry_run:
            run_dir = Path(given) if given else None
        else:
            run_dir = Path(given) if given else Path(tempfile.mkdtemp(prefix="wslx-run-", dir=default_run_root()))
            run_dir.mkdir(parents=True, exist_ok=True)
        if "pmem_path" in kw:
            self.pmem_path = Path(kw["pmem_path"])
            if self.pmem_size:
                kw.setdefault("pmem_size", self.pmem_size)
        elif self.pmem_size:
            self.pmem_path = (run_dir or Path("<run-dir>")) / "pmem.img"
            if not dry_run:
                with open(self.pmem_path, "wb") as f:
                    f.truncate(self.pmem_size)
            kw["pmem_path"] = self.pmem_path
            kw["pmem_size"] = self.pmem_size
        serial = self.CHANNEL == "serial"
        kw["extra_args"] = list(kw.get("extra_args", ())) + ISA_DEBUG_EXIT + ([] if serial else VIRTIO_SERIAL_SYNC_NOTIFY)
        kw.setdefault("panic_regex", PANIC_REGEX)
        return self.MACHINE(self.kernel, None, append=self.append, virtio_serial_port=None if serial else self.PORT_NAME,
                           serial_transport=serial, run_dir=run_dir, log=self.log, **kw)

    def _prepare(self) -> None:
        if self.build:
            ensure_built(("trackb",), log=self.log)
        if not self.kernel.exists():
            hint = ("build it with `scons trackb`" if self.kernel == default_kernel()
                    else f"expected an ELF kernel image (the default is {default_kernel()})")
            raise VMError(f"Track B kernel {self.kernel} does not exist: {hint}")
        self.log(f"[boot] Track B kernel {self.kernel}")

    def _ready(self) -> None:
        self._sync()

    def _sync(self) -> None:
        """A PING round trip: every HELLO the boot-time re-announcement requests drew (serial),
        or the agent's first HELLO and the one for our connect (virtio-serial, when we connected
        while it booted), and any ERROR for bytes the UART lost while the kernel set it up, arrive
        before the PONG, so later waits for a *new* HELLO or an ERROR see only their own."""
        self.client.ping(b"sync", timeout=self.timeout)
        self.client.unsolicited_errors.clear()
        self.hello = self.client.hello

    def _reconnected(self, client: AgentClient) -> None:
        # a serial line has no connect event: ask for the re-announcement the agent cannot know to send;
        # on virtio-serial the kernel sees the connect (PORT_OPEN) and the agent announces by itself
        if self.CHANNEL == "serial":
            client.ask_announce()
