"""conf.py's replay of scripts/kconfig on a toy Kconfig (no kernel tree needed, fast).

Expected values follow conf_set_sym_val()/sym_string_valid() (confdata.c, symbol.c), sym_calc_choice()
of Linux 6.11+ and sym_validate_range(); the differential test checks the same code against the real
tools on whole kernel trees.
"""
from __future__ import annotations

import kconfiglib
import pytest

from wslx.kconfig.conf import interpret, load_lines
from wslx.kconfig.fragment import ConfDialect, lines_of_bytes

TOY = """\
config B
\tbool "b"
config T
\ttristate "t"
config MODULES
\tbool "modules"
\toption modules
config I
\tint "i"
\trange 2 8
\tdefault 4
config H
\thex "h"
config S
\tstring "s"
choice
\tprompt "pick"
\tdefault C1
config C1
\tbool "one"
config C2
\tbool "two"
config C3
\tbool "three"
endchoice
"""


@pytest.fixture
def toy(tmp_path):
    path = tmp_path / "Kconfig"
    path.write_text(TOY)
    kconf = kconfiglib.Kconfig(str(path), warn=False)
    kconf.warn_assign_override = kconf.warn_assign_redun = False
    return kconf


@pytest.mark.parametrize("symbol, raw, value", [
    ("B", "y", "y"), ("B", "yes", "y"), ("B", "n  ", "n"), ("T", "m", "m"), ("T", "mod", "m"),
    ("I", "4", "4"), ("I", "-3", "-3"), ("I", "0", "0"), ("I", "-0", "-0"),
    ("H", "0x1f", "0x1f"), ("H", "1F", "1F"), ("H", "0X0", "0X0"),
    ("S", '"a\\"b\\\\c"', '"a\\"b\\\\c"'), ("S", '"x"junk', '"x"'), ("S", '""', '""'),
])
def test_values_kconfig_accepts(toy, symbol, raw, value):
    assert interpret(toy.syms[symbol], raw) == (value, None)


@pytest.mark.parametrize("symbol, raw, why", [
    ("B", "m", "m is not valid for a bool"), ("B", "", "not valid for a bool"), ("B", "Y", "not valid for a bool"),
    ("T", '"y"', "not valid for a tristate"),
    ("I", "04", "leading zero"), ("I", "4 ", "trailing whitespace"), ("I", " 4", "leading whitespace"),
    ("I", "0x4", "hex syntax"), ("I", "-", "not a decimal int"), ("I", "", "not a decimal int"),
    ("I", "4k", "not a decimal int"),
    ("H", "", "not a hex value"), ("H", "0x", "not a hex value"), ("H", "0xg", "not a hex value"),
    ("S", "bare", "not a quoted string"), ("S", '"open', "unterminated"),
])
def test_values_kconfig_rejects(toy, symbol, raw, why):
    value, problem = interpret(toy.syms[symbol], raw)
    assert value is None and why in problem


def _load(toy, text: str, **kw):
    return load_lines(toy, lines_of_bytes(text.encode(), "f"), ConfDialect(**kw))


def test_choice_611_default_set_n_falls_to_first_unset_member(toy):
    """sym_calc_choice(): the default C1 was set n, so the first visible member nobody set wins."""
    _load(toy, "# CONFIG_C1 is not set\n")
    assert toy.syms["C2"].str_value == "y" and toy.syms["C1"].str_value == "n"
    _load(toy, "# CONFIG_C1 is not set\n", choice_priority=False)  # 6.1 rules: the default stands
    assert toy.syms["C1"].str_value == "y"


def test_choice_611_last_assigned_y_wins_and_all_n_takes_the_lowest_ranked(toy):
    _load(toy, "CONFIG_C3=y\nCONFIG_C2=y\n")
    assert toy.syms["C2"].str_value == "y"
    _load(toy, "# CONFIG_C2 is not set\n# CONFIG_C1 is not set\n# CONFIG_C3 is not set\n")
    assert toy.syms["C2"].str_value == "y"  # ranked C3, C1, C2: the lowest-ranked visible member


def test_out_of_range_value_is_clamped_or_reset_as_the_tree_does(toy):
    _load(toy, "CONFIG_I=20\n")  # 6.12: sym_validate_range() clamps the user value
    assert toy.syms["I"].str_value == "8"
    _load(toy, "CONFIG_I=20\n", range_resets_user_value=True)  # 6.1 conf_read(): back to the default
    assert toy.syms["I"].str_value == "4"
    _load(toy, "CONFIG_I=1\n")
    assert toy.syms["I"].str_value == "2"


def test_rejected_and_skipped_lines_leave_what_came_before(toy):
    read = _load(toy, "CONFIG_I=6\nCONFIG_I=06\n   CONFIG_B=y\nCONFIG_B=n\n")
    assert toy.syms["I"].str_value == "6" and toy.syms["B"].str_value == "n"
    assert [(r.item.raw, r.problem is None) for r in read if r.problem or r.value] == [
        ("6", True), ("06", False), ("n", True)]
