"""wslx.hv: every rule of the model, each with the TLFS section or Linux 6.1 source line it comes from.

"kvm hyperv.c" is Linux 6.1 arch/x86/kvm/hyperv.c (KVM's implementation of the TLFS, which OpenVMM on KVM
relies on); "ring_buffer.c", "channel_mgmt.c", "connection.c" are Linux 6.1 drivers/hv (the guest side the
host must satisfy); "protocol.rs" is OpenVMM vm/devices/vmbus/vmbus_core/src/protocol.rs."""
from __future__ import annotations

import random
import struct

import pytest

from wslx.hv import (PROFILES, GeneralProtectionFault, GuestFault, GuestMemory, InvalidOpcodeFault, ModelBug, Partition,
                     VirtualClock)
from wslx.hv.scripted_guest import ScriptedGuest
from wslx.spec import hyperv as H
from wslx.spec import vmbus as V
from wslx.spec.hyperv import HvCall, HvStatus, Msr, StimerConfigBits as SC
from wslx.spec.vmbus import ChannelMessageType as M

MEM = 4 << 20
SIMP, SIEFP, HCALL, IN, OUT = 0x1000, 0x2000, 0x3000, 0x4000, 0x5000


def make(profile="hyperv", faults=None, **kw):
    mem = GuestMemory(bytearray(MEM))
    hv = Partition(mem, profile, faults=faults, **kw)
    return hv, mem


def enabled(profile="hyperv", faults=None):
    """OS id, hypercall page, SIMP/SIEFP, SINT2 vector 0x40, SINT3 vector 0x41, SCONTROL."""
    hv, mem = make(profile, faults)
    hv.wrmsr(Msr.GUEST_OS_ID, 1 << 63)
    hv.wrmsr(Msr.HYPERCALL, HCALL | 1)
    hv.wrmsr(Msr.SIMP, SIMP | 1)
    hv.wrmsr(Msr.SIEFP, SIEFP | 1)
    hv.wrmsr(Msr.SINT0 + 2, 0x40)
    hv.wrmsr(Msr.SINT0 + 3, 0x41)
    hv.wrmsr(Msr.SCONTROL, 1)
    return hv, mem


def post_input(mem, conn=1, mtype=1, size=16, payload=b"", reserved=0, gpa=IN):
    mem.write(gpa, struct.pack("<IIII", conn, reserved, mtype, size) + payload.ljust(240, b"\0"))


def status(rax: int) -> int:
    return rax & H.RESULT_STATUS_MASK


def slot(mem, sint):
    raw = mem.read(SIMP + 256 * sint, 256)
    h = H.HV_MESSAGE_HEADER.parse(raw)
    return h.message_type, h.payload_size, h.flags, raw[16:16 + min(h.payload_size, 240)]


# --- CPUID: TLFS "Feature and Interface Discovery" ---------------------------------------------------------------
@pytest.mark.parametrize("profile", ["hyperv", "openvmm-kvm"])
def test_cpuid_presents_hv1_and_the_profiles_features(profile):
    hv, _ = make(profile)
    p = PROFILES[profile]
    assert hv.cpuid(1)[2] & H.CPUID_FEATURES_ECX_HYPERVISOR
    eax, ebx, ecx, edx = hv.cpuid(0x40000000)
    assert eax >= H.CPUID_MIN_MAX_LEAF and struct.pack("<III", ebx, ecx, edx) == H.VENDOR_SIGNATURE
    assert hv.cpuid(0x40000001)[0] == H.INTERFACE_SIGNATURE
    assert hv.cpuid(0x40000003) == (p.features_eax, p.features_ebx, 0, p.features_edx)
    assert bool(hv.cpuid(0x40000003)[0] & H.FeaturesEax.REFERENCE_TSC) == (profile == "hyperv")
    assert bool(hv.cpuid(0x40000003)[3] & H.FeaturesEdx.STIMER_DIRECT_MODE) == (profile == "hyperv")


