"""Portal checks shared by the guests' service tests (tests/test_portal_guest.py,
tests/test_trackb_agent.py)."""
from __future__ import annotations


def forged_span_faults(p, generation: int) -> None:
    """A CHECKSUM of a span at window offset 0 (the header, not the host arena), sent past
    the host's own checks straight into SUBMIT: the guest answers FAULT (and must go on serving)."""
    from wslx.portal import Span
    from wslx.spec import portal as spec
    bad = Span(p.portal_id, 0, 0, 64, generation)
    buf = p.ffi.new("struct portal_msg *")
    buf.cookie, buf.op = 77, spec.Op.CHECKSUM
    buf.span.portal_id, buf.span.offset, buf.span.length, buf.span.generation = bad.portal_id, 0, 64, bad.generation
    p._inflight[77] = (spec.Op.CHECKSUM, bad, 0)
    assert p.lib.portal_send(p._end, spec.RingId.SUBMIT, buf, 1) == 1
    (c,) = p.reap(1, timeout=10)
    assert c.status == spec.Err.FAULT, c
