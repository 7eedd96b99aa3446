/* entry.S: the two ways into the Track B kernel, both ending in kmain().
 *
 *  pvh_entry32   QEMU -kernel (PVH boot ABI, found through the Xen ELF note):
 *                32-bit protected mode, paging off, EBX = hvm_start_info.
 *  linux64_entry ELF e_entry for OpenVMM's direct boot: 64-bit mode on the
 *                loader's identity map of the first 4 GiB, RSI = boot_params.
 *
 * Both switch to this kernel's own GDT and page tables (identity map of the
 * first 4 GiB with 2 MiB pages, built at assembly time below) and stack.
 * These tables are read/write/execute; kmain's vm_init() tightens them to
 * W^X once the kernel runs (kernel/vm.c, kernel/memlayout.h), which also
 * unmaps the guard page below the stack. */
#include "kernel/memlayout.h"     /* also the CR0/CR4/EFER and page-table bits */
#include "arch/x86_64/pvh_note.h"

/* ---- PVH note: XEN_ELFNOTE_PHYS32_ENTRY (18). QEMU reads the descriptor as
 * a pointer-sized value in an ELF64 file, so it is a .quad (as in Linux). */
        PVH_NOTE pvh_entry32

/* ---- 32-bit PVH entry ---- */
        .section .text.entry, "ax"
        .code32
        .globl pvh_entry32
pvh_entry32:
        cli                             /* no IDT yet */
        cld
        mov     %ebx, %esi              /* keep start_info: rep stosb uses edi/ecx/eax */
        mov     $__bss_start, %edi      /* zero .bss (also the stack and boot info) */
        mov     $__bss_end, %ecx
        sub     %edi, %ecx
        xor     %eax, %eax
        rep stosb
        mov     %esi, boot_info_paddr   /* remember how we came in */
        movl    $BOOT_PVH, boot_kind
        mov     %cr4, %eax              /* PAE: required for long mode */
        or      $CR4_PAE, %eax
        mov     %eax, %cr4
        mov     $boot_pml4, %eax        /* our identity-mapped page tables */
        mov     %eax, %cr3
        mov     $MSR_EFER, %ecx         /* long mode enable */
        rdmsr
        or      $EFER_LME, %eax
        wrmsr
        lgdt    boot_gdt_desc           /* 64-bit code segment at SEL_CODE64 */
        mov     %cr0, %eax              /* paging on: long mode becomes active */
        or      $(CR0_PG | CR0_PE), %eax
        mov     %eax, %cr0
        ljmp    $SEL_CODE64, $long_mode_start   /* load the 64-bit CS */

/* ---- 64-bit entry (ELF e_entry) ---- */
        .code64
        .globl linux64_entry
linux64_entry:
        cli                             /* the loader promises this; make sure */
        cld
        mov     %rsi, %r12              /* keep boot_params */
        lea     __bss_start(%rip), %rdi /* zero .bss */
        lea     __bss_end(%rip), %rcx
        sub     %rdi, %rcx
        xor     %eax, %eax
        rep stosb
        mov     %r12, boot_info_paddr(%rip)
        movl    $BOOT_LINUX64, boot_kind(%rip)
        lgdt    boot_gdt_desc(%rip)     /* our GDT (same selector values as the loader's) */
        lea     boot_pml4(%rip), %rax   /* our page tables: identity mapped, so no jump needed */
        mov     %rax, %cr3
        pushq   $SEL_CODE64             /* reload CS from our GDT */
        lea     long_mode_start(%rip), %rax
        push    %rax
        lretq

/* ---- common 64-bit path ---- */
long_mode_start:
        mov     $SEL_DATA, %ax          /* flat data segments */
        mov     %ax, %ds
        mov     %ax, %es
        mov     %ax, %ss
        xor     %eax, %eax
        mov     %ax, %fs
        mov     %ax, %gs
        lea     boot_stack_top(%rip), %rsp  /* own stack */
        xor     %ebp, %ebp              /* end of frame chain for backtraces */
        mov     boot_kind(%rip), %edi   /* kmain(kind, boot info physical address) */
        mov     boot_info_paddr(%rip), %rsi
        call    kmain
1:      cli                             /* kmain does not return; if it does, stop */
        hlt
        jmp     1b

/* ---- GDT: null, 64-bit code (0x08), data (0x10), TSS (0x18) ---- */
        .section .rodata.gdt, "a"
        .balign 16
        .globl boot_gdt
boot_gdt:
        .quad 0
        /* Accessed bits preset: the CPU would otherwise write them on a segment
         * load, and this page becomes read-only (as Linux's GDT_ENTRY_INIT). */
        .quad 0x00AF9B000000FFFF        /* 0x08: code, L=1, present, DPL 0 */
        .quad 0x00CF93000000FFFF        /* 0x10: data, writable, present */
        /* 0x18: the 16-byte TSS descriptor, not present until trap_init() fills
         * it in (its base is the TSS's address, which a relocation cannot split)
         * and loads TR; both happen before vm_init() makes this page read-only. */
        .quad 0, 0
boot_gdt_end:
        .balign 4
        .word 0
boot_gdt_desc:                          /* read as 6 bytes in 32-bit mode, 10 in 64-bit */
        .word boot_gdt_end - boot_gdt - 1
        .quad boot_gdt

/* ---- page tables: PML4 -> PDPT -> 4 PDs of 2 MiB pages = [0, 4 GiB) ---- */
        .section .data.pagetables, "aw"
        .balign 4096
        .globl boot_pml4, boot_pdpt, boot_pd
boot_pml4:
        .quad boot_pdpt + (PTE_P | PTE_W)
        .fill 511, 8, 0
boot_pdpt:
        .quad boot_pd + 0x0000 + (PTE_P | PTE_W)
        .quad boot_pd + 0x1000 + (PTE_P | PTE_W)
        .quad boot_pd + 0x2000 + (PTE_P | PTE_W)
        .quad boot_pd + 0x3000 + (PTE_P | PTE_W)
        .fill 508, 8, 0
boot_pd:
        .set i, 0
        .rept 2048
        .if i >= (MMIO_UC_START >> 21)  /* the PCI hole: uncached */
        .quad (i << 21) | (PTE_P | PTE_W | PTE_PS | PTE_PWT | PTE_PCD)
        .else
        .quad (i << 21) | (PTE_P | PTE_W | PTE_PS)
        .endif
        .set i, i + 1
        .endr

        .section .bss
        .balign 16
        .globl boot_kind, boot_info_paddr
boot_kind:
        .long 0
        .balign 8
boot_info_paddr:
        .quad 0
        .balign 4096
        .globl boot_stack_guard, boot_stack, boot_stack_top
boot_stack_guard:                       /* unmapped by vm_init(): an overflow faults here (#DF on IST) */
        .space STACK_GUARD_SIZE
boot_stack:
        .space KERNEL_STACK_SIZE
boot_stack_top:
