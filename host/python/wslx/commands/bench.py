"""`wslx bench NAME --out DIR [--runs N]`."""
from __future__ import annotations


from .. import repo_root
from ..bench import all_benchmarks, run_benchmark
from ._args import output_dir, positive_int


def register(sub):
    p = sub.add_parser("bench", help="run a benchmark several times and write DIR/NAME.json")
    bsub = p.add_subparsers(dest="benchmark", metavar="NAME", required=True)
    for name, b in sorted(all_benchmarks().items()):
        bp = bsub.add_parser(name, help=b.help)
        bp.add_argument("--out", type=output_dir, default=None,
                        help="output folder (default images/bench; images/bench/GUEST for a --guest other than linux, "
                             "images/bench/GUEST-VMM for a --vmm other than qemu)")
        bp.add_argument("--runs", type=positive_int, default=b.default_runs, help=f"number of runs (default {b.default_runs})")
        if b.add_arguments:
            b.add_arguments(bp)
        bp.set_defaults(func=lambda args, b=b: _run(b, args))


def _run(bench, args) -> int:
    if args.out is None:  # another guest's figures must not overwrite the Linux ones
        guest = getattr(args, "guest", "linux")
        base = repo_root() / "images" / "bench"   # not the working directory's images/
        vmm = getattr(args, "vmm", "qemu")
        args.out = base / (guest if vmm == "qemu" else f"{guest}-{vmm}") if (guest, vmm) != ("linux", "qemu") else base
    run_benchmark(bench, args, args.runs, args.out)
    return 0
