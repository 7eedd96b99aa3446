/* synic.h: the synthetic interrupt controller (TLFS 11): message and
 * event-flags pages, SINT vectors, the message-slot protocol. */
#ifndef TRACKB_SYNIC_H
#define TRACKB_SYNIC_H

#include <stdint.h>

#include "hyperv.h"
#include "vmbus.h"

#define SYNIC_VMBUS_SINT VMBUS_MESSAGE_SINT   /* 2: VMBus messages and channel events */
#define SYNIC_TIMER_SINT 3u                   /* synthetic timer messages */
#define SYNIC_VMBUS_VECTOR 0x30u              /* IDT vectors (kernel/irq.h: 0x30-0x3E are ours) */
#define SYNIC_TIMER_VECTOR 0x31u
#define SYNIC_STIMER_DIRECT_VECTOR 0x32u

/* SIMP, SIEFP, SINT 2 and the timer SINT, SCONTROL. irq_mode: the SINTs
 * interrupt at their vectors (kernel/irq.c handlers that only count); else
 * they are set to polling and the main loop looks at the slots itself.
 * 0 or an errno. */
int synic_init(int irq_mode);
/* Take the message in sint's slot: copy it out (256 bytes), clear its type,
 * full barrier, EOM if another message is pending. 1 if a message was
 * copied, 0 if the slot was empty. */
int synic_take(unsigned sint, uint8_t out[HV_MESSAGE_SIZE]);
/* Test and clear (locked) event flag `bit` of sint's area. */
int synic_event_take(unsigned sint, unsigned bit);
/* Wait for something to happen: halt until an interrupt when interrupts and
 * a periodic tick are on, else one pause. */
void synic_idle(void);
/* Set by stimer.c once a periodic tick guarantees that synic_idle wakes up. */
void synic_set_tick_running(int running);
extern volatile uint32_t synic_interrupts;     /* SINT interrupts taken (handlers only count) */
extern int synic_irq_mode;

#endif
