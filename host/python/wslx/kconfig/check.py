"""Merge fragments onto a base config with the real Kconfig of a tree, and explain every loss.

Mirrors what the build does (`make <base>`, merge_config.sh, `make olddefconfig`, or merge_config.sh -n),
replayed on kconfiglib by conf.py, so that each option that did not survive can be traced to its unmet
dependency, a hidden prompt, a true `select`, a prompt-less default, a range, or a choice; and each line
kconfig rejects or skips is reported with its file and line.
"""
from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from .conf import (Fragment, config_line, current_config_lines, expand_fragment_paths, load_lines,
                   merge_config_lines, write_config)
from .declarations import Composition, resolve_profile
from .errors import BaseConfigError
from .fragment import HEADER_FIRST_LINE, Assignment, ConfDialect, IgnoredLine, Note, SourceLine, parse_line, read_lines
from .source import ARCH, SRCARCH, SourceTree, cache_root, find_source, load_kconfig, other_trees

BASES = ("tinyconfig", "allnoconfig", "defconfig")
ALLNO_FRAGMENT = "allno+fragment"  # merge_config.sh -n: allnoconfig with the merged fragments as KCONFIG_ALLCONFIG
DEFAULT_BASE = "tinyconfig"
MAX_DEPTH = 3  # levels of "X depends on Y which depends on Z" to show


# --- results -----------------------------------------------------------------

@dataclass
class Blocker:
    """A symbol inside a dependency expression that holds the requested option back."""

    symbol: str
    value: str
    state: str                     # "off", "on" (for !SYM), "only m", "compared"
    requested: str | None = None   # its value in the fragment, if it is there
    depends_on: str | None = None  # its own direct dependency expression
    settable: bool = True          # has a prompt (can be set in a fragment)
    selected_by: str | None = None # rev_dep expression, for symbols without a prompt
    hint: str | None = None
    blockers: list["Blocker"] = field(default_factory=list)


@dataclass
class Explanation:
    kind: str          # unmet-dependency, hidden-prompt, no-prompt, selected, modules-off, choice, range, ...
    summary: str
    expression: str | None = None
    blockers: list[Blocker] = field(default_factory=list)


@dataclass
class OptionResult:
    symbol: str
    requested: str
    final: str | None
    status: str        # ok, lost, unknown, invalid (kconfig rejects the value), ignored (kconfig skips the line)
    sources: list[str] = field(default_factory=list)
    why: Explanation | None = None


@dataclass
class ConflictResult:
    symbol: str
    values: list[tuple[str, str]]  # (where, value): one fragment sets the symbol to different values


@dataclass
class Report:
    subject: str                     # "profile qemu" or a fragment path
    base: str
    source: str
    version: str
    options: list[OptionResult] = field(default_factory=list)
    conflicts: list[ConflictResult] = field(default_factory=list)
    notes: list[Note] = field(default_factory=list)
    files: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def lost(self) -> list[OptionResult]:
        return [o for o in self.options if o.status == "lost"]

    @property
    def unknown(self) -> list[OptionResult]:
        return [o for o in self.options if o.status == "unknown"]

    @property
    def rejected(self) -> list[OptionResult]:
        """Lines kconfig does not apply: an invalid value, or a line it skips."""
        return [o for o in self.options if o.status in ("invalid", "ignored")]

    @property
    def ok(self) -> bool:
        return not (self.lost or self.unknown or self.rejected or self.conflicts)

    def to_json(self) -> str:
        data = asdict(self)
        data.update(ok=self.ok, lost=len(self.lost), unknown=len(self.unknown), rejected=len(self.rejected),
                    requested=len(self.options))
        return json.dumps(data, indent=2)


# --- base configs --------------------------------------------------------------

