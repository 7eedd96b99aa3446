"""VMBus: channel management messages, ring buffers, packets, and hv_sock.

Defined once here. build/gen/vmbus.h and docs/vmbus.md are generated from this module (through
C_HEADER below, rendered by wslx.codegen.c_structs); the host model (wslx.hv.vmbus) and the scripted guest use these Structs.
tests/test_hv_fidelity.py checks every value and layout below against Linux 6.1's own definitions
(include/linux/hyperv.h, drivers/hv/hyperv_vmbus.h, net/vmw_vsock/hyperv_transport.c); the few that Linux
6.1 does not define (version 6.0 "Copper", TlConnectResult) against OpenVMM (vm/devices/vmbus/vmbus_core)
as recorded in the facts sheet.
"""
from __future__ import annotations

import enum

from construct import Bytes, Int8ul, Int16ul, Int32sl, Int32ul, Int64ul, Struct

from .agentx import VSOCK_CONTROL_PORT
from .fields import Reserved
from .header import header_from_tables
from .hyperv import MESSAGE_PAYLOAD_SIZE, PAGE_SIZE

MESSAGE_SINT = 2                 # VMBus messages and events arrive on SINT 2
MESSAGE_CONNECTION_ID = 1        # host message port before version 5.0
MESSAGE_CONNECTION_ID_4 = 4      # InitiateContact from version 5.0 on; then VersionResponse's id
EVENT_CONNECTION_ID = 2          # guest -> host event before 5.0 (later: the offer's connection id)
MONITOR_CONNECTION_ID = 3
MAX_USER_DEFINED_BYTES = 120
MAX_PIPE_USER_DEFINED_BYTES = 116
GPADL_HEADER_MAX_PFNS = 26       # (240 - 20 header - 8 range) / 8
GPADL_BODY_MAX_PFNS = 28         # (240 - 16 header) / 8
GPADL_TYPE_RING_BUFFER = 1
PACKET_TRAILER_SIZE = 8          # u64 after each packet: bits 63:32 the packet's start offset
PACKET_ALIGN = 8
DATA_PACKET_FLAG_COMPLETION_REQUESTED = 1
RING_FEATURE_PENDING_SEND_SIZE = 1   # hv_ring_buffer.feature_bits bit 0
CONNECTION_STATE_OK = 0              # VersionResponse.connection_state
GUID_SIZE = 16

# hv_sock (Linux net/vmw_vsock/hyperv_transport.c)
PIPE_MSG_DATA = 1                # vmpipe_proto_header.pkt_type of a data packet
HVSOCK_MTU = 16 * 1024           # largest payload a peer sends in one packet
HVSOCK_RING_PAGES = 6            # ring pages per direction; works with every host (facts sheet)
# vsock port P <-> service GUID P-facb-11e6-bd58-64006a7986d3: P is data1 (first 32 bits, little-endian).
HVSOCK_GUID_DATA2 = 0xFACB
HVSOCK_GUID_DATA3 = 0x11E6
HVSOCK_GUID_DATA4 = bytes((0xBD, 0x58, 0x64, 0x00, 0x6A, 0x79, 0x86, 0xD3))
HVSOCK_GUID_TEMPLATE = (bytes(4) + HVSOCK_GUID_DATA2.to_bytes(2, "little") + HVSOCK_GUID_DATA3.to_bytes(2, "little")
                        + HVSOCK_GUID_DATA4)   # wire bytes of the service GUID with port 0
AGENTX_HVSOCK_PORT = VSOCK_CONTROL_PORT         # AgentX's service GUID is its vsock port in the template


class Version(enum.IntEnum):
    """VMBus protocol versions, (major << 16) | minor; a guest tries the newest first"""
    WS2008 = (0 << 16) | 13
    WIN7 = (1 << 16) | 1
    WIN8 = (2 << 16) | 4
    WIN8_1 = (3 << 16) | 0
    WIN10 = (4 << 16) | 0
    WIN10_V4_1 = (4 << 16) | 1
    WIN10_V5 = (5 << 16) | 0
    WIN10_V5_1 = (5 << 16) | 1
    WIN10_V5_2 = (5 << 16) | 2
    WIN10_V5_3 = (5 << 16) | 3   # "Iron"
    COPPER = (6 << 16) | 0       # OpenVMM; not in Linux 6.1


