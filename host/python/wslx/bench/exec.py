"""`wslx bench exec --guest linux`: AgentX EXEC round trip and STDIO throughput
in a booted guest.

exec_roundtrip_ms  EXEC of /bin/true until its EXIT (median of --iterations)
stdout_mb_per_s    `cat` of a 64 MiB file in the guest's tmpfs, relayed as STDIO frames
"""
from __future__ import annotations

import statistics
import time

from . import Benchmark
from ..commands._args import kernel_image, positive_int

FILE_BYTES = 64 * 1024 * 1024


def add_arguments(p):
    p.add_argument("--guest", choices=["linux", "reference"], default="linux",
                   help="linux: the QEMU guest; reference: the host-side reference agent (for comparison)")
    p.add_argument("--iterations", type=positive_int, default=30, help="EXEC round trips per run (default 30)")
    p.add_argument("--kernel", type=kernel_image, help="guest kernel (default: Debian's cloud kernel)")


def _measure(client, iterations: int, log) -> dict:
    times = []
    for _ in range(iterations):
        t0 = time.perf_counter()
        r = client.run(["/bin/true"], timeout=30)
        times.append(time.perf_counter() - t0)
        assert r.returncode == 0, f"/bin/true failed: {r.status}"
    path = "/tmp/wslx-bench-64m"
    r = client.run(["sh", "-c", f"head -c {FILE_BYTES} /dev/zero > {path}"], timeout=120)
    assert r.returncode == 0, f"could not create the test file: {r.stderr!r}"
    got = 0

    def count(data: bytes):
        nonlocal got
        got += len(data)
    t0 = time.perf_counter()
    r = client.run(["cat", path], on_stdout=count, timeout=300)
    dt = time.perf_counter() - t0
    assert r.returncode == 0 and got == FILE_BYTES, f"cat returned {got} bytes, {r.status}"
    client.run(["rm", "-f", path], timeout=30)
    return {"exec_roundtrip_ms": statistics.median(times) * 1000, "stdout_mb_per_s": FILE_BYTES / dt / 1e6}


def run_once(args, log) -> dict:
    if args.guest == "reference":
        from ..conformance.targets import ReferenceTarget
        with ReferenceTarget(timeout=30) as t:
            t.client.wait_hello()
            return _measure(t.client, args.iterations, log)
    from ..guests.linux import LinuxGuest
    with LinuxGuest(args.kernel, log=lambda s: None) as g:
        out = _measure(g.client, args.iterations, log)
        g.shutdown()
    return out


BENCHMARK = Benchmark(name="exec", help="EXEC round trip and STDIO stdout throughput", run_once=run_once,
                      add_arguments=add_arguments, default_runs=3,
                      units={"exec_roundtrip_ms": "ms", "stdout_mb_per_s": "MB/s"})
