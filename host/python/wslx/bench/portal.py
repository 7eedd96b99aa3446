"""`wslx bench portal --guest linux`: Portal against the AgentX control channel,
side by side in one booted guest per run.

portal_bulk_gbps         TRANSFORM round trips over a --bulk-mib span: the guest reads and writes
                         every byte in place (host -> guest -> host, no copies), GB/s. The host does
                         not touch the bytes between round trips (its producer builds data in the
                         span); the final contents are checked against the XOR of every key.
portal_bulk_host_copy_gbps  the same, but the host copies the payload into the span before and out
                         of it after each round trip (a producer that does not build in place)
portal_roundtrips_per_s  one NOP in flight at a time, host C fast path (cffi), guest service polling
portal_rtt_us            1e6 / portal_roundtrips_per_s
portal_py_roundtrips_per_s  the same through the Python API (Portal.echo)
portal_msgs_per_s        NOPs streamed in batches (--batch) through SUBMIT/COMPLETE, host C fast path.
                         Each counts once: the host writes it into SUBMIT, the guest service copies
                         it out and writes its completion into COMPLETE, the host takes that and
                         checks its cookie (in order) and status. Both sides poll; on 2 shared cores
                         the rate depends on how the host schedules the vCPU thread against ours.
                         Median of --rounds streams, alternating with the raw ring's.
raw_ring_msgs_per_s      the baseline: the same host C thread and guest service loop move the same
                         64-byte messages through a bare ring pair in a host-arena span of the same
                         window (Op.RAW_RING, docs/portal.md), same batch and slot count, nothing
                         validated (no header re-check, no index check, no per-message check)
portal_vs_raw_ring_x     median over the rounds of portal / raw of adjacent streams (target 0.5)
control_bulk_gbps        the same bytes through AgentX STDIO: `cat` in the guest, stdin -> stdout
control_roundtrips_per_s AgentX PING/PONG round trips
guest_memcpy_gbps        the guest's own memcpy (best of 20, 16 MiB, anonymous memory). Under TCG
                         musl's memcpy (rep movsq) is slower than a plain loop, so this "limit" is
                         low and bulk_vs_memcpy_x flatters Portal; see guest_inplace_xor_gbps
guest_inplace_xor_gbps   the TRANSFORM loop itself over anonymous memory (best of 20): the real
                         ceiling of portal_bulk_gbps; bulk_vs_inplace_x is Portal's efficiency
*_x                      ratios measured in the same run (targets: bulk 50x, round trips 100x, bulk/memcpy 0.5)
host_loadavg_1m, host_qemu_processes  how busy the host was at the end of the run (other QEMUs share the cores)

`--guest trackb` measures the same metrics against the Track B kernel; what differs,
because its agent has no STDIN (see _GUESTS):
guest_memcpy_gbps        `portal memcpy`: the kernel's memcpy (8 bytes a step) between two buffers
                         in the 2 MiB of pmem below the Portal window (960 KiB, best of 20)
guest_inplace_xor_gbps   the same command: TRANSFORM's loop (portal_xor64) in place there
control_bulk_gbps        `wslx-conform zeros N` in the guest: N bytes guest -> host through AgentX
                         STDIO over virtio-console (one way; Linux's `cat` goes both ways)
the service              `portal serve` (TrackBPortalService): the guest polls SUBMIT in the agent
                         loop, so there is no host -> guest doorbell to ring (its COMPLETE doorbell
                         is on the signal port, as Linux's); it ends on SIGTERM
"""
from __future__ import annotations

import os
import re
import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from ..spec.programs import PROGRAM_NAME
from . import Benchmark
from ..commands._args import kernel_image, positive_int
from ..vmm.procs import processes

UNITS = {"portal_bulk_gbps": "GB/s", "portal_bulk_host_copy_gbps": "GB/s", "guest_inplace_xor_gbps": "GB/s",
         "bulk_vs_inplace_x": "x", "host_loadavg_1m": "",
         "host_qemu_processes": "", "control_bulk_gbps": "GB/s", "guest_memcpy_gbps": "GB/s",
         "portal_roundtrips_per_s": "1/s", "portal_py_roundtrips_per_s": "1/s", "control_roundtrips_per_s": "1/s",
         "portal_msgs_per_s": "1/s", "raw_ring_msgs_per_s": "1/s", "portal_vs_raw_ring_x": "x", "portal_rtt_us": "us", "control_rtt_us": "us",
         "bulk_vs_control_x": "x", "roundtrips_vs_control_x": "x", "bulk_vs_memcpy_x": "x"}


