/* irq.c: the LAPIC, the 8259 kept masked, and dispatch of external
 * interrupts to handlers that defer their work (xv6 lapic.c/picirq.c). */
#include "drivers/lapic.h"
#include "kernel/errno.h"
#include "kernel/irq.h"
#include "kernel/timer.h"
#include "platform/platform.h"

#define SELFTEST_TIMEOUT_NS 100000000ULL   /* 100 ms: the IPI is pending at once */

static irq_handler handlers[IRQ_VECTOR_LIMIT];
static uint64_t lapic;                          /* physical base, 0 until irq_init */
static int x2apic;                              /* registers through MSRs instead */

static void lapic_write(uint32_t reg, uint32_t v)
{
    if (x2apic)
        cpu_wrmsr(X2APIC_MSR_BASE + reg / 16, v);
    else
        mmio_write32(lapic + reg, v);
}
unsigned long irq_unexpected;

static void pic_remap_and_mask(void)
{
    /* ICW1-4 move the 8259's vectors off the exceptions (SeaBIOS leaves base
     * 0x08, where a stray IRQ 0 would look like #DF), then mask every line. */
    pio_out8(PIC1_CMD, PIC_ICW1_INIT_ICW4);
    pio_out8(PIC2_CMD, PIC_ICW1_INIT_ICW4);
    pio_out8(PIC1_DATA, IRQ_VECTOR_BASE);
    pio_out8(PIC2_DATA, IRQ_VECTOR_BASE + 8);
    pio_out8(PIC1_DATA, 4);                     /* slave on IRQ 2 */
    pio_out8(PIC2_DATA, 2);
    pio_out8(PIC1_DATA, PIC_ICW4_8086);
    pio_out8(PIC2_DATA, PIC_ICW4_8086);
    pio_out8(PIC1_DATA, 0xFF);
    pio_out8(PIC2_DATA, 0xFF);
}

int irq_init(void)
{
    uint32_t r[4];
    cpu_cpuid(1, 0, r);
    if (!(r[3] & CPUID_FEATURES_EDX_APIC))
        return ERR_NODEV;
    pic_remap_and_mask();                                           /* 1. the 8259: quiet */
    uint64_t base = cpu_rdmsr(MSR_IA32_APIC_BASE);                  /* 2. the LAPIC: on */
    cpu_wrmsr(MSR_IA32_APIC_BASE, base | APIC_BASE_ENABLE);
    lapic = base & APIC_BASE_ADDR_MASK;
    x2apic = !!(base & APIC_BASE_X2APIC);
    lapic_write(LAPIC_LVT_TIMER, LAPIC_LVT_MASKED);                 /* its own timer: unused */
    lapic_write(LAPIC_TPR, 0);
    lapic_write(LAPIC_SVR, LAPIC_SVR_ENABLE | IRQ_SPURIOUS_VECTOR);
    return 0;
}

int irq_register(unsigned vector, irq_handler h)
{
    if (vector < 0x30 || vector >= IRQ_SPURIOUS_VECTOR)
        return ERR_RANGE;
    handlers[vector] = h;
    return 0;
}

void irq_dispatch(unsigned vector)
{
    if (vector == IRQ_SPURIOUS_VECTOR)
        return;                                 /* no EOI for the spurious vector */
    if (vector < IRQ_VECTOR_LIMIT && handlers[vector])
        handlers[vector](vector);
    else
        irq_unexpected++;
    if (vector >= 0x30 && lapic)                /* 0x20-0x2F: masked 8259 lines, never the LAPIC's */
        lapic_write(LAPIC_EOI, 0);
}

static volatile unsigned selftest_hits;

static void selftest_isr(unsigned vector)
{
    (void)vector;
    selftest_hits++;
}

int irq_self_test(void)
{
    int err = irq_init();
    if (err)
        return err;
    irq_register(IRQ_SELFTEST_VECTOR, selftest_isr);
    if (x2apic)
        cpu_wrmsr(X2APIC_SELF_IPI_MSR, IRQ_SELFTEST_VECTOR);
    else
        lapic_write(LAPIC_ICR_LO, LAPIC_ICR_SELF | IRQ_SELFTEST_VECTOR);
    uint64_t deadline = timer_now_ns() + SELFTEST_TIMEOUT_NS;
    while (!selftest_hits && timer_now_ns() < deadline) {
        cpu_irq_enable();                          /* a window for the pending IPI, never a hlt */
        cpu_relax();
        cpu_irq_disable();
    }
    handlers[IRQ_SELFTEST_VECTOR] = 0;
    return selftest_hits == 1 ? 0 : ERR_TIMEDOUT;
}
