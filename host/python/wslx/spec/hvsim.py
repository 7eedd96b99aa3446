"""hvsim trap channel: the request block the Track B kernel and the wslx.hv model share in ivshmem memory.

Under `--vmm hvsim` QEMU runs the guest on TCG, which does not fault on synthetic MSRs (reads give 0,
writes vanish) and raises #UD on vmcall (shared/reference/hvsim-facts.md). So the kernel's platform layer
forwards hv_cpuid / hv_rdmsr / hv_wrmsr and the #UD of the hypercall page's `vmcall` to the model through
this block in the ivshmem-doorbell device's shared memory (BAR2), then rings the doorbell (BAR0 register
DOORBELL = model peer << 16 | TRAP_DOORBELL_VECTOR) and spins on `done_seq`. The model raises guest
interrupts as MSI-X: entry i carries vector `msix_vector_base + i` (the guest programs the table).

Protocol, one request at a time (one VP):
1. The model writes magic, version and its peer id before QEMU starts; the kernel uses hvsim only if
   the device's BAR2 starts with MAGIC and a version it knows.
2. Guest: op and arguments, its TSC, a write barrier, then `seq` = previous seq + 1, then the doorbell.
3. Model: reads the request whose `seq` differs from `done_seq`, answers in `result[]`/`fault`, then
   writes `done_seq` = seq last. A `fault` is the exception vector real hardware would raise (13 = #GP,
   6 = #UD).
The request and the answer sit on separate 64-byte lines.
Halting for a late answer (feature ANSWER_IRQ, offered by the model in `features`): a guest that has spun
ANSWER_SPIN_NS without an answer writes the request's seq to `wait_seq`, a full barrier, looks at
`done_seq` once more, then halts with interrupts on until `done_seq` is its seq; the model, after writing
`done_seq`, a full barrier, reads `wait_seq` and, when it names the request, raises MSI-X entry
ANSWER_MSIX_ENTRY. So on a busy host the vCPU gives its CPU to the model instead of spinning against it.
A request made meanwhile by an interrupt handler (nested) only spins. Negotiation: both fields were
reserved (zero) in the first layout, so a model that offers nothing leaves features 0 and the guest only
spins, and a guest that knows nothing of it never writes wait_seq; VERSION stays 1 for both directions.
Idle: before it halts, the guest polls `irq_seq` for `idle_poll_ns` (the model's setting, default 0 =
off, at most IDLE_POLL_MAX_NS; interrupts off) and returns at once when the model bumped it: the model's
interrupt is seen through shared memory, without waiting for QEMU's main loop to deliver the MSI-X and
wake the halted vCPU (like KVM's halt polling). The MSI-X still arrives and is handled when the guest
next enables interrupts.

Defined once here; build/gen/hvsim.h is generated from this module (wslx.codegen.c_structs) for
guest/trackb-kernel/platform/hv_backend.c and drivers/hvsim.c; wslx.vmm.hvsim_model uses the same Structs.
Sources: QEMU docs/specs/ivshmem-spec.txt (BAR0 registers, doorbell encoding, MSI-X on BAR1).
"""
from __future__ import annotations

import enum

from construct import Int32ul, Int64ul, Struct

from .fields import Reserved, field_offsets
from .header import Constant, CStruct, HeaderSpec

MAGIC = 0x4D535648               # "HVSM" little-endian: the model is serving this block
VERSION = 1
SHM_SIZE = 4096                  # ivshmem BAR2 (a power of two)
TRAP_DOORBELL_VECTOR = 0         # the guest rings the model's eventfd 0
MSIX_VECTORS = 15                # ivshmem vectors: MSI-X entries 0..14 -> IDT vectors base..base+14
IVSHMEM_VENDOR_ID = 0x1AF4
IVSHMEM_DEVICE_ID = 0x1110
IVSHMEM_REG_IVPOSITION = 8       # BAR0: this peer's id
IVSHMEM_REG_DOORBELL = 12        # BAR0: write peer << 16 | vector
SPIN_LIMIT_NS = 2_000_000_000    # the guest waits this long for an answer, then panics with the op
# default of idle_poll_ns: off. Measured here (2 shared cores, PING over hv_sock, 3-4 interleaved rounds):
# medians 1194 and 1123/s without polling, 802 and 701/s polling 100 us, 609 and 1296/s polling 1 ms:
# on a loaded host the spinning vCPU takes the CPU the model needs.
IDLE_POLL_NS = 0
IDLE_POLL_MAX_NS = 10_000_000    # the guest takes at most this much
FEATURE_ANSWER_IRQ = 1           # features bit 0: the model raises ANSWER_MSIX_ENTRY for a waiting guest
ANSWER_MSIX_ENTRY = 13           # MSI-X entry of "your answer is there" (one no SINT vector uses)
# The guest spins this long on done_seq before it halts (ANSWER_IRQ): about what a halt costs (an MSI-X
# through QEMU's main loop and the vCPU's wake-up, 37-129 us in hvsim-facts.md), the classic bound for
# spin-then-block; a trap answered by a running model takes ~10 us and never halts. Interleaved bench
# rounds here (load 4) gave no clear winner between 50 and 200 us.
ANSWER_SPIN_NS = 100_000


