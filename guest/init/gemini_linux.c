/* Linux glue of Gemini (guest/gemini/ is the freestanding core; docs/gemini.md the protocol).
 *
 *   /init gemini serve [--portal] [--attach-timeout-ms N]
 *        the guest's Gemini agent: maps the Portal, is the client of its EVENT/UPCALL rings and
 *        owns the guest arena; doorbells on the virtio-serial ports the spec names
 *        (GEMINI_SIGNAL_PORT_NAME guest -> host, GEMINI_UPCALL_PORT_NAME host -> guest; without
 *        them it polls); serves local clients on the abstract unix socket @wslx-gemini. Started
 *        by the host with AgentX EXEC (stdin=True); ends when stdin closes. --portal: it also
 *        serves the Portal's SUBMIT -> COMPLETE (guest/portal's service), with the Portal
 *        doorbells on the signal port (byte SUBMIT from the host, COMPLETE to it) as
 *        `portal serve` has them: a virtio-serial port has one opener, so one process owns
 *        the signal port (a `portal serve` beside this agent finds it taken and polls).
 *   wslx-call [--reply-cap N] [--timeout-ms N] SERVICE METHOD [ARGS...]      (argv[0], /bin/wslx-call)
 *        one call through the agent; the reply on stdout; exit 0, or 1 with the error on stderr
 *   wslx-call --subscribe TOPIC [--count N]
 *        the subscriber: the agent hands it a socket fd and it blocks reading upcalls of TOPIC,
 *        printing each as "TOPIC LEN DATA\n"; ends after N (default: never)
 *   wslx-call --bench COUNT [--reply-cap N] SERVICE METHOD [ARGS...]
 *        COUNT sequential calls inside the agent (one span, reused); prints calls, ns and bytes
 *
 * The local socket's messages (struct ipc_*) are private to this file: both ends are this
 * binary. Per subscriber the agent queues at most GEMINI_UPCALL_QUEUE_DEPTH upcalls; a full
 * queue drops the upcall and the host hears it (UPCALL_DONE NOSPC). */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "init.h"
#include "../gemini/gemini.h"

#define IPC_NAME "wslx-gemini"   /* abstract unix socket */
#define CLIENTS_MAX 16
#define DEFAULT_REPLY_CAP (1u << 20)
#define GUEST_GRACE_MS 5000      /* a caller waits this much longer than the call's own deadline */
#define SPIN_NS 2000000u         /* a waiting caller polls this long before sleeping on the doorbell */

enum { IPC_CALL = 1, IPC_SUBSCRIBE = 2, IPC_BENCH = 3 };
struct ipc_req {
    uint32_t kind, service_len, method_len, args_len, reply_cap, timeout_ms;
    uint64_t count;
};
struct ipc_resp {
    int32_t status; /* GEMINI_ERR_* (positive) */
    uint32_t reserved;
    uint64_t value, len, elapsed_ns, count;
};
struct ipc_upcall {
    uint32_t topic_len, data_len;
};

struct queued {
    unsigned char *buf; /* struct ipc_upcall, topic, data */
    size_t len, off;
};

struct client {
    int fd;      /* -1: the caller went away (a call may still be pending) */
    int used;
    int kind;
    int calling; /* a call is pending on the ring */
    uint64_t give_up_ns;
    struct gemini_call call;
    char topic[GEMINI_NAME_MAX];
    uint32_t topic_len;
    struct queued q[GEMINI_UPCALL_QUEUE_DEPTH];
    unsigned qhead, qcount;
};

static struct {
    struct gemini_client g;
    int signal_fd, upcall_fd, listen_fd;
    struct client c[CLIENTS_MAX];
    uint64_t doorbells_rung, doorbells_heard;
} A;

static uint64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static socklen_t ipc_addr(struct sockaddr_un *a)
{
    memset(a, 0, sizeof *a);
    a->sun_family = AF_UNIX;
    memcpy(a->sun_path + 1, IPC_NAME, sizeof IPC_NAME - 1); /* leading NUL: abstract */
    return (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + sizeof IPC_NAME - 1);
}

