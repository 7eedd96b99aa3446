"""`wslx bench codec`: encode+decode rate of AgentX frames in the Python codec.

small_frames_per_s   an EXEC of ["/bin/true"] (target: >= 100,000/s)
stdio4k_frames_per_s a STDIO frame with 4 KiB of data
construct_small_frames_per_s  the same EXEC through the normative construct spec,
                     measured in the same run, to show why the fast path exists
"""
from __future__ import annotations

import os
import time

from ..agentx import codec
from ..spec.agentx import MsgType, Stream
from . import Benchmark
from ..commands._args import positive_float

SMALL = dict(flags=0, argv=["/bin/true"], env=[], cwd="/")


def _rate(fn, seconds: float) -> float:
    n, t0 = 0, time.perf_counter()
    batch = 2000
    while True:
        for _ in range(batch):
            fn()
        n += batch
        dt = time.perf_counter() - t0
        if dt >= seconds:
            return n / dt


def run_once(args, log) -> dict:
    stdio = dict(pid=42, stream=Stream.STDOUT, flags=0, data=os.urandom(4096))

    def small():
        codec.decode_frame(codec.encode_frame(MsgType.EXEC, SMALL, request_id=7))

    def stdio4k():
        codec.decode_frame(codec.encode_frame(MsgType.STDIO, stdio))

    def small_construct():
        f = codec.build_frame_reference(MsgType.EXEC, SMALL, request_id=7)
        codec.parse_header(f)
        codec.parse_body_reference(MsgType.EXEC, f[24:])

    return {
        "small_frames_per_s": _rate(small, args.seconds),
        "stdio4k_frames_per_s": _rate(stdio4k, args.seconds),
        "construct_small_frames_per_s": _rate(small_construct, args.seconds / 2),
    }


def add_arguments(p):
    p.add_argument("--seconds", type=positive_float, default=1.0, help="measuring time per metric per run (default 1)")


def plot(doc, png):
    from .plot import runs_and_medians
    metrics = ["small_frames_per_s", "stdio4k_frames_per_s", "construct_small_frames_per_s"]
    runs_and_medians(doc, metrics, png, title="AgentX Python codec, encode+decode", ylabel="frames per second",
                     labels=["EXEC (fast)", "STDIO 4 KiB (fast)", "EXEC (construct)"])


BENCHMARK = Benchmark(name="codec", plot=plot, help="encode+decode rate of the AgentX Python codec", run_once=run_once,
                      add_arguments=add_arguments, default_runs=5,
                      units={"small_frames_per_s": "frames/s", "stdio4k_frames_per_s": "frames/s",
                             "construct_small_frames_per_s": "frames/s"})
