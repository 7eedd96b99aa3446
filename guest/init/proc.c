/* Processes started by EXEC: spawn with exec-error reporting (argv[0] "wslx-conform" is
 * this binary's conformance-program applet, conform.c), stdout/stderr
 * relay as STDIO frames (each stream held in a ring of AGX_OUTPUT_BUFFER bytes until the
 * host acknowledges them in version 2, or until framed in version 1; a full ring stops
 * the pipe being read, so the process blocks and nothing is dropped, with or without a
 * host), stdin relay with a bounded queue and STDIN_ACK credit,
 * SIGNAL, reaping (PID 1 also reaps orphans it inherits) and the EXIT event,
 * which is sent after both output streams reached EOF and the process was
 * reaped; if background children hold the output pipes open, at most
 * AGX_EXIT_EOF_GRACE_MS after the reap (our read ends are then closed). */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "init.h"
#include "proc.h"
#include "../agentx/agentx_program.h"
#include "../agentx/agentx_out.h"
#include "../agentx/agentx_rx.h"

/* Per process stdin queue. The current connection may have AGX_STDIN_WINDOW bytes in it; bytes a
 * lost connection left behind (ack_skip) take up to another window, so the queue holds 2 windows.
 * A STDIO frame beyond the window is dropped: STDIN_ACK DROPPED + ERROR EAGAIN. */
#define STDIN_QUEUE_CAP (2u * AGX_STDIN_WINDOW)
#define PIPE_SIZE (1u << 20)              /* larger stdout pipes: fewer wakeups for bulk output */
#define DEFAULT_PATH "PATH=/bin:/sbin:/usr/bin:/usr/sbin"

extern char **environ;

struct proc {
    int used;
    pid_t pid;
    int fd[3];        /* [0] stdin write end, [1] stdout read end, [2] stderr read end; -1 when closed */
    int reaped;       /* its status is in tx.how, tx.code */
    int stdin_piped;
    int stdin_eof;    /* host sent EOF (close once the queue drains), or stdin is closed */
    int stdin_out_registered; /* fd[0] is watched for EPOLLOUT (queue not empty) */
    int out_registered[3];    /* fd[1], fd[2] are in the epoll set (only while reading: see proc_set_reading) */
    uint8_t *inq;
    size_t inq_len;
    /* STDIN_ACK bookkeeping: bytes not yet acknowledged, by why they left (ACK_WRITTEN: written
     * to the pipe, ACK_CLOSED: discarded, stdin closed or process ended, ACK_DROPPED: refused as
     * over the window), and bytes at the head of the queue that a previous connection sent
     * (never acknowledged to a new host, and not part of its window) */
    size_t ack_pending[3];
    size_t ack_skip;
    /* reaped with an output stream still open: deadline (CLOCK_MONOTONIC ns) for its EOFs */
    uint64_t eof_deadline;
    int closing;          /* deadline passed: streams end once tail_left[s] more bytes are relayed */
    size_t tail_left[3];  /* bytes that were in the pipe at the deadline */
    /* output and EXIT for the host (agentx_out.h): out[s].ended, the pipe ended (its EOF frame
     * follows the held bytes); finished, reaped, pipes done, stdin closed */
    struct agx_proc_out tx;
    uint64_t stdin_accepted;  /* stdin bytes queued: the offset a version-2 stdin frame must have */
};

static struct proc procs[PROC_MAX];
static int reading = 1;
static const struct proc_host *H;   /* the agent: frames out, event loop (proc.h) */

void proc_init(const struct proc_host *host)
{
    H = host;
    reading = 1;
    for (int i = 0; i < PROC_MAX; i++) procs[i].used = 0;
}

/* The live (not yet reaped) slot of pid. A reaped slot may still relay its output tail while
 * the kernel already gave the pid to a new process of ours: both slots then carry that pid. */
