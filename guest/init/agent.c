/* AgentX agent: the single-threaded epoll loop, the incremental frame reader
 * (resynchronising exactly like wslx.agentx.codec.FrameReader), dispatch of
 * host requests and the bounded output buffer towards the host.
 *
 * Backpressure: process output waits in proc.c (at most AGX_OUTPUT_BUFFER bytes per
 * stream not yet acknowledged) and is framed here only while fewer than OUT_HIGH
 * bytes wait for the host; when the buffer nears OUT_CAP the control fd is not read
 * either. Output is never dropped: while disconnected it stays in proc.c (the
 * producer blocks at the bound) and goes to the next host. Session: every
 * connection starts in AGX_SESSION_START_VERSION; HELLO negotiates; process events
 * flow once the host has sent its first request (docs: "Connection lifetime"). */
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/mount.h> /* BLKGETSIZE64 */
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/signalfd.h>
#include <sys/utsname.h>
#include <signal.h>
#include <time.h>
#include <unistd.h>

#include "init.h"
#include "proc.h"
#include "../agentx/agentx_rx.h"

#define RX_CAP (AGX_MAX_FRAME + 65536u)
#define OUT_HIGH (1u << 20)                    /* stop reading children above this */
#define OUT_CAP (OUT_HIGH + 4u * AGX_MAX_FRAME) /* hard size of the output buffer */
#define RETRY_MS 250

static int epfd = -1, sigfd = -1;
static int ctl = -1;
static char ctl_desc[160];
static uint32_t ctl_events;

static uint8_t rx_buf[RX_CAP];
static void dispatch(const struct agx_header *h, const uint8_t *p);
static int can_answer(void);
static struct agx_rx rx = {.buf = rx_buf, .cap = RX_CAP, .deliver = dispatch, .error = send_error,
                           .can_answer = can_answer};

static uint8_t out[OUT_CAP];
static size_t out_head, out_tail;
/* virtio-serial: where in out the session that a host HELLO with request_id 0 started begins (its
 * HELLO), as long as none of it has been written; NO_MARK otherwise. See ctl_down. */
#define NO_MARK SIZE_MAX
static size_t out_session_at = NO_MARK;

/* state set by requests */
static int quiesced;
static uint8_t session_version = AGX_SESSION_START_VERSION;  /* of this connection's frames */
static int session_open;    /* the host sent its first request on this connection */
static uint32_t session_limit = AGX_MAX_PAYLOAD;   /* the host HELLO max_payload: we send no larger */
static char **cfg_env;
static size_t cfg_env_n;
static int portal_ok;

/* ---- epoll helpers ---- */
int ev_add(int fd, uint32_t events, uint64_t tag)
{
    struct epoll_event e = {.events = events, .data.u64 = tag};
    return epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &e);
}

int ev_mod(int fd, uint32_t events, uint64_t tag)
{
    struct epoll_event e = {.events = events, .data.u64 = tag};
    return epoll_ctl(epfd, EPOLL_CTL_MOD, fd, &e);
}

void ev_del(int fd)
{
    struct epoll_event e = {0};
    epoll_ctl(epfd, EPOLL_CTL_DEL, fd, &e);
}

/* ---- output buffer ---- */
int agent_connected(void) { return ctl >= 0; }

static size_t out_pending(void) { return out_tail - out_head; }

int agent_bulk_ok(void) { return ctl >= 0 && out_pending() < OUT_HIGH; }

/* While quiesced, child output stays in the children's pipes (they block when full): the
 * stream to the host ends with QUIESCE_COMPLETE, so a snapshot taken now holds no half-sent
 * frame, and output made while the host reconnects after a restore is not dropped. */
int agent_output_paused(void) { return quiesced; }