def base_config_path(tree: SourceTree, base: str) -> Path:
    """A .config for `base`, computed with kconfiglib and cached under build/kconfig-cache/."""
    if base not in BASES:
        path = Path(base)
        if not path.is_file():
            raise BaseConfigError(f"--base {base!r} is neither one of {', '.join(BASES + (ALLNO_FRAGMENT,))} "
                                  "nor an existing file")
        return path
    key = hashlib.sha256(f"{tree.key}\n{tree.path}\n{ARCH}\n{base}\nv4".encode()).hexdigest()[:16]
    cached = cache_root() / "kconfig-cache" / key / f"{base}.config"
    if cached.is_file():
        return cached
    kconf = load_kconfig(tree.path)
    dialect = ConfDialect.of_tree(tree.path)
    src = tree.path
    if base == "allnoconfig":
        load_lines(kconf, [], dialect, allnoconfig=True)
    elif base == "tinyconfig":  # allnoconfig with tiny-base.config, then `make tiny.config` (merge_config.sh -m)
        load_lines(kconf, read_lines(src / "kernel/configs/tiny-base.config"), dialect, allnoconfig=True)
        frags = [read_lines(f) for f in (src / "kernel/configs/tiny.config", src / f"arch/{SRCARCH}/configs/tiny.config")
                 if f.is_file()]
        load_lines(kconf, merge_config_lines(current_config_lines(kconf), frags)[0], dialect)
    elif base == "defconfig":
        load_lines(kconf, read_lines(src / f"arch/{SRCARCH}/configs/x86_64_defconfig"), dialect)
    cached.parent.mkdir(parents=True, exist_ok=True)
    staged = cached.with_name(f".{base}.{os.getpid()}.tmp")
    write_config(kconf, staged)
    staged.replace(cached)
    return cached


# --- value helpers -------------------------------------------------------------

def _unquote(value: str) -> str:
    if len(value) >= 2 and value[0] == value[-1] == '"':
        return value[1:-1].replace('\\"', '"').replace("\\\\", "\\")
    return value


def _same(sym, requested: str, final: str) -> bool:
    import kconfiglib as K
    if sym.orig_type in (K.BOOL, K.TRISTATE):
        return requested == final
    if sym.orig_type == K.HEX:
        try:
            return int(requested, 16) == int(final, 16)
        except ValueError:
            return False
    if sym.orig_type == K.STRING:
        return _unquote(requested) == final
    return requested == final


def _final(sym) -> str:
    import kconfiglib as K
    if sym.orig_type == K.STRING:
        return '"' + sym.str_value + '"'
    return sym.str_value or "(unset)"


def _need(requested: str) -> int:
    return {"y": 2, "m": 1}.get(requested, 1)


# --- merging, as scripts/kconfig/merge_config.sh does -------------------------------------

# --- explanations ----------------------------------------------------------------

