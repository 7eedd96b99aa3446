/* Hostile-region driver for the Portal core (the sources of guest/portal/, the code the Linux
 * init and the Track B kernel run) and the host fast path
 * (host/python/wslx/portal/portal_host.c). tests/test_portal_fuzz.py builds it
 * with ASan+UBSan (-fno-sanitize-recover=all).
 *
 * Both sides run in this process over one window held in an exactly sized,
 * cache-line aligned heap buffer: an access past the window is a sanitizer
 * report. Accesses inside it are checked too: around every step of one side a
 * shadow copy shows which bytes changed, and only the bytes that side may
 * write (by the layout it attached to) may change. Between steps, the script
 * corrupts the window like a hostile peer would.
 *
 *   portal_fuzz IMAGE script          ops from stdin, one per line: a letter, then u64s
 *   portal_fuzz IMAGE random SEED N   N ops from a PRNG biased to edge values
 *
 * IMAGE is a window (header first) written by wslx.portal. Every call must
 * return a count or a known error. Exit 0 with a summary line, or 3 with the
 * broken contract on stderr. */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "portal_host.h"

#define MAXLIVE 64
#define NARG 7

static unsigned char *win, *shadow;
static uint64_t wsize;
static struct portal_header trusted; /* the host's own header, from IMAGE */
static struct portal_end host;
static int host_ok;
static struct portal_arena arena;
static struct portal_span live[MAXLIVE];
static unsigned nlive;
static struct portal_guest guest;
static int guest_ok;
static unsigned long long ops, served, errors[128], spans_touched, bytes_touched;
static const char *cur_op = "";

static void die(const char *what, long long v)
{
    fprintf(stderr, "portal_fuzz: op %llu (%s): %s (%lld)\n", ops, cur_op, what, v);
    exit(3);
}

/* A return value of the core: a count (>= 0) or a known negative error. */
static long long ret(long long rc, const char *what)
{
    if (rc >= 0) return rc;
    switch (-rc) {
    case PORTAL_ERR_AGAIN: case PORTAL_ERR_FAULT: case PORTAL_ERR_XDEV: case PORTAL_ERR_INVAL:
    case PORTAL_ERR_NOSPC: case PORTAL_ERR_NOSYS: case PORTAL_ERR_PROTO: case PORTAL_ERR_HEADER:
    case PORTAL_ERR_STALE: case PORTAL_HOST_TIMEOUT:
        errors[-rc == PORTAL_HOST_TIMEOUT ? 0 : -rc]++; /* errors[0]: timeouts */
        return rc;
    }
    die(what, rc);
    return rc;
}

/* ------------------------------------------------------------------ who may write what */

struct range { uint64_t lo, hi; };

/* Bytes `side` may change, by the layout it attached to (e). */
static unsigned writable(const struct portal_end *e, int side, struct range *r)
{
    unsigned n = 0;
    if (side == PORTAL_SIDE_GUEST) {
        r[n++] = (struct range){PORTAL_GUEST_STATUS_OFFSET, PORTAL_GUEST_STATUS_OFFSET + PORTAL_GUEST_STATUS_SIZE};
        for (unsigned a = 0; a < 2; a++) /* TRANSFORM works in place on spans of either arena */
            r[n++] = (struct range){e->info.arena_offset[a], e->info.arena_offset[a] + e->info.arena_size[a]};
    }
    for (unsigned i = 0; i < PORTAL_RING_COUNT; i++) {
        uint64_t off = e->info.rings[i].offset;
        uint64_t len = PORTAL_RING_CTL_SIZE + (uint64_t)e->info.rings[i].slot_count * PORTAL_SLOT_SIZE;
        if (e->ring[i].producer) r[n++] = (struct range){off, off + len}; /* head line and slots */
        else r[n++] = (struct range){off + PORTAL_CACHELINE, off + PORTAL_RING_CTL_SIZE}; /* tail line */
    }
    return n;
}

static void snap(void) { memcpy(shadow, win, wsize); }

static void check_writes(const struct portal_end *e, int side, const char *who)
{
    struct range r[8];
    unsigned n = writable(e, side, r);
    if (!memcmp(win, shadow, wsize)) return;
    for (uint64_t i = 0; i < wsize; i++) {
        if (i % 64 == 0 && wsize - i >= 64 && !memcmp(win + i, shadow + i, 64)) {
            i += 63;
            continue;
        }
        if (win[i] == shadow[i]) continue;
        int ok = 0;
        for (unsigned k = 0; k < n && !ok; k++) ok = i >= r[k].lo && i < r[k].hi;
        if (!ok) {
            fprintf(stderr, "portal_fuzz: %s wrote window byte %#llx outside what it owns\n", who,
                    (unsigned long long)i);
            die("stray write", (long long)i);
        }
    }
}

