"""AgentX wire protocol, versions 1 and 2: the single source of truth.

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
Events (STDIO, EXIT, STDIN_ACK, OUTPUT_ACK) and unsolicited HELLO and ERROR frames
carry request_id 0.

Version 2 adds output that is never lost: STDIO carries the byte offset of its
data within its stream, the host acknowledges what it received (OUTPUT_ACK), and
an agent keeps what is not acknowledged across reconnects (see "Connection
lifetime"). A connection starts in version 1; HELLO negotiates, so version-1
hosts and agents keep working unchanged.
"""
from __future__ import annotations

import dataclasses
import enum

from construct import Int8ul, Int16ul, Int32ul, Int64ul, Int32sl, Struct

from .fields import BoundedBytes, BoundedString, BoundedStringArray, Reserved, size_range
from .programs import PROGRAM_NAME, ProgramStep  # the conformance program (Capability.PROGRAMS)

PROTOCOL_NAME = "AgentX"
MAGIC = 0x58544741          # bytes "AGTX" on the wire
VERSION_MIN = 1
VERSION_MAX = 2
SESSION_START_VERSION = 1   # every connection starts in this version, until HELLO negotiates
HEADER_SIZE = 24
MAX_PAYLOAD = 65536         # hard limit; a longer frame is rejected unread
MAX_FRAME = HEADER_SIZE + MAX_PAYLOAD
MAX_PAYLOAD_MIN = 1024      # smallest max_payload a host HELLO may set (every reply but PONG fits whole)
STDIO_MAX_DATA = 61440      # per STDIO frame
PING_MAX_DATA = 61440
STDIN_WINDOW = 262144       # stdin bytes a host may have in flight per process (see STDIN_ACK)
OUTPUT_BUFFER = 1 << 17     # v2: unacknowledged bytes an agent holds per output stream; then the producer blocks
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
    OUTPUT_ACK = 0x000C  # version 2
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


# Processes an agent runs at once (EXEC beyond it: ERROR EAGAIN). In a version-2 session a process
# keeps its slot until the host acknowledges its EXIT (OUTPUT_ACK flag EXIT).
PROCESS_MAX = {AgentKind.REFERENCE: 64, AgentKind.LINUX_INIT: 64, AgentKind.TRACKB: 8}


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
    EPIPE = 32
    ENOSYS = 38
    EPROTO = 71
    EBADMSG = 74
    EMSGSIZE = 90
    EPROTONOSUPPORT = 93
    EOPNOTSUPP = 95
    ETIMEDOUT = 110
    ECANCELED = 125