/* Space for one whole frame at the tail, or NULL (disconnected / full: dropped). */
static uint8_t *frame_begin(void)
{
    if (ctl < 0) return NULL;
    if (out_head == out_tail) out_head = out_tail = 0;
    if (OUT_CAP - out_tail < AGX_MAX_FRAME) {
        memmove(out, out + out_head, out_pending());
        if (out_session_at != NO_MARK) out_session_at -= out_head;   /* never below out_head */
        out_tail -= out_head;
        out_head = 0;
    }
    if (OUT_CAP - out_tail < AGX_MAX_FRAME) {
        wlog("output buffer full, frame dropped");
        return NULL;
    }
    return out + out_tail;
}

/* The frame's offset in out, or NO_MARK if it could not be encoded. */
static size_t frame_commit(uint8_t *f, uint16_t type, uint8_t flags, uint32_t rid, long plen)
{
    if (plen < 0) {
        wlog("cannot encode %s frame (%ld)", agx_msg_type_name(type), plen);
        return NO_MARK;
    }
    out_tail += agentx_frame_seal(f, session_version, type, flags, rid, (uint32_t)plen);
    return (size_t)(f - out);
}

#define PAYLOAD(f) ((f) + AGX_HEADER_SIZE)

static void send_error_v(uint32_t rid, uint16_t rtype, int code, const char *fmt, va_list ap)
{
    uint8_t *f = frame_begin();
    if (!f) return;
    char msg[AGX_ERROR_MESSAGE_MAX_LEN + 1];
    int n = vsnprintf(msg, sizeof msg, fmt, ap);
    size_t len = n < 0 ? 0 : (size_t)n < sizeof msg ? (size_t)n : sizeof msg - 1;
    struct agx_error e = {.code = code, .request_type = rtype, .message = agx_error_text(msg, len)};
    frame_commit(f, AGX_MSG_ERROR, rid ? AGX_FLAG_REPLY : 0, rid, agx_error_encode(PAYLOAD(f), session_limit, &e));
}

void send_error(uint32_t rid, uint16_t rtype, int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    send_error_v(rid, rtype, code, fmt, ap);
    va_end(ap);
}

void send_ok(uint32_t rid)
{
    uint8_t *f = frame_begin();
    if (!f) return;
    struct agx_ok m = {0};
    frame_commit(f, AGX_MSG_OK, AGX_FLAG_REPLY, rid, agx_ok_encode(PAYLOAD(f), session_limit, &m));
}

void send_stdio(uint32_t pid, uint8_t stream, uint8_t flags, uint64_t offset, const uint8_t *data, uint32_t len)
{
    uint8_t *f = frame_begin();
    if (!f) return;
    struct agx_stdio m = {.pid = pid, .stream = stream, .flags = flags, .offset = offset,
                          .data = {.ptr = data, .len = len}};
    frame_commit(f, AGX_MSG_STDIO, 0, 0, agx_stdio_encode_version(session_version, PAYLOAD(f), session_limit, &m));
}

/* Process events may go out: a host is there, has spoken, and the buffer has room. */
int agent_events_ok(void) { return session_open && agent_bulk_ok(); }

uint8_t agent_session_version(void) { return session_version; }

uint32_t agent_max_payload(void) { return session_limit; }

/* A new session (a new connection, or HELLO with request_id 0): version 1 until HELLO
 * negotiates, held output waits for the host's first request, then goes again from what
 * was acknowledged. */
static void session_start(void)
{
    session_version = AGX_SESSION_START_VERSION;
    session_open = 0;
    session_limit = AGX_MAX_PAYLOAD;   /* until this connection's HELLO */
    proc_new_session();
}

void send_exit(uint32_t pid, uint8_t how, int32_t code)
{
    uint8_t *f = frame_begin();
    if (!f) return;
    struct agx_exit m = {.pid = pid, .how = how, .code = code};
    frame_commit(f, AGX_MSG_EXIT, 0, 0, agx_exit_encode(PAYLOAD(f), session_limit, &m));
}

void send_exec_started(uint32_t rid, uint32_t pid)
{
    uint8_t *f = frame_begin();
    if (!f) return;
    struct agx_exec_started m = {.pid = pid};
    frame_commit(f, AGX_MSG_EXEC_STARTED, AGX_FLAG_REPLY, rid,
                 agx_exec_started_encode(PAYLOAD(f), session_limit, &m));
}

