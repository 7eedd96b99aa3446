"""Generate a C header (and a Markdown reference) for fixed-layout structs
declared with construct: the Portal layout, boot-protocol and virtio structs.

A spec module describes what goes into its header with a HeaderSpec
(wslx.spec.header: Constant, CStruct, HeaderSpec),
and `generate_header(spec)` renders it: #defines for constants and enum
members (plus `<prefix>_name(v)` for non-flag enums), one C struct per CStruct with _Static_asserts on its size and on
every field's offset, and `<STRUCT>_SIZE` / `<STRUCT>_OFF_<FIELD>` macros so
parsers of untrusted bytes can read fields by offset without casting. The
header is freestanding (<stddef.h>, <stdint.h>) so the Track B kernel and the
host test builds use it as is. With HeaderSpec(assembler=True) the constants,
enum values and offset macros come first, spelled <PREFIX>_CONST(value, suffix)
so that a .S file can include the header too (the C declarations follow under
#ifndef __ASSEMBLER__), as Linux's _AC() does.

Supported field types: little- or big-endian integers (FormatField, Enum
and FlagsEnum of one), fixed arrays of integers, Bytes(n), Const(bytes)
(e.g. Reserved), and nested structs that are themselves listed in the
same HeaderSpec. Anything else raises TypeError, so a spec cannot silently
produce a wrong header.
"""
from __future__ import annotations

import enum
import importlib
import textwrap
from dataclasses import dataclass

from construct import Array, Bytes, Const, Enum, FlagsEnum, FormatField, Renamed, Struct

from ..spec.header import CStruct, HeaderSpec

C_INT_TYPES = {"B": "uint8_t", "H": "uint16_t", "L": "uint32_t", "I": "uint32_t", "Q": "uint64_t",
               "b": "int8_t", "h": "int16_t", "l": "int32_t", "i": "int32_t", "q": "int64_t"}


@dataclass(frozen=True)
class Field:
    name: str
    doc: str
    offset: int
    size: int
    c_decl: str        # e.g. "uint32_t head" or "uint8_t reserved[4]"
    c_type: str        # "uint32_t", "uint8_t[4]", "struct x"
    const: bytes | None = None


def marker(spec: HeaderSpec) -> str:
    return f"generated from {spec.source} by wslx.codegen.c_structs; do not edit"


def _unwrap(sc):
    """(name, docs, inner construct) through the Renamed layers `"x" / T * "doc"` creates."""
    name, docs, inner = getattr(sc, "name", None), "", sc
    while isinstance(inner, Renamed):
        name = inner.name or name
        docs = inner.docs or docs
        inner = inner.subcon
    return name, docs, inner


def _int_type(con) -> str:
    if isinstance(con, (Enum, FlagsEnum)):
        con = con.subcon
    if not isinstance(con, FormatField):
        raise TypeError(f"not an integer field: {con!r}")
    return C_INT_TYPES[con.fmtstr[-1]]


def struct_fields(cs: CStruct, known: dict[int, CStruct], subcons=None) -> tuple[list[Field], int]:
    """The fields of one struct with offsets, and its size (subcons: a prefix of the
    body's fields instead of all of them, e.g. the fixed part of a message)."""
    out, off = [], 0
    for sc in cs.body.subcons if subcons is None else subcons:
        name, docs, inner = _unwrap(sc)
        if not name:
            raise TypeError(f"{cs.c_name}: unnamed field {sc!r}; use Reserved(n) with a name for padding")
        size = inner.sizeof()
        const = None
        if isinstance(inner, Const):
            const = inner.value
            if not isinstance(const, bytes):
                raise TypeError(f"{cs.c_name}.{name}: only byte constants are supported")
            c_type, decl = f"uint8_t[{size}]", f"uint8_t {name}[{size}]"
        elif isinstance(inner, (FormatField, Enum, FlagsEnum)):
            c_type = _int_type(inner)
            decl = f"{c_type} {name}"
        elif isinstance(inner, Array):
            elem = inner.subcon
            count = inner.count
            if not isinstance(count, int):
                raise TypeError(f"{cs.c_name}.{name}: array count must be a constant")
            if isinstance(elem, Struct) and id(elem) in known:
                c_type = f"struct {known[id(elem)].c_name}[{count}]"
                decl = f"struct {known[id(elem)].c_name} {name}[{count}]"
            else:
                t = _int_type(elem)
                c_type, decl = f"{t}[{count}]", f"{t} {name}[{count}]"
        elif isinstance(inner, Bytes):
            c_type, decl = f"uint8_t[{size}]", f"uint8_t {name}[{size}]"
        elif isinstance(inner, Struct):
            if id(inner) not in known:
                raise TypeError(f"{cs.c_name}.{name}: nested struct must be listed earlier in the same HeaderSpec")
            c_type = f"struct {known[id(inner)].c_name}"
            decl = f"{c_type} {name}"
        else:
            raise TypeError(f"{cs.c_name}.{name}: unsupported construct {type(inner).__name__}")
        out.append(Field(name, docs, off, size, decl, c_type, const))
        off += size
    return out, off


