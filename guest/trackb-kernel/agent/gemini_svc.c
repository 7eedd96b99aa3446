/* gemini_svc.c: the `gemini` built-in, i.e. guest/gemini's freestanding client (linked
 * unchanged) run as cooperative agent programs over the Portal window in pmem.
 *
 *   gemini serve [--subscribe TOPIC]
 *        says "gemini: serving ... version V" once HELLO settled the record version (or
 *        after HELLO_WAIT_NS without an answer: version 1 until it comes), then
 *        keeps the client polled (below) and is the built-in
 *        subscriber of TOPIC: each upcall is printed on stdout as "TOPIC LEN DATA\n".
 *        Its queue holds GEMINI_UPCALL_QUEUE_DEPTH upcalls of up to SUB_DATA_MAX bytes;
 *        when full (or an upcall is larger) the upcall is dropped and the host is told
 *        (UPCALL_DONE NOSPC). Ends on SIGNAL.
 *   gemini call [--reply-cap N] SERVICE METHOD [ARGS...]
 *        one call; the reply on stdout; exit 0, or 1 with the error on stderr
 *   gemini bench COUNT REPLY_CAP SERVICE METHOD [ARGS...]
 *        COUNT sequential calls on one span; prints "gemini bench calls N ns T bytes B status S"
 *   gemini stat
 *        the UPCALL doorbells heard and the polls they caused, upcalls taken and dropped
 *
 * Doorbells: after a submit the byte EVENT goes to the host on the SIGNAL port when the host
 * sleeps on EVENT (env_signal; without the port the host polls). The other way, serve sleeps
 * on the UPCALL port while no call is in flight: it sets want_wakeup on UPCALL and polls the
 * ring when the host's byte comes (env_upcall_drain), and every IDLE_POLL_NS as well
 * (doorbells are hints). Calls in flight, or no UPCALL port (hv_sock, the host harness):
 * UPCALL is polled on every agent loop step. The client is shared by every gemini
 * program (one EVENT producer / UPCALL consumer per region): the agent loop is single-
 * threaded, so whichever program steps polls for all of them. */
#include "agent_int.h"
#include "gemini_svc.h"
#include "../../gemini/gemini.h"

#define PROGS 4
#define SUB_DATA_MAX 4096u
#define ARGS_BUF 1024u
#define OUT_CHUNK 4096u
#define CALL_GRACE_NS 5000000000ull
#define BENCH_STEP_NS 5000000ull       /* a bench step yields to the agent loop after 5 ms */
#define HELLO_WAIT_NS 5000000000ull    /* serve announces itself without a HELLO answer after 5 s */
#define TEXT_MAX 256u                  /* bytes of a host's error text shown */
#define IDLE_POLL_NS 20000000ull       /* serve asleep on the UPCALL port still polls every 20 ms */

enum { G_FREE, G_SERVE, G_CALL, G_BENCH, G_DONE, G_STAT };

struct queued {
    uint32_t data_len;
    unsigned char data[SUB_DATA_MAX];
};

struct gprog {
    int mode, status;
    struct gemini_call call;
    int submitted, announced;
    uint64_t deadline_ns, t0, count, done, bytes;
    uint64_t out_off;                  /* G_CALL: reply bytes written so far */
    char topic[GEMINI_NAME_MAX];
    uint32_t topic_len;
};

static struct gprog progs[PROGS];
static struct gemini_client client;
static int attached;
static struct {
    struct queued q[GEMINI_UPCALL_QUEUE_DEPTH];
    unsigned head, count;
    struct gprog *owner;               /* the serve program that subscribed */
} sub;
static struct {
    int asleep;                        /* want_wakeup is set on UPCALL and the ring was empty */
    uint64_t next_poll_ns;
    uint64_t heard, woken, idle_polls; /* doorbell bytes; polls made on one; polls without */
    uint64_t woken_upcalls;            /* upcalls taken by the polls made on a doorbell */
} bell;

static int deliver(void *ctx, const char *topic, uint32_t topic_len, const void *data, uint32_t data_len)
{
    (void)ctx;
    if (!sub.owner || sub.owner->topic_len != topic_len || ag_memcmp(sub.owner->topic, topic, topic_len))
        return GERR(GEMINI_ERR_NOENT);
    if (sub.count == GEMINI_UPCALL_QUEUE_DEPTH || data_len > SUB_DATA_MAX) return GERR(GEMINI_ERR_NOSPC);
    struct queued *q = &sub.q[(sub.head + sub.count++) % GEMINI_UPCALL_QUEUE_DEPTH];
    q->data_len = data_len;
    ag_memcpy(q->data, data, data_len);
    return 0;
}

