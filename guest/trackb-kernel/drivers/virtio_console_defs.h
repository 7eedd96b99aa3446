/* virtio_console_defs.h: virtio-console constants (OASIS VIRTIO 1.2, 5.3
 * "Console Device") that are not wire structs. The wire structs
 * (virtio_console_config, virtio_console_control), the control events
 * (VIRTIO_CONSOLE_DEVICE_READY ... PORT_NAME), the feature bits and the PCI
 * ids are build/gen/virtio.h, generated from host/python/wslx/spec/virtio.py. */
#ifndef TRACKB_VIRTIO_CONSOLE_DEFS_H
#define TRACKB_VIRTIO_CONSOLE_DEFS_H

#include <stdint.h>

/* 5.3.2 Virtqueues: with VIRTIO_CONSOLE_F_MULTIPORT, queues 2 and 3 are the
 * control receiveq (device to driver) and control transmitq (driver to device). */
#define VCON_CTRL_RX_QUEUE 2u
#define VCON_CTRL_TX_QUEUE 3u

/* 5.3.2: port 0 uses queues 0 (receiveq) and 1 (transmitq); port n >= 1 uses
 * 2n + 2 and 2n + 3. */
static inline uint32_t vcon_rx_queue(uint32_t port) { return port ? 2 * port + 2 : 0; }
static inline uint32_t vcon_tx_queue(uint32_t port) { return vcon_rx_queue(port) + 1; }

/* 5.3.6.2: the value of DEVICE_READY and PORT_READY (1 success, 0 failure)
 * and of PORT_OPEN (1 open, 0 closed). */
#define VCON_VALUE_OK 1u
#define VCON_VALUE_FAIL 0u

#endif
