/* hv_backend.c: platform.h's hypervisor interface, native or hvsim.
 * Native (Hyper-V, OpenVMM): cpuid, rdmsr, wrmsr, a call into the page the
 * hypervisor filled. hvsim: one request at a time in the shared block
 * (build/gen/hvsim.h): arguments, seq bumped last, doorbell, spin on done_seq. */
#include "hvsim.h"
#include "platform/platform.h"

#define VMCALL_LEN 3
static const uint8_t vmcall_bytes[VMCALL_LEN] = {0x0F, 0x01, 0xC1};   /* Intel SDM: VMCALL */

static volatile struct hvsim_block *hvsim;        /* NULL: native instructions */
static uint64_t doorbell_pa, spin_limit, idle_poll, answer_spin;
static uint32_t doorbell_value;
static const struct hvsim_ops *hvsim_ops;
static int may_halt;                              /* hv_wait_may_halt: interrupts can wake a hlt */
static int in_call;                               /* a request is outstanding */
static uint64_t nested_result[4];

void hv_use_hvsim(volatile struct hvsim_block *block, uint64_t db_pa, uint32_t db_value, uint64_t spin_limit_tsc,
                  uint64_t idle_poll_tsc, uint64_t answer_spin_tsc, const struct hvsim_ops *ops)
{
    doorbell_pa = db_pa, doorbell_value = db_value, spin_limit = spin_limit_tsc, idle_poll = idle_poll_tsc;
    answer_spin = answer_spin_tsc;
    hvsim_ops = ops;
    hvsim = block;
}

void hv_wait_may_halt(void) { may_halt = 1; }

/* Natively sti; hlt; cli (the sti shadow: no lost wake-up). Under hvsim the
 * model's interrupts are first looked for in shared memory (irq_seq, with
 * interrupts off) for idle_poll TSC ticks, as KVM polls before it halts a
 * vCPU: the MSI-X would need QEMU's main loop to wake the halted vCPU. The
 * interrupt itself is taken when the caller next waits. */
void cpu_wait_for_interrupt(void)
{
    if (hvsim) {
        uint32_t seen = hvsim->irq_seq;
        for (uint64_t t0 = cpu_rdtsc(); cpu_rdtsc() - t0 < idle_poll;) {
            if (hvsim->irq_seq != seen)
                return;
            cpu_relax();
        }
    }
    __asm__ volatile("sti; hlt; cli" ::: "memory");
}

static int answered(volatile struct hvsim_block *b, uint32_t seq) { return (int32_t)(b->done_seq - seq) >= 0; }

/* Spin on done_seq; past answer_spin (model feature ANSWER_IRQ, interrupts
 * set up, not nested) say so in wait_seq, look once more, and halt: the
 * model raises an MSI-X after it answers (hvsim.h: the barriers on both
 * sides keep the wake-up from being lost). Other interrupts wake us too. */
static void wait_answer(volatile struct hvsim_block *b, uint32_t seq, int halt, uint32_t op, uint64_t a0)
{
    for (uint64_t t0 = cpu_rdtsc(); !answered(b, seq);) {
        uint64_t t = cpu_rdtsc() - t0;
        if (t > spin_limit)
            hvsim_ops->dead("the model did not answer", op, a0, 0);
        if (halt && t > answer_spin) {
            b->wait_seq = seq;
            mb();                                   /* wait_seq before the last look */
            if (!answered(b, seq))
                __asm__ volatile("sti; hlt; cli" ::: "memory");
            b->wait_seq = 0;
        } else {
            cpu_relax();
        }
    }
}

/* One request; the answer's result[] (valid until the next request) and
 * fault. An interrupt handler's request made while an outer one waits halted
 * waits for the outer answer, keeps it, and puts it back after its own. */
