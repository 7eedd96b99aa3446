/* The guest's Portal service: SUBMIT -> COMPLETE, payloads in arena spans,
 * processed in place (no copies). Runs as a Linux process (guest/init
 * portal_linux.c) or inside the Track B kernel; both call the step function
 * from their own loop with their own backoff. */
#include "portal.h"

#define BATCH 64u /* 4 KiB of stack: small enough for a kernel thread */

static struct portal_guest_status *status(struct portal_guest *g)
{
    return (struct portal_guest_status *)(g->end.base + PORTAL_GUEST_STATUS_OFFSET);
}

int portal_guest_init(struct portal_guest *g, void *base, uint64_t size)
{
    g->served = 0;
    g->heartbeat = 0;
    g->error = portal_attach(&g->end, base, size, PORTAL_SIDE_GUEST);
    if (g->error) return g->error;
    volatile struct portal_guest_status *st = status(g);
    st->error = 0;
    st->served = 0;
    st->generation = g->end.info.generation;
    __atomic_store_n(&status(g)->state, PORTAL_GUEST_SERVING, __ATOMIC_RELEASE);
    return 0;
}

static int fail(struct portal_guest *g, int err)
{
    volatile struct portal_guest_status *st = status(g);
    g->error = err;
    st->error = (uint32_t)-err;
    __atomic_store_n(&status(g)->state, PORTAL_GUEST_FAILED, __ATOMIC_RELEASE);
    return err;
}

/* Turn a request (already copied out of the ring) into its completion. */
static void handle(struct portal_guest *g, struct portal_msg *m)
{
    void *p = 0;
    int rc = 0;
    m->result = 0;
    if (m->reserved0[0] || m->reserved0[1] || m->status) {
        rc = PERR(PORTAL_ERR_INVAL);
    } else if (m->op == PORTAL_OP_NOP) {
        /* nothing */
    } else if (m->op > PORTAL_OP_TRANSFORM) {
        rc = PERR(PORTAL_ERR_NOSYS);
    } else if (m->span.length && (rc = portal_span_check(&g->end, &m->span, &p)) == 0) {
        if (m->op == PORTAL_OP_CHECKSUM) m->result = portal_sum64(p, m->span.length);
        else if (m->op == PORTAL_OP_TRANSFORM) portal_xor64(p, m->span.length, m->arg);
    }
    if (!rc && m->op == PORTAL_OP_ECHO) m->result = m->arg;
    m->status = (uint32_t)-rc;
}

int portal_service_step(struct portal_guest *g, unsigned budget)
{
    struct portal_msg batch[BATCH];
    unsigned done = 0;
    int rc;

    if (g->error) return g->error;
    if ((rc = portal_check(&g->end))) return fail(g, rc);
    __atomic_store_n(&status(g)->heartbeat, ++g->heartbeat, __ATOMIC_RELAXED);
    while (done < budget) {
        int64_t room = portal_space(&g->end, PORTAL_RING_COMPLETE);
        if (room < 0) return fail(g, (int)room);
        if (room == 0) break; /* the host has not drained COMPLETE: leave SUBMIT alone */
        unsigned want = budget - done;
        if (want > BATCH) want = BATCH;
        if (want > room) want = (unsigned)room;
        int n = portal_recv(&g->end, PORTAL_RING_SUBMIT, batch, want);
        if (n < 0) return fail(g, n);
        if (n == 0) break;
        for (int i = 0; i < n; i++) handle(g, &batch[i]);
        int sent = portal_send(&g->end, PORTAL_RING_COMPLETE, batch, (unsigned)n);
        if (sent != n) return fail(g, sent < 0 ? sent : PERR(PORTAL_ERR_PROTO));
        done += (unsigned)n;
    }
    if (done) {
        g->served += done;
        __atomic_store_n(&status(g)->served, g->served, __ATOMIC_RELEASE);
    }
    return (int)done;
}

int portal_guest_host_wants_wakeup(struct portal_guest *g)
{
    return portal_peer_wants_wakeup(&g->end, PORTAL_RING_COMPLETE);
}
