"""Snapshots of the Track B guest: a built-in keeps running across a restore, the Portal's
contents and a request submitted while the guest was quiesced survive and complete, and the
kernel sets virtio-pmem up again after the restore reset it (QUIESCE flushes again)."""
from __future__ import annotations

import subprocess
import sys

import pytest

from wslx.guests.trackb import TrackBGuest
from wslx.portal import Portal
from wslx.portal.trackb import TrackBPortalService, trackb_portal_kw
from wslx.snapshot import RestoredGuest, clones, fast_path_kw, save
from wslx.portal.layout import sum64
from wslx.spec.agentx import Signal
from wslx.spec.portal import WINDOW_OFFSET, Op

pytestmark = [pytest.mark.vm, pytest.mark.slow]
QUIET = dict(log=lambda s: None)


@pytest.fixture(scope="module")
def built(repo_root):
    r = subprocess.run([sys.executable, "-m", "SCons", "-Q", "trackb", "portal"], cwd=repo_root, capture_output=True,
                       text=True)
    assert r.returncode == 0, r.stdout + r.stderr


def test_trackb_save_restore_resave(built, tmp_path):
    portal = Portal.create(tmp_path / "portal.img", 16 << 20)
    try:
        with TrackBGuest(**QUIET, **fast_path_kw(tmp_path / "run"), **trackb_portal_kw(portal)) as g:
            sleeper = g.client.exec(["sleep", "600"])
            svc = TrackBPortalService(g, portal).start()
            span = portal.alloc(1 << 20)
            data = bytes((i * 37 + 11) & 0xFF for i in range(span.length))
            portal.view(span)[:] = data
            assert portal.checksum(span, timeout=30) == sum64(data)
            cookies = []
            # submitted after QUIESCE_COMPLETE: the paused service leaves it in SUBMIT, so it is
            # in flight across the snapshot
            r = save(g, tmp_path / "snap", portal=portal, **QUIET,
                     on_stage=lambda s: cookies.append(portal.submit(Op.CHECKSUM, span)) if s == "quiesced" else None)
            assert r.manifest.guest == "trackb" and r.manifest.ram_mode == "file"
        with RestoredGuest(tmp_path / "snap", portal_path=portal.path, ram="copy", **QUIET) as g:
            svc.guest, svc.proc = g, g.adopt(svc.proc.pid, svc.argv)
            (c,) = portal.reap(1, timeout=30)
            assert c.cookie == cookies[0] and c.status == 0 and c.result == sum64(data)
            assert bytes(portal.view(span)) == data
            # virtio-pmem was reset by the restore: the kernel sets it up again and QUIESCE flushes
            q = g.client.quiesce(timeout=30)
            assert q["flushed_regions"] == 1
            g.vm.wait_console(r"pmem: device was reset \(snapshot restore\); set up again", timeout=10)
            g.client.resume()
            assert portal.checksum(span, timeout=30) == sum64(data)
            # the control channel reconnects on the restored virtio-console as on a booted one
            c = g.reconnect(g.client)
            c.wait_new_hello(30)
            svc.proc = g.adopt(svc.proc.pid, svc.argv)
            # and the restored guest is saved again (its RAM copy is shared, so the fast path)
            r2 = save(g, tmp_path / "snap2", portal=portal, keep_running=True, **QUIET)
            assert r2.manifest.ram_mode == "file"
            with open(tmp_path / "snap2" / "portal.img", "rb") as f:
                f.seek(WINDOW_OFFSET + span.offset)
                assert f.read(span.length) == data
            # the sleep EXEC'd before the first snapshot is still there; SIGTERM ends it and its EXIT arrives
            s = g.adopt(sleeper.pid)
            g.client.signal(sleeper.pid, Signal.SIGTERM)
            assert s.wait(30).signal == 15
            svc.stop()
            g.shutdown()
        with clones(tmp_path / "snap", 2, **QUIET) as (a, b):  # side by side, own Portal files
            assert a.vm.pmem_path != b.vm.pmem_path
            assert [g.client.run(["echo", f"clone{i}"]).stdout for i, g in enumerate((a, b))] == [b"clone0\n",
                                                                                                   b"clone1\n"]
        with RestoredGuest(tmp_path / "snap2", **QUIET) as g:
            assert g.client.run(["echo", "second"]).stdout == b"second\n"
            with open(g.vm.pmem_path, "rb") as f:  # its own copy of the Portal, contents intact
                f.seek(WINDOW_OFFSET + span.offset)
                assert f.read(span.length) == data
            g.shutdown()
    finally:
        portal.close()
