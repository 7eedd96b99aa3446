"""Minimal, reproducible newc ("070701") cpio writer and reader.

The writer knows only what an initramfs needs: directories, regular files,
symlinks and character/block device nodes.  Every header field that could
leak the build machine (uid, gid, mtime, inode numbers, device numbers of the
source file system) is fixed, so the same entries always give the same bytes.
"""
from __future__ import annotations

import stat
from dataclasses import dataclass, field
from typing import BinaryIO, Iterable, Iterator

MAGIC = b"070701"
TRAILER = "TRAILER!!!"
HEADER_LEN = 110


@dataclass(frozen=True)
class Entry:
    """One archive member.  `name` is relative ("bin/sh"), without leading '/'."""

    name: str
    mode: int  # full st_mode: file type bits | permission bits
    data: bytes = b""  # file contents, or the target of a symlink
    rdev: tuple[int, int] = (0, 0)  # (major, minor) for device nodes
    nlink: int = 1
    mtime: int = 0
    ino: int = 0
    uid: int = 0
    gid: int = 0

    @property
    def kind(self) -> str:
        m = self.mode
        if stat.S_ISDIR(m):
            return "dir"
        if stat.S_ISREG(m):
            return "file"
        if stat.S_ISLNK(m):
            return "symlink"
        if stat.S_ISCHR(m):
            return "chr"
        if stat.S_ISBLK(m):
            return "blk"
        return "other"


def _pad4(n: int) -> int:
    return (4 - n % 4) % 4


def _header(e: Entry, namesize: int, filesize: int) -> bytes:
    fields = (
        e.ino, e.mode, e.uid, e.gid, e.nlink, e.mtime, filesize,
        0, 0,  # devmajor/devminor of the (virtual) file system holding the entry
        e.rdev[0], e.rdev[1],
        namesize, 0,  # check (always 0 for 070701)
    )
    return MAGIC + b"".join(b"%08X" % f for f in fields)


def write_entry(out: BinaryIO, e: Entry) -> int:
    name = e.name.encode() + b"\0"
    data = e.data if e.kind in ("file", "symlink") else b""
    hdr = _header(e, len(name), len(data))
    buf = hdr + name + b"\0" * _pad4(HEADER_LEN + len(name)) + data + b"\0" * _pad4(len(data))
    out.write(buf)
    return len(buf)


def write_archive(out: BinaryIO, entries: Iterable[Entry], *, mtime: int = 0) -> int:
    """Write `entries` in the given order, then the trailer.  Returns bytes written.

    Inode numbers are assigned 1, 2, 3... in order; `mtime` is stamped on every
    entry.  Callers sort the entries (see `sort_key`)."""
    total = 0
    ino = 0
    for e in entries:
        ino += 1
        total += write_entry(out, Entry(e.name, e.mode, e.data, e.rdev, e.nlink, mtime, ino, 0, 0))
    total += write_entry(out, Entry(TRAILER, 0, nlink=1))
    # Pad the archive to a 512-byte block like cpio(1) does; the kernel ignores it.
    tail = _pad4(total) + (-(total + _pad4(total)) % 512)
    out.write(b"\0" * tail)
    return total + tail


def sort_key(name: str) -> tuple[str, ...]:
    """Order entries by path components, so each directory precedes its contents."""
    return tuple(name.split("/"))


def read_archive(data: bytes) -> Iterator[Entry]:
    """Parse a newc archive (stops at the trailer).  Used by tests and tools."""
    off = 0
    while True:
        if data[off:off + 6] != MAGIC:
            raise ValueError(f"bad cpio magic at offset {off}: {data[off:off + 6]!r}")
        f = [int(data[off + 6 + 8 * i: off + 14 + 8 * i], 16) for i in range(13)]
        ino, mode, uid, gid, nlink, mtime, filesize, _dmaj, _dmin, rmaj, rmin, namesize, _chk = f
        off += HEADER_LEN
        name = data[off:off + namesize - 1].decode()
        off += namesize
        off += _pad4(HEADER_LEN + namesize)
        body = data[off:off + filesize]
        off += filesize + _pad4(filesize)
        if name == TRAILER:
            return
        yield Entry(name, mode, body, (rmaj, rmin), nlink, mtime, ino, uid, gid)