def test_none_profile_has_no_hypervisor_leaves_msrs_or_hypercalls():
    # TLFS "Feature and Interface Discovery": CPUID.1:ECX bit 31 clear means no hypervisor; Linux mshyperv.c
    # ms_hyperv_platform
    hv, _ = make("none")
    assert not hv.cpuid(1)[2] & H.CPUID_FEATURES_ECX_HYPERVISOR
    assert hv.cpuid(0x40000000) == hv.cpuid(0x40000001) == (0, 0, 0, 0)
    with pytest.raises(GeneralProtectionFault):
        hv.wrmsr(Msr.GUEST_OS_ID, 1)
    with pytest.raises(InvalidOpcodeFault):
        hv.hypercall(HvCall.POST_MESSAGE, IN, 0)


# --- MSRs: TLFS "Partition Properties"/"Hypercall Interface"; kvm hyperv.c kvm_hv_set_msr_pw ----------------------
def test_hypercall_page_stays_disabled_until_guest_os_id_is_set():
    # kvm hyperv.c line 1323: "if guest os id is not set hypercall should remain disabled"
    hv, mem = make()
    hv.wrmsr(Msr.HYPERCALL, HCALL | 1)
    assert hv.rdmsr(Msr.HYPERCALL) == 0 and mem.read(HCALL, 4) == bytes(4)
    with pytest.raises(InvalidOpcodeFault):
        hv.hypercall(HvCall.POST_MESSAGE, IN, 0)
    hv.wrmsr(Msr.GUEST_OS_ID, H.GUEST_OS_ID_OPEN_SOURCE | 1)
    hv.wrmsr(Msr.HYPERCALL, HCALL | 1)
    assert hv.rdmsr(Msr.HYPERCALL) == HCALL | 1


def test_enabling_the_hypercall_page_writes_vmcall_ret():
    # kvm hyperv.c lines 1340-1350: patch_hypercall (vmcall) then 0xc3 (ret) at the page address
    hv, mem = enabled()
    assert mem.read(HCALL, 4) == bytes.fromhex("0f01c1c3") == H.HYPERCALL_PAGE_CODE_INTEL


def test_clearing_guest_os_id_disables_the_hypercall_page():
    # kvm hyperv.c line 1316: "setting guest os id to zero disables hypercall page"
    hv, _ = enabled()
    hv.wrmsr(Msr.GUEST_OS_ID, 0)
    assert not hv.rdmsr(Msr.HYPERCALL) & 1
    with pytest.raises(InvalidOpcodeFault):
        hv.hypercall(HvCall.SIGNAL_EVENT | H.HYPERCALL_FAST, 1, 0)


def test_hypercall_msr_reserved_bits_and_locked_bit_fault():
    # TLFS "Establishing the Hypercall Interface": bits 11:2 reserved; bit 1 locks the MSR
    hv, _ = enabled()
    with pytest.raises(GeneralProtectionFault):
        hv.wrmsr(Msr.HYPERCALL, HCALL | 1 | 0x100)
    hv.wrmsr(Msr.HYPERCALL, HCALL | 1 | H.HYPERCALL_LOCKED)
    with pytest.raises(GeneralProtectionFault):
        hv.wrmsr(Msr.HYPERCALL, 0)


def test_unknown_and_unprivileged_synthetic_msrs_fault():
    # kvm hyperv.c hv_check_msr_access: each MSR needs its CPUID 0x40000003 EAX privilege
    hv, _ = make()
    for msr in (0x40000005, 0x400000FF, Msr.STIMER3_COUNT + 1):
        with pytest.raises(GeneralProtectionFault):
            hv.rdmsr(msr)
    kvm, _ = make("openvmm-kvm")
    with pytest.raises(GeneralProtectionFault):
        kvm.wrmsr(Msr.REFERENCE_TSC, 0x6000 | 1)    # no reference TSC page under KVM (facts sheet)


@pytest.mark.parametrize("msr", [Msr.VP_INDEX, Msr.TIME_REF_COUNT, Msr.SVERSION])
def test_read_only_msrs_fault_on_write(msr):
    # kvm hyperv.c: VP_INDEX/TIME_REF_COUNT/SVERSION writes return 1 (#GP) unless host-initiated
    hv, _ = make()
    with pytest.raises(GeneralProtectionFault):
        hv.wrmsr(msr, 5)
    assert hv.rdmsr(Msr.SVERSION) == H.SYNIC_VERSION and hv.rdmsr(Msr.VP_INDEX) == 0


