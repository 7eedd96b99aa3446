"""Gemini with the Track B kernel: its `gemini` built-in (guest/trackb-kernel/agent/
gemini_svc.c around guest/gemini's client, the same code as the Linux agent's).

    with TrackBGuest(**gemini_trackb_kw(portal)) as g, GeminiTrackBAgent(g, portal, d, subscribe="news") as a:
        g.client.run(["gemini", "call", "fs", "read", "a.txt"])
        a.post_upcall("news", b"...")   # printed by the built-in subscriber on the serve program's stdout

Doorbells: the kernel's virtio-console driver opens the SIGNAL port beside AgentX's and
rings EVENT there when the host loop sleeps on EVENT; the host loop sleeps on that port.
There is no UPCALL port: the kernel steps the client on every agent loop iteration, so it
polls UPCALL anyway (over virtio-console or serial the loop never sleeps; over hv_sock an
idle loop halts until an interrupt or the 1 ms stimer tick, so an upcall waits at most about a tick).
"""
from __future__ import annotations

from ..portal.region import Portal
from ..portal.signal import SIGNAL_PORT
from ..portal.trackb import trackb_portal_kw
from .dispatcher import Dispatcher
from .host import GeminiAgent


def gemini_trackb_kw(portal: Portal) -> dict:
    return trackb_portal_kw(portal)


class GeminiTrackBAgent(GeminiAgent):
    """`gemini serve [--subscribe TOPIC]` in a booted TrackBGuest plus the host loop (woken by
    the SIGNAL port when the machine has it, else polled); it ends on SIGNAL (no stdin on Track B)."""

    WHAT = "the Track B gemini built-in"

    def __init__(self, guest, portal: Portal, dispatcher: Dispatcher, *, timeout: float = 60.0,
                 subscribe: str | None = None):
        super().__init__(guest, portal, dispatcher, timeout=timeout)
        self.subscribe = subscribe

    def argv(self) -> list[str]:
        return ["gemini", "serve"] + (["--subscribe", self.subscribe] if self.subscribe else [])

    def _ports(self):
        vm = self.guest.vm
        if SIGNAL_PORT not in vm.named_ports:
            return None, None
        return vm.named_port_socket(SIGNAL_PORT, self.timeout), None