int send_stdin_ack(uint32_t pid, uint32_t bytes, uint32_t flags, int force)
{
    /* small and retried later: never push the buffer into the room kept for replies */
    if (!force && out_pending() + 2u * AGX_MAX_FRAME > OUT_CAP) return -1;
    uint8_t *f = frame_begin();
    if (!f) return -1;
    struct agx_stdin_ack m = {.pid = pid, .bytes = bytes, .flags = flags};
    frame_commit(f, AGX_MSG_STDIN_ACK, 0, 0, agx_stdin_ack_encode(PAYLOAD(f), session_limit, &m));
    return 0;
}

static uint64_t capabilities(void)
{
    uint64_t c = AGX_CAP_EXEC | AGX_CAP_STDIN | AGX_CAP_SIGNAL | AGX_CAP_MOUNT | AGX_CAP_QUIESCE |
                 AGX_CAP_SHUTDOWN | AGX_CAP_CONFIG | AGX_CAP_PING | AGX_CAP_PROGRAMS;
    if (portal_ok) c |= AGX_CAP_PORTAL;
    if (g_opts.pid1) c |= AGX_CAP_SYSTEM;   /* CONFIG hostname/clock change the whole OS */
    return c;
}

/* The HELLO's offset in out, or NO_MARK if none was queued. */
static size_t send_hello(uint32_t rid, uint16_t selected)
{
    uint8_t *f = frame_begin();
    if (!f) return NO_MARK;
    struct utsname u;
    if (uname(&u) < 0) snprintf(u.release, sizeof u.release, "unknown");
    utf8_truncate(u.release, AGX_HELLO_OS_RELEASE_MAX_LEN);
    struct agx_hello h = {
        .version_min = AGX_VERSION_MIN,
        .version_max = AGX_VERSION_MAX,
        .version_selected = selected,
        .agent_kind = AGX_AGENT_LINUX_INIT,
        .capabilities = capabilities(),
        .max_payload = AGX_MAX_PAYLOAD,
        .uptime_ms = (uint32_t)(now_ns(CLOCK_BOOTTIME) / 1000000ull),
        .name = agx_str_from_c("wslx-init " WSLX_INIT_VERSION),
        .os_release = agx_str_from_c(u.release),
    };
    return frame_commit(f, AGX_MSG_HELLO, rid ? AGX_FLAG_REPLY : 0, rid,
                        agx_hello_encode(PAYLOAD(f), session_limit, &h));
}

/* ---- control channel ---- */
static void ctl_update_events(void)
{
    if (ctl < 0) return;
    uint32_t ev = 0;
    /* read more only if there is room to buffer it and to answer it */
    if (agx_rx_room(&rx) && out_pending() < OUT_HIGH + AGX_MAX_FRAME) ev |= EPOLLIN;
    if (out_pending()) ev |= EPOLLOUT;
    if (ev != ctl_events) {
        ev_mod(ctl, ev, ev_tag(EV_CTL, 0, 0));
        ctl_events = ev;
    }
}

static void ctl_reset_buffers(void)
{
    agx_rx_reset(&rx);
    out_head = out_tail = 0;
    out_session_at = NO_MARK;
}

/* A socket connection starts clean. The virtio-serial port is one byte stream from host to host
 * (see ctl_down): what ctl_down kept stays. If the new host's HELLO with request_id 0 was read
 * before the hangup was noticed, its session is running already and its HELLO is first in out.
 * Otherwise the new host gets an unsolicited HELLO and the receiver hunts for the new host's
 * first frame (agx_rx_hunt): the bytes it holds may end in the previous host's unfinished frame. */
static void ctl_up(int fd, const char *desc)
{
    static unsigned ups;
    int resumed = 0;
    ctl = fd;
    snprintf(ctl_desc, sizeof ctl_desc, "%s", desc);
    if (!ups++ || !transport_is_port(fd)) ctl_reset_buffers();
    else if (out_session_at != NO_MARK) resumed = 1;
    else agx_rx_hunt(&rx);
    ctl_events = EPOLLIN;
    if (ev_add(ctl, EPOLLIN, ev_tag(EV_CTL, 0, 0)) < 0) wlog("epoll add control fd: %s", strerror(errno));
    if (resumed) {
        wlog("the new host's session began before the old host's hangup was seen; answering it");
        return;
    }
    session_start();
    send_hello(0, 0);
}

