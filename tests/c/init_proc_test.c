/* init_proc_test.c: guest/init/proc.c alone, behind its struct proc_host (proc.h).
 *
 * The fake host records every frame proc.c emits and runs a small epoll loop
 * with a SIGCHLD signalfd, as agent.c does; real processes are started (the
 * wslx-init binary's conformance-program applet is not involved: plain
 * /bin programs). Each scenario checks the frames and their order and prints
 * "ok NAME"; any failure prints "FAIL NAME: why" and exits 1. Built with
 * ASan/UBSan by tests/test_init_proc.py. */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <time.h>
#include <unistd.h>

#include "init.h"
#include "proc.h"

struct frame {
    int kind;              /* 'E' error, 'O' ok, 'S' exec_started, 'D' stdio, 'X' exit, 'A' stdin_ack */
    uint32_t rid, pid;
    int code;              /* error code, exit code, stream, ack flags */
    int how, eof;
    char data[256];
    size_t len;
};
static struct frame frames[4096];
static size_t nframes;
static int epfd, sigfd;
static const char *current;

static void fail(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    printf("FAIL %s: ", current);
    vprintf(fmt, ap);
    printf("\n");
    va_end(ap);
    exit(1);
}

static struct frame *record(int kind)
{
    if (nframes == sizeof frames / sizeof frames[0]) fail("too many frames");
    struct frame *f = &frames[nframes++];
    memset(f, 0, sizeof *f);
    f->kind = kind;
    return f;
}

static void h_error(uint32_t rid, uint16_t rtype, int code, const char *fmt, ...)
{
    struct frame *f = record('E');
    va_list ap;
    va_start(ap, fmt);
    f->len = (size_t)vsnprintf(f->data, sizeof f->data, fmt, ap);
    va_end(ap);
    f->rid = rid, f->code = code;
    (void)rtype;
}
static void h_ok(uint32_t rid) { record('O')->rid = rid; }
static void h_exec_started(uint32_t rid, uint32_t pid)
{
    struct frame *f = record('S');
    f->rid = rid, f->pid = pid;
}
static void h_stdio(uint32_t pid, uint8_t stream, uint8_t flags, uint64_t offset, const uint8_t *data, uint32_t len)
{
    (void)offset;
    struct frame *f = record('D');
    f->pid = pid, f->code = stream, f->eof = flags & AGX_STDIO_EOF;
    f->len = len < sizeof f->data ? len : sizeof f->data;
    if (len) memcpy(f->data, data, f->len);
}
static void h_exit(uint32_t pid, uint8_t how, int32_t code)
{
    struct frame *f = record('X');
    f->pid = pid, f->how = how, f->code = code;
}
static int h_stdin_ack(uint32_t pid, uint32_t bytes, uint32_t flags, int force)
{
    struct frame *f = record('A');
    f->pid = pid, f->len = bytes, f->code = (int)flags;
    (void)force;
    return 0;
}
static int h_connected(void) { return 1; }
static int h_bulk_ok(void) { return 1; }
static uint8_t h_version(void) { return 1; }   /* a version-1 session: output counts as delivered when framed */
static void h_flush_blocking(int timeout_ms) { (void)timeout_ms; }
static int h_ev_add(int fd, uint32_t events, uint64_t tag)
{
    struct epoll_event e = {.events = events, .data.u64 = tag};
    return epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &e);
}
static int h_ev_mod(int fd, uint32_t events, uint64_t tag)
{
    struct epoll_event e = {.events = events, .data.u64 = tag};
    return epoll_ctl(epfd, EPOLL_CTL_MOD, fd, &e);
}
static void h_ev_del(int fd)
{
    struct epoll_event e = {0};
    epoll_ctl(epfd, EPOLL_CTL_DEL, fd, &e);
}

static int h_output_paused(void) { return 0; }

static const struct proc_host host = {
    .send = {.error = h_error, .ok = h_ok, .exec_started = h_exec_started, .stdio = h_stdio, .exit = h_exit,
             .events_ok = h_bulk_ok, .version = h_version},
    .stdin_ack = h_stdin_ack, .connected = h_connected, .bulk_ok = h_bulk_ok, .output_paused = h_output_paused, .flush_blocking = h_flush_blocking,
    .ev_add = h_ev_add, .ev_mod = h_ev_mod, .ev_del = h_ev_del, .pid1 = 0, .test_mode = 1,
};

