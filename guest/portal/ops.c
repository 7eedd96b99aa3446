/* The service's operations on raw bytes. Words are read unaligned and
 * little-endian (x86 and the host are both little-endian). */
#include "portal.h"

typedef uint64_t __attribute__((aligned(1), may_alias)) u64u;

uint64_t portal_sum64(const void *p, uint64_t len)
{
    const unsigned char *b = (const unsigned char *)p;
    uint64_t a = 0, s = 0, i = 0;
    for (; i + 8 <= len; i += 8) {
        a += *(const u64u *)(b + i);
        s += a;
    }
    if (i < len) {
        uint64_t w = 0;
        for (unsigned k = 0; i + k < len; k++) w |= (uint64_t)b[i + k] << (8 * k);
        a += w;
        s += a;
    }
    return a ^ ((s << 32) | (s >> 32));
}

void portal_xor64(void *p, uint64_t len, uint64_t key)
{
    unsigned char *b = (unsigned char *)p;
    uint64_t i = 0;
    for (; i + 8 <= len; i += 8) *(u64u *)(b + i) ^= key;
    for (unsigned k = 0; i < len; i++, k++) b[i] ^= (unsigned char)(key >> (8 * k));
}
