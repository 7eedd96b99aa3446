"""Fidelity of wslx.spec.hyperv and wslx.spec.vmbus against an independent source: Linux 6.1's own definitions.

A C program is compiled from Linux's definitions (tests/helpers/linux_hv.py takes them verbatim out of
include/asm-generic/hyperv-tlfs.h, arch/x86/include/asm/hyperv-tlfs.h, include/linux/hyperv.h,
drivers/hv/hyperv_vmbus.h, net/vmw_vsock/hyperv_transport.c, with type shims). It prints every constant,
bit position, sizeof and offsetof our specs define that Linux also defines; the test compares each with the
spec and names every mismatch. Values Linux 6.1 does not define are checked against the facts sheet
(shared/reference/hyperv-guest-facts.md), quoting it, with the public source it names.
"""
from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

from helpers import linux_hv
from wslx.codegen import c_structs
from wslx.spec import hyperv as hyperv_spec, vmbus as vmbus_spec
from wslx.spec import hyperv as H
from wslx.spec import vmbus as V

FACTS = Path(os.environ.get("WSLX_FACTS", "/work/shared/reference/hyperv-guest-facts.md"))
HVSIM_FACTS = FACTS.with_name("hvsim-facts.md")


def _probe(ctype: str, assign: str) -> str:
    """Value of a register union after setting one bitfield: the mask Linux's bitfield occupies."""
    return f"({{ {ctype} x_; memset(&x_, 0, sizeof x_); x_.{assign}; x_.as_uint64; }})"


def _probe_u32(ctype: str, assign: str) -> str:
    return f"({{ {ctype} x_; memset(&x_, 0, sizeof x_); x_.{assign}; x_.asu32; }})"


def _byte_probe(ctype: str, assign: str) -> str:
    """Byte offset at which setting a bitfield of a struct lands."""
    return f"({{ {ctype} x_; memset(&x_, 0, sizeof x_); x_.{assign}; first_nonzero(&x_, sizeof x_); }})"


def _byte_value(ctype: str, assign: str) -> str:
    return (f"({{ {ctype} x_; memset(&x_, 0, sizeof x_); x_.{assign}; "
            f"byte_at(&x_, first_nonzero(&x_, sizeof x_)); }})")


SINT = "union hv_synic_sint"
STIMER = "union hv_stimer_config"
OFFER = "struct vmbus_channel_offer_channel"

