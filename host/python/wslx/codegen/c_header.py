"""Generate the AgentX C header (agentx_wire.h) from wslx.spec.agentx.

Model: the Linux YNL generator. The header holds the constants, the wire
structs (with _Static_assert on every size and offset), decoded views, and a
bounded decoder/encoder per message. It is freestanding (no libc) so the Track
B kernel can use it as well as the musl PID 1.
"""
from __future__ import annotations

import zlib

from construct import Const, FormatField

from ..spec import agentx as spec
from ..spec import programs
from ..spec.fields import BoundedBytes, BoundedString, BoundedStringArray, size_range, split_fields
from ..spec.header import CStruct
from . import c_structs

SPEC_SOURCE = "host/python/wslx/spec/agentx.py"
C_TYPES = {"<B": "uint8_t", "<H": "uint16_t", "<L": "uint32_t", "<I": "uint32_t", "<Q": "uint64_t",
           "<l": "int32_t", "<i": "int32_t", "<q": "int64_t"}
GETTERS = {1: "agx_get_u8", 2: "agx_get_u16", 4: "agx_get_u32", 8: "agx_get_u64"}
PUTTERS = {1: "agx_put_u8", 2: "agx_put_u16", 4: "agx_put_u32", 8: "agx_put_u64"}


def marker(generator: str) -> str:
    return f"generated from {SPEC_SOURCE} by {generator}; do not edit"


def _enum_prefix(enum_cls) -> str:
    return {"FrameFlag": "AGX_FLAG", "MsgType": "AGX_MSG", "Capability": "AGX_CAP", "AgentKind": "AGX_AGENT",
            "ErrorCode": "AGX", "Stream": "AGX_STREAM", "StdioFlag": "AGX_STDIO", "StdinAckFlag": "AGX_STDIN_ACK",
            "OutputAckFlag": "AGX_OUTPUT_ACK", "ExecFlag": "AGX_EXEC",
            "ExitHow": "AGX_EXIT", "MountFlag": "AGX_MOUNT", "UnmountFlag": "AGX_UNMOUNT",
            "ShutdownMode": "AGX_SHUTDOWN", "Signal": "AGX", "ProgramStep": "AGX_STEP"}[enum_cls.__name__]


def c_field_type(con) -> str:
    return C_TYPES[con.fmtstr]


def fixed_layout(body):
    """[(name, construct, docs, offset, size)] of the fixed prefix, and its size."""
    fixed, _ = split_fields(body)
    out, off = [], 0
    for name, con, docs in fixed:
        size = con.sizeof()
        out.append((name, con, docs, off, size))
        off += size
    return out, off


def _upper(name: str) -> str:
    return name.upper()


