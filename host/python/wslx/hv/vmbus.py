"""The VMBus host: channel management messages over SynIC, GPADLs, channels, hv_sock offers.

Rules and their sources (Linux 6.1 drivers/hv/connection.c, channel.c, channel_mgmt.c are the guest side;
OpenVMM vm/devices/vmbus/vmbus_core/src/protocol.rs the host side; hyperv-guest-facts.md):
- InitiateContact with a version the profile knows is accepted (version_supported 1, connection_state 0,
  msg_conn_id from 5.0); otherwise version_supported 0 and the guest steps down (connection.c vmbus_connect).
  From 5.0 the message SINT is byte 0 of interrupt_page; before 5.0 it is SINT 2. OpenVMM answers a Copper
  request with VersionResponse2 (protocol.rs).
- Message connection ids: while disconnected, 1 and 4 both take InitiateContact (Linux uses 4 from 5.0,
  Microsoft's UEFI firmware 1 even for Copper: mu_msvm MsvmPkg/VmbusDxe); once connected at 5.0+, later
  messages go to the VersionResponse id (4 still accepts the post, but only InitiateContact is handled
  there); before 5.0, 1. Others get HV_STATUS_INVALID_CONNECTION_ID.
- RequestOffers: one OfferChannel per channel, then AllOffersDelivered.
- GpadlHeader (+ GpadlBody until range_buflen bytes of ranges arrived) -> GpadlCreated; every pfn must be
  guest memory and the ranges must exactly fill range_buflen, else creation_status is non-zero.
- OpenChannel: known, offered, not open; ring GPADL one range from offset 0; each ring at least two pages
  (control + data) -> OpenResult status 0, else non-zero.
- TlConnectRequest (4.0+) to a host port with a listener -> a new hv_sock offer {if_type: service,
  if_instance: endpoint}; without a listener TlConnectResult with STATUS_CONNECTION_REFUSED (4.1+).
- A channel whose ring holds impossible indices or packets is rescinded and its host stream closed.
- Unload -> UnloadResponse; every channel, GPADL and guest-initiated offer is dropped.
A malformed guest message (too short, non-zero padding) is logged and dropped: the hypercall succeeded, the
host ignores it (counted in `dropped`).
"""
from __future__ import annotations

import collections
import socket
from dataclasses import dataclass, field

from construct import ConstructError

from ..spec import vmbus as V
from ..spec.hyperv import HvMessageType, PAGE_SIZE
from ..spec.vmbus import ChannelMessageType as M
from .errors import GuestMemoryError, RingError
from .hvsock import HvSockBridge, HvSockListener
from .ring import HostReader, HostWriter, packer

GPA_RANGE = packer(V.GPA_RANGE)   # byte_count, byte_offset; then the u64 pfns

STATUS_UNSUCCESSFUL = 0x8000FFFF
STATUS_CONNECTION_REFUSED = 0xC0000236
INBOUND_LIMIT = 32               # guest messages a paused host keeps before INSUFFICIENT_BUFFERS
MAX_GPADL_PAGES = 8192
UNKNOWN_FAULT_TYPE = 99

# guest -> host messages: type -> fixed-size Struct
_GUEST_MESSAGES = {
    M.INITIATE_CONTACT: V.VMBUS_CHANNEL_INITIATE_CONTACT,
    M.REQUESTOFFERS: V.VMBUS_CHANNEL_REQUEST_OFFERS,
    M.GPADL_HEADER: V.VMBUS_CHANNEL_GPADL_HEADER,
    M.GPADL_BODY: V.VMBUS_CHANNEL_GPADL_BODY,
    M.GPADL_TEARDOWN: V.VMBUS_CHANNEL_GPADL_TEARDOWN,
    M.OPENCHANNEL: V.VMBUS_CHANNEL_OPEN_CHANNEL,
    M.CLOSECHANNEL: V.VMBUS_CHANNEL_CLOSE_CHANNEL,
    M.RELID_RELEASED: V.VMBUS_CHANNEL_RELID_RELEASED,
    M.UNLOAD: V.VMBUS_CHANNEL_UNLOAD,
    M.TL_CONNECT_REQUEST: V.VMBUS_CHANNEL_TL_CONNECT_REQUEST,
    M.MODIFYCHANNEL: V.VMBUS_CHANNEL_MESSAGE_HEADER,
}


