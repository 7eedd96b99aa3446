/* memlayout.h: physical and virtual memory layout of the Track B kernel.
 *
 * The kernel runs identity mapped (virtual == physical): the boot page tables
 * in entry.S map the first 4 GiB with 2 MiB pages, and vm.c adds identity
 * mappings above 4 GiB on demand (the virtio-pmem range lives there under
 * QEMU). Identity mapping keeps both boot paths (PVH: paging off; OpenVMM:
 * its own identity map) on one set of addresses.
 *
 * The boot tables map everything read/write/execute. vm_init() then enforces
 * W^X (as xv6's kvmmake and Linux's mark_rodata_ro do):
 *
 *   [0, 1 MiB)                        low memory (boot info, BIOS, EBDA)   RW  NX
 *   [__text_start, __text_end)        .text (entry, trap stubs)            R   X
 *   [__rodata_start, __rodata_end)    .note.Xen, .rodata, the GDT          R   NX
 *   [__data_start, _kernel_end)       .data (page tables), .bss (stack,    RW  NX
 *                                     IDT, TSS, IST stacks, agent tables)
 *     boot_stack_guard (4 KiB, .bss)  below the boot stack                 unmapped
 *   [_kernel_end, 4 GiB)              RAM for pmm, the PCI hole (UC)       RW  NX
 *   above 4 GiB (vm_map_identity)     pmem window (WB), MMIO BARs (UC)     RW  NX
 *
 * [0, KERNEL_SPLIT_LIMIT) uses 4 KiB pages (page tables in .bss); the rest
 * keeps 2 MiB pages. vm_map_identity() maps at most VM_MAP_MAX_LEN per call
 * (a device-supplied size cannot eat the page allocator in page tables). The section bounds are 4 KiB aligned by kernel.ld,
 * which also checks that the image ends below KERNEL_SPLIT_LIMIT. */
#ifndef TRACKB_MEMLAYOUT_H
#define TRACKB_MEMLAYOUT_H

#define KERNEL_PHYS_BASE   0x100000      /* 1 MiB: above the BIOS/option ROM area */
#define KERNEL_STACK_SIZE  0x8000        /* 32 KiB boot stack in .bss */
#define STACK_GUARD_SIZE   0x1000        /* unmapped page below it: overflow = #PF -> #DF */
#define IST_STACK_SIZE     0x2000        /* per IST stack (#DF, NMI, #MC), in .bss */
#define KERNEL_SPLIT_LIMIT 0x400000ULL   /* 4 KiB pages below this (kernel.ld checks _kernel_end) */
#define BOOT_MAP_LIMIT     0x100000000ULL /* boot page tables map [0, 4 GiB) */
#define MMIO_UC_START      0xC0000000ULL /* [3 GiB, 4 GiB): PCI hole, mapped uncached */
#define LOW_MEM_LIMIT      0x100000ULL   /* the page allocator never hands out < 1 MiB */
#define PAGE_SIZE          4096ULL
#define LARGE_PAGE_SIZE    0x200000ULL
#define VM_MAP_MAX_LEN     (64ULL << 30) /* 64 GiB: at most 65 PDs + 2 PDPTs (268 KiB) per mapping */

/* How the kernel was entered (first argument of kmain). */
#define BOOT_PVH      1   /* 32-bit PVH entry, EBX = hvm_start_info */
#define BOOT_LINUX64  2   /* 64-bit e_entry, RSI = Linux boot_params */

/* GDT selectors (entry.S); OpenVMM enters with the same CS/DS values. */
#define SEL_CODE64 0x08
#define SEL_DATA   0x10
#define SEL_TSS    0x18           /* 16-byte 64-bit TSS descriptor, filled by trap_init() */

/* Interrupt stack table slots (TSS.IST1..3; Intel SDM Vol. 3A 6.14.5): these
 * vectors switch to a known-good stack, so a #DF from a stack overflow runs. */
#define IST_DF  1
#define IST_NMI 2
#define IST_MC  3

/* Paging and control bits (Intel SDM Vol. 3A: 2.5 control registers, 4.5
 * 4-level paging, 4.7 page-fault error code; AMD APM Vol. 2 3.1.7 EFER).
 * Plain integers: entry.S uses them too. */
#define PTE_P     0x001           /* present */
#define PTE_W     0x002           /* writable (supervisor too, once CR0.WP is set) */
#define PTE_PWT   0x008
#define PTE_PCD   0x010
#define PTE_PS    0x080           /* 2 MiB page in a PD entry */
#define PTE_NX    (1ULL << 63)    /* no execute; a reserved bit unless EFER.NXE */
#define PTE_ADDR  0x000FFFFFFFFFF000ULL

#define PF_ERR_P     0x01         /* protection violation (else not present) */
#define PF_ERR_W     0x02         /* write access */
#define PF_ERR_U     0x04         /* user mode */
#define PF_ERR_RSVD  0x08         /* reserved bit set in a paging entry */
#define PF_ERR_I     0x10         /* instruction fetch */

#define CR0_PE    (1 << 0)
#define CR0_WP    (1 << 16)       /* supervisor writes honour read-only pages */
#define CR0_PG    (1 << 31)
#define CR4_PAE   (1 << 5)
#define CR4_PGE   (1 << 7)
#define MSR_EFER  0xC0000080
#define EFER_LME  (1 << 8)
#define EFER_NXE  (1 << 11)
#define CPUID_EXT_FEATURES  0x80000001   /* EDX bit 20: NX */
#define CPUID_EXT_NX        (1 << 20)

#endif
