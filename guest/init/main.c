/* wslx-init: PID 1 of WSLX Linux guests and their AgentX agent.
 *
 *   /init                         as PID 1: set up the system, dial the host, serve AgentX forever
 *   wslx-init --agent-fd N        host test mode: serve AgentX on the already-connected fd N, no setup,
 *                                 exit when N closes or on SHUTDOWN
 *   wslx-init --no-setup [--cmdline STR]
 *                                 like PID 1 (transport selection, reconnects) minus mounts, modules and
 *                                 power off; STR replaces /proc/cmdline
 *   wslx-init --no-setup --connect-unix PATH
 *                                 the same, dialling the AF_UNIX stream socket PATH (host tests of reconnects)
 *   wslx-init portal serve|probe|memcpy|info [...]
 *                                 Portal service and probes (portal_linux.c), started by EXEC
 *   wslx-conform STEP...          (argv[0]) the AgentX conformance program (conform.c), started by EXEC
 *   wslx-init gemini serve [...]  the Gemini agent (gemini_linux.c), started by EXEC
 *   wslx-call SERVICE METHOD [ARGS...]
 *                                 (argv[0], /bin/wslx-call -> /init) a Gemini call to a host service
 *   wslx-init [--assume-hypervisor hyperv|other] --modules-dry-run LIST
 *                                 print the modules of LIST this machine would load (Hyper-V or virtio
 *                                 vsock set) and exit; --assume-hypervisor replaces the CPUID detection
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "init.h"
#include "../agentx/agentx_program.h"

struct init_opts g_opts = {.agent_fd = -1};

static void usage(void)
{
    fprintf(stderr,
            "wslx-init " WSLX_INIT_VERSION ": PID 1 and AgentX agent of WSLX Linux guests\n"
            "usage: wslx-init                       (as PID 1)\n"
            "       wslx-init --agent-fd N          serve AgentX on fd N (host test mode)\n"
            "       wslx-init --no-setup [--cmdline STR | --connect-unix PATH]\n"
            "       wslx-init --no-setup --check-sandbox   can test mode isolate itself? (exit 3: no, says why)\n"
            "       wslx-init [--assume-hypervisor hyperv|other] --modules-dry-run LIST\n");
}

void read_cmdline(char *buf, size_t cap)
{
    buf[0] = 0;
    int fd = open("/proc/cmdline", O_RDONLY | O_CLOEXEC);
    if (fd < 0) return;
    ssize_t n = read(fd, buf, cap - 1);
    close(fd);
    buf[n > 0 ? n : 0] = 0;
}

/* Console on fds 0, 1, 2 (the kernel may have started us without /dev/console). */
static void console_setup(void)
{
    int fd = open("/dev/console", O_RDWR | O_NOCTTY | O_CLOEXEC);
    if (fd < 0) return;
    for (int i = 0; i < 3; i++) dup2(fd, i);
    if (fd > 2) close(fd);
}

/* Test mode as root: keep MOUNT and hostname changes inside private namespaces, or refuse to
 * run (fail closed, exit SANDBOX_REFUSED): a MOUNT must never create directories or mounts in
 * the host's tree. When / is not a mount point (a chroot), making it private fails with EINVAL;
 * bind-mounting / on itself first would not be sound: the mount that contains a chroot's root
 * is invisible from inside it, and if it is shared the bind mount would propagate to the host. */
#define SANDBOX_REFUSED 3

static _Noreturn void sandbox_refuse(const char *step, int err, const char *hint)
{
    fprintf(stderr, "wslx-init: test mode: cannot set up the sandbox: %s: %s%s; refusing to run, "
            "so MOUNT and hostname changes cannot reach the host\n", step, strerror(err), hint);
    exit(SANDBOX_REFUSED);
}

