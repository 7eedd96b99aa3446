"""OpenVMMMachine: one `openvmm` process, owned by a `with` block, with the QemuMachine contract.

A QemuMachine (run directory, cmdline.txt, the VMM's own log, console.log, typed errors, PDEATHSIG and
its own process group, graceful-then-forced shutdown, leftover checks by run directory) whose command
line is OpenVMM's (wslx.vmm.openvmm.OpenVMMConfig: direct boot, --hv, COM1 to console.log, hybrid vsock
on run_dir/vsock, virtio-pmem over PCIe) and which has no QMP: it is up once the process runs, and it
ends by itself (the guest powers off), by SIGTERM or by SIGKILL. The guest's hv_sock connections to host
port P arrive at run_dir/vsock_P (hvsock_listen before launch, hvsock_accept after).

Run directory: cmdline.txt, openvmm.log (its stdout+stderr), console.log (COM1), vsock, vsock_P.
"""
from __future__ import annotations

import socket
import time
from pathlib import Path

from .errors import GuestExited, LaunchError
from .hybrid_vsock import HybridVsockHost
from .openvmm import OPENVMM_BINARY, OpenVMMConfig, find_openvmm
from .qemu import QemuMachine

LAUNCH_SETTLE_S = 0.2     # an OpenVMM that rejects its command line exits at once: look once after this


class OpenVMMMachine(HybridVsockHost, QemuMachine):
    """QemuMachine's interface over OpenVMM. kernel/initrd/append/memory/pmem_path as for QemuMachine;
    hv: Hyper-V enlightenments and VMBus (needed for hv_sock); binary: the openvmm executable."""

    def __init__(self, kernel, initrd=None, *, hv: bool = True, binary: str = OPENVMM_BINARY, **kw):
        kw.setdefault("pvpanic", False)
        self.hv = hv                      # before QemuMachine's init asks gemini_streams()
        super().__init__(kernel, initrd, qemu_binary=binary, **kw)
        self._listeners: dict[int, socket.socket] = {}

    def gemini_streams(self) -> bool:
        """Gemini's named ports are hv_sock ports (through hybrid vsock) when the guest has VMBus."""
        return self.hv

    @property
    def qemu_log(self) -> Path:           # the VMM's own output
        return self._path("openvmm.log")

    def build_cmdline(self) -> list[str]:
        pmem = [self.pmem_path] if self.pmem_path is not None else []
        return OpenVMMConfig(self.kernel, self.initrd, cmdline=self.kernel_cmdline(), processors=self.cpus,
                             memory=self.memory, hv=self.hv, com1=f"file={self.console_log}",
                             vsock_path=self.vsock_path if self.hv else None, pmem=pmem,
                             extra_args=self.extra_args, binary=self.qemu_binary).argv()

    def launch(self) -> None:
        if not find_openvmm(self.qemu_binary):
            raise LaunchError(f"no {self.qemu_binary} binary on PATH", log_dir=self._given_run_dir)
        self._start_process()
        rc = self.wait_exit(LAUNCH_SETTLE_S)
        if rc is not None:
            raise self._launch_error(f"{self.qemu_binary} exited with code {rc} during launch", rc)
        self._log_fn(f"[vm {self.name}] {self.qemu_binary} up after {time.monotonic() - self.start_time:.2f} s")

    def check_alive(self, what: str = "") -> None:
        try:
            super().check_alive(what)
        except GuestExited as e:     # name the VMM that exited
            raise GuestExited(e.message.replace("QEMU", self.qemu_binary, 1), exitcode=e.exitcode,
                              **self._common()) from None

    def shutdown(self, *, wait: float = 0.0, powerdown: float = 0.0, quit: float = 0.0, term: float = 3.0,
                 kill: float = 5.0) -> int | None:
        try:   # no QMP: no powerdown or quit step
            return super().shutdown(wait=wait, powerdown=0.0, quit=0.0, term=term, kill=kill)
        finally:
            self.close_listeners()
