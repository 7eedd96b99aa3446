"""A guest under OpenVMM (wslx.vmm.openvmm_machine.OpenVMMMachine): the Track B kernel or Linux, direct
boot with Hyper-V enlightenments, the agent's AgentX channel on hv_sock. Both dial host port 50010, which
OpenVMM's hybrid vsock hands to the Unix socket run_dir/vsock_50010 (listened on before launch); Track B
finds Hyper-V and uses hv_sock, Linux is told so on its command line (wslx.transport=vsock). Track B gets
a virtio-pmem file over PCIe (the Portal), as under QEMU."""
from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Callable

from ..spec.agentx import VSOCK_CONTROL_PORT
from ..vmm.openvmm_machine import OpenVMMMachine
from ..vmm.qemu import default_run_root
from .base import Guest, images_dir

LINUX_APPEND = "wslx.transport=vsock"
OPENVMM_PMEM_SIZE = 16 << 20       # a multiple of 2 MiB (OpenVMM's virtio-pmem granule)


class OpenVMMGuest(Guest):
    CHANNEL = "hvsock"

    def __init__(self, guest: str, kernel: Path | str | None = None, initrd: Path | str | None = None, *,
                 append: str = "", hello_timeout: float = 60.0, timeout: float = 30.0, build: bool = True,
                 log: Callable[[str], None] = print, binary: str = "openvmm", **machine_kw):
        if guest not in ("trackb", "linux"):
            raise ValueError(f"guest must be trackb or linux, not {guest!r}")
        self.guest = guest
        self.NAME = guest
        if kernel is None and guest == "trackb":
            from .trackb import default_kernel
            kernel = default_kernel()
        elif kernel is None:
            from ..image.initramfs import find_default_kernel
            kernel = find_default_kernel()
        if guest == "linux":
            append = f"{LINUX_APPEND} {append}".strip()
        super().__init__(Path(kernel), append=append, hello_timeout=hello_timeout, timeout=timeout, build=build,
                         log=log, machine_kw=machine_kw)
        self._initrd = Path(initrd) if initrd else None
        self.binary = binary

    def _prepare(self) -> None:
        if self.build and self.guest == "trackb":
            from .base import ensure_built
            ensure_built(("trackb",), log=self.log)

    def machine(self, *, dry_run: bool = False) -> OpenVMMMachine:
        """The machine (not launched); dry_run: create and build nothing (for printing its command line)."""
        kw = dict(self.machine_kw)
        run_dir = kw.pop("run_dir", None)
        if not dry_run:
            run_dir = Path(run_dir or tempfile.mkdtemp(prefix="wslx-run-", dir=default_run_root()))
            run_dir.mkdir(parents=True, exist_ok=True)
        initrd = None
        if self.guest == "linux":
            from .linux import initramfs_for
            initrd = self._initrd or (images_dir() / "linux-initramfs.cpio" if dry_run
                                      else initramfs_for(self.kernel, self.log))
        elif "pmem_path" not in kw:
            kw["pmem_path"] = Path(run_dir or "<run-dir>") / "pmem.img"
            if not dry_run:
                with open(kw["pmem_path"], "wb") as f:
                    f.truncate(OPENVMM_PMEM_SIZE)
        m = OpenVMMMachine(self.kernel, initrd, append=self.append, run_dir=run_dir, log=self.log,
                           binary=self.binary, **kw)
        if not dry_run:
            m.hvsock_listen(VSOCK_CONTROL_PORT)      # before launch: the guest dials at boot
        return m

    def _connect(self, timeout: float):
        return self.vm.hvsock_accept(VSOCK_CONTROL_PORT, timeout)

    def _ready(self) -> None:
        self.client.ping(b"sync", timeout=self.timeout)   # HELLOs drawn while we connected arrive first
        self.hello = self.client.hello