/* Whole reads/writes on a socket with SO_RCVTIMEO/SO_SNDTIMEO set: 0 or -1. */
static int read_all(int fd, void *buf, size_t n)
{
    unsigned char *p = buf;
    while (n) {
        ssize_t k = read(fd, p, n);
        if (k < 0 && errno == EINTR) continue;
        if (k <= 0) return -1;
        p += k;
        n -= (size_t)k;
    }
    return 0;
}

static int write_all(int fd, const void *buf, size_t n)
{
    const unsigned char *p = buf;
    while (n) {
        ssize_t k = write(fd, p, n);
        if (k < 0 && errno == EINTR) continue;
        if (k <= 0) return -1;
        p += k;
        n -= (size_t)k;
    }
    return 0;
}

static void set_timeouts(int fd, int ms)
{
    struct timeval tv = {.tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
}

/* ------------------------------------------------------------------ the agent */

static void ring_host(void)
{
    if (A.signal_fd >= 0 && gemini_host_wants_wakeup(&A.g)) {
        unsigned char b = PORTAL_RING_EVENT;
        if (write(A.signal_fd, &b, 1) == 1) A.doorbells_rung++;
    }
}

/* Upcall sink (gemini_poll): queue a copy for every subscriber of the topic. */
static int deliver(void *ctx, const char *topic, uint32_t topic_len, const void *data, uint32_t data_len)
{
    (void)ctx;
    int matched = 0, dropped = 0;
    for (unsigned i = 0; i < CLIENTS_MAX; i++) {
        struct client *c = &A.c[i];
        if (!c->used || c->kind != IPC_SUBSCRIBE || c->topic_len != topic_len || memcmp(c->topic, topic, topic_len))
            continue;
        matched++;
        size_t len = sizeof(struct ipc_upcall) + topic_len + data_len;
        unsigned char *buf = c->qcount < GEMINI_UPCALL_QUEUE_DEPTH ? malloc(len) : NULL;
        if (!buf) {
            dropped++;
            continue;
        }
        struct ipc_upcall h = {topic_len, data_len};
        memcpy(buf, &h, sizeof h);
        memcpy(buf + sizeof h, topic, topic_len);
        memcpy(buf + sizeof h + topic_len, data, data_len); /* out of the host's span: it is freed after DONE */
        struct queued *q = &c->q[(c->qhead + c->qcount++) % GEMINI_UPCALL_QUEUE_DEPTH];
        q->buf = buf;
        q->len = len;
        q->off = 0;
    }
    if (!matched) return GERR(GEMINI_ERR_NOENT);
    return dropped ? GERR(GEMINI_ERR_NOSPC) : 0;
}

static void client_close(struct client *c)
{
    if (c->fd >= 0) close(c->fd);
    c->fd = -1;
    while (c->qcount) {
        free(c->q[c->qhead].buf);
        c->qhead = (c->qhead + 1) % GEMINI_UPCALL_QUEUE_DEPTH;
        c->qcount--;
    }
    if (!c->calling) c->used = 0; /* a pending call keeps the slot (and its span) until its reply */
}

static void respond(struct client *c, int status, uint64_t value, const void *data, uint64_t len, uint64_t ns,
                    uint64_t count)
{
    struct ipc_resp r = {.status = status, .value = value, .len = data ? len : 0, .elapsed_ns = ns, .count = count};
    if (c->fd < 0) return;
    if (write_all(c->fd, &r, sizeof r) < 0 || (data && len && write_all(c->fd, data, len) < 0)) client_close(c);
}

/* Replies arrived (or the caller's patience ran out): answer local callers. */
static void finish_calls(void)
{
    uint64_t now = mono_ns();
    for (unsigned i = 0; i < CLIENTS_MAX; i++) {
        struct client *c = &A.c[i];
        if (!c->used || !c->calling) continue;
        if (c->call.done) {
            uint32_t tlen = 0;
            const void *data = gemini_call_reply(&A.g, &c->call), *text = gemini_call_error_text(&A.g, &c->call, &tlen);
            c->calling = 0;
            respond(c, c->call.status, c->call.value, text ? text : data, text ? tlen : c->call.result, 0, 1);
            gemini_call_release(&A.g, &c->call);
            client_close(c);
        } else if (c->fd >= 0 && now > c->give_up_ns) {
            respond(c, GEMINI_ERR_TIMEDOUT, 0, NULL, 0, 0, 0); /* the span stays until the reply */
            close(c->fd);
            c->fd = -1;
        }
    }
}

/* Write queued upcalls to subscribers without blocking. */
static void flush_subscribers(void)
{
    for (unsigned i = 0; i < CLIENTS_MAX; i++) {
        struct client *c = &A.c[i];
        while (c->used && c->kind == IPC_SUBSCRIBE && c->qcount) {
            struct queued *q = &c->q[c->qhead];
            ssize_t k = send(c->fd, q->buf + q->off, q->len - q->off, MSG_DONTWAIT | MSG_NOSIGNAL);
            if (k < 0 && (errno == EAGAIN || errno == EINTR)) break;
            if (k <= 0) {
                client_close(c);
                break;
            }
            q->off += (size_t)k;
            if (q->off < q->len) break;
            free(q->buf);
            c->qhead = (c->qhead + 1) % GEMINI_UPCALL_QUEUE_DEPTH;
            c->qcount--;
        }
    }
}

/* Wait for a call's reply: spin, then sleep on the UPCALL doorbell. 0 or a negative error. */
static int await_reply(struct gemini_call *call, uint64_t deadline_ns)
{
    uint64_t spin_until = mono_ns() + SPIN_NS;
    unsigned spins = 0;
    while (!call->done) {
        int n = gemini_poll(&A.g);
        if (n < 0) return n;
        if (n || (++spins & 63) || mono_ns() < spin_until) { /* the host usually answers within the spin */
            if (!n) __builtin_ia32_pause();
            continue;
        }
        if (mono_ns() > deadline_ns) return GERR(GEMINI_ERR_TIMEDOUT);
        gemini_want_wakeup(&A.g, 1);
        if (!call->done && gemini_poll(&A.g) == 0) {
            struct pollfd p = {.fd = A.upcall_fd, .events = POLLIN};
            if (A.upcall_fd >= 0 && poll(&p, 1, 10) > 0) {
                unsigned char buf[64];
                ssize_t k = read(A.upcall_fd, buf, sizeof buf);
                if (k > 0) A.doorbells_heard += (uint64_t)k;
            } else if (A.upcall_fd < 0) {
                sched_yield();
            }
        }
        gemini_want_wakeup(&A.g, 0);
        spin_until = mono_ns() + SPIN_NS;
    }
    return 0;
}

/* HELLO (docs/gemini.md): settle the record version before serving. A host that does not
 * answer within wait_ms leaves the client on version 1 until the reply comes. */
static void negotiate(uint64_t wait_ms)
{
    uint64_t deadline = mono_ns() + wait_ms * 1000000u;
    int rc;
    while ((rc = gemini_hello(&A.g)) == PERR(PORTAL_ERR_AGAIN) && mono_ns() < deadline) usleep(1000);
    if (!rc) {
        ring_host();
        rc = await_reply(&A.g.hello, deadline);
    }
    int v = gemini_version(&A.g);
    if (v > 0)
        printf("gemini: version %d (host status %s)\n", v, gemini_err_name(A.g.hello_status));
    else if (v < 0)
        printf("gemini: no common version with the host: every call fails with PROTONOSUPPORT\n");
    else
        printf("gemini: HELLO unanswered (%s): version-%u records until it is\n",
               rc ? gemini_err_name(-rc) : "pending", A.g.vmin);
}

/* IPC_BENCH: count calls in a row on one span (the record is written once). */
static void bench(struct client *c, const char *service, const char *method, const void *args,
                  const struct ipc_req *rq)
{
    struct gemini_call call;
    uint64_t bytes = 0, done = 0;
    int rc = gemini_call_prepare(&A.g, &call, service, method, args, rq->args_len, rq->reply_cap, rq->timeout_ms);
    if (rc) {
        respond(c, -rc, 0, NULL, 0, 0, 0);
        return;
    }
    int status = 0;
    uint64_t t0 = mono_ns();
    for (; done < rq->count; done++) {
        while ((rc = gemini_call_submit(&A.g, &call)) == PERR(PORTAL_ERR_AGAIN)) gemini_poll(&A.g);
        if (rc) break;
        ring_host();
        rc = await_reply(&call, mono_ns() + (uint64_t)(rq->timeout_ms + GUEST_GRACE_MS) * 1000000u);
        if (rc) break;
        if (call.status) {
            status = call.status;
            done++;
            break;
        }
        bytes += call.result;
    }
    uint64_t ns = mono_ns() - t0;
    if (rc) status = -rc;
    if (!call.done) { /* keep the span: the reply may still come (leaked until then: rare) */
    } else {
        gemini_call_release(&A.g, &call);
    }
    respond(c, status, bytes, NULL, 0, ns, done);
}

/* A new local connection: read its request (it is sent at once) and start it. */
static void accept_client(void)
{
    int fd = accept4(A.listen_fd, NULL, NULL, SOCK_CLOEXEC);
    if (fd < 0) return;
    struct client *c = NULL;
    for (unsigned i = 0; i < CLIENTS_MAX && !c; i++)
        if (!A.c[i].used) c = &A.c[i];
    set_timeouts(fd, 2000);
    struct ipc_req rq;
    char service[GEMINI_NAME_MAX + 1] = "", method[GEMINI_NAME_MAX + 1] = "";
    unsigned char *args = NULL;
    if (read_all(fd, &rq, sizeof rq) < 0 || rq.service_len > GEMINI_NAME_MAX || rq.method_len > GEMINI_NAME_MAX ||
        rq.args_len > GEMINI_ARGS_MAX || read_all(fd, service, rq.service_len) < 0 ||
        read_all(fd, method, rq.method_len) < 0 || (rq.args_len && (!(args = malloc(rq.args_len)) ||
                                                                     read_all(fd, args, rq.args_len) < 0))) {
        free(args);
        close(fd);
        return;
    }
    struct client tmp = {.fd = fd};
    if (!c) {
        respond(&tmp, GEMINI_ERR_BUSY, 0, NULL, 0, 0, 0);
        close(fd);
        free(args);
        return;
    }
    memset(c, 0, sizeof *c);
    c->fd = fd;
    c->used = 1;
    c->kind = (int)rq.kind;
    if (rq.reply_cap > GEMINI_REPLY_MAX) rq.reply_cap = GEMINI_REPLY_MAX;
    if (rq.kind == IPC_SUBSCRIBE) {
        if (!gemini_name_ok(service, rq.service_len)) {
            respond(c, GEMINI_ERR_INVAL, 0, NULL, 0, 0, 0);
            client_close(c);
        } else {
            memcpy(c->topic, service, rq.service_len);
            c->topic_len = rq.service_len;
            respond(c, 0, 0, NULL, 0, 0, 0);
        }
    } else if (rq.kind == IPC_BENCH) {
        bench(c, service, method, args, &rq);
        client_close(c);
    } else if (rq.kind == IPC_CALL) {
        int rc = gemini_call_prepare(&A.g, &c->call, service, method, args, rq.args_len, rq.reply_cap, rq.timeout_ms);
        if (!rc) {
            rc = gemini_call_submit(&A.g, &c->call);
            if (rc) gemini_call_release(&A.g, &c->call);
        }
        if (rc) {
            respond(c, rc == PERR(PORTAL_ERR_AGAIN) ? (int)GEMINI_ERR_BUSY : -rc, 0, NULL, 0, 0, 0);
            client_close(c);
        } else {
            c->calling = 1;
            uint32_t t = rq.timeout_ms ? rq.timeout_ms : GEMINI_DEFAULT_TIMEOUT_MS;
            c->give_up_ns = mono_ns() + (uint64_t)(t + GUEST_GRACE_MS) * 1000000u;
            ring_host();
        }
    } else {
        respond(c, GEMINI_ERR_INVAL, 0, NULL, 0, 0, 0);
        client_close(c);
    }
    free(args);
}

static int open_port(unsigned port, const char *name, const char *what)
{
    char where[400];
    int fd = gemini_port_open(port, name, where, sizeof where);
    if (fd < 0) printf("gemini: no %s port: %s: %s: polling instead\n", what, where, strerror(errno));
    else printf("gemini: %s port %u on %s\n", what, port, where);
    return fd;
}

/* `gemini ports [--cmdline STR]`: where serve's doorbells would go (tests: the transport choice). */
static int cmd_ports(int argc, char **argv)
{
    if (argc >= 2 && !strcmp(argv[0], "--cmdline")) transport_init(argv[1]);
    for (int i = 0; i < 2; i++) {
        int fd = open_port(i ? GEMINI_PORT_UPCALL : GEMINI_PORT_SIGNAL, i ? GEMINI_UPCALL_PORT_NAME
                           : GEMINI_SIGNAL_PORT_NAME, i ? "upcall" : "signal");
        if (fd >= 0) close(fd);
    }
    return 0;
}

static int cmd_serve(int argc, char **argv)
{
    unsigned char *window;
    uint64_t size;
    char err[1024];
    long attach_ms = 10000;
    int portal = 0;
    static struct portal_guest P;
    for (int i = 0; i < argc; i++) {
        if (!strcmp(argv[i], "--attach-timeout-ms") && i + 1 < argc) attach_ms = strtol(argv[++i], NULL, 0);
        else if (!strcmp(argv[i], "--portal")) portal = 1;
    }

    signal(SIGPIPE, SIG_IGN);
    if (portal_linux_window(&window, &size, err, sizeof err) < 0) {
        printf("gemini: %s\n", err);
        return 2;
    }
    uint64_t deadline = mono_ns() + (uint64_t)attach_ms * 1000000u;
    int rc;
    while ((rc = gemini_client_init(&A.g, window, size)) && mono_ns() < deadline) usleep(10000);
    if (rc) {
        printf("gemini: no valid Portal header: %s\n", portal_err_name(-rc));
        return 3;
    }
    gemini_client_set_deliver(&A.g, deliver, NULL);
    if (portal && (rc = portal_guest_init(&P, window, size))) {
        printf("portal: no valid Portal header: %s\n", portal_err_name(-rc));
        return 3;
    }
    for (unsigned i = 0; i < CLIENTS_MAX; i++) A.c[i].fd = -1;
    A.signal_fd = open_port(GEMINI_PORT_SIGNAL, GEMINI_SIGNAL_PORT_NAME, "signal");
    A.upcall_fd = open_port(GEMINI_PORT_UPCALL, GEMINI_UPCALL_PORT_NAME, "upcall");
    struct sockaddr_un addr;
    socklen_t alen = ipc_addr(&addr);
    A.listen_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (A.listen_fd < 0 || bind(A.listen_fd, (struct sockaddr *)&addr, alen) < 0 || listen(A.listen_fd, 16) < 0) {
        printf("gemini: local socket @%s: %s\n", IPC_NAME, strerror(errno));
        return 2;
    }
    fcntl(0, F_SETFL, fcntl(0, F_GETFL) | O_NONBLOCK);
    negotiate(5000);
    if (portal) /* the Portal service too, its doorbells on the signal port (bytes SUBMIT / COMPLETE) */
        printf("portal: serving generation %llu (doorbells on %s)\n", (unsigned long long)P.end.info.generation,
               A.signal_fd >= 0 ? GEMINI_SIGNAL_PORT_NAME : "nothing: polled");
    printf("gemini: serving generation %llu on @%s\n", (unsigned long long)A.g.end.info.generation, IPC_NAME);
    fflush(stdout);

    int sleep_ms = 1;
    unsigned idle = 0;
    for (;;) {
        int n = gemini_poll(&A.g);
        if (n < 0) {
            printf("gemini: detached: %s\n", portal_err_name(-n));
            return 3;
        }
        if (portal) {
            int m = portal_service_step(&P, 256);
            if (m < 0) {
                printf("portal: detached from generation %llu: %s\n", (unsigned long long)P.end.info.generation,
                       portal_err_name(-m));
                portal = 0;
            } else if (m > 0) {
                unsigned char b = PORTAL_RING_COMPLETE;
                if (A.signal_fd >= 0 && portal_guest_host_wants_wakeup(&P) && write(A.signal_fd, &b, 1) == 1)
                    A.doorbells_rung++;
                n += m;
            }
        }
        finish_calls();
        flush_subscribers();
        if (n > 0) {
            idle = 0;
            sleep_ms = 1;
            continue;
        }
        if (++idle < 2000) { /* spin a while; look at the sockets every 256 rounds */
            __builtin_ia32_pause();
            if (idle & 255) continue;
        }
        struct pollfd p[4 + CLIENTS_MAX];
        unsigned np = 0;
        p[np++] = (struct pollfd){.fd = 0, .events = POLLIN};
        p[np++] = (struct pollfd){.fd = A.listen_fd, .events = POLLIN};
        /* a port whose host side is closed polls POLLHUP at once: leave it out (-1 is skipped) */
        int upcall_fd = A.upcall_fd >= 0 && vport_host_connected(A.upcall_fd) ? A.upcall_fd : -1;
        int signal_fd = A.signal_fd >= 0 && vport_host_connected(A.signal_fd) ? A.signal_fd : -1;
        p[np++] = (struct pollfd){.fd = upcall_fd, .events = POLLIN};
        p[np++] = (struct pollfd){.fd = signal_fd, .events = POLLIN};  /* SUBMIT doorbells (--portal) */
        int calling = 0;
        for (unsigned i = 0; i < CLIENTS_MAX; i++) {
            struct client *c = &A.c[i];
            calling |= c->used && c->calling;
            p[np++] = (struct pollfd){.fd = c->used && c->kind == IPC_SUBSCRIBE ? c->fd : -1,
                                      .events = (short)(POLLIN | (c->qcount ? POLLOUT : 0))};
        }
        int wait_ms = idle < 2000 ? 0 : sleep_ms;
        if (upcall_fd < 0 && wait_ms > 2) wait_ms = 2;   /* no doorbell: poll the ring often */
        if (calling && wait_ms > 10) wait_ms = 10;       /* a caller's patience is checked on the way */
        gemini_want_wakeup(&A.g, 1);
        if (portal) portal_want_wakeup(&P.end, PORTAL_RING_SUBMIT, 1);
        if (portal_pending(&A.g.end, PORTAL_RING_UPCALL) == 0 && wait_ms &&
            !(portal && portal_pending(&P.end, PORTAL_RING_SUBMIT)))
            poll(p, np, wait_ms);
        else
            poll(p, np, 0);
        gemini_want_wakeup(&A.g, 0);
        if (portal) portal_want_wakeup(&P.end, PORTAL_RING_SUBMIT, 0);
        if (wait_ms && sleep_ms < 64) sleep_ms *= 2;
        if (p[0].revents) {
            char buf[64];
            ssize_t k = read(0, buf, sizeof buf);
            if (k == 0 || (k < 0 && errno != EAGAIN && errno != EINTR)) {
                printf("gemini: stdin closed; calls %llu replies %llu upcalls %llu dropped %llu bad %llu "
                       "doorbells rung %llu heard %llu\n", (unsigned long long)A.g.calls,
                       (unsigned long long)A.g.replies, (unsigned long long)A.g.upcalls,
                       (unsigned long long)A.g.upcalls_dropped, (unsigned long long)A.g.bad_messages,
                       (unsigned long long)A.doorbells_rung, (unsigned long long)A.doorbells_heard);
                return 0;
            }
        }
        if (p[1].revents & POLLIN) {
            accept_client();
            idle = 0;
        }
        for (unsigned i = 2; i < 4; i++) /* doorbells: only a hint to poll again */
            if (p[i].revents & POLLIN) {
                unsigned char buf[64];
                ssize_t k = read(p[i].fd, buf, sizeof buf);
                if (k > 0) A.doorbells_heard += (uint64_t)k;
                idle = 0;
            }
        for (unsigned i = 0; i < CLIENTS_MAX; i++) {
            struct client *c = &A.c[i];
            if (c->used && c->kind == IPC_SUBSCRIBE && (p[4 + i].revents & (POLLIN | POLLHUP | POLLERR))) {
                char buf[16];
                ssize_t k = recv(c->fd, buf, sizeof buf, MSG_DONTWAIT);
                if (k == 0 || (k < 0 && errno != EAGAIN)) client_close(c); /* the subscriber left */
            }
        }
    }
}

int gemini_main(int argc, char **argv)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (argc >= 2 && !strcmp(argv[1], "serve")) return cmd_serve(argc - 2, argv + 2);
    if (argc >= 2 && !strcmp(argv[1], "ports")) return cmd_ports(argc - 2, argv + 2);
    fprintf(stderr, "usage: wslx-init gemini serve [--portal] [--attach-timeout-ms N]\n");
    return 2;
}

