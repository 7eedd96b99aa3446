"""Conformance targets: something that yields a connected AgentClient.

A target is a context manager with .name, .client, wait_ended(timeout) and,
when it can, reconnect(client), drop_connection(client) and new_connection()
(then supports_reconnect = True)."""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

from ..agentx.client import AgentClient
from ..agentx.reference_agent import serve_in_thread

TARGETS: dict[str, type] = {}


def target(name):
    def deco(cls):
        cls.name = name
        TARGETS[name] = cls
        return cls
    return deco


@target("reference")
class ReferenceTarget:
    """The pure-Python reference agent on a socketpair, in a thread."""
    supports_reconnect = False

    def __init__(self, timeout: float = 10.0, **_):
        self.timeout = timeout

    def __enter__(self):
        host, agent_end = socket.socketpair()
        self.agent, self.thread = serve_in_thread(agent_end)
        self.client = AgentClient(host, default_timeout=self.timeout, name="reference")
        return self

    def wait_ended(self, timeout: float) -> bool:
        self.thread.join(timeout)
        return not self.thread.is_alive()

    def __exit__(self, *exc):
        self.client.close()
        self.thread.join(5)


@target("linux")
class LinuxTarget:
    """The Linux guest (Track A) under QEMU: wslx-init as PID 1, over virtio-serial."""

    def __new__(cls, timeout: float = 10.0, kernel=None, initrd=None, **_):
        from ..guests.linux import LinuxGuest
        guest = LinuxGuest(kernel, initrd, timeout=max(timeout, 20.0))
        guest.name = cls.name
        return guest


class _HostBinaryTarget:
    """An agent binary run on the host that dials our Unix socket (--connect-unix PATH)."""
    BUILD = ""             # the scons target that makes the binary, for the error
    supports_reconnect = False

    def __init__(self, timeout: float, binary: Path):
        self.timeout = timeout
        self.binary = binary

    def _argv(self, sock_path: str) -> list[str]:
        raise NotImplementedError

    def _output(self):
        """Where the binary's stdout/stderr go (None: inherited)."""
        return None

    def _attach(self, client: AgentClient) -> None:
        """Called on each new client."""

    def __enter__(self):
        from ..agentx.errors import ConnectionLost
        if not self.binary.exists():
            raise ConnectionLost(f"{self.binary} does not exist: build it with `scons {self.BUILD}`")
        self._dir = tempfile.mkdtemp(prefix=f"wslx-{self.name}-", dir=os.environ.get("WSLX_RUN_DIR"))
        path = os.path.join(self._dir, "agentx.sock")
        self._listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._listener.bind(path)
        self._listener.listen(1)
        out = self._output()
        self.proc = subprocess.Popen(self._argv(path), stdout=out, stderr=subprocess.STDOUT if out else None,
                                     start_new_session=True)
        self.client = self._accept()
        return self

    def _accept(self) -> AgentClient:
        from ..agentx.errors import AgentTimeout
        self._listener.settimeout(self.timeout)
        try:
            conn, _ = self._listener.accept()
        except socket.timeout:
            raise AgentTimeout(f"{self.binary} did not dial {self._listener.getsockname()} within "
                               f"{self.timeout} s (exit code {self.proc.poll()})") from None
        client = AgentClient(conn, default_timeout=self.timeout, name=self.name)
        self._attach(client)
        return client

    def wait_ended(self, timeout: float) -> bool:
        try:
            self.proc.wait(timeout)
            return True
        except subprocess.TimeoutExpired:
            return False

    def __exit__(self, *exc):
        self.client.close()
        self._listener.close()
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(5)
        shutil.rmtree(self._dir, ignore_errors=True)


@target("init-host")
class InitHostTarget(_HostBinaryTarget):
    """guest/init's binary run on the host in its test mode (`wslx-init --no-setup
    --connect-unix PATH`): the C agent's protocol handling in milliseconds, without a VM.
    It dials our Unix socket and redials when we drop it, so reconnects are tested too.
    As root it isolates itself in private mount and UTS namespaces (tmpfs on /mnt), so
    MOUNT and hostname changes cannot touch the host."""
    BUILD = "init"
    supports_reconnect = True

    def __init__(self, timeout: float = 10.0, binary=None, **_):
        from .. import repo_root
        super().__init__(timeout, Path(binary) if binary else repo_root() / "images" / "wslx-init")

    def _argv(self, sock_path: str) -> list[str]:
        return [str(self.binary), "--no-setup", "--connect-unix", sock_path]

    def reconnect(self, client: AgentClient) -> AgentClient:
        client.close()
        self.client = self._accept()
        return self.client

    def drop_connection(self, client: AgentClient) -> None:
        """The host goes away (the agent redials; we are not listening for it yet)."""
        client.transport.close()

    def new_connection(self, timeout: float | None = None) -> socket.socket:
        """The agent's next connection, for AgentClient.reattach."""
        self._listener.settimeout(timeout or self.timeout)
        conn, _ = self._listener.accept()
        return conn


