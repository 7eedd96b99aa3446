/* pci_caps.c: walk the capability list of a PCI config space snapshot.
 * PCI Local Bus 3.0, 6.7: status bit 4 = list present, pointer at 0x34, each
 * capability is (id, next); pointers are dword aligned and >= 0x40. */
#include "parse/parse.h"

#define PCI_STATUS 0x06
#define PCI_STATUS_CAP_LIST 0x10
#define PCI_CAP_PTR 0x34
#define PCI_CAP_MIN 0x40

int pci_cap_list(const uint8_t *cfg, size_t len, uint8_t *offsets, size_t cap)
{
    uint8_t seen[PCI_CFG_SPACE_SIZE / 4 / 8] = {0};
    size_t n = 0;
    if (len < PCI_CAP_MIN)
        return ERR_TRUNC;
    if (!(ld16(cfg + PCI_STATUS) & PCI_STATUS_CAP_LIST))
        return 0;
    uint8_t p = cfg[PCI_CAP_PTR] & 0xFC;
    while (p) {
        if (p < PCI_CAP_MIN || (size_t)p + 2 > len)
            return ERR_RANGE;
        if (seen[p / 32] & (1u << (p / 4 % 8)))
            return ERR_LOOP;
        seen[p / 32] |= (uint8_t)(1u << (p / 4 % 8));
        if (n >= cap)
            return ERR_RANGE;
        offsets[n++] = p;
        p = cfg[p + 1] & 0xFC;
    }
    return (int)n;
}
