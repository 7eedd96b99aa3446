"""What a struct spec module puts into its generated C header: declarations only.

A spec module describes its header with a HeaderSpec:

    C_HEADER = HeaderSpec(
        name="portal_layout", source="host/python/wslx/spec/portal.py", prefix="PORTAL",
        title="Portal shared-memory layout",
        constants=[Constant("MAGIC", MAGIC, "region magic")],
        enums=[("PORTAL_OP", PortalOp)],
        structs=[CStruct("portal_span", SPAN, "a span of the arena")],
    )

wslx.codegen.c_structs renders it (C header and Markdown page); the spec modules
never import the generators.
"""
from __future__ import annotations

import enum
from dataclasses import dataclass, field

from construct import Struct


@dataclass(frozen=True)
class Constant:
    name: str          # without the header prefix
    value: int | str   # str: a C string (names)
    doc: str = ""


@dataclass(frozen=True)
class CStruct:
    c_name: str        # `struct <c_name>`
    body: Struct
    doc: str = ""
    packed: bool = False  # only for layouts that are not naturally aligned (e.g. ACPI tables)


@dataclass
class HeaderSpec:
    name: str                      # file stem: <name>.h, <name>.md
    source: str                    # repo-relative path of the spec module (for the marker)
    prefix: str                    # macro prefix for constants
    title: str
    constants: list[Constant] = field(default_factory=list)
    enums: list[tuple[str, type[enum.Enum]]] = field(default_factory=list)  # (macro prefix, enum class)
    structs: list[CStruct] = field(default_factory=list)
    doc: str = ""                  # prose for the top of the header and the Markdown page
    assembler: bool = False        # the constants and offset macros are usable from assembler (.S) too


def header_from_tables(name: str, *, prefix: str, title: str, doc: str, constants, enums, structs) -> HeaderSpec:
    """The HeaderSpec of spec module `name` declared as plain tables: constants as (name, value, doc),
    enums as (macro prefix, enum class), structs as (c_name, Struct, doc[, packed])."""
    return HeaderSpec(name=name, source=f"host/python/wslx/spec/{name}.py", prefix=prefix, title=title, doc=doc,
                      constants=[Constant(*c) for c in constants], enums=list(enums),
                      structs=[CStruct(*s) for s in structs])