def hvsock_guid(port: int) -> bytes:
    """Wire bytes of the hv_sock service/endpoint GUID of a vsock port (hyperv_transport.c srv_id_template)."""
    return (port & 0xFFFFFFFF).to_bytes(4, "little") + V.HVSOCK_GUID_TEMPLATE[4:]


def hvsock_port(guid: bytes) -> int | None:
    if len(guid) != V.GUID_SIZE or guid[4:] != V.HVSOCK_GUID_TEMPLATE[4:]:
        return None
    return int.from_bytes(guid[:4], "little")


@dataclass
class Gpadl:
    gpadl_id: int
    relid: int
    range_buflen: int
    rangecount: int
    raw: bytearray
    complete: bool = False
    ranges: list[tuple[int, int, list[int]]] = field(default_factory=list)   # (byte_count, byte_offset, pfns)
    in_use: bool = False
    teardown_pending: bool = False


@dataclass
class Channel:
    relid: int
    if_type: bytes
    if_instance: bytes
    flags: int
    user_def: bytes
    connection_id: int
    guest_initiated: bool
    host_sock: socket.socket | None = None      # the host's end (handed out on open or at creation)
    model_sock: socket.socket | None = None     # the model's end, bridged to the rings
    listener: HvSockListener | None = None
    state: str = "offered"                      # offered, open, rescinded
    gpadl: int = 0
    bridge: HvSockBridge | None = None
    signals: int = 0


