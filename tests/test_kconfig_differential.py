"""Differential test: the validator's final .config equals the kernel's own kconfig, value for value.

For every fragment set, on every base (tinyconfig, allnoconfig, defconfig, allno+fragment) and on both
Debian kernel trees (linux-source-6.1 and -6.12), the validator (kconfiglib + the confdata-exact reader
and merge_config.sh merge) must produce the same value for every symbol as the real tools:
`make <base>`, `scripts/kconfig/merge_config.sh -m .config FRAGMENTS`, `make olddefconfig` (or
`merge_config.sh -n FRAGMENTS` for allno+fragment). A bool/tristate the real tool writes as
"is not set" and kconfiglib omits (or the reverse) has the same value, n; they are counted apart.

Fragment sets: Linux's own kernel/configs/*.config and arch/x86/configs/*.config fragments, the
kernel's selftest fragments (tools/testing/selftests/*/config, real-world sets other projects feed to
merge_config.sh), the repo's profiles, multi-file merges (a directory in name order, layered
fragments), and a set of the lines kconfig rejects or skips (issue 18's faults).

The real tools' results are cached in build/kconfig-ref/ (the first run takes several minutes; later
runs only re-run the validator). Per-check figures go to build/kconfig-ref/differential.json.
"""
from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from wslx.kconfig.source import KNOWN_TREES

BASES = ("tinyconfig", "allnoconfig", "defconfig", "allno+fragment")
SELFTESTS = ("net", "bpf", "cgroup", "landlock", "ftrace")
TREES = [pytest.param(v, marks=pytest.mark.skipif(not t.exists(), reason=f"linux-source-{v} not installed "
                                                  "(tools/setup.sh; 6.12 is in bookworm-security)"))
         for v, t in KNOWN_TREES.items()]

# Lines kconfig rejects or skips, a redefinition across files, CRLF and a Latin-1 comment:
# the reader must reproduce what conf does with each of them, not just report it.
EDGE_A = (b"# caf\xe9: a Latin-1 comment\n"
          b"   CONFIG_BLOCK=y\n"
          b"CONFIG_SMP=y\n"
          b"CONFIG_NR_CPUS=240  \n"
          b"CONFIG_NR_CPUS=0240\n"
          b"CONFIG_LOG_BUF_SHIFT=0x10\n"
          b"CONFIG_SMP=m\n"
          b"CONFIG_PRINTK=y\r\n"
          b'CONFIG_MODULES=""\n'
          b"CONFIG_LOCALVERSION=unquoted\n"
          b'CONFIG_DEFAULT_HOSTNAME="wslx\\"guest"\n'
          b"# CONFIG_MULTIUSER is not set  \n"
          b"CONFIG_TMPFS=y\n"
          b"CONFIG_TMPFS=y\n"
          b"CONFIG_NO_SUCH_SYMBOL_XYZ=y\n")
EDGE_B = (b"CONFIG_SHMEM=y\n"
          b"# CONFIG_TMPFS is not set\n"
          b"CONFIG_NR_CPUS=8\n"
          b"CONFIG_LOG_BUF_SHIFT=99\n"
          b"CONFIG_HZ_100=y\n"
          b"CONFIG_HZ_1000=y\n")

_figures: list[dict] = []


def _values(path: Path) -> dict[str, str]:
    from wslx.kconfig.reference import config_values
    return config_values(path)


def _same_value(requested: str, real: str) -> bool:
    if requested.lower().startswith("0x") or real.lower().startswith("0x"):
        try:
            return int(requested, 16) == int(real, 16)
        except ValueError:
            return False
    return requested == real


