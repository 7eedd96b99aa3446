/* vmbus_ring.h: one direction of a VMBus channel's ring buffer (Linux
 * drivers/hv/ring_buffer.c). A control page (hv_ring_buffer) plus data pages
 * that need not be contiguous: every access goes page by page. The guest
 * keeps its own copy of the index it owns; the host's index is read fresh and
 * checked (below the data size, 8-byte aligned) before every use. */
#ifndef TRACKB_VMBUS_RING_H
#define TRACKB_VMBUS_RING_H

#include <stddef.h>
#include <stdint.h>

#define VMBUS_RING_MAX_PAGES 16u

struct vmbus_ring {
    volatile uint8_t *ctrl;                  /* hv_ring_buffer control page */
    uint8_t *page[VMBUS_RING_MAX_PAGES];     /* data pages */
    uint32_t size;                           /* data bytes */
    uint32_t own;                            /* the index this side owns (write for out, read for in) */
    uint32_t broken;                         /* a host index or packet was impossible: stop using it */
};

/* ctrl and n data pages (1..VMBUS_RING_MAX_PAGES), all zeroed by the caller:
 * indices 0, pending-send-size supported. */
int vmbus_ring_init(struct vmbus_ring *r, uint8_t *ctrl, uint8_t *const *pages, unsigned n);

/* Producer: one packet = head (hlen bytes) + body (blen bytes), padded to 8,
 * then the trailer. 1 if written, with *signal set when the host must be
 * told (its interrupt_mask is 0 and the ring was empty); 0 when there is no
 * room yet (pending_send_sz is then set so the host signals when there is);
 * ERR_RANGE when the host's read index is impossible or the packet can never fit. */
int vmbus_ring_write(struct vmbus_ring *r, const void *head, uint32_t hlen, const void *body, uint32_t blen,
                     int *signal);

/* Consumer: copy the next packet (descriptor and payload, without padding
 * and trailer) into buf. Its length, 0 when the ring is empty, or ERR_RANGE
 * (impossible index or descriptor: the ring is marked broken; a packet longer
 * than cap is skipped and ERR_RANGE returned). *signal is set when the host
 * waits for space (pending_send_sz) and this read made enough. */
long vmbus_ring_read(struct vmbus_ring *r, uint8_t *buf, uint32_t cap, int *signal);

/* Consumer: interrupt_mask (1: the host need not signal, we poll). With 0,
 * returns 1 if data arrived meanwhile (the caller looks again). */
int vmbus_ring_set_mask(struct vmbus_ring *r, uint32_t mask);
/* Bytes the host has published and we have not read (0 if broken). */
uint32_t vmbus_ring_avail(struct vmbus_ring *r);

#endif