/* ------------------------------------------------------------------ helpers */

static void host_attach_trusted(void)
{
    host_ok = ret(portal_attach_header(&host, win, wsize, PORTAL_SIDE_HOST, &trusted), "host attach") == 0;
    if (host_ok) {
        portal_arena_init(&arena, &host, PORTAL_SIDE_HOST);
        nlive = 0;
    }
}

static void guest_init(void)
{
    snap();
    long long rc = ret(portal_guest_init(&guest, win, wsize), "guest init");
    guest_ok = rc == 0;
    if (guest_ok) check_writes(&guest.end, PORTAL_SIDE_GUEST, "guest init");
    else if (memcmp(win, shadow, wsize)) die("guest init failed but wrote the window", rc);
}

/* A span accepted by a check: it must lie in the arena its flags name, by the checker's own
 * layout; then read and rewrite every byte (ASan sees any byte past the window). */
static void touch(const struct portal_end *e, const struct portal_span *s, void *p)
{
    unsigned a = (s->flags & PORTAL_SPAN_GUEST_ARENA) ? 1 : 0;
    unsigned char *lo = e->base + e->info.arena_offset[a], *hi = lo + e->info.arena_size[a];
    unsigned char *b = p;
    if (b < lo || b > hi || s->length > (uint64_t)(hi - b)) die("accepted span outside its arena", (long long)s->offset);
    volatile unsigned char *v = b;
    for (uint64_t i = 0; i < s->length; i++) v[i] = v[i];
    spans_touched++;
    bytes_touched += s->length;
}

static struct portal_span literal_span(const uint64_t *x)
{
    struct portal_span s;
    s.offset = x[0];
    s.length = x[1];
    s.generation = x[2];
    s.flags = (uint32_t)x[3];
    s.portal_id = (x[3] >> 32) ? (uint32_t)(x[3] >> 32) : (host_ok ? host.info.portal_id : trusted.portal_id);
    return s;
}

/* ------------------------------------------------------------------ one op */

