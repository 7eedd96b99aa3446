"""Conformance targets: something that yields a connected AgentClient.

A target is a context manager with .name, .client, wait_ended(timeout) and,
when it can, reconnect(client) (then supports_reconnect = True)."""
from __future__ import annotations

import socket
import subprocess

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
    """guest/init's binary run on the host in its test mode (`wslx-init --agent-fd N`):
    the C agent's protocol handling in milliseconds, without a VM. As root it
    isolates itself in private mount and UTS namespaces, so MOUNT cannot touch the host."""
    supports_reconnect = False

    def __init__(self, timeout: float = 10.0, binary=None, **_):
        from .. import repo_root
        self.timeout = timeout
        self.binary = binary or repo_root() / "images" / "wslx-init"

    def __enter__(self):
        from ..agentx.errors import ConnectionLost
        if not self.binary.exists():
            raise ConnectionLost(f"{self.binary} does not exist: build it with `scons init`")
        host, agent_end = socket.socketpair()
        self.proc = subprocess.Popen([str(self.binary), "--agent-fd", str(agent_end.fileno())],
                                     pass_fds=[agent_end.fileno()], start_new_session=True)
        agent_end.close()
        self.client = AgentClient(host, default_timeout=self.timeout, name="init-host")
        return self

    def wait_ended(self, timeout: float) -> bool:
        try:
            self.proc.wait(timeout)
            return True
        except subprocess.TimeoutExpired:
            return False

    def __exit__(self, *exc):
        self.client.close()
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(5)
