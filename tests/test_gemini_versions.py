"""Gemini version negotiation without a VM: the guest's C core (gemini_hello, gemini_version)
against the host dispatcher, both ways and with peers of other versions: a host that
predates HELLO, an older host, an older guest that never says HELLO, a newer guest with no
common version, a hostile HELLO either way. Records of a version the host does not speak
get PROTONOSUPPORT with the host's range, never a crash."""
from __future__ import annotations

import pytest

from wslx.gemini import Dispatcher
from wslx.gemini.errors import GeminiRemoteError
from wslx.gemini.guest_core import GuestClient
from wslx.gemini.services import FsExport
from wslx.portal import Portal
from wslx.spec import gemini as spec
from wslx.spec.gemini import Err
from wslx.spec.portal import RingId


@pytest.fixture
def region(tmp_path):
    export = tmp_path / "export"
    export.mkdir()
    (export / "a.txt").write_bytes(b"hello gemini\n")
    with Portal.create(tmp_path / "portal.img", 4 << 20, ring_slots=64) as portal:
        yield portal, export


def host(portal, export, **kw) -> Dispatcher:
    d = Dispatcher(portal, **kw)
    FsExport(export).register(d)
    d.register("null", "call", lambda call: None)
    return d


def settle(d, g) -> int:
    g.hello()
    assert d.poll() == 1 and g.poll() == 1
    return g.version


def roundtrip(d, g, service, method, args=(), reply_cap=256):
    call = g.call_async(service, method, args, reply_cap)
    assert d.poll() >= 1 and g.poll() >= 1 and call.done
    return call


def forged_call(d, g, version, service=b"null", method=b"call"):
    """A record of `version` straight onto EVENT (the C client writes only versions it speaks)."""
    span = g.ffi.new("struct portal_span *")      # a real guest-arena span, from the guest's own arena
    assert g.lib.portal_arena_alloc(g.ffi.addressof(g.c.arena), 64, span) == 0
    p = d.portal
    rec = spec.CallHeader.build(dict(magic=spec.CALL_MAGIC, version=version, flags=0, service_len=len(service),
                                     method_len=len(method), args_len=0, reply_offset=48, reply_cap=16,
                                     timeout_ms=0)) + service + method
    p.window[span.offset:span.offset + len(rec)] = rec
    m = g.ffi.new("struct portal_msg *")
    m.cookie, m.op, m.span = 99, spec.Op.CALL, span[0]
    assert g.lib.portal_send(g.ffi.addressof(g.c.end), RingId.EVENT, m, 1) == 1
    d.poll()
    out = g.ffi.new("struct portal_msg *")
    assert g.lib.portal_recv(g.ffi.addressof(g.c.end), RingId.UPCALL, out, 1) == 1
    assert out.cookie == 99 and out.op == spec.Op.REPLY
    assert g.lib.portal_arena_free(g.ffi.addressof(g.c.arena), span) == 0
    return out


def test_the_spec_picks_the_highest_common_version():
    assert spec.VERSION_MIN <= spec.ERROR_TEXT_VERSION <= spec.VERSION
    assert spec.pick_version(spec.VERSION_MIN, spec.VERSION) == spec.VERSION    # the defaults are this host's range
    assert spec.pick_version(1, 2, 1, 2) == 2 and spec.pick_version(1, 1, 1, 2) == 1 and spec.pick_version(2, 9, 1, 2) == 2
    assert spec.pick_version(3, 4, 1, 2) is None and spec.pick_version(1, 5, 1, 1) == 1 and spec.pick_version(2, 2, 1, 1) is None
    assert spec.version_range(1, 2) == 0x20001
    raw = spec.Hello.build(dict(version=2, host_min=1, host_max=2))
    assert len(raw) == spec.HELLO_SIZE and raw == bytes([2, 0, 1, 0, 2, 0, 0, 0])


def test_current_peers_settle_on_the_newest_version_and_errors_carry_text(region):
    d = host(*region)
    g = GuestClient(d.portal)
    assert g.version == 0                       # nothing negotiated yet
    assert settle(d, g) == spec.VERSION
    assert d.version == spec.VERSION and d.guest_versions == (spec.VERSION_MIN, spec.VERSION) and d.stats.hellos == 1
    ok = roundtrip(d, g, "fs", "read", ["a.txt"])
    assert ok.version == spec.VERSION and g.reply(ok) == b"hello gemini\n"
    miss = roundtrip(d, g, "fs", "read", ["nope.txt"])
    assert miss.status == Err.NOENT and b"nope.txt" in g.error_text(miss)
    esc = roundtrip(d, g, "fs", "read", ["../x"], reply_cap=8)
    assert esc.status == Err.PERM and 0 < len(g.error_text(esc)) <= 8   # cut to the reply area
    unk = roundtrip(d, g, "no", "such")
    assert unk.status == Err.NOSYS and b"no.such" in g.error_text(unk)


