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
_ASSIGN = re.compile(r"^CONFIG_([A-Za-z0-9_]+)=(.*)$")
_NOT_SET = re.compile(r"^# CONFIG_([A-Za-z0-9_]+) is not set\s*$")
_VALUE = re.compile(r'^(?:[ymn]|-?\d+|0[xX][0-9a-fA-F]+|"(?:[^"\\]|\\.)*")$')


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


@dataclass
class ParsedFragment:
    path: str
    assignments: list[tuple[str, str, int]] = field(default_factory=list)  # (symbol, value, lineno) in order
    header: dict[str, str] = field(default_factory=dict)
    body: str = ""

    def requested(self) -> dict[str, str]:
        """Last assignment wins, as in merge_config.sh and conf."""
        return {sym: val for sym, val, _ in self.assignments}

    def duplicates(self) -> dict[str, list[tuple[str, int]]]:
        """Symbols assigned more than once with different values (name -> [(value, line)])."""
        seen: dict[str, list[tuple[str, int]]] = {}
        for sym, val, lineno in self.assignments:
            seen.setdefault(sym, []).append((val, lineno))
        return {s: v for s, v in seen.items() if len({val for val, _ in v}) > 1}


def parse_text(text: str, path: str = "<fragment>") -> ParsedFragment:
    frag = ParsedFragment(path)
    header_text, sep, body = text.partition("\n\n")
    if text.startswith(HEADER_FIRST_LINE) and sep:
        frag.body = body
        for line in header_text.splitlines()[1:]:
            key, colon, value = line.removeprefix("# ").partition(":")
            if colon:
                frag.header[key.strip()] = value.strip()
    else:
        frag.body = text
    for lineno, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line:
            continue
        m = _NOT_SET.match(line)
        if m:
            frag.assignments.append((m.group(1), "n", lineno))
            continue
        if line.startswith("#"):
            continue
        m = _ASSIGN.match(line)
        if not m:
            raise FragmentParseError(path, lineno, raw, "expected CONFIG_NAME=value or '# CONFIG_NAME is not set'")
        value = m.group(2).strip()
        if not _VALUE.match(value):
            raise FragmentParseError(path, lineno, raw, "value must be y, m, n, a number or a \"quoted string\"")
        frag.assignments.append((m.group(1), value, lineno))
    return frag


def parse_file(path: Path) -> ParsedFragment:
    path = Path(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise FragmentParseError(str(path), 0, "", "fragment file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise FragmentParseError(str(path), 0, "", f"cannot read fragment ({exc})") from None
    return parse_text(text, str(path))


def config_key_material(assignments: dict[str, str]) -> str:
    """Only what changes the kernel: sorted assignments (reason comments excluded)."""
    return "\n".join(f"{s}={v}" for s, v in sorted(assignments.items()))
