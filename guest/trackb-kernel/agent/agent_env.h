/* agent_env.h: what the Track B AgentX agent needs from its environment.
 *
 * The agent (the C files of agent/) is freestanding protocol code. It never touches
 * hardware: the kernel implements these functions on top of the platform
 * layer (UART, timer, virtio-pmem, ACPI), and the host harness
 * (agent/host_main.c) implements them on a socket, so the same agent object
 * code runs the conformance suite on the host and inside the VM.
 *
 * All functions are called from the agent's single polling loop; none may
 * block for longer than stated. */
#ifndef WSLX_TRACKB_AGENT_ENV_H
#define WSLX_TRACKB_AGENT_ENV_H

#include <stddef.h>
#include <stdint.h>

/* ---- control channel (second UART / virtio-console under QEMU) ---- */
/* Copy up to cap received bytes into buf without waiting. Returns the count
 * (0 when nothing is pending) or -1 when the channel is gone for good. */
long env_chan_read(void *buf, size_t cap);
/* Send up to len bytes, waiting at most timeout_ms for room (0: not at all).
 * Returns how many were taken, always a prefix of buf (0..len): the caller
 * keeps the rest and offers it again, so a host that stops reading loses
 * nothing and never sees a frame cut short. -1 when the channel is gone for
 * good. While no host is attached nothing is taken (0). */
long env_chan_write(const void *buf, size_t len, uint32_t timeout_ms);

/* How many times a host has (re)connected to the channel since boot; a channel
 * that cannot tell (a UART) always returns 0. When the count changes, the agent
 * drops what is left of the previous host's bytes and announces HELLO again.
 * env_chan_read returns nothing from a new host until the agent has seen the new
 * count, so no byte of the new host is ever dropped with the old. */
uint32_t env_chan_connects(void);

/* ---- doorbells (the SIGNAL and UPCALL ports, docs/gemini.md) ---- */
/* Ring the host: one byte on SIGNAL, the RingId that has news for it. 1 sent, 0 dropped
 * (unread doorbells are waiting), -1 no signal port (or no host on it): the host polls. Never waits. */
int env_signal(uint8_t ring);
/* Take (and discard) the host's doorbell bytes on SIGNAL / UPCALL: their count (0: none
 * yet), or -1 when there is no such port or no host on it (none will come: poll). Never waits. */
long env_signal_drain(void);
long env_upcall_drain(void);

/* ---- time ---- */
uint64_t env_now_ns(void);      /* monotonic, calibrated; 0 at boot */
void env_relax(void);           /* called when a loop iteration did no work (pause / hlt-until-tick) */

/* ---- system facts reported by built-ins and HELLO ---- */
const char *env_uname(void);    /* e.g. "wslx-trackb 0.1 x86_64" */
uint64_t env_mem_total_bytes(void);
uint64_t env_mem_free_bytes(void);

/* ---- persistent memory (virtio-pmem) ---- */
/* The Portal region as mapped by the kernel (direct map of the pmem range);
 * base NULL and size 0 when there is no pmem device. */
void *env_pmem_base(void);
uint64_t env_pmem_size(void);
/* Ask the device to flush (VIRTIO_PMEM_REQ_TYPE_FLUSH). 0 on success,
 * negative errno (-ENODEV: no device, -EIO: device said no, -ETIMEDOUT). */
int env_pmem_flush(uint32_t timeout_ms);

/* ---- diagnostics and power ---- */
void env_console_write(const char *s, size_t len);   /* COM1 log, best effort */
/* Trigger a CPU exception on purpose (built-in `fault`): the kernel's
 * handler prints vector/RIP/CR2/error code and stops; never returns. */
_Noreturn void env_fault_on_purpose(void);
/* Power off (ACPI S5 or isa-debug-exit); code is the exit status to report.
 * reboot != 0 asks for a reset instead. Never returns. */
_Noreturn void env_power_off(int code, int reboot);

/* ---- entry point implemented by the agent ---- */
/* Run the agent forever: announce HELLO, serve requests, step built-ins. */
_Noreturn void agent_main(void);

#endif
