"""kernel-config declarations, fragment generation, the merge validator, and the fragment-built kernel.

Markers: `slow` = needs the Linux 6.1 tree (first run unpacks /usr/src/linux-source-6.1.tar.xz, ~15 s);
`kernel_build` = builds a bzImage (~4 min the first time, then cached).
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from wslx import cli
from wslx.kconfig import fragment as fragmod
from wslx.kconfig.declarations import compose, load_features, load_profiles, profile_names, resolve_profile
from wslx.kconfig.errors import (DeclarationError, FragmentParseError, SourceTreeError, UnknownProfileError,
                                 VsockTransportConflict)
from wslx.kconfig.model import Feature, Profile
from wslx.kconfig.source import DEFAULT_TARBALL, KNOWN_TREES

needs_tree = pytest.mark.skipif(not DEFAULT_TARBALL.exists(), reason="linux-source-6.1 not installed")


@pytest.fixture(scope="module")
def tree():
    from wslx.kconfig.source import find_source
    return find_source(None)


def _toy_profile(features, name="toy", **kw) -> Profile:
    kw.setdefault("vsock_transports", "none")
    return Profile(name, "test profile", features=tuple(features), **kw)


# --- declarations and fragments (no kernel tree needed) ----------------------------

def test_profiles_declared_and_compose_without_conflicts():
    assert {"qemu", "hyperv", "full"} <= set(profile_names())
    for name in profile_names():
        comp = resolve_profile(name)
        assert not comp.conflicts, [c.describe() for c in comp.conflicts]


def test_profile_vsock_transports_are_deliberate():
    qemu, hyperv, full = (resolve_profile(n) for n in ("qemu", "hyperv", "full"))
    assert qemu.value("VIRTIO_VSOCKETS") == "y" and qemu.value("HYPERV_VSOCKETS") == "n"
    assert hyperv.value("HYPERV_VSOCKETS") == "y" and hyperv.value("VIRTIO_VSOCKETS") == "n"
    assert full.value("VIRTIO_VSOCKETS") == "m" and full.value("HYPERV_VSOCKETS") == "m"
    assert full.value("MODULES") == "y"


def test_both_vsock_transports_builtin_rejected_unless_acknowledged():
    features = {"v": Feature("v", "virtio", {"VIRTIO_VSOCKETS": ("y", "r")}),
                "h": Feature("h", "hyperv", {"HYPERV_VSOCKETS": ("y", "r")})}
    with pytest.raises(VsockTransportConflict, match="first"):
        compose(_toy_profile(["v", "h"]), features)
    comp = compose(_toy_profile(["v", "h"], acknowledge_both_vsock_builtin="QEMU only, hv_sock unused"), features)
    assert comp.value("VIRTIO_VSOCKETS") == comp.value("HYPERV_VSOCKETS") == "y"


def test_conflicting_features_are_reported_and_refused_by_generator():
    features = {"a": Feature("a", "wants it", {"TMPFS": ("y", "r")}),
                "b": Feature("b", "does not", {"TMPFS": ("n", "r")}),
                "c": Feature("c", "agrees", {"TMPFS": ("y", "r")})}
    comp = compose(_toy_profile(["a", "b"]), features)
    assert [c.symbol for c in comp.conflicts] == ["TMPFS"]
    assert "feature a sets y" in comp.conflicts[0].describe() and "feature b sets n" in comp.conflicts[0].describe()
    with pytest.raises(DeclarationError, match="TMPFS"):
        fragmod.render(comp)
    assert not compose(_toy_profile(["a", "c"]), features).conflicts  # same value twice is fine
    settled = compose(_toy_profile(["a", "b"], overrides={"TMPFS": ("y", "profile decides")}), features)
    assert not settled.conflicts


@pytest.mark.parametrize("symbols, message", [
    ({"CONFIG_TMPFS": ("y", "r")}, "without the CONFIG_ prefix"),
    ({"TMPFS": "y"}, "one-line reason"),
    ({"TMPFS": ("y", "")}, "one-line reason"),
    ({"TMPFS": (True, "r")}, "use 'y'"),
])
def test_malformed_declarations_are_typed_errors(symbols, message):
    with pytest.raises(DeclarationError, match=message):
        Feature("bad", "bad", symbols).settings


def test_unknown_profile_is_a_typed_error():
    with pytest.raises(UnknownProfileError, match="known profiles"):
        resolve_profile("no-such-profile")


def test_fragment_generation_is_deterministic_and_fingerprinted(tmp_path):
    for name in profile_names():
        first = fragmod.render(resolve_profile(name))
        assert first == fragmod.render(resolve_profile(name))
        parsed = fragmod.parse_text(first)
        assert parsed.header["profile"].split()[0] == name
        assert parsed.header["features"] == ", ".join(load_profiles()[name].features)
        assert parsed.header["fingerprint"] == fragmod.fingerprint(parsed.body)
        assert parsed.requested() == {s: r.setting.config_value for s, r in resolve_profile(name).requested.items()}
        out = tmp_path / f"{name}.config"
        fragmod.write_profile_fragment(resolve_profile(name), out)
        mtime = out.stat().st_mtime_ns
        fragmod.write_profile_fragment(resolve_profile(name), out)
        assert out.read_text() == first and out.stat().st_mtime_ns == mtime  # unchanged -> untouched


def test_every_setting_has_a_reason():
    for feature in load_features().values():
        assert feature.reason
        for setting in feature.settings:
            assert setting.reason, (feature.name, setting.symbol)


@pytest.mark.parametrize("line", ["CONFIG_FOO", "FOO=y", " CONFIG_FOO=y", "# CONFIG_FOO is not set  "])
def test_lines_kconfig_skips_are_reported_with_file_and_line(tmp_path, line):
    """conf skips these (confdata.c); they are reported, not fatal: kconfig itself reads on."""
    path = tmp_path / "bad.config"
    path.write_text(f"CONFIG_TMPFS=y\n{line}\n")
    parsed = fragmod.parse_file(path)
    assert parsed.requested() == {"TMPFS": "y"}
    assert [i.where for i in parsed.ignored] == [f"{path}:2"]


@pytest.mark.parametrize("line", ["CONFIG_FOO=maybe", 'CONFIG_FOO="unterminated'])
def test_values_are_kept_raw_for_the_type_check(tmp_path, line):
    """Whether a value is valid depends on the symbol's type, known only with the tree (check.interpret)."""
    parsed = fragmod.parse_text(f"{line}\n", "f.config")
    assert parsed.requested() == {"FOO": line.partition("=")[2]} and not parsed.ignored