# (label, our value, Linux C expression)
CONSTANTS: list[tuple[str, int, str]] = [
    # CPUID
    ("CPUID_FEATURES_ECX_HYPERVISOR", H.CPUID_FEATURES_ECX_HYPERVISOR, "1u << (X86_FEATURE_HYPERVISOR % 32)"),
    ("CPUID_FEATURES_ECX_HYPERVISOR word", 4, "X86_FEATURE_HYPERVISOR / 32"),  # word 4 = CPUID.1:ECX
    ("CPUID_MIN_MAX_LEAF", H.CPUID_MIN_MAX_LEAF, "HYPERV_CPUID_MIN"),
    *[(f"CpuidLeaf.{m.name}", m.value, f"HYPERV_CPUID_{linux}") for m, linux in [
        (H.CpuidLeaf.VENDOR_AND_MAX_FUNCTIONS, "VENDOR_AND_MAX_FUNCTIONS"), (H.CpuidLeaf.INTERFACE, "INTERFACE"),
        (H.CpuidLeaf.VERSION, "VERSION"), (H.CpuidLeaf.FEATURES, "FEATURES"),
        (H.CpuidLeaf.ENLIGHTENMENT_INFO, "ENLIGHTMENT_INFO"), (H.CpuidLeaf.IMPLEMENT_LIMITS, "IMPLEMENT_LIMITS")]],
    *[(f"FeaturesEax.{m.name}", m.value, f"HV_MSR_{m.name}_AVAILABLE") for m in H.FeaturesEax],
    ("FeaturesEbx.CREATE_PARTITIONS", H.FeaturesEbx.CREATE_PARTITIONS, "HV_CREATE_PARTITIONS"),
    ("FeaturesEbx.ACCESS_PARTITION_ID", H.FeaturesEbx.ACCESS_PARTITION_ID, "HV_ACCESS_PARTITION_ID"),
    ("FeaturesEbx.POST_MESSAGES", H.FeaturesEbx.POST_MESSAGES, "HV_POST_MESSAGES"),
    ("FeaturesEbx.SIGNAL_EVENTS", H.FeaturesEbx.SIGNAL_EVENTS, "HV_SIGNAL_EVENTS"),
    ("FeaturesEdx.HYPERCALL_XMM_INPUT", H.FeaturesEdx.HYPERCALL_XMM_INPUT, "HV_X64_HYPERCALL_XMM_INPUT_AVAILABLE"),
    ("FeaturesEdx.STIMER_DIRECT_MODE", H.FeaturesEdx.STIMER_DIRECT_MODE, "HV_STIMER_DIRECT_MODE_AVAILABLE"),
    ("RecommendationsEax.LOCAL_TLB_FLUSH", H.RecommendationsEax.LOCAL_TLB_FLUSH, "HV_X64_LOCAL_TLB_FLUSH_RECOMMENDED"),
    ("RecommendationsEax.REMOTE_TLB_FLUSH", H.RecommendationsEax.REMOTE_TLB_FLUSH,
     "HV_X64_REMOTE_TLB_FLUSH_RECOMMENDED"),
    ("RecommendationsEax.RELAXED_TIMING", H.RecommendationsEax.RELAXED_TIMING, "HV_X64_RELAXED_TIMING_RECOMMENDED"),
    ("RecommendationsEax.DEPRECATING_AEOI", H.RecommendationsEax.DEPRECATING_AEOI, "HV_DEPRECATING_AEOI_RECOMMENDED"),
    # MSRs
    ("Msr.GUEST_OS_ID", H.Msr.GUEST_OS_ID, "HV_X64_MSR_GUEST_OS_ID"),
    ("Msr.HYPERCALL", H.Msr.HYPERCALL, "HV_X64_MSR_HYPERCALL"),
    *[(f"Msr.{m.name}", m.value, f"HV_REGISTER_{m.name}") for m in H.Msr
      if m.name not in ("GUEST_OS_ID", "HYPERCALL")],
    ("PAGE_SIZE", H.PAGE_SIZE, "HV_HYP_PAGE_SIZE"),
    ("PAGE_MSR_ENABLE (HYPERCALL)", H.PAGE_MSR_ENABLE, "HV_X64_MSR_HYPERCALL_ENABLE"),
    ("PAGE_MSR_ENABLE (REFERENCE_TSC)", H.PAGE_MSR_ENABLE, "HV_X64_MSR_TSC_REFERENCE_ENABLE"),
    ("PAGE_MSR_ENABLE (SIMP)", H.PAGE_MSR_ENABLE, "HV_SYNIC_SIMP_ENABLE"),
    ("PAGE_MSR_ENABLE (SIEFP)", H.PAGE_MSR_ENABLE, "HV_SYNIC_SIEFP_ENABLE"),
    ("PAGE_MSR_PFN_SHIFT (HYPERCALL)", H.PAGE_MSR_PFN_SHIFT, "HV_X64_MSR_HYPERCALL_PAGE_ADDRESS_SHIFT"),
    ("PAGE_MSR_PFN_SHIFT (REFERENCE_TSC)", H.PAGE_MSR_PFN_SHIFT, "HV_X64_MSR_TSC_REFERENCE_ADDRESS_SHIFT"),
    ("PAGE_MSR_PFN_MASK (HYPERCALL)", H.PAGE_MSR_PFN_MASK, "HV_X64_MSR_HYPERCALL_PAGE_ADDRESS_MASK"),
    ("PAGE_MSR_PFN_MASK (SIMP bitfield)", H.PAGE_MSR_PFN_MASK >> 12,
     _probe("union hv_synic_simp", "base_simp_gpa = ~0ULL") + " >> 12"),
    ("PAGE_MSR_PFN_MASK (SIEFP bitfield)", H.PAGE_MSR_PFN_MASK >> 12,
     _probe("union hv_synic_siefp", "base_siefp_gpa = ~0ULL") + " >> 12"),
    ("PAGE_MSR_PFN_MASK (REFERENCE_TSC bitfield)", H.PAGE_MSR_PFN_MASK >> 12,
     _probe("union hv_reference_tsc_msr", "pfn = ~0ULL") + " >> 12"),
    ("PAGE_MSR_ENABLE (hypercall bitfield)", H.PAGE_MSR_ENABLE,
     _probe("union hv_x64_msr_hypercall_contents", "enable = 1")),
    ("SCONTROL_ENABLE", H.SCONTROL_ENABLE, "HV_SYNIC_CONTROL_ENABLE"),
    ("SCONTROL_ENABLE (bitfield)", H.SCONTROL_ENABLE, _probe("union hv_synic_scontrol", "enable = 1")),
    ("SYNIC_VERSION", H.SYNIC_VERSION, "HV_SYNIC_VERSION_1"),
    ("GUEST_OS_ID_LINUX_VENDOR", H.GUEST_OS_ID_LINUX_VENDOR, "HV_LINUX_VENDOR_ID"),
    ("SINT_COUNT", H.SINT_COUNT, "HV_SYNIC_SINT_COUNT"),
    ("STIMER_COUNT", H.STIMER_COUNT, "HV_SYNIC_STIMER_COUNT"),
    ("SintBits.MASKED", H.SintBits.MASKED, "HV_SYNIC_SINT_MASKED"),
    ("SintBits.AUTO_EOI", H.SintBits.AUTO_EOI, "HV_SYNIC_SINT_AUTO_EOI"),
    ("SintBits.MASKED (bitfield)", H.SintBits.MASKED, _probe(SINT, "masked = 1")),
    ("SintBits.AUTO_EOI (bitfield)", H.SintBits.AUTO_EOI, _probe(SINT, "auto_eoi = 1")),
    ("SintBits.POLLING (bitfield)", H.SintBits.POLLING, _probe(SINT, "polling = 1")),
    ("SINT_VECTOR_MASK", H.SINT_VECTOR_MASK, "HV_SYNIC_SINT_VECTOR_MASK"),
    ("SINT_VECTOR_MASK (bitfield)", H.SINT_VECTOR_MASK, _probe(SINT, "vector = 0xFF")),
    ("SINT_FIRST_VALID_VECTOR", H.SINT_FIRST_VALID_VECTOR, "HV_SYNIC_FIRST_VALID_VECTOR"),
    ("StimerConfigBits.ENABLE", H.StimerConfigBits.ENABLE, _probe(STIMER, "enable = 1")),
    ("StimerConfigBits.PERIODIC", H.StimerConfigBits.PERIODIC, _probe(STIMER, "periodic = 1")),
    ("StimerConfigBits.LAZY", H.StimerConfigBits.LAZY, _probe(STIMER, "lazy = 1")),
    ("StimerConfigBits.AUTO_ENABLE", H.StimerConfigBits.AUTO_ENABLE, _probe(STIMER, "auto_enable = 1")),
    ("StimerConfigBits.DIRECT_MODE", H.StimerConfigBits.DIRECT_MODE, _probe(STIMER, "direct_mode = 1")),
    ("STIMER_APIC_VECTOR_MASK", H.STIMER_APIC_VECTOR_MASK, _probe(STIMER, "apic_vector = 0xFF")),
    ("STIMER_APIC_VECTOR_SHIFT", H.STIMER_APIC_VECTOR_SHIFT,
     "__builtin_ctzll(" + _probe(STIMER, "apic_vector = 0xFF") + ")"),
    ("STIMER_SINT_MASK", H.STIMER_SINT_MASK, _probe(STIMER, "sintx = 0xF")),
    ("STIMER_SINT_SHIFT", H.STIMER_SINT_SHIFT, "__builtin_ctzll(" + _probe(STIMER, "sintx = 0xF") + ")"),
    ("CLOCK_HZ", H.CLOCK_HZ, "HV_CLOCK_HZ"),
    # hypercalls
    ("HYPERCALL_FAST", H.HYPERCALL_FAST, "HV_HYPERCALL_FAST_BIT"),
    ("HYPERCALL_VARHEAD_SHIFT", H.HYPERCALL_VARHEAD_SHIFT, "HV_HYPERCALL_VARHEAD_OFFSET"),
    ("HYPERCALL_VARHEAD_MASK", H.HYPERCALL_VARHEAD_MASK, "HV_HYPERCALL_VARHEAD_MASK"),
    ("HYPERCALL_REP_COUNT_SHIFT", H.HYPERCALL_REP_COUNT_SHIFT, "HV_HYPERCALL_REP_COMP_OFFSET"),
    ("HYPERCALL_REP_COUNT_MASK", H.HYPERCALL_REP_COUNT_MASK, "HV_HYPERCALL_REP_COMP_MASK"),
    ("HYPERCALL_REP_START_SHIFT", H.HYPERCALL_REP_START_SHIFT, "HV_HYPERCALL_REP_START_OFFSET"),
    ("HYPERCALL_REP_START_MASK", H.HYPERCALL_REP_START_MASK, "HV_HYPERCALL_REP_START_MASK"),
    ("HYPERCALL_RESERVED_MASK", H.HYPERCALL_RESERVED_MASK, "HV_HYPERCALL_RSVD_MASK"),
    ("RESULT_STATUS_MASK", H.RESULT_STATUS_MASK, "HV_HYPERCALL_RESULT_MASK"),
    ("RESULT_REPS_SHIFT", H.RESULT_REPS_SHIFT, "HV_HYPERCALL_REP_COMP_OFFSET"),
    ("RESULT_REPS_MASK", H.RESULT_REPS_MASK, "HV_HYPERCALL_REP_COMP_MASK"),
    ("HYPERCALL_PARAM_ALIGN", H.HYPERCALL_PARAM_ALIGN, "HV_HYPERCALL_PARAM_ALIGN"),
    ("PARTITION_ID_SELF", H.PARTITION_ID_SELF, "HV_PARTITION_ID_SELF"),
    *[(f"HvCall.{m.name}", m.value, f"HVCALL_{m.name}") for m in H.HvCall],
    *[(f"HvStatus.{m.name}", m.value, f"HV_STATUS_{m.name}") for m in H.HvStatus],
    *[(f"TlbFlushFlags.{m.name}", m.value, f"HV_FLUSH_{m.name}") for m in H.TlbFlushFlags],
    ("CONNECTION_ID_MASK", H.CONNECTION_ID_MASK, _probe_u32("union hv_connection_id", "u.id = 0xFFFFFF")),
    ("CONNECTION_ID_MASK (port id)", H.CONNECTION_ID_MASK, _probe_u32("union hv_port_id", "u.id = 0xFFFFFF")),
    # SynIC
    ("MESSAGE_PAYLOAD_SIZE", H.MESSAGE_PAYLOAD_SIZE, "HV_MESSAGE_PAYLOAD_BYTE_COUNT"),
    ("EVENT_FLAGS_BYTES", H.EVENT_FLAGS_BYTES, "HV_EVENT_FLAGS_COUNT / 8"),
    ("MESSAGE_FLAG_PENDING", H.MESSAGE_FLAG_PENDING,
     "({ union hv_message_flags f_; f_.asu8 = 0; f_.msg_pending = 1; f_.asu8; })"),
    ("hv_message slots per page", H.SINT_COUNT, "HV_SYNIC_SINT_COUNT"),
    *[(f"HvMessageType.{m.name}", m.value, f"HVMSG_{m.name}") for m in H.HvMessageType if m.name != "VMBUS"],
    # VMBus
    ("MESSAGE_SINT", V.MESSAGE_SINT, "VMBUS_MESSAGE_SINT"),
    ("MESSAGE_CONNECTION_ID", V.MESSAGE_CONNECTION_ID, "VMBUS_MESSAGE_CONNECTION_ID"),
    ("MESSAGE_CONNECTION_ID_4", V.MESSAGE_CONNECTION_ID_4, "VMBUS_MESSAGE_CONNECTION_ID_4"),
    ("EVENT_CONNECTION_ID", V.EVENT_CONNECTION_ID, "VMBUS_EVENT_CONNECTION_ID"),
    ("MONITOR_CONNECTION_ID", V.MONITOR_CONNECTION_ID, "VMBUS_MONITOR_CONNECTION_ID"),
    ("MAX_USER_DEFINED_BYTES", V.MAX_USER_DEFINED_BYTES, "MAX_USER_DEFINED_BYTES"),
    ("MAX_PIPE_USER_DEFINED_BYTES", V.MAX_PIPE_USER_DEFINED_BYTES, "MAX_PIPE_USER_DEFINED_BYTES"),
    # drivers/hv/channel.c create_gpadl_header(): pfnsize = MAX_SIZE_CHANNEL_MESSAGE - sizeof(header) - sizeof(range)
    ("GPADL_HEADER_MAX_PFNS", V.GPADL_HEADER_MAX_PFNS, "(MAX_SIZE_CHANNEL_MESSAGE - sizeof(struct "
                                                        "vmbus_channel_gpadl_header) - sizeof(struct gpa_range)) / 8"),
    ("GPADL_BODY_MAX_PFNS", V.GPADL_BODY_MAX_PFNS,
     "(MAX_SIZE_CHANNEL_MESSAGE - sizeof(struct vmbus_channel_gpadl_body)) / 8"),
    ("GPADL_TYPE_RING_BUFFER", V.GPADL_TYPE_RING_BUFFER, "GPADL_TYPE_RING_BUFFER"),
    ("PACKET_TRAILER_SIZE", V.PACKET_TRAILER_SIZE, "VMBUS_PKT_TRAILER_SIZE"),
    ("DATA_PACKET_FLAG_COMPLETION_REQUESTED", V.DATA_PACKET_FLAG_COMPLETION_REQUESTED,
     "VMBUS_DATA_PACKET_FLAG_COMPLETION_REQUESTED"),
    ("RING_FEATURE_PENDING_SEND_SIZE", V.RING_FEATURE_PENDING_SEND_SIZE,
     "({ struct hv_ring_buffer *r_ = calloc(1, sizeof *r_); r_->feature_bits.feat_pending_send_sz = 1; "
     "unsigned v_ = r_->feature_bits.value; free(r_); v_; })"),
    ("OFFER_MONITOR_ALLOCATED", V.OFFER_MONITOR_ALLOCATED, _byte_value(OFFER, "monitor_allocated = 1")),
    ("OFFER_DEDICATED_INTERRUPT", V.OFFER_DEDICATED_INTERRUPT, _byte_value(OFFER, "is_dedicated_interrupt = 1")),
    ("OFFER_PIPE_USER_DEF_OFFSET", V.OFFER_PIPE_USER_DEF_OFFSET,
     "offsetof(struct vmbus_channel_offer, u.pipe.user_def) - offsetof(struct vmbus_channel_offer, u.std.user_def)"),
    ("INITIATE_CONTACT_OFF_MSG_SINT", V.INITIATE_CONTACT_OFF_MSG_SINT,
     "offsetof(struct vmbus_channel_initiate_contact, msg_sint)"),
    ("GUID_SIZE", V.GUID_SIZE, "UUID_SIZE"),
    ("GUID_SIZE (guid_t)", V.GUID_SIZE, "sizeof(guid_t)"),
    ("HVSOCK_MTU", V.HVSOCK_MTU, "HVS_MTU_SIZE"),
    ("HVSOCK_RING_PAGES (send)", V.HVSOCK_RING_PAGES, "RINGBUFFER_HVS_SND_SIZE / HV_HYP_PAGE_SIZE"),
    ("HVSOCK_RING_PAGES (receive)", V.HVSOCK_RING_PAGES, "RINGBUFFER_HVS_RCV_SIZE / HV_HYP_PAGE_SIZE"),
    ("hv_sock port is GUID data1 (offset)", 0, "offsetof(union hvs_service_id, svm_port)"),
    ("hv_sock port is GUID data1 (size)", 4, "sizeof(((union hvs_service_id *)0)->svm_port)"),
    *[(f"HVSOCK_GUID_TEMPLATE[{i}]", b, f"srv_id_template.b[{i}]") for i, b in enumerate(V.HVSOCK_GUID_TEMPLATE)],
    *[(f"Version.{m.name}", m.value, f"VERSION_{m.name}") for m in V.Version if m.name != "COPPER"],
    *[(f"ChannelMessageType.{m.name}", m.value, f"CHANNELMSG_{m.name}") for m in V.ChannelMessageType],
    *[(f"OfferFlags.{m.name}", m.value, f"VMBUS_CHANNEL_{m.name}") for m in V.OfferFlags],
    *[(f"PacketType.{m.name}", m.value, f"VM_PKT_{m.name}") for m in V.PacketType],
]