class ChannelMessageType(enum.IntEnum):
    """vmbus_channel_message_header.msgtype"""
    INVALID = 0
    OFFERCHANNEL = 1
    RESCIND_CHANNELOFFER = 2
    REQUESTOFFERS = 3
    ALLOFFERS_DELIVERED = 4
    OPENCHANNEL = 5
    OPENCHANNEL_RESULT = 6
    CLOSECHANNEL = 7
    GPADL_HEADER = 8
    GPADL_BODY = 9
    GPADL_CREATED = 10
    GPADL_TEARDOWN = 11
    GPADL_TORNDOWN = 12
    RELID_RELEASED = 13
    INITIATE_CONTACT = 14
    VERSION_RESPONSE = 15
    UNLOAD = 16
    UNLOAD_RESPONSE = 17
    TL_CONNECT_REQUEST = 21
    MODIFYCHANNEL = 22
    TL_CONNECT_RESULT = 23


class OfferFlags(enum.IntFlag):
    """vmbus_channel_offer_channel.chn_flags"""
    ENUMERATE_DEVICE_INTERFACE = 0x1
    NAMED_PIPE_MODE = 0x10
    REQUEST_MONITORED_NOTIFICATION = 0x400
    TLNPI_PROVIDER_OFFER = 0x2000     # an hv_sock channel


class PacketType(enum.IntEnum):
    """vmpacket_descriptor.type"""
    INVALID = 0x0
    DATA_INBAND = 0x6
    DATA_USING_GPA_DIRECT = 0x9
    COMP = 0xB


VMBUS_CHANNEL_MESSAGE_HEADER = Struct(
    "msgtype" / Int32ul * "ChannelMessageType",
    "padding" / Reserved(4),
)
_HDR = "header" / VMBUS_CHANNEL_MESSAGE_HEADER

VMBUS_CHANNEL_OFFER_CHANNEL = Struct(
    _HDR,
    "if_type" / Bytes(GUID_SIZE) * "interface type GUID (hv_sock: the listening side's service id)",
    "if_instance" / Bytes(GUID_SIZE) * "instance GUID (hv_sock: the connecting side's endpoint id)",
    "reserved1" / Int64ul,
    "reserved2" / Int64ul,
    "chn_flags" / Int16ul * "OfferFlags",
    "mmio_megabytes" / Int16ul,
    "user_def" / Bytes(MAX_USER_DEFINED_BYTES) * "pipe mode: u32 pipe_mode, then 116 bytes; hv_sock: byte 4 = 1 "
                                                 "if the host connected",
    "sub_channel_index" / Int16ul,
    "reserved3" / Int16ul,
    "child_relid" / Int32ul * "the channel's id in later messages; event flag bit",
    "monitorid" / Int8ul,
    "monitor_flags" / Int8ul * "bit 0: monitor allocated",
    "interrupt_flags" / Int16ul * "bit 0: dedicated interrupt",
    "connection_id" / Int32ul * "from 4.0: HvCallSignalEvent target for this channel",
)
OFFER_MONITOR_ALLOCATED = 1
OFFER_DEDICATED_INTERRUPT = 1
OFFER_PIPE_USER_DEF_OFFSET = 4   # within user_def: where a pipe offer's 116 user bytes start (after pipe_mode)

VMBUS_CHANNEL_RESCIND_OFFER = Struct(_HDR, "child_relid" / Int32ul)
VMBUS_CHANNEL_REQUEST_OFFERS = Struct(_HDR)
VMBUS_CHANNEL_ALL_OFFERS_DELIVERED = Struct(_HDR)

VMBUS_CHANNEL_OPEN_CHANNEL = Struct(
    _HDR,
    "child_relid" / Int32ul,
    "openid" / Int32ul * "echoed in OpenResult",
    "ringbuffer_gpadlhandle" / Int32ul * "GPADL covering both rings",
    "target_vp" / Int32ul,
    "downstream_ringbuffer_pageoffset" / Int32ul * "pages of the guest-to-host ring (host-to-guest ring starts here)",
    "userdata" / Bytes(MAX_USER_DEFINED_BYTES),
)
VMBUS_CHANNEL_OPEN_RESULT = Struct(_HDR, "child_relid" / Int32ul, "openid" / Int32ul,
                                   "status" / Int32ul * "0: open")
VMBUS_CHANNEL_CLOSE_CHANNEL = Struct(_HDR, "child_relid" / Int32ul)