class VmbusHost:
    def __init__(self, partition):
        self.p = partition
        self.profile = partition.profile
        self.faults = partition.faults
        self.log = partition.log
        self.listeners: dict[int, HvSockListener] = {}
        self.channels: dict[int, Channel] = {}
        self.gpadls: dict[int, Gpadl] = {}
        self.next_relid = 1
        self.next_host_port = 0x40000000
        self.paused = False
        self.inbound: collections.deque = collections.deque()
        self.dropped: list[str] = []
        # (channel, reader, writer, signal_guest) -> the bridge that moves an open channel's data; None:
        # HvSockBridge (the hvsim model sets wslx.hv.native's relay here)
        self.bridge_factory = None
        self._reset_connection()

    def _reset_connection(self) -> None:
        self.version = 0
        self.connected = False
        self.sint = V.MESSAGE_SINT
        self.msg_conn_id = 0
        self.offers_requested = False

    # -- ids the guest may post to / signal ----------------------------------------------------------
    def accepts_message_connection(self, conn_id: int) -> bool:
        if not self.connected:
            return conn_id in (V.MESSAGE_CONNECTION_ID, V.MESSAGE_CONNECTION_ID_4)
        if self.version >= V.Version.WIN10_V5:
            return conn_id in (self.msg_conn_id, V.MESSAGE_CONNECTION_ID_4)
        return conn_id == V.MESSAGE_CONNECTION_ID

    def channel_by_connection(self, conn_id: int) -> Channel | None:
        for ch in self.channels.values():
            if ch.connection_id == conn_id and ch.state != "rescinded":
                return ch
        return None

    def inbound_full(self) -> bool:
        return (self.paused and len(self.inbound) >= INBOUND_LIMIT) or self.p.synic.queue_full(self.sint)

    # -- host-side API ---------------------------------------------------------------------------------
    def listen(self, port: int, dial=None) -> HvSockListener:
        listener = self.listeners.get(port) or HvSockListener(port, dial)
        self.listeners[port] = listener
        return listener

    def connect(self, guest_port: int, model_end: socket.socket | None = None) -> socket.socket | None:
        """Host-initiated hv_sock connection to a guest port: an offer with the host's endpoint; the
        returned socket carries data once the guest opens the channel. model_end: bridge the channel to
        this stream instead (returns None)."""
        host_end, model_end = socket.socketpair() if model_end is None else (None, model_end)
        self.next_host_port += 1
        user_def = bytearray(V.MAX_USER_DEFINED_BYTES)
        user_def[V.OFFER_PIPE_USER_DEF_OFFSET] = 1          # conn_from_host (hyperv_transport.c)
        ch = self._new_channel(hvsock_guid(guest_port), hvsock_guid(self.next_host_port), bytes(user_def),
                               guest_initiated=False)
        ch.host_sock, ch.model_sock = host_end, model_end
        if self.offers_requested:
            self._offer(ch)
        return host_end

    def pause(self) -> None:
        """Stop processing guest messages (they queue; a full queue answers INSUFFICIENT_BUFFERS)."""
        self.paused = True

    def resume(self) -> None:
        self.paused = False
        while self.inbound:
            self._handle(*self.inbound.popleft())

    # -- messages from the guest -----------------------------------------------------------------------
    def post_from_guest(self, conn_id: int, payload: bytes) -> None:
        if self.paused:
            self.inbound.append((conn_id, payload))
            return
        self._handle(conn_id, payload)

    def _drop(self, why: str) -> None:
        self.dropped.append(why)
        self.log(f"vmbus: dropped guest message: {why}")

    def _handle(self, conn_id: int, payload: bytes) -> None:
        if len(payload) < V.VMBUS_CHANNEL_MESSAGE_HEADER.sizeof():
            return self._drop(f"{len(payload)} bytes: shorter than a message header")
        msgtype = int.from_bytes(payload[:4], "little")
        body = _GUEST_MESSAGES.get(msgtype)
        if body is None:
            return self._drop(f"unknown or host-only message type {msgtype}")
        if len(payload) < body.sizeof():
            return self._drop(f"{M(msgtype).name}: {len(payload)} bytes < {body.sizeof()}")
        try:
            msg = body.parse(payload[:body.sizeof()])
        except ConstructError as e:
            return self._drop(f"{M(msgtype).name}: {e}")
        if msgtype == M.INITIATE_CONTACT:
            return self._initiate_contact(conn_id, msg)
        if not self.connected:
            return self._drop(f"{M(msgtype).name} before InitiateContact was accepted")
        if self.version >= V.Version.WIN10_V5 and conn_id != self.msg_conn_id:
            return self._drop(f"{M(msgtype).name} posted to connection id {conn_id}, not {self.msg_conn_id}")
        handler = {
            M.REQUESTOFFERS: self._request_offers, M.GPADL_HEADER: self._gpadl_header,
            M.GPADL_BODY: self._gpadl_body, M.GPADL_TEARDOWN: self._gpadl_teardown, M.OPENCHANNEL: self._open,
            M.CLOSECHANNEL: self._close, M.RELID_RELEASED: self._relid_released, M.UNLOAD: self._unload,
            M.TL_CONNECT_REQUEST: self._tl_connect, M.MODIFYCHANNEL: lambda m, p: None,
        }[msgtype]
        handler(msg, payload)

    # -- messages to the guest -------------------------------------------------------------------------
    def _send(self, body, **fields) -> None:
        payload = body.build(dict(header=dict(msgtype=self._type_of(body)), **fields))
        if self.faults.unknown_message_types:
            self.p.synic.post(self.sint, HvMessageType.VMBUS, UNKNOWN_FAULT_TYPE.to_bytes(4, "little") + bytes(12))
        if self.faults.malformed_messages:
            payload = payload[:len(payload) // 2]
        self.p.synic.post(self.sint, HvMessageType.VMBUS, payload)

    @staticmethod
    def _type_of(body) -> int:
        return {V.VMBUS_CHANNEL_VERSION_RESPONSE: M.VERSION_RESPONSE, V.VMBUS_CHANNEL_VERSION_RESPONSE2:
                M.VERSION_RESPONSE, V.VMBUS_CHANNEL_OFFER_CHANNEL: M.OFFERCHANNEL,
                V.VMBUS_CHANNEL_ALL_OFFERS_DELIVERED: M.ALLOFFERS_DELIVERED,
                V.VMBUS_CHANNEL_GPADL_CREATED: M.GPADL_CREATED, V.VMBUS_CHANNEL_GPADL_TORNDOWN: M.GPADL_TORNDOWN,
                V.VMBUS_CHANNEL_OPEN_RESULT: M.OPENCHANNEL_RESULT,
                V.VMBUS_CHANNEL_RESCIND_OFFER: M.RESCIND_CHANNELOFFER,
                V.VMBUS_CHANNEL_UNLOAD_RESPONSE: M.UNLOAD_RESPONSE,
                V.VMBUS_CHANNEL_TL_CONNECT_RESULT: M.TL_CONNECT_RESULT}[body]

    # -- connection ---------------------------------------------------------------------------------------
    def _initiate_contact(self, conn_id: int, m) -> None:
        if self.faults.ignore_initiate_contact:
            return self._drop("InitiateContact ignored (fault knob ignore_initiate_contact)")
        version = m.vmbus_version_requested
        sint = m.interrupt_page & 0xFF if version >= V.Version.WIN10_V5 else V.MESSAGE_SINT
        if self.profile.fixed_message_sint is not None:
            sint = self.profile.fixed_message_sint
        # Either contact port: Linux posts to 4 from 5.0 on (connection.c vmbus_negotiate_version), Microsoft's
        # own UEFI firmware posts every message, Copper included, to 1 (mu_msvm MsvmPkg/VmbusDxe VmbusRoot.c).
        ok = (version in self.profile.vmbus_versions and not self.connected
              and 0 < sint < 16 and m.target_vcpu == 0
              and all(gpa == 0 or (gpa % PAGE_SIZE == 0 and self.p.mem.contains(gpa, PAGE_SIZE))
                      for gpa in (m.monitor_page1, m.monitor_page2)))
        if not 0 < sint < 16:
            sint = V.MESSAGE_SINT
        self.sint = sint
        if not ok:
            self.log(f"vmbus: InitiateContact {version >> 16}.{version & 0xFFFF} on connection {conn_id} refused")
            return self._send(V.VMBUS_CHANNEL_VERSION_RESPONSE, version_supported=0, connection_state=0,
                              msg_conn_id=0)
        self.version, self.connected = version, True
        self.msg_conn_id = self.profile.message_connection_id if version >= V.Version.WIN10_V5 else 0
        self.log(f"vmbus: connected at {version >> 16}.{version & 0xFFFF}, SINT {sint}, "
                 f"message connection id {self.msg_conn_id or V.MESSAGE_CONNECTION_ID}")
        if version >= V.Version.COPPER and self.profile.version_response2:
            return self._send(V.VMBUS_CHANNEL_VERSION_RESPONSE2, version_supported=1, connection_state=0,
                              msg_conn_id=self.msg_conn_id, supported_features=0)
        self._send(V.VMBUS_CHANNEL_VERSION_RESPONSE, version_supported=1, connection_state=V.CONNECTION_STATE_OK,
                   msg_conn_id=self.msg_conn_id)

    def _unload(self, m, payload) -> None:
        for ch in list(self.channels.values()):
            self._end_channel(ch)
            if ch.guest_initiated:
                del self.channels[ch.relid]
            else:
                ch.state = "offered"
        self.gpadls.clear()
        self._send(V.VMBUS_CHANNEL_UNLOAD_RESPONSE)
        self._reset_connection()

    # -- offers ---------------------------------------------------------------------------------------------
    def _new_channel(self, if_type: bytes, if_instance: bytes, user_def: bytes, guest_initiated: bool) -> Channel:
        relid = self.next_relid
        self.next_relid += 1
        ch = Channel(relid, if_type, if_instance,
                     int(V.OfferFlags.TLNPI_PROVIDER_OFFER | V.OfferFlags.NAMED_PIPE_MODE), user_def,
                     self.profile.channel_connection_id_base + relid, guest_initiated)
        self.channels[relid] = ch
        return ch

    def _offer(self, ch: Channel) -> None:
        self._send(V.VMBUS_CHANNEL_OFFER_CHANNEL, if_type=ch.if_type, if_instance=ch.if_instance, reserved1=0,
                   reserved2=0, chn_flags=ch.flags, mmio_megabytes=0, user_def=ch.user_def, sub_channel_index=0,
                   reserved3=0, child_relid=ch.relid, monitorid=0xFF, monitor_flags=0, interrupt_flags=0,
                   connection_id=ch.connection_id)
        if self.faults.rescind_at == "offer":
            self._rescind_fault(ch)

    def _request_offers(self, m, payload) -> None:
        self.offers_requested = True
        for ch in self.channels.values():
            if ch.state != "rescinded":
                self._offer(ch)
        self._send(V.VMBUS_CHANNEL_ALL_OFFERS_DELIVERED)

    def _tl_connect(self, m, payload) -> None:
        if self.version < V.Version.WIN10:
            return self._drop("TlConnectRequest before version 4.0")
        port = hvsock_port(m.host_service_id)
        listener = self.listeners.get(port) if port is not None else None
        if listener is None:
            self.log(f"vmbus: hv_sock connect to {m.host_service_id.hex()} refused: no listener")
            if self.version >= V.Version.WIN10_V4_1:
                self._send(V.VMBUS_CHANNEL_TL_CONNECT_RESULT, endpoint_id=m.guest_endpoint_id,
                           service_id=m.host_service_id, status=STATUS_CONNECTION_REFUSED - (1 << 32))
            return
        ch = self._new_channel(m.host_service_id, m.guest_endpoint_id, bytes(V.MAX_USER_DEFINED_BYTES),
                               guest_initiated=True)
        ch.listener = listener
        self._offer(ch)

    def rescind(self, relid: int) -> None:
        ch = self.channels.get(relid)
        if ch is None or ch.state == "rescinded":
            return
        self._end_channel(ch)
        ch.state = "rescinded"
        self._send(V.VMBUS_CHANNEL_RESCIND_OFFER, child_relid=relid)

    def _rescind_fault(self, ch: Channel) -> None:
        self.log(f"vmbus: rescinding channel {ch.relid} at step {self.faults.rescind_at!r} (fault knob)")
        self.faults.rescind_at = None
        self.rescind(ch.relid)

    def _relid_released(self, m, payload) -> None:
        ch = self.channels.get(m.child_relid)
        if ch is None or ch.state != "rescinded":
            return self._drop(f"RelIdReleased for relid {m.child_relid} that was not rescinded")
        del self.channels[m.child_relid]

    # -- GPADLs --------------------------------------------------------------------------------------------------
    def _gpadl_header(self, m, payload) -> None:
        ch = self.channels.get(m.child_relid)
        if ch is not None and ch.state != "rescinded" and self.faults.rescind_at == "gpadl":
            return self._rescind_fault(ch)
        ranges = payload[V.VMBUS_CHANNEL_GPADL_HEADER.sizeof():]
        g = Gpadl(m.gpadl, m.child_relid, m.range_buflen, m.rangecount, bytearray(ranges[:m.range_buflen]))
        if ch is None or ch.state == "rescinded" or m.gpadl == 0 or m.gpadl in self.gpadls or m.rangecount == 0 \
                or m.range_buflen < 8 * m.rangecount + 8 or m.range_buflen > 8 * (MAX_GPADL_PAGES + m.rangecount):
            self.log(f"vmbus: GpadlHeader relid {m.child_relid} gpadl {m.gpadl:#x} refused")
            return self._send(V.VMBUS_CHANNEL_GPADL_CREATED, child_relid=m.child_relid, gpadl=m.gpadl,
                              creation_status=STATUS_UNSUCCESSFUL)
        self.gpadls[m.gpadl] = g
        self._gpadl_maybe_complete(g)

    def _gpadl_body(self, m, payload) -> None:
        g = self.gpadls.get(m.gpadl)
        if g is None or g.complete:
            return self._drop(f"GpadlBody for gpadl {m.gpadl:#x} that is not being built")
        g.raw += payload[V.VMBUS_CHANNEL_GPADL_BODY.sizeof():]
        self._gpadl_maybe_complete(g)

    def _gpadl_maybe_complete(self, g: Gpadl) -> None:
        if len(g.raw) < g.range_buflen:
            return
        del g.raw[g.range_buflen:]
        try:
            g.ranges = self._parse_ranges(g)
        except ValueError as e:
            self.log(f"vmbus: gpadl {g.gpadl_id:#x}: {e}")
            del self.gpadls[g.gpadl_id]
            return self._send(V.VMBUS_CHANNEL_GPADL_CREATED, child_relid=g.relid, gpadl=g.gpadl_id,
                              creation_status=STATUS_UNSUCCESSFUL)
        g.complete = True
        self._send(V.VMBUS_CHANNEL_GPADL_CREATED, child_relid=g.relid, gpadl=g.gpadl_id, creation_status=0)

    def _parse_ranges(self, g: Gpadl) -> list[tuple[int, int, list[int]]]:
        raw, off, out = bytes(g.raw), 0, []
        for _ in range(g.rangecount):
            if off + GPA_RANGE.size > len(raw):
                raise ValueError("ranges end early")
            byte_count, byte_offset = GPA_RANGE.unpack_from(raw, off)
            if byte_count == 0 or byte_offset >= PAGE_SIZE:
                raise ValueError(f"range byte_count {byte_count} byte_offset {byte_offset}")
            npfn = (byte_offset + byte_count + PAGE_SIZE - 1) // PAGE_SIZE
            off += GPA_RANGE.size
            if off + 8 * npfn > len(raw):
                raise ValueError(f"range needs {npfn} pfns, {(len(raw) - off) // 8} given")
            pfns = [int.from_bytes(raw[off + 8 * i:off + 8 * i + 8], "little") for i in range(npfn)]
            off += 8 * npfn
            for pfn in pfns:
                if not self.p.mem.contains(pfn * PAGE_SIZE, PAGE_SIZE):
                    raise ValueError(f"pfn {pfn:#x} is outside guest memory")
            out.append((byte_count, byte_offset, pfns))
        if off != len(raw):
            raise ValueError(f"range_buflen {len(raw)} but ranges use {off}")
        return out

    def _gpadl_teardown(self, m, payload) -> None:
        g = self.gpadls.get(m.gpadl)
        if g is None:
            return self._drop(f"GpadlTeardown of unknown gpadl {m.gpadl:#x}")
        if g.in_use:
            g.teardown_pending = True     # answered when the channel closes
            return
        del self.gpadls[m.gpadl]
        self._send(V.VMBUS_CHANNEL_GPADL_TORNDOWN, gpadl=m.gpadl)

    # -- channels ---------------------------------------------------------------------------------------------------
    def _open(self, m, payload) -> None:
        ch = self.channels.get(m.child_relid)
        if ch is not None and ch.state == "offered" and self.faults.rescind_at == "open":
            return self._rescind_fault(ch)
        g = self.gpadls.get(m.ringbuffer_gpadlhandle)
        status = STATUS_UNSUCCESSFUL
        why = ""
        if ch is None or ch.state != "offered":
            why = "channel not offered or already open"
        elif g is None or not g.complete or g.in_use or len(g.ranges) != 1 or g.ranges[0][1] != 0:
            why = "ring GPADL missing, incomplete, in use or not one range from offset 0"
        elif m.target_vp != 0:
            why = f"target VP {m.target_vp} does not exist"
        else:
            pfns = g.ranges[0][2]
            split = m.downstream_ringbuffer_pageoffset
            if not 2 <= split <= len(pfns) - 2:
                why = f"downstream page offset {split} leaves a ring without control and data pages"
            else:
                try:
                    self._attach(ch, pfns[:split], pfns[split:])
                    g.in_use = True
                    ch.gpadl = g.gpadl_id
                    status = 0
                except (RingError, GuestMemoryError) as e:
                    why = str(e)
        if why:
            self.log(f"vmbus: OpenChannel relid {m.child_relid} refused: {why}")
        self._send(V.VMBUS_CHANNEL_OPEN_RESULT, child_relid=m.child_relid, openid=m.openid, status=status)
        if status == 0 and ch.bridge is not None:
            self.service_channel(ch)

    def _attach(self, ch: Channel, g2h_pfns: list[int], h2g_pfns: list[int]) -> None:
        reader = HostReader(self.p.mem, g2h_pfns, f"relid {ch.relid} guest-to-host ring")
        writer = HostWriter(self.p.mem, h2g_pfns, f"relid {ch.relid} host-to-guest ring")
        reader.available()
        writer.available()   # both control pages are readable and sane
        if self.faults.corrupt_ring_indices:
            writer.corrupt_next_write = True
        ch.state = "open"
        if ch.model_sock is None and ch.listener is not None and ch.listener.dial is not None:
            ch.model_sock = ch.listener.dial()    # guest-initiated, bridged straight to the host's stream
        elif ch.model_sock is None:               # guest-initiated: the host end is handed out now
            ch.host_sock, ch.model_sock = socket.socketpair()
            if ch.listener is not None:
                ch.listener._deliver(ch.host_sock)
        signal = lambda: self.signal_guest(ch)    # noqa: E731
        if self.bridge_factory is not None and not writer.corrupt_next_write:
            ch.bridge = self.bridge_factory(ch, reader, writer, signal)
        else:
            ch.bridge = HvSockBridge(ch.model_sock, reader, writer, signal, self.log)

    def _close(self, m, payload) -> None:
        ch = self.channels.get(m.child_relid)
        if ch is None or ch.state == "rescinded":
            return
        if ch.state != "open":
            return self._drop(f"CloseChannel of relid {m.child_relid} that is not open")
        self._end_channel(ch)
        ch.state = "offered" if not ch.guest_initiated else "closed"
        if ch.guest_initiated:
            del self.channels[ch.relid]

    def _end_channel(self, ch: Channel) -> None:
        if ch.bridge is not None:
            try:
                ch.bridge.pump()          # whatever the guest already wrote still reaches the host
            except (RingError, GuestMemoryError):
                pass
            ch.bridge.close()
            ch.bridge = None
        elif ch.model_sock is not None:
            ch.model_sock.close()
        ch.model_sock = None
        g = self.gpadls.get(ch.gpadl)
        if g is not None:
            g.in_use = False
            if g.teardown_pending:
                del self.gpadls[g.gpadl_id]
                self._send(V.VMBUS_CHANNEL_GPADL_TORNDOWN, gpadl=g.gpadl_id)
        ch.gpadl = 0

    # -- signalling -------------------------------------------------------------------------------------------------
    def signal_guest(self, ch: Channel) -> None:
        self.p.synic.signal_event(self.sint, ch.relid)

    def signal_from_guest(self, ch: Channel) -> None:
        ch.signals += 1
        if ch.state == "open" and self.faults.rescind_at == "data":
            return self._rescind_fault(ch)
        if not self.p.defer_service:          # else the partition's deferred service() drains it
            self.service_channel(ch)

    def service_channel(self, ch: Channel) -> bool:
        if ch.bridge is None:
            return False
        try:
            return ch.bridge.pump()
        except (RingError, GuestMemoryError) as e:
            self.log(f"vmbus: channel {ch.relid} broken: {e}; rescinding it")
            self.rescind(ch.relid)
            return True

    def service(self) -> bool:
        moved = False
        for ch in list(self.channels.values()):
            moved |= self.service_channel(ch)
        return moved

    def bridges(self) -> list[HvSockBridge]:
        return [ch.bridge for ch in self.channels.values() if ch.bridge is not None]

    def close(self) -> None:
        """End every bridge; host sockets handed out (hvsock_connect, accept) belong to their holders and see
        EOF; connections nobody accepted are closed."""
        for ch in self.channels.values():
            if ch.bridge is not None:
                ch.bridge.close()
            elif ch.model_sock is not None:
                ch.model_sock.close()
        self.channels.clear()
        for listener in self.listeners.values():
            listener.close()