# our struct -> (Linux type, {our field: Linux member}); a member of the form "=bitfield = 1" is located by
# setting the bitfield and finding the byte it lands in; "" is the whole Linux struct (header-only messages).
STRUCTS: dict[str, tuple[str, dict[str, str]]] = {
    "hv_message_header": ("struct hv_message_header", {"flags": "message_flags"}),
    "hv_message": ("struct hv_message", {"payload": "u.payload"}),
    "hv_timer_message_payload": ("struct hv_timer_message_payload", {}),
    "hv_synic_event_flags": ("union hv_synic_event_flags", {}),
    "hv_input_post_message": ("struct hv_input_post_message", {"connection_id": "connectionid"}),
    "hv_get_partition_id_output": ("struct hv_get_partition_id", {}),
    "hv_tlb_flush_input": ("struct hv_tlb_flush", {}),
    "hv_reference_tsc_page": ("struct ms_hyperv_tsc_page", {}),
    "vmbus_channel_message_header": ("struct vmbus_channel_message_header", {}),
    "vmbus_channel_offer_channel": (OFFER, {
        **{f: f"offer.{f}" for f in ("if_type", "if_instance", "reserved1", "reserved2", "chn_flags",
                                     "mmio_megabytes", "sub_channel_index", "reserved3")},
        "user_def": "offer.u.std.user_def", "monitor_flags": "=monitor_allocated = 1",
        "interrupt_flags": "=is_dedicated_interrupt = 1"}),
    "vmbus_channel_rescind_offer": ("struct vmbus_channel_rescind_offer", {}),
    "vmbus_channel_request_offers": ("struct vmbus_channel_message_header", {"header": ""}),
    "vmbus_channel_all_offers_delivered": ("struct vmbus_channel_message_header", {"header": ""}),
    "vmbus_channel_open_channel": ("struct vmbus_channel_open_channel", {}),
    "vmbus_channel_open_result": ("struct vmbus_channel_open_result", {}),
    "vmbus_channel_close_channel": ("struct vmbus_channel_close_channel", {}),
    "gpa_range": ("struct gpa_range", {}),
    "vmbus_channel_gpadl_header": ("struct vmbus_channel_gpadl_header", {}),
    "vmbus_channel_gpadl_body": ("struct vmbus_channel_gpadl_body", {}),
    "vmbus_channel_gpadl_created": ("struct vmbus_channel_gpadl_created", {}),
    "vmbus_channel_gpadl_teardown": ("struct vmbus_channel_gpadl_teardown", {}),
    "vmbus_channel_gpadl_torndown": ("struct vmbus_channel_gpadl_torndown", {}),
    "vmbus_channel_relid_released": ("struct vmbus_channel_relid_released", {}),
    "vmbus_channel_initiate_contact": ("struct vmbus_channel_initiate_contact", {}),
    "vmbus_channel_version_response": ("struct vmbus_channel_version_response", {}),
    "vmbus_channel_unload": ("struct vmbus_channel_message_header", {"header": ""}),
    "vmbus_channel_unload_response": ("struct vmbus_channel_message_header", {"header": ""}),
    "vmbus_channel_tl_connect_request": ("struct vmbus_channel_tl_connect_request", {}),
    "hv_ring_buffer": ("struct hv_ring_buffer", {}),
    "vmpacket_descriptor": ("struct vmpacket_descriptor", {}),
    "vmpipe_proto_header": ("struct vmpipe_proto_header", {}),
}

