/* synic.c: SynIC setup and the message-slot protocol (TLFS 11.8-11.10;
 * Linux drivers/hv/hv.c hv_synic_enable_regs, vmbus_drv.c vmbus_signal_eom). */
#include "hv/synic.h"
#include "kernel/errno.h"
#include "kernel/irq.h"
#include "kernel/klib.h"
#include "kernel/memlayout.h"
#include "kernel/pmm.h"
#include "kernel/vm.h"
#include "platform/platform.h"

volatile uint32_t synic_interrupts;
int synic_irq_mode;
static int tick_running;
static uint8_t *simp, *siefp;        /* message page and event-flags page */

static void synic_isr(unsigned vector)
{
    (void)vector;
    synic_interrupts++;               /* the main loop does the work (synic_take) */
}

static int enable_page_msr(uint32_t msr, uint8_t **page)
{
    uint64_t pa = pmm_alloc_zeroed();
    if (!pa)
        return ERR_NOMEM;
    *page = phys_ptr(pa, PAGE_SIZE);
    uint64_t v = hv_rdmsr(msr) & ~HV_PAGE_MSR_PFN_MASK;   /* keep reserved bits as read */
    return hv_wrmsr(msr, v | pa | HV_PAGE_MSR_ENABLE) ? ERR_IO : 0;
}

static int set_sint(unsigned sint, unsigned vector)
{
    uint64_t v = hv_rdmsr(HV_MSR_SINT0 + sint);
    v &= ~(uint64_t)(HV_SINT_VECTOR_MASK | HV_SINT_MASKED | HV_SINT_AUTO_EOI | HV_SINT_POLLING);
    v |= vector | (synic_irq_mode ? 0 : HV_SINT_POLLING);  /* never auto-EOI (deprecated on Hyper-V) */
    if (synic_irq_mode && irq_register(vector, synic_isr))
        return ERR_RANGE;
    return hv_wrmsr(HV_MSR_SINT0 + sint, v) ? ERR_IO : 0;
}

int synic_init(int irq_mode)
{
    int err;
    synic_irq_mode = irq_mode;
    if ((err = enable_page_msr(HV_MSR_SIMP, &simp)) || (err = enable_page_msr(HV_MSR_SIEFP, &siefp)))
        return err;
    if ((err = set_sint(SYNIC_VMBUS_SINT, SYNIC_VMBUS_VECTOR)) || (err = set_sint(SYNIC_TIMER_SINT, SYNIC_TIMER_VECTOR)))
        return err;
    if (hv_wrmsr(HV_MSR_SCONTROL, hv_rdmsr(HV_MSR_SCONTROL) | HV_SCONTROL_ENABLE))
        return ERR_IO;
    return 0;
}

int synic_take(unsigned sint, uint8_t out[HV_MESSAGE_SIZE])
{
    if (!simp || sint >= HV_SINT_COUNT)
        return 0;
    volatile uint8_t *slot = simp + sint * HV_MESSAGE_SIZE;
    volatile uint32_t *type = (volatile uint32_t *)(slot + HV_MESSAGE_HEADER_OFF_MESSAGE_TYPE);
    if (*type == HVMSG_NONE)
        return 0;
    rmb();
    for (unsigned i = 0; i < HV_MESSAGE_SIZE; i++)    /* 1. copy out: the parsers see only this copy */
        out[i] = slot[i];
    *type = HVMSG_NONE;                                /* 2. free the slot */
    mb();                                              /* 3. before looking at "pending" */
    if (slot[HV_MESSAGE_HEADER_OFF_FLAGS] & HV_MESSAGE_FLAG_PENDING)
        hv_wrmsr(HV_MSR_EOM, 0);                       /* 4. the host delivers the next one */
    return 1;
}

int synic_event_take(unsigned sint, unsigned bit)
{
    if (!siefp || sint >= HV_SINT_COUNT || bit >= HV_EVENT_FLAGS_BYTES * 8)
        return 0;
    uint32_t *w = (uint32_t *)(siefp + sint * HV_EVENT_FLAGS_BYTES) + bit / 32;
    uint32_t m = 1u << (bit % 32);
    if (!(__atomic_load_n(w, __ATOMIC_RELAXED) & m))
        return 0;
    return !!(__atomic_fetch_and(w, ~m, __ATOMIC_SEQ_CST) & m);
}

void synic_set_tick_running(int running) { tick_running = running; }

void synic_idle(void)
{
    if (synic_irq_mode && tick_running)
        cpu_wait_for_interrupt();                      /* sti; hlt; cli: the tick bounds the sleep */
    else
        cpu_relax();
}
