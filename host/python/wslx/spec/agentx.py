"""AgentX wire protocol, version 1: the single source of truth.

From this module are generated: the C header the guests compile against
(wslx.codegen.c_header), the protocol reference (docs/agentx-protocol.md) and
the fast Python codec (wslx.agentx.codec). The `construct` structs below are
the normative definition; the fast codec is tested byte-for-byte against them.

Frame = 24-byte header + payload, all little-endian:

    magic u32 | version u8 | flags u8 | type u16 | request_id u32 |
    payload_len u32 | payload_crc u32 | header_crc u32

header_crc is CRC-32 (IEEE, as zlib.crc32) of the first 20 header bytes, so a
corrupted length is caught before anything is read on its behalf; payload_crc
covers the payload. Serial links corrupt bytes; both checks are mandatory.

Requests (host->agent messages of kind "request") carry a non-zero request_id and
no REPLY flag; an agent answers a request that breaks either rule with ERROR
EPROTO. HELLO is the one exception (request_id 0 asks for a re-announcement).
"""
from __future__ import annotations

import dataclasses
import enum

from construct import Int8ul, Int16ul, Int32ul, Int64ul, Int32sl, Struct

from .fields import BoundedBytes, BoundedString, BoundedStringArray, Reserved
from .programs import PROGRAM_NAME, ProgramStep  # the conformance program (Capability.PROGRAMS)

PROTOCOL_NAME = "AgentX"
MAGIC = 0x58544741          # bytes "AGTX" on the wire
VERSION_MIN = 1
VERSION_MAX = 1
HEADER_SIZE = 24
MAX_PAYLOAD = 65536         # hard limit; a longer frame is rejected unread
MAX_FRAME = HEADER_SIZE + MAX_PAYLOAD
STDIO_MAX_DATA = 61440      # per STDIO frame
PING_MAX_DATA = 61440
STDIN_WINDOW = 262144       # stdin bytes a host may have in flight per process (see STDIN_ACK)
SIGNAL_MAX = 64
SHUTDOWN_GRACE_MAX_MS = 60000
EXIT_EOF_GRACE_MS = 500     # after a reap, how long EXIT waits for EOFs held open by background children
PATH_MAX_LEN = 4096
ARGV_MAX_COUNT = 256
ENV_MAX_COUNT = 256
ENV_ITEM_MAX_LEN = 4096
ERROR_MESSAGE_MAX_LEN = 512

# Transport endpoints (seed note 5.3: Gemini control port).
VSOCK_CONTROL_PORT = 50010
VSOCK_HOST_CID = 2
VIRTIO_SERIAL_PORT_NAME = "org.wslx.agentx"

FrameHeader = Struct(
    "magic" / Int32ul * "0x58544741, the bytes 'AGTX'",
    "version" / Int8ul * "protocol version this frame is encoded in",
    "flags" / Int8ul * "FrameFlag bits; unknown bits are an error",
    "type" / Int16ul * "MsgType",
    "request_id" / Int32ul * "non-zero on requests; replies echo it; 0 on events",
    "payload_len" / Int32ul * "bytes after the header, at most MAX_PAYLOAD",
    "payload_crc" / Int32ul * "CRC-32 of the payload",
    "header_crc" / Int32ul * "CRC-32 of header bytes 0..19",
)
assert FrameHeader.sizeof() == HEADER_SIZE


class FrameFlag(enum.IntFlag):
    """Frame header flags."""
    REPLY = 0x01  # this frame answers the request with the same request_id


class MsgType(enum.IntEnum):
    """Message types. Values are explicit and never reused."""
    HELLO = 0x0001
    CONFIG = 0x0002
    MOUNT = 0x0003
    UNMOUNT = 0x0004
    EXEC = 0x0005
    STDIO = 0x0006
    SIGNAL = 0x0007
    QUIESCE = 0x0008
    RESUME = 0x0009
    SHUTDOWN = 0x000A
    PING = 0x000B
    OK = 0x0080
    ERROR = 0x0081
    PONG = 0x0082
    EXEC_STARTED = 0x0083
    EXIT = 0x0084
    QUIESCE_COMPLETE = 0x0085
    STDIN_ACK = 0x0086


