/* hv_enlighten.c: the enlightenments a Hyper-V guest turns on first, and the
 * hypercall wrappers (TLFS 3 "Hypercall interface", 12 "Timers"; Linux
 * arch/x86/hyperv/hv_init.c). Order matters: GUEST_OS_ID must be non-zero
 * before the hypercall page can be enabled. */
#include "hv/hv.h"
#include "kernel/console.h"
#include "kernel/errno.h"
#include "kernel/klib.h"
#include "kernel/memlayout.h"
#include "kernel/pmm.h"
#include "kernel/timer.h"
#include "kernel/vm.h"
#include "platform/platform.h"

/* Open-source guest OS id (TLFS 2.6): bit 63 open source, OS type 0 (none of
 * the listed ones), version 0.1 in bits 47:16, build 0. */
#define TRACKB_GUEST_OS_ID (HV_GUEST_OS_ID_OPEN_SOURCE | 0x1ULL << 16)
#define POST_RETRIES 64                 /* INSUFFICIENT_BUFFERS: Linux vmbus_post_msg retries ~100 times */
#define POST_BACKOFF_NS 100000ULL       /* 100 us between retries, doubling to 1.6 ms */
#define PARAM_OUTPUT_OFF 2048u          /* hypercall output in the second half of the parameter page */
#define TSC_SEQ_RETRIES 16              /* the host updates the TSC page rarely; give up to TIME_REF_COUNT */

uint32_t hv_post_retries, hv_post_failures;

static uint8_t *hypercall_page;         /* R+X, filled by the hypervisor */
static uint64_t param_pa;               /* one page for memory-form input/output */
static volatile const uint8_t *tsc_page;
static int have_ref_count;

static uint64_t tsc_page_time(int *ok)
{
    for (int i = 0; i < TSC_SEQ_RETRIES; i++) {
        uint32_t seq = *(volatile const uint32_t *)(tsc_page + HV_REFERENCE_TSC_PAGE_OFF_TSC_SEQUENCE);
        if (seq == 0)                                  /* invalid now: TIME_REF_COUNT (TLFS 12.7.3) */
            break;
        rmb();
        uint64_t scale = *(volatile const uint64_t *)(tsc_page + HV_REFERENCE_TSC_PAGE_OFF_TSC_SCALE);
        int64_t offset = *(volatile const int64_t *)(tsc_page + HV_REFERENCE_TSC_PAGE_OFF_TSC_OFFSET);
        uint64_t tsc = cpu_rdtsc();
        rmb();
        if (*(volatile const uint32_t *)(tsc_page + HV_REFERENCE_TSC_PAGE_OFF_TSC_SEQUENCE) == seq) {
            *ok = 1;
            return (uint64_t)((unsigned __int128)tsc * scale >> 64) + (uint64_t)offset;
        }
    }
    *ok = 0;
    return 0;
}

uint64_t hv_time_100ns(void)
{
    int ok = 0;
    if (tsc_page) {
        uint64_t t = tsc_page_time(&ok);
        if (ok)
            return t;
    }
    return have_ref_count ? hv_rdmsr(HV_MSR_TIME_REF_COUNT) : timer_now_ns() / 100;
}

static uint64_t hv_clock_ns(void) { return hv_time_100ns() * 100; }

uint32_t hv_hypercall(uint64_t control, uint64_t input_gpa, uint64_t output_gpa)
{
    return (uint32_t)(hv_hypercall_page_call(hypercall_page, control, input_gpa, output_gpa) & HV_RESULT_STATUS_MASK);
}

uint32_t hv_hypercall_fast(uint64_t control, uint64_t rdx, uint64_t r8)
{
    return hv_hypercall(control | HV_HYPERCALL_FAST, rdx, r8);
}

static void delay_ns(uint64_t ns)
{
    uint64_t end = timer_now_ns() + ns;
    while (timer_now_ns() < end)
        cpu_relax();
}

