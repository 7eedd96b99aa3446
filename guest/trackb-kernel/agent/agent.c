/* agent.c: the Track B AgentX agent's single polling loop: incremental frame
 * reader (resynchronising exactly like guest/init/agent.c and
 * wslx.agentx.codec.FrameReader), request dispatch, and the replies.
 *
 * There are no threads and no interrupts here: each loop iteration reads what
 * the control channel has, answers every complete frame, then steps the
 * built-in programs (proc.c) a bounded amount. Frames towards the host are
 * written synchronously through env_chan_write (a UART has no queue worth
 * having), so a reply is on the wire before the next request is looked at. */
#include "agent_int.h"

#define RX_CAP (AGX_MAX_FRAME + 4096u)

static uint8_t rx[RX_CAP];
static size_t rx_len;
static uint64_t rx_skip;   /* bytes of a rejected (version/flags) frame still to discard */
static int in_garbage;     /* inside a bad-magic/CRC episode: report it only once */

static uint8_t tx[AGX_MAX_FRAME];

/* state set by requests */
static int quiesced;
static char cfg_hostname[AGX_CONFIG_HOSTNAME_MAX_LEN + 1] = "wslx-trackb";
static char cfg_env_buf[32768];
static const char *cfg_env[AGX_CONFIG_ENV_MAX_COUNT];
static size_t cfg_env_n;
static int portal_configured;

static const struct agent_portal_ops *portal_ops;

void agent_register_portal(const struct agent_portal_ops *ops) { portal_ops = ops; }
const struct agent_portal_ops *agent_portal(void) { return portal_ops; }

const char *agent_hostname(void) { return cfg_hostname; }

size_t agent_default_env(const char *const **out)
{
    *out = cfg_env;
    return cfg_env_n;
}

uint32_t agent_crc32(const uint8_t *p, size_t n) { return agx_crc32(p, n); }
size_t agent_frame_seal(uint8_t *frame, uint16_t type, uint8_t flags, uint32_t rid, uint32_t payload_len)
{
    return agx_frame_seal(frame, type, flags, rid, payload_len);
}
int agent_header_decode(const uint8_t *p, struct agx_header *h) { return agx_header_decode(p, h); }
int agent_payload_verify(const struct agx_header *h, const uint8_t *payload) { return agx_payload_verify(h, payload); }

/* ---- frames towards the host ---- */
#define PAYLOAD (tx + AGX_HEADER_SIZE)

static void frame_send(uint16_t type, uint8_t flags, uint32_t rid, long plen)
{
    if (plen < 0) {
        ag_log("cannot encode %s frame (%ld)", agx_msg_type_name(type), plen);
        return;
    }
    size_t n = agx_frame_seal(tx, type, flags, rid, (uint32_t)plen);
    if (env_chan_write(tx, n, WRITE_TIMEOUT_MS) < 0) ag_log("%s frame of %u bytes not sent", agx_msg_type_name(type), (unsigned)n);
}

static void send_error_v(uint32_t rid, uint16_t rtype, int code, const char *fmt, __builtin_va_list ap)
{
    char msg[AGX_ERROR_MESSAGE_MAX_LEN + 1];
    size_t n = ag_vfmt(msg, sizeof msg, fmt, ap);
    /* never cut a UTF-8 sequence in half: the host decodes strictly */
    while (n && (msg[n - 1] & 0x80)) {
        size_t k = n;
        while (k && (msg[k - 1] & 0xC0) == 0x80) k--;
        if (!k) { n = 0; break; }
        uint8_t lead = (uint8_t)msg[k - 1];
        size_t need = lead >= 0xF0 ? 4 : lead >= 0xE0 ? 3 : lead >= 0xC0 ? 2 : 1;
        if (n - (k - 1) == need) break;
        n = k - 1;
    }
    msg[n] = 0;
    struct agx_error e = {.code = code, .request_type = rtype, .message = agx_str_from_c(msg)};
    if (!agx_utf8_valid((const uint8_t *)msg, n)) e.message = agx_str_from_c("(message not UTF-8)");
    frame_send(AGX_MSG_ERROR, rid ? AGX_FLAG_REPLY : 0, rid, agx_error_encode(PAYLOAD, AGX_MAX_PAYLOAD, &e));
}

