/* hv_boot.h: bring Hyper-V up for the agent (main.c). */
#ifndef TRACKB_HV_BOOT_H
#define TRACKB_HV_BOOT_H

#include "hv/hv.h"
#include "hv/hvsock.h"

/* Detect, enlighten, SynIC (interrupts unless poll or no APIC), the stimer
 * tick, VMBus, then start agent_sock towards the host's AgentX port. The
 * hv_sock the agent should use, or NULL: not Hyper-V, or a step failed. */
struct hvsock *hv_boot(struct hv_caps *caps, int poll, struct hvsock *agent_sock);

#endif