class _Explainer:
    def __init__(self, kconf, requested: dict[str, str], clamps_ranges: bool = False):
        import kconfiglib as K
        self.K = K
        self.kconf = kconf
        self.requested = requested
        self.clamps_ranges = clamps_ranges  # out-of-range values become the bound (else the default)

    def expr(self, e) -> str:
        return self.K.expr_str(e)

    def _walk(self, e, need: int, negate: bool, out: list):
        """Collect the symbols that make expression `e` too low (or, negated, too high)."""
        K = self.K
        if isinstance(e, (K.Symbol, K.Choice)):
            if isinstance(e, K.Symbol) and e.is_constant:
                return
            v = e.tri_value
            if not negate and v < need:
                out.append((e, "off" if v == 0 else "only m"))
            elif negate and v > 2 - need:
                out.append((e, "on"))
            return
        op = e[0]
        if op == K.NOT:
            self._walk(e[1], need, not negate, out)
        elif op in (K.AND, K.OR):
            is_and = (op == K.AND) != negate  # De Morgan: negated OR behaves like AND
            for child in e[1:]:
                v = K.expr_value(child)
                failing = (v < need) if not negate else (v > 2 - need)
                if not is_and or failing:
                    self._walk(child, need, negate, out)
        else:  # relation: report its non-constant operands
            for item in e[1:]:
                if isinstance(item, K.Symbol) and not item.is_constant:
                    out.append((item, "compared"))

    def blockers(self, e, need: int, depth: int, seen: set) -> list[Blocker]:
        found: list = []
        self._walk(e, need, False, found)
        result = []
        for sym, state in found:
            if isinstance(sym, self.K.Choice):
                result.append(Blocker(sym.name or "<choice>", sym.str_value, state))
                continue
            result.append(self.describe(sym, state, need if state != "on" else 2, depth, seen))
        return result

    def _or_terms(self, e) -> list:
        if isinstance(e, tuple) and e[0] == self.K.OR:
            return self._or_terms(e[1]) + self._or_terms(e[2])
        return [e]

    def true_select_terms(self, rev_dep) -> list:
        """The `select` terms (SELECTOR && its condition) that are really on: rev_dep is their OR."""
        return [t for t in self._or_terms(rev_dep) if self.K.expr_value(t)]

    def _first_symbol(self, e):
        while isinstance(e, tuple):
            e = e[1]
        return e

    def selector(self, term, depth: int = 1) -> Blocker:
        sym = self._first_symbol(term)
        requested = self.requested.get(sym.name)
        if requested is not None:
            hint = "the fragment sets it; turn it off to drop the select"
        elif self.K.expr_value(sym.rev_dep):
            hint = "itself forced on by select"
        else:
            hint = "on in the result; turn it off to drop the select"
        b = Blocker(sym.name, _final(sym), "selects it", requested=requested, hint=hint)
        if not isinstance(term, self.K.Symbol):
            b.hint += f" (select term: {self.expr(term)})"
        if requested is None and self.K.expr_value(sym.rev_dep) and depth < MAX_DEPTH:
            b.blockers = [self.selector(t, depth + 1) for t in self.true_select_terms(sym.rev_dep)]
        return b

    def describe(self, sym, state: str, need: int, depth: int, seen: set) -> Blocker:
        K = self.K
        has_prompt = any(node.prompt for node in sym.nodes)
        b = Blocker(sym.name, _final(sym), state, requested=self.requested.get(sym.name),
                    depends_on=self.expr(sym.direct_dep) if sym.direct_dep is not self.kconf.y else None,
                    settable=has_prompt)
        if not sym.nodes:
            b.hint = "not defined for this arch/version"
            return b
        if state == "on":
            terms = self.true_select_terms(sym.rev_dep)
            if terms:  # evaluated, not `rev_dep is n`: a symbol others could select may still be free
                b.selected_by = " || ".join(self.expr(t) for t in terms)
                b.hint = "forced on by select from " + ", ".join(
                    f"{s.name}={s.str_value}" for s in dict.fromkeys(self._first_symbol(t) for t in terms))
            elif not has_prompt:
                b.hint = "no prompt: on by its default" + (f" ({self._defaults(sym)})" if sym.defaults else "")
            elif b.requested is not None:
                b.hint = f"the fragment sets it to {b.requested}: use # CONFIG_{sym.name} is not set"
            else:
                b.hint = f"nothing selects it; the base has it at {sym.str_value}: add # CONFIG_{sym.name} is not set"
            return b
        if not has_prompt:
            off = len(self._or_terms(sym.rev_dep)) if sym.rev_dep is not self.kconf.n else 0
            b.hint = "no prompt: only a select or its default can turn it on" + (
                f" (all {off} select terms are off)" if off else "")
        dep_ok = K.expr_value(sym.direct_dep) >= need
        if has_prompt:
            final = sym.str_value
            if b.requested is not None and b.requested != final:
                b.hint = f"requested {b.requested} but lost too (see its own row)"
            elif b.requested is not None:
                b.hint = f"the fragment sets it to {b.requested}, which blocks this option"
            elif dep_ok:
                value = "m" if need == 1 and sym.orig_type == K.TRISTATE else "y"
                b.hint = f"missing from fragment: add CONFIG_{sym.name}={value}"
            else:
                b.hint = "missing from fragment, and its own dependencies are unmet"
        if not dep_ok and depth < MAX_DEPTH and sym.name not in seen:
            b.blockers = self.blockers(sym.direct_dep, need, depth + 1, seen | {sym.name})
        return b

    def explain(self, sym, requested: str) -> Explanation:
        K = self.K
        kconf = self.kconf
        seen = {sym.name}
        is_tri = sym.orig_type in (K.BOOL, K.TRISTATE)
        if is_tri and requested == "n":
            if K.expr_value(sym.rev_dep):
                terms = self.true_select_terms(sym.rev_dep)
                return Explanation("selected", f"forced to {sym.str_value} by select",
                                   " || ".join(self.expr(t) for t in terms),
                                   [self.selector(t) for t in terms])
            if sym.choice and sym.choice.selection is sym:
                return Explanation("choice", f"the choice {self._choice_name(sym.choice)} selects it "
                                   "and the other members were not requested")
            return Explanation("not-settable", "no visible prompt, so its default applies",
                               self._defaults(sym))
        if not is_tri and sym.visibility == 0 and K.expr_value(sym.direct_dep) == 0:
            pass  # fall through to the dependency explanation below
        need = _need(requested) if is_tri else 1
        if is_tri and requested == "m" and kconf.modules.tri_value == 0:
            return Explanation("modules-off", "requested m but MODULES is off, so tristates are bool",
                               "MODULES", [self.describe(kconf.modules, "off", 2, 1, seen)])
        if K.expr_value(sym.direct_dep) < need:
            return Explanation("unmet-dependency", "depends on", self.expr(sym.direct_dep),
                               self.blockers(sym.direct_dep, need, 1, seen))
        if sym.choice:
            choice = sym.choice
            if K.expr_value(choice.direct_dep) < need or choice.visibility == 0:
                return Explanation("choice", f"member of choice {self._choice_name(choice)}, which is hidden",
                                   self.expr(choice.direct_dep), self.blockers(choice.direct_dep, need, 1, seen))
            sel = choice.selection
            return Explanation("choice", f"member of choice {self._choice_name(choice)}; "
                               f"{sel.name if sel else 'nothing'} selected instead")
        prompts = [node.prompt for node in sym.nodes if node.prompt]
        if not prompts:
            return self._explain_default(sym, need, seen)
        if sym.visibility < need:
            cond = prompts[0][1]
            return Explanation("hidden-prompt", "prompt is conditional", self.expr(cond),
                               self.blockers(cond, need, 1, seen))
        if is_tri and requested == "m" and K.expr_value(sym.rev_dep) == 2:
            found = []
            self._walk(sym.rev_dep, 2, False, found)
            return Explanation("selected", "forced to y by a select from a built-in symbol",
                               self.expr(sym.rev_dep))
        if sym.orig_type in (K.INT, K.HEX) and sym.ranges:
            active = self._active_range(sym)
            if active:
                lo, hi, cond = active
                base = 16 if sym.orig_type == K.HEX else 10
                try:
                    low, high, wanted = int(lo.str_value, base), int(hi.str_value, base), int(requested, base)
                except ValueError:
                    low = high = wanted = None
                if wanted is not None and not low <= wanted <= high:
                    then = (f"kconfig clamps it to {(lo if wanted < low else hi).str_value}" if self.clamps_ranges
                            else "so kconfig uses the default")
                    return Explanation("range", f"{requested} is outside the allowed range "
                                       f"{lo.str_value}..{hi.str_value}, {then}",
                                       f"range {self.expr(lo)} {self.expr(hi)}"
                                       + (f" if {self.expr(cond)}" if cond is not kconf.y else ""))
        return Explanation("other", "kconfig did not keep the value (no single unmet dependency found)")

    def _explain_default(self, sym, need: int, seen: set) -> Explanation:
        """No prompt: the value is the first default whose condition holds (or a select). Name the
        terms of that default (or of the conditions) that hold it back, e.g. def_bool A && !B."""
        K = self.K
        summary = "has no prompt, so a fragment cannot set it; its value comes from "
        for value, cond in sym.defaults:
            if K.expr_value(cond):
                text = self.expr(value) + (f" if {self.expr(cond)}" if cond is not self.kconf.y else "")
                return Explanation("no-prompt", summary + "the default", text,
                                   self.blockers(value, need, 1, seen))
        if sym.defaults:
            conds = [cond for _, cond in sym.defaults]
            return Explanation("no-prompt", summary + "a default, but no default's condition holds",
                               " || ".join(self.expr(c) for c in conds),
                               [b for c in conds for b in self.blockers(c, need, 1, seen)])
        return Explanation("no-prompt", summary + "a select only, and no select term is on",
                           None if sym.rev_dep is self.kconf.n else f"{len(self._or_terms(sym.rev_dep))} select terms")

    def _active_range(self, sym):
        """The first range whose condition holds, as kconfig picks it."""
        for lo, hi, cond in sym.ranges:
            if self.K.expr_value(cond):
                return lo, hi, cond
        return None

    def _defaults(self, sym) -> str | None:
        if not sym.defaults:
            return None
        return "; ".join(f"default {self.expr(v)}" + (f" if {self.expr(c)}" if c is not self.kconf.y else "")
                         for v, c in sym.defaults)

    @staticmethod
    def _choice_name(choice) -> str:
        for node in choice.nodes:
            if node.prompt:
                return repr(node.prompt[0])
        return choice.name or "<choice>"