void send_error(uint32_t rid, uint16_t rtype, int code, const char *fmt, ...)
{
    __builtin_va_list ap;
    __builtin_va_start(ap, fmt);
    send_error_v(rid, rtype, code, fmt, ap);
    __builtin_va_end(ap);
}

void send_ok(uint32_t rid)
{
    struct agx_ok m = {0};
    frame_send(AGX_MSG_OK, AGX_FLAG_REPLY, rid, agx_ok_encode(PAYLOAD, AGX_MAX_PAYLOAD, &m));
}

void send_stdio(uint32_t pid, uint8_t stream, uint8_t flags, const uint8_t *data, uint32_t len)
{
    struct agx_stdio m = {.pid = pid, .stream = stream, .flags = flags, .data = {.ptr = data, .len = len}};
    frame_send(AGX_MSG_STDIO, 0, 0, agx_stdio_encode(PAYLOAD, AGX_MAX_PAYLOAD, &m));
}

void send_exit(uint32_t pid, uint8_t how, int32_t code)
{
    struct agx_exit m = {.pid = pid, .how = how, .code = code};
    frame_send(AGX_MSG_EXIT, 0, 0, agx_exit_encode(PAYLOAD, AGX_MAX_PAYLOAD, &m));
}

void send_exec_started(uint32_t rid, uint32_t pid)
{
    struct agx_exec_started m = {.pid = pid};
    frame_send(AGX_MSG_EXEC_STARTED, AGX_FLAG_REPLY, rid, agx_exec_started_encode(PAYLOAD, AGX_MAX_PAYLOAD, &m));
}

static uint64_t capabilities(void)
{
    /* SYSTEM: the agent is the whole OS here, so CONFIG hostname changes the system's name.
     * No MOUNT (no filesystems), no STDIN (built-ins do not read stdin). */
    uint64_t c = AGX_CAP_EXEC | AGX_CAP_SIGNAL | AGX_CAP_QUIESCE | AGX_CAP_SHUTDOWN | AGX_CAP_CONFIG |
                 AGX_CAP_PING | AGX_CAP_SYSTEM;
    if (env_pmem_base() && env_pmem_size()) c |= AGX_CAP_PORTAL;
    return c;
}

static void send_hello(uint32_t rid, uint16_t selected)
{
    const char *rel = env_uname();
    struct agx_hello h = {
        .version_min = AGX_VERSION_MIN,
        .version_max = AGX_VERSION_MAX,
        .version_selected = selected,
        .agent_kind = AGX_AGENT_TRACKB,
        .capabilities = capabilities(),
        .max_payload = AGX_MAX_PAYLOAD,
        .uptime_ms = (uint32_t)(env_now_ns() / 1000000ull),
        .name = agx_str_from_c(AGENT_NAME),
        .os_release = agx_str_from_c(rel ? rel : "unknown"),
    };
    if (h.os_release.len > AGX_HELLO_OS_RELEASE_MAX_LEN) h.os_release.len = AGX_HELLO_OS_RELEASE_MAX_LEN;
    frame_send(AGX_MSG_HELLO, rid ? AGX_FLAG_REPLY : 0, rid, agx_hello_encode(PAYLOAD, AGX_MAX_PAYLOAD, &h));
}

