"""The Portal service of the Linux guest, driven from the host.

The service is wslx-init itself (multi-call: `/init portal serve`), started
with AgentX EXEC and a stdin pipe, so the initramfs needs no extra binary:

    with LinuxGuest(**portal_machine_kw(portal)) as g, PortalService(g, portal) as svc:
        portal.echo(42)

Doorbells ride on the same AgentX process: the host writes a byte to the
service's stdin when the service sleeps on SUBMIT (need_wakeup), and the
service writes a byte to stdout when the host sleeps on COMPLETE. Both sides
poll first (spin, then yield, then sleep with a bounded backoff), so the
doorbell costs nothing while traffic flows.
"""
from __future__ import annotations

from ..agentx.client import ExitStatus
from ..agentx.service import GuestService
from ..spec.portal import DEFAULT_PMEM_GPA
from .errors import PortalError
from .region import Portal

SERVE_ARGV = ["/init", "portal", "serve"]


def portal_machine_kw(portal: Portal) -> dict:
    """QemuMachine/LinuxGuest keywords that attach the Portal's file as virtio-pmem at the pinned address."""
    return dict(pmem_path=portal.path, pmem_size=portal.file_size, pmem_addr=DEFAULT_PMEM_GPA)


class PortalService(GuestService):
    """`/init portal serve` in a booted LinuxGuest, wired to a host Portal.

    The base of every guest's service (wslx.portal.trackb.TrackBPortalService): what
    differs is the argv and whether the service has a stdin (the host -> guest doorbell;
    without one it is ended with SIGTERM, GuestService._end)."""

    SERVE_ARGV = SERVE_ARGV
    STDIN = True                      # a stdin pipe: the doorbell byte, and EOF ends the service
    WHAT = "the guest Portal service"

    def __init__(self, guest, portal: Portal, *, timeout: float = 30.0, doorbell: bool = True,
                 argv: list[str] | None = None):
        self.guest = guest
        self.portal = portal
        self.timeout = timeout
        self.doorbell = doorbell
        self.argv = list(argv or self.SERVE_ARGV)
        self.proc = None
        self.status: ExitStatus | None = None
        self.doorbells_rung = 0

    def start(self) -> "PortalService":
        client = self.guest.client
        self.proc = client.exec(self.argv, stdin=self.STDIN, merge_stderr=True, timeout=self.timeout)
        try:
            self.proc.wait_for_output(b"portal: serving", timeout=self.timeout)
            self.portal.wait_guest(self.timeout)
        except Exception as e:
            raise PortalError(self._failure(f"{self.WHAT} ({' '.join(self.argv)}) did not start serving "
                                            f"generation {self.portal.generation}: {e}")) from e
        if self.doorbell:
            # without a stdin the guest polls SUBMIT: nothing to ring
            self.portal.doorbell_ring = self._ring if self.STDIN else None
            self.portal.doorbell_wait = self._wait
        return self

    def _failure(self, message: str) -> str:
        """message + the service's output, the region's guest status, and where the guest's logs
        are (console tail, QEMU command line) unless the error already carries them."""
        parts = [message, f"its output: {self.output!r}"]
        try:
            parts.append(f"Portal guest status: {self.portal.guest_status()}")
        except PortalError:
            pass
        diagnostics = getattr(self.guest, "_diagnostics", None) or getattr(self.guest, "log_tail", None)
        if diagnostics is not None and "console log" not in message:
            try:
                parts.append(diagnostics())
            except Exception as d:  # diagnostics must never hide the real error
                parts.append(f"(diagnostics failed: {d})")
        return "\n".join(parts)

    def _ring(self) -> None:
        self.doorbells_rung += 1
        self.proc.write(b"!", timeout=self.timeout)

    def _wait(self, seconds: float) -> None:
        # Any frame (the guest's doorbell byte on stdout, STDIN_ACKs) ends the wait early.
        self.guest.client.pump(seconds)

    def _stop(self) -> ExitStatus | None:
        self.portal.doorbell_ring = self.portal.doorbell_wait = None
        return self._stop_program()

    def stop(self) -> int | None:
        """End the service and wait for its EXIT; returns its exit code."""
        status = self._stop()
        return status.returncode if status else None
