"""`wslx bench portal --guest trackb`: the Portal bench (bench/portal.py) against
the Track B kernel. Same metrics and names; what differs, because the Track B
agent has no STDIN:

guest_memcpy_gbps   `portal memcpy`: the kernel's memcpy (8 bytes a step) between two
                    buffers in the 2 MiB of pmem below the Portal window (960 KiB, best of 20)
guest_inplace_xor_gbps  the same command: TRANSFORM's loop (portal_xor64) in place there
control_bulk_gbps   `head -c N /dev/zero` in the guest: N bytes guest -> host through
                    AgentX STDIO over the serial line (one way; Linux's `cat` goes both ways)
service             `portal serve` (TrackBPortalService): the guest polls SUBMIT in the
                    agent loop, so there is no host -> guest doorbell to ring

Everything else (metrics, checks of the transformed bytes) follows bench/portal.py's
_measure. Private module (leading underscore): not a benchmark of its own.
"""
from __future__ import annotations

import os
import re
import subprocess
import tempfile
import time
from pathlib import Path


def _measure(g, portal, args, log) -> dict:
    import numpy as np

    from ..portal.trackb import TrackBPortalService
    from ..spec.portal import Op
    out = {}
    client = g.client
    r = client.run(["portal", "memcpy"], timeout=120)
    m = re.search(rb"memcpy_gbps ([0-9.]+) inplace_xor_gbps ([0-9.]+)", r.stdout)
    assert r.returncode == 0 and m, f"guest memcpy failed: {r.stdout!r} {r.stderr!r}"
    out["guest_memcpy_gbps"] = float(m.group(1))
    out["guest_inplace_xor_gbps"] = float(m.group(2))
    client.ping(b"warm")
    t0 = time.perf_counter()
    for _ in range(args.pings):
        client.ping(b"x" * 16)
    out["control_roundtrips_per_s"] = args.pings / (time.perf_counter() - t0)
    out["control_rtt_us"] = 1e6 / out["control_roundtrips_per_s"]
    n = args.control_mib << 20
    t0 = time.perf_counter()
    r = client.run(["head", "-c", str(n), "/dev/zero"], timeout=600)
    dt = time.perf_counter() - t0
    assert r.returncode == 0 and r.stdout == bytes(n), "head -c did not return the bytes"
    out["control_bulk_gbps"] = n / dt / 1e9
    with TrackBPortalService(g, portal) as svc:
        span = portal.alloc(args.bulk_mib << 20)
        view = portal.view(span)
        view[:] = bytes(span.length)
        portal.transform(span, 0x0101010101010101, timeout=60)
        reps, t0 = 0, time.perf_counter()
        while reps < 3 or time.perf_counter() - t0 < 1.0:
            portal.call(Op.TRANSFORM, span, 0x0101010101010101 * ((reps * 37 + 11) & 0xFF), timeout=60)
            reps += 1
        out["portal_bulk_gbps"] = reps * span.length / (time.perf_counter() - t0) / 1e9
        want = 1  # the guest transformed every byte every time: 1 ^ every key
        for r in range(reps):
            want ^= (r * 37 + 11) & 0xFF
        got = np.frombuffer(view, np.uint8)
        assert (got == want).all(), f"bulk: {np.count_nonzero(got != want)} bytes not as transformed"
        src = np.random.default_rng(1).integers(0, 256, span.length, np.uint8)
        reps, t0 = 0, time.perf_counter()
        while reps < 3 or time.perf_counter() - t0 < 1.0:
            view[:] = src.data  # copy in
            portal.call(Op.TRANSFORM, span, 0x5A5A5A5A5A5A5A5A, timeout=60)
            back = bytes(view)  # copy out
            reps += 1
        out["portal_bulk_host_copy_gbps"] = reps * span.length / (time.perf_counter() - t0) / 1e9
        assert back == (src ^ np.uint8(0x5A)).tobytes(), "bulk with host copies: wrong bytes"
        del got, view
        portal.free(span)
        portal.pingpong(1000)
        t0 = time.perf_counter()
        portal.pingpong(args.roundtrips, timeout=120)
        out["portal_roundtrips_per_s"] = args.roundtrips / (time.perf_counter() - t0)
        out["portal_rtt_us"] = 1e6 / out["portal_roundtrips_per_s"]
        k = max(1, args.roundtrips // 10)
        t0 = time.perf_counter()
        for i in range(k):
            portal.echo(i)
        out["portal_py_roundtrips_per_s"] = k / (time.perf_counter() - t0)
        portal.stream(100_000, args.batch)
        t0 = time.perf_counter()
        portal.stream(args.messages, args.batch, timeout=300)
        out["portal_msgs_per_s"] = args.messages / (time.perf_counter() - t0)
        st = svc.stop()
        assert st is not None and st.code == 15, f"the service did not end on SIGTERM: {st}"
    out["host_loadavg_1m"] = os.getloadavg()[0]
    out["host_qemu_processes"] = float(len(subprocess.run(["pgrep", "qemu-system"], capture_output=True,
                                                          text=True).stdout.split()))
    out["bulk_vs_control_x"] = out["portal_bulk_gbps"] / out["control_bulk_gbps"]
    out["roundtrips_vs_control_x"] = out["portal_roundtrips_per_s"] / out["control_roundtrips_per_s"]
    out["bulk_vs_memcpy_x"] = out["portal_bulk_gbps"] / out["guest_memcpy_gbps"]
    out["bulk_vs_inplace_x"] = out["portal_bulk_gbps"] / out["guest_inplace_xor_gbps"]
    return out


def run_once_trackb(args, log) -> dict:
    from ..guests.trackb import TrackBGuest
    from ..portal import Portal
    from ..portal.trackb import trackb_portal_kw
    from ..vmm.qemu import default_run_root
    with tempfile.TemporaryDirectory(prefix="wslx-bench-portal-", dir=default_run_root()) as d:
        size = max(64 << 20, ((args.bulk_mib + 8) << 20) * 2)
        with Portal.create(Path(d) / "portal.img", size) as portal:
            with TrackBGuest(args.kernel, log=lambda s: None, **trackb_portal_kw(portal)) as g:
                out = _measure(g, portal, args, log)
                g.shutdown()
    return out
