"""The AgentX receive path (issue 11, items 5 and 6): guest/agentx/agentx_rx.c, which
wslx-init and the Track B agent link, run on the host through build/agentx/agentx-rx-driver,
against the Python FrameReader the reference agent and the host client use.

Both must resume scanning just after a bad header: after a payload CRC mismatch (a header
that lied about its length) and after a rejected header (bad version or flags) whose payload
does not arrive with its CRC, so valid frames inside the bogus payload are recovered. And both
must agree, event by event, for any input and any chunking."""
from __future__ import annotations

import random
import subprocess
import sys
import zlib

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from wslx.agentx import codec
from wslx.agentx.errors import MalformedPayload, ProtocolError, UnknownType
from wslx.spec.agentx import HEADER_SIZE, MAX_PAYLOAD, VERSION_MAX, MsgType


@pytest.fixture(scope="session")
def rx_driver(repo_root):
    r = subprocess.run([sys.executable, "-m", "SCons", "-Q", "agentx-rx-host"], cwd=repo_root, capture_output=True,
                       text=True)
    assert r.returncode == 0, f"scons agentx-rx-host failed:\n{r.stdout}\n{r.stderr}"
    return repo_root / "build" / "agentx" / "agentx-rx-driver"


def ping(rid: int, data: bytes = b"p") -> bytes:
    return codec.encode_frame(MsgType.PING, dict(data=data), request_id=rid)


def header(msg_type: int = MsgType.PING, rid: int = 5, length: int = 0, payload_crc: int = 0, version: int = VERSION_MAX,
           flags: int = 0) -> bytes:
    """A header with a good header CRC that says whatever we like about its payload."""
    return codec.raw_frame(msg_type, request_id=rid, payload_len=length, payload_crc=payload_crc, version=version,
                           flags=flags)


def c_events(driver, data: bytes, chunk: int = 4096, new_peer: bool = False, cuts=(),
             hunt_at: int | None = None) -> tuple[list[tuple], int]:
    """(events, bytes left pending) of the C receive path for data pushed in chunks (cut also at
    the offsets `cuts`); hunt_at: agx_rx_hunt once that many bytes are in."""
    argv = [str(driver), "--chunk", str(chunk)] + (["--new-peer"] if new_peer else [])
    if cuts:
        argv += ["--cuts", ",".join(str(c) for c in sorted(cuts))]
    if hunt_at is not None:
        argv += ["--hunt-at", str(hunt_at)]
    out = subprocess.run(argv, input=data, capture_output=True, check=True, timeout=60).stdout.decode()
    events, pending = [], None
    for line in out.splitlines():
        kind, *fields = line.split()
        if kind == "frame":
            events.append(("frame", int(fields[0]), int(fields[1])))
        elif kind == "error":
            events.append(("error", int(fields[0]), int(fields[1])))
        elif kind == "pending":
            pending = int(fields[0])
    return events, pending


def py_events(data: bytes, chunk: int = 4096) -> tuple[list[tuple], int]:
    """The same for codec.FrameReader (the reference agent's and the host client's reader)."""
    r, events = codec.FrameReader(), []
    for i in range(0, len(data), chunk):
        r.feed(data[i:i + chunk])
        while True:
            try:
                f = r.next()
            except (MalformedPayload, UnknownType) as e:  # a whole frame: the C path leaves bodies to the agent
                events.append(("frame", e.msg_type, e.request_id))
                continue
            except ProtocolError as e:
                events.append(("error", int(e.code), e.request_id))
                continue
            if f is None:
                break
            events.append(("frame", f.type, f.request_id))
    return events, r.pending


def pongs_expected(events) -> list[int]:
    return [rid for kind, t, rid in events if kind == "frame" and t == MsgType.PING]


def liar_then_pings(claimed: int = 1000) -> bytes:
    """The issue's case: a header promising `claimed` bytes, 10 bytes, three valid PINGs, then
    more PINGs (what a host keeps sending) until the promise is covered, and a last PING."""
    data = header(rid=5, length=claimed, payload_crc=0) + b"0123456789" + ping(1) + ping(2) + ping(3)
    rid = 4
    while len(data) < HEADER_SIZE + claimed:
        data += ping(rid)
        rid += 1
    return data + ping(1000)


@pytest.mark.parametrize("reader", ["c", "python"])
@pytest.mark.parametrize("chunk", [1, 7, 4096])
def test_a_header_lying_about_its_length_loses_no_following_frame(rx_driver, reader, chunk):
    data = liar_then_pings()
    events, pending = c_events(rx_driver, data, chunk) if reader == "c" else py_events(data, chunk)
    sent = [rid for rid in range(1, 1001) if ping(rid) in data]
    assert events[0] == ("error", 74, 5), events[:3]          # EBADMSG for the liar, with its request id
    assert pongs_expected(events) == sent                      # every PING, in order, none lost
    assert [e for e in events if e[0] == "error"] == [("error", 74, 5)]  # and no other complaint
    assert pending == 0


