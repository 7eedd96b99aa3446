/* hv_boot.c: the Hyper-V bring-up, in order. Each step that fails says so
 * and leaves the kernel on the paths it had (virtio-console, COM2). */
#include "hv/hv_boot.h"
#include "hv/stimer.h"
#include "hv/synic.h"
#include "kernel/console.h"
#include "kernel/errno.h"
#include "kernel/irq.h"
#include "platform/platform.h"

#define VMBUS_STEP_TIMEOUT_NS 1000000000ULL   /* per VMBus handshake step */

static uint8_t agent_rx[HVSOCK_PKT_MAX];              /* the AgentX stream's packets, up to the MTU */

struct hvsock *hv_boot(struct hv_caps *caps, int poll, struct hvsock *agent_sock)
{
    int err;
    if (!hv_detect(caps))                                   /* 1. CPUID: not Hyper-V = nothing changes */
        return NULL;
    kprintf("hv: Hyper-V interface, features %x/%x/%x, hints %x\n", caps->features_eax, caps->features_ebx,
            caps->features_edx, caps->hints_eax);
    if ((err = hv_enlighten(caps))) {                       /* 2. OS id, hypercall page, VP index, clock */
        kprintf("hv: enlightenments failed (%s)\n", err_str(err));
        return NULL;
    }
    int irq_mode = !poll && irq_init() == 0;            /* 3. LAPIC on, 8259 masked (else poll) */
    if ((err = synic_init(irq_mode))) {                     /* 4. SynIC */
        kprintf("hv: SynIC failed (%s)\n", err_str(err));
        return NULL;
    }
    if ((err = stimer_start(caps, STIMER_TICK_100NS, irq_mode)))   /* 5. the tick */
        kprintf("hv: no periodic stimer (%s); polling\n", err_str(err));
    kprintf("hv: SynIC %s\n", irq_mode ? "interrupts" : "polled");
    if (irq_mode)
        hv_wait_may_halt();                                 /* interrupts now wake a hlt */
    if ((err = vmbus_connect(caps, VMBUS_STEP_TIMEOUT_NS)))  /* 6. VMBus */
        return NULL;
    uint32_t ring_pages = agent_sock->ring_pages;           /* a caller's choice survives hvsock_init */
    hvsock_init(agent_sock, VMBUS_AGENTX_HVSOCK_PORT, agent_rx, sizeof agent_rx);     /* 7. AgentX over hv_sock, connected in the loop */
    if (ring_pages)
        agent_sock->ring_pages = ring_pages;
    hvsock_poll(agent_sock);
    return agent_sock;
}
