"""`wslx bench hv --out DIR`: the hvsim trap path and hv_sock against virtio-console, same kernel, same run.

Each run boots images/trackb-kernel.elf twice under the same hvsim machine (QEMU beside the wslx.hv model):
1. profile hyperv, with trackb.hvbench=N: the kernel times N traps (rdmsr VP_INDEX: request block +
   doorbell + spin), N fast hypercalls (the hypercall page's vmcall -> #UD -> forwarded) and N ticks of
   its 1 ms periodic stimer (MSI-X at the SINT's vector), printing one console line (kernel/hvbench.c);
   then AgentX over hv_sock: PING round trips for --seconds, and guest -> host bulk (`zeros`);
2. profile none: the kernel finds no Hyper-V and talks over virtio-console: the same PING and bulk.

trap_rtt_us, hypercall_rtt_us           guest-measured medians (TSC)
stimer_late_us_p50, stimer_late_us_p99  each tick's phase within the 1 ms period on the reference clock,
                                        measured from where the phases' cluster starts (the phase after
                                        the widest gap; lateness within one period);
stimer_missed_slots                     periods that passed without a tick (the model skips late slots)
hvsock_roundtrips_per_s, virtio_console_roundtrips_per_s    AgentX PING (8 bytes) round trips
hvsock_bulk_mb_per_s, virtio_console_bulk_mb_per_s           `zeros N` from the guest, through STDIO
hvsock_vs_virtio_console_roundtrips                           the same-run ratio
hvsock_native                           1 if the hv_sock figures above ran on the model's native hot path
                                        (build/hv/libhvrelay.so: SignalEvent and ring data in C), else 0
hvsock_python_roundtrips_per_s          with --native-ab (the default when the library is built): a third
                                        boot, the same PINGs with the model's Python path (--no-native)
hvsock_python_vs_virtio_console_roundtrips                     its same-run ratio
trap_rtt_us_python, hypercall_rtt_us_python                     that boot's trap and hypercall medians
model_cpu_us_per_roundtrip[_python]     the model process's CPU (/proc utime+stime, every thread) per PING
"""
from __future__ import annotations

import argparse
import os
import re
import time
from pathlib import Path

from . import Benchmark
from ..commands._args import kernel_image, positive_float, positive_int
from ..spec.programs import PROGRAM_NAME

HVBENCH_RE = re.compile(r"hvbench: n (\d+) trap_ns (\d+) hypercall_ns (\d+) ticks (\d+) missed (\d+) "
                        r"stimer_late_ns_p50 (\d+) stimer_late_ns_p99 (\d+)")


def add_arguments(p):
    p.add_argument("--kernel", type=kernel_image, help="Track B kernel (default images/trackb-kernel.elf)")
    p.add_argument("--traps", type=positive_int, default=2000, help="traps, hypercalls and ticks timed per run")
    p.add_argument("--seconds", type=positive_float, default=2.0, help="seconds of PING round trips per channel")
    p.add_argument("--bulk-mib", type=positive_int, default=4, help="MiB of guest -> host bulk per channel")
    p.add_argument("--native-ab", action=argparse.BooleanOptionalAction, default=None,
                   help="also PING over hv_sock with the model's Python hot path (default: when the native one is built)")


