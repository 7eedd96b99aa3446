"""Merge a fragment onto a base config with the real Kconfig of a tree, and explain every loss.

Mirrors what the build does (`make <base>`, append the fragment, `make
olddefconfig`), but with kconfiglib so that each option that did not survive can
be traced to its unmet dependency, a hidden prompt, a `select`, or a choice.
"""
from __future__ import annotations

import hashlib
import json
import os
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from .declarations import Composition, resolve_profile
from .errors import BaseConfigError, SourceTreeError
from .fragment import ParsedFragment, parse_file
from .source import ARCH, SRCARCH, SourceTree, cache_root, find_source, load_kconfig

BASES = ("tinyconfig", "allnoconfig", "defconfig")
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
    status: str        # ok, lost, unknown
    sources: list[str] = field(default_factory=list)
    why: Explanation | None = None


@dataclass
class ConflictResult:
    symbol: str
    values: list[tuple[str, str]]  # (source, value)


@dataclass
class Report:
    subject: str                     # "profile qemu" or a fragment path
    base: str
    source: str
    version: str
    options: list[OptionResult] = field(default_factory=list)
    conflicts: list[ConflictResult] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def lost(self) -> list[OptionResult]:
        return [o for o in self.options if o.status == "lost"]

    @property
    def unknown(self) -> list[OptionResult]:
        return [o for o in self.options if o.status == "unknown"]

    @property
    def ok(self) -> bool:
        return not (self.lost or self.unknown or self.conflicts)

    def to_json(self) -> str:
        data = asdict(self)
        data.update(ok=self.ok, lost=len(self.lost), unknown=len(self.unknown), requested=len(self.options))
        return json.dumps(data, indent=2)


# --- base configs --------------------------------------------------------------

def _write_config(kconf, path: Path) -> None:
    kconf.write_config(str(path), header="")


def _allnoconfig(kconf, allconfig: Path | None) -> None:
    kconf.unset_values()
    for sym in kconf.unique_defined_syms:
        sym.set_value(2 if sym.is_allnoconfig_y else 0)
    if allconfig:  # KCONFIG_ALLCONFIG: merged on top, as `make allnoconfig` does
        kconf.load_config(str(allconfig), replace=False)


def _reload(kconf, workdir: Path) -> None:
    """Write .config and read it back: what the next `make` step starts from."""
    path = workdir / "stage.config"
    _write_config(kconf, path)
    kconf.load_config(str(path))


def base_config_path(tree: SourceTree, base: str) -> Path:
    """A .config for `base`, computed with kconfiglib and cached under build/kconfig-cache/."""
    if base not in BASES:
        path = Path(base)
        if not path.is_file():
            raise BaseConfigError(f"--base {base!r} is neither one of {', '.join(BASES)} nor an existing file")
        return path
    key = hashlib.sha256(f"{tree.key}\n{tree.path}\n{ARCH}\n{base}\nv2".encode()).hexdigest()[:16]
    cached = cache_root() / "kconfig-cache" / key / f"{base}.config"
    if cached.is_file():
        return cached
    kconf = load_kconfig(tree.path)
    src = tree.path
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        if base == "allnoconfig":
            _allnoconfig(kconf, None)
        elif base == "tinyconfig":
            _allnoconfig(kconf, src / "kernel/configs/tiny-base.config")
            _reload(kconf, work)
            for frag in (src / "kernel/configs/tiny.config", src / f"arch/{SRCARCH}/configs/tiny.config"):
                kconf.load_config(str(frag), replace=False)
        elif base == "defconfig":
            kconf.load_config(str(src / f"arch/{SRCARCH}/configs/x86_64_defconfig"))
        cached.parent.mkdir(parents=True, exist_ok=True)
        staged = cached.with_name(f".{base}.{os.getpid()}.tmp")
        _write_config(kconf, staged)
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


# --- explanations ----------------------------------------------------------------