static __attribute__((noinline)) volatile uint64_t *hvsim_call(uint32_t op, uint64_t a0, uint64_t a1, uint64_t a2, uint32_t *fault)
{
    volatile struct hvsim_block *b = hvsim;
    int nested = in_call;
    uint32_t outer_fault = 0;
    uint64_t outer[4] = {0};
    if (nested) {
        wait_answer(b, b->seq, 0, op, a0);
        rmb();
        outer_fault = b->fault;
        for (int i = 0; i < 4; i++)
            outer[i] = b->result[i];
    }
    in_call = 1;
    uint32_t seq = b->seq + 1;
    b->op = op, b->arg0 = a0, b->arg1 = a1, b->arg2 = a2;
    b->guest_tsc = cpu_rdtsc();
    wmb();                                          /* the request before its seq */
    b->seq = seq;
    mmio_write32(doorbell_pa, doorbell_value);
    wait_answer(b, seq, !nested && may_halt && answer_spin, op, a0);
    rmb();                                          /* done_seq before the answer */
    *fault = b->fault;
    if (!nested) {
        in_call = 0;
        return b->result;
    }
    for (int i = 0; i < 4; i++)
        nested_result[i] = b->result[i], b->result[i] = outer[i];
    b->fault = outer_fault;
    return nested_result;
}

void hv_cpuid(uint32_t leaf, uint32_t out[4])
{
    uint32_t fault;
    if (!hvsim) {
        cpu_cpuid(leaf, 0, out);
        return;
    }
    volatile uint64_t *r = hvsim_call(HVSIM_OP_CPUID, leaf, 0, 0, &fault);
    for (int i = 0; i < 4; i++)
        out[i] = (uint32_t)r[i];
}

uint64_t hv_rdmsr(uint32_t msr)
{
    uint32_t fault;
    if (!hvsim)
        return cpu_rdmsr(msr);
    uint64_t v = hvsim_call(HVSIM_OP_RDMSR, msr, 0, 0, &fault)[0];
    if (fault)                                      /* natively: #GP, trap() stops the kernel */
        hvsim_ops->dead("rdmsr faults", HVSIM_OP_RDMSR, msr, fault);
    return v;
}

int hv_wrmsr(uint32_t msr, uint64_t v)
{
    uint32_t fault;
    if (!hvsim) {
        cpu_wrmsr(msr, v);
        return 0;
    }
    hvsim_call(HVSIM_OP_WRMSR, msr, v, 0, &fault);
    return fault ? -1 : 0;
}

/* The page's code clobbers what a call may (Linux hv_do_hypercall: rcx, rdx,
 * r8 in, rax out; r9-r11 are the callee's). The page is executable: vm.c maps
 * it R+X (hv/hv_enlighten.c asks). Under hvsim its vmcall raises #UD, which
 * trap() hands to hv_forward_vmcall. */
uint64_t hv_hypercall_page_call(const void *page, uint64_t control, uint64_t input, uint64_t output)
{
    uint64_t status;
    register uint64_t r8 __asm__("r8") = output;
    __asm__ volatile("call *%[page]"
                     : "=a"(status), "+c"(control), "+d"(input), "+r"(r8)
                     : [page] "m"(page)
                     : "cc", "memory", "r9", "r10", "r11");
    return status;
}

unsigned hv_forward_vmcall(uint64_t rip, uint64_t rcx, uint64_t rdx, uint64_t r8, uint64_t *rax)
{
    const volatile uint8_t *code = (const volatile uint8_t *)(uintptr_t)rip;
    uint32_t fault;
    if (!hvsim)
        return 0;
    for (int i = 0; i < VMCALL_LEN; i++)
        if (code[i] != vmcall_bytes[i])
            return 0;
    *rax = hvsim_call(HVSIM_OP_HYPERCALL, rcx, rdx, r8, &fault)[0];
    if (fault)                                      /* #UD: the hypercall page is not enabled */
        hvsim_ops->dead("hypercall faults", HVSIM_OP_HYPERCALL, rcx, fault);
    return VMCALL_LEN;
}
