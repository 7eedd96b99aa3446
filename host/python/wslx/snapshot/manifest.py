"""The snapshot directory and its manifest.

    SNAPDIR/
      manifest.json   format, QEMU, guest kind, machine configuration and normalised
                      command line, kernel/initramfs digests, and size + digest of every file
      state.bin       QEMU device state (and RAM, on the anonymous-RAM path) from `migrate exec:`
      ram.img         guest RAM (fast path: RAM lived in this file, x-ignore-shared left it out
                      of state.bin)
      portal.img      the virtio-pmem (Portal) backing file; QEMU 7.2 migrates nothing for
                      virtio-pmem, so this copy is the only one of the region
      verified.json   stat identities of the files whose digests were last checked, so a
                      restore re-hashes only files that changed since (see files.stat_identity)

A save writes SNAPDIR.partial-PID-RANDOM next to SNAPDIR and renames it when complete:
a directory named SNAPDIR exists only complete.
"""
from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import re
import shlex
import subprocess
import time
from pathlib import Path

from ..vmm.qemu import QEMU_BINARY, QemuMachine
from .errors import SnapshotInvalid, SnapshotMismatch
from .files import DIGEST_ALGORITHM, file_digest, stat_identity

FORMAT = "wslx-snapshot"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
VERIFIED = "verified.json"
STATE = "state.bin"
RAM = "ram.img"
PORTAL = "portal.img"
PARTIAL_MARK = ".partial-"
GUEST_KINDS = ("linux", "trackb")
RAM_MODES = ("file", "stream")   # fast path (RAM in ram.img) / anonymous RAM (RAM in state.bin)

# QemuMachine keywords that make up a guest's configuration (paths of per-run files excluded)
MACHINE_KEYS = ("append", "quiet", "machine", "firmware", "accel", "memory", "cpus", "pvpanic", "virtio_serial_port",
                "serial_transport", "pmem_size", "pmem_addr", "extra_args", "named_ports")
OPTIONAL_KEYS = {"named_ports": []}   # absent from manifests written before they were recorded


def machine_config(vm: QemuMachine) -> dict:
    cfg = {k: getattr(vm, k) for k in MACHINE_KEYS}
    cfg["firmware"] = None if cfg["firmware"] is None else str(cfg["firmware"])
    cfg["panic_regex"] = vm.panic_re.pattern
    cfg["extra_args"] = list(cfg["extra_args"])
    cfg["named_ports"] = list(cfg["named_ports"])
    if cfg["pmem_size"] is None and vm.pmem_path is not None:
        cfg["pmem_size"] = os.stat(vm.pmem_path).st_size
    return cfg


def make_machine(kernel: Path, initrd: Path | None, cfg: dict, *, cls=QemuMachine, **kw) -> QemuMachine:
    return cls(kernel, initrd, **{k: cfg[k] if k in cfg else OPTIONAL_KEYS[k] for k in MACHINE_KEYS},
               panic_regex=cfg["panic_regex"], **kw)


def normalised_cmdline(vm: QemuMachine) -> list[str]:
    """The QEMU argv with what differs between runs of one configuration made neutral: the run
    directory, the VM name, the RAM and pmem file paths, the RAM mapping (shared while saved,
    private in a clone), -incoming and a second QMP monitor."""
    argv = vm.preview_cmdline()
    run = str(vm._given_run_dir or "<run-dir>")
    subs = [(str(p), tag) for p, tag in ((vm.ram_path, "@RAM"), (vm.pmem_path, "@PMEM")) if p is not None]
    out, skip = [], False
    for i, a in enumerate(argv):
        if skip:
            skip = False
            continue
        if a == "-incoming" or (i + 1 < len(argv) and argv[i + 1].startswith(("socket,id=qmpctl,", "chardev=qmpctl,"))):
            skip = True  # -incoming, and the second QMP monitor (control_socket) of a `wslx boot --stay` VM
            continue
        if i and argv[i - 1] == "-name":
            a = "@NAME"
        for path, tag in subs:
            a = a.replace(path, tag)
        a = a.replace(run, "@RUN")
        if a.startswith("memory-backend-file,id=ram0,"):
            a = a.replace("share=off", "share=on")
        out.append(a)
    out[0] = os.path.basename(out[0])
    return out


_qemu_version_cache: dict = {}


def qemu_identity(binary: str = QEMU_BINARY) -> dict:
    """{'version', 'binary'} of the QEMU that would run, from `--version` (cached per binary identity)."""
    path = binary if os.sep in binary else _which(binary)
    key = (path, tuple(stat_identity(Path(path))) if path else None)
    if key not in _qemu_version_cache:
        try:
            out = subprocess.run([binary, "--version"], capture_output=True, text=True, timeout=10).stdout
        except (OSError, subprocess.SubprocessError) as e:
            raise SnapshotMismatch(f"cannot run {binary} --version: {e}") from e
        m = re.search(r"version (\S+)", out)
        _qemu_version_cache[key] = {"version": m.group(1) if m else out.strip(), "binary": path}
    return _qemu_version_cache[key]


