/* hv_host_main.c: the in-process harness. hv/ (and, in agent mode, the
 * agent) compiled for the host under ASan/UBSan, with platform.h's
 * hypervisor functions implemented by the wslx.hv model over a pipe (a thin
 * shim: one fixed-size request, one answer) and guest memory a shared file
 * mapped at the same addresses on both sides (GPA == host address here, as in
 * the kernel's identity map). Interrupts the model injects are queued and
 * taken only in cpu_wait_for_interrupt, where the kernel has them enabled.
 *
 *   trackb-hv-host --mem-fd N --mem-base GPA --mem-size BYTES --req-fd N --resp-fd N
 *                  [--poll] [--mode boot|agent] [--ticks N] [--ring-pages N] [--aux-ports]
 *
 * --aux-ports: also dial Gemini's SIGNAL and UPCALL hv_sock ports (hvsock_aux, the kernel's
 * doorbells); boot mode then rings EVENT on SIGNAL and counts UPCALL bytes until the host closes. */
/*
 * Driven by host/python/wslx/conformance/trackb_hv_host.py (protocol there). */
#define _GNU_SOURCE
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "agent/agent_env.h"
#include "agent/portal_svc.h"
#include "gemini_wire.h"
#include "portal_layout.h"
#include "hv/hv_boot.h"
#include "hv/stimer.h"
#include "hv/synic.h"
#include "kernel/console.h"
#include "kernel/errno.h"
#include "kernel/irq.h"
#include "kernel/memlayout.h"
#include "kernel/pmm.h"
#include "kernel/timer.h"
#include "kernel/vm.h"
#include "platform/platform.h"

enum { OP_CPUID = 1, OP_RDMSR, OP_WRMSR, OP_HYPERCALL, OP_RDTSC, OP_HALT, OP_RELAX, OP_EXIT };
struct req { uint32_t op, arg; uint64_t a, b, c; };
struct resp { uint64_t r[4]; uint32_t fault, nvec; uint8_t vec[16]; };
_Static_assert(sizeof(struct req) == 32 && sizeof(struct resp) == 56, "shim wire sizes");

static int req_fd = -1, resp_fd = -1;
static uint8_t *mem;
static uint64_t mem_base, mem_size, mem_next;
static uint64_t free_list[4096];
static int n_free;
static uint8_t pending[64];
static int n_pending;
static irq_handler handlers[IRQ_VECTOR_LIMIT];
static uint64_t (*clock_ns)(void);

static void die(const char *what)
{
    fprintf(stderr, "trackb-hv-host: %s\n", what);
    exit(3);
}

static void io(void *p, size_t n, int write_side)
{
    for (size_t done = 0; done < n;) {
        ssize_t r = write_side ? write(req_fd, (char *)p + done, n - done) : read(resp_fd, (char *)p + done, n - done);
        if (r <= 0) {
            if (r < 0 && errno == EINTR)
                continue;
            die("the model went away");
        }
        done += (size_t)r;
    }
}

/* One request to the model; the vectors it injected meanwhile are queued. */
static struct resp call(uint32_t op, uint32_t arg, uint64_t a, uint64_t b, uint64_t c)
{
    struct req q = {op, arg, a, b, c};
    struct resp s;
    io(&q, sizeof q, 1);
    io(&s, sizeof s, 0);
    for (uint32_t i = 0; i < s.nvec && i < sizeof s.vec; i++)
        if (n_pending < (int)sizeof pending)
            pending[n_pending++] = s.vec[i];
    return s;
}