# Defined by our specs, not by Linux 6.1: checked against the facts sheet (quote must appear in it, value in
# the quote), which names the public source. (name, our value as written in the quote, quote, source)
FACTS_CHECKS = [
    ("INTERFACE_SIGNATURE", f"0x{H.INTERFACE_SIGNATURE:X}", 'EAX = 0x31237648 ("Hv#1")', "TLFS Feature Discovery"),
    ("VENDOR_SIGNATURE", H.VENDOR_SIGNATURE.decode(), 'hold "Micr" "osof" "t Hv"', "TLFS Feature Discovery"),
    ("HYPERCALL_LOCKED", "bit 1", "bit 0 enable, bit 1 locked, bits 63:12 page frame", "TLFS Hypercall page"),
    ("GUEST_OS_ID_OPEN_SOURCE", "bit 63", "Open-source form: bit 63 = 1", "TLFS Guest OS identity"),
    ("HYPERCALL_CODE_MASK", "bits 15:0", "bits 15:0 call code", "TLFS Hypercall inputs"),
    ("SIGNAL_EVENT_FLAG_SHIFT SIGNAL_EVENT_FLAG_MASK", "bits 47:32", "flag number in bits 47:32 of RDX", "TLFS HvCallSignalEvent"),
    ("HvMessageType.VMBUS", "message type 1", "Messages go out with HvCallPostMessage, message type 1",
     "Linux drivers/hv/connection.c vmbus_post_msg"),
    ("Version.COPPER", "6.0 (Copper)", "5.3 (Iron), 6.0 (Copper)", "OpenVMM vmbus_core protocol.rs Version"),
    ("CONNECTION_STATE_OK", "(0 ok)", "u8 connection_state (0 ok)", "OpenVMM ConnectionState::SUCCESSFUL"),
    ("PACKET_ALIGN", "padding to 8 bytes", "payload, padding to 8 bytes", "Linux drivers/hv/ring_buffer.c"),
    ("PIPE_MSG_DATA", "type = 1", "u32 type = 1; u32 data_size", "Linux hyperv_transport.c hvs_send_data"),
    ("HVSOCK_GUID (port in data1)", "P in the first\n  32-bit field", "P in the first 32-bit field",
     "Linux hyperv_transport.c union hvs_service_id"),
]
HVSIM_FACTS_CHECKS = [
    ("HYPERCALL_PAGE_CODE_INTEL", "vmcall; ret", "a hypercall page filled with `vmcall; ret` (what Hyper-V writes)",
     "TLFS Hypercall page; QEMU target/i386"),
]
# Not in Linux 6.1 nor the facts sheet, taken from OpenVMM vm/devices/vmbus/vmbus_core/src/protocol.rs and not
# mechanically checkable here: TlConnectResult {endpoint_id, service_id, status: i32}, VersionResponse2
# {VersionResponse, supported_features: u32}, CpuidLeaf.HARDWARE_FEATURES (TLFS leaf 0x40000006).
NOT_IN_LINUX = {"vmbus_channel_tl_connect_result", "vmbus_channel_version_response2"}


