"""20 save/restore cycles of the Linux guest lose nothing (Portal bytes by digest and checksum,
guest RAM, a counter's every line); a guest that never answers QUIESCE gives a clear timeout
and keeps running."""
from __future__ import annotations

import subprocess
import sys

import pytest

from helpers.frame_filter import DroppingRelay
from wslx.agentx.client import AgentClient
from wslx.guests.linux import LinuxGuest
from wslx.portal import Portal
from wslx.portal.guest import PortalService, portal_machine_kw
from wslx.snapshot import QuiesceTimeout, RestoredGuest, fast_path_kw, remove, save
from wslx.snapshot.files import file_digest
from wslx.spec.agentx import MsgType
from wslx.portal.layout import sum64

pytestmark = [pytest.mark.vm, pytest.mark.slow]
QUIET = dict(log=lambda s: None)
COUNTER = ["sh", "-c", "i=0; while :; do i=$((i+1)); echo $i; sleep 0.05; done"]
CYCLES = 20


@pytest.fixture(scope="module")
def portal_built(repo_root):
    r = subprocess.run([sys.executable, "-m", "SCons", "-Q", "portal"], cwd=repo_root, capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr


def _xor(data: bytes, key: int) -> bytes:
    import numpy as np
    a = np.frombuffer(data, dtype="<u8") ^ np.uint64(key)
    return a.tobytes()


def test_twenty_cycles_lose_nothing(tmp_path, portal_built):
    portal = Portal.create(tmp_path / "portal.img", 64 << 20)
    spans: list = []        # (span, expected bytes)
    counter_out = bytearray()
    guest = LinuxGuest(**QUIET, **fast_path_kw(tmp_path / "run"), **portal_machine_kw(portal))
    g = guest.__enter__()
    try:
        counter = g.client.exec(COUNTER)
        svc = PortalService(g, portal).start()
        prev = None
        for cycle in range(1, CYCLES + 1):
            # new bytes from the host, and bytes the guest rewrites in place (TRANSFORM)
            span = portal.alloc(256 << 10)
            data = bytes((i * cycle + cycle) & 0xFF for i in range(span.length))
            portal.view(span)[:] = data
            key = 0x0101010101010101 * cycle
            portal.transform(span, key, timeout=30)
            spans.append((span, _xor(data, key)))
            assert g.client.run(["sh", "-c", f"echo {cycle} >> /tmp/cycles"]).returncode == 0
            snap = tmp_path / f"snap{cycle}"
            r = save(g, snap, portal=portal, **QUIET)
            counter_out += counter.stdout  # everything up to QUIESCE_COMPLETE; the rest waits in its pipe
            g.__exit__(None, None, None)
            # the live file, untouched since the stop, is byte for byte what the snapshot holds
            assert file_digest(portal.path) == r.manifest.files["portal.img"]["sha256"], f"cycle {cycle}"
            if prev is not None:
                remove(prev)
            prev = snap
            g = RestoredGuest(snap, portal_path=portal.path, ram="copy", timeout=60, **QUIET).__enter__()
            counter = g.adopt(counter.pid, COUNTER)
            svc.guest, svc.proc = g, g.adopt(svc.proc.pid, svc.argv)
            for s, want in spans:  # every byte of every cycle, as the guest sees it
                assert portal.checksum(s, timeout=30) == sum64(want), f"cycle {cycle}: span {s} changed"
                assert bytes(portal.view(s)) == want
        assert g.client.run(["cat", "/tmp/cycles"]).stdout == "".join(f"{i}\n" for i in range(1, CYCLES + 1)).encode()
        last = int(counter_out.split()[-1]) if counter_out.split() else 0
        counter.wait_for_output(f"\n{last + 3}\n".encode(), timeout=60)
        numbers = [int(x) for x in (counter_out + counter.stdout).split()]
        gaps = [(a, b) for a, b in zip(numbers, numbers[1:]) if b != a + 1]
        assert numbers[0] == 1 and not gaps, f"counter lines lost or repeated: {gaps[:5]}"
        svc.stop()
        g.shutdown()
    finally:
        g.__exit__(None, None, None)
        portal.close()


def test_quiesce_never_answered_times_out_and_vm_keeps_running(tmp_path):
    """The channel loses QUIESCE, so the guest never answers: save raises QuiesceTimeout saying
    nothing was saved; no snapshot directory (complete or partial) exists; the VM still runs."""
    with LinuxGuest(**QUIET, **fast_path_kw(tmp_path / "run")) as g:
        counter = g.client.exec(COUNTER)
        counter.wait_for_output(b"\n3\n", timeout=60)
        pid = counter.pid
        g.client.close()
        with DroppingRelay(g.vm.virtio_serial_socket(10), {MsgType.QUIESCE}) as relay:
            g._attach(AgentClient(relay.host_side, default_timeout=30))
            with pytest.raises(QuiesceTimeout, match=r"did not answer QUIESCE within 3(\.0)? s; nothing was saved"):
                save(g, tmp_path / "snap", quiesce_timeout=3, **QUIET)
            assert relay.dropped == [MsgType.QUIESCE]
            assert not list(tmp_path.glob("snap*"))
            assert g.vm.qmp_command("query-status")["status"] == "running"
            # the guest was never quiesced: EXEC works and the counter still counts
            g.client.ask_announce()
            g.client.wait_hello(30)
            assert g.client.run(["echo", "still here"]).stdout == b"still here\n"
            c = g.client.adopt(pid, COUNTER)
            c.stdout.clear()
            c.wait_for_output(b"\n", timeout=30)
            g.shutdown()
