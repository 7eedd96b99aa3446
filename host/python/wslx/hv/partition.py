"""A Hyper-V partition with one virtual processor, as a guest sees it: CPUID, synthetic MSRs, hypercalls,
SynIC, synthetic timers and a VMBus host with hv_sock endpoints.

The guest drives it through five calls, the same ones Track B's platform layer makes (hv_cpuid, hv_rdmsr,
hv_wrmsr, the hypercall page): cpuid(), rdmsr(), wrmsr(), hypercall(control, rdx, r8) -> rax, and reads/writes
its memory (GuestMemory over any buffer). The model reaches back only through inject(vector) (an interrupt
for the VP) and guest memory. The host side: hvsock_listen()/hvsock_connect(), poll()/wait_host(), a clock
(VirtualClock: advance()/advance_to(); MonotonicClock beside a real VM).

MSR rules (TLFS "Partition Properties", "Hypercall Interface", "Partition Reference Counter"; Linux 6.1
arch/x86/kvm/hyperv.c kvm_hv_set_msr_pw / kvm_hv_get_msr_pw / hv_check_msr_access):
- Every synthetic MSR needs its CPUID 0x40000003 EAX privilege; without it, and for unknown synthetic MSRs,
  rdmsr/wrmsr #GP. With the `none` profile, all of them #GP.
- GUEST_OS_ID: any value; writing 0 disables the hypercall page (kvm hyperv.c line 1316).
- HYPERCALL: while GUEST_OS_ID is 0 a write is ignored and the page stays disabled (kvm hyperv.c line 1323).
  Enabling fills the page with the call sequence (vmcall; ret). Bits 11:2 are reserved (#GP); once the locked
  bit is set the MSR is read-only (TLFS; #GP).
- VP_INDEX, TIME_REF_COUNT, SVERSION are read-only (#GP on write; kvm hyperv.c). TIME_REF_COUNT counts 100 ns.
- REFERENCE_TSC: enabling writes {sequence != 0, scale, offset} so that ((tsc * scale) >> 64) + offset is the
  reference time; page outside guest memory #GPs.
Hypercall rules: see hypercall().
"""
from __future__ import annotations

import functools
import threading

from ..spec import hyperv as H
from ..spec.hyperv import FeaturesEax as FA
from ..spec.hyperv import FeaturesEbx as FB
from ..spec.hyperv import HvCall, HvStatus, Msr
from .clock import VirtualClock
from .errors import GeneralProtectionFault, GuestMemoryError, HvError, InvalidOpcodeFault, ModelBug
from .faults import Faults
from .hvsock import wait_readable
from .memory import GuestMemory
from .profiles import Profile, get_profile
from .ring import packer
from .stimer import SyntheticTimer
from .synic import SynIC
from .vmbus import VmbusHost

HYPERCALL_RESERVED = 0xFFC                       # HYPERCALL MSR bits 11:2
PAGE_MSR_RESERVED = 0xFFE                        # REFERENCE_TSC bits 11:1
STIMER_MSRS = range(Msr.STIMER0_CONFIG, Msr.STIMER3_COUNT + 1)
SINT_MSRS = range(Msr.SINT0, Msr.SINT15 + 1)
SYNIC_MSRS = {Msr.SCONTROL, Msr.SVERSION, Msr.SIEFP, Msr.SIMP, Msr.EOM, *SINT_MSRS}
POST_MESSAGE_INPUT = packer(H.HV_INPUT_POST_MESSAGE)   # connection_id, reserved, message_type, payload_size, payload
TLB_FLUSH_INPUT_SIZE = H.HV_TLB_FLUSH_INPUT.sizeof()
TLB_FLUSH_FLAGS = int(H.TlbFlushFlags.ALL_PROCESSORS | H.TlbFlushFlags.ALL_VIRTUAL_ADDRESS_SPACES
                      | H.TlbFlushFlags.NON_GLOBAL_MAPPINGS_ONLY)