/* The shared client, attached on first use; 0 or a negative error. */
static int ensure_client(void *pmem, uint64_t pmem_size)
{
    if (attached) return 0;
    if (pmem_size < PORTAL_WINDOW_OFFSET + PORTAL_HEADER_PAGE) return PERR(PORTAL_ERR_FAULT);
    int rc = gemini_client_init(&client, (unsigned char *)pmem + PORTAL_WINDOW_OFFSET,
                                pmem_size - PORTAL_WINDOW_OFFSET);
    if (rc) return rc;
    gemini_client_set_deliver(&client, deliver, 0);
    attached = 1;
    if (gemini_hello(&client) == 0 && gemini_host_wants_wakeup(&client)) /* AGAIN: poll_client sends it */
        env_signal(PORTAL_RING_EVENT);
    return 0;
}

/* Poll for everyone; a detach (header changed, ring corrupt) fails every pending call. */
static void release(struct gprog *g);

static void poll_client(void)
{
    if (!attached) return;
    if (client.hello_state == GEMINI_HELLO_NONE && gemini_hello(&client) == 0 && gemini_host_wants_wakeup(&client))
        env_signal(PORTAL_RING_EVENT);
    int rc = gemini_poll(&client);
    for (unsigned i = 0; i < PROGS; i++)
        if (progs[i].mode == G_DONE && progs[i].call.done) release(&progs[i]); /* a late reply came */
    if (rc >= 0) return;
    attached = 0;
    for (unsigned i = 0; i < PROGS; i++)
        if (progs[i].mode == G_CALL || progs[i].mode == G_BENCH) {
            progs[i].call.done = 1;
            progs[i].call.status = -rc;
        }
}

/* Calls in flight, HELLO unsettled or an UPCALL_DONE waiting: UPCALL is polled every step. */
static int client_busy(void)
{
    if (client.hello_state <= GEMINI_HELLO_PENDING || client.has_deferred) return 1;
    for (unsigned i = 0; i < PROGS; i++)
        if (progs[i].mode == G_CALL || progs[i].mode == G_BENCH || progs[i].mode == G_DONE) return 1;
    return 0;
}

static void awake(void)
{
    if (attached) gemini_want_wakeup(&client, 0); /* the host stops ringing after each reply */
    bell.asleep = 0;
}

/* serve's poll of UPCALL: asleep on the UPCALL port when it can be, else every step. */
static void serve_poll(void)
{
    long bells = env_upcall_drain();
    uint64_t now = env_now_ns();
    if (bells > 0) bell.heard += (uint64_t)bells;
    if (!attached) return;
    if (bells < 0 || client_busy()) {
        awake();
        poll_client();
        return;
    }
    if (bell.asleep && !bells && now < bell.next_poll_ns) return;
    if (bells)
        bell.woken++;
    else if (bell.asleep)
        bell.idle_polls++;
    uint64_t taken = client.upcalls;
    gemini_want_wakeup(&client, 0);
    poll_client();
    if (bells) bell.woken_upcalls += client.upcalls - taken;
    if (!attached) return;
    gemini_want_wakeup(&client, 1); /* then look again: a post may have raced the flag */
    bell.asleep = portal_pending(&client.end, PORTAL_RING_UPCALL) == 0;
    bell.next_poll_ns = now + IDLE_POLL_NS;
}

/* "a\0b\0" from argv[from..argc) into buf; its length, or -1 if it does not fit. */
static long pack_args(int argc, char *const *argv, int from, char *buf)
{
    size_t n = 0;
    for (int i = from; i < argc; i++) {
        size_t k = ag_strlen(argv[i]) + 1;
        if (n + k > ARGS_BUF) return -1;
        ag_memcpy(buf + n, argv[i], k);
        n += k;
    }
    return (long)n;
}

