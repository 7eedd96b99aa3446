"""Portal shared-memory layout, version 1: the single source of truth.

Generated from this module: build/gen/portal_layout.h (wslx.codegen.c_structs),
which the guest core (guest/portal/), the Linux glue (guest/init/portal_*.c)
and the host's native library compile against, and docs/portal.md.

Backing file (host) = virtio-pmem device (guest):

    file offset 0 .. WINDOW_OFFSET      left to the guest's DAX metadata: the
                                        devdax info block sits at 4 KiB and, in
                                        mode=ram, the data starts 2 MiB in
    WINDOW_OFFSET .. end                the Portal window; every offset below is
                                        relative to its start (the header)

Window:

    0      PortalHeader (192 B)       written once by the host, read-only to the guest
    192    PortalGuestStatus (64 B)   written by the guest only
    256    host probe line            written by the host only (coherence tests)
    320    guest probe line           written by the guest only
    4096   four rings, each RING_CTL_SIZE control bytes then slot_count * SLOT_SIZE
           host arena                 the host allocates spans here
           guest arena                the guest allocates spans here

Each ring is single-producer/single-consumer. head (producer's count of
messages published) and tail (consumer's count of messages taken) are
free-running u32s on separate cache lines; slot = index & (slot_count - 1).
Direction: SUBMIT and UPCALL host->guest, COMPLETE and EVENT guest->host.

Memory ordering (both sides, C11 semantics via __atomic builtins):
  producer: write the slot, then store-release head; before reusing a slot,
            load-acquire tail.
  consumer: load-acquire head, read (copy out) the slots, then store-release tail.
  sleeping: the consumer stores need_wakeup=1, issues a seq_cst fence and
            re-reads head before it sleeps; the producer, after publishing,
            issues a seq_cst fence and reads need_wakeup: if set it rings the
            doorbell (Dekker pattern: one of the two always sees the other).

Header writes and reads (seqlock style): the host stores magic = 0, then the
other fields (with a new generation every time), then magic. The guest copies
generation, magic, the whole header, then re-reads magic and generation: a
difference means the host was rewriting it (PORTAL_ERR_HEADER; retry). The host
attaches with its own private header bytes, never with what the region holds.
Re-initialisation: the host clears magic, then waits (bounded) until a guest
serving the old generation reports FAILED or its heartbeat stops (a guest between
steps checks the header before it touches a ring), and only then zeroes the
ring control blocks and writes the new header.

Everything the peer writes is hostile. Each side copies the header into
private memory once, at attach, validates it, and never reads ring offsets or
sizes from the shared copy again; it re-checks magic, version, generation and
portal_id on every poll: every receive from a ring (portal_recv) compares them
after loading head, and on a change takes nothing off the ring and fails with
PORTAL_ERR_HEADER (PortalHeaderChanged on the host).
Indices are validated on every load (head - tail <= slot_count, monotonic);
messages are copied out of the slot before any field is looked at; spans are
bounds-checked against the private copy of the arena bounds, and their
generation must carry the current region generation (and, on the host, match
the live allocation). The host accepts a completion only if its reserved0 is
zero, its cookie is in flight, its op, arg and span are those of that request and
its status is a known Err; a bad one is reported alone (PortalCorrupt) and leaves
its cookie's request in flight, and the good completions published around it are
delivered in ring order, never dropped.

Flush (QUIESCE): the guest's stores through its device-dax mapping land in the
host's MAP_SHARED mapping of the backing file as they execute, so a host reader
of the file (a snapshot copy) sees them without any flush. virtio-pmem's flush
request would only make QEMU fsync that file. Linux 6.1 cannot send it for a
device-dax namespace: the region's deep_flush attribute is hidden (virtio-pmem
regions have no nd mappings, so nvdimm_has_flush() is -ENXIO), the pmem block
driver that flushes on REQ_PREFLUSH is not bound to a namespace claimed by dax,
and device-dax has no fsync. So QUIESCE_COMPLETE.flushed_regions does not count
the Portal, and the host fsyncs the file itself (wslx.portal Portal.flush).
The Track B kernel has no such layer: it maps the pmem range directly and sends
the flush request on QUIESCE itself (flushed_regions = 1).
"""
from __future__ import annotations

import enum

from construct import Array, Int16ul, Int32ul, Int64ul, Struct

from .header import Constant, CStruct, HeaderSpec
from .fields import Reserved

