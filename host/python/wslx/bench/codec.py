"""`wslx bench codec`: encode+decode rate of AgentX frames in the host codec.

small_frames_per_s_c       an EXEC of ["/bin/true"] through the C path (the generated C
                           encoder/decoder via cffi, wslx.agentx.ccodec), with the public
                           encode_frame/decode_frame (target: >= 1,000,000/s); absent when
                           the C library is not built
small_frames_per_s_python  the same through the Python path (encode_frame_python /
                           decode_frame_python; target: >= 150,000/s)
small_frames_per_cpu_s_*   the same per second of this process's CPU time: what the codec costs,
                           without the time other helpers' QEMUs take the shared cores away
c_vs_python_x              small_frames_per_s_c / small_frames_per_s_python, same run
small_frames_per_s         the same through whichever path the codec chose (codec.BACKEND)
stdio4k_frames_per_s       a STDIO frame with 4 KiB of data, chosen path
construct_small_frames_per_s  the EXEC through the normative construct spec,
                           measured in the same run, to show why the fast paths exist
host_loadavg_1m            how busy the machine was (the cores are shared)
"""
from __future__ import annotations

import os
import time

from ..agentx import codec
from ..spec.agentx import MsgType, Stream
from . import Benchmark
from ..commands._args import positive_float

SMALL = dict(flags=0, argv=["/bin/true"], env=[], cwd="/")


def _rate(fn, seconds: float, clock=time.perf_counter) -> float:
    n, t0 = 0, clock()
    batch = 2000
    while True:
        for _ in range(batch):
            fn()
        n += batch
        dt = clock() - t0
        if dt >= seconds:
            return n / dt


def run_once(args, log) -> dict:
    stdio = dict(pid=42, stream=Stream.STDOUT, flags=0, data=os.urandom(4096))

    def small():
        codec.decode_frame(codec.encode_frame(MsgType.EXEC, SMALL, request_id=7))

    def stdio4k():
        codec.decode_frame(codec.encode_frame(MsgType.STDIO, stdio))

    def small_python():
        codec.decode_frame_python(codec.encode_frame_python(MsgType.EXEC, SMALL, request_id=7))

    def small_construct():
        f = codec.build_frame_reference(MsgType.EXEC, SMALL, request_id=7)
        codec.parse_header(f)
        codec.parse_body_reference(MsgType.EXEC, f[24:])

    out = {}
    paths = [("c", small)] if codec.BACKEND == "c" else []
    for name, fn in paths + [("python", small_python)]:
        out[f"small_frames_per_s_{name}"] = _rate(fn, args.seconds)
        out[f"small_frames_per_cpu_s_{name}"] = _rate(fn, args.seconds, time.process_time)
    if "small_frames_per_s_c" in out:
        out["c_vs_python_x"] = out["small_frames_per_s_c"] / out["small_frames_per_s_python"]
    return out | {
        "small_frames_per_s": _rate(small, args.seconds),
        "stdio4k_frames_per_s": _rate(stdio4k, args.seconds),
        "construct_small_frames_per_s": _rate(small_construct, args.seconds / 2),
        "host_loadavg_1m": os.getloadavg()[0],
    }


def add_arguments(p):
    p.add_argument("--seconds", type=positive_float, default=1.0, help="measuring time per metric per run (default 1)")


def plot(doc, png):
    from .plot import runs_and_medians
    metrics = ["small_frames_per_s_c", "small_frames_per_s_python", "stdio4k_frames_per_s",
               "construct_small_frames_per_s"]
    labels = ["EXEC (C)", "EXEC (Python)", "STDIO 4 KiB", "EXEC (construct)"]
    present = [(m, l) for m, l in zip(metrics, labels) if m in doc["median"]]
    runs_and_medians(doc, [m for m, _ in present], png, title="AgentX host codec, encode+decode",
                     ylabel="frames per second", labels=[l for _, l in present])


BENCHMARK = Benchmark(name="codec", plot=plot, help="encode+decode rate of the AgentX host codec (C and Python paths)", run_once=run_once,
                      add_arguments=add_arguments, default_runs=5,
                      units={"small_frames_per_s": "frames/s", "stdio4k_frames_per_s": "frames/s",
                             "construct_small_frames_per_s": "frames/s", "small_frames_per_s_c": "frames/s",
                             "small_frames_per_s_python": "frames/s", "c_vs_python_x": "x", "host_loadavg_1m": "",
                             "small_frames_per_cpu_s_c": "frames/CPU s", "small_frames_per_cpu_s_python": "frames/CPU s"})
