"""The AgentX conformance program: the one program every agent that advertises
Capability.PROGRAMS runs, identically, so a protocol conformance suite needs no
shell (or any other program) inside the guest.

EXEC with argv[0] exactly PROGRAM_NAME runs it, whatever PATH says (the Linux
agent execs its own binary as an applet, Track B runs it as a built-in, the
reference agent runs wslx.agentx.programs). argv[1:] is a list of steps, each a
step word followed by its fixed number of arguments, run in order:

    wslx-conform out "early\\n" bg 300 "late\\n" exit 3

Every argument is taken literally (no quoting, no expansion: argv strings can
hold any UTF-8 but NUL). The whole argv is checked before the first step runs.
Exit status: that of an `exit` step, else 0 after the last step;
USAGE_STATUS (nothing ran, a message on stderr) for an unknown step word, a
missing argument or a number out of range; FAILED_STATUS (message on stderr)
when a step fails, e.g. a file step on an agent without a filesystem.

Stdlib only and no runtime code: the Python implementation imports this
module in a child process that starts without site-packages.
"""
from __future__ import annotations

import dataclasses
import enum

PROGRAM_NAME = "wslx-conform"
PROGRAM_MAX_STEPS = 64        # steps per argv; more is a usage error
USAGE_STATUS = 2
FAILED_STATUS = 1


class ProgramStep(enum.IntEnum):
    """Steps of the conformance program (argv words are the names, lower case, '_' as '-')."""
    OUT = 0
    ERR = 1
    SLEEP = 2
    EXIT = 3
    GETENV = 4
    CWD = 5
    HOSTNAME = 6
    CAT = 7
    CLOSE_STDIN = 8
    ZEROS = 9
    BG = 10
    WRITE_FILE = 11
    READ_FILE = 12
    MOUNTED = 13

    @property
    def word(self) -> str:
        return self.name.lower().replace("_", "-")


@dataclasses.dataclass(frozen=True)
class StepSpec:
    step: ProgramStep
    args: tuple[str, ...]   # argument names; a name in NUMBER_MAX is an unsigned decimal number
    doc: str


# Numeric argument kinds and their largest value (decimal digits only, no sign).
NUMBER_MAX = {"MS": 3_600_000, "CODE": 255, "COUNT": 1 << 32}

STEPS: list[StepSpec] = [
    StepSpec(ProgramStep.OUT, ("TEXT",), "write TEXT (its UTF-8 bytes, nothing added) to stdout"),
    StepSpec(ProgramStep.ERR, ("TEXT",), "write TEXT to stderr"),
    StepSpec(ProgramStep.SLEEP, ("MS",), "sleep MS milliseconds (SIGNAL ends the program meanwhile)"),
    StepSpec(ProgramStep.EXIT, ("CODE",), "end now with exit status CODE"),
    StepSpec(ProgramStep.GETENV, ("NAME",), "write the value of environment variable NAME and a newline "
             "(just the newline when it is not set)"),
    StepSpec(ProgramStep.CWD, (), "write the working directory and a newline"),
    StepSpec(ProgramStep.HOSTNAME, (), "write the system's host name and a newline"),
    StepSpec(ProgramStep.CAT, (), "copy stdin to stdout until its EOF (no STDIN_PIPE: EOF at once)"),
    StepSpec(ProgramStep.CLOSE_STDIN, (), "close stdin (later stdin from the host is refused: STDIN_ACK CLOSED)"),
    StepSpec(ProgramStep.ZEROS, ("COUNT",), "write COUNT zero bytes to stdout"),
    StepSpec(ProgramStep.BG, ("MS", "TEXT"), "leave a background child holding stdout and stderr open: it "
             "sleeps MS milliseconds, writes TEXT to stdout and exits; the program goes on at once. SIGNAL "
             "reaches it too (same process group)"),
    StepSpec(ProgramStep.WRITE_FILE, ("PATH", "TEXT"), "create or truncate file PATH and write TEXT to it "
             "(an agent without a filesystem: FAILED_STATUS)"),
    StepSpec(ProgramStep.READ_FILE, ("PATH",), "write the contents of file PATH to stdout"),
    StepSpec(ProgramStep.MOUNTED, ("PATH",), "write 'yes' or 'no' and a newline: is PATH a mount point "
             "(listed in the agent's mount table)"),
]

BY_WORD: dict[str, StepSpec] = {s.step.word: s for s in STEPS}

assert [s.step for s in STEPS] == list(ProgramStep), "one StepSpec per ProgramStep, in value order"
assert all(s.args[1:] == tuple(a for a in s.args[1:] if a not in NUMBER_MAX) for s in STEPS), \
    "only the first argument of a step may be a number (the C table has one number slot)"
