"""Load kernel-config/features.py and profiles.py and compose profiles into requested settings."""
from __future__ import annotations

import importlib.util
import sys
from dataclasses import dataclass, field
from pathlib import Path

from .. import repo_root
from .errors import DeclarationError, UnknownProfileError, VsockTransportConflict
from .model import Feature, Profile, Setting


def declarations_dir() -> Path:
    return repo_root() / "kernel-config"


def declaration_sources() -> list[Path]:
    """Every Python file whose change must regenerate fragments (used by the SCons emitter)."""
    here = Path(__file__).resolve().parent
    return sorted(declarations_dir().glob("*.py")) + sorted(here.glob("*.py"))


def _load_module(path: Path, name: str):
    if not path.is_file():
        raise DeclarationError(f"missing declaration file {path}")
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    # Loaded fresh every time (no sys.modules entry kept) so long-lived processes like SCons see edits.
    try:
        spec.loader.exec_module(module)
    except DeclarationError:
        raise
    except Exception as exc:  # a syntax error in a declaration is a user error, not a crash
        raise DeclarationError(f"{path}: {type(exc).__name__}: {exc}") from exc
    finally:
        sys.modules.pop(name, None)
    return module


def load_features(directory: Path | None = None) -> dict[str, Feature]:
    directory = directory or declarations_dir()
    module = _load_module(directory / "features.py", "wslx_kernel_config_features")
    features: dict[str, Feature] = {}
    for feature in getattr(module, "FEATURES", []):
        if not isinstance(feature, Feature):
            raise DeclarationError(f"FEATURES holds {feature!r}, not a Feature")
        if feature.name in features:
            raise DeclarationError(f"feature {feature.name!r} declared twice")
        feature.settings  # validates symbols and reasons now, not at render time
        features[feature.name] = feature
    return features


def load_profiles(directory: Path | None = None) -> dict[str, Profile]:
    directory = directory or declarations_dir()
    module = _load_module(directory / "profiles.py", "wslx_kernel_config_profiles")
    profiles: dict[str, Profile] = {}
    for profile in getattr(module, "PROFILES", []):
        if not isinstance(profile, Profile):
            raise DeclarationError(f"PROFILES holds {profile!r}, not a Profile")
        if profile.name in profiles:
            raise DeclarationError(f"profile {profile.name!r} declared twice")
        profiles[profile.name] = profile
    return profiles


@dataclass
class Requested:
    """The final requested value of one symbol and who asked for it."""

    setting: Setting
    sources: list[str]  # "feature base", "profile full override", ...


@dataclass
class Conflict:
    symbol: str
    values: list[tuple[str, str]]  # (source, config value)

    def describe(self) -> str:
        return f"{self.symbol}: " + ", ".join(f"{src} sets {val}" for src, val in self.values)


@dataclass
class Composition:
    """A profile resolved to settings. `conflicts` lists symbols two features set differently."""

    profile: Profile
    features: list[Feature]
    requested: dict[str, Requested] = field(default_factory=dict)
    conflicts: list[Conflict] = field(default_factory=list)

    def value(self, symbol: str) -> str | None:
        req = self.requested.get(symbol)
        return req.setting.config_value if req else None


def compose(profile: Profile, features: dict[str, Feature]) -> Composition:
    """Features in declaration order, then profile overrides. Two features disagreeing is a
    conflict (reported, never silently resolved); a profile override is an explicit decision."""
    missing = [f for f in profile.features if f not in features]
    if missing:
        raise DeclarationError(f"profile {profile.name} uses unknown feature(s) {', '.join(missing)}; "
                               f"known: {', '.join(features)}")
    if not profile.vsock_transports.strip():
        raise DeclarationError(f"profile {profile.name}: vsock_transports must say which G2H transport it carries")
    comp = Composition(profile, [features[f] for f in profile.features])
    by_symbol_values: dict[str, list[tuple[str, str]]] = {}
    for feature in comp.features:
        for setting in feature.settings:
            source = f"feature {feature.name}"
            by_symbol_values.setdefault(setting.symbol, []).append((source, setting.config_value))
            if setting.symbol in comp.requested:
                comp.requested[setting.symbol].sources.append(source)
                # keep the first feature's value; the conflict below makes the profile fail anyway
            else:
                comp.requested[setting.symbol] = Requested(setting, [source])
    for symbol, values in by_symbol_values.items():
        if len({v for _, v in values}) > 1:
            comp.conflicts.append(Conflict(symbol, values))
    for setting in profile.override_settings:
        comp.requested[setting.symbol] = Requested(setting, [f"profile {profile.name} override"])
        comp.conflicts = [c for c in comp.conflicts if c.symbol != setting.symbol]  # override settles it
    _check_vsock_transports(comp)
    return comp


def _check_vsock_transports(comp: Composition) -> None:
    both_builtin = comp.value("VIRTIO_VSOCKETS") == "y" and comp.value("HYPERV_VSOCKETS") == "y"
    if both_builtin and not (comp.profile.acknowledge_both_vsock_builtin or "").strip():
        raise VsockTransportConflict(
            f"profile {comp.profile.name} builds VIRTIO_VSOCKETS=y and HYPERV_VSOCKETS=y: only the first "
            "guest->host transport to register (virtio, at init) is used, so hv_sock gets -EBUSY on Hyper-V. "
            "Build them as =m, drop one, or set acknowledge_both_vsock_builtin='why'.")


def resolve_profile(name: str, directory: Path | None = None) -> Composition:
    profiles = load_profiles(directory)
    if name not in profiles:
        raise UnknownProfileError(name, sorted(profiles))
    return compose(profiles[name], load_features(directory))


def profile_names(directory: Path | None = None) -> list[str]:
    return list(load_profiles(directory))