def test_time_ref_count_counts_100ns_units_of_the_clock():
    # TLFS "Partition Reference Counter": 100 ns units since partition creation
    clock = VirtualClock()
    hv, _ = make(clock=clock)
    clock.advance(12_345)
    assert hv.rdmsr(Msr.TIME_REF_COUNT) == 12_345


def test_reference_tsc_page_carries_sequence_scale_and_offset():
    # TLFS "Reference TSC Page": time = ((tsc * scale) >> 64) + offset; sequence 0 = invalid
    clock = VirtualClock(777)
    hv, mem = make(clock=clock)
    hv.wrmsr(Msr.REFERENCE_TSC, 0x6000 | 1)
    page = H.HV_REFERENCE_TSC_PAGE.parse(mem.read(0x6000, 24))
    assert page.tsc_sequence != 0
    for step in (0, 10_000, 123_456_789):
        clock.advance(step)
        t = ((hv.rdtsc() * page.tsc_scale) >> 64) + page.tsc_offset
        assert abs(t - hv.rdmsr(Msr.TIME_REF_COUNT)) <= 1
    hv.wrmsr(Msr.REFERENCE_TSC, 0x6000 | 1)
    assert H.HV_REFERENCE_TSC_PAGE.parse(mem.read(0x6000, 24)).tsc_sequence != page.tsc_sequence
    with pytest.raises(GeneralProtectionFault):
        hv.wrmsr(Msr.REFERENCE_TSC, (MEM + 0x1000) | 1)


# --- hypercalls: TLFS "Hypercall Interface"; kvm hyperv.c kvm_hv_hypercall ------------------------------------------
def test_unknown_call_code_and_reserved_control_bits():
    hv, _ = enabled()
    assert status(hv.hypercall(0x0099)) == HvStatus.INVALID_HYPERCALL_CODE          # kvm hyperv.c line 2363
    assert status(hv.hypercall(HvCall.SIGNAL_EVENT | H.HYPERCALL_FAST | (1 << 27), 1)) == \
        HvStatus.INVALID_HYPERCALL_INPUT                                              # kvm hyperv.c line 2249


def test_post_message_input_checks():
    # TLFS HvCallPostMessage: input GPA 8-byte aligned within one page ("Hypercall Inputs and Outputs"),
    # MessageType non-zero with the MSB clear, PayloadSize <= 240
    hv, mem = enabled()
    post_input(mem, conn=1, size=8, payload=bytes(8))
    assert status(hv.hypercall(HvCall.POST_MESSAGE, IN + 4, 0)) == HvStatus.INVALID_ALIGNMENT   # 8-byte aligned
    post_input(mem, gpa=IN + 4096 - 128)
    assert status(hv.hypercall(HvCall.POST_MESSAGE, IN + 4096 - 128, 0)) == HvStatus.INVALID_ALIGNMENT  # one page
    assert status(hv.hypercall(HvCall.POST_MESSAGE, MEM + 4096, 0)) == HvStatus.INVALID_PARAMETER      # not RAM
    post_input(mem, size=241)
    assert status(hv.hypercall(HvCall.POST_MESSAGE, IN, 0)) == HvStatus.INVALID_PARAMETER   # payload <= 240
    post_input(mem, mtype=0)
    assert status(hv.hypercall(HvCall.POST_MESSAGE, IN, 0)) == HvStatus.INVALID_PARAMETER   # type must be > 0
    post_input(mem, mtype=0x80000010)
    assert status(hv.hypercall(HvCall.POST_MESSAGE, IN, 0)) == HvStatus.INVALID_PARAMETER   # hypervisor types
    post_input(mem, conn=9)
    assert status(hv.hypercall(HvCall.POST_MESSAGE, IN, 0)) == HvStatus.INVALID_CONNECTION_ID
    post_input(mem, reserved=1)
    assert status(hv.hypercall(HvCall.POST_MESSAGE, IN, 0)) == HvStatus.INVALID_HYPERCALL_INPUT
    post_input(mem)
    assert status(hv.hypercall(HvCall.POST_MESSAGE | H.HYPERCALL_FAST, IN, 0)) == HvStatus.INVALID_HYPERCALL_INPUT
    assert status(hv.hypercall(HvCall.POST_MESSAGE | (1 << 32), IN, 0)) == HvStatus.INVALID_HYPERCALL_INPUT  # rep


