"""`wslx bench NAME --out DIR [--runs N]`."""
from __future__ import annotations

from pathlib import Path

from ..bench import all_benchmarks, run_benchmark


def register(sub):
    p = sub.add_parser("bench", help="run a benchmark several times and write DIR/NAME.json")
    bsub = p.add_subparsers(dest="benchmark", metavar="NAME", required=True)
    for name, b in sorted(all_benchmarks().items()):
        bp = bsub.add_parser(name, help=b.help)
        bp.add_argument("--out", type=Path, default=Path("images/bench"), help="output folder (default images/bench)")
        bp.add_argument("--runs", type=int, default=b.default_runs, help=f"number of runs (default {b.default_runs})")
        if b.add_arguments:
            b.add_arguments(bp)
        bp.set_defaults(func=lambda args, b=b: _run(b, args))


def _run(bench, args) -> int:
    run_benchmark(bench, args, args.runs, args.out)
    return 0