/* On the virtio-serial port the next host's bytes can come before the old host's hangup shows:
 * the driver takes data at interrupt time but the port's open/close events later, in a work
 * queue, so the agent may read, answer and even find the reply unwritable (EAGAIN while the
 * host side looks closed) for the new host's first frames before read() returns 0 here. So the
 * port's receive buffer is kept (ctl_up hunts past an old unfinished frame), and of the output
 * the session a HELLO with request_id 0 started, if none of it was written yet: that HELLO came
 * from the host that is coming (hosts the agent may not see arrive start with it). The rest of
 * the output was the old host's and goes. */
static void ctl_down(const char *why)
{
    if (ctl < 0) return;
    int fd = ctl;
    ev_del(ctl);
    ctl = -1;
    if (!transport_is_port(fd)) {
        ctl_reset_buffers();
        proc_connection_lost();
    } else if (out_session_at != NO_MARK) {
        out_head = out_session_at;   /* the HELLO goes first; the session's stdin credit stands */
    } else {
        out_head = out_tail = 0;
        proc_connection_lost();
    }
    if (g_opts.agent_fd >= 0) {
        /* host test mode: the one channel is gone; nothing to reconnect to */
        proc_terminate_all(0);
        exit(0);
    }
    wlog("agentx host gone from %s (%s); reconnecting", ctl_desc, why);
    transport_disconnected(fd);
}

static void flush_out(void)
{
    while (ctl >= 0 && out_pending()) {
        ssize_t n = write(ctl, out + out_head, out_pending());
        if (n > 0) {
            out_head += (size_t)n;
            if (out_session_at != NO_MARK && out_head > out_session_at) out_session_at = NO_MARK;
            continue;
        }
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
        ctl_down(n < 0 ? strerror(errno) : "write returned 0");
        return;
    }
    if (out_head == out_tail) out_head = out_tail = 0;
}

void agent_flush_blocking(int timeout_ms)
{
    uint64_t deadline = now_ns(CLOCK_MONOTONIC) + (uint64_t)timeout_ms * 1000000ull;
    while (ctl >= 0 && out_pending()) {
        flush_out();
        if (ctl < 0 || !out_pending()) break;
        uint64_t now = now_ns(CLOCK_MONOTONIC);
        if (now >= deadline) break;
        struct pollfd pf = {.fd = ctl, .events = POLLOUT};
        poll(&pf, 1, (int)((deadline - now) / 1000000ull) + 1);
    }
}

/* ---- requests ---- */
/* CONFIG's Portal device (its fields already passed agx_config_check): it must exist, be a pmem
 * block device or a dax character device (in host test mode a regular file stands in) and hold
 * `want` bytes. 0, or an errno with *why saying which check failed. */
static int portal_device_check(const char *path, uint64_t want, const char **why)
{
    struct stat st;
    uint64_t have = 0;
    if (stat(path, &st) < 0) return *why = "stat", errno;
    if (S_ISBLK(st.st_mode)) {
        int fd = open(path, O_RDONLY | O_CLOEXEC), rc = fd < 0 ? -1 : ioctl(fd, BLKGETSIZE64, &have), e = errno;
        if (fd >= 0) close(fd);
        if (rc < 0) return *why = "block device size", e;
    } else if (S_ISCHR(st.st_mode)) {
        char sys[64], num[32] = "";
        snprintf(sys, sizeof sys, "/sys/dev/char/%u:%u/size", major(st.st_rdev), minor(st.st_rdev));
        int fd = open(sys, O_RDONLY | O_CLOEXEC);
        ssize_t n = fd < 0 ? -1 : read(fd, num, sizeof num - 1);
        if (fd >= 0) close(fd);
        if (n <= 0) return *why = "not a dax device (no size in /sys/dev/char)", ENODEV;
        have = strtoull(num, NULL, 10);
    } else if (S_ISREG(st.st_mode) && !g_opts.pid1) {
        have = (uint64_t)st.st_size;
    } else {
        return *why = "not a pmem or dax device", ENODEV;
    }
    if (have < want) return *why = "smaller than portal_size", EINVAL;
    return 0;
}