# --- the check -------------------------------------------------------------------

def check_requested(requested: dict[str, str], sources: dict[str, list[str]], *, subject: str,
                    tree: SourceTree, base: str = DEFAULT_BASE,
                    conflicts: list[ConflictResult] | None = None, final_config: Path | None = None) -> Report:
    """Check assignments given as a dict (a composed profile): one fragment whose lines are placed
    where `sources` says (feature names)."""
    lines = [SourceLine(config_line(s, v), ", ".join(sources.get(s, [])) or subject) for s, v in requested.items()]
    return check_merge([Fragment(subject, lines)], subject=subject, tree=tree, base=base, conflicts=conflicts,
                       final_config=final_config)


def check_fragments(paths, *, tree: SourceTree | None = None, source=None, base: str | None = None,
                    final_config: Path | None = None) -> Report:
    """Fragment files (and directories, in name order) merged in the given order."""
    files = expand_fragment_paths(paths)
    if not files:
        raise BaseConfigError("no fragment files given (empty directory?)")
    fragments = [Fragment(str(f), read_lines(f)) for f in files]
    tree = tree or find_source(source)
    if base is None:  # a generated fragment names its base in its header
        first = fragments[0].lines
        header = {}
        if first and first[0].text == HEADER_FIRST_LINE:
            for line in first[1:]:
                if not line.text:
                    break
                key, colon, value = line.text.removeprefix("# ").partition(":")
                header[key.strip()] = value.strip()
        base = header.get("base") or DEFAULT_BASE
    subject = str(paths[0]) if len(files) == 1 else f"{len(files)} fragments ({', '.join(str(p) for p in paths)})"
    report = check_merge(fragments, subject=subject, tree=tree, base=base, final_config=final_config)
    report.files = [str(f) for f in files]
    return report


