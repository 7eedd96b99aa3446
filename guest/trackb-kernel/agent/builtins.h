/* builtins.h: the programs EXEC can run on Track B (builtins.c). There is no
 * userspace: a program is a step function the agent loop calls a bounded
 * amount at a time, so SIGNAL ends it between two steps and PING is answered
 * while it runs. A program reaches its process only through struct prog_io
 * (proc.c implements it), never by calling proc.c. */
#ifndef WSLX_TRACKB_BUILTINS_H
#define WSLX_TRACKB_BUILTINS_H

#include <stddef.h>
#include <stdint.h>

#define RUN (-1)          /* a step that wants another step */

struct prog_io {
    void (*write)(void *ctx, int fd, const void *data, size_t len);   /* fd 1 or 2 */
    /* a background job holding the output: sleeps ms, writes text to stdout; 0, or -1 (no free job) */
    int (*spawn_bg)(void *ctx, uint64_t ms, const char *text);
    const char *(*getenv)(void *ctx, const char *name);               /* NULL when unset */
    const char *(*hostname)(void *ctx);
    const char *cwd;
    void *ctx;
};

struct prog {
    const struct builtin *b;
    int argc;
    char **argv;
    uint64_t t, n;    /* per-program state: deadline, byte counts... */
    size_t phase;
    void *priv;       /* b->state_size bytes, zeroed, from the process (0: NULL) */
    struct prog_io io;
};

struct builtin {
    const char *name;
    int (*step)(struct prog *p);                  /* RUN, or the exit status 0..255 */
    void (*kill)(struct prog *p, int signo);      /* optional: SIGNAL/SHUTDOWN ends it mid-run */
    size_t state_size;
};

/* The program argv[0] names: a bare name, or one in /bin, /usr/bin, /sbin, /usr/sbin,
 * /usr/local/bin (the conformance program only by its exact name); NULL if none. */
const struct builtin *builtin_find(const char *argv0);

#endif
