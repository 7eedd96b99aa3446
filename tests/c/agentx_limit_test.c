/* agentx_limit_test.c: the host's HELLO max_payload as guest/agentx enforces it for both guest
 * agents (tests/test_agentx_limit.py builds it with ASan and UBSan): agx_hello_select's minimum,
 * agx_ping_check, agx_stdio_data_max and agx_outq_unsent's bound, with a ring that wraps. Each
 * STDIO frame is encoded with the generated encoder at the limit, so a chunk one byte too big
 * would fail to encode. Prints "ok NAME" per test; exits non-zero on the first failure. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agentx_out.h"
#include "agentx_rx.h"

static int last_code;
static char last_msg[256];

static void rec_error(uint32_t rid, uint16_t rtype, int code, const char *fmt, ...)
{
    va_list ap;
    (void)rid, (void)rtype;
    last_code = code;
    va_start(ap, fmt);
    vsnprintf(last_msg, sizeof last_msg, fmt, ap);
    va_end(ap);
}

#define CHECK(c)                                                              \
    do {                                                                      \
        if (!(c)) {                                                           \
            printf("FAIL %s:%d: %s (last error %d: %s)\n", __FILE__, __LINE__, #c, last_code, last_msg); \
            exit(1);                                                          \
        }                                                                     \
    } while (0)

static void test_hello_minimum(void)
{
    struct agx_hello h = {.version_min = 1, .version_max = AGX_VERSION_MAX, .max_payload = AGX_MAX_PAYLOAD_MIN - 1};
    uint16_t sel = 0xFFFF;
    uint32_t limit = 7;
    last_code = 0;
    CHECK(agx_hello_select(5, &h, &sel, &limit, rec_error) == -1 && last_code == AGX_EINVAL);
    CHECK(sel == 0xFFFF && limit == 7);   /* refused: nothing changes */
    h.version_min = h.version_max = AGX_VERSION_MAX + 1;   /* disjoint too: the field is checked first */
    last_code = 0;
    CHECK(agx_hello_select(5, &h, &sel, &limit, rec_error) == -1 && last_code == AGX_EINVAL);
    h.version_min = 1, h.version_max = AGX_VERSION_MAX;
    h.max_payload = AGX_MAX_PAYLOAD_MIN;
    last_code = 0;
    CHECK(agx_hello_select(5, &h, &sel, &limit, rec_error) == 0 && !last_code);
    CHECK(sel == AGX_VERSION_MAX && limit == AGX_MAX_PAYLOAD_MIN);
    h.max_payload = 0xFFFFFFFFu;   /* more than the agent sends: its own maximum */
    CHECK(agx_hello_select(0, &h, &sel, &limit, rec_error) == 0 && sel == 0 && limit == AGX_MAX_PAYLOAD);
    printf("ok hello_minimum\n");
}

static void test_ping_check(void)
{
    static uint8_t data[AGX_MAX_PAYLOAD_MIN];
    struct agx_ping p = {.data = {.ptr = data, .len = AGX_MAX_PAYLOAD_MIN - AGX_PONG_MIN_SIZE}};
    last_code = 0;
    CHECK(agx_ping_check(9, &p, AGX_MAX_PAYLOAD_MIN, rec_error) == 0 && !last_code);
    static uint8_t pong[AGX_MAX_PAYLOAD_MIN];
    struct agx_pong reply = {.data = p.data};
    CHECK(agx_pong_encode(pong, AGX_MAX_PAYLOAD_MIN, &reply) == AGX_MAX_PAYLOAD_MIN);   /* fits exactly */
    p.data.len++;
    CHECK(agx_ping_check(9, &p, AGX_MAX_PAYLOAD_MIN, rec_error) == -1 && last_code == AGX_EMSGSIZE);
    printf("ok ping_check\n");
}

static void test_stdio_data_max(void)
{
    CHECK(agx_stdio_data_max(2, AGX_MAX_PAYLOAD_MIN) == AGX_MAX_PAYLOAD_MIN - AGX_STDIO_MIN_SIZE);
    CHECK(agx_stdio_data_max(1, AGX_MAX_PAYLOAD_MIN) == AGX_MAX_PAYLOAD_MIN - AGX_STDIO_V1_MIN_SIZE);
    CHECK(agx_stdio_data_max(2, AGX_MAX_PAYLOAD) == AGX_STDIO_MAX_DATA);
    CHECK(agx_stdio_data_max(2, 0xFFFFFFFFu) == AGX_STDIO_MAX_DATA);
    printf("ok stdio_data_max\n");
}

/* n bytes of output through a ring whose data wraps, framed at max_payload: every frame encodes
 * within it, offsets are contiguous and the bytes come out as they went in. */
static void chunk_run(uint8_t version, uint32_t max_payload, size_t n)
{
    static uint8_t ring[AGX_OUTPUT_BUFFER], frame[AGX_MAX_PAYLOAD], out[AGX_OUTPUT_BUFFER];
    static uint8_t in[AGX_OUTPUT_BUFFER];
    for (size_t i = 0; i < n; i++) in[i] = (uint8_t)(i * 131u + i / 251u);
    struct agx_outq o = {.buf = ring, .head = AGX_OUTPUT_BUFFER - 3000};   /* the data wraps */
    o.base = o.sent = o.sent_max = 1000;   /* as after earlier, acknowledged output */
    agx_outq_append(&o, in, n);
    size_t got = 0, frames = 0, chunk = agx_stdio_data_max(version, max_payload), k;
    const uint8_t *data;
    uint64_t off;
    while ((k = agx_outq_unsent(&o, &data, &off, chunk))) {
        struct agx_stdio m = {.pid = 1, .stream = 1, .offset = off, .data = {.ptr = data, .len = (uint32_t)k}};
        long len = agx_stdio_encode_version(version, frame, max_payload, &m);
        CHECK(len > 0 && (size_t)len <= max_payload);
        CHECK(off == 1000 + got);
        memcpy(out + got, data, k);
        got += k, frames++;
        agx_outq_framed(&o, k, version);
    }
    CHECK(got == n && !memcmp(in, out, n));
    CHECK(frames >= (n + chunk - 1) / chunk && frames <= (n + chunk - 1) / chunk + 1);   /* +1: the wrap */
}

static void test_chunking(void)
{
    chunk_run(2, AGX_MAX_PAYLOAD_MIN, 10000);
    chunk_run(1, AGX_MAX_PAYLOAD_MIN, 10000);
    chunk_run(2, 4099, 100000);
    chunk_run(2, AGX_MAX_PAYLOAD, AGX_OUTPUT_BUFFER);
    printf("ok chunking\n");
}

int main(void)
{
    test_hello_minimum();
    test_ping_check();
    test_stdio_data_max();
    test_chunking();
    return 0;
}