static void test_sandbox(void)
{
    if (geteuid() != 0) return; /* MOUNT and sethostname fail with EPERM on their own */
    if (unshare(CLONE_NEWNS | CLONE_NEWUTS) < 0)
        sandbox_refuse("unshare(CLONE_NEWNS | CLONE_NEWUTS)", errno, "");
    if (mount("none", "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
        sandbox_refuse("make / private", errno,
                       errno == EINVAL ? " (/ is not a mount point: a chroot?)" : "");
    /* a fresh /mnt of our own: MOUNT's mkdir -p of /mnt/... never touches the host's /mnt */
    if (mount("wslx-test", "/mnt", "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755,size=16m") < 0)
        sandbox_refuse("tmpfs on /mnt", errno, errno == ENOENT ? " (no /mnt)" : "");
    g_opts.sandboxed = 1;
}

int main(int argc, char **argv)
{
    static char cmdline[4096];
    const char *cmdline_arg = NULL, *unix_path = NULL, *dry_run_list = NULL;
    int no_setup = 0, assume_hv = -1, check_sandbox = 0;

    /* multi-call: `/init portal ...` runs the Portal service or its probes (started by EXEC), and
     * argv[0] "wslx-conform" the conformance program (EXEC execs /proc/self/exe with that argv) */
    if (argc >= 2 && !strcmp(argv[1], "portal") && getpid() != 1) return portal_main(argc - 1, argv + 1);
    if (argc >= 2 && !strcmp(argv[1], "gemini") && getpid() != 1) return gemini_main(argc - 1, argv + 1);
    if (argc >= 1 && !strcmp(argv[0] + (strrchr(argv[0], '/') ? strrchr(argv[0], '/') + 1 - argv[0] : 0), "wslx-call") &&
        getpid() != 1)
        return wslx_call_main(argc, argv);
    if (argc >= 1 && agx_program_is(argv[0]) && getpid() != 1) return conform_main(argc, argv);

    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--agent-fd") && i + 1 < argc) {
            char *end;
            long v = strtol(argv[++i], &end, 10);
            if (*end || v < 0 || fcntl((int)v, F_GETFD) < 0) {
                fprintf(stderr, "wslx-init: --agent-fd %s: not an open fd\n", argv[i]);
                return 2;
            }
            g_opts.agent_fd = (int)v;
        } else if (!strcmp(argv[i], "--no-setup")) {
            no_setup = 1;
        } else if (!strcmp(argv[i], "--check-sandbox") && getpid() != 1) {
            /* set up the test-mode sandbox and report (exit 0, or SANDBOX_REFUSED with the reason) */
            check_sandbox = 1;
        } else if (!strcmp(argv[i], "--cmdline") && i + 1 < argc) {
            cmdline_arg = argv[++i];
        } else if (!strcmp(argv[i], "--connect-unix") && i + 1 < argc && getpid() != 1) {
            unix_path = argv[++i];
            if (strlen(unix_path) >= sizeof(((struct sockaddr_un *)0)->sun_path)) {
                fprintf(stderr, "wslx-init: --connect-unix %s: path too long\n", unix_path);
                return 2;
            }
        } else if (!strcmp(argv[i], "--modules-dry-run") && i + 1 < argc && getpid() != 1) {
            /* which modules of a modules.load list this machine would load (vsock transport choice) */
            dry_run_list = argv[++i];
        } else if (!strcmp(argv[i], "--assume-hypervisor") && i + 1 < argc && getpid() != 1) {
            /* host tests: force the detection result to test both module sets */
            i++;
            if (!strcmp(argv[i], "hyperv")) assume_hv = 1;
            else if (!strcmp(argv[i], "other")) assume_hv = 0;
            else {
                fprintf(stderr, "wslx-init: --assume-hypervisor %s: expected hyperv or other\n", argv[i]);
                return 2;
            }
        } else if (!strcmp(argv[i], "--version")) {
            printf("wslx-init " WSLX_INIT_VERSION "\n");
            return 0;
        } else if (getpid() != 1) {
            usage();
            return 2;
        } /* as PID 1, ignore whatever the kernel passed on */
    }

    if (dry_run_list) {
        modules_dry_run(dry_run_list, assume_hv);
        return 0;
    }
    if (assume_hv >= 0 || (unix_path && !no_setup)) {
        usage(); /* --assume-hypervisor goes with --modules-dry-run, --connect-unix with --no-setup */
        return 2;
    }

    if (g_opts.agent_fd >= 0 || no_setup || getpid() != 1) {
        if (g_opts.agent_fd < 0 && !no_setup) {
            usage();
            return 2;
        }
        /* Host test mode: no system setup, processes are ours to reap, exit instead of power off. */
        g_opts.test_mode = 1;
        if (g_opts.agent_fd >= 0) fcntl(g_opts.agent_fd, F_SETFD, FD_CLOEXEC);
        prctl(PR_SET_CHILD_SUBREAPER, 1);
        test_sandbox();
        if (check_sandbox) {
            printf("wslx-init: test mode: %s\n", g_opts.sandboxed ? "sandboxed (private mount and UTS namespaces, "
                                                                     "tmpfs on /mnt)" : "not root: no sandbox needed");
            return 0;
        }
        if (cmdline_arg) snprintf(cmdline, sizeof cmdline, "%s", cmdline_arg);
        else read_cmdline(cmdline, sizeof cmdline);
        transport_init(cmdline);
        if (unix_path) transport_force_unix(unix_path);
        agent_run();
    }

    g_opts.pid1 = 1;
    /* 1. files we create are not group/world writable */
    umask(022);
    /* 2. proc, sysfs, devtmpfs, devpts, tmpfs /run /tmp */
    mounts_early();
    /* 3. stdin/stdout/stderr on /dev/console (now that devtmpfs is there) */
    console_setup();
    /* 4. our own session, so children's setsid() groups are clean */
    setsid();
    /* 5. kernel modules (virtio, vsock, pmem...), dependencies first */
    modules_load("/etc/wslx/modules.load");
    /* 6. transport choice from the kernel command line */
    read_cmdline(cmdline, sizeof cmdline);
    transport_init(cmdline);
    /* 7. serve AgentX forever: dial the host, reconnect, reap zombies */
    agent_run();
}
