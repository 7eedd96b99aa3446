"""Gemini with a booted Linux guest: `wslx-call` (an applet of wslx-init) calls host services
through the Portal with doorbells on the SIGNAL/UPCALL virtio-serial ports, and a subscriber
receives host upcalls on the socket the Gemini agent hands it; overflow reaches the host."""
from __future__ import annotations

import os
import re
import time

import pytest

from helpers.gemini_world import make_dispatcher, make_export
from wslx.gemini import Dispatcher
from wslx.gemini.host import SIGNAL_PORT, GeminiLinuxAgent, gemini_machine_kw
from wslx.guests.linux import LinuxGuest
from wslx.portal import Portal
from wslx.spec.gemini import HELLO_METHOD, HELLO_SERVICE, UPCALL_QUEUE_DEPTH, VERSION, VERSION_MIN, Port
from wslx.spec.portal import RingId

pytestmark = [pytest.mark.vm, pytest.mark.slow]


@pytest.fixture(scope="module")
def gemini(tmp_path_factory):
    d0 = tmp_path_factory.mktemp("gemini")
    export = make_export(d0)
    portal = Portal.create(d0 / "portal.img", 64 << 20)
    d = make_dispatcher(portal, export)
    try:
        with LinuxGuest(log=lambda s: None, timeout=120, **gemini_machine_kw(portal)) as g:
            with GeminiLinuxAgent(g, portal, d, timeout=120) as agent:
                yield g, d, agent, export
            g.shutdown()
    finally:
        portal.close()


def test_wslx_call_reads_and_stats_exported_files(gemini):
    g, d, agent, export = gemini
    r = g.client.run(["wslx-call", "fs", "read", "hello.txt"], timeout=120)
    assert r.returncode == 0 and r.stdout == b"hello from the host\n", r
    r = g.client.run(["sh", "-c", "wslx-call fs read sub/blob.bin | md5sum"], timeout=120)
    import hashlib
    assert r.stdout.split()[0].decode() == hashlib.md5((export / "sub" / "blob.bin").read_bytes()).hexdigest()
    r = g.client.run(["wslx-call", "fs", "stat", "sub"], timeout=120)
    assert r.returncode == 0 and len(r.stdout) == 24


@pytest.mark.parametrize("argv,err,text", [
    (["fs", "read", "../secret"], "PERM", "'..' components"), (["fs", "read", "link"], "PERM", "is a symlink"),
    (["fs", "read", "/etc/passwd"], "PERM", "only relative paths"), (["fs", "read", "nope"], "NOENT", "no such file"),
    (["exec", "run", "sh", "-c", "id"], "PERM", "not allow-listed"), (["no", "such"], "NOSYS", "no service no.such")])
def test_wslx_call_reports_typed_errors_with_the_hosts_text(gemini, argv, err, text):
    """Version 2 (negotiated by the agent's HELLO): an error reply carries the host's message."""
    g, d, agent, _ = gemini
    r = g.client.run(["wslx-call", *argv], timeout=120)
    assert r.returncode == 1 and f": {err} (".encode() in r.stderr and text.encode() in r.stderr, r


def test_the_agent_negotiated_the_newest_version(gemini):
    g, d, agent, _ = gemini
    assert d.version == VERSION and d.guest_versions == (VERSION_MIN, VERSION)
    assert f"gemini: version {VERSION} (host status OK)".encode() in agent.output


def test_a_host_that_predates_negotiation_is_served_version_1(tmp_path):
    """A mismatched peer with the real guest: the host has no HELLO (answers NOSYS) and reads
    only version-1 records; the agent falls back to version 1 and calls keep working."""
    export = make_export(tmp_path)
    portal = Portal.create(tmp_path / "portal.img", 16 << 20)
    d = make_dispatcher(portal, export, versions=(1, 1))
    del d.services[(HELLO_SERVICE, HELLO_METHOD)]
    try:
        with LinuxGuest(log=lambda s: None, timeout=120, **gemini_machine_kw(portal)) as g:
            with GeminiLinuxAgent(g, portal, d, timeout=120) as agent:
                r = g.client.run(["wslx-call", "fs", "read", "hello.txt"], timeout=120)
                assert r.returncode == 0 and r.stdout == b"hello from the host\n", r
                r = g.client.run(["wslx-call", "fs", "read", "nope"], timeout=120)
                assert r.returncode == 1 and r.stderr.endswith(b": NOENT (2)\n"), r   # version 1: no text
                assert b"gemini: version 1 (host status NOSYS)" in agent.output
            g.shutdown()
        assert d.version is None and d.stats.errors.get("PROTONOSUPPORT", 0) == 0
    finally:
        portal.close()


def test_exec_run_of_an_allow_listed_program(gemini):
    g, d, agent, _ = gemini
    r = g.client.run(["wslx-call", "exec", "run", "echo", "from", "the", "host"], timeout=120)
    assert r.returncode == 0 and r.stdout == b"from the host\n"


def test_doorbells_flow_both_ways(gemini):
    g, d, agent, _ = gemini
    before = agent.host.doorbells_heard
    r = g.client.run(["wslx-call", "--bench", "50", "null", "call"], timeout=300)
    assert r.returncode == 0 and b"calls 50 " in r.stdout, r.stdout
    assert agent.host.doorbells_heard > before or agent.host.doorbells_rung > 0
    assert agent.host.stray_bytes == 0


def test_a_subscriber_receives_upcalls_in_order(gemini):
    g, d, agent, _ = gemini
    sub = g.client.exec(["wslx-call", "--subscribe", "news", "--count", "3"], timeout=120)
    sub.wait_for_output(b"subscribed news", timeout=120)
    for i in range(3):
        agent.post_upcall("news", f"item-{i}".encode())
    st = sub.wait(120)
    assert st.returncode == 0
    assert sub.stdout.decode().splitlines()[1:] == [f"news 6 item-{i}" for i in range(3)]


