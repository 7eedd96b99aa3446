"""The first Gemini services: read-only access to one exported host directory
(fs.stat, fs.read) and running allow-listed host programs (exec.run).

Both are deny-by-default host configuration; nothing the guest sends widens
them. Paths are relative to the export, walked one component at a time with
O_NOFOLLOW from the export's directory fd: `..`, `.`, empty components,
absolute paths and symlinks (at any depth) are refused with PERM, so no guest
path reaches outside the export, and a symlink swapped in mid-walk cannot
either. fs.read reads straight from the file into the caller's reply area in
the guest's arena (no intermediate copy).

    exports = FsExport(Path("/srv/share"))
    exports.register(dispatcher)
    ExecAllowList({"uname": "/usr/bin/uname"}).register(dispatcher)
"""
from __future__ import annotations

import errno
import os
import select
import stat
import subprocess
from pathlib import Path

from ..spec import gemini as spec
from .dispatcher import Call, Dispatcher
from .errors import CallTimeout, Denied, GeminiError, Invalid, NotFound, ReplyOverflow


class FsExport:
    """One host directory exported read-only."""

    def __init__(self, root: Path | str):
        self.root = Path(root).resolve(strict=True)
        if not self.root.is_dir():
            raise NotADirectoryError(f"export {self.root} is not a directory")

    def register(self, d: Dispatcher) -> None:
        d.register("fs", "stat", self.stat)
        d.register("fs", "read", self.read)

    def _open(self, rel: str) -> int:
        """An O_RDONLY fd of rel inside the export (no symlink, no escape), or a typed error."""
        if not rel or rel.startswith("/") or "\0" in rel:
            raise Denied(f"path {rel!r}: only relative paths inside the export")
        parts = rel.split("/")
        if any(p in ("", ".", "..") for p in parts):
            raise Denied(f"path {rel!r}: empty, '.' or '..' components are refused")
        fd = os.open(self.root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            for i, part in enumerate(parts):
                last = i == len(parts) - 1
                flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK | (0 if last else os.O_DIRECTORY)
                try:
                    nfd = os.open(part, flags, dir_fd=fd)
                except OSError as e:
                    if e.errno in (errno.ELOOP, errno.EMLINK):
                        raise Denied(f"path {rel!r}: {part!r} is a symlink") from None
                    if e.errno == errno.ENOTDIR:
                        # O_NOFOLLOW|O_DIRECTORY on a symlink to a directory gives ENOTDIR
                        if stat.S_ISLNK(os.lstat(part, dir_fd=fd).st_mode):
                            raise Denied(f"path {rel!r}: {part!r} is a symlink") from None
                        raise NotFound(f"path {rel!r}: {part!r} is not a directory") from None
                    if e.errno == errno.ENOENT:
                        raise NotFound(f"path {rel!r}: no such file") from None
                    if e.errno == errno.EACCES:
                        raise Denied(f"path {rel!r}: {e.strerror}") from None
                    raise GeminiError(f"path {rel!r}: {e.strerror}") from None
                os.close(fd)
                fd = nfd
            return fd
        except BaseException:
            os.close(fd)
            raise

    @staticmethod
    def _path_arg(call: Call, extra: int = 0) -> str:
        if not 1 <= len(call.args) <= 1 + extra:
            raise Invalid(f"{call.service}.{call.method}: expected PATH" + (" [OFFSET [LENGTH]]" if extra else ""))
        return call.args[0]

    def stat(self, call: Call) -> bytes:
        fd = self._open(self._path_arg(call))
        try:
            st = os.fstat(fd)
        finally:
            os.close(fd)
        kind = spec.FileKind.DIR if stat.S_ISDIR(st.st_mode) else spec.FileKind.FILE
        if not (stat.S_ISDIR(st.st_mode) or stat.S_ISREG(st.st_mode)):
            raise Denied("only regular files and directories are exported")
        return spec.FsStat.build(dict(size=st.st_size, mtime_ns=st.st_mtime_ns, mode=st.st_mode & 0o7777,
                                      kind=kind))

    def read(self, call: Call) -> None:
        """fs.read PATH [OFFSET [LENGTH]]: up to LENGTH (default: the reply area) bytes from OFFSET;
        value = the file's size."""
        path = self._path_arg(call, extra=2)
        try:
            offset = int(call.args[1]) if len(call.args) > 1 else 0
            length = int(call.args[2]) if len(call.args) > 2 else len(call.reply)
        except ValueError:
            raise Invalid("OFFSET and LENGTH are decimal numbers") from None
        if offset < 0 or length < 0:
            raise Invalid("OFFSET and LENGTH are not negative")
        if length > len(call.reply):
            raise ReplyOverflow(f"LENGTH {length} > reply area {len(call.reply)}", length)
        fd = self._open(path)
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                raise Invalid(f"{path!r} is not a regular file")
            want = max(0, min(length, st.st_size - offset))
            got = 0
            while got < want:  # straight into the guest's reply area
                n = os.preadv(fd, [call.reply[got:want]], offset + got)
                if n == 0:
                    break
                got += n
                call.remaining()
            call.value, call.reply_len = st.st_size, got
        finally:
            os.close(fd)


class ExecAllowList:
    """exec.run NAME [ARGS...]: run the allow-listed program NAME (host configuration: name ->
    absolute path) with ARGS, no stdin, a minimal environment; stdout is the reply (stderr is
    dropped), value = exit status (128 + signal when killed)."""

    def __init__(self, programs: dict[str, str]):
        self.programs = {}
        for name, path in programs.items():
            if not os.path.isabs(path) or not os.access(path, os.X_OK):
                raise ValueError(f"allow-list entry {name!r}: {path!r} is not an absolute executable path")
            self.programs[name] = path

    def register(self, d: Dispatcher) -> None:
        d.register("exec", "run", self.run)

    def run(self, call: Call) -> None:
        if not call.args:
            raise Invalid("exec.run: expected NAME [ARGS...]")
        path = self.programs.get(call.args[0])
        if path is None:
            raise Denied(f"exec.run: {call.args[0]!r} is not allow-listed")
        p = subprocess.Popen([path, *call.args[1:]], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                             stderr=subprocess.DEVNULL, env={"PATH": "/usr/bin:/bin", "LC_ALL": "C"},
                             close_fds=True, start_new_session=True)
        got, cap = 0, len(call.reply)
        try:
            fd = p.stdout.fileno()
            while True:
                r, _, _ = select.select([fd], [], [], call.remaining())
                if not r:
                    raise CallTimeout(f"exec.run {call.args[0]}: no exit before the deadline")
                room = call.reply[got:] if got < cap else bytearray(1)
                n = os.readv(fd, [room])
                if n == 0:
                    break
                if got >= cap:
                    raise ReplyOverflow(f"exec.run {call.args[0]}: output exceeds the {cap}-byte reply area", cap + 1)
                got += n
            status = p.wait(timeout=call.remaining())
        except subprocess.TimeoutExpired:
            raise CallTimeout(f"exec.run {call.args[0]}: no exit before the deadline") from None
        finally:
            if p.poll() is None:
                p.kill()
                p.wait(timeout=5)
            p.stdout.close()
        call.value = status if status >= 0 else 128 - status
        call.reply_len = got