def _fragment_sets(tree, tmp: Path) -> dict[str, list[Path]]:
    from wslx.kconfig.declarations import profile_names, resolve_profile
    from wslx.kconfig.fragment import render
    src = tree.path
    sets: dict[str, list[Path]] = {}
    for f in sorted((src / "kernel/configs").glob("*.config")):
        sets[f"kernel/configs/{f.name}"] = [f]
    for f in sorted((src / "arch/x86/configs").glob("*.config")):
        sets[f"arch/x86/configs/{f.name}"] = [f]
    for name in SELFTESTS:
        f = src / "tools/testing/selftests" / name / "config"
        if f.is_file():
            sets[f"selftests/{name}"] = [f]
    for name in profile_names():
        path = tmp / f"profile-{name}.config"
        path.write_text(render(resolve_profile(name)))
        sets[f"profile {name}"] = [path]
    sets["layered: kvm_guest + xen + nopm"] = [src / "kernel/configs" / n for n in
                                              ("kvm_guest.config", "xen.config", "nopm.config")]
    sets["directory: kernel/configs/ in name order"] = sorted(
        p for p in (src / "kernel/configs").iterdir() if p.is_file())
    (tmp / "edge-a.config").write_bytes(EDGE_A)
    (tmp / "edge-b.config").write_bytes(EDGE_B)
    sets["edge cases (2 files)"] = [tmp / "edge-a.config", tmp / "edge-b.config"]
    return sets


@pytest.fixture(scope="module")
def figures():
    yield _figures
    if _figures:
        from wslx.kconfig.source import cache_root
        out = cache_root() / "kconfig-ref" / "differential.json"
        out.parent.mkdir(parents=True, exist_ok=True)
        summary = {}
        for f in _figures:
            s = summary.setdefault(f["linux"], {"checks": 0, "fragment_sets": set(), "symbols_compared": 0,
                                                "validator_seconds": [], "reference_seconds": []})
            s["checks"] += 1
            s["fragment_sets"].add(f["set"])
            s["symbols_compared"] += f["symbols"]
            s["validator_seconds"].append(f["validator_s"])
            s["reference_seconds"].append(f["reference_s"])
        for s in summary.values():
            s["fragment_sets"] = len(s["fragment_sets"])
            v = sorted(s.pop("validator_seconds"))
            s["validator_seconds_median"] = v[len(v) // 2]
            s["validator_seconds_max"] = v[-1]
            s["reference_seconds_total"] = round(sum(s.pop("reference_seconds")), 1)
        out.write_text(json.dumps({"summary": summary, "checks": _figures}, indent=1) + "\n")


@pytest.mark.slow
@pytest.mark.parametrize("version", TREES)
def test_validator_equals_make_olddefconfig(version, tmp_path_factory, figures):
    from wslx.kconfig.check import check_fragments
    from wslx.kconfig.reference import reference_config
    from wslx.kconfig.source import find_source
    tree = find_source(version)
    tmp = tmp_path_factory.mktemp(f"differential-{version}")
    mismatches = []
    for set_name, files in _fragment_sets(tree, tmp).items():
        for base in BASES:
            t0 = time.monotonic()
            real = _values(reference_config(tree, base, files))
            t1 = time.monotonic()
            ours_path = tmp / "ours.config"
            report = check_fragments(files, tree=tree, base=base, final_config=ours_path)
            t2 = time.monotonic()
            ours = _values(ours_path)
            symbols = real.keys() | ours.keys()
            differ = sorted(s for s in symbols if real.get(s, "n") != ours.get(s, "n"))
            written = sorted(s for s in real.keys() ^ ours.keys() if s not in differ)
            figures.append({"linux": tree.version, "set": set_name, "base": base, "files": len(files),
                            "symbols": len(symbols), "requested": len(report.options), "differ": len(differ),
                            "written_only_by_one": len(written), "validator_s": round(t2 - t1, 3),
                            "reference_s": round(t1 - t0, 3)})
            if differ:
                mismatches.append(f"{set_name} on {base}: " + ", ".join(
                    f"{s} real={real.get(s)} ours={ours.get(s)}" for s in differ[:10]))
            # A row says ok exactly when the real kconfig kept the requested value.
            wrong = [f"{row.symbol} ({row.status})" for row in report.options if row.status in ("ok", "lost")
                     and (row.status == "ok") != _same_value(row.requested, real.get(row.symbol, "n"))]
            if wrong:
                mismatches.append(f"{set_name} on {base}: rows contradict the real result: {wrong}")
    assert not mismatches, "\n".join(mismatches)
