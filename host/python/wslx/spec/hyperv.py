"""Hyper-V guest interface (x64): CPUID leaves, synthetic MSRs, hypercalls, SynIC and synthetic timers.

Defined once here. build/gen/hyperv.h and docs/hyperv.md are generated from this module (through
C_HEADER below, rendered by wslx.codegen.c_structs); the host model (wslx.hv) and the scripted guest use the same values.
tests/test_hv_fidelity.py compiles Linux 6.1's own definitions and checks every value and layout below
against them.

Sources: Microsoft Hypervisor Top-Level Functional Specification (TLFS): "Feature and Interface Discovery"
(CPUID 0x40000000-0x40000006), "Hypercall Interface" (control and result values, status codes), "Partition
Reference Counter"/"Reference TSC page", "Virtual Interrupt Controller: Synthetic Interrupt Controller" (SynIC
MSRs, message and event-flags pages), "Timers" (synthetic timers); Linux 6.1 include/asm-generic/hyperv-tlfs.h,
arch/x86/include/asm/hyperv-tlfs.h, drivers/hv/hyperv_vmbus.h.
"""
from __future__ import annotations

import enum

from construct import Bytes, Int8ul, Int16ul, Int32ul, Int64sl, Int64ul, Struct

from .fields import Reserved
from .header import header_from_tables

PAGE_SIZE = 4096
PAGE_SHIFT = 12

# --- CPUID (TLFS "Feature and Interface Discovery") --------------------------------------------------------
CPUID_FEATURES_ECX_HYPERVISOR = 1 << 31    # leaf 1 ECX: a hypervisor is present (Intel SDM, CPUID.01H:ECX[31])
VENDOR_SIGNATURE = b"Microsoft Hv"          # leaf 0x40000000 EBX:ECX:EDX
INTERFACE_SIGNATURE = 0x31237648            # leaf 0x40000001 EAX: "Hv#1", the interface to decide on
CPUID_MIN_MAX_LEAF = 0x40000005             # leaf 0x40000000 EAX is at least this on Hyper-V


class CpuidLeaf(enum.IntEnum):
    """Hypervisor CPUID leaves a guest reads"""
    VENDOR_AND_MAX_FUNCTIONS = 0x40000000
    INTERFACE = 0x40000001
    VERSION = 0x40000002
    FEATURES = 0x40000003
    ENLIGHTENMENT_INFO = 0x40000004
    IMPLEMENT_LIMITS = 0x40000005
    HARDWARE_FEATURES = 0x40000006


class FeaturesEax(enum.IntFlag):
    """CPUID 0x40000003 EAX: partition privileges (which synthetic MSRs exist)"""
    VP_RUNTIME = 1 << 0
    TIME_REF_COUNT = 1 << 1
    SYNIC = 1 << 2
    SYNTIMER = 1 << 3
    APIC_ACCESS = 1 << 4
    HYPERCALL = 1 << 5       # HYPERCALL and GUEST_OS_ID MSRs
    VP_INDEX = 1 << 6
    RESET = 1 << 7
    REFERENCE_TSC = 1 << 9


class FeaturesEbx(enum.IntFlag):
    """CPUID 0x40000003 EBX: partition privileges (which hypercalls are allowed)"""
    CREATE_PARTITIONS = 1 << 0
    ACCESS_PARTITION_ID = 1 << 1   # HvCallGetPartitionId
    POST_MESSAGES = 1 << 4
    SIGNAL_EVENTS = 1 << 5


class FeaturesEdx(enum.IntFlag):
    """CPUID 0x40000003 EDX: miscellaneous features"""
    HYPERCALL_XMM_INPUT = 1 << 4
    STIMER_DIRECT_MODE = 1 << 19


