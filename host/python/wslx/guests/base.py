"""What every booted guest has in common (wslx.guests.linux.LinuxGuest,
wslx.guests.trackb.TrackBGuest): build the images, start a QemuMachine, wait for
the agent's HELLO, hand out a connected AgentClient whose errors carry the
console tail, reconnect, shut down. A subclass says which machine to start, on
which channel the agent talks, and what to do once it is up."""
from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

from .. import repo_root
from ..agentx.client import AgentClient, Hello
from ..agentx.errors import AgentTimeout, AgentXError
from ..spec.agentx import VIRTIO_SERIAL_PORT_NAME
from ..vmm.errors import VMError
from ..vmm.qemu import QemuMachine


class GuestAgentError(VMError):
    """The guest booted but its agent failed us (timeout, lost channel, protocol error)."""


class KernelImageError(VMError):
    """A kernel image no guest can boot: neither a bzImage nor an ELF with a usable entry."""


# Linux boot protocol (Documentation/arch/x86/boot.rst): a bzImage's setup header holds
# the magic "HdrS" at file offset 0x202.
BZIMAGE_HEADER_MAGIC_OFFSET = 0x202
BZIMAGE_HEADER_MAGIC = b"HdrS"
ELF_MAGIC = b"\x7fELF"


def check_kernel_image(path: Path) -> str:
    """'bzImage' or 'elf' for a kernel the VMMs can boot directly, else KernelImageError
    naming the file and what is wrong with it. An ELF must pass wslx.image.elfcheck with its
    PVH entry (QEMU's -kernel enters an ELF only there; OpenVMM at its e_entry, checked too).
    OSError (missing, unreadable) passes through: the caller names the path."""
    with open(path, "rb") as f:
        head = f.read(BZIMAGE_HEADER_MAGIC_OFFSET + len(BZIMAGE_HEADER_MAGIC))
    if head[BZIMAGE_HEADER_MAGIC_OFFSET:] == BZIMAGE_HEADER_MAGIC:
        return "bzImage"
    if head.startswith(ELF_MAGIC):
        from ..image.elfcheck import ElfCheckError, check_kernel
        try:
            check_kernel(path, budget=path.stat().st_size)
        except ElfCheckError as e:
            raise KernelImageError(f"{path}: an ELF file without an entry the guest can use: "
                                   + "; ".join(e.problems)) from None
        return "elf"
    raise KernelImageError(f"{path}: not a kernel image: neither a bzImage (no {BZIMAGE_HEADER_MAGIC.decode()} "
                           f"setup header at {BZIMAGE_HEADER_MAGIC_OFFSET:#x}) nor an ELF file")


def images_dir() -> Path:
    return repo_root() / "images"


def ensure_built(targets=("images/wslx-init", "images/linux-initramfs.cpio"), log: Callable[[str], None] = print):
    """Run SCons for the guest images if anything is out of date (a no-op build takes ~1 s)."""
    root = repo_root()
    q = subprocess.run([sys.executable, "-m", "SCons", "-Q", "-q", *targets], cwd=root, capture_output=True)
    if q.returncode == 0:
        return
    log(f"[build] scons {' '.join(targets)} ...")
    t0 = time.monotonic()
    r = subprocess.run([sys.executable, "-m", "SCons", "-Q", *targets], cwd=root, capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"scons failed building {' '.join(targets)} (exit {r.returncode}):\n{r.stdout}\n{r.stderr}")
    log(f"[build] done in {time.monotonic() - t0:.1f} s")


