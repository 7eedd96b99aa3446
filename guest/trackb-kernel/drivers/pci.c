/* pci.c: PCI configuration access (ECAM or CF8/CFC), enumeration through
 * bridges, BAR sizing and placement. */
#include "drivers/pci.h"
#include "drivers/pci_regs.h"
#include "kernel/console.h"
#include "kernel/vm.h"
#include "platform/platform.h"

static uint64_t ecam_base;        /* 0: port I/O */
static uint8_t ecam_start, ecam_end;
static uint64_t win_next, win_end;
static struct pci_dev devs[PCI_MAX_DEVICES];
static int n_devs;

void pci_init(const struct ecam_region *ecam, int n_ecam, uint64_t mmio_lo, uint64_t mmio_hi)
{
    ecam_base = 0;
    for (int i = 0; i < n_ecam; i++) {
        uint64_t len = ((uint64_t)ecam[i].end_bus + 1) << 20;
        if (ecam[i].segment == 0 && ecam[i].start_bus == 0 && vm_map_identity(ecam[i].base, len, 1) == 0) {
            ecam_base = ecam[i].base;
            ecam_start = ecam[i].start_bus;
            ecam_end = ecam[i].end_bus;
            break;
        }
    }
    win_next = mmio_lo;
    win_end = mmio_hi;
}

const char *pci_access_method(void) { return ecam_base ? "ECAM" : "port I/O"; }

static uint64_t ecam_addr(uint8_t bus, uint8_t dev, uint8_t fn, uint16_t off)
{
    return ecam_base + ((uint64_t)bus << 20 | (uint64_t)dev << 15 | (uint64_t)fn << 12 | off);
}

static uint32_t cfg_read32(uint8_t bus, uint8_t dev, uint8_t fn, uint16_t off)
{
    off &= 0xFFC;
    if (ecam_base) {
        if (bus < ecam_start || bus > ecam_end)
            return 0xFFFFFFFFu;
        return mmio_read32(ecam_addr(bus, dev, fn, off));
    }
    if (off >= 256)
        return 0xFFFFFFFFu;
    pio_out32(PCI_CFG_ADDR_PORT, PCI_CFG_ENABLE | (uint32_t)bus << 16 | (uint32_t)dev << 11 | (uint32_t)fn << 8 | off);
    return pio_in32(PCI_CFG_DATA_PORT);
}

static void cfg_write32(uint8_t bus, uint8_t dev, uint8_t fn, uint16_t off, uint32_t v)
{
    off &= 0xFFC;
    if (ecam_base) {
        if (bus >= ecam_start && bus <= ecam_end)
            mmio_write32(ecam_addr(bus, dev, fn, off), v);
        return;
    }
    if (off >= 256)
        return;
    pio_out32(PCI_CFG_ADDR_PORT, PCI_CFG_ENABLE | (uint32_t)bus << 16 | (uint32_t)dev << 11 | (uint32_t)fn << 8 | off);
    pio_out32(PCI_CFG_DATA_PORT, v);
}

uint32_t pci_read32(const struct pci_dev *d, uint16_t off) { return cfg_read32(d->bus, d->dev, d->fn, off); }
void pci_write32(const struct pci_dev *d, uint16_t off, uint32_t v) { cfg_write32(d->bus, d->dev, d->fn, off, v); }
uint16_t pci_read16(const struct pci_dev *d, uint16_t off) { return (uint16_t)(pci_read32(d, off) >> (8 * (off & 2))); }

void pci_write16(const struct pci_dev *d, uint16_t off, uint16_t v)
{
    uint32_t w = pci_read32(d, off);
    unsigned sh = 8 * (off & 2);
    w = (w & ~(0xFFFFu << sh)) | (uint32_t)v << sh;
    pci_write32(d, off, w);
}

void pci_read_config(const struct pci_dev *d, uint8_t *buf, unsigned len)
{
    for (unsigned off = 0; off + 4 <= len; off += 4) {
        uint32_t v = pci_read32(d, (uint16_t)off);
        buf[off] = (uint8_t)v;
        buf[off + 1] = (uint8_t)(v >> 8);
        buf[off + 2] = (uint8_t)(v >> 16);
        buf[off + 3] = (uint8_t)(v >> 24);
    }
}

static void scan_bus(uint8_t bus, int depth);

static void scan_fn(uint8_t bus, uint8_t dev, uint8_t fn, int depth)
{
    uint32_t id = cfg_read32(bus, dev, fn, PCI_VENDOR_ID);
    if ((id & 0xFFFF) == PCI_VENDOR_NONE)
        return;
    uint32_t cls = cfg_read32(bus, dev, fn, PCI_CLASS_REV);
    uint8_t htype = (uint8_t)(cfg_read32(bus, dev, fn, PCI_HEADER_TYPE & ~3) >> 16) & PCI_HEADER_TYPE_MASK;
    if (n_devs < PCI_MAX_DEVICES) {
        devs[n_devs++] = (struct pci_dev){.bus = bus, .dev = dev, .fn = fn, .vendor = (uint16_t)id,
                                          .device = (uint16_t)(id >> 16), .class_code = (uint8_t)(cls >> 24),
                                          .subclass = (uint8_t)(cls >> 16)};
    }
    if (htype == PCI_HEADER_BRIDGE) {
        uint8_t secondary = (uint8_t)(cfg_read32(bus, dev, fn, PCI_SECONDARY_BUS & ~3) >> 8);
        /* Only walk forward: a bridge pointing back would loop. */
        if (secondary > bus && depth < 8)
            scan_bus(secondary, depth + 1);
    }
}

