"""A HeaderSpec from a spec module that declares its header as plain data (spec modules import no codegen):

    TITLE, PREFIX, DOC, CONSTANTS = [(name, value, doc)], ENUMS = [(macro prefix, enum class)],
    STRUCTS = [(c_name, construct Struct, doc[, packed])]

Used by wslx.codegen.hyperv_header and vmbus_header, which SCons names as SPEC modules."""
from __future__ import annotations

from types import ModuleType

from .c_structs import Constant, CStruct, HeaderSpec


def header_spec(mod: ModuleType, name: str) -> HeaderSpec:
    return HeaderSpec(
        name=name, source=mod.__name__.replace(".", "/").join(("host/python/", ".py")), prefix=mod.PREFIX,
        title=mod.TITLE, doc=mod.DOC,
        constants=[Constant(n, v, d) for n, v, d in mod.CONSTANTS],
        enums=list(mod.ENUMS),
        structs=[CStruct(*entry) for entry in mod.STRUCTS],
    )