def generate() -> str:
    L: list[str] = []
    w = L.append
    w(f"/* agentx_wire.h: AgentX wire protocol v{spec.VERSION_MIN}..v{spec.VERSION_MAX}.")
    w(f" * {marker('wslx.codegen.c_header')}.")
    w(" * Freestanding: needs only <stddef.h> and <stdint.h>. All fields are little-endian;")
    w(" * decoders read bytes, so buffers need no alignment. */")
    w("#ifndef WSLX_AGENTX_WIRE_H")
    w("#define WSLX_AGENTX_WIRE_H")
    w("")
    w("#include <stddef.h>")
    w("#include <stdint.h>")
    w("")
    w(f"#define AGX_MAGIC 0x{spec.MAGIC:08X}u")
    for const in ("VERSION_MIN", "VERSION_MAX", "SESSION_START_VERSION", "HEADER_SIZE", "MAX_PAYLOAD", "MAX_PAYLOAD_MIN", "MAX_FRAME",
                  "STDIO_MAX_DATA", "PING_MAX_DATA", "STDIN_WINDOW", "OUTPUT_BUFFER", "SIGNAL_MAX", "SHUTDOWN_GRACE_MAX_MS", "EXIT_EOF_GRACE_MS", "PATH_MAX_LEN", "ARGV_MAX_COUNT", "ENV_MAX_COUNT", "ENV_ITEM_MAX_LEN",
                  "ERROR_MESSAGE_MAX_LEN", "VSOCK_CONTROL_PORT", "VSOCK_HOST_CID"):
        w(f"#define AGX_{const} {getattr(spec, const)}u")
    w(f'#define AGX_VIRTIO_SERIAL_PORT_NAME "{spec.VIRTIO_SERIAL_PORT_NAME}"')
    for kind, n in spec.PROCESS_MAX.items():
        w(f"#define AGX_PROCESS_MAX_{kind.name} {n}u  /* processes at once (EXEC beyond: EAGAIN) */")
    w("")
    _emit_program(w)
    for enum_cls in spec.ENUMS:
        prefix = _enum_prefix(enum_cls)
        w(f"/* {enum_cls.__name__}: {(enum_cls.__doc__ or '').strip().splitlines()[0]} */")
        for member in enum_cls:
            suffix = "ull" if enum_cls is spec.Capability else ""
            w(f"#define {prefix}_{member.name} 0x{int(member):X}{suffix}")
        w("")
    w("/* ---- little-endian access ---- */")
    w("static inline uint8_t agx_get_u8(const uint8_t *p) { return p[0]; }")
    w("static inline uint16_t agx_get_u16(const uint8_t *p) { return (uint16_t)(p[0] | (p[1] << 8)); }")
    w("static inline uint32_t agx_get_u32(const uint8_t *p) { return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24); }")
    w("static inline uint64_t agx_get_u64(const uint8_t *p) { return (uint64_t)agx_get_u32(p) | ((uint64_t)agx_get_u32(p + 4) << 32); }")
    w("static inline void agx_put_u8(uint8_t *p, uint8_t v) { p[0] = v; }")
    w("static inline void agx_put_u16(uint8_t *p, uint16_t v) { p[0] = (uint8_t)v; p[1] = (uint8_t)(v >> 8); }")
    w("static inline void agx_put_u32(uint8_t *p, uint32_t v) { p[0] = (uint8_t)v; p[1] = (uint8_t)(v >> 8); p[2] = (uint8_t)(v >> 16); p[3] = (uint8_t)(v >> 24); }")
    w("static inline void agx_put_u64(uint8_t *p, uint64_t v) { agx_put_u32(p, (uint32_t)v); agx_put_u32(p + 4, (uint32_t)(v >> 32)); }")
    w("static inline void agx_copy(uint8_t *d, const uint8_t *s, size_t n) { while (n--) *d++ = *s++; }")
    w("")
    w("/* ---- CRC-32 (IEEE 802.3, reflected, as zlib.crc32), slice-by-8 ---- */")
    w("/* Eight bytes per step: STDIO frames are CRC'd at memory speed, which matters most under")
    w(" * emulation (TCG), where every table lookup is expensive. */")
    tables = [[0] * 256 for _ in range(8)]
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ 0xEDB88320 if c & 1 else c >> 1
        tables[0][i] = c
    for k in range(1, 8):
        for i in range(256):
            prev = tables[k - 1][i]
            tables[k][i] = (prev >> 8) ^ tables[0][prev & 0xFF]
    w("static const uint32_t agx_crc32_table[8][256] = {")
    for t in tables:
        w("    {")
        for i in range(0, 256, 6):
            w("        " + ", ".join(f"0x{v:08X}u" for v in t[i:i + 6]) + ",")
        w("    },")
    w("};")
    w("static inline uint32_t agx_crc32(const uint8_t *p, size_t n)")
    w("{")
    w("    const uint32_t (*t)[256] = agx_crc32_table;")
    w("    uint32_t c = 0xFFFFFFFFu;")
    w("    while (n >= 8) {")
    w("        uint32_t lo = agx_get_u32(p) ^ c, hi = agx_get_u32(p + 4);")
    w("        c = t[7][lo & 0xFF] ^ t[6][(lo >> 8) & 0xFF] ^ t[5][(lo >> 16) & 0xFF] ^ t[4][lo >> 24] ^")
    w("            t[3][hi & 0xFF] ^ t[2][(hi >> 8) & 0xFF] ^ t[1][(hi >> 16) & 0xFF] ^ t[0][hi >> 24];")
    w("        p += 8;")
    w("        n -= 8;")
    w("    }")
    w("    while (n--) c = t[0][(c ^ *p++) & 0xFF] ^ (c >> 8);")
    w("    return c ^ 0xFFFFFFFFu;")
    w("}")
    w("")
    w("/* ---- bounded variable-length fields ---- */")
    w("struct agx_str { const char *ptr; uint16_t len; };      /* not NUL-terminated */")
    w("struct agx_bytes { const uint8_t *ptr; uint32_t len; };")
    w("")
    w(_C_HELPERS)
    # Header
    _emit_wire_struct(w, "agx_header", spec.FrameHeader, "frame header")
    _emit_frame_functions(w)
    # Messages
    for msg in spec.MESSAGES:
        _emit_message(w, msg)
    _emit_tables(w)
    w("#endif /* WSLX_AGENTX_WIRE_H */")
    return "\n".join(L) + "\n"


