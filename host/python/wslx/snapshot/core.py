"""Save, restore and clone QEMU guests (seed sections 4.4 and 4.5).

Save:   QUIESCE -> QUIESCE_COMPLETE -> QMP stop -> device state (`migrate exec:`) -> the
        Portal file (and, on the fast path, the RAM file) copied while stopped -> manifest ->
        SNAPDIR.partial-* renamed to SNAPDIR -> the VM resumes (cont + RESUME) or is ended.
Restore: verify (manifest, digests, QEMU, kernel) -> place files -> QEMU with the same
        configuration and `-incoming defer` -> migrate-incoming -> cont -> reconnect the
        control channel (chardev connections are not migrated) -> HELLO -> RESUME.

Fast path: guest RAM in a shared file (memory-backend-file,share=on) with x-ignore-shared,
so the state stream holds devices only. A restore or clone maps the snapshot's RAM file
privately (copy-on-write, as Kata's VM templating does): nothing is copied, and the
snapshot is never written. `ram="copy"` copies it into the run dir and maps it shared
instead, so the restored VM can again be saved on the fast path.
"""
from __future__ import annotations

import contextlib
import dataclasses
import os
import secrets
import shutil
import tempfile
import time
from pathlib import Path
from typing import Callable

from ..agentx.client import AgentClient, Process
from ..agentx.errors import AgentTimeout, AgentXError
from ..guests.base import Guest, GuestAgentError
from ..vmm.qemu import QemuMachine, default_run_root
from .errors import QuiesceTimeout, SnapshotError, SnapshotInvalid, SnapshotMismatch
from .files import file_digest, fsync_dir, sparse_copy
from .manifest import (PARTIAL_MARK, PORTAL, RAM, STATE, Manifest, describe_file, machine_config, make_machine,
                       normalised_cmdline, qemu_identity, record_verified, verify, write_manifest, check_host)

QUIESCE_TIMEOUT = 30.0


def fast_path_kw(run_dir: Path | str | None = None) -> dict:
    """Guest keywords for the fast path: a run dir made now, and guest RAM in RUN_DIR/ram.img."""
    rd = Path(run_dir) if run_dir else Path(tempfile.mkdtemp(prefix="wslx-run-", dir=default_run_root()))
    rd.mkdir(parents=True, exist_ok=True)
    return dict(run_dir=rd, ram_path=rd / RAM)


@dataclasses.dataclass
class SaveResult:
    path: Path
    manifest: Manifest
    quiesce_ms: float        # QUIESCE sent -> QUIESCE_COMPLETE
    device_state_ms: float   # stop -> state.bin written
    save_ms: float           # stop -> SNAPDIR complete (files copied, digests, manifest, rename)
    bytes: int               # allocated bytes of the snapshot directory

    @property
    def total_ms(self) -> float:
        return self.quiesce_ms + self.save_ms


def _guest_kind(guest: Guest) -> str:
    return getattr(guest, "KIND", None) or guest.NAME