static void op(char c, const uint64_t *x)
{
    static struct portal_msg buf[1100];
    char name[2] = {c, 0};
    cur_op = name;
    ops++;
    switch (c) {
    case 'w': /* a byte anywhere */
        win[x[0] % wsize] = (unsigned char)x[1];
        break;
    case 'q': /* an aligned u64 anywhere */
        memcpy(win + (x[0] % (wsize / 8)) * 8, &x[1], 8);
        break;
    case 'h': /* a header word */
        memcpy(win + (x[0] % (PORTAL_HEADER_SIZE / 8)) * 8, &x[1], 8);
        break;
    case 'c': { /* head, tail or need_wakeup of a ring (by the host's layout) */
        uint64_t off = trusted.rings[x[0] % PORTAL_RING_COUNT].offset;
        static const unsigned field[3] = {PORTAL_RING_CTL_OFF_HEAD, PORTAL_RING_CTL_OFF_TAIL,
                                          PORTAL_RING_CTL_OFF_NEED_WAKEUP};
        uint32_t v = (uint32_t)x[2];
        if (off + PORTAL_RING_CTL_SIZE <= wsize) memcpy(win + off + field[x[1] % 3], &v, 4);
        break;
    }
    case 'd': { /* add to a ring index (small moves find the off-by-ones) */
        uint64_t off = trusted.rings[x[0] % PORTAL_RING_COUNT].offset + (x[1] & 1 ? PORTAL_RING_CTL_OFF_TAIL : 0);
        uint32_t v;
        if (off + 4 > wsize) break;
        memcpy(&v, win + off, 4);
        v += (uint32_t)x[2];
        memcpy(win + off, &v, 4);
        break;
    }
    case 's': { /* the host sends n requests on SUBMIT (or UPCALL) */
        if (!host_ok) break;
        unsigned n = 1 + x[0] % 64, ring = (x[1] & 1) ? PORTAL_RING_UPCALL : PORTAL_RING_SUBMIT;
        for (unsigned i = 0; i < n; i++) {
            struct portal_msg *m = &buf[i];
            memset(m, 0, sizeof *m);
            m->cookie = ops * 100 + i;
            m->op = (uint16_t)((x[1] >> 1) % 6);
            m->arg = x[2];
            unsigned sel = (x[1] >> 8) % 3;
            if (sel == 1 && nlive) m->span = live[(x[3] + i) % nlive];
            else if (sel == 2) m->span = literal_span(x + 3);
            if ((x[1] >> 16) & 1) m->status = 1; /* requests must carry status 0 */
        }
        snap();
        ret(portal_send(&host, ring, buf, n), "host send");
        check_writes(&host, PORTAL_SIDE_HOST, "host send");
        break;
    }
    case 'g': { /* a step of the guest's service */
        if (!guest_ok) break;
        snap();
        long long rc = ret(portal_service_step(&guest, (unsigned)(x[0] % 2000)), "guest step");
        if (rc > 0) served += (unsigned long long)rc;
        check_writes(&guest.end, PORTAL_SIDE_GUEST, "guest step");
        portal_guest_host_wants_wakeup(&guest);
        break;
    }
    case 'G':
        guest_init();
        break;
    case 'u': { /* the guest's other rings: take UPCALLs, send EVENTs */
        if (!guest_ok) break;
        unsigned n = (unsigned)(x[1] % 1100);
        snap();
        if (x[0] & 1) ret(portal_recv(&guest.end, PORTAL_RING_UPCALL, buf, n), "guest recv upcall");
        else {
            memset(buf, 0, sizeof buf[0] * n);
            ret(portal_send(&guest.end, PORTAL_RING_EVENT, buf, n), "guest send event");
        }
        check_writes(&guest.end, PORTAL_SIDE_GUEST, "guest rings");
        break;
    }
    case 'p': { /* the host takes completions (or events) */
        if (!host_ok) break;
        snap();
        ret(portal_recv(&host, (x[0] & 1) ? PORTAL_RING_EVENT : PORTAL_RING_COMPLETE, buf, (unsigned)(x[1] % 1100)),
            "host recv");
        check_writes(&host, PORTAL_SIDE_HOST, "host recv");
        break;
    }
    case 'x': /* indices, as both sides see them; the wakeup flags */
        if (host_ok) {
            snap();
            for (unsigned r = 0; r < PORTAL_RING_COUNT; r++) {
                ret(host.ring[r].producer ? portal_space(&host, r) : portal_pending(&host, r), "host index");
                if (host.ring[r].producer) portal_peer_wants_wakeup(&host, r);
                else portal_want_wakeup(&host, r, (int)(x[0] >> r & 1));
            }
            ret(portal_check(&host), "host check");
            check_writes(&host, PORTAL_SIDE_HOST, "host indices");
        }
        if (guest_ok) {
            snap();
            for (unsigned r = 0; r < PORTAL_RING_COUNT; r++) {
                ret(guest.end.ring[r].producer ? portal_space(&guest.end, r) : portal_pending(&guest.end, r),
                    "guest index");
                if (!guest.end.ring[r].producer) portal_want_wakeup(&guest.end, r, (int)(x[1] >> r & 1));
            }
            /* wrong-direction calls are INVAL, never a write */
            if (portal_space(&guest.end, PORTAL_RING_SUBMIT) != PERR(PORTAL_ERR_INVAL)) die("guest produces SUBMIT", 0);
            if (portal_recv(&guest.end, 7, buf, 1) != PERR(PORTAL_ERR_INVAL)) die("ring 7 accepted", 0);
            check_writes(&guest.end, PORTAL_SIDE_GUEST, "guest indices");
        }
        break;
    case 'a': { /* host allocation */
        if (!host_ok || nlive == MAXLIVE) break;
        struct portal_span s;
        if (ret(portal_arena_alloc(&arena, x[0], &s), "alloc") == 0) {
            if (ret(portal_arena_check(&arena, &s), "check of a fresh allocation")) die("fresh span rejected", 0);
            void *p;
            if (ret(portal_span_check(&host, &s, &p), "span check of a fresh allocation")) die("fresh span bad", 0);
            touch(&host, &s, p);
            live[nlive++] = s;
        }
        break;
    }
    case 'f': /* free a live allocation, or a mangled copy of one */
        if (!host_ok || !nlive) break;
        {
            unsigned i = (unsigned)(x[0] % nlive);
            struct portal_span s = live[i];
            if (x[1] & 1) {
                s.offset += x[2];
                s.length += x[3];
                s.generation ^= x[4];
            }
            long long rc = ret(portal_arena_free(&arena, &s), "free");
            if (!(x[1] & 1) && rc) die("free of a live span failed", rc);
            if (rc == 0) {
                if (s.offset != live[i].offset || s.generation != live[i].generation || s.length > live[i].length)
                    die("freed a mangled span", 0);
                s = live[i];
                live[i] = live[--nlive];
                if (portal_arena_check(&arena, &s) != PERR(PORTAL_ERR_STALE)) die("freed span still valid", 0);
            }
        }
        break;
    case 'k': { /* a literal span through every check */
        struct portal_span s = literal_span(x);
        void *p;
        if (host_ok) {
            if (ret(portal_span_check(&host, &s, &p), "host span check") == 0) touch(&host, &s, p);
            if (ret(portal_arena_check(&arena, &s), "arena check") == 0 && ret(portal_span_check(&host, &s, &p), "") == 0)
                touch(&host, &s, p);
        }
        if (guest_ok && ret(portal_span_check(&guest.end, &s, &p), "guest span check") == 0) touch(&guest.end, &s, p);
        break;
    }
    case 'H':
        host_attach_trusted();
        break;
    case 'I': /* the host re-initialises like wslx.portal Portal.initialise: a new generation,
               * magic cleared first and stored last, ring control blocks zeroed */
        trusted.generation = (uint32_t)(trusted.generation + 1) ? (uint32_t)(trusted.generation + 1) : 1;
        memset(win, 0, 8);
        memset(win, 0, PORTAL_HEADER_PAGE);
        for (unsigned r = 0; r < PORTAL_RING_COUNT; r++) memset(win + trusted.rings[r].offset, 0, PORTAL_RING_CTL_SIZE);
        memcpy(win + 8, (unsigned char *)&trusted + 8, sizeof trusted - 8);
        memcpy(win, &trusted, 8);
        host_attach_trusted();
        break;
    case 'A': { /* the host attaching to whatever the region says (a re-read header) */
        struct portal_end e;
        if (ret(portal_attach(&e, win, wsize, PORTAL_SIDE_HOST), "host attach from the region") == 0) {
            struct portal_span s = literal_span(x);
            void *p;
            if (ret(portal_span_check(&e, &s, &p), "") == 0) touch(&e, &s, p);
        }
        break;
    }
    case 'S': /* host spin on a window u64 (bounded; returns at once or times out) */
        if (host_ok) {
            uint64_t off = x[0] % 3 == 0 ? x[1] : x[0] % 3 == 1 ? (uint64_t)0 - 8 : wsize - 8 + (x[1] & 15);
            ret(portal_spin_u64(&host, off, x[2], 0), "spin");
        }
        break;
    case 'R':
        if (host_ok) {
            snap();
            ret(portal_recv_spin(&host, PORTAL_RING_COMPLETE, buf, 1 + (unsigned)(x[0] % 1024), 0), "recv spin");
            check_writes(&host, PORTAL_SIDE_HOST, "recv spin");
        }
        break;
    case 'P':
        if (host_ok) {
            snap();
            ret(portal_pingpong(&host, 1 + x[0] % 3, 0), "pingpong");
            check_writes(&host, PORTAL_SIDE_HOST, "pingpong");
        }
        break;
    case 'T':
        if (host_ok) {
            snap();
            ret(portal_stream(&host, 1 + x[0] % 3000, (unsigned)x[1], 0), "stream");
            check_writes(&host, PORTAL_SIDE_HOST, "stream");
        }
        break;
    case 'm': { /* the guest attaching to a shorter mapping than the header claims */
        uint64_t n = ((x[0] % (wsize + 1)) + 63) / 64 * 64;
        if (n == 0) n = 64;
        unsigned char *small = aligned_alloc(64, n);
        if (!small) break;
        memcpy(small, win, n < wsize ? n : wsize);
        struct portal_guest *sg = malloc(sizeof *sg);
        if (ret(portal_guest_init(sg, small, n), "guest init on a short mapping") == 0) {
            if (sg->end.info.window_size > n) die("attached past the mapping", (long long)n);
            ret(portal_service_step(sg, 64), "guest step on a short mapping");
        }
        free(sg);
        free(small);
        break;
    }
    case 'Z': /* self-test of the harness: a stray write must be reported */
        snap();
        win[x[0] % PORTAL_HEADER_SIZE] ^= 0x80;
        check_writes(&guest.end, PORTAL_SIDE_GUEST, "self-test");
        break;
    case 'Y': { /* self-test of the harness: a read one byte past the window must be a sanitizer report */
        volatile unsigned char *v = win;
        printf("past the window: %u\n", v[wsize + (x[0] % 8)]);
        break;
    }
    default:
        die("unknown op", c);
    }
}

