"""Guest physical memory over any writable buffer: a bytearray in-process, or an mmap of QEMU's RAM file.

Every access is bounds-checked against the guest-physical regions (GuestMemoryError otherwise), so a hostile
GPA or length from the guest can never reach outside the buffer."""
from __future__ import annotations

import struct
from dataclasses import dataclass

from .errors import GuestMemoryError

_U32 = struct.Struct("<I")
_U64 = struct.Struct("<Q")


@dataclass(frozen=True)
class Region:
    gpa: int      # first guest-physical address
    size: int     # bytes
    offset: int   # where it starts in the buffer


class GuestMemory:
    def __init__(self, buffer, regions: list[Region] | None = None):
        self.view = memoryview(buffer).cast("B")
        if self.view.readonly:
            raise GuestMemoryError("guest memory buffer is read-only")
        self.regions = regions or [Region(0, len(self.view), 0)]
        for r in self.regions:
            if r.offset < 0 or r.offset + r.size > len(self.view):
                raise GuestMemoryError(f"region {r} does not fit the {len(self.view)}-byte buffer")

    def close(self) -> None:
        """Release the buffer (an mmap can only be closed once nothing views it)."""
        self.view.release()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    @classmethod
    def q35(cls, buffer, ram_size: int) -> "GuestMemory":
        """QEMU q35 layout of a RAM file: below the low-memory limit GPA = offset; the rest at 4 GiB
        (hvsim-facts.md: lowmem is 0xB0000000 when RAM < 2.75 GiB, else 2 GiB)."""
        lowmem = 0xB0000000 if ram_size < 0xB0000000 else 0x80000000
        low = min(ram_size, lowmem)
        regions = [Region(0, low, 0)]
        if ram_size > low:
            regions.append(Region(1 << 32, ram_size - low, low))
        return cls(buffer, regions)

    def _offset(self, gpa: int, length: int) -> int:
        if length < 0 or gpa < 0:
            raise GuestMemoryError(f"bad guest range {gpa:#x}+{length}")
        for r in self.regions:
            if r.gpa <= gpa and gpa + length <= r.gpa + r.size:
                return r.offset + gpa - r.gpa
        raise GuestMemoryError(f"guest range {gpa:#x}+{length:#x} is outside guest memory")

    def offset_of(self, gpa: int, length: int) -> int:
        """Where guest range gpa+length starts in the buffer (GuestMemoryError if it is not guest memory): for
        a caller that resolves a fixed range once and then accesses `view` directly."""
        return self._offset(gpa, length)

    def contains(self, gpa: int, length: int) -> bool:
        try:
            self._offset(gpa, length)
            return True
        except GuestMemoryError:
            return False

    def read(self, gpa: int, length: int) -> bytes:
        o = self._offset(gpa, length)
        return bytes(self.view[o:o + length])

    def write(self, gpa: int, data) -> None:
        o = self._offset(gpa, len(data))
        self.view[o:o + len(data)] = data

    def zero(self, gpa: int, length: int) -> None:
        o = self._offset(gpa, length)
        self.view[o:o + length] = bytes(length)

    def read_u32(self, gpa: int) -> int:
        return _U32.unpack_from(self.view, self._offset(gpa, 4))[0]

    def write_u32(self, gpa: int, value: int) -> None:
        _U32.pack_into(self.view, self._offset(gpa, 4), value & 0xFFFFFFFF)

    def read_u64(self, gpa: int) -> int:
        return _U64.unpack_from(self.view, self._offset(gpa, 8))[0]

    def write_u64(self, gpa: int, value: int) -> None:
        _U64.pack_into(self.view, self._offset(gpa, 8), value & 0xFFFFFFFFFFFFFFFF)
