/* builtins.c: the programs EXEC (and `sh -c`) can run on Track B, and the tiny
 * in-memory file table behind touch/test/cat/redirections.
 *
 * Each built-in is a step function: it returns RUN to be called again on a
 * later loop iteration (sleep until its deadline, head/cat a chunk at a time),
 * or its exit status. Nothing here blocks; SIGNAL can end any of them between
 * two steps. */
#include "sh.h"

/* ---- ramfs: a fixed table of small files, enough for scripts to touch/test/write/cat ---- */
#define FS_FILES 24
#define FS_PATH 96
#define FS_DATA 4096

struct rfile {
    uint8_t used, dir, dev;   /* dev: 1 /dev/null, 2 /dev/zero */
    char path[FS_PATH];
    size_t len;
    uint8_t data[FS_DATA];
};

/* The table is ~100 KiB: in .bss (not loaded with the image), the first entries filled in
 * on first use from this small one. */
static struct rfile files[FS_FILES];
static const struct {
    uint8_t dir, dev;
    const char *path;
} initial_files[] = {
    {1, 0, "/"}, {1, 0, "/tmp"}, {1, 0, "/dev"}, {1, 0, "/bin"}, {0, 1, "/dev/null"}, {0, 2, "/dev/zero"},
};

static void fs_init(void)
{
    static int ready;
    if (ready) return;
    ready = 1;
    for (size_t i = 0; i < sizeof initial_files / sizeof initial_files[0]; i++) {
        files[i].used = 1;
        files[i].dir = initial_files[i].dir;
        files[i].dev = initial_files[i].dev;
        ag_memcpy(files[i].path, initial_files[i].path, ag_strlen(initial_files[i].path) + 1);
    }
}

/* Join cwd and path and normalise ".", ".." and repeated slashes. */
int fs_resolve(const char *cwd, const char *path, char *out, size_t cap)
{
    char tmp[512];
    size_t n = 0;
    if (path[0] != '/') {
        size_t cl = ag_strlen(cwd);
        if (cl + 1 >= sizeof tmp) return -1;
        ag_memcpy(tmp, cwd, cl);
        n = cl;
        tmp[n++] = '/';
    }
    size_t pl = ag_strlen(path);
    if (n + pl + 1 > sizeof tmp) return -1;
    ag_memcpy(tmp + n, path, pl + 1);

    size_t o = 0;
    const char *s = tmp;
    while (*s) {
        while (*s == '/') s++;
        const char *c = s;
        while (*s && *s != '/') s++;
        size_t len = (size_t)(s - c);
        if (!len || (len == 1 && c[0] == '.')) continue;
        if (len == 2 && c[0] == '.' && c[1] == '.') {
            while (o && out[o - 1] != '/') o--;
            if (o) o--;
            continue;
        }
        if (o + 1 + len + 1 > cap) return -1;
        out[o++] = '/';
        ag_memcpy(out + o, c, len);
        o += len;
    }
    if (!o) {
        if (cap < 2) return -1;
        out[o++] = '/';
    }
    out[o] = 0;
    return 0;
}

static int fs_lookup(const char *abs)
{
    fs_init();
    for (int i = 0; i < FS_FILES; i++)
        if (files[i].used && ag_streq(files[i].path, abs)) return i;
    return -1;
}

int fs_is_dir(const char *abs)
{
    int i = fs_lookup(abs);
    return i >= 0 && files[i].dir;
}

static int parent_is_dir(const char *abs)
{
    char parent[FS_PATH];
    size_t n = ag_strlen(abs);
    while (n && abs[n - 1] != '/') n--;
    if (n <= 1) return 1;   /* in / */
    ag_memcpy(parent, abs, n - 1);
    parent[n - 1] = 0;
    return fs_is_dir(parent);
}

int fs_write_idx(const char *abs, int append)
{
    int i = fs_lookup(abs);
    if (i >= 0) {
        if (files[i].dir) return -AGX_EISDIR;
        if (!append) files[i].len = 0;
        return i;
    }
    if (ag_strlen(abs) >= FS_PATH) return -AGX_EINVAL;
    if (!parent_is_dir(abs)) return -AGX_ENOENT;
    for (i = 0; i < FS_FILES; i++) {
        if (files[i].used) continue;
        ag_memset(&files[i], 0, offsetof(struct rfile, data));
        files[i].used = 1;
        ag_memcpy(files[i].path, abs, ag_strlen(abs) + 1);
        return i;
    }
    return -AGX_ENOSPC;
}

