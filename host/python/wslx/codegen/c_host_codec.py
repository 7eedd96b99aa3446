"""Generate the host's C codec glue (build/gen/agentx_host_cffi.c) from wslx.spec.agentx.

The host runs the guests' own generated encoders and decoders (agentx_wire.h)
through a cffi extension module. Python objects cannot cross into C, so every
body travels as *flat values*, one uint64 each, in the spec's field order
(reserved fields skipped). Decoding (C -> Python):

    integer field        its value (signed fields as two's complement)
    string / bytes       offset << 32 | length into the frame
    string array         its count, then one offset/length value per item

Encoding (Python -> C), where the Python side must do as little as possible:

    integer field        its value
    string array         its count
    bytes field          its length
    strings              no value: every string of the body, in order, joined
                         with NUL into one UTF-8 text (a NUL inside a string
                         shows as a piece too many, and C declines)
    bytes                all bytes fields concatenated into one binary blob

This module owns that convention on both sides: host_fields() describes a
message for the C switch generated here and for the Python glue that
wslx.agentx.ccodec compiles at import, and spec_digest() ties a built library
to the spec it was generated from (a stale library is not used). A new field
in the spec is a new case line here and in the glue, with nothing written by
hand. Failure in C is always -1 and means "ask the Python codec": it raises
the precise typed error (or, where only C is stricter, decides).
"""
from __future__ import annotations

import zlib

from construct import Const

from ..spec import agentx as spec
from ..spec.fields import BoundedBytes, BoundedString, BoundedStringArray, split_fields
from .c_header import C_TYPES, marker

MODULE = "_agentx_codec"  # the extension module's import name (PyInit__agentx_codec)

_LIMITS = {"uint8_t": (0, 0xFF), "uint16_t": (0, 0xFFFF), "uint32_t": (0, 0xFFFFFFFF),
           "uint64_t": (0, 0xFFFFFFFFFFFFFFFF), "int32_t": (-2**31, 2**31 - 1), "int64_t": (-2**63, 2**63 - 1)}


def host_fields(msg) -> list[tuple[str, str, object]]:
    """(name, kind, construct) of a body in wire order, kind in int/str/bytes/strv; reserved fields left out."""
    fixed, variable = split_fields(msg.body)
    out = [(name, "int", con) for name, con, _ in fixed if not isinstance(con, Const)]
    for name, con, _ in variable:
        kind = {BoundedString: "str", BoundedBytes: "bytes", BoundedStringArray: "strv"}[type(con)]
        out.append((name, kind, con))
    return out


def int_limits(con) -> tuple[int, int]:
    return _LIMITS[C_TYPES[con.fmtstr]]


def max_values() -> int:
    """Flat values of the largest frame: FRAME_VALUES, then its body's (arrays at their bound)."""
    return FRAME_VALUES + max(sum(1 + con.max_count if kind == "strv" else 1 for _, kind, con in host_fields(m))
               for m in spec.MESSAGES)


def spec_digest() -> int:
    """CRC-32 of everything the glue depends on: its C interface, header constants and every body's flat layout."""
    parts = [CDEF, f"{FRAME_VALUES}:{spec.MAGIC}:{spec.VERSION_MIN}:{spec.VERSION_MAX}:{spec.HEADER_SIZE}:{spec.MAX_PAYLOAD}"]
    for m in spec.MESSAGES:
        fields = ",".join(f"{n}:{k}:{getattr(c, 'fmtstr', '')}:{getattr(c, 'max_len', '')}:"
                          f"{getattr(c, 'max_count', '')}" for n, k, c in host_fields(m))
        parts.append(f"{int(m.type)}={m.name}({fields})")
    return zlib.crc32(";".join(parts).encode())