def test_signal_event_checks_fast_and_memory_form():
    # TLFS HvCallSignalEvent (connection id, flag number in bits 47:32); kvm hyperv.c kvm_hvcall_signal_event
    hv, mem = enabled()
    assert status(hv.hypercall(HvCall.SIGNAL_EVENT | H.HYPERCALL_FAST, 0x123)) == HvStatus.INVALID_CONNECTION_ID
    assert status(hv.hypercall(HvCall.SIGNAL_EVENT | H.HYPERCALL_FAST, 1 << 50)) == HvStatus.INVALID_HYPERCALL_INPUT
    mem.write_u64(IN, 0x123)
    assert status(hv.hypercall(HvCall.SIGNAL_EVENT, IN + 1)) == HvStatus.INVALID_ALIGNMENT  # kvm hyperv.c line 2101
    assert status(hv.hypercall(HvCall.SIGNAL_EVENT, IN)) == HvStatus.INVALID_CONNECTION_ID


def test_get_partition_id_where_granted():
    # TLFS HvCallGetPartitionId, privilege AccessPartitionId = CPUID 0x40000003 EBX bit 1 (Linux hyperv-tlfs.h
    # HV_ACCESS_PARTITION_ID)
    hv, mem = enabled("hyperv")
    assert status(hv.hypercall(HvCall.GET_PARTITION_ID, 0, OUT)) == HvStatus.SUCCESS
    assert mem.read_u64(OUT) == PROFILES["hyperv"].partition_id
    assert status(hv.hypercall(HvCall.GET_PARTITION_ID, 0, OUT + 4)) == HvStatus.INVALID_ALIGNMENT
    kvm, _ = enabled("openvmm-kvm")
    assert status(kvm.hypercall(HvCall.GET_PARTITION_ID, 0, OUT)) == HvStatus.ACCESS_DENIED  # privilege EBX bit 1


def test_tlb_flush_calls_are_validated_no_ops():
    # kvm hyperv.c lines 2292-2316: space calls take no reps, list calls need rep_count > 0 and rep start 0
    hv, mem = enabled()
    mem.write(IN, struct.pack("<QQQ", 0, H.TlbFlushFlags.ALL_PROCESSORS, 0) + struct.pack("<QQ", 0x1000, 0x2000))
    assert status(hv.hypercall(HvCall.FLUSH_VIRTUAL_ADDRESS_SPACE, IN)) == HvStatus.SUCCESS
    assert status(hv.hypercall(HvCall.FLUSH_VIRTUAL_ADDRESS_SPACE | (1 << 32), IN)) == HvStatus.INVALID_HYPERCALL_INPUT
    assert status(hv.hypercall(HvCall.FLUSH_VIRTUAL_ADDRESS_LIST, IN)) == HvStatus.INVALID_HYPERCALL_INPUT
    rax = hv.hypercall(HvCall.FLUSH_VIRTUAL_ADDRESS_LIST | (2 << 32), IN)
    assert status(rax) == HvStatus.SUCCESS and (rax & H.RESULT_REPS_MASK) >> H.RESULT_REPS_SHIFT == 2
    assert status(hv.hypercall(HvCall.FLUSH_VIRTUAL_ADDRESS_SPACE, IN + 4)) == HvStatus.INVALID_ALIGNMENT
    mem.write(IN, struct.pack("<QQQ", 0, 1 << 40, 0))
    assert status(hv.hypercall(HvCall.FLUSH_VIRTUAL_ADDRESS_SPACE, IN)) == HvStatus.INVALID_PARAMETER
    assert status(hv.hypercall(HvCall.FLUSH_VIRTUAL_ADDRESS_SPACE | H.HYPERCALL_FAST, 0, 1)) == HvStatus.SUCCESS


# --- SynIC: TLFS "Synthetic Interrupt Controller"; kvm hyperv.c synic_* -----------------------------------------------
def test_enabling_simp_clears_the_page():
    # kvm hyperv.c line 275: kvm_clear_guest on SIMP enable
    hv, mem = make()
    mem.write(SIMP, b"\xff" * 4096)
    hv.wrmsr(Msr.SIMP, SIMP | 1)
    assert mem.read(SIMP, 4096) == bytes(4096)
    with pytest.raises(GeneralProtectionFault):
        hv.wrmsr(Msr.SIEFP, (MEM + 0x2000) | 1)


