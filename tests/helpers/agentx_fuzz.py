"""Hostile AgentX input for every agent's fuzz tests (tests/test_agent_fuzz.py,
tests/test_trackb_agent.py, tests/test_trackb_guest.py): mutated frames, half
re-sealed with valid CRCs so they reach the decoders, sent in batches, each batch
followed by a PING the agent must still answer."""
from __future__ import annotations

import random
from typing import Callable, Iterable, Iterator

from wslx.agentx import codec
from wslx.agentx.errors import AgentTimeout, RemoteError
from wslx.spec.agentx import HEADER_SIZE, MAX_PAYLOAD, MsgType, Stream


def base_seeds(pid: int) -> list:
    """Frames every agent may get mutated copies of (STDIO goes to `pid`); callers add their own."""
    return [
        (MsgType.PING, dict(data=b"fuzz")),
        (MsgType.HELLO, dict(version_min=1, version_max=1, version_selected=0, agent_kind=0, capabilities=0,
                             max_payload=65536, uptime_ms=0, name="h", os_release="")),
        (MsgType.STDIO, dict(pid=pid, stream=Stream.STDIN, flags=0, data=b"abc")),
        (MsgType.QUIESCE, dict(timeout_ms=10)),
        (MsgType.RESUME, {}),
        (MsgType.OK, {}),
    ]


def mutated_frames(rng: random.Random, count: int, seeds, skip: Iterable[int] = ()) -> Iterator[bytes]:
    """Up to `count` frames: a seed (type, body) encoded, 1-4 bytes overwritten, sometimes cut
    short and followed by junk, half of them re-sealed; frames whose type ends up in `skip`
    (requests that would legitimately change the host) are not yielded."""
    skip = set(skip)
    for _ in range(count):
        msg_type, body = rng.choice(seeds)
        f = bytearray(codec.encode_frame(msg_type, body, request_id=rng.choice([0, 0x9000_0000 + rng.randrange(16)])))
        for _ in range(rng.randint(1, 4)):
            f[rng.randrange(len(f))] = rng.randrange(256)
        if rng.random() < 0.2:
            f = f[:rng.randint(0, len(f))] + bytes(rng.randrange(256) for _ in range(rng.randint(0, 40)))
        if len(f) >= HEADER_SIZE and rng.random() < 0.5:  # re-sealed: the decoders see the damage
            codec.reseal(f)
        if len(f) >= HEADER_SIZE and codec.header_field(f, "type") in skip:
            continue
        yield bytes(f)


def send_and_ping(client, frames: list[bytes], *, batch: int = 100, timeout: float = 5,
                  context: Callable[[], str] = lambda: "") -> None:
    """Send the frames in batches; after each the agent must answer PING. Then: at least one
    ERROR came back, and nothing the agent sent was malformed. context() adds to a failure."""
    for i in range(0, len(frames), batch):
        client.send_raw(b"".join(frames[i:i + batch]))
        # A header with valid CRCs is trusted: its payload (up to MAX_PAYLOAD) is read or
        # discarded before anything else. Zeros flush such a frame out (and are garbage
        # themselves: one resync); then the agent must answer at once.
        client.send_raw(bytes(MAX_PAYLOAD + HEADER_SIZE))
        answered, last = False, None
        for _ in range(8):
            try:
                answered = client.ping(b"alive", timeout=timeout) == b"alive"
                break
            except RemoteError as e:
                # a mutated frame's request id can be the one this PING gets; frames recovered from
                # inside a bogus payload are answered too, so its late ERROR can take the PING's place
                last = e
            except AgentTimeout as e:
                last = e
                break
        assert answered, f"agent stopped answering after batch {i // batch}: {last!r}\n{context()}"
    assert client.unsolicited_errors, "no ERROR for any malformed frame"
    assert not client.protocol_errors, f"the agent itself sent malformed frames: {list(client.protocol_errors)[:3]}"
