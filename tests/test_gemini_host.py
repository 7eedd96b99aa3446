"""Gemini without a VM: the guest's C core (build/gemini/libgemini_guest.so) calls the
host dispatcher (wslx.gemini) over a Portal file; services, typed errors, limits and upcalls."""
from __future__ import annotations

import os

import pytest

from wslx.gemini import Dispatcher
from wslx.gemini.dispatcher import encode_args
from wslx.gemini.guest_core import GuestClient
from wslx.gemini.services import ExecAllowList, FsExport
from wslx.portal import Portal
from wslx.spec import gemini as spec
from wslx.spec.gemini import Err
from wslx.spec.portal import RingId


@pytest.fixture
def world(tmp_path):
    export = tmp_path / "export"
    (export / "sub").mkdir(parents=True)
    (export / "a.txt").write_bytes(b"hello gemini\n")
    (export / "sub" / "big.bin").write_bytes(os.urandom(1 << 20))
    (tmp_path / "secret").write_text("outside the export")
    os.symlink(tmp_path / "secret", export / "link")
    os.symlink(tmp_path, export / "dirlink")
    with Portal.create(tmp_path / "portal.img", 16 << 20, ring_slots=256) as portal:
        d = Dispatcher(portal)
        FsExport(export).register(d)
        ExecAllowList({"echo": "/bin/echo", "false": "/bin/false", "sleep": "/bin/sleep",
                       "yes": "/usr/bin/yes"}).register(d)
        d.register("null", "call", lambda call: None)
        g = GuestClient(portal)
        yield d, g, export


def roundtrip(d, g, service, method, args=(), reply_cap=4096, timeout_ms=0):
    call = g.call_async(service, method, args, reply_cap, timeout_ms)
    assert d.poll() >= 1
    assert g.poll() >= 1 and call.done
    return call


def test_fs_read_returns_the_file_zero_copy_into_the_reply_area(world):
    d, g, export = world
    call = roundtrip(d, g, "fs", "read", ["a.txt"], 64)
    assert call.status == Err.OK and g.reply(call) == b"hello gemini\n" and call.value == 13
    big = roundtrip(d, g, "fs", "read", ["sub/big.bin"], 1 << 20)
    assert big.status == Err.OK and g.reply(big) == (export / "sub" / "big.bin").read_bytes()
    part = roundtrip(d, g, "fs", "read", ["a.txt", "6", "3"], 64)
    assert g.reply(part) == b"gem"


def test_fs_stat_describes_files_and_directories(world):
    d, g, export = world
    st = spec.FsStat.parse(g.reply(roundtrip(d, g, "fs", "stat", ["a.txt"])))
    assert st.size == 13 and st.kind == spec.FileKind.FILE and st.mtime_ns == os.stat(export / "a.txt").st_mtime_ns
    assert spec.FsStat.parse(g.reply(roundtrip(d, g, "fs", "stat", ["sub"]))).kind == spec.FileKind.DIR


@pytest.mark.parametrize("path", ["../secret", "/etc/passwd", "sub/../a.txt", "./a.txt", "link", "dirlink/secret",
                                  "sub//big.bin", ""])
def test_paths_escaping_the_export_are_denied(world, path):
    d, g, _ = world
    for method in ("read", "stat"):
        call = roundtrip(d, g, "fs", method, [path], 64)
        assert call.status == Err.PERM, (method, path, Err(call.status).name)


def test_missing_files_and_bad_arguments_have_their_own_errors(world):
    d, g, _ = world
    assert roundtrip(d, g, "fs", "read", ["nope"]).status == Err.NOENT
    assert roundtrip(d, g, "fs", "read", ["a.txt", "x"]).status == Err.INVAL
    assert roundtrip(d, g, "fs", "read", ["sub"]).status == Err.INVAL
    assert roundtrip(d, g, "fs", "read", []).status == Err.INVAL
    over = roundtrip(d, g, "fs", "read", ["a.txt", "0", "100"], 64)
    assert over.status == Err.OVERFLOW and over.result == 100


def test_exec_runs_allow_listed_programs_only(world):
    d, g, _ = world
    ok = roundtrip(d, g, "exec", "run", ["echo", "one", "two"])
    assert ok.status == Err.OK and g.reply(ok) == b"one two\n" and ok.value == 0
    assert roundtrip(d, g, "exec", "run", ["false"]).value == 1
    for name in ("sh", "/bin/echo", "../echo", "ECHO"):
        assert roundtrip(d, g, "exec", "run", [name, "x"]).status == Err.PERM, name


def test_exec_output_beyond_the_reply_area_and_overruns_are_typed(world):
    d, g, _ = world
    flood = roundtrip(d, g, "exec", "run", ["yes"], 4096)
    assert flood.status == Err.OVERFLOW
    slow = roundtrip(d, g, "exec", "run", ["sleep", "5"], 64, timeout_ms=200)
    assert slow.status == Err.TIMEDOUT


