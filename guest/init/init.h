/* wslx-init: shared declarations of the static PID 1 / AgentX agent.
 * The wire format comes only from the generated agentx_wire.h. */
#ifndef WSLX_INIT_H
#define WSLX_INIT_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "agentx_wire.h"

#define WSLX_INIT_VERSION "0.1"

/* ---- global configuration (main.c) ---- */
struct init_opts {
    int pid1;        /* really PID 1: setup, power off, never exit */
    int test_mode;   /* --agent-fd / --no-setup: no reboot, exit on SHUTDOWN */
    int agent_fd;    /* --agent-fd N, else -1 */
    int sandboxed;   /* test mode only: private mount+UTS namespace, hostname may be set */
};
extern struct init_opts g_opts;

/* ---- util.c ---- */
void wlog(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
uint64_t now_ns(int clock);
int set_nonblock(int fd);
/* Copy an agx_str into a NUL-terminated buffer; -1 if it does not fit. */
int str_copy(char *dst, size_t cap, struct agx_str s);
/* Truncate a NUL-terminated string to at most max bytes on a UTF-8 boundary. */
void utf8_truncate(char *s, size_t max);
int mkdir_p(const char *path, mode_t mode);

/* ---- transport.c ---- */
struct transport;
void transport_init(const char *cmdline);
/* One connection attempt (called at boot and every retry tick while disconnected).
 * Returns a non-blocking fd or -1. desc receives a human description. */
int transport_try_connect(char *desc, size_t cap);
/* Host test mode (--connect-unix PATH): dial an AF_UNIX stream socket instead (after transport_init). */
void transport_force_unix(const char *path);
/* The connected channel fd went away: close it, but keep a virtio-serial port open (the kind
 * stays chosen). */
void transport_disconnected(int fd);
/* fd is the virtio-serial port, which stays open from one host to the next (one byte stream). */
int transport_is_port(int fd);
const char *transport_kind_name(void);
/* The virtio-serial port `name`, non-blocking: fd (its host side may be closed), or -1 (errno ENOENT: none). */
int vport_open(const char *name, char *dev, size_t cap);
int vport_host_connected(int fd);
/* Gemini's doorbell port `port` (wslx.spec.gemini; virtio-serial name `name`): a virtio-serial
 * port or a vsock stream, as the transport allows (transport.c). fd, or -1 (errno); desc: where. */
int gemini_port_open(unsigned port, const char *name, char *desc, size_t cap);
/* /proc/cmdline into buf (empty if unreadable). */
void read_cmdline(char *buf, size_t cap);

/* ---- agent.c: event loop and output ---- */
#define EV_CTL 1u
#define EV_SIGNALFD 2u
#define EV_PROC_OUT 3u
#define EV_PROC_IN 4u
static inline uint64_t ev_tag(uint32_t kind, uint32_t idx, uint32_t stream)
{
    return ((uint64_t)kind << 32) | ((uint64_t)idx << 8) | stream;
}
int ev_add(int fd, uint32_t events, uint64_t tag);
int ev_mod(int fd, uint32_t events, uint64_t tag);
void ev_del(int fd);

void agent_run(void) __attribute__((noreturn));
int agent_connected(void);
/* Room for bulk output (child stdout/stderr) right now? */
int agent_bulk_ok(void);
/* Quiesced: child output is left in the pipes until RESUME. */
int agent_output_paused(void);
/* Frame emitters; they silently drop when disconnected. */
void send_error(uint32_t rid, uint16_t rtype, int code, const char *fmt, ...) __attribute__((format(printf, 4, 5)));
void send_ok(uint32_t rid);
void send_stdio(uint32_t pid, uint8_t stream, uint8_t flags, uint64_t offset, const uint8_t *data, uint32_t len);
int agent_events_ok(void);
uint8_t agent_session_version(void);
uint32_t agent_max_payload(void);
void send_exit(uint32_t pid, uint8_t how, int32_t code);
void send_exec_started(uint32_t rid, uint32_t pid);
/* STDIN_ACK event (flags: AGX_STDIN_ACK_*). 0 when queued; -1 when disconnected or (unless force)
 * when the output buffer is too full right now (the caller keeps the credit and retries). */
int send_stdin_ack(uint32_t pid, uint32_t bytes, uint32_t flags, int force);
/* Blocking best-effort flush of queued output (SHUTDOWN), bounded by timeout_ms. */
void agent_flush_blocking(int timeout_ms);

/* ---- proc.c: see proc.h ---- */

/* ---- portal_linux.c / gemini_linux.c: Portal and Gemini applets ---- */
int portal_linux_window(unsigned char **window, uint64_t *size, char *err, size_t cap);
int gemini_main(int argc, char **argv);      /* `/init gemini serve|...` */
int wslx_call_main(int argc, char **argv);   /* argv[0] "wslx-call" */

/* ---- conform.c: the conformance program applet (argv[0] "wslx-conform") ---- */
int conform_main(int argc, char **argv);

/* ---- mounts.c ---- */
void mounts_early(void);
void mounts_handle_mount(uint32_t rid, const struct agx_mount *m);
void mounts_handle_unmount(uint32_t rid, const struct agx_unmount *m);

/* ---- modules.c ---- */
void modules_load(const char *list_path);
/* Host test aid (--modules-dry-run): log the transport choice, print the paths that would load. */
/* assume: -1 detect with CPUID, 1 Hyper-V, 0 anything else (--assume-hypervisor, test aid). */
void modules_dry_run(const char *list_path, int assume);

/* ---- portal_linux.c ---- */
/* `wslx-init portal serve|probe|memcpy|info ...` (argv[0] is "portal"). */
int portal_main(int argc, char **argv);
/* QUIESCE: Portal regions flushed from the guest: 0, Linux 6.1 has no device-dax flush (see there). */
uint32_t portal_quiesce_flush(void);

/* ---- power.c ---- */
uint32_t power_flush_pmem(void);
void power_off(uint32_t mode) __attribute__((noreturn));

#endif
