/* virtqueue.h: split virtqueue (VIRTIO 1.2, 2.7), polled, driver side. */
#ifndef TRACKB_VIRTQUEUE_H
#define TRACKB_VIRTQUEUE_H

#include <stddef.h>
#include <stdint.h>

#include "virtio.h"

#define VQ_MAX_SIZE 64     /* descriptors + rings fit one 4 KiB page */

struct virtqueue {
    uint16_t index, size;
    struct virtq_desc *desc;
    struct virtq_avail *avail;
    uint16_t *avail_ring;
    struct virtq_used *used;
    struct virtq_used_elem *used_ring;
    uint64_t desc_pa, avail_pa, used_pa;
    uint16_t free_head, num_free, last_used;
    uint16_t chain_len[VQ_MAX_SIZE];   /* descriptors per head, for freeing */
    uint16_t next[VQ_MAX_SIZE];        /* private copy of desc[].next: the device can rewrite the table */
    uint64_t notify_addr;              /* set by the transport */
};

struct vq_buf {
    uint64_t pa;
    uint32_t len;
    int device_writes;     /* 1: device-writable (VIRTQ_DESC_F_WRITE) */
};

/* Lay the queue out in mem (one zeroed page at physical mem_pa); size is a
 * power of two <= VQ_MAX_SIZE. Returns 0 or -1. */
int vq_init(struct virtqueue *vq, uint16_t index, uint16_t size, void *mem, uint64_t mem_pa);
/* Chain bufs (readable ones first) and publish them; returns the head or -1 if full. */
int vq_add(struct virtqueue *vq, const struct vq_buf *bufs, unsigned n);
/* 1 and the head/len of one completed chain, 0 if none, -1 if the device
 * returned a bad head (it is not trusted). */
int vq_get_used(struct virtqueue *vq, uint16_t *head, uint32_t *len);

#endif