def check_fragment(path: Path, *, source=None, base: str | None = None, tree: SourceTree | None = None) -> Report:
    return check_fragments([path], tree=tree, source=source, base=base)


def check_merge(fragments: list[Fragment], *, subject: str, tree: SourceTree, base: str = DEFAULT_BASE,
                conflicts: list[ConflictResult] | None = None, final_config: Path | None = None) -> Report:
    """Merge `fragments` onto `base` as merge_config.sh does, read the result as conf does, and
    compare every requested value with the outcome; the kconfiglib state is left at that outcome."""
    started = time.monotonic()
    kconf = load_kconfig(tree.path)
    dialect = ConfDialect.of_tree(tree.path)
    report = Report(subject, base, str(tree.origin), tree.version, conflicts=list(conflicts or []))
    if base == ALLNO_FRAGMENT:
        merged, replaced = merge_config_lines(fragments[0].lines, [f.lines for f in fragments[1:]])
    else:
        merged, replaced = merge_config_lines(read_lines(base_config_path(tree, base)), [f.lines for f in fragments])
    ours = {id(line) for f in fragments for line in f.lines}
    read = load_lines(kconf, merged, dialect, allnoconfig=base == ALLNO_FRAGMENT)
    if final_config:
        write_config(kconf, Path(final_config))
    per_symbol: dict[str, list[tuple[Assignment, str | None, str | None]]] = {}
    ignored: list[IgnoredLine] = []
    for entry in read:
        if id(entry.line) not in ours:
            continue
        if isinstance(entry.item, IgnoredLine):
            ignored.append(entry.item)
        elif isinstance(entry.item, Assignment):
            per_symbol.setdefault(entry.item.symbol, []).append((entry.item, entry.value, entry.problem))

    explainer = _Explainer(kconf, {s: v for s, items in per_symbol.items() for _, v, _ in items if v is not None},
                           clamps_ranges=base == ALLNO_FRAGMENT or not dialect.range_resets_user_value)
    for symbol, items in per_symbol.items():
        sym = kconf.syms.get(symbol)
        last = items[-1][0]
        if sym is None or not sym.nodes:
            report.options.append(OptionResult(symbol, last.raw, None, "unknown", [last.where], Explanation(
                "unknown", unknown_symbol_summary(symbol, tree))))
            continue
        final = _final(sym)
        valid = [(a, v) for a, v, _ in items if v is not None]
        if valid:
            a, value = valid[-1]
            if _same(sym, value, sym.str_value):
                report.options.append(OptionResult(symbol, value, final, "ok", [a.where]))
            else:
                report.options.append(OptionResult(symbol, value, final, "lost", [a.where],
                                                   explainer.explain(sym, value)))
        for a, _, problem in items:
            if problem:
                report.options.append(OptionResult(symbol, a.raw, final, "invalid", [a.where],
                                                   Explanation("invalid", problem)))
        by_file: dict[str, list[Assignment]] = {}
        for a, _, _ in items:
            by_file.setdefault(a.where.rpartition(":")[0] or a.where, []).append(a)
        for group in by_file.values():
            if len(group) > 1 and len({a.raw for a in group}) > 1:
                report.conflicts.append(ConflictResult(symbol, [(a.where, a.raw) for a in group]))
            elif len(group) > 1:
                report.notes.append(Note("duplicate", symbol, [a.where for a in group],
                                         f"set to {group[0].raw} {len(group)} times"))
    for item in ignored:
        sym = kconf.syms.get(item.symbol) if item.symbol else None
        report.options.append(OptionResult(item.symbol or "-", "-", _final(sym) if sym and sym.nodes else None,
                                           "ignored", [item.where], Explanation("ignored", item.why, repr(item.text))))
    for old, new in replaced:
        if id(old) in ours:
            a_old, a_new = parse_line(old, dialect), parse_line(new, dialect)
            if isinstance(a_old, Assignment) and isinstance(a_new, Assignment):
                same = a_old.raw == a_new.raw
                report.notes.append(Note("duplicate" if same else "redefined", a_new.symbol, [old.where, new.where],
                                         f"set to {a_new.raw} again" if same
                                         else f"{a_old.raw} redefined as {a_new.raw}"))
    report.seconds = round(time.monotonic() - started, 3)
    return report