/* ---- requests ---- */
static void config_apply(uint32_t rid, const struct agx_config *m)
{
    /* default environment for EXEC: replaces the previous one */
    size_t off = 0, n = 0;
    for (size_t i = 0; i < m->env_count; i++) {
        if (off + m->env[i].len + 1u > sizeof cfg_env_buf) {
            cfg_env_n = 0;
            send_error(rid, AGX_MSG_CONFIG, AGX_E2BIG, "CONFIG env larger than %u bytes", (unsigned)sizeof cfg_env_buf);
            return;
        }
        ag_memcpy(cfg_env_buf + off, m->env[i].ptr, m->env[i].len);
        cfg_env_buf[off + m->env[i].len] = 0;
        cfg_env[n++] = cfg_env_buf + off;
        off += m->env[i].len + 1u;
    }
    cfg_env_n = n;
    if (m->hostname.len) {
        ag_memcpy(cfg_hostname, m->hostname.ptr, m->hostname.len);
        cfg_hostname[m->hostname.len] = 0;
    }
    /* one pmem device: the Portal is usable when it exists and is big enough */
    portal_configured = m->portal_size && m->portal_size <= env_pmem_size();
    if (m->portal_size && !portal_configured)
        ag_log("portal of %lu bytes asked for, pmem has %lu", (unsigned long)m->portal_size,
               (unsigned long)env_pmem_size());
    send_ok(rid);
}

static void quiesce(uint32_t rid, const struct agx_quiesce *m)
{
    uint64_t t0 = env_now_ns();
    uint32_t flushed = 0;
    quiesced = 1;
    if (env_pmem_base()) {
        int rc = env_pmem_flush(m->timeout_ms ? m->timeout_ms : 5000);
        if (rc < 0) {
            send_error(rid, AGX_MSG_QUIESCE, -rc, "pmem flush failed: %s", ag_strerror(-rc));
            return;
        }
        flushed = 1;
    }
    struct agx_quiesce_complete q = {
        .flushed_regions = flushed,
        .running_processes = proc_running(),
        .elapsed_ns = env_now_ns() - t0,
    };
    frame_send(AGX_MSG_QUIESCE_COMPLETE, AGX_FLAG_REPLY, rid, agx_quiesce_complete_encode(PAYLOAD, AGX_MAX_PAYLOAD, &q));
}

static void shutdown_now(uint32_t rid, const struct agx_shutdown *m)
{
    if (m->mode != AGX_SHUTDOWN_POWEROFF && m->mode != AGX_SHUTDOWN_REBOOT) {
        send_error(rid, AGX_MSG_SHUTDOWN, AGX_EINVAL, "unknown shutdown mode %u", (unsigned)m->mode);
        return;
    }
    if (m->grace_ms > AGX_SHUTDOWN_GRACE_MAX_MS) {
        send_error(rid, AGX_MSG_SHUTDOWN, AGX_EINVAL, "grace_ms %u > %u", (unsigned)m->grace_ms,
                   AGX_SHUTDOWN_GRACE_MAX_MS);
        return;
    }
    ag_log("shutdown requested (%s)", m->mode == AGX_SHUTDOWN_REBOOT ? "reboot" : "poweroff");
    /* built-ins have nothing to clean up: SIGTERM ends them at once, no grace needed */
    proc_kill_all(15);
    if (env_pmem_base()) env_pmem_flush(2000);
    send_ok(rid);
    env_power_off(0, m->mode == AGX_SHUTDOWN_REBOOT);
}

/* Scratch for decoded views (they point into rx; large arrays, so not on the stack). */
static union {
    struct agx_hello hello;
    struct agx_config config;
    struct agx_mount mount;
    struct agx_unmount unmount;
    struct agx_exec exec;
    struct agx_stdio stdio;
    struct agx_signal signal;
    struct agx_quiesce quiesce;
    struct agx_resume resume;
    struct agx_shutdown shutdown;
    struct agx_ping ping;
} M;

