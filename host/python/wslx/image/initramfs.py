"""Reproducible initramfs builder for WSLX Linux guests.

The archive is an uncompressed newc cpio (fast to unpack under TCG) holding:

  /init                       the AgentX agent (images/wslx-init), mode 0755
  /bin/busybox + applets      Debian busybox-static, applets as symlinks
  /dev/console, /dev/null     so the kernel can open the console before devtmpfs
  /dev /proc /sys /run /tmp /etc /lib/modules /mnt
  /lib/modules/<name>.ko      the closure of the needed modules (modular kernels)
  /etc/wslx/modules.load      absolute module paths, one a line, deps first
  /etc/wslx/kernel-release    the kernel release the modules belong to

Same inputs give the same bytes: entries are sorted, uid/gid are 0, every
mtime is SOURCE_DATE_EPOCH (default 0), inode numbers are assigned in order.

    python -m wslx.image.initramfs OUT [--init BIN] [--kernel VMLINUZ] [--no-modules]
"""
from __future__ import annotations

import argparse
import gzip
import io
import logging
import lzma
import os
import re
import shutil
import stat
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Sequence, Union

from .cpio import Entry, sort_key, write_archive

log = logging.getLogger(__name__)

#: Modules the guest wants, by module name ('-' and '_' are the same).  Roots
#: this kernel lacks are skipped with a warning; built-in ones need nothing.
DEFAULT_MODULE_ROOTS: tuple[str, ...] = (
    "virtio_pci",                  # virtio devices on q35
    "virtio_console",              # the org.wslx.agentx virtio-serial port
    "vsock",
    "vmw_vsock_virtio_transport",  # AF_VSOCK over virtio-vsock
    "hv_vmbus",                    # Hyper-V VMBus (fails to load off Hyper-V: harmless)
    "hv_sock",                     # AF_VSOCK over hv_sock (needs hv_vmbus)
    "virtio_pmem",
    "nd_pmem",
    "dax_pmem",
    "device_dax",
    "pvpanic_mmio",                # QEMU `-device pvpanic` (ISA, ACPI QEMU0001)
    "pvpanic_pci",                 # QEMU `-device pvpanic-pci`
)

BASE_DIRS = ("dev", "proc", "sys", "run", "tmp", "etc", "etc/wslx", "lib", "lib/modules", "mnt",
             "bin", "sbin", "usr", "usr/bin", "usr/sbin", "root")
DEVICE_NODES = {"dev/console": (5, 1), "dev/null": (1, 3)}
MODULES_LOAD = "etc/wslx/modules.load"
DEFAULT_BUSYBOX = Path("/bin/busybox")
ESSENTIAL_APPLETS = ("sh", "true", "cat", "uname", "sleep", "mount", "poweroff")

FileSpec = Union[bytes, str, os.PathLike, tuple]


class InitramfsError(Exception):
    pass


# --------------------------------------------------------------------------- kernels


def find_default_kernel(boot: Path | str = "/boot") -> Path:
    """The newest /boot/vmlinuz-*-cloud-amd64 (Debian linux-image-cloud-amd64)."""
    cands = sorted(Path(boot).glob("vmlinuz-*-cloud-amd64"), key=lambda p: _version_key(p.name))
    if not cands:
        raise InitramfsError(f"no {boot}/vmlinuz-*-cloud-amd64: install linux-image-cloud-amd64 (tools/setup.sh)")
    return cands[-1]


def _version_key(s: str):
    return [(0, int(t), "") if t.isdigit() else (1, 0, t) for t in re.split(r"(\d+)", s)]


def kernel_release(kernel: Path | str) -> str | None:
    """`/boot/vmlinuz-6.1.0-56-cloud-amd64` -> `6.1.0-56-cloud-amd64`; None for other names."""
    name = Path(kernel).name
    for prefix in ("vmlinuz-", "vmlinux-", "bzImage-"):
        if name.startswith(prefix) and len(name) > len(prefix):
            return name[len(prefix):]
    return None


def modules_dir_for(kernel: Path | str, modules_root: Path | str = "/lib/modules") -> Path | None:
    """/lib/modules/<kver> for a /boot/vmlinuz-<kver>, if it holds modules.dep."""
    kver = kernel_release(kernel)
    if kver is None:
        return None
    d = Path(modules_root) / kver
    return d if (d / "modules.dep").is_file() else None


