/* Portal core: rings, spans, arena and the request service over the shared
 * region described by the generated portal_layout.h.
 *
 * Freestanding (only <stddef.h>, <stdint.h> and GCC __atomic builtins): the
 * Linux init, the Track B kernel and the host's native library
 * (build/portal/libportal_host.so) compile these files unchanged.
 *
 * Everything in the region is written by a peer we do not trust. attach()
 * copies and validates the header once; afterwards ring offsets and sizes come
 * only from that private copy, indices are validated on every load, messages
 * are copied out of their slot before any field is read, and spans are
 * bounds-checked against the private arena bounds. Errors are negative
 * PORTAL_ERR_* values. */
#ifndef WSLX_PORTAL_H
#define WSLX_PORTAL_H

#include <stddef.h>
#include <stdint.h>

#include "portal_layout.h"

/* A negative error return: the PORTAL_ERR_* values are unsigned. */
#define PERR(e) (-(int)(e))

/* Private, validated copy of the header. */
struct portal_info {
    uint64_t window_size;
    uint64_t generation;
    uint32_t portal_id;
    uint32_t version;
    uint64_t arena_offset[2]; /* [0] host arena, [1] guest arena */
    uint64_t arena_size[2];
    struct portal_ring_desc rings[PORTAL_RING_COUNT];
};

/* One side's view of one ring. */
struct portal_ring {
    struct portal_ring_ctl *ctl; /* shared */
    unsigned char *slots;        /* shared */
    uint32_t mask;               /* slot_count - 1 */
    uint32_t mine;               /* our index (head if we produce, tail if we consume): the truth */
    uint32_t peer;               /* last validated value of the peer's index */
    int producer;
};

/* One side's view of the region. */
struct portal_end {
    unsigned char *base; /* window start (the header) */
    uint64_t size;       /* bytes mapped from base */
    int side;
    struct portal_info info;
    struct portal_ring ring[PORTAL_RING_COUNT];
};

/* ---- layout.c ---- */
/* Validate the header at base (size bytes mapped) and attach as side. */
int portal_attach(struct portal_end *e, void *base, uint64_t size, int side);
/* The same with a header from private memory (the host's own, never read back from the region,
 * where the guest could have changed it between the host's write and its attach). */
int portal_attach_header(struct portal_end *e, void *base, uint64_t size, int side, const struct portal_header *h);
/* 0 while magic, version, generation and portal_id still match the attached copy. */
int portal_check(const struct portal_end *e);
/* A span the peer handed us: portal_id, flags, generation epoch, and bounds inside its arena.
 * On success *ptr (if ptr) points at its first byte. */
int portal_span_check(const struct portal_end *e, const struct portal_span *s, void **ptr);

/* ---- ring.c ---- */
/* Publish up to n messages; returns how many (0: full) or PERR(PORTAL_ERR_PROTO) / PERR(PORTAL_ERR_INVAL). */
int portal_send(struct portal_end *e, unsigned ring, const struct portal_msg *m, unsigned n);
/* Take up to max messages; returns how many (0: empty) or a negative error. Re-checks the header
 * (PERR(PORTAL_ERR_HEADER), nothing taken) on every call. */
int portal_recv(struct portal_end *e, unsigned ring, struct portal_msg *out, unsigned max);
/* Free slots for the producer (>= 0) or a negative error. */
int64_t portal_space(struct portal_end *e, unsigned ring);
/* Messages waiting for the consumer (>= 0) or a negative error. */
int64_t portal_pending(struct portal_end *e, unsigned ring);
/* Consumer: ask for (on=1) or stop asking for the doorbell; a full fence follows. */
void portal_want_wakeup(struct portal_end *e, unsigned ring, int on);
/* Producer, after publishing: does the consumer sleep and want the doorbell? */
int portal_peer_wants_wakeup(struct portal_end *e, unsigned ring);

/* ---- arena.c: an allocator whose bookkeeping stays private to its owner ---- */
struct portal_arena_entry {
    uint64_t offset, length, generation;
};
struct portal_arena {
    uint64_t lo, size; /* window offsets of the arena */
    uint32_t portal_id, flags;
    uint32_t epoch;    /* low 32 bits of the region generation */
    uint32_t seq;      /* last allocation sequence */
    uint32_t count;
    uint32_t reserved;
    struct portal_arena_entry live[PORTAL_ARENA_MAX_ALLOCS]; /* sorted by offset */
};
/* The arena of side (PORTAL_SIDE_HOST / _GUEST, generated from the spec's Side) of an attached region. */
void portal_arena_init(struct portal_arena *a, const struct portal_end *e, int side);
int portal_arena_alloc(struct portal_arena *a, uint64_t length, struct portal_span *out);
int portal_arena_free(struct portal_arena *a, const struct portal_span *s);
/* s lies inside one live allocation and carries its generation. */
int portal_arena_check(const struct portal_arena *a, const struct portal_span *s);

/* ---- service.c: the guest's request server ---- */
struct portal_guest {
    struct portal_end end;
    uint64_t served;
    uint64_t heartbeat;
    int error; /* last fatal error (negative), 0 while serving */
};
/* Attach the guest to a region; base = window start, size = bytes mapped. */
int portal_guest_init(struct portal_guest *g, void *base, uint64_t size);
/* Serve at most budget requests from SUBMIT into COMPLETE. Never blocks.
 * Returns requests served (0: nothing to do or COMPLETE full) or a negative
 * error that detached the guest (ring corrupt, header changed): re-init then. */
int portal_service_step(struct portal_guest *g, unsigned budget);
/* After a step that served requests: does the host sleep on COMPLETE and want the doorbell? */
int portal_guest_host_wants_wakeup(struct portal_guest *g);

/* ---- ops.c: the operations, on raw bytes (the host tests use them too) ---- */
uint64_t portal_sum64(const void *p, uint64_t len);
void portal_xor64(void *p, uint64_t len, uint64_t key);

#endif