_C_HELPERS = r"""/* Strict UTF-8 (no overlongs, surrogates or code points above U+10FFFF), as Python decodes it. */
static inline int agx_utf8_valid(const uint8_t *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        uint8_t c = s[i];
        size_t need;
        uint32_t cp, min;
        if (c < 0x80) { i++; continue; }
        else if ((c & 0xE0) == 0xC0) { need = 1; cp = c & 0x1F; min = 0x80; }
        else if ((c & 0xF0) == 0xE0) { need = 2; cp = c & 0x0F; min = 0x800; }
        else if ((c & 0xF8) == 0xF0) { need = 3; cp = c & 0x07; min = 0x10000; }
        else return 0;
        if (n - i <= need) return 0;
        for (size_t k = 1; k <= need; k++) {
            if ((s[i + k] & 0xC0) != 0x80) return 0;
            cp = (cp << 6) | (s[i + k] & 0x3F);
        }
        if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
        i += need + 1;
    }
    return 1;
}

static inline int agx_get_str(const uint8_t *p, size_t n, size_t *off, struct agx_str *out, size_t max_len)
{
    uint16_t len;
    if (n - *off < 2) return -1;
    len = agx_get_u16(p + *off);
    if (len > max_len || n - *off - 2 < len) return -1;
    for (uint16_t i = 0; i < len; i++)
        if (p[*off + 2 + i] == 0) return -1;
    if (!agx_utf8_valid(p + *off + 2, len)) return -1;
    out->ptr = (const char *)(p + *off + 2);
    out->len = len;
    *off += 2u + len;
    return 0;
}

static inline int agx_get_strv(const uint8_t *p, size_t n, size_t *off, struct agx_str *items, uint16_t *count,
                               size_t max_count, size_t max_len)
{
    uint16_t c;
    if (n - *off < 2) return -1;
    c = agx_get_u16(p + *off);
    if (c > max_count) return -1;
    *off += 2;
    for (uint16_t i = 0; i < c; i++)
        if (agx_get_str(p, n, off, &items[i], max_len)) return -1;
    *count = c;
    return 0;
}

static inline int agx_get_bytes(const uint8_t *p, size_t n, size_t *off, struct agx_bytes *out, size_t max_len)
{
    uint32_t len;
    if (n - *off < 4) return -1;
    len = agx_get_u32(p + *off);
    if (len > max_len || n - *off - 4 < len) return -1;
    out->ptr = p + *off + 4;
    out->len = len;
    *off += 4u + len;
    return 0;
}

static inline int agx_put_str(uint8_t *p, size_t cap, size_t *off, struct agx_str s, size_t max_len)
{
    if (s.len > max_len || cap - *off < 2u + s.len) return -1;
    agx_put_u16(p + *off, s.len);
    agx_copy(p + *off + 2, (const uint8_t *)s.ptr, s.len);
    *off += 2u + s.len;
    return 0;
}

static inline int agx_put_strv(uint8_t *p, size_t cap, size_t *off, const struct agx_str *items, uint16_t count,
                               size_t max_count, size_t max_len)
{
    if (count > max_count || cap - *off < 2) return -1;
    agx_put_u16(p + *off, count);
    *off += 2;
    for (uint16_t i = 0; i < count; i++)
        if (agx_put_str(p, cap, off, items[i], max_len)) return -1;
    return 0;
}

static inline int agx_put_bytes(uint8_t *p, size_t cap, size_t *off, struct agx_bytes b, size_t max_len)
{
    if (b.len > max_len || cap - *off < 4u + b.len) return -1;
    agx_put_u32(p + *off, b.len);
    agx_copy(p + *off + 4, b.ptr, b.len);
    *off += 4u + b.len;
    return 0;
}

/* A C string as an agx_str (length capped at 65535; the encoder enforces the field bound). */
static inline struct agx_str agx_str_from_c(const char *s)
{
    struct agx_str r;
    size_t n = 0;
    while (s && s[n] && n < 65535) n++;
    r.ptr = s;
    r.len = (uint16_t)n;
    return r;
}
"""