MAGIC = 0x4C54525058534C57    # the bytes "WSLXPRTL"
VERSION = 1
WINDOW_OFFSET = 2 << 20         # file bytes before the header, for the guest's DAX metadata
HEADER_PAGE = 4096              # header page; rings start after it
HEADER_STRUCT_SIZE = 192
GUEST_STATUS_OFFSET = 192
HOST_PROBE_OFFSET = 256
GUEST_PROBE_OFFSET = 320
CACHELINE = 64
RING_CTL_SIZE = 128             # head line + tail line
SLOT_SIZE = 64
RING_MIN_SLOTS = 2
RING_MAX_SLOTS = 1 << 20
RING_COUNT = 4
SPAN_ALIGN = 64                 # arena allocations are cache-line aligned
ARENA_MAX_ALLOCS = 256          # live allocations per arena (the allocator's table is private)
DEFAULT_PMEM_GPA = 0x100000000  # pinned virtio-pmem memaddr: first hotplug address of q35 with < 3 GiB RAM
DOORBELL_VSOCK_PORT = 50011     # seed note 5.3, LX_INIT_GEMINI_PORTAL_SIGNAL_PORT (where vsock exists)
HOST_TIMEOUT = 1000             # the host library's loops return it negated when their deadline passes


class Side(enum.IntEnum):
    """Which end of a region a caller of the C core is (portal_attach, portal_arena_init)."""
    HOST = 0
    GUEST = 1


class RingId(enum.IntEnum):
    """Index of a ring in PortalHeader.rings."""
    SUBMIT = 0      # host -> guest requests
    COMPLETE = 1    # guest -> host completions
    EVENT = 2       # guest -> host events
    UPCALL = 3      # host -> guest upcalls


class Op(enum.IntEnum):
    """Request operations served by the guest Portal service."""
    NOP = 0         # complete at once (message-rate benchmark)
    ECHO = 1        # result = arg; the span is validated and handed back untouched
    CHECKSUM = 2    # result = sum64 of the span's bytes
    TRANSFORM = 3   # XOR the span in place with the 8 bytes of arg (little-endian, repeating)


class Err(enum.IntEnum):
    """Status codes (PortalMsg.status in completions; negative return values of the C core). errno values."""
    OK = 0
    AGAIN = 11      # ring empty or full: try later
    FAULT = 14      # span outside the arena or the window
    XDEV = 18       # span of another Portal (portal_id)
    INVAL = 22      # bad argument or reserved bits set
    NOSPC = 28      # arena full
    NOSYS = 38      # unknown op
    PROTO = 71      # ring index out of range or moving backwards
    HEADER = 74     # header magic, version, generation or portal_id changed (EBADMSG)
    STALE = 116     # span generation is not the current one


class SpanFlag(enum.IntFlag):
    """PortalSpan.flags."""
    GUEST_ARENA = 1 << 0  # the span lies in the guest's arena (else the host's)


class GuestState(enum.IntEnum):
    """PortalGuestStatus.state."""
    NONE = 0
    SERVING = 1     # attached to `generation` and polling SUBMIT
    FAILED = 2      # detached after an error (PortalGuestStatus.error); waits for a new generation


PortalSpan = Struct(
    "portal_id" / Int32ul * "PortalHeader.portal_id of the region",
    "flags" / Int32ul * "SpanFlag bits",
    "offset" / Int64ul * "window offset of the first byte",
    "length" / Int64ul * "bytes",
    "generation" / Int64ul * "high 32 bits: region generation; low 32: allocation sequence",
)

PortalMsg = Struct(
    "cookie" / Int64ul * "chosen by the producer of the request; echoed in its completion",
    "op" / Int16ul * "Op",
    "reserved0" / Reserved(2),
    "status" / Int32ul * "Err in completions, 0 in requests",
    "span" / PortalSpan * "payload (length 0: none)",
    "arg" / Int64ul * "operation argument",
    "result" / Int64ul * "operation result (completions)",
)

RingDesc = Struct(
    "offset" / Int64ul * "window offset of the ring's control block (cache-line aligned)",
    "slot_count" / Int32ul * "power of two, RING_MIN_SLOTS..RING_MAX_SLOTS",
    "slot_size" / Int32ul * "SLOT_SIZE",
)

RingCtl = Struct(
    "head" / Int32ul * "producer: messages published (free-running); store-release",
    "reserved0" / Reserved(CACHELINE - 4),
    "tail" / Int32ul * "consumer: messages taken (free-running); store-release",
    "need_wakeup" / Int32ul * "consumer: 1 while it sleeps and wants the doorbell",
    "reserved1" / Reserved(CACHELINE - 8),
)

