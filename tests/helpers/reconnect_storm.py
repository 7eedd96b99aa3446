"""A reconnect storm against an agent on a virtio-serial port (issue 11, items 2 and 3):
hosts that come and go back to back, some leaving in the middle of a frame, some coming
back within 1 ms, each sending PINGs at once without waiting for HELLO. Every new host must
get HELLO and an answer to every one of its frames."""
from __future__ import annotations

import dataclasses
import select
import socket
import time
from typing import Callable

from wslx.agentx import codec
from wslx.agentx.errors import ProtocolError
from wslx.spec.agentx import HEADER_SIZE, VERSION_MAX, MsgType

# how each host leaves: the next one connects at once, or after about 1 ms
LEAVE = ("clean", "header_promising_100", "half_a_ping", "clean_1ms_gap", "header_promising_100_1ms_gap")


@dataclasses.dataclass
class Round:
    index: int
    leave: str
    hello: bool
    answered: list[int]
    sent: list[int]
    errors: list[tuple[int, int]]   # (code, request_id) of ERRORs this host got
    seconds: float

    @property
    def ok(self) -> bool:
        return self.hello and sorted(self.answered) == sorted(self.sent)


def _lying_ping_header(rid: int, length: int) -> bytes:
    return codec.raw_frame(MsgType.PING, request_id=rid, payload_len=length, payload_crc=0)


def storm(connect: Callable[[], socket.socket], rounds: int = 100, pings: int = 3, timeout: float = 10.0,
          ask_hello: bool = False, log: Callable[[str], None] = lambda s: None) -> list[Round]:
    """ask_hello: each host starts with HELLO request_id 0 (asks the agent to announce itself),
    for an agent that cannot see every connect (Linux's virtio_console: see the Linux test)."""
    results = []
    announce = codec.encode_frame(MsgType.HELLO, dict(version_min=1, version_max=VERSION_MAX, version_selected=0,
                                                      agent_kind=0, capabilities=0, max_payload=65536, uptime_ms=0,
                                                      name="storm", os_release=""))
    sock = connect()
    for i in range(rounds):
        leave = LEAVE[i % len(LEAVE)]
        rid0 = 0x5000_0000 + i * 16
        sent = list(range(rid0 + 1, rid0 + 1 + pings))
        t0 = time.monotonic()
        sock.sendall((announce if ask_hello else b"") +
                     b"".join(codec.encode_frame(MsgType.PING, dict(data=b"s%d" % i), request_id=r) for r in sent))
        reader, hello, answered, errors = codec.FrameReader(), False, [], []
        deadline = t0 + timeout
        while (not hello or len(answered) < len(sent)) and time.monotonic() < deadline:
            ready, _, _ = select.select([sock], [], [], max(0.0, deadline - time.monotonic()))
            if not ready:
                break
            data = sock.recv(65536)
            if not data:
                break
            reader.feed(data)
            while True:
                try:
                    f = reader.next()
                except ProtocolError:
                    continue
                if f is None:
                    break
                if f.type == MsgType.HELLO and not f.is_reply and f.request_id == 0:
                    hello = True
                elif f.type == MsgType.PONG and f.request_id in sent:
                    answered.append(f.request_id)
                elif f.type == MsgType.ERROR:
                    errors.append((f.body["code"], f.request_id))
        r = Round(i, leave, hello, answered, sent, errors, time.monotonic() - t0)
        results.append(r)
        if not r.ok:
            log(f"[storm] round {i} ({leave}): hello={hello} answered {len(answered)}/{len(sent)} errors {errors}")
        # leave: maybe mid-frame, then the next host connects at once (or after ~1 ms)
        if leave.startswith("header_promising_100"):
            sock.sendall(_lying_ping_header(rid0 + 15, 100))
        elif leave == "half_a_ping":
            sock.sendall(codec.encode_frame(MsgType.PING, dict(data=b"half"), request_id=rid0 + 14)[:HEADER_SIZE + 2])
        sock.close()
        if leave.endswith("1ms_gap"):
            time.sleep(0.001)  # the scenario itself (a host back within 1 ms), not a synchronisation
        sock = connect()
    sock.close()
    return results
