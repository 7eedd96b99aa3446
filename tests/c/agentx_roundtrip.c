/* Host-side check that the generated C codec agrees with the Python codec.
 *   agentx_roundtrip examples   print every golden example frame, one hex line each
 *   agentx_roundtrip reencode   read hex frames (one per line) from stdin; decode the header,
 *                               verify the CRC, decode and re-encode the payload with the
 *                               generated functions; print the re-sealed frame as hex, or
 *                               "ERR <errno>" for a rejected frame. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "agentx_examples.h"

static uint8_t in[AGX_MAX_FRAME + 16], out[AGX_MAX_FRAME + 16];
static char line[2 * (AGX_MAX_FRAME + 16) + 4];

static void print_hex(const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++) printf("%02x", p[i]);
    putchar('\n');
}

static long reencode(const uint8_t *frame, size_t n)
{
    struct agx_header h;
    int rc;
    long len;
    if (n < AGX_HEADER_SIZE) return -AGX_EPROTO;
    if ((rc = agx_header_decode(frame, &h))) return rc;
    if (n != AGX_HEADER_SIZE + h.payload_len) return -AGX_EPROTO;
    if ((rc = agx_payload_verify(&h, frame + AGX_HEADER_SIZE))) return rc;
    len = agx_example_reencode(h.type, frame + AGX_HEADER_SIZE, h.payload_len, out + AGX_HEADER_SIZE,
                               sizeof out - AGX_HEADER_SIZE);
    if (len < 0) return len;
    return (long)agx_frame_seal(out, h.type, h.flags, h.request_id, (uint32_t)len);
}

int main(int argc, char **argv)
{
    if (argc == 2 && !strcmp(argv[1], "examples")) {
        for (unsigned i = 0; i < AGX_EXAMPLE_COUNT; i++) {
            long n = agx_example_frame(i, out, sizeof out);
            if (n <= 0) { fprintf(stderr, "example %u failed: %ld\n", i, n); return 1; }
            print_hex(out, (size_t)n);
        }
        return 0;
    }
    if (argc == 2 && !strcmp(argv[1], "reencode")) {
        while (fgets(line, sizeof line, stdin)) {
            size_t hex = strcspn(line, "\r\n"), n = hex / 2;
            long r;
            for (size_t i = 0; i < n; i++) {
                unsigned v;
                sscanf(line + 2 * i, "%2x", &v);
                in[i] = (uint8_t)v;
            }
            r = reencode(in, n);
            if (r < 0) printf("ERR %ld\n", -r);
            else print_hex(out, (size_t)r);
            fflush(stdout);
        }
        return 0;
    }
    fprintf(stderr, "usage: %s examples|reencode\n", argv[0]);
    return 2;
}
