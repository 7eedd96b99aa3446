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
from ..portal.trackb import SIGTERM, trackb_portal_kw
from .dispatcher import Dispatcher
from .errors import GeminiError
from .host import GeminiHost


def gemini_trackb_kw(portal: Portal) -> dict:
    return trackb_portal_kw(portal)


class GeminiTrackBAgent:
    """`gemini serve [--subscribe TOPIC]` in a booted TrackBGuest plus the host loop (polled)."""

    def __init__(self, guest, portal: Portal, dispatcher: Dispatcher, *, timeout: float = 60.0,
                 subscribe: str | None = None):
        self.guest, self.portal, self.d = guest, portal, dispatcher
        self.timeout = timeout
        self.argv = ["gemini", "serve"] + (["--subscribe", subscribe] if subscribe else [])
        self.proc = None
        self.host: GeminiHost | None = None
        self.status = None

    def start(self) -> "GeminiTrackBAgent":
        self.host = GeminiHost(self.d, None, None).start()
        self.proc = self.guest.client.exec(self.argv, timeout=self.timeout)
        try:
            self.proc.wait_for_output(b"gemini: serving", timeout=self.timeout)
        except Exception as e:
            self.host.stop()
            raise GeminiError(f"`{' '.join(self.argv)}` did not start: {e}; its output: "
                              f"{bytes(self.proc.stdout) + bytes(self.proc.stderr)!r}") from e
        return self

    @property
    def output(self) -> bytes:
        return bytes(self.proc.stdout) if self.proc else b""

    def post_upcall(self, topic: str, data: bytes) -> int:
        return self.host.post_upcall(topic, data)

    def stop(self):
        try:
            if self.proc is not None and not self.proc.done:
                self.guest.client.signal(self.proc.pid, SIGTERM, timeout=self.timeout)
                self.status = self.proc.wait(self.timeout)
        finally:
            if self.host is not None:
                self.host.stop()
        return self.status

    def __enter__(self) -> "GeminiTrackBAgent":
        return self.start()

    def __exit__(self, *exc) -> None:
        try:
            self.stop()
        except Exception:
            if exc[0] is None:
                raise
