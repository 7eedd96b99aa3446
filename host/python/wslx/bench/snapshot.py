"""`wslx bench snapshot --guest linux|trackb --out DIR`: snapshot save and restore against a
cold boot of the same guest, all in one run.

cold_boot_hello_ms          QEMU start to AgentX HELLO, a fresh boot (anonymous RAM, as `wslx boot`)
fast_cold_boot_hello_ms     the same with guest RAM in a shared file (the fast path's source VM)
fast_save_ms / anon_save_ms QMP stop to a complete snapshot directory (device state, files copied
                            or moved, fsync, digests, manifest, rename); the source is then ended
*_quiesce_ms                QUIESCE sent to QUIESCE_COMPLETE, before the stop
*_device_state_ms           QMP stop to state.bin written (`migrate exec:`), part of *_save_ms
fast_restore_to_resumed_ms  restore started (manifest and digest checks, Portal file placed,
anon_restore_to_resumed_ms  QEMU started with -incoming, state loaded, cont, control channel
                            reconnected, HELLO) to RESUME answered
fast_restore_full_verify_ms the same, re-hashing every file (default: files unchanged since they
                            were checked, by stat identity, are not re-hashed)
clone_start_ms              the slower of two clones started back to back from the fast snapshot
                            (the second starts while the first runs), to RESUMED
fast_snapshot_bytes, anon_snapshot_bytes   allocated bytes of the snapshot directory
fast_state_bytes, anon_state_bytes         size of state.bin
ratio[...]                  the targets: fast restore / cold boot and clone start / cold boot (<= 0.05)
"""
from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from . import Benchmark


def add_arguments(p):
    p.add_argument("--guest", choices=["linux", "trackb"], default="linux")


def _guest(kind: str, **kw):
    if kind == "trackb":
        from ..guests.trackb import TrackBGuest
        return TrackBGuest(log=lambda s: None, **kw)
    from ..guests.linux import LinuxGuest
    return LinuxGuest(log=lambda s: None, **kw)


def run_once(args, log) -> dict:
    from ..snapshot import RestoredGuest, clones, fast_path_kw, save
    from ..vmm.qemu import default_run_root
    work = Path(tempfile.mkdtemp(prefix="wslx-bench-snapshot-", dir=default_run_root()))
    quiet = dict(log=lambda s: None)
    r: dict = {}
    try:
        for path, kw in (("anon", {}), ("fast", fast_path_kw(work / "fast-run"))):
            with _guest(args.guest, **kw) as g:
                r["cold_boot_hello_ms" if path == "anon" else "fast_cold_boot_hello_ms"] = g.hello_seconds * 1000
                s = save(g, work / path, **quiet)
            r[f"{path}_save_ms"] = s.save_ms
            r[f"{path}_quiesce_ms"] = s.quiesce_ms
            r[f"{path}_device_state_ms"] = s.device_state_ms
            r[f"{path}_snapshot_bytes"] = s.bytes
            r[f"{path}_state_bytes"] = (work / path / "state.bin").stat().st_size
            log(f"  {path}: save {s.save_ms:.1f} ms, {s.bytes / 1e6:.1f} MB")
        for path in ("anon", "fast"):
            with RestoredGuest(work / path, **quiet) as g:
                r[f"{path}_restore_to_resumed_ms"] = g.timings["resumed_s"] * 1000
                g.shutdown()
        with RestoredGuest(work / "fast", full_verify=True, **quiet) as g:
            r["fast_restore_full_verify_ms"] = g.timings["resumed_s"] * 1000
            g.shutdown()
        with clones(work / "fast", 2, **quiet) as gs:
            r["clone_start_ms"] = max(g.timings["resumed_s"] for g in gs) * 1000
            for g in gs:
                g.shutdown()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    r["ratio[fast_restore/cold_boot]"] = r["fast_restore_to_resumed_ms"] / r["cold_boot_hello_ms"]
    r["ratio[clone_start/cold_boot]"] = r["clone_start_ms"] / r["cold_boot_hello_ms"]
    return r


def plot(doc: dict, png: Path) -> None:
    from .plot import grouped_runs_and_medians
    grouped_runs_and_medians(doc, [
        ("start to RESUMED / HELLO (ms, log)", ["cold_boot_hello_ms", "fast_restore_to_resumed_ms",
                                                "fast_restore_full_verify_ms", "anon_restore_to_resumed_ms",
                                                "clone_start_ms"]),
        ("save, stop to complete (ms, log)", ["fast_save_ms", "anon_save_ms", "fast_device_state_ms",
                                                "anon_device_state_ms", "fast_quiesce_ms"]),
        ("snapshot size (bytes, log)", ["fast_snapshot_bytes", "anon_snapshot_bytes", "fast_state_bytes",
                                        "anon_state_bytes"]),
    ], png, title=f"wslx bench snapshot --guest {doc['parameters'].get('guest')}", log=True)


BENCHMARK = Benchmark(
    name="snapshot",
    help="snapshot save/restore/clone (fast path and anonymous RAM) against a cold boot to HELLO",
    run_once=run_once,
    add_arguments=add_arguments,
    default_runs=5,
    units={"cold_boot_hello_ms": "ms", "fast_cold_boot_hello_ms": "ms", "fast_save_ms": "ms", "anon_save_ms": "ms",
           "fast_quiesce_ms": "ms", "anon_quiesce_ms": "ms",
           "fast_device_state_ms": "ms", "anon_device_state_ms": "ms", "fast_restore_to_resumed_ms": "ms",
           "anon_restore_to_resumed_ms": "ms", "fast_restore_full_verify_ms": "ms", "clone_start_ms": "ms",
           "fast_snapshot_bytes": "B", "anon_snapshot_bytes": "B", "fast_state_bytes": "B", "anon_state_bytes": "B"},
    plot=plot,
)