def _emit_frame_functions(w):
    """Header decode / payload check / seal. Field loads and stores come from spec.FrameHeader's
    layout (struct agx_header); header_crc, its last field, covers every byte before it."""
    layout, size = fixed_layout(spec.FrameHeader)
    *sealed, (crc_name, _, _, crc_off, _) = layout
    assert crc_name == "header_crc" and size == spec.HEADER_SIZE, "FrameHeader: header_crc last, HEADER_SIZE bytes"
    w(f"#define AGX_HEADER_CRC_COVERS {crc_off}u  /* header_crc covers the header bytes before it */")
    w("")
    w("/* Decode and check a frame header (AGX_HEADER_SIZE bytes). Checks run in this order,")
    w(" * identical in the Python codec: magic, header CRC (-AGX_EBADMSG), version")
    w(" * (-AGX_EPROTONOSUPPORT), flags (-AGX_EPROTO), payload_len (-AGX_EMSGSIZE). After a")
    w(" * -AGX_EBADMSG the length is untrustworthy: resynchronise by scanning for the magic. */")
    w("static inline int agx_header_decode(const uint8_t *p, struct agx_header *h)")
    w("{")
    for name, con, _, _, fsize in layout:
        w(f"    h->{name} = {GETTERS[fsize]}(p + offsetof(struct agx_header, {name}));")
    w("    if (h->magic != AGX_MAGIC) return -AGX_EBADMSG;")
    w("    if (h->header_crc != agx_crc32(p, AGX_HEADER_CRC_COVERS)) return -AGX_EBADMSG;")
    w("    if (h->version < AGX_VERSION_MIN || h->version > AGX_VERSION_MAX) return -AGX_EPROTONOSUPPORT;")
    w("    if (h->flags & ~(uint32_t)AGX_FLAG_REPLY) return -AGX_EPROTO;")
    w("    if (h->payload_len > AGX_MAX_PAYLOAD) return -AGX_EMSGSIZE;")
    w("    return 0;")
    w("}")
    w("")
    w("/* 0 when the payload matches the header's payload_crc, else -AGX_EBADMSG. */")
    w("static inline int agx_payload_verify(const struct agx_header *h, const uint8_t *payload)")
    w("{")
    w("    return agx_crc32(payload, h->payload_len) == h->payload_crc ? 0 : -AGX_EBADMSG;")
    w("}")
    w("")
    w("/* Fill the header of a frame of this protocol version whose payload_len bytes of payload")
    w(" * already sit at frame + AGX_HEADER_SIZE. Returns the whole frame length. */")
    w("static inline size_t agx_frame_seal_version(uint8_t *frame, uint8_t version, uint16_t type, uint8_t flags,")
    w("                                            uint32_t request_id, uint32_t payload_len)")
    w("{")
    values = dict(magic="AGX_MAGIC", version="version", flags="flags", type="type",
                  request_id="request_id", payload_len="payload_len",
                  payload_crc="agx_crc32(frame + AGX_HEADER_SIZE, payload_len)")
    if set(values) != {f[0] for f in sealed}:
        raise TypeError(f"agx_frame_seal does not know how to fill FrameHeader fields {[f[0] for f in sealed]}")
    for name, con, _, _, fsize in layout:
        value = values.get(name, "agx_crc32(frame, AGX_HEADER_CRC_COVERS)")
        w(f"    {PUTTERS[fsize]}(frame + offsetof(struct agx_header, {name}), {value});")
    w("    return AGX_HEADER_SIZE + (size_t)payload_len;")
    w("}")
    w("")
    w("/* The same in version AGX_VERSION_MAX. */")
    w("static inline size_t agx_frame_seal(uint8_t *frame, uint16_t type, uint8_t flags, uint32_t request_id,")
    w("                                    uint32_t payload_len)")
    w("{")
    w("    return agx_frame_seal_version(frame, AGX_VERSION_MAX, type, flags, request_id, payload_len);")
    w("}")
    w("")


