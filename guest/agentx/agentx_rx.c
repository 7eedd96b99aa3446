/* agentx_rx.c: the AgentX receive path of both guest agents (see agentx_rx.h).
 * This file is the one caller of agentx_wire.h's CRC helpers in an agent image. */
#include "agentx_rx.h"

/* ---- frame reassembly ----
 * Resynchronisation rules (the same in wslx.agentx.codec.FrameReader):
 *   - bad magic or header CRC: scan on from the next byte for the magic; one EBADMSG per episode;
 *   - payload_len > MAX_PAYLOAD: EMSGSIZE, scan on right after the header;
 *   - payload CRC mismatch: EBADMSG, and scan on right after the header, so frames inside a
 *     bogus payload (a header that lied about its length) are recovered;
 *   - intact header, bad version or flags: the error at once; its payload is dropped whole only
 *     if it arrives with a matching CRC, otherwise scanning goes on right after the header.
 * Linear time: bytes are handled through an offset and the buffer is compacted once per call,
 * and every byte is looked at by the magic scan at most once (plus one header CRC per magic). */
void agx_rx_reset(struct agx_rx *rx)
{
    rx->hunting = 0;
    rx->hunt_scanned = 0;
    rx->len = 0;
    rx->rejected = 0;
    rx->skip = 0;
    rx->skip_crc = 0;
    rx->in_garbage = 0;
}

/* Drop the first n bytes (all of them if n >= len): one memmove per agx_rx_process. */
static void rx_consume(struct agx_rx *rx, size_t n)
{
    if (n >= rx->len) {
        rx->len = 0;
        return;
    }
    if (n) __builtin_memmove(rx->buf, rx->buf + n, rx->len - n);
    rx->len -= n;
}

void agx_rx_new_peer(struct agx_rx *rx)
{
    agx_rx_reset(rx);
    agx_rx_hunt(rx);
}

void agx_rx_hunt(struct agx_rx *rx)
{
    rx->hunting = 1;
    rx->hunt_scanned = 0;
}

/* Offset of the next magic at or after `from`; without one, where a partial magic could begin
 * in the last 3 bytes, but never before `from` (bytes before it never come back). */
static size_t rx_next_magic(const struct agx_rx *rx, size_t from)
{
    const uint8_t first = (uint8_t)(AGX_MAGIC & 0xFF);
    for (size_t i = from; i + 4 <= rx->len; i++)
        if (rx->buf[i] == first && agx_get_u32(rx->buf + i) == AGX_MAGIC) return i;
    size_t tail = rx->len > 3 ? rx->len - 3 : 0;
    return tail > from ? tail : from;
}

/* Hunting (after agx_rx_new_peer): the front may be the previous peer's unfinished frame, which
 * no byte of the new peer will ever complete validly. Look past it for a complete frame with
 * good CRCs (a new peer starts at a frame boundary); its offset, or 0 if there is none yet.
 * The scan resumes where it stopped (hunt_scanned bytes after this front are done). */
static size_t rx_hunt(struct agx_rx *rx, size_t front)
{
    size_t i = front + (rx->hunt_scanned ? rx->hunt_scanned : 1);
    for (;; i++) {
        i = rx_next_magic(rx, i);
        if (i + AGX_HEADER_SIZE > rx->len) break;
        struct agx_header h;
        if (agx_header_decode(rx->buf + i, &h) == 0) {
            size_t total = AGX_HEADER_SIZE + (size_t)h.payload_len;
            if (rx->len - i < total) break;   /* this one may be it: look again when it is complete */
            if (agx_payload_verify(&h, rx->buf + i + AGX_HEADER_SIZE) == 0) return i;
        }
    }
    rx->hunt_scanned = i - front;
    return 0;
}