static int start(void **state, int argc, char *const *argv, void *pmem, uint64_t pmem_size, agent_out_fn out,
                 void *ctx)
{
    const char *cmd = argc >= 2 ? argv[1] : "";
    struct gprog *g = 0;
    static char args[ARGS_BUF];
    for (unsigned i = 0; i < PROGS && !g; i++)
        if (progs[i].mode == G_FREE) g = &progs[i];
    if (!g) {
        ag_say(out, ctx, 2, "gemini: too many gemini programs\n");
        return 1;
    }
    int rc = ensure_client(pmem, pmem_size);
    if (rc) {
        ag_say(out, ctx, 2, "gemini: no valid Portal window: %s\n", portal_err_name(-rc));
        return 3;
    }
    ag_memset(g, 0, sizeof *g);
    if (ag_streq(cmd, "serve")) {
        if (argc == 4 && ag_streq(argv[2], "--subscribe")) {
            uint32_t n = (uint32_t)ag_strlen(argv[3]);
            if (sub.owner || !gemini_name_ok(argv[3], n)) {
                ag_say(out, ctx, 2, "gemini serve: %s\n", sub.owner ? "a subscriber is already running" : "bad topic");
                return 2;
            }
            ag_memcpy(g->topic, argv[3], n);
            g->topic_len = n;
            sub.owner = g;
            sub.head = sub.count = 0;
        } else if (argc != 2) {
            ag_say(out, ctx, 2, "usage: gemini serve [--subscribe TOPIC]\n");
            return 2;
        }
        g->mode = G_SERVE;
        g->deadline_ns = env_now_ns() + HELLO_WAIT_NS;
        *state = g;
        return 0;
    }
    if (ag_streq(cmd, "stat")) {
        g->mode = G_STAT;
        *state = g;
        return 0;
    }
    uint64_t reply_cap = 1u << 20, count = 1;
    int first = 2;
    if (ag_streq(cmd, "call") && argc >= 4 && ag_streq(argv[2], "--reply-cap")) {
        if (ag_parse_u64(argv[3], &reply_cap) || reply_cap > GEMINI_REPLY_MAX) return 2;
        first = 4;
    } else if (ag_streq(cmd, "bench")) {
        if (argc < 6 || ag_parse_u64(argv[2], &count) || ag_parse_u64(argv[3], &reply_cap) || !count ||
            reply_cap > GEMINI_REPLY_MAX) {
            ag_say(out, ctx, 2, "usage: gemini bench COUNT REPLY_CAP SERVICE METHOD [ARGS...]\n");
            return 2;
        }
        first = 4;
    } else if (!ag_streq(cmd, "call")) {
        ag_say(out, ctx, 2, "usage: gemini serve [--subscribe TOPIC] | call [--reply-cap N] SERVICE METHOD [ARGS...] "
                         "| bench COUNT REPLY_CAP SERVICE METHOD [ARGS...] | stat\n");
        return 2;
    }
    long alen = argc - first >= 2 ? pack_args(argc, argv, first + 2, args) : -1;
    if (alen < 0) {
        ag_say(out, ctx, 2, "gemini %s: SERVICE METHOD [ARGS...] (args up to %u bytes)\n", cmd, ARGS_BUF);
        return 2;
    }
    rc = gemini_call_prepare(&client, &g->call, argv[first], argv[first + 1], args, (uint32_t)alen,
                             (uint32_t)reply_cap, 0);
    if (rc) {
        ag_say(out, ctx, 2, "gemini %s: %s\n", cmd, gemini_err_name(-rc));
        return 1;
    }
    g->mode = ag_streq(cmd, "bench") ? G_BENCH : G_CALL;
    awake(); /* its poll takes the replies: no doorbell per reply */
    g->count = count;
    g->t0 = env_now_ns();
    *state = g;
    return 0;
}

static void release(struct gprog *g)
{
    if (g->mode == G_SERVE) awake(); /* no one drains the port now */
    if (sub.owner == g) {
        sub.owner = 0;
        sub.count = 0;
    }
    if ((g->mode == G_CALL || g->mode == G_BENCH || g->mode == G_DONE) && g->submitted && !g->call.done) {
        g->mode = G_DONE; /* still pending: the slot and its span wait for the reply (poll_client) */
        return;
    }
    if (g->mode == G_CALL || g->mode == G_BENCH || g->mode == G_DONE) gemini_call_release(&client, &g->call);
    g->mode = G_FREE;
}

static int finish(struct gprog *g, int *status, int code)
{
    *status = code;
    release(g);
    return 0;
}

/* Submit if not yet; 1 while the call is pending, 0 when done, -1 if it could not be sent. */
static int drive(struct gprog *g)
{
    if (!g->submitted) {
        int rc = gemini_call_submit(&client, &g->call);
        if (rc == PERR(PORTAL_ERR_AGAIN)) return 1;
        if (rc) {
            g->call.status = -rc;
            return -1;
        }
        g->submitted = 1;
        if (gemini_host_wants_wakeup(&client))
            env_signal(PORTAL_RING_EVENT);
        g->deadline_ns = env_now_ns() + GEMINI_DEFAULT_TIMEOUT_MS * 1000000ull + CALL_GRACE_NS;
    }
    poll_client();
    return g->call.done ? 0 : 1;
}