GPA_RANGE = Struct(
    "byte_count" / Int32ul * "bytes described by the pfns that follow",
    "byte_offset" / Int32ul * "offset into the first page",
)  # then u64 pfn_array[ceil((byte_offset + byte_count) / 4096)]
VMBUS_CHANNEL_GPADL_HEADER = Struct(
    _HDR,
    "child_relid" / Int32ul,
    "gpadl" / Int32ul * "guest-chosen handle",
    "range_buflen" / Int16ul * "bytes of ranges (gpa_range + pfns) in this and the body messages",
    "rangecount" / Int16ul,
)  # then gpa_range range[rangecount], the pfns that do not fit go in GpadlBody messages
VMBUS_CHANNEL_GPADL_BODY = Struct(_HDR, "msgnumber" / Int32ul, "gpadl" / Int32ul)  # then u64 pfn[]
VMBUS_CHANNEL_GPADL_CREATED = Struct(_HDR, "child_relid" / Int32ul, "gpadl" / Int32ul,
                                     "creation_status" / Int32ul * "0: created")
VMBUS_CHANNEL_GPADL_TEARDOWN = Struct(_HDR, "child_relid" / Int32ul, "gpadl" / Int32ul)
VMBUS_CHANNEL_GPADL_TORNDOWN = Struct(_HDR, "gpadl" / Int32ul)
VMBUS_CHANNEL_RELID_RELEASED = Struct(_HDR, "child_relid" / Int32ul)

VMBUS_CHANNEL_INITIATE_CONTACT = Struct(
    _HDR,
    "vmbus_version_requested" / Int32ul * "Version",
    "target_vcpu" / Int32ul * "VP the host sends channel messages to",
    "interrupt_page" / Int64ul * "before 5.0: interrupt page GPA; from 5.0: byte 0 = message SINT (2), byte 1 = VTL",
    "monitor_page1" / Int64ul * "GPA; 0 accepted by OpenVMM (no monitor pages)",
    "monitor_page2" / Int64ul,
)
INITIATE_CONTACT_OFF_MSG_SINT = 16   # byte offset of the message SINT (from 5.0), inside interrupt_page

VMBUS_CHANNEL_VERSION_RESPONSE = Struct(
    _HDR,
    "version_supported" / Int8ul * "1: accepted; 0: try an older version",
    "connection_state" / Int8ul * "0: ok",
    "padding" / Reserved(2),
    "msg_conn_id" / Int32ul * "from 5.0: connection id for all later messages",
)
VMBUS_CHANNEL_VERSION_RESPONSE2 = Struct(
    _HDR,
    "version_supported" / Int8ul,
    "connection_state" / Int8ul,
    "padding" / Reserved(2),
    "msg_conn_id" / Int32ul,
    "supported_features" / Int32ul * "Copper feature flags the host supports",
)  # what OpenVMM answers to a supported request for Copper (6.0) or newer
VMBUS_CHANNEL_UNLOAD = Struct(_HDR)
VMBUS_CHANNEL_UNLOAD_RESPONSE = Struct(_HDR)

VMBUS_CHANNEL_TL_CONNECT_REQUEST = Struct(
    _HDR,
    "guest_endpoint_id" / Bytes(GUID_SIZE) * "the guest's local port in the hv_sock template",
    "host_service_id" / Bytes(GUID_SIZE) * "the host port in the hv_sock template",
)
VMBUS_CHANNEL_TL_CONNECT_RESULT = Struct(
    _HDR,
    "endpoint_id" / Bytes(GUID_SIZE),
    "service_id" / Bytes(GUID_SIZE),
    "status" / Int32sl * "0 ok, else a negative NTSTATUS-style error (no offer follows)",
)

HV_RING_BUFFER = Struct(
    "write_index" / Int32ul * "byte offset into the data area: next byte the producer writes",
    "read_index" / Int32ul * "byte offset into the data area: next byte the consumer reads",
    "interrupt_mask" / Int32ul * "consumer sets to 1 while it polls: the producer does not signal",
    "pending_send_sz" / Int32ul * "producer waiting for this much space: consumer signals when it frees it",
    "reserved1" / Bytes(48),
    "feature_bits" / Int32ul * "bit 0: pending_send_sz supported",
    "reserved2" / Bytes(PAGE_SIZE - 68),
)  # the data area follows on the next page

VMPACKET_DESCRIPTOR = Struct(
    "type" / Int16ul * "PacketType",
    "offset8" / Int16ul * "payload offset from the descriptor, in 8-byte units",
    "len8" / Int16ul * "whole packet without the trailer, in 8-byte units",
    "flags" / Int16ul * "bit 0: completion requested",
    "trans_id" / Int64ul,
)

VMPIPE_PROTO_HEADER = Struct(
    "pkt_type" / Int32ul * "PIPE_MSG_DATA",
    "data_size" / Int32ul * "bytes of stream data that follow; 0: the peer closed",
)

