"""AgentX sessions (issue 11): output is never lost, and protocol versions 1 and 2 interwork.

* Flood: a producer far larger than every buffer on the way while the host stops reading for a
  while: every byte arrives, in order, with offsets proving there is no gap (0 bytes lost), on
  every agent. Bug 1 (Track B cut a frame short and lost 2-3 x 61,440 bytes after any pause of
  6 s or more) is the 6.5 s case; the done-when figure is the 30 s case (marked slow).
* Negotiation, both directions: an old host (never negotiates) against every agent, and the new
  client against an old agent (version 1 only).
The reconnect cases (output produced while no host is connected, QUIESCE across reconnects) are in
the conformance suite and run on every target that can reconnect (init-host, the Linux and Track B
VMs: tests/test_conformance.py, test_linux_guest.py, test_trackb_guest.py)."""
from __future__ import annotations

import socket
import time

import pytest

from wslx.agentx.client import AgentClient
from wslx.agentx.errors import RemoteError
from wslx.agentx.reference_agent import serve_in_thread
from wslx.conformance.suite import conform
from wslx.conformance.targets import TARGETS
from wslx.spec.agentx import OUTPUT_BUFFER, ErrorCode, MsgType, Stream

SHORT_PAUSE = 6.5   # above bug 1's 6 s threshold
LONG_PAUSE = 30.0   # the done-when figure


def flood(client: AgentClient, n: int, pause: float, timeout: float) -> dict:
    """EXEC a producer of n zero bytes, stop reading for `pause` seconds once output flows, then read
    everything. Returns the figures; asserts that nothing was lost, duplicated or reordered."""
    got = bytearray(b"")
    counts = {"bytes": 0, "nonzero": 0}

    def sink(data: bytes) -> None:
        counts["bytes"] += len(data)
        if data.count(0) != len(data):
            got.extend(data)  # only the tail "end" may be non-zero
            counts["nonzero"] += len(data) - data.count(0)

    p = client.exec(conform("zeros", n, "out", "end"), on_stdout=sink, timeout=timeout)
    deadline = time.monotonic() + timeout
    while counts["bytes"] == 0 and time.monotonic() < deadline:
        client.pump(0.2)
    assert counts["bytes"], "no output before the pause"
    before = counts["bytes"]
    time.sleep(pause)   # the scenario: the host does not read its channel at all
    t0 = time.monotonic()
    st = p.wait(timeout)
    assert st.code == 0 and st.how == 0, f"producer ended {st}"
    assert counts["bytes"] == n + 3, f"{counts['bytes']} of {n + 3} bytes arrived: {n + 3 - counts['bytes']} lost"
    assert got.endswith(b"end") and counts["nonzero"] == 3, "bytes altered or reordered"
    if client.version >= 2:
        assert p.received[Stream.STDOUT] == n + 3 and p.duplicates == 0, (p.received, p.duplicates)
    assert not client.protocol_errors, list(client.protocol_errors)[:2]
    assert not client.unsolicited_errors, list(client.unsolicited_errors)[:2]
    return dict(bytes=n, pause_s=pause, before_pause=before, after_pause_s=round(time.monotonic() - t0, 2),
                version=client.version, lost=n + 3 - counts["bytes"])


@pytest.fixture
def reference():
    with TARGETS["reference"](timeout=30) as t:
        t.client.wait_hello()
        yield t.client


@pytest.fixture(params=["init-host", "trackb-host"])
def host_binary(request):
    with TARGETS[request.param](timeout=30) as t:
        t.client.wait_hello()
        yield t.client


PAUSES = [SHORT_PAUSE, pytest.param(LONG_PAUSE, marks=pytest.mark.slow, id="30s")]


@pytest.mark.parametrize("pause", PAUSES)
def test_flood_loses_nothing_on_the_reference_agent(reference, pause):
    print(flood(reference, 32 << 20, pause, timeout=120))


@pytest.mark.parametrize("pause", PAUSES)
def test_flood_loses_nothing_on_the_agent_binaries_on_the_host(host_binary, pause):
    print(flood(host_binary, 32 << 20, pause, timeout=120))