def _emit_wire_struct(w, cname, body, what):
    fixed, _ = split_fields(body)
    fields, size = c_structs.struct_fields(CStruct(cname, body), {}, body.subcons[:len(fixed)])
    w(f"/* Wire layout of the {what}: {size} bytes. */")
    c_structs.emit_struct(w, cname, fields, size, offset_macros=False)
    w("")


def _emit_message(w, msg):
    n = msg.name
    N = _upper(n)
    layout, fixed_size = fixed_layout(msg.body)
    _, variable = split_fields(msg.body)
    w(f"/* ==== {msg.type.name} (0x{int(msg.type):04X}, {msg.kind}, {msg.direction}"
      f"{f', since version {msg.since}' if msg.since > 1 else ''}) ==== */")
    for line in _wrap(msg.doc):
        w(f"/* {line} */")
    w(f"#define AGX_{N}_FIXED_SIZE {fixed_size}u")
    w(f"#define AGX_{N}_MIN_SIZE {size_range(msg.body)[0]}u  /* encoded, every variable field empty */")
    for version, body in sorted(msg.legacy.items()):
        w(f"#define AGX_{N}_V{version}_MIN_SIZE {size_range(body)[0]}u")
    for name, con, docs in variable:
        if isinstance(con, BoundedStringArray):
            w(f"#define AGX_{N}_{name.upper()}_MAX_COUNT {con.max_count}u")
        w(f"#define AGX_{N}_{name.upper()}_MAX_LEN {con.max_len}u")
    if layout:
        _emit_wire_struct(w, f"agx_wire_{n}", msg.body, f"fixed part of {msg.type.name}")
    # decoded view (the newest layout; older versions fill the fields they have, the rest are 0)
    w(f"struct agx_{n} {{")
    if not layout and not variable:
        w("    uint8_t unused;  /* empty payload */")
    for name, con, docs, off, fsize in layout:
        if not isinstance(con, Const):
            w(f"    {c_field_type(con)} {name};")
    for name, con, docs in variable:
        if isinstance(con, BoundedString):
            w(f"    struct agx_str {name};")
        elif isinstance(con, BoundedBytes):
            w(f"    struct agx_bytes {name};")
        else:
            w(f"    uint16_t {name}_count;")
            w(f"    struct agx_str {name}[AGX_{N}_{name.upper()}_MAX_COUNT];")
    w("};")
    w("")
    _emit_codec(w, msg, msg.body, "", f"agx_wire_{n}")
    for version, body in sorted(msg.legacy.items()):
        vfixed, _ = split_fields(body)
        missing = {f[0] for f in vfixed + split_fields(body)[1]} - {f[0] for f in split_fields(msg.body)[0] + variable}
        if missing:
            raise TypeError(f"{msg.type.name} v{version} has fields {sorted(missing)} the newest layout lacks")
        sname = f"agx_wire_{n}_v{version}"
        if fixed_layout(body)[0]:
            _emit_wire_struct(w, sname, body, f"fixed part of {msg.type.name} in version-{version} frames")
        _emit_codec(w, msg, body, f"_v{version}", sname)
    if msg.legacy:
        w(f"/* Decode / encode a {msg.type.name} payload in the layout of a frame of this version. */")
        w(f"static inline int agx_{n}_decode_version(uint8_t version, const uint8_t *p, size_t n, struct agx_{n} *m)")
        w("{")
        for version in sorted(msg.legacy):
            w(f"    if (version <= {version}) return agx_{n}_v{version}_decode(p, n, m);")
        w(f"    return agx_{n}_decode(p, n, m);")
        w("}")
        w(f"static inline long agx_{n}_encode_version(uint8_t version, uint8_t *p, size_t cap, const struct agx_{n} *m)")
        w("{")
        for version in sorted(msg.legacy):
            w(f"    if (version <= {version}) return agx_{n}_v{version}_encode(p, cap, m);")
        w(f"    return agx_{n}_encode(p, cap, m);")
        w("}")
        w("")


