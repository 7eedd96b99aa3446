"""Synthetic timers STIMER0..3 (TLFS "Timers"; Linux 6.1 arch/x86/kvm/hyperv.c, KVM's implementation).

- CONFIG: enable, periodic, lazy, auto-enable, direct mode + APIC vector, SINT. A non-direct timer whose SINT
  is 0 is disabled (hyperv-guest-facts.md; kvm hyperv.c stimer_set_config). Direct mode #GPs where the profile
  does not offer it (kvm hyperv.c stimer_set_config, CPUID 0x40000003 EDX bit 19). Reserved bits #GP.
- COUNT: 100 ns units; the absolute deadline of a one-shot timer, the period of a periodic one. Writing 0
  disables the timer; writing non-zero enables it when auto-enable is set (kvm hyperv.c stimer_set_count).
- A one-shot timer whose deadline has passed expires at once (TLFS v4 15.3.1, quoted in kvm stimer_start).
- Expiry in message mode writes HvMessageTimerExpired {index, expiration_time, delivery_time} into the SINT's
  slot; if the slot is busy the message stays pending and is retried on EOM; a periodic timer restarts only
  after its message was delivered, at the next multiple of its period (kvm hyperv.c stimer_start,
  stimer_expiration, kvm_hv_notify_acked_sint). Direct mode injects the APIC vector instead.
"""
from __future__ import annotations


from ..spec.hyperv import (HV_TIMER_MESSAGE_PAYLOAD, STIMER_APIC_VECTOR_MASK, STIMER_APIC_VECTOR_SHIFT,
                           STIMER_SINT_MASK, STIMER_SINT_SHIFT, HvMessageType, StimerConfigBits)
from .errors import GeneralProtectionFault
from .ring import packer

TIMER_PAYLOAD = packer(HV_TIMER_MESSAGE_PAYLOAD)
# plain ints: these are tested on every trap (IntFlag arithmetic costs a microsecond each)
ENABLE, PERIODIC, AUTO_ENABLE, DIRECT_MODE = (int(StimerConfigBits.ENABLE), int(StimerConfigBits.PERIODIC),
                                              int(StimerConfigBits.AUTO_ENABLE), int(StimerConfigBits.DIRECT_MODE))
CONFIG_VALID = int(StimerConfigBits.ENABLE | StimerConfigBits.PERIODIC | StimerConfigBits.LAZY
                | StimerConfigBits.AUTO_ENABLE | StimerConfigBits.DIRECT_MODE | STIMER_APIC_VECTOR_MASK
                | STIMER_SINT_MASK)


class SyntheticTimer:
    def __init__(self, index: int, synic, clock, inject, direct_allowed: bool):
        self.index, self.synic, self.clock, self.inject = index, synic, clock, inject
        self.direct_allowed = direct_allowed
        self.config = 0
        self.count = 0
        self.exp_time = 0
        self.msg_pending = False
        self.expirations = 0
        synic.on_eom.append(self._retry)

    # -- fields -----------------------------------------------------------------------------------------------
    @property
    def enabled(self) -> bool:
        return bool(self.config & ENABLE)

    @property
    def periodic(self) -> bool:
        return bool(self.config & PERIODIC)

    @property
    def direct(self) -> bool:
        return bool(self.config & DIRECT_MODE)

    @property
    def sint(self) -> int:
        return (self.config & STIMER_SINT_MASK) >> STIMER_SINT_SHIFT

    @property
    def apic_vector(self) -> int:
        return (self.config & STIMER_APIC_VECTOR_MASK) >> STIMER_APIC_VECTOR_SHIFT

    # -- MSRs -----------------------------------------------------------------------------------------------
    def write_config(self, value: int) -> None:
        if value & ~CONFIG_VALID:
            raise GeneralProtectionFault(f"STIMER{self.index}_CONFIG reserved bits set in {value:#x}")
        if value & DIRECT_MODE and not self.direct_allowed:
            raise GeneralProtectionFault(f"STIMER{self.index}_CONFIG: direct mode is not offered")
        if not value & DIRECT_MODE and not value & STIMER_SINT_MASK:
            value &= ~ENABLE
        self.config = value
        self.msg_pending = False
        self._arm()

    def write_count(self, value: int) -> None:
        self.count = value
        self.msg_pending = False
        if value == 0:
            self.config &= ~ENABLE
        elif self.config & AUTO_ENABLE and (self.direct or self.sint):
            self.config |= ENABLE
        self._arm()

    def _arm(self) -> None:
        self.exp_time = 0
        if not (self.enabled and self.count):
            return
        now = self.clock.now()
        self.exp_time = now + self.count if self.periodic else self.count
        self.process(now)   # a one-shot deadline in the past expires at once

    # -- time ---------------------------------------------------------------------------------------------------
    def deadline(self) -> int | None:
        return self.exp_time if self.enabled and self.count and not self.msg_pending else None

    def process(self, now: int) -> None:
        if self.enabled and self.count and not self.msg_pending and self.exp_time <= now:
            self._expire(now)

    def _expire(self, now: int) -> None:
        if self.direct:
            self.inject(self.apic_vector)
            delivered = True
        else:
            payload = TIMER_PAYLOAD.pack(self.index, 0, self.exp_time, now)
            delivered = self.synic.try_write(self.sint, HvMessageType.TIMER_EXPIRED, payload)
        if not delivered:
            self.msg_pending = True
            return
        self.expirations += 1
        if not self.periodic:
            self.config &= ~ENABLE
            return
        missed = (now - self.exp_time) // self.count   # lazy: skip ticks that passed meanwhile
        self.exp_time += (missed + 1) * self.count

    def _retry(self) -> None:
        if self.msg_pending:
            self.msg_pending = False
            self._expire(self.clock.now())
