"""Errors raised by the virtual machine launchers.

Every error carries what is needed to understand a failed boot without
re-running it: the command line, the tail of the guest console and the
per-VM run directory holding qemu.log, console.log and cmdline.txt.
"""
from __future__ import annotations

import shlex
from pathlib import Path
from typing import Sequence


class VMError(Exception):
    """Base class.  Attributes: cmdline (list[str] | None), console_tail (str),
    log_dir (Path | None).  str() includes all of them."""

    def __init__(self, message: str, *, cmdline: Sequence[str] | None = None,
                 console_tail: str = "", log_dir: Path | str | None = None):
        self.message = message
        self.cmdline = list(cmdline) if cmdline is not None else None
        self.console_tail = console_tail or ""
        self.log_dir = Path(log_dir) if log_dir is not None else None
        super().__init__(message)

    def details(self) -> list[str]:
        out = []
        if self.log_dir is not None:
            out.append(f"run directory: {self.log_dir}")
            out.append(f"console log: {self.log_dir / 'console.log'}")
        if self.cmdline:
            out.append("command line: " + shlex.join(self.cmdline))
        if self.console_tail:
            out.append("--- console (last lines) ---\n" + self.console_tail.rstrip("\n") + "\n--- end of console ---")
        return out

    def __str__(self) -> str:
        return "\n".join([self.message] + self.details())


class LaunchError(VMError):
    """QEMU did not start (bad option, missing file...), or its QMP monitor never came up."""

    def __init__(self, message: str, *, exitcode: int | None = None, output: str = "", **kw):
        self.exitcode = exitcode
        self.output = output or ""
        super().__init__(message, **kw)

    def details(self) -> list[str]:
        out = [f"exit code: {self.exitcode}"]
        if self.output:
            out.append("--- QEMU output ---\n" + self.output.rstrip("\n") + "\n--- end of QEMU output ---")
        return out + super().details()


class ConsoleTimeout(VMError, TimeoutError):
    """The console did not show the expected text in time."""

    def __init__(self, message: str, *, pattern: str = "", timeout: float = 0.0, **kw):
        self.pattern = pattern
        self.timeout = timeout
        super().__init__(message, **kw)


class GuestPanicked(VMError):
    """The guest kernel panicked (pvpanic GUEST_PANICKED event or "Kernel panic" on the console)."""

    def __init__(self, message: str, *, exitcode: int | None = None, event: dict | None = None, **kw):
        self.exitcode = exitcode
        self.event = event
        super().__init__(message, **kw)


class GuestExited(VMError):
    """QEMU exited (guest powered off or reset under -no-reboot) while we still waited for something."""

    def __init__(self, message: str, *, exitcode: int | None = None, **kw):
        self.exitcode = exitcode
        super().__init__(message, **kw)


class ChannelTimeout(VMError, TimeoutError):
    """A host-side channel socket (AgentX, serial fallback) could not be connected in time."""


class ShutdownError(VMError):
    """The VM process could not be ended (survived SIGKILL)."""


class MigrationError(VMError):
    """A QMP command, or a save/load of the VM's state (migration), failed or timed out."""
