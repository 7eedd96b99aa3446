"""Serving a guest's Gemini calls from the host: the dispatcher in a thread, woken by the
guest's doorbells on the SIGNAL port, ringing the guest's on the UPCALL port.

    with Portal.create(path) as portal, LinuxGuest(**gemini_machine_kw(portal)) as g:
        d = Dispatcher(portal); FsExport(root).register(d)
        with GeminiLinuxAgent(g, portal, d) as agent:        # `/init gemini serve` + this host loop
            g.client.run(["wslx-call", "fs", "read", "a.txt"])
            agent.post_upcall("news", b"...")

Doorbells are hints (docs/gemini.md): the loop re-polls EVENT after every wake-up and
never sleeps longer than max_sleep, so a lost byte costs latency, never a call.
"""
from __future__ import annotations

import os
import socket
import threading
import time

from ..agentx.service import GuestService
from ..portal.errors import PortalError
from ..portal.guest import pmem_kw
from ..portal.region import Portal
from ..portal.signal import SignalPort
from ..spec.gemini import VIRTIO_SERIAL_NAMES, Port
from ..spec.portal import RingId
from .dispatcher import Dispatcher
from .errors import GeminiError

SIGNAL_PORT = VIRTIO_SERIAL_NAMES[Port.SIGNAL]
UPCALL_PORT = VIRTIO_SERIAL_NAMES[Port.UPCALL]


def gemini_machine_kw(portal: Portal) -> dict:
    """QemuMachine / LinuxGuest keywords: the Portal as virtio-pmem and Gemini's two named ports."""
    return dict(pmem_kw(portal), named_ports=[SIGNAL_PORT, UPCALL_PORT])


class GeminiHost:
    """The dispatcher's serving thread. signal/upcall: connected sockets of the two ports
    (None: poll only). Every call into the dispatcher holds one lock (it is the single
    consumer of EVENT and single producer of UPCALL)."""

    def __init__(self, dispatcher: Dispatcher, signal: socket.socket | None, upcall: socket.socket | None, *,
                 max_sleep: float = 0.02, spin: float = 5e-3, burst_spin: float = 2e-4):
        self.d = dispatcher
        self.signal = SignalPort(signal) if signal is not None else None
        self.upcall = SignalPort(upcall) if upcall is not None else None
        # without a signal port nothing wakes us: sleep at most 1 ms (the guest polls as well)
        self.max_sleep = max_sleep if signal is not None else min(max_sleep, 1e-3)
        self.spin = spin              # seconds of polling after the last message before sleeping
        # the C null.call path keeps answering a burst until it pauses this long (never more
        # than 8x in one poll, so post_upcall waits at most that for the lock): measured on
        # Track B, 1.4-2x the null calls of returning to this loop after every call
        if dispatcher.native_null and not dispatcher.spin_ns:
            dispatcher.spin_ns = int(burst_spin * 1e9)
        self.lock = threading.Lock()
        self.stray_bytes = 0          # doorbell bytes that name no guest -> host ring
        self.error: BaseException | None = None
        self.portal_bells = threading.Event()  # COMPLETE doorbells for a Portal waiter (portal_wait)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="gemini-host", daemon=True)
        if upcall is not None:
            dispatcher.doorbell_ring = self._ring

    @property
    def doorbells_rung(self) -> int:
        return self.upcall.rung if self.upcall else 0

    @property
    def doorbells_heard(self) -> int:
        return self.signal.heard if self.signal else 0

    @property
    def portal_bells_rung(self) -> int:
        """SUBMIT doorbells sent (the Portal service's, on the signal port)."""
        return self.signal.rung if self.signal else 0

    def _ring(self) -> None:
        self.upcall.ring(RingId.UPCALL)

    def _drain_signal(self, timeout: float) -> None:
        data = self.signal.wait(timeout) if self.signal is not None else None
        if data is None:  # no port, or its guest side went away: poll, at most 1 ms apart (nothing wakes us)
            time.sleep(min(timeout, 1e-3))
            return
        self.stray_bytes += sum(b not in (RingId.COMPLETE, RingId.EVENT) for b in data)
        if RingId.COMPLETE in data:
            self.portal_bells.set()

    def _loop(self) -> None:
        end = self.d.end
        lib = self.d.lib
        delay = 20e-6
        last_busy = 0.0
        try:
            while not self._stop.is_set():
                with self.lock:
                    n = self.d.poll()
                if n:
                    delay = 20e-6
                    last_busy = time.monotonic()
                    continue
                if time.monotonic() - last_busy < self.spin:  # calls come in bursts: look again soon,
                    os.sched_yield()                           # leaving the core to a vCPU that wants it
                    if self.signal is not None:
                        self._drain_signal(0)
                    continue
                lib.portal_want_wakeup(end, RingId.EVENT, 1)
                if lib.portal_pending(end, RingId.EVENT) == 0:
                    self._drain_signal(delay)
                    delay = min(delay * 2, self.max_sleep)
                lib.portal_want_wakeup(end, RingId.EVENT, 0)
                self.d.portal.check()
        except (PortalError, GeminiError, OSError) as e:
            self.error = e

    def start(self) -> "GeminiHost":
        self._thread.start()
        return self

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self._thread.join(timeout)
        if self._thread.is_alive():
            raise GeminiError(f"the Gemini host loop did not stop within {timeout} s")
        for port in (self.signal, self.upcall):
            if port is not None:
                port.close()
        if self.error is not None:
            raise GeminiError(f"the Gemini host loop failed: {self.error}") from self.error

    def post_upcall(self, topic: str, data: bytes) -> int:
        with self.lock:
            return self.d.post_upcall(topic, data)

    # The Portal service's doorbells on the same signal port (Portal.doorbell_ring / doorbell_wait)
    def portal_ring(self) -> None:
        self.signal.ring(RingId.SUBMIT)

    def portal_wait(self, seconds: float) -> None:
        self.portal_bells.wait(seconds)
        self.portal_bells.clear()