def test_sint_vector_rules():
    # kvm hyperv.c line 147: vectors < 16 #GP unless masked; reserved bits #GP (TLFS SINTx register)
    hv, _ = make()
    with pytest.raises(GeneralProtectionFault):
        hv.wrmsr(Msr.SINT0, 0x0F)
    hv.wrmsr(Msr.SINT0, 0x0F | H.SintBits.MASKED)
    with pytest.raises(GeneralProtectionFault):
        hv.wrmsr(Msr.SINT0, 0x40 | (1 << 20))
    assert hv.rdmsr(Msr.SINT0 + 5) == H.SintBits.MASKED      # reset value: masked


def _tick(hv, sint=3, when=1000):
    hv.wrmsr(Msr.STIMER0_CONFIG, SC.ENABLE | (sint << H.STIMER_SINT_SHIFT))
    hv.wrmsr(Msr.STIMER0_COUNT, hv.rdmsr(Msr.TIME_REF_COUNT) + when)
    hv.advance(when)


def test_message_slot_delivery_raises_the_sint_vector():
    # TLFS "SynIC Message Slots": slot n of the SIMP page for SINTn, then the SINT vector; kvm hyperv.c
    # synic_deliver_msg
    hv, mem = enabled()
    _tick(hv)
    assert slot(mem, 3)[0] == H.HvMessageType.TIMER_EXPIRED and hv.injected == [0x41]


def test_masked_and_polling_sints_get_messages_but_no_interrupt():
    # TLFS "SINTx Registers": bit 16 Masked, bit 18 Polling (no interrupt, the message still lands); kvm
    # hyperv.c synic_set_irq
    hv, mem = enabled()
    hv.wrmsr(Msr.SINT0 + 3, 0x41 | H.SintBits.MASKED)
    _tick(hv)
    assert slot(mem, 3)[0] == H.HvMessageType.TIMER_EXPIRED and hv.injected == []
    hv.wrmsr(Msr.SINT0 + 3, 0x41)              # unmasking with a message waiting raises it
    assert hv.injected == [0x41]
    hv.wrmsr(Msr.SINT0 + 4, 0x44 | H.SintBits.POLLING)
    mem.write_u32(SIMP + 3 * 256, 0)
    _tick(hv, sint=4)
    assert slot(mem, 4)[0] == H.HvMessageType.TIMER_EXPIRED and hv.injected == [0x41]


def test_busy_slot_sets_pending_and_eom_redelivers():
    # TLFS "SynIC Message Flags": MessagePending; kvm hyperv.c synic_deliver_msg (lines 765-777) + EOM retry
    hv, mem = enabled()
    g = ScriptedGuest(hv, mem, log=lambda *_: None)
    g.simp, g.input_page, g.siefp = SIMP, IN, SIEFP
    g.post(V.VMBUS_CHANNEL_INITIATE_CONTACT, vmbus_version_requested=V.Version.WIN10_V5_3, target_vcpu=0,
           interrupt_page=2, monitor_page1=0, monitor_page2=0)
    g.msg_conn_id = 1
    assert slot(mem, 2)[0] == H.HvMessageType.VMBUS     # VersionResponse sits in the slot
    g.post(V.VMBUS_CHANNEL_REQUEST_OFFERS)            # AllOffersDelivered must wait: slot busy
    t, size, flags, payload = slot(mem, 2)
    assert flags & H.MESSAGE_FLAG_PENDING and int.from_bytes(payload[:4], "little") == M.VERSION_RESPONSE
    mem.write_u32(SIMP + 2 * 256, 0)                  # guest empties the slot, then EOM
    hv.wrmsr(Msr.EOM, 0)
    assert int.from_bytes(slot(mem, 2)[3][:4], "little") == M.ALLOFFERS_DELIVERED


def test_event_flags_set_the_channel_bit_and_raise_the_sint():
    # TLFS "SynIC Event Flags": 2048 bits per SINT in the SIEFP page; Linux vmbus_drv.c vmbus_chan_sched tests
    # bit relid of SINT 2
    hv, mem = enabled()
    assert hv.synic.signal_event(2, 13)
    assert mem.read(SIEFP + 2 * 256 + 1, 1)[0] == 1 << 5 and hv.injected == [0x40]


