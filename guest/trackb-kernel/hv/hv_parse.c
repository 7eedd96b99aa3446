/* hv_parse.c: see hv_parse.h. Every field is read with memcpy at its
 * generated offset: no casts of host bytes to structs. */
#include "hv/hv_parse.h"
#include "kernel/errno.h"
#include "kernel/klib.h"

static uint32_t rd32(const uint8_t *p) { uint32_t v; memcpy(&v, p, 4); return v; }
static uint64_t rd64(const uint8_t *p) { uint64_t v; memcpy(&v, p, 8); return v; }
static uint16_t rd16(const uint8_t *p) { uint16_t v; memcpy(&v, p, 2); return v; }

int hv_msg_parse(const uint8_t *slot, size_t len, struct hv_msg *m)
{
    if (len < HV_MESSAGE_SIZE)
        return ERR_TRUNC;
    m->type = rd32(slot + HV_MESSAGE_HEADER_OFF_MESSAGE_TYPE);
    m->size = slot[HV_MESSAGE_HEADER_OFF_PAYLOAD_SIZE];
    m->flags = slot[HV_MESSAGE_HEADER_OFF_FLAGS];
    m->sender = rd64(slot + HV_MESSAGE_HEADER_OFF_SENDER);
    m->payload = slot + HV_MESSAGE_OFF_PAYLOAD;
    return m->size > HV_MESSAGE_PAYLOAD_SIZE ? ERR_RANGE : 0;
}

int hv_timer_msg_parse(const uint8_t *p, size_t len, struct hv_timer_msg *t)
{
    if (len < HV_TIMER_MESSAGE_PAYLOAD_SIZE)
        return ERR_TRUNC;
    t->index = rd32(p + HV_TIMER_MESSAGE_PAYLOAD_OFF_TIMER_INDEX);
    t->expiration = rd64(p + HV_TIMER_MESSAGE_PAYLOAD_OFF_EXPIRATION_TIME);
    t->delivery = rd64(p + HV_TIMER_MESSAGE_PAYLOAD_OFF_DELIVERY_TIME);
    return t->index < HV_STIMER_COUNT ? 0 : ERR_RANGE;
}

/* The least a host message of each type must hold. */
static size_t min_size(uint32_t type)
{
    switch (type) {
    case CHANNELMSG_VERSION_RESPONSE: return VMBUS_CHANNEL_VERSION_RESPONSE_SIZE;
    case CHANNELMSG_OFFERCHANNEL: return VMBUS_CHANNEL_OFFER_CHANNEL_SIZE;
    case CHANNELMSG_RESCIND_CHANNELOFFER: return VMBUS_CHANNEL_RESCIND_OFFER_SIZE;
    case CHANNELMSG_ALLOFFERS_DELIVERED: return VMBUS_CHANNEL_ALL_OFFERS_DELIVERED_SIZE;
    case CHANNELMSG_OPENCHANNEL_RESULT: return VMBUS_CHANNEL_OPEN_RESULT_SIZE;
    case CHANNELMSG_GPADL_CREATED: return VMBUS_CHANNEL_GPADL_CREATED_SIZE;
    case CHANNELMSG_GPADL_TORNDOWN: return VMBUS_CHANNEL_GPADL_TORNDOWN_SIZE;
    case CHANNELMSG_UNLOAD_RESPONSE: return VMBUS_CHANNEL_UNLOAD_RESPONSE_SIZE;
    case CHANNELMSG_TL_CONNECT_RESULT: return VMBUS_CHANNEL_TL_CONNECT_RESULT_SIZE;
    default: return 0;
    }
}

#define OFFER(f) (p + VMBUS_CHANNEL_OFFER_CHANNEL_OFF_##f)

