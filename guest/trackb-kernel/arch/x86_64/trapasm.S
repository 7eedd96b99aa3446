/* trapasm.S: IDT entry stubs for the 32 CPU exceptions.
 * Each stub pushes a dummy error code when the CPU does not push one, then
 * the vector number, then jumps to the common path, which saves the general
 * registers into a struct trapframe (kernel/trap.h) and calls trap().
 * #DF, NMI and #MC arrive on their IST stacks (trap.c), the rest on the
 * current one. */
        .text
        .code64

.macro VEC n, has_err
        .globl trap_vec\n
trap_vec\n:
        .if \has_err == 0
        pushq   $0
        .endif
        pushq   $\n
        jmp     trap_common
.endm

        VEC 0,0
        VEC 1,0
        VEC 2,0
        VEC 3,0
        VEC 4,0
        VEC 5,0
        VEC 6,0
        VEC 7,0
        VEC 8,1
        VEC 9,0
        VEC 10,1
        VEC 11,1
        VEC 12,1
        VEC 13,1
        VEC 14,1
        VEC 15,0
        VEC 16,0
        VEC 17,1
        VEC 18,0
        VEC 19,0
        VEC 20,0
        VEC 21,1
        VEC 22,0
        VEC 23,0
        VEC 24,0
        VEC 25,0
        VEC 26,0
        VEC 27,0
        VEC 28,0
        VEC 29,1
        VEC 30,1
        VEC 31,0

trap_common:
        push    %rax
        push    %rbx
        push    %rcx
        push    %rdx
        push    %rsi
        push    %rdi
        push    %rbp
        push    %r8
        push    %r9
        push    %r10
        push    %r11
        push    %r12
        push    %r13
        push    %r14
        push    %r15
        mov     %rsp, %rdi              /* trap(struct trapframe *) */
        mov     %rsp, %rbx              /* callee-saved: the frame, past the alignment */
        and     $-16, %rsp              /* ABI stack alignment */
        call    trap
        mov     %rbx, %rsp              /* trap() returned: handled (hvsim's vmcall), resume */
        pop     %r15
        pop     %r14
        pop     %r13
        pop     %r12
        pop     %r11
        pop     %r10
        pop     %r9
        pop     %r8
        pop     %rbp
        pop     %rdi
        pop     %rsi
        pop     %rdx
        pop     %rcx
        pop     %rbx
        pop     %rax
        add     $16, %rsp               /* vector, error code */
        iretq

/* External interrupts 0x20-0x3F (kernel/irq.c): save the registers the C
 * ABI lets irq_dispatch clobber, call it with the vector, and return with
 * iretq (the kernel has no user mode and no FPU state: -mgeneral-regs-only). */
.macro IRQ n
        .globl irq_vec\n
irq_vec\n:
        push    %rdi
        mov     $\n, %edi
        jmp     irq_common
.endm

        .irp n, 32,33,34,35,36,37,38,39,40,41,42,43,44,45,46,47,48,49,50,51,52,53,54,55,56,57,58,59,60,61,62,63
        IRQ \n
        .endr

irq_common:
        push    %rax
        push    %rcx
        push    %rdx
        push    %rsi
        push    %r8
        push    %r9
        push    %r10
        push    %r11
        push    %rbp
        mov     %rsp, %rbp
        and     $-16, %rsp              /* ABI stack alignment */
        call    irq_dispatch
        mov     %rbp, %rsp
        pop     %rbp
        pop     %r11
        pop     %r10
        pop     %r9
        pop     %r8
        pop     %rsi
        pop     %rdx
        pop     %rcx
        pop     %rax
        pop     %rdi
        iretq

/* void load_task_register(uint16_t sel): TR = sel (kernel/trap.c's TSS). */
        .globl load_task_register
load_task_register:
        ltr     %di
        ret

        .section .rodata
        .balign 8
        .globl trap_vectors
trap_vectors:
        .irp n, 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31
        .quad trap_vec\n
        .endr
        .globl irq_vectors
irq_vectors:
        .irp n, 32,33,34,35,36,37,38,39,40,41,42,43,44,45,46,47,48,49,50,51,52,53,54,55,56,57,58,59,60,61,62,63
        .quad irq_vec\n
        .endr