def _which(name: str) -> str | None:
    for d in os.environ.get("PATH", "").split(os.pathsep):
        p = os.path.join(d, name)
        if os.access(p, os.X_OK):
            return os.path.realpath(p)
    return None


def describe_file(path: Path) -> dict:
    return {"path": str(path), "size": os.stat(path).st_size, "sha256": file_digest(path)}


@dataclasses.dataclass
class Manifest:
    guest: str
    qemu: dict
    cmdline: list
    machine: dict
    kernel: dict
    initrd: dict | None
    ram_mode: str
    files: dict                       # name -> {"size", "sha256"}
    channel: str = "agentx"
    hello: dict | None = None
    created: str = ""
    format: str = FORMAT
    format_version: int = FORMAT_VERSION
    digest_algorithm: str = DIGEST_ALGORITHM

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), indent=2, sort_keys=True) + "\n"

    @classmethod
    def load(cls, snapdir: Path) -> "Manifest":
        path = Path(snapdir) / MANIFEST
        if PARTIAL_MARK in Path(snapdir).name:
            raise SnapshotInvalid(f"{snapdir} is an incomplete save (the saving process did not finish)", path=snapdir)
        if not Path(snapdir).is_dir():
            raise SnapshotInvalid(f"no snapshot at {snapdir} (no such directory)", path=snapdir)
        try:
            raw = json.loads(path.read_text())
        except FileNotFoundError:
            raise SnapshotInvalid(f"{path} is missing: {snapdir} is not a complete snapshot", path=path) from None
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
            raise SnapshotInvalid(f"{path} is not a readable manifest: {e}", path=path) from None
        if not isinstance(raw, dict) or raw.get("format") != FORMAT:
            raise SnapshotInvalid(f"{path} is not a {FORMAT} manifest", path=path)
        if raw.get("format_version") != FORMAT_VERSION:
            raise SnapshotMismatch(f"{path}: format version {raw.get('format_version')!r}, this kit reads "
                                   f"{FORMAT_VERSION}", path=path)
        names = {f.name for f in dataclasses.fields(cls)}
        missing = [n for n, f in cls.__dataclass_fields__.items()
                   if f.default is dataclasses.MISSING and n not in raw]
        if missing:
            raise SnapshotInvalid(f"{path}: manifest lacks {', '.join(missing)}", path=path)
        m = cls(**{k: v for k, v in raw.items() if k in names})
        problems = []
        if m.guest not in GUEST_KINDS:
            problems.append(f"guest kind {m.guest!r}")
        if m.ram_mode not in RAM_MODES:
            problems.append(f"RAM mode {m.ram_mode!r}")
        if m.digest_algorithm != DIGEST_ALGORITHM:
            problems.append(f"digest algorithm {m.digest_algorithm!r}")
        if not isinstance(m.files, dict) or STATE not in m.files or (m.ram_mode == "file" and RAM not in m.files):
            problems.append("file list (state.bin, and ram.img on the fast path, are required)")
        else:
            for name, d in m.files.items():
                if (not isinstance(d, dict) or "/" in name or name in (MANIFEST, VERIFIED) or
                        not isinstance(d.get("size"), int) or not isinstance(d.get("sha256"), str)):
                    problems.append(f"entry for {name!r}")
        if problems:
            raise SnapshotInvalid(f"{path}: malformed manifest: {'; '.join(problems)}", path=path)
        return m


def write_manifest(snapdir: Path, manifest: Manifest) -> None:
    manifest.created = manifest.created or time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    tmp = snapdir / (MANIFEST + ".tmp")
    with open(tmp, "w") as f:
        f.write(manifest.to_json())
        f.flush()
        os.fsync(f.fileno())
    os.rename(tmp, snapdir / MANIFEST)


def _read_verified(snapdir: Path) -> dict:
    try:
        v = json.loads((snapdir / VERIFIED).read_text())
        return v if isinstance(v, dict) else {}
    except (OSError, ValueError):
        return {}


def record_verified(snapdir: Path, names) -> None:
    """Note the stat identity of files whose digests were just checked (or written)."""
    v = _read_verified(snapdir)
    for n in names:
        v[n] = stat_identity(snapdir / n)
    _write_verified(snapdir, v)


def _write_verified(snapdir: Path, v: dict) -> None:
    tmp = snapdir / (VERIFIED + f".tmp-{os.getpid()}")
    tmp.write_text(json.dumps(v, sort_keys=True))
    os.rename(tmp, snapdir / VERIFIED)