def layouts(spec: HeaderSpec) -> list[tuple[CStruct, list[Field], int]]:
    known: dict[int, CStruct] = {}
    result = []
    for cs in spec.structs:
        fields, size = struct_fields(cs, known)
        result.append((cs, fields, size))
        known[id(cs.body)] = cs
    return result


def _literal(value: int, suffix: str = "u") -> str:
    return f"0x{value:X}{suffix}"


def _enum_value(member, literal=_literal) -> str:
    v = int(member.value)
    return literal(v, "u") if v >= 0 else str(v)


def _comment_lines(text: str, width: int = 96) -> list[str]:
    words, lines, cur = text.split(), [], ""
    for wd in words:
        if cur and len(cur) + 1 + len(wd) > width:
            lines.append(cur)
            cur = wd
        else:
            cur = f"{cur} {wd}" if cur else wd
    if cur:
        lines.append(cur)
    return lines


def emit_offset_macros(w, c_name: str, fields: list[Field], size: int, literal=None) -> None:
    """<STRUCT>_SIZE and <STRUCT>_OFF_<FIELD>; literal(value, suffix) spells the numbers."""
    upper = c_name.upper()
    num = literal or (lambda v, suffix: f"{v}{suffix}")
    w(f"#define {upper}_SIZE {num(size, 'u')}")
    for f in fields:
        w(f"#define {upper}_OFF_{f.name.upper()} {num(f.offset, 'u')}")


def emit_struct(w, c_name: str, fields: list[Field], size: int, *, packed: bool = False,
                offset_macros: bool = True) -> None:
    """The C struct with _Static_asserts on its size and every offset, after the
    <STRUCT>_SIZE / <STRUCT>_OFF_<FIELD> macros (offset_macros)."""
    if offset_macros:
        emit_offset_macros(w, c_name, fields, size)
    w(f"struct {c_name} {{")
    for f in fields:
        note = "must be zero" if f.const is not None and not any(f.const) else f.doc
        w(f"    {f.c_decl};" + (f"  /* {note} */" if note else ""))
    w("}" + (" __attribute__((packed))" if packed else "") + ";")
    w(f'_Static_assert(sizeof(struct {c_name}) == {size}, "{c_name} size");')
    for f in fields:
        w(f'_Static_assert(offsetof(struct {c_name}, {f.name}) == {f.offset}, "{c_name}.{f.name} offset");')