def add_arguments(p):
    p.add_argument("--guest", choices=["linux", "trackb"], default="linux",
                   help="linux: the Track A guest's `/init portal serve`; trackb: the Track B kernel's `portal serve` "
                        "built-in (polled in the agent loop; see this module's docstring)")
    p.add_argument("--kernel", type=kernel_image, help="guest kernel (default: Debian's cloud kernel)")
    p.add_argument("--bulk-mib", type=positive_int, default=16, help="span size of the bulk transfer (default 16 MiB)")
    p.add_argument("--control-mib", type=positive_int, default=4, help="bytes through AgentX STDIO (default 4 MiB)")
    p.add_argument("--roundtrips", type=positive_int, default=20000, help="Portal NOP round trips per run")
    p.add_argument("--messages", type=positive_int, default=4_000_000, help="NOPs streamed per run")
    p.add_argument("--batch", type=positive_int, default=512, help="NOPs per SUBMIT batch (default 512)")
    p.add_argument("--rounds", type=positive_int, default=20,
                   help="alternations of Portal and raw-ring streams per run, --messages split among them (default 20: "
                        "short adjacent pairs see the same momentary load)")
    p.add_argument("--pings", type=positive_int, default=200, help="AgentX PING round trips per run")


def _cat_bulk(client, args) -> float:
    """`cat` in the guest: the bytes go host -> guest -> host through STDIO; GB/s."""
    data = bytes(range(256)) * (args.control_mib << 12)
    t0 = time.perf_counter()
    r = client.run(["cat"], input=data, timeout=600)
    dt = time.perf_counter() - t0
    assert r.returncode == 0 and r.stdout == data, "cat did not return the bytes"
    return len(data) / dt / 1e9


def _zeros_bulk(client, args) -> float:
    """The conformance program's `zeros N` in the guest (no STDIN): guest -> host only; GB/s."""
    n = args.control_mib << 20
    t0 = time.perf_counter()
    r = client.run([PROGRAM_NAME, "zeros", str(n)], timeout=600)
    dt = time.perf_counter() - t0
    assert r.returncode == 0 and r.stdout == bytes(n), "zeros did not return the bytes"
    return n / dt / 1e9


@dataclass(frozen=True)
class _Guest:
    """What the bench does differently per guest; everything else is _measure."""
    boot: Callable          # (args, portal) -> a guest context manager with the Portal's pmem attached
    service: Callable       # (guest, portal) -> a wslx.portal.guest.PortalService
    memcpy_argv: list
    control_bulk: Callable  # (client, args) -> GB/s through AgentX STDIO
    stopped: Callable       # the service's ExitStatus after stop() -> True when it ended as it should


def _boot_linux(args, portal):
    from ..guests.linux import LinuxGuest
    from ..portal.guest import portal_machine_kw
    return LinuxGuest(args.kernel, log=lambda s: None, **portal_machine_kw(portal))


def _boot_trackb(args, portal):
    from ..guests.trackb import TrackBGuest
    from ..portal.trackb import trackb_portal_kw
    return TrackBGuest(args.kernel, log=lambda s: None, **trackb_portal_kw(portal))


def _linux_service(g, portal):
    from ..portal.guest import PortalService
    return PortalService(g, portal)


def _trackb_service(g, portal):
    from ..portal.trackb import TrackBPortalService
    return TrackBPortalService(g, portal)


_GUESTS = {
    "linux": _Guest(_boot_linux, _linux_service, ["/init", "portal", "memcpy"], _cat_bulk,
                    stopped=lambda st: st is not None and st.returncode == 0),   # stdin EOF: exit 0
    "trackb": _Guest(_boot_trackb, _trackb_service, ["portal", "memcpy"], _zeros_bulk,
                     stopped=lambda st: st is not None and st.code == 15),   # SIGTERM
}


