"""SynIC: SCONTROL, SIMP/SIEFP pages, 16 SINTs, one message slot per SINT with the pending flag, event flags.

Rules (TLFS "Synthetic Interrupt Controller"; Linux 6.1 arch/x86/kvm/hyperv.c, KVM's implementation of it):
- A message is written into SINTn's slot only while SCONTROL and SIMP are enabled and the slot is empty
  (message_type 0); otherwise it waits in the host queue and the occupied slot gets the pending flag
  (kvm hyperv.c synic_deliver_msg, lines 750-790). Writing EOM retries every SINT (synic_set_msr EOM).
- Delivery raises the SINT's vector through inject() unless the SINT is masked or in polling mode; a masked
  SINT still receives messages in its slot (the guest may poll).
- SINTn vectors below 16 #GP unless masked (kvm hyperv.c synic_set_sint, line 147).
- Enabling SIMP or SIEFP clears the page (kvm hyperv.c synic_set_msr, lines 262-282).
- Event flags: setting flag n of SINTm's area sets bit n of the 256-byte area m of the SIEFP page; the
  SINT's interrupt is raised when the bit was clear.
"""
from __future__ import annotations

import collections

from ..spec.hyperv import (EVENT_FLAGS_BYTES, HV_MESSAGE, HV_MESSAGE_HEADER, MESSAGE_FLAG_PENDING,
                           MESSAGE_PAYLOAD_SIZE, PAGE_MSR_ENABLE, PAGE_MSR_PFN_MASK, PAGE_SIZE, SCONTROL_ENABLE,
                           SINT_COUNT, SINT_FIRST_VALID_VECTOR, SINT_VECTOR_MASK, HvMessageType, SintBits)
from .errors import GeneralProtectionFault, GuestMemoryError
from .ring import packer

HEADER = packer(HV_MESSAGE_HEADER)
assert HV_MESSAGE.sizeof() == HEADER.size + MESSAGE_PAYLOAD_SIZE
SLOT_SIZE = HV_MESSAGE.sizeof()
SINT_RESERVED = ~int(SINT_VECTOR_MASK | SintBits.MASKED | SintBits.AUTO_EOI | SintBits.POLLING) & (2**64 - 1)
MASKED_OR_POLLING = int(SintBits.MASKED | SintBits.POLLING)
MASKED = int(SintBits.MASKED)
HOST_QUEUE_LIMIT = 1024               # messages the host keeps for one SINT before it stops answering


