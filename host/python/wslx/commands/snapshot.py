"""`wslx snapshot save|restore|clone|list|verify|rm`: VM snapshots (see wslx.snapshot)."""
from __future__ import annotations

import os
import sys
from pathlib import Path


def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def register(sub):
    p = sub.add_parser("snapshot", help="save, restore, clone, list, verify and remove VM snapshots")
    ssub = p.add_subparsers(dest="snapshot_command", metavar="ACTION", required=True)

    s = ssub.add_parser("save", help="boot a fresh guest, quiesce it, save it to SNAPDIR and stop it")
    s.add_argument("snapdir", type=Path, metavar="SNAPDIR")
    s.add_argument("--guest", choices=["linux", "trackb"], default="linux", help="which guest to boot (default linux)")
    s.add_argument("--vm", type=Path, metavar="RUNDIR",
                   help="snapshot a guest started with `wslx boot --stay` (its run dir) instead of booting one")
    s.add_argument("--keep-running", action="store_true",
                   help="resume the guest after the save instead of stopping it (with --vm: it stays up)")
    path = s.add_mutually_exclusive_group()
    path.add_argument("--fast", dest="fast", action="store_true", default=True,
                      help="guest RAM in a shared file, left out of the state stream (default)")
    path.add_argument("--anonymous-ram", dest="fast", action="store_false", help="RAM saved in the state stream")
    s.add_argument("--kernel", type=Path, help="kernel image (default: as `wslx boot`)")
    s.add_argument("--append", default="", help="extra kernel command-line words")
    s.add_argument("--timeout", type=float, default=60.0, help="seconds to wait for HELLO (default 60)")
    s.add_argument("--quiesce-timeout", type=float, default=30.0, help="seconds the guest may take to quiesce")
    s.set_defaults(func=save_cmd)

    r = ssub.add_parser("restore", help="restore SNAPDIR, resume it, run CMD if given, shut it down")
    r.add_argument("snapdir", type=Path, metavar="SNAPDIR")
    r.add_argument("--stay", action="store_true", help="keep the guest up until Ctrl-C")
    r.add_argument("--ram", choices=["private", "copy"], default="private",
                   help="map the snapshot's RAM copy-on-write (default) or copy it (the VM can be saved fast again)")
    r.add_argument("--full-verify", action="store_true", help="re-hash every file, not only files changed since checked")
    r.add_argument("--run-timeout", type=float, default=3600.0, help="seconds CMD may run (default 3600)")
    r.add_argument("command", nargs="*", metavar="-- CMD ARGS", help="command to run in the restored guest")
    r.set_defaults(func=restore_cmd)

    c = ssub.add_parser("clone", help="restore N clones of SNAPDIR at once and run CMD in each")
    c.add_argument("snapdir", type=Path, metavar="SNAPDIR")
    c.add_argument("--count", type=int, default=2, help="number of clones (default 2)")
    c.add_argument("--run-timeout", type=float, default=3600.0, help="seconds CMD may run (default 3600)")
    c.add_argument("command", nargs="+", metavar="-- CMD ARGS", help="command to run in every clone")
    c.set_defaults(func=clone_cmd)

    ls = ssub.add_parser("list", help="list the snapshots in a directory")
    ls.add_argument("root", type=Path, nargs="?", default=Path("."), metavar="DIR", help="default: .")
    ls.set_defaults(func=list_cmd)

    v = ssub.add_parser("verify", help="check SNAPDIR's manifest and digests (exit 1 on any mismatch)")
    v.add_argument("snapdir", type=Path, metavar="SNAPDIR")
    v.set_defaults(func=verify_cmd)

    rm = ssub.add_parser("rm", help="remove snapshots (complete or incomplete)")
    rm.add_argument("snapdirs", type=Path, nargs="+", metavar="SNAPDIR")
    rm.set_defaults(func=rm_cmd)


def _argv(command: list[str]) -> list[str]:
    return command[1:] if command and command[0] == "--" else command


def _errors():
    from ..agentx.errors import AgentXError
    from ..vmm.errors import VMError
    return (VMError, AgentXError)


def _die_at(stage: str) -> None:
    """Test hook: WSLX_SNAPSHOT_DIE_AT=stage kills this process there (a save killed half-way)."""
    if os.environ.get("WSLX_SNAPSHOT_DIE_AT") == stage:
        os.kill(os.getpid(), 9)


