/* Control transport: AF_VSOCK to the host, else the virtio-serial port named
 * AGX_VIRTIO_SERIAL_PORT_NAME, else a serial line. The guest dials the host.
 *
 * Kernel command line:
 *   wslx.transport=auto|vsock|virtio-serial|serial   (default auto)
 *   wslx.port=N        vsock port (default AGX_VSOCK_CONTROL_PORT)
 *   wslx.serial=DEV    serial device (default /dev/ttyS1)
 *
 * auto: vsock and virtio-serial are tried on every tick; the serial line is
 * only used once AUTO_SERIAL_AFTER_MS have passed without either (the vport
 * may appear only after modules load). The first kind that connects is kept
 * for all later reconnects; a present org.wslx.agentx port is chosen even
 * while its host side is still closed (the host may connect late).
 *
 * Host test mode only (--connect-unix PATH): an AF_UNIX stream socket, so the
 * host tests can drop the connection and watch the agent dial again. */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "init.h"

/* struct sockaddr_vm from <linux/vm_sockets.h> (kernel ABI; musl ships no linux/ headers). */
struct wslx_sockaddr_vm {
    sa_family_t svm_family;
    unsigned short svm_reserved1;
    unsigned int svm_port;
    unsigned int svm_cid;
    unsigned char svm_flags;
    unsigned char svm_zero[sizeof(struct sockaddr) - sizeof(sa_family_t) - sizeof(unsigned short) -
                           2 * sizeof(unsigned int) - 1];
};

enum kind { K_AUTO, K_VSOCK, K_VPORT, K_SERIAL, K_UNIX };
static const char *const kind_names[] = {"auto", "vsock", "virtio-serial", "serial", "unix"};

#define VSOCK_CONNECT_TIMEOUT_MS 500
#define AUTO_SERIAL_AFTER_MS 5000

static struct {
    enum kind forced;   /* from wslx.transport= */
    enum kind locked;   /* kind that connected first (auto), K_AUTO until then */
    unsigned port;
    char serial[128];
    char unix_path[108]; /* test mode: sun_path of the host's listening socket */
    uint64_t start_ns;
    int vport_seen;     /* the named port exists (its host side may still be closed) */
} T;

static void cmdline_value(const char *cmdline, const char *key, char *out, size_t cap)
{
    size_t klen = strlen(key);
    const char *p = cmdline;
    while (p && *p) {
        while (*p == ' ' || *p == '\t' || *p == '\n') p++;
        const char *end = p;
        while (*end && *end != ' ' && *end != '\t' && *end != '\n') end++;
        if ((size_t)(end - p) > klen && !strncmp(p, key, klen) && p[klen] == '=') {
            size_t n = (size_t)(end - p) - klen - 1;
            if (n >= cap) n = cap - 1;
            memcpy(out, p + klen + 1, n);
            out[n] = 0;
        }
        p = end;
    }
}

void transport_init(const char *cmdline)
{
    char v[128] = "";
    T.forced = K_AUTO;
    T.locked = K_AUTO;
    T.port = AGX_VSOCK_CONTROL_PORT;
    snprintf(T.serial, sizeof T.serial, "/dev/ttyS1");
    T.start_ns = now_ns(CLOCK_MONOTONIC);
    cmdline_value(cmdline, "wslx.transport", v, sizeof v);
    if (v[0]) {
        int found = 0;
        for (int k = K_AUTO; k <= K_SERIAL; k++)
            if (!strcmp(v, kind_names[k])) { T.forced = (enum kind)k; found = 1; }
        if (!found) wlog("unknown wslx.transport=%s, using auto", v);
    }
    v[0] = 0;
    cmdline_value(cmdline, "wslx.port", v, sizeof v);
    if (v[0]) {
        char *end;
        unsigned long p = strtoul(v, &end, 10);
        if (*end || p == 0 || p > 0xFFFFFFFFul) wlog("bad wslx.port=%s ignored", v);
        else T.port = (unsigned)p;
    }
    v[0] = 0;
    cmdline_value(cmdline, "wslx.serial", v, sizeof v);
    if (v[0]) snprintf(T.serial, sizeof T.serial, "%s", v);
}