class SynIC:
    def __init__(self, memory, inject, log):
        self.mem, self.inject, self.log = memory, inject, log
        self.scontrol = 0
        self.simp = 0
        self.siefp = 0
        self.sint = [MASKED] * SINT_COUNT
        self.queues: list[collections.deque] = [collections.deque() for _ in range(SINT_COUNT)]
        self.oversize_payload_size: int | None = None   # fault knob: the slot's payload_size lies
        self.on_eom = []                                 # callbacks (timers retry their messages)
        self.delivered = 0

    # -- MSRs ---------------------------------------------------------------------------------------------
    def write_scontrol(self, value: int) -> None:
        if value & ~SCONTROL_ENABLE:
            raise GeneralProtectionFault(f"SCONTROL reserved bits set in {value:#x}")
        self.scontrol = value
        self.flush_all()

    def write_page_msr(self, which: str, value: int) -> None:
        if value & PAGE_MSR_ENABLE:
            base = value & PAGE_MSR_PFN_MASK
            if not self.mem.contains(base, PAGE_SIZE):
                raise GeneralProtectionFault(f"{which} page {base:#x} is outside guest memory")
            self.mem.zero(base, PAGE_SIZE)
        setattr(self, which, value)
        self.flush_all()

    def write_sint(self, n: int, value: int) -> None:
        if value & SINT_RESERVED:
            raise GeneralProtectionFault(f"SINT{n} reserved bits set in {value:#x}")
        if not value & MASKED and (value & SINT_VECTOR_MASK) < SINT_FIRST_VALID_VECTOR:
            raise GeneralProtectionFault(f"SINT{n} vector {value & SINT_VECTOR_MASK} < 16 while unmasked")
        was_masked = self.sint[n] & MASKED
        self.sint[n] = value
        if was_masked and not value & MASKED:
            self._flush(n)
            if self._slot_type(n) not in (None, HvMessageType.NONE):
                self.raise_sint(n)   # a message waited in the slot while masked

    def eom(self) -> None:
        self.flush_all()
        for cb in self.on_eom:
            cb()

    # -- delivery -----------------------------------------------------------------------------------------
    @property
    def enabled(self) -> bool:
        return bool(self.scontrol & SCONTROL_ENABLE)

    def slot_gpa(self, n: int) -> int | None:
        if not (self.enabled and self.simp & PAGE_MSR_ENABLE):
            return None
        return (self.simp & PAGE_MSR_PFN_MASK) + n * SLOT_SIZE

    def _slot_type(self, n: int) -> int | None:
        gpa = self.slot_gpa(n)
        return None if gpa is None else self.mem.read_u32(gpa)

    def raise_sint(self, n: int) -> None:
        v = self.sint[n]
        if v & MASKED_OR_POLLING:
            return
        self.inject(v & SINT_VECTOR_MASK)

    def queue_full(self, n: int) -> bool:
        return len(self.queues[n]) >= HOST_QUEUE_LIMIT

    def post(self, n: int, message_type: int, payload: bytes, sender: int = 0) -> None:
        """Queue a host message for SINTn and deliver what the slot allows."""
        self.queues[n].append((message_type, bytes(payload), sender))
        self._flush(n)

    def try_write(self, n: int, message_type: int, payload: bytes, sender: int = 0) -> bool:
        """Write straight into the slot if it is free (timer messages, KVM's no-queue path); if not, set the
        slot's pending flag so the guest's EOM gives the caller another chance."""
        gpa = self.slot_gpa(n)
        if gpa is None:
            return False
        if self._busy(gpa):
            return False
        self._write_slot(n, gpa, message_type, payload, sender, more=False)
        return True

    def flush_all(self) -> None:
        for n in range(SINT_COUNT):
            self._flush(n)

    def _flush(self, n: int) -> None:
        q = self.queues[n]
        if not q:
            return
        gpa = self.slot_gpa(n)
        if gpa is None:
            return
        if self._busy(gpa):
            return
        message_type, payload, sender = q.popleft()
        self._write_slot(n, gpa, message_type, payload, sender, more=bool(q))

    def _busy(self, gpa: int) -> bool:
        """The slot holds an unread message: flag it pending (the guest's EOM asks for the next one). A guest
        running beside the model (hvsim) may free the slot between the two looks and miss the flag; the
        second look catches that, and the slot is used at once (TLFS 11.10.3; KVM's synic_deliver_msg
        claims the slot with a cmpxchg on message_type for the same reason)."""
        if self.mem.read_u32(gpa) == HvMessageType.NONE:
            return False
        self._set_pending(gpa)
        return self.mem.read_u32(gpa) != HvMessageType.NONE

    def _set_pending(self, gpa: int) -> None:
        flags_gpa = gpa + 5
        self.mem.write(flags_gpa, bytes([self.mem.read(flags_gpa, 1)[0] | MESSAGE_FLAG_PENDING]))

    def _write_slot(self, n, gpa, message_type, payload, sender, more: bool) -> None:
        size = len(payload) if self.oversize_payload_size is None else self.oversize_payload_size
        self.mem.write(gpa + HEADER.size, payload.ljust(MESSAGE_PAYLOAD_SIZE, b"\0")[:MESSAGE_PAYLOAD_SIZE])
        # the type goes in last: a guest polling the slot never sees a type with a half-written payload
        self.mem.write(gpa + 4, HEADER.pack(0, size & 0xFF, MESSAGE_FLAG_PENDING if more else 0, 0, sender)[4:])
        self.mem.write_u32(gpa, message_type)
        self.delivered += 1
        self.raise_sint(n)

    # -- event flags ----------------------------------------------------------------------------------------
    def signal_event(self, n: int, flag: int) -> bool:
        """Set event flag `flag` of SINTn; False if the SIEFP page is not enabled (the event is lost, as on
        Hyper-V: the guest must enable SIEFP before it opens channels)."""
        if not (self.enabled and self.siefp & PAGE_MSR_ENABLE) or not 0 <= flag < EVENT_FLAGS_BYTES * 8:
            return False
        gpa = (self.siefp & PAGE_MSR_PFN_MASK) + n * EVENT_FLAGS_BYTES + flag // 8
        try:
            old = self.mem.read(gpa, 1)[0]
        except GuestMemoryError:
            return False
        bit = 1 << (flag % 8)
        if not old & bit:
            self.mem.write(gpa, bytes([old | bit]))
        self.raise_sint(n)
        return True