# --- synthetic timers: TLFS "Timers"; kvm hyperv.c stimer_* ----------------------------------------------------------
def test_one_shot_timer_message_times_and_disable():
    hv, mem = enabled()
    hv.advance(500)
    hv.wrmsr(Msr.STIMER0_CONFIG, SC.ENABLE | (3 << H.STIMER_SINT_SHIFT))
    hv.wrmsr(Msr.STIMER0_COUNT, 2500)                 # absolute deadline
    hv.advance(1999)
    assert slot(mem, 3)[0] == 0
    hv.advance(1)
    _, _, _, payload = slot(mem, 3)
    p = H.HV_TIMER_MESSAGE_PAYLOAD.parse(payload)
    assert (p.timer_index, p.expiration_time, p.delivery_time) == (0, 2500, 2500)
    # kvm hyperv.c stimer_expiration: a one-shot disables itself; the rest of CONFIG stays
    assert hv.rdmsr(Msr.STIMER0_CONFIG) == 3 << H.STIMER_SINT_SHIFT


def test_one_shot_deadline_in_the_past_expires_at_once():
    # TLFS v4 15.3.1, quoted in kvm hyperv.c stimer_start
    hv, mem = enabled()
    hv.advance(10_000)
    hv.wrmsr(Msr.STIMER0_CONFIG, SC.ENABLE | (3 << H.STIMER_SINT_SHIFT))
    hv.wrmsr(Msr.STIMER0_COUNT, 5)
    assert H.HV_TIMER_MESSAGE_PAYLOAD.parse(slot(mem, 3)[3]).delivery_time == 10_000


def test_periodic_timer_retries_on_eom_and_skips_lost_ticks():
    # kvm hyperv.c stimer_send_msg (no retry for periodic), kvm_hv_notify_acked_sint, stimer_start (remainder)
    hv, mem = enabled()
    hv.wrmsr(Msr.STIMER0_COUNT, 100)
    hv.wrmsr(Msr.STIMER0_CONFIG, SC.ENABLE | SC.PERIODIC | (3 << H.STIMER_SINT_SHIFT))
    hv.advance(100)
    assert H.HV_TIMER_MESSAGE_PAYLOAD.parse(slot(mem, 3)[3]).expiration_time == 100
    hv.advance(250)                                    # slot still busy: tick 200 pending, flag set
    assert slot(mem, 3)[2] & H.MESSAGE_FLAG_PENDING
    mem.write_u32(SIMP + 3 * 256, 0)
    hv.wrmsr(Msr.EOM, 0)
    p = H.HV_TIMER_MESSAGE_PAYLOAD.parse(slot(mem, 3)[3])
    assert (p.expiration_time, p.delivery_time) == (200, 350)
    mem.write_u32(SIMP + 3 * 256, 0)
    hv.advance(50)                                     # next expiry skips the lost 300 tick: 400
    assert H.HV_TIMER_MESSAGE_PAYLOAD.parse(slot(mem, 3)[3]).expiration_time == 400


def test_timer_rules_sint0_count0_autoenable_reserved():
    hv, _ = enabled()
    hv.wrmsr(Msr.STIMER0_CONFIG, SC.ENABLE)            # SINT 0, not direct: disabled (facts sheet)
    assert not hv.rdmsr(Msr.STIMER0_CONFIG) & SC.ENABLE
    hv.wrmsr(Msr.STIMER1_CONFIG, SC.AUTO_ENABLE | (3 << H.STIMER_SINT_SHIFT))
    hv.wrmsr(Msr.STIMER1_COUNT, 10**9)                 # kvm hyperv.c stimer_set_count: auto-enable
    assert hv.rdmsr(Msr.STIMER1_CONFIG) & SC.ENABLE
    hv.wrmsr(Msr.STIMER1_COUNT, 0)                     # count 0 disables
    assert not hv.rdmsr(Msr.STIMER1_CONFIG) & SC.ENABLE
    with pytest.raises(GeneralProtectionFault):
        hv.wrmsr(Msr.STIMER2_CONFIG, 1 << 40)


