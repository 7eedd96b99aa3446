/* lapic.h: local APIC and 8259 registers the kernel uses (Intel SDM Vol. 3A
 * 10.4-10.8, 8259A datasheet). The LAPIC is memory mapped at the base in
 * IA32_APIC_BASE (0xFEE00000 after reset), inside the uncached boot map. */
#ifndef TRACKB_LAPIC_H
#define TRACKB_LAPIC_H

#define MSR_IA32_APIC_BASE   0x1B
#define APIC_BASE_ENABLE     (1u << 11)
#define APIC_BASE_X2APIC     (1u << 10)   /* firmware left x2APIC on: registers are MSRs 0x800 + off/16 */
#define X2APIC_MSR_BASE      0x800
#define APIC_BASE_ADDR_MASK  0x000FFFFFFFFFF000ULL
#define CPUID_FEATURES_EDX_APIC (1u << 9)

#define LAPIC_TPR   0x080    /* task priority: 0 accepts every vector */
#define LAPIC_EOI   0x0B0
#define LAPIC_SVR   0x0F0    /* spurious vector register */
#define LAPIC_SVR_ENABLE 0x100
#define LAPIC_ICR_LO 0x300   /* interrupt command: writing the low half sends */
#define LAPIC_ICR_SELF (1u << 18)   /* destination shorthand 01: self */
#define X2APIC_SELF_IPI_MSR 0x83F
#define LAPIC_LVT_TIMER 0x320
#define LAPIC_LVT_LINT0 0x350
#define LAPIC_LVT_LINT1 0x360
#define LAPIC_LVT_MASKED (1u << 16)

#define PIC1_CMD  0x20
#define PIC1_DATA 0x21
#define PIC2_CMD  0xA0
#define PIC2_DATA 0xA1
#define PIC_ICW1_INIT_ICW4 0x11
#define PIC_ICW4_8086 0x01

#endif
