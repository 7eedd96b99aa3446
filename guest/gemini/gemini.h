/* Gemini guest core: calls to host services and upcalls from the host, over a
 * Portal region (docs/gemini.md, generated from host/python/wslx/spec/gemini.py).
 *
 * Freestanding like guest/portal (only <stddef.h>, <stdint.h>, __atomic
 * builtins): the Linux init (guest/init/gemini_linux.c), the Track B kernel
 * and the host's test library compile these files unchanged.
 *
 * A client is the single producer of EVENT and the single consumer of UPCALL
 * and owns the guest arena (the Portal service uses only host spans). A call's
 * record (header, names, args, reply area) lives in one guest-arena span;
 * the host answers on UPCALL with a REPLY whose reply bytes it wrote into that
 * span. Upcalls are handed to deliver(); its verdict goes back as UPCALL_DONE.
 * Everything the host writes is hostile: replies are matched to a pending call
 * by cookie and span, and a reply length is checked against the reply area.
 * Versions: gemini_hello() asks the host for the highest common record version
 * (docs/gemini.md); until its reply the client writes its lowest version.
 * Errors are negative errno values (GEMINI_ERR_* / PORTAL_ERR_*). */
#ifndef WSLX_GEMINI_H
#define WSLX_GEMINI_H

#include <stddef.h>
#include <stdint.h>

#include "gemini_wire.h"
#include "../portal/portal.h"

#define GERR(e) (-(int)(e))
#define GEMINI_PENDING_MAX 64 /* calls one client has in flight (<= GEMINI_MAX_INFLIGHT) */

/* One call: its span and where the reply goes. */
struct gemini_call {
    struct portal_span span;
    uint64_t cookie;
    uint32_t reply_offset, reply_cap;
    uint16_t version;    /* of the record: says how the host answers it */
    /* filled by the reply */
    int done;
    int status;          /* GEMINI_ERR_* (0: OK) */
    uint64_t result;     /* reply bytes (OVERFLOW: bytes needed; other errors: error-text bytes) */
    uint64_t value;      /* service value (exec.run: exit status) */
};

/* Upcall sink: 0 queued, GERR(GEMINI_ERR_NOSPC) queue full, GERR(GEMINI_ERR_NOENT) no subscriber. */
typedef int (*gemini_deliver_fn)(void *ctx, const char *topic, uint32_t topic_len, const void *data,
                                 uint32_t data_len);

struct gemini_client {
    struct portal_end end;
    struct portal_arena arena;
    uint64_t next_cookie;
    struct gemini_call *pending[GEMINI_PENDING_MAX];
    unsigned npending;
    gemini_deliver_fn deliver;
    void *deliver_ctx;
    uint64_t calls, replies, upcalls, upcalls_dropped, bad_messages;
    struct portal_msg deferred_done; /* an UPCALL_DONE waiting for room on EVENT */
    int has_deferred;
    uint16_t vmin, vmax;             /* record versions this client speaks */
    uint16_t version;                /* what HELLO settled on (0: not yet) */
    int hello_state;                 /* GEMINI_HELLO_* */
    int hello_status;                /* the HELLO reply's status */
    struct gemini_call hello;
};

enum { GEMINI_HELLO_NONE, GEMINI_HELLO_PENDING, GEMINI_HELLO_DONE, GEMINI_HELLO_FAILED };

/* Attach to the region (base = window start, size bytes mapped). */
int gemini_client_init(struct gemini_client *c, void *base, uint64_t size);
void gemini_client_set_deliver(struct gemini_client *c, gemini_deliver_fn fn, void *ctx);
/* The record versions to offer (default GEMINI_VERSION_MIN..GEMINI_VERSION; tests stand in
 * for older or newer guests with others). Before gemini_hello. 0 or GERR(GEMINI_ERR_INVAL). */
int gemini_client_set_versions(struct gemini_client *c, uint16_t lo, uint16_t hi);
/* Submit the HELLO call (a version-1 record); gemini_poll settles the version when it is answered.
 * 0, or the error of prepare/submit (PERR(PORTAL_ERR_AGAIN): EVENT full, try again). */
int gemini_hello(struct gemini_client *c);
/* The negotiated version (> 0), 0 while HELLO is unanswered (or not sent), or
 * GERR(GEMINI_ERR_PROTONOSUPPORT): no common version, calls are refused here. */
int gemini_version(const struct gemini_client *c);
/* Allocate the call's span and write its record. */
int gemini_call_prepare(struct gemini_client *c, struct gemini_call *call, const char *service, const char *method,
                        const void *args, uint32_t args_len, uint32_t reply_cap, uint32_t timeout_ms);
/* Publish a prepared call on EVENT: 0, GERR(GEMINI_ERR_BUSY) (too many pending), 0-room PERR(PORTAL_ERR_AGAIN). */
int gemini_call_submit(struct gemini_client *c, struct gemini_call *call);
/* Take what UPCALL holds (replies complete their calls, upcalls go to deliver). Never blocks.
 * Returns messages handled (0: nothing) or a negative error that detaches the client. */
int gemini_poll(struct gemini_client *c);
/* The reply bytes of a completed call (NULL unless done with OK or result 0). */
const void *gemini_call_reply(const struct gemini_client *c, const struct gemini_call *call);
/* The host's error text of a failed call of version >= GEMINI_ERROR_TEXT_VERSION (hostile bytes,
 * not NUL-terminated; *len bytes), or NULL. */
const char *gemini_call_error_text(const struct gemini_client *c, const struct gemini_call *call, uint32_t *len);
/* Free the call's span (a pending call cannot be freed: its reply may still come). */
int gemini_call_release(struct gemini_client *c, struct gemini_call *call);
/* Consumer side of UPCALL: ask for the upcall doorbell before sleeping (then re-poll). */
void gemini_want_wakeup(struct gemini_client *c, int on);
/* After a submit: does the host sleep on EVENT and want the signal doorbell? */
int gemini_host_wants_wakeup(struct gemini_client *c);

/* Names: 1..GEMINI_NAME_MAX bytes of [a-z0-9._-] (the host applies the same rule). */
int gemini_name_ok(const char *s, uint32_t len);

#endif
