"""Portal without a VM: the layout from the construct spec, the generated header,
the host API over the guest's own C core, and hostile region contents.

The "guest" here is the guest's C service (guest/portal/service.c) compiled into
libportal_host.so and stepped in-process, so every test is deterministic."""
from __future__ import annotations

import subprocess
import sys

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from wslx.portal import (Portal, PortalCorrupt, PortalError, PortalHeaderChanged, PortalRemoteError,
                         PortalSpanError, PortalStaleSpan, PortalTimeout)
from wslx.portal import layout
from wslx.portal.layout import sum64
from wslx.portal.region import Span
from wslx.spec import portal as spec
from wslx.spec.portal import Err, Op, RingId


@pytest.fixture(scope="session")
def portal_lib(repo_root):
    r = subprocess.run([sys.executable, "-m", "SCons", "-Q", "portal", "build/gen/portal_layout.h"], cwd=repo_root,
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    return repo_root / "build" / "portal" / "libportal_host.so"


class InProcessGuest:
    """The guest side of a Portal: the C service, stepped by the test."""

    def __init__(self, p: Portal):
        self.p = p
        self.g = p.ffi.new("struct portal_guest *")
        self.rc = p.lib.portal_guest_init(self.g, p._wbase, len(p.window))

    def step(self, budget: int = 1024) -> int:
        return self.p.lib.portal_service_step(self.g, budget)


@pytest.fixture
def portal(tmp_path, portal_lib):
    p = Portal.create(tmp_path / "portal.img", 8 << 20, ring_slots=64)
    yield p
    p.close()


def serve_call(p: Portal, g: InProcessGuest, op, span=None, arg=0):
    p.submit(op, span, arg)
    assert g.step() == 1
    (c,) = p.reap(1, timeout=1)
    return c


def test_generated_header_matches_the_spec(repo_root, portal_lib):
    text = (repo_root / "build" / "gen" / "portal_layout.h").read_text()
    assert "generated from host/python/wslx/spec/portal.py" in text and "do not edit" in text
    assert f"#define PORTAL_MAGIC 0x{spec.MAGIC:X}ull" in text
    assert "_Static_assert(sizeof(struct portal_msg) == 64" in text
    assert "#define PORTAL_RING_CTL_OFF_TAIL 64u" in text  # head and tail on separate cache lines


def test_cffi_declarations_are_the_headers(portal):
    """The binding declares what portal.h, portal_host.h and portal_layout.h declare (typed
    structs, not void *), and cffi lays the core's private structs out as the library does."""
    from wslx.portal import native
    ffi, lib = portal.ffi, portal.lib
    for t, n in (("struct portal_end", lib.portal_end_size()), ("struct portal_arena", lib.portal_arena_size()),
                 ("struct portal_guest", lib.portal_guest_size()), ("struct portal_msg", spec.SLOT_SIZE),
                 ("struct portal_header", spec.PortalHeader.sizeof())):
        assert ffi.sizeof(t) == n, t
    assert ffi.typeof(lib.portal_send).args[0] == ffi.typeof("struct portal_end *")
    assert ffi.typeof(lib.portal_arena_init).args[2] == ffi.typeof("int")
    cdef = native.cdef()
    assert "void *e" not in cdef and "void *a" not in cdef and "_Static_assert" not in cdef
    with pytest.raises(TypeError):  # a wrong struct is refused by type, not reinterpreted
        lib.portal_check(ffi.new("struct portal_arena *"))


def test_committed_docs_match_the_spec(repo_root):
    from wslx.codegen import c_structs
    committed = (repo_root / "docs" / "portal.md").read_text()
    assert committed == c_structs.generate_markdown(spec.C_HEADER), (
        "docs/portal.md drifted from the spec: regenerate with .venv/bin/python -c 'from wslx.codegen import "
        "c_structs; from wslx.spec import portal; print(c_structs.generate_markdown(portal.C_HEADER), end=\"\")' "
        "> docs/portal.md (PYTHONPATH=host/python)")


def test_layout_plan_is_aligned_and_disjoint():
    plan = layout.plan(62 << 20, ring_slots=4096)
    extents = [(0, spec.HEADER_PAGE)] + [(r["offset"], layout.ring_bytes(r["slot_count"])) for r in plan["rings"]]
    extents += [(plan["host_arena_offset"], plan["host_arena_size"]), (plan["guest_arena_offset"], plan["guest_arena_size"])]
    extents.sort()
    for (a, alen), (b, _) in zip(extents, extents[1:]):
        assert a + alen <= b
    assert extents[-1][0] + extents[-1][1] <= 62 << 20
    assert all(off % 64 == 0 for off, _ in extents)
    with pytest.raises(ValueError):
        layout.plan(62 << 20, ring_slots=1000)


def test_header_written_by_construct_parses_back(portal):
    hdr = spec.PortalHeader.parse(bytes(portal.window[:spec.HEADER_STRUCT_SIZE]))
    assert hdr.magic == spec.MAGIC and hdr.version == spec.VERSION
    assert hdr.generation == portal.generation and hdr.portal_id == portal.portal_id
    assert [r.slot_count for r in hdr.rings] == [64] * 4
    assert portal.file_size == 8 << 20


def test_reinitialising_bumps_the_generation(portal):
    g0 = portal.generation
    portal.initialise()
    assert portal.generation == (g0 + 1) & 0xFFFFFFFF


def test_echo_checksum_transform_in_place(portal):
    g = InProcessGuest(portal)
    assert g.rc == 0
    assert portal.guest_status()["state"] == spec.GuestState.SERVING
    c = serve_call(portal, g, Op.ECHO, None, 0xDEADBEEF12345678)
    assert c.status == 0 and c.result == 0xDEADBEEF12345678
    span = portal.alloc(1001)  # odd length: the tail word is zero-padded
    data = bytes((i * 7 + 3) & 0xFF for i in range(1001))
    portal.view(span)[:] = data
    c = serve_call(portal, g, Op.CHECKSUM, span)
    assert c.status == 0 and c.result == sum64(data) != 0
    key = 0x0102030405060708
    c = serve_call(portal, g, Op.TRANSFORM, span, key)
    assert c.status == 0
    kb = key.to_bytes(8, "little")
    assert bytes(portal.view(span)) == bytes(b ^ kb[i % 8] for i, b in enumerate(data))
    assert c.span == span  # the same bytes came back: nothing was copied


def test_guest_rejects_bad_requests_with_a_status(portal):
    g = InProcessGuest(portal)
    span = portal.alloc(256)
    outside = Span(portal.portal_id, 0, portal.layout["host_arena_offset"] - 64, 256, span.generation)
    past_end = Span(portal.portal_id, 0, span.offset, portal.layout["host_arena_size"] + 64, span.generation)
    stale = Span(portal.portal_id, 0, span.offset, 256, span.generation ^ (1 << 40))
    other = Span(portal.portal_id ^ 1, 0, span.offset, 256, span.generation)
    buf = portal.ffi.new("struct portal_msg[]", 5)
    cases = [(outside, Err.FAULT), (past_end, Err.FAULT), (stale, Err.STALE), (other, Err.XDEV)]
    for i, (s, _) in enumerate(cases):  # forged past the host's own checks, straight into the ring
        m = buf[i]
        m.cookie, m.op = i + 1, Op.CHECKSUM
        m.span.portal_id, m.span.flags, m.span.offset, m.span.length, m.span.generation = (
            s.portal_id, s.flags, s.offset, s.length, s.generation)
    buf[4].cookie, buf[4].op = 5, 99
    assert portal.lib.portal_send(portal._end, RingId.SUBMIT, buf, 5) == 5
    assert g.step() == 5
    out = portal.ffi.new("struct portal_msg[]", 5)
    assert portal.lib.portal_recv(portal._end, RingId.COMPLETE, out, 5) == 5
    assert [out[i].status for i in range(5)] == [e for _, e in cases] + [Err.NOSYS]
    # the guest keeps serving after bad requests
    assert serve_call(portal, g, Op.ECHO, None, 9).result == 9


def test_failed_request_raises_a_typed_remote_error(portal):
    import threading
    g = InProcessGuest(portal)
    stop = threading.Event()

    def serve():
        while not stop.is_set():
            g.step()
    t = threading.Thread(target=serve)
    t.start()
    try:
        with pytest.raises(PortalRemoteError) as ei:
            portal.call(99)
        assert ei.value.err == Err.NOSYS
        assert portal.echo(3) == 3
    finally:
        stop.set()
        t.join()


def test_host_api_checks_spans_and_generations(portal):
    span = portal.alloc(4096)
    portal.free(span)
    with pytest.raises(PortalStaleSpan):
        portal.view(span)
    again = portal.alloc(4096)
    assert again.offset == span.offset and again.generation != span.generation
    with pytest.raises(PortalStaleSpan):
        portal.submit(Op.CHECKSUM, span)
    with pytest.raises(PortalSpanError):
        portal.view(Span(portal.portal_id, 0, 0, 64, again.generation))  # the header is not arena
    with pytest.raises(ValueError):
        again.sub(4000, 200)


def test_a_ring_that_never_drains_times_out(portal):
    # No guest steps: SUBMIT (64 slots) fills, then submit waits and gives up.
    with pytest.raises(PortalTimeout, match="does not drain"):
        portal.submit_many([(Op.NOP, None, 0)] * 65, timeout=0.2)
    with pytest.raises(PortalTimeout, match="no completion"):
        portal.reap(1, timeout=0.05)


def test_changed_magic_or_generation_is_a_typed_error(portal):
    g = InProcessGuest(portal)
    portal.window[0] ^= 0xFF  # magic
    with pytest.raises(PortalHeaderChanged):
        portal.check()
    with pytest.raises(PortalHeaderChanged):
        portal.submit(Op.NOP)
        portal.reap(1, timeout=0.05)
    assert g.step() == -Err.HEADER
    assert portal.guest_status()["state"] == spec.GuestState.FAILED
    assert portal.guest_status()["error"] == Err.HEADER


def _ring_ctl(p: Portal, ring: RingId) -> int:
    return p.layout["rings"][ring]["offset"]


def test_ring_index_out_of_range_is_corrupt(portal):
    g = InProcessGuest(portal)
    portal.submit(Op.NOP)
    assert g.step() == 1
    # the guest (producer of COMPLETE) claims 1000 messages in a 64-slot ring
    portal._u64(_ring_ctl(portal, RingId.COMPLETE))[0] = 1000
    with pytest.raises(PortalCorrupt):
        portal.reap(1, timeout=0.05)
    # the host (producer of SUBMIT) moves head backwards: the guest detaches
    portal._u64(_ring_ctl(portal, RingId.SUBMIT))[0] = 0xFFFFFFF0
    assert g.step() == -Err.PROTO


def test_stream_refuses_completions_nobody_asked_for(portal):
    """A guest that publishes more in-order completions than the host sent must not make the
    native stream loop count them as served."""
    ctl = _ring_ctl(portal, RingId.COMPLETE)
    for i in range(2):  # two NOP completions, cookies 1 and 2, status 0
        portal._u64(ctl + spec.RingCtl.sizeof() + i * spec.SLOT_SIZE)[0] = i + 1
    portal.window[ctl:ctl + 4] = (2).to_bytes(4, "little")  # COMPLETE head: 2 published
    with pytest.raises(PortalCorrupt):
        portal.stream(1, batch=1, timeout=1)


def test_completion_that_does_not_match_its_request_is_corrupt(portal):
    g = InProcessGuest(portal)
    span = portal.alloc(128)
    portal.submit(Op.ECHO, span, 5)
    assert g.step() == 1
    ffi = portal.ffi
    slot = _ring_ctl(portal, RingId.COMPLETE) + spec.RING_CTL_SIZE  # first completion slot
    gen_off = slot + ffi.offsetof("struct portal_msg", "span") + ffi.offsetof("struct portal_span", "generation")
    portal._u64(gen_off)[0] ^= 1  # a stale generation in the completion
    with pytest.raises(PortalCorrupt, match="does not match"):
        portal.reap(1, timeout=0.5)


REGION_BYTES = st.lists(st.tuples(st.integers(0, 4 * (spec.RING_CTL_SIZE + 64 * spec.SLOT_SIZE) + 4096 * 4),
                                  st.integers(0, 255)),
                        min_size=1, max_size=24)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(REGION_BYTES, st.integers(0, 40), st.integers(0, 3))
def test_random_corruption_of_header_and_rings_is_typed(portal, writes, inflight, when):
    """Scribble over the header page and the rings at random, at a random point of an
    exchange: both sides answer with typed errors or timeouts, never a crash or a hang."""
    portal.initialise(detach_timeout=0)  # the previous example's in-process guest never steps again
    g = InProcessGuest(portal)
    span = portal.alloc(512)
    limit = portal.layout["host_arena_offset"]
    try:
        def corrupt():
            for off, val in writes:
                portal.window[off % limit] = val
        if when == 0:
            corrupt()
        portal.submit_many([(Op.CHECKSUM, span, 0)] * min(inflight, 60), timeout=0.05)
        if when == 1:
            corrupt()
        rc = g.step()
        assert rc >= 0 or -rc in Err._value2member_map_
        if when == 2:
            corrupt()
        while portal._inflight:
            for c in portal.reap(64, timeout=0.02):
                assert c.status in Err._value2member_map_
        if when == 3:
            corrupt()
        portal.check()
    except PortalError:
        pass
    finally:
        portal.free(span)
    # the guest side survives the same memory: any answer is a count or a typed error
    g2 = InProcessGuest(portal)
    assert g2.rc <= 0
    if g2.rc == 0:
        rc = g2.step()
        assert rc >= 0 or -rc in Err._value2member_map_


def test_host_attaches_with_its_own_header_not_the_regions(tmp_path, portal_lib):
    """A guest that rewrites the header between the host's write and its attach must not choose
    the host's layout: here it points the host arena at the guest arena."""
    class Raced(Portal):
        def _attach(self, *args):
            forged = self.layout["guest_arena_offset"]
            off = self.ffi.offsetof("struct portal_header", "host_arena_offset")
            self.window[off:off + 8] = forged.to_bytes(8, "little")
            super()._attach(*args)

    with Raced.create(tmp_path / "raced.img", 8 << 20, ring_slots=64) as p:
        span = p.alloc(64)
        lo = p.layout["host_arena_offset"]
        assert lo <= span.offset < lo + p.layout["host_arena_size"]


def test_a_closed_portal_raises_a_typed_error(tmp_path, portal_lib):
    p = Portal.create(tmp_path / "closed.img", 8 << 20, ring_slots=64)
    span = p.alloc(64)
    p.close()
    for call in (p.check, lambda: p.alloc(64), lambda: p.submit(Op.NOP), lambda: p.reap(1, 0.01),
                 lambda: p.pingpong(1), lambda: p.view(span), p.guest_status, lambda: p.probe_wait(1, 0.01), p.flush):
        with pytest.raises(PortalError, match="closed"):
            call()


def test_span_fields_that_do_not_fit_are_span_errors(portal):
    span = portal.alloc(64)
    for bad in (Span(span.portal_id, 0, -64, 64, span.generation), Span(span.portal_id, 0, span.offset, 1 << 64,
                                                                         span.generation)):
        with pytest.raises(PortalSpanError):
            portal.view(bad)


def test_reinitialise_waits_until_a_serving_guest_detached(portal):
    """A guest in the middle of a step must not write its old-generation completions into the
    new rings: initialise() returns only after the guest noticed the header change."""
    import threading
    import time
    g = InProcessGuest(portal)
    noticed, stop = [], threading.Event()

    def serve():
        while not stop.is_set():
            if g.step() < 0 and not noticed:
                noticed.append(time.monotonic())
    t = threading.Thread(target=serve)
    t.start()
    try:
        assert portal.echo(1) == 1
        portal.initialise()
        returned = time.monotonic()
    finally:
        stop.set()
        t.join()
    assert noticed and noticed[0] <= returned


# ---------------------------------------------------------------- hostile completions (issue 11, item 9)

def _complete_slot(p: Portal, i: int) -> int:
    return _ring_ctl(p, RingId.COMPLETE) + spec.RingCtl.sizeof() + i * spec.SLOT_SIZE


def _publish_completions(p: Portal, slots: list[bytes]) -> None:
    """Play a hostile guest: write raw completions into COMPLETE and publish them all at once."""
    for i, raw in enumerate(slots):
        off = _complete_slot(p, i)
        p.window[off:off + spec.SLOT_SIZE] = raw
    p.window[_ring_ctl(p, RingId.COMPLETE):_ring_ctl(p, RingId.COMPLETE) + 4] = len(slots).to_bytes(4, "little")


def _three_echo_completions(p: Portal, g: InProcessGuest) -> tuple[list[int], list[bytes]]:
    """Submit three echoes, let the real guest service answer, and take its completions' raw bytes
    (the ring is then rewound so the test can republish them in any order)."""
    cookies = p.submit_many([(Op.ECHO, None, 10 + i) for i in range(3)])
    assert g.step() == 3
    raw = [bytes(p.window[_complete_slot(p, i):_complete_slot(p, i) + spec.SLOT_SIZE]) for i in range(3)]
    return cookies, raw


def test_a_forged_completion_mid_batch_loses_no_good_completion(portal):
    """Completion 1, one for a cookie nobody issued, then 2 and 3 in one batch: reap delivers 1,
    reports the forged one alone, then delivers 2 and 3; nothing stays in flight."""
    g = InProcessGuest(portal)
    cookies, raw = _three_echo_completions(portal, g)
    forged = bytearray(raw[0])
    forged[0:8] = (0xDEAD_BEEF).to_bytes(8, "little")
    _publish_completions(portal, [raw[0], bytes(forged), raw[1], raw[2]])

    first = portal.reap(64, timeout=0.5)
    assert [c.cookie for c in first] == cookies[:1] and first[0].result == 10
    with pytest.raises(PortalCorrupt, match="unknown cookie 0xdeadbeef"):
        portal.reap(64, timeout=0.5)
    rest = portal.reap(64, timeout=0.5)
    assert [(c.cookie, c.result) for c in rest] == [(cookies[1], 11), (cookies[2], 12)]
    assert not portal._inflight
    # no initialise() needed: a guest (re-attached, as the test forged its COMPLETE head) still serves call()
    g = InProcessGuest(portal)
    portal.submit(Op.ECHO, None, 7)
    assert g.step() == 1
    assert [c.result for c in portal.reap(1, timeout=0.5)] == [7]


def test_a_completion_forging_a_live_cookie_does_not_retire_its_request(portal):
    """A forged completion carrying a real cookie but the wrong op is reported, and the real
    completion that follows is still matched to its request."""
    g = InProcessGuest(portal)
    cookies, raw = _three_echo_completions(portal, g)
    forged = bytearray(raw[1])
    forged[8:10] = int(Op.CHECKSUM).to_bytes(2, "little")
    _publish_completions(portal, [bytes(forged), raw[0], raw[1], raw[2]])
    with pytest.raises(PortalCorrupt, match="does not match"):
        portal.reap(64, timeout=0.5)
    assert [c.cookie for c in portal.reap(64, timeout=0.5)] == cookies
    assert not portal._inflight


def test_a_completion_with_nonzero_reserved0_is_refused(portal):
    g = InProcessGuest(portal)
    cookies, raw = _three_echo_completions(portal, g)
    bad = bytearray(raw[1])
    bad[10] = 1  # PortalMsg.reserved0: "reserved, must be zero"
    _publish_completions(portal, [raw[0], bytes(bad), raw[2]])
    assert [c.cookie for c in portal.reap(64, timeout=0.5)] == cookies[:1]
    with pytest.raises(PortalCorrupt, match="reserved0"):
        portal.reap(64, timeout=0.5)
    assert [c.cookie for c in portal.reap(64, timeout=0.5)] == cookies[2:]
    assert list(portal._inflight) == [cookies[1]]  # its request never got a valid answer


@pytest.mark.parametrize("field_offset", [0, 8, 24, 32], ids=["magic", "version", "generation", "portal_id"])
def test_a_header_changed_after_attach_is_noticed_while_completions_flow(portal, field_offset):
    """docs/portal.md: the header is re-checked on every poll. A guest that rewrites it and keeps
    answering must not get its completions accepted."""
    g = InProcessGuest(portal)
    portal.submit(Op.ECHO, None, 5)
    assert g.step() == 1
    portal.window[field_offset] ^= 0x01
    with pytest.raises(PortalHeaderChanged):
        portal.reap(1, timeout=0.5)
    portal.window[field_offset] ^= 0x01  # restored: the completion was left on the ring
    assert [c.result for c in portal.reap(1, timeout=0.5)] == [5]
