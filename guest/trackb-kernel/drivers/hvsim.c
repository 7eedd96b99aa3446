/* hvsim.c: find the wslx.hv model's ivshmem-doorbell device and route the
 * platform layer's hypervisor calls through it (platform/hv_backend.c).
 * The model raises SynIC interrupts as MSI-X: entry i is programmed with
 * vector HVSIM_VECTOR_BASE + i, so a SINT's vector arrives as itself and
 * kernel/irq.c dispatches it like any interrupt. */
#include "drivers/hvsim_dev.h"
#include "drivers/pci_regs.h"
#include "hvsim.h"
#include "kernel/console.h"
#include "kernel/irq.h"
#include "kernel/panic.h"
#include "kernel/timer.h"
#include "kernel/vm.h"
#include "platform/platform.h"

static _Noreturn void hvsim_dead(const char *what, uint32_t op, uint64_t arg, uint32_t fault)
{
    panic("hvsim: %s: %s %lx (vector %u)", what, hvsim_op_name(op), arg, fault);
}

static const struct hvsim_ops ops = {hvsim_dead};

static void answer_isr(unsigned vector) { (void)vector; }   /* the wake-up is all it is for */

/* The MSI-X capability's offset, or 0. */
static unsigned msix_cap(struct pci_dev *d)
{
    uint8_t cfg[PCI_CFG_SPACE_SIZE], offs[PCI_MAX_CAPS];
    pci_read_config(d, cfg, sizeof cfg);
    int n = pci_cap_list(cfg, sizeof cfg, offs, PCI_MAX_CAPS);
    for (int i = 0; i < n; i++)
        if (cfg[offs[i]] == PCI_CAP_ID_MSIX)
            return offs[i];
    return 0;
}

int hvsim_probe(struct pci_dev *d)
{
    if (!d || pci_enable(d) || !d->bar[0] || !d->bar[2] || d->bar_size[2] < HVSIM_BLOCK_SIZE)
        return 0;
    if (vm_map_identity(d->bar[2], d->bar_size[2], 0))               /* 1. the shared block */
        return 0;
    volatile struct hvsim_block *b = phys_ptr(d->bar[2], HVSIM_BLOCK_SIZE);
    if (!b || b->magic != HVSIM_MAGIC || b->version != HVSIM_VERSION)
        return 0;                                                    /* someone else's ivshmem */
    unsigned cap = msix_cap(d);                                      /* 2. MSI-X entries -> our vectors */
    uint32_t table = cap ? pci_read32(d, (uint16_t)(cap + MSIX_TABLE)) : 0;
    uint64_t tbase = cap ? d->bar[table & MSIX_TABLE_BIR_MASK] : 0;
    if (!tbase) {
        kprintf("hvsim: no MSI-X table\n");
        return 0;
    }
    tbase += table & ~MSIX_TABLE_BIR_MASK;
    for (unsigned i = 0; i < HVSIM_MSIX_VECTORS; i++) {
        uint64_t e = tbase + i * MSIX_ENTRY_SIZE;
        mmio_write32(e, MSI_ADDRESS_LAPIC);
        mmio_write32(e + 4, 0);
        mmio_write32(e + 8, HVSIM_VECTOR_BASE + i);
        mmio_write32(e + 12, 0);                                     /* unmasked */
    }
    uint16_t ctrl = pci_read16(d, (uint16_t)(cap + MSIX_CTRL));
    pci_write16(d, (uint16_t)(cap + MSIX_CTRL), (uint16_t)((ctrl | MSIX_CTRL_ENABLE) & ~MSIX_CTRL_FUNC_MASK));
    b->msix_vector_base = HVSIM_VECTOR_BASE;                         /* 3. tell the model */
    b->msix_vectors = HVSIM_MSIX_VECTORS;
    uint64_t mhz = timer_tsc_hz() / 1000000;                         /* 4. switch the backend */
    uint32_t poll_ns = b->idle_poll_ns < HVSIM_IDLE_POLL_MAX_NS ? b->idle_poll_ns : HVSIM_IDLE_POLL_MAX_NS;
    int answer_irq = (b->features & HVSIM_FEATURE_ANSWER_IRQ) &&     /* a late answer may be awaited halted */
                     !irq_register(HVSIM_VECTOR_BASE + HVSIM_ANSWER_MSIX_ENTRY, answer_isr);
    hv_use_hvsim(b, d->bar[0] + HVSIM_IVSHMEM_REG_DOORBELL, b->model_peer << 16 | HVSIM_TRAP_DOORBELL_VECTOR,
                 HVSIM_SPIN_LIMIT_NS / 1000 * mhz, poll_ns / 1000 * mhz,
                 answer_irq ? HVSIM_ANSWER_SPIN_NS / 1000 * mhz : 0, &ops);
    kprintf("hvsim: model at %02x:%02x.%u\n", d->bus, d->dev, d->fn);
    return 1;
}