class _Explainer:
    def __init__(self, kconf, requested: dict[str, str]):
        import kconfiglib as K
        self.K = K
        self.kconf = kconf
        self.requested = requested

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
            b.hint = (f"set CONFIG_{sym.name}=n" if has_prompt and sym.rev_dep is self.kconf.n
                      else "forced on (select/default)")
            if K.expr_value(sym.rev_dep):
                b.selected_by = self.expr(sym.rev_dep)
            return b
        if not has_prompt:
            b.selected_by = self.expr(sym.rev_dep) if sym.rev_dep is not self.kconf.n else None
            b.hint = "no prompt: only a select or its default can turn it on"
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
                found: list = []
                self._walk(sym.rev_dep, 1, False, found)
                return Explanation("selected", f"forced to {sym.str_value} by select",
                                   self.expr(sym.rev_dep),
                                   [Blocker(s.name, _final(s), "selects it") for s, _ in found])
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
            return Explanation("no-prompt", "has no prompt: a fragment cannot set it; only select or its "
                               "default can", self.expr(sym.rev_dep) if sym.rev_dep is not kconf.n else None,
                               [])
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
            return Explanation("range", "value outside the allowed range",
                               "; ".join(f"{self.expr(lo)}..{self.expr(hi)} if {self.expr(c)}"
                                         for lo, hi, c in sym.ranges))
        return Explanation("other", "kconfig did not keep the value (no single unmet dependency found)")

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
                    conflicts: list[ConflictResult] | None = None) -> Report:
    started = time.monotonic()
    kconf = load_kconfig(tree.path)
    base_path = base_config_path(tree, base)
    report = Report(subject, base, str(tree.origin), tree.version, conflicts=list(conflicts or []))
    with tempfile.TemporaryDirectory() as tmp:
        kconf.load_config(str(base_path))  # replace=True: exactly the base .config
        fragment = Path(tmp) / "fragment.config"
        fragment.write_text("".join(
            f"# CONFIG_{s} is not set\n" if v == "n" else f"CONFIG_{s}={v}\n" for s, v in requested.items()))
        kconf.load_config(str(fragment), replace=False)
        # olddefconfig happens implicitly: kconfiglib values are always fully evaluated
    explainer = _Explainer(kconf, requested)
    for symbol, value in requested.items():
        sym = kconf.syms.get(symbol)
        srcs = sources.get(symbol, [])
        if sym is None or not sym.nodes:
            report.options.append(OptionResult(symbol, value, None, "unknown", srcs, Explanation(
                "unknown", f"not defined in the Kconfig of linux {tree.version} (arch {ARCH})")))
            continue
        final = _final(sym)
        if _same(sym, value, sym.str_value):
            report.options.append(OptionResult(symbol, value, final, "ok", srcs))
        else:
            report.options.append(OptionResult(symbol, value, final, "lost", srcs, explainer.explain(sym, value)))
    report.seconds = round(time.monotonic() - started, 3)
    return report


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


def check_fragment(path: Path, *, source=None, base: str | None = None, tree: SourceTree | None = None) -> Report:
    frag: ParsedFragment = parse_file(path)
    tree = tree or find_source(source)
    conflicts = [ConflictResult(sym, [(f"line {line}", val) for val, line in vals])
                 for sym, vals in frag.duplicates().items()]
    sources = {}
    for sym, _, line in frag.assignments:
        sources.setdefault(sym, []).append(f"line {line}")
    return check_requested(frag.requested(), sources, subject=str(path), tree=tree,
                           base=base or frag.header.get("base") or DEFAULT_BASE, conflicts=conflicts)


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
        out.append("")
        out.append(f"{len(report.lost)} lost, {len(report.unknown)} unknown, {len(report.conflicts)} conflicting "
                   f"of {len(report.options)} options ({report.seconds:.1f} s)")
    else:
        out.append(f"{len(report.options)} options, all survived ({report.seconds:.1f} s)")
    return "\n".join(out)