/* ------------------------------------------------------------------ random mode */

static uint64_t rng_state;
static uint64_t rnd(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

/* Edge values: sizes and offsets of the layout, off by a little, and the integer edges. */
static uint64_t edge(void)
{
    uint64_t base[] = {0, 1, 8, 63, 64, 4096, wsize, trusted.host_arena_offset,
                       trusted.host_arena_offset + trusted.host_arena_size, trusted.guest_arena_offset,
                       trusted.guest_arena_offset + trusted.guest_arena_size, trusted.rings[0].offset,
                       trusted.rings[0].slot_count, 1ull << 31, 1ull << 32, 1ull << 63, ~0ull,
                       trusted.generation << 32, (trusted.generation << 32) | 1};
    uint64_t v = base[rnd() % (sizeof base / sizeof base[0])];
    switch (rnd() % 4) {
    case 0: return v;
    case 1: return v + (rnd() % 9) - 4;
    case 2: return v - (rnd() % 256);
    default: return rnd();
    }
}

static void random_ops(uint64_t seed, uint64_t n)
{
    static const char letters[] = "wqhcdssssgggggGGuupppxaaffkkkHIASRPTm";
    rng_state = seed * 2654435761u + 0x9E3779B97F4A7C15ull;
    for (uint64_t i = 0; i < n; i++) {
        uint64_t x[NARG];
        for (int k = 0; k < NARG; k++) x[k] = (rnd() & 1) ? edge() : rnd();
        char c = letters[rnd() % (sizeof letters - 1)];
        /* keep the exchange alive often enough to reach deep states: mostly well-formed sends */
        if (c == 's' && (rnd() % 4)) x[1] &= ~((uint64_t)1 << 16);
        if (c == 'w' || c == 'q' || c == 'h') {
            if (rnd() % 3) continue; /* corruption is a third as frequent as the exchange */
        }
        if ((c == 'H' || c == 'I') && rnd() % 4) continue;
        op(c, x);
    }
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: portal_fuzz IMAGE script | IMAGE random SEED N\n");
        return 2;
    }
    FILE *f = fopen(argv[1], "rb");
    if (!f || fseek(f, 0, SEEK_END) || (wsize = (uint64_t)ftell(f)) < PORTAL_HEADER_PAGE || wsize % 64) {
        fprintf(stderr, "portal_fuzz: bad image %s\n", argv[1]);
        return 2;
    }
    rewind(f);
    win = aligned_alloc(64, wsize);
    shadow = malloc(wsize);
    if (!win || !shadow || fread(win, 1, wsize, f) != wsize) return 2;
    fclose(f);
    memcpy(&trusted, win, sizeof trusted);

    host_attach_trusted();
    if (!host_ok) {
        fprintf(stderr, "portal_fuzz: the image's header does not attach\n");
        return 2;
    }
    guest_init();
    if (!guest_ok) {
        fprintf(stderr, "portal_fuzz: the guest does not attach to the image\n");
        return 2;
    }
    if (!strcmp(argv[2], "random") && argc == 5) {
        random_ops(strtoull(argv[3], 0, 0), strtoull(argv[4], 0, 0));
    } else if (!strcmp(argv[2], "script")) {
        char line[512];
        while (fgets(line, sizeof line, stdin)) {
            uint64_t x[NARG] = {0};
            char c = line[0];
            if (c == '\n' || c == '#') continue;
            char *p = line + 1;
            for (int k = 0; k < NARG; k++) {
                char *end;
                x[k] = strtoull(p, &end, 0);
                if (end == p) break;
                p = end;
            }
            op(c, x);
        }
    } else {
        fprintf(stderr, "portal_fuzz: unknown mode %s\n", argv[2]);
        return 2;
    }
    printf("ops %llu served %llu spans %llu bytes %llu", ops, served, spans_touched, bytes_touched);
    for (int i = 0; i < 128; i++)
        if (errors[i]) i ? printf(" err%d %llu", i, errors[i]) : printf(" timeouts %llu", errors[0]);
    printf("\n");
    free(win);
    free(shadow);
    return 0;
}