class Op(enum.IntEnum):
    """hvsim_block.op"""
    CPUID = 1        # arg0 = leaf -> result[0..3] = eax, ebx, ecx, edx
    RDMSR = 2        # arg0 = msr -> result[0]
    WRMSR = 3        # arg0 = msr, arg1 = value
    HYPERCALL = 4    # arg0 = rcx (control), arg1 = rdx, arg2 = r8 -> result[0] = rax


HVSIM_BLOCK = Struct(
    "magic" / Int32ul * "MAGIC once the model serves the block",
    "version" / Int32ul,
    "model_peer" / Int32ul * "ivshmem peer id of the model (doorbell target)",
    "msix_vector_base" / Int32ul * "written by the guest: MSI-X entry i raises this vector + i",
    "msix_vectors" / Int32ul * "written by the guest: entries programmed",
    "irq_seq" / Int32ul * "model: bumped after each interrupt it raises (the guest's idle poll)",
    "idle_poll_ns" / Int32ul * "model: how long an idle guest polls irq_seq before hlt (host setting)",
    "features" / Int32ul * "model: FEATURE_* bits it offers (0 in the first layout)",
    "wait_seq" / Int32ul * "guest: seq of the request it halts for (ANSWER_IRQ), else 0",
    "reserved0" / Reserved(28),
    "seq" / Int32ul * "guest: bumped last, after the request",
    "op" / Int32ul * "HVSIM_OP_*",
    "arg0" / Int64ul,
    "arg1" / Int64ul,
    "arg2" / Int64ul,
    "guest_tsc" / Int64ul * "guest rdtsc when it made the request (the model fits the TSC rate)",
    "reserved1" / Reserved(24),
    "done_seq" / Int32ul * "model: equals seq once result and fault are written",
    "fault" / Int32ul * "0, or the exception vector the access raises",
    "result" / Int64ul[4],
    "reserved2" / Reserved(24),
)
_OFF = field_offsets(HVSIM_BLOCK)
OFF_MSIX_VECTOR_BASE = _OFF["msix_vector_base"]
OFF_MSIX_VECTORS = _OFF["msix_vectors"]
OFF_IRQ_SEQ = _OFF["irq_seq"]
OFF_WAIT_SEQ = _OFF["wait_seq"]
OFF_SEQ = _OFF["seq"]                 # the request, on its own 64-byte line
OFF_DONE_SEQ = _OFF["done_seq"]       # the answer, on the next
assert OFF_SEQ % 64 == 0 and OFF_DONE_SEQ - OFF_SEQ == 64
assert HVSIM_BLOCK.sizeof() == 192

C_HEADER = HeaderSpec(
    name="hvsim", source="host/python/wslx/spec/hvsim.py", prefix="HVSIM",
    title="hvsim: the trap request block in ivshmem shared memory",
    doc=__doc__.split("\n\nDefined once")[0],
    constants=[
        Constant("MAGIC", MAGIC, "hvsim_block.magic: 'HVSM'"),
        Constant("VERSION", VERSION, "hvsim_block.version"),
        Constant("SHM_SIZE", SHM_SIZE, "bytes of ivshmem shared memory"),
        Constant("TRAP_DOORBELL_VECTOR", TRAP_DOORBELL_VECTOR, "doorbell vector of a trap request"),
        Constant("MSIX_VECTORS", MSIX_VECTORS, "MSI-X entries the model may raise"),
        Constant("IVSHMEM_VENDOR_ID", IVSHMEM_VENDOR_ID, "ivshmem PCI vendor"),
        Constant("IVSHMEM_DEVICE_ID", IVSHMEM_DEVICE_ID, "ivshmem PCI device"),
        Constant("IVSHMEM_REG_IVPOSITION", IVSHMEM_REG_IVPOSITION, "BAR0 offset: own peer id"),
        Constant("IVSHMEM_REG_DOORBELL", IVSHMEM_REG_DOORBELL, "BAR0 offset: peer << 16 | vector"),
        Constant("SPIN_LIMIT_NS", SPIN_LIMIT_NS, "guest wait for an answer"),
        Constant("IDLE_POLL_NS", IDLE_POLL_NS, "default idle_poll_ns"),
        Constant("IDLE_POLL_MAX_NS", IDLE_POLL_MAX_NS, "the most idle_poll_ns the guest takes"),
        Constant("FEATURE_ANSWER_IRQ", FEATURE_ANSWER_IRQ, "features: MSI-X for a guest halted on an answer"),
        Constant("ANSWER_MSIX_ENTRY", ANSWER_MSIX_ENTRY, "MSI-X entry the model raises for a waiting guest"),
        Constant("ANSWER_SPIN_NS", ANSWER_SPIN_NS, "guest spin on done_seq before it halts"),
    ],
    enums=[("HVSIM_OP", Op)],
    structs=[CStruct("hvsim_block", HVSIM_BLOCK, "the shared block at BAR2 offset 0")],
)
