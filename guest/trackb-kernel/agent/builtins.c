/* builtins.c: the programs EXEC can run on Track B: echo, uname, meminfo,
 * sleep, selftest, fault, portal, gemini, and the AgentX conformance program
 * wslx-conform (capability PROGRAMS). There is no shell and no filesystem.
 *
 * Each program is a step function: it returns RUN to be called again on a
 * later loop iteration (sleep until its deadline, a chunk of output at a
 * time), or its exit status. Nothing here blocks; SIGNAL can end any of them
 * between two steps. Output and environment go through p->io (proc.c). */
#include "agent_int.h"
#include "builtins.h"
#include "../../agentx/agentx_program.h"

static uint8_t zeros[AGX_STDIO_MAX_DATA];   /* never written: .bss, not 60 KiB of loaded rodata */

static void out(struct prog *p, int fd, const void *data, size_t len) { p->io.write(p->io.ctx, fd, data, len); }
static void say(struct prog *p, int fd, const char *s) { out(p, fd, s, ag_strlen(s)); }

static void outf(struct prog *p, int fd, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void outf(struct prog *p, int fd, const char *fmt, ...)
{
    char buf[512];
    __builtin_va_list ap;
    __builtin_va_start(ap, fmt);
    size_t n = ag_vfmt(buf, sizeof buf, fmt, ap);
    __builtin_va_end(ap);
    out(p, fd, buf, n);
}

static int b_echo(struct prog *p)
{
    int i = 1, nl = 1;
    if (p->argc > 1 && ag_streq(p->argv[1], "-n")) nl = 0, i = 2;
    for (int k = i; k < p->argc; k++) {
        if (k > i) out(p, 1, " ", 1);
        say(p, 1, p->argv[k]);
    }
    if (nl) out(p, 1, "\n", 1);
    return 0;
}

static int b_sleep(struct prog *p)
{
    if (p->phase == 0) {
        uint64_t total = 0;
        if (p->argc < 2) {
            say(p, 2, "sleep: missing operand\n");
            return 1;
        }
        for (int i = 1; i < p->argc; i++) {
            uint64_t ns;
            if (ag_parse_seconds(p->argv[i], &ns)) {
                outf(p, 2, "sleep: invalid time interval '%s'\n", p->argv[i]);
                return 1;
            }
            total += ns;
        }
        p->t = env_now_ns() + total;
        p->phase = 1;
    }
    return env_now_ns() >= p->t ? 0 : RUN;
}

/* "sysname release machine" from env_uname(), split at blanks */
static void uname_field(int k, char *buf, size_t cap)
{
    const char *u = env_uname();
    buf[0] = 0;
    if (!u) return;
    for (int i = 0; i <= k; i++) {
        while (*u == ' ') u++;
        const char *s = u;
        while (*u && *u != ' ') u++;
        if (i == k) {
            size_t n = (size_t)(u - s) < cap - 1 ? (size_t)(u - s) : cap - 1;
            ag_memcpy(buf, s, n);
            buf[n] = 0;
        }
    }
}

static int b_uname(struct prog *p)
{
    char sys[64], rel[64], mach[32];
    uname_field(0, sys, sizeof sys);
    uname_field(1, rel, sizeof rel);
    uname_field(2, mach, sizeof mach);
    int want_s = 0, want_n = 0, want_r = 0, want_m = 0;
    for (int i = 1; i < p->argc; i++) {
        const char *a = p->argv[i];
        if (a[0] != '-' || !a[1]) {
            outf(p, 2, "uname: extra operand '%s'\n", a);
            return 1;
        }
        for (const char *f = a + 1; *f; f++) {
            switch (*f) {
            case 'a': want_s = want_n = want_r = want_m = 1; break;
            case 's': want_s = 1; break;
            case 'n': want_n = 1; break;
            case 'r': want_r = 1; break;
            case 'm': want_m = 1; break;
            default: outf(p, 2, "uname: invalid option -- '%c'\n", *f); return 1;
            }
        }
    }
    if (!want_s && !want_n && !want_r && !want_m) want_s = 1;
    const char *parts[4] = {want_s ? sys : NULL, want_n ? p->io.hostname(p->io.ctx) : NULL, want_r ? rel : NULL,
                            want_m ? mach : NULL};
    int first = 1;
    for (int i = 0; i < 4; i++) {
        if (!parts[i]) continue;
        if (!first) out(p, 1, " ", 1);
        say(p, 1, parts[i]);
        first = 0;
    }
    out(p, 1, "\n", 1);
    return 0;
}

static int b_meminfo(struct prog *p)
{
    outf(p, 1, "MemTotal: %llu kB\nMemFree: %llu kB\nPmem: %llu kB\n",
         (unsigned long long)(env_mem_total_bytes() / 1024), (unsigned long long)(env_mem_free_bytes() / 1024),
         (unsigned long long)(env_pmem_size() / 1024));
    return 0;
}

static int b_fault(struct prog *p)
{
    (void)p;
    ag_log("built-in `fault`: raising a CPU exception on purpose");
    env_fault_on_purpose();
}

/* selftest: checks the agent's own pieces on this machine; exit status = failures */
static int b_selftest(struct prog *p)
{
    int fail = 0, pass = 0;
#define CHECK(cond, what)                                                      \
    do {                                                                       \
        int ok_ = (cond);                                                      \
        outf(p, 1, "%s %s\n", ok_ ? "ok  " : "FAIL", what);           \
        if (ok_) pass++; else fail++;                                          \
    } while (0)
    CHECK(agentx_crc32((const uint8_t *)"123456789", 9) == 0xCBF43926u, "crc32 check value");
    uint8_t buf[128];
    struct agx_ping ping = {.data = {(const uint8_t *)"abc", 3}}, back;
    long n = agx_ping_encode(buf, sizeof buf, &ping);
    CHECK(n == 7 && agx_ping_decode(buf, (size_t)n, &back) == 0 && back.data.len == 3 &&
              !ag_memcmp(back.data.ptr, "abc", 3), "PING payload round trip");
    struct agx_header h;
    ag_memcpy(buf + AGX_HEADER_SIZE, buf, (size_t)n);
    agentx_frame_seal(buf, AGX_VERSION_MAX, AGX_MSG_PING, 0, 7, (uint32_t)n);
    CHECK(agentx_header_decode(buf, &h) == 0 && h.request_id == 7 && !agentx_payload_verify(&h, buf + AGX_HEADER_SIZE),
          "frame seal and header decode");
    buf[AGX_HEADER_SIZE] ^= 1;
    CHECK(agentx_payload_verify(&h, buf + AGX_HEADER_SIZE) != 0, "payload CRC catches a flipped bit");
    char f[48];
    ag_fmt(f, sizeof f, "%d|%u|%x|%s", -5, 42u, 255u, "s");
    CHECK(ag_streq(f, "-5|42|ff|s"), "formatting");
    ag_fmt(f, sizeof f, "%05d|%4d|%#x|%.*s|%016lx", -42, -7, 255u, 2, "abc", 0xbeefUL);
    CHECK(ag_streq(f, "-0042|  -7|0xff|ab|000000000000beef"), "formatting: padding, sign, #, precision");
    CHECK(ag_fmt(f, 4, "%s", "abcdef") == 3 && ag_streq(f, "abc"), "formatting: cut at the buffer");
    uint64_t ns;
    CHECK(!ag_parse_seconds("0.25", &ns) && ns == 250000000ull && ag_parse_seconds("x", &ns), "duration parsing");
    uint64_t t0 = env_now_ns(), t1 = env_now_ns();
    CHECK(t1 >= t0 && t0 > 0, "monotonic clock runs");
    CHECK(env_mem_total_bytes() > 0 && env_mem_free_bytes() <= env_mem_total_bytes(), "memory totals");
    if (env_pmem_base()) CHECK(env_pmem_size() >= 4096, "pmem region present");
    else outf(p, 1, "skip pmem (no device)\n");
    outf(p, 1, "selftest: %d passed, %d failed\n", pass, fail);
#undef CHECK
    return fail;
}

/* ---- portal, gemini: services over the pmem region, when linked and registered ---- */
static const struct agent_portal_ops *portal_ops, *gemini_ops;

void agent_register_portal(const struct agent_portal_ops *ops) { portal_ops = ops; }
void agent_register_gemini(const struct agent_portal_ops *ops) { gemini_ops = ops; }

static void portal_out(void *ctx, int fd, const void *data, size_t len) { out(ctx, fd, data, len); }

static int pmem_program(struct prog *p, const struct agent_portal_ops *ops)
{
    int status = 0;
    if (!ops) {
        outf(p, 2, "%s: not linked into this kernel\n", p->argv[0]);
        return 1;
    }
    if (!env_pmem_base()) {
        outf(p, 2, "%s: no virtio-pmem device\n", p->argv[0]);
        return 1;
    }
    if (p->phase == 0) {
        p->phase = 1;
        int r = ops->start(&p->priv, p->argc, p->argv, env_pmem_base(), env_pmem_size(), portal_out, p);
        if (r) return r & 0xFF;
    }
    return ops->step(p->priv, &status, portal_out, p) ? RUN : (status & 0xFF);
}

static int b_portal(struct prog *p) { return pmem_program(p, portal_ops); }
static int b_gemini(struct prog *p) { return pmem_program(p, gemini_ops); }

static void k_portal(struct prog *p, int signo)
{
    if (portal_ops && p->phase && portal_ops->stop) portal_ops->stop(p->priv, signo);
}

static void k_gemini(struct prog *p, int signo)
{
    if (gemini_ops && p->phase && gemini_ops->stop) gemini_ops->stop(p->priv, signo);
}

/* ---- wslx-conform: the AgentX conformance program (host/python/wslx/spec/programs.py) ----
 * p->phase is the step being run; a step that waits (sleep) or produces much (zeros) keeps
 * its progress in struct conform and yields with RUN. Track B has no stdin (an EXEC's
 * stdin is at EOF: cat copies nothing) and no filesystem (file steps fail, nothing is
 * mounted). */
struct conform {
    struct agx_program prog;
    int parsed, busy;     /* busy: the current step has started (sleep deadline, zeros left) */
    uint64_t until, left;
};

static int conform_fail(struct prog *p, const struct agx_step *s, const char *why)
{
    outf(p, 2, "%s: %s: %s\n", AGX_PROGRAM_NAME, agx_program_step_word(s->kind), why);
    return AGX_FAILED_STATUS;
}

static void line(struct prog *p, const char *s)
{
    say(p, 1, s ? s : "");
    out(p, 1, "\n", 1);
}

static int b_conform(struct prog *p)
{
    struct conform *c = p->priv;
    if (!c->parsed) {
        char err[160];
        if (agx_program_parse(p->argc, p->argv, &c->prog, err, sizeof err)) {
            outf(p, 2, "%s: %s\n", AGX_PROGRAM_NAME, err);
            return AGX_USAGE_STATUS;
        }
        c->parsed = 1;
    }
    for (int budget = 16; p->phase < c->prog.n && budget > 0; budget--) {
        const struct agx_step *s = &c->prog.step[p->phase];
        switch (s->kind) {
        case AGX_STEP_OUT: say(p, 1, s->arg[0]); break;
        case AGX_STEP_ERR: say(p, 2, s->arg[0]); break;
        case AGX_STEP_SLEEP:
            if (!c->busy) c->busy = 1, c->until = env_now_ns() + s->num * 1000000ull;
            if (env_now_ns() < c->until) return RUN;
            break;
        case AGX_STEP_EXIT: return (int)s->num;
        case AGX_STEP_GETENV: line(p, p->io.getenv(p->io.ctx, s->arg[0])); break;
        case AGX_STEP_CWD: line(p, p->io.cwd); break;
        case AGX_STEP_HOSTNAME: line(p, p->io.hostname(p->io.ctx)); break;
        case AGX_STEP_CAT:            /* stdin is at EOF */
        case AGX_STEP_CLOSE_STDIN: break;
        case AGX_STEP_ZEROS: {        /* one STDIO frame's worth per loop iteration */
            if (!c->busy) c->busy = 1, c->left = s->num;
            size_t n = c->left < sizeof zeros ? (size_t)c->left : sizeof zeros;
            out(p, 1, zeros, n);
            c->left -= n;
            if (c->left) return RUN;
            break;
        }
        case AGX_STEP_BG:
            if (p->io.spawn_bg(p->io.ctx, s->num, s->arg[1])) return conform_fail(p, s, "too many background jobs");
            break;
        case AGX_STEP_WRITE_FILE:
        case AGX_STEP_READ_FILE: return conform_fail(p, s, "Track B has no filesystem");
        case AGX_STEP_MOUNTED: line(p, "no"); break;
        default: return conform_fail(p, s, "not implemented");
        }
        c->busy = 0;
        p->phase++;
    }
    return p->phase < c->prog.n ? RUN : 0;
}

static const struct builtin table[] = {
    {"echo", b_echo, NULL, 0},
    {"sleep", b_sleep, NULL, 0},
    {"uname", b_uname, NULL, 0},
    {"meminfo", b_meminfo, NULL, 0},
    {"selftest", b_selftest, NULL, 0},
    {"fault", b_fault, NULL, 0},
    {"portal", b_portal, k_portal, 0},
    {"gemini", b_gemini, k_gemini, 0},
};
static const struct builtin conform = {AGX_PROGRAM_NAME, b_conform, NULL, sizeof(struct conform)};

const struct builtin *builtin_find(const char *argv0)
{
    static const char *const dirs[] = {"/bin/", "/usr/bin/", "/sbin/", "/usr/sbin/", "/usr/local/bin/"};
    const char *name = argv0;
    if (agx_program_is(argv0)) return &conform;
    for (size_t i = 0; i < sizeof dirs / sizeof dirs[0]; i++) {
        size_t n = ag_strlen(dirs[i]);
        if (!ag_memcmp(argv0, dirs[i], n)) name = argv0 + n;
    }
    for (const char *c = name; *c; c++)
        if (*c == '/') return NULL;
    for (size_t i = 0; i < sizeof table / sizeof table[0]; i++)
        if (ag_streq(table[i].name, name)) return &table[i];
    return NULL;
}