def save(guest: Guest, snapdir: Path | str, *, keep_running: bool = False, quiesce_timeout: float = QUIESCE_TIMEOUT,
         portal=None, log: Callable[[str], None] | None = None,
         on_stage: Callable[[str], None] | None = None, ignore_shared: bool = True) -> SaveResult:
    """Snapshot a booted guest (LinuxGuest, TrackBGuest or a RestoredGuest) into snapdir, which must
    not exist. keep_running: cont + RESUME afterwards; otherwise QEMU is ended. portal: the host's
    Portal object over the guest's pmem file, flushed (msync) before the copy. A guest that does not
    answer QUIESCE within quiesce_timeout raises QuiesceTimeout and keeps running, unsaved.
    on_stage(name): called after 'quiesced', 'state' (state.bin written) and 'files' (before the
    manifest), for progress or to test a save killed half-way. ignore_shared=False: RAM goes into
    the state stream even if it lives in a shared file (the anonymous-RAM path)."""
    stage = on_stage or (lambda name: None)
    log = log or guest.log
    snapdir = Path(snapdir).absolute()
    if snapdir.exists():
        raise SnapshotError(f"{snapdir} already exists; choose a new name or `wslx snapshot rm` it first")
    vm, client = guest.vm, guest.client
    ram_shared_file = ignore_shared and vm.ram_path is not None and vm.ram_shared

    # 1. QUIESCE: the guest pauses producers, drains and flushes; its last frame is QUIESCE_COMPLETE
    t0 = time.monotonic()
    try:
        qc = client.quiesce(timeout_ms=int(quiesce_timeout * 1000), timeout=quiesce_timeout)
    except AgentTimeout as e:
        vm.check_alive("waiting for QUIESCE_COMPLETE")
        raise QuiesceTimeout(f"the guest did not answer QUIESCE within {quiesce_timeout} s; nothing was saved "
                             f"and the VM keeps running (it was not stopped)\n{e}", **vm._common()) from None
    t_quiesced = time.monotonic()
    log(f"[snapshot] quiesced in {(t_quiesced - t0) * 1000:.1f} ms ({qc['running_processes']} processes, "
        f"{qc['flushed_regions']} regions flushed)")

    stage("quiesced")
    tmp = snapdir.parent / f"{snapdir.name}{PARTIAL_MARK}{os.getpid()}-{secrets.token_hex(4)}"
    tmp.mkdir(parents=True)
    resumed = False
    try:
        # 2. stop, device state (and RAM, unless it lives in a shared file)
        vm.set_migration(ignore_shared=ram_shared_file)
        t_stop = time.monotonic()
        vm.qmp_command("stop")
        vm.migrate_to_file(tmp / STATE)
        t_state = time.monotonic()
        stage("state")
        qemu = qemu_identity(vm.qemu_binary)
        cfg = machine_config(vm)
        cmdline = normalised_cmdline(vm)

        # 3. files, while the VM is stopped (or gone)
        if portal is not None:
            portal.flush()
        if vm.pmem_path is not None:
            with open(vm.pmem_path, "rb+") as f:
                os.fsync(f.fileno())  # QEMU's shared mapping: its dirty pages reach the file
            sparse_copy(vm.pmem_path, tmp / PORTAL)
        if ram_shared_file:  # otherwise (anonymous or private RAM) state.bin carries it
            if keep_running:
                sparse_copy(vm.ram_path, tmp / RAM)
            else:
                vm.shutdown()  # never runs again: its RAM file can move instead of being copied
                try:
                    os.rename(vm.ram_path, tmp / RAM)
                except OSError:
                    sparse_copy(vm.ram_path, tmp / RAM)
                    os.unlink(vm.ram_path)
        stage("files")
        names = sorted(p.name for p in tmp.iterdir())
        files = {}
        for n in names:
            with open(tmp / n, "rb+") as f:
                os.fsync(f.fileno())
            files[n] = {"size": os.stat(tmp / n).st_size, "sha256": file_digest(tmp / n)}
        initrd = describe_file(vm.initrd) if vm.initrd is not None else None
        m = Manifest(guest=_guest_kind(guest), qemu=qemu, cmdline=cmdline, machine=cfg,
                     kernel=describe_file(vm.kernel), initrd=initrd,
                     ram_mode="file" if ram_shared_file else "stream", files=files,
                     channel=getattr(guest, "CHANNEL", "agentx"),
                     hello=dataclasses.asdict(guest.hello) if guest.hello else None)
        write_manifest(tmp, m)
        record_verified(tmp, names)
        check_host(m, binary=vm.qemu_binary, snapdir=tmp, trust_cache=False)  # notes QEMU's and the kernel's identity
        fsync_dir(tmp)
        os.rename(tmp, snapdir)
        fsync_dir(snapdir.parent)
        t_done = time.monotonic()
        log(f"[snapshot] saved {snapdir} in {(t_done - t_stop) * 1000:.1f} ms after stop "
            f"(device state {(t_state - t_stop) * 1000:.1f} ms, {m.ram_mode} RAM)")
        # 4. the source resumes, or stays ended
        if keep_running:
            vm.qmp_command("cont")
            client.resume()
            resumed = True
        else:
            vm.shutdown()
        return SaveResult(snapdir, m, (t_quiesced - t0) * 1000, (t_state - t_stop) * 1000, (t_done - t_stop) * 1000,
                          sum(f.stat().st_blocks * 512 for f in snapdir.iterdir() if f.is_file()))
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        if keep_running and not resumed and vm.is_running():
            with contextlib.suppress(Exception):
                vm.qmp_command("cont")
                client.resume()
        raise