void fs_append(int idx, const void *data, size_t len)
{
    if (idx < 0 || idx >= FS_FILES || !files[idx].used || files[idx].dir || files[idx].dev) return;
    struct rfile *f = &files[idx];
    if (len > FS_DATA - f->len) len = FS_DATA - f->len;   /* small files only: the rest is cut */
    ag_memcpy(f->data + f->len, data, len);
    f->len += len;
}

/* ---- helpers ---- */
static void say(struct proc *p, struct job *j, int fd, const char *s) { job_write(p, j, fd, s, ag_strlen(s)); }

static int resolve_arg(struct proc *p, struct job *j, const char *prog, const char *arg, char *abs)
{
    if (fs_resolve(p->cwd, arg, abs, CWD_MAX)) {
        job_printf(p, j, 2, "%s: %s: path too long\n", prog, arg);
        return -1;
    }
    return 0;
}

static uint8_t zeros[AGX_STDIO_MAX_DATA];   /* never written: .bss, not 60 KiB of loaded rodata */

/* ---- the built-ins ---- */
static int b_true(struct proc *p, struct job *j, struct cmd *c) { (void)p, (void)j, (void)c; return 0; }
static int b_false(struct proc *p, struct job *j, struct cmd *c) { (void)p, (void)j, (void)c; return 1; }

static int b_exit(struct proc *p, struct job *j, struct cmd *c)
{
    uint64_t v = (uint64_t)j->status;
    if (c->argc > 1 && ag_parse_u64(c->argv[1], &v)) {
        job_printf(p, j, 2, "exit: %s: numeric argument required\n", c->argv[1]);
        v = 2;
    }
    j->exited = 1;
    return (int)(v & 0xFF);
}

static int b_echo(struct proc *p, struct job *j, struct cmd *c)
{
    int i = 1, nl = 1;
    if (c->argc > 1 && ag_streq(c->argv[1], "-n")) nl = 0, i = 2;
    for (int k = i; k < c->argc; k++) {
        if (k > i) job_write(p, j, 1, " ", 1);
        say(p, j, 1, c->argv[k]);
    }
    if (nl) job_write(p, j, 1, "\n", 1);
    return 0;
}

/* printf FORMAT [ARG...]: %s %d %i %u %x %c %% and \n \t \r \\ \a \0; the format is reused
 * while arguments remain, as POSIX says. */
static int b_printf(struct proc *p, struct job *j, struct cmd *c)
{
    if (c->argc < 2) {
        say(p, j, 2, "printf: usage: printf FORMAT [ARG...]\n");
        return 2;
    }
    const char *fmt = c->argv[1];
    int a = 2, status = 0;
    do {
        int used = 0;
        for (const char *f = fmt; *f; f++) {
            char ch = *f;
            if (ch == '\\' && f[1]) {
                f++;
                switch (*f) {
                case 'n': ch = '\n'; break;
                case 't': ch = '\t'; break;
                case 'r': ch = '\r'; break;
                case 'a': ch = '\a'; break;
                case '0': ch = 0; break;
                case '\\': ch = '\\'; break;
                default: job_write(p, j, 1, "\\", 1); ch = *f; break;
                }
                job_write(p, j, 1, &ch, 1);
                continue;
            }
            if (ch != '%' || !f[1]) {
                job_write(p, j, 1, &ch, 1);
                continue;
            }
            f++;
            if (*f == '%') {
                job_write(p, j, 1, "%", 1);
                continue;
            }
            const char *arg = a < c->argc ? c->argv[a++] : "";
            used = 1;
            char num[32];
            switch (*f) {
            case 's': say(p, j, 1, arg); break;
            case 'c': if (*arg) job_write(p, j, 1, arg, 1); break;
            case 'd':
            case 'i':
            case 'u':
            case 'x': {
                int neg = arg[0] == '-';
                uint64_t v = 0;
                if (*arg && ag_parse_u64(arg + neg, &v)) {
                    job_printf(p, j, 2, "printf: %s: invalid number\n", arg);
                    status = 1;
                }
                if (*f == 'x') ag_fmt(num, sizeof num, "%llx", (unsigned long long)v);
                else ag_fmt(num, sizeof num, "%s%llu", neg ? "-" : "", (unsigned long long)v);
                say(p, j, 1, num);
                break;
            }
            default:
                job_printf(p, j, 2, "printf: %%%c: unsupported conversion\n", *f);
                return 1;
            }
        }
        if (!used) break;
    } while (a < c->argc);
    return status;
}

