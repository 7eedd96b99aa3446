/* agentx_out.h: one output stream of a process as both guest agents hold it (protocol
 * version 2, docs/agentx-protocol.md "Connection lifetime"): a ring of AGX_OUTPUT_BUFFER
 * bytes, offsets [base, base + len) still held, `sent` of them framed on this connection.
 * Version 2 forgets bytes when OUTPUT_ACK covers them, version 1 once framed; a new session
 * sends again from base. One copy (guest/init/proc.c and the Track B agent's proc.c), so the
 * agents cannot drift.
 *
 * Freestanding: <stddef.h>, <stdint.h> and the generated agentx_wire.h only. */
#ifndef WSLX_AGENTX_OUT_H
#define WSLX_AGENTX_OUT_H

#include <stddef.h>
#include <stdint.h>

#include "agentx_wire.h"
#include "agentx_rx.h"

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

/* The most data one STDIO frame of this session version carries when no payload may exceed
 * max_payload (the host's HELLO max_payload binds: docs "Connection lifetime"). */
size_t agx_stdio_data_max(uint8_t version, uint32_t max_payload);
/* The next contiguous unsent bytes (at most max, e.g. agx_stdio_data_max) and their offset;
 * 0 if none. Frames of at most max bytes still carry every byte, at contiguous offsets. */
size_t agx_outq_unsent(const struct agx_outq *o, const uint8_t **data, uint64_t *offset, size_t max);
/* n of them were framed in a frame of this session version. */
void agx_outq_framed(struct agx_outq *o, size_t n, uint8_t version);
/* The stream's EOF frame may go now (ended, everything framed, not yet sent). */
static inline int agx_outq_eof_due(const struct agx_outq *o)
{
    return o->ended && !o->eof_sent && o->sent == o->base + o->len;
}
/* A new session: frame again from the acknowledged offset. */
void agx_outq_rewind(struct agx_outq *o);

/* OUTPUT_ACK for a process whose streams are out[1] (stdout) and out[2] (stderr): checks the
 * flags, the offsets (at most what was ever sent) and EXIT (only after the EXIT was sent),
 * sending ERROR (request_id 0) and returning -1 if any is wrong; else forgets what is covered
 * and returns 1 when the host has the EXIT (the agent forgets the process), 0 otherwise. */
int agx_output_ack_apply(struct agx_outq out[3], int exit_sent, const struct agx_output_ack *m,
                         agx_error_fn *error);

#endif