def test_unknown_services_and_hostile_names(world):
    d, g, _ = world
    assert roundtrip(d, g, "nope", "call").status == Err.NOSYS
    assert roundtrip(d, g, "fs", "write", ["a.txt"]).status == Err.NOSYS
    with pytest.raises(Exception):  # the guest core refuses a bad name before it reaches the ring
        g.call_async("FS", "read", ["a.txt"])
    assert roundtrip(d, g, "fs", "read", b"a.txt").status == Err.INVAL          # args without NUL
    assert roundtrip(d, g, "fs", "read", b"\xff\xfe\0").status == Err.INVAL     # not UTF-8


def test_dispatcher_takes_at_most_max_inflight_calls_and_never_more_than_reply_room(world):
    d, g, _ = world
    d.max_inflight = 8
    calls = [g.call_async("null", "call", [], 0) for _ in range(40)]
    taken = d.poll()
    assert taken == 8 and d.stats.max_held == 8
    while not all(c.done for c in calls):
        d.poll()
        g.poll()
    assert d.stats.ok == 40 and d.stats.max_held == 8


def test_upcalls_reach_subscribers_in_order_and_overflow_is_reported(world):
    d, g, _ = world
    g.subscribed.add("news")
    g.queue_limit = 3
    cookies = [d.post_upcall("news", f"n{i}".encode()) for i in range(5)]
    d.post_upcall("weather", b"rain")
    g.poll()
    d.poll()
    assert g.delivered == [("news", b"n0"), ("news", b"n1"), ("news", b"n2")]
    assert d.stats.upcalls_delivered == 3 and d.stats.upcalls_dropped == 2 and d.stats.upcalls_unsubscribed == 1
    assert [(t, c, s) for t, c, s in d.upcall_results] == [("news", cookies[3], Err.NOSPC),
                                                         ("news", cookies[4], Err.NOSPC),
                                                         ("weather", cookies[4] + 1, Err.NOENT)]
    assert d.upcalls_outstanding == 0  # every span came back


def test_a_guest_that_does_not_drain_upcalls_makes_post_upcall_busy(world):
    from wslx.gemini import Busy
    d, g, _ = world
    d.max_upcalls = 4
    for i in range(4):
        d.post_upcall("news", b"x")
    with pytest.raises(Busy):
        d.post_upcall("news", b"x")


def test_call_spans_in_the_host_arena_or_outside_are_bad_spans(world):
    """A guest that forges the span of a CALL gets FAULT (host arena, out of bounds) or XDEV/STALE."""
    d, g, _ = world
    lib, ffi = g.lib, g.ffi
    good = g.call_async("null", "call", [], 0)
    d.poll(); g.poll()
    forged = []
    for change in ({"flags": 0}, {"offset": 0}, {"length": 1 << 40}, {"portal_id": good.span.portal_id ^ 1},
                   {"generation": good.span.generation ^ (1 << 40)}):
        m = ffi.new("struct portal_msg *")
        m.cookie, m.op, m.span = 1000 + len(forged), spec.Op.CALL, good.span
        for k, v in change.items():
            setattr(m.span, k, v)
        assert lib.portal_send(ffi.addressof(g.c.end), RingId.EVENT, m, 1) == 1
        forged.append(change)
    d.poll()
    out = ffi.new("struct portal_msg[]", 8)
    n = lib.portal_recv(ffi.addressof(g.c.end), RingId.UPCALL, out, 8)
    assert n == len(forged)
    assert [Err(out[i].status).name for i in range(n)] == ["FAULT", "FAULT", "FAULT", "XDEV", "STALE"]
    assert d.mem.refused == 0  # caught before any guest memory was touched


def test_reply_area_lies_are_refused(world):
    """A record whose reply area overlaps the args or leaves the span: FAULT; oversize fields: TOOBIG."""
    d, g, _ = world
    call = g.call_async("fs", "read", ["a.txt"], 64)
    d.poll(); g.poll()
    ffi, lib = g.ffi, g.lib
    p = d.portal
    hdr_off = call.span.offset
    base = bytes(p.window[hdr_off:hdr_off + spec.CALL_HEADER_SIZE])
    h = dict(spec.CallHeader.parse(base))
    h.pop("_io", None)
    cases = [dict(reply_offset=8), dict(reply_cap=call.span.length), dict(reply_offset=h["reply_offset"] + 1),
             dict(args_len=spec.ARGS_MAX + 1), dict(service_len=0), dict(magic=0), dict(version=0),
             dict(version=spec.VERSION + 1)]
    want = ["FAULT", "FAULT", "FAULT", "TOOBIG", "TOOBIG", "INVAL", "PROTONOSUPPORT", "PROTONOSUPPORT"]
    got = []
    for case in cases:
        p.window[hdr_off:hdr_off + spec.CALL_HEADER_SIZE] = spec.CallHeader.build({**h, **case})
        m = ffi.new("struct portal_msg *")
        m.cookie, m.op, m.span = 7, spec.Op.CALL, call.span
        assert lib.portal_send(ffi.addressof(g.c.end), RingId.EVENT, m, 1) == 1
        d.poll()
        out = ffi.new("struct portal_msg *")
        assert lib.portal_recv(ffi.addressof(g.c.end), RingId.UPCALL, out, 1) == 1
        got.append(Err(out.status).name)
    assert got == want
    assert encode_args(["a", "b"]) == b"a\0b\0"

