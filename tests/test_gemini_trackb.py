"""Gemini with the Track B kernel: the `gemini` built-in calls host services and its
built-in subscriber receives upcalls, woken by the host's byte on the UPCALL port; its
bounded queue reports overflow to the host. Each test runs twice: under QEMU, where the
SIGNAL and UPCALL ports are named virtio-serial ports, and under hvsim (Hyper-V), where
they are hv_sock streams to the spec's port numbers over VMBus (wslx.spec.gemini)."""
from __future__ import annotations

import re
import time

import pytest

from helpers.gemini_world import make_dispatcher, make_export
from wslx.gemini import Busy
from wslx.gemini.trackb import GeminiTrackBAgent, gemini_trackb_kw
from wslx.guests.trackb import TrackBGuest
from wslx.guests.trackb_hvsim import TrackBHvsimGuest
from wslx.portal import Portal
from wslx.spec.gemini import UPCALL_QUEUE_DEPTH, VERSION, VIRTIO_SERIAL_NAMES, Port

pytestmark = [pytest.mark.vm, pytest.mark.slow]


@pytest.fixture(scope="module", params=["qemu", "hvsim"])
def trackb(request, tmp_path_factory):
    d0 = tmp_path_factory.mktemp("gemini-trackb")
    export = make_export(d0, blob_bytes=200_000)
    portal = Portal.create(d0 / "portal.img", 64 << 20)
    d = make_dispatcher(portal, export)
    guest = TrackBHvsimGuest if request.param == "hvsim" else TrackBGuest
    try:
        with guest(log=lambda s: None, timeout=120, **gemini_trackb_kw(portal)) as g:
            with GeminiTrackBAgent(g, portal, d, timeout=120, subscribe="news") as agent:
                yield g, d, agent, export
            g.shutdown()
    finally:
        portal.close()


def test_doorbells_ride_the_transports_ports(trackb):
    """QEMU: the host sides of the two ports are virtio-serial chardevs. hvsim: the machine has no
    virtio-serial Gemini port; the kernel dialled both hv_sock ports (the spec's numbers) and the model
    bridged each connection to the host listener the agent's sockets were accepted from."""
    g, d, agent, _ = trackb
    vm = g.vm
    sockets = {Port.SIGNAL: agent.host.signal.sock, Port.UPCALL: agent.host.upcall.sock}
    for port, sock in sockets.items():
        if isinstance(g, TrackBHvsimGuest):
            assert VIRTIO_SERIAL_NAMES[port] not in vm.named_ports
            assert sock.getsockname().endswith(f"vsock_{int(port)}"), sock.getsockname()
            assert f"guest connection to host port {int(port)} bridged" in vm.model_log.read_text()
        else:
            assert sock.getpeername().endswith(f"port-{VIRTIO_SERIAL_NAMES[port]}.sock"), sock.getpeername()


def test_calls_from_the_track_b_kernel(trackb):
    g, d, agent, export = trackb
    r = g.client.run(["gemini", "call", "fs", "read", "hello.txt"], timeout=120)
    assert r.returncode == 0 and r.stdout == b"hello from the host\n", r
    r = g.client.run(["gemini", "call", "fs", "read", "sub/blob.bin"], timeout=120)
    assert r.returncode == 0 and r.stdout == (export / "sub" / "blob.bin").read_bytes()
    r = g.client.run(["gemini", "call", "exec", "run", "echo", "hi"], timeout=120)
    assert r.returncode == 0 and r.stdout == b"hi\n"
    assert d.version == VERSION and f"version {VERSION} (host status OK".encode() in agent.output
    for argv, err, text in ((["fs", "read", "../secret"], b"PERM", b"'..' components"),
                            (["no", "such"], b"NOSYS", b"no service no.such"),
                            (["fs", "read", "x"], b"NOENT", b"no such file")):
        r = g.client.run(["gemini", "call", *argv], timeout=120)
        assert r.returncode == 1 and err in r.stderr and text in r.stderr, r   # version 2: the host's text
    r = g.client.run(["gemini", "bench", "100", "0", "null", "call"], timeout=300)
    assert r.returncode == 0 and b"calls 100 " in r.stdout and b"status OK" in r.stdout, r


def _wait_lines(agent, n: int, timeout: float) -> list[str]:
    deadline = time.monotonic() + timeout
    while True:
        lines = agent.output.decode().splitlines()[1:]
        if len(lines) >= n or time.monotonic() > deadline:
            return lines
        agent.guest.client.pump(0.05)


def _settle(g, d, timeout: float = 60) -> None:
    """Until the guest has answered every upcall (UPCALL_DONE taken by the host loop)."""
    deadline = time.monotonic() + timeout
    while d.upcalls_outstanding:
        assert time.monotonic() < deadline, f"{d.upcalls_outstanding} upcalls unanswered"
        g.client.pump(0.05)


