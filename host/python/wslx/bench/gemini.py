"""`wslx bench gemini --guest linux|trackb`: Gemini calls against AgentX EXEC, in one booted
guest per run.

gemini_null_calls_per_s     sequential null.call round trips (one in flight) made by the guest's
                            Gemini client: CALL on EVENT, the host dispatcher answers on UPCALL (its
                            native fast path: gemini_host_serve checks the record in C and answers
                            null.call there; --python-null sends it through the Python service);
                            doorbells on the SIGNAL/UPCALL ports when a side sleeps. The loop runs
                            in the guest (`wslx-call --bench`, Track B `gemini bench`) and is timed
                            on the host around the EXEC that runs it, so one EXEC round trip is
                            included: a lower bound
gemini_read_1m_mb_per_s     sequential 1 MiB fs.read calls: the host reads the exported file straight
                            into the call's reply area in the guest arena (host -> guest, no copy);
                            MB = 1e6 bytes; host-timed like the null calls
*_guest_clock               the same loops timed by the guest around the loop alone. Under TCG on a
                            loaded host the guest's clock is not to be trusted (Track B's ran up to
                            7x fast against the host's); kept for comparison
agentx_exec_roundtrips_per_s  AgentX EXEC of a program that exits at once, to its EXIT, one at a
                            time (Linux `true`; Track B the built-in `echo`, which it has instead)
agentx_cat_1m_mb_per_s      AgentX EXEC of `cat` of a 1 MiB file in the guest (Linux), its STDIO
                            to the host; Track B has no files or cat: `wslx-conform zeros 1048576`,
                            the same 1 MiB guest -> host over STDIO. AgentX moves the bytes guest ->
                            host, fs.read host -> guest: each is that channel's bulk path
null_vs_exec_x, read_vs_cat_x  ratios in the same run (targets 100x and 20x)
--vmm hvsim                 Track B under the Hyper-V model: AgentX on hv_sock port 50010 and
                            Gemini's doorbells on the SIGNAL and UPCALL hv_sock ports, all over VMBus rings
host_loadavg_1m, host_qemu_processes  how busy the shared host was (other QEMUs compete for the cores)
"""
from __future__ import annotations

import os
import re
import tempfile
import time
from pathlib import Path

from . import Benchmark
from ..commands._args import kernel_image, positive_int
from ..spec.programs import PROGRAM_NAME
from ..vmm.procs import processes

MIB = 1 << 20
UNITS = {"gemini_null_calls_per_s": "1/s", "agentx_exec_roundtrips_per_s": "1/s", "gemini_read_1m_mb_per_s": "MB/s",
         "agentx_cat_1m_mb_per_s": "MB/s", "gemini_null_calls_per_s_guest_clock": "1/s",
         "gemini_read_1m_mb_per_s_guest_clock": "MB/s", "null_vs_exec_x": "x", "read_vs_cat_x": "x",
         "null_vs_exec_guest_clock_x": "x", "read_vs_cat_guest_clock_x": "x", "host_loadavg_1m": "", "host_qemu_processes": ""}
BENCH_RE = re.compile(rb"calls (\d+) ns (\d+) bytes (\d+) status (\w+)")


def add_arguments(p):
    p.add_argument("--guest", choices=["linux", "trackb"], default="linux")
    p.add_argument("--vmm", choices=["qemu", "hvsim"], default="qemu",
                   help="hvsim: Track B under the Hyper-V model, AgentX and Gemini's two doorbell ports on hv_sock")
    p.add_argument("--kernel", type=kernel_image, help="guest kernel (default: the guest's usual one)")
    p.add_argument("--null-calls", type=positive_int, default=20000, help="Gemini null calls per run")
    p.add_argument("--reads", type=positive_int, default=100, help="1 MiB fs.read calls per run")
    p.add_argument("--execs", type=positive_int, default=20, help="AgentX EXEC round trips per run")
    p.add_argument("--cats", type=positive_int, default=3, help="AgentX 1 MiB cats per run")
    p.add_argument("--python-null", action="store_true",
                   help="answer null.call in Python too (default: the dispatcher's C fast path, gemini_host_serve)")


def _bench_loop(client, argv: list[str], count: int, what: str) -> tuple[float, float, int]:
    """(guest-timed seconds, host-timed seconds, bytes) of a guest bench loop."""
    t0 = time.perf_counter()
    r = client.run(argv, timeout=900)
    host_s = time.perf_counter() - t0
    m = BENCH_RE.search(r.stdout)
    assert r.returncode == 0 and m and int(m.group(1)) == count and m.group(4) == b"OK", (
        f"{what}: {argv} failed: {r.stdout!r} {r.stderr!r}")
    return int(m.group(2)) / 1e9, host_s, int(m.group(3))


def _linux(args, portal, d):
    from ..gemini.host import GeminiLinuxAgent, gemini_machine_kw
    from ..guests.linux import LinuxGuest
    return LinuxGuest(args.kernel, log=lambda s: None, timeout=300, **gemini_machine_kw(portal)), GeminiLinuxAgent


def _trackb(args, portal, d):
    from ..gemini.trackb import GeminiTrackBAgent, gemini_trackb_kw
    from ..guests.trackb import TrackBGuest
    from ..guests.trackb_hvsim import TrackBHvsimGuest
    guest = TrackBHvsimGuest if args.vmm == "hvsim" else TrackBGuest
    return guest(args.kernel, log=lambda s: None, timeout=300, **gemini_trackb_kw(portal)), GeminiTrackBAgent


