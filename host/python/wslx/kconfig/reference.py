"""The kernel's own kconfig as the reference for the validator: `make <base>`, the tree's
scripts/kconfig/merge_config.sh, `make olddefconfig`. No kernel is compiled, only scripts/kconfig/conf.

Results are cached under build/kconfig-ref/<key>.config, where the key covers the tree, the base, the
recipe version and the bytes of every fragment, so a differential test re-runs only what changed.
"""
from __future__ import annotations

import fcntl
import hashlib
import os
import re
import shutil
import subprocess
import time
from pathlib import Path

from .errors import KernelBuildError
from .source import ARCH, SourceTree, cache_root

RECIPE_VERSION = "1"
MAKE_TARGETS = {"tinyconfig": "tinyconfig", "allnoconfig": "allnoconfig", "defconfig": "x86_64_defconfig"}
TIMEOUT = 300  # seconds for one make or merge_config.sh run (the first one also builds conf)
_VALUE_LINE = re.compile(rb"^CONFIG_([A-Za-z0-9_]+)=(.*)$")
_NOT_SET_LINE = re.compile(rb"^# CONFIG_([A-Za-z0-9_]+) is not set$")


def config_values(path: Path) -> dict[str, str]:
    """Every symbol a written .config mentions: its value, or "n" for `# CONFIG_X is not set`
    (bytes read as Latin-1, so string values compare byte for byte)."""
    values = {}
    for line in Path(path).read_bytes().splitlines():
        m = _VALUE_LINE.match(line) or _NOT_SET_LINE.match(line)
        if m:
            values[m.group(1).decode("latin-1")] = m.group(2).decode("latin-1") if m.re is _VALUE_LINE else "n"
    return values


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KCONFIG_") and k not in ("MAKEFLAGS", "O")}
    env.update(ARCH=ARCH, LC_ALL="C")
    return env


def _run(cmd: list[str], cwd: Path, log_path: Path) -> None:
    with open(log_path, "ab") as log:
        log.write(f"$ (cd {cwd} && {' '.join(cmd)})\n".encode())
        log.flush()
        try:
            proc = subprocess.run(cmd, cwd=cwd, env=_env(), stdout=log, stderr=subprocess.STDOUT, timeout=TIMEOUT)
        except subprocess.TimeoutExpired:
            raise KernelBuildError(f"{' '.join(cmd)} took more than {TIMEOUT} s; log: {log_path}") from None
    if proc.returncode:
        raise KernelBuildError(f"{' '.join(cmd)} failed with exit status {proc.returncode}; log: {log_path}")


def key_of(tree: SourceTree) -> str:
    return hashlib.sha256(f"recipe {RECIPE_VERSION}\narch {ARCH}\n{tree.key}".encode()).hexdigest()[:12]


def reference_config(tree: SourceTree, base: str, fragments: list[Path], log=print) -> Path:
    """The .config the kernel's own tools produce for `fragments` merged onto `base`:
    tinyconfig/allnoconfig/defconfig: `make <base>`, `merge_config.sh -m .config FRAGMENTS`, `make olddefconfig`;
    allno+fragment: `merge_config.sh -n FRAGMENTS` (allnoconfig with the merge as KCONFIG_ALLCONFIG)."""
    material = [f"recipe {RECIPE_VERSION}", f"arch {ARCH}", f"base {base}", f"source {tree.key}"]
    material += [f"{i} {hashlib.sha256(Path(f).read_bytes()).hexdigest()}" for i, f in enumerate(fragments)]
    key = hashlib.sha256("\n".join(material).encode()).hexdigest()[:20]
    cached = cache_root() / "kconfig-ref" / f"{key}.config"
    if cached.is_file():
        return cached
    if base not in MAKE_TARGETS and base != "allno+fragment":
        raise KernelBuildError(f"no reference recipe for base {base!r}")
    cached.parent.mkdir(parents=True, exist_ok=True)
    # One object dir per tree keeps scripts/kconfig/conf built between runs; a lock serialises runs.
    objroot = cache_root() / "kconfig-ref-obj"
    objroot.mkdir(parents=True, exist_ok=True)
    obj = objroot / f"linux-{tree.version}"
    log_path = cached.with_suffix(".log")
    started = time.monotonic()
    with open(objroot / f"linux-{tree.version}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        log_path.write_bytes(b"")
        obj.mkdir(exist_ok=True)
        (obj / ".config").unlink(missing_ok=True)
        frags = [str(Path(f).resolve()) for f in fragments]
        make = ["make", "-C", str(tree.path), f"O={obj}"]
        merge = [str(tree.path / "scripts/kconfig/merge_config.sh")]
        if base == "allno+fragment":
            if not (obj / "Makefile").is_file() or not (obj / "scripts/kconfig/conf").is_file():
                _run(make + ["allnoconfig"], tree.path, log_path)  # builds conf and obj/Makefile once
            _run(merge + ["-n", "-O", str(obj)] + frags, obj, log_path)
        else:
            base_config = cache_root() / "kconfig-ref" / f"base-{tree.version}-{base}-{key_of(tree)}.config"
            if not base_config.is_file():
                _run(make + [MAKE_TARGETS[base]], tree.path, log_path)
                shutil.copyfile(obj / ".config", base_config)
            shutil.copyfile(base_config, obj / ".config")
            _run(merge + ["-m", "-O", str(obj), str(obj / ".config")] + frags, obj, log_path)
            _run(make + ["olddefconfig"], tree.path, log_path)
        staged = cached.with_name(f".{key}.{os.getpid()}.tmp")
        shutil.copyfile(obj / ".config", staged)
        staged.replace(cached)
    log(f"[kconfig-ref] linux {tree.version} {base} + {len(fragments)} fragment(s): "
        f"{time.monotonic() - started:.1f} s")
    return cached