class Capability(enum.IntFlag):
    """HELLO capability bits: what this agent implements. A new feature gets a new bit, not a
    version bump, when it changes no frame layout: peers ignore bits they do not know, and a
    host uses a feature only when the agent advertises it, so older peers keep working."""
    EXEC = 1 << 0       # EXEC with stdout/stderr relay and EXIT events
    STDIN = 1 << 1      # STDIO host->agent into a process's stdin
    SIGNAL = 1 << 2     # SIGNAL to processes it started
    MOUNT = 1 << 3      # MOUNT / UNMOUNT (Track B has no filesystems)
    QUIESCE = 1 << 4    # QUIESCE / RESUME
    SHUTDOWN = 1 << 5   # SHUTDOWN powers the guest off
    CONFIG = 1 << 6     # CONFIG hostname, environment, clock
    PORTAL = 1 << 7     # a Portal region is mapped (CONFIG portal_device)
    PING = 1 << 8       # PING / PONG
    SYSTEM = 1 << 9     # CONFIG hostname and clock change the whole system (the agent owns its OS)
    PROGRAMS = 1 << 10  # EXEC of argv[0] PROGRAM_NAME runs the conformance program (spec/programs.py)


class AgentKind(enum.IntEnum):
    """Who is speaking in HELLO."""
    HOST = 0
    REFERENCE = 1      # wslx.agentx.reference_agent (pure Python)
    LINUX_INIT = 2     # guest/init, PID 1 of a Linux guest
    TRACKB = 3         # guest/trackb-kernel


class ErrorCode(enum.IntEnum):
    """ERROR codes: Linux errno values, so a Linux agent sends errno as-is."""
    EPERM = 1
    ENOENT = 2
    ESRCH = 3
    EINTR = 4
    EIO = 5
    E2BIG = 7
    ENOEXEC = 8
    EBADF = 9
    ECHILD = 10
    EAGAIN = 11
    ENOMEM = 12
    EACCES = 13
    EBUSY = 16
    EEXIST = 17
    ENOTDIR = 20
    EISDIR = 21
    EINVAL = 22
    ENOSPC = 28
    EPIPE = 32            # stdin of that process is closed
    ENOSYS = 38           # unknown message type
    EPROTO = 71           # malformed payload, or a message in the wrong direction
    EBADMSG = 74          # bad magic, header CRC or payload CRC
    EMSGSIZE = 90         # payload_len above MAX_PAYLOAD
    EPROTONOSUPPORT = 93  # no common protocol version
    EOPNOTSUPP = 95       # capability not offered by this agent
    ETIMEDOUT = 110
    ECANCELED = 125       # refused while quiesced


class Stream(enum.IntEnum):
    """STDIO stream ids."""
    STDIN = 0
    STDOUT = 1
    STDERR = 2


class StdioFlag(enum.IntFlag):
    """STDIO frame flags."""
    EOF = 0x01  # no more data on this stream; data may be empty


class StdinAckFlag(enum.IntFlag):
    """STDIN_ACK flags. Without flags the bytes were written to the process."""
    CLOSED = 0x01   # the process's stdin is closed (or it ended): these bytes, and any sent later, are dropped
    DROPPED = 0x02  # these bytes exceeded STDIN_WINDOW and were dropped


class ExecFlag(enum.IntFlag):
    """EXEC flags."""
    STDIN_PIPE = 0x01        # stdin is fed by STDIO frames (else /dev/null)
    STDERR_TO_STDOUT = 0x02  # merge stderr into stdout


class Signal(enum.IntEnum):
    """Linux signal numbers (x86-64, as <signal.h>) that SIGNAL and EXIT carry."""
    SIGHUP = 1
    SIGINT = 2
    SIGQUIT = 3
    SIGILL = 4
    SIGTRAP = 5
    SIGABRT = 6
    SIGBUS = 7
    SIGFPE = 8
    SIGKILL = 9
    SIGUSR1 = 10
    SIGSEGV = 11
    SIGUSR2 = 12
    SIGPIPE = 13
    SIGALRM = 14
    SIGTERM = 15
    SIGSTKFLT = 16
    SIGCHLD = 17
    SIGCONT = 18
    SIGSTOP = 19
    SIGTSTP = 20
    SIGTTIN = 21
    SIGTTOU = 22
    SIGURG = 23
    SIGXCPU = 24
    SIGXFSZ = 25
    SIGVTALRM = 26
    SIGPROF = 27
    SIGWINCH = 28
    SIGIO = 29
    SIGPWR = 30
    SIGSYS = 31


class ExitHow(enum.IntEnum):
    """How a process ended (EXIT)."""
    EXITED = 0    # code = exit status
    SIGNALED = 1  # code = signal number


