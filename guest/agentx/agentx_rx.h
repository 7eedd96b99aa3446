/* agentx_rx.h: the AgentX receive path both guest agents link (guest/init's
 * wslx-init and the Track B agent, guest/trackb-kernel/agent): frame
 * reassembly with resynchronisation (in linear time, from just after a bad
 * header: agentx_rx.c lists the rules) exactly like wslx.agentx.codec.FrameReader,
 * the checks every host request passes before an agent acts on it, and the
 * ERROR each malformed input gets. One copy, so the two agents cannot drift.
 *
 * Freestanding: only <stddef.h>, <stdint.h> and the generated agentx_wire.h
 * (and memmove via __builtin_memmove, which every build provides: libc on
 * Linux and the host, kernel/string.c in the Track B kernel). The agent owns
 * the buffer, the dispatch and how a frame reaches the host; it hands those in
 * as callbacks. */
#ifndef WSLX_AGENTX_RX_H
#define WSLX_AGENTX_RX_H

#include <stddef.h>
#include <stdint.h>

#include "agentx_wire.h"

/* The agent's ERROR sender: request_id (0 for events and bad frames), the offending
 * type (0 when unknown), an AGX_E* code and a printf-style message. */
typedef void agx_error_fn(uint32_t rid, uint16_t rtype, int code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

struct agx_rx {
    /* set by the agent before agx_rx_reset */
    uint8_t *buf;
    size_t cap;                 /* at least AGX_MAX_FRAME: a whole frame must fit */
    /* an intact frame (header and payload CRC good); payload points into buf */
    void (*deliver)(const struct agx_header *h, const uint8_t *payload);
    agx_error_fn *error;
    /* NULL, or 0 while replies would have nowhere to go: frames wait in buf */
    int (*can_answer)(void);
    /* state */
    size_t len;
    int rejected;               /* a rejected (version/flags) header was taken: its payload is awaited */
    uint64_t skip;              /* ... this many bytes */
    uint32_t skip_crc;          /* ... and the CRC they must have to be dropped whole */
    int in_garbage;             /* inside a bad-magic/CRC episode: report it only once */
    int hunting;                /* agx_rx_new_peer until the new peer's first good frame */
    size_t hunt_scanned;        /* bytes after the front the hunt has looked at */
};

/* Forget buffered bytes and any resync state. */
void agx_rx_reset(struct agx_rx *rx);
/* The same for a new peer (a host reconnected): bytes may still arrive from the previous one
 * (a virtio-serial port delivers data and its connect events on separate queues). Until the
 * new peer's first good frame the receiver hunts: garbage and CRC failures are the previous
 * peer's and go unreported, and a valid header whose frame is incomplete is passed over when a
 * complete frame with good CRCs follows it (a new peer starts at a frame boundary). */
void agx_rx_new_peer(struct agx_rx *rx);
/* The same hunt, keeping what is buffered: for a channel where bytes read before the new peer
 * was noticed may already be its own (Linux's virtio-serial port: data overtakes connect events). */
void agx_rx_hunt(struct agx_rx *rx);

/* Free room at the tail: read into agx_rx_tail(rx), up to agx_rx_room(rx) bytes, then
 * agx_rx_push(rx, n) handles every complete frame. */
static inline uint8_t *agx_rx_tail(struct agx_rx *rx) { return rx->buf + rx->len; }
static inline size_t agx_rx_room(const struct agx_rx *rx) { return rx->cap - rx->len; }
void agx_rx_push(struct agx_rx *rx, size_t n);

/* Handle every complete frame in the buffer (while can_answer allows): bad frames get
 * exactly one ERROR each (a bad-magic/CRC episode one in all), good ones go to deliver.
 * A deliver that resets the receiver (connection lost) is fine. */
void agx_rx_process(struct agx_rx *rx);

/* ---- requests ---- */

/* Decoded views of every host-to-agent message (they point into the receive buffer). */
union agx_request {
    struct agx_hello hello;
    struct agx_config config;
    struct agx_mount mount;
    struct agx_unmount unmount;
    struct agx_exec exec;
    struct agx_stdio stdio;
    struct agx_signal signal;
    struct agx_quiesce quiesce;
    struct agx_resume resume;
    struct agx_shutdown shutdown;
    struct agx_ping ping;
    struct agx_output_ack output_ack;
};

/* The checks before dispatch, in the order docs/agentx-protocol.md gives: a type known in the
 * frame's version (ENOSYS), sent host-to-agent without the REPLY flag (EPROTO), a capability the
 * agent offers (caps; EOPNOTSUPP), a non-zero request_id (but the events STDIO and OUTPUT_ACK, and
 * HELLO, whose request_id 0 asks for a fresh announcement), a well-formed payload in the layout of
 * the frame's version (EPROTO), and for EXEC and CONFIG the field checks below.
 * 0 with *m decoded, or -1 after sending the ERROR. */
int agx_request_decode(const struct agx_header *h, const uint8_t *payload, uint64_t caps, union agx_request *m,
                       agx_error_fn *error);

/* HELLO from the host: the version to answer with in *selected (0 for request_id 0, an
 * announcement) and in *max_payload the limit on every payload the agent sends from now on this
 * connection (the host's max_payload, at most AGX_MAX_PAYLOAD); or -1 after ERROR EINVAL
 * (max_payload below AGX_MAX_PAYLOAD_MIN) or EPROTONOSUPPORT (no common version), and the HELLO
 * changes nothing. */
int agx_hello_select(uint32_t rid, const struct agx_hello *m, uint16_t *selected, uint32_t *max_payload,
                     agx_error_fn *error);

/* PING whose PONG would exceed the connection's max_payload: -1 after ERROR EMSGSIZE; else 0. */
int agx_ping_check(uint32_t rid, const struct agx_ping *m, uint32_t max_payload, agx_error_fn *error);

/* Field checks agx_request_decode applies to EXEC and CONFIG, so every agent refuses the same
 * fault with the same errno: unknown EXEC flag bits (EINVAL), an empty argv (EINVAL), an empty
 * argv[0] (ENOENT, as execve says); CONFIG portal_size and portal_device not both set or both
 * empty, portal_size not page-aligned or above AGX_PORTAL_SIZE_LIMIT, a relative portal_device
 * (EINVAL). Whether the device exists and can hold the Portal is the agent's to check after. */
#define AGX_PORTAL_SIZE_ALIGN 4096u
#define AGX_PORTAL_SIZE_LIMIT (1ull << 47)   /* what a guest with 4-level paging can map at all */
int agx_exec_check(uint32_t rid, const struct agx_exec *m, agx_error_fn *error);
int agx_config_check(uint32_t rid, const struct agx_config *m, agx_error_fn *error);

/* Field checks shared by both agents; 0, or -1 after sending the ERROR (EINVAL). */
int agx_shutdown_check(uint32_t rid, const struct agx_shutdown *m, agx_error_fn *error);
int agx_signal_check(uint32_t rid, const struct agx_signal *m, agx_error_fn *error);
int agx_stdin_check(const struct agx_stdio *m, agx_error_fn *error);   /* STDIO is an event: rid 0 */
int agx_output_ack_check(const struct agx_output_ack *m, agx_error_fn *error);   /* flags; an event: rid 0 */

/* An ERROR message the host will decode: msg (n bytes, formatted and maybe cut short)
 * loses a trailing partial UTF-8 sequence; text that is still not UTF-8 is replaced. */
struct agx_str agx_error_text(char *msg, size_t n);

/* ---- frame helpers out of line ----
 * agentx_wire.h's CRC table is static, so every file that calls its inline CRC helpers
 * links its own 8 KiB copy; a freestanding image (Track B) calls these instead. */
uint32_t agentx_crc32(const uint8_t *p, size_t n);
/* version: the session's (AGX_SESSION_START_VERSION until HELLO negotiates) */
size_t agentx_frame_seal(uint8_t *frame, uint8_t version, uint16_t type, uint8_t flags, uint32_t rid,
                         uint32_t payload_len);
int agentx_header_decode(const uint8_t *p, struct agx_header *h);
int agentx_payload_verify(const struct agx_header *h, const uint8_t *payload);

#endif