static struct proc *find_live(uint32_t pid)
{
    for (int i = 0; i < PROC_MAX; i++)
        if (procs[i].used && !procs[i].reaped && (uint32_t)procs[i].pid == pid) return &procs[i];
    return NULL;
}

/* pid's slot for host requests: the live one if any, else one that is reaped but not yet gone. */
static struct proc *find_pid(uint32_t pid)
{
    struct proc *p = find_live(pid);
    if (p) return p;
    for (int i = 0; i < PROC_MAX; i++)
        if (procs[i].used && (uint32_t)procs[i].pid == pid) return &procs[i];
    return NULL;
}

unsigned proc_running(void)
{
    unsigned n = 0;
    for (int i = 0; i < PROC_MAX; i++)
        if (procs[i].used && !procs[i].reaped) n++;
    return n;
}

enum { ACK_WRITTEN, ACK_CLOSED, ACK_DROPPED };
static const uint32_t ack_flags[3] = {0, AGX_STDIN_ACK_CLOSED, AGX_STDIN_ACK_DROPPED};

/* n bytes left the stdin queue (written, or discarded as ACK_CLOSED): they become STDIN_ACK
 * credit, except bytes a previous connection sent. */
static void stdin_left(struct proc *p, size_t n, int why)
{
    size_t skip = n < p->ack_skip ? n : p->ack_skip;
    p->ack_skip -= skip;
    p->ack_pending[why] += n - skip;
}

/* Send the pending STDIN_ACKs (one per kind: written, closed, dropped, in that order); if the
 * output buffer has no room they stay pending and proc_flush_acks retries. force: send even into
 * a nearly full buffer (slot about to go). */
static void ack_flush(struct proc *p, int force)
{
    for (int k = 0; k < 3; k++) {
        while (p->ack_pending[k]) {
            if (!H->connected()) {
                p->ack_pending[0] = p->ack_pending[1] = p->ack_pending[2] = 0; /* nobody to credit */
                return;
            }
            uint32_t n = p->ack_pending[k] > 0xFFFFFFFFu ? 0xFFFFFFFFu : (uint32_t)p->ack_pending[k];
            if (H->stdin_ack((uint32_t)p->pid, n, ack_flags[k], force) < 0) return;
            p->ack_pending[k] -= n;
        }
    }
}

static int ack_owed(const struct proc *p)
{
    return p->ack_pending[0] || p->ack_pending[1] || p->ack_pending[2];
}

/* Our stdin write end goes: stdin is closed for good (later STDIO data gets CLOSED + EPIPE), the
 * queued bytes are discarded and acknowledged as CLOSED. */
static void close_stdin(struct proc *p)
{
    if (p->fd[0] >= 0) {
        H->ev_del(p->fd[0]);
        close(p->fd[0]);
        p->fd[0] = -1;
    }
    p->stdin_eof = 1;
    stdin_left(p, p->inq_len, ACK_CLOSED);
    free(p->inq);
    p->inq = NULL;
    p->inq_len = 0;
    p->stdin_out_registered = 0;
    ack_flush(p, 0);
}

static void maybe_exit(struct proc *p)
{
    if (!p->used || !p->reaped) return;
    if (!p->tx.out[1].ended || !p->tx.out[2].ended) {
        /* background children may hold the pipes: wait at most AGX_EXIT_EOF_GRACE_MS (proc_timers) */
        if (!p->eof_deadline) p->eof_deadline = now_ns(CLOCK_MONOTONIC) + AGX_EXIT_EOF_GRACE_MS * 1000000ull;
        return;
    }
    if (p->tx.finished) return;
    close_stdin(p);
    ack_flush(p, 1); /* every STDIN_ACK goes out before the EXIT */
    p->tx.finished = 1; /* proc_pump_output sends the EXIT after the held output and the EOFs */
}

static void proc_free(struct proc *p)
{
    for (int s = 1; s <= 2; s++) {
        free(p->tx.out[s].buf);
        p->tx.out[s].buf = NULL;
    }
    free(p->inq);
    p->inq = NULL;
    p->used = 0;
}