class MountFlag(enum.IntFlag):
    """MOUNT flags."""
    RDONLY = 0x01


class UnmountFlag(enum.IntFlag):
    """UNMOUNT flags."""
    DETACH = 0x01  # lazy unmount (MNT_DETACH)


class ShutdownMode(enum.IntEnum):
    """SHUTDOWN modes."""
    POWEROFF = 0
    REBOOT = 1


ENUMS = [FrameFlag, MsgType, Capability, AgentKind, ErrorCode, Stream, StdioFlag, StdinAckFlag, ExecFlag,
         Signal, ExitHow, MountFlag, UnmountFlag, ShutdownMode, ProgramStep]


@dataclasses.dataclass(frozen=True)
class Message:
    type: MsgType
    direction: str          # "host->agent", "agent->host", "both"
    kind: str               # "request", "reply", "event"
    body: Struct
    doc: str
    replies: tuple = ()     # reply types a request can get (ERROR always possible)
    capability: Capability | None = None   # needed by the agent to accept it
    example: dict = dataclasses.field(default_factory=dict)  # golden sample body

    @property
    def name(self) -> str:
        return self.type.name.lower()


Empty = Struct()

HelloBody = Struct(
    "version_min" / Int16ul * "lowest protocol version spoken",
    "version_max" / Int16ul * "highest protocol version spoken",
    "version_selected" / Int16ul * "0 in announcements; the chosen version in a reply",
    "agent_kind" / Int16ul * "AgentKind",
    "capabilities" / Int64ul * "Capability bits",
    "max_payload" / Int32ul * "largest payload this side accepts",
    "uptime_ms" / Int32ul * "guest uptime when sent (boot-time measurement)",
    "name" / BoundedString(64) * "agent implementation name and version",
    "os_release" / BoundedString(256) * "kernel or OS release string",
)

ConfigBody = Struct(
    "clock_realtime_ns" / Int64ul * "set CLOCK_REALTIME to this (0: leave the clock)",
    "portal_size" / Int64ul * "bytes of the Portal region to map (0: no Portal)",
    "hostname" / BoundedString(64) * "new hostname ('' keeps it)",
    "env" / BoundedStringArray(ENV_MAX_COUNT, ENV_ITEM_MAX_LEN) * "KEY=VALUE defaults for every EXEC",
    "portal_device" / BoundedString(256) * "device of the Portal region, e.g. /dev/pmem0 ('' none)",
)

MountBody = Struct(
    "flags" / Int32ul * "MountFlag bits",
    "fstype" / BoundedString(64) * "filesystem type, e.g. tmpfs, ext4, virtiofs",
    "source" / BoundedString(PATH_MAX_LEN) * "device or source",
    "target" / BoundedString(PATH_MAX_LEN) * "mount point, created if missing",
    "options" / BoundedString(PATH_MAX_LEN) * "filesystem-specific options",
)

UnmountBody = Struct(
    "flags" / Int32ul * "UnmountFlag bits",
    "target" / BoundedString(PATH_MAX_LEN) * "mount point",
)

ExecBody = Struct(
    "flags" / Int32ul * "ExecFlag bits",
    "argv" / BoundedStringArray(ARGV_MAX_COUNT, PATH_MAX_LEN) * "argv[0] is the program; PATH is searched",
    "env" / BoundedStringArray(ENV_MAX_COUNT, ENV_ITEM_MAX_LEN) * "KEY=VALUE, added to the CONFIG defaults",
    "cwd" / BoundedString(PATH_MAX_LEN) * "working directory ('' means /)",
)

StdioBody = Struct(
    "pid" / Int32ul * "process id from EXEC_STARTED",
    "stream" / Int8ul * "Stream",
    "flags" / Int8ul * "StdioFlag bits",
    "_reserved" / Reserved(2),
    "data" / BoundedBytes(STDIO_MAX_DATA) * "bytes of the stream",
)

SignalBody = Struct(
    "pid" / Int32ul * "process id from EXEC_STARTED",
    "signo" / Int32ul * "Linux signal number (Signal), 1..SIGNAL_MAX (else EINVAL)",
)

QuiesceBody = Struct(
    "timeout_ms" / Int32ul * "reserved for draining in-flight Portal work (agents without Portal producers ignore it)",
)

ShutdownBody = Struct(
    "mode" / Int32ul * "ShutdownMode",
    "grace_ms" / Int32ul * "time between SIGTERM and SIGKILL of children, <= SHUTDOWN_GRACE_MAX_MS (else EINVAL)",
)

