/* virtio_pmem_cfg.c: virtio-pmem device configuration (VIRTIO 1.2, 5.19.4). */
#include "parse/parse.h"
#include "virtio.h"

int virtio_pmem_parse_config(const uint8_t *b, size_t len, uint64_t *start, uint64_t *size)
{
    if (len < VIRTIO_PMEM_CONFIG_SIZE)
        return ERR_TRUNC;
    uint64_t s = ld64(b + VIRTIO_PMEM_CONFIG_OFF_START), n = ld64(b + VIRTIO_PMEM_CONFIG_OFF_SIZE);
    if (s == 0 && n == 0)
        return ERR_NOENT;
    if (n == 0 || s + n < s || (s & 0xFFF) || (n & 0xFFF))
        return ERR_RANGE;
    *start = s;
    *size = n;
    return 0;
}
