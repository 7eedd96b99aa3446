"""Gemini with the Track B kernel: its `gemini` built-in (guest/trackb-kernel/agent/
gemini_svc.c around guest/gemini's client, the same code as the Linux agent's).

    with TrackBGuest(**gemini_trackb_kw(portal)) as g, GeminiTrackBAgent(g, portal, d, subscribe="news") as a:
        g.client.run(["gemini", "call", "fs", "read", "a.txt"])
        a.post_upcall("news", b"...")   # printed by the built-in subscriber on the serve program's stdout

Track B has one virtio-console port (AgentX's): no SIGNAL/UPCALL ports, so no doorbells.
The kernel steps the client on every agent loop iteration and the host loop polls EVENT
(spinning 0.5 ms after traffic, then sleeping at most 20 ms), as the Portal service does.
"""
from __future__ import annotations

from ..portal.region import Portal
from ..portal.trackb import trackb_portal_kw
from .dispatcher import Dispatcher
from .host import GeminiAgent


def gemini_trackb_kw(portal: Portal) -> dict:
    return trackb_portal_kw(portal)


class GeminiTrackBAgent(GeminiAgent):
    """`gemini serve [--subscribe TOPIC]` in a booted TrackBGuest plus the host loop (polled);
    it ends on SIGNAL (no stdin on Track B)."""

    WHAT = "the Track B gemini built-in"

    def __init__(self, guest, portal: Portal, dispatcher: Dispatcher, *, timeout: float = 60.0,
                 subscribe: str | None = None):
        super().__init__(guest, portal, dispatcher, timeout=timeout)
        self.subscribe = subscribe

    def argv(self) -> list[str]:
        return ["gemini", "serve"] + (["--subscribe", self.subscribe] if self.subscribe else [])