/* ------------------------------------------------------------------ wslx-call */

static int usage_call(void)
{
    fprintf(stderr, "usage: wslx-call [--reply-cap N] [--timeout-ms N] SERVICE METHOD [ARGS...]\n"
                    "       wslx-call --subscribe TOPIC [--count N]\n"
                    "       wslx-call --bench COUNT [--reply-cap N] [--timeout-ms N] SERVICE METHOD [ARGS...]\n");
    return 2;
}

static int connect_agent(void)
{
    struct sockaddr_un addr;
    socklen_t alen = ipc_addr(&addr);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || connect(fd, (struct sockaddr *)&addr, alen) < 0) {
        fprintf(stderr, "wslx-call: the Gemini agent (@%s) is not running: %s\n", IPC_NAME, strerror(errno));
        if (fd >= 0) close(fd);
        return -1;
    }
    return fd;
}

static int send_req(int fd, uint32_t kind, const char *service, const char *method, char **args, int nargs,
                    uint32_t reply_cap, uint32_t timeout_ms, uint64_t count)
{
    size_t alen = 0;
    for (int i = 0; i < nargs; i++) alen += strlen(args[i]) + 1;
    if (alen > GEMINI_ARGS_MAX || strlen(service) > GEMINI_NAME_MAX || strlen(method) > GEMINI_NAME_MAX) {
        fprintf(stderr, "wslx-call: names over %u bytes or args over %u bytes\n", GEMINI_NAME_MAX, GEMINI_ARGS_MAX);
        return -1;
    }
    struct ipc_req rq = {kind, (uint32_t)strlen(service), (uint32_t)strlen(method), (uint32_t)alen, reply_cap,
                         timeout_ms, count};
    if (write_all(fd, &rq, sizeof rq) < 0 || write_all(fd, service, rq.service_len) < 0 ||
        write_all(fd, method, rq.method_len) < 0)
        return -1;
    for (int i = 0; i < nargs; i++)
        if (write_all(fd, args[i], strlen(args[i]) + 1) < 0) return -1;
    return 0;
}