void agx_rx_process(struct agx_rx *rx)
{
    size_t at = 0;   /* bytes already handled: dropped once, on the way out */
    size_t front = 0;
    while (!rx->can_answer || rx->can_answer()) {
        const uint8_t *p = rx->buf + at;
        size_t have = rx->len - at;
        if (at != front) {   /* a new front: the hunt starts over from it */
            front = at;
            rx->hunt_scanned = 0;
        }
        if (rx->rejected) {
            /* the payload of a rejected frame: dropped whole only if its CRC proves that is what it is */
            if (have < rx->skip) break;
            if (agx_crc32(p, (size_t)rx->skip) == rx->skip_crc) at += (size_t)rx->skip;
            else rx->in_garbage = 1;   /* its header lied: what follows it is scanned */
            rx->rejected = 0;
            continue;
        }
        if (have < AGX_HEADER_SIZE) break;
        struct agx_header h;
        int rc = agx_header_decode(p, &h);
        if (rc == -AGX_EBADMSG) {
            at = rx_next_magic(rx, at + 1);
            if (!rx->in_garbage && !rx->hunting)   /* while hunting: the previous peer's bytes */
                rx->error(0, 0, AGX_EBADMSG, "bad magic or header CRC; resynchronising");
            rx->in_garbage = 1;
            continue;
        }
        if (rc == -AGX_EMSGSIZE) {
            /* never wait for an oversized payload: scan on right after the header */
            at = rx_next_magic(rx, at + AGX_HEADER_SIZE);
            rx->in_garbage = 0;
            rx->error(h.request_id, h.type, AGX_EMSGSIZE, "payload_len %u > %u", (unsigned)h.payload_len,
                      AGX_MAX_PAYLOAD);
            continue;
        }
        if (rc) {
            /* intact header (CRC ok) with a bad version or flags: reported now; a length up to
             * MAX_PAYLOAD is checked against the payload CRC when it has arrived, a longer one is
             * not trusted at all (a newer version must not make us swallow gigabytes) */
            rx->in_garbage = 0;
            at += AGX_HEADER_SIZE;
            if (h.payload_len > AGX_MAX_PAYLOAD) {
                at = rx_next_magic(rx, at);
            } else {
                rx->rejected = 1;
                rx->skip = h.payload_len;
                rx->skip_crc = h.payload_crc;
            }
            if (rc == -AGX_EPROTONOSUPPORT)
                rx->error(h.request_id, h.type, AGX_EPROTONOSUPPORT, "frame version %u not in %u..%u", h.version,
                          AGX_VERSION_MIN, AGX_VERSION_MAX);
            else
                rx->error(h.request_id, h.type, -rc, "unknown frame flag bits 0x%02x", h.flags);
            continue;
        }
        size_t total = AGX_HEADER_SIZE + (size_t)h.payload_len;
        if (have < total) {
            size_t next = rx->hunting ? rx_hunt(rx, at) : 0;
            if (!next) break;
            at = next;   /* the front was the previous peer's unfinished frame: dropped unreported */
            continue;
        }
        if (agx_payload_verify(&h, p + AGX_HEADER_SIZE)) {
            /* the header may have lied about its length: scan on right after it */
            const char *nm = agx_msg_type_name(h.type);
            if (!rx->hunting)
                rx->error(h.request_id, h.type, AGX_EBADMSG, "payload CRC mismatch in %s frame", nm ? nm : "unknown");
            rx->in_garbage = 1;   /* the bogus payload's own bytes are not reported again */
            at += AGX_HEADER_SIZE;
            continue;
        }
        rx->in_garbage = 0;
        rx->hunting = 0;   /* the new peer's first good frame: from here on every fault is its own */
        rx->deliver(&h, p + AGX_HEADER_SIZE);
        if (rx->len == 0) return;   /* deliver reset the receiver (connection lost): nothing left */
        at += total;
    }
    if (at != front) rx->hunt_scanned = 0;   /* it counted from a front that is gone */
    rx_consume(rx, at);
}

void agx_rx_push(struct agx_rx *rx, size_t n)
{
    rx->len += n;
    agx_rx_process(rx);
}

