"""Gemini: the three ports and the call/upcall records carried in Portal spans, versions 1 and 2.

Ports (seed note 5.3), one number each, mapped per transport:

    port      number  role                               vsock   hv_sock service id                       QEMU virtio-serial
    CONTROL   50010   AgentX control (setup, EXEC, ...)  50010   0000c35a-facb-11e6-bd58-64006a7986d3     org.wslx.agentx
    SIGNAL    50011   Portal doorbells, both ways        50011   0000c35b-facb-11e6-bd58-64006a7986d3     org.wslx.gemini.signal
    UPCALL    50012   wake-ups for the UPCALL ring       50012   0000c35c-facb-11e6-bd58-64006a7986d3     org.wslx.gemini.upcall

An hv_sock service id is the vsock port in the first 32 bits (little-endian
data1) of the template GUID 00000000-facb-11e6-bd58-64006a7986d3, as Linux's
hyperv_transport.c maps them. Who uses which: Track B under Hyper-V (hvsim
here) dials all three hv_sock ports, the doorbell ports on small rings (2
pages a direction); a Linux guest with a virtio-vsock device opens SIGNAL and
UPCALL as vsock streams to the host (AgentX as its transport chooses); under
plain QEMU, which here has no vsock to the host (no /dev/vhost-vsock), each
port is a named virtio-serial port. The guest dials in every case; a doorbell
stream that closes is dialled again, so the next host agent gets fresh ones.

Signal bytes: a doorbell is one byte, the RingId of the ring that has news for
the reader (SUBMIT host->guest, COMPLETE guest->host and EVENT guest->host on
SIGNAL; UPCALL host->guest on UPCALL). A byte that is not a RingId is counted
and ignored. Doorbells are only hints: the reader always re-polls its rings, so
a lost, duplicated or forged byte costs a poll, never a message. A producer
rings only when the consumer set need_wakeup (docs/portal.md).

Rings. Portal v1 rings are single-producer/single-consumer with fixed
directions. SUBMIT/COMPLETE carry host -> guest requests (the guest's Portal
service: host calls into the guest). Gemini adds the other direction on the
two remaining rings, with its own ops in PortalMsg.op (so a message can never
be mistaken for a Portal request):

    EVENT  (guest -> host)  CALL         a guest call; span = guest-arena span holding a CallHeader
                            UPCALL_DONE  the guest took upcall `cookie`: status OK (queued to a
                                         subscriber), NOSPC (the subscriber's queue was full: dropped)
                                         or NOENT (no subscriber); the host frees the upcall's span
    UPCALL (host -> guest)  REPLY        the answer to call `cookie`: status = Err, result = reply bytes
                                         written at the call's reply_offset, arg = service value
                                         (exec.run: exit status); the span is the call's, echoed
                            UPCALL       host -> guest message; span = host-arena span holding an
                                         UpcallHeader; cookie = upcall sequence number

A call record (in the caller's span, written by the guest, hostile to the host):

    0      CallHeader (32 B)
    32     service name (service_len bytes, [a-z0-9._-], no NUL)
    ..     method name  (method_len bytes, same alphabet)
    ..     args         (args_len bytes: NUL-terminated UTF-8 strings)
    reply_offset .. reply_offset + reply_cap    the host writes the reply here

The host copies the header and names out of the span before looking at them,
checks every length and offset against the span (which it first checks against
the guest arena), and writes only inside [reply_offset, reply_offset + reply_cap)
of that span. Limits: NAME_MAX per name, ARGS_MAX, REPLY_MAX; at most
MAX_INFLIGHT calls per guest are taken off EVENT before their replies are
posted (the rest wait in the guest's ring: host memory stays bounded).

Versions and negotiation. CallHeader.version says how the host answers that
record. Version 1: an error REPLY has result 0 (OVERFLOW: the bytes needed).
Version 2 adds error text: an error REPLY to a record that passed the checks
carries the host's UTF-8 message in the reply area (result = its length, cut
to reply_cap; none when the record itself failed the checks, as its reply
area is not trusted then, and none for OVERFLOW). The host accepts every
version in [VERSION_MIN, VERSION] and answers any other with PROTONOSUPPORT,
arg = its range (VERSION_MIN | VERSION << VERSION_RANGE_SHIFT); never a crash.

A guest learns what the host speaks with the HELLO call, its first call after
attaching: service HELLO_SERVICE, method HELLO_METHOD, always a version-1
record (every host parses it), args the guest's lowest and highest version as
NUL-terminated decimal strings ("1", "2"). The host picks the highest common
version: OK, arg = that version, reply = struct gemini_hello; no common
version: PROTONOSUPPORT, arg = the host's range. A host older than
negotiation answers NOSYS (an unknown service): the guest then speaks version
1. Until the HELLO reply comes the guest writes its lowest version (1); a
guest that never says HELLO (an older one) is served version 1 for as long as
it writes version 1. Upcall records are unchanged by version 2.

Ordering and loss: replies may come in any order (match by cookie). Upcalls of
one topic reach a subscriber in posting order. Each guest subscriber has a
queue of UPCALL_QUEUE_DEPTH upcalls; a full queue drops the new upcall and
reports it to the host with UPCALL_DONE status NOSPC: an upcall is never lost
silently.
"""
from __future__ import annotations

