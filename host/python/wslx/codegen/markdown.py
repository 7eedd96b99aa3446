"""Generate the AgentX protocol reference (Markdown) from wslx.spec.agentx."""
from __future__ import annotations

from construct import Const

from ..spec import agentx as spec
from ..spec import programs
from ..spec.fields import BoundedBytes, BoundedString, BoundedStringArray, split_fields
from .c_header import example_frames, example_request_id, fixed_layout, marker


def _comment_block(text: str) -> str:
    return " ".join(text.split())


def _field_type(con) -> str:
    if isinstance(con, BoundedString):
        return f"str (u16 len + UTF-8, <= {con.max_len} B)"
    if isinstance(con, BoundedStringArray):
        return f"str[] (u16 count <= {con.max_count}; each <= {con.max_len} B)"
    if isinstance(con, BoundedBytes):
        return f"bytes (u32 len + data, <= {con.max_len} B)"
    if isinstance(con, Const):
        return f"{con.sizeof()} zero bytes"
    return {"<B": "u8", "<H": "u16", "<L": "u32", "<I": "u32", "<Q": "u64", "<l": "i32", "<i": "i32"}[con.fmtstr]


def _hexdump(b: bytes) -> str:
    return "\n".join(f"{i:04x}  " + " ".join(f"{x:02x}" for x in b[i:i + 16]) for i in range(0, len(b), 16))


def generate() -> str:
    L = []
    w = L.append
    w(f"<!-- {marker('wslx.codegen.markdown')} -->")
    w(f"# AgentX wire protocol, version {spec.VERSION_MIN}..{spec.VERSION_MAX}")
    w("")
    w((spec.__doc__ or "").strip())
    w("")
    w("## Limits and endpoints")
    w("")
    w("| name | value |")
    w("|---|---|")
    for k in ("MAGIC", "HEADER_SIZE", "MAX_PAYLOAD", "MAX_PAYLOAD_MIN", "MAX_FRAME", "STDIO_MAX_DATA", "PING_MAX_DATA",
              "VSOCK_CONTROL_PORT", "VSOCK_HOST_CID", "VIRTIO_SERIAL_PORT_NAME"):
        v = getattr(spec, k)
        w(f"| {k} | {hex(v) if k == 'MAGIC' else v} |")
    w("")
    w("## Frame header")
    w("")
    _table(w, spec.FrameHeader)
    w("")
    w("Receivers check, in this order: magic and header CRC (EBADMSG: resynchronise on the next magic), "
      "version (EPROTONOSUPPORT), flags (EPROTO), payload_len (EMSGSIZE: skipped unread), payload CRC "
      "(EBADMSG), type (ENOSYS), payload (EPROTO: any bound, trailing byte, NUL in a string or invalid UTF-8). "
      "An agent answers each with ERROR and keeps serving (details: 'Order of checks' below). A header's length is trusted only as far as the "
      "payload CRC confirms it: after a payload CRC mismatch, and after a rejected (version or flags) header "
      "whose payload does not arrive with its CRC, the receiver scans on from just after that header, so "
      "frames that a lying header claimed as its payload are still received.")
    for title, text in spec.SECTIONS:
        w("")
        w(f"## {title}")
        w("")
        w(text.strip())
    w("")
    w("## Limits")
    w("")
    w("| limit | value | what happens at it |")
    w("|---|---|---|")
    for name, what in spec.LIMITS:
        v = getattr(spec, name)
        if isinstance(v, dict):
            v = ", ".join(f"{k.name.lower()} {n}" for k, n in v.items())
        w(f"| {name} | {v} | {what} |")
    w("")
    w("## Errors")
    w("")
    w("ERROR carries a Linux errno value. " + _comment_block(spec.ERRNO_WHEN_NOTE))
    w("")
    w("| code | value | sent when |")
    w("|---|---|---|")
    for code, when in spec.ERRNO_WHEN.items():
        w(f"| {code.name} | {int(code)} | {when} |")
    w("")
    w("## Enumerations")
    for e in spec.ENUMS:
        w("")
        w(f"### {e.__name__}")
        w("")
        w((e.__doc__ or "").strip())
        w("")
        w("| name | value |")
        w("|---|---|")
        for m in e:
            w(f"| {m.name} | 0x{int(m):x} |")
    w("")
    w("## Messages")
    frames = example_frames()
    for i, m in enumerate(spec.MESSAGES):
        w("")
        w(f"### {m.type.name} (0x{int(m.type):04x})")
        w("")
        w(f"{m.kind}, {m.direction}" + (f"; needs capability {m.capability.name}" if m.capability else "")
          + (f"; replies: {', '.join(r.name for r in m.replies)}" if m.replies else ""))
        w("")
        w(m.doc)
        w("")
        if m.since > 1:
            w(f"Since version {m.since}; a frame of an older version with this type gets ENOSYS.")
            w("")
        if m.body.subcons:
            _table(w, m.body)
        else:
            w("Empty payload.")
        for version, body in sorted(m.legacy.items()):
            w("")
            w(f"Payload in version-{version} frames:")
            w("")
            _table(w, body)
        w("")
        rid = example_request_id(i, m)
        w(f"Example frame (version {spec.VERSION_MAX}, request_id {rid:#x}"
          f"{' as every event' if m.kind == 'event' else ''}, {m.example or 'empty'}):")
        w("")
        w("```")
        w(_hexdump(frames[i]))
        w("```")
    _program_section(w)
    return "\n".join(L) + "\n"


def _program_section(w):
    w("")
    w(f"## Conformance program `{programs.PROGRAM_NAME}` (capability PROGRAMS)")
    w("")
    w((programs.__doc__ or "").strip().split("\n\nStdlib only")[0])
    w("")
    w("| step | arguments | what it does |")
    w("|---|---|---|")
    for s in programs.STEPS:
        args = " ".join(f"{a} (0..{programs.NUMBER_MAX[a]})" if a in programs.NUMBER_MAX else a for a in s.args)
        w(f"| `{s.step.word}` | {args or '-'} | {s.doc} |")


def _table(w, body):
    layout, _ = fixed_layout(body)
    _, variable = split_fields(body)
    w("| offset | field | type | meaning |")
    w("|---|---|---|---|")
    for name, con, docs, off, size in layout:
        w(f"| {off} | {name} | {_field_type(con)} | {docs} |")
    for name, con, docs in variable:
        w(f"| then | {name} | {_field_type(con)} | {docs} |")
