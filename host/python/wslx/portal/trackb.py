"""The Portal service of the Track B guest, driven from the host.

The service is the kernel's `portal` built-in (guest/trackb-kernel/agent/portal_svc.c
around guest/portal's freestanding core, the same code as the Linux guest's
`/init portal serve`), started with AgentX EXEC:

    with TrackBGuest(**trackb_portal_kw(portal)) as g, TrackBPortalService(g, portal):
        portal.echo(42)

Differences from wslx.portal.guest.PortalService (Linux):
- No host -> guest doorbell. The Track B agent has no STDIN, and none is needed:
  the service is stepped on every iteration of the agent's polling loop, so it
  polls SUBMIT all the time (interrupts are off; nothing in the kernel sleeps).
- The guest -> host doorbell is the same: a "!" on the service's stdout while the
  host sleeps on COMPLETE; waiting for it pumps the AgentX client.
- It stops on SIGNAL (SIGTERM), not on stdin EOF: its EXIT is SIGNALED 15.
"""
from __future__ import annotations

from ..agentx.client import ExitStatus
from .errors import PortalError
from .guest import portal_machine_kw
from .region import Portal

SERVE_ARGV = ["portal", "serve"]
SIGTERM = 15


def trackb_portal_kw(portal: Portal) -> dict:
    """TrackBGuest keywords that attach the Portal's file as its virtio-pmem device, at the
    pinned address (instead of the scratch pmem file TrackBGuest makes by default)."""
    return portal_machine_kw(portal)


class TrackBPortalService:
    """`portal serve` in a booted TrackBGuest (or the host harness target), wired to a host Portal."""

    def __init__(self, guest, portal: Portal, *, timeout: float = 30.0, doorbell: bool = True,
                 argv: list[str] | None = None):
        self.guest = guest
        self.portal = portal
        self.timeout = timeout
        self.doorbell = doorbell
        self.argv = list(argv or SERVE_ARGV)
        self.proc = None
        self.status: ExitStatus | None = None

    def start(self) -> "TrackBPortalService":
        client = self.guest.client
        self.proc = client.exec(self.argv, merge_stderr=True, timeout=self.timeout)
        try:
            self.proc.wait_for_output(b"portal: serving", timeout=self.timeout)
        except Exception as e:
            raise PortalError(f"the Track B Portal service did not start: {e}\n"
                              f"its output: {bytes(self.proc.stdout)!r}") from e
        self.portal.wait_guest(self.timeout)
        self.portal.doorbell_ring = None       # the guest polls SUBMIT; nothing to ring
        if self.doorbell:
            self.portal.doorbell_wait = self._wait
        return self

    def _wait(self, seconds: float) -> None:
        # the guest's doorbell byte (an STDIO frame) ends the wait early
        self.guest.client.pump(seconds)

    @property
    def output(self) -> bytes:
        return bytes(self.proc.stdout) if self.proc else b""

    def stop(self) -> ExitStatus | None:
        """SIGTERM the service and wait for its EXIT (SIGNALED 15 when it was serving)."""
        self.portal.doorbell_ring = self.portal.doorbell_wait = None
        if self.proc is None:
            return None
        if not self.proc.done:
            self.guest.client.signal(self.proc.pid, SIGTERM, timeout=self.timeout)
        self.status = self.proc.wait(self.timeout)
        return self.status

    def __enter__(self) -> "TrackBPortalService":
        return self.start()

    def __exit__(self, *exc) -> None:
        try:
            self.stop()
        except Exception:
            if exc[0] is None:
                raise