PingBody = Struct("data" / BoundedBytes(PING_MAX_DATA) * "echoed in PONG")

ErrorBody = Struct(
    "code" / Int32sl * "ErrorCode (errno value)",
    "request_type" / Int16ul * "MsgType of the failed request (0 if unknown)",
    "_reserved" / Reserved(2),
    "message" / BoundedString(ERROR_MESSAGE_MAX_LEN) * "human-readable reason",
)

ExecStartedBody = Struct("pid" / Int32ul * "process id for STDIO, SIGNAL and EXIT")

ExitBody = Struct(
    "pid" / Int32ul * "process id",
    "how" / Int8ul * "ExitHow",
    "_reserved" / Reserved(3),
    "code" / Int32sl * "exit status or signal number (Signal)",
)

StdinAckBody = Struct(
    "pid" / Int32ul * "process id",
    "bytes" / Int32ul * "stdin bytes that left the agent's queue or were refused: the host may send that many more",
    "flags" / Int32ul * "StdinAckFlag bits: why bytes were not delivered, if they were not",
)

QuiesceCompleteBody = Struct(
    "flushed_regions" / Int32ul * "pmem regions flushed",
    "running_processes" / Int32ul * "processes still running (they are not frozen)",
    "elapsed_ns" / Int64ul * "time the quiesce took",
)