def _measure(g, portal, args, log, kind: _Guest) -> dict:
    import numpy as np

    from ..spec.portal import Op
    out = {}
    client = g.client
    # the guest's own memcpy: the ceiling for bulk data it touches
    r = client.run(kind.memcpy_argv, timeout=120)
    m = re.search(rb"memcpy_gbps ([0-9.]+) inplace_xor_gbps ([0-9.]+)", r.stdout)
    assert r.returncode == 0 and m, f"guest memcpy failed: {r.stdout!r} {r.stderr!r}"
    out["guest_memcpy_gbps"] = float(m.group(1))
    out["guest_inplace_xor_gbps"] = float(m.group(2))
    # control channel: PING round trips and bulk through STDIO
    client.ping(b"warm")
    t0 = time.perf_counter()
    for _ in range(args.pings):
        client.ping(b"x" * 16)
    out["control_roundtrips_per_s"] = args.pings / (time.perf_counter() - t0)
    out["control_rtt_us"] = 1e6 / out["control_roundtrips_per_s"]
    out["control_bulk_gbps"] = kind.control_bulk(client, args)
    # Portal
    with kind.service(g, portal) as svc:
        span = portal.alloc(args.bulk_mib << 20)
        view = portal.view(span)
        view[:] = bytes(span.length)
        portal.transform(span, 0x0101010101010101, timeout=60)  # warm: fault in the guest's pages
        reps, t0 = 0, time.perf_counter()
        while reps < 3 or time.perf_counter() - t0 < 1.0:
            portal.call(Op.TRANSFORM, span, 0x0101010101010101 * ((reps * 37 + 11) & 0xFF), timeout=60)
            reps += 1
        out["portal_bulk_gbps"] = reps * span.length / (time.perf_counter() - t0) / 1e9
        # the guest really transformed every byte every time: 1 ^ every key
        want = 1
        for r in range(reps):
            want ^= (r * 37 + 11) & 0xFF
        got = np.frombuffer(view, np.uint8)
        assert (got == want).all(), f"bulk: {np.count_nonzero(got != want)} bytes not as transformed"
        src = np.random.default_rng(1).integers(0, 256, span.length, np.uint8)
        key = 0x5A5A5A5A5A5A5A5A
        reps, t0 = 0, time.perf_counter()
        while reps < 3 or time.perf_counter() - t0 < 1.0:
            view[:] = src.data  # copy in
            portal.call(Op.TRANSFORM, span, key, timeout=60)
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
        n = max(1, args.roundtrips // 10)
        t0 = time.perf_counter()
        for i in range(n):
            portal.echo(i)
        out["portal_py_roundtrips_per_s"] = n / (time.perf_counter() - t0)
        # small messages: Portal's checked rings and the bare ring baseline, interleaved (same run,
        # same host loop, same guest service loop) so both see the machine's momentary load
        portal.stream(100_000, args.batch)
        portal.raw_stream(100_000, args.batch)
        rates: dict[str, list[float]] = {"portal_msgs_per_s": [], "raw_ring_msgs_per_s": []}
        share = max(1, args.messages // args.rounds)
        for _ in range(args.rounds):
            for key, fn in (("portal_msgs_per_s", portal.stream), ("raw_ring_msgs_per_s", portal.raw_stream)):
                t0 = time.perf_counter()
                fn(share, args.batch, timeout=300)
                rates[key].append(share / (time.perf_counter() - t0))
        for key, r in rates.items():
            out[key] = statistics.median(r)
        out["portal_vs_raw_ring_x"] = statistics.median(a / b for a, b in zip(*rates.values()))
        svc.stop()
        assert kind.stopped(svc.status), f"the service did not end as it should: {svc.status}"
    out["host_loadavg_1m"] = os.getloadavg()[0]
    out["host_qemu_processes"] = float(len(processes("qemu-system")))
    out["bulk_vs_control_x"] = out["portal_bulk_gbps"] / out["control_bulk_gbps"]
    out["roundtrips_vs_control_x"] = out["portal_roundtrips_per_s"] / out["control_roundtrips_per_s"]
    out["bulk_vs_memcpy_x"] = out["portal_bulk_gbps"] / out["guest_memcpy_gbps"]
    out["bulk_vs_inplace_x"] = out["portal_bulk_gbps"] / out["guest_inplace_xor_gbps"]
    return out


def run_once(args, log) -> dict:
    from ..portal import Portal
    from ..vmm.qemu import default_run_root
    kind = _GUESTS[args.guest]
    with tempfile.TemporaryDirectory(prefix="wslx-bench-portal-", dir=default_run_root()) as d:
        size = max(64 << 20, ((args.bulk_mib + 8) << 20) * 2)
        with Portal.create(Path(d) / "portal.img", size) as portal:
            with kind.boot(args, portal) as g:
                out = _measure(g, portal, args, log, kind)
                g.shutdown()
    return out


def plot(doc: dict, png) -> None:
    from .plot import grouped_runs_and_medians
    groups = [("bulk (GB/s)", ["portal_bulk_gbps", "portal_bulk_host_copy_gbps", "control_bulk_gbps",
                               "guest_memcpy_gbps", "guest_inplace_xor_gbps"]),
              ("round trips (1/s)", ["portal_roundtrips_per_s", "portal_py_roundtrips_per_s", "control_roundtrips_per_s"]),
              ("small messages (1/s)", ["portal_msgs_per_s", "raw_ring_msgs_per_s"]),
              ("ratios (x)", ["bulk_vs_control_x", "roundtrips_vs_control_x", "bulk_vs_memcpy_x",
                              "bulk_vs_inplace_x", "portal_vs_raw_ring_x"])]
    guest = {"linux": "Linux guest", "trackb": "Track B kernel"}.get(doc.get("parameters", {}).get("guest"), "guest")
    grouped_runs_and_medians(doc, groups, png, title=f"Portal vs AgentX control channel, {guest} (TCG)", log=True)


BENCHMARK = Benchmark(name="portal", help="Portal shared memory vs the AgentX control channel", run_once=run_once,
                      add_arguments=add_arguments, default_runs=3, units=UNITS, plot=plot)
