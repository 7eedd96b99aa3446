/* trap.h: IDT and the CPU exception frame. */
#ifndef TRACKB_TRAP_H
#define TRACKB_TRAP_H

#include <stdint.h>

/* Layout pushed by trapasm.S (lowest address first) and the CPU. */
struct trapframe {
    uint64_t r15, r14, r13, r12, r11, r10, r9, r8;
    uint64_t rbp, rdi, rsi, rdx, rcx, rbx, rax;
    uint64_t vector, error;
    uint64_t rip, cs, rflags, rsp, ss;     /* pushed by the CPU */
};

void trap_init(void);
void trap(struct trapframe *tf);

#endif