/* One turn of the agent's loop: wait at most ms for events and hand them to proc.c. */
static void loop_once(int ms)
{
    struct epoll_event evs[16];
    int t = proc_timeout_ms();
    int n = epoll_wait(epfd, evs, 16, t >= 0 && t < ms ? t : ms);
    for (int i = 0; i < n; i++) {
        uint64_t tag = evs[i].data.u64;
        uint32_t kind = (uint32_t)(tag >> 32), idx = (uint32_t)(tag >> 8) & 0xFFFFFF, stream = tag & 0xFF;
        if (kind == EV_SIGNALFD) {
            struct signalfd_siginfo si;
            while (read(sigfd, &si, sizeof si) == (ssize_t)sizeof si) {}
            proc_reap();
        } else if (kind == EV_PROC_OUT) {
            proc_on_output(idx, stream);
        } else if (kind == EV_PROC_IN) {
            proc_on_stdin_writable(idx, evs[i].events);
        }
    }
    proc_timers();
    proc_pump_output();
    proc_update_watches();
}

static struct frame *find(int kind, uint32_t pid, size_t from)
{
    for (size_t i = from; i < nframes; i++)
        if (frames[i].kind == kind && (!pid || frames[i].pid == pid)) return &frames[i];
    return NULL;
}

/* Run the loop until pid's EXIT (5 s at most); its index. */
static size_t wait_exit(uint32_t pid)
{
    uint64_t deadline = now_ns(CLOCK_MONOTONIC) + 5000000000ull;
    while (!find('X', pid, 0)) {
        if (now_ns(CLOCK_MONOTONIC) > deadline) fail("no EXIT for pid %u within 5 s", (unsigned)pid);
        loop_once(100);
    }
    return (size_t)(find('X', pid, 0) - frames);
}

static uint32_t start(uint32_t rid, uint32_t flags, const char *const *argv)
{
    static struct agx_exec m;
    memset(&m, 0, sizeof m);
    m.flags = flags;
    m.cwd = agx_str_from_c("");   /* a decoded EXEC never has NULL strings */
    while (argv[m.argv_count]) {
        m.argv[m.argv_count] = agx_str_from_c(argv[m.argv_count]);
        m.argv_count++;
    }
    size_t before = nframes;
    proc_exec(rid, &m, NULL, 0);
    struct frame *s = find('S', 0, before);
    if (!s) return 0;
    if (s->rid != rid) fail("EXEC_STARTED for request %u, expected %u", (unsigned)s->rid, (unsigned)rid);
    return s->pid;
}

/* Bytes of stream s of pid, and both EOFs seen before index end. */
static size_t output(uint32_t pid, int s, char *buf, size_t cap, size_t end, int *eofs)
{
    size_t n = 0;
    *eofs = 0;
    for (size_t i = 0; i < end; i++) {
        struct frame *f = &frames[i];
        if (f->kind != 'D' || f->pid != pid) continue;
        if (f->eof) (*eofs)++;
        if (f->code == s && n + f->len <= cap) memcpy(buf + n, f->data, f->len), n += f->len;
    }
    return n;
}

static void test_exit_status_and_output(void)
{
    current = "exit_status_and_output";
    const char *argv[] = {"/bin/sh", "-c", "printf out; printf err >&2; exit 3", NULL};
    uint32_t pid = start(1, 0, argv);
    if (!pid) fail("no EXEC_STARTED");
    size_t x = wait_exit(pid);
    char buf[64];
    int eofs;
    size_t n = output(pid, AGX_STREAM_STDOUT, buf, sizeof buf, x, &eofs);
    if (n != 3 || memcmp(buf, "out", 3)) fail("stdout %.*s", (int)n, buf);
    n = output(pid, AGX_STREAM_STDERR, buf, sizeof buf, x, &eofs);
    if (n != 3 || memcmp(buf, "err", 3)) fail("stderr %.*s", (int)n, buf);
    if (eofs != 2) fail("%d EOF frames before EXIT, expected 2", eofs);
    if (frames[x].how != AGX_EXIT_EXITED || frames[x].code != 3)
        fail("EXIT how %d code %d", frames[x].how, frames[x].code);
    printf("ok %s\n", current);
}

static void test_missing_program(void)
{
    current = "missing_program";
    const char *argv[] = {"/nonexistent/prog", NULL};
    size_t before = nframes;
    if (start(2, 0, argv)) fail("a process was started");
    struct frame *e = find('E', 0, before);
    if (!e || e->rid != 2 || e->code != AGX_ENOENT || !strstr(e->data, "execve /nonexistent/prog"))
        fail("expected ERROR ENOENT naming the program, got %s", e ? e->data : "nothing");
    printf("ok %s\n", current);
}

static void test_stdin_is_acknowledged(void)
{
    current = "stdin_is_acknowledged";
    const char *argv[] = {"/bin/cat", NULL};
    uint32_t pid = start(3, AGX_EXEC_STDIN_PIPE, argv);
    if (!pid) fail("no EXEC_STARTED");
    struct agx_stdio in = {.pid = pid, .stream = AGX_STREAM_STDIN, .flags = AGX_STDIO_EOF,
                           .data = {(const uint8_t *)"abc", 3}};
    proc_stdin(1, &in);
    size_t x = wait_exit(pid);
    struct frame *a = find('A', pid, 0);
    if (!a || a->len != 3 || a->code != 0) fail("expected STDIN_ACK of 3 written bytes");
    if ((size_t)(a - frames) > x) fail("STDIN_ACK after EXIT");
    char buf[16];
    int eofs;
    size_t n = output(pid, AGX_STREAM_STDOUT, buf, sizeof buf, x, &eofs);
    if (n != 3 || memcmp(buf, "abc", 3) || frames[x].code != 0)
        fail("cat gave %.*s, exit %d", (int)n, buf, frames[x].code);
    printf("ok %s\n", current);
}

static void test_signal(void)
{
    current = "signal";
    const char *argv[] = {"/bin/sleep", "100", NULL};
    uint32_t pid = start(4, 0, argv);
    if (!pid) fail("no EXEC_STARTED");
    struct agx_signal sig = {.pid = pid, .signo = AGX_SIGTERM};
    size_t before = nframes;
    proc_signal(5, &sig);
    struct frame *ok = find('O', 0, before);
    if (!ok || ok->rid != 5) fail("SIGNAL not answered with OK");
    size_t x = wait_exit(pid);
    if (frames[x].how != AGX_EXIT_SIGNALED || frames[x].code != AGX_SIGTERM)
        fail("EXIT how %d code %d", frames[x].how, frames[x].code);
    before = nframes;
    proc_signal(6, &sig);
    struct frame *e = find('E', 0, before);
    if (!e || e->code != AGX_ESRCH) fail("SIGNAL of an ended process: expected ESRCH");
    printf("ok %s\n", current);
}

static void test_background_child_bounded_by_grace(void)
{
    current = "background_child_bounded_by_grace";
    const char *argv[] = {"/bin/sh", "-c", "sleep 2 & echo hi", NULL};
    uint64_t t0 = now_ns(CLOCK_MONOTONIC);
    uint32_t pid = start(7, 0, argv);
    if (!pid) fail("no EXEC_STARTED");
    size_t x = wait_exit(pid);
    uint64_t ms = (now_ns(CLOCK_MONOTONIC) - t0) / 1000000ull;
    int eofs;
    char buf[16];
    size_t n = output(pid, AGX_STREAM_STDOUT, buf, sizeof buf, x, &eofs);
    if (n != 3 || eofs != 2) fail("stdout %.*s, %d EOFs", (int)n, buf, eofs);
    if (ms > AGX_EXIT_EOF_GRACE_MS + 2000) fail("EXIT after %u ms", (unsigned)ms);
    printf("ok %s\n", current);
}

int main(void)
{
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGCHLD);
    sigprocmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);
    epfd = epoll_create1(EPOLL_CLOEXEC);
    sigfd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
    if (epfd < 0 || sigfd < 0) return 2;
    h_ev_add(sigfd, EPOLLIN, ev_tag(EV_SIGNALFD, 0, 0));
    proc_init(&host);
    test_exit_status_and_output();
    test_missing_program();
    test_stdin_is_acknowledged();
    test_signal();
    test_background_child_bounded_by_grace();
    proc_terminate_all(0);
    printf("all passed\n");
    return 0;
}
