"""Host side of Gemini: guest -> host calls and host -> guest upcalls over a Portal.

    with Portal.create(run_dir / "portal.img") as portal:
        d = Dispatcher(portal)
        d.register("demo", "hello", lambda call: b"hi " + call.args[0].encode())
        d.serve(until=lambda: done, timeout=...)   # or d.poll() from your own loop
        d.post_upcall("news", b"...")

Rings (docs/gemini.md): the guest posts CALL and UPCALL_DONE on EVENT; the
host answers with REPLY and posts UPCALL on UPCALL. The dispatcher is the single
consumer of EVENT and the single producer of UPCALL.

The guest is hostile. For every CALL the span must be a guest-arena span of
this region (checked by the C core against the host's private copy of the
header), the record's header, names and args are copied out before they are
looked at, every length and offset is checked against the span, and replies
are written only into the call's reply area. All guest memory the dispatcher
touches goes through GuestMemory, which refuses (and counts) anything outside
the guest arena. At most max_inflight calls are taken off EVENT at once, and
only when UPCALL has room for their replies: the rest wait in the guest's own
ring, so a flood costs the host nothing. Services run with a deadline (the
call's timeout_ms, capped by max_timeout); an overrun is answered TIMEDOUT.

Versions (docs/gemini.md): records of every version in `versions` are served, each
answered as its own version says (version >= ERROR_TEXT_VERSION: error replies carry
the message); any other version gets PROTONOSUPPORT with the host's range. The
built-in gemini.hello call is the negotiation: the highest common version.
"""
from __future__ import annotations

import dataclasses
import time
from typing import Callable

from ..portal.region import Portal, Span, _span_from_c, _span_to_c
from ..portal.errors import PortalError, from_code
from ..spec import gemini as spec
from ..spec.portal import RingId
from . import native
from .errors import (BadSpan, GeminiError, Invalid, ReplyOverflow, TooLarge, UnknownService, Busy, CallTimeout,
                     VersionUnsupported, from_status)

Handler = Callable[["Call"], "bytes | bytearray | memoryview | int | None"]
_NAME_CHARS = frozenset(b"abcdefghijklmnopqrstuvwxyz0123456789._-")


def name_ok(raw: bytes) -> bool:
    """1..NAME_MAX bytes of [a-z0-9._-] (the guest core applies the same rule)."""
    return 0 < len(raw) <= spec.NAME_MAX and all(b in _NAME_CHARS for b in raw)


class GuestMemory:
    """The only way the dispatcher reads or writes guest memory: ranges of the guest arena
    (bounds from the host's private header copy). Anything else is refused and counted."""

    def __init__(self, portal: Portal):
        self.window = portal.window
        self.lo = portal.layout["guest_arena_offset"]
        self.hi = self.lo + portal.layout["guest_arena_size"]
        self.refused = 0          # accesses asked for outside the arena (each refused)
        self.touched = 0          # accesses done

    def _check(self, off: int, length: int) -> None:
        if not (self.lo <= off and length >= 0 and off + length <= self.hi):
            self.refused += 1
            raise BadSpan(f"guest memory {off:#x}+{length} is outside the guest arena [{self.lo:#x}, {self.hi:#x})")
        self.touched += 1

    def read(self, off: int, length: int) -> bytes:
        self._check(off, length)
        return bytes(self.window[off:off + length])

    def view(self, off: int, length: int) -> memoryview:
        self._check(off, length)
        return self.window[off:off + length]


@dataclasses.dataclass
class Call:
    """One guest call as a service sees it (everything already copied out and validated)."""
    service: str
    method: str
    raw_args: bytes
    args: list[str]
    reply: memoryview          # the caller's reply area (write here for zero-copy replies)
    deadline: float            # time.monotonic() value
    value: int = 0             # returned to the guest in REPLY.arg (exec.run: exit status)
    reply_len: int = 0         # set by services that wrote into `reply` themselves

    def remaining(self) -> float:
        """Seconds left; CallTimeout once the deadline has passed."""
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise CallTimeout(f"{self.service}.{self.method}: deadline passed")
        return left


@dataclasses.dataclass
class Stats:
    calls: int = 0
    ok: int = 0
    errors: dict = dataclasses.field(default_factory=dict)   # Err name -> count
    bad_messages: int = 0      # EVENT messages that are neither a CALL nor a known UPCALL_DONE
    max_held: int = 0          # most calls held by the host at once
    upcalls_posted: int = 0
    upcalls_delivered: int = 0
    upcalls_dropped: int = 0   # guest queue full (NOSPC): reported, never silent
    upcalls_unsubscribed: int = 0
    upcalls_refused: int = 0   # the guest found the upcall malformed
    hellos: int = 0            # gemini.hello calls answered (OK or PROTONOSUPPORT)


