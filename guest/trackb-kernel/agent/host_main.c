/* host_main.c: agent_env.h implemented on a connected socket, so the very same
 * agent sources run on the host (tests, conformance target `trackb-host`).
 *
 *   trackb-agent-host --connect-unix PATH [--pmem-file F] [--pmem-size N]
 *   trackb-agent-host --agent-fd N        [--pmem-file F] [--pmem-size N]
 *
 * The pmem model is the file mapped shared (msync is the flush), like the
 * virtio-pmem region the kernel maps. SHUTDOWN ends the process with the exit
 * code; `fault` prints a diagnostic shaped like the kernel's and exits 70. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "agent_env.h"
#include "portal_svc.h"
#include "gemini_svc.h"

static int chan = -1;
static struct timespec t_start;
static void *pmem;
static uint64_t pmem_len;

static void usage(void)
{
    fprintf(stderr, "usage: trackb-agent-host (--connect-unix PATH | --agent-fd N) [--pmem-file F [--pmem-size N]]\n");
    exit(2);
}

uint32_t env_chan_connects(void) { return 0; }   /* one connection, dialled at start */
int env_signal(uint8_t ring) { (void)ring; return -1; }   /* no signal port: the host polls */
long env_signal_drain(void) { return -1; }
long env_upcall_drain(void) { return -1; }   /* no upcall port: the agent polls UPCALL */

long env_chan_read(void *buf, size_t cap)
{
    for (;;) {
        ssize_t n = read(chan, buf, cap);
        if (n > 0) return n;
        if (n == 0) return -1;
        if (errno == EINTR) continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) return 0;
        return -1;
    }
}

long env_chan_write(const void *buf, size_t len, uint32_t timeout_ms)
{
    const char *p = buf;
    uint64_t deadline = env_now_ns() + (uint64_t)timeout_ms * 1000000ull;
    while (len) {
        ssize_t n = send(chan, p, len, MSG_NOSIGNAL);
        if (n > 0) {
            p += n, len -= (size_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK) return p == (const char *)buf ? -1 : p - (const char *)buf;
        uint64_t now = env_now_ns();
        if (now >= deadline) break;   /* the peer is not reading: the agent keeps the rest */
        struct pollfd pf = {.fd = chan, .events = POLLOUT};
        poll(&pf, 1, (int)((deadline - now) / 1000000ull) + 1);
    }
    return p - (const char *)buf;
}

uint64_t env_now_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (uint64_t)(t.tv_sec - t_start.tv_sec) * 1000000000ull + (uint64_t)(t.tv_nsec - t_start.tv_nsec) + 1;
}

void env_relax(void)
{
    /* like hlt until the next tick: wake for input, or after 1 ms for sleeping built-ins */
    struct pollfd pf = {.fd = chan, .events = POLLIN};
    poll(&pf, 1, 1);
}

const char *env_uname(void) { return "wslx-trackb 0.1 x86_64-host-harness"; }

uint64_t env_mem_total_bytes(void) { return (uint64_t)sysconf(_SC_PHYS_PAGES) * (uint64_t)sysconf(_SC_PAGESIZE); }
uint64_t env_mem_free_bytes(void) { return (uint64_t)sysconf(_SC_AVPHYS_PAGES) * (uint64_t)sysconf(_SC_PAGESIZE); }

void *env_pmem_base(void) { return pmem; }
uint64_t env_pmem_size(void) { return pmem ? pmem_len : 0; }

int env_pmem_flush(uint32_t timeout_ms)
{
    (void)timeout_ms;
    if (!pmem) return -ENODEV;
    return msync(pmem, pmem_len, MS_SYNC) == 0 ? 0 : -EIO;
}

void env_console_write(const char *s, size_t len)
{
    ssize_t w = write(2, s, len);
    (void)w;
}

_Noreturn void env_fault_on_purpose(void)
{
    static const char msg[] = "EXCEPTION: vector 14 (#PF) on purpose; host harness has no CPU to fault, exiting 70\n";
    env_console_write(msg, sizeof msg - 1);
    _exit(70);
}

_Noreturn void env_power_off(int code, int reboot)
{
    fprintf(stderr, "trackb-agent-host: %s, exit code %d\n", reboot ? "reboot requested" : "power off", code);
    exit(code);
}

static int connect_unix(const char *path)
{
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    if (strlen(path) >= sizeof a.sun_path) {
        fprintf(stderr, "trackb-agent-host: socket path too long: %s\n", path);
        exit(2);
    }
    strcpy(a.sun_path, path);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof a) < 0) {
        fprintf(stderr, "trackb-agent-host: connect %s: %s\n", path, strerror(errno));
        exit(1);
    }
    return fd;
}

static void map_pmem(const char *file, uint64_t size)
{
    int fd = open(file, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) < 0) {
        fprintf(stderr, "trackb-agent-host: pmem file %s: %s\n", file, strerror(errno));
        exit(1);
    }
    if (!size) size = (uint64_t)st.st_size;
    if (!size || ((uint64_t)st.st_size < size && ftruncate(fd, (off_t)size) < 0)) {
        fprintf(stderr, "trackb-agent-host: pmem file %s: no size\n", file);
        exit(1);
    }
    pmem = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (pmem == MAP_FAILED) {
        fprintf(stderr, "trackb-agent-host: mmap %s: %s\n", file, strerror(errno));
        exit(1);
    }
    pmem_len = size;
    close(fd);
}

int main(int argc, char **argv)
{
    const char *pmem_file = NULL;
    uint64_t pmem_size = 0;
    clock_gettime(CLOCK_MONOTONIC, &t_start);
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--connect-unix") && i + 1 < argc) chan = connect_unix(argv[++i]);
        else if (!strcmp(argv[i], "--agent-fd") && i + 1 < argc) chan = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--pmem-file") && i + 1 < argc) pmem_file = argv[++i];
        else if (!strcmp(argv[i], "--pmem-size") && i + 1 < argc) pmem_size = strtoull(argv[++i], NULL, 0);
        else usage();
    }
    if (chan < 0) usage();
    if (fcntl(chan, F_SETFL, fcntl(chan, F_GETFL) | O_NONBLOCK) < 0) {
        fprintf(stderr, "trackb-agent-host: fd %d: %s\n", chan, strerror(errno));
        return 1;
    }
    if (pmem_file) map_pmem(pmem_file, pmem_size);
    agent_register_portal(&portal_service_ops);   /* as the kernel does */
    agent_register_gemini(&gemini_service_ops);   /* as the kernel does  */
    agent_main();
}
