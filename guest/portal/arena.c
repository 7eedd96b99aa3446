/* Arena allocator. The table of live allocations is private to the side that
 * owns the arena, so the peer cannot corrupt it; a span is valid only while
 * its allocation lives and only with that allocation's generation. */
#include "portal.h"

#define ALIGN_UP(x, a) (((x) + (a) - 1) / (a) * (a))

void portal_arena_init(struct portal_arena *a, const struct portal_end *e, int side)
{
    unsigned i = side == PORTAL_SIDE_GUEST ? 1 : 0;
    a->lo = e->info.arena_offset[i];
    a->size = e->info.arena_size[i];
    a->portal_id = e->info.portal_id;
    a->flags = i ? PORTAL_SPAN_GUEST_ARENA : 0;
    a->epoch = (uint32_t)e->info.generation;
    a->seq = 0;
    a->count = 0;
    a->reserved = 0;
}

int portal_arena_alloc(struct portal_arena *a, uint64_t length, struct portal_span *out)
{
    if (length == 0 || length > a->size) return PERR(PORTAL_ERR_INVAL);
    if (a->count == PORTAL_ARENA_MAX_ALLOCS) return PERR(PORTAL_ERR_NOSPC);
    uint64_t need = ALIGN_UP(length, PORTAL_SPAN_ALIGN);
    uint64_t at = a->lo;
    unsigned pos = 0;
    /* first fit: the gap before entry pos, then the gap at the end */
    for (; pos <= a->count; pos++) {
        uint64_t end = pos < a->count ? a->live[pos].offset : a->lo + a->size;
        if (end - at >= need) break;
        if (pos < a->count) at = a->live[pos].offset + ALIGN_UP(a->live[pos].length, PORTAL_SPAN_ALIGN);
    }
    if (pos > a->count) return PERR(PORTAL_ERR_NOSPC);
    for (unsigned i = a->count; i > pos; i--) a->live[i] = a->live[i - 1];
    if (++a->seq == 0) a->seq = 1;
    a->live[pos].offset = at;
    a->live[pos].length = length;
    a->live[pos].generation = ((uint64_t)a->epoch << 32) | a->seq;
    a->count++;
    out->portal_id = a->portal_id;
    out->flags = a->flags;
    out->offset = at;
    out->length = length;
    out->generation = a->live[pos].generation;
    return 0;
}

/* Index of the live allocation containing offset, or -1. */
static int find(const struct portal_arena *a, uint64_t offset)
{
    unsigned lo = 0, hi = a->count;
    while (lo < hi) {
        unsigned mid = lo + (hi - lo) / 2;
        if (a->live[mid].offset <= offset) lo = mid + 1;
        else hi = mid;
    }
    if (lo == 0) return -1;
    const struct portal_arena_entry *x = &a->live[lo - 1];
    return offset - x->offset < x->length ? (int)(lo - 1) : -1;
}

int portal_arena_check(const struct portal_arena *a, const struct portal_span *s)
{
    if (s->portal_id != a->portal_id) return PERR(PORTAL_ERR_XDEV);
    if (s->flags != a->flags) return PERR(PORTAL_ERR_INVAL);
    if (s->offset < a->lo || s->offset - a->lo >= a->size || s->length > a->size - (s->offset - a->lo))
        return PERR(PORTAL_ERR_FAULT);
    int i = find(a, s->offset);
    if (i < 0 || a->live[i].generation != s->generation) return PERR(PORTAL_ERR_STALE);
    const struct portal_arena_entry *x = &a->live[i];
    if (s->length > x->length - (s->offset - x->offset)) return PERR(PORTAL_ERR_FAULT);
    return 0;
}

int portal_arena_free(struct portal_arena *a, const struct portal_span *s)
{
    int rc = portal_arena_check(a, s);
    if (rc) return rc;
    int i = find(a, s->offset);
    if (a->live[i].offset != s->offset) return PERR(PORTAL_ERR_INVAL); /* free the whole allocation only */
    for (unsigned j = (unsigned)i; j + 1 < a->count; j++) a->live[j] = a->live[j + 1];
    a->count--;
    return 0;
}
