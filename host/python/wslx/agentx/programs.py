"""The conformance program (wslx.spec.programs) in Python: what the reference
agent runs for EXEC of argv[0] `wslx-conform`, as

    python -I -S .../wslx/agentx/programs.py STEP...

It starts without site-packages (fast: tens of milliseconds) and imports only
the stdlib and the construct-free spec module.
"""
from __future__ import annotations

import os
import signal
import sys
import time

if __package__ in (None, ""):  # run as a script: the package root is three levels up
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

from wslx.spec.programs import (BY_WORD, FAILED_STATUS, NUMBER_MAX, PROGRAM_MAX_STEPS, PROGRAM_NAME, USAGE_STATUS,
                                ProgramStep)

SCRIPT = os.path.abspath(__file__)
CHUNK = 65536


class UsageError(Exception):
    pass


def parse(args: list[str]) -> list[tuple[ProgramStep, list]]:
    """argv[1:] to [(step, [arguments])]; UsageError names the first problem."""
    steps, i = [], 0
    while i < len(args):
        spec = BY_WORD.get(args[i])
        if spec is None:
            raise UsageError(f"unknown step {args[i]!r}")
        values = args[i + 1:i + 1 + len(spec.args)]
        if len(values) < len(spec.args):
            raise UsageError(f"{args[i]} needs {' '.join(spec.args)}")
        converted = []
        for name, value in zip(spec.args, values):
            if name in NUMBER_MAX:
                if not (value.isascii() and value.isdigit()) or int(value) > NUMBER_MAX[name]:
                    raise UsageError(f"{args[i]}: {name} {value!r} is not a number in 0..{NUMBER_MAX[name]}")
                value = int(value)
            converted.append(value)
        steps.append((spec.step, converted))
        if len(steps) > PROGRAM_MAX_STEPS:
            raise UsageError(f"more than {PROGRAM_MAX_STEPS} steps")
        i += 1 + len(spec.args)
    return steps


def _write(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def _unescape_mount_field(field: str) -> str:
    """/proc/self/mounts escapes space, tab, newline and backslash as \\ooo."""
    out, i = [], 0
    while i < len(field):
        if field[i] == "\\" and field[i + 1:i + 4].isdigit():
            out.append(chr(int(field[i + 1:i + 4], 8)))
            i += 4
        else:
            out.append(field[i])
            i += 1
    return "".join(out)


def _mounted(path: str) -> bool:
    target = os.path.normpath(os.path.abspath(path))
    with open("/proc/self/mounts") as f:
        return any(_unescape_mount_field(line.split()[1]) == target for line in f if len(line.split()) > 1)


def run(steps) -> int:
    for step, args in steps:
        try:
            if step in (ProgramStep.OUT, ProgramStep.ERR):
                _write(1 if step == ProgramStep.OUT else 2, args[0].encode())
            elif step == ProgramStep.SLEEP:
                time.sleep(args[0] / 1000)
            elif step == ProgramStep.EXIT:
                return args[0]
            elif step == ProgramStep.GETENV:
                _write(1, os.environ.get(args[0], "").encode() + b"\n")
            elif step == ProgramStep.CWD:
                _write(1, os.getcwd().encode() + b"\n")
            elif step == ProgramStep.HOSTNAME:
                _write(1, os.uname().nodename.encode() + b"\n")
            elif step == ProgramStep.CAT:
                while data := os.read(0, CHUNK):
                    _write(1, data)
            elif step == ProgramStep.CLOSE_STDIN:
                os.close(0)
            elif step == ProgramStep.ZEROS:
                left = args[0]
                while left:
                    n = min(left, CHUNK)
                    _write(1, bytes(n))
                    left -= n
            elif step == ProgramStep.BG:
                if os.fork() == 0:  # the child keeps stdout/stderr open while it sleeps
                    try:
                        time.sleep(args[0] / 1000)
                        _write(1, args[1].encode())
                    finally:
                        os._exit(0)
            elif step == ProgramStep.WRITE_FILE:
                with open(args[0], "wb") as f:
                    f.write(args[1].encode())
            elif step == ProgramStep.READ_FILE:
                with open(args[0], "rb") as f:
                    _write(1, f.read())
            elif step == ProgramStep.MOUNTED:
                _write(1, b"yes\n" if _mounted(args[0]) else b"no\n")
        except OSError as e:
            _write(2, f"{PROGRAM_NAME}: {step.word}: {e.strerror or e}\n".encode())
            return FAILED_STATUS
    return 0


def main(argv: list[str]) -> int:
    # default dispositions, as any exec'd program has them (Python ignores SIGPIPE and catches SIGINT)
    for sig in (signal.SIGPIPE, signal.SIGINT):
        signal.signal(sig, signal.SIG_DFL)
    try:
        steps = parse(argv)
    except UsageError as e:
        _write(2, f"{PROGRAM_NAME}: {e}\n".encode())
        return USAGE_STATUS
    return run(steps)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
