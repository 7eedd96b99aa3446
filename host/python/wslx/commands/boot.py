"""`wslx boot linux` and `wslx run linux -- CMD ARGS...`."""
from __future__ import annotations

import os
import select
import sys
from pathlib import Path

from ..agentx.errors import StdinClosed
from ..spec.agentx import STDIO_MAX_DATA
from ._args import existing_file, kernel_image, positive_float

GUESTS = ["linux", "trackb"]
VMMS = ["qemu", "hvsim", "openvmm"]
HV_PROFILES = ["hyperv", "openvmm-kvm", "none"]


def _common(p):
    p.add_argument("guest", choices=GUESTS, help="which guest to boot")
    p.add_argument("--kernel", type=kernel_image,
                   help="kernel image (default: Debian's cloud kernel; trackb: images/trackb-kernel.elf)")
    p.add_argument("--initrd", type=existing_file, help="initramfs (default: images/linux-initramfs.cpio, built if needed)")
    p.add_argument("--append", default="", help="extra kernel command-line words")
    p.add_argument("--timeout", type=positive_float, default=60.0, help="seconds to wait for HELLO (default 60)")
    p.add_argument("--vmm", choices=VMMS, default="qemu",
                   help="qemu (TCG, here), hvsim (trackb: QEMU beside the wslx.hv Hyper-V model, AgentX over "
                        "hv_sock) or openvmm (Hyper-V enlightenments, hv_sock; needs its binary)")
    p.add_argument("--hv-profile", choices=HV_PROFILES, default="hyperv",
                   help="hvsim: which hypervisor the model plays (default hyperv)")


def register(sub):
    p = sub.add_parser("boot", help="boot a guest to AgentX HELLO, print its details, shut it down")
    _common(p)
    p.add_argument("--stay", action="store_true", help="keep the guest up until Ctrl-C")
    p.add_argument("--dry-run", action="store_true", help="print the VMM command line and exit")
    p.set_defaults(func=boot)
    r = sub.add_parser("run", help="boot a guest, run a command in it, stream its output, exit with its status")
    _common(r)
    r.add_argument("--stdin", action="store_true", help="forward this process's stdin to the command")
    r.add_argument("--run-timeout", type=positive_float, default=3600.0, help="seconds the command may run (default 3600)")
    r.add_argument("command", nargs="+", metavar="-- CMD ARGS", help="command to run in the guest")
    r.set_defaults(func=run)


def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _guest(args, **kw):
    if getattr(args, "vmm", "qemu") == "openvmm":
        from ..guests.openvmm import OpenVMMGuest
        return OpenVMMGuest(args.guest, args.kernel, args.initrd, append=args.append, hello_timeout=args.timeout,
                            log=_log, **kw)
    if getattr(args, "vmm", "qemu") == "hvsim":
        from ..guests.trackb_hvsim import TrackBHvsimGuest
        return TrackBHvsimGuest(args.kernel, hv_profile=args.hv_profile, append=args.append,
                                hello_timeout=args.timeout, log=_log, **kw)
    if args.guest == "trackb":
        from ..guests.trackb import TrackBGuest
        return TrackBGuest(args.kernel, append=args.append, hello_timeout=args.timeout, log=_log, **kw)
    from ..guests.linux import LinuxGuest
    return LinuxGuest(args.kernel, args.initrd, append=args.append, hello_timeout=args.timeout, log=_log, **kw)


def _openvmm_dry_run(args) -> int:
    """The OpenVMM command line `boot --vmm openvmm` launches; builds and creates nothing. The guest dials
    hv_sock port 50010, which OpenVMM hands to the Unix socket <vsock path>_50010 on the host."""
    import shlex
    from ..guests.openvmm import OpenVMMGuest
    from ..spec.agentx import VSOCK_CONTROL_PORT
    from ..vmm.openvmm import vsock_listen_path
    m = OpenVMMGuest(args.guest, args.kernel, args.initrd, append=args.append, build=False, log=_log).machine(dry_run=True)
    argv = m.preview_cmdline()
    print(shlex.join(argv))
    vsock = argv[argv.index("--vmbus-vsock-path") + 1]
    print(f"# AgentX: listen on {vsock_listen_path(vsock, VSOCK_CONTROL_PORT)} before starting; the guest dials it")
    return 0


def _no_openvmm(what: str) -> int | None:
    """One line and exit 2 when there is no openvmm binary to launch."""
    from ..vmm.openvmm import find_openvmm
    if find_openvmm():
        return None
    print(f"wslx {what}: no openvmm binary on PATH; this machine can only print the command line (--dry-run)",
          file=sys.stderr)
    return 2


