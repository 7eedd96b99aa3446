"""The Gemini host dispatcher under a hostile guest: a seeded fuzzer and Hypothesis.

Hostile calls are CALL messages whose span and record the fuzzer forges (random
and boundary header fields, flipped record bytes, spans moved, resized or taken
from the host arena or another generation), plus forged UPCALL_DONE and unknown
ops. Every CALL must be answered with a REPLY carrying a known status, the
dispatcher must never raise, no guest memory access outside the guest arena may
even be attempted (GuestMemory.refused stays 0), and the bytes the host must
not write (header page, host arena, SUBMIT/COMPLETE rings) are
byte-for-byte unchanged (EVENT and the guest arena are the fuzzer's own)."""
from __future__ import annotations

import random

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from wslx.gemini import Dispatcher
from wslx.gemini.guest_core import GuestClient
from wslx.gemini.services import ExecAllowList, FsExport
from wslx.portal import Portal
from wslx.portal.layout import ring_bytes
from wslx.spec import gemini as spec
from wslx.spec.gemini import Err
from wslx.spec.portal import RingId

FUZZ_CALLS = 20000
KNOWN = {int(e) for e in Err}


@pytest.fixture
def arena(tmp_path):
    export = tmp_path / "export"
    export.mkdir()
    (export / "f").write_bytes(b"x" * 5000)
    with Portal.create(tmp_path / "portal.img", 8 << 20, ring_slots=64) as portal:
        d = Dispatcher(portal, max_timeout=2.0)
        FsExport(export).register(d)
        ExecAllowList({"echo": "/bin/echo"}).register(d)
        d.register("null", "call", lambda call: None)
        d.register("echo", "args", lambda call: call.raw_args)
        yield d, GuestClient(portal), portal


def protected(portal: Portal) -> list[tuple[int, int]]:
    """Window ranges the host must never write while serving calls."""
    lay = portal.layout
    rings = lay["rings"]
    out = [(0, 4096), (lay["host_arena_offset"], lay["host_arena_size"])]
    for r in (RingId.SUBMIT, RingId.COMPLETE):
        out.append((rings[r]["offset"], ring_bytes(rings[r]["slot_count"])))
    return out


def snapshot(portal: Portal) -> list[bytes]:
    return [bytes(portal.window[o:o + n]) for o, n in protected(portal)]