@target("trackb-host")
class TrackBHostTarget(_HostBinaryTarget):
    """The Track B kernel's agent sources built for the host (`build/trackb/trackb-agent-host`,
    ASan+UBSan) on a Unix socket: agent_env.h is implemented on the socket and a pmem file,
    so the same protocol code the kernel runs answers the suite in milliseconds. The harness
    dials once and powers off when the channel goes, so reconnects are not tested here."""
    BUILD = "trackb-agent-host"

    def __init__(self, timeout: float = 10.0, binary=None, pmem_size: int = 2 << 20, **_):
        from .. import repo_root
        super().__init__(timeout, Path(binary) if binary else repo_root() / "build" / "trackb" / "trackb-agent-host")
        self.pmem_size = pmem_size

    def _argv(self, sock_path: str) -> list[str]:
        args = [str(self.binary), "--connect-unix", sock_path]
        if self.pmem_size:
            args += ["--pmem-file", os.path.join(self._dir, "pmem.img"), "--pmem-size", str(self.pmem_size)]
        return args

    def _output(self):
        self.log_path = os.path.join(self._dir, "agent.log")
        self._log = open(self.log_path, "wb")
        return self._log

    def _attach(self, client: AgentClient) -> None:
        client.diagnostics = self.log_tail

    def log_tail(self, lines: int = 20) -> str:
        try:
            text = Path(self.log_path).read_text(errors="replace")
        except OSError:
            return ""
        return "agent log tail:\n" + "\n".join(text.splitlines()[-lines:])

    def __exit__(self, *exc):
        try:
            super().__exit__(*exc)
        finally:
            self._log.close()


@target("trackb-hv-host")
class TrackBHvHostTarget:
    """The Track B kernel's hv/ code and agent built for the host (`build/trackb/trackb-hv-host`,
    ASan+UBSan) against the wslx.hv model (profile --hv-profile): the suite talks AgentX over hv_sock,
    through VMBus ring buffers in the model's guest memory (conformance/trackb_hv_host.py). When the
    host closes its stream the guest sees EOF on the channel, closes it and dials the port again."""
    supports_reconnect = True

    def __init__(self, timeout: float = 10.0, hv_profile: str = "hyperv", **_):
        self.timeout, self.profile = timeout, hv_profile or "hyperv"

    def __enter__(self):
        from .trackb_hv_host import HvHostHarness
        self.harness = HvHostHarness(self.profile, mode="agent", timeout=self.timeout).__enter__()
        try:
            sock = self.harness.accept(self.timeout)
        except BaseException:
            self.harness.close()
            raise
        self.client = AgentClient(sock, default_timeout=self.timeout, name=self.name)
        self.client.diagnostics = self.harness.log_tail
        return self

    def reconnect(self, client: AgentClient) -> AgentClient:
        client.close()
        self.client = AgentClient(self.harness.accept(self.timeout), default_timeout=self.timeout,
                                  name=self.name)
        self.client.diagnostics = self.harness.log_tail
        return self.client

    def drop_connection(self, client: AgentClient) -> None:
        client.transport.close()

    def new_connection(self, timeout: float | None = None):
        return self.harness.accept(timeout or self.timeout)

    def wait_ended(self, timeout: float) -> bool:
        try:
            self.harness.proc.wait(timeout)
            return True
        except subprocess.TimeoutExpired:
            return False

    def __exit__(self, *exc):
        try:
            self.client.close()
        finally:
            self.harness.close()


@target("trackb")
class TrackBTarget:
    """The Track B kernel (images/trackb-kernel.elf) under QEMU: its agent on the
    virtio-serial port org.wslx.agentx (TrackBGuest's default channel); with vmm='hvsim',
    QEMU beside the wslx.hv model (profile hv_profile) and the agent on hv_sock."""

    def __new__(cls, timeout: float = 10.0, kernel=None, vmm: str = "qemu", hv_profile: str = "hyperv", **_):
        from ..guests.trackb import TrackBGuest
        if vmm == "hvsim":
            from ..guests.trackb_hvsim import TrackBHvsimGuest
            guest = TrackBHvsimGuest(kernel, hv_profile=hv_profile or "hyperv", timeout=max(timeout, 20.0))
            guest.name = cls.name
            return guest
        guest = TrackBGuest(kernel, timeout=max(timeout, 20.0))
        guest.name = cls.name
        return guest