def check_files(snapdir: Path, manifest: Manifest, *, full: bool) -> list[str]:
    """Problems with the snapshot's files (missing, size, digest), each naming its file. full:
    re-hash every file; otherwise only those whose stat identity changed since the last check."""
    problems = []
    verified = {} if full else _read_verified(snapdir)
    checked = []
    for name, want in sorted(manifest.files.items()):
        path = snapdir / name
        try:
            size = os.stat(path).st_size
        except FileNotFoundError:
            problems.append(f"{path}: missing")
            continue
        if size != want["size"]:
            problems.append(f"{path}: {size} bytes, the manifest says {want['size']} (truncated or replaced)")
            continue
        if verified.get(name) == stat_identity(path):
            continue
        got = file_digest(path)
        if got != want["sha256"]:
            problems.append(f"{path}: digest {got[:16]}..., the manifest says {want['sha256'][:16]}... (corrupted)")
        else:
            checked.append(name)
    if checked and not problems:
        try:
            record_verified(snapdir, checked)
        except OSError:
            pass  # a read-only snapshot is checked in full every time
    return problems


def check_host(manifest: Manifest, *, binary: str = QEMU_BINARY, snapdir: Path | None = None,
               trust_cache: bool = True) -> list[str]:
    """Problems with restoring here: another QEMU, or another kernel/initramfs than the saved one.
    What was checked against this snapshot before and has the same stat identity now is not
    checked again (snapdir's verified.json; keys '@qemu', '@kernel', '@initrd')."""
    problems = []
    seen = _read_verified(snapdir) if snapdir and trust_cache else {}
    ok = []
    qpath = binary if os.sep in binary else _which(binary)
    if not (qpath and seen.get("@qemu") == [qpath] + stat_identity(Path(qpath))):
        q = qemu_identity(binary)
        if q["version"] != manifest.qemu.get("version"):
            problems.append(f"made by QEMU {manifest.qemu.get('version')}, this host runs QEMU {q['version']} "
                            f"({q['binary']})")
        elif qpath:
            ok.append(("@qemu", [qpath] + stat_identity(Path(qpath))))
    for what, key, d in (("kernel", "@kernel", manifest.kernel), ("initramfs", "@initrd", manifest.initrd)):
        if d is None:
            continue
        p = Path(d["path"])
        try:
            ident = [str(p), d["sha256"]] + stat_identity(p)
        except FileNotFoundError:
            problems.append(f"{what} {p} is missing")
            continue
        if seen.get(key) == ident:
            continue
        got = file_digest(p)
        if got != d["sha256"]:
            problems.append(f"{what} {p} differs from the one the snapshot was made with "
                            f"(digest {got[:16]}..., manifest {d['sha256'][:16]}...)")
        else:
            ok.append((key, ident))
    if ok and not problems and snapdir is not None:
        with contextlib.suppress(OSError):
            _write_verified(snapdir, {**_read_verified(snapdir), **dict(ok)})
    return problems


def verify(snapdir: Path | str, *, full: bool = True, binary: str = QEMU_BINARY) -> Manifest:
    """Check a snapshot before anything is started from it: the manifest, every file's size and
    digest, and that this host has the same QEMU and kernel. Raises SnapshotInvalid (a file
    problem) or SnapshotMismatch (another host/kernel/QEMU), naming every problem."""
    snapdir = Path(snapdir)
    m = Manifest.load(snapdir)
    problems = check_files(snapdir, m, full=full)
    if problems:
        raise SnapshotInvalid(f"snapshot {snapdir} refused:\n  " + "\n  ".join(problems), path=snapdir)
    problems = check_host(m, binary=binary, snapdir=snapdir, trust_cache=not full)
    if problems:
        raise SnapshotMismatch(f"snapshot {snapdir} refused:\n  " + "\n  ".join(problems), path=snapdir)
    return m


def list_snapshots(root: Path | str) -> list[dict]:
    """Snapshots under root: {'path', 'state': complete|incomplete|invalid, 'guest', 'created', 'bytes', 'detail'}."""
    out = []
    root = Path(root)
    if not root.is_dir():
        return out
    for d in sorted(p for p in root.iterdir() if p.is_dir()):
        if PARTIAL_MARK in d.name:
            out.append(dict(path=str(d), state="incomplete", guest="", created="", bytes=_du(d),
                            detail="a save that did not finish"))
            continue
        if not (d / MANIFEST).exists():
            continue
        try:
            m = Manifest.load(d)
        except SnapshotInvalid as e:
            out.append(dict(path=str(d), state="invalid", guest="", created="", bytes=_du(d), detail=e.message))
            continue
        out.append(dict(path=str(d), state="complete", guest=m.guest, created=m.created, bytes=_du(d),
                        detail=f"{m.ram_mode} RAM"))
    return out


def _du(d: Path) -> int:
    return sum(f.stat().st_blocks * 512 for f in d.iterdir() if f.is_file())


def shell_cmdline(argv: list[str]) -> str:
    return shlex.join(argv)