def test_unreadable_fragment_is_typed_error(tmp_path):
    with pytest.raises(FragmentParseError, match="not found"):
        fragmod.parse_file(tmp_path / "missing.config")


def test_cli_user_errors_exit_2_without_traceback(tmp_path, capsys):
    assert cli.main(["kconfig", "check", "--profile", "nope"]) == 2
    assert cli.main(["kconfig", "check", str(tmp_path / "missing.config")]) == 2
    assert cli.main(["kconfig", "check", "--profile", "qemu", "--source", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "unknown profile 'nope'" in err and "not found" in err and "not a Linux source tree" in err
    assert "Traceback" not in err


def test_missing_source_is_typed_error(tmp_path):
    from wslx.kconfig.source import find_source
    with pytest.raises(SourceTreeError):
        find_source(tmp_path / "nope.tar.xz")


# --- against the real Linux 6.1 Kconfig ---------------------------------------------

@pytest.mark.slow
@pytest.mark.parametrize("version", [
    pytest.param(v, marks=pytest.mark.skipif(not t.exists(), reason=f"linux-source-{v} not installed "
                                             "(tools/setup.sh; 6.12 is in bookworm-security)"))
    for v, t in KNOWN_TREES.items()])
@pytest.mark.parametrize("profile", ["qemu", "hyperv", "full"])
def test_every_profile_survives_on_both_trees(version, profile):
    from wslx.kconfig.check import check_profile, format_report
    from wslx.kconfig.source import find_source
    tree = find_source(version)
    report = check_profile(profile, tree=tree)
    assert report.ok, format_report(report)
    assert "all survived" in format_report(report) and tree.version.startswith(version + ".")


BROKEN = """\
CONFIG_64BIT=y
CONFIG_PCI=y
CONFIG_VIRTIO_MENU=y
CONFIG_VIRTIO_PCI=y
CONFIG_VIRTIO_PMEM=y
CONFIG_MEMORY_HOTPLUG=y
CONFIG_SPARSEMEM_VMEMMAP=y
CONFIG_ZONE_DEVICE=y
CONFIG_FS_DAX=y
CONFIG_NO_SUCH_SYMBOL_XYZ=y
CONFIG_TMPFS=y
# CONFIG_TMPFS is not set
"""


@pytest.fixture
def broken_fragment(tmp_path) -> Path:
    path = tmp_path / "broken.config"
    path.write_text(BROKEN)
    return path


def _blocker_names(blockers, depth=3):
    names = []
    for b in blockers:
        names.append(b.symbol)
        if depth > 1:
            names += _blocker_names(b.blockers, depth - 1)
    return names


@pytest.mark.slow
@needs_tree
def test_broken_fragment_names_the_unmet_dependencies(tree, broken_fragment):
    from wslx.kconfig.check import check_fragment, format_report
    report = check_fragment(broken_fragment, tree=tree, base="allnoconfig")
    assert not report.ok
    rows = {o.symbol: o for o in report.options}

    pmem = rows["VIRTIO_PMEM"]
    assert (pmem.status, pmem.requested, pmem.final) == ("lost", "y", "n")
    assert pmem.why.kind == "unmet-dependency" and "LIBNVDIMM" in pmem.why.expression
    assert [b.symbol for b in pmem.why.blockers] == ["LIBNVDIMM"]
    assert "BLK_DEV" in _blocker_names(pmem.why.blockers)  # one level down: LIBNVDIMM depends on BLK_DEV

    zone = rows["ZONE_DEVICE"]
    assert zone.status == "lost" and "MEMORY_HOTREMOVE" in [b.symbol for b in zone.why.blockers]
    assert rows["FS_DAX"].status == "lost" and "ZONE_DEVICE" in _blocker_names(rows["FS_DAX"].why.blockers)

    assert rows["NO_SUCH_SYMBOL_XYZ"].status == "unknown"
    assert [c.symbol for c in report.conflicts] == ["TMPFS"]

    text = format_report(report)
    for expected in ("LOST", "VIRTIO_PMEM", "LIBNVDIMM", "UNKNOWN", "NO_SUCH_SYMBOL_XYZ", "CONFLICT", "TMPFS"):
        assert expected in text


@pytest.mark.slow
@needs_tree
def test_memory_hotremove_chain_on_tinyconfig(tree, tmp_path):
    """The merge_config.sh trap from the toolchain notes: pmem/DAX without MEMORY_HOTREMOVE."""
    from wslx.kconfig.check import check_requested
    requested = {s: r.setting.config_value for s, r in resolve_profile("qemu").requested.items()}
    del requested["MEMORY_HOTREMOVE"]
    report = check_requested(requested, {}, subject="qemu minus MEMORY_HOTREMOVE", tree=tree, base="tinyconfig")
    lost = {o.symbol: o for o in report.lost}
    assert "ZONE_DEVICE" in lost and "FS_DAX" in lost
    assert "MEMORY_HOTREMOVE" in [b.symbol for b in lost["ZONE_DEVICE"].why.blockers]


@pytest.mark.slow
@needs_tree
def test_cli_check_exit_codes_and_json(tree, broken_fragment, capsys):
    assert cli.main(["kconfig", "check", str(broken_fragment), "--base", "allnoconfig"]) == 1
    capsys.readouterr()
    assert cli.main(["kconfig", "check", str(broken_fragment), "--base", "allnoconfig", "--json"]) == 1
    data = json.loads(capsys.readouterr().out)
    assert data["ok"] is False and data["lost"] >= 3 and data["unknown"] == 1 and data["conflicts"]
    assert cli.main(["kconfig", "check", "--profile", "qemu"]) == 0
    assert "all survived" in capsys.readouterr().out


@pytest.mark.slow
@needs_tree
def test_unknown_base_is_typed_error(tree, tmp_path):
    from wslx.kconfig.check import check_profile
    from wslx.kconfig.errors import BaseConfigError
    with pytest.raises(BaseConfigError):
        check_profile("qemu", tree=tree, base=str(tmp_path / "nope"))


# --- the fragment-built kernel -------------------------------------------------------

@pytest.mark.kernel_build
@needs_tree
def test_build_qemu_kernel_is_cached(capsys):
    from wslx.kconfig.build import build_kernel
    image = build_kernel("qemu")
    assert image.is_file() and image.stat().st_size > 500_000
    assert image.read_bytes()[0x202:0x206] == b"HdrS"  # x86 boot protocol header
    capsys.readouterr()
    assert build_kernel("qemu") == image
    assert "cached kernel" in capsys.readouterr().out


@pytest.mark.kernel_build
@needs_tree
def test_kconfiglib_merge_matches_the_real_kconfig(tree, tmp_path):
    """The validator's kconfiglib merge must equal what `make tinyconfig` + fragment + olddefconfig produced."""
    import re
    from wslx.kconfig.build import build_kernel
    from wslx.kconfig.check import check_profile
    from wslx.kconfig.source import load_kconfig
    real_config = build_kernel("qemu").with_name("config")
    check_profile("qemu", tree=tree)
    ours = tmp_path / "kconfiglib.config"
    load_kconfig(tree.path).write_config(str(ours), header="")

    def values(path):
        return dict(re.findall(r"^CONFIG_(\w+)=(.*)$", path.read_text(), re.M))
    real, simulated = values(real_config), values(ours)
    assert {s for s in real.keys() | simulated.keys() if real.get(s) != simulated.get(s)} == set()
