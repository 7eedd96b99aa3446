"""Find (and unpack) the Linux source tree, and parse its Kconfig with kconfiglib.

kconfiglib 14.1.0 predates Linux 6.0, where kernel/module/Kconfig uses the bare
`modules` keyword instead of `option modules`; we rewrite that line while
kconfiglib reads Kconfig files (the tree on disk is never modified).
"""
from __future__ import annotations

import contextlib
import io
import os
import re
import shutil
import subprocess
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

from .. import repo_root
from .errors import SourceTreeError

DEFAULT_TARBALL = Path("/usr/src/linux-source-6.1.tar.xz")
# `--source 6.1|6.12`: Debian 12's kernel source packages (6.12 comes from bookworm-security).
KNOWN_TREES = {"6.1": DEFAULT_TARBALL, "6.12": Path("/usr/src/linux-source-6.12.tar.xz")}
ARCH = "x86_64"   # what `make` picks on this host: 64BIT has no prompt, so allnoconfig stays 64-bit
SRCARCH = "x86"
_BARE_MODULES = re.compile(r"^(\s*)modules\s*$", re.M)


@dataclass(frozen=True)
class SourceTree:
    path: Path
    version: str  # e.g. 6.1.192
    origin: str   # tarball path or the tree path

    @property
    def key(self) -> str:
        """Identifies the exact sources for cache keys: version + where they came from (+ tarball size/mtime)."""
        origin = Path(self.origin)
        stamp = ""
        if origin.is_file():
            st = origin.stat()
            stamp = f":{st.st_size}:{int(st.st_mtime)}"
        return f"linux-{self.version}:{self.origin}{stamp}"


def cache_root() -> Path:
    return repo_root() / "build"


def _kernel_version(tree: Path) -> str:
    fields = {}
    for line in (tree / "Makefile").read_text().splitlines()[:12]:
        key, eq, value = line.partition("=")
        if eq and key.strip() in ("VERSION", "PATCHLEVEL", "SUBLEVEL", "EXTRAVERSION"):
            fields[key.strip()] = value.strip()
    version = ".".join(fields.get(k, "0") for k in ("VERSION", "PATCHLEVEL", "SUBLEVEL"))
    return version + fields.get("EXTRAVERSION", "")


def _is_tree(path: Path) -> bool:
    return (path / "Kconfig").is_file() and (path / "Makefile").is_file() and (path / "arch" / SRCARCH).is_dir()


def _unpack(tarball: Path, dest_parent: Path, log=print) -> Path:
    """Unpack once into build/linux-src/<name>; a stamp file marks a complete unpack."""
    name = tarball.name.split(".tar")[0]
    dest = dest_parent / name
    stamp = dest_parent / f".{name}.unpacked"
    st = tarball.stat()
    want = f"{tarball}:{st.st_size}:{int(st.st_mtime)}\n"
    if dest.is_dir() and stamp.is_file() and stamp.read_text() == want:
        return dest
    log(f"[kconfig] unpacking {tarball} into {dest_parent} (about 15 s, once)")
    dest_parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{name}.", dir=dest_parent))
    try:
        # tar(1) is several times faster than tarfile on a 130 MB .xz
        subprocess.run(["tar", "-xf", str(tarball), "-C", str(staging)], check=True)
        unpacked = [p for p in staging.iterdir()]
        top = unpacked[0] if len(unpacked) == 1 and unpacked[0].is_dir() else staging
        if dest.exists():
            shutil.rmtree(dest)
        top.rename(dest)
    except (subprocess.CalledProcessError, OSError, tarfile.TarError) as exc:
        raise SourceTreeError(f"cannot unpack {tarball}: {exc}") from exc
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    if not _is_tree(dest):
        raise SourceTreeError(f"{tarball} does not contain a Linux source tree for {SRCARCH}")
    stamp.write_text(want)
    return dest


def _source_path(source: str | os.PathLike | None) -> tuple[Path, str]:
    """(path, install hint) for a --source value: a known version, a tree, a tarball, or None."""
    given = source or os.environ.get("KSOURCE") or None
    if given is None or str(given) in KNOWN_TREES:
        version = str(given) if given else "6.1"
        return KNOWN_TREES[version], f" (install linux-source-{version}: tools/setup.sh)"
    return Path(given), ""