# A frame's values start with FRAME_VALUES header values: type, request_id, flags, and the frame's
# length (decode) or the number of body values that follow (encode). Few arguments: cffi's cost
# per call grows with each one.
FRAME_VALUES = 4
CDEF = """\
long agx_host_decode_frame(const char *buf, size_t n, uint64_t *vals);
long agx_host_decode_body(unsigned type, const char *p, size_t n, uint64_t *vals);
long agx_host_decode_frames(const char *buf, size_t n, uint64_t *vals, size_t cap, size_t used[2]);
long agx_host_encode_frame(const uint64_t *vals, const char *text, size_t text_len, const char *bin, size_t bin_len,
                           char *out);
long agx_host_encode_frames(const uint64_t *vals, size_t nframes, const char *text, const char *bin, char *out,
                            size_t out_cap, size_t *used);
uint32_t agx_host_spec_digest(void);
"""


def _decode_case(w, msg):
    n, N = msg.name, msg.type.name
    w(f"    case AGX_MSG_{N}: {{")
    w(f"        static __thread struct agx_{n} m;  /* arrays make some views large: off the stack */")
    w(f"        if (agx_{n}_decode(p, len, &m)) return -1;")
    for name, kind, con in host_fields(msg):
        if kind == "int":
            cast = "(uint64_t)(int64_t)" if int_limits(con)[0] < 0 else "(uint64_t)"
            w(f"        v[k++] = {cast}m.{name};")
        elif kind == "strv":
            w(f"        v[k++] = m.{name}_count;")
            w(f"        for (unsigned i = 0; i < m.{name}_count; i++) v[k++] = REF(base, m.{name}[i]);")
        else:
            w(f"        v[k++] = REF(base, m.{name});")
    w("        return (long)k;")
    w("    }")


def encode_values(msg) -> int:
    """Flat values of a body on the way in (FRAME_VALUES not counted)."""
    return sum(kind != "str" for _, kind, _ in host_fields(msg))


def _encode_case(w, msg):
    n, N = msg.name, msg.type.name
    w(f"    case AGX_MSG_{N}: {{")
    w(f"        static __thread struct agx_{n} m;")
    w(f"        if (nv != {encode_values(msg)}u) return -1;")
    for name, kind, con in host_fields(msg):
        if kind == "int":
            lo, hi = int_limits(con)
            ctype = C_TYPES[con.fmtstr]
            if lo < 0:
                w(f"        if ((int64_t)v[k] < {lo}LL || (int64_t)v[k] > {hi}LL) return -1;")
            elif hi < 0xFFFFFFFFFFFFFFFF:
                w(f"        if (v[k] > {hi}ull) return -1;")
            w(f"        m.{name} = ({ctype})v[k++];")
        elif kind == "strv":
            w(f"        if (v[k] > {con.max_count}u) return -1;")
            w(f"        m.{name}_count = (uint16_t)v[k++];")
            w(f"        for (unsigned i = 0; i < m.{name}_count; i++)")
            w(f"            if (next_str(&t, &m.{name}[i])) return -1;")
        elif kind == "str":
            w(f"        if (next_str(&t, &m.{name})) return -1;")
        else:
            w(f"        if (next_bytes(&b, v[k++], &m.{name})) return -1;")
    w(f"        len = agx_{n}_encode(out + AGX_HEADER_SIZE, cap - AGX_HEADER_SIZE, &m);")
    w("        break;")
    w("    }")


