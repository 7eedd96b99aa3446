"""Regression tests for the seven faults of issue 18, each built from the minimal input in the issue.

A validator is trusted exactly where it says "ok", so each test asserts what kconfig really does with the
line (scripts/kconfig/confdata.c, symbol.c) and that the explanation names the right symbols.
Tests needing the Linux 6.1 tree are marked slow (the first run unpacks it, about 15 s).
"""
from __future__ import annotations

from pathlib import Path

import pytest

from wslx.kconfig import fragment as fragmod
from wslx.kconfig.source import DEFAULT_TARBALL

needs_tree = pytest.mark.skipif(not DEFAULT_TARBALL.exists(), reason="linux-source-6.1 not installed")


@pytest.fixture(scope="module")
def tree():
    from wslx.kconfig.source import find_source
    return find_source(None)


def _write(tmp_path: Path, text: str | bytes, name: str = "frag.config") -> Path:
    path = tmp_path / name
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    return path


def _check(tree, path, base="tinyconfig"):
    from wslx.kconfig.check import check_fragments
    return check_fragments([path], tree=tree, base=base)


def _rows(report, symbol):
    return [o for o in report.options if o.symbol == symbol]


def _names(blockers):
    return [b.symbol for b in blockers]


# --- fault 1: lines kconfig ignores or rejects were reported "ok" -------------------------------

def test_fault1_leading_whitespace_line_is_ignored_not_parsed(tmp_path):
    parsed = fragmod.parse_file(_write(tmp_path, "   CONFIG_BLOCK=y\n"))
    assert parsed.requested() == {}
    [ignored] = parsed.ignored
    assert ignored.where == f"{tmp_path / 'frag.config'}:1" and "leading whitespace" in ignored.why


@pytest.mark.slow
@needs_tree
@pytest.mark.parametrize("line, symbol, status, why", [
    ("   CONFIG_BLOCK=y", "BLOCK", "ignored", "leading whitespace"),
    ("CONFIG_NR_CPUS=240  ", "NR_CPUS", "invalid", "trailing"),
    ("CONFIG_NR_CPUS=0240", "NR_CPUS", "invalid", "leading zero"),
])
def test_fault1_lines_kconfig_drops_are_not_ok(tree, tmp_path, line, symbol, status, why):
    path = _write(tmp_path, f"CONFIG_SMP=y\n{line}\n")
    report = _check(tree, path)
    [row] = _rows(report, symbol)
    assert row.status == status and why in row.why.summary, row
    assert row.sources == [f"{path}:2"]
    assert not report.ok


# --- fault 2: "selected by" named symbols that are n and missed the real selector ---------------

@pytest.mark.slow
@needs_tree
def test_fault2_selected_by_names_only_true_selectors(tree, tmp_path):
    path = _write(tmp_path, "# CONFIG_CRC32 is not set\nCONFIG_BLOCK=y\nCONFIG_BTRFS_FS=y\n")
    report = _check(tree, path)
    [crc] = _rows(report, "CRC32")
    assert crc.status == "lost" and crc.why.kind == "selected"
    selectors = crc.why.blockers
    assert "CRYPTO_CRC32C" in _names(selectors)
    assert selectors and all(b.value in ("y", "m") for b in selectors), [(b.symbol, b.value) for b in selectors]
    assert len(selectors) < 10


# --- fault 3: "forced on (select/default)" when nothing selects it ---------------------------------

@pytest.mark.slow
@needs_tree
def test_fault3_base_value_is_not_called_forced(tree, tmp_path):
    from wslx.kconfig.check import base_config_path
    from wslx.kconfig.source import load_kconfig
    kconf = load_kconfig(tree.path)
    kconf.load_config(str(base_config_path(tree, "tinyconfig")))
    base_frag = _write(tmp_path, "CONFIG_MODULES=y\nCONFIG_NET=y\nCONFIG_PCI=y\nCONFIG_NETDEVICES=y\n"
                                 "CONFIG_ETHERNET=y\nCONFIG_NET_VENDOR_MELLANOX=y\nCONFIG_MLXFW=m\n", "base.frag")
    kconf.load_config(str(base_frag), replace=False)
    base = tmp_path / "debian-like.config"
    kconf.write_config(str(base), header="")
    assert "CONFIG_MLXFW=m" in base.read_text().splitlines()

    report = _check(tree, _write(tmp_path, "CONFIG_MLX5_CORE=y\n"), base=str(base))
    [row] = _rows(report, "MLX5_CORE")
    assert (row.status, row.final) == ("lost", "m")
    mlxfw = [b for b in row.why.blockers if b.symbol == "MLXFW" and b.state == "on"]
    assert mlxfw, row.why
    assert "forced" not in mlxfw[0].hint and "# CONFIG_MLXFW is not set" in mlxfw[0].hint
    assert mlxfw[0].selected_by is None


# --- fault 4: def_bool EXPR losses did not say which term failed ----------------------------------

