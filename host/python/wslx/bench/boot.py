"""`wslx bench boot --guest linux [--kernel PATH]...`: QEMU start to AgentX HELLO.

hello_s            wall time from QEMU process start until HELLO is received
guest_uptime_ms    the guest's own CLOCK_BOOTTIME when its agent said HELLO
With several --kernel options every kernel boots in each run, with the same
init and QEMU command line, and hello_ratio[B/A] compares them within the run.
"""
from __future__ import annotations

from pathlib import Path

from . import Benchmark


def add_arguments(p):
    p.add_argument("--guest", choices=["linux"], default="linux")
    p.add_argument("--kernel", type=Path, action="append",
                   help="kernel to boot (default: Debian's cloud kernel); repeat to compare kernels")


def _label(i: int, kernel: Path) -> str:
    return "" if i == 0 else f"[{kernel.name}]"


def run_once(args, log) -> dict:
    from ..guests.linux import LinuxGuest, ensure_built, initramfs_for
    from ..image.initramfs import find_default_kernel
    kernels = args.kernel or [find_default_kernel()]
    if not getattr(args, "_built", False):
        ensure_built(log=log)
        args._built = True
    out = {}
    for i, k in enumerate(kernels):
        label = _label(i, k)
        initrd = initramfs_for(k, log)
        with LinuxGuest(k, initrd, build=False, log=lambda s: None) as g:
            out[f"hello_s{label}"] = g.vm.hello_seconds
            out[f"guest_uptime_ms{label}"] = float(g.hello.uptime_ms)
            g.shutdown()
        out[f"kernel_bytes{label}"] = float(k.stat().st_size)
        out[f"initramfs_bytes{label}"] = float(initrd.stat().st_size)
    for i, k in enumerate(kernels[1:], 1):
        out[f"hello_ratio[{k.name}/{kernels[0].name}]"] = out[f"hello_s{_label(i, k)}"] / out["hello_s"]
    return out


def plot(doc, png):
    from .plot import runs_and_medians
    metrics = sorted(k for k in doc["median"] if k.startswith("hello_s"))
    first = Path(str((doc["parameters"].get("kernel") or ["Debian cloud kernel"])[0])).name
    labels = [m.replace("hello_s", "").strip("[]") or first for m in metrics]
    runs_and_medians(doc, metrics, png, title="QEMU start to AgentX HELLO (TCG)", ylabel="seconds", labels=labels)


BENCHMARK = Benchmark(name="boot", plot=plot, help="boot time to AgentX HELLO (QEMU TCG)", run_once=run_once,
                      add_arguments=add_arguments, default_runs=5,
                      units={"hello_s": "s", "guest_uptime_ms": "ms", "kernel_bytes": "B", "initramfs_bytes": "B"})