/* ---- platform.h: the hypervisor, through the model ---- */
void hv_cpuid(uint32_t leaf, uint32_t out[4])
{
    struct resp s = call(OP_CPUID, leaf, 0, 0, 0);
    for (int i = 0; i < 4; i++)
        out[i] = (uint32_t)s.r[i];
}
uint64_t hv_rdmsr(uint32_t msr)
{
    struct resp s = call(OP_RDMSR, msr, 0, 0, 0);
    if (s.fault) {
        fprintf(stderr, "trackb-hv-host: rdmsr %x would #GP (vector %u)\n", msr, s.fault);
        exit(4);
    }
    return s.r[0];
}
int hv_wrmsr(uint32_t msr, uint64_t v) { return call(OP_WRMSR, msr, v, 0, 0).fault ? -1 : 0; }
uint64_t hv_hypercall_page_call(const void *page, uint64_t control, uint64_t input, uint64_t output)
{
    (void)page;
    struct resp s = call(OP_HYPERCALL, 0, control, input, output);
    if (s.fault) {
        fprintf(stderr, "trackb-hv-host: hypercall %lx would fault (vector %u)\n", (unsigned long)control, s.fault);
        exit(4);
    }
    return s.r[0];
}
uint64_t cpu_rdtsc(void) { return call(OP_RDTSC, 0, 0, 0, 0).r[0]; }
void cpu_relax(void) { call(OP_RELAX, 0, 0, 0, 0); }
void cpu_irq_enable(void) {}
void cpu_irq_disable(void) {}
void hv_wait_may_halt(void) {}                          /* the shim's answers never wait */
void cpu_wait_for_interrupt(void)
{
    if (!n_pending)
        call(OP_HALT, 0, 0, 0, 0);
    while (n_pending) {                                 /* sti: the queued interrupts are taken */
        uint8_t v = pending[0];
        memmove(pending, pending + 1, (size_t)--n_pending);
        if (v < IRQ_VECTOR_LIMIT && handlers[v])
            handlers[v](v);
        else
            irq_unexpected++;
    }
}
void mb(void) { __sync_synchronize(); }
void rmb(void) { __sync_synchronize(); }
void wmb(void) { __sync_synchronize(); }
uint64_t virt_to_phys(const void *p) { return (uint64_t)(uintptr_t)p; }

/* ---- the kernel services hv/ uses ---- */
unsigned long irq_unexpected;
int irq_init(void) { return 0; }
int irq_register(unsigned vector, irq_handler h)
{
    if (vector < 0x30 || vector >= IRQ_SPURIOUS_VECTOR)
        return ERR_RANGE;
    handlers[vector] = h;
    return 0;
}

uint64_t pmm_alloc_page(void)
{
    if (n_free)
        return free_list[--n_free];
    if (mem_next + PAGE_SIZE > mem_base + mem_size)
        return 0;
    uint64_t pa = mem_next;
    mem_next += PAGE_SIZE;
    return pa;
}
void pmm_free_page(uint64_t pa)
{
    if (pa < mem_base || pa >= mem_base + mem_size || pa % PAGE_SIZE || n_free == 4096)
        die("pmm_free_page of a page it never handed out");
    memset((void *)(uintptr_t)pa, 0xA5, PAGE_SIZE);     /* use after free shows */
    free_list[n_free++] = pa;
}
void *phys_ptr(uint64_t pa, uint64_t len)
{
    if (!len || pa < mem_base || pa + len < pa || pa + len > mem_base + mem_size)
        return NULL;
    return (void *)(uintptr_t)pa;
}
void *hv_hypercall_page_alloc(void) { return (void *)(uintptr_t)pmm_alloc_zeroed(); }

void kprintf(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
}

/* Time: the model's clock once hv/ sets it (virtual, 100 ns), before that 0. */
void timer_set_source(uint64_t (*now_ns)(void), const char *name)
{
    (void)name;
    clock_ns = now_ns;
}
uint64_t timer_now_ns(void) { return clock_ns ? clock_ns() : 0; }

/* ---- agent_env.h: the hv_sock channel, as kernel/env.c does it ---- */
static struct hvsock sock;
static int have_sock;
static uint32_t connects_seen;

/* Gemini's doorbell ports (--aux-ports): hv_sock streams beside AgentX's, as main.c sets them up */
enum { AUX_SIGNAL, AUX_UPCALL, AUX_PORTS };
static struct hvsock_aux aux;
static int have_aux;