@pytest.mark.slow
@needs_tree
def test_fault4_def_bool_names_the_failing_term(tree, tmp_path):
    report = _check(tree, _write(tmp_path, "CONFIG_SECRETMEM=y\n"))
    [row] = _rows(report, "SECRETMEM")
    assert row.status == "lost"
    assert "EMBEDDED" in row.why.expression
    [embedded] = [b for b in row.why.blockers if b.symbol == "EMBEDDED"]
    assert embedded.state == "on" and "# CONFIG_EMBEDDED is not set" in embedded.hint


# --- fault 5: invalid values got the wrong reason --------------------------------------------------

@pytest.mark.slow
@needs_tree
@pytest.mark.parametrize("line, symbol, why", [
    ("CONFIG_NR_CPUS=0x10", "NR_CPUS", "not a decimal int"),
    ("CONFIG_NR_CPUS=y", "NR_CPUS", "not a decimal int"),
    ("CONFIG_SMP=m", "SMP", "bool"),
    ('CONFIG_BLOCK=""', "BLOCK", "bool"),
])
def test_fault5_invalid_values_say_what_is_invalid(tree, tmp_path, line, symbol, why):
    report = _check(tree, _write(tmp_path, f"CONFIG_SMP=y\n{line}\n"))
    rows = [o for o in _rows(report, symbol) if o.status == "invalid"]
    assert len(rows) == 1 and why in rows[0].why.summary, _rows(report, symbol)
    assert "range" not in rows[0].why.summary and "did not keep" not in rows[0].why.summary


@pytest.mark.slow
@needs_tree
def test_fault5_range_shows_evaluated_bounds(tree, tmp_path):
    from wslx.kconfig.source import load_kconfig
    report = _check(tree, _write(tmp_path, "CONFIG_SMP=y\nCONFIG_NR_CPUS=9000\n"))
    [row] = _rows(report, "NR_CPUS")
    assert row.status == "lost" and row.why.kind == "range"
    syms = load_kconfig(tree.path).syms  # the state check_fragments left behind
    lo, hi = syms["NR_CPUS_RANGE_BEGIN"].str_value, syms["NR_CPUS_RANGE_END"].str_value
    assert f"{lo}..{hi}" in row.why.summary and "9000" in row.why.summary


# --- fault 6: a Latin-1 byte in a comment rejected the whole file ---------------------------------

def test_fault6_latin1_comment_is_ignored(tmp_path):
    parsed = fragmod.parse_file(_write(tmp_path, b"# caf\xe9 au lait\nCONFIG_BLOCK=y\n"))
    assert parsed.requested() == {"BLOCK": "y"} and not parsed.ignored


# --- fault 7: same-value duplicates went unreported ------------------------------------------------

def test_fault7_same_value_duplicates_are_noted_with_both_places(tmp_path):
    path = _write(tmp_path, "CONFIG_BLOCK=y\n# comment\nCONFIG_BLOCK=y\n")
    parsed = fragmod.parse_file(path)
    [note] = parsed.notes()
    assert note.symbol == "BLOCK" and note.places == [f"{path}:1", f"{path}:3"] and note.kind == "duplicate"


@pytest.mark.slow
@needs_tree
def test_fault7_duplicate_note_reaches_the_report(tree, tmp_path):
    from wslx.kconfig.check import format_report
    path = _write(tmp_path, "CONFIG_BLOCK=y\nCONFIG_BLOCK=y\n")
    report = _check(tree, path)
    assert report.ok and [n.symbol for n in report.notes] == ["BLOCK"]
    assert f"{path}:1" in format_report(report) and f"{path}:2" in format_report(report)


DEBIAN_CONFIGS = sorted(Path("/boot").glob("config-6.1.*-amd64"))


@pytest.mark.slow
@needs_tree
@pytest.mark.skipif(not DEBIAN_CONFIGS, reason="no Debian 6.1 kernel config in /boot (linux-image-*-amd64)")
def test_fault3_on_debians_own_config(tree, tmp_path):
    """The issue's case itself: MLX5_CORE=y on Debian's config, where MLXFW=m comes from the base."""
    report = _check(tree, _write(tmp_path, "CONFIG_MLX5_CORE=y\n"), base=str(DEBIAN_CONFIGS[-1]))
    [row] = _rows(report, "MLX5_CORE")
    mlxfw = [b for b in row.why.blockers if b.symbol == "MLXFW" and b.state == "on"]
    assert row.status == "lost" and mlxfw and "forced" not in mlxfw[0].hint, row.why
    assert "# CONFIG_MLXFW is not set" in mlxfw[0].hint


@pytest.mark.slow
@pytest.mark.skipif(not Path("/usr/src/linux-source-6.12.tar.xz").exists(),
                    reason="linux-source-6.12 not installed (bookworm-security; tools/setup.sh)")
def test_fault5_range_on_6_12_says_the_value_is_clamped(tmp_path):
    """6.12's conf_read() no longer resets an out-of-range value: sym_validate_range() clamps it."""
    from wslx.kconfig.source import find_source
    report = _check(find_source("6.12"), _write(tmp_path, "CONFIG_SMP=y\nCONFIG_NR_CPUS=9000\n"))
    [row] = _rows(report, "NR_CPUS")
    assert (row.status, row.final, row.why.kind) == ("lost", "512", "range")
    assert "clamps it to 512" in row.why.summary