def _args(raw: bytes) -> list[str]:
    """NUL-terminated UTF-8 strings."""
    if not raw:
        return []
    if raw[-1] != 0:
        raise Invalid("args do not end with NUL")
    try:
        return [a.decode("utf-8") for a in raw[:-1].split(b"\0")]
    except UnicodeDecodeError as e:
        raise Invalid(f"args are not UTF-8: {e}") from None


def encode_args(args: list[str]) -> bytes:
    return b"".join(a.encode() + b"\0" for a in args)


class Dispatcher:
    """Serve one guest's Gemini calls on `portal` (the host side must be initialised)."""

    def __init__(self, portal: Portal, *, max_inflight: int = spec.MAX_INFLIGHT, max_timeout: float = 30.0,
                 max_upcalls: int = 128, native_null: bool = False, spin: float = 0.0,
                 versions: tuple[int, int] = (spec.VERSION_MIN, spec.VERSION)):
        """native_null: null.call is answered in C (gemini_host_serve), never reaching Python;
        spin: seconds poll() spins in C for the first message (0: look once) and, with native_null,
        for the next one of a burst of null.calls;
        versions: the record versions served (a narrower range stands in for an older host)."""
        if not 1 <= max_inflight <= spec.MAX_INFLIGHT:
            raise ValueError(f"max_inflight {max_inflight}: must be 1..{spec.MAX_INFLIGHT}")
        lo, hi = versions
        if not spec.VERSION_MIN <= lo <= hi <= spec.VERSION:
            raise ValueError(f"versions {versions}: this host speaks {spec.VERSION_MIN}..{spec.VERSION}")
        self.versions = (lo, hi)
        self._versions_arg = spec.version_range(lo, hi)
        self.version: int | None = None         # what the last gemini.hello settled on (None: no hello yet)
        self.guest_versions: tuple[int, int] | None = None
        self.portal = portal
        # Ring I/O and the record checks run in build/gemini/libgemini_guest.so (its own copy of the
        # Portal core) on the Portal's attachment, passed by address (another cffi instance's type).
        self.ffi, self.lib = native.load()
        self.end = self.ffi.cast("struct portal_end *", int(portal.ffi.cast("uintptr_t", portal._e())))
        self.native_null = native_null
        self.spin_ns = int(spin * 1e9)
        self._answered = self.ffi.new("unsigned *")
        self._hc = self.ffi.new("struct gemini_host_call *")
        self.mem = GuestMemory(portal)
        self.max_inflight = max_inflight
        self.max_timeout = max_timeout
        self.max_upcalls = max_upcalls
        self.services: dict[tuple[str, str], Handler] = {}
        self.stats = Stats()
        self._in = self.ffi.new("struct portal_msg[]", max_inflight)
        self._out = self.ffi.new("struct portal_msg[]", max_inflight)
        self._upcalls: dict[int, tuple[str, Span]] = {}   # cookie -> (topic, host span)
        self._next_upcall = 1
        self.upcall_results: list[tuple[str, int, spec.Err]] = []   # (topic, cookie, status), non-OK only
        self.doorbell_ring: Callable[[], None] | None = None         # UPCALL port, host -> guest
        self._text_area: tuple[int, int] | None = None               # the current call's error-text area
        self.services[(spec.HELLO_SERVICE, spec.HELLO_METHOD)] = self._hello

    # ------------------------------------------------------------------ registry

    def register(self, service: str, method: str, fn: Handler) -> None:
        for n in (service, method):
            if not name_ok(n.encode()):
                raise ValueError(f"service/method name {n!r}: 1..{spec.NAME_MAX} bytes of [a-z0-9._-]")
        self.services[(service, method)] = fn

    # ------------------------------------------------------------------ serving

    def poll(self) -> int:
        """Take what EVENT holds (up to max_inflight calls, only as many as UPCALL has room
        for), answer them, post the replies. Never blocks on the guest. Returns messages taken."""
        self.portal._e()  # PortalError once the Portal is closed: self.end must not outlive it
        end = self.end
        room = self.lib.portal_space(end, RingId.UPCALL)
        if room < 0:
            raise from_code(room, "UPCALL ring")
        want = min(self.max_inflight, room)
        if want == 0:
            return 0
        answered = 0
        if self.native_null:
            n = self.lib.gemini_host_serve(end, self._in, want, self.spin_ns, self._versions_arg, self._answered)
            answered = self._answered[0]
            self.stats.calls += answered
            self.stats.ok += answered
        else:
            n = self.lib.portal_recv(end, RingId.EVENT, self._in, want)
        if n < 0:
            raise from_code(n, "EVENT ring")
        if answered:
            self._wake()
        if n == 0:
            return answered
        self.stats.max_held = max(self.stats.max_held, n)
        replies = 0
        for i in range(n):
            m = self._in[i]
            if m.op == spec.Op.CALL:
                self._answer(m, self._out[replies])
                replies += 1
            elif m.op == spec.Op.UPCALL_DONE:
                self._upcall_done(m)
            else:
                self.stats.bad_messages += 1
        if replies:
            sent = self.lib.portal_send(end, RingId.UPCALL, self._out, replies)
            if sent != replies:  # room was reserved above; anything else means the ring is corrupt
                raise from_code(sent if sent < 0 else -71, "posting replies on UPCALL")
            self._wake()
        return n + answered

    def serve(self, until: Callable[[], bool], timeout: float, idle_sleep: float = 50e-6,
              doorbell_wait: Callable[[float], None] | None = None) -> None:
        """poll() until until() is true; PortalError-free timeouts raise CallTimeout."""
        deadline = time.monotonic() + timeout
        delay = idle_sleep
        end = self.end
        while not until():
            if self.poll():
                delay = idle_sleep
                continue
            if time.monotonic() > deadline:
                raise CallTimeout(f"Gemini serve: {timeout} s passed")
            self.lib.portal_want_wakeup(end, RingId.EVENT, 1)
            if self.lib.portal_pending(end, RingId.EVENT) == 0:
                if doorbell_wait is not None:
                    doorbell_wait(min(delay * 20, 0.05))
                else:
                    time.sleep(delay)
                delay = min(delay * 2, 1e-3)
            self.lib.portal_want_wakeup(end, RingId.EVENT, 0)
            self.portal.check()

    def _wake(self) -> None:
        if self.doorbell_ring is not None and self.lib.portal_peer_wants_wakeup(self.end, RingId.UPCALL):
            self.doorbell_ring()

    # ------------------------------------------------------------------ calls

    def _answer(self, m, out) -> None:
        """Fill `out` with the REPLY to CALL `m` (copied out of the ring already)."""
        self.stats.calls += 1
        out.cookie, out.op, out.status, out.arg, out.result = m.cookie, spec.Op.REPLY, 0, 0, 0
        out.reserved0[0] = out.reserved0[1] = 0
        out.span = m.span  # echoed as sent (the guest matches it)
        self._text_area = None
        try:
            value, length = self._run(m)
            out.arg, out.result = value & 0xFFFFFFFFFFFFFFFF, length
            self.stats.ok += 1
        except ReplyOverflow as e:
            out.status, out.result = e.err, e.needed
            self._count(e.err)
        except GeminiError as e:
            out.status = e.err
            if e.err == spec.Err.PROTONOSUPPORT:
                out.arg = self._versions_arg
            if self._text_area is not None:   # a checked record of a version with error text
                off, cap = self._text_area
                text = str(e).encode("utf-8", "replace")[:cap]
                self.mem.view(off, len(text))[:] = text
                out.result = len(text)
            self._count(e.err)

    def _count(self, err: spec.Err) -> None:
        self.stats.errors[err.name] = self.stats.errors.get(err.name, 0) + 1

    def _run(self, m) -> tuple[int, int]:
        """Check the record (gemini_host_check_call: the one implementation of the checks), run the
        service, put its reply into the reply area. (value, reply bytes) or a GeminiError."""
        hc = self._hc
        rc = self.lib.gemini_host_check_call(self.end, self.ffi.addressof(m), self._versions_arg, hc)
        if rc:
            raise from_status(-rc, f"call record in span {_span_from_c(m.span)}")
        h = hc.h
        if h.version >= spec.ERROR_TEXT_VERSION:
            self._text_area = (hc.reply_offset, h.reply_cap)
        service = self.ffi.unpack(hc.service, h.service_len).decode()
        method = self.ffi.unpack(hc.method, h.method_len).decode()
        raw_args = self.mem.read(hc.args_offset, h.args_len)
        fn = self.services.get((service, method))
        if fn is None:
            raise UnknownService(f"no service {service}.{method}")
        timeout = min((h.timeout_ms or spec.DEFAULT_TIMEOUT_MS) / 1000, self.max_timeout)
        call = Call(service, method, raw_args, _args(raw_args), self.mem.view(hc.reply_offset, h.reply_cap),
                    time.monotonic() + timeout)
        try:
            out = fn(call)
        finally:
            call.reply.release()
        if time.monotonic() > call.deadline:
            raise CallTimeout(f"{call.service}.{call.method} overran its {timeout:.3f} s deadline")
        if isinstance(out, (bytes, bytearray, memoryview)):
            if len(out) > h.reply_cap:
                raise ReplyOverflow(f"reply of {len(out)} bytes > reply area {h.reply_cap}", len(out))
            self.mem.view(hc.reply_offset, len(out))[:] = out
            return call.value, len(out)
        if not 0 <= call.reply_len <= h.reply_cap:
            raise GeminiError(f"{call.service}.{call.method} claims {call.reply_len} reply bytes")
        return call.value, call.reply_len

    def _hello(self, call: Call) -> bytes:
        """gemini.hello MIN MAX: the highest version both sides speak (docs/gemini.md)."""
        self.stats.hellos += 1
        if len(call.args) != 2 or not all(a.isdigit() and len(a) <= 5 for a in call.args):
            raise Invalid(f"gemini.hello wants MIN MAX (decimal), got {call.args!r}")
        lo, hi = (int(a) for a in call.args)
        if not 1 <= lo <= hi <= 0xFFFF:
            raise Invalid(f"gemini.hello: bad version range {lo}..{hi}")
        self.guest_versions = (lo, hi)
        picked = spec.pick_version(lo, hi, *self.versions)
        if picked is None:
            raise VersionUnsupported(f"guest speaks versions {lo}..{hi}, this host "
                                     f"{self.versions[0]}..{self.versions[1]}")
        self.version = call.value = picked
        return spec.Hello.build(dict(version=picked, host_min=self.versions[0], host_max=self.versions[1]))

    # ------------------------------------------------------------------ upcalls

    def post_upcall(self, topic: str, data: bytes) -> int:
        """Post an upcall on UPCALL; returns its cookie. Busy when max_upcalls are unanswered
        or UPCALL is full (the guest is not draining)."""
        t = topic.encode()
        if not name_ok(t):
            raise Invalid(f"topic {topic!r}: 1..{spec.NAME_MAX} bytes of [a-z0-9._-]")
        if len(data) > spec.UPCALL_DATA_MAX:
            raise TooLarge(f"upcall data of {len(data)} bytes > {spec.UPCALL_DATA_MAX}")
        if len(self._upcalls) >= self.max_upcalls:
            raise Busy(f"{len(self._upcalls)} upcalls unanswered by the guest")
        end = self.end
        if self.lib.portal_space(end, RingId.UPCALL) <= 0:
            raise Busy("UPCALL ring full: the guest is not draining it")
        span = self.portal.alloc(spec.UPCALL_HEADER_SIZE + len(t) + len(data))
        try:
            v = self.portal.view(span)
            v[:spec.UPCALL_HEADER_SIZE] = spec.UpcallHeader.build(dict(magic=spec.UPCALL_MAGIC, topic_len=len(t),
                                                                       flags=0, data_len=len(data)))
            v[spec.UPCALL_HEADER_SIZE:spec.UPCALL_HEADER_SIZE + len(t)] = t
            v[spec.UPCALL_HEADER_SIZE + len(t):] = data
            v.release()
            m = self._out[0]
            cookie = self._next_upcall
            m.cookie, m.op, m.status, m.arg, m.result = cookie, spec.Op.UPCALL, 0, 0, 0
            m.reserved0[0] = m.reserved0[1] = 0
            _span_to_c(span, m.span)
            sent = self.lib.portal_send(end, RingId.UPCALL, self._out, 1)
            if sent != 1:
                raise from_code(sent if sent < 0 else -11, "posting an upcall")
        except BaseException:
            self.portal.free(span)
            raise
        self._next_upcall += 1
        self._upcalls[cookie] = (topic, span)
        self.stats.upcalls_posted += 1
        self._wake()
        return cookie

    def _upcall_done(self, m) -> None:
        entry = self._upcalls.get(m.cookie)
        if entry is None or _span_from_c(m.span) != entry[1] or m.status not in (
                spec.Err.OK, spec.Err.NOSPC, spec.Err.NOENT, spec.Err.INVAL, spec.Err.FAULT):
            self.stats.bad_messages += 1
            return
        del self._upcalls[m.cookie]
        topic, span = entry
        self.portal.free(span)
        status = spec.Err(m.status)
        if status == spec.Err.OK:
            self.stats.upcalls_delivered += 1
            return
        if status == spec.Err.NOSPC:
            self.stats.upcalls_dropped += 1
        elif status == spec.Err.NOENT:
            self.stats.upcalls_unsubscribed += 1
        else:
            self.stats.upcalls_refused += 1
        self.upcall_results.append((topic, m.cookie, status))

    @property
    def upcalls_outstanding(self) -> int:
        return len(self._upcalls)


__all__ = ["Call", "Dispatcher", "GuestMemory", "Stats", "encode_args", "name_ok", "PortalError"]