def _emit_codec(w, msg, body, suffix, wire):
    """Decoder and encoder of one layout of msg's payload into/from the view struct agx_<name>."""
    n = msg.name
    N = _upper(n)
    layout, fixed_size = fixed_layout(body)
    _, variable = split_fields(body)
    fn = f"agx_{n}{suffix}"
    w(f"/* Decode a {msg.type.name} payload{f' (version {suffix[2:]} layout)' if suffix else ''}. "
      f"0, or -AGX_EPROTO if it is malformed in any way. */")
    w(f"static inline int {fn}_decode(const uint8_t *p, size_t n, struct agx_{n} *m)")
    w("{")
    w(f"    size_t off = {fixed_size}u;")
    w("    (void)p; (void)m;")
    if suffix:
        w("    *m = (struct agx_" + n + "){0};")
    w("    if (n < off) return -AGX_EPROTO;")
    for name, con, docs, foff, fsize in layout:
        if isinstance(con, Const):
            for k in range(fsize):
                w(f"    if (p[{foff + k}]) return -AGX_EPROTO;")
        else:
            w(f"    m->{name} = ({c_field_type(con)}){GETTERS[fsize]}(p + offsetof(struct {wire}, {name}));")
    for name, con, docs in variable:
        if isinstance(con, BoundedString):
            w(f"    if (agx_get_str(p, n, &off, &m->{name}, AGX_{N}_{name.upper()}_MAX_LEN)) return -AGX_EPROTO;")
        elif isinstance(con, BoundedBytes):
            w(f"    if (agx_get_bytes(p, n, &off, &m->{name}, AGX_{N}_{name.upper()}_MAX_LEN)) return -AGX_EPROTO;")
        else:
            w(f"    if (agx_get_strv(p, n, &off, m->{name}, &m->{name}_count, AGX_{N}_{name.upper()}_MAX_COUNT, "
              f"AGX_{N}_{name.upper()}_MAX_LEN)) return -AGX_EPROTO;")
    w("    return off == n ? 0 : -AGX_EPROTO;  /* trailing bytes are malformed too */")
    w("}")
    w("")
    w(f"/* Encode a {msg.type.name} payload{f' (version {suffix[2:]} layout)' if suffix else ''} into p[0..cap). "
      f"Its length, or -AGX_EMSGSIZE. */")
    w(f"static inline long {fn}_encode(uint8_t *p, size_t cap, const struct agx_{n} *m)")
    w("{")
    w(f"    size_t off = {fixed_size}u;")
    w("    (void)p; (void)m;")
    w("    if (cap < off) return -AGX_EMSGSIZE;")
    for name, con, docs, foff, fsize in layout:
        if isinstance(con, Const):
            for k in range(fsize):
                w(f"    p[{foff + k}] = 0;")
        else:
            cast = {1: "uint8_t", 2: "uint16_t", 4: "uint32_t", 8: "uint64_t"}[fsize]
            w(f"    {PUTTERS[fsize]}(p + offsetof(struct {wire}, {name}), ({cast})m->{name});")
    for name, con, docs in variable:
        if isinstance(con, BoundedString):
            w(f"    if (agx_put_str(p, cap, &off, m->{name}, AGX_{N}_{name.upper()}_MAX_LEN)) return -AGX_EMSGSIZE;")
        elif isinstance(con, BoundedBytes):
            w(f"    if (agx_put_bytes(p, cap, &off, m->{name}, AGX_{N}_{name.upper()}_MAX_LEN)) return -AGX_EMSGSIZE;")
        else:
            w(f"    if (agx_put_strv(p, cap, &off, m->{name}, m->{name}_count, AGX_{N}_{name.upper()}_MAX_COUNT, "
              f"AGX_{N}_{name.upper()}_MAX_LEN)) return -AGX_EMSGSIZE;")
    w("    return (long)off;")
    w("}")
    w("")