int vmbus_msg_parse(const uint8_t *p, size_t len, struct vmbus_msg *m)
{
    memset(m, 0, sizeof *m);
    if (len < VMBUS_CHANNEL_MESSAGE_HEADER_SIZE)
        return ERR_TRUNC;
    m->type = rd32(p + VMBUS_CHANNEL_MESSAGE_HEADER_OFF_MSGTYPE);
    size_t need = min_size(m->type);
    if (!need)
        return ERR_NOTSUP;
    if (len < need)
        return ERR_TRUNC;
    switch (m->type) {
    case CHANNELMSG_VERSION_RESPONSE:   /* VersionResponse2 (Copper) only adds a field at the end */
        m->u.version.supported = p[VMBUS_CHANNEL_VERSION_RESPONSE_OFF_VERSION_SUPPORTED];
        m->u.version.state = p[VMBUS_CHANNEL_VERSION_RESPONSE_OFF_CONNECTION_STATE];
        m->u.version.msg_conn_id = rd32(p + VMBUS_CHANNEL_VERSION_RESPONSE_OFF_MSG_CONN_ID);
        return 0;
    case CHANNELMSG_OFFERCHANNEL: {
        struct vmbus_offer *o = &m->u.offer;
        memcpy(o->if_type, OFFER(IF_TYPE), VMBUS_GUID_SIZE);
        memcpy(o->if_instance, OFFER(IF_INSTANCE), VMBUS_GUID_SIZE);
        o->flags = rd16(OFFER(CHN_FLAGS));
        memcpy(o->user_def, OFFER(USER_DEF), VMBUS_MAX_USER_DEFINED_BYTES);
        o->relid = rd32(OFFER(CHILD_RELID));
        o->monitor_id = *OFFER(MONITORID);
        o->monitor_allocated = *OFFER(MONITOR_FLAGS) & VMBUS_OFFER_MONITOR_ALLOCATED;
        o->connection_id = rd32(OFFER(CONNECTION_ID));
        return o->relid <= VMBUS_MAX_RELID ? 0 : ERR_RANGE;
    }
    case CHANNELMSG_RESCIND_CHANNELOFFER:
        m->u.rescind.relid = rd32(p + VMBUS_CHANNEL_RESCIND_OFFER_OFF_CHILD_RELID);
        return m->u.rescind.relid <= VMBUS_MAX_RELID ? 0 : ERR_RANGE;
    case CHANNELMSG_OPENCHANNEL_RESULT:
        m->u.open_result.relid = rd32(p + VMBUS_CHANNEL_OPEN_RESULT_OFF_CHILD_RELID);
        m->u.open_result.open_id = rd32(p + VMBUS_CHANNEL_OPEN_RESULT_OFF_OPENID);
        m->u.open_result.status = rd32(p + VMBUS_CHANNEL_OPEN_RESULT_OFF_STATUS);
        return 0;
    case CHANNELMSG_GPADL_CREATED:
        m->u.gpadl_created.relid = rd32(p + VMBUS_CHANNEL_GPADL_CREATED_OFF_CHILD_RELID);
        m->u.gpadl_created.gpadl = rd32(p + VMBUS_CHANNEL_GPADL_CREATED_OFF_GPADL);
        m->u.gpadl_created.status = rd32(p + VMBUS_CHANNEL_GPADL_CREATED_OFF_CREATION_STATUS);
        return 0;
    case CHANNELMSG_GPADL_TORNDOWN:
        m->u.gpadl_torndown.gpadl = rd32(p + VMBUS_CHANNEL_GPADL_TORNDOWN_OFF_GPADL);
        return 0;
    case CHANNELMSG_TL_CONNECT_RESULT:
        memcpy(m->u.tl_result.endpoint, p + VMBUS_CHANNEL_TL_CONNECT_RESULT_OFF_ENDPOINT_ID, VMBUS_GUID_SIZE);
        memcpy(m->u.tl_result.service, p + VMBUS_CHANNEL_TL_CONNECT_RESULT_OFF_SERVICE_ID, VMBUS_GUID_SIZE);
        m->u.tl_result.status = (int32_t)rd32(p + VMBUS_CHANNEL_TL_CONNECT_RESULT_OFF_STATUS);
        return 0;
    default:                            /* AllOffersDelivered, UnloadResponse: the type is all */
        return 0;
    }
}

int vmbus_pkt_parse(const uint8_t desc[VMPACKET_DESCRIPTOR_SIZE], uint32_t avail, struct vmbus_pkt *k)
{
    k->type = rd16(desc + VMPACKET_DESCRIPTOR_OFF_TYPE);
    k->flags = rd16(desc + VMPACKET_DESCRIPTOR_OFF_FLAGS);
    k->trans_id = rd64(desc + VMPACKET_DESCRIPTOR_OFF_TRANS_ID);
    k->len = (uint32_t)rd16(desc + VMPACKET_DESCRIPTOR_OFF_LEN8) * 8;
    k->payload_off = (uint32_t)rd16(desc + VMPACKET_DESCRIPTOR_OFF_OFFSET8) * 8;
    if (k->payload_off < VMPACKET_DESCRIPTOR_SIZE || k->payload_off > k->len)
        return ERR_RANGE;
    if ((uint64_t)k->len + VMBUS_PACKET_TRAILER_SIZE > avail)
        return ERR_RANGE;
    k->payload_len = k->len - k->payload_off;
    return 0;
}

int hvsock_payload_parse(const uint8_t *p, uint32_t len, uint32_t *data_size)
{
    if (len < VMPIPE_PROTO_HEADER_SIZE)
        return ERR_TRUNC;
    if (rd32(p + VMPIPE_PROTO_HEADER_OFF_PKT_TYPE) != VMBUS_PIPE_MSG_DATA)
        return ERR_NOTSUP;
    *data_size = rd32(p + VMPIPE_PROTO_HEADER_OFF_DATA_SIZE);
    return *data_size <= len - VMPIPE_PROTO_HEADER_SIZE ? 0 : ERR_RANGE;
}
