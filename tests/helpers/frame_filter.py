"""A relay between an AgentClient and an agent's channel that loses every host frame of the
given types (fault injection: "a guest that never answers QUIESCE"). Guest -> host bytes pass
unchanged; host -> guest frames are cut at their header's payload length."""
from __future__ import annotations

import select
import socket
import threading

from wslx.agentx.codec import header_field
from wslx.spec.agentx import HEADER_SIZE


class DroppingRelay:
    def __init__(self, upstream: socket.socket, drop_types: set[int]):
        self.upstream = upstream
        self.drop_types = set(drop_types)
        self.host_side, self._ours = socket.socketpair()
        self.dropped: list[int] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="frame-filter", daemon=True)

    def __enter__(self) -> "DroppingRelay":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(5)
        for s in (self._ours, self.host_side):
            s.close()

    def _run(self) -> None:
        pending = bytearray()
        while not self._stop.is_set():
            ready, _, _ = select.select([self.upstream, self._ours], [], [], 0.1)
            for s in ready:
                try:
                    data = s.recv(65536)
                except OSError:
                    return
                if not data:
                    return
                if s is self.upstream:
                    self._ours.sendall(data)
                    continue
                pending += data
                while len(pending) >= HEADER_SIZE:
                    msg_type = header_field(pending, "type")
                    end = HEADER_SIZE + header_field(pending, "payload_len")
                    if len(pending) < end:
                        break
                    frame, pending = bytes(pending[:end]), pending[end:]
                    if msg_type in self.drop_types:
                        self.dropped.append(msg_type)
                    else:
                        self.upstream.sendall(frame)