class RestoredGuest(Guest):
    """A guest restored from a snapshot (a context manager, like LinuxGuest/TrackBGuest):

        with RestoredGuest(snapdir) as g:
            g.client.run(["cat", "/proc/uptime"])

    ram: "private" (copy-on-write mapping of the snapshot's RAM file; the default, and what
    clones use) or "copy" (a copy in the run dir, mapped shared: the VM can be saved again on
    the fast path). portal_path: where the Portal file goes (default: the run dir); a host Portal
    still mapping the saved VM's file passes that file, which is used in place when it holds
    exactly the saved bytes (so the host's view and requests in flight carry on), and replaced
    by the snapshot's copy otherwise. full_verify: re-hash every file (default: only files changed since they
    were last checked). Timings (monotonic seconds from the start of __enter__): verified_s,
    launched_s, loaded_s, resumed_s."""

    def __init__(self, snapdir: Path | str, *, ram: str = "private", run_dir: Path | str | None = None,
                 portal_path: Path | str | None = None, full_verify: bool = False, hello_timeout: float = 30.0, timeout: float = 30.0,
                 log: Callable[[str], None] = print):
        if ram not in ("private", "copy"):
            raise ValueError(f"ram must be 'private' or 'copy', not {ram!r}")
        self.snapdir = Path(snapdir).absolute()
        self.ram = ram
        self.full_verify = full_verify
        self.run_dir = Path(run_dir) if run_dir else None
        self.portal_path = Path(portal_path) if portal_path else None
        self.manifest: Manifest | None = None
        self.timings: dict = {}
        super().__init__(Path("/"), append="", hello_timeout=hello_timeout, timeout=timeout, build=False,
                         log=log, machine_kw={})

    @property
    def KIND(self) -> str:
        return self.manifest.guest if self.manifest else "?"

    @property
    def NAME(self) -> str:
        return f"{self.KIND} (restored)"

    def machine(self, *, dry_run: bool = False) -> QemuMachine:
        m = self.manifest
        rd = self.run_dir or Path(tempfile.mkdtemp(prefix="wslx-run-", dir=default_run_root()))
        rd.mkdir(parents=True, exist_ok=True)
        kw = dict(run_dir=rd, incoming=True, log=self.log)
        if PORTAL in m.files:
            kw["pmem_path"] = self.portal_path or rd / PORTAL
        if m.ram_mode == "file":
            kw["ram_path"], kw["ram_shared"] = (self.snapdir / RAM, False) if self.ram == "private" else (rd / RAM, True)
        elif any("@RAM" in a for a in m.cmdline):  # RAM was in a file but saved in the stream: a fresh file
            kw["ram_path"], kw["ram_shared"] = rd / RAM, True
        kernel = Path(m.kernel["path"])
        initrd = Path(m.initrd["path"]) if m.initrd else None
        return make_machine(kernel, initrd, m.machine, **kw)

    def __enter__(self):
        t0 = time.monotonic()
        self.manifest = m = verify(self.snapdir, full=self.full_verify)
        self.CHANNEL = m.channel
        self.timings["verified_s"] = time.monotonic() - t0
        vm = self.machine()
        got = normalised_cmdline(vm)
        if got != m.cmdline:
            diff = [f"{a!r} != {b!r}" for a, b in zip(got, m.cmdline) if a != b] or ["different length"]
            raise SnapshotMismatch(f"snapshot {self.snapdir} refused: this kit would start QEMU differently "
                                   f"from the saved configuration ({'; '.join(diff[:3])})", path=self.snapdir)
        # place the files: each restored VM gets its own Portal file (and RAM copy if asked)
        if vm.pmem_path is not None:
            self._place_portal(vm.pmem_path, m.files[PORTAL]["sha256"])
        if m.ram_mode == "file" and self.ram == "copy":
            sparse_copy(self.snapdir / RAM, vm.ram_path)
        self.timings["placed_s"] = time.monotonic() - t0
        self.vm = vm
        vm.__enter__()
        try:
            self.timings["launched_s"] = time.monotonic() - t0
            vm.set_migration(ignore_shared=m.ram_mode == "file")
            vm.migrate_from_file(self.snapdir / STATE)
            self.timings["loaded_s"] = time.monotonic() - t0
            vm.qmp_command("cont")
            # chardev connections are not migrated: connect anew and ask the agent to announce
            # itself (it also does on its own when it sees the connect)
            sock = self._connect(self.timeout)
            client = AgentClient(sock, default_timeout=self.timeout, name=self.NAME)
            self._attach(client)
            try:
                client.ask_announce(timeout=self.hello_timeout)
                self.hello = client.wait_hello(self.hello_timeout)
                self.timings["hello_s"] = time.monotonic() - t0
                client.resume(timeout=self.hello_timeout)
            except AgentXError as e:
                raise GuestAgentError(f"restored guest did not come back on its control channel: {e}",
                                      **vm._common()) from e
            self.timings["resumed_s"] = time.monotonic() - t0
            self.log(f"[snapshot] restored {self.snapdir} to RESUMED in {self.timings['resumed_s'] * 1000:.1f} ms "
                     f"(verify {self.timings['verified_s'] * 1000:.1f}, QEMU up "
                     f"{(self.timings['launched_s'] - self.timings['placed_s']) * 1000:.1f}, state loaded "
                     f"{(self.timings['loaded_s'] - self.timings['launched_s']) * 1000:.1f} ms)")
        except BaseException as e:
            vm.__exit__(type(e), e, None)
            raise
        return self

    def _place_portal(self, path: Path, digest: str) -> None:
        if path.exists() and file_digest(path) == digest:
            return  # the saved bytes, already there (the host may have it mapped)
        tmp = path.with_name(path.name + f".restoring-{os.getpid()}")
        sparse_copy(self.snapdir / PORTAL, tmp)
        os.rename(tmp, path)


    def _reconnected(self, client: AgentClient) -> None:
        client.ask_announce()

    def adopt(self, pid: int, argv=("?",)) -> Process:
        """A Process object for a process EXEC'd before the snapshot; its later output and EXIT arrive on it."""
        return self.client.adopt(pid, argv)

    def __exit__(self, *exc):
        try:
            super().__exit__(*exc)
        finally:
            vm = self.vm
            if vm is not None and vm.ram_path is not None and vm.ram_path.parent != self.snapdir:
                with contextlib.suppress(OSError):
                    os.unlink(vm.ram_path)  # scratch (a copy, or filled from the stream); the snapshot keeps its own


