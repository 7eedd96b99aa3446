/* vmbus_client.c: see vmbus_client.h. Every message from the host is a
 * copy of a SynIC slot parsed by hv_parse.c before any field is used. */
#include "hv/stimer.h"
#include "hv/synic.h"
#include "hv/vmbus_client.h"
#include "kernel/console.h"
#include "kernel/errno.h"
#include "kernel/klib.h"
#include "kernel/memlayout.h"
#include "kernel/pmm.h"
#include "kernel/timer.h"
#include "kernel/vm.h"
#include "platform/platform.h"

#define FIRST_GPADL 0xE1E10u          /* as Linux: any non-zero handle the guest picks */
#define LOG_LIMIT 8                   /* complaints printed in full; then one in LOG_EVERY (a storm) */
#define LOG_EVERY 1024
#define GPADL_RANGE_OFF (VMBUS_CHANNEL_GPADL_HEADER_SIZE)
#define GPADL_PFN_OFF (GPADL_RANGE_OFF + GPA_RANGE_SIZE)

struct vmbus_conn vmbus;

/* Newest first; 4.0 is the oldest that needs neither an interrupt page
 * protocol nor the pre-Win8 event connection (hyperv-guest-facts.md). */
static const uint32_t versions[] = {
    VMBUS_VERSION_WIN10_V5_3, VMBUS_VERSION_WIN10_V5_2, VMBUS_VERSION_WIN10_V5_1, VMBUS_VERSION_WIN10_V5,
    VMBUS_VERSION_WIN10_V4_1, VMBUS_VERSION_WIN10,
};

static struct {                       /* the answers the waits below look for */
    int version_seen;
    struct vmbus_msg version;
    int unloaded;
    uint32_t gpadl_next;
    uint32_t logged;
    uint64_t monitor_pa[2], interrupt_pa;
} st;

static void complain(const char *what, uint32_t type, int err)
{
    st.logged++;
    if (st.logged <= LOG_LIMIT || st.logged % LOG_EVERY == 0)
        kprintf("vmbus: %s (type %u %s, %s; complaint %u)\n", what, type, channelmsg_name(type), err_str(err),
                st.logged);
}

static void put32(uint8_t *p, uint32_t v) { memcpy(p, &v, 4); }
static void put64(uint8_t *p, uint64_t v) { memcpy(p, &v, 8); }

static struct vmbus_chan *chan_by_relid(uint32_t relid)
{
    for (int i = 0; i < VMBUS_MAX_CHANNELS; i++)
        if (vmbus.chan[i].state != CHAN_FREE && vmbus.chan[i].offer.relid == relid)
            return &vmbus.chan[i];
    return NULL;
}

int vmbus_post(const void *msg, uint32_t len)
{
    uint32_t conn = vmbus.msg_conn_id ? vmbus.msg_conn_id : VMBUS_MESSAGE_CONNECTION_ID;
    uint32_t s = hv_post_message(conn, HVMSG_VMBUS, msg, len), type = 0;
    if (s != HV_STATUS_SUCCESS) {
        if (len >= sizeof type)
            memcpy(&type, msg, sizeof type);
        complain("post failed", type, ERR_IO);
        return ERR_IO;
    }
    return 0;
}

static void post_relid(uint32_t type, uint32_t relid)
{
    uint8_t m[VMBUS_CHANNEL_RELID_RELEASED_SIZE] = {0};
    put32(m, type);
    put32(m + VMBUS_CHANNEL_RELID_RELEASED_OFF_CHILD_RELID, relid);
    vmbus_post(m, sizeof m);
}

static void on_offer(const struct vmbus_offer *o)
{
    vmbus.stats.offers++;
    if (chan_by_relid(o->relid)) {                      /* a relid already in use: not a new channel */
        complain("duplicate offer ignored", CHANNELMSG_OFFERCHANNEL, ERR_RANGE);
        return;
    }
    for (int pass = 0; pass < 2; pass++) {             /* a free slot, else a closed hv_sock channel's */
        for (int i = 0; i < VMBUS_MAX_CHANNELS; i++) {
            struct vmbus_chan *c = &vmbus.chan[i];
            if (c->state != CHAN_FREE && !(pass && c->state == CHAN_OFFERED && c->claimed))
                continue;
            memset(c, 0, sizeof *c);
            c->offer = *o;
            c->state = CHAN_OFFERED;
            c->gpadl_status = c->open_status = -1;
            return;
        }
    }
    vmbus.stats.dropped_offers++;
    complain("offer dropped, channel table full", CHANNELMSG_OFFERCHANNEL, ERR_NOMEM);
}