# --------------------------------------------------------------------------- modules


def module_name(path: str) -> str:
    """`kernel/drivers/misc/pvpanic/pvpanic-mmio.ko.xz` -> `pvpanic_mmio`."""
    base = path.rsplit("/", 1)[-1]
    base = re.sub(r"\.ko(\.(xz|zst|gz))?$", "", base)
    return base.replace("-", "_")


@dataclass
class ModuleClosure:
    kver: str
    modules_dir: Path
    order: list[str] = field(default_factory=list)        # module names, deps first
    paths: dict[str, str] = field(default_factory=dict)   # name -> path relative to modules_dir
    deps: dict[str, list[str]] = field(default_factory=dict)  # name -> direct deps (names)
    builtin: list[str] = field(default_factory=list)      # roots built into the kernel
    missing: list[str] = field(default_factory=list)      # roots neither built-in nor a module


def parse_modules_dep(text: str) -> dict[str, tuple[str, list[str]]]:
    """modules.dep -> {name: (relpath, [dep relpaths in file order])}."""
    out: dict[str, tuple[str, list[str]]] = {}
    for line in text.splitlines():
        if ":" not in line:
            continue
        mod, _, rest = line.partition(":")
        mod = mod.strip()
        out[module_name(mod)] = (mod, rest.split())
    return out


def resolve_modules(modules_dir: Path | str, roots: Sequence[str] = DEFAULT_MODULE_ROOTS) -> ModuleClosure:
    """Closure of `roots` over modules.dep, ordered so every module follows its deps.

    modules.dep lists a module's dependencies so that modprobe loads them from
    the last to the first; the walk visits them in that order, then the roots in
    the order given, which makes the result deterministic."""
    mdir = Path(modules_dir)
    dep = parse_modules_dep((mdir / "modules.dep").read_text())
    builtin_file = mdir / "modules.builtin"
    builtins = set()
    if builtin_file.is_file():
        builtins = {module_name(l.strip()) for l in builtin_file.read_text().splitlines() if l.strip()}
    cl = ModuleClosure(kver=mdir.name, modules_dir=mdir)
    state: dict[str, int] = {}  # 1 = visiting, 2 = done

    def visit(name: str, chain: tuple[str, ...]):
        st = state.get(name)
        if st == 2:
            return
        if st == 1:
            raise InitramfsError(f"dependency cycle in modules.dep: {' -> '.join(chain + (name,))}")
        state[name] = 1
        rel, deps = dep[name]
        dnames = [module_name(d) for d in deps]
        cl.deps[name] = dnames
        for d in reversed(dnames):
            if d not in dep:
                raise InitramfsError(f"{name} depends on {d}, which modules.dep does not list")
            visit(d, chain + (name,))
        state[name] = 2
        cl.order.append(name)
        cl.paths[name] = rel

    for r in roots:
        n = r.replace("-", "_")
        if n in dep:
            visit(n, ())
        elif n in builtins:
            cl.builtin.append(n)
        else:
            cl.missing.append(n)
    if cl.missing:
        log.warning("kernel %s: module roots neither built-in nor modules, skipped: %s",
                    cl.kver, ", ".join(cl.missing))
    return cl


def read_module(path: Path) -> bytes:
    """Module bytes, decompressed (.ko, .ko.xz, .ko.gz, .ko.zst)."""
    raw = path.read_bytes()
    s = path.name
    if s.endswith(".xz"):
        return lzma.decompress(raw)
    if s.endswith(".gz"):
        return gzip.decompress(raw)
    if s.endswith(".zst"):
        try:
            import zstandard  # type: ignore
            return zstandard.ZstdDecompressor().decompress(raw, max_output_size=1 << 30)
        except ImportError:
            zstd = shutil.which("zstd")
            if not zstd:
                raise InitramfsError(f"{path}: zstd-compressed module, and neither python zstandard nor zstd(1) is installed")
            return subprocess.run([zstd, "-dc", str(path)], check=True, capture_output=True).stdout
    return raw


# --------------------------------------------------------------------------- busybox


