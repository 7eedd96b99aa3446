/* hypercall_page.S: the page Hyper-V fills with its call sequence (TLFS 3.13,
 * HV_X64_MSR_HYPERCALL). It sits in .text so that vm_init() maps it R+X like
 * the rest of the code: the hypervisor writes it through its own mapping, the
 * guest only executes it. Until it is filled it holds int3 (#BP), so a call
 * through an unfilled page stops in trap() instead of running zeros. */
        .section .text.hv_hypercall_page, "ax", @progbits
        .balign 4096
hv_hypercall_page:
        .fill   4096, 1, 0xCC

        .text
/* void *hv_hypercall_page_alloc(void) (hv/hv.h) */
        .globl hv_hypercall_page_alloc
hv_hypercall_page_alloc:
        lea     hv_hypercall_page(%rip), %rax
        ret
