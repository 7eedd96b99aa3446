/* aux_port.h: byte-doorbell ports (Gemini's SIGNAL and UPCALL, docs/gemini.md), whatever
 * carries them: named virtio-serial ports (drivers/virtio_console.c) or hv_sock streams
 * (hv/hvsock.c). Each transport fills one table; kernel/env.c holds the one main.c chose,
 * so the agent's doorbell code is the same on both. */
#ifndef TRACKB_AUX_PORT_H
#define TRACKB_AUX_PORT_H

#include <stdint.h>

struct aux_port_ops {
    /* Send byte b on `slot`: 1 sent, 0 dropped (no room: the peer has unread bytes), -1 no
     * such port or its peer is not there. Never waits. */
    int (*send)(void *dev, unsigned slot, uint8_t b);
    /* Take (and discard) the bytes the peer sent on `slot`: their count, or -1 when there is
     * no such port or, with nothing received, no peer (none will come: poll instead). */
    long (*drain)(void *dev, unsigned slot);
    /* Upkeep while the agent is idle (connect, reconnect, notice a closed peer); NULL: none. */
    void (*idle)(void *dev);
};

#endif
