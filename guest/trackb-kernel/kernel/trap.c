/* trap.c: IDT for the 32 CPU exceptions (and the gates of kernel/irq.c's
 * external interrupts), and the TSS. The kernel runs with interrupts off
 * (everything is polled) unless the Hyper-V path turns them on, so every
 * exception is a bug or a deliberate fault: print the diagnostic and stop
 * through panic_stop(). The one exception that returns: under hvsim, the #UD
 * of the hypercall page's vmcall, which the platform layer forwards.
 *
 * #DF, NMI and #MC run on their own stacks (the TSS's interrupt stack table):
 * when the boot stack overflows into its unmapped guard page, the CPU cannot
 * push the #PF frame, raises #DF, and that lands on a good stack and prints
 * (without IST it would triple-fault: QEMU resets, no diagnostic). */
#include <stdint.h>

#include "kernel/console.h"
#include "kernel/memlayout.h"
#include "kernel/panic.h"
#include "kernel/trap.h"
#include "platform/platform.h"

struct idt_gate {
    uint16_t off_lo, sel;
    uint8_t ist, type_attr;      /* 0x8E: present, DPL 0, 64-bit interrupt gate */
    uint16_t off_mid;
    uint32_t off_hi, zero;
} __attribute__((packed));

/* 64-bit TSS (Intel SDM Vol. 3A 8.7): only the IST slots are used (no ring 3, no I/O bitmap). */
struct tss64 {
    uint32_t reserved0;
    uint64_t rsp[3];
    uint64_t reserved1;
    uint64_t ist[7];             /* ist[n - 1] is IST n */
    uint64_t reserved2;
    uint16_t reserved3, iomap_base;
} __attribute__((packed));

_Static_assert(sizeof(struct tss64) == 104, "64-bit TSS is 104 bytes");

#define TSS_AVAILABLE_64 0x89    /* present, DPL 0, type 9 (available 64-bit TSS) */

#define IDT_ENTRIES 64           /* 32 exceptions, then external interrupts 0x20-0x3F (kernel/irq.c) */

static struct idt_gate idt[IDT_ENTRIES] __attribute__((aligned(16)));
static struct tss64 tss __attribute__((aligned(16)));
static uint8_t ist_stacks[3][IST_STACK_SIZE] __attribute__((aligned(16)));   /* IST 1..3 */
extern const uint64_t trap_vectors[32], irq_vectors[IDT_ENTRIES - 32];
extern uint64_t boot_gdt[];      /* entry.S, .rodata: writable until vm_init() */
extern char __text_start[], __text_end[], __rodata_start[], __rodata_end[], __data_start[], _kernel_end[];
extern char boot_stack_guard[], boot_stack_top[];

static const char *const names[32] = {
    "#DE divide error", "#DB debug", "NMI", "#BP breakpoint", "#OF overflow", "#BR bound range",
    "#UD invalid opcode", "#NM device not available", "#DF double fault", "coprocessor overrun",
    "#TS invalid TSS", "#NP segment not present", "#SS stack fault", "#GP general protection",
    "#PF page fault", "reserved 15", "#MF x87 error", "#AC alignment check", "#MC machine check",
    "#XM SIMD error", "#VE virtualization", "#CP control protection",
};

/* The TSS descriptor at SEL_TSS (two GDT slots), then TR. Runs before
 * vm_init(): the GDT page is still writable, and ltr itself writes the
 * descriptor's busy bit. Nothing writes that page afterwards. */
static void tss_init(void)
{
    uint64_t base = (uint64_t)(uintptr_t)&tss, limit = sizeof tss - 1;
    for (int i = 0; i < 3; i++)
        tss.ist[i] = (uint64_t)(uintptr_t)(ist_stacks[i] + IST_STACK_SIZE);
    tss.iomap_base = sizeof tss;                      /* past the limit: no I/O bitmap */
    boot_gdt[SEL_TSS / 8] = (limit & 0xFFFF) | (base & 0xFFFFFF) << 16 | (uint64_t)TSS_AVAILABLE_64 << 40 |
                            ((limit >> 16) & 0xF) << 48 | ((base >> 24) & 0xFF) << 56;
    boot_gdt[SEL_TSS / 8 + 1] = base >> 32;
    load_task_register(SEL_TSS);
}

static unsigned ist_of(int vector)
{
    switch (vector) {
    case 8: return IST_DF;
    case 2: return IST_NMI;
    case 18: return IST_MC;
    default: return 0;                                /* the current stack */
    }
}

