"""Host side of a Portal region: the backing file, its mapping, the layout, the
host arena, and requests over SUBMIT/COMPLETE.

    with Portal.create(run_dir / "portal.img", 64 << 20) as p:
        # QemuMachine(..., pmem_path=p.path, pmem_size=p.file_size, pmem_addr=DEFAULT_PMEM_GPA)
        span = p.alloc(4096)
        p.view(span)[:5] = b"hello"
        assert p.checksum(span) == sum64(p.view(span))

The header is built with the construct spec (wslx.spec.portal); the rings,
span checks and arena are the guest's own C core, loaded through cffi
(wslx.portal.native). Everything the guest writes is hostile: ring indices,
completions, spans and the header are validated on every use and anything
wrong raises a typed PortalError; every wait has a timeout.
"""
from __future__ import annotations

import collections
import dataclasses
import mmap
import os
import random
import time
from pathlib import Path
from typing import Callable, Iterable

from ..spec import portal as spec
from ..spec.portal import Err, Op, RingId, Side
from . import layout, native
from .errors import PortalCorrupt, PortalError, PortalRemoteError, PortalSpanError, PortalTimeout, from_code

FILE_ALIGN = 2 << 20  # virtio-pmem wants the backing size in 2 MiB units


@dataclasses.dataclass(frozen=True)
class Span:
    portal_id: int
    flags: int
    offset: int      # window offset
    length: int
    generation: int

    def sub(self, start: int, length: int) -> "Span":
        """A part of this span (same allocation and generation)."""
        if start < 0 or length < 0 or start + length > self.length:
            raise ValueError(f"sub-span {start}+{length} outside a span of {self.length} bytes")
        return dataclasses.replace(self, offset=self.offset + start, length=length)


@dataclasses.dataclass(frozen=True)
class Completion:
    cookie: int
    op: int
    status: int
    span: Span
    arg: int
    result: int


def _span_from_c(s) -> Span:
    return Span(s.portal_id, s.flags, s.offset, s.length, s.generation)


def _span_to_c(span: Span | None, out) -> None:
    if span is None:
        out.portal_id = out.flags = out.offset = out.length = out.generation = 0
        return
    try:
        out.portal_id, out.flags, out.offset, out.length, out.generation = (
            span.portal_id, span.flags, span.offset, span.length, span.generation)
    except (OverflowError, TypeError) as e:  # a field that does not fit its C type
        raise PortalSpanError(f"span {span}: {e}") from None


