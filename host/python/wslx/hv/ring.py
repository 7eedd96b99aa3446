"""The host's side of a VMBus ring buffer in guest memory (Linux 6.1 drivers/hv/ring_buffer.c is the guest's).

A ring is a control page (hv_ring_buffer) plus data pages, reached through the GPADL's page frames, so the
host never assumes the pages are contiguous. Indices are byte offsets into the data area; a packet is a
vmpacket_descriptor, payload, padding to 8 bytes and an 8-byte trailer (start offset << 32).
- The writer never fills the ring completely: it needs strictly more free bytes than the packet
  (ring_buffer.c hv_ringbuffer_write: `bytes_avail_towrite <= totalbytes_towrite` -> -EAGAIN).
- The writer publishes write_index after the data and signals only when interrupt_mask is 0 and the ring was
  empty before the write (ring_buffer.c hv_signal_on_write).
- The reader, after moving read_index, signals the writer only when it had set pending_send_sz and the free
  space has just crossed it (ring_buffer.c hv_pkt_iter_close).
Everything read from the control page or a descriptor is checked; an impossible value raises RingError.
The pages' places in the guest-memory buffer are resolved (and bounds-checked) once, when the ring is made:
the GPADL's pages never move while the channel is open, and every access after that is a plain struct
access at a known offset (this is the hv_sock hot path: ~20 index reads per round trip).
"""
from __future__ import annotations

import struct

from ..spec.hyperv import PAGE_SIZE
from ..spec.vmbus import HV_RING_BUFFER, PACKET_ALIGN, PACKET_TRAILER_SIZE, VMPACKET_DESCRIPTOR
from ..spec.fields import field_offsets
from .errors import GuestMemoryError, RingError



_RESERVED_FORMAT = {1: "B", 2: "H", 4: "I", 8: "Q"}


def packer(body) -> struct.Struct:
    """A struct.Struct for a fixed-size spec Struct, one value per field in wire order (a reserved
    field is an integer of its size): hot paths pack and unpack with the spec's own layout, never a
    format typed again by hand."""
    fmt = "<"
    for sc in body.subcons:
        con = sc
        while not hasattr(con, "fmtstr") and hasattr(con, "subcon"):   # Renamed, Const(...)
            con = con.subcon
        if hasattr(con, "fmtstr"):
            fmt += con.fmtstr.lstrip("<>=")
        elif sc.name == "reserved":
            fmt += _RESERVED_FORMAT[sc.sizeof()]
        else:                                                          # Bytes(n)
            fmt += f"{sc.sizeof()}s"
    out = struct.Struct(fmt)
    if out.size != body.sizeof():
        raise TypeError(f"{fmt} is {out.size} bytes, the spec Struct {body.sizeof()}")
    return out


DESC = packer(VMPACKET_DESCRIPTOR)


CTRL = field_offsets(HV_RING_BUFFER)
U32 = struct.Struct("<I")
INDICES = struct.Struct("<II")              # write_index, read_index: adjacent in hv_ring_buffer
TRAILER = struct.Struct("<Q")
assert CTRL["read_index"] == CTRL["write_index"] + 4


def align8(n: int) -> int:
    return (n + PACKET_ALIGN - 1) & ~(PACKET_ALIGN - 1)


class Ring:
    def __init__(self, memory, pfns: list[int], name: str):
        if len(pfns) < 2:
            raise RingError(f"{name}: a ring needs a control page and at least one data page")
        self.mem, self.name = memory, name
        self.ctrl = pfns[0] * PAGE_SIZE
        self.data_pages = [p * PAGE_SIZE for p in pfns[1:]]
        self.size = len(self.data_pages) * PAGE_SIZE
        self.corrupt_next_write = False   # fault knob
        # buffer offsets (GuestMemoryError here if a page is not guest memory)
        self.buf = memory.view
        self._ctrl = memory.offset_of(self.ctrl, PAGE_SIZE)
        self._pages = [memory.offset_of(gpa, PAGE_SIZE) for gpa in self.data_pages]
        self._contiguous = all(o == self._pages[0] + i * PAGE_SIZE for i, o in enumerate(self._pages))

    def ctrl_get(self, field: str) -> int:
        return U32.unpack_from(self.buf, self._ctrl + CTRL[field])[0]

    def ctrl_set(self, field: str, value: int) -> None:
        U32.pack_into(self.buf, self._ctrl + CTRL[field], value & 0xFFFFFFFF)

    def _indices(self) -> tuple[int, int]:
        w, r = INDICES.unpack_from(self.buf, self._ctrl + CTRL["write_index"])
        if w >= self.size or r >= self.size or (w | r) % PACKET_ALIGN:
            what, v = ("write_index", w) if w >= self.size or w % PACKET_ALIGN else ("read_index", r)
            raise RingError(f"{self.name}: {what} {v:#x} outside the {self.size:#x}-byte data area or unaligned")
        return w, r

    def _spans(self, off: int, n: int):
        """(buffer offset, length) pieces of n data bytes from ring offset off, wrapping at the end."""
        off %= self.size
        if self._contiguous and off + n <= self.size:
            yield self._pages[0] + off, n
            return
        while n:
            page, within = divmod(off % self.size, PAGE_SIZE)
            take = min(n, PAGE_SIZE - within)
            yield self._pages[page] + within, take
            off, n = off + take, n - take

    def _copy_out(self, off: int, n: int) -> bytes:
        buf = self.buf
        return b"".join(buf[o:o + k] for o, k in self._spans(off, n))

    def _copy_in(self, off: int, data: bytes) -> None:
        view, at, buf = memoryview(data), 0, self.buf
        for o, k in self._spans(off, len(data)):
            buf[o:o + k] = view[at:at + k]
            at += k

    def available(self) -> int:
        w, r = self._indices()
        return (w - r) % self.size