import enum

from construct import Int16ul, Int32ul, Int64ul, Struct

from . import agentx, portal
from .vmbus import HVSOCK_GUID_TEMPLATE
from .fields import Reserved
from .header import Constant, CStruct, HeaderSpec

VERSION = 2                      # the newest call record version (what HELLO offers)
VERSION_MIN = 1                  # the oldest one still accepted (older peers keep working)
ERROR_TEXT_VERSION = 2           # the first version whose error replies carry the host's message
VERSION_RANGE_SHIFT = 16         # a range in a u64 message field: min | max << VERSION_RANGE_SHIFT
HELLO_SERVICE = "gemini"         # the negotiation call: gemini.hello MIN MAX
HELLO_RECORD_VERSION = 1         # the hello call's own record version: one every host parses (a host
                                 # older than hello answers it NOSYS and speaks only this version)
HELLO_METHOD = "hello"
CALL_MAGIC = 0x494E4D47          # the bytes "GMNI"
UPCALL_MAGIC = 0x43505547        # the bytes "GUPC"
NAME_MAX = 64                    # bytes per service, method or topic name
ARGS_MAX = 64 << 10              # bytes of call arguments
REPLY_MAX = 16 << 20             # bytes of one reply
UPCALL_DATA_MAX = 64 << 10       # bytes of one upcall's data
MAX_INFLIGHT = 64                # calls per guest the host holds at once
UPCALL_QUEUE_DEPTH = 16          # upcalls queued per guest subscriber
SUBSCRIBERS_MAX = 8              # guest subscribers at once (Linux init; Track B has its built-in one)
DEFAULT_TIMEOUT_MS = 5000        # a call's deadline when CallHeader.timeout_ms is 0



def _guid_text(raw: bytes) -> str:
    """A GUID's 16 wire bytes (data1..3 little-endian) as text."""
    d1, d2, d3 = (int.from_bytes(raw[a:b], "little") for a, b in ((0, 4), (4, 6), (6, 8)))
    return f"{d1:08x}-{d2:04x}-{d3:04x}-{raw[8:10].hex()}-{raw[10:16].hex()}"


HVSOCK_GUID_SUFFIX = _guid_text(HVSOCK_GUID_TEMPLATE)[9:]   # after data1, which holds the vsock port


class Port(enum.IntEnum):
    """The Gemini ports (seed note 5.3); vsock port numbers, also the hv_sock service ids' data1."""
    CONTROL = agentx.VSOCK_CONTROL_PORT   # AgentX control: setup, EXEC, ...
    SIGNAL = portal.DOORBELL_VSOCK_PORT   # Portal doorbells (SUBMIT, COMPLETE, EVENT)
    UPCALL = 50012                        # UPCALL ring wake-ups


class Transport(enum.Enum):
    VSOCK = "vsock"
    HVSOCK = "hvsock"
    VIRTIO_SERIAL = "virtio-serial"


VIRTIO_SERIAL_NAMES = {
    Port.CONTROL: agentx.VIRTIO_SERIAL_PORT_NAME,
    Port.SIGNAL: "org.wslx.gemini.signal",
    Port.UPCALL: "org.wslx.gemini.upcall",
}