PortalHeader = Struct(
    "magic" / Int64ul * "MAGIC, the bytes 'WSLXPRTL'",
    "version" / Int32ul * "VERSION",
    "header_page" / Int32ul * "HEADER_PAGE",
    "window_size" / Int64ul * "bytes from the header to the end of the region",
    "generation" / Int64ul * "bumped by the host at every initialisation (never 0)",
    "portal_id" / Int32ul * "identifies this region in spans",
    "flags" / Int32ul * "reserved, 0",
    "host_arena_offset" / Int64ul * "window offset of the host's arena",
    "host_arena_size" / Int64ul * "bytes",
    "guest_arena_offset" / Int64ul * "window offset of the guest's arena",
    "guest_arena_size" / Int64ul * "bytes",
    "rings" / Array(RING_COUNT, RingDesc) * "indexed by RingId",
    "reserved" / Reserved(HEADER_STRUCT_SIZE - 136),
)

PortalGuestStatus = Struct(
    "state" / Int32ul * "GuestState",
    "error" / Int32ul * "Err that detached the guest (state FAILED)",
    "generation" / Int64ul * "header generation the guest attached to",
    "served" / Int64ul * "requests completed",
    "heartbeat" / Int64ul * "bumped by the guest's service loop",
    "reserved" / Reserved(CACHELINE - 32),
)

PortalProbe = Struct(
    "value" / Int64ul * "written by one side only, spun on by the other",
    "reserved" / Reserved(CACHELINE - 8),
)

assert PortalHeader.sizeof() == HEADER_STRUCT_SIZE
assert PortalMsg.sizeof() == SLOT_SIZE and RingCtl.sizeof() == RING_CTL_SIZE

ENUMS = [("PORTAL_SIDE", Side), ("PORTAL_RING", RingId), ("PORTAL_OP", Op), ("PORTAL_ERR", Err),
         ("PORTAL_SPAN", SpanFlag), ("PORTAL_GUEST", GuestState)]

C_HEADER = HeaderSpec(
    name="portal_layout", source="host/python/wslx/spec/portal.py", prefix="PORTAL",
    title="Portal shared-memory layout",
    doc=__doc__,
    constants=[
        Constant("MAGIC", MAGIC, "bytes 'WSLXPRTL'"),
        Constant("VERSION", VERSION, "layout version"),
        Constant("WINDOW_OFFSET", WINDOW_OFFSET, "file bytes before the window, for the guest's DAX metadata"),
        Constant("HEADER_PAGE", HEADER_PAGE, "header page; rings start at or after it"),
        Constant("GUEST_STATUS_OFFSET", GUEST_STATUS_OFFSET, "struct portal_guest_status"),
        Constant("HOST_PROBE_OFFSET", HOST_PROBE_OFFSET, "struct portal_probe written by the host"),
        Constant("GUEST_PROBE_OFFSET", GUEST_PROBE_OFFSET, "struct portal_probe written by the guest"),
        Constant("CACHELINE", CACHELINE, "bytes"),
        Constant("SLOT_SIZE", SLOT_SIZE, "bytes per ring slot (one struct portal_msg)"),
        Constant("RING_MIN_SLOTS", RING_MIN_SLOTS, "smallest ring"),
        Constant("RING_MAX_SLOTS", RING_MAX_SLOTS, "largest ring"),
        Constant("RING_COUNT", RING_COUNT, "rings in the header"),
        Constant("SPAN_ALIGN", SPAN_ALIGN, "arena allocation alignment"),
        Constant("ARENA_MAX_ALLOCS", ARENA_MAX_ALLOCS, "live allocations per arena"),
        Constant("DEFAULT_PMEM_GPA", DEFAULT_PMEM_GPA, "pinned guest-physical address of the device"),
        Constant("DOORBELL_VSOCK_PORT", DOORBELL_VSOCK_PORT, "doorbell port where vsock exists"),
        Constant("HOST_TIMEOUT", HOST_TIMEOUT, "host library: returned negated when a deadline passes (not an Err)"),
    ],
    enums=ENUMS,
    structs=[
        CStruct("portal_span", PortalSpan, "A span of an arena: (portal_id, offset, length, flags, generation)."),
        CStruct("portal_msg", PortalMsg, "One ring slot: a request or its completion."),
        CStruct("portal_ring_desc", RingDesc, "Where a ring lives (header copy; never re-read after attach)."),
        CStruct("portal_ring_ctl", RingCtl, "A ring's control block: head and tail on separate cache lines."),
        CStruct("portal_header", PortalHeader, "Region header at window offset 0, written by the host."),
        CStruct("portal_guest_status", PortalGuestStatus, "Guest-written status line at GUEST_STATUS_OFFSET."),
        CStruct("portal_probe", PortalProbe, "A probe cache line (coherence tests)."),
    ],
)
