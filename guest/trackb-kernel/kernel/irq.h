/* irq.h: external interrupts. Off unless the Hyper-V path asks (SynIC
 * messages, event flags and timer ticks); handlers run with interrupts off,
 * only note what happened, and the main loop does the work. */
#ifndef TRACKB_IRQ_H
#define TRACKB_IRQ_H

#define IRQ_VECTOR_BASE 0x20u     /* the 8259's vectors once remapped (all masked) */
#define IRQ_VECTOR_LIMIT 0x40u    /* IDT entries 0x20-0x3F; 0x3F is the LAPIC spurious vector */
#define IRQ_SPURIOUS_VECTOR 0x3Fu

typedef void (*irq_handler)(unsigned vector);

/* 8259 remapped to 0x20-0x2F and fully masked, the LAPIC enabled with task
 * priority 0. 0, or ERR_NODEV when the CPU has no APIC (interrupts stay off:
 * the caller polls). */
int irq_init(void);
/* Handler for vector (0x30-0x3E). 0, or ERR_RANGE. */
int irq_register(unsigned vector, irq_handler h);
/* Called by trapasm.S's interrupt stubs: the handler, then the LAPIC EOI. */
void irq_dispatch(unsigned vector);
extern unsigned long irq_unexpected;   /* vectors without a handler */
/* trackb.irqtest (tests under QEMU, which has no Hyper-V): irq_init, then a
 * self-IPI at IRQ_SELFTEST_VECTOR taken through the IDT gate, the handler
 * and iretq, with interrupts on only briefly. 0 or ERR_TIMEDOUT/ERR_NODEV. */
#define IRQ_SELFTEST_VECTOR 0x3Eu
int irq_self_test(void);

#endif