def _entry(fn):
    """Public entry point: one caller at a time; nothing but HvError escapes."""
    @functools.wraps(fn)
    def wrapper(self, *args, **kwargs):
        with self._lock:
            try:
                return fn(self, *args, **kwargs)
            except HvError:
                raise
            except Exception as e:  # a model bug: typed, with the cause chained
                raise ModelBug(f"{fn.__name__}: {type(e).__name__}: {e}") from e
    return wrapper


def _privileges() -> dict[int, int]:
    """Synthetic MSR -> the CPUID 0x40000003 EAX privilege it needs (plain ints: this is the trap hot path)."""
    table = {int(Msr.GUEST_OS_ID): FA.HYPERCALL, int(Msr.HYPERCALL): FA.HYPERCALL, int(Msr.VP_INDEX): FA.VP_INDEX,
             int(Msr.TIME_REF_COUNT): FA.TIME_REF_COUNT, int(Msr.REFERENCE_TSC): FA.REFERENCE_TSC}
    table.update({int(m): FA.SYNIC for m in SYNIC_MSRS})
    table.update({int(m): FA.SYNTIMER for m in STIMER_MSRS})
    return {msr: int(bit) for msr, bit in table.items()}


MSR_PRIVILEGE = _privileges()
HYPERCALL_PRIVILEGE = {int(HvCall.POST_MESSAGE): int(FB.POST_MESSAGES), int(HvCall.SIGNAL_EVENT): int(FB.SIGNAL_EVENTS),
                       int(HvCall.GET_PARTITION_ID): int(FB.ACCESS_PARTITION_ID)}