def generate_source() -> str:
    """The C source of the extension module (what cffi's set_source compiles)."""
    L: list[str] = []
    w = L.append
    w(f"/* agentx_host: the host's AgentX codec in C. {marker('wslx.codegen.c_host_codec')}.")
    w(" * Flat values: see wslx/codegen/c_host_codec.py. Every failure is -1: the Python codec decides. */")
    w("#include <string.h>")
    w('#include "agentx_wire.h"')
    w("")
    w(f"#define AGX_HOST_SPEC_DIGEST 0x{spec_digest():08X}u")
    w("#define REF(base, s) ((uint64_t)((const uint8_t *)(s).ptr - (base)) << 32 | (s).len)")
    w("")
    w("uint32_t agx_host_spec_digest(void) { return AGX_HOST_SPEC_DIGEST; }")
    w("")
    w("static long decode_payload(unsigned type, const uint8_t *base, const uint8_t *p, size_t len, uint64_t *v)")
    w("{")
    w("    size_t k = 0;")
    w("    switch (type) {")
    for m in spec.MESSAGES:
        _decode_case(w, m)
    w("    default: return -1;")
    w("    }")
    w("}")
    w("")
    w("/* v: type, request_id, flags, frame length, then the body's values; returns how many in all. */")
    w("long agx_host_decode_frame(const char *buf, size_t n, uint64_t *v)")
    w("{")
    w("    const uint8_t *b = (const uint8_t *)buf;")
    w("    struct agx_header h;")
    w("    if (n < AGX_HEADER_SIZE || agx_header_decode(b, &h)) return -1;")
    w("    if (n - AGX_HEADER_SIZE < h.payload_len || agx_payload_verify(&h, b + AGX_HEADER_SIZE)) return -1;")
    w("    v[0] = h.type;")
    w("    v[1] = h.request_id;")
    w("    v[2] = h.flags;")
    w("    v[3] = AGX_HEADER_SIZE + (uint64_t)h.payload_len;")
    w(f"    long k = decode_payload(h.type, b, b + AGX_HEADER_SIZE, h.payload_len, v + {FRAME_VALUES});")
    w(f"    return k < 0 ? -1 : k + {FRAME_VALUES};")
    w("}")
    w("")
    w("/* The batch path: the whole frames at the start of buf, one after another, up to the first one that")
    w(" * does not decode (bad, or partial: the caller's frame-by-frame path decides what it is). Per frame, in vals:")
    w(" * how many values it takes (this one included), then what agx_host_decode_frame writes, string offsets")
    w(" * counted from buf. Stops before vals could overflow (cap values). used: bytes of the frames returned, and")
    w(" * values written. */")
    w("long agx_host_decode_frames(const char *buf, size_t n, uint64_t *vals, size_t cap, size_t used[2])")
    w("{")
    w("    const uint8_t *base = (const uint8_t *)buf;")
    w("    size_t off = 0, k = 0;")
    w("    long frames = 0;")
    w(f"    while (n - off >= AGX_HEADER_SIZE && cap - k >= {1 + max_values()}u) {{")
    w("        const uint8_t *b = base + off;")
    w("        uint64_t *v = vals + k + 1;")
    w("        struct agx_header h;")
    w("        if (agx_header_decode(b, &h)) break;")
    w("        if (h.version != AGX_VERSION_MAX) break;  /* older layouts: the Python path decodes them */")
    w("        if (n - off - AGX_HEADER_SIZE < h.payload_len || agx_payload_verify(&h, b + AGX_HEADER_SIZE)) break;")
    w("        v[0] = h.type;")
    w("        v[1] = h.request_id;")
    w("        v[2] = h.flags;")
    w("        v[3] = AGX_HEADER_SIZE + (uint64_t)h.payload_len;")
    w(f"        long nb = decode_payload(h.type, base, b + AGX_HEADER_SIZE, h.payload_len, v + {FRAME_VALUES});")
    w("        if (nb < 0) break;")
    w(f"        vals[k] = (uint64_t)nb + {FRAME_VALUES + 1};")
    w("        k += vals[k];")
    w("        off += v[3];")
    w("        frames++;")
    w("    }")
    w("    used[0] = off;")
    w("    used[1] = k;")
    w("    return frames;")
    w("}")
    w("")
    w("long agx_host_decode_body(unsigned type, const char *p, size_t n, uint64_t *vals)")
    w("{")
    w("    return decode_payload(type, (const uint8_t *)p, (const uint8_t *)p, n, vals);")
    w("}")
    w("")
    w("/* The strings of an encode: NUL-separated pieces of one text, taken in order. */")
    w("struct cursor { const char *p, *end; unsigned taken; };")
    w("")
    w("static int next_str(struct cursor *c, struct agx_str *s)")
    w("{")
    w("    if (c->taken++ && (c->p >= c->end || *c->p++)) return -1;  /* the separator before every piece but the first */")
    w("    const char *nul = memchr(c->p, 0, (size_t)(c->end - c->p));")
    w("    size_t len = (size_t)((nul ? nul : c->end) - c->p);")
    w("    if (len > 0xFFFFu) return -1;")
    w("    s->ptr = c->p;")
    w("    s->len = (uint16_t)len;")
    w("    c->p += len;")
    w("    return 0;")
    w("}")
    w("")
    w("static int next_bytes(struct cursor *c, uint64_t len, struct agx_bytes *s)")
    w("{")
    w("    if (len > (uint64_t)(c->end - c->p)) return -1;")
    w("    s->ptr = (const uint8_t *)c->p;")
    w("    s->len = (uint32_t)len;")
    w("    c->p += len;")
    w("    return 0;")
    w("}")
    w("")
    w("/* vals: type, request_id, flags, number of body values, then those; out holds AGX_MAX_FRAME bytes. */")
    w("long agx_host_encode_frame(const uint64_t *vals, const char *text, size_t text_len, const char *bin,")
    w("                           size_t bin_len, char *outc)")
    w("{")
    w("    uint8_t *out = (uint8_t *)outc;")
    w("    const uint64_t type = vals[0], request_id = vals[1], flags = vals[2], nv = vals[3];")
    w(f"    const uint64_t *v = vals + {FRAME_VALUES};")
    w("    const size_t cap = AGX_MAX_FRAME;")
    w("    struct cursor t = {text, text + text_len, 0}, b = {bin, bin + bin_len, 0};")
    w("    size_t k = 0;")
    w("    long len;")
    w("    if (flags > 0xFFu || request_id > 0xFFFFFFFFu) return -1;")
    w("    switch (type) {")
    for m in spec.MESSAGES:
        _encode_case(w, m)
    w("    default: return -1;")
    w("    }")
    w("    if (len < 0 || t.p != t.end || b.p != b.end) return -1;  /* every string and byte used, no more */")
    w("    return (long)agx_frame_seal(out, (uint16_t)type, (uint8_t)flags, (uint32_t)request_id, (uint32_t)len);")
    w("}")
    w("")
    w("/* The batch path: frames one after another into out. Per frame in vals: the byte lengths of its share of")
    w(" * text and of bin, then what agx_host_encode_frame takes. Stops before a frame C declines or one that might")
    w(" * not fit (less than AGX_MAX_FRAME of out left). Returns the frames encoded; *used: their bytes. */")
    w("long agx_host_encode_frames(const uint64_t *vals, size_t nframes, const char *text, const char *bin, char *out,")
    w("                            size_t out_cap, size_t *used)")
    w("{")
    w("    size_t off = 0, f = 0;")
    w("    for (; f < nframes && out_cap - off >= AGX_MAX_FRAME; f++) {")
    w("        const uint64_t text_len = vals[0], bin_len = vals[1];")
    w("        long n = agx_host_encode_frame(vals + 2, text, text_len, bin, bin_len, out + off);")
    w("        if (n < 0) break;")
    w("        off += (size_t)n;")
    w("        text += text_len;")
    w("        bin += bin_len;")
    w(f"        vals += 2 + {FRAME_VALUES} + vals[2 + 3];")
    w("    }")
    w("    *used = off;")
    w("    return (long)f;")
    w("}")
    return "\n".join(L) + "\n"


def generate_cffi_module() -> str:
    """The extension module's C file: cffi's wrappers around generate_source()."""
    import os
    import tempfile

    import cffi
    ffi = cffi.FFI()
    ffi.cdef(CDEF)
    ffi.set_source(MODULE, generate_source())
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, MODULE + ".c")
        ffi.emit_c_code(path)
        with open(path) as f:
            return f.read()