class RecommendationsEax(enum.IntFlag):
    """CPUID 0x40000004 EAX: implementation recommendations"""
    LOCAL_TLB_FLUSH = 1 << 1
    REMOTE_TLB_FLUSH = 1 << 2
    RELAXED_TIMING = 1 << 5
    DEPRECATING_AEOI = 1 << 9     # do not use auto-EOI


# --- Synthetic MSRs (TLFS "Partition Properties", "SynIC", "Timers") ----------------------------------------
SINT_COUNT = 16
STIMER_COUNT = 4


class Msr(enum.IntEnum):
    """Synthetic MSR numbers (SINTn = SINT0 + n; STIMERn_CONFIG = STIMER0_CONFIG + 2n, COUNT = CONFIG + 1)"""
    GUEST_OS_ID = 0x40000000
    HYPERCALL = 0x40000001
    VP_INDEX = 0x40000002
    TIME_REF_COUNT = 0x40000020
    REFERENCE_TSC = 0x40000021
    SCONTROL = 0x40000080
    SVERSION = 0x40000081
    SIEFP = 0x40000082
    SIMP = 0x40000083
    EOM = 0x40000084
    SINT0 = 0x40000090
    SINT15 = 0x4000009F
    STIMER0_CONFIG = 0x400000B0
    STIMER0_COUNT = 0x400000B1
    STIMER1_CONFIG = 0x400000B2
    STIMER1_COUNT = 0x400000B3
    STIMER2_CONFIG = 0x400000B4
    STIMER2_COUNT = 0x400000B5
    STIMER3_CONFIG = 0x400000B6
    STIMER3_COUNT = 0x400000B7


# Page MSRs (HYPERCALL, REFERENCE_TSC, SIMP, SIEFP): bit 0 enable, bits 63:12 the page frame number.
PAGE_MSR_ENABLE = 1 << 0
HYPERCALL_LOCKED = 1 << 1              # TLFS: once set, the HYPERCALL MSR is read-only
PAGE_MSR_PFN_SHIFT = 12
PAGE_MSR_PFN_MASK = 0xFFFFFFFFFFFFF000
SCONTROL_ENABLE = 1 << 0
SYNIC_VERSION = 1                      # what SVERSION reads
GUEST_OS_ID_OPEN_SOURCE = 1 << 63      # open-source OS encoding: bit 63, OS type 62:56, id 55:48, version 47:16
GUEST_OS_ID_LINUX_VENDOR = 0x8100      # Linux's bits 63:48 (open source, OS type 1)


class SintBits(enum.IntFlag):
    """SINTn MSR: bits 7:0 vector (16..255), then these flags; MASKED is the reset value"""
    MASKED = 1 << 16
    AUTO_EOI = 1 << 17
    POLLING = 1 << 18


SINT_VECTOR_MASK = 0xFF
SINT_FIRST_VALID_VECTOR = 16


class StimerConfigBits(enum.IntFlag):
    """STIMERn_CONFIG flags; APIC vector in bits 11:4 (direct mode), SINT in bits 19:16"""
    ENABLE = 1 << 0
    PERIODIC = 1 << 1
    LAZY = 1 << 2
    AUTO_ENABLE = 1 << 3
    DIRECT_MODE = 1 << 12


STIMER_APIC_VECTOR_SHIFT = 4
STIMER_APIC_VECTOR_MASK = 0xFF0
STIMER_SINT_SHIFT = 16
STIMER_SINT_MASK = 0xF0000
CLOCK_HZ = 10_000_000                  # TIME_REF_COUNT and timer units: 100 ns

