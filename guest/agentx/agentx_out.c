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

size_t agx_stdio_data_max(uint8_t version, uint32_t max_payload)
{
    size_t fixed = version < 2 ? AGX_STDIO_V1_MIN_SIZE : AGX_STDIO_MIN_SIZE;
    if (max_payload > AGX_MAX_PAYLOAD) max_payload = AGX_MAX_PAYLOAD;
    if (max_payload < AGX_MAX_PAYLOAD_MIN) max_payload = AGX_MAX_PAYLOAD_MIN;   /* HELLO refused less */
    size_t n = max_payload - fixed;
    return n < AGX_STDIO_MAX_DATA ? n : AGX_STDIO_MAX_DATA;
}

size_t agx_outq_unsent(const struct agx_outq *o, const uint8_t **data, uint64_t *offset, size_t max)
{
    size_t off = (size_t)(o->sent - o->base);
    if (off >= o->len) return 0;
    size_t pos = (o->head + off) % AGX_OUTPUT_BUFFER, n = o->len - off;
    if (n > AGX_OUTPUT_BUFFER - pos) n = AGX_OUTPUT_BUFFER - pos;
    if (n > max) n = max;
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

void agx_outq_rewind(struct agx_outq *o)
{
    o->sent = o->base;
    o->eof_sent = 0;
}

int agx_output_ack_apply(struct agx_outq out[3], int exit_sent, const struct agx_output_ack *m,
                         agx_error_fn *error)
{
    if (agx_output_ack_check(m, error)) return -1;
    uint64_t ack[3] = {0, m->stdout_bytes, m->stderr_bytes};
    for (int s = 1; s <= 2; s++) {
        if (ack[s] > out[s].sent_max) {
            error(0, AGX_MSG_OUTPUT_ACK, AGX_EINVAL, "OUTPUT_ACK process %u stream %d at %lu: only %lu bytes sent",
                  (unsigned)m->pid, s, (unsigned long)ack[s], (unsigned long)out[s].sent_max);
            return -1;
        }
    }
    if ((m->flags & AGX_OUTPUT_ACK_EXIT) && !exit_sent) {
        error(0, AGX_MSG_OUTPUT_ACK, AGX_EINVAL, "OUTPUT_ACK EXIT for process %u before its EXIT was sent",
              (unsigned)m->pid);
        return -1;
    }
    for (int s = 1; s <= 2; s++) forget_below(&out[s], ack[s]);
    return (m->flags & AGX_OUTPUT_ACK_EXIT) != 0;
}