# --- what the header generator emits (C_HEADER below, rendered by wslx.codegen.c_structs) --------------------------------------------
TITLE = "VMBus channel messages, ring buffers and hv_sock"
PREFIX = "VMBUS"
DOC = """
VMBus rides on SynIC: the host's channel messages arrive in SINT 2's message slot with
message type 1; the guest sends with HvCallPostMessage (message type 1) to the message
connection id: 1 before version 5.0, from 5.0 InitiateContact goes to id 4 and later
messages to VersionResponse.msg_conn_id. Every channel message starts with
vmbus_channel_message_header and fits in 240 bytes.

Minimal sequence: InitiateContact (newest version first; step down while version_supported
is 0); RequestOffers until AllOffersDelivered; GpadlHeader (+ GpadlBody) for the ring pages,
GpadlCreated; OpenChannel, OpenResult; then HvCallSignalEvent to the offer's connection_id.

Ring buffers: the GPADL covers [guest-to-host ring | host-to-guest ring], each one
hv_ring_buffer control page plus data pages; OpenChannel.downstream_ringbuffer_pageoffset is
the page count of the first ring. A packet is a vmpacket_descriptor, payload, padding to 8
bytes, then an 8-byte trailer whose upper 32 bits are the packet's start offset. A ring is
never filled completely. The producer publishes write_index after the data and signals only
if interrupt_mask is 0 and the ring was empty.

hv_sock: a channel whose offer has OFFER_TLNPI_PROVIDER_OFFER. vsock port P is the service
GUID P-facb-11e6-bd58-64006a7986d3 (P in data1). A guest connects to host port P with
TlConnectRequest {endpoint: its local port, service: P}; the host answers with an offer
(if_type = service, if_instance = endpoint) that the guest opens as usual. Stream data
travels in in-band packets whose payload starts with vmpipe_proto_header; data_size 0 means
the peer closed.
"""

CONSTANTS = [
    ("MESSAGE_SINT", MESSAGE_SINT, "SINT of VMBus messages and events"),
    ("MESSAGE_CONNECTION_ID", MESSAGE_CONNECTION_ID, "host message connection id before 5.0"),
    ("MESSAGE_CONNECTION_ID_4", MESSAGE_CONNECTION_ID_4, "InitiateContact connection id from 5.0"),
    ("EVENT_CONNECTION_ID", EVENT_CONNECTION_ID, "guest-to-host event connection id before 4.0"),
    ("MONITOR_CONNECTION_ID", MONITOR_CONNECTION_ID, "monitor page connection id"),
    ("MAX_USER_DEFINED_BYTES", MAX_USER_DEFINED_BYTES, "offer/open user data"),
    ("MAX_PIPE_USER_DEFINED_BYTES", MAX_PIPE_USER_DEFINED_BYTES, "pipe offer user data"),
    ("GPADL_HEADER_MAX_PFNS", GPADL_HEADER_MAX_PFNS, "pfns in a GpadlHeader with one range"),
    ("GPADL_BODY_MAX_PFNS", GPADL_BODY_MAX_PFNS, "pfns in a GpadlBody"),
    ("GPADL_TYPE_RING_BUFFER", GPADL_TYPE_RING_BUFFER, "GPADL kind (Linux bookkeeping)"),
    ("PACKET_TRAILER_SIZE", PACKET_TRAILER_SIZE, "trailer after each packet"),
    ("PACKET_ALIGN", PACKET_ALIGN, "packets are padded to this"),
    ("DATA_PACKET_FLAG_COMPLETION_REQUESTED", DATA_PACKET_FLAG_COMPLETION_REQUESTED, "vmpacket_descriptor.flags"),
    ("RING_FEATURE_PENDING_SEND_SIZE", RING_FEATURE_PENDING_SEND_SIZE, "hv_ring_buffer.feature_bits"),
    ("CONNECTION_STATE_OK", CONNECTION_STATE_OK, "VersionResponse.connection_state"),
    ("OFFER_MONITOR_ALLOCATED", OFFER_MONITOR_ALLOCATED, "offer monitor_flags bit"),
    ("OFFER_DEDICATED_INTERRUPT", OFFER_DEDICATED_INTERRUPT, "offer interrupt_flags bit"),
    ("OFFER_PIPE_USER_DEF_OFFSET", OFFER_PIPE_USER_DEF_OFFSET, "pipe user bytes within user_def"),
    ("INITIATE_CONTACT_OFF_MSG_SINT", INITIATE_CONTACT_OFF_MSG_SINT, "message SINT byte (from 5.0)"),
    ("GUID_SIZE", GUID_SIZE, "GUID bytes on the wire (data1..3 little-endian)"),
    ("PIPE_MSG_DATA", PIPE_MSG_DATA, "hv_sock data packet"),
    ("HVSOCK_MTU", HVSOCK_MTU, "largest hv_sock payload per packet"),
    ("HVSOCK_RING_PAGES", HVSOCK_RING_PAGES, "hv_sock ring pages per direction"),
    ("HVSOCK_GUID_DATA2", HVSOCK_GUID_DATA2, "hv_sock service GUID data2"),
    ("HVSOCK_GUID_DATA3", HVSOCK_GUID_DATA3, "hv_sock service GUID data3"),
    ("HVSOCK_GUID_DATA4", int.from_bytes(HVSOCK_GUID_DATA4, "big"), "hv_sock service GUID data4, byte 0 first"),
    ("AGENTX_HVSOCK_PORT", AGENTX_HVSOCK_PORT, "AgentX control port (GUID data1)"),
]
ENUMS = [("VMBUS_VERSION", Version), ("CHANNELMSG", ChannelMessageType), ("VMBUS_OFFER", OfferFlags),
         ("VM_PKT", PacketType)]
