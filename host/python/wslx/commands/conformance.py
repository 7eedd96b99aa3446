"""`wslx conformance --target NAME`: the AgentX conformance suite against an agent."""
from __future__ import annotations

import sys

from ._args import existing_file, kernel_image, output_file, positive_float


def register(sub):
    from ..conformance.targets import TARGETS
    p = sub.add_parser("conformance", help="run the AgentX conformance suite against an agent")
    p.add_argument("--target", required=True, choices=sorted(TARGETS), help="which agent to test")
    p.add_argument("-k", dest="patterns", action="append", help="only cases matching this pattern (repeatable)")
    p.add_argument("--junit", type=output_file, help="write a JUnit XML report here")
    p.add_argument("--markdown", type=output_file, help="write a Markdown report here")
    p.add_argument("--timeout", type=positive_float, default=10.0, help="seconds per wait (default 10)")
    p.add_argument("--kernel", type=kernel_image, help="guest kernel (VM targets)")
    p.add_argument("--initrd", type=existing_file, help="guest initramfs (VM targets)")
    p.add_argument("--hv-profile", choices=["hyperv", "openvmm-kvm", "none"], default="hyperv",
                   help="trackb-hv-host, trackb --vmm hvsim: the wslx.hv host profile (default hyperv)")
    p.add_argument("--vmm", choices=["qemu", "hvsim"], default="qemu",
                   help="trackb: plain QEMU (virtio-console) or hvsim (QEMU beside the Hyper-V model, hv_sock)")
    p.add_argument("--list", action="store_true", help="list the cases and exit")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..agentx.errors import AgentXError
    from ..conformance.runner import format_table, run_suite, select_cases, write_junit, write_markdown
    from ..conformance.targets import TARGETS
    from ..hv.errors import HvError
    from ..vmm.errors import VMError
    if not args.list and not select_cases(args.patterns):   # before a VM is booted for nothing
        print(f"wslx conformance: error: -k {' -k '.join(args.patterns)} matches no case "
              f"(see wslx conformance --list)", file=sys.stderr)
        return 2

    if args.list:
        for c in select_cases(args.patterns):
            print(f"{c.name:40} {c.doc}")
        return 0
    if args.vmm != "qemu" and args.target != "trackb":
        print(f"wslx conformance: --vmm {args.vmm} applies to --target trackb only", file=sys.stderr)
        return 2
    print(f"[conformance] starting target {args.target} ...", flush=True)
    try:
        with TARGETS[args.target](timeout=args.timeout, kernel=args.kernel, initrd=args.initrd,
                                  hv_profile=args.hv_profile, vmm=args.vmm) as t:
            report = run_suite(t, patterns=args.patterns, timeout=args.timeout,
                               log=lambda s: print(s, flush=True))
    except (AgentXError, VMError, HvError) as e:   # the agent, its VM or its model failed: what, where the logs are
        print(f"wslx conformance: target {args.target} failed: {e}", file=sys.stderr)
        return 1
    print()
    print(format_table(report))
    if args.junit:
        write_junit(report, args.junit)
        print(f"JUnit report: {args.junit}")
    if args.markdown:
        write_markdown(report, args.markdown)
        print(f"Markdown report: {args.markdown}")
    return 0 if report.ok else 1