static int b_sleep(struct proc *p, struct job *j, struct cmd *c)
{
    if (c->phase == 0) {
        uint64_t total = 0;
        if (c->argc < 2) {
            say(p, j, 2, "sleep: missing operand\n");
            return 1;
        }
        for (int i = 1; i < c->argc; i++) {
            uint64_t ns;
            if (ag_parse_seconds(c->argv[i], &ns)) {
                job_printf(p, j, 2, "sleep: invalid time interval '%s'\n", c->argv[i]);
                return 1;
            }
            total += ns;
        }
        c->t = env_now_ns() + total;
        c->phase = 1;
    }
    return env_now_ns() >= c->t ? 0 : RUN;
}

static int b_pwd(struct proc *p, struct job *j, struct cmd *c)
{
    (void)c;
    job_printf(p, j, 1, "%s\n", p->cwd);
    return 0;
}

/* "sysname release machine" from env_uname(), split at blanks */
static void uname_field(int k, char *out, size_t cap)
{
    const char *u = env_uname();
    out[0] = 0;
    if (!u) return;
    for (int i = 0; i <= k; i++) {
        while (*u == ' ') u++;
        const char *s = u;
        while (*u && *u != ' ') u++;
        if (i == k) {
            size_t n = (size_t)(u - s) < cap - 1 ? (size_t)(u - s) : cap - 1;
            ag_memcpy(out, s, n);
            out[n] = 0;
        }
    }
}

static int b_uname(struct proc *p, struct job *j, struct cmd *c)
{
    char sys[64], rel[64], mach[32];
    uname_field(0, sys, sizeof sys);
    uname_field(1, rel, sizeof rel);
    uname_field(2, mach, sizeof mach);
    int want_s = 0, want_n = 0, want_r = 0, want_m = 0;
    for (int i = 1; i < c->argc; i++) {
        const char *a = c->argv[i];
        if (a[0] != '-' || !a[1]) {
            job_printf(p, j, 2, "uname: extra operand '%s'\n", a);
            return 1;
        }
        for (const char *f = a + 1; *f; f++) {
            switch (*f) {
            case 'a': want_s = want_n = want_r = want_m = 1; break;
            case 's': want_s = 1; break;
            case 'n': want_n = 1; break;
            case 'r': want_r = 1; break;
            case 'm': want_m = 1; break;
            default: job_printf(p, j, 2, "uname: invalid option -- '%c'\n", *f); return 1;
            }
        }
    }
    if (!want_s && !want_n && !want_r && !want_m) want_s = 1;
    const char *parts[4] = {want_s ? sys : NULL, want_n ? agent_hostname() : NULL, want_r ? rel : NULL,
                            want_m ? mach : NULL};
    int first = 1;
    for (int i = 0; i < 4; i++) {
        if (!parts[i]) continue;
        if (!first) job_write(p, j, 1, " ", 1);
        say(p, j, 1, parts[i]);
        first = 0;
    }
    job_write(p, j, 1, "\n", 1);
    return 0;
}

static int b_hostname(struct proc *p, struct job *j, struct cmd *c)
{
    (void)c;
    job_printf(p, j, 1, "%s\n", agent_hostname());
    return 0;
}

static int b_meminfo(struct proc *p, struct job *j, struct cmd *c)
{
    (void)c;
    job_printf(p, j, 1, "MemTotal: %llu kB\nMemFree: %llu kB\nPmem: %llu kB\n",
               (unsigned long long)(env_mem_total_bytes() / 1024), (unsigned long long)(env_mem_free_bytes() / 1024),
               (unsigned long long)(env_pmem_size() / 1024));
    return 0;
}