_ERR = (MsgType.ERROR,)
MESSAGES: list[Message] = [
    Message(MsgType.HELLO, "both", "request", HelloBody,
            "Sent by the agent, unsolicited with request_id 0, as soon as the channel is up. "
            "The host may send HELLO as a request with its own range; the agent replies with HELLO "
            "(REPLY flag) carrying version_selected, or ERROR EPROTONOSUPPORT when the ranges are disjoint. "
            "A host HELLO with request_id 0 asks the agent to announce itself again (a host reattaching to a "
            "serial line, where the agent cannot see it come back): the agent sends an unsolicited HELLO.",
            replies=(MsgType.HELLO,) + _ERR,
            example=dict(version_min=1, version_max=1, version_selected=0, agent_kind=AgentKind.LINUX_INIT,
                         capabilities=int(Capability.EXEC | Capability.STDIN | Capability.PING),
                         max_payload=MAX_PAYLOAD, uptime_ms=812, name="wslx-init 0.1", os_release="6.1.0-cloud-amd64")),
    Message(MsgType.CONFIG, "host->agent", "request", ConfigBody,
            "Configure hostname, default environment, clock and Portal parameters.",
            replies=(MsgType.OK,) + _ERR, capability=Capability.CONFIG,
            example=dict(clock_realtime_ns=1764129600000000000, portal_size=0, hostname="wslx-guest",
                         env=["LANG=C.UTF-8", "TERM=dumb"], portal_device="")),
    Message(MsgType.MOUNT, "host->agent", "request", MountBody,
            "Mount a filesystem; the target directory is created if missing.",
            replies=(MsgType.OK,) + _ERR, capability=Capability.MOUNT,
            example=dict(flags=0, fstype="tmpfs", source="none", target="/mnt/scratch", options="size=8m")),
    Message(MsgType.UNMOUNT, "host->agent", "request", UnmountBody,
            "Unmount a filesystem.", replies=(MsgType.OK,) + _ERR, capability=Capability.MOUNT,
            example=dict(flags=0, target="/mnt/scratch")),
    Message(MsgType.EXEC, "host->agent", "request", ExecBody,
            "Start a process. The reply EXEC_STARTED carries its pid; STDIO frames carry its output "
            "(each stream ends with an EOF frame) and one EXIT event reports how it ended. "
            "A program that cannot be started gets ERROR with its errno (ENOENT, EACCES...). "
            f"With capability PROGRAMS, argv[0] {PROGRAM_NAME!r} runs the conformance program (see below). "
            "While quiesced the agent answers ECANCELED.",
            replies=(MsgType.EXEC_STARTED,) + _ERR, capability=Capability.EXEC,
            example=dict(flags=int(ExecFlag.STDIN_PIPE), argv=["/bin/sh", "-c", "echo hi"], env=["A=1"], cwd="/")),
    Message(MsgType.STDIO, "both", "event", StdioBody,
            "Bytes of a process's stdin (host->agent) or stdout/stderr (agent->host). No reply; "
            "errors for bad stdin frames come back as ERROR with request_id 0. Stdin is credit-based: a host "
            "keeps at most STDIN_WINDOW bytes per process not yet acknowledged by STDIN_ACK; data beyond "
            "the window is dropped (STDIN_ACK DROPPED, and ERROR EAGAIN). Unknown flag bits get EINVAL; an "
            "EOF-only frame for an already closed stdin is a no-op.",
            capability=Capability.EXEC,
            example=dict(pid=42, stream=Stream.STDOUT, flags=0, data=b"hi\n")),
    Message(MsgType.SIGNAL, "host->agent", "request", SignalBody,
            "Deliver a signal to the process group of a process this agent started (each EXEC starts a new "
            "session, so the signal reaches its children too, e.g. those of the conformance program's `bg` step); "
            "ESRCH otherwise.",
            replies=(MsgType.OK,) + _ERR, capability=Capability.SIGNAL,
            example=dict(pid=42, signo=Signal.SIGTERM)),
    Message(MsgType.QUIESCE, "host->agent", "request", QuiesceBody,
            "Prepare for a snapshot: stop accepting EXEC, pause producers (process output stays in its "
            "pipes, built-ins and the Portal service are not stepped) so that QUIESCE_COMPLETE is the last "
            "frame until RESUME, sync filesystems, flush pmem, then reply QUIESCE_COMPLETE. Idempotent.",
            replies=(MsgType.QUIESCE_COMPLETE,) + _ERR, capability=Capability.QUIESCE,
            example=dict(timeout_ms=5000)),
    Message(MsgType.RESUME, "host->agent", "request", Empty,
            "Undo QUIESCE. Allowed when not quiesced (no-op).",
            replies=(MsgType.OK,) + _ERR, capability=Capability.QUIESCE),
    Message(MsgType.SHUTDOWN, "host->agent", "request", ShutdownBody,
            "Terminate children (SIGTERM, then SIGKILL after grace_ms), sync, reply OK, power off.",
            replies=(MsgType.OK,) + _ERR, capability=Capability.SHUTDOWN,
            example=dict(mode=ShutdownMode.POWEROFF, grace_ms=2000)),
    Message(MsgType.PING, "host->agent", "request", PingBody,
            "Liveness and round-trip check; the data comes back in PONG.",
            replies=(MsgType.PONG,) + _ERR, capability=Capability.PING,
            example=dict(data=b"\x00\x01ping")),
    Message(MsgType.OK, "agent->host", "reply", Empty, "Success with nothing to report."),
    Message(MsgType.ERROR, "agent->host", "reply", ErrorBody,
            "Failure of the request with this request_id, or (request_id 0) of a frame that could "
            "not be attributed: bad magic, CRC, size, unknown type.",
            example=dict(code=ErrorCode.ENOENT, request_type=MsgType.EXEC, message="execve /nope: No such file or directory")),
    Message(MsgType.PONG, "agent->host", "reply", PingBody, "Answer to PING.",
            example=dict(data=b"\x00\x01ping")),
    Message(MsgType.EXEC_STARTED, "agent->host", "reply", ExecStartedBody, "The process started.",
            example=dict(pid=42)),
    Message(MsgType.EXIT, "agent->host", "event", ExitBody,
            "A process started by EXEC ended. Sent after the EOF of its stdout and stderr. If background "
            "children keep those streams open, the agent waits EXIT_EOF_GRACE_MS after the reap, then "
            "closes its ends, sends the EOFs and EXIT (later output of those children is lost).",
            example=dict(pid=42, how=ExitHow.EXITED, code=3)),
    Message(MsgType.QUIESCE_COMPLETE, "agent->host", "reply", QuiesceCompleteBody,
            "The agent is quiesced.",
            example=dict(flushed_regions=1, running_processes=0, elapsed_ns=1500000)),
    Message(MsgType.STDIN_ACK, "agent->host", "event", StdinAckBody,
            "Stdin flow control: returns credit for STDIO stdin bytes the agent no longer holds. Every stdin "
            "byte the host sends is acknowledged exactly once while the connection lasts: written (no flag), "
            "dropped because stdin is closed (CLOSED), or refused as over the window (DROPPED).",
            example=dict(pid=42, bytes=65536, flags=0)),
]

BY_TYPE: dict[int, Message] = {int(m.type): m for m in MESSAGES}

assert len(BY_TYPE) == len(MESSAGES) == len(MsgType), "every MsgType has exactly one Message"
