"""AgentX client: typed errors for timeouts, lost connections, remote errors
and hostile agents, over a socketpair and over pipes."""
from __future__ import annotations

import os
import select
import socket
import threading
import time

import pytest

from wslx.agentx import codec
from wslx.agentx.client import AgentClient
from wslx.agentx.errors import AgentTimeout, ConnectionLost, ProtocolError, RemoteError
from wslx.agentx.reference_agent import serve_in_thread
from wslx.agentx.transport import FdTransport
from wslx.spec.agentx import ErrorCode, FrameFlag, MsgType


@pytest.fixture
def agent():
    host, agent_end = socket.socketpair()
    a, t = serve_in_thread(agent_end)
    c = AgentClient(host, default_timeout=5)
    c.wait_hello()
    yield c
    c.close()
    t.join(5)


def test_timeout_is_typed_and_says_what_was_awaited():
    host, silent = socket.socketpair()
    c = AgentClient(host, default_timeout=0.2)
    t0 = time.monotonic()
    with pytest.raises(AgentTimeout, match="HELLO"):
        c.wait_hello()
    assert time.monotonic() - t0 < 2
    with pytest.raises(AgentTimeout, match="PING"):
        c.ping(b"x")
    silent.close()
    c.close()


def test_connection_lost_when_the_agent_goes_away():
    host, peer = socket.socketpair()
    c = AgentClient(host, default_timeout=2)
    peer.sendall(codec.encode_frame(MsgType.PING, dict(data=b"xyz"), request_id=5)[:27])
    peer.close()
    with pytest.raises(ConnectionLost, match="inside a frame"):
        c.wait_hello()
    with pytest.raises(ConnectionLost):
        c.ping()


def test_remote_error_carries_code_message_and_request_type(agent):
    with pytest.raises(RemoteError) as ei:
        agent.exec(["/definitely/missing"])
    e = ei.value
    assert e.code == ErrorCode.ENOENT and "/definitely/missing" in e.message and e.request_type == MsgType.EXEC


def test_client_resynchronises_after_a_garbage_spewing_agent():
    host, peer = socket.socketpair()
    c = AgentClient(host, default_timeout=2)

    def hostile():
        peer.sendall(b"\x00\xffjunk" * 50)
        peer.sendall(codec.encode_frame(MsgType.HELLO, dict(version_min=1, version_max=1, version_selected=0,
                                                             agent_kind=1, capabilities=0, max_payload=4096,
                                                             uptime_ms=0, name="h", os_release="")))
    threading.Thread(target=hostile).start()
    assert c.wait_hello().name == "h"
    assert c.protocol_errors and all(isinstance(e, ProtocolError) for e in c.protocol_errors)
    peer.close()
    c.close()


def test_stdout_streams_live_to_a_callback(agent):
    chunks = []
    r = agent.run(["sh", "-c", "echo one; sleep 0.1; echo two"], on_stdout=chunks.append)
    assert b"".join(chunks) == b"one\ntwo\n" and r.stdout == b""


def test_client_works_over_a_pipe_pair():
    """Any byte stream: here two pipes, as a chardev or stdio pair would give."""
    a_r, h_w = os.pipe()
    h_r, a_w = os.pipe()
    from wslx.agentx.reference_agent import ReferenceAgent
    agent = ReferenceAgent(FdTransport(a_r, a_w, name="agent-pipes"))
    t = threading.Thread(target=agent.serve, daemon=True)
    t.start()
    c = AgentClient(FdTransport(h_r, h_w, name="host-pipes"), default_timeout=5)
    assert c.wait_hello().kind_name == "reference"
    assert c.run(["echo", "piped"]).stdout == b"piped\n"
    c.shutdown()
    t.join(5)
    assert not t.is_alive()
    c.close()


def test_request_ids_are_unique_and_replies_flagged(agent):
    frames = []
    orig = agent._dispatch

    def spy(f):
        frames.append(f)
        orig(f)
    agent._dispatch = spy
    for _ in range(5):
        agent.ping(b"")
    replies = [f for f in frames if f.type == MsgType.PONG]
    assert len({f.request_id for f in replies}) == 5
    assert all(f.flags & FrameFlag.REPLY for f in replies)


def test_reference_agent_output_stays_bounded_when_the_host_does_not_read():
    """A host that floods requests and never reads replies cannot grow the agent's memory."""
    from wslx.agentx.reference_agent import CONTROL_READ_SIZE, OUT_HIGH_WATER
    from wslx.spec.agentx import MAX_FRAME
    host, agent_end = socket.socketpair()
    agent, t = serve_in_thread(agent_end)
    host.setblocking(False)
    ping = codec.encode_frame(MsgType.PING, dict(data=b"x" * 60000), request_id=1)

    def stopped_reading() -> bool:   # the agent took its control fd out of its selector
        return agent.t.rfd not in agent.sel.get_map()
    pending, sent = b"", 0
    deadline = time.monotonic() + 30
    while not stopped_reading():
        assert sent < 3000, "the agent kept reading requests while its replies piled up"
        assert time.monotonic() < deadline, f"the agent neither read on nor stopped reading ({sent} pings sent)"
        if not select.select([], [host], [], 0.1)[1]:   # wait until it takes more, or stops reading
            continue
        if not pending:
            pending, sent = ping, sent + 1
        try:
            pending = pending[host.send(pending):]
        except BlockingIOError:
            pass
    # the last read before the agent stopped may still add the replies to what it held
    assert len(agent.out) <= OUT_HIGH_WATER + MAX_FRAME + CONTROL_READ_SIZE + MAX_FRAME
    host.close()
    t.join(5)


def test_run_tolerates_a_program_that_stops_reading_stdin(agent):
    r = agent.run(["head", "-c", "10"], input=b"z" * (3 << 20))
    assert r.returncode == 0 and r.stdout == b"z" * 10
