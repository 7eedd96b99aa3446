"""Hostile-peer fuzzing: thousands of mutated frames (half re-sealed with valid
CRCs, so they reach the decoders) against the C init in host test mode and the
reference agent. Each must keep answering PING and never die."""
from __future__ import annotations

import random
import subprocess
import sys

import pytest

from helpers import agentx_fuzz
from helpers.init_sandbox import skip_without_sandbox
from wslx.conformance.targets import TARGETS
from wslx.spec.agentx import MsgType

# Frames that would legitimately change the host (run programs, shut down) are not sent.
UNSAFE = {MsgType.EXEC, MsgType.SHUTDOWN, MsgType.SIGNAL, MsgType.MOUNT, MsgType.UNMOUNT, MsgType.CONFIG}
SEEDS = agentx_fuzz.base_seeds(pid=1)


def mutated_frames(rng: random.Random, count: int):
    return agentx_fuzz.mutated_frames(rng, count, SEEDS, skip=UNSAFE)


@pytest.mark.slow
@pytest.mark.parametrize("target", ["init-host", "reference"])
def test_agent_survives_mutated_frames(target, repo_root):
    if target == "init-host":
        subprocess.run([sys.executable, "-m", "SCons", "-Q", "init"], cwd=repo_root, check=True, capture_output=True)
        skip_without_sandbox(repo_root / "images" / "wslx-init")
    rng = random.Random(20261126)
    with TARGETS[target](timeout=5) as t:
        c = t.client
        c.wait_hello()
        agentx_fuzz.send_and_ping(c, list(mutated_frames(rng, 3000)))
        if target == "init-host":
            assert t.proc.poll() is None, "wslx-init died"
