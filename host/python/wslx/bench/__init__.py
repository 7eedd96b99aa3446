"""Benchmarks: `wslx bench NAME --out DIR` runs one benchmark several times and
writes DIR/NAME.json with the medians, every run, and the machine.

A benchmark is a module in this package that defines
    BENCHMARK = Benchmark(name=..., help=..., run_once=fn, add_arguments=fn)
where run_once(args, progress) returns a dict {metric: float} for one run.
Ratios between configurations must be measured inside the same run_once so
that they share the machine's momentary noise.
"""
from __future__ import annotations

import dataclasses
import importlib
import json
import os
import platform
import pkgutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable


@dataclasses.dataclass
class Benchmark:
    name: str
    help: str
    run_once: Callable[..., dict]
    add_arguments: Callable | None = None
    default_runs: int = 5
    units: dict = dataclasses.field(default_factory=dict)
    plot: Callable | None = None  # plot(result_dict, png_path) when a picture helps


def all_benchmarks() -> dict[str, Benchmark]:
    found = {}
    for mod in pkgutil.iter_modules(__path__):
        if mod.name.startswith("_"):
            continue
        m = importlib.import_module(f"{__name__}.{mod.name}")
        b = getattr(m, "BENCHMARK", None)
        if b is not None:
            found[b.name] = b
    return found


def _cmd_output(cmd: list[str]) -> str | None:
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=10).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def machine_info() -> dict:
    cpu = None
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    from .. import repo_root
    qemu = _cmd_output(["qemu-system-x86_64", "--version"])
    return {
        "cpu": cpu,
        "cpus": os.cpu_count(),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "qemu": qemu.splitlines()[0] if qemu else None,
        "git_commit": _cmd_output(["git", "-C", str(repo_root()), "rev-parse", "HEAD"]),
        "git_dirty": bool(_cmd_output(["git", "-C", str(repo_root()), "status", "--porcelain", "--untracked-files=no"])),
    }


def _unit(bench: Benchmark, metric: str) -> str:
    """Unit of a metric; `hello_s[kernel]` shares the unit of `hello_s`."""
    return bench.units.get(metric) or bench.units.get(metric.split("[", 1)[0], "")


def run_benchmark(bench: Benchmark, args, runs: int, out_dir: Path, log=print) -> dict:
    out_dir.mkdir(parents=True, exist_ok=True)
    results = []
    for i in range(runs):
        t0 = time.monotonic()
        log(f"[bench {bench.name}] run {i + 1}/{runs} ...")
        r = bench.run_once(args, log)
        log(f"[bench {bench.name}] run {i + 1}/{runs}: " + ", ".join(f"{k}={v:.4g}" for k, v in r.items()) + f" ({time.monotonic() - t0:.1f}s)")
        results.append(r)
    metrics = sorted({k for r in results for k in r})
    medians = {k: statistics.median(r[k] for r in results if k in r) for k in metrics}
    doc = {
        "benchmark": bench.name,
        "runs": len(results),
        "median": medians,
        "units": bench.units,
        "all_runs": results,
        "parameters": {k: v for k, v in vars(args).items() if not k.startswith("_") and not callable(v)},
        "machine": machine_info(),
        "timestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    path = out_dir / f"{bench.name}.json"
    path.write_text(json.dumps(doc, indent=2, sort_keys=True, default=str) + "\n")
    if bench.plot:
        try:
            bench.plot(doc, out_dir / f"{bench.name}.png")
        except ImportError as e:  # plotting is optional; the JSON is the record
            log(f"[bench {bench.name}] no plot: {e}")
    log(f"[bench {bench.name}] medians: " + ", ".join(f"{k}={v:.4g} {_unit(bench, k)}".rstrip() for k, v in medians.items()))
    log(f"[bench {bench.name}] wrote {path}")
    return doc
