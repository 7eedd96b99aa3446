"""Conformance targets: something that yields a connected AgentClient.

A target is a context manager with .name, .client, wait_ended(timeout) and,
when it can, reconnect(client) (then supports_reconnect = True)."""
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


@target("init-host")
class InitHostTarget:
    """guest/init's binary run on the host in its test mode (`wslx-init --no-setup
    --connect-unix PATH`): the C agent's protocol handling in milliseconds, without a VM.
    It dials our Unix socket and redials when we drop it, so reconnects are tested too.
    As root it isolates itself in private mount and UTS namespaces (tmpfs on /mnt), so
    MOUNT and hostname changes cannot touch the host."""
    supports_reconnect = True

    def __init__(self, timeout: float = 10.0, binary=None, **_):
        from .. import repo_root
        self.timeout = timeout
        self.binary = Path(binary) if binary else repo_root() / "images" / "wslx-init"

    def __enter__(self):
        from ..agentx.errors import ConnectionLost
        if not self.binary.exists():
            raise ConnectionLost(f"{self.binary} does not exist: build it with `scons init`")
        self._dir = tempfile.mkdtemp(prefix="wslx-init-host-", dir=os.environ.get("WSLX_RUN_DIR"))
        path = os.path.join(self._dir, "agentx.sock")
        self._listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._listener.bind(path)
        self._listener.listen(1)
        self.proc = subprocess.Popen([str(self.binary), "--no-setup", "--connect-unix", path],
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
        return AgentClient(conn, default_timeout=self.timeout, name="init-host")

    def reconnect(self, client: AgentClient) -> AgentClient:
        client.close()
        self.client = self._accept()
        return self.client

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


@target("trackb-host")
class TrackBHostTarget:
    """The Track B kernel's agent sources built for the host (`build/trackb/trackb-agent-host`,
    ASan+UBSan) on a Unix socket: agent_env.h is implemented on the socket and a pmem file,
    so the same protocol code the kernel runs answers the suite in milliseconds. The harness
    dials once and powers off when the channel goes, so reconnects are not tested here."""
    supports_reconnect = False

    def __init__(self, timeout: float = 10.0, binary=None, pmem_size: int = 2 << 20, **_):
        from .. import repo_root
        self.timeout = timeout
        self.pmem_size = pmem_size
        self.binary = Path(binary) if binary else repo_root() / "build" / "trackb" / "trackb-agent-host"

    def __enter__(self):
        from ..agentx.errors import ConnectionLost
        if not self.binary.exists():
            raise ConnectionLost(f"{self.binary} does not exist: build it with `scons trackb-agent-host`")
        self._dir = tempfile.mkdtemp(prefix="wslx-trackb-host-", dir=os.environ.get("WSLX_RUN_DIR"))
        path = os.path.join(self._dir, "agentx.sock")
        self.log_path = os.path.join(self._dir, "agent.log")
        self._listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._listener.bind(path)
        self._listener.listen(1)
        args = [str(self.binary), "--connect-unix", path]
        if self.pmem_size:
            args += ["--pmem-file", os.path.join(self._dir, "pmem.img"), "--pmem-size", str(self.pmem_size)]
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(args, stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True)
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
        client = AgentClient(conn, default_timeout=self.timeout, name="trackb-host")
        client.diagnostics = self.log_tail
        return client

    def log_tail(self, lines: int = 20) -> str:
        try:
            text = Path(self.log_path).read_text(errors="replace")
        except OSError:
            return ""
        return "agent log tail:\n" + "\n".join(text.splitlines()[-lines:])

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
        self._log.close()
        shutil.rmtree(self._dir, ignore_errors=True)


@target("trackb")
class TrackBTarget:
    """The Track B kernel (images/trackb-kernel.elf) under QEMU: its agent on COM2, over
    QemuMachine's serial channel."""

    def __new__(cls, timeout: float = 10.0, kernel=None, **_):
        from ..guests.trackb import TrackBGuest
        guest = TrackBGuest(kernel, timeout=max(timeout, 20.0))
        guest.name = cls.name
        return guest