uint32_t hv_post_message(uint32_t connection_id, uint32_t message_type, const void *payload, uint32_t len)
{
    uint8_t *in = phys_ptr(param_pa, HV_INPUT_POST_MESSAGE_SIZE);
    if (!in || len > HV_MESSAGE_PAYLOAD_SIZE)
        return HV_STATUS_INVALID_PARAMETER;
    uint64_t backoff = POST_BACKOFF_NS;
    for (int attempt = 0;; attempt++) {
        memset(in, 0, HV_INPUT_POST_MESSAGE_SIZE);     /* the input is rebuilt: the host may have read it */
        memcpy(in + HV_INPUT_POST_MESSAGE_OFF_CONNECTION_ID, &connection_id, 4);
        memcpy(in + HV_INPUT_POST_MESSAGE_OFF_MESSAGE_TYPE, &message_type, 4);
        memcpy(in + HV_INPUT_POST_MESSAGE_OFF_PAYLOAD_SIZE, &len, 4);
        memcpy(in + HV_INPUT_POST_MESSAGE_OFF_PAYLOAD, payload, len);
        uint32_t st = hv_hypercall(HVCALL_POST_MESSAGE, param_pa, 0);
        if (st != HV_STATUS_INSUFFICIENT_BUFFERS)
            return st;
        if (attempt == POST_RETRIES) {
            hv_post_failures++;
            return st;
        }
        hv_post_retries++;
        delay_ns(backoff);                              /* the host drains its queue meanwhile */
        if (backoff < 16 * POST_BACKOFF_NS)
            backoff *= 2;
    }
}

uint32_t hv_signal_event(uint32_t connection_id, uint16_t flag)
{
    return hv_hypercall_fast(HVCALL_SIGNAL_EVENT, (connection_id & HV_CONNECTION_ID_MASK) |
                             (uint64_t)flag << HV_SIGNAL_EVENT_FLAG_SHIFT, 0);
}

int hv_enlighten(struct hv_caps *c)
{
    /* 1. Guest OS id, then the hypercall page (TLFS 3.13: in that order). */
    if (!(c->features_eax & HV_FEATURE_EAX_HYPERCALL) || hv_wrmsr(HV_MSR_GUEST_OS_ID, TRACKB_GUEST_OS_ID))
        return ERR_NODEV;
    hypercall_page = hv_hypercall_page_alloc();
    param_pa = pmm_alloc_zeroed();
    if (!hypercall_page || !param_pa)
        return ERR_NOMEM;
    uint64_t hc = hv_rdmsr(HV_MSR_HYPERCALL);           /* keep the reserved bits as read */
    hc = (hc & ~HV_PAGE_MSR_PFN_MASK & ~(uint64_t)HV_PAGE_MSR_ENABLE) | virt_to_phys(hypercall_page) | HV_PAGE_MSR_ENABLE;
    if (hv_wrmsr(HV_MSR_HYPERCALL, hc) || !(hv_rdmsr(HV_MSR_HYPERCALL) & HV_PAGE_MSR_ENABLE)) {
        kprintf("hv: hypercall page not enabled\n");
        return ERR_IO;
    }

    /* 2. VP index (TLFS 7.8.1). */
    if (c->features_eax & HV_FEATURE_EAX_VP_INDEX)
        c->vp_index = (uint32_t)hv_rdmsr(HV_MSR_VP_INDEX);

    /* 3. Clock: the reference TSC page when offered and valid, else TIME_REF_COUNT. */
    have_ref_count = !!(c->features_eax & HV_FEATURE_EAX_TIME_REF_COUNT);
    if (c->features_eax & HV_FEATURE_EAX_REFERENCE_TSC) {
        uint64_t pa = pmm_alloc_zeroed();
        if (pa && !hv_wrmsr(HV_MSR_REFERENCE_TSC, pa | HV_PAGE_MSR_ENABLE)) {
            tsc_page = phys_ptr(pa, PAGE_SIZE);
            int ok;
            tsc_page_time(&ok);
            c->ref_tsc = ok;
        }
    }
    if (c->ref_tsc || have_ref_count)
        timer_set_source(hv_clock_ns, c->ref_tsc ? "Hyper-V reference TSC page" : "Hyper-V TIME_REF_COUNT");

    /* 4. Partition id, where granted (TLFS 5.3 HvCallGetPartitionId). */
    if (c->features_ebx & HV_FEATURE_EBX_ACCESS_PARTITION_ID) {
        uint8_t *p = phys_ptr(param_pa, PAGE_SIZE);     /* no input; the output is one u64 (Linux hv_get_partition_id) */
        if (hv_hypercall(HVCALL_GET_PARTITION_ID, 0, param_pa + PARAM_OUTPUT_OFF) == HV_STATUS_SUCCESS) {
            memcpy(&c->partition_id, p + PARAM_OUTPUT_OFF, 8);
            c->have_partition_id = 1;
        }
    }
    kprintf("hv: Hyper-V, VP %u, clock %s, partition id %lx%s\n", c->vp_index,
            c->ref_tsc ? "reference TSC page" : have_ref_count ? "TIME_REF_COUNT" : "TSC",
            c->partition_id, c->have_partition_id ? "" : " (not granted)");
    return 0;
}