def find_source(source: str | os.PathLike | None = None, log=print) -> SourceTree:
    """`source` may be 6.1 or 6.12 (Debian's linux-source packages), a tree, a tarball, or None
    (KSOURCE env, then linux-source-6.1)."""
    path, hint = _source_path(source)
    if not path.exists():
        raise SourceTreeError(f"Linux source {path} does not exist{hint}")
    if path.is_dir():
        if not _is_tree(path):
            raise SourceTreeError(f"{path} is not a Linux source tree (no Kconfig, Makefile, arch/{SRCARCH})")
        tree = path.resolve()
        return SourceTree(tree, _kernel_version(tree), str(tree))
    if ".tar" not in path.name:
        raise SourceTreeError(f"{path} is neither a source tree nor a .tar* tarball")
    tree = _unpack(path.resolve(), cache_root() / "linux-src", log)
    return SourceTree(tree, _kernel_version(tree), str(path.resolve()))


def kconfig_environ(tree: Path) -> dict[str, str]:
    """Variables the top-level Makefile would export to kconfig."""
    cc = os.environ.get("CC", "gcc")
    try:
        cc_version = subprocess.run([cc, "--version"], capture_output=True, text=True).stdout.splitlines()[0]
    except (OSError, IndexError):
        cc_version = ""
    # Kconfig's $(shell,...) tests read these too (X86_X32_ABI runs `$(OBJCOPY) --version`).
    tools = {"LD": "ld", "AR": "ar", "NM": "nm", "STRIP": "strip", "OBJCOPY": "objcopy", "OBJDUMP": "objdump",
             "READELF": "readelf", "PAHOLE": "pahole", "LEX": "flex", "YACC": "bison", "AWK": "awk",
             "PERL": "perl", "PYTHON3": "python3", "HOSTPKG_CONFIG": "pkg-config", "RUSTC": "rustc",
             "BINDGEN": "bindgen"}
    return {
        "srctree": str(tree), "ARCH": ARCH, "SRCARCH": SRCARCH, "CC": cc, "CPP": f"{cc} -E",
        "HOSTCC": "gcc", "HOSTCXX": "g++", "CC_VERSION_TEXT": cc_version, "KERNELVERSION": _kernel_version(tree),
        **{name: os.environ.get(name, default) for name, default in tools.items()},
    }


@contextlib.contextmanager
def _environ(values: dict[str, str]):
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


_parsed: dict[str, object] = {}


def load_kconfig(tree: Path):
    """Parsed Kconfig for `tree` (about 1.5 s, then cached for this process)."""
    import kconfiglib

    class LinuxKconfig(kconfiglib.Kconfig):
        def _open(self, filename, mode):
            f = super()._open(filename, mode)
            if "r" in mode and os.path.basename(filename).startswith("Kconfig"):
                text = f.read()
                f.close()
                return io.StringIO(_BARE_MODULES.sub(r"\1option modules", text))
            return f

    key = str(Path(tree).resolve())
    if key not in _parsed:
        with _environ(kconfig_environ(Path(tree))):
            try:
                kconf = LinuxKconfig(str(Path(tree) / "Kconfig"), warn=False)
            except kconfiglib.KconfigError as exc:
                raise SourceTreeError(f"kconfiglib cannot parse {tree}/Kconfig: {exc}") from exc
        kconf.warn_assign_override = False
        kconf.warn_assign_redun = False
        kconf.warn_assign_undef = False
        _parsed[key] = kconf
    return _parsed[key]


def source_identity(source: str | os.PathLike | None = None) -> str:
    """A cheap identity of the sources for build signatures: never unpacks anything."""
    path, _ = _source_path(source)
    if path.is_file():
        st = path.stat()
        return f"{path.resolve()}:{st.st_size}:{int(st.st_mtime)}"
    if path.is_dir() and (path / "Makefile").is_file():
        return f"{path.resolve()}:linux-{_kernel_version(path)}"
    return f"{path}:missing"


def other_trees(tree: SourceTree, log=print) -> list[SourceTree]:
    """The known trees (6.1, 6.12) installed here other than `tree`, for "exists in linux X" hints."""
    out = []
    for tarball in KNOWN_TREES.values():
        if tarball.is_file() and str(tarball.resolve()) != tree.origin:
            out.append(find_source(tarball, log=log))
    return out