ERRNO_WHEN_NOTE = """The table lists every errno the reference and Track B agents send, and every one a Linux
agent sends for protocol reasons (the conformance suite pins those). For EXEC, MOUNT, UNMOUNT and CONFIG a
Linux agent (LINUX_INIT) also passes on the errno of the failing system call, which can be any Linux errno
(ENODEV for an unknown filesystem type, ENAMETOOLONG, ELOOP...): a host accepts codes it does not know."""
ERRNO_WHEN = {  # when each ERROR code is sent
    ErrorCode.EPERM: "MOUNT/UNMOUNT/CONFIG clock or hostname: not permitted (system call errno)",
    ErrorCode.ENOENT: "EXEC: program, empty argv[0] or cwd not found; MOUNT: source missing",
    ErrorCode.ESRCH: "SIGNAL, STDIO, OUTPUT_ACK: no such process of this agent",
    ErrorCode.EINTR: "a system call was interrupted (passed on by a Linux agent)",
    ErrorCode.EIO: "I/O error of the guest (pmem flush, a failed system call without errno)",
    ErrorCode.E2BIG: "EXEC argv+env, CONFIG env: larger than the agent can hold",
    ErrorCode.ENOEXEC: "EXEC: not an executable format",
    ErrorCode.EBADF: "a system call on a bad descriptor (passed on by a Linux agent)",
    ErrorCode.ECHILD: "a wait found no child (passed on by a Linux agent)",
    ErrorCode.EAGAIN: "EXEC beyond PROCESS_MAX; STDIO stdin beyond STDIN_WINDOW",
    ErrorCode.ENOMEM: "the agent could not allocate memory for the request",
    ErrorCode.EACCES: "EXEC: program or cwd not executable/searchable",
    ErrorCode.EBUSY: "MOUNT/UNMOUNT: target busy",
    ErrorCode.EEXIST: "MOUNT: target exists and is not a directory",
    ErrorCode.ENOTDIR: "EXEC cwd, MOUNT target: a path component is not a directory",
    ErrorCode.EISDIR: "EXEC: argv[0] is a directory",
    ErrorCode.EINVAL: "a field value out of range: flags, signo, grace_ms, mode, Portal fields, offsets, "
                      "HELLO max_payload below MAX_PAYLOAD_MIN",
    ErrorCode.ENOSPC: "MOUNT: no space for the target directory",
    ErrorCode.EPIPE: "STDIO: stdin of that process is closed",
    ErrorCode.ENOSYS: "unknown message type (or one the frame's version does not have)",
    ErrorCode.EPROTO: "malformed payload, a message in the wrong direction, request_id rules",
    ErrorCode.EBADMSG: "bad magic, header CRC or payload CRC",
    ErrorCode.EMSGSIZE: "payload_len above MAX_PAYLOAD; PING whose PONG would exceed the host's max_payload",
    ErrorCode.EPROTONOSUPPORT: "frame version outside VERSION_MIN..VERSION_MAX; HELLO: no common version",
    ErrorCode.EOPNOTSUPP: "capability not offered by this agent",
    ErrorCode.ETIMEDOUT: "QUIESCE: pmem flush did not finish in time",
    ErrorCode.ECANCELED: "EXEC refused while quiesced",
}
assert set(ERRNO_WHEN) == set(ErrorCode), "every ErrorCode says when it is sent"


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


class OutputAckFlag(enum.IntFlag):
    """OUTPUT_ACK flags."""
    EXIT = 0x01  # the host has the process's EXIT: the agent forgets the process (it sends nothing more for it)


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


ENUMS = [FrameFlag, MsgType, Capability, AgentKind, ErrorCode, Stream, StdioFlag, StdinAckFlag, OutputAckFlag, ExecFlag,
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
    since: int = 1          # first protocol version that has this message (older frames: ENOSYS)
    legacy: dict = dataclasses.field(default_factory=dict)   # {version: body} where an older version differs

    def body_for(self, version: int) -> Struct:
        """The payload layout in frames of this version: legacy[k] serves versions up to k."""
        older = [k for k in sorted(self.legacy) if version <= k]
        return self.legacy[older[0]] if older else self.body

    @property
    def versions(self) -> list[int]:
        """Protocol versions that have this message."""
        return list(range(self.since, VERSION_MAX + 1))

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
    "max_payload" / Int32ul * "largest payload this side accepts; the host's binds the agent (>= MAX_PAYLOAD_MIN)",
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
    "offset" / Int64ul * "position of data[0] in its stream (bytes since the process started); v2",
    "data" / BoundedBytes(STDIO_MAX_DATA) * "bytes of the stream",
)

StdioBodyV1 = Struct(
    "pid" / Int32ul * "process id from EXEC_STARTED",
    "stream" / Int8ul * "Stream",
    "flags" / Int8ul * "StdioFlag bits",
    "_reserved" / Reserved(2),
    "data" / BoundedBytes(STDIO_MAX_DATA) * "bytes of the stream",
)