def field_checks() -> list[tuple[str, int, str]]:
    """sizeof of every struct and offsetof/sizeof of every field of ours that Linux also defines."""
    checks = []
    specs = {cs.c_name: (cs, fields, size) for spec in (hyperv_spec.C_HEADER, vmbus_spec.C_HEADER)
             for cs, fields, size in c_structs.layouts(spec)}
    missing = set(specs) - set(STRUCTS) - NOT_IN_LINUX
    assert not missing, f"structs without a Linux counterpart listed in the fidelity test: {sorted(missing)}"
    for name, (ctype, members) in STRUCTS.items():
        cs, fields, size = specs[name]
        if not all(members.get(f.name) == "" for f in fields):
            checks.append((f"sizeof {name}", size, f"sizeof({ctype})"))
        for f in fields:
            member = members.get(f.name, f.name)
            label = f"{name}.{f.name}"
            if member == "":
                checks.append((f"offsetof {label}", f.offset, "0"))
                checks.append((f"sizeof {label}", f.size, f"sizeof({ctype})"))
            elif member.startswith("="):
                checks.append((f"offsetof {label}", f.offset, _byte_probe(ctype, member[1:])))
            else:
                checks.append((f"offsetof {label}", f.offset, f"offsetof({ctype}, {member})"))
                checks.append((f"sizeof {label}", f.size, f"sizeof((({ctype} *)0)->{member})"))
    return checks


