"""Snapshots of the Linux guest (fast path: RAM in a shared file + x-ignore-shared): a
process EXEC'd before the save keeps counting after a restore, with no output lost; the
Portal's contents and a request in flight survive; clones diverge; bad snapshots are
refused before QEMU starts."""
from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from wslx.guests.linux import LinuxGuest
from wslx.portal import Portal
from wslx.portal.guest import PortalService, portal_machine_kw
from wslx.snapshot import RestoredGuest, fast_path_kw, save
from wslx.snapshot.files import file_digest
from wslx.portal.layout import sum64
from wslx.spec.agentx import Stream
from wslx.spec.portal import Op

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
        had = {Stream.STDOUT: len(counter.stdout)}  # what this host has: a restored agent sends the rest
    yield dict(dir=d, snap=d / "snap", portal=portal, counter_pid=counter.pid, before=before, had=had, svc_pid=svc.proc.pid,
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
        counter = g.adopt(saved["counter_pid"], COUNTER, received=saved["had"])
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
        # the restore reset virtio-pmem: QUIESCE answers (no flush of the reset device) instead of hanging
        q = g.client.quiesce(timeout=30)
        assert q["flushed_regions"] == 0
        g.vm.wait_console(r"region\d+: device reset by a snapshot restore; not flushed", timeout=10)
        g.client.resume()
        g.shutdown()


# ---- refusals: checked before QEMU starts ------------------------------------------------------


def _copy_snapshot(src, dst, *, skip=(), copy=()):
    """A copy of a snapshot: hard links (the files are never written) except `copy` (real copies,
    to be damaged) and `skip` (left out)."""
    import os
    import shutil
    dst.mkdir()
    for f in src.iterdir():
        if f.name in skip:
            continue
        if f.name in copy or f.name.endswith(".json"):
            shutil.copyfile(f, dst / f.name)
        else:
            os.link(f, dst / f.name)
    return dst


def _refused(snap, tmp_path, match, kind=None):
    from wslx.snapshot import SnapshotInvalid
    run = tmp_path / "run"
    with pytest.raises(kind or SnapshotInvalid, match=match) as e:
        with RestoredGuest(snap, run_dir=run, **QUIET):
            pass
    assert not (run / "cmdline.txt").exists(), "QEMU was started for a refused snapshot"
    return e.value


def _rewrite_manifest(snap, change):
    m = json.loads((snap / "manifest.json").read_text())
    change(m)
    (snap / "manifest.json").write_text(json.dumps(m))


def test_corrupted_file_is_refused(saved, tmp_path):
    snap = _copy_snapshot(saved["snap"], tmp_path / "s", copy=("state.bin",))
    with open(snap / "state.bin", "r+b") as f:
        f.seek(1000)
        b = f.read(1)
        f.seek(1000)
        f.write(bytes([b[0] ^ 0x40]))
    _refused(snap, tmp_path, r"state\.bin: digest .* \(corrupted\)")
    r = subprocess.run([sys.executable, "-m", "wslx.cli", "snapshot", "verify", str(snap)], capture_output=True,
                       text=True)
    assert r.returncode == 1 and "state.bin" in r.stderr and "corrupted" in r.stderr


def test_truncated_file_is_refused(saved, tmp_path):
    snap = _copy_snapshot(saved["snap"], tmp_path / "s", copy=("portal.img",))
    with open(snap / "portal.img", "r+b") as f:
        f.truncate(1 << 20)
    _refused(snap, tmp_path, r"portal\.img: 1048576 bytes, the manifest says \d+ \(truncated")


def test_missing_file_is_refused(saved, tmp_path):
    snap = _copy_snapshot(saved["snap"], tmp_path / "s", skip=("ram.img",))
    _refused(snap, tmp_path, r"ram\.img: missing")


def test_manifest_from_another_qemu_is_refused(saved, tmp_path):
    from wslx.snapshot import SnapshotMismatch
    snap = _copy_snapshot(saved["snap"], tmp_path / "s")
    _rewrite_manifest(snap, lambda m: m["qemu"].update(version="6.2.0"))
    (snap / "verified.json").unlink()
    _refused(snap, tmp_path, r"made by QEMU 6\.2\.0, this host runs QEMU", SnapshotMismatch)


def test_manifest_from_another_kernel_is_refused(saved, tmp_path):
    from wslx.snapshot import SnapshotMismatch
    snap = _copy_snapshot(saved["snap"], tmp_path / "s")
    _rewrite_manifest(snap, lambda m: m["kernel"].update(sha256="0" * 64))
    _refused(snap, tmp_path, r"kernel /\S+ differs from the one the snapshot was made with", SnapshotMismatch)


def test_malformed_or_foreign_manifest_is_refused(saved, tmp_path):
    snap = _copy_snapshot(saved["snap"], tmp_path / "s")
    _rewrite_manifest(snap, lambda m: m.update(format="something-else"))
    _refused(snap, tmp_path / "a", r"not a wslx-snapshot manifest")
    (snap / "manifest.json").write_text("{ not json")
    _refused(snap, tmp_path / "b", r"not a readable manifest")


def test_other_configuration_is_refused(saved, tmp_path):
    from wslx.snapshot import SnapshotMismatch
    snap = _copy_snapshot(saved["snap"], tmp_path / "s")
    _rewrite_manifest(snap, lambda m: m["machine"].update(memory=256))
    _refused(snap, tmp_path, r"would start QEMU differently", SnapshotMismatch)


def _cli(*args, env=None, timeout=300):
    import os
    return subprocess.run([sys.executable, "-m", "wslx.cli", "snapshot", *map(str, args)], capture_output=True,
                          text=True, timeout=timeout, env={**os.environ, **(env or {})})


def test_save_killed_half_way_leaves_nothing_complete(tmp_path):
    """The save process is killed after the device state is written (QEMU stopped, files half
    placed): `list` shows the leftover as incomplete only, restore refuses it, rm removes it."""
    r = _cli("save", "--guest", "linux", tmp_path / "snap", env={"WSLX_SNAPSHOT_DIE_AT": "state"})
    assert r.returncode == -9, r.stderr[-2000:]
    assert not (tmp_path / "snap").exists()
    (partial,) = tmp_path.glob("snap.partial-*")
    assert (partial / "state.bin").exists() and not (partial / "manifest.json").exists()
    out = _cli("list", tmp_path).stdout
    assert "complete " not in out.replace("incomplete", "") and "incomplete" in out, out
    _refused(partial, tmp_path, r"incomplete save")
    _refused(tmp_path / "snap", tmp_path, r"no snapshot at")
    assert _cli("rm", partial).returncode == 0 and not partial.exists()


def test_cli_list_verify_restore_rm(saved, tmp_path):
    snap = _copy_snapshot(saved["snap"], tmp_path / "s")
    out = _cli("list", tmp_path).stdout
    assert re.search(r"^complete\s+linux\s", out, re.M), out
    assert _cli("verify", snap).returncode == 0
    r = _cli("restore", snap, "--", "sh", "-c", "echo restored; exit 7")
    assert r.returncode == 7 and r.stdout == "restored\n", r.stderr[-2000:]
    r = _cli("rm", snap)
    assert r.returncode == 0 and not snap.exists()
    assert _cli("rm", tmp_path).returncode == 1  # not a snapshot: refused, kept
    assert tmp_path.exists()


# ---- clones -------------------------------------------------------------------------------------


def test_two_clones_run_side_by_side_and_diverge(saved, tmp_path):
    """Two clones of one snapshot at once: each has copy-on-write RAM over the snapshot's RAM file
    and its own Portal file; what one writes (guest RAM, the Portal) the other never sees, and the
    snapshot itself is not written."""
    from wslx.snapshot import clones
    snap = _copy_snapshot(saved["snap"], tmp_path / "s")
    ram_digest = file_digest(snap / "ram.img")
    portal_path = {}
    with clones(snap, 2, **QUIET) as (a, b):
        assert a.vm.is_running() and b.vm.is_running() and a.vm.pmem_path != b.vm.pmem_path
        assert "share=off" in " ".join(a.vm.cmdline) and str(snap / "ram.img") in " ".join(a.vm.cmdline)
        for i, g in enumerate((a, b)):
            assert g.client.run(["sh", "-c", f"echo clone{i} > /tmp/who"]).returncode == 0
        for i, g in enumerate((a, b)):
            assert g.client.run(["cat", "/tmp/who"]).stdout == f"clone{i}\n".encode()
        # both counters go on from the saved value, each on its own
        last = saved["before"][-1]
        for g in (a, b):
            c = g.adopt(saved["counter_pid"], COUNTER, received=saved["had"])
            c.wait_for_output(f"\n{last + 5}\n".encode(), timeout=60)
            _assert_contiguous(saved["before"] + _numbers(bytes(c.stdout)), "in a clone")
        # the Portal: each clone's own file, starting from the saved contents
        from wslx.spec.portal import WINDOW_OFFSET
        at = WINDOW_OFFSET + saved["span"].offset
        for i, g in enumerate((a, b)):
            portal_path[i] = g.vm.pmem_path
            with open(g.vm.pmem_path, "r+b") as f:
                f.seek(at)
                assert f.read(64) == saved["data"][:64]
                f.seek(at)
                f.write(f"clone{i}".encode())
        a.shutdown()
        b.shutdown()
    for i in (0, 1):
        with open(portal_path[i], "rb") as f:
            f.seek(at)
            assert f.read(6) == f"clone{i}".encode()
    assert file_digest(snap / "ram.img") == ram_digest, "a clone wrote into the snapshot's RAM file"


def test_cli_save_vm_of_a_boot_stay_guest(tmp_path):
    """`wslx boot linux --stay` leaves its guest to `wslx snapshot save --vm RUNDIR`: once with
    --keep-running on the anonymous-RAM path (the guest goes on), once on the fast path (the
    guest stops and `boot` ends by itself); both snapshots restore."""
    import os
    import signal
    boot = subprocess.Popen([sys.executable, "-m", "wslx.cli", "boot", "linux", "--stay"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=dict(os.environ))
    try:
        import queue
        import threading
        lines: queue.Queue = queue.Queue()
        for stream in (boot.stdout, boot.stderr):
            threading.Thread(target=lambda f=stream: [lines.put(x) for x in iter(f.readline, "")] and None,
                             daemon=True).start()
        run_dir, seen = None, ""
        while "Ctrl-C" not in seen or run_dir is None:  # stdout and stderr arrive in any order
            try:
                line = lines.get(timeout=180)
            except queue.Empty:
                pytest.fail(f"boot --stay did not come up within 180 s: {seen[-2000:]}")
            seen += line
            if line.startswith("run dir:"):
                run_dir = line.split(":", 1)[1].strip()
        assert run_dir, seen
        r = _cli("save", "--vm", run_dir, "--keep-running", "--anonymous-ram", tmp_path / "anon")
        assert r.returncode == 0, r.stderr[-2000:]
        assert json.loads((tmp_path / "anon" / "manifest.json").read_text())["ram_mode"] == "stream"
        assert boot.poll() is None, "the guest should keep running"
        r = _cli("save", "--vm", run_dir, tmp_path / "fast")
        assert r.returncode == 0, r.stderr[-2000:]
        assert boot.wait(60) == 0
        assert not (Path(run_dir) / "ram.img").exists()
        for snap in ("anon", "fast"):
            r = _cli("restore", tmp_path / snap, "--", "echo", snap)
            assert r.returncode == 0 and r.stdout == f"{snap}\n", r.stderr[-2000:]
    finally:
        if boot.poll() is None:
            boot.send_signal(signal.SIGINT)
            try:
                boot.wait(30)
            except subprocess.TimeoutExpired:
                boot.kill()
                boot.wait(10)


def test_state_qemu_cannot_load_is_reported_with_qemus_words(saved, tmp_path):
    """A state.bin that passes the digest check (its manifest entry rewritten to match) but that
    QEMU cannot load: a MigrationError carrying QEMU's own message, and QEMU ended."""
    from wslx.vmm.errors import MigrationError
    snap = _copy_snapshot(saved["snap"], tmp_path / "s", copy=("state.bin",))
    data = bytearray((snap / "state.bin").read_bytes())
    data[len(data) // 2:] = bytes(len(data) - len(data) // 2)
    (snap / "state.bin").write_bytes(bytes(data))
    _rewrite_manifest(snap, lambda m: m["files"]["state.bin"].update(sha256=file_digest(snap / "state.bin")))
    g = RestoredGuest(snap, run_dir=tmp_path / "run", **QUIET)
    with pytest.raises(MigrationError, match=r"loading VM state from .*state\.bin.*\n(.|\n)*QEMU said:") as e:
        g.__enter__()
    assert g.vm.proc.poll() is not None, "QEMU left running after a failed load"
    assert "load of migration failed" in e.value.message
