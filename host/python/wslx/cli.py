"""`wslx` command line. Each subcommand lives in wslx/commands/<name>.py and
exposes `register(subparsers)`; it sets `func(args) -> int` on its parser."""
from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys

from . import commands, __version__


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="wslx", description="WSLX guest kit: build, boot and drive AgentX guests.")
    parser.add_argument("--version", action="version", version=f"wslx {__version__}")
    sub = parser.add_subparsers(dest="command", title="commands")
    for mod in sorted(pkgutil.iter_modules(commands.__path__), key=lambda m: m.name):
        if mod.name.startswith("_"):
            continue
        importlib.import_module(f"{commands.__name__}.{mod.name}").register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("wslx: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
