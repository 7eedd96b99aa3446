/* errors.c: names of the PARSE_* errors for diagnostics. */
#include "parse/parse.h"

const char *parse_strerror(int err)
{
    switch (err) {
    case PARSE_OK: return "ok";
    case PARSE_ETRUNC: return "truncated";
    case PARSE_EMAGIC: return "bad signature";
    case PARSE_ECHECKSUM: return "bad checksum";
    case PARSE_ERANGE: return "value out of range";
    case PARSE_ELOOP: return "capability loop";
    case PARSE_EVERSION: return "unsupported version";
    case PARSE_ENOTFOUND: return "not found";
    default: return "unknown error";
    }
}
