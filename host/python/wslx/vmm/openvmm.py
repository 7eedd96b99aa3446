"""OpenVMM command lines for WSLX guests (construction only).

Built from OpenVMM's documented CLI (see shared/reference/hyperv-guest-facts.md,
"OpenVMM facts", and the OpenVMM guide's CLI page):

  openvmm -k KERNEL [-r INITRD] [-c CMDLINE]     direct boot (ELF64 or bzImage)
  --processors N --memory SIZE[,file=PATH]       (SIZE like 512MB / 1GB)
  --hv                                           Hyper-V enlightenments + VMBus
  --com1 console|stderr|file=PATH|listen=PATH|listen=tcp:IP:PORT
  --com2 (same forms)                            Track B's AgentX channel (its COM2 UART)
  --vmbus-vsock-path PATH                        hv_sock to the host (needs --hv)
  --pcie-root-complex rc0 --pcie-root-port rc0:p0 --virtio-pmem pcie_port=p0:PATH
  --restore-snapshot DIR

Nothing here runs OpenVMM; `find_openvmm()` says whether a binary exists.
hv_sock: the host reaches guest port P by connecting to the Unix socket
VSOCK_PATH and sending "CONNECT P\\n"; guest connections to host port P
arrive at the Unix socket VSOCK_PATH_P (see `vsock_listen_path`).
"""
from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

OPENVMM_BINARY = "openvmm"


class OpenVMMConfigError(ValueError):
    pass


def find_openvmm(binary: str = OPENVMM_BINARY) -> str | None:
    return shutil.which(binary)


def _memory_arg(memory: int | str) -> str:
    """512 (MiB) -> '512MB'; strings pass through."""
    if isinstance(memory, int):
        if memory <= 0:
            raise OpenVMMConfigError(f"memory must be positive, got {memory}")
        return f"{memory // 1024}GB" if memory % 1024 == 0 else f"{memory}MB"
    return memory


def _serial_arg(port: str, binding: str | Path) -> str:
    s = str(binding)
    if s in ("console", "stderr", "none") or s.startswith(("file=", "listen=")):
        return s
    raise OpenVMMConfigError(
        f"{port} must be console, stderr, none, file=PATH, listen=PATH or listen=tcp:IP:PORT, got {s!r}")


@dataclass
class OpenVMMConfig:
    kernel: Path | str
    initrd: Path | str | None = None
    cmdline: str = "console=ttyS0 panic=-1"
    processors: int = 1
    memory: int | str = 512          # MiB, or an OpenVMM size string
    memory_file: Path | str | None = None  # --memory SIZE,file=PATH (snapshots)
    hv: bool = True                  # Hyper-V enlightenments + VMBus
    com1: str | None = None          # e.g. "file=/run/x/console.log" or "listen=/run/x/com1.sock"
    com2: str | None = None          # e.g. "listen=/run/x/com2.sock" (Track B's AgentX UART)
    vsock_path: Path | str | None = None   # --vmbus-vsock-path
    pmem: Sequence[Path | str] = field(default_factory=tuple)  # virtio-pmem backing files
    restore_snapshot: Path | str | None = None
    extra_args: Sequence[str] = field(default_factory=tuple)
    binary: str = OPENVMM_BINARY

    def argv(self) -> list[str]:
        """The OpenVMM argv for this configuration."""
        if self.processors < 1:
            raise OpenVMMConfigError("processors must be >= 1")
        if self.vsock_path is not None and not self.hv:
            raise OpenVMMConfigError("--vmbus-vsock-path needs hv=True (VMBus)")
        a = [self.binary, "-k", str(self.kernel)]
        if self.initrd is not None:
            a += ["-r", str(self.initrd)]
        if self.cmdline:
            a += ["-c", self.cmdline]
        a += ["--processors", str(self.processors)]
        mem = _memory_arg(self.memory)
        if self.memory_file is not None:
            mem += f",file={self.memory_file}"
        a += ["--memory", mem]
        if self.hv:
            a.append("--hv")
        if self.com1 is not None:
            a += ["--com1", _serial_arg("com1", self.com1)]
        if self.com2 is not None:
            a += ["--com2", _serial_arg("com2", self.com2)]
        if self.vsock_path is not None:
            a += ["--vmbus-vsock-path", str(self.vsock_path)]
        if self.pmem:
            # virtio-pmem in direct boot needs PCIe: one root complex, one port per device.
            a += ["--pcie-root-complex", "rc0"]
            for i, _ in enumerate(self.pmem):
                a += ["--pcie-root-port", f"rc0:p{i}"]
            for i, p in enumerate(self.pmem):
                a += ["--virtio-pmem", f"pcie_port=p{i}:{p}"]
            if self.restore_snapshot is not None:
                raise OpenVMMConfigError("OpenVMM snapshots do not support PCIe devices (virtio-pmem) yet")
        if self.restore_snapshot is not None:
            a += ["--restore-snapshot", str(self.restore_snapshot)]
        a += list(self.extra_args)
        return a


def openvmm_cmdline(kernel, initrd=None, **kw) -> list[str]:
    """Shorthand: OpenVMMConfig(kernel, initrd, **kw).argv()."""
    return OpenVMMConfig(kernel, initrd, **kw).argv()


def vsock_listen_path(vsock_path: Path | str, port: int) -> Path:
    """Where a guest connection to host vsock port `port` arrives (VSOCK_PATH_PORT)."""
    return Path(f"{vsock_path}_{int(port)}")


def vsock_connect_request(port: int) -> bytes:
    """The line the host sends on VSOCK_PATH to reach guest port `port` (reply 'OK ...')."""
    return f"CONNECT {int(port)}\n".encode()
