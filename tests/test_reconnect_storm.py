"""Reconnect storm on the Track B kernel's virtio-serial AgentX port (issue 11, item 3): 100
hosts back to back, a fifth of them leaving in the middle of a frame that promises more than
the next host's first frames add up to, a fifth leaving half a frame, some coming back within
1 ms; each sends three PINGs at once, without waiting for HELLO. Every host must get HELLO and
a PONG for every PING.

Before the fix a PING sent right after a reconnect could be read before the kernel processed
the port's PORT_OPEN and be dropped with the old host's partial frame (3 of 12 trials lost
frames), and the old host's unfinished frame swallowed the new host's PINGs.

The Linux guest is not covered: its virtio_console driver reports the host side only as a
level (POLLHUP while closed), so a close and reopen between two polls leaves no trace, and it
discards what arrives while the agent has the port closed (see the issue 11 report)."""
from __future__ import annotations

import collections

import pytest

from helpers.reconnect_storm import storm

pytestmark = [pytest.mark.vm, pytest.mark.slow]


def test_trackb_every_reconnecting_host_gets_hello_and_answers():
    from wslx.guests.trackb import TrackBGuest
    with TrackBGuest(log=lambda s: None) as g:
        g.client.wait_hello()
        g.client.close()
        rounds = storm(lambda: g.vm.agentx_socket(10), rounds=100, timeout=10)
        bad = [r for r in rounds if not r.ok]
        assert not bad, (f"{len(bad)} of {len(rounds)} hosts were not served fully "
                         f"(by how the previous one left: {collections.Counter(rounds[r.index - 1].leave for r in bad)}); "
                         f"first: {bad[0]}")
        # the old hosts' unfinished frames were the old hosts' business: no ERROR reached a new host
        assert not [r for r in rounds if r.errors], [r for r in rounds if r.errors][:3]
        g.client = g.reconnect(g.client)
        g.client.wait_hello()
        g.shutdown()
