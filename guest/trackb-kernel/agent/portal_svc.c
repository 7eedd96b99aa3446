/* portal_svc.c: the `portal` built-in, i.e. guest/portal's freestanding Portal
 * service (linked unchanged) run as a cooperative agent program.
 *
 *   portal serve [--budget N] [--attach-timeout-ms N]
 *        attach to the window at pmem + PORTAL_WINDOW_OFFSET and serve SUBMIT ->
 *        COMPLETE until SIGNAL ends it. No doorbell towards the guest is needed: the
 *        service is stepped on every agent loop iteration anyway (a poll, as cheap as
 *        the loop's own UART poll); bytes the host sends are drained. Towards the host
 *        the doorbell is the byte COMPLETE on the signal port (env_signal), rung only
 *        while the host asks for it on COMPLETE; without the port the host polls.
 *        A detach (header changed, ring corrupt) re-attaches to the next generation.
 *   portal memcpy [--bytes N] [--iters N]
 *        the guest's memcpy speed and that of TRANSFORM's loop in place (portal_xor64),
 *        best of N each, copies back and forth between two
 *        buffers in the 2 MiB of pmem below the window (Track B leaves them unused:
 *        no DAX metadata here), i.e. the memory the Portal's bulk data lives in.
 *   portal info   the window: size, header state, generation.
 *
 * The kernel maps the pmem range directly (identity, write-back), so the window
 * is plain memory: no device-dax as on Linux. Only agent_env.h and the Portal
 * core are used, so the host harness (host_main.c) runs this file too. */
#include "agent_int.h"
#include "portal_svc.h"
#include "../../portal/portal.h"

#define SLOTS 2                       /* a server and a memcpy/info at the same time */
#define DEFAULT_BUDGET 256u
#define DEFAULT_ATTACH_MS 10000u
/* memcpy: source at pmem + 0, destination at pmem + MEMCPY_DST. Not exactly 1 MiB apart:
 * QEMU TCG's TLB is direct mapped by page number, and two buffers a power of two apart
 * evict each other on every access (a tenfold slowdown that is no property of memcpy). */
#define MEMCPY_DST (0x100000u + 0x10000u)
#define MEMCPY_MAX (PORTAL_WINDOW_OFFSET - MEMCPY_DST)
#define MEMCPY_ITERS 20u

enum { M_FREE, M_ATTACH, M_SERVE, M_MEMCPY, M_DONE };

struct psvc {
    int mode;
    int status;                       /* M_DONE: the exit status */
    unsigned char *window;
    uint64_t window_size;
    struct portal_guest g;
    unsigned budget;
    uint64_t bad_gen;                 /* generation that detached us: never re-attach to it */
    uint64_t deadline_ns;             /* attach deadline, 0 = none (after a detach) */
    unsigned char *pmem;              /* memcpy: the bytes below the window */
    uint64_t bytes, best_ns, best_xor_ns;
    unsigned iters, done;
};

static struct psvc slots[SLOTS];
static int serving;                   /* one server per region */

/* "--name N" among argv[2..]: 0 (absent: *v untouched) or -1 (junk) */
static int opt_u64(int argc, char *const *argv, const char *name, uint64_t *v)
{
    for (int i = 2; i < argc; i++) {
        if (!ag_streq(argv[i], name)) continue;
        if (i + 1 >= argc || ag_parse_u64(argv[i + 1], v)) return -1;
        return 0;
    }
    return 0;
}

static int known_opts(int argc, char *const *argv, const char *const *names)
{
    for (int i = 2; i < argc; i += 2) {
        int ok = 0;
        for (const char *const *n = names; *n; n++) ok |= ag_streq(argv[i], *n);
        if (!ok) return -1;
    }
    return 0;
}

