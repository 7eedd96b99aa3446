"""Byte-stream transports for AgentX: anything with file descriptors (socket,
pipe pair, character device). Every wait takes a deadline."""
from __future__ import annotations

import errno
import os
import select
import socket
import time

from .errors import AgentTimeout, ConnectionLost


class FdTransport:
    """A duplex byte stream over one fd (socket, chardev) or a read/write fd pair (pipes).

    Owns the fds it is given (closes them), and keeps a reference to any socket
    object passed so it is not garbage-collected underneath us."""

    def __init__(self, rfd, wfd=None, *, name: str = "stream"):
        self._keep = [x for x in (rfd, wfd) if isinstance(x, socket.socket)]
        self.rfd = rfd.fileno() if hasattr(rfd, "fileno") else int(rfd)
        self.wfd = self.rfd if wfd is None else (wfd.fileno() if hasattr(wfd, "fileno") else int(wfd))
        for fd in {self.rfd, self.wfd}:
            os.set_blocking(fd, False)
        self.name = name
        self.closed = False

    @classmethod
    def from_socket(cls, sock: socket.socket, name: str = "socket") -> "FdTransport":
        return cls(sock, name=name)

    def fileno(self) -> int:
        return self.rfd

    def recv(self, deadline: float, max_bytes: int = 1 << 20) -> bytes:
        """Some bytes (at least one) before the deadline; b"" means end of stream."""
        while True:
            try:
                return os.read(self.rfd, max_bytes)
            except BlockingIOError:
                pass
            except OSError as e:
                if e.errno in (errno.ECONNRESET, errno.EPIPE, errno.EIO, errno.EBADF):
                    return b""
                raise ConnectionLost(f"{self.name}: read failed: {e}") from e
            left = deadline - time.monotonic()
            if left <= 0:
                raise AgentTimeout(f"{self.name}: no data before the deadline")
            select.select([self.rfd], [], [], left)

    def send_some(self, data) -> int:
        """Write what fits now without blocking; raises ConnectionLost if the peer is gone."""
        try:
            return os.write(self.wfd, data)
        except BlockingIOError:
            return 0
        except OSError as e:
            raise ConnectionLost(f"{self.name}: write failed: {e}") from e

    def wait(self, deadline: float, want_write: bool) -> tuple[bool, bool]:
        left = max(0.0, deadline - time.monotonic())
        r, w, _ = select.select([self.rfd], [self.wfd] if want_write else [], [], left)
        return bool(r), bool(w)

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        for s in self._keep:
            try:
                s.close()
            except OSError:
                pass
        if not self._keep:
            for fd in {self.rfd, self.wfd}:
                try:
                    os.close(fd)
                except OSError:
                    pass
