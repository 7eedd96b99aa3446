"""A fake `openvmm` for the launcher's tests: checks its argv against OpenVMM's documented CLI, records it,
and plays OpenVMM's hybrid vsock with a real guest behind it: the Track B kernel under hvsim (QEMU beside the
wslx.hv model), so the whole host side of an OpenVMM session runs here.

    openvmm -k KERNEL [-r INITRD] [-c CMDLINE] [--processors N] [--memory SIZE] [--hv] [--com1 BINDING]
            [--com2 BINDING] [--vmbus-vsock-path PATH] [--pcie-root-complex rc0] [--pcie-root-port rc0:pN]...
            [--virtio-pmem pcie_port=pN:PATH]...

Environment: FAKE_OPENVMM_RECORD (where argv is written, JSON), FAKE_OPENVMM_GUEST (the ELF to run under
hvsim; default -k when it is an ELF), FAKE_OPENVMM_PORTS (host ports guests may dial; default 50010).
A bad argv: a line on stderr, exit 2 (as OpenVMM's clap parser). The guest's power-off ends it with status 0;
SIGTERM ends the guest and then it."""
from __future__ import annotations

import argparse
import json
import os
import re
import select
import signal
import socket
import sys
import threading
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "host" / "python"))

SERIAL_RE = re.compile(r"^(console|stderr|none|file=.+|listen=.+)$")
MEMORY_RE = re.compile(r"^\d+(MB|GB)(,file=.+)?$")


class CliError(Exception):
    pass


def parse(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="openvmm", exit_on_error=False, add_help=False)
    p.add_argument("-k", dest="kernel", required=True)
    p.add_argument("-r", dest="initrd")
    p.add_argument("-c", dest="cmdline", default="")
    p.add_argument("--processors", type=int, default=1)
    p.add_argument("--memory", default="1GB")
    p.add_argument("--hv", action="store_true")
    p.add_argument("--com1")
    p.add_argument("--com2")
    p.add_argument("--vmbus-vsock-path")
    p.add_argument("--pcie-root-complex", action="append", default=[])
    p.add_argument("--pcie-root-port", action="append", default=[])
    p.add_argument("--virtio-pmem", action="append", default=[])
    try:
        a, rest = p.parse_known_args(argv)
    except (argparse.ArgumentError, SystemExit) as e:
        raise CliError(str(e)) from None
    if rest:
        raise CliError(f"unexpected arguments {rest}")
    if not Path(a.kernel).is_file():
        raise CliError(f"-k {a.kernel}: no such file")
    if a.initrd and not Path(a.initrd).is_file():
        raise CliError(f"-r {a.initrd}: no such file")
    if not MEMORY_RE.match(a.memory):
        raise CliError(f"--memory {a.memory}: want SIZE like 512MB or 1GB")
    for name in ("com1", "com2"):
        v = getattr(a, name)
        if v is not None and not SERIAL_RE.match(v):
            raise CliError(f"--{name} {v}: want console|stderr|none|file=PATH|listen=PATH")
    if a.vmbus_vsock_path and not a.hv:
        raise CliError("--vmbus-vsock-path needs --hv (VMBus)")
    ports = set()
    for rp in a.pcie_root_port:
        rc, _, port = rp.partition(":")
        if rc not in a.pcie_root_complex or not port:
            raise CliError(f"--pcie-root-port {rp}: no root complex {rc!r}")
        ports.add(port)
    for pm in a.virtio_pmem:
        m = re.match(r"^pcie_port=([^:]+):(.+)$", pm)
        if not m or m.group(1) not in ports:
            raise CliError(f"--virtio-pmem {pm}: want pcie_port=PORT:PATH on a declared --pcie-root-port")
        if not Path(m.group(2)).is_file():
            raise CliError(f"--virtio-pmem {pm}: no such file")
    return a


def pump(a: socket.socket, b: socket.socket) -> None:
    """Copy both ways until either side closes (then half-close the other)."""
    socks = [a, b]
    try:
        while socks:
            for s in select.select(socks, [], [])[0]:
                data = s.recv(65536)
                other = b if s is a else a
                if not data:
                    socks.remove(s)
                    try:
                        other.shutdown(socket.SHUT_WR)
                    except OSError:
                        pass
                else:
                    other.sendall(data)
    except OSError:
        pass
    finally:
        a.close()
        b.close()


def main(argv: list[str]) -> int:
    record = os.environ.get("FAKE_OPENVMM_RECORD")
    if record:
        Path(record).write_text(json.dumps(argv))
    try:
        a = parse(argv)
    except CliError as e:
        print(f"openvmm: error: {e}", file=sys.stderr)
        return 2
    from wslx.guests.trackb import ISA_DEBUG_EXIT
    from wslx.vmm.hvsim import HvsimMachine
    guest = os.environ.get("FAKE_OPENVMM_GUEST") or a.kernel
    ports = [int(p) for p in os.environ.get("FAKE_OPENVMM_PORTS", "50010").split(",")]
    import tempfile
    base = Path(tempfile.mkdtemp(prefix="fk-", dir=os.environ.get("WSLX_RUN_DIR")))   # short: socket paths
    pmem = a.virtio_pmem[0].split(":", 1)[1] if a.virtio_pmem else None
    memory = int(a.memory.split(",")[0][:-2]) * (1024 if a.memory.split(",")[0].endswith("GB") else 1)
    m = HvsimMachine(guest, None, append=a.cmdline, run_dir=base, memory=memory,
                     pmem_path=pmem, extra_args=ISA_DEBUG_EXIT, log=lambda s: print(s, file=sys.stderr))
    for p in ports:
        m.hvsock_listen(p)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    vsock = None
    if a.vmbus_vsock_path:
        vsock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        vsock.bind(a.vmbus_vsock_path)
        vsock.listen(4)
    with m:
        if a.com1 and a.com1.startswith("file="):       # COM1: the hvsim guest's console
            com1 = Path(a.com1[5:])
            com1.unlink(missing_ok=True)
            com1.symlink_to(m.console_log)

        def guest_dials(port):                            # guest -> host port P: to the host's PATH_P
            while not stop.is_set():
                try:
                    g = m.hvsock_accept(port, 1.0)
                except Exception:
                    if not m.is_running():
                        return
                    continue
                h = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                try:
                    h.connect(f"{a.vmbus_vsock_path}_{port}")
                except OSError:
                    g.close()
                    h.close()
                    continue
                threading.Thread(target=pump, args=(g, h), daemon=True).start()

        def host_dials():                                 # host "CONNECT P\n" -> "OK P\n", to guest port P
            while not stop.is_set():
                if not select.select([vsock], [], [], 0.5)[0]:
                    continue
                c, _ = vsock.accept()
                line = c.makefile("rb").readline(64)
                word, _, port = line.decode(errors="replace").strip().partition(" ")
                if word != "CONNECT" or not port.isdigit():
                    c.close()
                    continue
                try:
                    g = m.hvsock_connect(int(port))
                except Exception:
                    c.close()
                    continue
                c.sendall(f"OK {port}\n".encode())
                threading.Thread(target=pump, args=(c, g), daemon=True).start()

        if vsock is not None:
            for p in ports:
                threading.Thread(target=guest_dials, args=(p,), daemon=True).start()
            threading.Thread(target=host_dials, daemon=True).start()
        while not stop.is_set() and m.is_running():
            m.wait_exit(0.2)
        rc = m.exitcode if not m.is_running() else None
    # the guest powered off (isa-debug-exit status (0 << 1) | 1 = 1): OpenVMM exits 0 after a power-off
    return 0 if rc in (None, 1) else rc


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
