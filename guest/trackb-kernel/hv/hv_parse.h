/* hv_parse.h: parsers of what the host writes (SynIC messages, timer
 * messages, VMBus channel messages, ring packets). They take raw bytes and a
 * length, read fields with the generated *_OFF_* offsets, check every size,
 * count and index before use, and return 0 or an errno (kernel/errno.h). */
#ifndef TRACKB_HV_PARSE_H
#define TRACKB_HV_PARSE_H

#include <stddef.h>
#include <stdint.h>

#include "hyperv.h"
#include "vmbus.h"

#define VMBUS_MAX_RELID 2047u          /* a relid is a bit of SINT 2's 2048-bit event-flags area */

struct hv_msg {
    uint32_t type;
    uint8_t size, flags;
    uint64_t sender;
    const uint8_t *payload;            /* size bytes, inside the slot copy */
};
/* A SynIC slot copy (HV_MESSAGE_SIZE bytes): ERR_TRUNC if len is short,
 * ERR_RANGE if payload_size claims more than the slot holds. */
int hv_msg_parse(const uint8_t *slot, size_t len, struct hv_msg *m);

struct hv_timer_msg {
    uint32_t index;
    uint64_t expiration, delivery;
};
int hv_timer_msg_parse(const uint8_t *p, size_t len, struct hv_timer_msg *t);

struct vmbus_offer {
    uint8_t if_type[VMBUS_GUID_SIZE], if_instance[VMBUS_GUID_SIZE];
    uint16_t flags;
    uint8_t user_def[VMBUS_MAX_USER_DEFINED_BYTES];
    uint32_t relid, connection_id;
    uint8_t monitor_id, monitor_allocated;
};

struct vmbus_msg {
    uint32_t type;                     /* CHANNELMSG_* */
    union {
        struct { uint8_t supported, state; uint32_t msg_conn_id; } version;
        struct vmbus_offer offer;
        struct { uint32_t relid; } rescind;
        struct { uint32_t relid, open_id, status; } open_result;
        struct { uint32_t relid, gpadl, status; } gpadl_created;
        struct { uint32_t gpadl; } gpadl_torndown;
        struct { uint8_t endpoint[VMBUS_GUID_SIZE], service[VMBUS_GUID_SIZE]; int32_t status; } tl_result;
    } u;
};
/* A host-to-guest channel message. ERR_TRUNC: shorter than its type needs;
 * ERR_NOTSUP: a type the guest does not expect from a host (m->type says
 * which); ERR_RANGE: a relid beyond VMBUS_MAX_RELID. */
int vmbus_msg_parse(const uint8_t *p, size_t len, struct vmbus_msg *m);

struct vmbus_pkt {
    uint16_t type, flags;
    uint32_t len;                      /* descriptor + payload, without padding trailer: len8 * 8 */
    uint32_t payload_off, payload_len;
    uint64_t trans_id;
};
/* A packet's 16-byte descriptor as copied from a ring, against avail bytes
 * readable (including the 8-byte trailer). ERR_RANGE for any impossible
 * offset or length. */
int vmbus_pkt_parse(const uint8_t desc[VMPACKET_DESCRIPTOR_SIZE], uint32_t avail, struct vmbus_pkt *k);

/* The hv_sock pipe header at the start of an in-band payload: the number of
 * stream bytes that follow (0: the peer closed). ERR_TRUNC/ERR_RANGE/ERR_NOTSUP. */
int hvsock_payload_parse(const uint8_t *p, uint32_t len, uint32_t *data_size);

#endif
