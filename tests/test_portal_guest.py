"""Portal with a booted Linux guest: device-dax coherence both ways, RPCs served
by `/init portal serve`, bad spans, re-initialisation, QUIESCE, pinned address."""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from helpers.portal_checks import forged_span_faults
from wslx.guests.linux import LinuxGuest
from wslx.portal import Portal, PortalRemoteError
from wslx.portal.guest import PortalService, portal_machine_kw
from wslx.portal.layout import sum64
from wslx.spec import portal as spec

pytestmark = [pytest.mark.vm, pytest.mark.slow]


@pytest.fixture(scope="module")
def booted(tmp_path_factory, repo_root):
    r = subprocess.run([sys.executable, "-m", "SCons", "-Q", "portal"], cwd=repo_root, capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    p = Portal.create(tmp_path_factory.mktemp("portal") / "portal.img", 64 << 20)
    with LinuxGuest(log=lambda s: None, **portal_machine_kw(p)) as g:
        yield g, p
        g.shutdown()
    p.close()


def test_region_sits_at_the_pinned_guest_physical_address(booted):
    g, p = booted
    r = g.client.run(["/init", "portal", "info"], timeout=60)
    assert r.returncode == 0, r.stdout
    assert b"header ok" in r.stdout and f"generation {p.generation}".encode() in r.stdout
    res = g.client.run(["cat", "/sys/bus/nd/devices/region0/resource"]).stdout.strip()
    assert int(res, 16) == spec.DEFAULT_PMEM_GPA


def test_coherence_both_ways_while_spinning(booted):
    """The guest spins on the host's probe line and answers on its own; the host
    spins on the guest's. No re-open or re-read: one mapping each, 200 rounds."""
    g, p = booted
    p.probe_write(0)
    proc = g.client.exec(["/init", "portal", "probe", "--rounds", "200", "--timeout-ms", "10000"])
    proc.wait_for_output(b"probe ready", timeout=30)
    for r in range(1, 201):
        p.probe_write(r)           # host -> guest: the guest is spinning on this line
        p.probe_wait(r, timeout=10)  # guest -> host: we spin on the guest's line
    st = proc.wait(30)
    assert st.returncode == 0, proc.stdout
    assert b"probe done 200 rounds" in proc.stdout


def test_echo_checksum_transform_over_the_linux_service(booted):
    g, p = booted
    with PortalService(g, p) as svc:
        assert p.echo(0xFEEDFACECAFEBEEF) == 0xFEEDFACECAFEBEEF
        span = p.alloc((1 << 20) + 5)
        data = bytes((i * 131 + 7) & 0xFF for i in range(span.length))
        p.view(span)[:] = data
        assert p.checksum(span) == sum64(data)
        key = 0xA5A5_0F0F_3C3C_9696
        p.transform(span, key)
        # every byte, against an XOR computed here (numpy), not by the C core
        want = np.frombuffer(data, np.uint8) ^ np.resize(np.frombuffer(key.to_bytes(8, "little"), np.uint8), len(data))
        got = bytes(p.view(span))
        assert got == want.tobytes()
        assert sum64(got) == p.checksum(span)  # the guest sees what it wrote, in place
        # a forged span outside the arena: a typed remote error, and the service carries on
        p._inflight.clear()
        forged_span_faults(p, span.generation)
        with pytest.raises(PortalRemoteError):
            p.call(9)
        assert p.echo(1) == 1
        assert p.stream(20000, batch=256) == 20000
        assert svc.stop() == 0


def test_service_reattaches_after_the_host_reinitialises(booted):
    g, p = booted
    with PortalService(g, p) as svc:
        assert p.echo(5) == 5
        old = p.generation
        p.initialise()  # the old generation's header is gone: the guest detaches, then attaches anew
        p.wait_guest(30)
        assert p.generation != old and p.echo(6) == 6
        svc.proc.wait_for_output(b"detached from generation", timeout=10)


def test_quiesce_with_a_devdax_portal(booted):
    """What the guest wrote through its device-dax mapping is in the host's file at once (a
    plain read, before any fsync): the mapping is the file's shared pages. QUIESCE does not
    claim to have flushed the device-dax region: Linux 6.1 cannot send virtio-pmem's flush
    for it (see portal_quiesce_flush); the host fsyncs the file itself (Portal.flush)."""
    g, p = booted
    with PortalService(g, p):
        span = p.alloc(4096)
        p.view(span)[:] = bytes(4096)
        p.transform(span, 0x5757575757575757)
        with open(p.path, "rb") as f:  # through the host page cache, no flush yet
            f.seek(spec.WINDOW_OFFSET + span.offset)
            assert f.read(4096) == b"W" * 4096
        q = g.client.quiesce()
        assert q["flushed_regions"] == 0, q  # no raw /dev/pmem, and the devdax one is not flushable
        p.flush()
        g.client.resume()
