/* agentx_program.h: the conformance program's argv (AgentX capability PROGRAMS,
 * host/python/wslx/spec/programs.py), checked against the generated step table
 * AGX_PROGRAM_STEP_TABLE. Both guest agents link it and then run the steps their
 * own way: guest/init as an applet of its binary (system calls), Track B as a
 * cooperative built-in. One parser, so the two cannot accept different argv.
 *
 * Freestanding: only <stddef.h>, <stdint.h> and agentx_wire.h. */
#ifndef WSLX_AGENTX_PROGRAM_H
#define WSLX_AGENTX_PROGRAM_H

#include <stddef.h>
#include <stdint.h>

#include "agentx_wire.h"

struct agx_step {
    uint8_t kind;          /* AGX_STEP_* */
    uint64_t num;          /* the first argument when the table says it is a number */
    const char *arg[2];    /* the arguments as given (pointers into argv) */
};

struct agx_program {
    size_t n;
    struct agx_step step[AGX_PROGRAM_MAX_STEPS];
};

/* 1 if argv[0] names the conformance program (exactly AGX_PROGRAM_NAME). */
int agx_program_is(const char *argv0);

/* Check argv[1..argc-1] whole. 0 and *out filled, or -1 with the reason (NUL-terminated,
 * without the program name) in err: the program then writes it to stderr and exits
 * AGX_USAGE_STATUS having run nothing. */
int agx_program_parse(int argc, char *const *argv, struct agx_program *out, char *err, size_t errcap);

/* The argv word of a step kind ("out", "close-stdin", ...). */
const char *agx_program_step_word(unsigned kind);

#endif
