/* agentx_program.c: parse the conformance program's argv (see agentx_program.h). */
#include "agentx_program.h"

struct step_row {
    const char *word;
    unsigned nargs;
    uint64_t num_max;      /* 0: the first argument is a string */
};
static const struct step_row steps[] = AGX_PROGRAM_STEP_TABLE;

static int same(const char *a, const char *b)
{
    while (*a && *a == *b) a++, b++;
    return *a == *b;
}

int agx_program_is(const char *argv0) { return argv0 && same(argv0, AGX_PROGRAM_NAME); }

const char *agx_program_step_word(unsigned kind)
{
    return kind < sizeof steps / sizeof steps[0] ? steps[kind].word : "?";
}

/* A bounded message built from pieces: no printf in a freestanding build. */
struct msg {
    char *buf;
    size_t cap, len;
};

static void put(struct msg *m, const char *s)
{
    while (*s && m->len + 1 < m->cap) m->buf[m->len++] = *s++;
    if (m->cap) m->buf[m->len] = 0;
}

static void put_u64(struct msg *m, uint64_t v)
{
    char d[21];
    int i = 20;
    d[i] = 0;
    do d[--i] = (char)('0' + v % 10);
    while (v /= 10);
    put(m, d + i);
}

/* Decimal digits only, at most max; 0, else -1. */
static int number(const char *s, uint64_t max, uint64_t *out)
{
    uint64_t v = 0;
    if (!*s) return -1;
    for (; *s; s++) {
        if (*s < '0' || *s > '9') return -1;
        if (v > (max - (uint64_t)(*s - '0')) / 10) return -1;   /* v * 10 + digit > max */
        v = v * 10 + (uint64_t)(*s - '0');
    }
    *out = v;
    return 0;
}

int agx_program_parse(int argc, char *const *argv, struct agx_program *out, char *err, size_t errcap)
{
    struct msg m = {err, errcap, 0};
    out->n = 0;
    for (int i = 1; i < argc;) {
        unsigned k = 0, nsteps = sizeof steps / sizeof steps[0];
        while (k < nsteps && !same(argv[i], steps[k].word)) k++;
        if (k == nsteps) {
            put(&m, "unknown step '"), put(&m, argv[i]), put(&m, "'");
            return -1;
        }
        const struct step_row *row = &steps[k];
        if ((unsigned)(argc - i - 1) < row->nargs) {
            put(&m, row->word), put(&m, " needs "), put_u64(&m, row->nargs), put(&m, " argument(s)");
            return -1;
        }
        if (out->n == AGX_PROGRAM_MAX_STEPS) {
            put(&m, "more than "), put_u64(&m, AGX_PROGRAM_MAX_STEPS), put(&m, " steps");
            return -1;
        }
        struct agx_step *s = &out->step[out->n++];
        s->kind = (uint8_t)k;
        s->num = 0;
        s->arg[0] = row->nargs > 0 ? argv[i + 1] : 0;
        s->arg[1] = row->nargs > 1 ? argv[i + 2] : 0;
        if (row->num_max && number(s->arg[0], row->num_max, &s->num)) {
            put(&m, row->word), put(&m, ": '"), put(&m, s->arg[0]), put(&m, "' is not a number in 0..");
            put_u64(&m, row->num_max);
            return -1;
        }
        i += 1 + (int)row->nargs;
    }
    return 0;
}