/* A non-blocking AF_VSOCK stream to the host's `port`: its fd, or -1 (errno set). */
static int vsock_dial(unsigned port, char *desc, size_t cap)
{
    snprintf(desc, cap, "vsock cid %u port %u", (unsigned)AGX_VSOCK_HOST_CID, port);
    int fd = socket(AF_VSOCK, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) return -1;
    struct wslx_sockaddr_vm sa;
    memset(&sa, 0, sizeof sa);
    sa.svm_family = AF_VSOCK;
    sa.svm_cid = AGX_VSOCK_HOST_CID;
    sa.svm_port = port;
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
        if (errno != EINPROGRESS) goto fail;
        struct pollfd p = {.fd = fd, .events = POLLOUT};
        int err = 0;
        socklen_t el = sizeof err;
        int r = poll(&p, 1, VSOCK_CONNECT_TIMEOUT_MS);
        if (r <= 0 || getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &el) < 0 || err) {
            errno = r == 0 ? ETIMEDOUT : err ? err : errno;
            goto fail;
        }
    }
    return fd;
fail: {
        int saved = errno;
        close(fd);
        errno = saved;
        return -1;
    }
}

static int try_vsock(char *desc, size_t cap)
{
    return vsock_dial(T.port, desc, cap);
}

/* A virtio-serial port whose host side is closed polls POLLHUP: not connected (yet). */
int vport_host_connected(int fd)
{
    struct pollfd p = {.fd = fd, .events = POLLIN | POLLOUT};
    return poll(&p, 1, 0) >= 0 && !(p.revents & (POLLHUP | POLLERR | POLLNVAL));
}

/* Open the virtio-serial port called `name` (non-blocking; its host side may be closed, see
 * vport_host_connected): its fd, or -1 (errno ENOENT if no port has that name). */
int vport_open(const char *name, char *dev, size_t cap)
{
    DIR *d = opendir("/sys/class/virtio-ports");
    if (!d) {
        errno = ENOENT;
        return -1;
    }
    struct dirent *e;
    int fd = -1;
    errno = ENOENT;
    while ((e = readdir(d))) {
        char path[300], pname[128];
        if (e->d_name[0] == '.') continue;
        snprintf(path, sizeof path, "/sys/class/virtio-ports/%s/name", e->d_name);
        int nf = open(path, O_RDONLY | O_CLOEXEC);
        if (nf < 0) continue;
        ssize_t n = read(nf, pname, sizeof pname - 1);
        close(nf);
        if (n <= 0) continue;
        while (n > 0 && (pname[n - 1] == '\n' || pname[n - 1] == ' ')) n--;
        pname[n] = 0;
        if (strcmp(pname, name)) continue;
        snprintf(dev, cap, "/dev/%s", e->d_name);
        fd = open(dev, O_RDWR | O_NOCTTY | O_CLOEXEC | O_NONBLOCK);
        break;
    }
    int saved = errno;
    closedir(d);
    errno = saved;
    return fd;
}

/* Once opened the AgentX port stays open, connected or not: Linux's virtio_console discards
 * what arrives on a port the guest has closed, which would lose the first frames of a host
 * that connects and sends before the next retry tick. */
static int vport_fd = -1;
static char vport_desc[16 + 300];

static int try_vport(char *desc, size_t cap)
{
    if (vport_fd < 0) {
        char dev[300];
        int fd = vport_open(AGX_VIRTIO_SERIAL_PORT_NAME, dev, sizeof dev);
        if (fd < 0 && errno == ENOENT) return -1;
        T.vport_seen = 1; /* it exists, even if it cannot be used yet */
        if (fd < 0) return -1;
        vport_fd = fd;
        snprintf(vport_desc, sizeof vport_desc, "virtio-serial %s", dev);
    }
    if (!vport_host_connected(vport_fd)) return -1;
    snprintf(desc, cap, "%s", vport_desc);
    return vport_fd;
}

void transport_force_unix(const char *path)
{
    snprintf(T.unix_path, sizeof T.unix_path, "%s", path);
    T.forced = K_UNIX;
}