def _cpu_s(pid: int) -> float:
    """CPU seconds of a process, every thread (/proc/PID/stat utime + stime)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _hvsock_pings(g, seconds: float) -> tuple[float, float]:
    """(round trips/s, model CPU us per round trip) over hv_sock."""
    c0, t0 = _cpu_s(g.vm.model.pid), time.perf_counter()
    n = 0
    while time.perf_counter() - t0 < seconds:
        g.client.ping(b"hv-bench", timeout=30)
        n += 1
    dt, cpu = time.perf_counter() - t0, _cpu_s(g.vm.model.pid) - c0
    return n / dt, cpu / n * 1e6


def _pings(client, seconds: float) -> float:
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        client.ping(b"hv-bench", timeout=30)
        n += 1
    return n / (time.perf_counter() - t0)


def _bulk(client, mib: int) -> float:
    n = mib << 20
    t0 = time.perf_counter()
    r = client.run([PROGRAM_NAME, "zeros", str(n)], timeout=600)
    dt = time.perf_counter() - t0
    assert r.returncode == 0 and r.stdout == bytes(n), "zeros did not return the bytes"
    return n / dt / 1e6


def run_once(args, log) -> dict:
    from ..guests.trackb_hvsim import TrackBHvsimGuest
    from ..hv import native
    out = {}
    built = native.library_path().exists()
    with TrackBHvsimGuest(args.kernel, hv_profile="hyperv", append=f"trackb.hvbench={args.traps}",
                          hello_timeout=120, timeout=60, log=lambda s: None) as g:
        m = HVBENCH_RE.search(g.vm.read_console())
        assert m, f"no hvbench line on the console:\n{g.vm.console_tail()}"
        _, trap, hypercall, ticks, missed, p50, p99 = (int(x) for x in m.groups())
        out.update(trap_rtt_us=trap / 1000, hypercall_rtt_us=hypercall / 1000, stimer_late_us_p50=p50 / 1000,
                   stimer_late_us_p99=p99 / 1000, stimer_ticks=ticks, stimer_missed_slots=missed)
        out["hvsock_native"] = int(g.vm.native and built)
        out["hvsock_roundtrips_per_s"], out["model_cpu_us_per_roundtrip"] = _hvsock_pings(g, args.seconds)
        out["hvsock_bulk_mb_per_s"] = _bulk(g.client, args.bulk_mib)
        g.shutdown()
    if args.native_ab if args.native_ab is not None else out["hvsock_native"]:
        with TrackBHvsimGuest(args.kernel, hv_profile="hyperv", native=False, append=f"trackb.hvbench={args.traps}",
                              hello_timeout=120, timeout=60, log=lambda s: None) as g:
            m = HVBENCH_RE.search(g.vm.read_console())
            assert m, f"no hvbench line on the console:\n{g.vm.console_tail()}"
            out["trap_rtt_us_python"], out["hypercall_rtt_us_python"] = int(m.group(2)) / 1000, int(m.group(3)) / 1000
            out["hvsock_python_roundtrips_per_s"], out["model_cpu_us_per_roundtrip_python"] = \
                _hvsock_pings(g, args.seconds)
            g.shutdown()
    with TrackBHvsimGuest(args.kernel, hv_profile="none", hello_timeout=120, timeout=60, log=lambda s: None) as g:
        assert "control channel virtio-console" in g.vm.read_console()
        out["virtio_console_roundtrips_per_s"] = _pings(g.client, args.seconds)
        out["virtio_console_bulk_mb_per_s"] = _bulk(g.client, args.bulk_mib)
        g.shutdown()
    out["hvsock_vs_virtio_console_roundtrips"] = out["hvsock_roundtrips_per_s"] / out["virtio_console_roundtrips_per_s"]
    if "hvsock_python_roundtrips_per_s" in out:
        out["hvsock_python_vs_virtio_console_roundtrips"] = (out["hvsock_python_roundtrips_per_s"]
                                                             / out["virtio_console_roundtrips_per_s"])
    return out


def plot(doc: dict, png) -> None:
    from .plot import grouped_runs_and_medians
    grouped_runs_and_medians(doc, [
        ("trap path (us, guest-measured)", [k for k in ("trap_rtt_us", "hypercall_rtt_us", "trap_rtt_us_python",
                                                        "hypercall_rtt_us_python") if k in doc["median"]]),
        ("stimer lateness (us)", ["stimer_late_us_p50", "stimer_late_us_p99"]),
        ("PING round trips/s", [k for k in ("hvsock_roundtrips_per_s", "hvsock_python_roundtrips_per_s",
                                            "virtio_console_roundtrips_per_s") if k in doc["median"]]),
        ("model CPU us per PING", [k for k in ("model_cpu_us_per_roundtrip", "model_cpu_us_per_roundtrip_python")
                                   if k in doc["median"]]),
        ("bulk MB/s", ["hvsock_bulk_mb_per_s", "virtio_console_bulk_mb_per_s"]),
    ], png, title="hvsim: Hyper-V trap path and hv_sock vs virtio-console (same kernel, same run)")


BENCHMARK = Benchmark(name="hv", help="hvsim trap round trips, stimer lateness, hv_sock vs virtio-console",
                      run_once=run_once, add_arguments=add_arguments, default_runs=3, plot=plot,
                      units={"trap_rtt_us": "us", "hypercall_rtt_us": "us", "stimer_late_us_p50": "us",
                             "stimer_late_us_p99": "us", "stimer_ticks": "", "stimer_missed_slots": "", "hvsock_roundtrips_per_s": "1/s",
                             "virtio_console_roundtrips_per_s": "1/s", "hvsock_bulk_mb_per_s": "MB/s",
                             "virtio_console_bulk_mb_per_s": "MB/s", "hvsock_vs_virtio_console_roundtrips": "",
                             "hvsock_native": "", "hvsock_python_roundtrips_per_s": "1/s",
                             "hvsock_python_vs_virtio_console_roundtrips": "", "model_cpu_us_per_roundtrip": "us",
                             "model_cpu_us_per_roundtrip_python": "us", "trap_rtt_us_python": "us",
                             "hypercall_rtt_us_python": "us"})
