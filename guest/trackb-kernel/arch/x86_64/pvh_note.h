/* pvh_note.h: the PVH ELF note (XEN_ELFNOTE_PHYS32_ENTRY, from the generated
 * x86boot.h) that makes QEMU's -kernel enter `entry` in 32-bit protected mode
 * with start_info in EBX. QEMU reads the value as pointer-sized in an ELF64
 * file, so it is a .quad (as in Linux's arch/x86/platform/pvh/head.S).
 * Assembler include. */
#ifndef TRACKB_PVH_NOTE_H
#define TRACKB_PVH_NOTE_H

#include "x86boot.h"

.macro PVH_NOTE entry
        .pushsection .note.Xen, "a", @note
        .balign 4
        .long 4                 /* namesz: "Xen\0" */
        .long 8                 /* descsz */
        .long X86BOOT_XEN_ELFNOTE_PHYS32_ENTRY
        .asciz "Xen"
        .balign 4
        .quad \entry
        .balign 4
        .popsection
.endm

#endif