static int b_env(struct proc *p, struct job *j, struct cmd *c)
{
    (void)c;
    for (size_t i = 0; i < p->nenv; i++) job_printf(p, j, 1, "%s\n", p->env[i]);
    return 0;
}

static int b_fault(struct proc *p, struct job *j, struct cmd *c)
{
    (void)p, (void)j, (void)c;
    ag_log("built-in `fault`: raising a CPU exception on purpose");
    env_fault_on_purpose();
}

/* test EXPR / [ EXPR ]: -e -f -d -n -z, = !=, -eq -ne -lt -le -gt -ge, ! */
static int test_num(struct proc *p, struct job *j, const char *s, int64_t *v)
{
    uint64_t u;
    int neg = s[0] == '-';
    if (ag_parse_u64(s + neg, &u) || u > (uint64_t)INT64_MAX) {
        job_printf(p, j, 2, "test: %s: integer expression expected\n", s);
        return -1;
    }
    *v = neg ? -(int64_t)u : (int64_t)u;
    return 0;
}

static int test_eval(struct proc *p, struct job *j, int argc, char **argv)
{
    if (argc > 0 && ag_streq(argv[0], "!")) {
        int r = test_eval(p, j, argc - 1, argv + 1);
        return r > 1 ? r : !r;
    }
    if (argc == 0) return 1;
    if (argc == 1) return argv[0][0] ? 0 : 1;
    if (argc == 2) {
        const char *op = argv[0], *a = argv[1];
        if (ag_streq(op, "-n")) return a[0] ? 0 : 1;
        if (ag_streq(op, "-z")) return a[0] ? 1 : 0;
        if (ag_streq(op, "-e") || ag_streq(op, "-f") || ag_streq(op, "-d")) {
            char abs[CWD_MAX];
            if (resolve_arg(p, j, "test", a, abs)) return 2;
            int i = fs_lookup(abs);
            if (i < 0) return 1;
            if (op[1] == 'f') return files[i].dir || files[i].dev ? 1 : 0;
            if (op[1] == 'd') return files[i].dir ? 0 : 1;
            return 0;
        }
        job_printf(p, j, 2, "test: %s: unary operator expected\n", op);
        return 2;
    }
    if (argc == 3) {
        const char *a = argv[0], *op = argv[1], *b = argv[2];
        if (ag_streq(op, "=")) return ag_streq(a, b) ? 0 : 1;
        if (ag_streq(op, "!=")) return ag_streq(a, b) ? 1 : 0;
        static const char *const ops[] = {"-eq", "-ne", "-lt", "-le", "-gt", "-ge"};
        for (int k = 0; k < 6; k++) {
            if (!ag_streq(op, ops[k])) continue;
            int64_t x, y;
            if (test_num(p, j, a, &x) || test_num(p, j, b, &y)) return 2;
            int r = k == 0 ? x == y : k == 1 ? x != y : k == 2 ? x < y : k == 3 ? x <= y : k == 4 ? x > y : x >= y;
            return r ? 0 : 1;
        }
        job_printf(p, j, 2, "test: %s: binary operator expected\n", op);
        return 2;
    }
    say(p, j, 2, "test: too many arguments\n");
    return 2;
}

static int b_test(struct proc *p, struct job *j, struct cmd *c)
{
    int argc = c->argc - 1;
    if (ag_streq(c->argv[0], "[")) {
        if (argc < 1 || !ag_streq(c->argv[c->argc - 1], "]")) {
            say(p, j, 2, "[: missing ']'\n");
            return 2;
        }
        argc--;
    }
    return test_eval(p, j, argc, c->argv + 1);
}

static int b_touch(struct proc *p, struct job *j, struct cmd *c)
{
    int status = 0;
    for (int i = 1; i < c->argc; i++) {
        char abs[CWD_MAX];
        if (resolve_arg(p, j, "touch", c->argv[i], abs)) return 1;
        int idx = fs_lookup(abs);
        if (idx < 0) idx = fs_write_idx(abs, 1);
        if (idx < 0) {
            job_printf(p, j, 2, "touch: cannot touch '%s': %s\n", c->argv[i], ag_strerror(-idx));
            status = 1;
        }
    }
    return status;
}