static void config_apply(uint32_t rid, const struct agx_config *m)
{
    char buf[AGX_CONFIG_PORTAL_DEVICE_MAX_LEN + 1];
    int err = 0;
    char what[96] = "";

    /* the Portal device first: a CONFIG that cannot be applied whole changes nothing */
    if (m->portal_device.len) {
        const char *why = "";
        if (str_copy(buf, sizeof buf, m->portal_device) ||
            (err = portal_device_check(buf, m->portal_size, &why))) {
            if (!err) err = EINVAL;
            send_error(rid, AGX_MSG_CONFIG, err, "portal_device %.64s: %s: %s", buf, why, strerror(err));
            return;
        }
    }

    /* default environment for EXEC: replaces the previous one */
    for (size_t i = 0; i < cfg_env_n; i++) free(cfg_env[i]);
    free(cfg_env);
    cfg_env = NULL;
    cfg_env_n = 0;
    if (m->env_count) {
        cfg_env = calloc(m->env_count, sizeof *cfg_env);
        for (size_t i = 0; cfg_env && i < m->env_count; i++) {
            cfg_env[i] = malloc((size_t)m->env[i].len + 1);
            if (!cfg_env[i]) break;
            str_copy(cfg_env[i], (size_t)m->env[i].len + 1, m->env[i]);
            cfg_env_n = i + 1;
        }
        if (cfg_env_n != m->env_count) { err = ENOMEM; snprintf(what, sizeof what, "env"); }
    }

    if (m->hostname.len) {
        if (g_opts.pid1 || g_opts.sandboxed) {
            if (sethostname(m->hostname.ptr, m->hostname.len) < 0 && !err) {
                err = errno;
                snprintf(what, sizeof what, "sethostname");
            }
        } else {
            wlog("test mode: hostname not changed");
        }
    }

    if (m->clock_realtime_ns) {
        if (g_opts.pid1) {
            struct timespec ts = {.tv_sec = (time_t)(m->clock_realtime_ns / 1000000000ull),
                                  .tv_nsec = (long)(m->clock_realtime_ns % 1000000000ull)};
            if (clock_settime(CLOCK_REALTIME, &ts) < 0 && !err) {
                err = errno;
                snprintf(what, sizeof what, "clock_settime");
            }
        } else {
            wlog("test mode: clock not changed");
        }
    }

    portal_ok = m->portal_device.len != 0; /* checked above */

    if (err) send_error(rid, AGX_MSG_CONFIG, err, "%s: %s", what, strerror(err));
    else send_ok(rid);
}

static void quiesce(uint32_t rid)
{
    uint64_t t0 = now_ns(CLOCK_MONOTONIC);
    quiesced = 1;
    sync();
    uint32_t flushed = power_flush_pmem() + portal_quiesce_flush();
    struct agx_quiesce_complete q = {
        .flushed_regions = flushed,
        .running_processes = proc_running(),
        .elapsed_ns = now_ns(CLOCK_MONOTONIC) - t0,
    };
    uint8_t *f = frame_begin();
    if (!f) return;
    frame_commit(f, AGX_MSG_QUIESCE_COMPLETE, AGX_FLAG_REPLY, rid,
                 agx_quiesce_complete_encode(PAYLOAD(f), session_limit, &q));
}

static void shutdown_now(uint32_t rid, const struct agx_shutdown *m)
{
    if (agx_shutdown_check(rid, m, send_error)) return;
    wlog("shutdown requested (%s)", m->mode == AGX_SHUTDOWN_REBOOT ? "reboot" : "poweroff");
    quiesced = 0; /* the children's last output is relayed */
    proc_terminate_all(m->grace_ms);
    sync();
    proc_drain_finished();
    send_ok(rid);
    agent_flush_blocking(2000);
    if (!g_opts.pid1) exit(0);
    power_off(m->mode);
}

