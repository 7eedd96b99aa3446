/* agentx_out.h: what a process owes the host, as both guest agents hold it (protocol
 * version 2, docs/agentx-protocol.md "Connection lifetime"). Each output stream is a ring of
 * AGX_OUTPUT_BUFFER bytes, offsets [base, base + len) still held, `sent` of them framed on this
 * connection; then come the stream's EOF and the process's EXIT. Version 2 forgets bytes when
 * OUTPUT_ACK covers them, version 1 once framed; a new session sends again from base. One copy
 * (guest/init/proc.c and the Track B agent's proc.c), so the agents cannot drift: the frames
 * leave through the struct agx_proc_sink the caller passes, so nothing here calls up.
 *
 * Freestanding: <stddef.h>, <stdint.h> and the generated agentx_wire.h only. */
#ifndef WSLX_AGENTX_OUT_H
#define WSLX_AGENTX_OUT_H

#include <stddef.h>
#include <stdint.h>

#include "agentx_wire.h"
#include "agentx_rx.h"

/* The frames a process table sends towards the host (wslx-init's and Track B's proc.c get it from
 * their agent inside their struct proc_host): they silently drop while disconnected. */
struct agx_proc_sink {
    agx_error_fn *error;
    void (*ok)(uint32_t rid);
    void (*exec_started)(uint32_t rid, uint32_t pid);
    void (*stdio)(uint32_t pid, uint8_t stream, uint8_t flags, uint64_t offset, const uint8_t *data, uint32_t len);
    void (*exit)(uint32_t pid, uint8_t how, int32_t code);
    int (*events_ok)(void);      /* process events (STDIO, EXIT) may be framed now (session open, room) */
    uint8_t (*version)(void);    /* the session's version (1: output counts as delivered once framed) */
};

struct agx_outq {
    uint8_t *buf;              /* AGX_OUTPUT_BUFFER bytes, the agent's */
    size_t head, len;          /* held bytes at buf[head...], wrapping */
    uint64_t base, sent, sent_max;
    int ended;                 /* no more bytes will come (the pipe or program is done) */
    int eof_sent;              /* its EOF frame went out on this connection */
};

static inline size_t agx_outq_room(const struct agx_outq *o) { return AGX_OUTPUT_BUFFER - o->len; }

/* The contiguous free space at the tail (for a read into it); agx_outq_commit then counts it. */
uint8_t *agx_outq_tail(struct agx_outq *o, size_t *room);
void agx_outq_commit(struct agx_outq *o, size_t n);
/* Append len bytes (at most agx_outq_room). */
void agx_outq_append(struct agx_outq *o, const uint8_t *data, size_t len);

/* The next contiguous unsent bytes (at most AGX_STDIO_MAX_DATA) and their offset; 0 if none. */
size_t agx_outq_unsent(const struct agx_outq *o, const uint8_t **data, uint64_t *offset);
/* n of them were framed in a frame of this session version. */
void agx_outq_framed(struct agx_outq *o, size_t n, uint8_t version);
/* The stream's EOF frame may go now (ended, everything framed, not yet sent). */
static inline int agx_outq_eof_due(const struct agx_outq *o)
{
    return o->ended && !o->eof_sent && o->sent == o->base + o->len;
}

/* What a process owes the host, the same in both process tables: its two output streams, then
 * its EXIT, which goes only after both streams' EOFs. */
struct agx_proc_out {
    struct agx_outq out[3];    /* [1] stdout, [2] stderr */
    int finished;              /* the process is done: only the held output, EOFs and the EXIT remain */
    uint8_t how;               /* the EXIT: AGX_EXIT_EXITED or AGX_EXIT_SIGNALED, with code */
    int32_t code;
    int exit_sent;             /* in this session (version 2: the slot stays until OUTPUT_ACK EXIT) */
    int exit_ever_sent;
};

enum { AGX_PUMP_SENT = 1, AGX_PUMP_RELEASE = 2 };
/* Frame the held output, the EOFs, then the EXIT, while the sink takes events. Returns
 * AGX_PUMP_SENT if anything was framed, with AGX_PUMP_RELEASE when the EXIT went out in a
 * version-1 session (nothing more is owed: the caller frees the slot). */
int agx_proc_pump(struct agx_proc_out *x, uint32_t pid, const struct agx_proc_sink *k);
/* A new session: frame again from the acknowledged offsets, the EXIT too. */
void agx_proc_rewind(struct agx_proc_out *x);
/* OUTPUT_ACK for x (NULL: a process this agent does not hold): checks the flags, the offsets
 * (at most what was ever sent) and EXIT (only after the EXIT was sent), sending ERROR
 * (request_id 0) and returning -1 if any is wrong; else forgets what is covered and returns 1
 * when the host has the EXIT (the caller frees the slot), 0 otherwise. */
int agx_proc_output_ack(struct agx_proc_out *x, const struct agx_output_ack *m, const struct agx_proc_sink *k);

#endif
