"""Generate the host's C codec glue (build/gen/agentx_host_cffi.c) from wslx.spec.agentx.

The host runs the guests' own generated encoders and decoders (agentx_wire.h)
through a cffi extension module. Python objects cannot cross into C, so every
body travels as *flat values*, one uint64 each, in the spec's field order
(reserved fields skipped):

    integer field        its value (signed fields as two's complement)
    string / bytes       offset << 32 | length, into the frame (decode) or into
                         one blob holding every string's UTF-8 (encode)
    string array         its count, then one offset/length value per item

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
    """Flat values of the largest body (arrays at their bound)."""
    return max(sum(1 + con.max_count if kind == "strv" else 1 for _, kind, con in host_fields(m))
               for m in spec.MESSAGES)


def spec_digest() -> int:
    """CRC-32 of everything the glue depends on: header constants and every body's flat layout."""
    parts = [f"{spec.MAGIC}:{spec.VERSION_MIN}:{spec.VERSION_MAX}:{spec.HEADER_SIZE}:{spec.MAX_PAYLOAD}"]
    for m in spec.MESSAGES:
        fields = ",".join(f"{n}:{k}:{getattr(c, 'fmtstr', '')}:{getattr(c, 'max_len', '')}:"
                          f"{getattr(c, 'max_count', '')}" for n, k, c in host_fields(m))
        parts.append(f"{int(m.type)}={m.name}({fields})")
    return zlib.crc32(";".join(parts).encode())


CDEF = """\
long agx_host_decode_frame(const char *buf, size_t n, uint64_t *hdr, uint64_t *vals);
long agx_host_decode_body(unsigned type, const char *p, size_t n, uint64_t *vals);
long agx_host_encode_frame(unsigned type, unsigned flags, uint64_t request_id, const uint64_t *vals, size_t nvals,
                           const char *blob, size_t blob_len, char *out, size_t cap);
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


def _encode_case(w, msg):
    n, N = msg.name, msg.type.name
    w(f"    case AGX_MSG_{N}: {{")
    w(f"        static __thread struct agx_{n} m;")
    for name, kind, con in host_fields(msg):
        if kind == "int":
            lo, hi = int_limits(con)
            ctype = C_TYPES[con.fmtstr]
            if lo < 0:
                w(f"        if (k >= nv || (int64_t)v[k] < {lo}LL || (int64_t)v[k] > {hi}LL) return -1;")
            elif hi < 0xFFFFFFFFFFFFFFFF:
                w(f"        if (k >= nv || v[k] > {hi}ull) return -1;")
            else:
                w("        if (k >= nv) return -1;")
            w(f"        m.{name} = ({ctype})v[k++];")
        elif kind == "strv":
            w(f"        if (k >= nv || v[k] > {con.max_count}u) return -1;")
            w(f"        m.{name}_count = (uint16_t)v[k++];")
            w(f"        for (unsigned i = 0; i < m.{name}_count; i++)")
            w(f"            if (k >= nv || host_str(v[k++], blob, blen, &m.{name}[i])) return -1;")
        elif kind == "str":
            w(f"        if (k >= nv || host_str(v[k++], blob, blen, &m.{name})) return -1;")
        else:
            w(f"        if (k >= nv || host_bytes(v[k++], blob, blen, &m.{name})) return -1;")
    w("        if (k != nv) return -1;")
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
    w("long agx_host_decode_frame(const char *buf, size_t n, uint64_t *hdr, uint64_t *vals)")
    w("{")
    w("    const uint8_t *b = (const uint8_t *)buf;")
    w("    struct agx_header h;")
    w("    if (n < AGX_HEADER_SIZE || agx_header_decode(b, &h)) return -1;")
    w("    if (n - AGX_HEADER_SIZE < h.payload_len || agx_payload_verify(&h, b + AGX_HEADER_SIZE)) return -1;")
    w("    hdr[0] = h.type;")
    w("    hdr[1] = h.request_id;")
    w("    hdr[2] = h.flags;")
    w("    hdr[3] = AGX_HEADER_SIZE + (uint64_t)h.payload_len;")
    w("    return decode_payload(h.type, b, b + AGX_HEADER_SIZE, h.payload_len, vals);")
    w("}")
    w("")
    w("long agx_host_decode_body(unsigned type, const char *p, size_t n, uint64_t *vals)")
    w("{")
    w("    return decode_payload(type, (const uint8_t *)p, (const uint8_t *)p, n, vals);")
    w("}")
    w("")
    w("/* A blob slice as a string: inside the blob, no NUL (the blob is UTF-8 Python encoded). */")
    w("static int host_str(uint64_t ref, const char *blob, size_t blen, struct agx_str *s)")
    w("{")
    w("    uint64_t off = ref >> 32, len = ref & 0xFFFFFFFFu;")
    w("    if (off > blen || len > blen - off || len > 0xFFFFu || memchr(blob + off, 0, len)) return -1;")
    w("    s->ptr = blob + off;")
    w("    s->len = (uint16_t)len;")
    w("    return 0;")
    w("}")
    w("")
    w("static int host_bytes(uint64_t ref, const char *blob, size_t blen, struct agx_bytes *s)")
    w("{")
    w("    uint64_t off = ref >> 32, len = ref & 0xFFFFFFFFu;")
    w("    if (off > blen || len > blen - off) return -1;")
    w("    s->ptr = (const uint8_t *)blob + off;")
    w("    s->len = (uint32_t)len;")
    w("    return 0;")
    w("}")
    w("")
    w("long agx_host_encode_frame(unsigned type, unsigned flags, uint64_t request_id, const uint64_t *v, size_t nv,")
    w("                           const char *blob, size_t blen, char *outc, size_t cap)")
    w("{")
    w("    uint8_t *out = (uint8_t *)outc;")
    w("    size_t k = 0;")
    w("    long len;")
    w("    if (cap < AGX_HEADER_SIZE || flags > 0xFFu || request_id > 0xFFFFFFFFu) return -1;")
    w("    switch (type) {")
    for m in spec.MESSAGES:
        _encode_case(w, m)
    w("    default: return -1;")
    w("    }")
    w("    if (len < 0) return -1;")
    w("    return (long)agx_frame_seal(out, (uint16_t)type, (uint8_t)flags, (uint32_t)request_id, (uint32_t)len);")
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