class Hostile:
    """Sends forged calls as the guest and collects the host's replies."""

    def __init__(self, d: Dispatcher, g: GuestClient, rng: random.Random):
        self.d, self.g, self.rng = d, g, rng
        self.ffi, self.lib = g.ffi, g.lib
        self.end = self.ffi.addressof(g.c.end)
        self.msgs = self.ffi.new("struct portal_msg[]", 64)
        self.sent_calls = 0
        self.replies: list[int] = []
        # a pool of real call spans whose records get mangled
        self.spans = []
        for service, method, args, cap in (("echo", "args", ["a", "bb"], 0), ("echo", "args", ["a"], 64),
                                           ("echo", "args", ["a", "bb"], 4096), ("null", "call", [], 0)):
            c = g.call_async(service, method, args, cap)
            d.poll()
            g.poll()
            self.spans.append((c.span, bytes(d.portal.window[c.span.offset:c.span.offset + c.span.length])))

    def record(self, span, clean: bytes) -> None:
        """Write a mangled record into the span (guest memory: allowed to be anything)."""
        r = self.rng
        raw = bytearray(clean)
        h = dict(spec.CallHeader.parse(raw[:spec.CALL_HEADER_SIZE]))
        h.pop("_io", None)
        edges = [0, 1, 7, 8, 31, 32, 63, 64, 65, 0xFFFF, 0x10000, 0x7FFFFFFF, 0xFFFFFFFF, len(raw), len(raw) - 1]
        for _ in range(r.randrange(0, 3)):
            k = r.choice(["magic", "version", "flags", "service_len", "method_len", "args_len", "reply_offset",
                          "reply_cap", "timeout_ms"])
            bits = 16 if k in ("version", "flags", "service_len", "method_len") else 32
            h[k] = r.choice(edges + [r.getrandbits(bits)]) & ((1 << bits) - 1)
        raw[:spec.CALL_HEADER_SIZE] = spec.CallHeader.build(h)
        for _ in range(r.randrange(0, 4)):
            i = r.randrange(len(raw))
            raw[i] = r.getrandbits(8)
        if r.random() < 0.1:
            raw[28:32] = r.getrandbits(32).to_bytes(4, "little")  # reserved bytes
        self.d.portal.window[span.offset:span.offset + len(raw)] = raw

    def forge_span(self, s):
        r = self.rng
        lay = self.d.portal.layout
        choice = r.randrange(8)
        if choice == 0:
            s.flags = r.choice([0, 2, 3, 0xFFFFFFFF])
        elif choice == 1:
            s.offset = r.choice([0, lay["host_arena_offset"], lay["guest_arena_offset"] - 64,
                                 lay["guest_arena_offset"] + lay["guest_arena_size"] - 8, r.getrandbits(64)])
        elif choice == 2:
            s.length = r.choice([0, 1, 31, 1 << 63, r.getrandbits(64), s.length + 64])
        elif choice == 3:
            s.generation = r.getrandbits(64)
        elif choice == 4:
            s.portal_id = r.getrandbits(32)

    def burst(self) -> None:
        r = self.rng
        n = r.randrange(1, 33)
        calls = 0
        for i in range(n):
            m = self.msgs[i]
            span, clean = r.choice(self.spans)
            m.cookie = r.getrandbits(64)
            m.op = spec.Op.CALL if r.random() < 0.9 else r.choice([spec.Op.UPCALL_DONE, spec.Op.REPLY, 0, 0xFFFF])
            m.status = 0 if r.random() < 0.95 else r.getrandbits(32)
            m.reserved0[0] = 0 if r.random() < 0.95 else 1
            m.arg = m.result = 0
            m.span.portal_id, m.span.flags, m.span.offset = span.portal_id, span.flags, span.offset
            m.span.length, m.span.generation = span.length, span.generation
            self.record(span, clean)
            if r.random() < 0.5:
                self.forge_span(m.span)
            calls += m.op == spec.Op.CALL
        assert self.lib.portal_send(self.end, RingId.EVENT, self.msgs, n) == n
        self.sent_calls += calls
        while self.d.poll():
            pass
        out = self.ffi.new("struct portal_msg[]", 64)
        while (k := self.lib.portal_recv(self.end, RingId.UPCALL, out, 64)) > 0:
            for i in range(k):
                assert out[i].op == spec.Op.REPLY
                self.replies.append(out[i].status)
        assert k == 0


@pytest.mark.parametrize("native_null", [False, True], ids=["python", "native-null"])
def test_fuzz_hostile_calls_never_escape_the_guest_arena(arena, native_null):
    """native-null: null.call is answered by the C fast path (gemini_host_serve), the rest by Python."""
    d, g, portal = arena
    d.native_null = native_null
    before = snapshot(portal)
    h = Hostile(d, g, random.Random(16))
    while h.sent_calls < FUZZ_CALLS:
        h.burst()
    assert len(h.replies) == h.sent_calls, "every CALL gets exactly one REPLY"
    assert set(h.replies) <= KNOWN
    assert d.mem.refused == 0, "the dispatcher attempted guest memory outside the guest arena"
    assert snapshot(portal) == before, "the host wrote outside the guest arena and its own ring indices"
    errors = {Err(s).name for s in h.replies}
    assert {"FAULT", "INVAL", "TOOBIG"} <= errors  # the forgeries reached each check
    print(f"gemini fuzz ({'native null.call' if native_null else 'python'}): {h.sent_calls} hostile calls, {len(h.replies)} replies, "
          f"{d.mem.touched} guest-memory accesses, 0 outside the arena; statuses {sorted(errors)}")


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(fields=st.fixed_dictionaries({
    "magic": st.sampled_from([spec.CALL_MAGIC, 0, spec.UPCALL_MAGIC]), "version": st.integers(0, 3),
    "flags": st.sampled_from([0, 0, 1]), "service_len": st.integers(0, 80), "method_len": st.integers(0, 80),
    "args_len": st.integers(0, 1 << 17), "reply_offset": st.integers(0, 1 << 13),
    "reply_cap": st.integers(0, 1 << 25), "timeout_ms": st.integers(0, 1 << 32 - 1)}),
    body=st.binary(max_size=256))