static int step(void *state, int *status, agent_out_fn out, void *ctx)
{
    struct gprog *g = state;
    switch (g->mode) {
    case G_SERVE:
        serve_poll();
        env_signal_drain(); /* once per agent loop step: nothing waits on these bytes */
        if (!g->announced) {
            int v = gemini_version(&client);
            if (!v && env_now_ns() < g->deadline_ns) return 1;
            long bells = env_upcall_drain();
            if (bells > 0) bell.heard += (uint64_t)bells;
            ag_say(out, ctx, 1, "gemini: serving generation %llu version %d (host status %s; Track B, %s)\n",
                (unsigned long long)client.end.info.generation, v > 0 ? v : v < 0 ? 0 : (int)client.vmin,
                v ? gemini_err_name(client.hello_status) : "unanswered", bells < 0 ? "polled" : "upcall port");
            g->announced = 1;
        }
        if (g == sub.owner && sub.count) { /* one upcall per step: the output channel paces us */
            struct queued *q = &sub.q[sub.head];
            ag_say(out, ctx, 1, "%.*s %u ", (int)g->topic_len, g->topic, q->data_len);
            out(ctx, 1, q->data, q->data_len);
            out(ctx, 1, "\n", 1);
            sub.head = (sub.head + 1) % GEMINI_UPCALL_QUEUE_DEPTH;
            sub.count--;
        }
        return 1;
    case G_CALL: {
        if (!g->call.done || !g->submitted) {
            int r = drive(g);
            if (r < 0) {
                ag_say(out, ctx, 2, "gemini call: %s\n", gemini_err_name(g->call.status));
                return finish(g, status, 1);
            }
            if (r) {
                if (env_now_ns() > g->deadline_ns) {
                    ag_say(out, ctx, 2, "gemini call: no reply: TIMEDOUT\n");
                    return finish(g, status, 1); /* release keeps the slot until the reply */
                }
                return 1;
            }
        }
        if (g->call.status) { /* the reply may have been taken by another gemini program's poll */
            uint32_t tlen = 0;
            const char *text = gemini_call_error_text(&client, &g->call, &tlen);
            char shown[TEXT_MAX];
            if (!text || tlen > TEXT_MAX) tlen = text ? TEXT_MAX : 0;
            for (uint32_t i = 0; i < tlen; i++) /* hostile bytes: printable ASCII only */
                shown[i] = text[i] >= 0x20 && text[i] < 0x7f ? text[i] : '?';
            ag_say(out, ctx, 2, "gemini call: %s (%d)%s%.*s\n", gemini_err_name(g->call.status), g->call.status,
                tlen ? ": " : "", (int)tlen, shown);
            return finish(g, status, 1);
        }
        const unsigned char *reply = gemini_call_reply(&client, &g->call);
        uint64_t left = g->call.result - g->out_off;
        if (reply && left) {
            uint64_t k = left < OUT_CHUNK ? left : OUT_CHUNK;
            out(ctx, 1, reply + g->out_off, (size_t)k);
            g->out_off += k;
            if (g->out_off < g->call.result) return 1;
        }
        return finish(g, status, 0);
    }
    case G_BENCH: {
        uint64_t step_end = env_now_ns() + BENCH_STEP_NS;
        while (g->done < g->count) {
            int r = drive(g);
            if (r < 0) break;
            if (r) {
                if (env_now_ns() > g->deadline_ns) {
                    g->call.status = GEMINI_ERR_TIMEDOUT;
                    break;
                }
                if (env_now_ns() > step_end) return 1;
                continue;
            }
            if (g->call.status) break;
            g->bytes += g->call.result;
            g->done++;
            g->submitted = 0;
            g->call.done = 0;
        }
        ag_say(out, ctx, 1, "gemini bench calls %llu ns %llu bytes %llu status %s\n", (unsigned long long)g->done,
            (unsigned long long)(env_now_ns() - g->t0), (unsigned long long)g->bytes,
            gemini_err_name(g->call.status));
        return finish(g, status, g->call.status ? 1 : 0);
    }
    case G_STAT:
        ag_say(out, ctx, 1, "gemini: upcall doorbells heard %llu polls woken %llu (upcalls %llu) idle %llu; "
            "upcalls %llu dropped %llu\n", (unsigned long long)bell.heard, (unsigned long long)bell.woken,
            (unsigned long long)bell.woken_upcalls, (unsigned long long)bell.idle_polls,
            (unsigned long long)client.upcalls, (unsigned long long)client.upcalls_dropped);
        return finish(g, status, 0);
    default:
        return finish(g, status, g->status);
    }
}

static void stop(void *state, int signo)
{
    (void)signo;
    if (state) release(state);
}

const struct agent_portal_ops gemini_service_ops = {start, step, stop};
