"""File handling for snapshots: sparse-aware copies and digests.

Guest RAM files are mostly holes (a 512 MiB Linux guest touches ~130 MiB), so copies
move only the data extents (SEEK_DATA/SEEK_HOLE + copy_file_range) and the digest is a
SHA-256 tree over 1 MiB chunks in which a chunk lying wholly in a hole has the known
digest of 1 MiB of zeros: the same bytes give the same digest however they are stored,
and holes cost nothing to hash.
"""
from __future__ import annotations

import errno
import hashlib
import os
from pathlib import Path

CHUNK = 1 << 20
DIGEST_ALGORITHM = "sha256-tree-1MiB"  # sha256(concat(sha256(chunk_i))), last chunk short
_ZERO_DIGEST = hashlib.sha256(bytes(CHUNK)).digest()


def data_extents(fd: int, size: int):
    """(start, end) of the data extents of an open file (the whole file if the filesystem
    cannot tell)."""
    pos = 0
    while pos < size:
        try:
            start = os.lseek(fd, pos, os.SEEK_DATA)
        except OSError as e:
            if e.errno == errno.ENXIO:  # only a hole is left
                return
            if e.errno == errno.EINVAL:  # no SEEK_DATA here
                yield pos, size
                return
            raise
        end = os.lseek(fd, start, os.SEEK_HOLE)
        yield start, min(end, size)
        pos = end


def sparse_copy(src: Path, dst: Path) -> int:
    """Copy src to dst (created or truncated), holes kept; fsync dst. Returns the data bytes copied."""
    copied = 0
    with open(src, "rb") as fi, open(dst, "wb") as fo:
        size = os.fstat(fi.fileno()).st_size
        fo.truncate(size)
        for start, end in data_extents(fi.fileno(), size):
            off_in, off_out = start, start
            while off_in < end:
                try:
                    n = os.copy_file_range(fi.fileno(), fo.fileno(), end - off_in, off_in, off_out)
                except OSError as e:
                    if e.errno not in (errno.EXDEV, errno.ENOSYS, errno.EOPNOTSUPP, errno.EINVAL):
                        raise
                    fi.seek(off_in)
                    data = fi.read(min(end - off_in, 8 * CHUNK))
                    os.pwrite(fo.fileno(), data, off_out)
                    n = len(data)
                if n <= 0:
                    raise OSError(f"{src}: copy stopped at byte {off_in} of {end} (file shrank?)")
                off_in += n
                off_out += n
                copied += n
        fo.flush()
        os.fsync(fo.fileno())
    return copied


def file_digest(path: Path) -> str:
    """The tree digest of a file (see the module comment)."""
    top = hashlib.sha256()
    with open(path, "rb") as f:
        fd = f.fileno()
        size = os.fstat(fd).st_size
        extents = list(data_extents(fd, size))
        i = 0
        for chunk_start in range(0, size, CHUNK):
            chunk_end = min(chunk_start + CHUNK, size)
            while i < len(extents) and extents[i][1] <= chunk_start:
                i += 1
            has_data = i < len(extents) and extents[i][0] < chunk_end
            if not has_data and chunk_end - chunk_start == CHUNK:
                top.update(_ZERO_DIGEST)
                continue
            data = os.pread(fd, chunk_end - chunk_start, chunk_start)
            if len(data) != chunk_end - chunk_start:
                raise OSError(f"{path}: short read at byte {chunk_start} (file changed while hashing?)")
            top.update(hashlib.sha256(data).digest())
    return top.hexdigest()


def stat_identity(path: Path) -> list[int]:
    """What changes whenever a file's bytes do: device, inode, size, mtime and ctime (the last
    cannot be set from user space). A match means the digest checked earlier still holds."""
    st = os.stat(path)
    return [st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns]


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