def test_an_older_host_is_spoken_to_in_its_version(region):
    """A host of versions 1..1 (one built before version 2) answers HELLO with 1; errors have no text."""
    d = host(*region, versions=(1, 1))
    g = GuestClient(d.portal)
    assert settle(d, g) == 1 and d.version == 1
    miss = roundtrip(d, g, "fs", "read", ["nope.txt"])
    assert miss.version == 1 and miss.status == Err.NOENT and miss.result == 0 and g.error_text(miss) is None
    out = forged_call(d, g, 2)                  # a version-2 record to this host: typed, with its range
    assert out.status == Err.PROTONOSUPPORT and out.arg == spec.version_range(1, 1)
    assert g.reply(roundtrip(d, g, "fs", "read", ["a.txt"])) == b"hello gemini\n"


def test_a_host_that_predates_hello_answers_nosys_and_the_guest_speaks_version_1(region):
    d = host(*region, versions=(1, 1))
    del d.services[(spec.HELLO_SERVICE, spec.HELLO_METHOD)]   # as the version-1 dispatcher was
    g = GuestClient(d.portal)
    assert settle(d, g) == 1
    assert g.c.hello_status == Err.NOSYS and d.version is None
    call = roundtrip(d, g, "fs", "read", ["a.txt"])
    assert call.version == 1 and g.reply(call) == b"hello gemini\n"


def test_an_older_guest_that_never_says_hello_is_served_version_1(region):
    d = host(*region)
    g = GuestClient(d.portal, versions=(1, 1))   # writes version-1 records and never negotiates
    call = roundtrip(d, g, "fs", "read", ["a.txt"])
    assert call.version == 1 and g.reply(call) == b"hello gemini\n"
    miss = roundtrip(d, g, "fs", "stat", ["nope.txt"])
    assert miss.status == Err.NOENT and miss.result == 0    # version-1 semantics: no error text
    assert d.version is None and d.stats.hellos == 0


def test_a_newer_guest_with_no_common_version_gets_a_typed_refusal_both_ways(region):
    d = host(*region)
    g = GuestClient(d.portal, versions=(3, 4))
    assert settle(d, g) == -Err.PROTONOSUPPORT
    assert g.c.hello_status == Err.PROTONOSUPPORT and d.guest_versions == (3, 4) and d.version is None
    with pytest.raises(GeminiRemoteError) as e:      # the guest refuses to write a record the host cannot read
        g.call_async("fs", "read", ["a.txt"])
    assert e.value.status == Err.PROTONOSUPPORT
    for v in (3, 0xFFFF, 0):                         # and the host refuses such records if they come anyway
        out = forged_call(d, g, v)
        assert out.status == Err.PROTONOSUPPORT and out.arg == spec.version_range(1, spec.VERSION)
    assert d.stats.errors["PROTONOSUPPORT"] == 4 and d.mem.refused == 0


def test_a_newer_guest_with_an_overlap_settles_on_the_common_top(region):
    d = host(*region)
    g = GuestClient(d.portal, versions=(2, 7))
    assert settle(d, g) == 2 and d.version == 2


@pytest.mark.parametrize("args", [[], ["1"], ["x", "2"], ["2", "1"], ["0", "1"], ["1", "70000"], ["1", "-2"],
                                  ["1", "2", "3"], ["1", "99999999999999"]])
def test_hostile_hello_arguments_are_invalid_and_the_host_serves_on(region, args):
    d = host(*region)
    g = GuestClient(d.portal)
    call = roundtrip(d, g, spec.HELLO_SERVICE, spec.HELLO_METHOD, args)
    assert call.status == Err.INVAL and d.version is None
    assert g.reply(roundtrip(d, g, "fs", "read", ["a.txt"])) == b"hello gemini\n"


@pytest.mark.parametrize("lie", [dict(version=9, host_min=1, host_max=9), dict(version=2, host_min=3, host_max=4),
                                 dict(version=1, host_min=1, host_max=2, value=2), dict(short=True)])
def test_a_lying_hello_reply_leaves_the_guest_on_its_lowest_version(region, lie):
    """The host is hostile to the guest too: an answer outside either range, disagreeing with
    REPLY.arg or of the wrong size is counted and the guest keeps to version VERSION_MIN."""
    d = host(*region)

    def fake(call):
        call.value = lie.get("value", lie.get("version", 0))
        return b"\x02" if lie.get("short") else spec.Hello.build({k: v for k, v in lie.items() if k != "value"})
    d.services[(spec.HELLO_SERVICE, spec.HELLO_METHOD)] = fake
    g = GuestClient(d.portal)
    bad = g.c.bad_messages
    assert settle(d, g) == spec.VERSION_MIN
    assert g.c.hello_status == Err.INVAL and g.c.bad_messages == bad + 1


def test_the_native_null_path_checks_versions_too(region):
    d = host(*region, native_null=True)
    g = GuestClient(d.portal)
    assert settle(d, g) == spec.VERSION
    before = d.stats.calls
    call = roundtrip(d, g, "null", "call", [], 0)
    assert call.status == Err.OK and call.version == spec.VERSION and d.stats.calls == before + 1
    out = forged_call(d, g, spec.VERSION + 1)   # not answered in C: Python gives the typed refusal
    assert out.status == Err.PROTONOSUPPORT and out.arg == spec.version_range(spec.VERSION_MIN, spec.VERSION)


def test_the_dispatcher_refuses_a_range_it_does_not_speak(region):
    portal, _ = region
    for bad in [(0, 1), (2, 1), (1, spec.VERSION + 1)]:
        with pytest.raises(ValueError):
            Dispatcher(portal, versions=bad)
