"""Gemini with the Track B kernel: its `gemini` built-in (guest/trackb-kernel/agent/
gemini_svc.c around guest/gemini's client, the same code as the Linux agent's).

    with TrackBGuest(**gemini_trackb_kw(portal)) as g, GeminiTrackBAgent(g, portal, d, subscribe="news") as a:
        g.client.run(["gemini", "call", "fs", "read", "a.txt"])
        a.post_upcall("news", b"...")   # printed by the built-in subscriber on the serve program's stdout

Doorbells, as with Linux: under QEMU the kernel's virtio-console driver opens the SIGNAL
and UPCALL ports by name beside AgentX's (MULTIPORT); under hvsim (Hyper-V) the kernel dials
the SIGNAL and UPCALL hv_sock ports beside AgentX's (the machine's named_port_socket accepts
them: the same call). It rings EVENT on SIGNAL when the host loop sleeps on EVENT; the host
rings UPCALL on UPCALL when `gemini serve` sleeps on it (no call in flight), and serve then
polls the ring (and every 20 ms anyway: doorbells are hints). `gemini stat` in the guest
counts what it heard. Without the ports (the host harness) both sides poll: the kernel steps
the client on every agent loop iteration.
"""
from __future__ import annotations

from ..portal.region import Portal
from .dispatcher import Dispatcher
from .host import SIGNAL_PORT, UPCALL_PORT, GeminiAgent, gemini_machine_kw


def gemini_trackb_kw(portal: Portal) -> dict:
    """TrackBGuest keywords: the Portal as virtio-pmem at the pinned address and Gemini's two ports."""
    return gemini_machine_kw(portal)


class GeminiTrackBAgent(GeminiAgent):
    """`gemini serve [--subscribe TOPIC]` in a booted TrackBGuest plus the host loop (woken by
    the SIGNAL port and ringing the UPCALL port when the machine has them, else polled); it
    ends on SIGNAL (no stdin on Track B)."""

    WHAT = "the Track B gemini built-in"

    def __init__(self, guest, portal: Portal, dispatcher: Dispatcher, *, timeout: float = 60.0,
                 subscribe: str | None = None):
        super().__init__(guest, portal, dispatcher, timeout=timeout)
        self.subscribe = subscribe

    def argv(self) -> list[str]:
        return ["gemini", "serve"] + (["--subscribe", self.subscribe] if self.subscribe else [])

    def _ports(self):
        vm = self.guest.vm
        return tuple(vm.named_port_socket(p, self.timeout) if vm.has_named_port(p) else None
                     for p in (SIGNAL_PORT, UPCALL_PORT))
