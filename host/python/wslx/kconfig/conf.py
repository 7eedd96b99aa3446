"""What the kernel's config tools do, replayed on kconfiglib: conf_read_simple()/conf_set_sym_val()
of scripts/kconfig/confdata.c for every line, merge_config.sh's textual merge, `allnoconfig` with
KCONFIG_ALLCONFIG, and the rules kconfiglib predates (6.11+ choices, range clamping).
"""
from __future__ import annotations

import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path

from .fragment import Assignment, ConfDialect, IgnoredLine, SourceLine, parse_line, read_lines


def write_config(kconf, path: Path) -> None:
    kconf.write_config(str(path), header="")


def _allnoconfig(kconf, allconfig: Path | None) -> None:
    """`make allnoconfig` (KCONFIG_ALLCONFIG=allconfig): every bool/tristate without a value from
    allconfig is n (y for allnoconfig_y symbols)."""
    kconf.unset_values()
    for sym in kconf.unique_defined_syms:
        sym.set_value(2 if sym.is_allnoconfig_y else 0)
    if allconfig:  # KCONFIG_ALLCONFIG: merged on top, as `make allnoconfig` does
        kconf.load_config(str(allconfig), replace=False)


@dataclass
class ReadLine:
    """One merged line as conf read it: the assignment (or skipped line) and what kconfig made of it."""

    line: SourceLine
    item: Assignment | IgnoredLine | None
    value: str | None = None     # accepted value, spelled as kconfiglib reads it
    problem: str | None = None   # why kconfig rejected the value


def load_lines(kconf, lines: list[SourceLine], dialect: ConfDialect, *, allnoconfig: bool = False) -> list[ReadLine]:
    """conf_read_simple() over `lines`, then `olddefconfig` (or `allnoconfig` with the lines as
    KCONFIG_ALLCONFIG). kconfiglib is fed only what conf accepts, in conf's order."""
    read: list[ReadLine] = []
    accepted: list[str] = []
    for line in lines:
        item = parse_line(line, dialect)
        entry = ReadLine(line, item)
        if isinstance(item, Assignment):
            sym = kconf.syms.get(item.symbol)
            if sym is not None and sym.nodes:
                entry.value, entry.problem = interpret(sym, item.raw, item.not_set)
                if entry.value is not None:
                    accepted.append(config_line(item.symbol, entry.value) + "\n")
        read.append(entry)
    with tempfile.TemporaryDirectory(prefix="wslx-kconfig-", dir=os.environ.get("WSLX_RUN_DIR")) as tmp:
        normalized = Path(tmp) / "merged.config"
        normalized.write_text("".join(accepted))
        if allnoconfig:
            _allnoconfig(kconf, normalized)
        else:
            kconf.load_config(str(normalized))  # replace=True: conf reads the .config afresh
    if dialect.choice_priority:
        _choose_as_linux_6_11(kconf, [e.item for e in read if e.value is not None])
    if allnoconfig or not dialect.range_resets_user_value:
        _clamp_to_ranges(kconf)
    return read


def _clamp_to_ranges(kconf) -> None:
    """sym_validate_range(): an out-of-range user value becomes the nearer bound. kconfiglib falls back
    to the default instead, which is what 6.1's conf_read() does before olddefconfig; 6.12 dropped that
    reset, and `allnoconfig` with KCONFIG_ALLCONFIG never had it."""
    import kconfiglib as K
    for _ in range(8):  # a clamped value can move another symbol's range: repeat until nothing moves
        changed = False
        for sym in kconf.unique_defined_syms:
            if sym.orig_type not in (K.INT, K.HEX) or sym.user_value is None or not sym.visibility:
                continue
            base = 16 if sym.orig_type == K.HEX else 10
            for lo, hi, cond in sym.ranges:
                if K.expr_value(cond):
                    try:
                        value, low = int(sym.user_value, base), int(lo.str_value or "0", base)
                        high = int(hi.str_value or "0", base)
                    except ValueError:
                        break
                    if value < low or value > high:
                        sym.set_value((lo if value < low else hi).str_value)
                        changed = True
                    break
        if not changed:
            return


def _choose_as_linux_6_11(kconf, assignments: list[Assignment]) -> None:
    """sym_calc_choice() of Linux 6.11+, which kconfiglib predates: members are ranked by their
    last assignment (latest first); the first visible y wins; else the default unless it was set n;
    else the first visible member nobody set; else the lowest-ranked visible member."""
    last: dict[str, tuple[int, str]] = {}
    for i, a in enumerate(assignments):
        last[a.symbol] = (i, a.raw[:1])
    for _ in range(8):  # a choice can change another's visibility: repeat until nothing moves
        changed = False
        for choice in kconf.unique_choices:
            members = [m for m in choice.syms if m.nodes]
            if not members or choice.visibility == 0:
                continue
            ranked = sorted((m for m in members if m.name in last), key=lambda m: -last[m.name][0])
            ranked += [m for m in members if m.name not in last]
            visible = [m for m in ranked if m.visibility]
            res = next((m for m in visible if last.get(m.name, (0, ""))[1] == "y"), None)
            if res is None:
                res = _choice_default(kconf, choice)
                if res is not None and last.get(res.name, (0, ""))[1] == "n":
                    res = None
            if res is None:
                res = next((m for m in members if m.visibility and m.name not in last), None)
            if res is None and visible:
                res = visible[-1]
            if res is not None and choice.selection is not res:
                res.set_value(2)
                changed = True
        if not changed:
            return


