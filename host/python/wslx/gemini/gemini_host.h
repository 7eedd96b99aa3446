/* Host side of Gemini in C (gemini_host.c): the checks of a guest's CALL record, and a fast
 * path that answers null.call without Python. wslx.gemini.guest_core reads this file for its
 * cffi declarations; the Python dispatcher uses gemini_host_check_call for every call, so the
 * record is validated by one implementation. Timeouts in ns. */
#ifndef WSLX_GEMINI_HOST_H
#define WSLX_GEMINI_HOST_H

#include "gemini.h"

/* What the checks copied out of a valid record: private to the host after the call. */
struct gemini_host_call {
    struct gemini_call_header h;
    char service[GEMINI_NAME_MAX], method[GEMINI_NAME_MAX];
    uint64_t args_offset;   /* window offsets (inside the span, inside the guest arena) */
    uint64_t reply_offset;
};

/* Check CALL message m (already copied out of EVENT): the span is a guest-arena span of e's
 * region with the live generation, the header (copied out once) has the magic, a version in
 * the host's range `versions` (min | max << GEMINI_VERSION_RANGE_SHIFT; else PROTONOSUPPORT), zero
 * flags and reserved bytes, names of 1..NAME_MAX bytes of [a-z0-9._-], args <= ARGS_MAX, a
 * reply area <= REPLY_MAX, 8-aligned, after the args and inside the span. 0 and *out filled,
 * or the negative GEMINI_ERR_* the guest gets. */
int gemini_host_check_call(const struct portal_end *e, const struct portal_msg *m, uint32_t versions,
                           struct gemini_host_call *out);

/* Take up to max messages from EVENT (never more than UPCALL has room for replies), spinning up
 * to spin_ns for the first, and while null.calls keep coming, answering them until the burst
 * pauses for spin_ns (at most 8 * spin_ns in all), a message needs the caller, or the guest
 * sleeps on UPCALL (the caller rings its doorbell). Valid CALLs of null.call are answered on
 * UPCALL here; every other message is copied to defer[] for the caller. Returns the number deferred (>= 0) or a negative
 * PORTAL_ERR_*; *answered gets the number answered here. */
int gemini_host_serve(struct portal_end *e, struct portal_msg *defer, unsigned max, uint64_t spin_ns,
                      uint32_t versions, unsigned *answered);

#endif
