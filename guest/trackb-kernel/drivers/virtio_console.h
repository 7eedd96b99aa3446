/* virtio_console.h: virtio-console (virtio-serial) driver with
 * VIRTIO_CONSOLE_F_MULTIPORT, polled (VIRTIO 1.2, 5.3; Linux
 * drivers/char/virtio_console.c). It finds the port with a given name and
 * moves bytes on it, and single bytes (doorbells) on up to VCON_AUX_MAX more
 * named ports. Everything the device writes (used ring, control messages,
 * names, lengths) is checked before use. */
#ifndef TRACKB_VIRTIO_CONSOLE_H
#define TRACKB_VIRTIO_CONSOLE_H

#include <stddef.h>
#include <stdint.h>

#include "kernel/aux_port.h"
#include "drivers/virtio_pci.h"

#define VCON_MAX_PORTS 4          /* ports 0..3 get queues (QEMU numbers virtserialports from 1) */
#define VCON_CTRL_BUFS 16         /* posted control receive buffers */
#define VCON_CTRL_BUF_SIZE 128    /* a control message plus a port name */
#define VCON_CTRL_TX_SLOTS 8
#define VCON_RX_BUFS 8            /* posted receive buffers of the named port, a page each */
#define VCON_TX_BUFS 16           /* transmit pages: 64 KiB in flight, one AgentX frame */
#define VCON_BUF_SIZE 4096u
#define VCON_POOL_MAX 16
#define VCON_AUX_MAX 2            /* auxiliary ports (doorbell bytes), half a page of buffers each */
#define VCON_AUX_RX_BUFS 4
#define VCON_AUX_RX_SIZE 256u
#define VCON_AUX_TX_BUFS 4
#define VCON_AUX_TX_SIZE 64u

/* Buffers the driver owns and lends to a queue; the device holds them by head index. */
struct vcon_pool {
    uint8_t n;
    uint32_t size;                 /* bytes per buffer */
    uint32_t free_mask;            /* bit i: buffer i is the driver's */
    uint8_t *va[VCON_POOL_MAX];
    uint64_t pa[VCON_POOL_MAX];
    int8_t of_head[VQ_MAX_SIZE];   /* buffer lent under a head, -1 none */
};

/* An auxiliary port: found by name like the named port, whenever its PORT_NAME comes; it
 * carries single bytes, never waited for. Once removed it is not taken again (its lent
 * receive buffers stay with the old queue). */
struct vcon_aux {
    const char *name;              /* the name wanted; NULL: none (or the port was removed) */
    int port;                      /* -1 until found (or after it was removed) */
    int connected;                 /* its host side is open */
    struct vcon_pool rx, tx;
};

struct virtio_console {
    struct virtio_pci vp;
    uint32_t max_nr_ports;         /* as the device says */
    uint32_t nports;               /* ports with queues: min(max_nr_ports, VCON_MAX_PORTS) */
    struct virtqueue ctrl_rx, ctrl_tx, rxq[VCON_MAX_PORTS], txq[VCON_MAX_PORTS];
    uint64_t ring_pa[2 + 2 * VCON_MAX_PORTS];   /* one page per queue, 0 if unset */
    struct vcon_pool ctrl_in, ctrl_out, rx, tx;
    uint64_t ctrl_page_pa;         /* ctrl_in and ctrl_out buffers */
    uint64_t data_pa[VCON_RX_BUFS + VCON_TX_BUFS];

    const char *want_name;         /* the port we look for */
    uint32_t added;                /* bit p: the device added port p (p < 32) */
    int port;                      /* the named port, -1 until found */
    int gone;                      /* the device removed the named port */
    uint32_t host_open_mask;       /* bit p: the host side of port p is open */
    int host_connected;            /* the named port's host side is open */
    uint32_t host_opens;           /* PORT_OPEN 1 events seen (a host connect each) */
    int rx_cur;                    /* rx buffer being read, -1 none */
    uint32_t rx_off, rx_len;

    struct vcon_aux aux[VCON_AUX_MAX];   /* e.g. Gemini's SIGNAL and UPCALL ports (docs/gemini.md) */
    uint64_t aux_page_pa;          /* every aux port's buffers */

    /* hostile or unexpected input, counted (never trusted) */
    uint32_t bad_used;             /* used-ring id not lent out, or the index ran ahead */
    uint32_t bad_len;              /* used length shorter than a header or beyond the buffer */
    uint32_t bad_ctrl;             /* unknown event, unknown port, bad value */
};

/* Bring the device up (features, queues, DEVICE_READY), answer PORT_ADDs and
 * wait up to timeout_ns for the port named `name`, then open it (PORT_OPEN 1).
 * Errors (kernel/errno.h): ERR_NODEV (transport or feature negotiation
 * failed), ERR_NOTSUP (no MULTIPORT: ports have no names), ERR_IO (bad device
 * configuration or queue), ERR_NOMEM, ERR_NOENT (no port with the name within
 * timeout_ns). On any error the device is reset and every page freed. */
int virtio_console_probe(struct pci_dev *d, struct virtio_console *vc, const char *name, uint64_t timeout_ns);
/* Also look for the port named `name` as aux port `slot` (< VCON_AUX_MAX; NULL: none). Before
 * probe: the device names its ports while probe waits for the named one. */
void virtio_console_want_aux(struct virtio_console *vc, unsigned slot, const char *name);
/* Send the byte b on aux port `slot`: 1 sent, 0 dropped (no free buffer: the host has
 * unread bytes), -1 no such port or its host side is closed. Never waits. */
int virtio_console_aux_send(struct virtio_console *vc, unsigned slot, uint8_t b);
/* Take (and discard) the bytes the host sent on aux port `slot`: their count, or -1 when
 * there is no such port or, with nothing received, its host side is closed (none will come). */
long virtio_console_aux_drain(struct virtio_console *vc, unsigned slot);
/* The two above as an aux-port backend (dev: the struct virtio_console). */
extern const struct aux_port_ops virtio_console_aux_ops;
/* Handle pending control messages (port added/named/opened/closed/removed). */
void virtio_console_poll(struct virtio_console *vc);
/* Up to cap received bytes without waiting; -1 if the port was removed. */
long virtio_console_read(struct virtio_console *vc, void *buf, size_t cap);
/* Send up to len bytes, waiting at most timeout_ns for transmit buffers: the
 * count lent to the device (a prefix of buf; fewer when the buffers stay busy,
 * 0 while the host side is closed), or -1 if the port is gone. The caller
 * keeps what was not taken: giving up half-way through a frame and dropping
 * the rest cut frames short (a valid header, a wrong payload CRC) whenever the
 * host paused reading for longer than the timeout. */
long virtio_console_write(struct virtio_console *vc, const void *buf, size_t len, uint64_t timeout_ns);

#endif
