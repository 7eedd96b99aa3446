"""Many fragment files, `--base allno+fragment` (merge_config.sh -n) and `--source 6.1|6.12|PATH`.

Tests that need a kernel tree are marked slow; those needing linux-source-6.12 skip with a reason when
it is not installed (it comes from bookworm-security; tools/setup.sh installs it).
"""
from __future__ import annotations

import json

import pytest

from wslx import cli
from wslx.kconfig.conf import expand_fragment_paths, merge_config_lines
from wslx.kconfig.fragment import SourceLine, lines_of_bytes
from wslx.kconfig.source import KNOWN_TREES

needs_61 = pytest.mark.skipif(not KNOWN_TREES["6.1"].exists(), reason="linux-source-6.1 not installed")
needs_612 = pytest.mark.skipif(not KNOWN_TREES["6.12"].exists(),
                               reason="linux-source-6.12 not installed (bookworm-security; tools/setup.sh)")


def _lines(text: str, name: str) -> list[SourceLine]:
    return lines_of_bytes(text.encode(), name)


def test_merge_deletes_earlier_lines_of_each_named_symbol_and_appends():
    base = _lines("CONFIG_A=y\n# CONFIG_B is not set\nCONFIG_AB=y\nCONFIG_C=1\n", "base")
    first = _lines("CONFIG_B=y\nCONFIG_D=m\n", "one")
    second = _lines("# CONFIG_A is not set\nCONFIG_D=y\n", "two")
    merged, replaced = merge_config_lines(base, [first, second])
    assert [line.text for line in merged] == ["CONFIG_AB=y", "CONFIG_C=1", "CONFIG_B=y", "# CONFIG_A is not set",
                                              "CONFIG_D=y"]
    assert [(old.where, new.where) for old, new in replaced] == [
        ("base:2", "one:1"), ("base:1", "two:1"), ("one:2", "two:2")]


def test_merge_keeps_lines_its_sed_expressions_do_not_name():
    """merge_config.sh only names `CONFIG_X=` and exact `# CONFIG_X is not set` lines, so an indented
    line or one with text after 'is not set' does not replace the base's line."""
    base = _lines("CONFIG_A=y\nCONFIG_B=y\n", "base")
    merged, replaced = merge_config_lines(base, [_lines("  CONFIG_A=n\n# CONFIG_B is not set  \n", "f")])
    assert [line.text for line in merged][:2] == ["CONFIG_A=y", "CONFIG_B=y"] and not replaced


def test_directories_contribute_their_files_in_name_order(tmp_path):
    d = tmp_path / "frags"
    d.mkdir()
    for name in ("20-b.config", "10-a.config", ".hidden", "3-c.conf"):
        (d / name).write_text("CONFIG_A=y\n")
    (d / "sub").mkdir()
    single = tmp_path / "last.config"
    single.write_text("")
    assert [p.name for p in expand_fragment_paths([d, single])] == ["10-a.config", "20-b.config", "3-c.conf",
                                                                   "last.config"]


@pytest.mark.slow
@needs_61
def test_many_files_name_the_setting_line_and_both_places_of_a_redefinition(tmp_path):
    from wslx.kconfig.check import check_fragments, format_report
    a = tmp_path / "a.config"
    a.write_text("CONFIG_BLOCK=y\nCONFIG_SHMEM=y\n")
    d = tmp_path / "more"
    d.mkdir()
    (d / "1.config").write_text("# CONFIG_BLOCK is not set\n")
    (d / "2.config").write_text("CONFIG_TMPFS=y\nCONFIG_SHMEM=y\n")
    report = check_fragments([a, d], base="tinyconfig")
    rows = {o.symbol: o for o in report.options}
    assert rows["BLOCK"].sources == [f"{d / '1.config'}:1"] and rows["BLOCK"].final == "n"
    assert rows["TMPFS"].sources == [f"{d / '2.config'}:1"]
    notes = {(n.symbol, n.kind): n.places for n in report.notes}
    assert notes[("BLOCK", "redefined")] == [f"{a}:1", f"{d / '1.config'}:1"]
    assert notes[("SHMEM", "duplicate")] == [f"{a}:2", f"{d / '2.config'}:2"]
    text = format_report(report)
    assert "merged in this order" in text and f"{a}:1 and {d / '1.config'}:1" in text


@pytest.mark.slow
@needs_61
def test_allno_fragment_base_equals_merge_config_sh_n(tmp_path, capsys):
    """The CLI's --base allno+fragment against the tree's own scripts/kconfig/merge_config.sh -n."""
    from wslx.kconfig.check import check_fragments
    from wslx.kconfig.reference import config_values, reference_config
    from wslx.kconfig.source import find_source
    a = tmp_path / "a.config"
    a.write_text("CONFIG_64BIT=y\nCONFIG_PCI=y\nCONFIG_VIRTIO_MENU=y\nCONFIG_VIRTIO_PCI=y\nCONFIG_BLOCK=y\n")
    b = tmp_path / "b.config"
    b.write_text("CONFIG_VIRTIO_BLK=y\n# CONFIG_BLOCK is not set\n")
    tree = find_source("6.1")
    ours = tmp_path / "ours.config"
    report = check_fragments([a, b], tree=tree, base="allno+fragment", final_config=ours)
    real = config_values(reference_config(tree, "allno+fragment", [a, b]))
    assert real and {s for s in real.keys() | config_values(ours).keys()
                     if real.get(s, "n") != config_values(ours).get(s, "n")} == set()
    assert {o.symbol: o.status for o in report.options}["VIRTIO_BLK"] == "lost"  # BLOCK is off at the end
    capsys.readouterr()
    assert cli.main(["kconfig", "check", str(a), str(b), "--base", "allno+fragment", "--json"]) == 1
    data = json.loads(capsys.readouterr().out)
    assert data["base"] == "allno+fragment" and data["files"] == [str(a), str(b)]


@pytest.mark.slow
@needs_61
@needs_612
@pytest.mark.parametrize("version, here, elsewhere", [("6.12", "SLOB", "6.1."), ("6.1", "SLUB_TINY", "6.12.")])
def test_source_by_version_and_unknown_rows_name_the_other_tree(tmp_path, capsys, version, here, elsewhere):
    frag = tmp_path / "f.config"
    frag.write_text(f"CONFIG_{here}=y\nCONFIG_NO_SUCH_SYMBOL_XYZ=y\n")
    assert cli.main(["kconfig", "check", str(frag), "--source", version, "--json"]) == 1
    data = json.loads(capsys.readouterr().out)
    assert data["version"].startswith(version + ".")
    rows = {o["symbol"]: o for o in data["options"]}
    assert rows[here]["status"] == "unknown" and f"it exists in linux {elsewhere}" in rows[here]["why"]["summary"]
    assert "Kconfig:" in rows[here]["why"]["summary"]  # where it is defined there
    assert "nor in linux" in rows["NO_SUCH_SYMBOL_XYZ"]["why"]["summary"]


def test_unknown_source_version_is_a_typed_error(capsys):
    assert cli.main(["kconfig", "check", "--profile", "qemu", "--source", "/nonexistent/6.99"]) == 2
    assert "does not exist" in capsys.readouterr().err
