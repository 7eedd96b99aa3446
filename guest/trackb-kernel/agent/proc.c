/* proc.c: processes started by EXEC. Same wire semantics as guest/init/proc.c:
 * EXEC_STARTED, STDIO frames, one EOF per output stream, then EXIT; EXIT waits
 * for background jobs holding the output at most AGX_EXIT_EOF_GRACE_MS after
 * the program ended (then they are ended). SIGNAL ends the program and its
 * background jobs (as Linux signals the process group) between two steps.
 *
 * A process is one built-in program (builtins.c) plus up to BG_MAX background
 * jobs (the conformance program's `bg` step: sleep, then write to stdout). The
 * program sees its process only through struct prog_io; frames leave through
 * struct proc_host (proc.h), so nothing here calls agent.c.
 *
 * Output is held per stream in a ring of AGX_OUTPUT_BUFFER bytes until the host
 * acknowledges it (version 2) or it is framed (version 1). A program is stepped only
 * while each of its rings has room for the most one step can write (STEP_OUTPUT_MAX):
 * a host that does not read blocks the program, as a full pipe would; nothing is
 * dropped. */
#include "agent_int.h"
#include "builtins.h"
#include "proc.h"
#include "../../agentx/agentx_out.h"

#define PROC_MAX ((int)AGX_PROCESS_MAX_TRACKB)
#define BG_MAX 3
#define ARENA_SIZE 24576   /* argv + env + the program's state, per process */
#define CWD_MAX 256
/* The most one proc_step can write to a stream: a zeros step (one STDIO frame's worth) plus every
 * background job's text (argv items) falling due in the same step. */
#define STEP_OUTPUT_MAX (AGX_STDIO_MAX_DATA + BG_MAX * AGX_EXEC_ARGV_MAX_LEN)
_Static_assert(STEP_OUTPUT_MAX < AGX_OUTPUT_BUFFER, "a step's output must fit the ring");

struct bg_job {
    int used;
    uint64_t due;          /* env_now_ns() when it writes and ends */
    const char *text;      /* in the arena (argv), lives as long as the process */
};

struct proc {
    int used;
    uint32_t pid;
    int reaped;            /* the program ended (tx.how, tx.code); background jobs may still write */
    int merge;             /* EXEC STDERR_TO_STDOUT */
    /* output and EXIT for the host (agentx_out.h); the buffers of tx.out[] are rings[slot] */
    struct agx_proc_out tx;
    uint64_t eof_deadline;
    struct prog prog;
    struct bg_job bg[BG_MAX];
    char cwd[CWD_MAX];
    const char **env;
    size_t nenv;
    size_t arena_used;
    uint8_t arena[ARENA_SIZE];
};

static struct proc procs[PROC_MAX];
static uint8_t rings[PROC_MAX][2][AGX_OUTPUT_BUFFER];   /* stdout, stderr of each slot */
static uint32_t next_pid = 100;
static int step_progress;   /* something visible happened during this step */
static const struct proc_host *H;

void proc_init(const struct proc_host *host) { H = host; }

/* ---- arena ---- */
static void *arena_alloc(struct proc *p, size_t n)
{
    size_t off = (p->arena_used + 7u) & ~(size_t)7u;
    if (off > ARENA_SIZE || ARENA_SIZE - off < n) return NULL;
    p->arena_used = off + n;
    ag_memset(p->arena + off, 0, n);
    return p->arena + off;
}

static char *arena_str(struct proc *p, const char *s, size_t n)
{
    char *d = arena_alloc(p, n + 1);
    if (!d) return NULL;
    ag_memcpy(d, s, n);
    d[n] = 0;
    return d;
}

/* ---- output ---- */
static void proc_out(struct proc *p, int s, const void *data, size_t len)
{
    if (p->merge && s == AGX_STREAM_STDERR) s = AGX_STREAM_STDOUT;
    struct agx_outq *o = &p->tx.out[s];
    if (o->ended || !len) return;
    step_progress = 1;
    if (len > agx_outq_room(o)) {
        /* cannot happen: steps run only with STEP_OUTPUT_MAX free (proc_step_all) */
        ag_log("process %u wrote %u bytes beyond its output ring", (unsigned)p->pid, (unsigned)len);
        len = agx_outq_room(o);
    }
    agx_outq_append(o, data, len);
}

static int room_for_a_step(const struct proc *p)
{
    return agx_outq_room(&p->tx.out[1]) >= STEP_OUTPUT_MAX && agx_outq_room(&p->tx.out[2]) >= STEP_OUTPUT_MAX;
}

