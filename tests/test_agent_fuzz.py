"""Hostile-peer fuzzing: thousands of mutated frames (half re-sealed with valid
CRCs, so they reach the decoders) against the C init in host test mode and the
reference agent. Each must keep answering PING and never die."""
from __future__ import annotations

import random
import struct
import subprocess
import sys
import zlib

import pytest

from wslx.agentx import codec
from wslx.agentx.errors import AgentTimeout
from wslx.conformance.targets import TARGETS
from wslx.spec.agentx import HEADER_SIZE, MAX_PAYLOAD, MsgType, Stream

# Frames that would legitimately change the host (run programs, shut down) are not sent.
UNSAFE = {MsgType.EXEC, MsgType.SHUTDOWN, MsgType.SIGNAL, MsgType.MOUNT, MsgType.UNMOUNT, MsgType.CONFIG}
SEEDS = [
    (MsgType.PING, dict(data=b"fuzz")),
    (MsgType.HELLO, dict(version_min=1, version_max=1, version_selected=0, agent_kind=0, capabilities=0,
                         max_payload=65536, uptime_ms=0, name="h", os_release="")),
    (MsgType.STDIO, dict(pid=1, stream=Stream.STDIN, flags=0, data=b"abc")),
    (MsgType.QUIESCE, dict(timeout_ms=10)),
    (MsgType.RESUME, {}),
    (MsgType.OK, {}),
]


def mutated_frames(rng: random.Random, count: int):
    for _ in range(count):
        msg_type, body = rng.choice(SEEDS)
        f = bytearray(codec.encode_frame(msg_type, body, request_id=rng.choice([0, 0x9000_0000 + rng.randrange(16)])))
        for _ in range(rng.randint(1, 4)):
            f[rng.randrange(len(f))] = rng.randrange(256)
        if rng.random() < 0.2:
            f = f[:rng.randint(0, len(f))] + bytes(rng.randrange(256) for _ in range(rng.randint(0, 40)))
        if len(f) >= 24 and rng.random() < 0.5:
            f[16:20] = zlib.crc32(bytes(f[24:])).to_bytes(4, "little")
            f[20:24] = zlib.crc32(bytes(f[:20])).to_bytes(4, "little")
        if len(f) >= 8 and struct.unpack_from("<H", f, 6)[0] in UNSAFE:
            continue
        yield bytes(f)


@pytest.mark.slow
@pytest.mark.parametrize("target", ["init-host", "reference"])
def test_agent_survives_mutated_frames(target, repo_root):
    if target == "init-host":
        subprocess.run([sys.executable, "-m", "SCons", "-Q", "init"], cwd=repo_root, check=True, capture_output=True)
    rng = random.Random(20261126)
    with TARGETS[target](timeout=5) as t:
        c = t.client
        c.wait_hello()
        frames = list(mutated_frames(rng, 3000))
        for i in range(0, len(frames), 100):
            c.send_raw(b"".join(frames[i:i + 100]))
            # A header with valid CRCs is trusted: its payload (up to MAX_PAYLOAD) is read or
            # discarded before anything else. Zeros flush such a frame out (and are garbage
            # themselves: one resync); then the agent must answer at once.
            c.send_raw(bytes(MAX_PAYLOAD + HEADER_SIZE))
            try:
                answered, last = c.ping(b"alive", timeout=5) == b"alive", None
            except AgentTimeout as e:
                answered, last = False, e
            assert answered, f"agent stopped answering after batch {i // 100}: {last!r}"
        assert c.unsolicited_errors, "no ERROR for any malformed frame"
        assert not c.protocol_errors, f"the agent itself sent malformed frames: {list(c.protocol_errors)[:3]}"
        if target == "init-host":
            assert t.proc.poll() is None, "wslx-init died"