# --- Hypercalls (TLFS "Hypercall Interface") ----------------------------------------------------------------
# Control value in RCX; result value in RAX.
HYPERCALL_CODE_MASK = 0xFFFF
HYPERCALL_FAST = 1 << 16
HYPERCALL_VARHEAD_SHIFT = 17
HYPERCALL_VARHEAD_MASK = 0x7FE0000     # bits 26:17, in 8-byte units
HYPERCALL_REP_COUNT_SHIFT = 32
HYPERCALL_REP_COUNT_MASK = 0xFFF00000000
HYPERCALL_REP_START_SHIFT = 48
HYPERCALL_REP_START_MASK = 0xFFF000000000000
HYPERCALL_RESERVED_MASK = 0xF000F000F8000000   # bits 31:27, 47:44, 63:60 must be zero
RESULT_STATUS_MASK = 0xFFFF
RESULT_REPS_SHIFT = 32
RESULT_REPS_MASK = 0xFFF00000000
HYPERCALL_PARAM_ALIGN = 8              # input and output GPAs are 8-byte aligned and do not cross a page
PARTITION_ID_SELF = 0xFFFFFFFFFFFFFFFF
# What Hyper-V writes into the hypercall page on x64 (Intel): vmcall; ret.
HYPERCALL_PAGE_CODE_INTEL = bytes((0x0F, 0x01, 0xC1, 0xC3))


class HvCall(enum.IntEnum):
    """Hypercall codes the kit uses (bits 15:0 of the control value)"""
    FLUSH_VIRTUAL_ADDRESS_SPACE = 0x0002
    FLUSH_VIRTUAL_ADDRESS_LIST = 0x0003
    GET_PARTITION_ID = 0x0046
    POST_MESSAGE = 0x005C
    SIGNAL_EVENT = 0x005D


class HvStatus(enum.IntEnum):
    """Hypercall result status (bits 15:0 of RAX)"""
    SUCCESS = 0
    INVALID_HYPERCALL_CODE = 2
    INVALID_HYPERCALL_INPUT = 3
    INVALID_ALIGNMENT = 4
    INVALID_PARAMETER = 5
    ACCESS_DENIED = 6
    OPERATION_DENIED = 8
    INSUFFICIENT_MEMORY = 11
    INVALID_PORT_ID = 17
    INVALID_CONNECTION_ID = 18
    INSUFFICIENT_BUFFERS = 19


class TlbFlushFlags(enum.IntFlag):
    """hv_tlb_flush.flags"""
    ALL_PROCESSORS = 1 << 0
    ALL_VIRTUAL_ADDRESS_SPACES = 1 << 1
    NON_GLOBAL_MAPPINGS_ONLY = 1 << 2


SIGNAL_EVENT_FLAG_SHIFT = 32           # fast HvCallSignalEvent: RDX = connection id | flag number << 32
SIGNAL_EVENT_FLAG_MASK = 0xFFFF00000000
CONNECTION_ID_MASK = 0xFFFFFF          # connection and port ids are 24 bits

# --- SynIC (TLFS "Synthetic Interrupt Controller") -----------------------------------------------------------
MESSAGE_SIZE = 256
MESSAGE_PAYLOAD_SIZE = 240
EVENT_FLAGS_BYTES = 256                # per SINT: 2048 flag bits
MESSAGE_FLAG_PENDING = 1 << 0          # hv_message_header.flags


class HvMessageType(enum.IntEnum):
    """hv_message_header.message_type (0: slot empty); VMBus channel messages are type 1"""
    NONE = 0x00000000
    VMBUS = 0x00000001
    UNMAPPED_GPA = 0x80000000
    TIMER_EXPIRED = 0x80000010
    INVALID_VP_REGISTER_VALUE = 0x80000020
    UNSUPPORTED_FEATURE = 0x80000022


HV_MESSAGE_HEADER = Struct(
    "message_type" / Int32ul * "HvMessageType; 0 = slot empty",
    "payload_size" / Int8ul * "bytes of payload, <= 240",
    "flags" / Int8ul * "bit 0: message pending (write EOM after emptying the slot)",
    "reserved" / Reserved(2),
    "sender" / Int64ul * "sender / port id (low 24 bits)",
)
# The TLFS text lists the flags before payload_size; Linux, FreeBSD and OpenVMM (and Hyper-V) put
# payload_size at byte 4 and flags at byte 5, as here.

