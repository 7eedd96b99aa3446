"""A scripted guest that proves the model before any kernel uses it: it performs the sequence a real guest
performs, using only the wire specs (wslx.spec.hyperv / vmbus) and the platform calls a kernel has (cpuid,
rdmsr, wrmsr, hypercall, its own memory, the interrupts it receives, and halt):

    detect -> guest OS id -> hypercall page -> reference TSC page (if offered) -> SIMP/SIEFP/SINTs/SCONTROL
    -> InitiateContact (newest version first, stepping down) -> RequestOffers until AllOffersDelivered
    -> TlConnectRequest to the AgentX port -> GPADL for the rings -> OpenChannel -> hv_sock byte stream

The byte stream is handed to a local byte-stream peer (the AgentX reference agent in the tests), and a
periodic synthetic timer is checked against the times in its expiry messages.

`platform` is the Partition (or anything with the same five calls plus halt()); `memory` is the guest's
physical memory, here the same GuestMemory the model uses.
"""
from __future__ import annotations

import select
import socket
import struct
import time
from dataclasses import dataclass

from ..spec import hyperv as H
from ..spec import vmbus as V
from ..spec.hyperv import HvStatus, Msr
from ..spec.vmbus import ChannelMessageType as M
from ..spec.fields import field_offsets
from .ring import packer   # layouts of spec Structs (no model state)

GUEST_OS_ID = H.GUEST_OS_ID_OPEN_SOURCE | (0x7F << 56) | (0x57 << 48) | (1 << 16)   # open source, "WSLX", v1
VMBUS_VECTOR = 0x40
TIMER_VECTOR = 0x41
DIRECT_TIMER_VECTOR = 0x42
TIMER_SINT = 3
LOCAL_HVSOCK_PORT = 0x20000001
PIPE = packer(V.VMPIPE_PROTO_HEADER)
DESC = packer(V.VMPACKET_DESCRIPTOR)


class GuestScriptError(Exception):
    """The scripted guest could not finish a step (the message says which and why)."""


class NoHypervisor(GuestScriptError):
    pass


class GuestTimeout(GuestScriptError):
    pass


@dataclass
class Offer:
    relid: int
    if_type: bytes
    if_instance: bytes
    flags: int
    connection_id: int
    user_def: bytes