static void on_rescind(uint32_t relid)
{
    struct vmbus_chan *c = chan_by_relid(relid);
    vmbus.stats.rescinds++;
    if (!c)
        return;
    c->rescinded = 1;
    if (c->state == CHAN_OFFERED) {                     /* nobody uses it (now): release it */
        post_relid(CHANNELMSG_RELID_RELEASED, relid);
        c->state = CHAN_FREE;
    }
}

static void handle(const struct vmbus_msg *m)
{
    struct vmbus_chan *c;
    switch (m->type) {
    case CHANNELMSG_VERSION_RESPONSE:
        st.version = *m;
        st.version_seen = 1;
        break;
    case CHANNELMSG_OFFERCHANNEL: on_offer(&m->u.offer); break;
    case CHANNELMSG_RESCIND_CHANNELOFFER: on_rescind(m->u.rescind.relid); break;
    case CHANNELMSG_ALLOFFERS_DELIVERED: vmbus.all_offers = 1; break;
    case CHANNELMSG_OPENCHANNEL_RESULT:
        c = chan_by_relid(m->u.open_result.relid);
        if (c && c->state == CHAN_OPENING && m->u.open_result.open_id == c->offer.relid)
            c->open_status = m->u.open_result.status ? 1 : 0;
        else
            complain("unexpected open result", m->type, ERR_RANGE);
        break;
    case CHANNELMSG_GPADL_CREATED:
        c = chan_by_relid(m->u.gpadl_created.relid);
        if (c && c->gpadl == m->u.gpadl_created.gpadl && c->gpadl_status < 0)
            c->gpadl_status = m->u.gpadl_created.status ? 1 : 0;
        else
            complain("unexpected GPADL created", m->type, ERR_RANGE);
        break;
    case CHANNELMSG_GPADL_TORNDOWN:
        for (int i = 0; i < VMBUS_MAX_CHANNELS; i++)
            if (vmbus.chan[i].state == CHAN_CLOSING && vmbus.chan[i].gpadl == m->u.gpadl_torndown.gpadl)
                vmbus.chan[i].torndown = 1;
        break;
    case CHANNELMSG_UNLOAD_RESPONSE: st.unloaded = 1; break;
    case CHANNELMSG_TL_CONNECT_RESULT:
        if (m->u.tl_result.status) {                    /* no offer follows: hv_sock gives up this attempt */
            memcpy(vmbus.tl_refused_endpoint, m->u.tl_result.endpoint, VMBUS_GUID_SIZE);
            vmbus.tl_refusals++;
            complain("hv_sock connect refused", m->type, ERR_IO);
        }
        break;
    }
}

static void take_vmbus_message(const uint8_t *slot)
{
    struct hv_msg hm;
    struct vmbus_msg m;
    int err = hv_msg_parse(slot, HV_MESSAGE_SIZE, &hm);
    vmbus.stats.messages++;
    if (err) {
        vmbus.stats.bad_messages++;
        complain("bad SynIC message", hm.type, err);
        return;
    }
    if (hm.type == HVMSG_TIMER_EXPIRED) {               /* a timer pointed at this SINT */
        vmbus.stats.timer_messages++;
        stimer_on_message(&hm);
        return;
    }
    if (hm.type != HVMSG_VMBUS) {
        vmbus.stats.unknown_messages++;
        complain("unknown SynIC message type", hm.type, ERR_NOTSUP);
        return;
    }
    err = vmbus_msg_parse(hm.payload, hm.size, &m);
    if (err) {
        (*(err == ERR_NOTSUP ? &vmbus.stats.unknown_messages : &vmbus.stats.bad_messages))++;
        complain("channel message ignored", m.type, err);
        return;
    }
    handle(&m);
}

int vmbus_poll(void)
{
    uint8_t slot[HV_MESSAGE_SIZE];
    struct hv_msg hm;
    int n = 0;
    while (synic_take(SYNIC_TIMER_SINT, slot)) {        /* bounded: each take frees the slot */
        if (!hv_msg_parse(slot, sizeof slot, &hm) && hm.type == HVMSG_TIMER_EXPIRED)
            stimer_on_message(&hm);
        else
            stimer.bad_messages++;
        if (++n >= 64)
            return n;
    }
    while (synic_take(SYNIC_VMBUS_SINT, slot)) {
        take_vmbus_message(slot);
        if (++n >= 64)                                  /* a storm: let the caller's loop run too */
            break;
    }
    return n;
}

void vmbus_wait(void)
{
    if (!vmbus_poll())
        synic_idle();
}