HV_MESSAGE = Struct(
    "header" / HV_MESSAGE_HEADER,
    "payload" / Bytes(MESSAGE_PAYLOAD_SIZE),
)

HV_TIMER_MESSAGE_PAYLOAD = Struct(
    "timer_index" / Int32ul,
    "reserved" / Reserved(4),
    "expiration_time" / Int64ul * "when the timer expired (100 ns reference time)",
    "delivery_time" / Int64ul * "when the message was delivered",
)

HV_SYNIC_EVENT_FLAGS = Struct(
    "flags" / Bytes(EVENT_FLAGS_BYTES) * "bit n: event n (a VMBus channel's relid) signalled",
)

HV_INPUT_POST_MESSAGE = Struct(
    "connection_id" / Int32ul * "low 24 bits",
    "reserved" / Reserved(4),
    "message_type" / Int32ul * "> 0; VMBus uses 1",
    "payload_size" / Int32ul * "<= 240",
    "payload" / Bytes(MESSAGE_PAYLOAD_SIZE),
)

HV_GET_PARTITION_ID_OUTPUT = Struct(
    "partition_id" / Int64ul,
)

HV_TLB_FLUSH_INPUT = Struct(
    "address_space" / Int64ul * "CR3 to flush, ignored with ALL_VIRTUAL_ADDRESS_SPACES",
    "flags" / Int64ul * "TlbFlushFlags",
    "processor_mask" / Int64ul * "bit n: VP n (ignored with ALL_PROCESSORS)",
)

HV_REFERENCE_TSC_PAGE = Struct(
    "tsc_sequence" / Int32ul * "0: page invalid, use TIME_REF_COUNT; re-read if it changes",
    "reserved1" / Reserved(4),
    "tsc_scale" / Int64ul * "time = ((tsc * scale) >> 64) + offset, 128-bit product",
    "tsc_offset" / Int64sl,
)

# --- what the header generator emits (C_HEADER below, rendered by wslx.codegen.c_structs) -------------------------------------------
TITLE = "Hyper-V guest interface: CPUID, synthetic MSRs, hypercalls, SynIC, synthetic timers"
PREFIX = "HV"
DOC = """
Hyper-V guest interface for x64 guests, from the TLFS and checked against Linux 6.1
(include/asm-generic/hyperv-tlfs.h, arch/x86/include/asm/hyperv-tlfs.h) by
tests/test_hv_fidelity.py.

Sequence a guest follows: CPUID leaf 1 ECX bit 31, then 0x40000000 ("Microsoft Hv", max
leaf) and 0x40000001 (EAX "Hv#1" = 0x31237648; decide on this value), then the privilege
leaf 0x40000003. Write GUEST_OS_ID (non-zero) before enabling the HYPERCALL page; the
hypervisor fills that page with the call sequence and the guest calls its first byte with
RCX = control value, RDX/R8 = input/output GPAs (or the data itself in the fast form).
Unknown MSRs and reserved bits raise #GP.

| Control value (RCX) | Bits |
|---|---|
| call code | 15:0 |
| fast (register) form | 16 |
| variable header size (8-byte units) | 26:17 |
| rep count | 43:32 |
| rep start index | 59:48 |
| reserved (zero) | 31:27, 47:44, 63:60 |

| Result value (RAX) | Bits |
|---|---|
| HvStatus | 15:0 |
| reps completed | 43:32 |

SynIC: the message page holds 16 hv_message slots (slot n for SINTn), the event-flags page
16 hv_synic_event_flags areas. After reading a slot: copy it out, set message_type to 0,
full barrier, and write EOM if the pending flag was set. Synthetic timers count in 100 ns
units of the partition reference time; a non-direct timer whose SINT is 0 stays disabled.
"""

