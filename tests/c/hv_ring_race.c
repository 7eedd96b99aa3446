/* hv_ring_race.c: the guest's ring code (guest/trackb-kernel/hv/vmbus_ring.c) and the host's
 * (host/python/wslx/hv/hvrelay.c) on one ring in one buffer, with the other side's steps run
 * inside the guest's memory barriers: each interleaving of the pending_send_sz hand-shake that
 * lost a wake-up is played exactly, once, and the report says whether the signal came.
 * Output: key=value lines (tests/test_trackb_hv_host.py). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hv/vmbus_ring.h"
#include "hvrelay.h"
#include "vmbus.h"

#define NPAGES 4                 /* data pages: 16 KiB, like a small hv_sock ring */
#define PAGE 4096u
#define PAYLOAD 3000u            /* host bytes per packet: a few fill the ring */

static uint8_t *mem;             /* control page, then the data pages */
static struct hvr_ring *host;
static void (*at_barrier)(void); /* the other side's steps, run at the guest's next barrier (once) */

static void barrier_hook(void)
{
    void (*f)(void) = at_barrier;
    at_barrier = NULL;
    if (f)
        f();
    __sync_synchronize();
}

/* platform.h: the guest's barriers, where the other side gets to run */
void mb(void) { barrier_hook(); }
void rmb(void) { barrier_hook(); }
void wmb(void) { barrier_hook(); }

static int host_write(void)
{
    static uint8_t data[PAYLOAD];
    return hvr_ring_write(host, VM_PKT_DATA_INBAND, NULL, 0, data, sizeof data, 0, 0);
}

/* the relay's send_packet: full -> pending_send_sz -> look again */
static int host_blocked;
static void host_fills_the_ring(void)
{
    while (host_write() != HVR_FULL)
        ;
    hvr_ring_want_space(host, hvr_packet_size(PAYLOAD));
    host_blocked = host_write() == HVR_FULL;
}

static void fresh(struct vmbus_ring *g)
{
    uint64_t offs[NPAGES + 1];
    uint8_t *pages[NPAGES];

    memset(mem, 0, (NPAGES + 1) * PAGE);
    for (unsigned i = 0; i <= NPAGES; i++)
        offs[i] = (uint64_t)i * PAGE;
    for (unsigned i = 0; i < NPAGES; i++)
        pages[i] = mem + (i + 1) * PAGE;
    hvr_ring_free(host);
    host = hvr_ring_new(mem, (NPAGES + 1) * PAGE, offs, NPAGES + 1);
    if (!host || vmbus_ring_init(g, mem, pages, NPAGES))
        exit(2);
}

/* Host-to-guest: the guest begins a read with one packet in the ring; before it moves read_index the
 * host fills the ring, sets pending_send_sz and looks again (still full). The guest's read frees a
 * packet, so the host's next packet fits: the guest must signal, and then the host's write succeeds. */
static void reader_race(void)
{
    static uint8_t buf[NPAGES * PAGE];
    struct vmbus_ring g;
    int signal, signals = 0;
    long n;

    fresh(&g);
    if (host_write() < 0)
        exit(3);
    at_barrier = host_fills_the_ring;
    n = vmbus_ring_read(&g, buf, sizeof buf, &signal);
    printf("reader_host_blocked=%d\nreader_read=%ld\nreader_signal=%d\n", host_blocked, n, signal);
    printf("reader_host_write_after=%d\n", host_write() != HVR_FULL);
    /* and the batch: whatever the order, draining the ring signals at least once */
    fresh(&g);
    if (host_write() < 0)
        exit(3);
    at_barrier = host_fills_the_ring;
    while ((n = vmbus_ring_read(&g, buf, sizeof buf, &signal)) > 0)
        signals += signal;
    printf("reader_drain_signals=%d\n", signals);
}

/* Guest-to-host: the guest finds the ring full and sets pending_send_sz; before it looks again the
 * host drains everything. No signal will come (the host saw pending_send_sz 0): the guest's second
 * look must find the room and write. */
static void host_drains_the_ring(void)
{
    static uint8_t payload[NPAGES * PAGE];
    uint16_t type, flags;
    uint64_t tid;
    uint32_t plen, next;

    while (hvr_ring_peek(host, &type, &flags, &tid, payload, sizeof payload, &plen, &next) == 1)
        hvr_ring_commit(host, next);
}

static int guest_write(struct vmbus_ring *g)
{
    static uint8_t data[PAYLOAD];
    uint8_t head[VMPACKET_DESCRIPTOR_SIZE] = {0};   /* the caller's descriptor, as hvsock_write makes it */
    uint16_t type = VM_PKT_DATA_INBAND, off8 = VMPACKET_DESCRIPTOR_SIZE / 8;
    uint16_t len8 = (uint16_t)((sizeof head + sizeof data + 7) / 8);
    int signal;

    memcpy(head + VMPACKET_DESCRIPTOR_OFF_TYPE, &type, 2);
    memcpy(head + VMPACKET_DESCRIPTOR_OFF_OFFSET8, &off8, 2);
    memcpy(head + VMPACKET_DESCRIPTOR_OFF_LEN8, &len8, 2);
    return vmbus_ring_write(g, head, sizeof head, data, sizeof data, &signal);
}

static void writer_race(void)
{
    struct vmbus_ring g;
    int r;

    fresh(&g);
    while ((r = guest_write(&g)) == 1)
        ;
    if (r != 0)
        exit(4);
    at_barrier = host_drains_the_ring;   /* the barrier after pending_send_sz is set */
    r = guest_write(&g);
    printf("writer_wrote=%d\n", r);
}

int main(void)
{
    mem = aligned_alloc(PAGE, (NPAGES + 1) * PAGE);
    if (!mem)
        return 2;
    reader_race();
    writer_race();
    hvr_ring_free(host);
    free(mem);
    return 0;
}