/* Scratch for decoded views (they point into rx; large arrays, so not on the stack). */
static union agx_request M;

static void dispatch(const struct agx_header *h, const uint8_t *p)
{
    uint16_t t = h->type;
    uint32_t rid = h->request_id;

    if (agx_request_decode(h, p, capabilities(), &M, send_error)) return;
    if (t != AGX_MSG_HELLO || rid) session_open = 1;   /* the host has spoken: held output may flow */
    switch (t) {
    case AGX_MSG_HELLO: {
        uint16_t selected;
        uint32_t limit;
        if (!agx_hello_select(rid, &M.hello, &selected, &limit, send_error)) {
            if (rid) session_version = (uint8_t)selected;   /* the reply is the first frame in it */
            else session_start();                           /* a new host on a line we cannot watch */
            session_limit = limit;                    /* binds from the reply on */
            size_t at = send_hello(rid, selected);
            if (!rid) out_session_at = at;   /* the newest host's session: see ctl_down */
        }
        break;
    }
    case AGX_MSG_OUTPUT_ACK: proc_output_ack(&M.output_ack); break;
    case AGX_MSG_CONFIG: config_apply(rid, &M.config); break;
    case AGX_MSG_MOUNT: mounts_handle_mount(rid, &M.mount); break;
    case AGX_MSG_UNMOUNT: mounts_handle_unmount(rid, &M.unmount); break;
    case AGX_MSG_EXEC:
        if (quiesced) send_error(rid, t, AGX_ECANCELED, "quiesced: EXEC refused until RESUME");
        else proc_exec(rid, &M.exec, (const char *const *)cfg_env, cfg_env_n);
        break;
    case AGX_MSG_STDIO: proc_stdin(h->version, &M.stdio); break;
    case AGX_MSG_SIGNAL: proc_signal(rid, &M.signal); break;
    case AGX_MSG_QUIESCE: quiesce(rid); break;
    case AGX_MSG_RESUME:
        quiesced = 0;
        send_ok(rid);
        break;
    case AGX_MSG_SHUTDOWN: shutdown_now(rid, &M.shutdown); break;
    case AGX_MSG_PING: {
        if (agx_ping_check(rid, &M.ping, session_limit, send_error)) break;
        uint8_t *f = frame_begin();
        if (!f) break;
        struct agx_pong pong = {.data = M.ping.data};
        frame_commit(f, AGX_MSG_PONG, AGX_FLAG_REPLY, rid, agx_pong_encode(PAYLOAD(f), session_limit, &pong));
        break;
    }
    }
}

/* Frames wait in rx while the output buffer has no room for their replies. */
static int can_answer(void) { return ctl >= 0 && out_pending() <= OUT_CAP - 2 * AGX_MAX_FRAME; }

static void ctl_readable(void)
{
    while (ctl >= 0 && agx_rx_room(&rx)) {
        ssize_t n = read(ctl, agx_rx_tail(&rx), agx_rx_room(&rx));
        if (n > 0) {
            agx_rx_push(&rx, (size_t)n);
            if (out_pending() >= OUT_HIGH + AGX_MAX_FRAME) return;
            continue;
        }
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
        ctl_down(n == 0 ? "end of stream" : strerror(errno));
        return;
    }
}

static void handle_signalfd(void)
{
    struct signalfd_siginfo si;
    while (read(sigfd, &si, sizeof si) == (ssize_t)sizeof si) {}
    proc_reap();
}

/* ---- the loop ---- */
static void loop_setup(void)
{
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGCHLD);
    sigprocmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);
    for (;;) {
        epfd = epoll_create1(EPOLL_CLOEXEC);
        sigfd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
        if (epfd >= 0 && sigfd >= 0 && ev_add(sigfd, EPOLLIN, ev_tag(EV_SIGNALFD, 0, 0)) == 0) return;
        wlog("event loop setup failed: %s; retrying", strerror(errno));
        if (epfd >= 0) close(epfd);
        if (sigfd >= 0) close(sigfd);
        sleep(1);
    }
}

