"""`wslx kconfig {check,build,generate,list}`: kernel config fragments from kernel-config/."""
from __future__ import annotations

import sys

from ._args import existing_file, existing_file_or_dir, output_dir, output_file, positive_int

BASE_HELP = ("base config: tinyconfig (default), allnoconfig, defconfig, a .config PATH, or allno+fragment "
             "(allnoconfig with the merged fragments as KCONFIG_ALLCONFIG, as merge_config.sh -n)")
SOURCE_HELP = "Linux source: 6.1 or 6.12 (Debian's linux-source packages), a tree or a tarball (default: $KSOURCE, then 6.1)"


def register(sub) -> None:
    p = sub.add_parser("kconfig", help="validate and build Linux config fragments from kernel-config/")
    ksub = p.add_subparsers(dest="kconfig_command", metavar="ACTION", required=True)

    check = ksub.add_parser("check", help="merge a profile or fragment onto a base config and explain every loss")
    what = check.add_mutually_exclusive_group()
    what.add_argument("--profile", "-p", help="profile from kernel-config/profiles.py")
    what.add_argument("fragments", nargs="*", type=existing_file_or_dir, default=[], metavar="FRAGMENT",
                      help="fragment files or directories (their files in name order), merged in the given order")
    check.add_argument("--base", help=BASE_HELP)
    check.add_argument("--source", help=SOURCE_HELP)
    check.add_argument("--json", action="store_true", help="machine-readable report on stdout")
    check.add_argument("--all", action="store_true", help="check every profile")
    check.set_defaults(func=_check)

    build = ksub.add_parser("build", help="build (or reuse from cache) a bzImage for a profile or fragment")
    bwhat = build.add_mutually_exclusive_group(required=True)
    bwhat.add_argument("--profile", "-p")
    bwhat.add_argument("--fragment", type=existing_file)
    build.add_argument("--output", "-o", type=output_file, help="also copy the image here (default images/linux-P.bzImage)")
    build.add_argument("--source", help=SOURCE_HELP)
    build.add_argument("--jobs", "-j", type=positive_int, help="make -j (default: number of CPUs)")
    build.set_defaults(func=_build)

    gen = ksub.add_parser("generate", help="write images/<profile>.config fragments (scons does this too)")
    gen.add_argument("--profile", "-p", action="append", help="only this profile (repeatable)")
    gen.add_argument("--out", type=output_dir, help="output folder (default images/)")
    gen.set_defaults(func=_generate)

    lst = ksub.add_parser("list", help="list profiles and their features")
    lst.set_defaults(func=_list)


def _guard(fn):
    """User errors become one clear line on stderr and exit status 2 (no traceback)."""
    def wrapped(args) -> int:
        from ..kconfig.errors import KconfigError
        try:
            return fn(args)
        except KconfigError as exc:
            print(f"wslx kconfig: error: {exc}", file=sys.stderr)
            return 2
    return wrapped


@_guard
def _check(args) -> int:
    from ..kconfig.check import check_fragments, check_profile, format_report
    from ..kconfig.declarations import profile_names
    from ..kconfig.source import find_source

    log = (lambda msg: print(msg, file=sys.stderr)) if args.json else print
    tree = find_source(args.source, log=log)
    if args.all:
        reports = [check_profile(name, tree=tree, base=args.base) for name in profile_names()]
    elif args.fragments:
        reports = [check_fragments(args.fragments, tree=tree, base=args.base)]
    else:
        reports = [check_profile(args.profile or "qemu", tree=tree, base=args.base)]
    if args.json:
        import json
        data = [json.loads(r.to_json()) for r in reports]
        print(json.dumps(data[0] if len(data) == 1 else data, indent=2))
    else:
        print("\n\n".join(format_report(r) for r in reports))
    return 0 if all(r.ok for r in reports) else 1


@_guard
def _build(args) -> int:
    from .. import repo_root
    from ..kconfig.build import build_fragment, build_kernel

    if args.profile:
        output = args.output or repo_root() / "images" / f"linux-{args.profile}.bzImage"
        build_kernel(args.profile, output=output, source=args.source, jobs=args.jobs)
    else:
        build_fragment(args.fragment, output=args.output, source=args.source, jobs=args.jobs)
    return 0


@_guard
def _generate(args) -> int:
    from .. import repo_root
    from ..kconfig.declarations import profile_names, resolve_profile
    from ..kconfig.fragment import write_profile_fragment

    out = args.out or repo_root() / "images"
    for name in args.profile or profile_names():
        path = out / f"{name}.config"
        write_profile_fragment(resolve_profile(name), path)
        print(path)
    return 0


@_guard
def _list(args) -> int:
    from ..kconfig.declarations import load_features, load_profiles

    features = load_features()
    for profile in load_profiles().values():
        print(f"{profile.name}: {profile.reason}")
        print(f"  features: {', '.join(profile.features)}")
        print(f"  vsock: {profile.vsock_transports}")
    print("features:")
    for f in features.values():
        print(f"  {f.name:<14}{len(f.symbols):>3} symbols  {f.reason}")
    return 0
