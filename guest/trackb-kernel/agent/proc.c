/* proc.c: processes started by EXEC. Same wire semantics as guest/init/proc.c:
 * EXEC_STARTED, STDIO frames, one EOF per output stream, then EXIT; EXIT waits
 * for background jobs holding the output at most AGX_EXIT_EOF_GRACE_MS after
 * the main job ended (then they are ended). SIGNAL ends all jobs of the
 * process (as Linux signals the process group) between two steps. */
#include "sh.h"

static struct proc procs[PROC_MAX];
static uint32_t next_pid = 100;
static int step_progress;   /* something visible happened during this step */

/* ---- arena ---- */
void *arena_alloc(struct proc *p, size_t n)
{
    size_t off = (p->arena_used + 7u) & ~(size_t)7u;
    if (off > ARENA_SIZE || ARENA_SIZE - off < n) return NULL;
    p->arena_used = off + n;
    return p->arena + off;
}

char *arena_strndup(struct proc *p, const char *s, size_t n)
{
    char *d = arena_alloc(p, n + 1);
    if (!d) return NULL;
    ag_memcpy(d, s, n);
    d[n] = 0;
    return d;
}

/* ---- output ---- */
static void out_flush(struct proc *p, int s)
{
    if (!p->ob_len[s]) return;
    send_stdio(p->pid, (uint8_t)s, 0, p->ob[s], (uint32_t)p->ob_len[s]);
    p->ob_len[s] = 0;
}

static void proc_out(struct proc *p, int s, const void *data, size_t len)
{
    const uint8_t *d = data;
    if (p->merge && s == AGX_STREAM_STDERR) s = AGX_STREAM_STDOUT;
    if (p->eof_sent[s] || !len) return;
    step_progress = 1;
    if (p->ob_len[s] + len > OUTBUF) out_flush(p, s);
    if (len >= OUTBUF) {
        while (len) {
            size_t n = len > AGX_STDIO_MAX_DATA ? AGX_STDIO_MAX_DATA : len;
            send_stdio(p->pid, (uint8_t)s, 0, d, (uint32_t)n);
            d += n, len -= n;
        }
        return;
    }
    ag_memcpy(p->ob[s] + p->ob_len[s], d, len);
    p->ob_len[s] += len;
}

void sink_write(struct proc *p, const struct fdmap *m, int fd, const void *data, size_t len)
{
    if (fd != 1 && fd != 2) return;
    switch (m->kind[fd]) {
    case SINK_OUT: proc_out(p, AGX_STREAM_STDOUT, data, len); break;
    case SINK_ERR: proc_out(p, AGX_STREAM_STDERR, data, len); break;
    case SINK_FILE: fs_append(m->file[fd], data, len); break;
    default: break;
    }
}

void job_write(struct proc *p, struct job *j, int fd, const void *data, size_t len)
{
    sink_write(p, &j->st[j->depth ? j->depth - 1 : 0].fd, fd, data, len);
}