def unknown_symbol_summary(symbol: str, tree: SourceTree) -> str:
    """Says in which other known tree (6.1, 6.12) the symbol exists, when it exists in one."""
    text = f"not defined in the Kconfig of linux {tree.version} (arch {ARCH})"
    others = other_trees(tree, log=lambda msg: None)
    found = []
    for other in others:
        sym = load_kconfig(other.path).syms.get(symbol)
        if sym is not None and sym.nodes:
            found.append(f"linux {other.version} ({sym.nodes[0].filename}:{sym.nodes[0].linenr})")
    if found:
        return f"{text}; it exists in {', '.join(found)}"
    return f"{text}; nor in {', '.join(f'linux {o.version}' for o in others)}" if others else text


def check_profile(name: str, *, source=None, base: str | None = None, tree: SourceTree | None = None) -> Report:
    comp = resolve_profile(name)
    return check_composition(comp, source=source, base=base, tree=tree)


def check_composition(comp: Composition, *, source=None, base: str | None = None,
                      tree: SourceTree | None = None) -> Report:
    tree = tree or find_source(source)
    requested = {s: r.setting.config_value for s, r in comp.requested.items()}
    sources = {s: r.sources for s, r in comp.requested.items()}
    conflicts = [ConflictResult(c.symbol, c.values) for c in comp.conflicts]
    return check_requested(requested, sources, subject=f"profile {comp.profile.name}", tree=tree,
                           base=base or comp.profile.base, conflicts=conflicts)