def hvsock_service_id(port: Port) -> str:
    """The hv_sock service GUID of a port (Linux hyperv_transport.c's vsock mapping)."""
    return _guid_text(int(port).to_bytes(4, "little") + HVSOCK_GUID_TEMPLATE[4:])


def port_named(name: str) -> Port | None:
    """The port whose virtio-serial name is `name`, or None (not a Gemini port)."""
    return next((p for p, n in VIRTIO_SERIAL_NAMES.items() if n == name), None)


def endpoint(port: Port, transport: Transport) -> int | str:
    """Where `port` lives on `transport`: a vsock port, an hv_sock service id or a virtio-serial name."""
    port = Port(port)
    if transport is Transport.VSOCK:
        return int(port)
    if transport is Transport.HVSOCK:
        return hvsock_service_id(port)
    return VIRTIO_SERIAL_NAMES[port]


class Op(enum.IntEnum):
    """Gemini messages in PortalMsg.op (EVENT and UPCALL rings); disjoint from the Portal service's ops."""
    CALL = 0x100          # guest -> host (EVENT)
    UPCALL_DONE = 0x101   # guest -> host (EVENT)
    REPLY = 0x102         # host -> guest (UPCALL)
    UPCALL = 0x103        # host -> guest (UPCALL)


class Err(enum.IntEnum):
    """Reply and UPCALL_DONE status (errno values, one set for both sides)."""
    OK = 0
    PERM = 1              # denied: not exported, not allow-listed, path escape
    NOENT = 2             # no such file (fs.*); UPCALL_DONE: no subscriber for the topic
    IO = 5                # the service failed (message in the reply)
    TOOBIG = 7            # args, names or the reply exceed their limit
    FAULT = 14            # bad span: outside the guest arena, lengths or offsets outside it
    BUSY = 16             # more than MAX_INFLIGHT calls
    XDEV = 18             # span of another Portal
    INVAL = 22            # bad header: magic, version, reserved bits, name alphabet, args
    NOSPC = 28            # UPCALL_DONE: subscriber queue full, upcall dropped
    NOSYS = 38            # unknown service or method
    OVERFLOW = 75         # reply larger than reply_cap (result = bytes needed)
    PROTONOSUPPORT = 93   # record version (or HELLO range) not spoken by the host; arg = its range
    TIMEDOUT = 110        # the service did not answer before the call's deadline
    STALE = 116           # span of an older Portal generation


CallHeader = Struct(
    "magic" / Int32ul * "CALL_MAGIC",
    "version" / Int16ul * "VERSION",
    "flags" / Int16ul * "reserved, 0",
    "service_len" / Int16ul * "1..NAME_MAX bytes after the header",
    "method_len" / Int16ul * "1..NAME_MAX bytes after the service",
    "args_len" / Int32ul * "0..ARGS_MAX bytes after the method",
    "reply_offset" / Int32ul * "span offset of the reply area (8-aligned, after the args)",
    "reply_cap" / Int32ul * "bytes of the reply area (<= REPLY_MAX)",
    "timeout_ms" / Int32ul * "deadline for the host service (0: DEFAULT_TIMEOUT_MS)",
    "reserved" / Reserved(4),
)

UpcallHeader = Struct(
    "magic" / Int32ul * "UPCALL_MAGIC",
    "topic_len" / Int16ul * "1..NAME_MAX bytes after the header",
    "flags" / Int16ul * "reserved, 0",
    "data_len" / Int32ul * "0..UPCALL_DATA_MAX bytes after the topic",
    "reserved" / Reserved(4),
)

Hello = Struct(
    "version" / Int16ul * "the version the host picked (also in REPLY.arg)",
    "host_min" / Int16ul * "the host's VERSION_MIN",
    "host_max" / Int16ul * "the host's VERSION",
    "reserved" / Reserved(2),
)

FsStat = Struct(
    "size" / Int64ul * "bytes",
    "mtime_ns" / Int64ul * "modification time, ns since the epoch",
    "mode" / Int32ul * "permission bits (st_mode & 0o7777)",
    "kind" / Int32ul * "FileKind",
)