void proc_pump_output(void)
{
    for (int i = 0; i < PROC_MAX; i++) {
        struct proc *p = &procs[i];
        if (!p->used) continue;
        if (agx_proc_pump(&p->tx, (uint32_t)p->pid, &H->send) & AGX_PUMP_RELEASE) proc_free(p);
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

void proc_output_ack(const struct agx_output_ack *m)
{
    struct proc *p = find_pid(m->pid);
    if (agx_proc_output_ack(p ? &p->tx : NULL, m, &H->send) == 1) proc_free(p);
}

/* Watch (or stop watching) an output pipe. While the host is slow the pipes leave the epoll set
 * altogether: a pipe whose writers are gone reports EPOLLHUP whatever events are asked for. */
static void out_watch(struct proc *p, int s, int on)
{
    on = on && p->tx.out[s].len < AGX_OUTPUT_BUFFER;   /* a full ring: the process blocks on its pipe */
    if (p->fd[s] < 0 || on == p->out_registered[s]) return;
    if (on) {
        if (H->ev_add(p->fd[s], EPOLLIN, ev_tag(EV_PROC_OUT, (uint32_t)(p - procs), (uint32_t)s)) < 0) {
            wlog("epoll add pipe of process %d: %s", (int)p->pid, strerror(errno));
            return;
        }
    } else {
        H->ev_del(p->fd[s]);
    }
    p->out_registered[s] = on;
}

static void stream_eof(struct proc *p, int s)
{
    if (p->fd[s] >= 0) {
        out_watch(p, s, 0);
        close(p->fd[s]);
        p->fd[s] = -1;
    }
    p->tx.out[s].ended = 1;
    maybe_exit(p);
}

void proc_update_watches(void)
{
    for (int i = 0; i < PROC_MAX; i++) {
        if (!procs[i].used) continue;
        for (int s = 1; s <= 2; s++) out_watch(&procs[i], s, reading);
    }
}

void proc_set_reading(int on)
{
    reading = on;
    proc_update_watches();
}

/* Read what the pipe has into the stream's ring (up to want bytes, contiguous): the count,
 * 0 at end of file, -1 with errno. */
static ssize_t out_fill(struct proc *p, int s, size_t want)
{
    size_t room;
    uint8_t *tail = agx_outq_tail(&p->tx.out[s], &room);
    ssize_t n = read(p->fd[s], tail, want < room ? want : room);
    if (n > 0) agx_outq_commit(&p->tx.out[s], (size_t)n);
    return n;
}

void proc_on_output(uint32_t idx, uint32_t stream)
{
    if (idx >= PROC_MAX || (stream != 1 && stream != 2)) return;
    struct proc *p = &procs[idx];
    if (!p->used || p->fd[stream] < 0 || H->output_paused()) return;
    /* several reads per wakeup, while the ring has room */
    for (int i = 0; i < 8; i++) {
        size_t want = AGX_OUTPUT_BUFFER - p->tx.out[stream].len;
        if (p->closing && !p->tail_left[stream]) {
            stream_eof(p, (int)stream); /* grace over and the tail relayed: end the stream */
            return;
        }
        if (!want) break;   /* the ring is full: out_watch stops watching until an ack or a send */
        if (p->closing && p->tail_left[stream] < want) want = p->tail_left[stream];
        ssize_t n = out_fill(p, (int)stream, want);
        if (n > 0) {
            if (p->closing) {
                p->tail_left[stream] -= (size_t)n;
                if (!p->tail_left[stream]) {
                    stream_eof(p, (int)stream);
                    return;
                }
            }
            continue;
        }
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
        stream_eof(p, (int)stream);
        return;
    }
    out_watch(p, (int)stream, reading);
}

/* Write as much of the stdin queue as the pipe takes; what left the queue is acknowledged
 * with one STDIN_ACK per batch. */
static void stdin_pump(struct proc *p)
{
    size_t off = 0;
    int broken = 0;
    while (p->fd[0] >= 0 && off < p->inq_len) {
        ssize_t n = write(p->fd[0], p->inq + off, p->inq_len - off);
        if (n > 0) {
            off += (size_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
        broken = 1; /* EPIPE: the process closed its stdin */
        break;
    }
    if (off) {
        memmove(p->inq, p->inq + off, p->inq_len - off);
        p->inq_len -= off;
        stdin_left(p, off, ACK_WRITTEN);
    }
    if (p->fd[0] < 0) {
        ack_flush(p, 0);
        return;
    }
    if (broken || (!p->inq_len && p->stdin_eof)) {
        /* the rest is discarded (acknowledged as CLOSED); further STDIO gets CLOSED + EPIPE */
        close_stdin(p);
        return;
    }
    ack_flush(p, 0);
    int want = p->inq_len != 0;
    if (want != p->stdin_out_registered) {
        H->ev_mod(p->fd[0], want ? EPOLLOUT : 0, ev_tag(EV_PROC_IN, (uint32_t)(p - procs), 0));
        p->stdin_out_registered = want;
    }
}

void proc_on_stdin_writable(uint32_t idx, uint32_t events)
{
    if (idx >= PROC_MAX || !procs[idx].used) return;
    struct proc *p = &procs[idx];
    if (p->fd[0] < 0) return;
    stdin_pump(p);
    /* EPOLLERR (and EPOLLHUP) come whatever was asked for once the process closed its stdin:
     * a broken pipe, even with nothing queued (else the loop would spin on it) */
    if (p->fd[0] >= 0 && (events & (EPOLLERR | EPOLLHUP))) close_stdin(p);
}

#define ERR_STDIN_CLOSED AGX_EPIPE

void proc_stdin(uint8_t version, const struct agx_stdio *m)
{
    /* STDIO is an event: errors go out with request_id 0 */
    if (agx_stdin_check(m, H->send.error)) return;
    struct proc *p = find_pid(m->pid);
    if (!p) {
        H->send.error(0, AGX_MSG_STDIO, AGX_ESRCH, "no process %u", (unsigned)m->pid);
        return;
    }
    /* from here on every data byte is acknowledged exactly once: written, CLOSED or DROPPED */
    if (!p->stdin_piped || p->fd[0] < 0 || p->stdin_eof) {
        if (m->data.len) { /* an EOF-only frame for a closed stdin is a no-op */
            p->ack_pending[ACK_CLOSED] += m->data.len;
            ack_flush(p, 0);
            H->send.error(0, AGX_MSG_STDIO, ERR_STDIN_CLOSED, "stdin of process %u is %s", (unsigned)m->pid,
                       !p->stdin_piped ? "not a pipe (EXEC without STDIN_PIPE)"
                       : p->reaped     ? "closed (the process ended)"
                                       : "closed");
        }
        return;
    }
    if (version >= 2 && m->offset != p->stdin_accepted) {
        p->ack_pending[ACK_DROPPED] += m->data.len;
        ack_flush(p, 0);
        H->send.error(0, AGX_MSG_STDIO, AGX_EINVAL, "stdin of process %u: frame at offset %llu, expected %llu",
                 (unsigned)m->pid, (unsigned long long)m->offset, (unsigned long long)p->stdin_accepted);
        return;
    }
    if (m->data.len) {
        /* the window counts only bytes this connection sent: those a lost one left (ack_skip)
         * are not the new host's, and the queue has room for a window of them on top */
        size_t mine = p->inq_len - p->ack_skip;
        if (mine + m->data.len > AGX_STDIN_WINDOW || p->inq_len + m->data.len > STDIN_QUEUE_CAP) {
            p->ack_pending[ACK_DROPPED] += m->data.len;
            ack_flush(p, 0);
            H->send.error(0, AGX_MSG_STDIO, AGX_EAGAIN,
                       "stdin queue of process %u full (%u bytes, window %u); %u bytes dropped", (unsigned)m->pid,
                       (unsigned)mine, AGX_STDIN_WINDOW, (unsigned)m->data.len);
            return;
        }
        if (!p->inq) p->inq = malloc(STDIN_QUEUE_CAP);
        if (!p->inq) {
            p->ack_pending[ACK_DROPPED] += m->data.len;
            ack_flush(p, 0);
            H->send.error(0, AGX_MSG_STDIO, AGX_ENOMEM, "no memory for the stdin queue; %u bytes dropped",
                       (unsigned)m->data.len);
            return;
        }
        memcpy(p->inq + p->inq_len, m->data.ptr, m->data.len);
        p->inq_len += m->data.len;
        p->stdin_accepted += m->data.len;
    }
    if (m->flags & AGX_STDIO_EOF) p->stdin_eof = 1;
    stdin_pump(p);
}

void proc_signal(uint32_t rid, const struct agx_signal *m)
{
    if (agx_signal_check(rid, m, H->send.error)) return;
    struct proc *p = find_pid(m->pid);
    if (!p || p->reaped) {
        H->send.error(rid, AGX_MSG_SIGNAL, AGX_ESRCH, "no running process %u started by this agent", (unsigned)m->pid);
        return;
    }
    /* the process leads its own group (setsid): signal the whole group */
    if (kill(-p->pid, (int)m->signo) < 0 && kill(p->pid, (int)m->signo) < 0) {
        int e = errno;
        H->send.error(rid, AGX_MSG_SIGNAL, e, "kill %u: %s", (unsigned)m->pid, strerror(e));
        return;
    }
    H->send.ok(rid);
}

static void mark_reaped(pid_t pid, int status)
{
    /* only a live slot: an older, reaped one may still hold the same (reused) pid */
    struct proc *p = find_live((uint32_t)pid);
    if (!p) return; /* an orphan PID 1 inherited, or a failed exec: nothing to report */
    p->reaped = 1;
    p->tx.how = WIFSIGNALED(status) ? AGX_EXIT_SIGNALED : AGX_EXIT_EXITED;
    p->tx.code = WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status);
    /* nobody reads its stdin any more */
    if (p->fd[0] >= 0) close_stdin(p);
    maybe_exit(p);
}

void proc_reap(void)
{
    int status;
    pid_t pid;
    while ((pid = waitpid(-1, &status, WNOHANG)) > 0) mark_reaped(pid, status);
}

/* ---- timers and STDIN_ACK retries (called by the event loop) ---- */

/* Milliseconds until the earliest EOF deadline (rounded up), or -1 if none. */
int proc_timeout_ms(void)
{
    uint64_t first = 0;
    for (int i = 0; i < PROC_MAX; i++) {
        struct proc *p = &procs[i];
        if (p->used && p->eof_deadline && !p->closing && (!first || p->eof_deadline < first)) first = p->eof_deadline;
    }
    if (!first) return -1;
    uint64_t now = now_ns(CLOCK_MONOTONIC);
    if (first <= now) return 0;
    uint64_t ms = (first - now + 999999ull) / 1000000ull;
    return ms > 60000 ? 60000 : (int)ms;
}

/* Reaped processes whose output streams outlived the grace: relay what is already in the
 * pipe (with the usual backpressure), then close our read ends and send the EOFs (and EXIT).
 * A background writer that keeps writing only gets what was there at the deadline. */
void proc_timers(void)
{
    uint64_t now = now_ns(CLOCK_MONOTONIC);
    for (int i = 0; i < PROC_MAX; i++) {
        struct proc *p = &procs[i];
        if (!p->used || !p->eof_deadline || p->closing || now < p->eof_deadline) continue;
        p->closing = 1;
        for (int s = 1; s <= 2 && p->used; s++) {
            if (p->tx.out[s].ended || p->fd[s] < 0) continue;
            int avail = 0;
            if (ioctl(p->fd[s], FIONREAD, &avail) < 0 || avail < 0) avail = 0;
            p->tail_left[s] = (size_t)avail;
            if (!avail) stream_eof(p, s); /* may send EXIT and free the slot */
            else if (reading) proc_on_output((uint32_t)i, (uint32_t)s);
        }
    }
}

/* Retry STDIN_ACKs that found the output buffer full. */
void proc_flush_acks(void)
{
    for (int i = 0; i < PROC_MAX; i++)
        if (procs[i].used && ack_owed(&procs[i])) ack_flush(&procs[i], 0);
}

/* The control connection went away: nothing is owed to the next host; bytes still queued
 * came from the old one and will not be acknowledged to the new one. */
void proc_connection_lost(void)
{
    for (int i = 0; i < PROC_MAX; i++) {
        procs[i].ack_pending[0] = procs[i].ack_pending[1] = procs[i].ack_pending[2] = 0;
        procs[i].ack_skip = procs[i].used ? procs[i].inq_len : 0;
    }
}

/* ---- EXEC ---- */

/* argv/env/cwd copied out of the frame as C strings */
static char arena[AGX_MAX_PAYLOAD + 2 * (AGX_EXEC_ARGV_MAX_COUNT + AGX_EXEC_ENV_MAX_COUNT) + 16];
static char *argv_c[AGX_EXEC_ARGV_MAX_COUNT + 1];
static char *envp_c[AGX_EXEC_ENV_MAX_COUNT + AGX_ENV_MAX_COUNT + 2];

static size_t key_len(const char *kv)
{
    const char *eq = strchr(kv, '=');
    return eq ? (size_t)(eq - kv) : strlen(kv);
}

struct spawn_fail {
    int stage; /* 1 chdir, 2 execve, 3 setup */
    int err;
};

static void close_pair(int p[2])
{
    if (p[0] >= 0) close(p[0]);
    if (p[1] >= 0) close(p[1]);
    p[0] = p[1] = -1;
}

void proc_exec(uint32_t rid, const struct agx_exec *m, const char *const *defenv, size_t ndef)
{
    if (m->argv_count == 0) {
        H->send.error(rid, AGX_MSG_EXEC, AGX_EINVAL, "argv is empty");
        return;
    }
    int slot = -1;
    for (int i = 0; i < PROC_MAX; i++)
        if (!procs[i].used) { slot = i; break; }
    if (slot < 0) {
        H->send.error(rid, AGX_MSG_EXEC, AGX_EAGAIN, "too many processes (%d)", PROC_MAX);
        return;
    }

    /* C strings: argv, env (CONFIG defaults overridden by EXEC's own), cwd */
    size_t off = 0;
    for (unsigned i = 0; i < m->argv_count; i++) {
        argv_c[i] = arena + off;
        str_copy(argv_c[i], sizeof arena - off, m->argv[i]);
        off += m->argv[i].len + 1u;
    }
    argv_c[m->argv_count] = NULL;
    char *exec_env[AGX_EXEC_ENV_MAX_COUNT];
    for (unsigned i = 0; i < m->env_count; i++) {
        exec_env[i] = arena + off;
        str_copy(exec_env[i], sizeof arena - off, m->env[i]);
        off += m->env[i].len + 1u;
    }
    char *cwd = arena + off;
    str_copy(cwd, sizeof arena - off, m->cwd);
    if (!cwd[0]) cwd = "/";

    size_t ne = 0;
    int have_path = 0;
    for (size_t i = 0; i < ndef; i++) {
        size_t kl = key_len(defenv[i]);
        int overridden = 0;
        for (unsigned j = 0; j < m->env_count && !overridden; j++)
            overridden = key_len(exec_env[j]) == kl && !memcmp(exec_env[j], defenv[i], kl);
        if (!overridden) envp_c[ne++] = (char *)defenv[i];
    }
    for (unsigned j = 0; j < m->env_count; j++) envp_c[ne++] = exec_env[j];
    for (size_t i = 0; i < ne; i++)
        if (!strncmp(envp_c[i], "PATH=", 5)) have_path = 1;
    if (!have_path) envp_c[ne++] = DEFAULT_PATH;
    envp_c[ne] = NULL;

    int merge = (m->flags & AGX_EXEC_STDERR_TO_STDOUT) != 0;
    int piped = (m->flags & AGX_EXEC_STDIN_PIPE) != 0;
    int pin[2] = {-1, -1}, pout[2] = {-1, -1}, perr[2] = {-1, -1}, pfail[2] = {-1, -1};
    int devnull = -1;
    if (pipe2(pout, O_CLOEXEC) < 0 || (!merge && pipe2(perr, O_CLOEXEC) < 0) || (piped && pipe2(pin, O_CLOEXEC) < 0) ||
        pipe2(pfail, O_CLOEXEC) < 0 || (!piped && (devnull = open("/dev/null", O_RDWR | O_CLOEXEC)) < 0)) {
        int e = errno;
        close_pair(pin), close_pair(pout), close_pair(perr), close_pair(pfail);
        H->send.error(rid, AGX_MSG_EXEC, e, "pipe: %s", strerror(e));
        return;
    }
    fcntl(pout[0], F_SETPIPE_SZ, PIPE_SIZE);

    pid_t pid = fork();
    if (pid == 0) {
        /* child: own session, stdio on the pipes, default signals, then exec */
        struct spawn_fail f = {3, 0};
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        signal(SIGPIPE, SIG_DFL);
        setsid();
        if (H->test_mode) prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (dup2(piped ? pin[0] : devnull, 0) < 0 || dup2(pout[1], 1) < 0 || dup2(merge ? pout[1] : perr[1], 2) < 0) {
            f.err = errno;
        } else if (chdir(cwd) < 0) {
            f.stage = 1;
            f.err = errno;
        } else {
            environ = envp_c;
            if (agx_program_is(argv_c[0])) execve("/proc/self/exe", argv_c, envp_c);   /* our applet (conform.c) */
            else execvp(argv_c[0], argv_c);
            f.stage = 2;
            f.err = errno;
        }
        ssize_t w = write(pfail[1], &f, sizeof f);
        (void)w;
        _exit(127);
    }
    int fork_err = errno;
    close(pfail[1]);
    if (pin[0] >= 0) close(pin[0]);
    close(pout[1]);
    if (perr[1] >= 0) close(perr[1]);
    if (devnull >= 0) close(devnull);
    if (pid < 0) {
        close(pfail[0]);
        if (pin[1] >= 0) close(pin[1]);
        close(pout[0]);
        if (perr[0] >= 0) close(perr[0]);
        H->send.error(rid, AGX_MSG_EXEC, fork_err, "fork: %s", strerror(fork_err));
        return;
    }

    /* the error pipe closes on a successful exec (CLOEXEC) or carries the failure */
    struct spawn_fail f = {0, 0};
    ssize_t n;
    do n = read(pfail[0], &f, sizeof f);
    while (n < 0 && errno == EINTR);
    close(pfail[0]);
    if (n == (ssize_t)sizeof f) {
        int st;
        while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {}
        if (pin[1] >= 0) close(pin[1]);
        close(pout[0]);
        if (perr[0] >= 0) close(perr[0]);
        if (f.stage == 1) H->send.error(rid, AGX_MSG_EXEC, f.err, "chdir %s: %s", cwd, strerror(f.err));
        else if (f.stage == 2) H->send.error(rid, AGX_MSG_EXEC, f.err, "execve %s: %s", argv_c[0], strerror(f.err));
        else H->send.error(rid, AGX_MSG_EXEC, f.err, "spawn %s: %s", argv_c[0], strerror(f.err));
        return;
    }

    /* the output rings (stderr has none when merged into stdout) */
    uint8_t *ring1 = malloc(AGX_OUTPUT_BUFFER), *ring2 = merge ? NULL : malloc(AGX_OUTPUT_BUFFER);
    if (!ring1 || (!merge && !ring2)) {
        free(ring1);
        free(ring2);
        kill(pid, SIGKILL);
        while (waitpid(pid, NULL, 0) < 0 && errno == EINTR) {}
        if (pin[1] >= 0) close(pin[1]);
        close(pout[0]);
        if (perr[0] >= 0) close(perr[0]);
        H->send.error(rid, AGX_MSG_EXEC, AGX_ENOMEM, "no memory for the output buffers of %s", argv_c[0]);
        return;
    }
    struct proc *p = &procs[slot];
    memset(p, 0, sizeof *p);
    p->tx.out[1].buf = ring1;
    p->tx.out[2].buf = ring2;
    p->used = 1;
    p->pid = pid;
    p->fd[0] = pin[1];
    p->fd[1] = pout[0];
    p->fd[2] = perr[0];
    p->stdin_piped = piped;
    set_nonblock(p->fd[1]);
    if (p->fd[2] >= 0) set_nonblock(p->fd[2]);
    out_watch(p, 1, reading);
    out_watch(p, 2, reading);
    if (p->fd[0] >= 0) {
        /* watched with no events while the queue is empty: EPOLLERR still says the process
         * closed its stdin (proc_on_stdin_writable) */
        set_nonblock(p->fd[0]);
        H->ev_add(p->fd[0], 0, ev_tag(EV_PROC_IN, (uint32_t)slot, 0));
    }
    H->send.exec_started(rid, (uint32_t)pid);
    /* merged stderr: the stream has no data of its own; end it right away */
    if (merge) stream_eof(p, 2);
}

/* ---- shutdown ---- */
static int all_reaped(void)
{
    for (int i = 0; i < PROC_MAX; i++)
        if (procs[i].used && !procs[i].reaped) return 0;
    return 1;
}

static void wait_children(uint64_t ms)
{
    uint64_t deadline = now_ns(CLOCK_MONOTONIC) + ms * 1000000ull;
    for (;;) {
        int status;
        pid_t pid;
        while ((pid = waitpid(-1, &status, WNOHANG)) > 0) mark_reaped(pid, status);
        /* PID 1 waits for every process; otherwise for ours */
        if (H->pid1 ? (pid < 0 && errno == ECHILD) : all_reaped()) return;
        if (now_ns(CLOCK_MONOTONIC) >= deadline) return;
        struct timespec ts = {0, 10 * 1000000};
        nanosleep(&ts, NULL);
    }
}

static void signal_all(int sig)
{
    for (int i = 0; i < PROC_MAX; i++)
        if (procs[i].used && !procs[i].reaped && kill(-procs[i].pid, sig) < 0) kill(procs[i].pid, sig);
    if (H->pid1) kill(-1, sig); /* everything but PID 1 itself */
}

void proc_terminate_all(uint32_t grace_ms)
{
    signal_all(SIGTERM);
    wait_children(grace_ms);
    signal_all(SIGKILL);
    wait_children(1000);
}

void proc_drain_finished(void)
{
    /* read what the pipes still hold into the rings, and frame it, until every stream ended */
    for (int round = 0; round < 256; round++) {
        int more = 0;
        for (int i = 0; i < PROC_MAX; i++) {
            struct proc *p = &procs[i];
            for (int s = 1; s <= 2 && p->used; s++) {
                while (p->used && p->fd[s] >= 0 && p->tx.out[s].len < AGX_OUTPUT_BUFFER) {
                    ssize_t n = out_fill(p, s, AGX_OUTPUT_BUFFER);
                    if (n > 0) continue;
                    if (n < 0 && errno == EINTR) continue;
                    stream_eof(p, s); /* EOF, or EAGAIN: a writer escaped the group; end the stream anyway */
                }
                if (p->used && p->fd[s] >= 0) more = 1;   /* the ring is full: frame, then read on */
            }
        }
        proc_pump_output();
        H->flush_blocking(1000);
        if (!more) break;
    }
}