void agent_run(void)
{
    uint64_t next_try = 0;
    int waiting_logged = 0;
    int reading = -1;

    /* proc.c reaches the host and the event loop only through this */
    static struct proc_host host = {
        .send = {.error = send_error, .ok = send_ok, .exec_started = send_exec_started, .stdio = send_stdio,
                 .exit = send_exit, .events_ok = agent_events_ok, .version = agent_session_version,
                 .max_payload = agent_max_payload},
        .stdin_ack = send_stdin_ack, .connected = agent_connected, .bulk_ok = agent_bulk_ok,
        .output_paused = agent_output_paused,
        .flush_blocking = agent_flush_blocking, .ev_add = ev_add, .ev_mod = ev_mod, .ev_del = ev_del,
    };
    host.pid1 = g_opts.pid1;
    host.test_mode = g_opts.test_mode;

    loop_setup();
    proc_init(&host);

    if (g_opts.agent_fd >= 0) {
        set_nonblock(g_opts.agent_fd);
        ctl_up(g_opts.agent_fd, "fd");
    }

    for (;;) {
        /* dial the host while disconnected */
        if (ctl < 0 && now_ns(CLOCK_MONOTONIC) >= next_try) {
            char desc[160];
            int fd = transport_try_connect(desc, sizeof desc);
            if (fd >= 0) {
                wlog("agentx on %s", desc);
                waiting_logged = 0;
                ctl_up(fd, desc);
            } else {
                if (!waiting_logged) wlog("waiting for the host (transport %s)", transport_kind_name());
                waiting_logged = 1;
                next_try = now_ns(CLOCK_MONOTONIC) + RETRY_MS * 1000000ull;
            }
        }

        flush_out();
        agx_rx_process(&rx);
        proc_flush_acks();
        proc_pump_output();
        flush_out();

        /* backpressure: children are read while their output has somewhere to go (proc.c also
         * stops a stream whose AGX_OUTPUT_BUFFER is full); quiesced: producers pause */
        int want = !quiesced && (ctl < 0 || agent_bulk_ok());
        if (want != reading) {
            proc_set_reading(want);
            reading = want;
        }
        proc_update_watches();
        ctl_update_events();

        int timeout = proc_timeout_ms(); /* EXIT grace deadlines */
        if (ctl < 0) {
            uint64_t now = now_ns(CLOCK_MONOTONIC);
            int t = next_try > now ? (int)((next_try - now) / 1000000ull) + 1 : 0;
            if (timeout < 0 || t < timeout) timeout = t;
        }
        struct epoll_event evs[64];
        int n = epoll_wait(epfd, evs, 64, timeout);
        if (n < 0) {
            if (errno != EINTR) {
                wlog("epoll_wait: %s", strerror(errno));
                sleep(1);
            }
            continue;
        }
        for (int i = 0; i < n; i++) {
            uint64_t tag = evs[i].data.u64;
            uint32_t kind = (uint32_t)(tag >> 32), idx = (uint32_t)(tag >> 8) & 0xFFFFFF, stream = tag & 0xFF;
            uint32_t e = evs[i].events;
            switch (kind) {
            case EV_CTL:
                if (ctl < 0) break;
                if (e & EPOLLOUT) flush_out();
                if (ctl >= 0 && (e & EPOLLIN)) ctl_readable();
                if (ctl >= 0 && (e & (EPOLLHUP | EPOLLERR)) && !(e & EPOLLIN)) ctl_down("hangup");
                break;
            case EV_SIGNALFD: handle_signalfd(); break;
            case EV_PROC_OUT: proc_on_output(idx, stream); break;
            case EV_PROC_IN: proc_on_stdin_writable(idx, e); break;
            }
        }
        proc_timers();
        proc_flush_acks();
        proc_pump_output();
    }
}