def test_direct_mode_timer_where_offered():
    # TLFS "Direct Synthetic Timers"; kvm hyperv.c stimer_set_config: #GP without CPUID EDX bit 19
    hv, _ = enabled("hyperv")
    hv.wrmsr(Msr.STIMER0_CONFIG, SC.ENABLE | SC.DIRECT_MODE | (0x50 << H.STIMER_APIC_VECTOR_SHIFT))
    hv.wrmsr(Msr.STIMER0_COUNT, 300)
    hv.advance(300)
    assert hv.injected == [0x50]
    kvm, _ = enabled("openvmm-kvm")
    with pytest.raises(GeneralProtectionFault):
        kvm.wrmsr(Msr.STIMER0_CONFIG, SC.ENABLE | SC.DIRECT_MODE | (0x50 << H.STIMER_APIC_VECTOR_SHIFT))


# --- guest memory -------------------------------------------------------------------------------------------------------
def test_guest_memory_q35_layout_and_bounds():
    # hvsim-facts.md: GPA = offset below lowmem; above 4 GiB at offset GPA - 4 GiB + lowmem
    buf = bytearray(64 << 20)
    mem = GuestMemory.q35(buf, 64 << 20)
    assert len(mem.regions) == 1 and mem.contains(0, 64 << 20) and not mem.contains((64 << 20) - 4, 8)
    from wslx.hv import GuestMemoryError, Region
    with pytest.raises(GuestMemoryError):
        mem.read(-1, 4)
    two = GuestMemory(buf, [Region(0, 32 << 20, 0), Region(1 << 32, 32 << 20, 32 << 20)])
    two.write_u32((1 << 32) + 8, 0xDEADBEEF)
    assert int.from_bytes(buf[(32 << 20) + 8:(32 << 20) + 12], "little") == 0xDEADBEEF


# --- hostile guest: nothing but typed errors escape -------------------------------------------------------------------
def test_random_msr_writes_hypercalls_and_messages_raise_only_typed_errors():
    rng = random.Random(12)
    hv, mem = enabled()
    g = ScriptedGuest(hv, mem, log=lambda *_: None)
    g.simp, g.input_page, g.siefp = SIMP, IN, SIEFP
    statuses = set()
    for i in range(3000):
        kind = rng.randrange(4)
        try:
            if kind == 0:
                hv.wrmsr(0x40000000 + rng.randrange(0x100), rng.getrandbits(64))
                hv.wrmsr(Msr.GUEST_OS_ID, 1)
                hv.wrmsr(Msr.HYPERCALL, HCALL | 1)
            elif kind == 1:
                statuses.add(status(hv.hypercall(rng.getrandbits(64) & ~H.HYPERCALL_RESERVED_MASK,
                                                 rng.choice([IN, rng.getrandbits(64)]), rng.getrandbits(40))))
            else:   # a random channel message, often with a real type
                body = bytes([rng.randrange(1, 25)]) + bytes(3) + bytes(4) + rng.randbytes(rng.randrange(0, 232))
                post_input(mem, conn=rng.choice([1, 4, 7]), size=len(body), payload=body)
                statuses.add(status(hv.hypercall(HvCall.POST_MESSAGE, IN, 0)))
                mem.write_u32(SIMP + 2 * 256, 0)
                hv.wrmsr(Msr.EOM, 0)
        except GuestFault:          # #GP / #UD are the guest's answer; ModelBug or anything else fails the test
            hv.wrmsr(Msr.GUEST_OS_ID, 1)
            hv.wrmsr(Msr.HYPERCALL, HCALL | 1)
    assert {HvStatus.SUCCESS, HvStatus.INVALID_HYPERCALL_CODE} <= statuses
    assert hv.vmbus.dropped, "random messages should have been dropped as malformed"


def test_an_internal_error_surfaces_as_a_typed_model_bug(monkeypatch):
    """Only HvError escapes: a bug inside the model is wrapped (ModelBug, cause chained), never a bare
    Python exception."""
    hv, mem = enabled()
    post_input(mem)
    monkeypatch.setattr(hv.vmbus, "accepts_message_connection", lambda conn: 1 / 0)
    with pytest.raises(ModelBug) as e:
        hv.hypercall(HvCall.POST_MESSAGE, IN, 0)
    assert isinstance(e.value.__cause__, ZeroDivisionError)


def test_unknown_fault_step_is_refused():
    from wslx.hv import Faults, HostUsageError
    with pytest.raises(HostUsageError, match="rescind_at"):
        Faults(rescind_at="later")
    with pytest.raises(HostUsageError, match="unknown hypervisor profile"):
        make("xen")