def _emit_program(w):
    """The conformance program (spec/programs.py): its name, limits and step table."""
    w("/* Conformance program (capability PROGRAMS): EXEC of argv[0] AGX_PROGRAM_NAME. */")
    w(f'#define AGX_PROGRAM_NAME "{programs.PROGRAM_NAME}"')
    for const in ("PROGRAM_MAX_STEPS", "USAGE_STATUS", "FAILED_STATUS"):
        w(f"#define AGX_{const} {getattr(programs, const)}u")
    w("/* One row per ProgramStep, indexed by AGX_STEP_*: {argv word, argument count, largest value of")
    w(" * the first argument if it is a number (0: a string)}. Only the first argument can be a number. */")
    w("#define AGX_PROGRAM_STEP_TABLE { \\")
    for s in programs.STEPS:
        num_max = programs.NUMBER_MAX.get(s.args[0], 0) if s.args else 0
        w(f'    {{"{s.step.word}", {len(s.args)}, {num_max}ull}}, \\')
    w("}")
    w("")


def _emit_tables(w):
    w("/* ---- per-type facts ---- */")
    w("static inline const char *agx_msg_type_name(uint16_t type)")
    w("{")
    w("    switch (type) {")
    for m in spec.MESSAGES:
        w(f'    case AGX_MSG_{m.type.name}: return "{m.type.name}";')
    w("    default: return 0;")
    w("    }")
    w("}")
    w("")
    w("/* Capability an agent needs to serve this request type; 0 if none. */")
    w("static inline uint64_t agx_msg_type_capability(uint16_t type)")
    w("{")
    w("    switch (type) {")
    for m in spec.MESSAGES:
        if m.capability is not None:
            w(f"    case AGX_MSG_{m.type.name}: return AGX_CAP_{m.capability.name};")
    w("    default: return 0;")
    w("    }")
    w("}")
    w("")
    w("/* First protocol version that has this type (0: unknown type). */")
    w("static inline unsigned agx_msg_type_since(uint16_t type)")
    w("{")
    w("    switch (type) {")
    for m in spec.MESSAGES:
        w(f"    case AGX_MSG_{m.type.name}: return {m.since}u;")
    w("    default: return 0;")
    w("    }")
    w("}")
    w("")
    w("/* 1 if the host may send this type to an agent. */")
    w("static inline int agx_msg_type_host_to_agent(uint16_t type)")
    w("{")
    w("    switch (type) {")
    for m in spec.MESSAGES:
        if m.direction in ("host->agent", "both"):
            w(f"    case AGX_MSG_{m.type.name}:")
    w("        return 1;")
    w("    default: return 0;")
    w("    }")
    w("}")
    w("")


def _wrap(text, width=92):
    words, line, out = text.split(), "", []
    for word in words:
        if len(line) + len(word) + 1 > width:
            out.append(line)
            line = word
        else:
            line = f"{line} {word}".strip()
    if line:
        out.append(line)
    return out