def save_cmd(args) -> int:
    from ..snapshot import fast_path_kw, save
    kw = fast_path_kw() if args.fast else {}
    try:
        if args.vm is not None:
            from ..snapshot.attach import AttachedGuest
            guest = AttachedGuest(args.vm, timeout=args.timeout, log=_log)
            if not args.fast:
                _log("[snapshot] --anonymous-ram: RAM goes into the state stream")
        elif args.guest == "trackb":
            from ..guests.trackb import TrackBGuest
            guest = TrackBGuest(args.kernel, append=args.append, hello_timeout=args.timeout, log=_log, **kw)
        else:
            from ..guests.linux import LinuxGuest
            guest = LinuxGuest(args.kernel, append=args.append, hello_timeout=args.timeout, log=_log, **kw)
        with guest as g:
            _die_at("booted")
            r = save(g, args.snapdir, keep_running=args.keep_running, quiesce_timeout=args.quiesce_timeout, log=_log,
                     on_stage=_die_at, ignore_shared=args.fast)
            if args.keep_running and args.vm is None:
                g.shutdown()
        if args.vm is None:
            from ..snapshot.attach import cleanup
            cleanup(guest)  # the booted guest's RAM file, if the save copied it (--keep-running)
        print(f"saved {r.path}: {r.manifest.guest}, {r.manifest.ram_mode} RAM, {r.bytes / 1e6:.1f} MB on disk; "
              f"quiesce {r.quiesce_ms:.1f} ms, save {r.save_ms:.1f} ms after stop")
        return 0
    except _errors() as e:
        print(f"wslx snapshot save: {e}", file=sys.stderr)
        return 1


def _emit(stream, prefix: bytes = b""):
    def write(data: bytes):
        stream.write(prefix + data if prefix else data)
        stream.flush()
    return write


def restore_cmd(args) -> int:
    from ..agentx.errors import RemoteError
    from ..snapshot import RestoredGuest
    argv = _argv(args.command)
    try:
        with RestoredGuest(args.snapdir, ram=args.ram, full_verify=args.full_verify, log=_log) as g:
            print(f"restored {args.snapdir} ({g.manifest.guest}) to RESUMED in {g.timings['resumed_s'] * 1000:.1f} ms; "
                  f"run dir {g.vm.run_dir}", file=sys.stderr, flush=True)
            status = 0
            if argv:
                p = g.client.exec(argv, on_stdout=_emit(sys.stdout.buffer), on_stderr=_emit(sys.stderr.buffer))
                st = p.wait(timeout=args.run_timeout)
                status = st.returncode
            if args.stay:
                _log("[snapshot] guest is up; Ctrl-C to shut it down")
                g.vm.stay()
            g.shutdown()
        return status
    except RemoteError as e:
        print(f"wslx snapshot restore: cannot run {argv[0]!r} in the guest: {e}", file=sys.stderr)
        return 127 if e.code == 2 else 126
    except _errors() as e:
        print(f"wslx snapshot restore: {e}", file=sys.stderr)
        return 1


def clone_cmd(args) -> int:
    from ..snapshot import clones
    argv = _argv(args.command)
    if args.count < 1:
        print("wslx snapshot clone: --count must be at least 1", file=sys.stderr)
        return 2
    try:
        with clones(args.snapdir, args.count, log=_log) as guests:
            procs = [g.client.exec(argv, on_stdout=_emit(sys.stdout.buffer, f"[clone {i}] ".encode()),
                                   on_stderr=_emit(sys.stderr.buffer, f"[clone {i}] ".encode()))
                     for i, g in enumerate(guests)]
            statuses = [p.wait(timeout=args.run_timeout) for p in procs]
            for g in guests:
                g.shutdown()
        for i, st in enumerate(statuses):
            _log(f"[clone {i}] {st}")
        return next((st.returncode for st in statuses if st.returncode), 0)
    except _errors() as e:
        print(f"wslx snapshot clone: {e}", file=sys.stderr)
        return 1


def list_cmd(args) -> int:
    from ..snapshot import list_snapshots
    rows = list_snapshots(args.root)
    if not rows:
        print(f"no snapshots in {args.root}")
        return 0
    print(f"{'STATE':<11} {'GUEST':<7} {'CREATED':<21} {'MB':>8}  PATH  ({'detail'})")
    for r in rows:
        print(f"{r['state']:<11} {r['guest'] or '-':<7} {r['created'] or '-':<21} {r['bytes'] / 1e6:>8.1f}  "
              f"{r['path']}  ({r['detail']})")
    return 0


def verify_cmd(args) -> int:
    from ..snapshot import SnapshotError, verify
    try:
        m = verify(args.snapdir, full=True)
    except SnapshotError as e:
        print(f"wslx snapshot verify: {e.message}", file=sys.stderr)
        return 1
    print(f"{args.snapdir}: ok ({m.guest}, {m.ram_mode} RAM, {len(m.files)} files, QEMU {m.qemu.get('version')})")
    return 0


def rm_cmd(args) -> int:
    from ..snapshot import SnapshotError, remove
    rc = 0
    for d in args.snapdirs:
        try:
            remove(d)
            print(f"removed {d}")
        except SnapshotError as e:
            print(f"wslx snapshot rm: {e.message}", file=sys.stderr)
            rc = 1
    return rc
