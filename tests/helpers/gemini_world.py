"""The host side every Gemini test starts from: an export with a few files (and a symlink
out of it), a Portal, and a Dispatcher with fs.*, exec.run of /bin/echo and null.call."""
from __future__ import annotations

import os
from pathlib import Path

from wslx.gemini import Dispatcher
from wslx.gemini.services import ExecAllowList, FsExport
from wslx.portal import Portal


def make_export(root: Path, blob_bytes: int = 300_000) -> Path:
    export = root / "export"
    (export / "sub").mkdir(parents=True)
    (export / "hello.txt").write_bytes(b"hello from the host\n")
    (export / "sub" / "blob.bin").write_bytes(os.urandom(blob_bytes))
    (root / "secret").write_text("outside the export")
    os.symlink(root / "secret", export / "link")
    return export


def make_dispatcher(portal: Portal, export: Path, programs: dict[str, str] | None = None, **kw) -> Dispatcher:
    d = Dispatcher(portal, **kw)
    FsExport(export).register(d)
    ExecAllowList(programs or {"echo": "/bin/echo"}).register(d)
    d.register("null", "call", lambda call: None)
    return d
