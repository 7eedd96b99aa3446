/* agentx_out.c: held process output (agentx_out.h). */
#include "agentx_out.h"

uint8_t *agx_outq_tail(struct agx_outq *o, size_t *room)
{
    size_t tail = (o->head + o->len) % AGX_OUTPUT_BUFFER;
    size_t n = agx_outq_room(o);
    if (n > AGX_OUTPUT_BUFFER - tail) n = AGX_OUTPUT_BUFFER - tail;
    *room = n;
    return o->buf + tail;
}

void agx_outq_commit(struct agx_outq *o, size_t n) { o->len += n; }

void agx_outq_append(struct agx_outq *o, const uint8_t *data, size_t len)
{
    while (len) {
        size_t room;
        uint8_t *t = agx_outq_tail(o, &room);
        size_t k = room < len ? room : len;
        if (!k) return;   /* full: the caller keeps to agx_outq_room */
        __builtin_memcpy(t, data, k);
        o->len += k, data += k, len -= k;
    }
}

size_t agx_outq_unsent(const struct agx_outq *o, const uint8_t **data, uint64_t *offset)
{
    size_t off = (size_t)(o->sent - o->base);
    if (off >= o->len) return 0;
    size_t pos = (o->head + off) % AGX_OUTPUT_BUFFER, n = o->len - off;
    if (n > AGX_OUTPUT_BUFFER - pos) n = AGX_OUTPUT_BUFFER - pos;
    if (n > AGX_STDIO_MAX_DATA) n = AGX_STDIO_MAX_DATA;
    *data = o->buf + pos;
    *offset = o->sent;
    return n;
}

/* Forget held bytes below offset (acknowledged, or in version 1 framed). */
static void forget_below(struct agx_outq *o, uint64_t offset)
{
    if (offset > o->base) {
        size_t k = (size_t)(offset - o->base);
        o->head = (o->head + k) % AGX_OUTPUT_BUFFER;
        o->len -= k;
        o->base = offset;
    }
    if (o->sent < o->base) o->sent = o->base;
}

void agx_outq_framed(struct agx_outq *o, size_t n, uint8_t version)
{
    o->sent += n;
    if (o->sent > o->sent_max) o->sent_max = o->sent;
    if (version < 2) forget_below(o, o->sent);   /* version 1: delivered once framed */
}

/* Frame what the stream holds unsent, then its EOF when due; 1 if anything was sent. */
static int outq_pump(struct agx_outq *o, uint32_t pid, uint8_t stream, const struct agx_proc_sink *k)
{
    const uint8_t *data;
    uint64_t off;
    size_t n;
    int sent = 0;
    while (k->events_ok() && (n = agx_outq_unsent(o, &data, &off))) {
        k->stdio(pid, stream, 0, off, data, (uint32_t)n);
        agx_outq_framed(o, n, k->version());
        sent = 1;
    }
    if (agx_outq_eof_due(o) && k->events_ok()) {
        k->stdio(pid, stream, AGX_STDIO_EOF, o->sent, NULL, 0);
        o->eof_sent = 1;
        sent = 1;
    }
    return sent;
}

int agx_proc_pump(struct agx_proc_out *x, uint32_t pid, const struct agx_proc_sink *k)
{
    int r = 0;
    for (uint8_t s = 1; s <= 2; s++)
        if (outq_pump(&x->out[s], pid, s, k)) r = AGX_PUMP_SENT;
    if (x->finished && !x->exit_sent && x->out[1].eof_sent && x->out[2].eof_sent && k->events_ok()) {
        k->exit(pid, x->how, x->code);
        x->exit_sent = x->exit_ever_sent = 1;
        r = AGX_PUMP_SENT;
        if (k->version() < 2) r |= AGX_PUMP_RELEASE;   /* version 1: delivered once framed */
    }
    return r;
}

void agx_proc_rewind(struct agx_proc_out *x)
{
    for (int s = 1; s <= 2; s++) {
        x->out[s].sent = x->out[s].base;
        x->out[s].eof_sent = 0;
    }
    x->exit_sent = 0;
}

int agx_proc_output_ack(struct agx_proc_out *x, const struct agx_output_ack *m, const struct agx_proc_sink *k)
{
    if (agx_output_ack_check(m, k->error)) return -1;
    if (!x) {
        k->error(0, AGX_MSG_OUTPUT_ACK, AGX_ESRCH, "OUTPUT_ACK for process %u, which this agent does not hold",
                 (unsigned)m->pid);
        return -1;
    }
    uint64_t ack[3] = {0, m->stdout_bytes, m->stderr_bytes};
    for (int s = 1; s <= 2; s++) {
        if (ack[s] > x->out[s].sent_max) {
            k->error(0, AGX_MSG_OUTPUT_ACK, AGX_EINVAL, "OUTPUT_ACK process %u stream %d at %lu: only %lu bytes sent",
                     (unsigned)m->pid, s, (unsigned long)ack[s], (unsigned long)x->out[s].sent_max);
            return -1;
        }
    }
    if ((m->flags & AGX_OUTPUT_ACK_EXIT) && !x->exit_ever_sent) {
        k->error(0, AGX_MSG_OUTPUT_ACK, AGX_EINVAL, "OUTPUT_ACK EXIT for process %u before its EXIT was sent",
                 (unsigned)m->pid);
        return -1;
    }
    for (int s = 1; s <= 2; s++) forget_below(&x->out[s], ack[s]);
    return (m->flags & AGX_OUTPUT_ACK_EXIT) != 0;
}