static void scan_bus(uint8_t bus, int depth)
{
    for (uint8_t dev = 0; dev < 32; dev++) {
        uint32_t id = cfg_read32(bus, dev, 0, PCI_VENDOR_ID);
        if ((id & 0xFFFF) == PCI_VENDOR_NONE)
            continue;
        uint8_t htype = (uint8_t)(cfg_read32(bus, dev, 0, PCI_HEADER_TYPE & ~3) >> 16);
        int nfn = (htype & PCI_HEADER_MULTIFUNC) ? 8 : 1;
        for (uint8_t fn = 0; fn < nfn; fn++)
            scan_fn(bus, dev, fn, depth);
    }
}

int pci_enumerate(void)
{
    n_devs = 0;
    scan_bus(ecam_base ? ecam_start : 0, 0);
    for (int i = 0; i < n_devs; i++) {
        struct pci_dev *d = &devs[i];
        kdetail("pci: %02x:%02x.%u %04x:%04x class %02x:%02x\n", d->bus, d->dev, d->fn, d->vendor, d->device,
                d->class_code, d->subclass);
    }
    return n_devs;
}

int pci_count(void) { return n_devs; }
struct pci_dev *pci_get(int i) { return i >= 0 && i < n_devs ? &devs[i] : 0; }

struct pci_dev *pci_find(uint16_t vendor, uint16_t device)
{
    for (int i = 0; i < n_devs; i++) {
        if (devs[i].vendor == vendor && devs[i].device == device)
            return &devs[i];
    }
    return 0;
}

int pci_enable(struct pci_dev *d)
{
    uint16_t cmd = pci_read16(d, PCI_COMMAND);
    /* Decoding off while the BARs are probed with all-ones. */
    pci_write16(d, PCI_COMMAND, cmd & ~(PCI_COMMAND_MEMORY | PCI_COMMAND_IO));
    for (int i = 0; i < 6; i++) {
        uint16_t off = (uint16_t)(PCI_BAR0 + 4 * i);
        uint32_t lo = pci_read32(d, off);
        if (lo & PCI_BAR_IO)
            continue;
        int is64 = (lo & PCI_BAR_MEM_TYPE) == PCI_BAR_MEM_64;
        if (is64 && i == 5)
            break;
        uint32_t hi = is64 ? pci_read32(d, off + 4) : 0;
        pci_write32(d, off, 0xFFFFFFFFu);
        if (is64)
            pci_write32(d, off + 4, 0xFFFFFFFFu);
        uint32_t lo_mask = pci_read32(d, off) & (uint32_t)PCI_BAR_MEM_MASK;
        uint32_t hi_mask = is64 ? pci_read32(d, off + 4) : 0;
        uint64_t mask = lo_mask | (is64 ? (uint64_t)hi_mask << 32 : 0xFFFFFFFF00000000ULL);
        if (lo_mask == 0 && hi_mask == 0)
            mask = 0;      /* BAR not implemented */
        pci_write32(d, off, lo);
        if (is64)
            pci_write32(d, off + 4, hi);
        uint64_t size = mask ? ~mask + 1 : 0;
        uint64_t base = (lo & PCI_BAR_MEM_MASK) | (uint64_t)hi << 32;
        if (size) {
            if (base == 0) {   /* firmware left it unassigned: place it in the window */
                uint64_t b = (win_next + size - 1) & ~(size - 1);
                if (b + size > win_end || b + size < b) {
                    kprintf("pci: %02x:%02x.%u BAR%d: no room for %lx bytes\n", d->bus, d->dev, d->fn, i, size);
                } else {
                    win_next = b + size;
                    base = b;
                    pci_write32(d, off, (uint32_t)b | (lo & 0xF));
                    if (is64)
                        pci_write32(d, off + 4, (uint32_t)(b >> 32));
                }
            }
            /* Registers get an uncached mapping here; prefetchable BARs (memory-like, e.g. the
             * virtio-pmem shared memory region) are left for the driver to map as it needs. */
            int prefetch = (lo & PCI_BAR_MEM_PREFETCH) != 0;
            if (base && (prefetch || vm_map_identity(base, size, 1) == 0)) {
                d->bar[i] = base;
                d->bar_size[i] = size;
            }
        }
        if (is64)
            i++;
    }
    pci_write16(d, PCI_COMMAND, cmd | PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER);
    return 0;
}

void pci_restore(const struct pci_dev *d)
{
    uint16_t cmd = pci_read16(d, PCI_COMMAND);
    pci_write16(d, PCI_COMMAND, cmd & ~(PCI_COMMAND_MEMORY | PCI_COMMAND_IO));
    for (int i = 0; i < 6; i++) {
        uint16_t off = (uint16_t)(PCI_BAR0 + 4 * i);
        uint32_t lo = pci_read32(d, off);   /* the type bits are read-only: they survive a reset */
        if (lo & PCI_BAR_IO)
            continue;
        int is64 = (lo & PCI_BAR_MEM_TYPE) == PCI_BAR_MEM_64;
        if (d->bar_size[i]) {
            pci_write32(d, off, (uint32_t)d->bar[i] | (lo & 0xF));
            if (is64 && i < 5)
                pci_write32(d, off + 4, (uint32_t)(d->bar[i] >> 32));
        }
        if (is64)
            i++;
    }
    pci_write16(d, PCI_COMMAND, cmd | PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER);
}
