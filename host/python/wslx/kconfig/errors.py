"""Typed errors for kernel-config work. All are user errors: the CLI prints
their message (no traceback) and exits non-zero."""
from __future__ import annotations


class KconfigError(Exception):
    """Base class: something the user can fix (bad input, missing tree, lost option)."""


class DeclarationError(KconfigError):
    """kernel-config/*.py declares something malformed (bad symbol, missing reason, unknown feature)."""


class UnknownProfileError(KconfigError):
    def __init__(self, name: str, known: list[str]):
        super().__init__(f"unknown profile {name!r}; known profiles: {', '.join(known)}")
        self.name = name


class VsockTransportConflict(DeclarationError):
    """Both guest->host vsock transports built in without an explicit acknowledgement."""


class FragmentParseError(KconfigError):
    def __init__(self, path: str, lineno: int, line: str, why: str):
        where = f"{path}:{lineno}" if lineno else path
        super().__init__(f"{where}: {why}" + (f": {line.rstrip()!r}" if line else ""))
        self.path, self.lineno, self.line = path, lineno, line


class SourceTreeError(KconfigError):
    """The Linux source tree or tarball is missing or not a kernel tree."""


class BaseConfigError(KconfigError):
    """--base names neither a known base nor an existing file."""


class ConfigLossError(KconfigError):
    """Requested options did not survive the merge; carries the check report."""

    def __init__(self, message: str, report=None):
        super().__init__(message)
        self.report = report


class KernelBuildError(KconfigError):
    """make failed, or the real kconfig disagreed with the fragment."""