# --- output ----------------------------------------------------------------------

def _blocker_lines(b: Blocker, indent: int) -> list[str]:
    pad = "  " * indent
    text = f"{pad}{b.symbol}={b.value} ({b.state})"
    if b.hint:
        text += f": {b.hint}"
    lines = [text]
    if b.selected_by:
        lines.append(f"{pad}  selected by: {b.selected_by}")
    if b.blockers and b.depends_on:
        lines.append(f"{pad}  {b.symbol} depends on: {b.depends_on}")
    for child in b.blockers:
        lines.extend(_blocker_lines(child, indent + 2))
    return lines


def format_report(report: Report) -> str:
    out = [f"kconfig check: {report.subject} on {report.base}, linux {report.version} ({report.source})"]
    if len(report.files) > 1:
        out.append("merged in this order: " + ", ".join(report.files))
    problems = [o for o in report.options if o.status != "ok"]
    if problems or report.conflicts:
        width = max([len(o.symbol) for o in problems] + [len(c.symbol) for c in report.conflicts] + [6])
        out.append("")
        out.append(f"{'STATUS':<9}{'SYMBOL':<{width + 2}}{'REQUESTED':<11}{'FINAL':<9}SET BY")
        for o in problems:
            out.append(f"{o.status.upper():<9}{o.symbol:<{width + 2}}{o.requested:<11}{o.final or '-':<9}"
                       f"{', '.join(o.sources)}")
            if o.why:
                head = f"    why: {o.why.summary}"
                if o.why.expression:
                    head += f": {o.why.expression}"
                out.append(head)
                for b in o.why.blockers:
                    out.extend(_blocker_lines(b, 3))
        for c in report.conflicts:
            out.append(f"{'CONFLICT':<9}{c.symbol:<{width + 2}}" + "; ".join(f"{src} sets {v}" for src, v in c.values))
    for n in report.notes:
        out.append(f"note: {n.symbol} {n.kind} ({n.text}): " + " and ".join(n.places))
    if problems or report.conflicts:
        out.append("")
        out.append(f"{len(report.lost)} lost, {len(report.unknown)} unknown, {len(report.rejected)} invalid or "
                   f"ignored, {len(report.conflicts)} conflicting of {len(report.options)} options "
                   f"({report.seconds:.1f} s)")
    else:
        out.append(f"{len(report.options)} options, all survived ({report.seconds:.1f} s)")
    return "\n".join(out)
