/* virtqueue.c: split virtqueue, driver side. The rings live in ordinary
 * memory shared with the device; the used ring is device-written and is
 * validated before use, and the free list lives in private memory (vq->next),
 * never in the device-visible descriptor table. */
#include "drivers/virtqueue.h"
#include "platform/platform.h"

int vq_init(struct virtqueue *vq, uint16_t index, uint16_t size, void *mem, uint64_t mem_pa)
{
    if (size == 0 || size > VQ_MAX_SIZE || (size & (size - 1)))
        return -1;
    uint8_t *m = mem;
    size_t avail_off = (size_t)size * VIRTQ_DESC_SIZE;
    size_t used_off = (avail_off + VIRTQ_AVAIL_SIZE + 2u * size + 2 + 3) & ~(size_t)3;  /* + used_event; align 4 */
    if (used_off + VIRTQ_USED_SIZE + (size_t)size * VIRTQ_USED_ELEM_SIZE + 2 > 4096)
        return -1;
    *vq = (struct virtqueue){.index = index, .size = size};
    vq->desc = (struct virtq_desc *)m;
    vq->avail = (struct virtq_avail *)(m + avail_off);
    vq->avail_ring = (uint16_t *)(m + avail_off + VIRTQ_AVAIL_SIZE);
    vq->used = (struct virtq_used *)(m + used_off);
    vq->used_ring = (struct virtq_used_elem *)(m + used_off + VIRTQ_USED_SIZE);
    vq->desc_pa = mem_pa;
    vq->avail_pa = mem_pa + avail_off;
    vq->used_pa = mem_pa + used_off;
    for (uint16_t i = 0; i < size; i++)
        vq->next[i] = (uint16_t)((i + 1) & (size - 1));   /* the free list; only num_free bounds it */
    vq->free_head = 0;
    vq->num_free = size;
    vq->avail->flags = VIRTIO_VIRTQ_AVAIL_F_NO_INTERRUPT;   /* polled */
    return 0;
}

int vq_add(struct virtqueue *vq, const struct vq_buf *bufs, unsigned n)
{
    if (n == 0 || n > vq->num_free)
        return -1;
    uint16_t head = vq->free_head, i = head, last = head;
    for (unsigned k = 0; k < n; k++) {
        struct virtq_desc *d = &vq->desc[i];
        d->addr = bufs[k].pa;
        d->len = bufs[k].len;
        d->flags = (uint16_t)((bufs[k].device_writes ? VIRTQ_DESC_F_WRITE : 0) | (k + 1 < n ? VIRTQ_DESC_F_NEXT : 0));
        d->next = vq->next[i];
        last = i;
        i = vq->next[i];
    }
    vq->free_head = vq->next[last];
    vq->num_free = (uint16_t)(vq->num_free - n);
    vq->chain_len[head] = (uint16_t)n;
    vq->avail_ring[vq->avail->idx % vq->size] = head;
    wmb();                 /* descriptors and ring entry before the index */
    vq->avail->idx = (uint16_t)(vq->avail->idx + 1);
    mb();                  /* index visible before the caller notifies */
    return head;
}

int vq_get_used(struct virtqueue *vq, uint16_t *head, uint32_t *len)
{
    uint16_t used_idx = *(volatile uint16_t *)&vq->used->idx;
    if (used_idx == vq->last_used)
        return 0;
    rmb();                 /* the index before the element it covers */
    struct virtq_used_elem e = vq->used_ring[vq->last_used % vq->size];
    vq->last_used++;
    if (e.id >= vq->size || vq->chain_len[e.id] == 0)
        return -1;
    /* Return the chain to the free list. */
    uint16_t i = (uint16_t)e.id, n = vq->chain_len[e.id];
    for (uint16_t k = 1; k < n; k++)
        i = vq->next[i];
    vq->next[i] = vq->free_head;
    vq->free_head = (uint16_t)e.id;
    vq->num_free = (uint16_t)(vq->num_free + n);
    vq->chain_len[e.id] = 0;
    *head = (uint16_t)e.id;
    *len = e.len;
    return 1;
}
