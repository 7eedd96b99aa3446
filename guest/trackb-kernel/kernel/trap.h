/* trap.h: IDT, TSS and the CPU exception frame. */
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

/* TSS (IST stacks for #DF, NMI, #MC) and IDT; before vm_init() (writes the GDT). */
void trap_init(void);
void trap(struct trapframe *tf);
/* trackb.fault=stack: unbounded recursion into the stack guard page (#PF -> #DF). */
_Noreturn void trap_overflow_stack(void);
/* ltr (trapasm.S). */
void load_task_register(uint16_t sel);

#endif
