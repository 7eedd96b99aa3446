"""Snapshots of running guests: save, restore, clone, verify, list, remove.

    from wslx.snapshot import fast_path_kw, save, restore
    with LinuxGuest(**fast_path_kw()) as g:
        save(g, "snaps/one")
    with restore("snaps/one") as g:
        g.client.run(["uptime"])

See core.py for the sequence and manifest.py for the directory format."""
from .core import RestoredGuest, SaveResult, clones, fast_path_kw, remove, restore, save  # noqa: F401
from .errors import QuiesceTimeout, SnapshotError, SnapshotInvalid, SnapshotMismatch  # noqa: F401
from .manifest import Manifest, list_snapshots, verify  # noqa: F401
