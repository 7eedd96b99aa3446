/* vmbus_client.h: the tiny VMBus client: connection (version negotiation,
 * offers), channels (GPADL, open, close, rescind), signalling, unload
 * (hyperv-guest-facts.md "VMBus control protocol"; Linux drivers/hv/
 * connection.c, channel.c, channel_mgmt.c). One connection, a few channels.
 * All waits are bounded (timeouts in ns of the kernel clock). */
#ifndef TRACKB_VMBUS_CLIENT_H
#define TRACKB_VMBUS_CLIENT_H

#include <stdint.h>

#include "hv/hv.h"
#include "hv/hv_parse.h"
#include "hv/vmbus_ring.h"

#define VMBUS_MAX_CHANNELS 16
#define VMBUS_CHAN_MAX_PAGES (2 * VMBUS_RING_MAX_PAGES + 2)

enum vmbus_chan_state { CHAN_FREE, CHAN_OFFERED, CHAN_OPENING, CHAN_OPEN, CHAN_CLOSING };

struct vmbus_chan {
    enum vmbus_chan_state state;
    int rescinded;                   /* the host withdrew it: close without talking about it */
    int claimed;                     /* a user (hv_sock) took the offer */
    struct vmbus_offer offer;
    uint32_t gpadl, npages;
    uint64_t page_pa[VMBUS_CHAN_MAX_PAGES];
    int gpadl_status, open_status;   /* -1 until the host answers */
    int torndown;
    struct vmbus_ring out, in;       /* guest-to-host, host-to-guest */
};

struct vmbus_stats {
    uint32_t messages, bad_messages, unknown_messages, timer_messages, offers, rescinds, dropped_offers;
    uint32_t signals, signal_failures;
};

struct vmbus_conn {
    int connected;
    uint32_t tl_refusals;            /* TlConnectResult failures; the last one's endpoint below */
    uint8_t tl_refused_endpoint[VMBUS_GUID_SIZE];
    uint32_t version, msg_conn_id;
    int all_offers;
    struct vmbus_chan chan[VMBUS_MAX_CHANNELS];
    struct vmbus_stats stats;
};
extern struct vmbus_conn vmbus;

/* InitiateContact from the newest version down, then RequestOffers until
 * AllOffersDelivered. 0, ERR_TIMEDOUT (no answer within timeout_ns per
 * step), ERR_VERSION (no common version), ERR_IO (a post failed). */
int vmbus_connect(const struct hv_caps *caps, uint64_t timeout_ns);
/* Handle every message waiting in the SynIC slots (VMBus and timer). The
 * number handled. */
int vmbus_poll(void);
/* Poll, then wait (synic_idle) once if nothing happened. */
void vmbus_wait(void);
/* An unclaimed offered channel whose interface type is if_type (and instance
 * if_instance when not NULL), or NULL. */
struct vmbus_chan *vmbus_find_offer(const uint8_t *if_type, const uint8_t *if_instance);
/* GPADL for 2 rings of ring_pages pages each (control page included), then
 * OpenChannel. 0, or an errno; on failure the channel is left closed and
 * its pages freed (or kept, if the host may still use them). */
int vmbus_open(struct vmbus_chan *c, unsigned ring_pages, uint64_t timeout_ns);
/* CloseChannel and GPADL teardown (or, after a rescind, RelIdReleased); the
 * slot is free afterwards. */
void vmbus_close(struct vmbus_chan *c, uint64_t timeout_ns);
/* HvSignalEvent (fast) to the channel's connection id. */
void vmbus_signal(struct vmbus_chan *c);
/* Did the host set the channel's event flag since last asked? */
int vmbus_event_take(struct vmbus_chan *c);
/* Post a channel message (header included) to the message connection id. */
int vmbus_post(const void *msg, uint32_t len);
/* Unload, then wait for UnloadComplete (bounded). */
int vmbus_unload(uint64_t timeout_ns);

#endif