@pytest.fixture(scope="module")
def linux_tree():
    from wslx.kconfig.errors import SourceTreeError
    from wslx.kconfig.source import find_source
    try:
        return find_source(log=lambda *_: None).path
    except (SourceTreeError, OSError) as e:
        pytest.skip(f"linux-source-6.1 is not available (apt install linux-source-6.1): {e}")


@pytest.fixture(scope="module")
def linux_values(linux_tree, tmp_path_factory):
    checks = [(label, expr) for label, _, expr in CONSTANTS + field_checks()]
    d = tmp_path_factory.mktemp("hv-fidelity")
    src = d / "linux_hv_values.c"
    src.write_text(linux_hv.program(linux_tree, checks).replace("#include <string.h>",
                                                                "#include <string.h>\n#include <stdlib.h>"))
    exe = d / "linux_hv_values"
    r = subprocess.run(["gcc", "-std=gnu11", "-w", str(src), "-o", str(exe)], capture_output=True, text=True)
    assert r.returncode == 0, f"Linux's definitions did not compile ({src}):\n{r.stderr[-4000:]}"
    out = subprocess.run([str(exe)], capture_output=True, text=True, check=True, timeout=30).stdout
    return dict(line.split("\t") for line in out.splitlines())


def test_every_constant_matches_linux(linux_values):
    mismatches = [f"{label}: spec {int(ours):#x}, Linux {int(linux_values[label]):#x} ({expr})"
                  for label, ours, expr in CONSTANTS if int(linux_values[label]) != int(ours)]
    print(f"\n[hv-fidelity] {len(CONSTANTS)} constants checked against Linux 6.1")
    assert not mismatches, "spec differs from Linux 6.1:\n" + "\n".join(mismatches)
    assert len(CONSTANTS) >= 200


