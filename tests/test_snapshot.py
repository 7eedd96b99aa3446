"""Snapshots of the Linux guest (fast path: RAM in a shared file + x-ignore-shared): a
process EXEC'd before the save keeps counting after a restore, with no output lost; the
Portal's contents and a request in flight survive; clones diverge; bad snapshots are
refused before QEMU starts."""
from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest

from wslx.guests.linux import LinuxGuest
from wslx.portal import Portal
from wslx.portal.guest import PortalService, portal_machine_kw
from wslx.snapshot import RestoredGuest, fast_path_kw, save
from wslx.snapshot.files import file_digest
from wslx.spec.portal import Op, sum64

pytestmark = [pytest.mark.vm, pytest.mark.slow]

COUNTER = ["sh", "-c", "i=0; while :; do i=$((i+1)); echo $i; sleep 0.05; done"]
QUIET = dict(log=lambda s: None)


def _numbers(data: bytes) -> list[int]:
    return [int(x) for x in data.split()]


def _assert_contiguous(numbers: list[int], what: str) -> None:
    gaps = [(a, b) for a, b in zip(numbers, numbers[1:]) if b != a + 1]
    assert not gaps, f"{what}: counter lines lost or repeated at {gaps[:5]}"


@pytest.fixture(scope="module")
def portal_built(repo_root):
    r = subprocess.run([sys.executable, "-m", "SCons", "-Q", "portal"], cwd=repo_root, capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr


@pytest.fixture(scope="module")
def saved(tmp_path_factory, portal_built):
    """A Linux guest with a counter, a Portal holding a pattern, a stopped Portal service with a
    CHECKSUM request in flight; saved (fast path) and ended."""
    d = tmp_path_factory.mktemp("snap")
    portal = Portal.create(d / "portal.img", 64 << 20)
    with LinuxGuest(**QUIET, **fast_path_kw(d / "run"), **portal_machine_kw(portal)) as g:
        counter = g.client.exec(COUNTER)
        counter.wait_for_output(b"\n5\n", timeout=60)
        svc = PortalService(g, portal).start()
        span = portal.alloc(3 << 20)
        data = bytes((i * 131 + 7) & 0xFF for i in range(span.length))
        portal.view(span)[:] = data
        assert portal.checksum(span, timeout=30) == sum64(data)
        # the service is stopped, so the next request stays in SUBMIT across the snapshot
        assert g.client.run(["kill", "-STOP", str(svc.proc.pid)]).returncode == 0
        cookie = portal.submit(Op.CHECKSUM, span)
        result = save(g, d / "snap", portal=portal, **QUIET)
        before = _numbers(bytes(counter.stdout))
    yield dict(dir=d, snap=d / "snap", portal=portal, counter_pid=counter.pid, before=before, svc_pid=svc.proc.pid,
               span=span, data=data, cookie=cookie, result=result)
    portal.close()


def test_save_writes_a_complete_snapshot(saved):
    r = saved["result"]
    m = json.loads((saved["snap"] / "manifest.json").read_text())
    assert m["guest"] == "linux" and m["ram_mode"] == "file"
    assert set(m["files"]) == {"state.bin", "ram.img", "portal.img"}
    for name, f in m["files"].items():
        assert (saved["snap"] / name).stat().st_size == f["size"]
        assert file_digest(saved["snap"] / name) == f["sha256"], name
    assert m["kernel"]["sha256"] and m["initrd"]["sha256"] and re.match(r"\d+\.\d+", m["qemu"]["version"])
    assert "@RAM" in " ".join(m["cmdline"]) and "x-ignore-shared" not in m["cmdline"]
    # x-ignore-shared: device state only, RAM stays in ram.img
    assert m["files"]["state.bin"]["size"] < 4 << 20, m["files"]["state.bin"]
    assert not list(saved["dir"].glob("*.partial-*")), "the temporary directory was left behind"
    assert r.quiesce_ms > 0 and r.device_state_ms > 0


def test_counter_keeps_counting_and_portal_survives(saved):
    """Restore onto the host's own Portal file: the counter continues at the next number (no
    line lost), the stopped service resumes and completes the request that was in flight."""
    portal = saved["portal"]
    assert file_digest(portal.path) == json.loads((saved["snap"] / "manifest.json").read_text())["files"][
        "portal.img"]["sha256"]
    with RestoredGuest(saved["snap"], portal_path=portal.path, **QUIET) as g:
        counter = g.adopt(saved["counter_pid"], COUNTER)
        last = saved["before"][-1]
        counter.wait_for_output(f"\n{last + 20}\n".encode(), timeout=60)
        _assert_contiguous(saved["before"] + _numbers(bytes(counter.stdout)), "across the restore")
        # the Portal service process and its request in flight
        assert g.client.run(["kill", "-CONT", str(saved["svc_pid"])]).returncode == 0
        (c,) = portal.reap(1, timeout=30)
        assert c.cookie == saved["cookie"] and c.status == 0 and c.result == sum64(saved["data"])
        assert bytes(portal.view(saved["span"])) == saved["data"]
        assert portal.checksum(saved["span"], timeout=30) == sum64(saved["data"])
        # a new EXEC works after RESUME
        assert g.client.run(["echo", "alive"]).stdout == b"alive\n"
        g.shutdown()