static void sink_printf(struct proc *p, const struct fdmap *m, int fd, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void sink_printf(struct proc *p, const struct fdmap *m, int fd, const char *fmt, ...)
{
    char buf[512];
    __builtin_va_list ap;
    __builtin_va_start(ap, fmt);
    size_t n = ag_vfmt(buf, sizeof buf, fmt, ap);
    __builtin_va_end(ap);
    sink_write(p, m, fd, buf, n);
}

void job_printf(struct proc *p, struct job *j, int fd, const char *fmt, ...)
{
    char buf[512];
    __builtin_va_list ap;
    __builtin_va_start(ap, fmt);
    size_t n = ag_vfmt(buf, sizeof buf, fmt, ap);
    __builtin_va_end(ap);
    job_write(p, j, fd, buf, n);
}

/* ---- variables: shell variables shadow the environment ---- */
static int name_eq(const char *a, const char *name, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if (a[i] != name[i]) return 0;
    return a[len] == 0 || a[len] == '=';
}

const char *var_get(struct proc *p, const char *name, size_t len)
{
    for (int i = 0; i < VAR_MAX; i++)
        if (p->vars[i].name[0] && name_eq(p->vars[i].name, name, len)) return p->vars[i].val;
    for (size_t i = p->nenv; i-- > 0;)  /* later entries (EXEC env) override earlier (CONFIG) */
        if (name_eq(p->env[i], name, len)) return p->env[i] + len + 1;
    return NULL;
}

int var_set(struct proc *p, const char *name, size_t nlen, const char *val)
{
    struct var *v = NULL;
    if (!nlen || nlen >= sizeof v->name) return -1;
    for (int i = 0; i < VAR_MAX && !v; i++)
        if (p->vars[i].name[0] && name_eq(p->vars[i].name, name, nlen)) v = &p->vars[i];
    for (int i = 0; i < VAR_MAX && !v; i++)
        if (!p->vars[i].name[0]) v = &p->vars[i];
    if (!v) return -1;
    ag_memcpy(v->name, name, nlen);
    v->name[nlen] = 0;
    size_t n = ag_strlen(val);
    if (n >= VAR_VAL_MAX) n = VAR_VAL_MAX - 1;
    ag_memcpy(v->val, val, n);
    v->val[n] = 0;
    return 0;
}

/* ---- word expansion: quotes, backslashes, $NAME ${NAME} $? $$ ---- */
static int is_name_start(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_'; }
static int is_name_char(char c) { return is_name_start(c) || (c >= '0' && c <= '9'); }

struct exp {
    char *out;
    size_t o, cap;
};

static int put(struct exp *e, const char *s, size_t n)
{
    if (e->cap - e->o <= n) return -1;
    ag_memcpy(e->out + e->o, s, n);
    e->o += n;
    return 0;
}

/* *w points at '$' */
static int expand_var(struct proc *p, struct job *j, const char **w, struct exp *e)
{
    const char *s = *w + 1;
    char num[24];
    if (*s == '?' || *s == '$') {
        size_t n = ag_fmt(num, sizeof num, "%u", *s == '?' ? (unsigned)j->status : (unsigned)p->pid);
        *w = s + 1;
        return put(e, num, n);
    }
    if (*s >= '0' && *s <= '9') {  /* positional parameters: only $0 */
        *w = s + 1;
        return *s == '0' ? put(e, "sh", 2) : 0;
    }
    const char *name = s;
    size_t len = 0;
    if (*s == '{') {
        name = ++s;
        while (is_name_char(*s)) s++;
        if (*s != '}') return put(e, "$", 1) ? -1 : (*w = *w + 1, 0);
        len = (size_t)(s - name);
        s++;
    } else if (is_name_start(*s)) {
        while (is_name_char(*s)) s++;
        len = (size_t)(s - name);
    } else {
        *w = *w + 1;
        return put(e, "$", 1);
    }
    *w = s;
    const char *v = var_get(p, name, len);
    return v ? put(e, v, ag_strlen(v)) : 0;
}

/* Expand one raw word into e; *keep = 0 for an unquoted word that became empty. */
static int expand(struct proc *p, struct job *j, const char *w, struct exp *e, int *keep)
{
    size_t start = e->o;
    int quoted = 0;
    while (*w) {
        char c = *w;
        if (c == '\\') {
            quoted = 1;
            w++;
            if (*w && put(e, w++, 1)) return -1;
        } else if (c == '\'') {
            quoted = 1;
            for (w++; *w && *w != '\''; w++)
                if (put(e, w, 1)) return -1;
            if (*w) w++;
        } else if (c == '"') {
            quoted = 1;
            for (w++; *w && *w != '"';) {
                if (*w == '\\' && (w[1] == '$' || w[1] == '"' || w[1] == '\\' || w[1] == '`')) {
                    if (put(e, w + 1, 1)) return -1;
                    w += 2;
                } else if (*w == '$') {
                    if (expand_var(p, j, &w, e)) return -1;
                } else {
                    if (put(e, w++, 1)) return -1;
                }
            }
            if (*w) w++;
        } else if (c == '$') {
            if (expand_var(p, j, &w, e)) return -1;
        } else {
            if (put(e, w++, 1)) return -1;
        }
    }
    if (put(e, "", 1)) return -1;  /* NUL */
    *keep = quoted || e->o - 1 > start;
    return 0;
}

/* ---- the interpreter ---- */
static int push(struct proc *p, struct job *j, int kind, const struct node *n, const struct fdmap *m)
{
    if (j->depth == FRAME_MAX) {
        sink_printf(p, m, 2, "sh: nesting too deep\n");
        return 2;
    }
    struct frame *f = &j->st[j->depth++];
    ag_memset(f, 0, sizeof *f);
    f->kind = (uint8_t)kind;
    f->node = n;
    f->fd = *m;
    return RUN;
}

static void pop(struct job *j, int status)
{
    j->depth--;
    j->status = status & 0xFF;
    step_progress = 1;
}

/* Apply n's redirections to m. 0, or 1 after printing the error. */
static int apply_redirs(struct proc *p, struct job *j, const struct node *n, struct fdmap *m)
{
    for (int i = 0; i < n->nredir; i++) {
        const struct redir *r = &n->redirs[i];
        char word[CWD_MAX];
        struct exp e = {word, 0, sizeof word};
        int keep;
        if (expand(p, j, r->word, &e, &keep)) {
            sink_printf(p, m, 2, "sh: redirection target too long\n");
            return 1;
        }
        if (r->op == '&') {
            if (r->fd == 0) continue;   /* <&- / 0<&-: nothing reads stdin anyway */
            if (ag_streq(word, "-")) m->kind[r->fd] = SINK_NULL;
            else if (ag_streq(word, "1") || ag_streq(word, "2")) {
                int from = word[0] - '0';
                m->kind[r->fd] = m->kind[from];
                m->file[r->fd] = m->file[from];
            } else {
                sink_printf(p, m, 2, "sh: %s: bad file descriptor\n", word);
                return 1;
            }
            continue;
        }
        if (r->op == '<' || r->fd == 0) {
            sink_printf(p, m, 2, "sh: input redirection is not supported (built-ins read no stdin)\n");
            return 1;
        }
        char abs[CWD_MAX];
        if (fs_resolve(p->cwd, word, abs, sizeof abs)) {
            sink_printf(p, m, 2, "sh: %s: path too long\n", word);
            return 1;
        }
        if (ag_streq(abs, "/dev/null")) m->kind[r->fd] = SINK_NULL;
        else if (ag_streq(abs, "/dev/stdout")) m->kind[r->fd] = m->kind[1];
        else if (ag_streq(abs, "/dev/stderr")) m->kind[r->fd] = m->kind[2];
        else {
            int idx = fs_write_idx(abs, r->op == 'a');
            if (idx < 0) {
                sink_printf(p, m, 2, "sh: %s: %s\n", word, ag_strerror(-idx));
                return 1;
            }
            m->kind[r->fd] = SINK_FILE;
            m->file[r->fd] = (uint8_t)idx;
        }
    }
    return 0;
}

/* The name a path to a built-in is looked up by: a bare name, or one in a bin directory. */
static const char *builtin_name(const char *argv0)
{
    static const char *const dirs[] = {"/bin/", "/usr/bin/", "/sbin/", "/usr/sbin/", "/usr/local/bin/"};
    for (size_t i = 0; i < sizeof dirs / sizeof dirs[0]; i++) {
        size_t n = ag_strlen(dirs[i]);
        if (!ag_memcmp(argv0, dirs[i], n) && argv0[n]) {
            const char *rest = argv0 + n;
            for (const char *c = rest; *c; c++)
                if (*c == '/') return NULL;
            return rest;
        }
    }
    for (const char *c = argv0; *c; c++)
        if (*c == '/') return NULL;
    return argv0;
}

static int run_node(struct proc *p, struct job *j, const struct node *n, const struct fdmap *parent);

static int run_simple(struct proc *p, struct job *j, const struct node *n, const struct fdmap *parent)
{
    struct fdmap m = *parent;
    struct cmd *c = &j->cmd;
    int argc = 0;
    char *argv[ARGS_MAX + 1];

    if (n->literal) {
        for (int i = 0; i < n->nwords && i < ARGS_MAX; i++) argv[argc++] = n->words[i];
    } else {
        struct exp e = {j->scratch, 0, sizeof j->scratch};
        for (int i = 0; i < n->nwords; i++) {
            size_t at = e.o;
            int keep;
            if (expand(p, j, n->words[i], &e, &keep)) {
                sink_printf(p, &m, 2, "sh: argument list too long\n");
                return 2;
            }
            if (!keep) {
                e.o = at;
                continue;
            }
            char *w = j->scratch + at;
            /* NAME=value before the command name: a variable assignment */
            if (!argc && is_name_start(n->words[i][0])) {
                const char *q = n->words[i];
                while (is_name_char(*q)) q++;
                if (*q == '=') {
                    size_t nl = (size_t)(q - n->words[i]);
                    if (var_set(p, w, nl, w + nl + 1)) {
                        sink_printf(p, &m, 2, "sh: too many variables\n");
                        return 1;
                    }
                    e.o = at;
                    continue;
                }
            }
            argv[argc++] = w;
        }
    }
    argv[argc] = NULL;
    if (apply_redirs(p, j, n, &m)) return 1;
    if (!argc) return 0;

    if (ag_streq(argv[0], "sh") || ag_streq(argv[0], "/bin/sh")) {
        if (argc >= 3 && ag_streq(argv[1], "-c")) {
            /* the script text must outlive the scratch buffer it was expanded into */
            char *s = arena_strndup(p, argv[2], ag_strlen(argv[2]));
            if (!s) {
                sink_printf(p, &m, 2, "sh: out of memory\n");
                return 2;
            }
            char err[160];
            struct node *sn = sh_parse(p, s, err, sizeof err);
            if (!sn) {
                sink_printf(p, &m, 2, "sh: %s\n", err);
                return 2;
            }
            return push(p, j, FR_SUB, sn, &m);
        }
        sink_printf(p, &m, 2, "sh: only `sh -c SCRIPT` is supported (no stdin, no script files)\n");
        return 2;
    }
    const char *name = builtin_name(argv[0]);
    const struct builtin *b = name ? builtin_find(name) : NULL;
    if (!b) {
        sink_printf(p, &m, 2, "sh: %s: not found\n", argv[0]);
        return 127;
    }
    if (n->literal && n->nwords > ARGS_MAX) {
        sink_printf(p, &m, 2, "%s: more than %d arguments\n", argv[0], ARGS_MAX);
        return 2;
    }
    ag_memset(c, 0, sizeof *c);
    c->b = b;
    c->argc = argc;
    for (int i = 0; i <= argc; i++) c->argv[i] = argv[i];
    return push(p, j, FR_CMD, n, &m);
}

static int run_node(struct proc *p, struct job *j, const struct node *n, const struct fdmap *parent)
{
    struct fdmap m = *parent;
    if (!n) return 0;
    if (n->kind == N_SIMPLE) return run_simple(p, j, n, parent);
    if (apply_redirs(p, j, n, &m)) return 1;
    switch (n->kind) {
    case N_LIST: return push(p, j, FR_LIST, n, &m);
    case N_SUB: return push(p, j, FR_SUB, n->child, &m);
    case N_GROUP: return push(p, j, FR_GROUP, n->child, &m);
    case N_FOR: return push(p, j, FR_FOR, n, &m);
    case N_IF: return push(p, j, FR_IF, n, &m);
    }
    return 2;
}

static void job_kill(struct job *j, int signo)
{
    if (j->used && j->depth && j->st[j->depth - 1].kind == FR_CMD && j->cmd.b && j->cmd.b->kill)
        j->cmd.b->kill(&j->cmd, signo);
    j->depth = 0;
    j->used = 0;
}

/* `cmd &`: a job of its own, sharing the process's output and variables. */
static int spawn(struct proc *p, const struct node *n, const struct fdmap *m)
{
    for (int i = 1; i < JOB_MAX; i++) {
        struct job *nj = &p->jobs[i];
        if (nj->used) continue;
        nj->used = 1;
        nj->depth = 0;
        nj->status = 0;
        nj->exited = 0;
        if (run_node(p, nj, n, m) != RUN) nj->used = 0;  /* finished at once */
        return 0;
    }
    sink_printf(p, m, 2, "sh: too many background jobs (%d)\n", JOB_MAX - 1);
    return 1;
}

/* Step job j at most `budget` times; returns when it waits (a built-in said RUN) or ends. */
static void job_step(struct proc *p, struct job *j, int budget)
{
    while (j->used && j->depth > 0 && budget-- > 0) {
        struct frame *f = &j->st[j->depth - 1];
        if (j->exited) {
            /* `exit`: unwind to the innermost subshell, which ends with the status */
            int sub = f->kind == FR_SUB;
            pop(j, j->status);
            if (sub) j->exited = 0;
            continue;
        }
        int r;
        switch (f->kind) {
        case FR_CMD:
            r = j->cmd.b->fn(p, j, &j->cmd);
            if (r == RUN) return;
            pop(j, r);
            break;
        case FR_SUB:
        case FR_GROUP:
            if (f->phase == 0) {
                f->phase = 1;
                r = run_node(p, j, f->node, &f->fd);
                if (r != RUN) pop(j, r);
            } else {
                pop(j, j->status);
            }
            break;
        case FR_LIST: {
            const struct node *item;
            int s = j->status;
            if (!f->cur) {
                item = f->node->child;
                s = 0;
            } else {
                item = f->cur;
                /* && / || skip while the status says so; ; and & always go on */
                for (;;) {
                    const struct node *nx = item->next;
                    if (!nx) { item = NULL; break; }
                    if ((item->conn == C_AND && s != 0) || (item->conn == C_OR && s == 0)) { item = nx; continue; }
                    item = nx;
                    break;
                }
            }
            if (!item) {
                pop(j, s);
                break;
            }
            f->cur = item;
            if (item->bg) {
                j->status = spawn(p, item, &f->fd);
                break;
            }
            r = run_node(p, j, item, &f->fd);
            if (r != RUN) j->status = r;
            break;
        }
        case FR_FOR: {
            const struct node *n = f->node;
            if (f->phase == 0) {
                f->phase = 1;
                j->status = 0;
                f->words = arena_alloc(p, sizeof(char *) * (size_t)(n->nwords ? n->nwords : 1));
                if (!f->words) {
                    sink_printf(p, &f->fd, 2, "sh: out of memory\n");
                    pop(j, 2);
                    break;
                }
                for (int i = 0; i < n->nwords; i++) {
                    char buf[VAR_VAL_MAX];
                    struct exp e = {buf, 0, sizeof buf};
                    int keep;
                    if (expand(p, j, n->words[i], &e, &keep) || !(f->words[f->nwords] = arena_strndup(p, buf, e.o - 1))) {
                        sink_printf(p, &f->fd, 2, "sh: for: word too long or out of memory\n");
                        pop(j, 2);
                        goto next;
                    }
                    if (keep) f->nwords++;
                }
            }
            if (f->idx >= f->nwords) {
                pop(j, j->status);
                break;
            }
            if (var_set(p, n->var, ag_strlen(n->var), f->words[f->idx++])) {
                sink_printf(p, &f->fd, 2, "sh: %s: bad variable name or too many variables\n", n->var);
                pop(j, 2);
                break;
            }
            r = run_node(p, j, n->child, &f->fd);
            if (r != RUN) j->status = r;
            break;
        }
        case FR_IF: {
            const struct node *n = f->node;
            if (f->phase == 0) {
                f->phase = 1;
                r = run_node(p, j, n->child, &f->fd);
                if (r != RUN) j->status = r;
            } else if (f->phase == 1) {
                const struct node *part = j->status == 0 ? n->then_part : n->else_part;
                f->phase = 2;
                if (!part) {
                    pop(j, 0);
                    break;
                }
                r = run_node(p, j, part, &f->fd);
                if (r != RUN) pop(j, r);
            } else {
                pop(j, j->status);
            }
            break;
        }
        }
    next:;
    }
}

/* ---- process lifecycle ---- */
static void finish(struct proc *p)
{
    for (int i = 0; i < JOB_MAX; i++) job_kill(&p->jobs[i], 9);
    for (int s = 1; s <= 2; s++) {
        out_flush(p, s);
        if (!p->eof_sent[s]) {
            p->eof_sent[s] = 1;
            send_stdio(p->pid, (uint8_t)s, AGX_STDIO_EOF, NULL, 0);
        }
    }
    send_exit(p->pid, p->how, p->code);
    p->used = 0;
    step_progress = 1;
}

static void proc_step(struct proc *p)
{
    for (int i = 0; i < JOB_MAX && p->used; i++) {
        struct job *j = &p->jobs[i];
        if (!j->used) continue;
        job_step(p, j, 64);
        if (j->depth == 0) {
            j->used = 0;
            step_progress = 1;
            if (i == 0) {
                p->reaped = 1;
                p->how = AGX_EXIT_EXITED;
                p->code = j->status & 0xFF;
                p->eof_deadline = env_now_ns() + AGX_EXIT_EOF_GRACE_MS * 1000000ull;
            }
        }
    }
    for (int s = 1; s <= 2; s++) out_flush(p, s);
    if (!p->reaped) return;
    int alive = 0;
    for (int i = 1; i < JOB_MAX; i++) alive |= p->jobs[i].used;
    /* background jobs may hold the output open: at most the grace after the main job */
    if (!alive || env_now_ns() >= p->eof_deadline) finish(p);
}

int proc_step_all(void)
{
    step_progress = 0;
    for (int i = 0; i < PROC_MAX; i++)
        if (procs[i].used) proc_step(&procs[i]);
    return step_progress;
}

unsigned proc_running(void)
{
    unsigned n = 0;
    for (int i = 0; i < PROC_MAX; i++)
        if (procs[i].used && !procs[i].reaped) n++;
    return n;
}

static struct proc *find_pid(uint32_t pid)
{
    for (int i = 0; i < PROC_MAX; i++)
        if (procs[i].used && procs[i].pid == pid) return &procs[i];
    return NULL;
}

static void terminate(struct proc *p, int signo)
{
    if (!p->reaped) {
        p->reaped = 1;
        p->how = AGX_EXIT_SIGNALED;
        p->code = signo;
    }
    finish(p);
}

void proc_kill_all(int signo)
{
    for (int i = 0; i < PROC_MAX; i++)
        if (procs[i].used) terminate(&procs[i], signo);
}

/* Signals whose default action is to ignore (SIGCHLD, SIGCONT, SIGURG, SIGWINCH) or to stop
 * (SIGSTOP, SIGTSTP, SIGTTIN, SIGTTOU: built-ins cannot be stopped) leave a built-in running. */
static int signal_terminates(uint32_t s)
{
    return !(s == 17 || s == 18 || s == 19 || s == 20 || s == 21 || s == 22 || s == 23 || s == 28);
}

void proc_signal(uint32_t rid, const struct agx_signal *m)
{
    if (agx_signal_check(rid, m, send_error)) return;
    struct proc *p = find_pid(m->pid);
    if (!p || p->reaped) {
        send_error(rid, AGX_MSG_SIGNAL, AGX_ESRCH, "no running process %u started by this agent", (unsigned)m->pid);
        return;
    }
    if (signal_terminates(m->signo)) terminate(p, (int)m->signo);
    send_ok(rid);
}

void proc_stdin(const struct agx_stdio *m)
{
    if (agx_stdin_check(m, send_error)) return;
    if (!find_pid(m->pid)) {
        send_error(0, AGX_MSG_STDIO, AGX_ESRCH, "no process %u", (unsigned)m->pid);
        return;
    }
    /* the agent does not offer STDIN: a stdin is never a pipe; an EOF-only frame is a no-op */
    if (m->data.len)
        send_error(0, AGX_MSG_STDIO, AGX_EPIPE, "stdin of process %u is not a pipe (built-ins read no stdin)",
                   (unsigned)m->pid);
}

static char *str_in_arena(struct proc *p, struct agx_str s)
{
    return arena_strndup(p, s.ptr, s.len);
}

void proc_exec(uint32_t rid, const struct agx_exec *m)
{
    static char argv0[AGX_EXEC_ARGV_MAX_LEN + 1];
    static char cwd[AGX_EXEC_CWD_MAX_LEN + 1];

    if (m->argv_count == 0) {
        send_error(rid, AGX_MSG_EXEC, AGX_EINVAL, "argv is empty");
        return;
    }
    ag_memcpy(argv0, m->argv[0].ptr, m->argv[0].len);
    argv0[m->argv[0].len] = 0;
    const char *name = builtin_name(argv0);
    if (!name || (!ag_streq(name, "sh") && !builtin_find(name))) {
        send_error(rid, AGX_MSG_EXEC, AGX_ENOENT, "execve %s: No such file or directory (not a Track B built-in)",
                   argv0);
        return;
    }
    ag_memcpy(cwd, m->cwd.ptr, m->cwd.len);
    cwd[m->cwd.len] = 0;
    char abs[CWD_MAX];
    if (!cwd[0]) ag_memcpy(abs, "/", 2);
    else if (fs_resolve("/", cwd, abs, sizeof abs) || !fs_is_dir(abs)) {
        send_error(rid, AGX_MSG_EXEC, AGX_ENOENT, "chdir %s: No such file or directory", cwd);
        return;
    }
    struct proc *p = NULL;
    for (int i = 0; i < PROC_MAX && !p; i++)
        if (!procs[i].used) p = &procs[i];
    if (!p) {
        send_error(rid, AGX_MSG_EXEC, AGX_EAGAIN, "too many processes (%d)", PROC_MAX);
        return;
    }
    ag_memset(p, 0, offsetof(struct proc, arena));
    ag_memcpy(p->cwd, abs, ag_strlen(abs) + 1);

    /* argv and env copied out of the frame: it is gone after this request */
    struct node *root = arena_alloc(p, sizeof *root);
    char **words = arena_alloc(p, sizeof(char *) * m->argv_count);
    if (!root || !words) goto too_big;
    ag_memset(root, 0, sizeof *root);
    for (unsigned i = 0; i < m->argv_count; i++)
        if (!(words[i] = str_in_arena(p, m->argv[i]))) goto too_big;
    root->kind = N_SIMPLE;
    root->literal = 1;
    root->words = words;
    root->nwords = m->argv_count;
    const char *const *def;
    size_t ndef = agent_default_env(&def);
    for (size_t i = 0; i < ndef; i++)
        if (!(p->env[p->nenv++] = arena_strndup(p, def[i], ag_strlen(def[i])))) goto too_big;
    for (unsigned i = 0; i < m->env_count; i++)
        if (!(p->env[p->nenv++] = str_in_arena(p, m->env[i]))) goto too_big;

    p->used = 1;
    p->pid = next_pid++;
    if (next_pid > 0x7FFFFFF0u) next_pid = 100;
    p->merge = (m->flags & AGX_EXEC_STDERR_TO_STDOUT) != 0;
    send_exec_started(rid, p->pid);
    /* merged stderr: the stream has no data of its own; end it right away */
    if (p->merge) {
        p->eof_sent[2] = 1;
        send_stdio(p->pid, AGX_STREAM_STDERR, AGX_STDIO_EOF, NULL, 0);
    }
    struct job *j = &p->jobs[0];
    struct fdmap fd = {.kind = {SINK_NULL, SINK_OUT, SINK_ERR}};
    j->used = 1;
    int r = run_node(p, j, root, &fd);
    if (r != RUN) j->status = r;   /* ended at once (an error message); proc_step reports it */
    return;
too_big:
    send_error(rid, AGX_MSG_EXEC, AGX_E2BIG, "argv and env do not fit the %u-byte process arena", ARENA_SIZE);
}
