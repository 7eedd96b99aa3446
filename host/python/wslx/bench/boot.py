"""`wslx bench boot --guest linux [--kernel PATH]...`: QEMU start to AgentX HELLO.

hello_s            wall time from QEMU process start until HELLO is received
guest_uptime_ms    the guest's own CLOCK_BOOTTIME when its agent said HELLO
With several --kernel options every kernel boots in each run, with the same
init and QEMU command line, and hello_ratio[B/A] compares them within the run.

`--guest trackb`: each run boots, on the Track B QEMU command line (q35, firmware,
memory, COM2 channel, virtio-pmem, isa-debug-exit),
  floor_s          images/trackb-floor.elf, which writes isa-debug-exit at its first
                   instruction: QEMU start to process exit (the QEMU floor)
  hello_s          the Track B kernel: QEMU start to AgentX HELLO
  linux_hello_s    the Linux guest (unless --no-linux): QEMU start to HELLO
and the ratios hello_ratio[trackb/floor] and hello_ratio[linux/trackb] of that run.
Targets (issue 5): trackb/floor <= 1.3, linux/trackb >= 10.
"""
from __future__ import annotations

from pathlib import Path

from . import Benchmark
from ..commands._args import kernel_image
from ..vmm.errors import VMError


def add_arguments(p):
    p.add_argument("--guest", choices=["linux", "trackb"], default="linux")
    p.add_argument("--no-linux", dest="linux", action="store_false",
                   help="--guest trackb: do not boot the Linux guest for the linux/trackb ratio")
    p.add_argument("--kernel", type=kernel_image, action="append",
                   help="kernel to boot (default: Debian's cloud kernel); repeat to compare kernels")


def _label(i: int, kernel: Path) -> str:
    return "" if i == 0 else f"[{kernel.name}]"


def _floor_seconds(floor: Path, log) -> float:
    """QEMU start to exit for the floor kernel, on TrackBGuest's command line, without QMP
    (QemuMachine.run_to_exit): the guest is gone before QMP could connect."""
    from ..guests.trackb import TrackBGuest
    vm = TrackBGuest(floor, build=False, log=lambda s: None).machine()
    try:
        rc, seconds = vm.run_to_exit(30)
    except VMError as e:
        raise RuntimeError(f"floor kernel {floor} did not exit within 30 s: {e}") from None
    if rc % 2 != 1:  # isa-debug-exit ends QEMU with (value << 1) | 1
        raise RuntimeError(f"floor kernel did not leave through isa-debug-exit (exit code {rc}): "
                           f"{vm.read_qemu_log()[-500:]}")
    return seconds


def run_trackb(args, log) -> dict:
    from ..guests.linux import LinuxGuest, ensure_built, initramfs_for
    from ..guests.trackb import TrackBGuest
    from ..image.initramfs import find_default_kernel
    from .. import repo_root
    if not getattr(args, "_built", False):
        ensure_built(("trackb",), log=log)
        if args.linux:
            ensure_built(log=log)
        args._built = True
    images = repo_root() / "images"
    out = {"floor_s": _floor_seconds(images / "trackb-floor.elf", log)}
    with TrackBGuest(images / "trackb-kernel.elf", build=False, log=lambda s: None) as g:
        out["hello_s"] = g.hello_seconds
        out["guest_uptime_ms"] = float(g.hello.uptime_ms)
        g.shutdown()
    out["kernel_bytes"] = float((images / "trackb-kernel.elf").stat().st_size)
    out["hello_ratio[trackb/floor]"] = out["hello_s"] / out["floor_s"]
    if args.linux:
        k = find_default_kernel()
        with LinuxGuest(k, initramfs_for(k, log), build=False, log=lambda s: None) as g:
            out["linux_hello_s"] = g.hello_seconds
            g.shutdown()
        out["hello_ratio[linux/trackb]"] = out["linux_hello_s"] / out["hello_s"]
    return out


def run_once(args, log) -> dict:
    if getattr(args, "guest", "linux") == "trackb":
        return run_trackb(args, log)
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
            out[f"hello_s{label}"] = g.hello_seconds
            out[f"guest_uptime_ms{label}"] = float(g.hello.uptime_ms)
            g.shutdown()
        out[f"kernel_bytes{label}"] = float(k.stat().st_size)
        out[f"initramfs_bytes{label}"] = float(initrd.stat().st_size)
    for i, k in enumerate(kernels[1:], 1):
        out[f"hello_ratio[{k.name}/{kernels[0].name}]"] = out[f"hello_s{_label(i, k)}"] / out["hello_s"]
    return out


def plot(doc, png):
    from .plot import runs_and_medians
    if doc["parameters"].get("guest") == "trackb":
        metrics = [m for m in ("floor_s", "hello_s", "linux_hello_s") if m in doc["median"]]
        labels = {"floor_s": "QEMU floor", "hello_s": "Track B", "linux_hello_s": "Linux"}
        runs_and_medians(doc, metrics, png, title="QEMU start to AgentX HELLO (TCG): Track B vs floor and Linux",
                         ylabel="seconds", labels=[labels[m] for m in metrics])
        return
    metrics = sorted(k for k in doc["median"] if k.startswith("hello_s"))
    first = Path(str((doc["parameters"].get("kernel") or ["Debian cloud kernel"])[0])).name
    labels = [m.replace("hello_s", "").strip("[]") or first for m in metrics]
    runs_and_medians(doc, metrics, png, title="QEMU start to AgentX HELLO (TCG)", ylabel="seconds", labels=labels)


BENCHMARK = Benchmark(name="boot", plot=plot, help="boot time to AgentX HELLO (QEMU TCG)", run_once=run_once,
                      add_arguments=add_arguments, default_runs=5,
                      units={"hello_s": "s", "guest_uptime_ms": "ms", "kernel_bytes": "B", "initramfs_bytes": "B",
                             "floor_s": "s", "linux_hello_s": "s"})
