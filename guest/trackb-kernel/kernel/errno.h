/* errno.h: the one error set of the Track B kernel: parsers, drivers and the
 * kernel return 0 (or a count) on success and one of these on failure, so a
 * number means the same thing wherever it comes from. The values are Linux's
 * negated errno numbers (include/uapi/asm-generic/errno-base.h, errno.h): the
 * agent hands them on as the negative errno agent/agent_env.h promises. Where
 * Linux has no exact name (a parser's truncated input, bad magic, checksum or
 * version) the nearest Linux number stands in; err_str() names each. */
#ifndef TRACKB_ERRNO_H
#define TRACKB_ERRNO_H

enum {
    ERR_NOENT = -2,       /* ENOENT: well formed, but the thing asked for is absent */
    ERR_IO = -5,          /* EIO: the device misbehaved or said no */
    ERR_NOMEM = -12,      /* ENOMEM: out of pages or page-table memory */
    ERR_NODEV = -19,      /* ENODEV: no usable device */
    ERR_RANGE = -34,      /* ERANGE: a count, address or length is out of range */
    ERR_LOOP = -40,       /* ELOOP: a PCI capability list revisits an entry */
    ERR_TRUNC = -61,      /* ENODATA: input shorter than the structure says */
    ERR_CHECKSUM = -74,   /* EBADMSG: checksum mismatch */
    ERR_MAGIC = -84,      /* EILSEQ: wrong signature or magic */
    ERR_VERSION = -93,    /* EPROTONOSUPPORT: unsupported structure or device version */
    ERR_NOTSUP = -95,     /* EOPNOTSUPP: the device lacks a feature the driver needs */
    ERR_TIMEDOUT = -110,  /* ETIMEDOUT */
};

/* A short name of err for diagnostics ("ok" for 0 and other non-negative values). */
const char *err_str(int err);

#endif
