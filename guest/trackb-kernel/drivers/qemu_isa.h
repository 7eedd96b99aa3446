/* qemu_isa.h: QEMU's ISA diagnostic devices.
 * pvpanic: QEMU docs/specs/pvpanic.rst (ISA port 0x505; bit 0 = guest panicked).
 * isa-debug-exit: QEMU hw/misc/debugexit.c; exit status is (value << 1) | 1.
 *   QemuMachine users pass -device isa-debug-exit,iobase=0xf4,iosize=0x04. */
#ifndef TRACKB_QEMU_ISA_H
#define TRACKB_QEMU_ISA_H

#define PVPANIC_PORT          0x505
#define PVPANIC_PANICKED      0x01
#define ISA_DEBUG_EXIT_PORT   0xF4

#endif