class Guest:
    """Boot a guest to AgentX HELLO (a context manager; see the subclasses).

    Every AgentX wait on `client` that times out or loses the channel raises an
    error whose message carries the console tail and the QEMU command line."""

    NAME = "guest"               # the AgentClient's name in messages
    # Where the agent talks: "agentx", the virtio-serial port VIRTIO_SERIAL_PORT_NAME
    # (QemuMachine's virtio_serial_socket), or "serial", ttyS1/COM2 (serial_socket).
    CHANNEL = "agentx"
    PORT_NAME = VIRTIO_SERIAL_PORT_NAME

    def __init__(self, kernel: Path, *, append: str, hello_timeout: float, timeout: float, build: bool,
                 log: Callable[[str], None], machine_kw: dict):
        self.kernel = kernel
        self.append = append
        self.hello_timeout = hello_timeout
        self.timeout = timeout
        self.build = build
        self.log = log
        self.machine_kw = machine_kw
        self.vm: QemuMachine | None = None
        self.client: AgentClient | None = None
        self.hello: Hello | None = None
        self.hello_seconds: float | None = None   # QEMU process start to the agent's HELLO

    # ---- what a subclass provides ----
    def _prepare(self) -> None:
        """Build or check the images (before the machine is made)."""

    def machine(self, *, dry_run: bool = False) -> QemuMachine:
        """The QemuMachine this guest boots (not launched); dry_run: create nothing."""
        raise NotImplementedError

    def _ready(self) -> None:
        """Called once the client is attached after HELLO."""

    def _reconnected(self, client: AgentClient) -> None:
        """Called after reconnect attached a new client."""

    # ---- shared ----
    def __enter__(self):
        self._prepare()
        check_kernel_image(self.kernel)   # before QEMU starts: a wrong file is named as such
        self.vm = self.machine()
        self.vm.__enter__()
        try:
            client, self.hello = self._wait_hello(self.hello_timeout)
            self._attach(client)
            self._ready()
        except AgentXError as e:
            err = GuestAgentError(f"no AgentX HELLO within {self.hello_timeout} s: {e}", **self.vm._common())
            self.vm.__exit__(type(err), err, None)
            raise err from e
        except BaseException:
            self.vm.__exit__(*sys.exc_info())
            raise
        return self

    def _connect(self, timeout: float):
        """A new socket to the agent's channel."""
        if self.CHANNEL == "serial":
            return self.vm.serial_socket(timeout)
        return self.vm.virtio_serial_socket(timeout)

    def _wait_hello(self, timeout: float) -> tuple[AgentClient, Hello]:
        """Connect the agent's channel and wait for its HELLO; sets hello_seconds.

        A serial line has no connect event, so the agent may have announced itself before
        we were there: there we ask for a fresh announcement (HELLO with request_id 0) at
        once and then every second. A guest panic or exit while waiting is raised as
        GuestPanicked/GuestExited instead of the AgentX error."""
        t0 = time.monotonic()
        deadline = t0 + timeout
        client = AgentClient(self._connect(timeout), default_timeout=max(timeout, 1.0))
        try:
            if self.CHANNEL == "serial":
                hello = self._serial_hello(client, deadline)
            else:
                hello = client.wait_hello(max(0.0, deadline - time.monotonic()))
        except AgentXError:
            client.close()
            self.vm.check_alive("waiting for AgentX HELLO")
            raise
        self.hello_seconds = time.monotonic() - self.vm.start_time
        self.log(f"[vm {self.vm.name}] AgentX HELLO after {self.hello_seconds:.2f} s since launch")
        return client, hello

    def _serial_hello(self, client: AgentClient, deadline: float) -> Hello:
        while True:
            client.ask_announce(timeout=max(1.0, deadline - time.monotonic()))
            try:
                return client.wait_hello(min(1.0, max(0.0, deadline - time.monotonic())))
            except AgentTimeout:
                if time.monotonic() >= deadline:
                    raise
                self.vm.check_alive("waiting for AgentX HELLO on the serial line")

    def _attach(self, client: AgentClient) -> None:
        client.default_timeout = self.timeout
        client.name = self.NAME
        client.diagnostics = self._diagnostics
        self.client = client

    def _diagnostics(self) -> str:
        vm = self.vm
        try:
            vm.check_alive("talking to the agent")
        except VMError as e:  # a panic, a fault on purpose or a crash: say so, with the console tail
            return "\n".join([f"guest state: {type(e).__name__}: {e.message}"] + e.details())
        return "\n".join(VMError("", cmdline=vm.cmdline, console_tail=vm.console_tail(), log_dir=vm.run_dir).details())

    @property
    def console_log(self) -> Path:
        return self.vm.console_log

    # conformance target protocol
    supports_reconnect = True

    def reconnect(self, client: AgentClient) -> AgentClient:
        """Drop the host side of the channel and connect again; the agent must say HELLO anew."""
        client.close()
        time.sleep(0.2)
        c = AgentClient(self._connect(self.timeout), default_timeout=self.timeout, name=self.NAME)
        self._attach(c)
        self._reconnected(c)
        return c

    def wait_ended(self, timeout: float) -> bool:
        return self.vm.wait_exit(timeout) is not None

    def shutdown(self, grace_ms: int = 2000) -> int | None:
        """AgentX SHUTDOWN, then wait for QEMU to exit (escalating if it does not)."""
        try:
            if self.vm.is_running():
                self.client.shutdown(grace_ms=grace_ms, timeout=self.timeout)
        except AgentXError as e:
            self.log(f"[boot] SHUTDOWN failed ({e}); stopping the VM")
        return self.vm.shutdown(wait=10.0)

    def __exit__(self, *exc):
        if self.vm is not None:
            self.vm.__exit__(*exc)