static int subscribe(const char *topic, long count)
{
    int fd = connect_agent();
    struct ipc_resp r;
    if (fd < 0) return 1;
    if (send_req(fd, IPC_SUBSCRIBE, topic, "", NULL, 0, 0, 0, 0) < 0 || read_all(fd, &r, sizeof r) < 0) {
        fprintf(stderr, "wslx-call: subscribing to %s: %s\n", topic, strerror(errno));
        return 1;
    }
    if (r.status) {
        fprintf(stderr, "wslx-call: subscribe %s: %s\n", topic, gemini_err_name(r.status));
        return 1;
    }
    printf("subscribed %s\n", topic);
    fflush(stdout);
    static unsigned char buf[GEMINI_NAME_MAX + GEMINI_UPCALL_DATA_MAX];
    for (long got = 0; count < 0 || got < count; got++) {
        struct ipc_upcall h;
        if (read_all(fd, &h, sizeof h) < 0) return 0; /* the agent ended */
        if (h.topic_len > GEMINI_NAME_MAX || h.data_len > GEMINI_UPCALL_DATA_MAX ||
            read_all(fd, buf, h.topic_len + h.data_len) < 0)
            return 1;
        printf("%.*s %u ", (int)h.topic_len, (const char *)buf, h.data_len);
        fwrite(buf + h.topic_len, 1, h.data_len, stdout);
        printf("\n");
        fflush(stdout);
    }
    return 0;
}

