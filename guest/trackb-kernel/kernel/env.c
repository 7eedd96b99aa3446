/* env.c: agent/agent_env.h for the kernel. The agent's control channel is
 * hv_sock to the host's AgentX port when Hyper-V is there (hv/hvsock.c),
 * else the virtio-console port org.wslx.agentx when main.c found one (QEMU's
 * agentx channel), else COM2 (ttyS1 = QemuMachine's serial_transport socket;
 * OpenVMM's --com2). Polled; on Hyper-V the idle loop halts until the next
 * SynIC interrupt or stimer tick. */
#include "agent/agent_env.h"
#include "drivers/qemu_isa.h"
#include "drivers/uart.h"
#include "drivers/uart16550.h"
#include "hv/hvsock.h"
#include "kernel/console.h"
#include "kernel/env.h"
#include "kernel/klib.h"
#include "kernel/errno.h"
#include "kernel/pmm.h"
#include "kernel/timer.h"
#include "platform/platform.h"
#include "x86boot.h"

#define UART_FIFO_DEPTH 16
#define RESET_CONTROL_PORT 0xCF9     /* PIIX/ICH9 reset control: 0x06 = hard reset */
#define KBC_CMD_PORT 0x64            /* 8042: 0xFE pulses the reset line */
#define FAULT_ADDRESS ((uint64_t)0x00000DEAD0000000ULL)   /* canonical, never mapped */

static int chan_ok;
static struct hvsock *hvs;               /* hv_sock to the AgentX port, or NULL */
static uint32_t hvs_connects_seen;
static struct virtio_console *vcon;      /* the AgentX port, or NULL: COM2 */
static uint32_t vcon_opens_seen;         /* host connects the agent has been told of */
static const struct aux_port_ops *aux;   /* Gemini's doorbell ports, or NULL */
static void *aux_dev;
static struct virtio_pmem *pmem;
static const struct acpi_facts *acpi;

#define HVSOCK_UNLOAD_TIMEOUT_NS 100000000ULL

void env_init(struct virtio_pmem *pm, struct hvsock *hs, struct virtio_console *con, const struct acpi_facts *af)
{
    pmem = pm;
    acpi = af;
    if (hs) {
        hvs = hs;
        chan_ok = 1;
        kprintf("env: control channel hv_sock port %u\n", hs->port);
        return;
    }
    vcon = con;
    if (vcon) {
        chan_ok = 1;
        vcon_opens_seen = vcon->host_opens;   /* a host already there gets the agent's first HELLO */
        kprintf("env: control channel virtio-console port %d, host %s\n", vcon->port,
                vcon->host_connected ? "connected" : "not connected yet");
        return;
    }
    chan_ok = uart_init(COM2_BASE) == 0;
    kprintf("env: control channel COM2 %s\n", chan_ok ? "ready" : "missing");
}

/* Doorbells: the SIGNAL and UPCALL aux ports, virtio-serial (QEMU) or hv_sock (Hyper-V);
 * none over COM2: both sides poll there. */
void env_set_aux(const struct aux_port_ops *ops, void *dev)
{
    aux = ops;
    aux_dev = dev;
}

int env_signal(uint8_t ring)
{
    return aux ? aux->send(aux_dev, ENV_AUX_SIGNAL, ring) : -1;
}

long env_signal_drain(void)
{
    return aux ? aux->drain(aux_dev, ENV_AUX_SIGNAL) : -1;
}

long env_upcall_drain(void)
{
    return aux ? aux->drain(aux_dev, ENV_AUX_UPCALL) : -1;
}

uint32_t env_chan_connects(void)
{
    if (hvs) {
        hvsock_poll(hvs);
        return hvs_connects_seen = hvs->connects;
    }
    if (!vcon)
        return 0;                               /* a UART cannot tell */
    virtio_console_poll(vcon);
    vcon_opens_seen = vcon->host_opens;
    return vcon_opens_seen;
}

/* The port's data and its connect events (PORT_OPEN) come on separate virtqueues, so bytes read
 * before a connect was processed may already be the new host's. They are returned only if no
 * new connect shows up after they were read (then the device pushed them before it); otherwise
 * they are kept here and handed to the new host once the agent has seen the new count, never
 * dropped with the old host's partial frame. (Old bytes among them: the agent hunts past them,
 * agx_rx_new_peer.) */
#define VCON_CARRY 65536   /* bounds one read; the agent asks for at most its free receive room */
static uint8_t carry[VCON_CARRY];
static size_t carry_len, carry_off;