class FileKind(enum.IntEnum):
    """FsStat.kind."""
    FILE = 1
    DIR = 2


CALL_HEADER_SIZE = 32
UPCALL_HEADER_SIZE = 16
HELLO_SIZE = 8
assert CallHeader.sizeof() == CALL_HEADER_SIZE and UpcallHeader.sizeof() == UPCALL_HEADER_SIZE
assert Hello.sizeof() == HELLO_SIZE


def version_range(lo: int, hi: int) -> int:
    """A version range as carried in REPLY.arg of a PROTONOSUPPORT answer."""
    return lo | hi << VERSION_RANGE_SHIFT


def pick_version(guest_lo: int, guest_hi: int, host_lo: int = VERSION_MIN, host_hi: int = VERSION) -> int | None:
    """The highest version both ranges hold, or None."""
    best = min(guest_hi, host_hi)
    return best if best >= max(guest_lo, host_lo) else None

ENUMS = [("GEMINI_PORT", Port), ("GEMINI_OP", Op), ("GEMINI_ERR", Err), ("GEMINI_KIND", FileKind)]

C_HEADER = HeaderSpec(
    name="gemini_wire", source="host/python/wslx/spec/gemini.py", prefix="GEMINI",
    title="Gemini ports, calls and upcalls",
    doc=__doc__,
    constants=[
        Constant("VERSION", VERSION, "newest call record version"),
        Constant("VERSION_MIN", VERSION_MIN, "oldest call record version still accepted"),
        Constant("ERROR_TEXT_VERSION", ERROR_TEXT_VERSION, "first version whose error replies carry text"),
        Constant("VERSION_RANGE_SHIFT", VERSION_RANGE_SHIFT, "range in a u64: min | max << this"),
        Constant("HELLO_SERVICE", HELLO_SERVICE, "the negotiation call's service"),
        Constant("HELLO_RECORD_VERSION", HELLO_RECORD_VERSION, "the hello record's version; all a pre-hello host speaks"),
        Constant("HELLO_METHOD", HELLO_METHOD, "the negotiation call's method"),
        Constant("CALL_MAGIC", CALL_MAGIC, "bytes 'GMNI'"),
        Constant("UPCALL_MAGIC", UPCALL_MAGIC, "bytes 'GUPC'"),
        Constant("NAME_MAX", NAME_MAX, "bytes per service, method or topic name"),
        Constant("ARGS_MAX", ARGS_MAX, "bytes of call arguments"),
        Constant("REPLY_MAX", REPLY_MAX, "bytes of one reply"),
        Constant("UPCALL_DATA_MAX", UPCALL_DATA_MAX, "bytes of one upcall's data"),
        Constant("MAX_INFLIGHT", MAX_INFLIGHT, "calls per guest the host holds at once"),
        Constant("UPCALL_QUEUE_DEPTH", UPCALL_QUEUE_DEPTH, "upcalls queued per guest subscriber"),
        Constant("SUBSCRIBERS_MAX", SUBSCRIBERS_MAX, "guest subscribers at once"),
        Constant("DEFAULT_TIMEOUT_MS", DEFAULT_TIMEOUT_MS, "a call's deadline when timeout_ms is 0"),
        Constant("SIGNAL_PORT_NAME", VIRTIO_SERIAL_NAMES[Port.SIGNAL], "virtio-serial name of the SIGNAL port"),
        Constant("UPCALL_PORT_NAME", VIRTIO_SERIAL_NAMES[Port.UPCALL], "virtio-serial name of the UPCALL port"),
        Constant("HVSOCK_GUID_SUFFIX", HVSOCK_GUID_SUFFIX, "hv_sock service id = <port as 8 hex digits>-suffix"),
    ],
    enums=ENUMS,
    structs=[
        CStruct("gemini_call_header", CallHeader, "Start of a call record in the caller's span."),
        CStruct("gemini_upcall_header", UpcallHeader, "Start of an upcall record in a host-arena span."),
        CStruct("gemini_hello", Hello, "The HELLO call's reply."),
        CStruct("gemini_fs_stat", FsStat, "fs.stat's reply."),
    ],
)