/* Wait until *flag != 0 (polled between waits) or the deadline passes. */
static int wait_for(volatile int *flag, uint64_t timeout_ns)
{
    uint64_t deadline = timer_now_ns() + timeout_ns;
    for (;;) {
        vmbus_poll();
        if (*flag)
            return 0;
        if (timer_now_ns() >= deadline)
            return ERR_TIMEDOUT;
        synic_idle();
    }
}

static int contact(const struct hv_caps *caps, uint32_t version, uint64_t timeout_ns)
{
    uint8_t m[VMBUS_CHANNEL_INITIATE_CONTACT_SIZE] = {0};
    put32(m, CHANNELMSG_INITIATE_CONTACT);
    put32(m + VMBUS_CHANNEL_INITIATE_CONTACT_OFF_VMBUS_VERSION_REQUESTED, version);
    put32(m + VMBUS_CHANNEL_INITIATE_CONTACT_OFF_TARGET_VCPU, caps->vp_index);
    if (version >= VMBUS_VERSION_WIN10_V5)              /* message SINT 2, VTL 0 */
        m[VMBUS_CHANNEL_INITIATE_CONTACT_OFF_INTERRUPT_PAGE] = SYNIC_VMBUS_SINT;
    else
        put64(m + VMBUS_CHANNEL_INITIATE_CONTACT_OFF_INTERRUPT_PAGE, st.interrupt_pa);
    put64(m + VMBUS_CHANNEL_INITIATE_CONTACT_OFF_MONITOR_PAGE1, st.monitor_pa[0]);
    put64(m + VMBUS_CHANNEL_INITIATE_CONTACT_OFF_MONITOR_PAGE2, st.monitor_pa[1]);
    /* The connection-id rule: from 5.0 InitiateContact goes to id 4, before to id 1. */
    vmbus.msg_conn_id = version >= VMBUS_VERSION_WIN10_V5 ? VMBUS_MESSAGE_CONNECTION_ID_4 : VMBUS_MESSAGE_CONNECTION_ID;
    st.version_seen = 0;
    if (vmbus_post(m, sizeof m))
        return ERR_IO;
    int err = wait_for(&st.version_seen, timeout_ns);
    if (err)
        return err;
    if (!st.version.u.version.supported)
        return ERR_VERSION;
    if (st.version.u.version.state != VMBUS_CONNECTION_STATE_OK)
        return ERR_IO;
    if (version >= VMBUS_VERSION_WIN10_V5) {            /* later messages go where the host says */
        uint32_t id = st.version.u.version.msg_conn_id;
        if (id == 0 || id > HV_CONNECTION_ID_MASK)
            return ERR_RANGE;
        vmbus.msg_conn_id = id;
    } else {
        vmbus.msg_conn_id = VMBUS_MESSAGE_CONNECTION_ID;
    }
    vmbus.version = version;
    return 0;
}

int vmbus_connect(const struct hv_caps *caps, uint64_t timeout_ns)
{
    int err = ERR_VERSION;
    if (!st.monitor_pa[0]) {                            /* Linux passes two monitor pages; so do we */
        st.monitor_pa[0] = pmm_alloc_zeroed(), st.monitor_pa[1] = pmm_alloc_zeroed();
        st.interrupt_pa = pmm_alloc_zeroed();
        st.gpadl_next = FIRST_GPADL;
        if (!st.monitor_pa[0] || !st.monitor_pa[1] || !st.interrupt_pa)
            return ERR_NOMEM;
    }
    for (unsigned i = 0; i < sizeof versions / sizeof versions[0]; i++) {
        err = contact(caps, versions[i], timeout_ns);
        if (err != ERR_VERSION)
            break;                                      /* accepted, or the host is not answering */
    }
    if (err) {
        kprintf("vmbus: no connection (%s)\n", err_str(err));
        vmbus.msg_conn_id = 0;
        return err;
    }
    vmbus.connected = 1;
    kprintf("vmbus: version %u.%u, message connection id %u\n", vmbus.version >> 16, vmbus.version & 0xFFFF,
            vmbus.msg_conn_id);
    uint8_t req[VMBUS_CHANNEL_REQUEST_OFFERS_SIZE] = {0};
    put32(req, CHANNELMSG_REQUESTOFFERS);
    vmbus.all_offers = 0;
    if (vmbus_post(req, sizeof req) || wait_for(&vmbus.all_offers, timeout_ns))
        kprintf("vmbus: offers not all delivered; going on with what came\n");
    return 0;
}

