"""`wslx` command line. Each subcommand lives in wslx/commands/<name>.py and
exposes `register(subparsers)`; it sets `func(args) -> int` on its parser.

A user's mistake never ends in a traceback: a bad argument (wslx.commands._args
checks paths, kernel images and numbers while parsing) and any OSError a command
meets (a path that is missing, not writable, ...) become one line on stderr naming
the path and the problem, and exit status 2."""
from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys

from . import commands, __version__

USAGE_ERROR = 2


class _Parser(argparse.ArgumentParser):
    """An argument mistake is one line (with where to look for help), exit status 2."""

    def error(self, message: str):
        self.exit(USAGE_ERROR, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="wslx", description="WSLX guest kit: build, boot and drive AgentX guests.")
    parser.add_argument("--version", action="version", version=f"wslx {__version__}")
    sub = parser.add_subparsers(dest="command", title="commands")   # subparsers are _Parsers too
    for mod in sorted(pkgutil.iter_modules(commands.__path__), key=lambda m: m.name):
        if mod.name.startswith("_"):
            continue
        importlib.import_module(f"{commands.__name__}.{mod.name}").register(sub)
    return parser


def describe_os_error(e: OSError) -> str:
    """'PATH: problem' (both paths of a rename or link), or the problem alone."""
    problem = e.strerror or str(e)
    paths = [str(p) for p in (e.filename, e.filename2) if p is not None]
    return f"{' -> '.join(paths)}: {problem}" if paths else problem


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:   # --help, --version, or an argument mistake (already reported)
        return e.code if isinstance(e.code, int) else USAGE_ERROR
    if not getattr(args, "func", None):
        parser.print_help()
        return USAGE_ERROR
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("wslx: interrupted", file=sys.stderr)
        return 130
    except OSError as e:
        print(f"wslx {args.command}: {describe_os_error(e)}", file=sys.stderr)
        return USAGE_ERROR


if __name__ == "__main__":
    sys.exit(main())
