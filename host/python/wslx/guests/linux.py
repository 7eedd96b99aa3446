"""Track A Linux guest: a kernel, the AgentX initramfs, QEMU, and a connected
AgentClient. Used by `wslx boot/run linux`, the conformance target `linux`
and the benchmarks, so all of them boot the guest the same way."""
from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Callable

from ..image.initramfs import build_initramfs, find_default_kernel, modules_dir_for
from ..vmm.qemu import QemuMachine
from .base import Guest, GuestAgentError, ensure_built, images_dir  # noqa: F401  (re-exported)


def initramfs_for(kernel: Path, log: Callable[[str], None] = print) -> Path:
    """The AgentX initramfs matching `kernel`: the SCons-built one for the default
    Debian kernel; otherwise one cached per kernel, with that kernel's modules if
    /lib/modules has them and none for a monolithic kernel."""
    init = images_dir() / "wslx-init"
    default = images_dir() / "linux-initramfs.cpio"
    if kernel.resolve() == find_default_kernel().resolve() and default.exists():
        return default
    modular = modules_dir_for(kernel) is not None
    key = hashlib.sha256(f"{kernel.resolve()}|{kernel.stat().st_mtime_ns}|{init.stat().st_mtime_ns}".encode()).hexdigest()[:12]
    out = images_dir() / "cache" / f"initramfs-{key}.cpio"
    if not out.exists():
        log(f"[build] initramfs for {kernel} ({'with' if modular else 'no'} modules) -> {out}")
        build_initramfs(out, init, kernel=kernel, modules=modular)
    return out


class LinuxGuest(Guest):
    """Boot a Linux guest to AgentX HELLO.

        with LinuxGuest() as g:
            print(g.hello.os_release)
            g.client.run(["uname", "-a"])

    The AgentX client, its errors, reconnect and shutdown: wslx.guests.base.Guest."""

    NAME = "linux"
    CHANNEL = "agentx"

    def __init__(self, kernel: Path | str | None = None, initrd: Path | str | None = None, *,
                 append: str = "", hello_timeout: float = 60.0, timeout: float = 30.0, build: bool = True,
                 log: Callable[[str], None] = print, **machine_kw):
        super().__init__(Path(kernel) if kernel else find_default_kernel(), append=append,
                         hello_timeout=hello_timeout, timeout=timeout, build=build, log=log, machine_kw=machine_kw)
        self._initrd = Path(initrd) if initrd else None

    def _prepare(self) -> None:
        if self.build and not self._initrd:
            ensure_built(log=self.log)

    def machine(self, *, dry_run: bool = False) -> QemuMachine:
        """The QemuMachine this guest boots (not launched). dry_run: build nothing (the
        SCons-built initramfs is named as is), for printing the command line."""
        if self._initrd:
            initrd = self._initrd
        elif dry_run:
            initrd = images_dir() / "linux-initramfs.cpio"
        else:
            initrd = initramfs_for(self.kernel, self.log)
        if not dry_run:
            self.log(f"[boot] kernel {self.kernel}, initramfs {initrd}")
        return QemuMachine(self.kernel, initrd, append=self.append, virtio_serial_port=self.PORT_NAME, log=self.log,
                           **self.machine_kw)

    def _reconnected(self, client) -> None:
        # Linux's virtio_console shows the host side only as a level (POLLHUP while closed): a host
        # back before the agent polled leaves no trace, so ask for the announcement it may not send
        client.ask_announce()