static void dispatch(const struct agx_header *h, const uint8_t *p)
{
    uint16_t t = h->type;
    uint32_t rid = h->request_id;
    const char *name = agx_msg_type_name(t);
    int rc;

    if (!name) {
        send_error(rid, t, AGX_ENOSYS, "unknown message type 0x%04x", t);
        return;
    }
    if (!agx_msg_type_host_to_agent(t)) {
        send_error(rid, t, AGX_EPROTO, "%s is not a host-to-agent message", name);
        return;
    }
    if (h->flags & AGX_FLAG_REPLY) {
        send_error(rid, t, AGX_EPROTO, "%s from the host carries the REPLY flag", name);
        return;
    }
    uint64_t need = agx_msg_type_capability(t);
    if (need && !(capabilities() & need)) {
        send_error(rid, t, AGX_EOPNOTSUPP, "%s: capability not offered by the Track B agent", name);
        return;
    }
    /* every host->agent message but STDIO (an event) is a request: it needs a request_id;
     * HELLO is exempt (request_id 0 asks for a fresh announcement) */
    if (rid == 0 && t != AGX_MSG_STDIO && t != AGX_MSG_HELLO) {
        send_error(0, t, AGX_EPROTO, "%s request needs a non-zero request_id", name);
        return;
    }

    uint32_t n = h->payload_len;
    switch (t) {
    case AGX_MSG_HELLO: rc = agx_hello_decode(p, n, &M.hello); break;
    case AGX_MSG_CONFIG: rc = agx_config_decode(p, n, &M.config); break;
    case AGX_MSG_EXEC: rc = agx_exec_decode(p, n, &M.exec); break;
    case AGX_MSG_STDIO: rc = agx_stdio_decode(p, n, &M.stdio); break;
    case AGX_MSG_SIGNAL: rc = agx_signal_decode(p, n, &M.signal); break;
    case AGX_MSG_QUIESCE: rc = agx_quiesce_decode(p, n, &M.quiesce); break;
    case AGX_MSG_RESUME: rc = agx_resume_decode(p, n, &M.resume); break;
    case AGX_MSG_SHUTDOWN: rc = agx_shutdown_decode(p, n, &M.shutdown); break;
    case AGX_MSG_PING: rc = agx_ping_decode(p, n, &M.ping); break;
    default: rc = -AGX_EOPNOTSUPP; break;   /* MOUNT/UNMOUNT: refused above, but never a hang */
    }
    if (rc) {
        send_error(rid, t, -rc, "malformed %s payload (%u bytes)", name, (unsigned)n);
        return;
    }

    switch (t) {
    case AGX_MSG_HELLO: {
        uint16_t lo = M.hello.version_min > AGX_VERSION_MIN ? M.hello.version_min : AGX_VERSION_MIN;
        uint16_t hi = M.hello.version_max < AGX_VERSION_MAX ? M.hello.version_max : AGX_VERSION_MAX;
        if (lo > hi)
            send_error(rid, t, AGX_EPROTONOSUPPORT, "no common version: host %u..%u, agent %u..%u",
                       M.hello.version_min, M.hello.version_max, AGX_VERSION_MIN, AGX_VERSION_MAX);
        else
            send_hello(rid, rid ? hi : 0);  /* request_id 0 asks for a fresh announcement */
        break;
    }
    case AGX_MSG_CONFIG: config_apply(rid, &M.config); break;
    case AGX_MSG_EXEC:
        if (quiesced) send_error(rid, t, AGX_ECANCELED, "quiesced: EXEC refused until RESUME");
        else proc_exec(rid, &M.exec);
        break;
    case AGX_MSG_STDIO: proc_stdin(&M.stdio); break;
    case AGX_MSG_SIGNAL: proc_signal(rid, &M.signal); break;
    case AGX_MSG_QUIESCE: quiesce(rid, &M.quiesce); break;
    case AGX_MSG_RESUME:
        quiesced = 0;
        send_ok(rid);
        break;
    case AGX_MSG_SHUTDOWN: shutdown_now(rid, &M.shutdown); break;
    case AGX_MSG_PING: {
        /* the data lives in rx, the reply is built in tx: no overlap */
        struct agx_pong pong = {.data = M.ping.data};
        frame_send(AGX_MSG_PONG, AGX_FLAG_REPLY, rid, agx_pong_encode(PAYLOAD, AGX_MAX_PAYLOAD, &pong));
        break;
    }
    default:
        send_error(rid, t, AGX_EOPNOTSUPP, "%s is not supported by the Track B agent", name);
        break;
    }
}

