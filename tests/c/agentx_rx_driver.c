/* agentx_rx_driver: guest/agentx/agentx_rx.c on the host, fed from stdin.
 *
 *   agentx-rx-driver [--chunk N] [--cuts A,B,...] [--cap N] [--new-peer] [--hunt-at N] < bytes
 *
 * --new-peer starts the receiver with agx_rx_new_peer (a host that just reconnected, whose
 * input may begin with the previous host's bytes) instead of agx_rx_reset.
 * --hunt-at N calls agx_rx_hunt once the first N bytes are pushed (wslx-init noticing a
 * virtio-serial reconnect late: what it holds stays, and may be either host's).
 * Reads all of stdin, then pushes it through agx_rx in chunks of N bytes (default 4096,
 * about what a virtio-console read returns), cut also at the offsets --cuts lists (ascending),
 * with a receive buffer of cap bytes (default AGX_MAX_FRAME + 4096, the Track B agent's).
 * Prints one line per event, in order:
 *   frame TYPE REQUEST_ID PAYLOAD_LEN
 *   error CODE REQUEST_ID REQUEST_TYPE
 * then `pending LEN` (bytes left buffered) and `last_frame_ns NS`: nanoseconds from the
 * first push until the last frame was delivered (the resync benchmark's figure). */
#define _GNU_SOURCE
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "agentx_rx.h"

static uint64_t t0, last_frame;

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void deliver(const struct agx_header *h, const uint8_t *payload)
{
    (void)payload;
    last_frame = now_ns() - t0;
    printf("frame %u %u %u\n", h->type, h->request_id, h->payload_len);
}

static void error(uint32_t rid, uint16_t rtype, int code, const char *fmt, ...)
{
    (void)fmt;
    printf("error %d %u %u\n", code, rid, rtype);
}

static size_t arg(int argc, char **argv, const char *name, size_t dflt)
{
    for (int i = 1; i + 1 < argc; i++)
        if (!strcmp(argv[i], name)) return strtoull(argv[i + 1], 0, 0);
    return dflt;
}

int main(int argc, char **argv)
{
    size_t chunk = arg(argc, argv, "--chunk", 4096), cap = arg(argc, argv, "--cap", AGX_MAX_FRAME + 4096u);
    size_t size = 0, room = 1 << 20;
    uint8_t *in = malloc(room);
    for (size_t n; in && (n = fread(in + size, 1, room - size, stdin)) > 0;) {
        size += n;
        if (size == room) in = realloc(in, room *= 2);
    }
    struct agx_rx rx = {.buf = malloc(cap), .cap = cap, .deliver = deliver, .error = error};
    if (!in || !rx.buf || chunk == 0 || cap < AGX_MAX_FRAME) {
        fprintf(stderr, "agentx-rx-driver: out of memory or bad --chunk/--cap (cap must be >= %u)\n", AGX_MAX_FRAME);
        return 2;
    }
    setvbuf(stdout, 0, _IOFBF, 1 << 16);
    int new_peer = 0;
    const char *cuts = "";
    for (int i = 1; i < argc; i++) {
        new_peer |= !strcmp(argv[i], "--new-peer");
        if (!strcmp(argv[i], "--cuts") && i + 1 < argc) cuts = argv[i + 1];
    }
    size_t hunt_at = arg(argc, argv, "--hunt-at", (size_t)-1);
    if (new_peer) agx_rx_new_peer(&rx);
    else agx_rx_reset(&rx);
    t0 = now_ns();
    for (size_t off = 0; off < size;) {
        if (off == hunt_at) agx_rx_hunt(&rx);
        size_t n = size - off < chunk ? size - off : chunk;
        while (*cuts && strtoull(cuts, 0, 10) <= off) cuts += strcspn(cuts, ",") + (strchr(cuts, ',') != 0);
        if (*cuts && strtoull(cuts, 0, 10) - off < n) n = strtoull(cuts, 0, 10) - off;
        if (hunt_at > off && hunt_at - off < n) n = hunt_at - off;
        if (n > agx_rx_room(&rx)) n = agx_rx_room(&rx);
        if (n == 0) {
            fprintf(stderr, "agentx-rx-driver: receive buffer full with %zu bytes pending\n", rx.len);
            return 3;
        }
        memcpy(agx_rx_tail(&rx), in + off, n);
        agx_rx_push(&rx, n);
        off += n;
    }
    printf("pending %zu\nlast_frame_ns %llu\n", rx.len, (unsigned long long)last_frame);
    return 0;
}