def test_flood_loses_nothing_for_an_old_host(reference):
    """Back-pressure is not a version-2 feature: a host that never negotiates loses nothing either."""
    reference.ask_announce(timeout=10)
    reference.auto_negotiate = False
    reference.wait_new_hello(timeout=10)
    assert reference.version == 1
    print(flood(reference, 8 << 20, 2.0, timeout=60))


@pytest.mark.vm
@pytest.mark.slow
@pytest.mark.parametrize("pause", PAUSES)
@pytest.mark.parametrize("target", ["trackb", "linux"])
def test_flood_loses_nothing_in_the_vms(target, pause):
    """Bug 1's scenario under QEMU: a large producer and a host that stops reading (6.5 s, and 30 s)."""
    with TARGETS[target](timeout=30) as t:
        t.client.wait_hello()
        print(flood(t.client, 16 << 20, pause, timeout=300))


# ---- negotiation, both directions ------------------------------------------------------------

@pytest.mark.parametrize("target", ["reference", "init-host", "trackb-host"])
def test_an_old_host_gets_version_1_from_every_agent(target):
    """A host that never sends HELLO (version 1) gets version-1 frames without offsets, its output and
    EXIT, and no error for the OUTPUT_ACKs it never sends."""
    with TARGETS[target](timeout=10) as t:
        c = t.client
        c.auto_negotiate = False
        h = c.wait_hello(timeout=10)
        assert h.version_max == 2 and c.version == 1
        r = c.run(conform("zeros", 3 * OUTPUT_BUFFER, "err", "e"), timeout=30)
        assert r.status.code == 0 and len(r.stdout) == 3 * OUTPUT_BUFFER and r.stderr == b"e"
        assert set(c.frame_versions) == {1}, c.frame_versions
        assert c.ping(b"x", timeout=5) == b"x" and not c.unsolicited_errors


def test_the_new_host_stays_at_version_1_with_an_old_agent():
    """An agent from before version 2 announces 1..1: the client does not ask for more, sends no
    offsets and no OUTPUT_ACK, and everything works; asking for 2 only is refused."""
    host, agent_end = socket.socketpair()
    agent, thread = serve_in_thread(agent_end, version_max=1)
    with AgentClient(host, default_timeout=10) as c:
        h = c.wait_hello()
        assert (h.version_max, c.version) == (1, 1)
        r = c.run(conform("zeros", 3 * OUTPUT_BUFFER, "out", "!"), timeout=30)
        assert r.status.code == 0 and len(r.stdout) == 3 * OUTPUT_BUFFER + 1
        assert set(c.frame_versions) == {1} and not c.unsolicited_errors
        assert c.negotiate(1, 2).version_selected == 1
        with pytest.raises(RemoteError) as e:
            c.negotiate(2, 2)
        assert e.value.code == ErrorCode.EPROTONOSUPPORT
        c.shutdown(grace_ms=100)
    thread.join(5)


@pytest.mark.parametrize("target", ["reference", "init-host", "trackb-host"])
def test_the_new_host_negotiates_version_2_with_every_agent(target):
    with TARGETS[target](timeout=10) as t:
        c = t.client
        h = c.wait_hello(timeout=10)
        assert h.version_max == 2 and c.version == 2
        seen = dict(c.frame_versions)
        p = c.exec(conform("out", "x"), timeout=10)
        p.wait(10)
        assert p.received[Stream.STDOUT] == 1
        new = {v: n - seen.get(v, 0) for v, n in c.frame_versions.items() if n != seen.get(v, 0)}
        assert set(new) == {2}, new
        # the client acknowledged the EXIT (OUTPUT_ACK flag EXIT): the agent forgot the process
        c.ping(b"", timeout=5)
        c.send_event(MsgType.OUTPUT_ACK, dict(pid=p.pid, flags=0, stdout_bytes=1, stderr_bytes=0))
        e = c.wait_error(timeout=5)
        assert e.code == ErrorCode.ESRCH, e
