/* hvbench.c: trackb.hvbench=N (for `wslx bench hv`): N trap round trips
 * (rdmsr VP_INDEX), N fast hypercalls (a no-op TLB flush) and N ticks of
 * the 1 ms periodic stimer, timed with the TSC, printed as one console line.
 * Runs once after hv_boot, before the agent; interrupts stay as hv_boot left
 * them. Tick lateness: see tick_lateness. */
#include "hv/hv.h"
#include "hv/stimer.h"
#include "hv/vmbus_client.h"
#include "kernel/console.h"
#include "kernel/hvbench.h"
#include "kernel/timer.h"
#include "platform/platform.h"

#define HVBENCH_MAX 4096
#define HVBENCH_TICK_TIMEOUT_NS 5000000000ULL

static int64_t samples[HVBENCH_MAX];

static __attribute__((noinline)) void sort(int64_t *a, int n)
{
    for (int gap = n / 2; gap > 0; gap /= 2)          /* Shell sort: small, no recursion */
        for (int i = gap; i < n; i++)
            for (int j = i; j >= gap && a[j - gap] > a[j]; j -= gap) {
                int64_t t = a[j];
                a[j] = a[j - gap], a[j - gap] = t;
            }
}

/* TSC ticks to ns at the rate the hypervisor's reference clock gives over
 * the same stretch (the model fits it on seconds of samples; the boot-time
 * PIT calibration can be far off on a loaded host). */
static uint64_t to_ns(int64_t cycles, uint64_t ref_100ns, uint64_t tsc)
{
    return tsc ? (uint64_t)cycles * (ref_100ns * 100) / tsc : 0;   /* < 2^64 for loops under hours */
}

static __attribute__((noinline)) uint64_t trap_ns(int n, int hypercall)
{
    uint64_t r0 = hv_time_100ns(), c0 = cpu_rdtsc();
    for (int i = 0; i < n; i++) {
        uint64_t t0 = cpu_rdtsc();
        if (hypercall)
            hv_hypercall_fast(HVCALL_FLUSH_VIRTUAL_ADDRESS_SPACE, 0,
                              HV_FLUSH_ALL_PROCESSORS | HV_FLUSH_ALL_VIRTUAL_ADDRESS_SPACES);
        else
            hv_rdmsr(HV_MSR_VP_INDEX);
        samples[i] = (int64_t)(cpu_rdtsc() - t0);
    }
    uint64_t r1 = hv_time_100ns(), c1 = cpu_rdtsc();
    sort(samples, n);
    return to_ns(samples[n / 2], r1 - r0, c1 - c0);
}

/* Ticks' lateness p50/p99 in ns, and the period slots that passed without a
 * tick (the model skips slots it was too late for). On the reference clock
 * (the model's own), each arrival's phase within the period; the phases
 * cluster on a circle where the on-time ticks are, so lateness is measured
 * from the phase just after the widest gap between phases (lateness of at
 * most one period; the grid's own phase is the hypervisor's). */
static int tick_lateness(int n, uint64_t *p50, uint64_t *p99, uint64_t *missed)
{
    int64_t period = (int64_t)stimer.period_100ns;
    uint64_t seen = stimer.ticks, t0 = 0, t = 0;
    uint64_t deadline = timer_now_ns() + HVBENCH_TICK_TIMEOUT_NS;
    int k = 0;
    while (k < n && timer_now_ns() < deadline) {
        vmbus_wait();                                  /* as the agent idles: hlt until an interrupt */
        if (stimer.ticks == seen)
            continue;
        seen = stimer.ticks;
        t = hv_time_100ns();
        t0 = k ? t0 : t;
        samples[k++] = (int64_t)((t - t0) % (uint64_t)period);
    }
    if (!k) {
        *p50 = *p99 = *missed = 0;
        return 0;
    }
    sort(samples, k);
    int64_t gap = samples[0] + period - samples[k - 1], ref = samples[0];
    for (int i = 1; i < k; i++)
        if (samples[i] - samples[i - 1] > gap)
            gap = samples[i] - samples[i - 1], ref = samples[i];
    for (int i = 0; i < k; i++)
        samples[i] = ((samples[i] - ref + period) % period) * 100;
    sort(samples, k);
    *p50 = (uint64_t)samples[k / 2];
    *p99 = (uint64_t)samples[k * 99 / 100];
    *missed = (t - t0) / (uint64_t)period + 1 - (uint64_t)k;
    return k;
}

void hvbench_run(const char *count)
{
    int n = 0;
    for (; *count >= '0' && *count <= '9' && n < HVBENCH_MAX; count++)
        n = n * 10 + (*count - '0');
    if (n > HVBENCH_MAX)
        n = HVBENCH_MAX;
    if (n < 2)
        return;
    uint64_t trap = trap_ns(n, 0), hypercall = trap_ns(n, 1), p50 = 0, p99 = 0, missed = 0;
    int ticks = stimer.running ? tick_lateness(n, &p50, &p99, &missed) : 0;
    kprintf("hvbench: n %d trap_ns %lu hypercall_ns %lu ticks %d missed %lu stimer_late_ns_p50 %lu "
            "stimer_late_ns_p99 %lu\n", n, trap, hypercall, ticks, missed, p50, p99);
}