def test_upcalls_reach_the_built_in_subscriber_and_overflow_is_reported(trackb):
    g, d, agent, _ = trackb
    for i in range(3):
        agent.post_upcall("news", f"item-{i}".encode())
    assert _wait_lines(agent, 3, 60)[:3] == [f"news 6 item-{i}" for i in range(3)]
    _settle(g, d)
    base = (d.stats.upcalls_delivered, d.stats.upcalls_dropped, d.stats.upcalls_unsubscribed)
    agent.post_upcall("weather", b"x")          # nobody subscribed: NOENT
    agent.post_upcall("news", b"y" * 5000)      # larger than the built-in subscriber holds: NOSPC
    sent = 2
    for i in range(3 * UPCALL_QUEUE_DEPTH):     # faster than one line per loop step: some are dropped
        try:
            agent.post_upcall("news", b"z")
            sent += 1
        except Busy:
            pass
    _settle(g, d)
    delivered = d.stats.upcalls_delivered - base[0]
    dropped = d.stats.upcalls_dropped - base[1]
    assert d.stats.upcalls_unsubscribed - base[2] == 1
    assert delivered + dropped + 1 == sent and dropped >= 1


def test_the_kernel_rings_the_signal_port_when_the_host_sleeps(trackb):
    """Track B's virtio-console driver opens the SIGNAL port by name beside the AgentX port
    (MULTIPORT) and rings EVENT there after a submit while the host loop sleeps on EVENT."""
    g, d, agent, _ = trackb
    assert agent.host.signal is not None
    before = agent.host.doorbells_heard
    deadline = time.monotonic() + 120
    while agent.host.doorbells_heard == before:    # each EXEC outlasts the host's 5 ms spin: it sleeps
        assert time.monotonic() < deadline, "no doorbell from the Track B kernel"
        r = g.client.run(["gemini", "call", "null", "call"], timeout=120)
        assert r.returncode == 0, r
    assert agent.host.stray_bytes == 0



STAT = re.compile(rb"gemini: upcall doorbells heard (\d+) polls woken (\d+) \(upcalls (\d+)\) idle (\d+); "
                  rb"upcalls (\d+) dropped (\d+)\n")


def _stat(g) -> dict:
    r = g.client.run(["gemini", "stat"], timeout=120)
    m = STAT.fullmatch(r.stdout)
    assert r.returncode == 0 and m, r
    return dict(zip(("heard", "woken", "woken_upcalls", "idle", "upcalls", "dropped"), map(int, m.groups())))


def test_a_host_upcall_rings_the_upcall_port(trackb):
    """The kernel's virtio-console driver opens the UPCALL port beside SIGNAL and AgentX's;
    `gemini serve`, with no call in flight, sleeps on it (want_wakeup on UPCALL). Each upcall
    makes the host ring the port (its counter `rung`), the kernel hears the byte and polls:
    every byte the host rang is heard in the guest, and the upcalls were taken by polls a
    doorbell caused (serve also polls every 20 ms without one: doorbells are hints)."""
    g, d, agent, _ = trackb
    assert agent.host.upcall is not None
    assert b"Track B, upcall port)" in agent.output, "serve saw the UPCALL port's host side"
    _settle(g, d)
    before, rung = _stat(g), agent.host.doorbells_rung
    lines = len(_wait_lines(agent, 0, 0))
    for i in range(5):                           # one at a time: serve is asleep again before each
        agent.post_upcall("news", f"bell-{i}".encode())
        got = _wait_lines(agent, lines + i + 1, 60)
        assert got[lines + i:] == [f"news 6 bell-{i}"], got[lines:]
        _settle(g, d)
    assert agent.host.doorbells_rung - rung >= 5, "the host rang UPCALL for each upcall"
    deadline = time.monotonic() + 60
    while (after := _stat(g))["heard"] != agent.host.doorbells_rung:   # the last bytes may be on the way
        assert time.monotonic() < deadline, (after, agent.host.doorbells_rung)
        g.client.pump(0.05)
    assert after["heard"] - before["heard"] >= 5
    assert after["woken"] - before["woken"] >= 5
    assert after["upcalls"] - before["upcalls"] == 5 and after["dropped"] == before["dropped"]
    assert after["woken_upcalls"] - before["woken_upcalls"] >= 1, "an upcall taken on the doorbell's poll"


def test_the_kernel_redials_the_hv_sock_ports_for_the_next_host_agent(tmp_path):
    """Under hvsim an agent's end closes both doorbell streams; the kernel notices on its idle path
    (nobody reads the ports between agents) and dials again, so the next agent accepts fresh ones."""
    export = make_export(tmp_path)
    with Portal.create(tmp_path / "portal.img", 64 << 20) as portal:
        d = make_dispatcher(portal, export)
        with TrackBHvsimGuest(log=lambda s: None, timeout=120, **gemini_trackb_kw(portal)) as g:
            for i in range(2):
                with GeminiTrackBAgent(g, portal, d, timeout=60, subscribe="news") as agent:
                    assert b"Track B, upcall port)" in agent.output
                    r = g.client.run(["gemini", "call", "fs", "read", "hello.txt"], timeout=120)
                    assert r.returncode == 0 and r.stdout == b"hello from the host\n", r
                    agent.post_upcall("news", f"round-{i}".encode())
                    assert _wait_lines(agent, 1, 60)[:1] == [f"news 7 round-{i}"]
            console = g.vm.read_console()
            g.shutdown()
    for port in (int(Port.SIGNAL), int(Port.UPCALL)):
        assert f"hvsock: port {port} stream closed (peer closed)" in console
        assert re.search(rf"hvsock: port {port} open on channel \d+ \(connection 2\)", console), console[-2000:]
