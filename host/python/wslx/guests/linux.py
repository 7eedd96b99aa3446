"""Track A Linux guest: a kernel, the AgentX initramfs, QEMU, and a connected
AgentClient. Used by `wslx boot/run linux`, the conformance target `linux`
and the benchmarks, so all of them boot the guest the same way."""
from __future__ import annotations

import hashlib
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

from .. import repo_root
from ..agentx.client import AgentClient, Hello
from ..agentx.errors import AgentXError
from ..image.initramfs import build_initramfs, find_default_kernel, modules_dir_for
from ..vmm.errors import VMError
from ..vmm.qemu import QemuMachine


class GuestAgentError(VMError):
    """The guest booted but its agent failed us (timeout, lost channel, protocol error)."""


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


class LinuxGuest:
    """Boot a Linux guest to AgentX HELLO.

        with LinuxGuest() as g:
            print(g.hello.os_release)
            g.client.run(["uname", "-a"])

    Every AgentX wait on `client` that times out or loses the channel raises an
    error whose message carries the console tail and the QEMU command line."""

    def __init__(self, kernel: Path | str | None = None, initrd: Path | str | None = None, *,
                 append: str = "", hello_timeout: float = 60.0, timeout: float = 30.0, build: bool = True,
                 log: Callable[[str], None] = print, **machine_kw):
        self.kernel = Path(kernel) if kernel else find_default_kernel()
        self._initrd = Path(initrd) if initrd else None
        self.append = append
        self.hello_timeout = hello_timeout
        self.timeout = timeout
        self.build = build
        self.log = log
        self.machine_kw = machine_kw
        self.vm: QemuMachine | None = None
        self.client: AgentClient | None = None
        self.hello: Hello | None = None

    def __enter__(self) -> "LinuxGuest":
        if self.build and not self._initrd:
            ensure_built(log=self.log)
        initrd = self._initrd or initramfs_for(self.kernel, self.log)
        self.log(f"[boot] kernel {self.kernel}, initramfs {initrd}")
        self.vm = QemuMachine(self.kernel, initrd, append=self.append, log=self.log, **self.machine_kw)
        self.vm.__enter__()
        try:
            self.hello = self.vm.wait_hello(self.hello_timeout)
        except AgentXError as e:
            err = GuestAgentError(f"no AgentX HELLO within {self.hello_timeout} s: {e}", **self.vm._common())
            self.vm.__exit__(type(err), err, None)
            raise err from e
        except BaseException:
            self.vm.__exit__(*sys.exc_info())
            raise
        self._attach(self.vm.agent)
        return self

    def _attach(self, client: AgentClient) -> None:
        client.default_timeout = self.timeout
        client.diagnostics = self._diagnostics
        self.client = client

    def _diagnostics(self) -> str:
        vm = self.vm
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
        c = AgentClient(self.vm.agentx_socket(self.timeout), default_timeout=self.timeout, name="linux")
        self._attach(c)
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
