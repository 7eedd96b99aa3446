"""Render a composed profile as a config fragment, and parse fragment files.

Layout of images/<profile>.config:

    # WSLX kernel config fragment -- generated from kernel-config/, do not edit
    # profile: qemu
    # features: base, virtio-pci, ...
    # vsock: <the profile's vsock_transports sentence>
    # fingerprint: sha256:<hex>
    <blank line>
    <body>

The header ends at the first blank line; the fingerprint is sha256 of the body
bytes (everything after that blank line), so it can be recomputed from the file.
"""
from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path

from .declarations import Composition
from .errors import DeclarationError, FragmentParseError

HEADER_FIRST_LINE = "# WSLX kernel config fragment -- generated from kernel-config/, do not edit"


def fingerprint(body: str) -> str:
    return "sha256:" + hashlib.sha256(body.encode()).hexdigest()


def render_body(comp: Composition) -> str:
    lines: list[str] = []
    emitted: set[str] = set()
    for feature in comp.features:
        lines.append(f"# --- feature {feature.name}: {feature.reason}")
        for setting in feature.settings:
            if setting.symbol in emitted:
                lines.append(f"# {setting.symbol}: already set above")
                continue
            final = comp.requested[setting.symbol].setting
            if final != setting:  # a profile override replaces it; say so where the feature wanted it
                lines.append(f"# {setting.symbol}: overridden by the profile, see below")
                continue
            lines.append(f"# {setting.reason}")
            lines.append(setting.config_line())
            emitted.add(setting.symbol)
        lines.append("")
    overrides = comp.profile.override_settings
    if overrides:
        lines.append(f"# --- profile {comp.profile.name} overrides")
        for setting in overrides:
            lines.append(f"# {setting.reason}")
            lines.append(setting.config_line())
        lines.append("")
    return "\n".join(lines).rstrip("\n") + "\n"


def render(comp: Composition) -> str:
    """Whole fragment text. Refuses profiles whose features disagree: the fragment would
    silently pick one value, which is exactly the bug this tool exists to catch."""
    if comp.conflicts:
        raise DeclarationError(f"profile {comp.profile.name}: features set symbols differently: "
                               + "; ".join(c.describe() for c in comp.conflicts))
    body = render_body(comp)
    header = [
        HEADER_FIRST_LINE,
        f"# profile: {comp.profile.name} ({comp.profile.reason})",
        f"# features: {', '.join(f.name for f in comp.features)}",
        f"# base: {comp.profile.base}",
        f"# vsock: {comp.profile.vsock_transports}",
        f"# fingerprint: {fingerprint(body)}",
    ]
    return "\n".join(header) + "\n\n" + body


def write_profile_fragment(comp: Composition, path: Path) -> str:
    """Write only when content changed (keeps mtimes stable); returns the text."""
    text = render(comp)
    path = Path(path)
    if not path.exists() or path.read_text() != text:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(text)
        tmp.replace(path)
    return text


@dataclass(frozen=True)
class SourceLine:
    """One line of a config file as kconfig reads it: newline and one preceding CR removed."""

    text: str
    where: str   # "path:lineno", or a profile's feature names


@dataclass(frozen=True)
class Assignment:
    """`CONFIG_X=raw` or `# CONFIG_X is not set` (raw "n"). `raw` is exactly what confdata.c hands to
    conf_set_sym_val: whether it is valid depends on the symbol's type (see check.interpret)."""

    symbol: str
    raw: str
    where: str
    not_set: bool = False


@dataclass(frozen=True)
class IgnoredLine:
    """A line kconfig skips ("unexpected data"), though it looks like it meant to set something."""

    text: str
    where: str
    why: str
    symbol: str | None = None


@dataclass(frozen=True)
class Note:
    """Not a loss, but worth knowing: a symbol set twice (same value), or redefined by a later file."""

    kind: str          # duplicate, redefined
    symbol: str
    places: list[str]
    text: str


@dataclass(frozen=True)
class ConfDialect:
    """The two ways Linux's confdata.c reads `# CONFIG_X is not set` (6.1 vs 6.9+)."""

    not_set_needs_space: bool = True   # line[1] must be ' ' (6.12); 6.1 skips line[1] unchecked
    not_set_exact: bool = True         # strcmp (6.12) rather than strncmp(p, "is not set", 10) (6.1)
    choice_priority: bool = True       # 6.11+: the last-assigned y member wins, an explicit n skips the default
    range_resets_user_value: bool = False  # conf_read() of 6.1 drops an out-of-range value (6.12 clamps it)

    @classmethod
    def of_tree(cls, tree: Path) -> "ConfDialect":
        try:
            text = (Path(tree) / "scripts/kconfig/confdata.c").read_text(errors="replace")
            symbol_c = (Path(tree) / "scripts/kconfig/symbol.c").read_text(errors="replace")
        except OSError:
            return cls()
        return cls(not_set_needs_space="line[1] != ' '" in text,
                   not_set_exact='strcmp(p, "is not set")' in text,
                   choice_priority="choice_members" in symbol_c,
                   range_resets_user_value="Reset a string value if it's out of range" in text)


_NAME_CHARS = re.compile(r"^CONFIG_([A-Za-z0-9_]+)")


