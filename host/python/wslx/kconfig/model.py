"""Declaration types for kernel-config/: features and the profiles built from them.

Symbols are always written WITHOUT the CONFIG_ prefix in declarations; the
prefix is added only when a fragment file is rendered.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

from .errors import DeclarationError

SYMBOL_NAME = re.compile(r"^[A-Z0-9_]+$")
TRISTATE_VALUES = ("y", "m", "n")


@dataclass(frozen=True)
class Setting:
    """One requested symbol value. `value` is 'y'/'m'/'n', an int, or a str (a Kconfig string)."""

    symbol: str
    value: str | int
    reason: str

    @property
    def config_value(self) -> str:
        """The value as it appears right of '=' in a .config file."""
        if isinstance(self.value, bool):  # bool is an int subclass: refuse True/False, they are ambiguous
            raise DeclarationError(f"{self.symbol}: use 'y'/'n', not {self.value!r}")
        if isinstance(self.value, int):
            return str(self.value)
        if self.value in TRISTATE_VALUES:
            return self.value
        return '"' + self.value.replace("\\", "\\\\").replace('"', '\\"') + '"'

    def config_line(self) -> str:
        if self.value == "n":
            # merge_config.sh and conf both accept this form; it is what .config files use for n.
            return f"# CONFIG_{self.symbol} is not set"
        return f"CONFIG_{self.symbol}={self.config_value}"


def _settings(owner: str, symbols: dict) -> tuple[Setting, ...]:
    out = []
    for name, spec in symbols.items():
        if name.startswith("CONFIG_"):
            raise DeclarationError(f"{owner}: write {name[7:]} without the CONFIG_ prefix")
        if not SYMBOL_NAME.match(name):
            raise DeclarationError(f"{owner}: {name!r} is not a Kconfig symbol name")
        if not (isinstance(spec, tuple) and len(spec) == 2 and isinstance(spec[1], str) and spec[1].strip()):
            raise DeclarationError(f"{owner}: {name} must be (value, 'one-line reason')")
        value, reason = spec
        if isinstance(value, bool) or not isinstance(value, (str, int)):
            raise DeclarationError(f"{owner}: {name} has value {value!r}; use 'y'/'m'/'n', an int or a string")
        setting = Setting(name, value, reason.strip())
        setting.config_value  # validates
        out.append(setting)
    return tuple(out)


@dataclass(frozen=True)
class Feature:
    """A capability of the guest kernel: a small set of symbols that belong together."""

    name: str
    reason: str
    symbols: dict = field(default_factory=dict)

    @property
    def settings(self) -> tuple[Setting, ...]:
        return _settings(f"feature {self.name}", self.symbols)


@dataclass(frozen=True)
class Profile:
    """A kernel flavour: features in order, plus explicit profile-level overrides.

    vsock_transports is a required sentence saying which guest->host vsock
    transport(s) this kernel carries and why (see README: only the first G2H
    transport registered is ever used). `acknowledge_both_vsock_builtin` must be
    set to a reason if a profile really wants VIRTIO_VSOCKETS=y and
    HYPERV_VSOCKETS=y together; otherwise composition rejects it.
    """

    name: str
    reason: str
    features: tuple[str, ...]
    vsock_transports: str
    overrides: dict = field(default_factory=dict)
    acknowledge_both_vsock_builtin: str | None = None
    base: str = "tinyconfig"

    @property
    def override_settings(self) -> tuple[Setting, ...]:
        return _settings(f"profile {self.name} overrides", self.overrides)