struct vmbus_chan *vmbus_find_offer(const uint8_t *if_type, const uint8_t *if_instance)
{
    for (int i = 0; i < VMBUS_MAX_CHANNELS; i++) {
        struct vmbus_chan *c = &vmbus.chan[i];
        if (c->state == CHAN_OFFERED && !c->claimed && !c->rescinded &&
            !memcmp(c->offer.if_type, if_type, VMBUS_GUID_SIZE) &&
            (!if_instance || !memcmp(c->offer.if_instance, if_instance, VMBUS_GUID_SIZE)))
            return c;
    }
    return NULL;
}

static void free_pages(struct vmbus_chan *c)
{
    for (uint32_t i = 0; i < c->npages; i++)
        pmm_free_page(c->page_pa[i]);
    c->npages = 0;
}

/* GpadlHeader with as many pfns as fit, GpadlBody messages with the rest. */
static int post_gpadl(struct vmbus_chan *c)
{
    uint8_t m[HV_MESSAGE_PAYLOAD_SIZE];
    uint32_t n = c->npages, i = 0;
    memset(m, 0, sizeof m);
    put32(m, CHANNELMSG_GPADL_HEADER);
    put32(m + VMBUS_CHANNEL_GPADL_HEADER_OFF_CHILD_RELID, c->offer.relid);
    put32(m + VMBUS_CHANNEL_GPADL_HEADER_OFF_GPADL, c->gpadl);
    uint16_t range_bytes = (uint16_t)(GPA_RANGE_SIZE + 8 * n), one = 1;
    memcpy(m + VMBUS_CHANNEL_GPADL_HEADER_OFF_RANGE_BUFLEN, &range_bytes, 2);
    memcpy(m + VMBUS_CHANNEL_GPADL_HEADER_OFF_RANGECOUNT, &one, 2);
    put32(m + GPADL_RANGE_OFF + GPA_RANGE_OFF_BYTE_COUNT, n * (uint32_t)PAGE_SIZE);
    put32(m + GPADL_RANGE_OFF + GPA_RANGE_OFF_BYTE_OFFSET, 0);
    for (; i < n && i < VMBUS_GPADL_HEADER_MAX_PFNS; i++)
        put64(m + GPADL_PFN_OFF + 8 * i, c->page_pa[i] >> HV_PAGE_MSR_PFN_SHIFT);
    if (vmbus_post(m, GPADL_PFN_OFF + 8 * i))
        return ERR_IO;
    for (uint32_t msgno = 1; i < n; msgno++) {
        uint32_t k = 0;
        memset(m, 0, sizeof m);
        put32(m, CHANNELMSG_GPADL_BODY);
        put32(m + VMBUS_CHANNEL_GPADL_BODY_OFF_MSGNUMBER, msgno);
        put32(m + VMBUS_CHANNEL_GPADL_BODY_OFF_GPADL, c->gpadl);
        for (; i < n && k < VMBUS_GPADL_BODY_MAX_PFNS; i++, k++)
            put64(m + VMBUS_CHANNEL_GPADL_BODY_SIZE + 8 * k, c->page_pa[i] >> HV_PAGE_MSR_PFN_SHIFT);
        if (vmbus_post(m, VMBUS_CHANNEL_GPADL_BODY_SIZE + 8 * k))
            return ERR_IO;
    }
    return 0;
}

static int wait_status(struct vmbus_chan *c, volatile int *status, uint64_t timeout_ns)
{
    uint64_t deadline = timer_now_ns() + timeout_ns;
    for (;;) {
        vmbus_poll();
        if (c->rescinded)
            return ERR_NODEV;
        if (*status >= 0)
            return *status ? ERR_IO : 0;
        if (timer_now_ns() >= deadline)
            return ERR_TIMEDOUT;
        synic_idle();
    }
}

static uint8_t *page_ptr(struct vmbus_chan *c, unsigned i) { return phys_ptr(c->page_pa[i], PAGE_SIZE); }