def generate_header(spec: HeaderSpec) -> str:
    guard = f"WSLX_{spec.name.upper()}_H"
    L: list[str] = []
    w = L.append
    w(f"/* {spec.name}.h: {spec.title}.")
    w(f" * {marker(spec)}.")
    w(" * Freestanding: needs only <stddef.h> and <stdint.h>. Multi-byte fields are little-endian")
    w(" * unless noted; the *_OFF_* macros let parsers of untrusted bytes read fields without casts. */")
    if spec.doc.strip():  # line breaks kept: the spec's prose has tables (the Markdown page shows the same)
        w("/*")
        for line in textwrap.dedent(spec.doc).strip("\n").replace("*/", "* /").splitlines():
            indent = line[:len(line) - len(line.lstrip())]
            for part in textwrap.wrap(line, 96, subsequent_indent=indent) or [""]:
                w(f" * {part}".rstrip())
        w(" */")
    w(f"#ifndef {guard}")
    w(f"#define {guard}")
    w("")
    structs = layouts(spec)
    if spec.assembler:
        # Constants, enum values and offsets first, spelled so that an assembler (.S) can use them
        # too (like Linux's _AC()); the C declarations follow outside the assembler's view.
        const = f"{spec.prefix}_CONST"
        literal = lambda v, suffix: f"{const}({_literal(v, '')}, {suffix})"  # noqa: E731
        w(f"/* Numbers are {const}(value, C suffix): the suffix is dropped in assembler. */")
        w("#ifdef __ASSEMBLER__")
        w(f"#define {const}(value, suffix) value")
        w("#else")
        w(f"#define {const}(value, suffix) value##suffix")
        w("#endif")
        w("")
    else:
        literal = _literal
        w("#include <stddef.h>")
        w("#include <stdint.h>")
        w("")
    for c in spec.constants:
        if isinstance(c.value, str):  # a name (virtio-serial port, GUID suffix): a C string
            value = '"' + c.value.replace("\\", "\\\\").replace('"', '\\"') + '"'
        else:
            value = literal(c.value, "ull" if c.value > 0xFFFFFFFF else "u")
        w(f"#define {spec.prefix}_{c.name} {value}" + (f"  /* {c.doc} */" if c.doc else ""))
    if spec.constants:
        w("")
    for prefix, enum_cls in spec.enums:
        first = (enum_cls.__doc__ or "").strip().splitlines()
        w(f"/* {enum_cls.__name__}" + (f": {first[0]}" if first else "") + " */")
        for member in enum_cls:
            w(f"#define {prefix}_{member.name} {_enum_value(member, literal)}")
        if not spec.assembler:
            _emit_enum_name(w, prefix, enum_cls)
        w("")
    if spec.assembler:
        for cs, fields, size in structs:
            emit_offset_macros(w, cs.c_name, fields, size, lambda v, suffix: f"{const}({v}, {suffix})")
        if structs:
            w("")
        w("#ifndef __ASSEMBLER__")
        w("#include <stddef.h>")
        w("#include <stdint.h>")
        w("")
        for prefix, enum_cls in spec.enums:
            _emit_enum_name(w, prefix, enum_cls)
    for cs, fields, size in structs:
        for line in _comment_lines(cs.doc):
            w(f"/* {line} */")
        emit_struct(w, cs.c_name, fields, size, packed=cs.packed, offset_macros=not spec.assembler)
        w("")
    if spec.assembler:
        w("#endif /* !__ASSEMBLER__ */")
        w("")
    w(f"#endif /* {guard} */")
    return "\n".join(L) + "\n"


def _emit_enum_name(w, prefix: str, enum_cls) -> None:
    if issubclass(enum_cls, enum.Flag):
        return
    # a name for log lines, so no guest writes its own switch over these values
    w(f"static inline const char *{prefix.lower()}_name(int64_t v)")
    w("{")
    w("    switch (v) {")
    for member in enum_cls:
        w(f"    case {int(member.value)}: return \"{member.name}\";")
    w("    default: return \"?\";")
    w("    }")
    w("}")


def generate_markdown(spec: HeaderSpec) -> str:
    L: list[str] = []
    w = L.append
    w(f"# {spec.title}")
    w("")
    w(f"<!-- {marker(spec)} -->")
    w("")
    if spec.doc:
        w(spec.doc.strip())
        w("")
    if spec.constants:
        w("## Constants")
        w("")
        w("| Name | Value | Meaning |")
        w("|---|---|---|")
        for c in spec.constants:
            shown = f'`"{c.value}"`' if isinstance(c.value, str) else f"`0x{c.value:X}` ({c.value})"
            w(f"| `{spec.prefix}_{c.name}` | {shown} | {c.doc} |")
        w("")
    for prefix, enum_cls in spec.enums:
        w(f"## {enum_cls.__name__}")
        w("")
        if enum_cls.__doc__:
            w(enum_cls.__doc__.strip())
            w("")
        w("| Name | Value |")
        w("|---|---|")
        for member in enum_cls:
            w(f"| `{prefix}_{member.name}` | `0x{int(member.value):X}` |")
        w("")
    for cs, fields, size in layouts(spec):
        w(f"## struct {cs.c_name} ({size} bytes)")
        w("")
        if cs.doc:
            w(cs.doc.strip())
            w("")
        w("| Offset | Size | Type | Field | Meaning |")
        w("|---:|---:|---|---|---|")
        for f in fields:
            doc = f.doc or ("reserved, must be zero" if f.const is not None and not any(f.const) else "")
            w(f"| {f.offset} | {f.size} | `{f.c_type}` | `{f.name}` | {doc} |")
        w("")
    return "\n".join(L)


def load_spec(module: str) -> HeaderSpec:
    """The HeaderSpec of a spec module, e.g. 'wslx.spec.portal' (its C_HEADER)."""
    mod = importlib.import_module(module)
    spec = getattr(mod, "C_HEADER", None)
    if not isinstance(spec, HeaderSpec):
        raise TypeError(f"{module} has no C_HEADER = HeaderSpec(...)")
    return spec