/* ---- requests ---- */
int agx_request_decode(const struct agx_header *h, const uint8_t *p, uint64_t caps, union agx_request *m,
                       agx_error_fn *error)
{
    uint16_t t = h->type;
    uint32_t rid = h->request_id, n = h->payload_len;
    const char *name = agx_msg_type_name(t);
    int rc;

    if (!name) {
        error(rid, t, AGX_ENOSYS, "unknown message type 0x%04x", t);
        return -1;
    }
    if (agx_msg_type_since(t) > h->version) {
        error(rid, t, AGX_ENOSYS, "%s does not exist in version-%u frames", name, (unsigned)h->version);
        return -1;
    }
    if (!agx_msg_type_host_to_agent(t)) {
        error(rid, t, AGX_EPROTO, "%s is not a host-to-agent message", name);
        return -1;
    }
    if (h->flags & AGX_FLAG_REPLY) {
        error(rid, t, AGX_EPROTO, "%s from the host carries the REPLY flag", name);
        return -1;
    }
    uint64_t need = agx_msg_type_capability(t);
    if (need && !(caps & need)) {
        error(rid, t, AGX_EOPNOTSUPP, "%s: capability not offered by this agent", name);
        return -1;
    }
    /* every host->agent message but STDIO (an event) is a request: it needs a request_id;
     * HELLO is exempt (request_id 0 asks for a fresh announcement) */
    if (rid == 0 && t != AGX_MSG_STDIO && t != AGX_MSG_OUTPUT_ACK && t != AGX_MSG_HELLO) {
        error(0, t, AGX_EPROTO, "%s request needs a non-zero request_id", name);
        return -1;
    }

    switch (t) {
    case AGX_MSG_HELLO: rc = agx_hello_decode(p, n, &m->hello); break;
    case AGX_MSG_CONFIG: rc = agx_config_decode(p, n, &m->config); break;
    case AGX_MSG_MOUNT: rc = agx_mount_decode(p, n, &m->mount); break;
    case AGX_MSG_UNMOUNT: rc = agx_unmount_decode(p, n, &m->unmount); break;
    case AGX_MSG_EXEC: rc = agx_exec_decode(p, n, &m->exec); break;
    case AGX_MSG_STDIO: rc = agx_stdio_decode_version(h->version, p, n, &m->stdio); break;
    case AGX_MSG_OUTPUT_ACK: rc = agx_output_ack_decode(p, n, &m->output_ack); break;
    case AGX_MSG_SIGNAL: rc = agx_signal_decode(p, n, &m->signal); break;
    case AGX_MSG_QUIESCE: rc = agx_quiesce_decode(p, n, &m->quiesce); break;
    case AGX_MSG_RESUME: rc = agx_resume_decode(p, n, &m->resume); break;
    case AGX_MSG_SHUTDOWN: rc = agx_shutdown_decode(p, n, &m->shutdown); break;
    case AGX_MSG_PING: rc = agx_ping_decode(p, n, &m->ping); break;
    default: rc = -AGX_ENOSYS; break;   /* a host-to-agent type added to the spec but not here */
    }
    if (rc) {
        error(rid, t, -rc, "malformed %s payload (%u bytes)", name, (unsigned)n);
        return -1;
    }
    if (t == AGX_MSG_EXEC) return agx_exec_check(rid, &m->exec, error);
    if (t == AGX_MSG_CONFIG) return agx_config_check(rid, &m->config, error);
    return 0;
}

int agx_exec_check(uint32_t rid, const struct agx_exec *m, agx_error_fn *error)
{
    const uint32_t known = AGX_EXEC_STDIN_PIPE | AGX_EXEC_STDERR_TO_STDOUT;
    if (m->flags & ~known) {
        error(rid, AGX_MSG_EXEC, AGX_EINVAL, "unknown EXEC flag bits 0x%x", (unsigned)(m->flags & ~known));
        return -1;
    }
    if (m->argv_count == 0) {
        error(rid, AGX_MSG_EXEC, AGX_EINVAL, "argv is empty");
        return -1;
    }
    if (m->argv[0].len == 0) {   /* what execve("") says */
        error(rid, AGX_MSG_EXEC, AGX_ENOENT, "argv[0] is empty");
        return -1;
    }
    return 0;
}

int agx_config_check(uint32_t rid, const struct agx_config *m, agx_error_fn *error)
{
    if (!m->portal_size != !m->portal_device.len) {
        error(rid, AGX_MSG_CONFIG, AGX_EINVAL, "portal_size (%llu) and portal_device (%u bytes) go together",
              (unsigned long long)m->portal_size, (unsigned)m->portal_device.len);
        return -1;
    }
    if (m->portal_size % AGX_PORTAL_SIZE_ALIGN || m->portal_size > AGX_PORTAL_SIZE_LIMIT) {
        error(rid, AGX_MSG_CONFIG, AGX_EINVAL, "portal_size %llu: not a multiple of %u or above %llu",
              (unsigned long long)m->portal_size, AGX_PORTAL_SIZE_ALIGN, (unsigned long long)AGX_PORTAL_SIZE_LIMIT);
        return -1;
    }
    if (m->portal_device.len && m->portal_device.ptr[0] != '/') {
        error(rid, AGX_MSG_CONFIG, AGX_EINVAL, "portal_device must be an absolute path");
        return -1;
    }
    return 0;
}

int agx_hello_select(uint32_t rid, const struct agx_hello *m, uint16_t *selected, uint32_t *max_payload,
                     agx_error_fn *error)
{
    if (m->max_payload < AGX_MAX_PAYLOAD_MIN) {   /* a field value first (docs: order of checks) */
        error(rid, AGX_MSG_HELLO, AGX_EINVAL, "max_payload %u below the minimum %u", (unsigned)m->max_payload,
              AGX_MAX_PAYLOAD_MIN);
        return -1;
    }
    uint16_t lo = m->version_min > AGX_VERSION_MIN ? m->version_min : AGX_VERSION_MIN;
    uint16_t hi = m->version_max < AGX_VERSION_MAX ? m->version_max : AGX_VERSION_MAX;
    if (lo > hi) {
        error(rid, AGX_MSG_HELLO, AGX_EPROTONOSUPPORT, "no common version: host %u..%u, agent %u..%u",
              m->version_min, m->version_max, AGX_VERSION_MIN, AGX_VERSION_MAX);
        return -1;
    }
    *selected = rid ? hi : 0;   /* request_id 0 asks for a fresh announcement */
    *max_payload = m->max_payload < AGX_MAX_PAYLOAD ? m->max_payload : AGX_MAX_PAYLOAD;
    return 0;
}

