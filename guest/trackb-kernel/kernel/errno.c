/* errno.c: names of the kernel's errors (kernel/errno.h) for diagnostics. The
 * switch names every ERR_*, so two errors with one number do not compile. */
#include "kernel/errno.h"

const char *err_str(int err)
{
    switch (err) {
    case ERR_NOENT: return "not found";
    case ERR_IO: return "I/O error";
    case ERR_NOMEM: return "out of memory";
    case ERR_NODEV: return "no usable device";
    case ERR_RANGE: return "value out of range";
    case ERR_LOOP: return "capability loop";
    case ERR_TRUNC: return "truncated";
    case ERR_CHECKSUM: return "bad checksum";
    case ERR_MAGIC: return "bad signature";
    case ERR_VERSION: return "unsupported version";
    case ERR_NOTSUP: return "not supported";
    case ERR_TIMEDOUT: return "timed out";
    default: return err >= 0 ? "ok" : "unknown error";
    }
}