def test_hypothesis_any_call_header_gets_a_known_status_and_ok_only_when_valid(arena, fields, body):
    d, g, portal = arena
    before = snapshot(portal)
    call = g.call_async("echo", "args", ["x"], 64)  # a real span of 32 + 8 + 4 + 2 -> reply at 48, 64 bytes
    span = call.span
    raw = spec.CallHeader.build(fields) + body
    raw = raw[:span.length]
    portal.window[span.offset:span.offset + len(raw)] = raw
    d.poll()
    g.poll()
    assert call.done and call.status in KNOWN
    valid = (fields["magic"] == spec.CALL_MAGIC and spec.VERSION_MIN <= fields["version"] <= spec.VERSION and not fields["flags"]
             and 1 <= fields["service_len"] <= 64 and 1 <= fields["method_len"] <= 64
             and fields["args_len"] <= spec.ARGS_MAX and fields["reply_cap"] <= spec.REPLY_MAX
             and fields["reply_offset"] % 8 == 0
             and fields["reply_offset"] >= 32 + fields["service_len"] + fields["method_len"] + fields["args_len"]
             and fields["reply_offset"] + fields["reply_cap"] <= span.length)
    if call.status == Err.OK:
        assert valid and call.result <= fields["reply_cap"]
    assert d.mem.refused == 0 and snapshot(portal) == before
    g.release(call)


def test_fuzz_hostile_host_messages_to_the_guest_core(arena):
    """The other direction: a hostile host posts forged REPLY and UPCALL messages (random cookies,
    spans anywhere, mangled upcall headers). The guest core must count them (bad_messages), refuse
    malformed upcalls with a status, never deliver outside a valid record, and keep its own
    pending call intact (the process would die on a bad access)."""
    d, g, portal = arena
    rng = random.Random(61)
    ffi, lib = portal.ffi, portal.lib   # the host's library: its own cffi types
    end = portal._e()
    g.subscribed.add("news")
    pending = g.call_async("null", "call", [], 64)       # never answered by the dispatcher here
    lay = portal.layout
    good = portal.alloc(256)
    msgs = ffi.new("struct portal_msg[]", 16)
    sent = 0
    for _ in range(600):
        n = rng.randrange(1, 17)
        for i in range(n):
            m = msgs[i]
            m.cookie = rng.choice([pending.cookie, rng.getrandbits(64), 1])
            m.op = rng.choice([spec.Op.REPLY, spec.Op.UPCALL, spec.Op.UPCALL, spec.Op.CALL, 0xFFFF])
            m.status = rng.choice([0, 0, 22, rng.getrandbits(32)])
            m.result = rng.choice([0, 64, 65, 1 << 63, rng.getrandbits(64)])
            m.arg = rng.getrandbits(64)
            m.span.portal_id, m.span.flags = good.portal_id, rng.choice([0, 0, 1, 2])
            m.span.offset = rng.choice([good.offset, lay["guest_arena_offset"], 0, rng.getrandbits(64)])
            m.span.length = rng.choice([good.length, 16, 0, rng.getrandbits(64)])
            m.span.generation = rng.choice([good.generation, rng.getrandbits(64)])
            hdr = spec.UpcallHeader.build(dict(magic=rng.choice([spec.UPCALL_MAGIC, 0]), topic_len=rng.choice(
                [4, 0, 65, 0xFFFF]), flags=rng.choice([0, 0, 1]), data_len=rng.choice([3, 0, 240, 1 << 31])))
            v = portal.view(good)
            v[:len(hdr)] = hdr
            v[len(hdr):len(hdr) + 7] = rng.choice([b"newsabc", b"NEWSabc", b"new\0abc"])
            v.release()
        assert lib.portal_send(end, RingId.UPCALL, msgs, n) == n
        sent += n
        g.poll()
        done = ffi.new("struct portal_msg[]", 64)
        while lib.portal_recv(end, RingId.EVENT, done, 64) > 0:
            pass
    c = g.c
    assert c.replies + c.bad_messages + c.upcalls <= sent and c.bad_messages > 0
    for topic, data in g.delivered:     # only well-formed upcalls reached the subscriber
        assert topic == "news" and len(data) <= 240
    assert not pending.done or pending.result <= 64 or pending.status != 0
    print(f"gemini guest-core fuzz: {sent} hostile host messages, {c.bad_messages} refused, "
          f"{len(g.delivered)} delivered")


