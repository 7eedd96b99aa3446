"""Snapshot a guest another process runs: `wslx boot --stay` leaves its VM ready for
`wslx snapshot save --vm RUNDIR`.

The booting process (prepare_stay / release / reclaim, called by `wslx boot --stay`):
- boots with guest RAM in RUNDIR/ram.img (the fast path) and a second QMP monitor,
  RUNDIR/qmp-ctl.sock (QEMU serves one client per monitor; the booting process keeps qmp.sock);
- writes RUNDIR/guest.json (kind, kernel, initramfs, machine configuration, channel);
- closes its AgentX connection while it waits (a chardev socket takes one client), and
  connects again to shut the guest down, if it is still running.

The snapshotting process (AttachedGuest) rebuilds the QemuMachine description from
guest.json, connects to qmp-ctl.sock and the AgentX socket, and hands that to save().
"""
from __future__ import annotations

import contextlib
import json
import os
import time
from pathlib import Path

from ..agentx.client import AgentClient
from ..agentx.errors import AgentXError
from ..guests.base import Guest, GuestAgentError
from ..vmm.qemu import QemuMachine
from .errors import SnapshotError
from .manifest import machine_config, make_machine

GUEST_FILE = "guest.json"


def prepare_stay(run_dir_kw: dict | None = None) -> dict:
    """Guest keywords for a VM that another process may snapshot (see the module comment)."""
    from .core import fast_path_kw
    return dict(fast_path_kw(), control_socket=True, **(run_dir_kw or {}))


def release(guest: Guest) -> Path:
    """Describe the running guest in RUNDIR/guest.json and close our AgentX connection."""
    vm = guest.vm
    desc = dict(kind=getattr(guest, "KIND", None) or guest.NAME, kernel=str(vm.kernel),
                initrd=str(vm.initrd) if vm.initrd else None, machine=machine_config(vm),
                channel=getattr(guest, "CHANNEL", "agentx"), ram_path=str(vm.ram_path) if vm.ram_path else None,
                pmem_path=str(vm.pmem_path) if vm.pmem_path else None)
    path = vm.run_dir / GUEST_FILE
    path.write_text(json.dumps(desc, indent=2) + "\n")
    guest.client.close()
    return path


def reclaim(guest: Guest) -> None:
    """Connect to the agent again (if the VM still runs), for the shutdown."""
    if guest.vm.is_running():
        with contextlib.suppress(AgentXError, OSError):
            c = AgentClient(guest._connect(guest.timeout), default_timeout=guest.timeout, name=guest.NAME)
            guest._attach(c)
            c.ask_announce()
            c.wait_hello(guest.timeout)


def cleanup(guest: Guest) -> None:
    """After the VM ended: its RAM file is scratch (a snapshot moved or copied it already)."""
    if guest.vm is not None and guest.vm.ram_path is not None:
        with contextlib.suppress(OSError):
            os.unlink(guest.vm.ram_path)


class AttachedMachine(QemuMachine):
    """A QemuMachine description of a VM another process launched, driven over its second QMP
    monitor. It does not own the process: shutdown() asks QEMU to quit and waits for the monitor
    to close."""

    def attach(self, run_dir: Path, timeout: float) -> None:
        from qemu.qmp.legacy import QEMUMonitorProtocol
        self.run_dir = run_dir
        self.cmdline = self.build_cmdline()
        sock = run_dir / "qmp-ctl.sock"
        qmp = QEMUMonitorProtocol(str(sock))
        try:
            self._connect_with_deadline(qmp, time.monotonic() + timeout)
        except Exception as e:
            raise SnapshotError(f"cannot reach the QMP monitor {sock} of the VM in {run_dir} "
                                f"(is `wslx boot --stay` running there?): {e}", log_dir=run_dir) from e
        qmp.settimeout(10.0)
        self.qmp = qmp
        self.start_time = time.monotonic()

    def is_running(self) -> bool:
        return self.qmp is not None

    def shutdown(self, **kw) -> int | None:
        if self.qmp is not None:
            self._qmp_cmd("quit")
            qmp, self.qmp = self.qmp, None
            with contextlib.suppress(Exception):
                qmp.close()
        return None

    def __exit__(self, *exc) -> None:
        if self.qmp is not None:
            qmp, self.qmp = self.qmp, None
            with contextlib.suppress(Exception):
                qmp.close()
        for s in self._sockets:
            with contextlib.suppress(OSError):
                s.close()


class AttachedGuest(Guest):
    """The guest of a `wslx boot --stay` run dir, for save(): `with AttachedGuest(rundir) as g: save(g, d)`."""

    def __init__(self, run_dir: Path | str, *, timeout: float = 30.0, log=print):
        self.run_dir = Path(run_dir).absolute()
        try:
            self.desc = json.loads((self.run_dir / GUEST_FILE).read_text())
        except (OSError, ValueError) as e:
            raise SnapshotError(f"{self.run_dir} is not the run dir of a `wslx boot --stay` guest "
                                f"({GUEST_FILE}: {e})", log_dir=self.run_dir) from None
        self.KIND = self.desc["kind"]
        self.CHANNEL = self.desc.get("channel", "agentx")
        super().__init__(Path(self.desc["kernel"]), append="", hello_timeout=timeout, timeout=timeout, build=False,
                         log=log, machine_kw={})

    @property
    def NAME(self) -> str:
        return self.KIND

    def machine(self, *, dry_run: bool = False) -> QemuMachine:
        d = self.desc
        kw = dict(run_dir=self.run_dir, log=self.log, control_socket=True)
        if d.get("ram_path"):
            kw["ram_path"] = Path(d["ram_path"])
        if d.get("pmem_path"):
            kw["pmem_path"] = Path(d["pmem_path"])
        return make_machine(Path(d["kernel"]), Path(d["initrd"]) if d.get("initrd") else None, d["machine"],
                            cls=AttachedMachine, **kw)

    def __enter__(self):
        self.vm = vm = self.machine()
        vm.attach(self.run_dir, self.timeout)
        try:
            c = AgentClient(self._connect(self.timeout), default_timeout=self.timeout, name=self.NAME)
            self._attach(c)
            c.ask_announce()
            self.hello = c.wait_hello(self.timeout)
        except AgentXError as e:
            vm.__exit__(None, None, None)
            raise GuestAgentError(f"the guest in {self.run_dir} did not answer on its control channel "
                                  f"(does another process hold it?): {e}", log_dir=self.run_dir) from e
        except BaseException:
            vm.__exit__(None, None, None)
            raise
        return self


    def __exit__(self, *exc):
        if self.client is not None:
            self.client.close()
        self.vm.__exit__(*exc)