/* ---- frame reassembly ---- */
static void rx_consume(size_t n)
{
    if (n >= rx_len) {
        rx_len = 0;
        return;
    }
    ag_memmove(rx, rx + n, rx_len - n);
    rx_len -= n;
}

/* Drop bytes up to the next magic at or after `start`; keep a possible partial magic at
 * the tail, but nothing before `start` (the rejected header's own bytes never come back). */
static void rx_skip_to_magic(size_t start)
{
    uint8_t magic[4];
    agx_put_u32(magic, AGX_MAGIC);
    for (size_t i = start; i + 4 <= rx_len; i++) {
        if (!ag_memcmp(rx + i, magic, 4)) {
            rx_consume(i);
            return;
        }
    }
    size_t keep = 3, drop = rx_len > keep ? rx_len - keep : 0;
    rx_consume(drop > start ? drop : start);
}

/* Handle every complete frame in rx. */
static void process_rx(void)
{
    for (;;) {
        if (rx_skip) {
            size_t n = rx_len < rx_skip ? rx_len : (size_t)rx_skip;
            rx_consume(n);
            rx_skip -= n;
            if (rx_skip) return;
        }
        if (rx_len < AGX_HEADER_SIZE) return;
        struct agx_header h;
        int rc = agx_header_decode(rx, &h);
        if (rc == -AGX_EBADMSG) {
            rx_skip_to_magic(1);
            if (!in_garbage) {
                in_garbage = 1;
                send_error(0, 0, AGX_EBADMSG, "bad magic or header CRC; resynchronising");
            }
            continue;
        }
        if (rc == -AGX_EMSGSIZE) {
            /* never wait for an oversized payload: scan on right after the header */
            rx_skip_to_magic(AGX_HEADER_SIZE);
            in_garbage = 0;
            send_error(h.request_id, h.type, AGX_EMSGSIZE, "payload_len %u > %u", (unsigned)h.payload_len,
                       AGX_MAX_PAYLOAD);
            continue;
        }
        if (rc) {
            /* intact header with a bad version or flags: a length up to MAX_PAYLOAD is trusted and
             * the payload discarded as it arrives; a longer one is not: scan for the magic */
            in_garbage = 0;
            rx_consume(AGX_HEADER_SIZE);
            if (h.payload_len > AGX_MAX_PAYLOAD) rx_skip_to_magic(0);
            else rx_skip = h.payload_len;
            if (rc == -AGX_EPROTONOSUPPORT)
                send_error(h.request_id, h.type, AGX_EPROTONOSUPPORT, "frame version %u not in %u..%u", h.version,
                           AGX_VERSION_MIN, AGX_VERSION_MAX);
            else
                send_error(h.request_id, h.type, -rc, "unknown frame flag bits 0x%x", h.flags);
            continue;
        }
        size_t total = AGX_HEADER_SIZE + (size_t)h.payload_len;
        if (rx_len < total) return;
        in_garbage = 0;
        if (agx_payload_verify(&h, rx + AGX_HEADER_SIZE)) {
            const char *nm = agx_msg_type_name(h.type);
            send_error(h.request_id, h.type, AGX_EBADMSG, "payload CRC mismatch in %s frame", nm ? nm : "unknown");
        } else {
            dispatch(&h, rx + AGX_HEADER_SIZE);
        }
        rx_consume(total);
    }
}

/* ---- the loop ---- */
_Noreturn void agent_main(void)
{
    ag_log("%s up after %lu ms; announcing HELLO", AGENT_NAME, (unsigned long)(env_now_ns() / 1000000ull));
    send_hello(0, 0);
    for (;;) {
        int work = 0;
        if (rx_len < RX_CAP) {
            long n = env_chan_read(rx + rx_len, RX_CAP - rx_len);
            if (n < 0) {
                ag_log("control channel gone; powering off");
                proc_kill_all(9);
                env_power_off(0, 0);
            }
            if (n > 0) {
                rx_len += (size_t)n;
                process_rx();
                work = 1;
            }
        }
        work |= proc_step_all();
        if (!work) env_relax();
    }
}