_GUARD_SCRIPT = r'''
import ctypes, mmap, random, sys
from wslx.gemini import native
from wslx.gemini.guest_core import GuestClient
from wslx.portal import Portal
from wslx.spec import gemini as spec, portal as pspec

n_calls = int(sys.argv[2])
p = Portal.create(sys.argv[1], 8 << 20, ring_slots=64)
g = GuestClient(p)
calls = [g.call_async("echo", "args", ["a", "bb"], cap) for cap in (0, 64, 4096)]   # kept alive: spans in them
spans = [c.span for c in calls]
clean = {sp.offset: bytes(p.window[sp.offset:sp.offset + min(sp.length, 256)]) for sp in spans}
ffi, lib = native.load()
end = ffi.cast("struct portal_end *", int(p.ffi.cast("uintptr_t", p._e())))
lay = p.layout
base = int(p.ffi.cast("uintptr_t", p._base))
lo = pspec.WINDOW_OFFSET + lay["guest_arena_offset"]
hi = lo + lay["guest_arena_size"]
PROT_NONE = 0
libc = ctypes.CDLL(None, use_errno=True)
libc.mprotect.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
assert libc.mprotect(base, lo, PROT_NONE) == 0          # everything before the guest arena
if hi < len(p._mm):
    assert libc.mprotect(base + hi, len(p._mm) - hi, PROT_NONE) == 0
if len(sys.argv) > 3:  # the control: a read just before the arena must kill us
    print(bytes(p.window[lay["guest_arena_offset"] - 1:lay["guest_arena_offset"]]))
rng = random.Random(7)
hc = ffi.new("struct gemini_host_call *")
m = ffi.new("struct portal_msg *")
statuses = set()
for i in range(n_calls):
    s = rng.choice(spans)
    m.op, m.status, m.arg, m.result = spec.Op.CALL, 0, 0, 0
    m.span.portal_id, m.span.flags, m.span.offset, m.span.length, m.span.generation = (
        s.portal_id, s.flags, s.offset, s.length, s.generation)
    k = rng.randrange(6)
    if k == 0: m.span.offset = rng.choice([0, lay["host_arena_offset"], lay["guest_arena_offset"] - 64, rng.getrandbits(64)])
    elif k == 1: m.span.length = rng.choice([0, 31, 1 << 40, rng.getrandbits(64), lay["guest_arena_size"]])
    elif k == 2: m.span.offset = lay["guest_arena_offset"] + lay["guest_arena_size"] - rng.randrange(1, 200)
    rec = bytearray(clean[s.offset])
    for _ in range(rng.randrange(0, 6)):
        rec[rng.randrange(len(rec))] = rng.getrandbits(8)
    if rng.random() < 0.3:
        rec[12:16] = rng.getrandbits(32).to_bytes(4, "little")   # args_len
        rec[16:24] = rng.getrandbits(64).to_bytes(8, "little")   # reply_offset, reply_cap
    p.window[s.offset:s.offset + len(rec)] = rec
    statuses.add(-lib.gemini_host_check_call(end, m, spec.version_range(spec.VERSION_MIN, spec.VERSION), hc))
print("checked", n_calls, sorted(statuses))
'''


def test_c_record_checks_read_nothing_outside_the_guest_arena(tmp_path, repo_root):
    """gemini_host_check_call with every page of the region but the guest arena unmapped
    (mprotect PROT_NONE): any read outside the arena would kill the process (SIGSEGV)."""
    import os
    import subprocess
    import sys
    env = dict(os.environ, PYTHONPATH=str(repo_root / "host" / "python"))
    r = subprocess.run([sys.executable, "-c", _GUARD_SCRIPT, str(tmp_path / "portal.img"), "20000"],
                       capture_output=True, text=True, timeout=600, env=env, cwd=repo_root)
    assert r.returncode == 0, f"exit {r.returncode} (negative: killed by that signal)\n{r.stderr[-3000:]}"
    assert r.stdout.startswith("checked 20000")
    statuses = eval(r.stdout.split(" ", 2)[2])  # noqa: S307 (our own subprocess's list of ints)
    assert {0, spec.Err.FAULT, spec.Err.INVAL, spec.Err.TOOBIG} <= set(statuses)
    print(f"gemini C checks under guard pages: {r.stdout.strip()}")
    control = subprocess.run([sys.executable, "-c", _GUARD_SCRIPT, str(tmp_path / "control.img"), "1", "probe"],
                             capture_output=True, text=True, timeout=600, env=env, cwd=repo_root)
    assert control.returncode == -11, "the guard pages do not guard: a read outside the arena went unnoticed"
