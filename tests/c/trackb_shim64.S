/* trackb_shim64.S: test-only PVH shim that enters the Track B kernel the way
 * OpenVMM's direct boot does (tests/test_trackb_boot.py::test_64bit_entry).
 *
 * QEMU starts it through its PVH note; the kernel ELF is loaded next to it by
 * `-device loader`. The shim turns start_info into a Linux boot_params page
 * (e820 table, command line, RSDP), switches to 64-bit mode on an identity
 * map of the first 4 GiB with CS=0x08/DS=0x10 and interrupts off, and jumps
 * to the kernel's e_entry (KERNEL_ENTRY, given at assembly time) with RSI =
 * boot_params. Offsets and the note come from the generated x86boot.h (via the
 * kernel's own pvh_note.h): build with -Ibuild/gen -Iguest/trackb-kernel. */
#include "arch/x86_64/pvh_note.h"

#define BOOT_PARAMS 0x90000

        PVH_NOTE shim32

        .text
        .code32
shim32:
        cli
        cld
        mov     $BOOT_PARAMS, %edi      /* zero the boot_params page */
        mov     $(X86BOOT_BP_SIZE / 4), %ecx
        xor     %eax, %eax
        rep stosl
        mov     HVM_START_INFO_OFF_RSDP_PADDR(%ebx), %eax       /* -> acpi_rsdp_addr (low half) */
        mov     %eax, BOOT_PARAMS + X86BOOT_BP_ACPI_RSDP_ADDR
        mov     HVM_START_INFO_OFF_CMDLINE_PADDR(%ebx), %eax    /* -> cmd_line_ptr */
        mov     %eax, BOOT_PARAMS + X86BOOT_BP_CMD_LINE_PTR
        mov     HVM_START_INFO_OFF_MEMMAP_ENTRIES(%ebx), %ecx
        cmp     $X86BOOT_BP_E820_MAX, %ecx
        jbe     1f
        mov     $X86BOOT_BP_E820_MAX, %ecx
1:      mov     %cl, BOOT_PARAMS + X86BOOT_BP_E820_ENTRIES
        mov     HVM_START_INFO_OFF_MEMMAP_PADDR(%ebx), %esi     /* hvm_memmap_table_entry -> boot_e820_entry */
        mov     $(BOOT_PARAMS + X86BOOT_BP_E820_TABLE), %edi
2:      test    %ecx, %ecx
        jz      3f
        push    %ecx
        mov     $(BOOT_E820_ENTRY_SIZE / 4), %ecx               /* addr, size, type: the same prefix */
        rep movsl
        add     $(HVM_MEMMAP_TABLE_ENTRY_SIZE - BOOT_E820_ENTRY_SIZE), %esi  /* skip the reserved field */
        pop     %ecx
        dec     %ecx
        jmp     2b
3:      mov     %cr4, %eax              /* PAE, our page tables, EFER.LME, paging */
        or      $0x20, %eax
        mov     %eax, %cr4
        mov     $pml4, %eax
        mov     %eax, %cr3
        mov     $0xC0000080, %ecx
        rdmsr
        or      $0x100, %eax
        wrmsr
        lgdt    gdt_desc
        mov     %cr0, %eax
        or      $0x80000001, %eax
        mov     %eax, %cr0
        ljmp    $0x08, $shim64

        .code64
shim64:
        mov     $0x10, %ax
        mov     %ax, %ds
        mov     %ax, %es
        mov     %ax, %ss
        mov     $BOOT_PARAMS, %esi
        mov     $KERNEL_ENTRY, %eax
        jmp     *%rax

        .section .rodata
        .balign 16
gdt:    .quad 0, 0x00AF9A000000FFFF, 0x00CF92000000FFFF
gdt_end:
        .balign 4
        .word 0
gdt_desc:
        .word gdt_end - gdt - 1
        .quad gdt

        .data
        .balign 4096
pml4:   .quad pdpt + 3
        .fill 511, 8, 0
pdpt:   .quad pd + 0x0003, pd + 0x1003, pd + 0x2003, pd + 0x3003
        .fill 508, 8, 0
pd:
        .set i, 0
        .rept 2048
        .quad (i << 21) | 0x83
        .set i, i + 1
        .endr