def restore(snapdir: Path | str, **kw) -> RestoredGuest:
    """RestoredGuest(snapdir, **kw), to be entered: `with restore(d) as g: ...`."""
    return RestoredGuest(snapdir, **kw)


@contextlib.contextmanager
def clones(snapdir: Path | str, count: int, *, log: Callable[[str], None] = print, **kw):
    """`count` guests restored from one snapshot, all running at once, each with private
    copy-on-write RAM over the snapshot's RAM file and its own Portal file. Verified once."""
    if count < 1:
        raise ValueError("count must be at least 1")
    verify(snapdir, full=kw.pop("full_verify", False))
    with contextlib.ExitStack() as stack:
        guests = [stack.enter_context(RestoredGuest(snapdir, ram="private", log=log, **kw)) for _ in range(count)]
        yield guests


def remove(snapdir: Path | str) -> None:
    """Delete a snapshot directory (complete, invalid or an incomplete save); refuse anything else."""
    d = Path(snapdir)
    if not d.is_dir():
        raise SnapshotInvalid(f"no snapshot at {d}", path=d)
    looks = PARTIAL_MARK in d.name or (d / "manifest.json").exists() or (d / STATE).exists()
    if not looks:
        raise SnapshotInvalid(f"{d} is not a snapshot directory (no manifest.json or state.bin); not removed", path=d)
    shutil.rmtree(d)
