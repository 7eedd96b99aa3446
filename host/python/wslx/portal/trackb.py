"""The Portal service of the Track B guest, driven from the host.

The service is the kernel's `portal` built-in (guest/trackb-kernel/agent/portal_svc.c
around guest/portal's freestanding core, the same code as the Linux guest's
`/init portal serve`), started with AgentX EXEC:

    with TrackBGuest(**trackb_portal_kw(portal)) as g, TrackBPortalService(g, portal):
        portal.echo(42)

Differences from wslx.portal.guest.PortalService (Linux), its base class:
- No host -> guest doorbell. The Track B agent has no STDIN, and none is needed:
  the service is stepped on every iteration of the agent's loop, so it polls SUBMIT
  (over virtio-console or serial the loop never sleeps; over hv_sock an idle loop halts
  until an interrupt or the 1 ms stimer tick, so a SUBMIT waits at most about a tick).
- The guest -> host doorbell is the byte COMPLETE on the signal port, as on Linux
  (the kernel's virtio-console driver opens the SIGNAL port by its name beside the AgentX
  port, VIRTIO_CONSOLE_F_MULTIPORT; under hvsim it is an hv_sock stream to port 50011);
  the host sleeps on it while it waits on COMPLETE. The harness target has no signal
  port: the host polls.
  No doorbell rides on STDIO.
- It stops on SIGNAL (SIGTERM), not on stdin EOF: its EXIT is SIGNALED 15.
"""
from __future__ import annotations

from ..agentx.client import ExitStatus
from .guest import PortalService, portal_machine_kw
from .region import Portal

SERVE_ARGV = ["portal", "serve"]


def trackb_portal_kw(portal: Portal) -> dict:
    """TrackBGuest keywords that attach the Portal's file as its virtio-pmem device, at the
    pinned address (instead of the scratch pmem file TrackBGuest makes by default), and the
    signal port for the doorbells."""
    return portal_machine_kw(portal)


class TrackBPortalService(PortalService):
    """`portal serve` in a booted TrackBGuest (or the host harness target), wired to a host Portal."""

    SERVE_ARGV = SERVE_ARGV
    STDIN = False
    WHAT = "the Track B Portal service"

    def _doorbells(self):
        # no host -> guest doorbell (the guest polls SUBMIT); the guest's COMPLETE ends a wait early
        return None, (self._wait if self.signal is not None else None)

    def stop(self) -> ExitStatus | None:
        """SIGTERM the service and wait for its EXIT (SIGNALED 15 when it was serving)."""
        return self._stop()