int agx_ping_check(uint32_t rid, const struct agx_ping *m, uint32_t max_payload, agx_error_fn *error)
{
    uint64_t need = AGX_PONG_MIN_SIZE + (uint64_t)m->data.len;
    if (need > max_payload) {
        error(rid, AGX_MSG_PING, AGX_EMSGSIZE, "PONG of %lu bytes would exceed the host's max_payload %u",
              (unsigned long)need, (unsigned)max_payload);
        return -1;
    }
    return 0;
}

int agx_shutdown_check(uint32_t rid, const struct agx_shutdown *m, agx_error_fn *error)
{
    if (m->mode != AGX_SHUTDOWN_POWEROFF && m->mode != AGX_SHUTDOWN_REBOOT) {
        error(rid, AGX_MSG_SHUTDOWN, AGX_EINVAL, "unknown shutdown mode %u", (unsigned)m->mode);
        return -1;
    }
    if (m->grace_ms > AGX_SHUTDOWN_GRACE_MAX_MS) {
        error(rid, AGX_MSG_SHUTDOWN, AGX_EINVAL, "grace_ms %u > %u", (unsigned)m->grace_ms,
              AGX_SHUTDOWN_GRACE_MAX_MS);
        return -1;
    }
    return 0;
}

int agx_signal_check(uint32_t rid, const struct agx_signal *m, agx_error_fn *error)
{
    if (m->signo < 1 || m->signo > AGX_SIGNAL_MAX) {
        error(rid, AGX_MSG_SIGNAL, AGX_EINVAL, "invalid signal %u", (unsigned)m->signo);
        return -1;
    }
    return 0;
}

int agx_output_ack_check(const struct agx_output_ack *m, agx_error_fn *error)
{
    if (m->flags & ~(uint32_t)AGX_OUTPUT_ACK_EXIT) {
        error(0, AGX_MSG_OUTPUT_ACK, AGX_EINVAL, "unknown OUTPUT_ACK flag bits 0x%x", (unsigned)m->flags);
        return -1;
    }
    return 0;
}

int agx_stdin_check(const struct agx_stdio *m, agx_error_fn *error)
{
    if (m->stream != AGX_STREAM_STDIN) {
        error(0, AGX_MSG_STDIO, AGX_EINVAL, "STDIO to the agent must be stream STDIN, not %u", m->stream);
        return -1;
    }
    if (m->flags & ~(uint32_t)AGX_STDIO_EOF) {
        error(0, AGX_MSG_STDIO, AGX_EINVAL, "unknown STDIO flag bits 0x%02x", m->flags);
        return -1;
    }
    return 0;
}

struct agx_str agx_error_text(char *msg, size_t n)
{
    /* a cut may have split the last sequence: drop its lead and continuation bytes */
    size_t k = n;
    while (k && n - k < 3 && ((uint8_t)msg[k - 1] & 0xC0) == 0x80) k--;
    if (k && ((uint8_t)msg[k - 1] & 0xC0) == 0xC0) {
        uint8_t lead = (uint8_t)msg[k - 1];
        size_t need = lead >= 0xF0 ? 4 : lead >= 0xE0 ? 3 : 2;
        if (n - (k - 1) < need) n = k - 1;
    }
    msg[n] = 0;
    if (!agx_utf8_valid((const uint8_t *)msg, n)) return agx_str_from_c("(message not UTF-8)");
    return agx_str_from_c(msg);
}

/* ---- frame helpers out of line ---- */
uint32_t agentx_crc32(const uint8_t *p, size_t n) { return agx_crc32(p, n); }

size_t agentx_frame_seal(uint8_t *frame, uint8_t version, uint16_t type, uint8_t flags, uint32_t rid,
                         uint32_t payload_len)
{
    return agx_frame_seal_version(frame, version, type, flags, rid, payload_len);
}

int agentx_header_decode(const uint8_t *p, struct agx_header *h) { return agx_header_decode(p, h); }

int agentx_payload_verify(const struct agx_header *h, const uint8_t *payload)
{
    return agx_payload_verify(h, payload);
}