class HostReader(Ring):
    """Guest-to-host ring: the host consumes."""

    def peek(self):
        """(packet type, flags, transaction id, payload, next read index) of the next packet, or None."""
        w, r = self._indices()
        avail = (w - r) % self.size
        if avail == 0:
            return None
        if avail < DESC.size + PACKET_TRAILER_SIZE:
            raise RingError(f"{self.name}: {avail} bytes between read and write index: not a whole packet")
        ptype, offset8, len8, flags, trans_id = DESC.unpack(self._copy_out(r, DESC.size))
        total = len8 * 8
        if offset8 * 8 < DESC.size or offset8 > len8 or total + PACKET_TRAILER_SIZE > avail:
            raise RingError(f"{self.name}: packet at {r:#x} has offset8={offset8} len8={len8} with {avail} bytes "
                            f"available")
        payload = self._copy_out(r + offset8 * 8, total - offset8 * 8)
        return ptype, flags, trans_id, payload, (r + total + PACKET_TRAILER_SIZE) % self.size

    def commit(self, next_read: int) -> bool:
        """Move read_index; True if the guest (writer) must be signalled (pending_send_sz crossed)."""
        _w, r = self._indices()
        freed = (next_read - r) % self.size
        self.ctrl_set("read_index", next_read)
        pending = self.ctrl_get("pending_send_sz")
        if not pending:
            return False
        # free space from the write index read now (hv_get_bytes_to_write): the guest may have filled the ring
        # and set pending_send_sz since the read above, which would say it was never short of room
        w, _r = self._indices()
        free_now = self.size - (w - next_read) % self.size
        return free_now > pending >= max(0, free_now - freed)


class HostWriter(Ring):
    """Host-to-guest ring: the host produces."""

    def packet_size(self, payload_len: int) -> int:
        return DESC.size + align8(payload_len) + PACKET_TRAILER_SIZE

    def write_packet(self, ptype: int, payload: bytes, trans_id: int = 0, flags: int = 0) -> bool | None:
        """None if it does not fit (never fill completely); else whether the guest must be signalled."""
        total = self.packet_size(len(payload))
        w, r = self._indices()
        free = self.size - (w - r) % self.size
        if free <= total:
            return None
        body = DESC.pack(ptype, DESC.size // 8, (total - PACKET_TRAILER_SIZE) // 8, flags, trans_id) + payload
        body = body.ljust(total - PACKET_TRAILER_SIZE, b"\0") + TRAILER.pack(w << 32)
        self._copy_in(w, body)
        new_w = (w + total) % self.size
        if self.corrupt_next_write:
            self.corrupt_next_write = False
            new_w = self.size + PACKET_ALIGN       # fault knob: an index beyond the data area
        self.ctrl_set("write_index", new_w)
        return self.ctrl_get("interrupt_mask") == 0 and self.ctrl_get("read_index") == w

    def want_space(self, total: int) -> None:
        """Ask the guest to signal when `total` bytes are free (only if it advertises the feature)."""
        if self.ctrl_get("feature_bits") & 1:
            self.ctrl_set("pending_send_sz", total)

    def clear_want(self) -> None:
        if self.ctrl_get("pending_send_sz"):
            self.ctrl_set("pending_send_sz", 0)


__all__ = ["Ring", "HostReader", "HostWriter", "RingError", "GuestMemoryError", "align8"]