static int b_rm(struct proc *p, struct job *j, struct cmd *c)
{
    int status = 0, force = 0;
    for (int i = 1; i < c->argc; i++) {
        if (ag_streq(c->argv[i], "-f")) {
            force = 1;
            continue;
        }
        char abs[CWD_MAX];
        if (resolve_arg(p, j, "rm", c->argv[i], abs)) return 1;
        int idx = fs_lookup(abs);
        if (idx < 0 || files[idx].dir || files[idx].dev) {
            if (idx < 0 && force) continue;
            job_printf(p, j, 2, "rm: cannot remove '%s': %s\n", c->argv[i],
                       idx < 0 ? "No such file or directory" : "Is a directory or device");
            status = 1;
            continue;
        }
        files[idx].used = 0;
    }
    return status;
}

/* cat FILE... / head -c N FILE / head -n N FILE: c->phase is the argument being read,
 * c->n the bytes (or lines) still wanted, c->t the offset in the current file. */
static int emit_file(struct proc *p, struct job *j, struct cmd *c, const char *prog, const char *arg, int lines)
{
    char abs[CWD_MAX];
    if (resolve_arg(p, j, prog, arg, abs)) return 1;
    int idx = fs_lookup(abs);
    if (idx < 0 || files[idx].dir) {
        job_printf(p, j, 2, "%s: %s: %s\n", prog, arg, idx < 0 ? "No such file or directory" : "Is a directory");
        return 1;
    }
    struct rfile *f = &files[idx];
    if (f->dev == 1) return 0;
    if (f->dev == 2) {  /* /dev/zero: a chunk per step, forever unless bounded */
        uint64_t want = c->n < sizeof zeros ? c->n : sizeof zeros;
        if (lines) want = 0;  /* no newline ever comes: head -n waits like the real one; refuse instead */
        if (lines) {
            job_printf(p, j, 2, "%s: -n on /dev/zero would never end\n", prog);
            return 1;
        }
        job_write(p, j, 1, zeros, (size_t)want);
        c->n -= want;
        return c->n ? RUN : 0;
    }
    size_t off = (size_t)c->t, n = f->len - off;
    if (lines) {
        size_t k = 0;
        while (k < n && c->n) {
            if (f->data[off + k] == '\n') c->n--;
            k++;
        }
        n = k;
    } else if (n > c->n) {
        n = (size_t)c->n;
    }
    job_write(p, j, 1, f->data + off, n);
    if (!lines) c->n -= n;
    return 0;
}

static int b_cat(struct proc *p, struct job *j, struct cmd *c)
{
    if (c->argc < 2) {
        say(p, j, 2, "cat: reading stdin is not supported (Track B has no STDIN)\n");
        return 1;
    }
    int status = 0;
    while (c->phase + 1 < c->argc) {
        c->n = UINT64_MAX;   /* cat: all of it */
        int r = emit_file(p, j, c, "cat", c->argv[c->phase + 1], 0);
        if (r == RUN) return RUN;
        if (r) status = r;
        c->phase++;
    }
    return status;
}

static int b_head(struct proc *p, struct job *j, struct cmd *c)
{
    if (c->phase == 0) {
        int lines = 1, i = 1;
        c->n = 10;
        if (i < c->argc && (ag_streq(c->argv[i], "-c") || ag_streq(c->argv[i], "-n"))) {
            lines = c->argv[i][1] == 'n';
            if (i + 1 >= c->argc || ag_parse_u64(c->argv[i + 1], &c->n)) {
                job_printf(p, j, 2, "head: invalid number '%s'\n", i + 1 < c->argc ? c->argv[i + 1] : "");
                return 1;
            }
            i += 2;
        }
        if (i + 1 != c->argc) {
            say(p, j, 2, "head: exactly one FILE is supported (Track B has no STDIN)\n");
            return 1;
        }
        c->phase = lines ? 2 : 1;
        c->priv = c->argv[i];
    }
    return emit_file(p, j, c, "head", c->priv, c->phase == 2);
}