GUESTS = {
    # (boot, argv of the null-call loop, argv of the read loop, EXEC argv, bulk argv)
    "linux": (_linux, lambda n: ["wslx-call", "--bench", str(n), "--reply-cap", "0", "null", "call"],
              lambda n: ["wslx-call", "--bench", str(n), "--reply-cap", str(MIB), "fs", "read", "f1m"],
              ["true"], ["cat", "/tmp/f1m"]),
    "trackb": (_trackb, lambda n: ["gemini", "bench", str(n), "0", "null", "call"],
               lambda n: ["gemini", "bench", str(n), str(MIB), "fs", "read", "f1m"],
               ["echo"], [PROGRAM_NAME, "zeros", str(MIB)]),
}


def run_once(args, log) -> dict:
    from ..gemini import Dispatcher
    from ..gemini.services import FsExport
    from ..portal import Portal
    from ..vmm.qemu import default_run_root
    boot, null_argv, read_argv, exec_argv, bulk_argv = GUESTS[args.guest]
    if getattr(args, "vmm", "qemu") == "hvsim" and args.guest != "trackb":
        raise ValueError("--vmm hvsim runs the Track B kernel only (--guest trackb)")
    out: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="wslx-bench-gemini-", dir=default_run_root()) as tmp:
        export = Path(tmp) / "export"
        export.mkdir()
        blob = os.urandom(MIB)
        (export / "f1m").write_bytes(blob)
        with Portal.create(Path(tmp) / "portal.img", 64 << 20) as portal:
            d = Dispatcher(portal, native_null=not args.python_null)
            FsExport(export).register(d)
            d.register("null", "call", lambda call: None)   # reached only with --python-null
            guest, agent_cls = boot(args, portal, d)
            with guest as g:
                client = g.client
                if args.guest == "linux":   # the same bytes as a guest file, for cat
                    r = client.run(["sh", "-c", "cat > /tmp/f1m"], input=blob, timeout=600)
                    assert r.returncode == 0, r
                with agent_cls(g, portal, d, timeout=300):
                    log(f"[gemini] {args.null_calls} null calls")
                    _bench_loop(client, null_argv(50), 50, "warm-up")
                    guest_s, host_s, _ = _bench_loop(client, null_argv(args.null_calls), args.null_calls, "null calls")
                    out["gemini_null_calls_per_s"] = args.null_calls / host_s
                    out["gemini_null_calls_per_s_guest_clock"] = args.null_calls / guest_s
                    log(f"[gemini] {args.reads} x 1 MiB fs.read")
                    guest_s, host_s, nbytes = _bench_loop(client, read_argv(args.reads), args.reads, "fs.read")
                    assert nbytes == args.reads * MIB, f"fs.read moved {nbytes} bytes"
                    out["gemini_read_1m_mb_per_s"] = nbytes / host_s / 1e6
                    out["gemini_read_1m_mb_per_s_guest_clock"] = nbytes / guest_s / 1e6
                log(f"[agentx] {args.execs} EXEC round trips, {args.cats} x 1 MiB")
                client.run(exec_argv, timeout=120)
                t0 = time.perf_counter()
                for _ in range(args.execs):
                    r = client.run(exec_argv, timeout=120)
                    assert r.returncode == 0, r
                out["agentx_exec_roundtrips_per_s"] = args.execs / (time.perf_counter() - t0)
                t0 = time.perf_counter()
                for _ in range(args.cats):
                    r = client.run(bulk_argv, timeout=600)
                    assert r.returncode == 0 and len(r.stdout) == MIB, (r.returncode, len(r.stdout))
                    if args.guest == "linux":
                        assert r.stdout == blob
                out["agentx_cat_1m_mb_per_s"] = args.cats * MIB / (time.perf_counter() - t0) / 1e6
                g.shutdown()
    out["host_loadavg_1m"] = os.getloadavg()[0]
    out["host_qemu_processes"] = float(len(processes("qemu-system")))
    out["null_vs_exec_x"] = out["gemini_null_calls_per_s"] / out["agentx_exec_roundtrips_per_s"]
    out["read_vs_cat_x"] = out["gemini_read_1m_mb_per_s"] / out["agentx_cat_1m_mb_per_s"]
    out["null_vs_exec_guest_clock_x"] = out["gemini_null_calls_per_s_guest_clock"] / out["agentx_exec_roundtrips_per_s"]
    out["read_vs_cat_guest_clock_x"] = out["gemini_read_1m_mb_per_s_guest_clock"] / out["agentx_cat_1m_mb_per_s"]
    return out


def plot(doc: dict, png) -> None:
    from .plot import grouped_runs_and_medians
    groups = [("round trips (1/s)", ["gemini_null_calls_per_s", "gemini_null_calls_per_s_guest_clock",
                                     "agentx_exec_roundtrips_per_s"]),
              ("1 MiB transfers (MB/s)", ["gemini_read_1m_mb_per_s", "gemini_read_1m_mb_per_s_guest_clock",
                                          "agentx_cat_1m_mb_per_s"]),
              ("ratios (x)", ["null_vs_exec_x", "read_vs_cat_x", "null_vs_exec_guest_clock_x",
                              "read_vs_cat_guest_clock_x"])]
    params = doc.get("parameters", {})
    guest = {"linux": "Linux guest", "trackb": "Track B kernel"}.get(params.get("guest"), "guest")
    vmm = ", hvsim (hv_sock)" if params.get("vmm") == "hvsim" else ""
    grouped_runs_and_medians(doc, groups, png, title=f"Gemini vs AgentX EXEC, {guest} (TCG{vmm})", log=True)


BENCHMARK = Benchmark(name="gemini", help="Gemini calls vs AgentX EXEC (null round trips, 1 MiB reads)",
                      run_once=run_once, add_arguments=add_arguments, default_runs=3, units=UNITS, plot=plot)
