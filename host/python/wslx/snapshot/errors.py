"""Typed snapshot errors. Each names the snapshot (and the file) it is about."""
from __future__ import annotations

from ..vmm.errors import VMError


class SnapshotError(VMError):
    """A snapshot could not be saved, checked or restored."""


class SnapshotInvalid(SnapshotError):
    """The snapshot is refused before QEMU starts: a file is missing, truncated or corrupted,
    the manifest is malformed or incomplete, or it was made by another QEMU, kernel or
    configuration. `path`: the offending file (or the snapshot directory)."""

    def __init__(self, message: str, *, path=None, **kw):
        self.path = path
        super().__init__(message, **kw)


class SnapshotMismatch(SnapshotInvalid):
    """The snapshot is intact but does not belong to this host: another QEMU version, another
    kernel or initramfs, or another machine configuration."""


class QuiesceTimeout(SnapshotError, TimeoutError):
    """The guest did not answer QUIESCE in time; nothing was saved and the VM keeps running."""