int wslx_call_main(int argc, char **argv)
{
    uint32_t reply_cap = DEFAULT_REPLY_CAP, timeout_ms = 0;
    long bench_count = -1, sub_count = -1;
    const char *topic = NULL;
    int i = 1;
    for (; i < argc && !strncmp(argv[i], "--", 2); i++) {
        if (i + 1 >= argc) return usage_call();
        char *end;
        long v = strtol(argv[i + 1], &end, 0);
        if (!strcmp(argv[i], "--subscribe")) topic = argv[++i];
        else if (*end || v < 0) return usage_call();
        else if (!strcmp(argv[i], "--reply-cap")) reply_cap = (uint32_t)v, i++;
        else if (!strcmp(argv[i], "--timeout-ms")) timeout_ms = (uint32_t)v, i++;
        else if (!strcmp(argv[i], "--bench")) bench_count = v, i++;
        else if (!strcmp(argv[i], "--count")) sub_count = v, i++;
        else return usage_call();
    }
    if (topic) return subscribe(topic, sub_count);
    if (argc - i < 2) return usage_call();
    int fd = connect_agent();
    if (fd < 0) return 1;
    uint32_t kind = bench_count >= 0 ? IPC_BENCH : IPC_CALL;
    if (send_req(fd, kind, argv[i], argv[i + 1], argv + i + 2, argc - i - 2, reply_cap, timeout_ms,
                 bench_count >= 0 ? (uint64_t)bench_count : 1) < 0) {
        fprintf(stderr, "wslx-call: sending the call: %s\n", strerror(errno));
        return 1;
    }
    struct ipc_resp r;
    if (read_all(fd, &r, sizeof r) < 0) {
        fprintf(stderr, "wslx-call: no answer from the Gemini agent: %s\n", strerror(errno));
        return 1;
    }
    if (kind == IPC_BENCH) {
        printf("gemini bench calls %llu ns %llu bytes %llu status %s\n", (unsigned long long)r.count,
               (unsigned long long)r.elapsed_ns, (unsigned long long)r.value, gemini_err_name(r.status));
        return r.status ? 1 : 0;
    }
    static unsigned char buf[1 << 16];
    if (r.status) { /* with the host's text (version >= GEMINI_ERROR_TEXT_VERSION): hostile bytes, shown safely */
        size_t k = r.len < 512 ? (size_t)r.len : 512;
        if (k && read_all(fd, buf, k) < 0) k = 0;
        for (size_t j = 0; j < k; j++)
            if (buf[j] < 0x20 || buf[j] > 0x7e) buf[j] = '?';
        fprintf(stderr, "wslx-call: %s.%s: %s (%d)%s%.*s\n", argv[i], argv[i + 1], gemini_err_name(r.status),
                r.status, k ? ": " : "", (int)k, (const char *)buf);
        return 1;
    }
    for (uint64_t left = r.len; left;) {
        size_t k = left < sizeof buf ? (size_t)left : sizeof buf;
        if (read_all(fd, buf, k) < 0 || write_all(1, buf, k) < 0) return 1;
        left -= k;
    }
    return 0;
}
