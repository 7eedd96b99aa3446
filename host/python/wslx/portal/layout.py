"""Runtime helpers over the Portal layout spec (wslx.spec.portal): planning a
window's header fields and the CHECKSUM operation's reference sum. The spec
module holds the layout only."""
from __future__ import annotations

from ..spec.portal import HEADER_PAGE, RING_CTL_SIZE, RING_MAX_SLOTS, RING_MIN_SLOTS, SLOT_SIZE, RingId


def _align(x: int, a: int) -> int:
    return (x + a - 1) // a * a


def ring_bytes(slots: int) -> int:
    return RING_CTL_SIZE + slots * SLOT_SIZE


def raw_ring_bytes(slots: int) -> int:
    """Length of an Op.RAW_RING span with rings of `slots` slots: down ring, then up ring at the
    next 4096 boundary, as plan() lays out the header's rings."""
    return _align(ring_bytes(slots), 4096) + ring_bytes(slots)


def plan(window_size: int, *, ring_slots: int = 4096, guest_arena_fraction: float = 0.125) -> dict:
    """Header fields (without magic/version/generation/portal_id) for a window of window_size bytes:
    rings after the header page, page aligned; then the host arena; the guest arena at the end."""
    if ring_slots & (ring_slots - 1) or not RING_MIN_SLOTS <= ring_slots <= RING_MAX_SLOTS:
        raise ValueError(f"ring_slots {ring_slots}: not a power of two in {RING_MIN_SLOTS}..{RING_MAX_SLOTS}")
    off = HEADER_PAGE
    rings = []
    for _ in RingId:
        rings.append(dict(offset=off, slot_count=ring_slots, slot_size=SLOT_SIZE))
        off = _align(off + ring_bytes(ring_slots), 4096)
    rest = window_size - off
    if rest < 2 * 4096:
        raise ValueError(f"window of {window_size} bytes leaves no room for the arenas")
    guest = max(4096, _align(int(rest * guest_arena_fraction), 4096))
    host = (rest - guest) // 4096 * 4096
    return dict(window_size=window_size, header_page=HEADER_PAGE, flags=0,
                host_arena_offset=off, host_arena_size=host,
                guest_arena_offset=off + host, guest_arena_size=window_size - off - host, rings=rings)


def sum64(data) -> int:
    """The CHECKSUM op: Fletcher-style sum over little-endian u64 words (tail zero-padded),
    a = sum w, b = sum of the running a, result = a ^ rotl64(b, 32), all mod 2**64."""
    import numpy as np  # only the CHECKSUM reference needs it
    raw = bytes(data) if not isinstance(data, (bytes, bytearray, memoryview)) else data
    n = len(raw)
    pad = (-n) % 8
    w = np.frombuffer(bytes(raw) + bytes(pad) if pad else raw, dtype="<u8")
    k = len(w)
    with np.errstate(over="ignore"):
        a = int(w.sum(dtype=np.uint64))
        weights = np.arange(k, 0, -1, dtype=np.uint64)
        b = int((w * weights).sum(dtype=np.uint64))
    b = ((b << 32) | (b >> 32)) & 0xFFFFFFFFFFFFFFFF
    return a ^ b