def busybox_applets(busybox: Path | str = DEFAULT_BUSYBOX) -> list[str]:
    """Applet paths from `busybox --list-full` (e.g. `bin/sh`, `sbin/poweroff`)."""
    out = subprocess.run([str(busybox), "--list-full"], check=True, capture_output=True, text=True).stdout
    apps = sorted({l.strip().lstrip("/") for l in out.splitlines() if l.strip()})
    return [a for a in apps if a != "bin/busybox"]


# --------------------------------------------------------------------------- build


@dataclass
class BuildInfo:
    out: Path
    size: int
    entries: int
    seconds: float
    kernel: Path | None
    modules: ModuleClosure | None


def source_date_epoch() -> int:
    v = os.environ.get("SOURCE_DATE_EPOCH", "").strip()
    return int(v) if v else 0


def _file_entry(name: str, spec: FileSpec) -> Entry:
    """extra_files value -> Entry.  bytes/str: contents, mode 0644 (0755 under bin/ or
    for `init`); PathLike: that file (0755 if executable else 0644); a tuple
    (contents-or-path, mode) sets the mode; ("symlink", target) makes a symlink."""
    mode = None
    if isinstance(spec, tuple):
        if spec and spec[0] == "symlink":
            return Entry(name, stat.S_IFLNK | 0o777, str(spec[1]).encode())
        spec, mode = spec
    if isinstance(spec, (bytes, bytearray)):
        data = bytes(spec)
    elif isinstance(spec, str):
        data = spec.encode()
    else:
        p = Path(spec)
        data = p.read_bytes()
        if mode is None:
            mode = 0o755 if os.stat(p).st_mode & 0o111 else 0o644
    if mode is None:
        mode = 0o755 if (name == "init" or "bin/" in name) else 0o644
    return Entry(name, stat.S_IFREG | (mode & 0o7777), data)


def collect_entries(
    init_binary: Path | str | None,
    kernel: Path | str | None = None,
    modules: bool = True,
    extra_files: Mapping[str, FileSpec] | None = None,
    *,
    busybox: Path | str | None = DEFAULT_BUSYBOX,
    module_roots: Sequence[str] = DEFAULT_MODULE_ROOTS,
    modules_dir: Path | str | None = None,
) -> tuple[list[Entry], ModuleClosure | None]:
    files: dict[str, Entry] = {}
    for d in BASE_DIRS:
        files[d] = Entry(d, stat.S_IFDIR | 0o755)
    files["tmp"] = Entry("tmp", stat.S_IFDIR | 0o1777)
    for n, (ma, mi) in DEVICE_NODES.items():
        files[n] = Entry(n, stat.S_IFCHR | (0o600 if n == "dev/console" else 0o666), rdev=(ma, mi))

    if busybox:
        bb = Path(busybox)
        files["bin/busybox"] = Entry("bin/busybox", stat.S_IFREG | 0o755, bb.read_bytes())
        applets = busybox_applets(bb)
        missing = [a for a in ESSENTIAL_APPLETS if not any(p.rsplit("/", 1)[-1] == a for p in applets)]
        if missing:
            raise InitramfsError(f"{bb} lacks applets {missing}")
        for a in applets:
            files[a] = Entry(a, stat.S_IFLNK | 0o777, b"/bin/busybox")

    if init_binary is not None:
        files["init"] = Entry("init", stat.S_IFREG | 0o755, Path(init_binary).read_bytes())
        # wslx-init is multi-call: argv[0] "wslx-call" is the Gemini call applet (guest/init/gemini_linux.c)
        files["bin/wslx-call"] = Entry("bin/wslx-call", stat.S_IFLNK | 0o777, b"/init")

    closure = None
    load_lines: list[str] = []
    if modules:
        mdir = Path(modules_dir) if modules_dir else (modules_dir_for(kernel) if kernel else None)
        if mdir is None:
            log.info("kernel %s: no modules directory; shipping no modules", kernel)
        else:
            closure = resolve_modules(mdir, module_roots)
            for name in closure.order:
                rel = closure.paths[name]
                dst = f"lib/modules/{name}.ko"
                files[dst] = Entry(dst, stat.S_IFREG | 0o644, read_module(mdir / rel))
                load_lines.append("/" + dst)
            files["etc/wslx/kernel-release"] = Entry("etc/wslx/kernel-release", stat.S_IFREG | 0o644,
                                                     (closure.kver + "\n").encode())
    files[MODULES_LOAD] = Entry(MODULES_LOAD, stat.S_IFREG | 0o644,
                                "".join(l + "\n" for l in load_lines).encode())

    for name, spec in (extra_files or {}).items():
        name = name.lstrip("/")
        files[name] = _file_entry(name, spec)

    # Create missing parent directories.
    for name in list(files):
        parts = name.split("/")
        for i in range(1, len(parts)):
            d = "/".join(parts[:i])
            if d not in files:
                files[d] = Entry(d, stat.S_IFDIR | 0o755)
            elif files[d].kind != "dir":
                raise InitramfsError(f"{name}: parent {d} is not a directory")
    if "init" not in files:
        raise InitramfsError("no /init: give init_binary or extra_files['init']")

    # nlink: 2 + subdirectories for directories, 1 otherwise.
    subdirs: dict[str, int] = {}
    for n, e in files.items():
        if e.kind == "dir" and "/" in n:
            parent = n.rsplit("/", 1)[0]
            subdirs[parent] = subdirs.get(parent, 0) + 1
    out = []
    for n in sorted(files, key=sort_key):
        e = files[n]
        nl = 2 + subdirs.get(n, 0) if e.kind == "dir" else 1
        out.append(Entry(n, e.mode, e.data, e.rdev, nl))
    return out, closure


