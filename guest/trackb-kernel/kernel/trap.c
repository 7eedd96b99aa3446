/* trap.c: IDT for the 32 CPU exceptions. The kernel runs with interrupts off
 * (everything is polled), so every trap is a bug or a deliberate fault: print
 * the diagnostic and stop through panic_stop(). */
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

static struct idt_gate idt[32] __attribute__((aligned(16)));
extern const uint64_t trap_vectors[32];
extern char __text_start[], __text_end[], __rodata_start[], __rodata_end[], __data_start[], _kernel_end[];

static const char *const names[32] = {
    "#DE divide error", "#DB debug", "NMI", "#BP breakpoint", "#OF overflow", "#BR bound range",
    "#UD invalid opcode", "#NM device not available", "#DF double fault", "coprocessor overrun",
    "#TS invalid TSS", "#NP segment not present", "#SS stack fault", "#GP general protection",
    "#PF page fault", "reserved 15", "#MF x87 error", "#AC alignment check", "#MC machine check",
    "#XM SIMD error", "#VE virtualization", "#CP control protection",
};

void trap_init(void)
{
    for (int i = 0; i < 32; i++) {
        uint64_t h = trap_vectors[i];
        idt[i] = (struct idt_gate){(uint16_t)h, SEL_CODE64, 0, 0x8E, (uint16_t)(h >> 16), (uint32_t)(h >> 32), 0};
    }
    cpu_load_idt(idt, sizeof idt - 1);
}

/* Which part of the image (kernel.ld's bounds) holds address a. */
static const char *where(uint64_t a)
{
    if (a >= (uintptr_t)__text_start && a < (uintptr_t)__text_end)
        return "in .text";
    if (a >= (uintptr_t)__rodata_start && a < (uintptr_t)__rodata_end)
        return "in .rodata";
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
    uint64_t cr2 = cpu_read_cr2();
    kprintf("\ntrap: vector %u (%s) rip=%lx cr2=%lx error=%lx\n", v, v < 32 && names[v] ? names[v] : "?",
            tf->rip, cr2, tf->error);
    if (v == 14)
        page_fault_detail(tf->error, cr2);
    kprintf("trap: rsp=%lx rflags=%lx rax=%lx rbx=%lx rcx=%lx rdx=%lx\n", tf->rsp, tf->rflags, tf->rax, tf->rbx,
            tf->rcx, tf->rdx);
    kprintf("trap: rsi=%lx rdi=%lx rbp=%lx r8=%lx\n", tf->rsi, tf->rdi, tf->rbp, tf->r8);
    panic_stop();
}