def _choice_default(kconf, choice):
    """sym_choice_default(): the first default whose condition holds and whose symbol is visible,
    else the first visible member."""
    import kconfiglib as K
    for sym, cond in choice.defaults:
        if K.expr_value(cond) and sym.visibility:
            return sym
    return next((m for m in choice.syms if m.visibility), None)


def current_config_lines(kconf) -> list[SourceLine]:
    with tempfile.TemporaryDirectory(prefix="wslx-kconfig-", dir=os.environ.get("WSLX_RUN_DIR")) as tmp:
        path = Path(tmp) / ".config"
        write_config(kconf, path)
        return read_lines(path)


_C_ESCAPE = re.compile(r'(["\\])')


def interpret(sym, raw: str, not_set: bool = False) -> tuple[str | None, str | None]:
    """conf_set_sym_val() + sym_string_valid() of scripts/kconfig: (value as kconfiglib reads it, None)
    or (None, why kconfig rejects it)."""
    import kconfiglib as K
    kind = K.TYPE_TO_STR[sym.orig_type]
    if sym.orig_type in (K.BOOL, K.TRISTATE):
        first = raw[:1]
        if first == "m" and sym.orig_type == K.TRISTATE or first in ("y", "n"):
            return first, None  # kconfig reads only the first character
        if first == "m":
            return None, "m is not valid for a bool (only y or n); kconfig ignores the line"
        allowed = "y, m or n" if sym.orig_type == K.TRISTATE else "y or n"
        return None, f"{raw!r} is not valid for a {kind} (must start with {allowed}); kconfig ignores the line"
    if sym.orig_type == K.STRING:
        if not raw.startswith('"'):
            what = "'is not set'" if not_set else f"{raw!r}"
            return None, f"{what} is not a quoted string; kconfig ignores the line"
        out, i = [], 1
        while i < len(raw):
            c = raw[i]
            if c == '"':
                return '"' + _C_ESCAPE.sub(r"\\\1", "".join(out)) + '"', None
            if c == "\\":
                i += 1
                if i >= len(raw):
                    break
                c = raw[i]
            out.append(c)
            i += 1
        return None, "unterminated string (no closing quote); kconfig ignores the line"
    if sym.orig_type == K.INT:
        return (raw, None) if _valid_int(raw) else (None, _int_problem(raw, not_set))
    if sym.orig_type == K.HEX:
        digits = raw[2:] if raw[:2] in ("0x", "0X") else raw
        if digits and all(c in "0123456789abcdefABCDEF" for c in digits):
            return raw, None
        return None, f"{'is not set' if not_set else repr(raw)} is not a hex value; kconfig ignores the line"
    return None, f"symbol of type {kind} cannot be set"


def _valid_int(raw: str) -> bool:
    digits = raw[1:] if raw.startswith("-") else raw
    return bool(digits) and digits.isascii() and digits.isdigit() and not (digits[0] == "0" and len(digits) > 1)


def _int_problem(raw: str, not_set: bool) -> str:
    suffix = "; kconfig ignores the line"
    if not_set:
        return "'is not set' is not a decimal int" + suffix
    if raw != raw.rstrip():
        return f"{raw!r} is not a decimal int: trailing whitespace" + suffix
    if raw != raw.lstrip():
        return f"{raw!r} is not a decimal int: leading whitespace" + suffix
    if raw[:2] in ("0x", "0X"):
        return f"{raw!r} is not a decimal int (hex syntax is only for hex symbols)" + suffix
    if _valid_int(raw.lstrip("-").lstrip("0") or "0") and raw.lstrip("-").startswith("0"):
        return f"{raw!r} is not a decimal int: leading zero" + suffix
    return f"{raw!r} is not a decimal int" + suffix


_MERGE_SET = re.compile(r"^(CONFIG_[a-zA-Z0-9_]*)=")
_MERGE_UNSET = re.compile(r"^# (CONFIG_[a-zA-Z0-9_]*) is not set$")


@dataclass
class Fragment:
    """One input in merge order: a file, or a profile rendered as lines."""

    name: str
    lines: list[SourceLine]


def merge_config_lines(initial: list[SourceLine], fragments: list[list[SourceLine]]
                       ) -> tuple[list[SourceLine], list[tuple[SourceLine, SourceLine]]]:
    """merge_config.sh's textual merge: for every symbol a fragment names (its sed expressions), delete
    every earlier line matching `CONFIG_X[ =]`, then append the fragment. Returns the merged lines and
    the (removed, replacing) pairs."""
    merged = list(initial)
    replaced: list[tuple[SourceLine, SourceLine]] = []
    for lines in fragments:
        first_of: dict[str, SourceLine] = {}
        for line in lines:
            m = _MERGE_SET.match(line.text) or _MERGE_UNSET.match(line.text)
            if m:
                first_of.setdefault(m.group(1), line)
        if first_of:
            names = "|".join(re.escape(n) for n in first_of)
            pattern = re.compile(rf"({names})[ =]")
            kept = []
            for line in merged:
                m = pattern.search(line.text)
                if m:
                    replaced.append((line, first_of[m.group(1)]))
                else:
                    kept.append(line)
            merged = kept
        merged.extend(lines)
    return merged, replaced


def expand_fragment_paths(paths) -> list[Path]:
    """Files in the given order; a directory contributes its regular files in name order."""
    out: list[Path] = []
    for given in paths:
        path = Path(given)
        if path.is_dir():
            out.extend(sorted((p for p in path.iterdir() if p.is_file() and not p.name.startswith(".")),
                              key=lambda p: p.name))
        else:
            out.append(path)
    return out


def config_line(symbol: str, value: str) -> str:
    return f"# CONFIG_{symbol} is not set" if value == "n" else f"CONFIG_{symbol}={value}"