def _vmm_unsupported(args, what: str) -> int | None:
    """hvsim runs the Track B kernel only (the Linux guest has no hvsim trap path): say so, exit 2."""
    if args.vmm == "hvsim" and args.guest != "trackb":
        print(f"wslx {what}: --vmm hvsim runs the trackb guest only (its platform layer has the trap path)",
              file=sys.stderr)
        return 2
    return None


def boot(args) -> int:
    from ..agentx.errors import AgentXError
    from ..vmm.errors import VMError
    if (rc := _vmm_unsupported(args, "boot")) is not None:
        return rc
    if args.vmm == "openvmm" and args.dry_run:
        return _openvmm_dry_run(args)
    if args.vmm == "openvmm" and (rc := _no_openvmm("boot")) is not None:
        return rc
    if args.dry_run:
        import shlex
        print(shlex.join(_guest(args).machine(dry_run=True).preview_cmdline()))  # builds and creates nothing
        return 0
    from ..snapshot import attach
    try:
        snapshottable = args.stay and args.vmm == "qemu"      # `wslx snapshot` drives QEMU only
        with _guest(args, **(attach.prepare_stay() if snapshottable else {})) as g:
            h = g.hello
            print(f"guest:        {args.guest}")
            print(f"agent:        {h.name} ({h.kind_name})")
            print(f"os release:   {h.os_release}")
            print(f"protocol:     v{h.version_min}..v{h.version_max}, max payload {h.max_payload}")
            print(f"capabilities: {', '.join(h.capability_names)}")
            print(f"hello after:  {g.hello_seconds:.2f} s since {args.vmm} start (guest uptime {h.uptime_ms} ms)")
            print(f"console log:  {g.console_log}")
            print(f"run dir:      {g.vm.run_dir}", flush=True)
            if args.stay:  # the AgentX channel is free meanwhile: `wslx snapshot save --vm RUNDIR`
                if snapshottable:
                    attach.release(g)
                _log("[boot] guest is up; Ctrl-C to shut it down")
                g.vm.stay()
                if snapshottable:
                    attach.reclaim(g)
            rc = g.shutdown()
            attach.cleanup(g)
            _log(f"[boot] guest shut down ({args.vmm} exit code {rc})")
        return 0
    except (VMError, AgentXError) as e:
        print(f"wslx boot: {e}", file=sys.stderr)
        return 1


def run(args) -> int:
    from ..agentx.errors import AgentXError, RemoteError
    from ..vmm.errors import VMError
    argv = args.command[1:] if args.command and args.command[0] == "--" else args.command
    if not argv:
        print("wslx run: no command given", file=sys.stderr)
        return 2
    if (rc := _vmm_unsupported(args, "run")) is not None:
        return rc
    if args.vmm == "openvmm" and (rc := _no_openvmm("run")) is not None:
        return rc
    out, err = sys.stdout.buffer, sys.stderr.buffer

    def emit(stream):
        def write(data: bytes):
            stream.write(data)
            stream.flush()
        return write
    try:
        with _guest(args) as g:
            _log(f"[run] {' '.join(argv)}")
            p = g.client.exec(argv, stdin=args.stdin, on_stdout=emit(out), on_stderr=emit(err))
            if args.stdin:
                _feed_stdin(g.client, p)
            status = p.wait(timeout=args.run_timeout)
            _log(f"[run] {status}")
            g.shutdown()
        return status.returncode
    except RemoteError as e:
        print(f"wslx run: cannot run {argv[0]!r} in the guest: {e}", file=sys.stderr)
        return 127 if e.code == 2 else 126
    except (VMError, AgentXError) as e:
        print(f"wslx run: {e}", file=sys.stderr)
        return 1


def _feed_stdin(client, p) -> None:
    """Relay our stdin to the process as it arrives (pipe, file or terminal), while its
    output keeps streaming; Process.write holds back when the STDIN_ACK window is full."""
    fd = sys.stdin.fileno()
    while not p.done:
        ready, _, _ = select.select([fd, client.transport.fileno()], [], [], 1.0)
        if client.transport.fileno() in ready:
            client.pump(0)
        if fd in ready:
            data = os.read(fd, STDIO_MAX_DATA)
            try:
                if not data:
                    p.close_stdin()
                    return
                p.write(data)
            except StdinClosed:
                return  # the command stopped reading its stdin (e.g. head): not an error