int env_signal(uint8_t ring) { return have_aux ? hvsock_aux_ops.send(&aux, AUX_SIGNAL, ring) : -1; }
long env_signal_drain(void) { return have_aux ? hvsock_aux_ops.drain(&aux, AUX_SIGNAL) : -1; }
long env_upcall_drain(void) { return have_aux ? hvsock_aux_ops.drain(&aux, AUX_UPCALL) : -1; }

uint32_t env_chan_connects(void)
{
    if (!have_sock)
        return 0;
    hvsock_poll(&sock);
    return connects_seen = sock.connects;
}
long env_chan_read(void *buf, size_t cap)
{
    if (!have_sock)
        return -1;
    return sock.connects != connects_seen ? 0 : hvsock_read(&sock, buf, cap);
}
long env_chan_write(const void *buf, size_t len, uint32_t timeout_ms)
{
    return have_sock ? hvsock_write(&sock, buf, len, (uint64_t)timeout_ms * 1000000ULL) : -1;
}
uint64_t env_now_ns(void) { return timer_now_ns(); }
void env_relax(void)
{
    if (have_aux)
        hvsock_aux_ops.idle(&aux);
    have_sock ? hvsock_idle(&sock) : vmbus_wait();
}
const char *env_uname(void) { return "wslx-trackb 0.1 x86_64-hv-host-harness"; }
uint64_t env_mem_total_bytes(void) { return mem_size; }
uint64_t env_mem_free_bytes(void) { return mem_base + mem_size - mem_next + (uint64_t)n_free * PAGE_SIZE; }
void *env_pmem_base(void) { return NULL; }
uint64_t env_pmem_size(void) { return 0; }
int env_pmem_flush(uint32_t timeout_ms) { (void)timeout_ms; return ERR_NODEV; }
void env_console_write(const char *s, size_t len) { fwrite(s, 1, len, stderr); }
_Noreturn void env_fault_on_purpose(void)
{
    fprintf(stderr, "trackb-hv-host: fault on purpose\n");
    abort();
}
_Noreturn void env_power_off(int code, int reboot)
{
    fprintf(stderr, "trackb-hv-host: %s (code %d)\n", reboot ? "reboot" : "power off", code);
    if (have_sock)
        vmbus_unload(100000000ULL);
    call(OP_EXIT, (uint32_t)code, 0, 0, 0);
    exit(code);
}

/* ---- boot mode: what the kernel code found and did, as key=value lines ---- */
static int boot_report(struct hv_caps *caps, struct hvsock *hs, unsigned ticks)
{
    uint64_t deadline = timer_now_ns() + 5000000000ULL;
    while (stimer.running && stimer.ticks < ticks && timer_now_ns() < deadline)
        vmbus_wait();
    if (hs)
        hvsock_wait_open(hs, 3000000000ULL);
    printf("present=%d\nref_tsc=%d\npartition_id=%d:%lx\nvp_index=%u\n", caps->present, caps->ref_tsc,
           caps->have_partition_id, (unsigned long)caps->partition_id, caps->vp_index);
    printf("interrupts=%u\n", synic_interrupts);
    printf("irq_mode=%d\nstimer_running=%d\nstimer_direct=%d\nstimer_period=%lu\nstimer_ticks=%lu\n", synic_irq_mode,
           stimer.running, stimer.direct, (unsigned long)stimer.period_100ns, (unsigned long)stimer.ticks);
    printf("stimer_expirations=");
    for (unsigned i = 0; i < STIMER_LOG_TICKS && i < stimer.ticks; i++)
        printf("%s%lu", i ? "," : "", (unsigned long)stimer.expirations[i]);
    printf("\nvmbus_connected=%d\nvmbus_version=%x\nmsg_conn_id=%u\n", vmbus.connected, vmbus.version,
           vmbus.msg_conn_id);
    printf("hvsock_open=%d\nhvsock_connects=%u\n", hs && hs->state == HVSOCK_OPEN, hs ? hs->connects : 0);
    if (have_aux) {   /* doorbells: EVENT to the host on SIGNAL; count UPCALL bytes until the host closes it */
        while ((aux.s[AUX_SIGNAL].state != HVSOCK_OPEN || aux.s[AUX_UPCALL].state != HVSOCK_OPEN) &&
               timer_now_ns() < deadline)
            env_relax();
        printf("aux_open=%d,%d\n", aux.s[AUX_SIGNAL].state == HVSOCK_OPEN, aux.s[AUX_UPCALL].state == HVSOCK_OPEN);
        printf("aux_signal_sent=%d\n", env_signal(PORTAL_RING_EVENT));
        long heard = 0, n;
        while ((n = env_upcall_drain()) >= 0 && timer_now_ns() < deadline + 5000000000ULL) {
            heard += n;
            if (!n)
                env_relax();
        }
        printf("aux_upcall_heard=%ld\naux_bad_packets=%u\n", heard, aux.s[AUX_UPCALL].bad_packets);
    }
    printf("messages=%u\nbad_messages=%u\nunknown_messages=%u\nrescinds=%u\npost_retries=%u\npost_failures=%u\n",
           vmbus.stats.messages, vmbus.stats.bad_messages, vmbus.stats.unknown_messages, vmbus.stats.rescinds,
           hv_post_retries, hv_post_failures);
    printf("unload=%d\n", hs ? vmbus_unload(1000000000ULL) : 1);   /* 0: UnloadComplete came */
    fflush(stdout);
    call(OP_EXIT, 0, 0, 0, 0);
    return 0;
}

