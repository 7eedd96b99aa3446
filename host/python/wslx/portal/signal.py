"""The host side of the SIGNAL port: Portal and Gemini doorbells as single bytes, each the
RingId of the ring that has news for the reader (docs/gemini.md, wslx.spec.gemini).
Under QEMU here the port is a named virtio-serial port (spec: VIRTIO_SERIAL_NAMES); where
vsock exists it is vsock port 50011. Doorbells are hints: a lost byte costs a poll."""
from __future__ import annotations

import select
import socket
from collections import Counter

from ..spec.gemini import VIRTIO_SERIAL_NAMES, Port
from ..spec.portal import RingId

SIGNAL_PORT = VIRTIO_SERIAL_NAMES[Port.SIGNAL]


class SignalPort:
    """A connected socket of the signal port. ring() never blocks; wait() returns the bytes heard
    (b"" on timeout) and None once the guest side is gone (then only polling is left)."""

    def __init__(self, sock: socket.socket):
        sock.setblocking(False)   # whatever mode it came in (a timeout mode would make send wait)
        self.sock: socket.socket | None = sock
        self.rung = 0
        self.heard = 0
        self.heard_by_byte: Counter[int] = Counter()   # what each heard doorbell named (a RingId, or junk)

    def _live(self) -> bool:
        """False once the port is gone (closed here, or by its machine when the VM ended)."""
        if self.sock is not None and self.sock.fileno() < 0:
            self.sock = None
        return self.sock is not None

    def ring(self, ring: RingId) -> None:
        if not self._live():
            return
        try:
            self.sock.send(bytes([ring]), socket.MSG_DONTWAIT)
            self.rung += 1
        except BlockingIOError:
            pass  # unread doorbells are waiting already: the guest will poll
        except OSError:
            self.close()  # the guest side went away: polling is left

    def wait(self, seconds: float) -> bytes | None:
        if not self._live():
            return None
        try:
            r, _, _ = select.select([self.sock], [], [], max(0.0, seconds))
            if not r:
                return b""
            data = self.sock.recv(4096)
        except BlockingIOError:
            return b""      # readable, then not: nothing heard yet
        except OSError:
            data = b""
        if not data:  # the guest side went away: polling is left
            self.close()
            return None
        self.heard += len(data)
        self.heard_by_byte.update(data)
        return data

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None