static int start(void **state, int argc, char *const *argv, void *pmem, uint64_t pmem_size, agent_out_fn out,
                 void *ctx)
{
    static const char *const serve_opts[] = {"--budget", "--attach-timeout-ms", NULL};
    static const char *const memcpy_opts[] = {"--bytes", "--iters", NULL};
    static const char *const no_opts[] = {NULL};
    const char *cmd = argc >= 2 ? argv[1] : "";
    const char *const *opts = ag_streq(cmd, "serve") ? serve_opts : ag_streq(cmd, "memcpy") ? memcpy_opts
                              : ag_streq(cmd, "info") ? no_opts : NULL;
    if (!opts || known_opts(argc, argv, opts)) {
        ag_say(out, ctx, 2, "usage: portal serve [--budget N] [--attach-timeout-ms N] | memcpy [--bytes N] "
                         "[--iters N] | info\n");
        return 2;
    }
    if (pmem_size < PORTAL_WINDOW_OFFSET + PORTAL_HEADER_PAGE) {
        ag_say(out, ctx, 2, "portal: pmem of %llu bytes leaves no Portal window at %#x\n",
            (unsigned long long)pmem_size, PORTAL_WINDOW_OFFSET);
        return 2;
    }
    struct psvc *s = NULL;
    for (int i = 0; i < SLOTS && !s; i++)
        if (slots[i].mode == M_FREE) s = &slots[i];
    if (!s || (ag_streq(cmd, "serve") && serving)) {
        ag_say(out, ctx, 2, "portal: %s\n", s ? "a Portal service is already running" : "too many portal programs");
        return 1;
    }
    ag_memset(s, 0, sizeof *s);
    s->window = (unsigned char *)pmem + PORTAL_WINDOW_OFFSET;
    s->window_size = pmem_size - PORTAL_WINDOW_OFFSET;
    s->pmem = pmem;

    if (ag_streq(cmd, "serve")) {
        uint64_t budget = DEFAULT_BUDGET, ms = DEFAULT_ATTACH_MS;
        if (opt_u64(argc, argv, "--budget", &budget) || opt_u64(argc, argv, "--attach-timeout-ms", &ms) ||
            budget == 0 || budget > 4096 || ms > 86400000u) {
            ag_say(out, ctx, 2, "portal serve: bad --budget (1..4096) or --attach-timeout-ms\n");
            return 2;
        }
        s->budget = (unsigned)budget;
        s->deadline_ns = env_now_ns() + ms * 1000000u;
        s->mode = M_ATTACH;
        serving = 1;
    } else if (ag_streq(cmd, "memcpy")) {
        uint64_t iters = MEMCPY_ITERS;
        s->bytes = MEMCPY_MAX;
        if (opt_u64(argc, argv, "--bytes", &s->bytes) || opt_u64(argc, argv, "--iters", &iters) || !s->bytes ||
            s->bytes > MEMCPY_MAX || !iters || iters > 100000) {
            ag_say(out, ctx, 2, "portal memcpy: --bytes 1..%u, --iters 1..100000\n", MEMCPY_MAX);
            return 2;
        }
        s->iters = (unsigned)iters;
        s->best_ns = s->best_xor_ns = UINT64_MAX;
        ag_memset(s->pmem, 0x5a, (size_t)s->bytes);
        s->mode = M_MEMCPY;
    } else {
        struct portal_end *e = &s->g.end;
        int rc = portal_attach(e, s->window, s->window_size, PORTAL_SIDE_GUEST);
        ag_say(out, ctx, 1, "window %llu bytes at pmem+%#x header %s generation %llu\n",
            (unsigned long long)s->window_size, PORTAL_WINDOW_OFFSET, rc ? portal_err_name(-rc) : "ok",
            rc ? 0ull : (unsigned long long)e->info.generation);
        s->mode = M_DONE;
        s->status = rc ? 3 : 0;
    }
    *state = s;
    return 0;
}

static void release(struct psvc *s)
{
    if (s->mode == M_ATTACH || s->mode == M_SERVE) serving = 0;
    s->mode = M_FREE;
}

static int finish(struct psvc *s, int *status, int code)
{
    *status = code;
    release(s);
    return 0;
}

static int step(void *state, int *status, agent_out_fn out, void *ctx)
{
    struct psvc *s = state;
    switch (s->mode) {
    case M_ATTACH: {
        int rc = portal_guest_init(&s->g, s->window, s->window_size);
        if (rc == 0 && s->g.end.info.generation != s->bad_gen) {
            s->mode = M_SERVE;
            ag_say(out, ctx, 1, "portal: serving generation %llu window %llu bytes (Track B, polled)\n",
                (unsigned long long)s->g.end.info.generation, (unsigned long long)s->window_size);
            return 1;
        }
        if (s->deadline_ns && env_now_ns() > s->deadline_ns) {
            ag_say(out, ctx, 1, "portal: no valid Portal header (%s)\n", rc ? portal_err_name(-rc) : "stale generation");
            return finish(s, status, 3);
        }
        return 1;
    }
    case M_SERVE: {
        int n = portal_service_step(&s->g, s->budget);
        if (n > 0 && portal_guest_host_wants_wakeup(&s->g)) env_signal(PORTAL_RING_COMPLETE);
        env_signal_drain();
        if (n < 0) {
            s->bad_gen = s->g.end.info.generation;
            ag_say(out, ctx, 1, "portal: detached from generation %llu: %s\n", (unsigned long long)s->bad_gen,
                portal_err_name(-n));
            s->deadline_ns = 0;
            s->mode = M_ATTACH;
        }
        return 1;
    }
    case M_MEMCPY: {
        /* one copy and one in-place TRANSFORM pass per step: PING and SIGNAL are served in between */
        unsigned char *a = s->pmem, *b = s->pmem + MEMCPY_DST;
        uint64_t t0 = env_now_ns();
        if (s->done & 1) __builtin_memcpy(a, b, (size_t)s->bytes);   /* the environment's memcpy */
        else __builtin_memcpy(b, a, (size_t)s->bytes);
        uint64_t t1 = env_now_ns();
        portal_xor64(b, s->bytes, 0x0101010101010101ull * (s->done + 1));   /* what TRANSFORM runs */
        uint64_t t2 = env_now_ns();
        if (t1 - t0 < s->best_ns) s->best_ns = t1 > t0 ? t1 - t0 : 1;
        if (t2 - t1 < s->best_xor_ns) s->best_xor_ns = t2 > t1 ? t2 - t1 : 1;
        if (++s->done < s->iters) return 1;
        /* GB/s = bytes per ns, four decimals in integers (no floating point in the kernel) */
        uint64_t q = s->bytes * 10000u / s->best_ns, x = s->bytes * 10000u / s->best_xor_ns;
        ag_say(out, ctx, 1, "memcpy_gbps %llu.%04llu inplace_xor_gbps %llu.%04llu bytes %llu check %u\n",
            (unsigned long long)(q / 10000), (unsigned long long)(q % 10000), (unsigned long long)(x / 10000),
            (unsigned long long)(x % 10000), (unsigned long long)s->bytes, (unsigned)(a[s->bytes / 2] ^ b[s->bytes / 3]));
        return finish(s, status, 0);
    }
    case M_DONE:
        return finish(s, status, s->status);
    default:
        return finish(s, status, 70);  /* never: a freed slot is not stepped */
    }
}

static void stop(void *state, int signo)
{
    (void)signo;
    if (state) release(state);
}

const struct agent_portal_ops portal_service_ops = {start, step, stop};