void trap_init(void)
{
    tss_init();
    for (int i = 0; i < IDT_ENTRIES; i++) {
        uint64_t h = i < 32 ? trap_vectors[i] : irq_vectors[i - 32];
        idt[i] = (struct idt_gate){(uint16_t)h, SEL_CODE64, (uint8_t)ist_of(i), 0x8E, (uint16_t)(h >> 16),
                                   (uint32_t)(h >> 32), 0};
    }
    cpu_load_idt(idt, sizeof idt - 1);
}

static int in_stack_guard(uint64_t a)
{
    return a >= (uintptr_t)boot_stack_guard && a < (uintptr_t)boot_stack_guard + STACK_GUARD_SIZE;
}

/* Which part of the image (kernel.ld's bounds) holds address a. */
static const char *where(uint64_t a)
{
    if (a >= (uintptr_t)__text_start && a < (uintptr_t)__text_end)
        return "in .text";
    if (a >= (uintptr_t)__rodata_start && a < (uintptr_t)__rodata_end)
        return "in .rodata";
    if (in_stack_guard(a))
        return "in the stack guard page";
    if (a >= (uintptr_t)__data_start && a < (uintptr_t)_kernel_end)
        return "in .data/.bss";
    return "outside the image";
}

/* The #PF error code in words (Intel SDM Vol. 3A 4.7): W^X violations read
 * "protection violation, write" or "protection violation, instruction fetch". */
static void page_fault_detail(uint64_t err, uint64_t cr2)
{
    kprintf("trap: #PF %s, %s%s%s, cr2 %s\n", err & PF_ERR_P ? "protection violation" : "not present",
            err & PF_ERR_I ? "instruction fetch" : err & PF_ERR_W ? "write" : "read",
            err & PF_ERR_U ? ", user mode" : "", err & PF_ERR_RSVD ? ", reserved bit set" : "", where(cr2));
}

void trap(struct trapframe *tf)
{
    unsigned v = (unsigned)tf->vector;
    unsigned skip;
    if (v == 6 && (skip = hv_forward_vmcall(tf->rip, tf->rcx, tf->rdx, tf->r8, &tf->rax))) {
        tf->rip += skip;                              /* hvsim: the hypercall page's vmcall, answered */
        return;
    }
    uint64_t cr2 = cpu_read_cr2();
    kprintf("\ntrap: vector %u (%s) rip=%lx cr2=%lx error=%lx\n", v, v < 32 && names[v] ? names[v] : "?",
            tf->rip, cr2, tf->error);
    if (v == 14)
        page_fault_detail(tf->error, cr2);
    if ((v == 8 || v == 14) && in_stack_guard(cr2))   /* #DF: the #PF frame did not fit either */
        kprintf("trap: kernel stack overflow (cr2 %lx in the guard page %lx-%lx below the boot stack %lx-%lx)\n",
                cr2, (uint64_t)(uintptr_t)boot_stack_guard, (uint64_t)(uintptr_t)boot_stack_guard + STACK_GUARD_SIZE,
                (uint64_t)(uintptr_t)boot_stack_guard + STACK_GUARD_SIZE, (uint64_t)(uintptr_t)boot_stack_top);
    kprintf("trap: rsp=%lx rflags=%lx rax=%lx rbx=%lx rcx=%lx rdx=%lx\n", tf->rsp, tf->rflags, tf->rax, tf->rbx,
            tf->rcx, tf->rdx);
    kprintf("trap: rsi=%lx rdi=%lx rbp=%lx r8=%lx\n", tf->rsi, tf->rdi, tf->rbp, tf->r8);
    panic_stop();
}

/* trackb.fault=stack: recurse until the boot stack runs into its guard page.
 * The volatile frame and the store after the call keep every level a real
 * call frame (no tail call, no loop); the volatile limit, never reached,
 * keeps the compiler from proving the recursion infinite. */
static volatile uint64_t recursion_limit = ~0ULL;

static __attribute__((noinline)) uint64_t recurse(uint64_t depth)
{
    volatile uint8_t frame[256];
    frame[0] = (uint8_t)depth;
    if (depth == recursion_limit)
        return 0;
    uint64_t r = recurse(depth + 1);
    frame[1] = (uint8_t)r;
    return r + frame[0];
}

_Noreturn void trap_overflow_stack(void)
{
    kprintf("trackb: faulting on purpose (unbounded recursion, guard page at %lx)\n",
            (uint64_t)(uintptr_t)boot_stack_guard);
    recurse(0);
    panic("stack: recursion returned before the guard page");
}