OutputAckBody = Struct(
    "pid" / Int32ul * "process id",
    "flags" / Int32ul * "OutputAckFlag bits",
    "stdout_bytes" / Int64ul * "stdout bytes the host has received (cumulative, from offset 0)",
    "stderr_bytes" / Int64ul * "stderr bytes the host has received",
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

# Prose sections of docs/agentx-protocol.md (rendered in this order after the frame header).
SECTIONS: list[tuple[str, str]] = [
    ("Order of checks", """An agent checks each frame from the host in this order and answers the first failure with one
ERROR (request_id 0 when the header could not be trusted or the frame is an event), then goes on serving:

1. magic and header CRC: EBADMSG. The header, and so its length, is untrusted: the receiver scans for the
   next magic from the byte after the bad header's first byte, and reports one EBADMSG per run of garbage.
2. version outside VERSION_MIN..VERSION_MAX: EPROTONOSUPPORT. The header is intact, so its payload is
   skipped whole if it arrives with a matching payload CRC; otherwise scanning resumes after the header.
3. unknown flag bits: EPROTO (the payload as for 2).
4. payload_len above MAX_PAYLOAD: EMSGSIZE. The payload is not skipped (the length is not believed):
   scanning resumes right after the 24-byte header, so frames that follow are found.
5. payload CRC: EBADMSG with the frame's request_id. Scanning resumes right after the header (a header
   that lied about its length cannot swallow the frames after it).
6. type unknown, or not in the frame's version (OUTPUT_ACK in a version-1 frame): ENOSYS.
7. direction: a type only agents send (OK, ERROR, PONG, EXEC_STARTED, EXIT, QUIESCE_COMPLETE,
   STDIN_ACK), or any frame with the REPLY flag: EPROTO.
8. capability: a type whose capability the agent does not advertise: EOPNOTSUPP (before the body
   is looked at, so a MOUNT to Track B gets EOPNOTSUPP whatever its payload).
9. request_id: a request (not HELLO) with request_id 0: EPROTO, and it is not executed.
10. payload layout: EPROTO (fixed part short, a bound exceeded, trailing bytes, NUL or invalid UTF-8,
    non-zero reserved bytes).
11. field values (unknown flag bits of EXEC, STDIO, MOUNT, UNMOUNT, OUTPUT_ACK; signo; grace_ms; mode;
    Portal fields; offsets; HELLO max_payload below MAX_PAYLOAD_MIN): EINVAL, then the message's own
    errors (ESRCH, ENOENT, EAGAIN, HELLO's EPROTONOSUPPORT, PING's EMSGSIZE...).
"""),
    ("Connection lifetime", """A connection is one host attached to the agent's channel (a vsock or Unix connection, a virtio-serial
port opened by the host, or, on a serial line where the agent cannot see the host, the span between two
host HELLOs with request_id 0). A host the agent may not see arrive starts with HELLO request_id 0: on a
serial line, and on Linux's virtio-serial port, where a quick close and reopen leave no trace and the new
host's first bytes can reach the agent before it notices the old host left. What the agent reads after
that HELLO is the new host's, and it is answered on the new connection, that HELLO's reply first.

* **HELLO first.** On every new connection the agent's first frame is its unsolicited HELLO. Bytes of a
  frame the previous host left unfinished are dropped, in both directions: the agent discards what the
  old host sent, and never continues an old frame on the new connection.
* **Versions.** Every connection starts in version SESSION_START_VERSION (1): the agent's frames are
  version 1 until the host sends HELLO as a request; the reply is the first frame in the selected
  version, and the host then sends in that version. Agents decode any frame by its own version field,
  so a request pipelined behind the HELLO in version 1 is still served. A version-1 host that never
  negotiates gets exactly the version-1 protocol.
* **max_payload binds.** Every connection starts with the limit MAX_PAYLOAD. A host HELLO (request or
  request_id 0) sets the largest payload the agent sends on this connection to the smaller of its
  max_payload and the agent's own (MAX_PAYLOAD). A max_payload below MAX_PAYLOAD_MIN gets ERROR EINVAL and
  the HELLO is otherwise ignored (no negotiation, no new session, the limit stays). Under the limit the
  agent splits STDIO output into more frames (offsets stay contiguous, nothing is lost), answers a PING
  whose PONG would not fit with ERROR EMSGSIZE, and every other frame it sends fits MAX_PAYLOAD_MIN.
  A new connection goes back to MAX_PAYLOAD until its own HELLO.
* **Processes survive a disconnect.** Nothing is killed when the host goes; SIGNAL, STDIO and
  OUTPUT_ACK for those pids work on the next connection.
* **Output is held, never dropped.** While no host is connected, or the host does not read, each output
  stream buffers up to OUTPUT_BUFFER bytes not yet acknowledged; past that the agent stops reading the
  process's output and the process blocks, as on a full pipe. EOF and EXIT wait behind the data.
* **Held output waits for the host's first request.** On a new connection the agent sends process events
  (STDIO, EXIT) only after the host's first request, so a version-2 host can negotiate before the replay.
* **Replay (version 2).** The agent keeps each stream's bytes until OUTPUT_ACK covers them. After a
  reconnect and the negotiation it sends again, per process, every byte from the acknowledged offset,
  the EOFs and the EXIT not yet acknowledged. Offsets let the host drop duplicates and prove there is no
  gap.
* **Version 1.** Bytes count as delivered once the agent hands them to the channel: output produced while
  no host was connected still reaches the next host, but bytes the old connection did not finish
  writing are lost with it, and nothing marks the loss. Use version 2.
* **Stdin credit** is per connection: STDIN_ACKs for bytes an earlier host sent go to nobody, and the
  new host's STDIN_WINDOW starts empty.
* **QUIESCE** is state of the agent, not of the connection: an agent quiesced by one host stays
  quiesced (EXEC gets ECANCELED) for the next until RESUME.
"""),
]

# Every limit the doc names, with what happens at it (the doc renders the values from the constants).
LIMITS: list[tuple[str, str]] = [
    ("MAX_PAYLOAD", "a longer payload_len gets EMSGSIZE; every agent accepts this much, and sends at most this much "
                    "until the host's HELLO sets a smaller max_payload, which binds (see Connection lifetime)"),
    ("MAX_PAYLOAD_MIN", "a host HELLO with a smaller max_payload gets EINVAL and changes nothing; every agent frame "
                        "but STDIO (split) and PONG (EMSGSIZE) fits in it"),
    ("STDIO_MAX_DATA", "a longer STDIO data field is malformed (EPROTO)"),
    ("PING_MAX_DATA", "a longer PING data field is malformed (EPROTO)"),
    ("STDIN_WINDOW", "stdin bytes beyond it, per process and connection, are dropped: STDIN_ACK DROPPED + ERROR EAGAIN"),
    ("OUTPUT_BUFFER", "per output stream (two per process): at most this many bytes are held unacknowledged (v2) or unsent (v1), then the process is blocked"),
    ("EXIT_EOF_GRACE_MS", "after the reap, the agent stops waiting for EOFs held open by background children"),
    ("SHUTDOWN_GRACE_MAX_MS", "SHUTDOWN grace_ms above it: EINVAL; children get SIGTERM, then SIGKILL after grace_ms"),
    ("SIGNAL_MAX", "SIGNAL signo outside 1..SIGNAL_MAX: EINVAL"),
    ("PROCESS_MAX", "EXEC beyond it: EAGAIN (per agent kind)"),
    ("ARGV_MAX_COUNT", "more argv items: EPROTO"),
    ("ENV_MAX_COUNT", "more env items (EXEC or CONFIG): EPROTO"),
    ("PATH_MAX_LEN", "a longer argv item, cwd or MOUNT path: EPROTO"),
    ("ENV_ITEM_MAX_LEN", "a longer env item: EPROTO"),
    ("ERROR_MESSAGE_MAX_LEN", "agents truncate ERROR messages to it"),
]

_ERR = (MsgType.ERROR,)
MESSAGES: list[Message] = [
    Message(MsgType.HELLO, "both", "request", HelloBody,
            "Sent by the agent, unsolicited with request_id 0, as soon as the channel is up. "
            "The host may send HELLO as a request with its own range; the agent replies with HELLO "
            "(REPLY flag) carrying version_selected, or ERROR EPROTONOSUPPORT when the ranges are disjoint. "
            "A host HELLO with request_id 0 asks the agent to announce itself again (a host reattaching to a "
            "serial line, where the agent cannot see it come back): the agent treats it as a new connection "
            "(the session goes back to version 1) and sends an unsolicited HELLO. The HELLO body is the same "
            "in every version. The reply to a HELLO request is the first frame in the selected version. "
            "The host's max_payload binds the agent for the rest of the connection (at least MAX_PAYLOAD_MIN, "
            "else ERROR EINVAL and the HELLO changes nothing): see 'Connection lifetime'. The reply itself "
            "already keeps to it.",
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
            "EOF-only frame for an already closed stdin is a no-op. "
            "Version 2 adds `offset`, the position of data[0] in its stream. Output: each stream's frames "
            "are contiguous (offset = previous offset + previous data length), the EOF frame carries the "
            "stream's final length, and a frame sent again after a reconnect repeats its offset, so the host "
            "drops bytes below what it has and a frame above it is a gap (a broken agent). Stdin: offset must "
            "equal the stdin bytes the agent accepted so far for that process (queued or written; bytes "
            "refused as DROPPED do not count); otherwise the frame is refused with ERROR EINVAL and STDIN_ACK "
            "DROPPED. A version-1 frame has no offset and is not checked. The agent splits output so that no "
            "STDIO payload exceeds the host's HELLO max_payload.",
            capability=Capability.EXEC, legacy={1: StdioBodyV1},
            example=dict(pid=42, stream=Stream.STDOUT, flags=0, offset=4096, data=b"hi\n")),
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
            "Liveness and round-trip check; the data comes back in PONG. A PING whose PONG payload would exceed "
            "the host's max_payload gets ERROR EMSGSIZE instead.",
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
            "closes its ends, sends the EOFs and EXIT (later output of those children is not read: the "
            "stream has ended). In version 2 the EXIT is sent again after a reconnect until OUTPUT_ACK "
            "with flag EXIT acknowledges it.",
            example=dict(pid=42, how=ExitHow.EXITED, code=3)),
    Message(MsgType.QUIESCE_COMPLETE, "agent->host", "reply", QuiesceCompleteBody,
            "The agent is quiesced.",
            example=dict(flushed_regions=1, running_processes=0, elapsed_ns=1500000)),
    Message(MsgType.STDIN_ACK, "agent->host", "event", StdinAckBody,
            "Stdin flow control: returns credit for STDIO stdin bytes the agent no longer holds. Every stdin "
            "byte the host sends is acknowledged exactly once while the connection lasts: written (no flag), "
            "dropped because stdin is closed (CLOSED), or refused as over the window (DROPPED).",
            example=dict(pid=42, bytes=65536, flags=0)),
    Message(MsgType.OUTPUT_ACK, "host->agent", "event", OutputAckBody,
            "Version 2. The host has received this process's stdout and stderr up to these offsets (cumulative "
            "counts: an ack below an earlier one changes nothing). The agent holds each stream's bytes until "
            "they are acknowledged, at most OUTPUT_BUFFER per stream (an agent may stop earlier); at its bound it stops reading the "
            "process's output, so the process blocks as on a full pipe (nothing is dropped). A host should "
            "acknowledge at least every OUTPUT_BUFFER / 2 bytes of a stream, and must send flag EXIT once it "
            "has the EXIT: until then the process keeps its slot (PROCESS_MAX). Errors (ERROR, request_id 0): "
            "ESRCH for a pid the agent does not hold, EINVAL for unknown flag bits, an offset beyond what the "
            "agent has sent, or EXIT before the EXIT was sent.",
            capability=Capability.EXEC, since=2,
            example=dict(pid=42, flags=0, stdout_bytes=65536, stderr_bytes=0)),
]

BY_TYPE: dict[int, Message] = {int(m.type): m for m in MESSAGES}

assert len(BY_TYPE) == len(MESSAGES) == len(MsgType), "every MsgType has exactly one Message"


def stdio_data_max(version: int, max_payload: int) -> int:
    """The most data one STDIO frame of this version carries within a payload limit."""
    return min(STDIO_MAX_DATA, max_payload - size_range(BY_TYPE[MsgType.STDIO].body_for(version))[0])


# Under a host's max_payload the agent splits STDIO and refuses a PING whose PONG would not fit;
# every other frame it sends must fit MAX_PAYLOAD_MIN whole.
assert all(size_range(m.body_for(v))[1] <= MAX_PAYLOAD_MIN for m in MESSAGES if m.direction != "host->agent"
           and m.type not in (MsgType.STDIO, MsgType.PONG) for v in m.versions), "MAX_PAYLOAD_MIN too small"
assert MAX_PAYLOAD_MIN <= MAX_PAYLOAD and all(stdio_data_max(v, MAX_PAYLOAD_MIN) > 0 for v in BY_TYPE[MsgType.STDIO].versions)