def parse_line(line: SourceLine, dialect: ConfDialect = ConfDialect()) -> Assignment | IgnoredLine | None:
    """conf_read_simple() for one line: an assignment, a line kconfig ignores that looks meant, or None
    (blank line or comment)."""
    text = line.text
    if not text:
        return None
    if text[0] == "#":
        if dialect.not_set_needs_space and text[1:2] != " ":
            return None
        rest = text[2:]
        if not rest.startswith("CONFIG_"):
            return None
        name, space, tail = rest[7:].partition(" ")
        if not space:
            return None
        if tail == "is not set" or (not dialect.not_set_exact and tail.startswith("is not set")):
            return Assignment(name, "n", line.where, not_set=True)
        if tail.startswith("is not set"):
            return IgnoredLine(text, line.where, "text after 'is not set': kconfig reads it as a comment", name)
        return None
    if not text.startswith("CONFIG_"):
        if text.strip() == "" or text.lstrip().startswith("#"):
            return None  # kconfig warns "unexpected data" but nothing was meant to be set here
        m = _NAME_CHARS.match(text.lstrip())
        if m:
            return IgnoredLine(text, line.where, "leading whitespace: kconfig only reads lines that start "
                               "with CONFIG_", m.group(1))
        return IgnoredLine(text, line.where, "unexpected data: not CONFIG_NAME=value or a comment")
    name, eq, raw = text[7:].partition("=")
    if not eq:
        return IgnoredLine(text, line.where, "no '=': kconfig ignores the line", name)
    return Assignment(name, raw, line.where)


def read_lines(path: Path) -> list[SourceLine]:
    """A config file's lines, byte-transparent: kconfig never decodes, so neither do comments here
    (non-UTF-8 bytes are read as Latin-1)."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise FragmentParseError(str(path), 0, "", "fragment file not found") from None
    except OSError as exc:
        raise FragmentParseError(str(path), 0, "", f"cannot read fragment ({exc.strerror or exc})") from None
    return lines_of_bytes(data, str(path))


def lines_of_bytes(data: bytes, name: str) -> list[SourceLine]:
    out = []
    raw_lines = data.split(b"\n")
    if raw_lines and raw_lines[-1] == b"":
        raw_lines.pop()
    for lineno, raw in enumerate(raw_lines, 1):
        if raw.endswith(b"\r"):
            raw = raw[:-1]
        try:
            text = raw.decode()
        except UnicodeDecodeError:
            text = raw.decode("latin-1")
        out.append(SourceLine(text, f"{name}:{lineno}"))
    return out


@dataclass
class ParsedFragment:
    path: str
    assignments: list[Assignment] = field(default_factory=list)  # in file order
    ignored: list[IgnoredLine] = field(default_factory=list)
    header: dict[str, str] = field(default_factory=dict)
    body: str = ""
    lines: list[SourceLine] = field(default_factory=list)

    def requested(self) -> dict[str, str]:
        """Last assignment wins, as in merge_config.sh and conf (raw values, before type checks)."""
        return {a.symbol: a.raw for a in self.assignments}

    def _by_symbol(self) -> dict[str, list[Assignment]]:
        seen: dict[str, list[Assignment]] = {}
        for a in self.assignments:
            seen.setdefault(a.symbol, []).append(a)
        return seen

    def duplicates(self) -> dict[str, list[Assignment]]:
        """Symbols assigned more than once with different values."""
        return {s: v for s, v in self._by_symbol().items() if len({a.raw for a in v}) > 1}

    def notes(self) -> list[Note]:
        """Symbols assigned more than once with the same value (merge_config.sh -r calls them redundant)."""
        return [Note("duplicate", s, [a.where for a in v], f"set to {v[0].raw} {len(v)} times")
                for s, v in self._by_symbol().items() if len(v) > 1 and len({a.raw for a in v}) == 1]


def parse_lines(lines: list[SourceLine], path: str, dialect: ConfDialect = ConfDialect()) -> ParsedFragment:
    frag = ParsedFragment(path, lines=lines)
    for line in lines:
        item = parse_line(line, dialect)
        if isinstance(item, Assignment):
            frag.assignments.append(item)
        elif isinstance(item, IgnoredLine):
            frag.ignored.append(item)
    return frag


def _read_header(frag: ParsedFragment, text: str) -> None:
    header_text, sep, body = text.partition("\n\n")
    if text.startswith(HEADER_FIRST_LINE) and sep:
        frag.body = body
        for line in header_text.splitlines()[1:]:
            key, colon, value = line.removeprefix("# ").partition(":")
            if colon:
                frag.header[key.strip()] = value.strip()
    else:
        frag.body = text


def parse_text(text: str, path: str = "<fragment>", dialect: ConfDialect = ConfDialect()) -> ParsedFragment:
    frag = parse_lines(lines_of_bytes(text.encode(), path), path, dialect)
    _read_header(frag, text)
    return frag


def parse_file(path: Path, dialect: ConfDialect = ConfDialect()) -> ParsedFragment:
    lines = read_lines(path)
    frag = parse_lines(lines, str(path), dialect)
    _read_header(frag, "\n".join(line.text for line in lines))
    return frag


def config_key_material(assignments: dict[str, str]) -> str:
    """Only what changes the kernel: sorted assignments (reason comments excluded)."""
    return "\n".join(f"{s}={v}" for s, v in sorted(assignments.items()))
