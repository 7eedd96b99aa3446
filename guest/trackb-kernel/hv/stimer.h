/* stimer.h: synthetic timer 0 as the kernel's periodic tick (TLFS 12.2). */
#ifndef TRACKB_STIMER_H
#define TRACKB_STIMER_H

#include <stdint.h>

#include "hv/hv.h"
#include "hv/hv_parse.h"

#define STIMER_TICK_100NS 10000u        /* 1 ms */
#define STIMER_LOG_TICKS 8              /* the first expirations are kept for diagnostics and tests */

struct stimer_state {
    int running, direct;
    uint64_t period_100ns;
    volatile uint64_t ticks;
    uint64_t expirations[STIMER_LOG_TICKS];    /* message mode: expiration_time; direct: time seen */
    uint64_t bad_messages;
};
extern struct stimer_state stimer;

/* Timer 0 periodic every period_100ns: direct mode (an APIC vector, no
 * message) when offered and interrupts are on, else message mode on
 * SYNIC_TIMER_SINT. 0, or an errno (no synthetic timers, MSR refused). */
int stimer_start(const struct hv_caps *caps, uint64_t period_100ns, int irq_mode);
/* A HVMSG_TIMER_EXPIRED message (vmbus_poll hands them over). */
void stimer_on_message(const struct hv_msg *m);
void stimer_stop(void);

#endif