def test_every_struct_size_and_field_matches_linux(linux_values):
    checks = field_checks()
    mismatches = [f"{label}: spec {ours}, Linux {linux_values[label]} ({expr})"
                  for label, ours, expr in checks if int(linux_values[label]) != ours]
    n_structs = sum(1 for label, _, _ in checks if label.startswith("sizeof ") and "." not in label)
    n_fields = sum(1 for label, _, _ in checks if label.startswith("offsetof "))
    print(f"\n[hv-fidelity] {n_structs} struct sizes, {n_fields} field offsets and "
          f"{len(checks) - n_structs - n_fields} field sizes checked against Linux 6.1")
    assert not mismatches, "spec layout differs from Linux 6.1:\n" + "\n".join(mismatches)
    assert n_fields >= 100


def test_a_wrong_value_is_named(linux_tree, tmp_path):
    """The check can fail: a deliberately wrong value is reported by name."""
    src = tmp_path / "wrong.c"
    src.write_text(linux_hv.program(linux_tree, [("Msr.SIMP", "HV_REGISTER_SIMP"),
                                                 ("offsetof hv_message.payload", "offsetof(struct hv_message, "
                                                                                 "u.payload)")]))
    subprocess.run(["gcc", "-std=gnu11", "-w", str(src), "-o", str(tmp_path / "wrong")], check=True)
    values = dict(line.split("\t") for line in subprocess.run([str(tmp_path / "wrong")], capture_output=True,
                                                                text=True, check=True).stdout.splitlines())
    assert int(values["Msr.SIMP"]) == H.Msr.SIMP and int(values["Msr.SIMP"]) != H.Msr.SIEFP
    assert int(values["offsetof hv_message.payload"]) == 16


