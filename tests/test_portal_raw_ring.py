"""Op.RAW_RING, the message-rate baseline of `wslx bench portal`: the guest's
service echoes a bare ring pair in a host span, and even with nothing validated
on that path it never writes outside the span, never runs more than its budget
per step, and starts only on a span of exactly the documented layout."""
from __future__ import annotations

import threading

import pytest

from test_portal import InProcessGuest, portal, portal_lib  # noqa: F401 (fixtures)
from wslx.portal import layout
from wslx.spec import portal as spec
from wslx.spec.portal import Err, Op


def test_raw_stream_moves_every_message(portal):
    g = InProcessGuest(portal)
    stop = threading.Event()

    def serve():
        while not stop.is_set():
            assert g.step(256) >= 0
    t = threading.Thread(target=serve)
    t.start()
    try:
        assert portal.raw_stream(20_000, 64, timeout=30) == 20_000
        assert portal.stream(1000, 64) == 1000  # the Portal rings are untouched by it
        assert g.g.raw.left == 0
    finally:
        stop.set()
        t.join()


@pytest.mark.parametrize("delta", [-64, 64, 4096])
def test_a_span_of_any_other_length_is_invalid(portal, delta):
    g = InProcessGuest(portal)
    span = portal.alloc(layout.raw_ring_bytes(portal.ring_slots) + delta)
    portal.submit(Op.RAW_RING, span, 10)
    assert g.step() == 1
    (c,) = portal.reap(1, timeout=1)
    assert c.status == Err.INVAL and g.g.raw.left == 0


def test_arg_zero_stops_it(portal):
    g = InProcessGuest(portal)
    span = portal.alloc(layout.raw_ring_bytes(portal.ring_slots))
    portal.submit(Op.RAW_RING, span, 1000)
    g.step()
    portal.reap(1, timeout=1)
    assert g.g.raw.left == 1000
    portal.submit(Op.RAW_RING, None, 0)
    g.step()
    assert portal.reap(1, timeout=1)[0].status == 0 and g.g.raw.left == 0
    portal.submit(Op.RAW_RING, None, 5)  # a raw ring needs a span (of this Portal)
    g.step()
    assert portal.reap(1, timeout=1)[0].status == Err.XDEV and g.g.raw.left == 0


def test_hostile_indices_stay_inside_the_span_and_the_budget(portal):
    """The host scribbles the raw ring's indices; the guest echoes at most its budget a step,
    and the window outside the span (and the guest's own status and Portal rings) is untouched."""
    g = InProcessGuest(portal)
    slots = portal.ring_slots
    span = portal.alloc(layout.raw_ring_bytes(slots))
    portal.submit(Op.RAW_RING, span, 1 << 40)
    g.step()
    portal.reap(1, timeout=1)
    w = portal.window
    lo, hi = span.offset, span.offset + span.length
    status = slice(spec.GUEST_STATUS_OFFSET, spec.GUEST_STATUS_OFFSET + 64)  # the heartbeat moves

    def outside():
        b = bytearray(w[:lo]) + bytearray(w[hi:])
        b[status] = bytes(64)
        return bytes(b)
    before = outside()
    up = layout.raw_ring_bytes(slots) - layout.ring_bytes(slots)
    tail_off = spec.RingCtl.subcons[0].sizeof() + spec.RingCtl.subcons[1].sizeof()
    moved = 0
    for head, tail in [(0xFFFFFFF0, 0), (7, 0xFFFFFFFF), (0x80000000, 0x7FFFFFFF), (123456, 5)]:
        w[lo:lo + 4] = head.to_bytes(4, "little")                                   # down.head
        w[lo + up + tail_off:lo + up + tail_off + 4] = tail.to_bytes(4, "little")   # up.tail
        for _ in range(3):
            n = g.step(100)
            assert 0 <= n <= 100
            moved += n
    assert moved > 0  # the unvalidated path ran
    assert outside() == before
