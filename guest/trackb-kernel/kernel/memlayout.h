/* memlayout.h: physical and virtual memory layout of the Track B kernel.
 *
 * The kernel runs identity mapped (virtual == physical): the boot page tables
 * in entry.S map the first 4 GiB with 2 MiB pages, and vm.c adds identity
 * mappings above 4 GiB on demand (the virtio-pmem range lives there under
 * QEMU). Identity mapping keeps both boot paths (PVH: paging off; OpenVMM:
 * its own identity map) on one set of addresses. */
#ifndef TRACKB_MEMLAYOUT_H
#define TRACKB_MEMLAYOUT_H

#define KERNEL_PHYS_BASE   0x100000      /* 1 MiB: above the BIOS/option ROM area */
#define KERNEL_STACK_SIZE  0x8000        /* 32 KiB boot stack in .bss */
#define BOOT_MAP_LIMIT     0x100000000ULL /* boot page tables map [0, 4 GiB) */
#define MMIO_UC_START      0xC0000000ULL /* [3 GiB, 4 GiB): PCI hole, mapped uncached */
#define LOW_MEM_LIMIT      0x100000ULL   /* the page allocator never hands out < 1 MiB */
#define PAGE_SIZE          4096ULL
#define LARGE_PAGE_SIZE    0x200000ULL

/* How the kernel was entered (first argument of kmain). */
#define BOOT_PVH      1   /* 32-bit PVH entry, EBX = hvm_start_info */
#define BOOT_LINUX64  2   /* 64-bit e_entry, RSI = Linux boot_params */

/* GDT selectors (entry.S); OpenVMM enters with the same CS/DS values. */
#define SEL_CODE64 0x08
#define SEL_DATA   0x10

#endif