static long vcon_read(uint8_t *b, size_t cap)
{
    virtio_console_poll(vcon);
    if (vcon->host_opens != vcon_opens_seen)
        return 0;                               /* a new host: the agent resets first (env_chan_connects) */
    if (carry_off < carry_len) {
        size_t n = carry_len - carry_off < cap ? carry_len - carry_off : cap;
        memcpy(b, carry + carry_off, n);
        carry_off += n;
        return (long)n;
    }
    long n = virtio_console_read(vcon, b, cap < VCON_CARRY ? cap : VCON_CARRY);
    if (n <= 0)
        return n;
    virtio_console_poll(vcon);
    if (vcon->host_opens != vcon_opens_seen) {  /* a connect processed only now: keep them for the new host */
        memcpy(carry, b, (size_t)n);
        carry_len = (size_t)n;
        carry_off = 0;
        return 0;
    }
    return n;
}

long env_chan_read(void *buf, size_t cap)
{
    uint8_t *b = buf;
    size_t n = 0;
    if (hvs)
        return hvs->connects != hvs_connects_seen ? 0 : hvsock_read(hvs, b, cap);   /* as vcon_read */
    if (vcon)
        return vcon_read(b, cap);
    if (!chan_ok)
        return -1;
    while (n < cap && uart_rx_ready(COM2_BASE))
        b[n++] = uart_rx(COM2_BASE);
    return (long)n;
}

long env_chan_write(const void *buf, size_t len, uint32_t timeout_ms)
{
    const uint8_t *b = buf;
    if (hvs)
        return hvsock_write(hvs, buf, len, (uint64_t)timeout_ms * 1000000ULL);   /* a prefix, or -1 */
    if (vcon)
        return virtio_console_write(vcon, buf, len, (uint64_t)timeout_ms * 1000000ULL);
    if (!chan_ok)
        return -1;
    uint64_t deadline = timer_now_ns() + (uint64_t)timeout_ms * 1000000ULL;
    size_t i = 0;
    while (i < len) {
        if (!uart_tx_ready(COM2_BASE)) {
            if (timer_now_ns() >= deadline)
                return (long)i;                 /* the rest waits in the agent */
            cpu_relax();
            continue;
        }
        /* THRE means the transmit FIFO is empty: fill it in one go. */
        for (int k = 0; k < UART_FIFO_DEPTH && i < len; k++)
            uart_tx(COM2_BASE, b[i++]);
    }
    return (long)i;
}

uint64_t env_now_ns(void) { return timer_now_ns(); }
void env_relax(void)
{
    if (aux && aux->idle)
        aux->idle(aux_dev);                     /* doorbell streams: connect, notice a closed host */
    if (hvs)
        hvsock_idle(hvs);                       /* poll a while after traffic, then hlt until an interrupt or the tick */
    else
        cpu_relax();
}
const char *env_uname(void) { return "wslx-trackb 0.1 x86_64"; }
uint64_t env_mem_total_bytes(void) { return pmm_total_bytes(); }
uint64_t env_mem_free_bytes(void) { return pmm_free_bytes(); }
void *env_pmem_base(void) { return pmem ? pmem->base : NULL; }
uint64_t env_pmem_size(void) { return pmem && pmem->base ? pmem->size : 0; }

int env_pmem_flush(uint32_t timeout_ms)
{
    if (!pmem || !pmem->base)
        return ERR_NODEV;
    uint32_t revived = pmem->revived;
    int err = virtio_pmem_revive(pmem);   /* after a snapshot restore */
    if (err)
        return err;
    if (pmem->revived != revived)
        kprintf("pmem: device was reset (snapshot restore); set up again\n");
    return virtio_pmem_flush(pmem, (uint64_t)timeout_ms * 1000000ULL);
}

void env_console_write(const char *s, size_t len) { console_write(s, len); }

_Noreturn void env_fault_on_purpose(void)
{
    kprintf("env: faulting on purpose (read of %lx)\n", FAULT_ADDRESS);
    (void)*(volatile uint64_t *)(uintptr_t)FAULT_ADDRESS;   /* #PF: trap() prints and stops */
    cpu_halt_forever();
}

_Noreturn void env_power_off(int code, int reboot)
{
    kprintf("env: %s (code %d)\n", reboot ? "reboot" : "power off", code);
    if (hvs)
        vmbus_unload(HVSOCK_UNLOAD_TIMEOUT_NS);  /* the host releases our channels and pages */
    if (reboot) {
        pio_out8(RESET_CONTROL_PORT, 0x02);
        pio_out8(RESET_CONTROL_PORT, 0x06);
        pio_out8(KBC_CMD_PORT, 0xFE);
        cpu_halt_forever();
    }
    /* QEMU with isa-debug-exit ends here with status (code << 1) | 1. */
    pio_out32(ISA_DEBUG_EXIT_PORT, (uint32_t)code);
    if (acpi && acpi->pm1a_cnt && acpi->have_s5)
        pio_out16((uint16_t)acpi->pm1a_cnt,
                  (uint16_t)(acpi->slp_typa << X86BOOT_ACPI_SLP_TYP_SHIFT | X86BOOT_ACPI_SLP_EN));
    kprintf("env: power off did not take effect; halting\n");
    cpu_halt_forever();
}