class GuestRing:
    """The guest's side of one ring (control page + data pages, contiguous here: the guest allocated them)."""

    def __init__(self, mem, base: int, pages: int):
        self.mem, self.ctrl, self.data = mem, base, base + H.PAGE_SIZE
        self.size = (pages - 1) * H.PAGE_SIZE

    def get(self, field: str) -> int:
        return self.mem.read_u32(self.ctrl + _CTRL[field])

    def set(self, field: str, value: int) -> None:
        self.mem.write_u32(self.ctrl + _CTRL[field], value)

    def _copy_in(self, off: int, data: bytes) -> None:
        first = min(len(data), self.size - off)
        self.mem.write(self.data + off, data[:first])
        if first < len(data):
            self.mem.write(self.data, data[first:])

    def _copy_out(self, off: int, n: int) -> bytes:
        first = min(n, self.size - off)
        out = self.mem.read(self.data + off, first)
        return out + (self.mem.read(self.data, n - first) if first < n else b"")

    def _indices(self) -> tuple[int, int]:
        w, r = self.get("write_index"), self.get("read_index")
        if w >= self.size or r >= self.size or w % 8 or r % 8:
            raise GuestScriptError(f"ring indices write={w:#x} read={r:#x} outside {self.size:#x}")
        return w, r

    def write(self, payload: bytes) -> bool | None:
        """None: no room; else whether the host must be signalled (hv_signal_on_write)."""
        total = DESC.size + (len(payload) + 7) // 8 * 8 + 8
        w, r = self._indices()
        if self.size - (w - r) % self.size <= total:
            return None
        pkt = DESC.pack(V.PacketType.DATA_INBAND, 2, (total - 8) // 8, 0, 0) + payload
        self._copy_in(w, pkt.ljust(total - 8, b"\0") + struct.pack("<Q", w << 32))
        self.set("write_index", (w + total) % self.size)
        return self.get("interrupt_mask") == 0 and self.get("read_index") == w

    def read(self) -> tuple[list[bytes], bool]:
        """All whole packets' payloads, and whether the host waits for room (pending_send_sz crossed)."""
        w, r = self._indices()
        start = r
        out = []
        while (w - r) % self.size:
            _t, off8, len8, _f, _id = DESC.unpack(self._copy_out(r, DESC.size))
            if off8 < 2 or off8 > len8 or len8 * 8 + 8 > (w - r) % self.size:
                raise GuestScriptError(f"bad packet descriptor at {r:#x}")
            out.append(self._copy_out((r + off8 * 8) % self.size, (len8 - off8) * 8))
            r = (r + len8 * 8 + 8) % self.size
        self.set("read_index", r)
        pending = self.get("pending_send_sz")
        if not pending:
            return out, False
        w, _ = self._indices()      # now: the host may have filled the ring and set pending since (ring.py commit)
        free_now = self.size - (w - r) % self.size
        return out, free_now > pending >= max(0, free_now - (r - start) % self.size)


_CTRL = field_offsets(V.HV_RING_BUFFER)


class ScriptedGuest:
    def __init__(self, platform, memory, *, log=print, timeout: float = 10.0, first_free: int = 0x10000):
        self.hv, self.mem, self.log, self.timeout = platform, memory, log, timeout
        self.next_page = first_free
        self.vectors: list[int] = []
        self.features = (0, 0, 0, 0)
        self.hints = 0
        self.version = 0
        self.msg_conn_id = V.MESSAGE_CONNECTION_ID
        self.offers: dict[int, Offer] = {}
        self.timer_messages: list[tuple[int, int, int]] = []
        self.messages: list[tuple[int, bytes]] = []     # VMBus messages read but not yet consumed
        self.steps: list[str] = []

    def interrupt(self, vector: int) -> None:
        """The platform's inject(): the VP takes an interrupt (queued for the guest's main loop)."""
        self.vectors.append(vector)

    def _step(self, what: str) -> None:
        self.steps.append(what)
        self.log(f"[guest] {what}")

    def alloc(self, pages: int = 1) -> int:
        gpa = self.next_page
        self.next_page += pages * H.PAGE_SIZE
        self.mem.zero(gpa, pages * H.PAGE_SIZE)
        return gpa

    # -- detection and enlightenments ------------------------------------------------------------------------
    def detect(self) -> None:
        if not self.hv.cpuid(1)[2] & H.CPUID_FEATURES_ECX_HYPERVISOR:
            raise NoHypervisor("CPUID.1:ECX[31] is clear: no hypervisor")
        max_leaf, b, c, d = self.hv.cpuid(H.CpuidLeaf.VENDOR_AND_MAX_FUNCTIONS)
        if self.hv.cpuid(H.CpuidLeaf.INTERFACE)[0] != H.INTERFACE_SIGNATURE or max_leaf < H.CPUID_MIN_MAX_LEAF:
            raise NoHypervisor(f"hypervisor interface is not Hv#1 (max leaf {max_leaf:#x})")
        self.features = self.hv.cpuid(H.CpuidLeaf.FEATURES)
        self.hints = self.hv.cpuid(H.CpuidLeaf.ENLIGHTENMENT_INFO)[0]
        vendor = b"".join(x.to_bytes(4, "little") for x in (b, c, d))
        self._step(f"detected {vendor.decode(errors='replace')!r} Hv#1, features eax={self.features[0]:#x} "
                   f"ebx={self.features[1]:#x} edx={self.features[3]:#x}")

    def has(self, eax_bit: int = 0, ebx_bit: int = 0, edx_bit: int = 0) -> bool:
        return bool(self.features[0] & eax_bit or self.features[1] & ebx_bit or self.features[3] & edx_bit)

    def enlighten(self) -> None:
        self.hv.wrmsr(Msr.GUEST_OS_ID, GUEST_OS_ID)
        self.hypercall_page = self.alloc()
        self.hv.wrmsr(Msr.HYPERCALL, self.hypercall_page | H.PAGE_MSR_ENABLE)
        if not self.hv.rdmsr(Msr.HYPERCALL) & H.PAGE_MSR_ENABLE:
            raise GuestScriptError("the hypercall page did not enable")
        self.input_page, self.output_page = self.alloc(), self.alloc()
        self._step(f"hypercall page at {self.hypercall_page:#x}: {self.mem.read(self.hypercall_page, 4).hex()}")
        if self.has(ebx_bit=H.FeaturesEbx.ACCESS_PARTITION_ID):
            rax = self.hv.hypercall(H.HvCall.GET_PARTITION_ID, 0, self.output_page)
            if rax & H.RESULT_STATUS_MASK:
                raise GuestScriptError(f"HvCallGetPartitionId: status {rax & 0xFFFF}")
            self._step(f"partition id {self.mem.read_u64(self.output_page):#x}")

    def clock_check(self) -> int:
        """Reference time from the TSC page when offered, else TIME_REF_COUNT; returns the source used."""
        if self.has(eax_bit=H.FeaturesEax.REFERENCE_TSC):
            page = self.alloc()
            self.hv.wrmsr(Msr.REFERENCE_TSC, page | H.PAGE_MSR_ENABLE)
            tsc_page = H.HV_REFERENCE_TSC_PAGE.parse(self.mem.read(page, H.HV_REFERENCE_TSC_PAGE.sizeof()))
            if tsc_page.tsc_sequence == 0:
                raise GuestScriptError("reference TSC page sequence is 0 right after enabling it")
            t_page = ((self.hv.rdtsc() * tsc_page.tsc_scale) >> 64) + tsc_page.tsc_offset
            t_msr = self.hv.rdmsr(Msr.TIME_REF_COUNT)
            if abs(t_page - t_msr) > 1:
                raise GuestScriptError(f"reference TSC page says {t_page}, TIME_REF_COUNT {t_msr}")
            self._step(f"reference TSC page: sequence {tsc_page.tsc_sequence}, time {t_page}")
            return Msr.REFERENCE_TSC
        self._step(f"no reference TSC page: TIME_REF_COUNT {self.hv.rdmsr(Msr.TIME_REF_COUNT)}")
        return Msr.TIME_REF_COUNT

    def enable_synic(self) -> None:
        self.simp, self.siefp = self.alloc(), self.alloc()
        self.hv.wrmsr(Msr.SIMP, self.simp | H.PAGE_MSR_ENABLE)
        self.hv.wrmsr(Msr.SIEFP, self.siefp | H.PAGE_MSR_ENABLE)
        auto_eoi = 0 if self.hints & H.RecommendationsEax.DEPRECATING_AEOI else H.SintBits.AUTO_EOI
        self.hv.wrmsr(Msr.SINT0 + V.MESSAGE_SINT, VMBUS_VECTOR | auto_eoi)
        self.hv.wrmsr(Msr.SINT0 + TIMER_SINT, TIMER_VECTOR | auto_eoi)
        self.hv.wrmsr(Msr.SCONTROL, H.SCONTROL_ENABLE)
        self._step("SynIC enabled: SINT2 (VMBus) and SINT3 (timer) unmasked")

    # -- SynIC messages -----------------------------------------------------------------------------------------
    def take_message(self, sint: int) -> tuple[int, bytes] | None:
        """Copy the slot out, mark it empty, EOM if another message is pending (hyperv-guest-facts.md)."""
        slot = self.simp + sint * H.MESSAGE_SIZE
        raw = self.mem.read(slot, H.HV_MESSAGE.sizeof())
        msg = H.HV_MESSAGE.parse(raw)
        if msg.header.message_type == H.HvMessageType.NONE:
            return None
        self.mem.write_u32(slot, H.HvMessageType.NONE)
        if msg.header.flags & H.MESSAGE_FLAG_PENDING:
            self.hv.wrmsr(Msr.EOM, 0)
        size = min(msg.header.payload_size, H.MESSAGE_PAYLOAD_SIZE)
        return msg.header.message_type, bytes(msg.payload[:size])

    def _deadline(self) -> float:
        return time.monotonic() + self.timeout

    def wait_vmbus(self, want: set[int], deadline: float) -> tuple[int, bytes]:
        """Next channel message of a wanted type; others are kept for later (offers, rescinds)."""
        while True:
            for i, (t, p) in enumerate(self.messages):
                if t in want:
                    del self.messages[i]
                    return t, p
            got = self.take_message(V.MESSAGE_SINT)
            if got is not None:
                mtype, payload = got
                if mtype == H.HvMessageType.VMBUS and len(payload) >= 8:
                    self.messages.append((int.from_bytes(payload[:4], "little"), payload))
                continue
            if time.monotonic() > deadline:
                raise GuestTimeout(f"no VMBus message of type {sorted(M(t).name for t in want)} in time")
            self.hv.wait_host(0.002)

    def post(self, body, **fields) -> None:
        payload = body.build(dict(header=dict(msgtype=_TYPE[id(body)]), **fields))
        conn = (V.MESSAGE_CONNECTION_ID_4 if body is V.VMBUS_CHANNEL_INITIATE_CONTACT and
                fields["vmbus_version_requested"] >= V.Version.WIN10_V5 else self.msg_conn_id)
        self.mem.write(self.input_page, H.HV_INPUT_POST_MESSAGE.build(dict(
            connection_id=conn, message_type=H.HvMessageType.VMBUS, payload_size=len(payload),
            payload=payload.ljust(H.MESSAGE_PAYLOAD_SIZE, b"\0"))))
        for _attempt in range(100):   # INSUFFICIENT_BUFFERS: the host queue is full, retry later
            status = self.hv.hypercall(H.HvCall.POST_MESSAGE, self.input_page, 0) & H.RESULT_STATUS_MASK
            if status != HvStatus.INSUFFICIENT_BUFFERS:
                break
            self.hv.wait_host(0.001)
        if status:
            raise GuestScriptError(f"HvCallPostMessage {M(_TYPE[id(body)]).name} to {conn}: "
                                   f"{HvStatus(status).name}")

    def signal(self, connection_id: int) -> None:
        status = self.hv.hypercall(H.HvCall.SIGNAL_EVENT | H.HYPERCALL_FAST, connection_id, 0) & 0xFFFF
        if status:
            raise GuestScriptError(f"HvCallSignalEvent({connection_id:#x}): {HvStatus(status).name}")

    # -- VMBus ------------------------------------------------------------------------------------------------------
    def vmbus_connect(self, versions=None) -> int:
        for version in versions or sorted(V.Version, reverse=True):
            self.post(V.VMBUS_CHANNEL_INITIATE_CONTACT, vmbus_version_requested=version, target_vcpu=0,
                      interrupt_page=V.MESSAGE_SINT if version >= V.Version.WIN10_V5 else 0, monitor_page1=0,
                      monitor_page2=0)
            _, payload = self.wait_vmbus({M.VERSION_RESPONSE}, self._deadline())
            resp = V.VMBUS_CHANNEL_VERSION_RESPONSE.parse(payload[:V.VMBUS_CHANNEL_VERSION_RESPONSE.sizeof()])
            if resp.version_supported:
                self.version = version
                if version >= V.Version.WIN10_V5:
                    self.msg_conn_id = resp.msg_conn_id
                self._step(f"VMBus {version >> 16}.{version & 0xFFFF} ({V.Version(version).name}), "
                           f"message connection id {self.msg_conn_id}")
                return version
        raise GuestScriptError("the host accepted no VMBus version")

    def request_offers(self) -> None:
        self.post(V.VMBUS_CHANNEL_REQUEST_OFFERS)
        while True:
            t, payload = self.wait_vmbus({M.OFFERCHANNEL, M.ALLOFFERS_DELIVERED}, self._deadline())
            if t == M.ALLOFFERS_DELIVERED:
                break
            self._record_offer(payload)
        self._step(f"{len(self.offers)} offer(s) before hv_sock")

    def _record_offer(self, payload: bytes) -> Offer:
        o = V.VMBUS_CHANNEL_OFFER_CHANNEL.parse(payload[:V.VMBUS_CHANNEL_OFFER_CHANNEL.sizeof()])
        offer = Offer(o.child_relid, o.if_type, o.if_instance, o.chn_flags, o.connection_id, o.user_def)
        self.offers[offer.relid] = offer
        return offer

    def hvsock_connect(self, port: int) -> Offer:
        service, endpoint = _guid(port), _guid(LOCAL_HVSOCK_PORT)
        self.post(V.VMBUS_CHANNEL_TL_CONNECT_REQUEST, guest_endpoint_id=endpoint, host_service_id=service)
        deadline = self._deadline()
        while True:
            t, payload = self.wait_vmbus({M.OFFERCHANNEL, M.TL_CONNECT_RESULT}, deadline)
            if t == M.TL_CONNECT_RESULT:
                r = V.VMBUS_CHANNEL_TL_CONNECT_RESULT.parse(payload[:V.VMBUS_CHANNEL_TL_CONNECT_RESULT.sizeof()])
                raise GuestScriptError(f"hv_sock connect to port {port} refused: status {r.status & 0xFFFFFFFF:#x}")
            offer = self._record_offer(payload)
            if offer.if_type == service and offer.if_instance == endpoint \
                    and offer.flags & V.OfferFlags.TLNPI_PROVIDER_OFFER:
                self._step(f"hv_sock offer for port {port}: relid {offer.relid}, connection id "
                           f"{offer.connection_id:#x}")
                return offer

    def open_channel(self, offer: Offer, ring_pages: int = V.HVSOCK_RING_PAGES) -> "Channel":
        base = self.alloc(2 * ring_pages)
        out_ring, in_ring = GuestRing(self.mem, base, ring_pages), GuestRing(self.mem, base + ring_pages * 4096,
                                                                          ring_pages)
        for ring in (out_ring, in_ring):
            ring.set("feature_bits", V.RING_FEATURE_PENDING_SEND_SIZE)
        pfns = [(base >> 12) + i for i in range(2 * ring_pages)]
        gpadl = 0xE1E10 + offer.relid
        first = pfns[:V.GPADL_HEADER_MAX_PFNS]
        ranges = V.GPA_RANGE.build(dict(byte_count=len(pfns) * 4096, byte_offset=0)) + \
            b"".join(p.to_bytes(8, "little") for p in first)
        header = V.VMBUS_CHANNEL_GPADL_HEADER.build(dict(header=dict(msgtype=M.GPADL_HEADER), child_relid=offer.relid,
                                                         gpadl=gpadl, range_buflen=8 + 8 * len(pfns), rangecount=1))
        self._post_raw(header + ranges)
        rest = pfns[len(first):]
        while rest:
            chunk, rest = rest[:V.GPADL_BODY_MAX_PFNS], rest[V.GPADL_BODY_MAX_PFNS:]
            body = V.VMBUS_CHANNEL_GPADL_BODY.build(dict(header=dict(msgtype=M.GPADL_BODY), msgnumber=0, gpadl=gpadl))
            self._post_raw(body + b"".join(p.to_bytes(8, "little") for p in chunk))
        _, payload = self._wait_for_channel({M.GPADL_CREATED}, offer)
        created = V.VMBUS_CHANNEL_GPADL_CREATED.parse(payload[:V.VMBUS_CHANNEL_GPADL_CREATED.sizeof()])
        if created.creation_status:
            raise GuestScriptError(f"GPADL {gpadl:#x}: status {created.creation_status:#x}")
        self.post(V.VMBUS_CHANNEL_OPEN_CHANNEL, child_relid=offer.relid, openid=offer.relid,
                  ringbuffer_gpadlhandle=gpadl, target_vp=0, downstream_ringbuffer_pageoffset=ring_pages,
                  userdata=bytes(V.MAX_USER_DEFINED_BYTES))
        _, payload = self._wait_for_channel({M.OPENCHANNEL_RESULT}, offer)
        result = V.VMBUS_CHANNEL_OPEN_RESULT.parse(payload[:V.VMBUS_CHANNEL_OPEN_RESULT.sizeof()])
        if result.status:
            raise GuestScriptError(f"OpenChannel relid {offer.relid}: status {result.status:#x}")
        self._step(f"channel {offer.relid} open: {ring_pages}+{ring_pages} ring pages, GPADL {gpadl:#x} "
                   f"({len(pfns)} pfns)")
        return Channel(self, offer, out_ring, in_ring)

    def _wait_for_channel(self, want: set[int], offer: Offer):
        """The next wanted message about this channel (child_relid at offset 8 in all of them); answers for
        other channels (a previous, rescinded attempt) are dropped."""
        deadline = self._deadline()
        while True:
            t, payload = self.wait_vmbus(want | {M.RESCIND_CHANNELOFFER}, deadline)
            relid = int.from_bytes(payload[8:12], "little") if len(payload) >= 12 else -1
            if t == M.RESCIND_CHANNELOFFER:
                self.post(V.VMBUS_CHANNEL_RELID_RELEASED, child_relid=relid)
                if relid == offer.relid:
                    raise GuestScriptError(f"channel {relid} rescinded while opening it")
            elif relid == offer.relid:
                return t, payload
            else:
                self.log(f"[guest] dropped {M(t).name} for relid {relid}")

    def _post_raw(self, payload: bytes) -> None:
        self.mem.write(self.input_page, H.HV_INPUT_POST_MESSAGE.build(dict(
            connection_id=self.msg_conn_id, message_type=H.HvMessageType.VMBUS, payload_size=len(payload),
            payload=payload.ljust(H.MESSAGE_PAYLOAD_SIZE, b"\0"))))
        status = self.hv.hypercall(H.HvCall.POST_MESSAGE, self.input_page, 0) & 0xFFFF
        if status:
            raise GuestScriptError(f"HvCallPostMessage: {HvStatus(status).name}")

    # -- synthetic timer ----------------------------------------------------------------------------------------------
    def check_periodic_timer(self, period: int = 10_000, ticks: int = 5) -> list[tuple[int, int, int]]:
        """Arm STIMER0 periodic in message mode on SINT3; halt until each expiry; check the times."""
        start = self.hv.rdmsr(Msr.TIME_REF_COUNT)
        self.hv.wrmsr(Msr.STIMER0_COUNT, period)
        self.hv.wrmsr(Msr.STIMER0_CONFIG, H.StimerConfigBits.ENABLE | H.StimerConfigBits.PERIODIC
                      | (TIMER_SINT << H.STIMER_SINT_SHIFT))
        got = []
        while len(got) < ticks:
            self.hv.halt()
            m = self.take_message(TIMER_SINT)
            if m is None:
                continue
            mtype, payload = m
            if mtype != H.HvMessageType.TIMER_EXPIRED:
                raise GuestScriptError(f"SINT{TIMER_SINT}: message type {mtype:#x}, expected TIMER_EXPIRED")
            p = H.HV_TIMER_MESSAGE_PAYLOAD.parse(payload)
            expected = start + period * (len(got) + 1)
            if p.timer_index != 0 or p.expiration_time != expected or p.delivery_time < p.expiration_time:
                raise GuestScriptError(f"timer message {p} does not match expiry {expected}")
            got.append((p.timer_index, p.expiration_time, p.delivery_time))
        self.hv.wrmsr(Msr.STIMER0_CONFIG, 0)
        self.timer_messages = got
        self._step(f"periodic timer: {ticks} expiries every {period} x 100 ns, times exact")
        return got

    def check_direct_timer(self, deadline_in: int = 5_000) -> bool:
        if not self.has(edx_bit=H.FeaturesEdx.STIMER_DIRECT_MODE):
            self._step("direct-mode timer not offered")
            return False
        before = len(self.vectors)
        self.hv.wrmsr(Msr.STIMER1_CONFIG, H.StimerConfigBits.DIRECT_MODE
                      | (DIRECT_TIMER_VECTOR << H.STIMER_APIC_VECTOR_SHIFT))
        self.hv.wrmsr(Msr.STIMER1_COUNT, self.hv.rdmsr(Msr.TIME_REF_COUNT) + deadline_in)
        self.hv.wrmsr(Msr.STIMER1_CONFIG, self.hv.rdmsr(Msr.STIMER1_CONFIG) | H.StimerConfigBits.ENABLE)
        self.hv.halt()
        if DIRECT_TIMER_VECTOR not in self.vectors[before:]:
            raise GuestScriptError("direct-mode timer did not raise its vector")
        self._step(f"direct-mode timer raised vector {DIRECT_TIMER_VECTOR:#x}")
        return True

    # -- the whole sequence ---------------------------------------------------------------------------------------------
    def boot_to_hvsock(self, port: int = V.AGENTX_HVSOCK_PORT, versions=None) -> "Channel":
        self.detect()
        self.enlighten()
        self.clock_check()
        self.enable_synic()
        self.vmbus_connect(versions)
        self.request_offers()
        return self.open_channel(self.hvsock_connect(port))


class Channel:
    """An open hv_sock channel from the guest's side, bridged to a local byte stream (bridge())."""

    def __init__(self, guest: ScriptedGuest, offer: Offer, out_ring: GuestRing, in_ring: GuestRing):
        self.g, self.offer, self.out, self.inn = guest, offer, out_ring, in_ring
        self.pending_out = bytearray()
        self.peer_closed = False
        self.rescinded = False

    def _event_pending(self) -> bool:
        gpa = self.g.siefp + V.MESSAGE_SINT * H.EVENT_FLAGS_BYTES + self.offer.relid // 8
        byte = self.g.mem.read(gpa, 1)[0]
        bit = 1 << (self.offer.relid % 8)
        if byte & bit:
            self.g.mem.write(gpa, bytes([byte & ~bit]))
            return True
        return False

    def receive(self) -> bytes:
        self._event_pending()
        data = bytearray()
        payloads, signal = self.inn.read()
        for p in payloads:
            kind, size = PIPE.unpack_from(p)
            if kind != V.PIPE_MSG_DATA or size > len(p) - PIPE.size:
                raise GuestScriptError(f"hv_sock: bad pipe header type {kind} size {size}")
            if size == 0:
                self.peer_closed = True
            data += p[PIPE.size:PIPE.size + size]
        if signal:
            self.g.signal(self.offer.connection_id)
        return bytes(data)

    def send(self, data: bytes) -> None:
        self.pending_out += data
        chunk = 4000
        while self.pending_out:
            part = bytes(self.pending_out[:chunk])
            r = self.out.write(PIPE.pack(V.PIPE_MSG_DATA, len(part)) + part)
            if r is None:
                self.out.set("pending_send_sz", 0)   # the host drains on our next signal
                self.g.signal(self.offer.connection_id)
                return
            del self.pending_out[:len(part)]
            if r:
                self.g.signal(self.offer.connection_id)

    def _check_rescind(self) -> None:
        got = self.g.take_message(V.MESSAGE_SINT)
        if got and got[0] == H.HvMessageType.VMBUS and int.from_bytes(got[1][:4], "little") == \
                M.RESCIND_CHANNELOFFER:
            self.rescinded = True
        elif got:
            self.g.messages.append((int.from_bytes(got[1][:4], "little"), got[1]))

    def bridge(self, local: socket.socket, stop, idle: float = 0.002) -> None:
        """Move bytes between the channel and `local` until stop() is true, the local peer closes, or the
        host rescinds the channel."""
        local.setblocking(False)
        while not stop() and not self.rescinded:
            moved = False
            data = self.receive()
            if data:
                local.sendall(data)
                moved = True
            try:
                out = local.recv(65536)
            except BlockingIOError:
                out = None
            if out == b"":
                break
            if out:
                self.send(out)
                moved = True
            elif self.pending_out:
                self.send(b"")
            self._check_rescind()
            if not moved:
                select.select([local], [], [], idle)
                self.g.hv.poll()


def _guid(port: int) -> bytes:
    return port.to_bytes(4, "little") + V.HVSOCK_GUID_TEMPLATE[4:]


_TYPE = {id(V.VMBUS_CHANNEL_INITIATE_CONTACT): M.INITIATE_CONTACT, id(V.VMBUS_CHANNEL_REQUEST_OFFERS): M.REQUESTOFFERS,
         id(V.VMBUS_CHANNEL_OPEN_CHANNEL): M.OPENCHANNEL, id(V.VMBUS_CHANNEL_TL_CONNECT_REQUEST): M.TL_CONNECT_REQUEST,
         id(V.VMBUS_CHANNEL_RELID_RELEASED): M.RELID_RELEASED, id(V.VMBUS_CHANNEL_UNLOAD): M.UNLOAD,
         id(V.VMBUS_CHANNEL_CLOSE_CHANNEL): M.CLOSECHANNEL}
