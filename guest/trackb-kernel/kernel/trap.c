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

void trap(struct trapframe *tf)
{
    unsigned v = (unsigned)tf->vector;
    kprintf("\ntrap: vector %u (%s) rip=%lx cr2=%lx error=%lx\n", v, v < 32 && names[v] ? names[v] : "?",
            tf->rip, cpu_read_cr2(), tf->error);
    kprintf("trap: rsp=%lx rflags=%lx rax=%lx rbx=%lx rcx=%lx rdx=%lx\n", tf->rsp, tf->rflags, tf->rax, tf->rbx,
            tf->rcx, tf->rdx);
    kprintf("trap: rsi=%lx rdi=%lx rbp=%lx r8=%lx\n", tf->rsi, tf->rdi, tf->rbp, tf->r8);
    panic_stop();
}