class GeminiAgent(GuestService):
    """A guest's Gemini agent started with AgentX EXEC, plus the host loop serving it. The base of
    GeminiLinuxAgent and wslx.gemini.trackb.GeminiTrackBAgent: they say how to start the guest side
    (argv, stdin, the ports); it ends on EOF or SIGTERM (GuestService._end)."""

    STDIN = False          # an stdin pipe (its EOF ends the agent)
    MERGE_STDERR = False
    WHAT = "the Gemini agent"

    def __init__(self, guest, portal: Portal, dispatcher: Dispatcher, *, timeout: float = 60.0):
        self.guest, self.portal, self.d = guest, portal, dispatcher
        self.timeout = timeout
        self.proc = None
        self.host: GeminiHost | None = None
        self.status = None

    # ---- what a subclass provides ----
    def argv(self) -> list[str]:
        raise NotImplementedError

    def _ports(self) -> tuple[socket.socket | None, socket.socket | None]:
        """The host sides of the signal and upcall ports (None: polled)."""
        return None, None

    def _started(self) -> None:
        """After the guest side said it serves."""

    # ---- shared ----
    def start(self):
        self.host = GeminiHost(self.d, *self._ports()).start()
        argv = self.argv()
        self.proc = self.guest.client.exec(argv, stdin=self.STDIN, merge_stderr=self.MERGE_STDERR, timeout=self.timeout)
        try:
            self.proc.wait_for_output(b"gemini: serving", timeout=self.timeout)
            self._started()
        except Exception as e:
            self.host.stop()
            raise GeminiError(f"{self.WHAT} (`{' '.join(argv)}`) did not start: {e}; its output: "
                              f"{self.output + bytes(self.proc.stderr)!r}") from e
        return self

    def post_upcall(self, topic: str, data: bytes) -> int:
        return self.host.post_upcall(topic, data)

    def stop(self):
        try:
            self._stop_program()
        finally:
            if self.host is not None:
                self.host.stop()
        return self.status


class GeminiLinuxAgent(GeminiAgent):
    """`/init gemini serve` in a booted LinuxGuest (stdin=True: EOF ends it), doorbells on the
    guest's two Gemini ports; portal_service: it serves the Portal's SUBMIT -> COMPLETE too, with
    the Portal's doorbells on the signal port."""

    STDIN = True
    MERGE_STDERR = True
    WHAT = "the Linux Gemini agent"

    def __init__(self, guest, portal: Portal, dispatcher: Dispatcher, *, timeout: float = 60.0,
                 doorbells: bool = True, portal_service: bool = False):
        super().__init__(guest, portal, dispatcher, timeout=timeout)
        self.doorbells = doorbells
        self.portal_service = portal_service

    def argv(self) -> list[str]:
        return ["/init", "gemini", "serve"] + (["--portal"] if self.portal_service else [])

    def _ports(self):
        if not self.doorbells:
            return None, None
        return (self.guest.vm.named_port_socket(SIGNAL_PORT, self.timeout),
                self.guest.vm.named_port_socket(UPCALL_PORT, self.timeout))

    def _started(self) -> None:
        if self.portal_service:
            self.portal.wait_guest(self.timeout)
            if self.host.signal is not None:
                self.portal.doorbell_ring = self.host.portal_ring
                self.portal.doorbell_wait = self.host.portal_wait

    def stop(self):
        if self.portal_service:
            self.portal.doorbell_ring = self.portal.doorbell_wait = None
        return super().stop()