def test_overflow_of_a_stalled_subscriber_is_reported_to_the_host(gemini):
    """A subscriber that stops reading: its socket fills, then its queue of UPCALL_QUEUE_DEPTH;
    every further upcall comes back to the host as dropped (NOSPC), none disappears."""
    g, d, agent, _ = gemini
    sub = g.client.exec(["wslx-call", "--subscribe", "bulk"], timeout=120)
    sub.wait_for_output(b"subscribed bulk", timeout=120)
    pid = int(g.client.run(["sh", "-c", "pidof wslx-call"], timeout=60).stdout.split()[0])
    assert g.client.run(["kill", "-STOP", str(pid)], timeout=60).returncode == 0
    base = (d.stats.upcalls_delivered, d.stats.upcalls_dropped)
    n = 60
    for i in range(n):
        deadline = time.monotonic() + 60
        while True:
            try:
                agent.post_upcall("bulk", bytes([i]) * 60_000)
                break
            except Exception:  # Busy: the guest has not answered enough yet
                assert time.monotonic() < deadline, "the guest stopped answering upcalls"
                time.sleep(0.01)
    deadline = time.monotonic() + 120
    while d.upcalls_outstanding and time.monotonic() < deadline:
        time.sleep(0.05)
    delivered = d.stats.upcalls_delivered - base[0]
    dropped = d.stats.upcalls_dropped - base[1]
    assert delivered + dropped == n and dropped > 0 and delivered >= UPCALL_QUEUE_DEPTH
    g.client.run(["kill", "-KILL", str(pid)], timeout=60)


def test_portal_requests_with_their_doorbells_on_the_signal_port(tmp_path):
    """The Portal service inside the Gemini agent (--portal): SUBMIT/COMPLETE doorbells are bytes on
    the signal port, not STDIO bytes; the host sleeps on COMPLETE and is woken by them."""
    from wslx.portal.layout import sum64
    portal = Portal.create(tmp_path / "portal.img", 64 << 20)
    d = Dispatcher(portal)
    try:
        with LinuxGuest(log=lambda s: None, timeout=120, **gemini_machine_kw(portal)) as g:
            with GeminiLinuxAgent(g, portal, d, timeout=120, portal_service=True) as agent:
                span = portal.alloc(1 << 16)
                portal.view(span)[:] = os.urandom(1 << 16)
                assert portal.checksum(span) == sum64(portal.view(span))
                assert [portal.echo(i) for i in range(200)] == list(range(200))
                rung = agent.host.portal_bells_rung
                deadline = time.monotonic() + 60  # until the guest sleeps on SUBMIT and wants the doorbell
                while not portal.lib.portal_peer_wants_wakeup(portal._e(), RingId.SUBMIT):
                    assert time.monotonic() < deadline, "the guest never went to sleep on SUBMIT"
                    g.client.pump(0.01)
                assert portal.echo(7) == 7
                assert agent.host.portal_bells_rung > rung and agent.host.stray_bytes == 0  # the guest slept
            out = agent.output   # with its last line, written when stdin closed
            g.shutdown()
        assert b"portal: serving generation" in out and f"doorbells on {SIGNAL_PORT}".encode() in out
        assert agent.status.returncode == 0
        heard = re.search(rb"doorbells rung \d+ heard (\d+)", out)
        assert heard and int(heard.group(1)) >= 1, out  # and was woken by the signal-port byte
    finally:
        portal.close()


VSOCK_GUEST_CID = 52


@pytest.mark.skipif(not os.path.exists("/dev/vhost-vsock"),
                    reason="no /dev/vhost-vsock on this host: QEMU cannot give the guest a virtio-vsock device")
def test_doorbells_over_vsock_ports(tmp_path):
    """With a virtio-vsock device Gemini's SIGNAL and UPCALL ports are vsock ports (their numbers in the spec)
    (the machine makes no virtio-serial port for them): `gemini serve` dials both, the host
    accepts them (named_port_socket), and a call and an upcall ring them."""
    import socket
    export = make_export(tmp_path)
    with Portal.create(tmp_path / "portal.img", 64 << 20) as portal:
        d = make_dispatcher(portal, export)
        with LinuxGuest(log=lambda s: None, timeout=120, vsock_cid=VSOCK_GUEST_CID, **gemini_machine_kw(portal)) as g:
            assert not g.vm.named_ports and g.vm.has_named_port(SIGNAL_PORT)
            with GeminiLinuxAgent(g, portal, d, timeout=120) as agent:
                assert agent.host.signal.sock.family == socket.AF_VSOCK
                assert agent.host.upcall.sock.family == socket.AF_VSOCK
                for what, port in (("signal", Port.SIGNAL), ("upcall", Port.UPCALL)):
                    assert f"{what} port {int(port)} on vsock".encode() in agent.output, agent.output
                sub = g.client.exec(["wslx-call", "--subscribe", "news", "--count", "1"], timeout=120)
                sub.wait_for_output(b"subscribed news", timeout=120)
                agent.post_upcall("news", b"over-vsock")
                assert sub.wait(120).returncode == 0 and b"news 10 over-vsock" in sub.stdout
                r = g.client.run(["wslx-call", "--bench", "50", "null", "call"], timeout=300)
                assert r.returncode == 0 and b"calls 50 " in r.stdout, r.stdout
                assert agent.host.doorbells_heard + agent.host.doorbells_rung > 0 and agent.host.stray_bytes == 0
            g.shutdown()