static int b_help(struct proc *p, struct job *j, struct cmd *c)
{
    size_t n;
    const struct builtin *t = builtin_table(&n);
    (void)c;
    say(p, j, 1, "Track B built-ins (sh -c runs a small POSIX-sh subset of them):\n");
    for (size_t i = 0; i < n; i++) {
        size_t w = ag_strlen(t[i].name);
        job_printf(p, j, 1, "  %s%.*s %s\n", t[i].name, (int)(w < 10 ? 10 - w : 0), "          ", t[i].help);
    }
    return 0;
}

/* selftest: checks the agent's own pieces on this machine; exit status = failures */
static int b_selftest(struct proc *p, struct job *j, struct cmd *c)
{
    int fail = 0, pass = 0;
    (void)c;
#define CHECK(cond, what)                                                      \
    do {                                                                       \
        int ok_ = (cond);                                                      \
        job_printf(p, j, 1, "%s %s\n", ok_ ? "ok  " : "FAIL", what);           \
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
    agentx_frame_seal(buf, AGX_MSG_PING, 0, 7, (uint32_t)n);
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
    else job_printf(p, j, 1, "skip pmem (no device)\n");
    job_printf(p, j, 1, "selftest: %d passed, %d failed\n", pass, fail);
#undef CHECK
    return fail;
}

/* portal: helper P's Portal service, when linked and registered (agent_register_portal) */
struct out_ctx {
    struct proc *p;
    struct job *j;
};

static void portal_out(void *ctx, int fd, const void *data, size_t len)
{
    struct out_ctx *o = ctx;
    job_write(o->p, o->j, fd, data, len);
}

static int b_portal(struct proc *p, struct job *j, struct cmd *c)
{
    const struct agent_portal_ops *ops = agent_portal();
    struct out_ctx o = {p, j};
    int status = 0;
    if (!ops) {
        say(p, j, 2, "portal: no Portal service is linked into this kernel\n");
        return 1;
    }
    if (!env_pmem_base()) {
        say(p, j, 2, "portal: no virtio-pmem device\n");
        return 1;
    }
    if (c->phase == 0) {
        c->phase = 1;
        int r = ops->start(&c->priv, c->argc, c->argv, env_pmem_base(), env_pmem_size(), portal_out, &o);
        if (r) return r & 0xFF;
    }
    return ops->step(c->priv, &status, portal_out, &o) ? RUN : (status & 0xFF);
}

static void k_portal(struct cmd *c, int signo)
{
    const struct agent_portal_ops *ops = agent_portal();
    if (ops && c->phase && ops->stop) ops->stop(c->priv, signo);
}

static const struct builtin table[] = {
    {"echo", b_echo, "print the arguments", NULL},
    {"printf", b_printf, "formatted output (%s %d %u %x %c)", NULL},
    {"true", b_true, "exit 0", NULL},
    {"false", b_false, "exit 1", NULL},
    {":", b_true, "exit 0", NULL},
    {"exit", b_exit, "leave the (sub)shell with a status", NULL},
    {"sleep", b_sleep, "sleep N[.F][s|m|h] (SIGNAL ends it)", NULL},
    {"uname", b_uname, "system name (-a -s -n -r -m)", NULL},
    {"hostname", b_hostname, "the name set by CONFIG", NULL},
    {"meminfo", b_meminfo, "memory and pmem sizes", NULL},
    {"env", b_env, "the environment", NULL},
    {"pwd", b_pwd, "the working directory", NULL},
    {"test", b_test, "-e -f -d -n -z = != -eq -lt ...", NULL},
    {"[", b_test, "test ... ]", NULL},
    {"touch", b_touch, "create empty files (in memory)", NULL},
    {"rm", b_rm, "remove files (in memory)", NULL},
    {"cat", b_cat, "print files (no stdin)", NULL},
    {"head", b_head, "head -c N|-n N FILE", NULL},
    {"selftest", b_selftest, "check the agent on this machine", NULL},
    {"fault", b_fault, "raise a CPU exception on purpose", NULL},
    {"portal", b_portal, "the Portal service (when linked)", k_portal},
    {"help", b_help, "this list", NULL},
};

const struct builtin *builtin_table(size_t *n)
{
    *n = sizeof table / sizeof table[0];
    return table;
}

const struct builtin *builtin_find(const char *name)
{
    for (size_t i = 0; i < sizeof table / sizeof table[0]; i++)
        if (ag_streq(table[i].name, name)) return &table[i];
    return NULL;
}
