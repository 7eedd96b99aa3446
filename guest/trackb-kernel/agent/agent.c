/* agent.c: the Track B AgentX agent's single polling loop: the frame reader
 * (guest/agentx/agentx_rx.c, the one guest/init links too), request dispatch,
 * and the replies.
 *
 * There are no threads and no interrupts here: each loop iteration reads what
 * the control channel has, answers every complete frame, then steps the
 * built-in programs (proc.c, through struct proc_host) a bounded amount. Frames towards the
 * host go into a queue (tx) that env_chan_write drains without waiting: a host that stops
 * reading stalls the queue, the queue stalls the programs' output (held in proc.c, at most
 * AGX_OUTPUT_BUFFER per stream), and the programs stop being stepped - nothing is dropped
 * and no frame is cut short. Requests are read only while the queue has room for their
 * replies. Sessions (version, replay) as in docs/agentx-protocol.md "Connection lifetime". */
#include "agent_int.h"
#include "proc.h"

#define RX_CAP (AGX_MAX_FRAME + 4096u)

static uint8_t rx_buf[RX_CAP];
static void dispatch(const struct agx_header *h, const uint8_t *p);
static void send_error(uint32_t rid, uint16_t rtype, int code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int can_answer(void);
static struct agx_rx rx = {.buf = rx_buf, .cap = RX_CAP, .deliver = dispatch, .error = send_error,
                           .can_answer = can_answer};

#define TX_CAP (3u * AGX_MAX_FRAME)   /* frames waiting for the channel */
#define TX_HIGH AGX_MAX_FRAME          /* program output is framed only below this */
static uint8_t tx[TX_CAP];
static size_t tx_head, tx_tail;
static uint8_t session_version = AGX_SESSION_START_VERSION;
static int session_open;              /* the host sent its first request on this connection */

/* state set by requests */
static int quiesced;
static char cfg_hostname[AGX_CONFIG_HOSTNAME_MAX_LEN + 1] = "wslx-trackb";
static char cfg_env_buf[32768];
static const char *cfg_env[AGX_CONFIG_ENV_MAX_COUNT];
static size_t cfg_env_n;
static int portal_configured;

static const char *config_hostname(void) { return cfg_hostname; }

static size_t config_default_env(const char *const **out)
{
    *out = cfg_env;
    return cfg_env_n;
}

/* ---- frames towards the host ---- */
static size_t tx_pending(void) { return tx_tail - tx_head; }

/* Hand queued bytes to the channel, waiting at most timeout_ms; -1 if the channel is gone. */
static int tx_flush(uint32_t timeout_ms)
{
    while (tx_pending()) {
        long n = env_chan_write(tx + tx_head, tx_pending(), timeout_ms);
        if (n < 0) return -1;
        if (n == 0) break;
        tx_head += (size_t)n;
    }
    if (tx_head == tx_tail) tx_head = tx_tail = 0;
    return 0;
}

/* Room for one whole frame at the tail of tx. Replies are only produced while there is
 * room (can_answer, the programs' output gate), so waiting here is the exception. */
static uint8_t *frame_begin(void)
{
    for (uint64_t t0 = env_now_ns();;) {
        if (TX_CAP - tx_tail >= AGX_MAX_FRAME) return tx + tx_tail;
        if (tx_head) {
            ag_memmove(tx, tx + tx_head, tx_pending());
            tx_tail -= tx_head;
            tx_head = 0;
            continue;
        }
        if (tx_flush(WRITE_TIMEOUT_MS) < 0 || env_now_ns() - t0 > WRITE_TIMEOUT_MS * 1000000ull) {
            ag_log("frame queue full and the host reads nothing: a reply is dropped");
            return 0;
        }
    }
}

static uint8_t *cur;   /* the frame being built (frame_begin) */
#define PAYLOAD (cur + AGX_HEADER_SIZE)

static void frame_send(uint16_t type, uint8_t flags, uint32_t rid, long plen)
{
    if (plen < 0) {
        ag_log("cannot encode %s frame (%ld)", agx_msg_type_name(type), plen);
        return;
    }
    tx_tail += agentx_frame_seal(cur, session_version, type, flags, rid, (uint32_t)plen);
}

#define FRAME_BEGIN() do { if (!(cur = frame_begin())) return; } while (0)

static int can_answer(void) { return tx_pending() + 2u * AGX_MAX_FRAME <= TX_CAP; }
static int events_ok(void) { return session_open && tx_pending() < TX_HIGH; }
static uint8_t version(void) { return session_version; }

/* A new session (a new host, or HELLO with request_id 0): version 1 until HELLO negotiates;
 * held output goes again, from what was acknowledged, once the host has spoken. */
static void session_start(void)
{
    session_version = AGX_SESSION_START_VERSION;
    session_open = 0;
    proc_new_session();
}

static void send_error_v(uint32_t rid, uint16_t rtype, int code, const char *fmt, __builtin_va_list ap)
{
    char msg[AGX_ERROR_MESSAGE_MAX_LEN + 1];
    FRAME_BEGIN();
    size_t n = ag_vfmt(msg, sizeof msg, fmt, ap);
    struct agx_error e = {.code = code, .request_type = rtype, .message = agx_error_text(msg, n)};
    frame_send(AGX_MSG_ERROR, rid ? AGX_FLAG_REPLY : 0, rid, agx_error_encode(PAYLOAD, AGX_MAX_PAYLOAD, &e));
}

static void send_error(uint32_t rid, uint16_t rtype, int code, const char *fmt, ...)
{
    __builtin_va_list ap;
    __builtin_va_start(ap, fmt);
    send_error_v(rid, rtype, code, fmt, ap);
    __builtin_va_end(ap);
}

static void send_ok(uint32_t rid)
{
    FRAME_BEGIN();
    struct agx_ok m = {0};
    frame_send(AGX_MSG_OK, AGX_FLAG_REPLY, rid, agx_ok_encode(PAYLOAD, AGX_MAX_PAYLOAD, &m));
}

static void send_stdio(uint32_t pid, uint8_t stream, uint8_t flags, uint64_t offset, const uint8_t *data,
                       uint32_t len)
{
    FRAME_BEGIN();
    struct agx_stdio m = {.pid = pid, .stream = stream, .flags = flags, .offset = offset,
                          .data = {.ptr = data, .len = len}};
    frame_send(AGX_MSG_STDIO, 0, 0, agx_stdio_encode_version(session_version, PAYLOAD, AGX_MAX_PAYLOAD, &m));
}

static void send_exit(uint32_t pid, uint8_t how, int32_t code)
{
    FRAME_BEGIN();
    struct agx_exit m = {.pid = pid, .how = how, .code = code};
    frame_send(AGX_MSG_EXIT, 0, 0, agx_exit_encode(PAYLOAD, AGX_MAX_PAYLOAD, &m));
}

static void send_exec_started(uint32_t rid, uint32_t pid)
{
    FRAME_BEGIN();
    struct agx_exec_started m = {.pid = pid};
    frame_send(AGX_MSG_EXEC_STARTED, AGX_FLAG_REPLY, rid, agx_exec_started_encode(PAYLOAD, AGX_MAX_PAYLOAD, &m));
}

static uint64_t capabilities(void)
{
    /* SYSTEM: the agent is the whole OS here, so CONFIG hostname changes the system's name.
     * No MOUNT (no filesystems), no STDIN (built-ins do not read stdin). PROGRAMS: the
     * conformance program is a built-in (builtins.c). */
    uint64_t c = AGX_CAP_EXEC | AGX_CAP_SIGNAL | AGX_CAP_QUIESCE | AGX_CAP_SHUTDOWN | AGX_CAP_CONFIG |
                 AGX_CAP_PING | AGX_CAP_SYSTEM | AGX_CAP_PROGRAMS;
    if (env_pmem_base() && env_pmem_size()) c |= AGX_CAP_PORTAL;
    return c;
}

static void send_hello(uint32_t rid, uint16_t selected)
{
    FRAME_BEGIN();
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
    /* the Portal first (fields passed agx_config_check; the one pmem device is used whatever
     * portal_device names): a CONFIG that cannot be applied whole changes nothing */
    if (m->portal_size && !(env_pmem_base() && env_pmem_size())) {
        send_error(rid, AGX_MSG_CONFIG, AGX_EOPNOTSUPP, "no pmem device: no Portal");
        return;
    }
    if (m->portal_size > env_pmem_size()) {
        send_error(rid, AGX_MSG_CONFIG, AGX_EINVAL, "portal_size %lu > pmem %lu", (unsigned long)m->portal_size,
                   (unsigned long)env_pmem_size());
        return;
    }
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
    portal_configured = m->portal_size != 0; /* checked above */
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
    FRAME_BEGIN();
    frame_send(AGX_MSG_QUIESCE_COMPLETE, AGX_FLAG_REPLY, rid, agx_quiesce_complete_encode(PAYLOAD, AGX_MAX_PAYLOAD, &q));
}

static void shutdown_now(uint32_t rid, const struct agx_shutdown *m)
{
    if (agx_shutdown_check(rid, m, send_error)) return;
    ag_log("shutdown requested (%s)", m->mode == AGX_SHUTDOWN_REBOOT ? "reboot" : "poweroff");
    /* built-ins have nothing to clean up: SIGTERM ends them at once, no grace needed */
    proc_kill_all(AGX_SIGTERM);
    proc_pump_output();
    if (env_pmem_base()) env_pmem_flush(2000);
    send_ok(rid);
    tx_flush(2000);
    env_power_off(0, m->mode == AGX_SHUTDOWN_REBOOT);
}

/* proc.c reaches the host and the CONFIG state only through this */
static const struct proc_host proc_host = {
    .send = {.error = send_error, .ok = send_ok, .exec_started = send_exec_started, .stdio = send_stdio,
             .exit = send_exit, .events_ok = events_ok, .version = version},
    .hostname = config_hostname, .default_env = config_default_env,
};

/* Scratch for decoded views (they point into rx; large arrays, so not on the stack). */
static union agx_request M;

static void dispatch(const struct agx_header *h, const uint8_t *p)
{
    uint16_t t = h->type;
    uint32_t rid = h->request_id;

    /* MOUNT/UNMOUNT are refused here: no capability */
    if (agx_request_decode(h, p, capabilities(), &M, send_error)) return;
    if (t != AGX_MSG_HELLO || rid) session_open = 1;   /* the host has spoken: held output may flow */
    switch (t) {
    case AGX_MSG_HELLO: {
        uint16_t selected;
        if (!agx_hello_select(rid, &M.hello, &selected, send_error)) {
            if (rid) session_version = (uint8_t)selected;   /* the reply is the first frame in it */
            else session_start();                           /* a new host on a line we cannot watch */
            send_hello(rid, selected);
        }
        break;
    }
    case AGX_MSG_OUTPUT_ACK: proc_output_ack(&M.output_ack); break;
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
        FRAME_BEGIN();
        struct agx_pong pong = {.data = M.ping.data};
        frame_send(AGX_MSG_PONG, AGX_FLAG_REPLY, rid, agx_pong_encode(PAYLOAD, AGX_MAX_PAYLOAD, &pong));
        break;
    }
    default:
        send_error(rid, t, AGX_EOPNOTSUPP, "%s is not supported by the Track B agent", agx_msg_type_name(t));
        break;
    }
}

