/* Kernel modules: /etc/wslx/modules.load lists absolute paths of uncompressed
 * .ko files, dependencies first (written by the initramfs builder). Each is
 * loaded with finit_module(2); EEXIST (built in or already loaded) is fine,
 * other failures are logged and the boot goes on. A missing or empty list
 * means a non-modular kernel.
 *
 * Vsock transports: the list carries both the virtio one
 * (vmw_vsock_virtio_transport + _common) and Hyper-V's (hv_vmbus, hv_sock), but
 * only one guest->host transport can be registered: loading virtio's claims the
 * slot even without a device, and hv_sock would then fail with EBUSY. So the
 * hypervisor is detected first (CPUID) and the other set is skipped. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>
#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#endif

#include "hyperv.h"   /* generated from spec/hyperv.py: CPUID leaves, vendor and interface signatures */
#include "init.h"

/* 1 on Hyper-V (the hv_* drivers apply), 0 elsewhere. why receives the reason. */
static int detect_hyperv(char *why, size_t cap)
{
#if defined(__x86_64__) || defined(__i386__)
    unsigned a, b, c, d;
    __cpuid(1, a, b, c, d);
    if (!(c & HV_CPUID_FEATURES_ECX_HYPERVISOR)) {
        snprintf(why, cap, "CPUID: no hypervisor bit");
        return 0;
    }
    __cpuid(HV_CPUID_VENDOR_AND_MAX_FUNCTIONS, a, b, c, d);
    char sig[13];
    memcpy(sig, &b, 4);
    memcpy(sig + 4, &c, 4);
    memcpy(sig + 8, &d, 4);
    sig[12] = 0;
    for (int i = 0; i < 12; i++)
        if (sig[i] && (sig[i] < 0x20 || sig[i] > 0x7e)) sig[i] = '?';
    if (b != HV_VENDOR_EBX || c != HV_VENDOR_ECX || d != HV_VENDOR_EDX || a < HV_CPUID_INTERFACE) {
        snprintf(why, cap, "CPUID hypervisor '%s'", sig);
        return 0;
    }
    __cpuid(HV_CPUID_INTERFACE, a, b, c, d);
    if (a != HV_INTERFACE_SIGNATURE) {
        snprintf(why, cap, "CPUID '%s' but interface 0x%08x, not Hv#1", sig, a);
        return 0;
    }
    snprintf(why, cap, "CPUID 'Microsoft Hv', interface Hv#1");
    return 1;
#else
    snprintf(why, cap, "not x86: no Hyper-V");
    return 0;
#endif
}

/* Does the other hypervisor's vsock set contain this module? Lines are absolute paths
 * like /lib/modules/<name>.ko, '-' in the module name written as '_'. */
static int module_skipped(const char *path, int hyperv)
{
    const char *name = strrchr(path, '/');
    name = name ? name + 1 : path;
    if (hyperv) return !strncmp(name, "vmw_vsock_virtio_transport", 26);
    return !strncmp(name, "hv_", 3) || !strncmp(name, "hyperv", 6);
}

static void load_one(const char *path)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        wlog("module %s: %s", path, strerror(errno));
        return;
    }
    if (syscall(SYS_finit_module, fd, "", 0) < 0 && errno != EEXIST)
        wlog("module %s: %s", path, strerror(errno));
    close(fd);
}

/* dry_run: print what would be loaded (one path a line on stdout) instead of loading.
 * assume: -1 detect, else the detection result forced by the host tests (1 Hyper-V, 0 other). */
static void modules_run(const char *list_path, int dry_run, int assume)
{
    FILE *f = fopen(list_path, "re");
    if (!f) return;
    char why[128];
    int hyperv;
    if (assume < 0) {
        hyperv = detect_hyperv(why, sizeof why);
    } else {
        hyperv = assume;
        snprintf(why, sizeof why, "--assume-hypervisor %s", hyperv ? "hyperv" : "other");
    }
    wlog("modules: %s (%s): skipping %s", hyperv ? "Hyper-V vsock (hv_sock)" : "virtio vsock", why,
         hyperv ? "vmw_vsock_virtio_transport*" : "hv_* and hyperv* modules");
    char line[4096];
    while (fgets(line, sizeof line, f)) {
        char *s = line, *e;
        while (*s == ' ' || *s == '\t') s++;
        e = s + strlen(s);
        while (e > s && (e[-1] == '\n' || e[-1] == '\r' || e[-1] == ' ' || e[-1] == '\t')) *--e = 0;
        if (!*s || *s == '#') continue;
        if (module_skipped(s, hyperv)) continue;
        if (dry_run) printf("%s\n", s);
        else load_one(s);
    }
    fclose(f);
    if (dry_run) fflush(stdout);
}

void modules_load(const char *list_path) { modules_run(list_path, 0, -1); }

void modules_dry_run(const char *list_path, int assume) { modules_run(list_path, 1, assume); }