STRUCTS = [
    ("vmbus_channel_message_header", VMBUS_CHANNEL_MESSAGE_HEADER, "starts every channel message"),
    ("vmbus_channel_offer_channel", VMBUS_CHANNEL_OFFER_CHANNEL, "OfferChannel (host); 196 bytes, packed", True),
    ("vmbus_channel_rescind_offer", VMBUS_CHANNEL_RESCIND_OFFER, "RescindChannelOffer (host)"),
    ("vmbus_channel_request_offers", VMBUS_CHANNEL_REQUEST_OFFERS, "RequestOffers (guest)"),
    ("vmbus_channel_all_offers_delivered", VMBUS_CHANNEL_ALL_OFFERS_DELIVERED, "AllOffersDelivered (host)"),
    ("vmbus_channel_open_channel", VMBUS_CHANNEL_OPEN_CHANNEL, "OpenChannel (guest)"),
    ("vmbus_channel_open_result", VMBUS_CHANNEL_OPEN_RESULT, "OpenChannelResult (host)"),
    ("vmbus_channel_close_channel", VMBUS_CHANNEL_CLOSE_CHANNEL, "CloseChannel (guest)"),
    ("gpa_range", GPA_RANGE, "one GPADL range; its pfns follow"),
    ("vmbus_channel_gpadl_header", VMBUS_CHANNEL_GPADL_HEADER, "GpadlHeader (guest); ranges follow"),
    ("vmbus_channel_gpadl_body", VMBUS_CHANNEL_GPADL_BODY, "GpadlBody (guest); pfns follow"),
    ("vmbus_channel_gpadl_created", VMBUS_CHANNEL_GPADL_CREATED, "GpadlCreated (host)"),
    ("vmbus_channel_gpadl_teardown", VMBUS_CHANNEL_GPADL_TEARDOWN, "GpadlTeardown (guest)"),
    ("vmbus_channel_gpadl_torndown", VMBUS_CHANNEL_GPADL_TORNDOWN, "GpadlTorndown (host)"),
    ("vmbus_channel_relid_released", VMBUS_CHANNEL_RELID_RELEASED, "RelIdReleased (guest, after a rescind)"),
    ("vmbus_channel_initiate_contact", VMBUS_CHANNEL_INITIATE_CONTACT, "InitiateContact (guest)"),
    ("vmbus_channel_version_response", VMBUS_CHANNEL_VERSION_RESPONSE, "VersionResponse (host)"),
    ("vmbus_channel_version_response2", VMBUS_CHANNEL_VERSION_RESPONSE2, "VersionResponse to Copper (host)"),
    ("vmbus_channel_unload", VMBUS_CHANNEL_UNLOAD, "Unload (guest)"),
    ("vmbus_channel_unload_response", VMBUS_CHANNEL_UNLOAD_RESPONSE, "UnloadResponse (host)"),
    ("vmbus_channel_tl_connect_request", VMBUS_CHANNEL_TL_CONNECT_REQUEST, "TlConnectRequest (guest, hv_sock)"),
    ("vmbus_channel_tl_connect_result", VMBUS_CHANNEL_TL_CONNECT_RESULT, "TlConnectResult (host, 5.0+, failure)"),
    ("hv_ring_buffer", HV_RING_BUFFER, "ring control page; the data area follows"),
    ("vmpacket_descriptor", VMPACKET_DESCRIPTOR, "starts every ring packet"),
    ("vmpipe_proto_header", VMPIPE_PROTO_HEADER, "hv_sock: starts every in-band payload"),
]

C_HEADER = header_from_tables("vmbus", prefix=PREFIX, title=TITLE, doc=DOC, constants=CONSTANTS, enums=ENUMS,
                              structs=STRUCTS)
