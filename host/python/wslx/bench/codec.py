"""`wslx bench codec`: encode+decode rate of AgentX frames in the host codec.

What a host talking to many guests does: it writes bursts of requests and reads
whole receive buffers of replies and events. Every figure is frames per second
for one encode plus one decode of each frame, all body dicts built:

small_frames_per_s_c       the batch path, as a host does it: BATCH small EXEC frames
                           (argv ["/bin/true"], request ids 1..BATCH) encoded into one buffer
                           by codec.encode_frames (one C call), that buffer fed to a
                           FrameReader and every frame taken with next() (one C call decodes
                           the whole buffer into Frame objects; wslx.agentx.ccodec: the CPython
                           extension where built, else the cffi glue), every Frame, body dict,
                           list and str built, garbage collection included
                           (target: >= 1,000,000/s); absent when the C library is not built
small_frames_per_s_c_per_frame  the same frames one at a time through C: encode_frame then
                           decode_frame, one C call each
small_frames_per_s_python  the same one at a time through the Python path
                           (encode_frame_python / decode_frame_python; target: >= 150,000/s)
small_frames_per_cpu_s_*   each of the above per second of this process's CPU time: what the
                           codec costs, without the time other helpers' QEMUs take the cores
                           (the three small-frame paths take turns in short slices, wall and
                           CPU time read around the same calls, so they see the same load)
c_vs_python_x              small_frames_per_s_c / small_frames_per_s_python, same run
c_vs_python_cpu_x          the same per CPU second
c_batch_capi               1 when the C figures went through the CPython extension, 0 through
                           the cffi glue (WSLX_CODEC=cffi); absent without C
batch_frames               BATCH, the frames per buffer of the batch figures
small_frames_per_s         one at a time through whichever path the codec chose (codec.BACKEND)
stdio4k_frames_per_s       a STDIO frame with 4 KiB of data, one at a time, chosen path
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
BATCH = 1000


def _rate(fn, seconds: float, clock=time.perf_counter, frames_per_call: int = 1) -> float:
    n, t0 = 0, clock()
    calls = max(1, 2000 // frames_per_call)
    while True:
        for _ in range(calls):
            fn()
        n += calls * frames_per_call
        dt = clock() - t0
        if dt >= seconds:
            return n / dt


SLICES = 20  # turns each small-frame path takes in _interleaved


def _interleaved(paths, seconds: float) -> dict:
    """{name: (frames per wall second, frames per CPU second)} of paths [(name, fn, frames per call)]
    taking turns in SLICES short slices of 2 * seconds / SLICES each, both clocks read around the same
    calls: on a shared machine the load changes within a second, and measured one after the other
    the paths (and their ratio) would each see a different load."""
    totals = {name: [0, 0.0, 0.0] for name, _, _ in paths}
    for _ in range(SLICES):
        for name, fn, per_call in paths:
            calls, t = max(1, 200 // per_call), totals[name]
            w0, c0 = time.perf_counter(), time.process_time()
            while True:
                for _ in range(calls):
                    fn()
                t[0] += calls * per_call
                w = time.perf_counter() - w0
                if w >= 2 * seconds / SLICES:
                    break
            t[1] += w
            t[2] += time.process_time() - c0
    return {name: (n / wall, n / cpu) for name, (n, wall, cpu) in totals.items()}


def run_once(args, log) -> dict:
    stdio = dict(pid=42, stream=Stream.STDOUT, flags=0, offset=1 << 20, data=os.urandom(4096))
    burst = [(MsgType.EXEC, SMALL, rid, 0) for rid in range(1, BATCH + 1)]

    def small_batch():
        reader = codec.FrameReader()
        reader.feed(codec.encode_frames(burst))
        got = 0
        while reader.next() is not None:
            got += 1
        if got != BATCH:
            raise RuntimeError(f"batch path decoded {got} of {BATCH} frames")

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

    out = {"c_batch_capi": int(codec._C.capi is not None)} if codec.BACKEND == "c" else {}
    paths = [("c", small_batch, BATCH), ("c_per_frame", small, 1)] if codec.BACKEND == "c" else []
    for name, (wall, cpu) in _interleaved(paths + [("python", small_python, 1)], args.seconds).items():
        out[f"small_frames_per_s_{name}"] = wall
        out[f"small_frames_per_cpu_s_{name}"] = cpu
    if "small_frames_per_s_c" in out:
        out["c_vs_python_x"] = out["small_frames_per_s_c"] / out["small_frames_per_s_python"]
        out["c_vs_python_cpu_x"] = out["small_frames_per_cpu_s_c"] / out["small_frames_per_cpu_s_python"]
        out["batch_frames"] = BATCH
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
    metrics = ["small_frames_per_s_c", "small_frames_per_s_c_per_frame", "small_frames_per_s_python",
               "stdio4k_frames_per_s", "construct_small_frames_per_s"]
    labels = ["EXEC (C, batch)", "EXEC (C, per frame)", "EXEC (Python)", "STDIO 4 KiB", "EXEC (construct)"]
    present = [(m, l) for m, l in zip(metrics, labels) if m in doc["median"]]
    runs_and_medians(doc, [m for m, _ in present], png, title="AgentX host codec, encode+decode",
                     ylabel="frames per second", labels=[l for _, l in present])


BENCHMARK = Benchmark(name="codec", plot=plot, help="encode+decode rate of the AgentX host codec (C and Python paths)", run_once=run_once,
                      add_arguments=add_arguments, default_runs=5,
                      units={"small_frames_per_s": "frames/s", "stdio4k_frames_per_s": "frames/s",
                             "construct_small_frames_per_s": "frames/s", "small_frames_per_s_c": "frames/s",
                             "small_frames_per_s_python": "frames/s", "c_vs_python_x": "x", "c_vs_python_cpu_x": "x", "host_loadavg_1m": "",
                             "small_frames_per_cpu_s_c": "frames/CPU s", "small_frames_per_cpu_s_python": "frames/CPU s",
                             "small_frames_per_s_c_per_frame": "frames/s",
                             "small_frames_per_cpu_s_c_per_frame": "frames/CPU s", "batch_frames": "frames", "c_batch_capi": ""})