static int try_unix(char *desc, size_t cap)
{
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) return -1;
    struct sockaddr_un sa;
    memset(&sa, 0, sizeof sa);
    sa.sun_family = AF_UNIX;
    memcpy(sa.sun_path, T.unix_path, sizeof T.unix_path);
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0) { /* AF_UNIX: done or failed at once */
        close(fd);
        return -1;
    }
    snprintf(desc, cap, "unix %s", T.unix_path);
    return fd;
}

static int try_serial(char *desc, size_t cap)
{
    int fd = open(T.serial, O_RDWR | O_NOCTTY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0) return -1;
    struct termios tio;
    if (tcgetattr(fd, &tio) == 0) {
        cfmakeraw(&tio);
        cfsetispeed(&tio, B115200);
        cfsetospeed(&tio, B115200);
        tio.c_cflag |= CLOCAL | CREAD;
        tio.c_cflag &= ~(tcflag_t)CRTSCTS;
        tio.c_cc[VMIN] = 1;
        tio.c_cc[VTIME] = 0;
        if (tcsetattr(fd, TCSANOW, &tio) < 0) wlog("serial %s: tcsetattr: %s", T.serial, strerror(errno));
        tcflush(fd, TCIOFLUSH);
    }
    snprintf(desc, cap, "serial %s", T.serial);
    return fd;
}

int transport_try_connect(char *desc, size_t cap)
{
    enum kind k = T.forced != K_AUTO ? T.forced : T.locked;
    int fd = -1;
    switch (k) {
    case K_VSOCK: return try_vsock(desc, cap);
    case K_VPORT: return try_vport(desc, cap);
    case K_SERIAL: return try_serial(desc, cap);
    case K_UNIX: return try_unix(desc, cap);
    case K_AUTO: break;
    }
    if ((fd = try_vsock(desc, cap)) >= 0) { T.locked = K_VSOCK; return fd; }
    if ((fd = try_vport(desc, cap)) >= 0 || T.vport_seen) {
        /* the port exists: the host will open its side; never fall back to serial then */
        T.locked = K_VPORT;
        return fd;
    }
    if (now_ns(CLOCK_MONOTONIC) - T.start_ns >= AUTO_SERIAL_AFTER_MS * 1000000ull &&
        (fd = try_serial(desc, cap)) >= 0) {
        T.locked = K_SERIAL;
        return fd;
    }
    return -1;
}

void transport_disconnected(int fd)
{
    if (fd != vport_fd) close(fd);   /* the virtio-serial port stays open (see try_vport) */
}

int transport_is_port(int fd) { return fd >= 0 && fd == vport_fd; }

const char *transport_kind_name(void)
{
    return kind_names[T.forced != K_AUTO ? T.forced : T.locked];
}

/* Gemini's SIGNAL and UPCALL ports (docs/gemini.md) for the programs the init runs (`gemini
 * serve`, `portal serve`), on the control channel's kind of transport: the virtio-serial port
 * `name` when the machine has one (QEMU), else a vsock stream to the host's `port` (the number
 * wslx.spec.gemini gives it; hv_sock under Hyper-V is the same socket family). wslx.transport=
 * virtio-serial or vsock allows only that one; serial has neither. An applet that did not call
 * transport_init gets /proc/cmdline's. */
int gemini_port_open(unsigned port, const char *name, char *desc, size_t cap)
{
    char dev[300];
    int fd = -1;
    if (!T.start_ns) {
        static char cmdline[4096];
        read_cmdline(cmdline, sizeof cmdline);
        transport_init(cmdline);
    }
    errno = ENOENT;
    snprintf(desc, cap, "no doorbell port on transport %s", kind_names[T.forced]);
    if (T.forced == K_AUTO || T.forced == K_VPORT) {
        fd = vport_open(name, dev, sizeof dev);
        if (fd >= 0 || errno != ENOENT) {
            snprintf(desc, cap, "%s (virtio-serial %s)", name, fd >= 0 ? dev : "unusable");
            return fd;
        }
        snprintf(desc, cap, "%s (virtio-serial)", name);
    }
    if (T.forced == K_AUTO || T.forced == K_VSOCK)
        fd = vsock_dial(port, desc, cap);
    return fd;
}
