"""Track B image contract: what the host and the Track B kernel agree on besides
AgentX and the boot protocol (wslx.spec.x86boot): the loaded-size budgets the
post-link check enforces, and QEMU's isa-debug-exit device the kernel and the
boot benchmark's floor power off through.

Defined once here; build/gen/trackb_image.h is generated from this module
(wslx.codegen.c_structs) for the kernel (drivers/qemu_isa.h, arch/x86_64/floor.S);
guest/trackb-kernel/SConscript, wslx.image.elfcheck and wslx.guests.trackb
import it.

Source: QEMU hw/misc/debugexit.c (properties iobase and iosize; a write of
value ends QEMU with status (value << 1) | 1).
"""
from __future__ import annotations

from .header import Constant, HeaderSpec

# Bytes of PT_LOAD file contents of images/trackb-kernel.elf. 128 KiB held the virtio path, the agent
# and Portal; raised to 144 KiB when the Hyper-V layer (hv/: enlightenments with a 4 KiB hypercall page,
# SynIC, stimer, VMBus client, hv_sock), the hvsim trap backend and the Gemini client joined the same
# image (133.5 KiB together, after the shell's removal saved 18 KiB).
KERNEL_LOAD_BUDGET = 144 * 1024
FLOOR_LOAD_BUDGET = 4096          # the same for images/trackb-floor.elf
ISA_DEBUG_EXIT_IOBASE = 0xF4
ISA_DEBUG_EXIT_IOSIZE = 4

C_HEADER = HeaderSpec(
    name="trackb_image", source="host/python/wslx/spec/trackb.py", prefix="TRACKB",
    assembler=True,  # floor.S writes the exit port
    title="Track B image contract: load budgets and QEMU's isa-debug-exit",
    doc="Budgets are checked after every link (wslx.image.elfcheck); the isa-debug-exit device is "
        "-device isa-debug-exit,iobase=ISA_DEBUG_EXIT_IOBASE,iosize=ISA_DEBUG_EXIT_IOSIZE.",
    constants=[
        Constant("KERNEL_LOAD_BUDGET", KERNEL_LOAD_BUDGET, "loaded bytes allowed for trackb-kernel.elf"),
        Constant("FLOOR_LOAD_BUDGET", FLOOR_LOAD_BUDGET, "loaded bytes allowed for trackb-floor.elf"),
        Constant("ISA_DEBUG_EXIT_IOBASE", ISA_DEBUG_EXIT_IOBASE, "I/O port of isa-debug-exit"),
        Constant("ISA_DEBUG_EXIT_IOSIZE", ISA_DEBUG_EXIT_IOSIZE, "its width in bytes"),
    ],
)