class Partition:
    def __init__(self, memory, profile: str | Profile = "hyperv", *, clock=None, inject=None,
                 faults: Faults | None = None, log=None):
        self.mem = memory if isinstance(memory, GuestMemory) else GuestMemory(memory)
        self.profile = get_profile(profile)
        self.clock = clock or VirtualClock()
        self.faults = faults or Faults()
        self.injected: list[int] = []            # every vector raised, in order (tests, logs)
        self._inject = inject
        self.log_lines: list[str] = []
        self._log = log
        self._lock = threading.RLock()
        self.guest_os_id = 0
        self.hypercall_msr = 0
        self.reference_tsc_msr = 0
        self.tsc_sequence = 0
        self.synic = SynIC(self.mem, self._raise, self.log)
        self.synic.oversize_payload_size = 255 if self.faults.oversize_messages else None
        self.timers = [SyntheticTimer(i, self.synic, self.clock, self._raise, self.profile.direct_mode_timers)
                       for i in range(H.STIMER_COUNT)]
        self.vmbus = VmbusHost(self)
        self.hypercalls = 0
        # Beside a running VP (hvsim) the host's work after a hypercall (moving channel data, timers) runs once
        # the VP has its answer, as on Hyper-V, where HvSignalEvent only sets the event and the host's VMBus
        # server drains the ring on its own time: hypercall() then only sets service_due, and the caller
        # runs poll() after answering. In-process (the default) it runs before hypercall() returns.
        self.defer_service = False
        self.service_due = False
        self._features_eax = int(self.profile.features_eax) if self.profile.hypervisor else 0
        self._features_ebx = int(self.profile.features_ebx) if self.profile.hypervisor else 0
        self._msr_readers = {
            int(Msr.GUEST_OS_ID): lambda: self.guest_os_id, int(Msr.HYPERCALL): lambda: self.hypercall_msr,
            int(Msr.VP_INDEX): lambda: 0, int(Msr.TIME_REF_COUNT): self.clock.now,
            int(Msr.REFERENCE_TSC): lambda: self.reference_tsc_msr, int(Msr.SCONTROL): lambda: self.synic.scontrol,
            int(Msr.SVERSION): lambda: H.SYNIC_VERSION, int(Msr.SIEFP): lambda: self.synic.siefp,
            int(Msr.SIMP): lambda: self.synic.simp, int(Msr.EOM): lambda: 0}
        self._hypercall_handlers = {
            int(HvCall.POST_MESSAGE): self._hv_post_message, int(HvCall.SIGNAL_EVENT): self._hv_signal_event,
            int(HvCall.GET_PARTITION_ID): self._hv_get_partition_id,
            int(HvCall.FLUSH_VIRTUAL_ADDRESS_SPACE): self._hv_flush_space,
            int(HvCall.FLUSH_VIRTUAL_ADDRESS_LIST): self._hv_flush_list}

    def log(self, line: str) -> None:
        self.log_lines.append(line)
        if self._log:
            self._log(line)

    def _raise(self, vector: int) -> None:
        self.injected.append(vector)
        if self._inject:
            self._inject(vector)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    @_entry
    def close(self) -> None:
        self.vmbus.close()

    # -- CPUID (TLFS "Feature and Interface Discovery") --------------------------------------------------------
    @_entry
    def cpuid(self, leaf: int, subleaf: int = 0) -> tuple[int, int, int, int]:
        p = self.profile
        if leaf == 1:   # only the bit the model owns; the rest is the CPU's
            return (0, 0, H.CPUID_FEATURES_ECX_HYPERVISOR if p.hypervisor else 0, 0)
        if not p.hypervisor or not H.CpuidLeaf.VENDOR_AND_MAX_FUNCTIONS <= leaf <= p.max_leaf:
            return (0, 0, 0, 0)
        if leaf == H.CpuidLeaf.VENDOR_AND_MAX_FUNCTIONS:
            v = p.vendor
            return (p.max_leaf, *(int.from_bytes(v[i:i + 4], "little") for i in (0, 4, 8)))
        if leaf == H.CpuidLeaf.INTERFACE:
            return (H.INTERFACE_SIGNATURE, 0, 0, 0)
        if leaf == H.CpuidLeaf.VERSION:
            return (p.build[0], p.build[1], p.build[2], 0)
        if leaf == H.CpuidLeaf.FEATURES:
            return (int(p.features_eax), int(p.features_ebx), 0, int(p.features_edx))
        if leaf == H.CpuidLeaf.ENLIGHTENMENT_INFO:
            return (int(p.hints_eax), 0x0FFF, 0, 0)      # EBX: spinlock retries (0xFFF: never notify)
        if leaf == H.CpuidLeaf.IMPLEMENT_LIMITS:
            return (p.max_vps, 64, 0, 0)                 # max VPs, max logical processors
        return (0, 0, 0, 0)

    # -- MSRs ------------------------------------------------------------------------------------------------------
    def _check_msr(self, msr: int, write: bool) -> None:
        need = MSR_PRIVILEGE.get(msr, 0)
        if not need or not self._features_eax & need:
            raise GeneralProtectionFault(f"{'wrmsr' if write else 'rdmsr'} {msr:#x}: no such synthetic MSR "
                                         f"in profile {self.profile.name}")

    @_entry
    def rdmsr(self, msr: int) -> int:
        self._check_msr(msr, False)
        read = self._msr_readers.get(msr)
        if read is not None:
            return read()
        if msr in SINT_MSRS:
            return self.synic.sint[msr - Msr.SINT0]
        t = self.timers[(msr - Msr.STIMER0_CONFIG) // 2]
        return t.count if (msr - Msr.STIMER0_CONFIG) % 2 else t.config

    @_entry
    def wrmsr(self, msr: int, value: int) -> None:
        self._check_msr(msr, True)
        if not 0 <= value < 1 << 64:
            raise GeneralProtectionFault(f"wrmsr {msr:#x}: {value} is not a 64-bit value")
        if msr == Msr.GUEST_OS_ID:
            self.guest_os_id = value
            if value == 0:
                self.hypercall_msr &= ~H.PAGE_MSR_ENABLE
        elif msr == Msr.HYPERCALL:
            self._write_hypercall_msr(value)
        elif msr in (Msr.VP_INDEX, Msr.TIME_REF_COUNT, Msr.SVERSION):
            raise GeneralProtectionFault(f"wrmsr {Msr(msr).name}: read-only")
        elif msr == Msr.REFERENCE_TSC:
            self._write_reference_tsc(value)
        elif msr == Msr.SCONTROL:
            self.synic.write_scontrol(value)
        elif msr in (Msr.SIEFP, Msr.SIMP):
            self.synic.write_page_msr("siefp" if msr == Msr.SIEFP else "simp", value)
        elif msr == Msr.EOM:
            self.synic.eom()
        elif msr in SINT_MSRS:
            self.synic.write_sint(msr - Msr.SINT0, value)
        else:
            t = self.timers[(msr - Msr.STIMER0_CONFIG) // 2]
            (t.write_count if (msr - Msr.STIMER0_CONFIG) % 2 else t.write_config)(value)

    def _write_hypercall_msr(self, value: int) -> None:
        if self.hypercall_msr & H.HYPERCALL_LOCKED:
            raise GeneralProtectionFault("HYPERCALL MSR is locked")
        if value & HYPERCALL_RESERVED:
            raise GeneralProtectionFault(f"HYPERCALL MSR reserved bits 11:2 set in {value:#x}")
        if self.guest_os_id == 0:
            self.log("wrmsr HYPERCALL ignored: GUEST_OS_ID is 0")
            return
        if value & H.PAGE_MSR_ENABLE:
            page = value & H.PAGE_MSR_PFN_MASK
            if not self.mem.contains(page, H.PAGE_SIZE):
                raise GeneralProtectionFault(f"hypercall page {page:#x} is outside guest memory")
            self.mem.write(page, H.HYPERCALL_PAGE_CODE_INTEL)
        self.hypercall_msr = value

    def _write_reference_tsc(self, value: int) -> None:
        if value & PAGE_MSR_RESERVED:
            raise GeneralProtectionFault(f"REFERENCE_TSC reserved bits set in {value:#x}")
        if value & H.PAGE_MSR_ENABLE:
            page = value & H.PAGE_MSR_PFN_MASK
            if not self.mem.contains(page, H.PAGE_SIZE):
                raise GeneralProtectionFault(f"reference TSC page {page:#x} is outside guest memory")
            self.tsc_sequence = self.tsc_sequence % 0xFFFFFFFE + 1          # never 0 (0: page invalid)
            scale = (H.CLOCK_HZ << 64) // self.profile.tsc_hz
            offset = self.clock.now() - ((self.rdtsc() * scale) >> 64)
            self.mem.write(page, H.HV_REFERENCE_TSC_PAGE.build(dict(
                tsc_sequence=self.tsc_sequence, tsc_scale=scale, tsc_offset=offset)))
        self.reference_tsc_msr = value

    @_entry
    def rdtsc(self) -> int:
        """The VP's TSC, consistent with the reference clock at the profile's TSC frequency."""
        return self.clock.now() * self.profile.tsc_hz // H.CLOCK_HZ

    # -- hypercalls (TLFS "Hypercall Interface"; kvm hyperv.c kvm_hv_hypercall) ------------------------------------
    @_entry
    def hypercall(self, control: int, rdx: int = 0, r8: int = 0) -> int:
        """RCX = control, RDX/R8 = input/output GPAs (memory form) or data (fast form); returns RAX.
        #UD (InvalidOpcodeFault) while the hypercall page is not enabled. Then, in this order:
        unknown code -> INVALID_HYPERCALL_CODE; privilege missing -> ACCESS_DENIED; reserved control bits ->
        INVALID_HYPERCALL_INPUT; per-call checks below."""
        if not (self.profile.hypervisor and self.hypercall_msr & H.PAGE_MSR_ENABLE):
            raise InvalidOpcodeFault("hypercall while the hypercall page is not enabled")
        self.hypercalls += 1
        code = control & H.HYPERCALL_CODE_MASK
        fast = bool(control & H.HYPERCALL_FAST)
        varhead = (control & H.HYPERCALL_VARHEAD_MASK) >> H.HYPERCALL_VARHEAD_SHIFT
        reps = (control & H.HYPERCALL_REP_COUNT_MASK) >> H.HYPERCALL_REP_COUNT_SHIFT
        rep_start = (control & H.HYPERCALL_REP_START_MASK) >> H.HYPERCALL_REP_START_SHIFT
        handler = self._hypercall_handlers.get(code)
        if handler is None:
            return HvStatus.INVALID_HYPERCALL_CODE
        need = HYPERCALL_PRIVILEGE.get(code, 0)
        if need and not self._features_ebx & need:
            return HvStatus.ACCESS_DENIED
        if control & H.HYPERCALL_RESERVED_MASK:
            return HvStatus.INVALID_HYPERCALL_INPUT
        status, done = handler(fast=fast, varhead=varhead, reps=reps, rep_start=rep_start, rdx=rdx, r8=r8)
        if self.defer_service:
            self.service_due = True
        else:
            self.service()
        return int(status) | (done << H.RESULT_REPS_SHIFT)

    def _param(self, gpa: int, size: int) -> tuple[HvStatus, bytes]:
        """Read a memory-form parameter block: 8-byte aligned, within one page, in guest memory."""
        if gpa % H.HYPERCALL_PARAM_ALIGN or gpa % H.PAGE_SIZE + size > H.PAGE_SIZE:
            return HvStatus.INVALID_ALIGNMENT, b""
        try:
            return HvStatus.SUCCESS, self.mem.read(gpa, size)
        except GuestMemoryError:
            return HvStatus.INVALID_PARAMETER, b""

    def _hv_post_message(self, fast, varhead, reps, rep_start, rdx, r8):
        if fast or varhead or reps or rep_start:
            return HvStatus.INVALID_HYPERCALL_INPUT, 0
        status, raw = self._param(rdx, POST_MESSAGE_INPUT.size)
        if status:
            return status, 0
        conn_id, reserved, message_type, size, payload = POST_MESSAGE_INPUT.unpack(raw)
        if reserved or conn_id & ~H.CONNECTION_ID_MASK:
            return HvStatus.INVALID_HYPERCALL_INPUT, 0
        if message_type == 0 or message_type & 0x80000000 or size > H.MESSAGE_PAYLOAD_SIZE:
            return HvStatus.INVALID_PARAMETER, 0
        if not self.vmbus.accepts_message_connection(conn_id):
            return HvStatus.INVALID_CONNECTION_ID, 0
        if self.faults.insufficient_buffers > 0:
            self.faults.insufficient_buffers -= 1
            return HvStatus.INSUFFICIENT_BUFFERS, 0
        if self.vmbus.inbound_full():
            return HvStatus.INSUFFICIENT_BUFFERS, 0
        if message_type != H.HvMessageType.VMBUS:
            self.log(f"HvCallPostMessage: message type {message_type:#x} to the VMBus port dropped")
            return HvStatus.SUCCESS, 0
        self.vmbus.post_from_guest(conn_id, payload[:size])
        return HvStatus.SUCCESS, 0

    def _hv_signal_event(self, fast, varhead, reps, rep_start, rdx, r8):
        if varhead or reps or rep_start:
            return HvStatus.INVALID_HYPERCALL_INPUT, 0
        if not fast:
            status, raw = self._param(rdx, 8)
            if status:
                return status, 0
            rdx = int.from_bytes(raw, "little")
        conn_id = rdx & H.CONNECTION_ID_MASK
        flag = (rdx & H.SIGNAL_EVENT_FLAG_MASK) >> H.SIGNAL_EVENT_FLAG_SHIFT
        if rdx & ~(H.CONNECTION_ID_MASK | H.SIGNAL_EVENT_FLAG_MASK):
            return HvStatus.INVALID_HYPERCALL_INPUT, 0
        ch = self.vmbus.channel_by_connection(conn_id)
        if ch is None:
            return HvStatus.INVALID_CONNECTION_ID, 0
        if flag >= H.EVENT_FLAGS_BYTES * 8:
            return HvStatus.INVALID_PARAMETER, 0
        self.vmbus.signal_from_guest(ch)
        return HvStatus.SUCCESS, 0

    def _hv_get_partition_id(self, fast, varhead, reps, rep_start, rdx, r8):
        if fast or varhead or reps or rep_start:
            return HvStatus.INVALID_HYPERCALL_INPUT, 0
        if r8 % H.HYPERCALL_PARAM_ALIGN or r8 % H.PAGE_SIZE + 8 > H.PAGE_SIZE:
            return HvStatus.INVALID_ALIGNMENT, 0
        try:
            self.mem.write_u64(r8, self.profile.partition_id)
        except GuestMemoryError:
            return HvStatus.INVALID_PARAMETER, 0
        return HvStatus.SUCCESS, 0

    def _flush_input(self, fast, rdx, r8, extra: int):
        if fast:
            return HvStatus.SUCCESS, r8     # RDX address space, R8 flags
        status, raw = self._param(rdx, TLB_FLUSH_INPUT_SIZE + extra)
        return status, int.from_bytes(raw[8:16], "little") if not status else 0

    def _hv_flush_space(self, fast, varhead, reps, rep_start, rdx, r8):
        if varhead or reps or rep_start:
            return HvStatus.INVALID_HYPERCALL_INPUT, 0
        status, flags = self._flush_input(fast, rdx, r8, 0)
        if not status and flags & ~TLB_FLUSH_FLAGS:
            status = HvStatus.INVALID_PARAMETER
        return status, 0                    # one VP, no shadow TLB: nothing to flush

    def _hv_flush_list(self, fast, varhead, reps, rep_start, rdx, r8):
        if varhead or reps == 0 or rep_start:
            return HvStatus.INVALID_HYPERCALL_INPUT, 0
        if fast:
            return HvStatus.INVALID_HYPERCALL_INPUT, 0     # the GVA list needs the memory form
        status, flags = self._flush_input(False, rdx, r8, 8 * reps)
        if not status and flags & ~TLB_FLUSH_FLAGS:
            status = HvStatus.INVALID_PARAMETER
        return status, reps if not status else 0

    # -- host side --------------------------------------------------------------------------------------------------
    @_entry
    def hvsock_listen(self, port: int, dial=None):
        """Accept guest hv_sock connections to host port `port` (listener.accept(timeout) -> socket).
        dial: called for each connection, returns the host stream to bridge to (no accept() then)."""
        return self.vmbus.listen(port, dial)

    @_entry
    def hvsock_connect(self, guest_port: int, model_end=None):
        """Offer the guest a connection to its port; returns the host's socket (None when model_end, the
        stream to bridge to, is given)."""
        return self.vmbus.connect(guest_port, model_end)

    def service(self) -> bool:
        self.service_due = False
        moved = self.vmbus.service()
        now = self.clock.now()
        for t in self.timers:
            t.process(now)
        return moved

    @_entry
    def fire_timers(self) -> None:
        """Only the timers that are due (a timer-only wake beside a running VM: no stream to move)."""
        now = self.clock.now()
        for t in self.timers:
            t.process(now)

    @_entry
    def poll(self) -> bool:
        """Move hv_sock data both ways and fire due timers; True if anything moved."""
        return self.service()

    def wait_host(self, timeout: float) -> bool:
        """Wait up to `timeout` s for a host stream to have data, then poll."""
        with self._lock:
            bridges = self.vmbus.bridges()
        wait_readable(bridges, timeout)
        return self.poll()

    @_entry
    def next_deadline(self) -> int | None:
        deadlines = [d for d in (t.deadline() for t in self.timers) if d is not None]
        return min(deadlines) if deadlines else None

    @_entry
    def advance_to(self, when: int) -> None:
        """Move the virtual clock to `when`, firing each timer deadline on the way in order."""
        while True:
            d = self.next_deadline()
            if d is None or d > when:
                break
            self.clock.advance_to(d)
            for t in self.timers:
                t.process(self.clock.now())
        self.clock.advance_to(when)
        self.service()

    def halt(self, timeout: float = 0.05) -> None:
        """The VP executes `hlt`: on a VirtualClock time jumps to the next timer deadline (if any); on a real
        clock the VP waits for it, at most `timeout` s; host streams are serviced either way."""
        deadline = self.next_deadline()
        if deadline is not None and isinstance(self.clock, VirtualClock):
            self.advance_to(deadline)
            return
        wait = timeout if deadline is None else min(timeout, max(0.0, (deadline - self.clock.now()) / 1e7))
        self.wait_host(wait)

    def advance(self, ticks: int) -> None:
        self.advance_to(self.clock.now() + ticks)
