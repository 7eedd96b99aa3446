/* stimer.c: synthetic timer 0, periodic (TLFS 12.2-12.4; Linux
 * drivers/clocksource/hyperv_timer.c). COUNT is written before CONFIG: with
 * PERIODIC, COUNT is the period. A message-mode timer needs a non-zero SINT. */
#include "hv/stimer.h"
#include "hv/synic.h"
#include "kernel/console.h"
#include "kernel/errno.h"
#include "kernel/irq.h"
#include "platform/platform.h"

struct stimer_state stimer;

static void note_tick(uint64_t when)
{
    if (stimer.ticks < STIMER_LOG_TICKS)
        stimer.expirations[stimer.ticks] = when;
    stimer.ticks++;
}

static void direct_isr(unsigned vector)
{
    (void)vector;
    note_tick(hv_time_100ns());
}

int stimer_start(const struct hv_caps *c, uint64_t period_100ns, int irq_mode)
{
    if (!(c->features_eax & HV_FEATURE_EAX_SYNTIMER) || period_100ns == 0)
        return ERR_NOTSUP;
    stimer.direct = irq_mode && (c->features_edx & HV_FEATURE_EDX_STIMER_DIRECT_MODE);
    uint64_t cfg = HV_STIMER_ENABLE | HV_STIMER_PERIODIC;
    if (stimer.direct) {
        if (irq_register(SYNIC_STIMER_DIRECT_VECTOR, direct_isr))
            return ERR_RANGE;
        cfg |= HV_STIMER_DIRECT_MODE | (uint64_t)SYNIC_STIMER_DIRECT_VECTOR << HV_STIMER_APIC_VECTOR_SHIFT;
    } else {
        cfg |= (uint64_t)SYNIC_TIMER_SINT << HV_STIMER_SINT_SHIFT;
    }
    stimer.period_100ns = period_100ns;
    if (hv_wrmsr(HV_MSR_STIMER0_COUNT, period_100ns) || hv_wrmsr(HV_MSR_STIMER0_CONFIG, cfg))
        return ERR_IO;
    stimer.running = 1;
    synic_set_tick_running(irq_mode);
    kprintf("hv: stimer0 periodic %lu us, %s mode\n", period_100ns / 10, stimer.direct ? "direct" : "message");
    return 0;
}

void stimer_on_message(const struct hv_msg *m)
{
    struct hv_timer_msg t;
    if (hv_timer_msg_parse(m->payload, m->size, &t) || t.index != 0) {
        stimer.bad_messages++;
        return;
    }
    note_tick(t.expiration);
}

void stimer_stop(void)
{
    hv_wrmsr(HV_MSR_STIMER0_CONFIG, 0);
    stimer.running = 0;
    synic_set_tick_running(0);
}
