"""wslx.portal.signal.SignalPort without a VM (a socketpair stands in for the port): one byte
per doorbell, never blocking, and a port that went away leaves polling, never an error."""
from __future__ import annotations

import socket

from wslx.portal.signal import SignalPort
from wslx.spec.portal import RingId


def test_ring_and_wait_carry_ring_ids_and_count_them():
    host, guest = socket.socketpair()
    with guest:
        port = SignalPort(host)
        port.ring(RingId.SUBMIT)
        assert guest.recv(16) == bytes([RingId.SUBMIT]) and port.rung == 1
        assert port.wait(0) == b""                        # nothing yet: a timeout, not an error
        guest.send(bytes([RingId.COMPLETE, RingId.COMPLETE]))
        assert port.wait(5) == bytes([RingId.COMPLETE] * 2) and port.heard == 2
        assert port.heard_by_byte == {RingId.COMPLETE: 2}
        port.close()


def test_a_full_port_never_blocks_the_ringer():
    host, guest = socket.socketpair()
    with guest:
        host.settimeout(5)   # a socket in timeout mode: were ring() to wait on it, it would time out and close
        port = SignalPort(host)
        for _ in range(1 << 20):                          # far more than the socket buffers hold
            port.ring(RingId.SUBMIT)
            if port.rung and port.rung < _ + 1:           # a ring was dropped: the buffer is full
                break
        assert 0 < port.rung < 1 << 20
        assert port.sock is not None, "a full port was treated as a dead one"
        port.close()


def test_a_port_that_went_away_leaves_polling():
    host, guest = socket.socketpair()
    port = SignalPort(host)
    guest.close()
    assert port.wait(5) is None and port.sock is None    # EOF: closed here
    port.ring(RingId.SUBMIT)                              # and a no-op from then on
    assert port.rung == 0 and port.wait(0) is None
    other, peer = socket.socketpair()
    with peer:
        closed = SignalPort(other)
        other.close()                                     # closed under it (its VM ended)
        assert closed.wait(0) is None
        closed.ring(RingId.SUBMIT)
        assert closed.rung == 0