class Portal:
    """One Portal region backed by a file, host side."""

    def __init__(self, path: Path | str, *, ring_slots: int = 4096):
        self.path = Path(path)
        self.ring_slots = ring_slots
        self.ffi, self.lib = native.load()
        self._file = None
        self._mm: mmap.mmap | None = None
        self.window: memoryview | None = None
        self._end = None
        self._arena = None
        self._cbuf = None
        self.generation = 0
        self.portal_id = 0
        self.layout: dict = {}
        self._inflight: dict[int, tuple[int, Span | None, int]] = {}
        self._backlog: collections.deque[tuple[Completion, bytes]] = collections.deque()  # taken, not delivered
        self._next_cookie = 1
        self.doorbell_ring: Callable[[], None] | None = None        # host -> guest wakeup
        self.doorbell_wait: Callable[[float], None] | None = None   # block up to t s for guest -> host
        self.spin_ns = 50_000

    # ------------------------------------------------------------------ setup

    @classmethod
    def create(cls, path: Path | str, size: int = 64 << 20, *, ring_slots: int = 4096) -> "Portal":
        """Create (or reuse) the backing file of `size` bytes and initialise a fresh layout in it."""
        if size % FILE_ALIGN or size < spec.WINDOW_OFFSET + FILE_ALIGN:
            raise ValueError(f"portal size {size}: must be a multiple of 2 MiB and at least "
                             f"{spec.WINDOW_OFFSET + FILE_ALIGN} bytes")
        p = cls(path, ring_slots=ring_slots)
        fd = os.open(p.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            os.ftruncate(fd, size)
        finally:
            os.close(fd)
        p.open()
        p.initialise()
        return p

    @property
    def file_size(self) -> int:
        return os.stat(self.path).st_size

    def open(self) -> None:
        self._file = open(self.path, "r+b")
        self._mm = mmap.mmap(self._file.fileno(), 0, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
        if len(self._mm) < spec.WINDOW_OFFSET + spec.HEADER_PAGE:
            raise PortalError(f"{self.path}: {len(self._mm)} bytes is too small for a Portal")
        self.window = memoryview(self._mm)[spec.WINDOW_OFFSET:]
        self._base = self.ffi.from_buffer(self._mm)
        self._wbase = self._base + spec.WINDOW_OFFSET

    def _window(self) -> memoryview:
        if self.window is None:
            raise PortalError(f"{self.path}: the Portal is closed")
        return self.window

    def _e(self):
        """The C core's attachment; PortalError once closed (the C code must never get NULL)."""
        if self._end is None:
            raise PortalError(f"{self.path}: the Portal is closed or not initialised")
        return self._end

    def _u64(self, off: int) -> memoryview:
        """An 8-byte native view: one aligned store or load (struct.pack_into would store byte by byte)."""
        return self._window()[off:off + 8].cast("Q")

    def initialise(self, detach_timeout: float = 1.0) -> None:
        """Write a fresh layout: a new generation (old + 1), zeroed rings, magic last.

        A guest serving the old generation may be in the middle of a step; its late
        stores to COMPLETE and to SUBMIT's tail would land in the new rings. So magic is
        cleared first and, before the rings are reused, we wait (up to detach_timeout)
        until the guest reports it detached, or until its heartbeat stops: a guest
        between steps checks the header before it touches a ring again."""
        w = self._window()
        try:  # a previous layout (e.g. before a restore): continue its generations
            prev_gen = spec.PortalHeader.parse(bytes(w[:spec.HEADER_STRUCT_SIZE])).generation
        except Exception:  # construct errors: no valid previous header
            prev_gen = 0
        if self._u64(0)[0] != spec.MAGIC:
            prev_gen = 0
        if self.generation:  # ours, not what the guest may have written there since
            prev_gen = self.generation
        gen = (prev_gen + 1) & 0xFFFFFFFF or 1
        if not prev_gen:
            gen = random.randrange(1, 1 << 31)
        plan = layout.plan(len(w), ring_slots=self.ring_slots)
        self._u64(0)[0] = 0  # invalidate first: the guest must never attach to a half-written header
        self._wait_guest_detached(detach_timeout)
        w[:spec.HEADER_PAGE] = bytes(spec.HEADER_PAGE)
        for r in plan["rings"]:
            w[r["offset"]:r["offset"] + spec.RingCtl.sizeof()] = bytes(spec.RingCtl.sizeof())
        self.portal_id = random.randrange(1, 1 << 32)
        hdr = spec.PortalHeader.build(dict(magic=0, version=spec.VERSION, generation=gen, portal_id=self.portal_id,
                                           **plan))
        w[:len(hdr)] = hdr
        self._u64(0)[0] = spec.MAGIC
        self.generation = gen
        self.layout = plan
        self._attach(spec.PortalHeader.build(dict(magic=spec.MAGIC, version=spec.VERSION, generation=gen,
                                                  portal_id=self.portal_id, **plan)))

    def _wait_guest_detached(self, timeout: float, idle: float = 0.2) -> None:
        st = self.guest_status()
        if not self.generation or st["state"] != spec.GuestState.SERVING or st["generation"] != self.generation:
            return
        now = time.monotonic()
        deadline, beat, beat_seen = now + timeout, st["heartbeat"], now
        while now < deadline and now - beat_seen < idle:
            time.sleep(0.001)
            st, now = self.guest_status(), time.monotonic()
            if st["state"] != spec.GuestState.SERVING or st["generation"] != self.generation:
                return
            if st["heartbeat"] != beat:
                beat, beat_seen = st["heartbeat"], now

    def _attach(self, header: bytes) -> None:
        """Attach the C core with our own header bytes, never with what the region holds now:
        the guest could have rewritten it since we wrote it."""
        ffi, lib = self.ffi, self.lib
        self._end = None  # until attached: an unattached struct must never reach the C core
        end = ffi.new("struct portal_end *")
        self._hdr = ffi.new("struct portal_header *")
        ffi.memmove(self._hdr, header, ffi.sizeof(self._hdr[0]))
        rc = lib.portal_attach_header(end, self._wbase, len(self.window), Side.HOST, self._hdr)
        if rc:
            raise from_code(rc, "attaching to the Portal header")
        self._end = end
        self._arena = ffi.new("struct portal_arena *")
        lib.portal_arena_init(self._arena, self._end, Side.HOST)
        self._cbuf = ffi.new("struct portal_msg[]", 1024)
        self._inflight.clear()
        self._backlog.clear()

    def close(self) -> None:
        self._end = self._arena = None
        self.window = None
        self._base = self._wbase = None
        if self._mm is not None:
            try:
                self._mm.close()
            except BufferError:  # a caller still holds a view; the mapping goes with the last one
                pass
            self._mm = None
        if self._file is not None:
            self._file.close()
            self._file = None

    def __enter__(self) -> "Portal":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def flush(self) -> None:
        """msync the mapping and fsync the file (what the guest's virtio-pmem flush asks QEMU to do)."""
        if self._mm is None or self._file is None:
            raise PortalError(f"{self.path}: the Portal is closed")
        self._mm.flush()
        os.fsync(self._file.fileno())

    # ------------------------------------------------------------------ checks

    def check(self) -> None:
        """PortalHeaderChanged if the guest rewrote magic, version, generation or portal_id."""
        rc = self.lib.portal_check(self._e())
        if rc:
            raise from_code(rc, "Portal header check")

    def guest_status(self) -> dict:
        """The guest-written status line (hostile: state may be any integer)."""
        ffi = self.ffi
        st = ffi.new("struct portal_guest_status *")  # a private copy: the guest may write on
        ffi.memmove(st, self._window()[spec.GUEST_STATUS_OFFSET:spec.GUEST_STATUS_OFFSET + ffi.sizeof(st[0])],
                    ffi.sizeof(st[0]))
        return {name: getattr(st, name) for name, _ in ffi.typeof(st[0]).fields if name != "reserved"}

    def wait_guest(self, timeout: float, alive: Callable[[], None] | None = None) -> dict:
        """Wait until the guest serves this generation; PortalTimeout otherwise (with its status)."""
        deadline = time.monotonic() + timeout
        while True:
            st = self.guest_status()
            if st["state"] == spec.GuestState.SERVING and st["generation"] == self.generation:
                return st
            if time.monotonic() > deadline:
                raise PortalTimeout(f"guest did not attach to generation {self.generation} within {timeout} s "
                                    f"(guest status {st})")
            if alive:
                alive()
            time.sleep(0.01)

    # ------------------------------------------------------------------ arena

    def alloc(self, length: int) -> Span:
        s = self.ffi.new("struct portal_span *")
        self._e()
        rc = self.lib.portal_arena_alloc(self._arena, length, s)
        if rc:
            raise from_code(rc, f"allocating {length} bytes")
        return _span_from_c(s)

    def free(self, span: Span) -> None:
        s = self.ffi.new("struct portal_span *")
        _span_to_c(span, s)
        self._e()
        rc = self.lib.portal_arena_free(self._arena, s)
        if rc:
            raise from_code(rc, f"freeing {span}")

    def check_span(self, span: Span) -> None:
        """The span lies in a live allocation of the host arena, with its generation."""
        s = self.ffi.new("struct portal_span *")
        _span_to_c(span, s)
        self._e()
        rc = self.lib.portal_arena_check(self._arena, s)
        if rc:
            raise from_code(rc, f"span {span}")

    def view(self, span: Span) -> memoryview:
        """The span's bytes, in place (no copy)."""
        self.check_span(span)
        return self._window()[span.offset:span.offset + span.length]

    # ------------------------------------------------------------------ requests

    def _fill(self, m, op: int, span: Span | None, arg: int) -> int:
        cookie = self._next_cookie
        self._next_cookie = (cookie + 1) & 0xFFFFFFFFFFFFFFFF or 1
        m.cookie, m.op, m.status, m.arg, m.result = cookie, op, 0, arg & 0xFFFFFFFFFFFFFFFF, 0
        m.reserved0[0] = m.reserved0[1] = 0
        _span_to_c(span, m.span)
        self._inflight[cookie] = (op, span, m.arg)
        return cookie

    def submit_many(self, requests: Iterable[tuple[int, Span | None, int]], timeout: float = 5.0) -> list[int]:
        """Queue (op, span, arg) requests; waits (bounded) while SUBMIT is full. Returns their cookies."""
        reqs = list(requests)
        for _op, span, _arg in reqs:
            if span is not None:
                self.check_span(span)
        buf = self.ffi.new("struct portal_msg[]", max(1, len(reqs)))
        cookies = [self._fill(buf[i], op, span, arg) for i, (op, span, arg) in enumerate(reqs)]
        sent, deadline, delay = 0, time.monotonic() + timeout, 20e-6
        while sent < len(reqs):
            n = self.lib.portal_send(self._e(), RingId.SUBMIT, buf + sent, len(reqs) - sent)
            if n < 0:
                for c in cookies[sent:]:
                    self._inflight.pop(c, None)
                raise from_code(n, "SUBMIT ring")
            sent += n
            if n:
                self._ring_doorbell()
                continue
            self.check()
            if time.monotonic() > deadline:
                for c in cookies[sent:]:
                    self._inflight.pop(c, None)
                raise PortalTimeout(f"SUBMIT stayed full for {timeout} s: the guest does not drain it "
                                    f"(guest status {self.guest_status()})")
            time.sleep(delay)
            delay = min(delay * 2, 1e-3)
        return cookies

    def submit(self, op: int, span: Span | None = None, arg: int = 0, timeout: float = 5.0) -> int:
        return self.submit_many([(op, span, arg)], timeout)[0]

    def _ring_doorbell(self) -> None:
        if self.doorbell_ring is not None and self.lib.portal_peer_wants_wakeup(self._end, RingId.SUBMIT):
            self.doorbell_ring()

    def _take(self, n: int) -> None:
        """Copy n received slots into the backlog, unvalidated (validation happens at delivery)."""
        for i in range(n):
            m = self._cbuf[i]
            self._backlog.append((Completion(m.cookie, m.op, m.status, _span_from_c(m.span), m.arg, m.result),
                                  bytes(m.reserved0)))

    def _fault(self, c: Completion, reserved0: bytes) -> str | None:
        """Why completion c cannot be delivered, or None if it answers a request in flight."""
        if any(reserved0):
            return f"completion {c.cookie:#x} has non-zero reserved0 {reserved0.hex()} (must be zero)"
        req = self._inflight.get(c.cookie)
        if req is None:
            return f"completion for unknown cookie {c.cookie:#x}"
        op, sent_span, arg = req
        if c.op != op or c.arg != arg or c.span != (sent_span or Span(0, 0, 0, 0, 0)):
            return (f"completion {c.cookie:#x} does not match its request "
                    f"(op {c.op} vs {op}, span {c.span} vs {sent_span})")
        if c.status not in Err._value2member_map_:
            return f"completion {c.cookie:#x} has unknown status {c.status}"
        return None

    def _deliver(self, max_count: int) -> list[Completion]:
        """Good completions from the front of the backlog, in ring order, up to the first bad one.
        A bad one at the front is removed and raised alone (PortalCorrupt): the good ones before
        it were returned by this call, those after it by the next."""
        out: list[Completion] = []
        while self._backlog and len(out) < max_count:
            c, reserved0 = self._backlog[0]
            fault = self._fault(c, reserved0)
            if fault is not None:
                if out:
                    break
                self._backlog.popleft()
                raise PortalCorrupt(fault)
            self._backlog.popleft()
            del self._inflight[c.cookie]
            out.append(c)
        return out

    def reap(self, max_count: int = 1024, timeout: float = 5.0) -> list[Completion]:
        """At least one completion (up to max_count) or PortalTimeout. Spins briefly in C,
        then backs off (sleeping up to 1 ms, or on the doorbell) until the timeout.

        Every completion is checked before it is delivered (known cookie, matching request,
        known status, reserved0 zero). A bad one is raised alone as PortalCorrupt, and the good
        ones around it are not lost: those before it are returned first, those after it by the
        next reap. Every poll re-checks the header (PortalHeaderChanged; the ring is left as is)."""
        max_count = max(1, min(max_count, 1024))
        lib, end = self.lib, self._e()
        if self._backlog:  # completions already taken off the ring, behind a bad one
            return self._deliver(max_count)
        n = lib.portal_recv_spin(end, RingId.COMPLETE, self._cbuf, max_count, self.spin_ns)
        deadline, delay = time.monotonic() + timeout, 50e-6
        while n == 0:
            if time.monotonic() > deadline:
                raise PortalTimeout(f"no completion within {timeout} s ({len(self._inflight)} in flight; "
                                    f"guest status {self.guest_status()})")
            lib.portal_want_wakeup(end, RingId.COMPLETE, 1)
            n = lib.portal_recv(end, RingId.COMPLETE, self._cbuf, max_count)  # re-check after the fence
            if n == 0:
                if self.doorbell_wait is not None:
                    self.doorbell_wait(min(delay * 20, max(0.0, deadline - time.monotonic())))
                else:
                    time.sleep(delay)
                delay = min(delay * 2, 1e-3)
                n = lib.portal_recv(end, RingId.COMPLETE, self._cbuf, max_count)
            lib.portal_want_wakeup(end, RingId.COMPLETE, 0)
            if n == 0:
                self.check()
        if n < 0:
            raise from_code(n, "COMPLETE ring")
        self._take(n)
        return self._deliver(max_count)

    def call(self, op: int, span: Span | None = None, arg: int = 0, timeout: float = 5.0) -> Completion:
        """One request and its completion (others in flight are not allowed here)."""
        if self._inflight:
            raise PortalError("call() with requests in flight; use submit_many()/reap()")
        self.submit(op, span, arg, timeout)
        (c,) = self.reap(1, timeout)
        if c.status:
            name = Op(op).name if op in Op._value2member_map_ else f"op {op}"
            raise PortalRemoteError(c.status, f"{name} failed in the guest: {Err(c.status).name}")
        return c

    def echo(self, arg: int, span: Span | None = None, timeout: float = 5.0) -> int:
        return self.call(Op.ECHO, span, arg, timeout).result

    def checksum(self, span: Span, timeout: float = 5.0) -> int:
        return self.call(Op.CHECKSUM, span, 0, timeout).result

    def transform(self, span: Span, key: int, timeout: float = 5.0) -> None:
        self.call(Op.TRANSFORM, span, key, timeout)

    # ------------------------------------------------------------------ native fast paths

    def pingpong(self, n: int, timeout: float = 30.0) -> int:
        rc = self.lib.portal_pingpong(self._e(), n, int(timeout * 1e9))
        if rc < 0:
            raise from_code(rc, "NOP round trips")
        return rc

    def stream(self, n: int, batch: int = 256, timeout: float = 30.0) -> int:
        rc = self.lib.portal_stream(self._e(), n, batch, int(timeout * 1e9))
        if rc < 0:
            raise from_code(rc, "NOP stream")
        return rc

    # ------------------------------------------------------------------ probes (coherence)

    def probe_write(self, value: int) -> None:
        self._u64(spec.HOST_PROBE_OFFSET)[0] = value

    def probe_wait(self, value: int, timeout: float) -> None:
        """Spin until the guest's probe line holds value."""
        rc = self.lib.portal_spin_u64(self._e(), spec.GUEST_PROBE_OFFSET, value, int(timeout * 1e9))
        if rc:
            raise from_code(rc, f"waiting for the guest probe {value}")
