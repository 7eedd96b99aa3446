"""The Linux guest's Portal doorbells on the SIGNAL port (a named virtio-serial port), not as
STDIO bytes: the host rings SUBMIT there when `/init portal serve` sleeps, the service
rings COMPLETE there when the host sleeps; its stdout carries no doorbell bytes. Without
the port the service is polled and still serves."""
from __future__ import annotations

import re
import time

import pytest

from wslx.guests.linux import LinuxGuest
from wslx.portal import Portal
from wslx.portal.guest import PortalService, pmem_kw, portal_machine_kw
from wslx.portal.signal import SIGNAL_PORT
from wslx.spec.portal import RingId

pytestmark = [pytest.mark.vm, pytest.mark.slow]


def _until_guest_sleeps(g, p, timeout=60):
    deadline = time.monotonic() + timeout
    while not p.lib.portal_peer_wants_wakeup(p._e(), RingId.SUBMIT):
        assert time.monotonic() < deadline, "the guest never went to sleep on SUBMIT"
        g.client.pump(0.01)


def test_portal_doorbells_ride_the_signal_port(tmp_path):
    p = Portal.create(tmp_path / "portal.img", 16 << 20)
    try:
        with LinuxGuest(log=lambda s: None, timeout=120, **portal_machine_kw(p)) as g:
            svc = PortalService(g, p, timeout=120).start()
            try:
                assert svc.signal is not None and p.doorbell_ring is not None
                assert [p.echo(i) for i in range(100)] == list(range(100))
                _until_guest_sleeps(g, p)
                rung = svc.doorbells_rung
                assert p.echo(7) == 7                      # woke the guest through the port
                assert svc.doorbells_rung > rung
                _until_guest_sleeps(g, p)
                span = p.alloc(1 << 20)                    # a long request: the host sleeps on COMPLETE
                p.view(span)[:] = bytes(1 << 20)
                assert p.checksum(span, timeout=60) == 0
                # every byte the guest sent on the port was a COMPLETE doorbell (none on stdout)
                assert set(svc.signal.heard_by_byte) <= {RingId.COMPLETE}, svc.signal.heard_by_byte
                assert sum(svc.signal.heard_by_byte.values()) == svc.signal.heard
            finally:
                assert svc.stop() == 0
            out = svc.output
            g.shutdown()
        assert f"doorbells on {SIGNAL_PORT}".encode() in out
        assert b"!" not in out.replace(b"portal:", b"")   # no STDIO doorbell bytes any more
        m = re.search(rb"doorbells rung (\d+) heard (\d+)", out)
        assert m and int(m.group(2)) >= 1, out             # the guest heard our SUBMIT doorbells
    finally:
        p.close()


def test_a_machine_without_the_signal_port_gets_a_polled_service(tmp_path):
    p = Portal.create(tmp_path / "portal.img", 16 << 20)
    try:
        with LinuxGuest(log=lambda s: None, timeout=120, **pmem_kw(p)) as g:
            with PortalService(g, p, timeout=120) as svc:
                assert svc.signal is None and p.doorbell_ring is None
                t0 = time.monotonic()
                assert [p.echo(i) for i in range(50)] == list(range(50))
                elapsed = time.monotonic() - t0
            out = svc.output
            g.shutdown()
        assert b"doorbells on nothing: polled" in out
        assert b"doorbells rung 0 heard 0" in out
        print(f"50 polled echos in {elapsed:.3f} s")
    finally:
        p.close()


def test_track_b_portal_doorbells_ride_the_signal_port(tmp_path):
    """The Track B kernel's `portal serve` rings COMPLETE on the signal port (its driver opens
    it beside the AgentX port): the host sleeps on it, and the service's stdout stays empty."""
    from wslx.guests.trackb import TrackBGuest
    from wslx.portal.trackb import TrackBPortalService, trackb_portal_kw
    with Portal.create(tmp_path / "portal.img", 16 << 20) as p, \
            TrackBGuest(log=lambda s: None, timeout=120, **trackb_portal_kw(p)) as g:
        with TrackBPortalService(g, p, timeout=120) as svc:
            assert svc.signal is not None and p.doorbell_ring is None and p.doorbell_wait is not None
            span = p.alloc(4 << 20)
            p.view(span)[:] = bytes(4 << 20)
            deadline = time.monotonic() + 120
            while svc.signal.heard == 0:               # a checksum long enough for the host to sleep
                assert time.monotonic() < deadline, "no COMPLETE doorbell from the Track B kernel"
                assert p.checksum(span, timeout=60) == 0
        out = svc.output
        g.shutdown()
    assert b"!" not in out.replace(b"portal:", b""), out   # no STDIO doorbell bytes