void proc_pump_output(void)
{
    for (int i = 0; i < PROC_MAX; i++) {
        struct proc *p = &procs[i];
        if (!p->used) continue;
        int r = agx_proc_pump(&p->tx, p->pid, &H->send);
        if (r) step_progress = 1;
        if (r & AGX_PUMP_RELEASE) p->used = 0;
    }
}

void proc_new_session(void)
{
    for (int i = 0; i < PROC_MAX; i++) {
        struct proc *p = &procs[i];
        if (!p->used) continue;
        agx_proc_rewind(&p->tx);
    }
}

/* ---- what a program sees of its process (struct prog_io) ---- */
static void io_write(void *ctx, int fd, const void *data, size_t len)
{
    if (fd == 1 || fd == 2) proc_out(ctx, fd == 1 ? AGX_STREAM_STDOUT : AGX_STREAM_STDERR, data, len);
}

static int io_spawn_bg(void *ctx, uint64_t ms, const char *text)
{
    struct proc *p = ctx;
    for (int i = 0; i < BG_MAX; i++) {
        if (p->bg[i].used) continue;
        p->bg[i] = (struct bg_job){1, env_now_ns() + ms * 1000000ull, text};
        return 0;
    }
    return -1;
}

static const char *io_getenv(void *ctx, const char *name)
{
    struct proc *p = ctx;
    size_t len = ag_strlen(name);
    for (size_t i = p->nenv; i-- > 0;)   /* later entries (EXEC env) override earlier (CONFIG) */
        if (!ag_memcmp(p->env[i], name, len) && p->env[i][len] == '=') return p->env[i] + len + 1;
    return NULL;
}

static const char *io_hostname(void *ctx)
{
    (void)ctx;
    return H->hostname();
}

/* ---- process lifecycle ---- */
static void finish(struct proc *p)
{
    for (int i = 0; i < BG_MAX; i++) p->bg[i].used = 0;
    for (int s = 1; s <= 2; s++) p->tx.out[s].ended = 1;
    p->tx.finished = 1;   /* proc_pump_output sends the EOFs and the EXIT after the held output */
    step_progress = 1;
}

static void proc_step(struct proc *p)
{
    if (!p->reaped) {
        int r = p->prog.b->step(&p->prog);
        if (r != RUN) {
            p->reaped = 1;
            p->tx.how = AGX_EXIT_EXITED;
            p->tx.code = r & 0xFF;
            p->eof_deadline = env_now_ns() + AGX_EXIT_EOF_GRACE_MS * 1000000ull;
            step_progress = 1;
        }
    }
    int alive = 0;
    for (int i = 0; i < BG_MAX; i++) {
        struct bg_job *b = &p->bg[i];
        if (b->used && env_now_ns() >= b->due) {
            proc_out(p, AGX_STREAM_STDOUT, b->text, ag_strlen(b->text));
            b->used = 0;
            step_progress = 1;
        }
        alive |= b->used;
    }
    /* background jobs may hold the output open: at most the grace after the program */
    if (p->reaped && (!alive || env_now_ns() >= p->eof_deadline)) finish(p);
}