CONSTANTS = [
    ("PAGE_SIZE", PAGE_SIZE, "hypervisor page size"),
    ("CPUID_FEATURES_ECX_HYPERVISOR", CPUID_FEATURES_ECX_HYPERVISOR, "CPUID.1:ECX: a hypervisor is present"),
    ("INTERFACE_SIGNATURE", INTERFACE_SIGNATURE, "CPUID 0x40000001 EAX: 'Hv#1'"),
    ("VENDOR_EBX", int.from_bytes(VENDOR_SIGNATURE[0:4], "little"), "CPUID 0x40000000 EBX: 'Micr'"),
    ("VENDOR_ECX", int.from_bytes(VENDOR_SIGNATURE[4:8], "little"), "CPUID 0x40000000 ECX: 'osof'"),
    ("VENDOR_EDX", int.from_bytes(VENDOR_SIGNATURE[8:12], "little"), "CPUID 0x40000000 EDX: 't Hv'"),
    ("CPUID_MIN_MAX_LEAF", CPUID_MIN_MAX_LEAF, "CPUID 0x40000000 EAX is at least this"),
    ("SINT_COUNT", SINT_COUNT, "synthetic interrupt sources"),
    ("STIMER_COUNT", STIMER_COUNT, "synthetic timers per VP"),
    ("PAGE_MSR_ENABLE", PAGE_MSR_ENABLE, "HYPERCALL/REFERENCE_TSC/SIMP/SIEFP: enable"),
    ("HYPERCALL_LOCKED", HYPERCALL_LOCKED, "HYPERCALL MSR: locked"),
    ("PAGE_MSR_PFN_SHIFT", PAGE_MSR_PFN_SHIFT, "page MSRs: page frame number shift"),
    ("PAGE_MSR_PFN_MASK", PAGE_MSR_PFN_MASK, "page MSRs: page address bits"),
    ("SCONTROL_ENABLE", SCONTROL_ENABLE, "SCONTROL: SynIC enable"),
    ("SYNIC_VERSION", SYNIC_VERSION, "SVERSION reads this"),
    ("GUEST_OS_ID_OPEN_SOURCE", GUEST_OS_ID_OPEN_SOURCE, "GUEST_OS_ID: open-source encoding"),
    ("GUEST_OS_ID_LINUX_VENDOR", GUEST_OS_ID_LINUX_VENDOR, "GUEST_OS_ID bits 63:48 that Linux uses"),
    ("SINT_VECTOR_MASK", SINT_VECTOR_MASK, "SINTn: vector bits"),
    ("SINT_FIRST_VALID_VECTOR", SINT_FIRST_VALID_VECTOR, "SINTn: lowest valid vector"),
    ("STIMER_APIC_VECTOR_SHIFT", STIMER_APIC_VECTOR_SHIFT, "STIMERn_CONFIG: direct-mode vector shift"),
    ("STIMER_APIC_VECTOR_MASK", STIMER_APIC_VECTOR_MASK, "STIMERn_CONFIG: direct-mode vector bits"),
    ("STIMER_SINT_SHIFT", STIMER_SINT_SHIFT, "STIMERn_CONFIG: SINT shift"),
    ("STIMER_SINT_MASK", STIMER_SINT_MASK, "STIMERn_CONFIG: SINT bits"),
    ("CLOCK_HZ", CLOCK_HZ, "reference time ticks per second (100 ns)"),
    ("HYPERCALL_CODE_MASK", HYPERCALL_CODE_MASK, "control: call code"),
    ("HYPERCALL_FAST", HYPERCALL_FAST, "control: fast (register) form"),
    ("HYPERCALL_VARHEAD_SHIFT", HYPERCALL_VARHEAD_SHIFT, "control: variable header size shift"),
    ("HYPERCALL_VARHEAD_MASK", HYPERCALL_VARHEAD_MASK, "control: variable header size bits"),
    ("HYPERCALL_REP_COUNT_SHIFT", HYPERCALL_REP_COUNT_SHIFT, "control: rep count shift"),
    ("HYPERCALL_REP_COUNT_MASK", HYPERCALL_REP_COUNT_MASK, "control: rep count bits"),
    ("HYPERCALL_REP_START_SHIFT", HYPERCALL_REP_START_SHIFT, "control: rep start shift"),
    ("HYPERCALL_REP_START_MASK", HYPERCALL_REP_START_MASK, "control: rep start bits"),
    ("HYPERCALL_RESERVED_MASK", HYPERCALL_RESERVED_MASK, "control: bits that must be zero"),
    ("RESULT_STATUS_MASK", RESULT_STATUS_MASK, "result: HvStatus bits"),
    ("RESULT_REPS_SHIFT", RESULT_REPS_SHIFT, "result: reps completed shift"),
    ("RESULT_REPS_MASK", RESULT_REPS_MASK, "result: reps completed bits"),
    ("HYPERCALL_PARAM_ALIGN", HYPERCALL_PARAM_ALIGN, "input/output GPA alignment"),
    ("PARTITION_ID_SELF", PARTITION_ID_SELF, "partition id meaning 'the caller'"),
    ("SIGNAL_EVENT_FLAG_SHIFT", SIGNAL_EVENT_FLAG_SHIFT, "fast HvCallSignalEvent: flag number shift in RDX"),
    ("SIGNAL_EVENT_FLAG_MASK", SIGNAL_EVENT_FLAG_MASK, "fast HvCallSignalEvent: flag number bits in RDX"),
    ("CONNECTION_ID_MASK", CONNECTION_ID_MASK, "connection and port ids are 24 bits"),
    ("MESSAGE_PAYLOAD_SIZE", MESSAGE_PAYLOAD_SIZE, "SynIC message payload"),
    ("EVENT_FLAGS_BYTES", EVENT_FLAGS_BYTES, "event flags per SINT"),
    ("MESSAGE_FLAG_PENDING", MESSAGE_FLAG_PENDING, "hv_message_header.flags: another message waits"),
]
ENUMS = [
    ("HV_CPUID", CpuidLeaf), ("HV_FEATURE_EAX", FeaturesEax), ("HV_FEATURE_EBX", FeaturesEbx),
    ("HV_FEATURE_EDX", FeaturesEdx), ("HV_HINT_EAX", RecommendationsEax), ("HV_MSR", Msr),
    ("HV_SINT", SintBits), ("HV_STIMER", StimerConfigBits), ("HVCALL", HvCall), ("HV_STATUS", HvStatus),
    ("HV_FLUSH", TlbFlushFlags), ("HVMSG", HvMessageType),
]
STRUCTS = [
    ("hv_message_header", HV_MESSAGE_HEADER, "SynIC message header (Linux/OpenVMM field order)"),
    ("hv_message", HV_MESSAGE, "one SynIC message slot; the message page holds SINT_COUNT of them"),
    ("hv_timer_message_payload", HV_TIMER_MESSAGE_PAYLOAD, "payload of HVMSG_TIMER_EXPIRED"),
    ("hv_synic_event_flags", HV_SYNIC_EVENT_FLAGS, "one SINT's event flags; the page holds SINT_COUNT"),
    ("hv_input_post_message", HV_INPUT_POST_MESSAGE, "HvCallPostMessage input (memory form)"),
    ("hv_get_partition_id_output", HV_GET_PARTITION_ID_OUTPUT, "HvCallGetPartitionId output"),
    ("hv_tlb_flush_input", HV_TLB_FLUSH_INPUT, "HvCallFlushVirtualAddressSpace/List input (fixed part)"),
    ("hv_reference_tsc_page", HV_REFERENCE_TSC_PAGE, "start of the reference TSC page"),
]

C_HEADER = header_from_tables("hyperv", prefix=PREFIX, title=TITLE, doc=DOC, constants=CONSTANTS, enums=ENUMS,
                              structs=STRUCTS)