def generate_examples() -> str:
    """agentx_examples.h: the spec's golden sample bodies as C initialisers, so C
    encodes the very same values the Python codec encodes."""
    L = []
    w = L.append
    w(f"/* agentx_examples.h: golden sample messages. {marker('wslx.codegen.c_header')}. */")
    w("#ifndef WSLX_AGENTX_EXAMPLES_H")
    w("#define WSLX_AGENTX_EXAMPLES_H")
    w('#include "agentx_wire.h"')
    w("")
    w("/* Encode example number i as a whole frame (request_id 0x100 + i, 0 for events). Returns its length,")
    w(" * 0 past the last example, or a negative error. */")
    w("static inline long agx_example_frame(unsigned i, uint8_t *frame, size_t cap)")
    w("{")
    w("    long len;")
    w("    switch (i) {")
    for i, m in enumerate(spec.MESSAGES):
        N = m.name
        w(f"    case {i}: {{")
        w(f"        struct agx_{N} m = {{0}};")
        fixed, variable = split_fields(m.body)
        for name, con, docs in fixed:
            if isinstance(con, Const):
                continue
            v = int(m.example.get(name, 0))
            w(f"        m.{name} = ({c_field_type(con)}){v}{'ll' if v < 0 else 'ull'};")
        for name, con, docs in variable:
            v = m.example.get(name)
            if isinstance(con, BoundedString):
                w(f"        m.{name} = agx_str_from_c({_c_string(v.encode())});")
            elif isinstance(con, BoundedBytes):
                w(f"        m.{name}.ptr = (const uint8_t *){_c_string(v)}; m.{name}.len = {len(v)};")
            else:
                for k, item in enumerate(v):
                    w(f"        m.{name}[{k}] = agx_str_from_c({_c_string(item.encode())});")
                w(f"        m.{name}_count = {len(v)};")
        flags = "AGX_FLAG_REPLY" if m.kind == "reply" else "0"
        w(f"        len = agx_{N}_encode(frame + AGX_HEADER_SIZE, cap - AGX_HEADER_SIZE, &m);")
        w("        if (len < 0) return len;")
        w(f"        return (long)agx_frame_seal(frame, AGX_MSG_{m.type.name}, {flags}, {example_request_id(i, m):#x}u, "
          f"(uint32_t)len);")
        w("    }")
    w("    default: return 0;")
    w("    }")
    w("}")
    w(f"#define AGX_EXAMPLE_COUNT {len(spec.MESSAGES)}u")
    w("")
    w("/* Decode a payload of any type with the generated decoder and encode it again (for the")
    w(" * C/Python agreement test). Its length, -AGX_ENOSYS for an unknown type, or a decode error. */")
    w("static inline long agx_example_reencode(uint16_t type, const uint8_t *in, size_t n, uint8_t *out, size_t cap)")
    w("{")
    w("    int rc;")
    w("    switch (type) {")
    for m in spec.MESSAGES:
        w(f"    case AGX_MSG_{m.type.name}: {{")
        w(f"        static struct agx_{m.name} m;  /* large views stay off the stack */")
        w(f"        if ((rc = agx_{m.name}_decode(in, n, &m))) return rc;")
        w(f"        return agx_{m.name}_encode(out, cap, &m);")
        w("    }")
    w("    default: return -AGX_ENOSYS;")
    w("    }")
    w("}")
    w("#endif")
    return "\n".join(L) + "\n"


def _c_string(raw: bytes) -> str:
    """C literal; printable ASCII stays readable, the rest are 3-digit octal escapes
    (which, unlike \\x, cannot swallow a following digit)."""
    return '"' + "".join(chr(b) if 32 <= b < 127 and chr(b) not in '"\\?' else f"\\{b:03o}" for b in raw) + '"'


def example_request_id(i: int, m) -> int:
    """request_id of golden example i: events carry 0, requests and replies 0x100 + i."""
    return 0 if m.kind == "event" else 0x100 + i


def example_frames() -> list[bytes]:
    """The same golden frames, built by the normative construct spec in Python."""
    from ..agentx.codec import build_frame_reference
    out = []
    for i, m in enumerate(spec.MESSAGES):
        flags = spec.FrameFlag.REPLY if m.kind == "reply" else 0
        out.append(build_frame_reference(m.type, m.example, request_id=example_request_id(i, m), flags=flags))
    return out