int main(int argc, char **argv)
{
    int mem_fd = -1, poll = 0, agent = 0;
    unsigned ticks = 8, ring_pages = VMBUS_HVSOCK_RING_PAGES;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--poll")) poll = 1;
        else if (!strcmp(a, "--aux-ports")) have_aux = 1;
        else if (!v) die("usage: see hv_host_main.c");
        else if (!strcmp(a, "--mem-fd")) mem_fd = atoi(v), i++;
        else if (!strcmp(a, "--mem-base")) mem_base = strtoull(v, NULL, 0), i++;
        else if (!strcmp(a, "--mem-size")) mem_size = strtoull(v, NULL, 0), i++;
        else if (!strcmp(a, "--req-fd")) req_fd = atoi(v), i++;
        else if (!strcmp(a, "--resp-fd")) resp_fd = atoi(v), i++;
        else if (!strcmp(a, "--ticks")) ticks = (unsigned)atoi(v), i++;
        else if (!strcmp(a, "--ring-pages")) ring_pages = (unsigned)atoi(v), i++;
        else if (!strcmp(a, "--mode")) agent = !strcmp(v, "agent"), i++;
        else die("usage: see hv_host_main.c");
    }
    if (mem_fd < 0 || req_fd < 0 || resp_fd < 0 || !mem_size || mem_base % PAGE_SIZE)
        die("usage: --mem-fd --mem-base --mem-size --req-fd --resp-fd are required");
    mem = mmap((void *)(uintptr_t)mem_base, mem_size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED_NOREPLACE,
               mem_fd, 0);
    if (mem != (void *)(uintptr_t)mem_base)
        die("cannot map guest memory at its base");
    mem_next = mem_base + PAGE_SIZE;                    /* GPA 0 of the region stays unused */

    static struct hv_caps caps;
    sock.ring_pages = ring_pages;                       /* hv_boot keeps it (tests: GPADL body messages) */
    struct hvsock *hs = hv_boot(&caps, poll, &sock);
    have_sock = hs != NULL;
    if (have_aux && hs) {
        static const uint32_t ports[AUX_PORTS] = {GEMINI_PORT_SIGNAL, GEMINI_PORT_UPCALL};
        hvsock_aux_init(&aux, ports, AUX_PORTS);
    } else
        have_aux = 0;
    if (!agent)
        return boot_report(&caps, hs, ticks);
    if (!hs)
        die("no hv_sock channel: the agent has nothing to talk over");
    hvsock_wait_open(hs, 5000000000ULL);
    agent_register_portal(&portal_service_ops);
    agent_main();
}
