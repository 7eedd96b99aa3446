"""Build a bzImage from a profile's fragment: check, configure with the real kconfig, make, cache.

Steps: validate with kconfiglib (fail before a 4-minute build if anything would
be lost); `make O=... <base>`; replace the fragment's symbols in .config and
append the fragment (what merge_config.sh -m does); `make olddefconfig`; verify
the REAL .config kept every requested value; `make -j$(nproc) bzImage`.

Cache: build/kernel-cache/<key>/bzImage where key = sha256(requested
assignments, base, source identity, recipe version). Reason comments in the
fragment are not part of the key, so rewording a reason does not rebuild.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

from .check import DEFAULT_BASE, check_requested, format_report
from .conf import merge_config_lines
from .declarations import resolve_profile
from .errors import ConfigLossError, KernelBuildError
from .fragment import SourceLine, config_key_material, parse_file, parse_text, read_lines, render
from .source import ARCH, SourceTree, cache_root, find_source

RECIPE_VERSION = "1"  # bump when the build steps below change what comes out
REPRODUCIBLE_ENV = {"KBUILD_BUILD_TIMESTAMP": "2024-01-01", "KBUILD_BUILD_USER": "wslx", "KBUILD_BUILD_HOST": "wslx"}


def _log(msg: str) -> None:
    print(f"[kernel] {msg}", flush=True)


def cache_key(requested: dict[str, str], base: str, tree: SourceTree) -> str:
    material = f"recipe {RECIPE_VERSION}\narch {ARCH}\nbase {base}\nsource {tree.key}\n{config_key_material(requested)}"
    return hashlib.sha256(material.encode()).hexdigest()[:20]


def _run(cmd: list[str], *, quiet: bool = False) -> None:
    """Run make, streaming its output (progress), or only showing it on failure when quiet."""
    env = dict(os.environ, **REPRODUCIBLE_ENV, ARCH=ARCH)
    env.pop("KCONFIG_ALLCONFIG", None)
    if quiet:
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
        if proc.returncode:
            sys.stdout.write(proc.stdout + proc.stderr)
    else:
        proc = subprocess.run(cmd, env=env)
    if proc.returncode:
        raise KernelBuildError(f"{' '.join(cmd)} failed with exit status {proc.returncode}")


def _merge_fragment(dot_config: Path, requested: dict[str, str]) -> None:
    """What merge_config.sh -m does (the validator's merge_config_lines): drop the base's lines for
    the fragment's symbols, append the fragment."""
    fragment = [SourceLine(f"# CONFIG_{s} is not set" if v == "n" else f"CONFIG_{s}={v}", "fragment")
                for s, v in requested.items()]
    merged, _ = merge_config_lines(read_lines(dot_config), [fragment])
    dot_config.write_bytes("".join(line.text + "\n" for line in merged).encode("utf-8", "surrogateescape"))


def _real_losses(dot_config: Path, requested: dict[str, str]) -> list[str]:
    final: dict[str, str] = {}
    for line in dot_config.read_text().splitlines():
        if line.startswith("CONFIG_"):
            name, _, value = line[7:].partition("=")
            final[name] = value
        elif (m := re.match(r"^# CONFIG_([A-Za-z0-9_]+) is not set", line)):
            final[m.group(1)] = "n"
    return [f"{s}: requested {v}, got {final.get(s, 'n (absent)')}"
            for s, v in requested.items() if final.get(s, "n") != v]


def build_from_requested(requested: dict[str, str], *, name: str, base: str = DEFAULT_BASE, source=None,
                         output: Path | None = None, jobs: int | None = None, sources=None,
                         quiet_make: bool = False) -> Path:
    """Build (or reuse) a bzImage for these assignments; returns the cached bzImage path.
    If `output` is given, the image is also copied there."""
    started = time.monotonic()
    tree = find_source(source, log=_log)
    _log(f"{name}: checking {len(requested)} options against linux {tree.version} ({base})")
    report = check_requested(requested, sources or {}, subject=name, tree=tree, base=base)
    if not report.ok:
        print(format_report(report))
        raise ConfigLossError(f"{name}: fragment does not survive the merge; not building", report)
    key = cache_key(requested, base, tree)
    cached = cache_root() / "kernel-cache" / key / "bzImage"
    if cached.is_file():
        _log(f"{name}: cached kernel {cached} (key {key})")
    else:
        obj = cache_root() / "kernel-obj" / name  # per profile, so rebuilds are incremental
        obj.mkdir(parents=True, exist_ok=True)
        make = ["make", "-C", str(tree.path), f"O={obj.resolve()}"]
        _log(f"{name}: make {base} in {obj}")
        _run(make + [base if base in ("tinyconfig", "allnoconfig") else "x86_64_defconfig"], quiet=True)
        _merge_fragment(obj / ".config", requested)
        _log(f"{name}: make olddefconfig with the fragment")
        _run(make + ["olddefconfig"], quiet=True)
        losses = _real_losses(obj / ".config", requested)
        if losses:  # kconfiglib and the real kconfig disagree: trust the real one
            raise KernelBuildError(f"{name}: the kernel's own kconfig dropped: " + "; ".join(losses))
        jobs = jobs or os.cpu_count() or 1
        _log(f"{name}: make -j{jobs} bzImage (about 4 min on 2 cores)")
        t0 = time.monotonic()
        _run(make + [f"-j{jobs}", "bzImage"], quiet=quiet_make)
        _log(f"{name}: compiled in {time.monotonic() - t0:.0f} s")
        cached.parent.mkdir(parents=True, exist_ok=True)
        staging = cached.with_name(f".bzImage.{os.getpid()}")
        shutil.copyfile(obj / "arch/x86/boot/bzImage", staging)
        shutil.copyfile(obj / ".config", cached.with_name("config"))
        # For benchmarks (image size, build time) without re-running anything.
        cached.with_name("build.json").write_text(json.dumps({
            "name": name, "key": key, "linux": tree.version, "base": base, "options": len(requested),
            "compile_seconds": round(time.monotonic() - t0, 1), "bzimage_bytes": staging.stat().st_size,
        }, indent=2) + "\n")
        staging.replace(cached)
    if output:
        output = Path(output)
        output.parent.mkdir(parents=True, exist_ok=True)
        tmp = output.with_name(output.name + ".tmp")
        shutil.copyfile(cached, tmp)
        tmp.replace(output)
    shown = output or cached
    size = cached.stat().st_size
    _log(f"{name}: {shown} {size} bytes ({size / 1e6:.2f} MB), {time.monotonic() - started:.1f} s")
    return cached


def build_fragment(fragment: Path, *, output: Path | None = None, source=None, base: str | None = None,
                   name: str | None = None, **kw) -> Path:
    frag = parse_file(fragment)
    name = name or frag.header.get("profile", Path(fragment).stem).split()[0]
    base = base or frag.header.get("base") or DEFAULT_BASE
    sources = {}
    for a in frag.assignments:
        sources.setdefault(a.symbol, []).append(a.where)
    if frag.duplicates():
        raise ConfigLossError(f"{fragment}: symbols assigned twice with different values: "
                              + ", ".join(frag.duplicates()))
    if frag.ignored:
        raise ConfigLossError(f"{fragment}: kconfig would skip these lines: "
                              + "; ".join(f"{i.where}: {i.why}" for i in frag.ignored))
    return build_from_requested(frag.requested(), name=name, base=base, source=source, output=output,
                                sources=sources, **kw)


def build_kernel(profile: str, *, output: Path | None = None, source=None, **kw) -> Path:
    """The bzImage for a kernel-config profile (built once, then from build/kernel-cache)."""
    comp = resolve_profile(profile)
    frag = parse_text(render(comp))  # same text scons writes to images/<profile>.config
    sources = {s: r.sources for s, r in comp.requested.items()}
    return build_from_requested(frag.requested(), name=profile, base=comp.profile.base, source=source,
                                output=output, sources=sources, **kw)