int vmbus_open(struct vmbus_chan *c, unsigned ring_pages, uint64_t timeout_ns)
{
    int err;
    if (ring_pages < 2 || ring_pages > VMBUS_RING_MAX_PAGES + 1 || c->state != CHAN_OFFERED || c->rescinded)
        return ERR_RANGE;
    c->claimed = 1;
    /* 1. Pages: [out control | out data... | in control | in data...]. */
    for (c->npages = 0; c->npages < 2 * ring_pages; c->npages++) {
        if (!(c->page_pa[c->npages] = pmm_alloc_zeroed())) {
            free_pages(c);
            c->claimed = 0;
            return ERR_NOMEM;
        }
    }
    uint8_t *data[VMBUS_RING_MAX_PAGES];
    for (unsigned i = 0; i < ring_pages - 1; i++)
        data[i] = page_ptr(c, 1 + i);
    vmbus_ring_init(&c->out, page_ptr(c, 0), data, ring_pages - 1);
    for (unsigned i = 0; i < ring_pages - 1; i++)
        data[i] = page_ptr(c, ring_pages + 1 + i);
    vmbus_ring_init(&c->in, page_ptr(c, ring_pages), data, ring_pages - 1);
    vmbus_ring_set_mask(&c->in, synic_irq_mode ? 0 : 1);  /* polling: the host need not signal */

    /* 2. The GPADL. */
    c->gpadl = st.gpadl_next++;
    c->gpadl_status = c->open_status = -1;
    c->state = CHAN_OPENING;
    if ((err = post_gpadl(c)) || (err = wait_status(c, &c->gpadl_status, timeout_ns)))
        goto fail;

    /* 3. OpenChannel; open id = relid (echoed in OpenResult). */
    uint8_t m[VMBUS_CHANNEL_OPEN_CHANNEL_SIZE] = {0};
    put32(m, CHANNELMSG_OPENCHANNEL);
    put32(m + VMBUS_CHANNEL_OPEN_CHANNEL_OFF_CHILD_RELID, c->offer.relid);
    put32(m + VMBUS_CHANNEL_OPEN_CHANNEL_OFF_OPENID, c->offer.relid);
    put32(m + VMBUS_CHANNEL_OPEN_CHANNEL_OFF_RINGBUFFER_GPADLHANDLE, c->gpadl);
    put32(m + VMBUS_CHANNEL_OPEN_CHANNEL_OFF_DOWNSTREAM_RINGBUFFER_PAGEOFFSET, ring_pages);
    if ((err = vmbus_post(m, sizeof m)) || (err = wait_status(c, &c->open_status, timeout_ns)))
        goto fail;
    c->state = CHAN_OPEN;
    return 0;
fail:
    kprintf("vmbus: channel %u not opened (%s)\n", c->offer.relid, err_str(err));
    vmbus_close(c, timeout_ns);
    return err;
}

void vmbus_close(struct vmbus_chan *c, uint64_t timeout_ns)
{
    uint8_t m[VMBUS_CHANNEL_GPADL_TEARDOWN_SIZE] = {0};
    if (c->state == CHAN_FREE)
        return;
    int had_gpadl = c->state != CHAN_OFFERED && c->gpadl_status == 0;
    if (!c->rescinded && (c->state == CHAN_OPEN || c->open_status >= 0))
        post_relid(CHANNELMSG_CLOSECHANNEL, c->offer.relid);
    c->state = CHAN_CLOSING;
    c->torndown = 0;
    if (had_gpadl) {
        put32(m, CHANNELMSG_GPADL_TEARDOWN);
        put32(m + VMBUS_CHANNEL_GPADL_TEARDOWN_OFF_CHILD_RELID, c->offer.relid);
        put32(m + VMBUS_CHANNEL_GPADL_TEARDOWN_OFF_GPADL, c->gpadl);
        if (vmbus_post(m, sizeof m) || wait_for(&c->torndown, timeout_ns)) {
            /* The host may still write these pages: never reuse them. */
            kprintf("vmbus: GPADL %x of channel %u not torn down; its %u pages stay reserved\n", c->gpadl,
                    c->offer.relid, c->npages);
            c->npages = 0;
        }
    }
    free_pages(c);
    c->claimed = 0;
    if (c->rescinded) {                                 /* the host is done with it: release the relid */
        post_relid(CHANNELMSG_RELID_RELEASED, c->offer.relid);
        c->state = CHAN_FREE;
        return;
    }
    /* The offer stays until the host rescinds it (then RelIdReleased); a closed
     * hv_sock channel is never reopened, so it stays claimed. */
    c->state = CHAN_OFFERED;
    c->claimed = !!(c->offer.flags & VMBUS_OFFER_TLNPI_PROVIDER_OFFER);
}

void vmbus_signal(struct vmbus_chan *c)
{
    vmbus.stats.signals++;
    if (hv_signal_event(c->offer.connection_id, 0) != HV_STATUS_SUCCESS)
        vmbus.stats.signal_failures++;
}

int vmbus_event_take(struct vmbus_chan *c) { return synic_event_take(SYNIC_VMBUS_SINT, c->offer.relid); }

int vmbus_unload(uint64_t timeout_ns)
{
    uint8_t m[VMBUS_CHANNEL_UNLOAD_SIZE] = {0};
    if (!vmbus.connected)
        return 0;
    put32(m, CHANNELMSG_UNLOAD);
    st.unloaded = 0;
    int err = vmbus_post(m, sizeof m);
    if (!err)
        err = wait_for(&st.unloaded, timeout_ns);
    vmbus.connected = 0;
    return err;
}
