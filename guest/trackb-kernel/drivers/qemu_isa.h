/* qemu_isa.h: QEMU's ISA diagnostic devices.
 * pvpanic: QEMU docs/specs/pvpanic.rst (ISA port 0x505; bit 0 = guest panicked).
 * isa-debug-exit: QEMU hw/misc/debugexit.c; exit status is (value << 1) | 1.
 *   Its port is the host's (wslx.spec.trackb, generated trackb_image.h); wslx.guests.trackb
 *   passes the same -device isa-debug-exit to QEMU. */
#ifndef TRACKB_QEMU_ISA_H
#define TRACKB_QEMU_ISA_H

#include "trackb_image.h"

#define PVPANIC_PORT          0x505
#define PVPANIC_PANICKED      0x01
#define ISA_DEBUG_EXIT_PORT   TRACKB_ISA_DEBUG_EXIT_IOBASE

#endif