int proc_step_all(void)
{
    step_progress = 0;
    for (int i = 0; i < PROC_MAX; i++)
        if (procs[i].used && !procs[i].tx.finished && room_for_a_step(&procs[i])) proc_step(&procs[i]);
    proc_pump_output();
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

void proc_output_ack(const struct agx_output_ack *m)
{
    struct proc *p = find_pid(m->pid);
    if (agx_proc_output_ack(p ? &p->tx : NULL, m, &H->send) == 1) p->used = 0;
}

static void terminate(struct proc *p, int signo)
{
    if (!p->reaped) {
        if (p->prog.b->kill) p->prog.b->kill(&p->prog, signo);
        p->reaped = 1;
        p->tx.how = AGX_EXIT_SIGNALED;
        p->tx.code = signo;
    }
    if (!p->tx.finished) finish(p);
}

void proc_kill_all(int signo)
{
    for (int i = 0; i < PROC_MAX; i++)
        if (procs[i].used) terminate(&procs[i], signo);
}

/* Signals whose default action is to ignore or to stop (built-ins cannot be stopped) leave a
 * program running. */
static int signal_terminates(uint32_t s)
{
    switch (s) {
    case AGX_SIGCHLD: case AGX_SIGCONT: case AGX_SIGURG: case AGX_SIGWINCH:
    case AGX_SIGSTOP: case AGX_SIGTSTP: case AGX_SIGTTIN: case AGX_SIGTTOU:
        return 0;
    default:
        return 1;
    }
}

void proc_signal(uint32_t rid, const struct agx_signal *m)
{
    if (agx_signal_check(rid, m, H->send.error)) return;
    struct proc *p = find_pid(m->pid);
    if (!p || p->reaped) {
        H->send.error(rid, AGX_MSG_SIGNAL, AGX_ESRCH, "no running process %u started by this agent", (unsigned)m->pid);
        return;
    }
    if (signal_terminates(m->signo)) terminate(p, (int)m->signo);
    H->send.ok(rid);
}

void proc_stdin(const struct agx_stdio *m)
{
    if (agx_stdin_check(m, H->send.error)) return;
    if (!find_pid(m->pid)) {
        H->send.error(0, AGX_MSG_STDIO, AGX_ESRCH, "no process %u", (unsigned)m->pid);
        return;
    }
    /* the agent does not offer STDIN: a stdin is never a pipe; an EOF-only frame is a no-op */
    if (m->data.len)
        H->send.error(0, AGX_MSG_STDIO, AGX_EPIPE, "stdin of process %u is not a pipe (built-ins read no stdin)",
                 (unsigned)m->pid);
}

void proc_exec(uint32_t rid, const struct agx_exec *m)
{
    static char argv0[AGX_EXEC_ARGV_MAX_LEN + 1];

    if (m->argv_count == 0) {
        H->send.error(rid, AGX_MSG_EXEC, AGX_EINVAL, "argv is empty");
        return;
    }
    ag_memcpy(argv0, m->argv[0].ptr, m->argv[0].len);
    argv0[m->argv[0].len] = 0;
    const struct builtin *b = builtin_find(argv0);
    if (!b) {
        H->send.error(rid, AGX_MSG_EXEC, AGX_ENOENT, "execve %s: No such file or directory (not a Track B built-in)", argv0);
        return;
    }
    /* no filesystem: any absolute path is a working directory (the program reports it as given) */
    if (m->cwd.len && (m->cwd.ptr[0] != '/' || m->cwd.len >= CWD_MAX)) {
        H->send.error(rid, AGX_MSG_EXEC, AGX_ENOENT, "chdir %.*s: No such file or directory", (int)m->cwd.len, m->cwd.ptr);
        return;
    }
    struct proc *p = NULL;
    for (int i = 0; i < PROC_MAX && !p; i++)
        if (!procs[i].used) p = &procs[i];
    if (!p) {
        H->send.error(rid, AGX_MSG_EXEC, AGX_EAGAIN, "too many processes (%d)", PROC_MAX);
        return;
    }
    ag_memset(p, 0, offsetof(struct proc, arena));
    p->tx.out[1].buf = rings[p - procs][0];
    p->tx.out[2].buf = rings[p - procs][1];
    if (m->cwd.len) ag_memcpy(p->cwd, m->cwd.ptr, m->cwd.len);
    else p->cwd[0] = '/';

    /* argv, env (CONFIG defaults, then EXEC's own) and the program's state in the arena: the
     * frame is gone after this request */
    const char *const *def;
    size_t ndef = H->default_env(&def);
    char **argv = arena_alloc(p, sizeof(char *) * (m->argv_count + 1u));
    p->env = arena_alloc(p, sizeof(char *) * (ndef + m->env_count + 1u));
    if (!argv || !p->env) goto too_big;
    for (unsigned i = 0; i < m->argv_count; i++)
        if (!(argv[i] = arena_str(p, m->argv[i].ptr, m->argv[i].len))) goto too_big;
    for (size_t i = 0; i < ndef; i++)
        if (!(p->env[p->nenv++] = arena_str(p, def[i], ag_strlen(def[i])))) goto too_big;
    for (unsigned i = 0; i < m->env_count; i++)
        if (!(p->env[p->nenv++] = arena_str(p, m->env[i].ptr, m->env[i].len))) goto too_big;
    p->prog = (struct prog){.b = b, .argc = (int)m->argv_count, .argv = argv,
                            .io = {io_write, io_spawn_bg, io_getenv, io_hostname, p->cwd, p}};
    if (b->state_size && !(p->prog.priv = arena_alloc(p, b->state_size))) goto too_big;

    p->used = 1;
    p->pid = next_pid++;
    if (next_pid > 0x7FFFFFF0u) next_pid = 100;
    p->merge = (m->flags & AGX_EXEC_STDERR_TO_STDOUT) != 0;
    H->send.exec_started(rid, p->pid);
    /* merged stderr: the stream has no data of its own; its EOF goes out first */
    if (p->merge) p->tx.out[2].ended = 1;
    proc_pump_output();
    return;
too_big:
    H->send.error(rid, AGX_MSG_EXEC, AGX_E2BIG, "argv and env do not fit the %u-byte process arena", ARENA_SIZE);
}