/* ---- the loop ---- */
_Noreturn void agent_main(void)
{
    ag_log("%s up after %lu ms; announcing HELLO", AGENT_NAME, (unsigned long)(env_now_ns() / 1000000ull));
    uint32_t connects = env_chan_connects();
    proc_init(&proc_host);
    session_start();
    send_hello(0, 0);
    for (;;) {
        int work = 0;
        uint32_t c = env_chan_connects();
        if (c != connects) {
            /* a new host: forget the old one's partial frame in both directions (what tx holds
             * was for the old host; held output is sent again), say HELLO first */
            connects = c;
            agx_rx_new_peer(&rx);   /* the old host's last bytes may still come: hunt for the new one's first frame */
            tx_head = tx_tail = 0;
            ag_log("host connected (%u); announcing HELLO", (unsigned)c);
            session_start();
            send_hello(0, 0);
            work = 1;
        }
        size_t before = tx_pending();
        if (tx_flush(0) < 0) {
            ag_log("control channel gone; powering off");
            proc_kill_all(AGX_SIGKILL);
            env_power_off(0, 0);
        }
        work |= tx_pending() != before;
        if (agx_rx_room(&rx)) {
            long n = env_chan_read(agx_rx_tail(&rx), agx_rx_room(&rx));
            if (n < 0) {
                ag_log("control channel gone; powering off");
                proc_kill_all(AGX_SIGKILL);
                env_power_off(0, 0);
            }
            if (n > 0) {
                agx_rx_push(&rx, (size_t)n);
                work = 1;
            }
        }
        agx_rx_process(&rx);   /* frames that waited for room in tx */
        tx_flush(0);           /* replies leave before the programs run (one may fault on purpose) */
        if (!quiesced)         /* quiesced: producers (built-ins, the Portal service) pause */
            work |= proc_step_all();
        else
            proc_pump_output();
        if (!work) env_relax();
    }
}