def _normalized(path: Path) -> str:
    return " ".join(path.read_text().split())


@pytest.mark.parametrize("path,checks", [(FACTS, FACTS_CHECKS), (HVSIM_FACTS, HVSIM_FACTS_CHECKS)],
                         ids=["hyperv-guest-facts", "hvsim-facts"])
def test_values_linux_lacks_match_the_facts_sheet(path, checks):
    if not path.is_file():
        pytest.skip(f"facts sheet {path} not present (set WSLX_FACTS)")
    text = _normalized(path)
    missing = [f"{name} ({source}): {quote!r}" for name, _, quote, source in checks
               if " ".join(quote.split()) not in text]
    print(f"\n[hv-fidelity] {len(checks)} values checked against {path.name}")
    assert not missing, f"not found in {path}:\n" + "\n".join(missing)
    # the values themselves, as the spec holds them
    assert H.INTERFACE_SIGNATURE.to_bytes(4, "little") == b"Hv#1"
    assert (H.HYPERCALL_LOCKED, H.GUEST_OS_ID_OPEN_SOURCE, H.HYPERCALL_CODE_MASK) == (1 << 1, 1 << 63, 0xFFFF)
    assert (H.SIGNAL_EVENT_FLAG_SHIFT, H.SIGNAL_EVENT_FLAG_MASK) == (32, 0xFFFF << 32)
    assert (H.HvMessageType.VMBUS, V.Version.COPPER, V.CONNECTION_STATE_OK, V.PACKET_ALIGN) == (1, 0x60000, 0, 8)
    assert H.HYPERCALL_PAGE_CODE_INTEL == bytes.fromhex("0f01c1c3")  # vmcall (0f 01 c1); ret (c3)


def test_every_spec_constant_is_checked_somewhere():
    """No value of the specs escapes the fidelity check silently: each exported constant name appears in a
    check label (Linux or facts) or is listed as ours by design."""
    ours_by_design = {"AGENTX_HVSOCK_PORT", "VENDOR_EBX", "VENDOR_ECX", "VENDOR_EDX",  # AgentX port; EBX..EDX
                      "HVSOCK_GUID_DATA2", "HVSOCK_GUID_DATA3", "HVSOCK_GUID_DATA4"}  # = template bytes (checked)
    labels = " ".join(label for label, _, _ in CONSTANTS) + " " + " ".join(n for n, *_ in FACTS_CHECKS + HVSIM_FACTS_CHECKS)
    names = [n for mod in (H, V) for n, _, _ in mod.CONSTANTS]
    unchecked = [n for n in names if not re.search(rf"\b{n}\b", labels) and n not in ours_by_design]
    assert not unchecked, f"constants not checked against Linux or the facts sheet: {unchecked}"