@pytest.mark.parametrize("reader", ["c", "python"])
@pytest.mark.parametrize("bad", [dict(version=9), dict(flags=0x80)], ids=["version", "flags"])
def test_a_rejected_header_whose_payload_is_not_its_own_loses_no_frame(rx_driver, reader, bad):
    """An intact header with a bad version or flags claims 200 bytes, but what follows is
    three PINGs and filler: its error comes at once and the PINGs are still answered."""
    body = ping(1) + ping(2) + ping(3)
    data = header(rid=6, length=200, payload_crc=0x1234, **bad) + body + bytes(200 - len(body)) + ping(4)
    events, pending = c_events(rx_driver, data) if reader == "c" else py_events(data)
    assert events[0][0] == "error" and events[0][2] == 6
    assert pongs_expected(events) == [1, 2, 3, 4]
    assert pending == 0


@pytest.mark.parametrize("reader", ["c", "python"])
def test_a_rejected_frame_with_its_real_payload_is_dropped_whole(rx_driver, reader):
    """The other side of the rule: a newer-version frame whose payload carries its CRC is
    skipped whole, even when that payload contains what looks like a frame."""
    inner = ping(77)
    data = header(rid=6, length=len(inner), payload_crc=zlib.crc32(inner), version=9) + inner + ping(4)
    events, _ = c_events(rx_driver, data) if reader == "c" else py_events(data)
    assert events == [("error", 93, 6), ("frame", MsgType.PING, 4)]


def test_magic_dense_garbage_is_reported_once_and_then_a_ping_gets_through(rx_driver):
    data = codec.MAGIC_BYTES * (64 << 10) + ping(9)
    for events, pending in (c_events(rx_driver, data), py_events(data)):
        assert events == [("error", 74, 0), ("frame", MsgType.PING, 9)]
        assert pending == 0


SETTLE = 1024  # zeros after the input: enough for any claimed payload below to arrive
FRAGMENTS = st.one_of(
    st.builds(lambda rid, n: ping(rid, bytes(n)), st.integers(1, 50), st.integers(0, 40)),
    st.binary(max_size=40),
    st.builds(lambda n, crc, v, f: header(rid=66, length=n, payload_crc=crc, version=v, flags=f),
              st.sampled_from([0, 10, 100, SETTLE - HEADER_SIZE, MAX_PAYLOAD + 1]), st.integers(0, 2**32 - 1),
              st.sampled_from([1, 1, 1, 9]), st.sampled_from([0, 0, 0, 0x80])),
    st.just(codec.MAGIC_BYTES * 8),
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(FRAGMENTS, max_size=25), st.sampled_from([1, 5, 64, 4096]))
def test_c_and_python_receive_paths_agree_on_any_input(rx_driver, fragments, chunk):
    """Event by event, and in what they keep buffered, for any mix of frames, junk and lying
    headers; a flush of zeros at the end settles any frame still waiting for its payload."""
    data = b"".join(fragments) + bytes(SETTLE) + ping(999)
    c, cp = c_events(rx_driver, data, chunk)
    p, pp = py_events(data, chunk)
    assert c == p
    assert cp == pp
    assert c[-1] == ("frame", MsgType.PING, 999)


def test_frames_between_junk_without_a_magic_are_all_delivered(rx_driver):
    """No valid frame is lost when the junk between frames never contains the magic."""
    rng = random.Random(11)
    data, want = b"", []
    for rid in range(1, 200):
        junk = bytes(rng.choice(b"abcdefghijklmnop") for _ in range(rng.randint(0, 30)))
        data += junk + ping(rid, bytes(rng.randint(0, 20)))
        want.append(rid)
    for events, _ in (c_events(rx_driver, data, 13), py_events(data, 13)):
        assert pongs_expected(events) == want


# ---- a new peer (issue 11, items 2 and 3): the previous host's bytes may still come first ----

OLD_TAILS = {
    "lying_header": header(rid=0x77, length=100, payload_crc=0),          # the header-only PING
    "half_a_ping": ping(0x78)[:HEADER_SIZE + 2],
    "junk": b"\x01garbage" * 3,
    "header_then_junk": header(rid=0x79, length=5000) + b"x" * 40,
}


@pytest.mark.parametrize("tail", sorted(OLD_TAILS))
@pytest.mark.parametrize("chunk", [1, 29, 4096])
def test_a_new_peer_is_not_held_up_by_the_previous_peers_unfinished_frame(rx_driver, tail, chunk):
    """After agx_rx_new_peer, the previous host's tail (here: an unfinished frame promising more
    than the new host's first frames add up to) neither swallows nor delays the new host's
    frames, and draws no ERROR the new host would get with the old host's request id."""
    data = OLD_TAILS[tail] + ping(1) + ping(2) + ping(3)
    events, _ = c_events(rx_driver, data, chunk, new_peer=True)
    assert events == [("frame", MsgType.PING, 1), ("frame", MsgType.PING, 2), ("frame", MsgType.PING, 3)]


