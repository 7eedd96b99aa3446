"""`wslx bench resync`: how long a receiver takes to get back in step after magic-dense
garbage (issue 11, item 6): SIZE bytes of repeated "AGTX" (every 4th byte starts a
candidate header whose CRC fails), then one PING.

c_rx_s                 guest/agentx/agentx_rx.c (the receive path of wslx-init and the Track B
                       agent) built for the host (build/agentx/agentx-rx-driver), fed in 4 KiB
                       chunks: from the first byte until the PING is delivered
python_reader_s        wslx.agentx.codec.FrameReader (the reference agent's and the host
                       client's reader), the same input and chunks
<target>_agtx_s        end to end, per --targets (reference, init-host, trackb-host, trackb, linux):
                       the garbage and the PING sent on a connected agent, until its PONG
<target>_zeros_s       the same with SIZE zero bytes (no magic at all): the transport and the
                       plain scan, measured in the same run, so agtx - zeros is the resync cost

Target (issue 11): <= 0.5 s for 1 MiB on the C receive paths (init and Track B).
"""
from __future__ import annotations

import subprocess
import time

from ..agentx import codec
from ..agentx.errors import ProtocolError
from ..spec.agentx import MsgType
from . import Benchmark

PING_RID = 0x7FFF_0001
HOST_TARGETS = ("reference", "init-host", "trackb-host")


def garbage(kind: str, size: int) -> bytes:
    return codec.MAGIC_BYTES * (size // len(codec.MAGIC_BYTES)) if kind == "agtx" else bytes(size)


def _ping(rid: int = PING_RID) -> bytes:
    return codec.encode_frame(MsgType.PING, dict(data=b"resync"), request_id=rid)


def c_rx_seconds(driver, data: bytes, chunk: int = 4096) -> float:
    """Time the host build of agentx_rx.c takes to deliver the last frame of data."""
    out = subprocess.run([str(driver), "--chunk", str(chunk)], input=data, capture_output=True, check=True,
                         timeout=600).stdout.decode().split()
    frames = out.count("frame")
    if frames != 1:
        raise RuntimeError(f"{driver}: expected the PING alone to be delivered, got {frames} frames")
    return int(out[out.index("last_frame_ns") + 1]) / 1e9


def python_reader_seconds(data: bytes, chunk: int = 4096) -> float:
    r = codec.FrameReader()
    t0 = time.perf_counter()
    for i in range(0, len(data), chunk):
        r.feed(data[i:i + chunk])
        while True:
            try:
                f = r.next()
            except ProtocolError:
                continue
            if f is None:
                break
            if f.request_id == PING_RID:
                return time.perf_counter() - t0
    raise RuntimeError("FrameReader never delivered the PING after the garbage")


def agent_seconds(client, data: bytes, timeout: float) -> float:
    """Garbage then a PING on a connected agent; seconds until its PONG."""
    client.ping(b"warm", timeout=timeout)
    t0 = time.perf_counter()
    client.send_raw(data + _ping(), timeout=timeout)
    f = client.wait_reply(PING_RID, timeout=timeout)
    dt = time.perf_counter() - t0
    if f.type != MsgType.PONG:
        raise RuntimeError(f"{client.name}: answered the PING after the garbage with {f.name}: {f.body}")
    return dt


def add_arguments(p):
    p.add_argument("--size", type=int, default=1 << 20, help="garbage bytes (default 1 MiB)")
    p.add_argument("--targets", default=",".join(HOST_TARGETS),
                   help=f"agents measured end to end, comma separated (default {','.join(HOST_TARGETS)}; "
                        "VMs: trackb, linux)")
    p.add_argument("--timeout", type=float, default=120.0, help="per measurement (default 120 s)")


def run_once(args, log) -> dict:
    from .. import repo_root
    from ..conformance.targets import TARGETS
    driver = repo_root() / "build" / "agentx" / "agentx-rx-driver"
    if not driver.exists():
        raise RuntimeError(f"{driver} is missing: build it with `.venv/bin/scons -Q agentx-rx-host`")
    out = {}
    agtx = garbage("agtx", args.size) + _ping()
    out["c_rx_s"] = c_rx_seconds(driver, agtx)
    out["python_reader_s"] = python_reader_seconds(agtx)
    for name in [t for t in args.targets.split(",") if t]:
        if name not in TARGETS:
            raise SystemExit(f"unknown target {name!r}; known: {', '.join(sorted(TARGETS))}")
        log(f"[bench resync] {name}: starting")
        with TARGETS[name](timeout=args.timeout) as t:
            t.client.wait_hello(timeout=args.timeout)
            for kind in ("zeros", "agtx"):
                out[f"{name}_{kind}_s"] = agent_seconds(t.client, garbage(kind, args.size), args.timeout)
            shutdown = getattr(t, "shutdown", None)
            if shutdown:
                shutdown()
    return out


def plot(doc, png):
    from .plot import grouped_runs_and_medians
    metrics = sorted(doc["median"])
    groups = [("receive path alone", [m for m in metrics if m in ("c_rx_s", "python_reader_s")]),
              ("end to end: magic-dense", [m for m in metrics if m.endswith("_agtx_s")]),
              ("end to end: zeros (baseline)", [m for m in metrics if m.endswith("_zeros_s")])]
    size = doc["parameters"].get("size", 1 << 20)
    grouped_runs_and_medians(doc, [g for g in groups if g[1]], png,
                             title=f"AgentX resync after {size / 1024:.0f} KiB of garbage, seconds", log=True)


BENCHMARK = Benchmark(name="resync", help="time to resynchronise after magic-dense garbage (agentx_rx, agents)",
                      run_once=run_once, add_arguments=add_arguments, plot=plot, default_runs=5,
                      units={"c_rx_s": "s", "python_reader_s": "s", "reference_agtx_s": "s", "reference_zeros_s": "s",
                             "init-host_agtx_s": "s", "init-host_zeros_s": "s", "trackb-host_agtx_s": "s",
                             "trackb-host_zeros_s": "s", "trackb_agtx_s": "s", "trackb_zeros_s": "s",
                             "linux_agtx_s": "s", "linux_zeros_s": "s"})
