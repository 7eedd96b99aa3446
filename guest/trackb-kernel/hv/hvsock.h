/* hvsock.h: one hv_sock stream over a VMBus channel (hyperv-guest-facts.md
 * "hv_sock"; Linux net/vmw_vsock/hyperv_transport.c): the guest connects to a
 * host port (TlConnectRequest, then the host's offer is opened), or accepts a
 * host-initiated offer for its own port. Closed streams are reconnected by
 * hvsock_poll with a back-off; `connects` counts the streams opened. */
#ifndef TRACKB_HVSOCK_H
#define TRACKB_HVSOCK_H

#include <stddef.h>
#include <stdint.h>

#include "kernel/aux_port.h"
#include "hv/vmbus_client.h"

#define HVSOCK_PKT_MAX (VMPACKET_DESCRIPTOR_SIZE + VMPIPE_PROTO_HEADER_SIZE + VMBUS_HVSOCK_MTU)

enum hvsock_state { HVSOCK_IDLE, HVSOCK_CONNECTING, HVSOCK_OPEN };

struct hvsock {
    enum hvsock_state state;
    uint32_t port;                   /* the service port (host side for connect, ours for accept) */
    uint32_t ring_pages;             /* per direction, control page included (VMBUS_HVSOCK_RING_PAGES) */
    uint32_t local_port;             /* our endpoint for the current attempt */
    struct vmbus_chan *chan;
    uint64_t connect_started_ns, retry_at_ns;
    uint32_t connects, failures, bad_packets, refusals_seen;
    uint32_t rx_off, rx_len;         /* stream bytes left in rx_pkt */
    uint64_t last_rx_ns;             /* when stream bytes last came (hvsock_idle spins only soon after) */
    uint32_t rx_cap;                 /* bytes of rx_pkt: the longest packet taken (longer: skipped) */
    uint8_t *rx_pkt;                 /* the caller's buffer, one packet */
};

/* The service GUID of vsock port P: P-facb-11e6-bd58-64006a7986d3. */
void hvsock_port_guid(uint32_t port, uint8_t guid[VMBUS_GUID_SIZE]);
/* Start a connection to host port `port` (guest-initiated); progress and
 * reconnects happen in hvsock_poll. rx_buf (rx_cap bytes) holds one packet:
 * HVSOCK_PKT_MAX takes the MTU; a stream whose host sends less may pass less. Host-initiated offers for the same
 * service GUID are accepted too. */
void hvsock_init(struct hvsock *s, uint32_t port, uint8_t *rx_buf, uint32_t rx_cap);
/* Drive the stream: VMBus messages, connection steps, reconnect after a close. */
void hvsock_poll(struct hvsock *s);
/* Wait until the stream is open or timeout_ns passes: 0 or ERR_TIMEDOUT. */
int hvsock_wait_open(struct hvsock *s, uint64_t timeout_ns);
/* Up to cap stream bytes, without waiting; 0 if none (or not open). */
long hvsock_read(struct hvsock *s, void *buf, size_t cap);
/* Nothing to do: wait for the host's next packet, an interrupt or the tick;
 * soon after traffic, first poll the ring with the host's signals masked. */
void hvsock_idle(struct hvsock *s);
/* Up to len bytes, in packets of at most the MTU; waits for ring space up to
 * timeout_ns. The count written (a prefix of buf; fewer when the ring stays
 * full), or -1 when not open and nothing was written. */
long hvsock_write(struct hvsock *s, const void *buf, size_t len, uint64_t timeout_ns);

/* Byte-doorbell streams (Gemini's SIGNAL and UPCALL ports) as an aux-port backend: slot k is
 * an hv_sock to host port ports[k], connected (and reconnected) by hvsock_aux_ops.idle, the
 * agent's idle path; bytes seen there wait in `held` until the slot is drained. Small rings:
 * doorbells are single bytes. */
#define HVSOCK_AUX_MAX 2
#define HVSOCK_AUX_RING_PAGES 2      /* per direction, control page included */
#define HVSOCK_AUX_PKT_MAX 4096u     /* a packet of a one-page ring (the host sends at most half) */
struct hvsock_aux {
    unsigned n;
    uint32_t held[HVSOCK_AUX_MAX];
    struct hvsock s[HVSOCK_AUX_MAX];
    uint8_t rx[HVSOCK_AUX_MAX][HVSOCK_AUX_PKT_MAX];
};
/* Start n (<= HVSOCK_AUX_MAX) streams, slot k to host port ports[k]. */
void hvsock_aux_init(struct hvsock_aux *a, const uint32_t *ports, unsigned n);
extern const struct aux_port_ops hvsock_aux_ops;   /* dev: the struct hvsock_aux */

#endif