def test_hunting_ends_with_the_new_peers_first_good_frame(rx_driver):
    """After the first good frame every fault is the new peer's own and is reported again, and
    a large frame arriving in pieces is waited for, not passed over."""
    big = codec.encode_frame(MsgType.PING, dict(data=ping(50) * 100), request_id=4)   # frames inside its data
    data = OLD_TAILS["lying_header"] + ping(1) + b"\x01junk" + ping(2) + big
    events, pending = c_events(rx_driver, data, 7, new_peer=True)
    assert events == [("frame", MsgType.PING, 1), ("error", 74, 0), ("frame", MsgType.PING, 2),
                      ("frame", MsgType.PING, 4)]
    assert pending == 0


def test_without_a_new_peer_the_same_bytes_are_reported(rx_driver):
    """The hunt is only for a new peer: the same input on a running connection is the host's own
    lying header (EBADMSG, as the rules say) and waits for its promised length."""
    events, pending = c_events(rx_driver, OLD_TAILS["lying_header"] + ping(1) + ping(2) + ping(3))
    assert events == [] and pending == HEADER_SIZE + 3 * len(ping(1))


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.one_of(st.binary(max_size=64), st.sampled_from(sorted(OLD_TAILS.values())),
                 st.builds(lambda n, cut: header(rid=0x7A, length=n)[:cut], st.integers(0, 4000), st.integers(1, 24))),
       st.integers(1, 5), st.sampled_from([1, 13, 4096]))
def test_a_new_peer_gets_all_its_frames_whatever_the_old_tail(rx_driver, tail, count, chunk):
    """Whatever the previous host left behind, the new host's frames are all delivered, in order,
    at the end of what the receiver delivers."""
    data = tail + b"".join(ping(i + 1, bytes(i)) for i in range(count))
    events, pending = c_events(rx_driver, data, chunk, new_peer=True)
    frames = [rid for kind, _, rid in events if kind == "frame"]
    assert frames[-count:] == list(range(1, count + 1)), events
    assert pending == 0


# A reconnect-storm round on Linux's virtio-serial port: the old host left a header promising 100
# bytes; the new host sends HELLO with request_id 0 (it asks for the announcement, since the agent
# may not see it arrive) and three PINGs at once, 147 bytes in all.
ASKING_HOST = codec.encode_frame(MsgType.HELLO, dict(version_min=1, version_max=VERSION_MAX, version_selected=0,
                                                     agent_kind=0, capabilities=0, max_payload=65536, uptime_ms=0,
                                                     name="storm", os_release="")) + ping(1, b"s7") + ping(2, b"s7") + ping(3, b"s7")
ASKING_HOST_FRAMES = [("frame", MsgType.HELLO, 0)] + [("frame", MsgType.PING, r) for r in (1, 2, 3)]


def _asking_host_served(events, pending, old_errors_allowed: bool) -> None:
    assert [e for e in events if e[0] == "frame"] == ASKING_HOST_FRAMES, events
    errors = [e for e in events if e[0] == "error"]
    # only the old host's lying header may draw an ERROR, with its own request id
    assert errors == ([("error", 74, 0x77)] if errors and old_errors_allowed else []), events
    assert pending == 0


@pytest.mark.parametrize("mode", ["unseen", "new_peer", "hunt"])
def test_a_host_asking_for_hello_behind_an_old_lying_header_gets_every_frame_however_split(rx_driver, mode):
    """Every two-piece split of old tail + new host. unseen: the agent never saw the reconnect
    (the lying header takes 100 of the new bytes, its CRC fails, scanning resumes right after it);
    new_peer: the reconnect was seen before any byte came; hunt: wslx-init saw it only after the
    bytes up to the split were read (agx_rx_hunt keeps them: they may be the new host's)."""
    data = OLD_TAILS["lying_header"] + ASKING_HOST
    for cut in range(1, len(data)):
        if mode == "hunt":
            events, pending = c_events(rx_driver, data, hunt_at=cut)
        else:
            events, pending = c_events(rx_driver, data, cuts=[cut], new_peer=mode == "new_peer")
        _asking_host_served(events, pending, old_errors_allowed=mode != "new_peer")


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.sets(st.integers(1, HEADER_SIZE + len(ASKING_HOST) - 1), max_size=12),
       st.sampled_from(["unseen", "new_peer", "hunt"]), st.integers(0, HEADER_SIZE + len(ASKING_HOST)))
def test_a_host_asking_for_hello_gets_every_frame_whatever_the_pieces(rx_driver, cuts, mode, hunt_at):
    """The same with the bytes in up to 13 pieces cut anywhere (and, for hunt, the reconnect
    noticed at any offset)."""
    data = OLD_TAILS["lying_header"] + ASKING_HOST
    events, pending = c_events(rx_driver, data, cuts=cuts, new_peer=mode == "new_peer",
                               hunt_at=hunt_at if mode == "hunt" else None)
    _asking_host_served(events, pending, old_errors_allowed=mode != "new_peer")
