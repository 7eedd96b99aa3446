"""The Portal service of the Linux guest, driven from the host.

The service is wslx-init itself (multi-call: `/init portal serve`), started
with AgentX EXEC and a stdin pipe, so the initramfs needs no extra binary:

    with LinuxGuest(**portal_machine_kw(portal)) as g, PortalService(g, portal) as svc:
        portal.echo(42)

Doorbells ride on the signal port (wslx.portal.signal, docs/gemini.md): the host
sends the byte SUBMIT when the service sleeps on SUBMIT (need_wakeup), the service
sends COMPLETE when the host sleeps on COMPLETE. Both sides poll first (spin, then
yield, then sleep with a bounded backoff), so the doorbell costs nothing while
traffic flows. stdin is only the service's lifetime (EOF ends it); no doorbell rides
on STDIO any more. A machine without the signal port (or a host that does not
connect it) gets a polled service: it sleeps at most 2 ms between looks.
"""
from __future__ import annotations

from ..agentx.client import ExitStatus
from ..agentx.service import GuestService
from ..spec.portal import DEFAULT_PMEM_GPA, RingId
from .errors import PortalError
from .region import Portal
from .signal import SIGNAL_PORT, SignalPort

SERVE_ARGV = ["/init", "portal", "serve"]


def pmem_kw(portal: Portal) -> dict:
    """Machine keywords that attach the Portal's file as virtio-pmem at the pinned address."""
    return dict(pmem_path=portal.path, pmem_size=portal.file_size, pmem_addr=DEFAULT_PMEM_GPA)


def portal_machine_kw(portal: Portal) -> dict:
    """QemuMachine/LinuxGuest keywords: the Portal as virtio-pmem and the signal port for its doorbells."""
    return dict(pmem_kw(portal), named_ports=[SIGNAL_PORT])


class PortalService(GuestService):
    """`/init portal serve` in a booted LinuxGuest, wired to a host Portal.

    The base of every guest's service (wslx.portal.trackb.TrackBPortalService): what
    differs is the argv, whether the service has a stdin (its lifetime; without one it is
    ended with SIGTERM, GuestService._end) and its doorbells (_doorbells)."""

    SERVE_ARGV = SERVE_ARGV
    STDIN = True                      # a stdin pipe: its EOF ends the service
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
        self.signal: SignalPort | None = None

    @property
    def doorbells_rung(self) -> int:
        return self.signal.rung if self.signal else 0

    def _connect(self) -> None:
        """Before the service starts: the host side of the signal port, if the machine has one."""
        has_port = getattr(getattr(self.guest, "vm", None), "has_named_port", None)   # none: a harness target
        if self.doorbell and has_port is not None and has_port(SIGNAL_PORT):
            self.signal = SignalPort(self.guest.vm.named_port_socket(SIGNAL_PORT, self.timeout))

    def start(self) -> "PortalService":
        client = self.guest.client
        self._connect()
        try:
            self.proc = client.exec(self.argv, stdin=self.STDIN, merge_stderr=True, timeout=self.timeout)
            self.proc.wait_for_output(b"portal: serving", timeout=self.timeout)
            self.portal.wait_guest(self.timeout)
        except Exception as e:
            if self.signal is not None:
                self.signal.close()
            raise PortalError(self._failure(f"{self.WHAT} ({' '.join(self.argv)}) did not start serving "
                                            f"generation {self.portal.generation}: {e}")) from e
        if self.doorbell:
            self.portal.doorbell_ring, self.portal.doorbell_wait = self._doorbells()
        return self

    def _doorbells(self):
        """(ring, wait) for the Portal: bytes on the signal port (None, None: polled)."""
        if self.signal is None:
            return None, None
        return self._ring, self._wait

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
        self.signal.ring(RingId.SUBMIT)

    def _wait(self, seconds: float) -> None:
        # any byte ends the wait (a doorbell is a hint: the caller re-polls COMPLETE)
        if self.signal.wait(seconds) is None:
            self.portal.doorbell_ring, self.portal.doorbell_wait = None, None   # the port went away: poll

    def _stop(self) -> ExitStatus | None:
        self.portal.doorbell_ring = self.portal.doorbell_wait = None
        try:
            return self._stop_program()
        finally:
            if self.signal is not None:
                self.signal.close()

    def stop(self) -> int | None:
        """End the service and wait for its EXIT; returns its exit code."""
        status = self._stop()
        return status.returncode if status else None
