/* floor.S: the boot benchmark's floor, a kernel that exits at its first
 * instruction. Same PVH note and entry ABI as entry.S; the first instruction
 * writes AL, whatever the loader left there, to QEMU's isa-debug-exit (port
 * from the generated trackb_image.h), which ends QEMU with the odd status
 * (AL << 1) | 1. Without that device it halts forever. */
#include "arch/x86_64/pvh_note.h"
#include "drivers/qemu_isa.h"
        PVH_NOTE pvh_entry32

        .section .text.entry, "ax"
        .code32
        .globl pvh_entry32
pvh_entry32:
        outb    %al, $ISA_DEBUG_EXIT_PORT   /* QEMU exits here */
1:      cli
        hlt
        jmp     1b

        .code64
        .globl linux64_entry
linux64_entry:
        outb    %al, $ISA_DEBUG_EXIT_PORT
2:      cli
        hlt
        jmp     2b