def build_initramfs(
    out: Path | str,
    init_binary: Path | str | None,
    kernel: Path | str | None = None,
    modules: bool = True,
    extra_files: Mapping[str, FileSpec] | None = None,
    *,
    init_script: str | None = None,
    busybox: Path | str | None = DEFAULT_BUSYBOX,
    module_roots: Sequence[str] = DEFAULT_MODULE_ROOTS,
    modules_dir: Path | str | None = None,
    mtime: int | None = None,
    info: list | None = None,
) -> Path:
    """Write the initramfs to `out` (atomically) and return its path.

    kernel: the kernel whose modules to ship (None: `find_default_kernel()`);
    modules=False ships none.  extra_files maps archive paths to contents (see
    `_file_entry`), overriding defaults; init_script, if given, becomes /init
    (mode 0755) instead of init_binary.  mtime defaults to $SOURCE_DATE_EPOCH or 0.
    If `info` is a list, a BuildInfo is appended to it."""
    t0 = time.monotonic()
    out = Path(out)
    if modules and kernel is None and modules_dir is None:
        kernel = find_default_kernel()
    extra = dict(extra_files or {})
    if init_script is not None:
        extra["init"] = (init_script, 0o755)
        init_binary = None
    entries, closure = collect_entries(init_binary, kernel, modules, extra, busybox=busybox,
                                       module_roots=module_roots, modules_dir=modules_dir)
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=out.name + ".", suffix=".tmp", dir=out.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            size = write_archive(f, entries, mtime=source_date_epoch() if mtime is None else mtime)
        os.chmod(tmp, 0o644)
        os.replace(tmp, out)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    dt = time.monotonic() - t0
    nmods = len(closure.order) if closure else 0
    log.info("initramfs %s: %d entries, %d modules, %d bytes, %.2f s", out, len(entries), nmods, size, dt)
    if info is not None:
        info.append(BuildInfo(out, size, len(entries), dt, Path(kernel) if kernel else None, closure))
    return out


def builder_sources() -> list[Path]:
    """The Python files whose change must rebuild the initramfs (for SCons)."""
    here = Path(__file__).resolve().parent
    return sorted(here.glob("*.py"))


def main(argv: Sequence[str] | None = None) -> int:
    from .. import repo_root

    ap = argparse.ArgumentParser(prog="python -m wslx.image.initramfs", description=__doc__.split("\n\n")[0])
    ap.add_argument("out", type=Path)
    ap.add_argument("--init", type=Path, default=repo_root() / "images" / "wslx-init", help="AgentX init binary")
    ap.add_argument("--kernel", type=Path, help="kernel whose modules to ship (default: newest Debian cloud kernel)")
    ap.add_argument("--no-modules", action="store_true")
    a = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    info: list[BuildInfo] = []
    build_initramfs(a.out, a.init, kernel=a.kernel, modules=not a.no_modules, info=info)
    i = info[0]
    print(f"{i.out}: {i.size} bytes, {i.entries} entries, "
          f"{len(i.modules.order) if i.modules else 0} modules, {i.seconds:.2f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
