/* hv.h: Hyper-V detection and enlightenments (TLFS; facts in
 * shared/reference/hyperv-guest-facts.md), on the generated build/gen/hyperv.h.
 *
 * Boot order (main.c): hv_detect (CPUID only: absent means the virtio path
 * exactly as before), hv_enlighten (guest OS id, hypercall page, VP index,
 * clock source, partition id), then synic_init, stimer_start, vmbus_connect.
 * Every hypervisor access goes through platform.h's hv_* functions. */
#ifndef TRACKB_HV_H
#define TRACKB_HV_H

#include <stdint.h>

#include "hyperv.h"

/* What the hypervisor offers (CPUID 0x40000000-0x40000004) and what hv_enlighten set up. */
struct hv_caps {
    int present;                 /* "Hv#1" interface and the hypercall + SynIC privileges */
    uint32_t max_leaf;
    uint32_t features_eax, features_ebx, features_edx, hints_eax;
    /* filled by hv_enlighten */
    uint32_t vp_index;
    int ref_tsc;                 /* clock from the reference TSC page (else TIME_REF_COUNT) */
    int have_partition_id;
    uint64_t partition_id;
};

/* CPUID leaves 1 and 0x40000000-4. 1 when a Hyper-V interface with the
 * privileges the kit needs is there, 0 otherwise (caps->present says the same). */
int hv_detect(struct hv_caps *caps);
/* The enlightenments. 0, or an errno (kernel/errno.h) naming what failed:
 * then nothing of Hyper-V is used and the caller takes the other paths. */
int hv_enlighten(struct hv_caps *caps);
/* Partition reference time in 100 ns units: the reference TSC page when it is
 * valid, TIME_REF_COUNT otherwise (hv_enlighten must have run). */
uint64_t hv_time_100ns(void);

/* Hypercalls through the page (hv_hypercall_page_alloc). Both return the
 * HvStatus (HV_STATUS_*, bits 15:0 of the result). */
uint32_t hv_hypercall(uint64_t control, uint64_t input_gpa, uint64_t output_gpa);
uint32_t hv_hypercall_fast(uint64_t control, uint64_t rdx, uint64_t r8);
/* HvCallPostMessage (memory form, one 256-byte input page) of payload to
 * connection_id with message_type. HV_STATUS_INSUFFICIENT_BUFFERS is retried
 * a bounded number of times (the host queue drains), then returned. */
uint32_t hv_post_message(uint32_t connection_id, uint32_t message_type, const void *payload, uint32_t len);
/* HvCallSignalEvent, fast form: RDX = connection id | flag number << 32. */
uint32_t hv_signal_event(uint32_t connection_id, uint16_t flag);
/* Retries and denials counted for diagnostics and tests. */
extern uint32_t hv_post_retries, hv_post_failures;

/* An R+X page the hypervisor may fill: hv/hypercall_page.S in the kernel, a
 * guest-memory page in the host harness. */
void *hv_hypercall_page_alloc(void);

#endif
