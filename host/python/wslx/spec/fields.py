"""Bounded wire field types for the AgentX spec.

Each is an ordinary `construct` construct (so the spec parses and builds on its
own) that also carries the bound the generators need (C array sizes, docs,
fast codec). Every length is checked on parse AND build: nothing unbounded
crosses the wire in either direction.
"""
from __future__ import annotations

from construct import (Adapter, Const, Int16ul, Int32ul, PrefixedArray, Prefixed, GreedyBytes,
                       Renamed, ValidationError, Struct)


class BoundedBytes(Adapter):
    """u32 little-endian length, then that many bytes (at most max_len)."""

    prefix_size = 4

    def __init__(self, max_len: int):
        super().__init__(Prefixed(Int32ul, GreedyBytes))
        self.max_len = max_len

    def _decode(self, obj, context, path):
        if len(obj) > self.max_len:
            raise ValidationError(f"bytes field of {len(obj)} > {self.max_len} bytes", path=path)
        return bytes(obj)

    def _encode(self, obj, context, path):
        if not isinstance(obj, (bytes, bytearray, memoryview)):
            raise ValidationError(f"expected bytes, got {type(obj).__name__}", path=path)
        if len(obj) > self.max_len:
            raise ValidationError(f"bytes field of {len(obj)} > {self.max_len} bytes", path=path)
        return bytes(obj)


class BoundedString(Adapter):
    """u16 little-endian length, then UTF-8 bytes (at most max_len, no NUL)."""

    prefix_size = 2

    def __init__(self, max_len: int):
        super().__init__(Prefixed(Int16ul, GreedyBytes))
        self.max_len = max_len

    def _decode(self, obj, context, path):
        if len(obj) > self.max_len:
            raise ValidationError(f"string of {len(obj)} > {self.max_len} bytes", path=path)
        if b"\0" in obj:
            raise ValidationError("string contains NUL", path=path)
        try:
            return bytes(obj).decode("utf-8")
        except UnicodeDecodeError as e:
            raise ValidationError(f"string is not UTF-8: {e}", path=path) from None

    def _encode(self, obj, context, path):
        if not isinstance(obj, str):
            raise ValidationError(f"expected str, got {type(obj).__name__}", path=path)
        raw = obj.encode("utf-8")
        if len(raw) > self.max_len:
            raise ValidationError(f"string of {len(raw)} > {self.max_len} bytes", path=path)
        if b"\0" in raw:
            raise ValidationError("string contains NUL", path=path)
        return raw


class BoundedStringArray(Adapter):
    """u16 little-endian count (at most max_count), then that many BoundedString."""

    prefix_size = 2

    def __init__(self, max_count: int, max_len: int):
        self.item = BoundedString(max_len)
        super().__init__(PrefixedArray(Int16ul, self.item))
        self.max_count = max_count
        self.max_len = max_len

    def _decode(self, obj, context, path):
        if len(obj) > self.max_count:
            raise ValidationError(f"array of {len(obj)} > {self.max_count} strings", path=path)
        return list(obj)

    def _encode(self, obj, context, path):
        if not isinstance(obj, (list, tuple)):
            raise ValidationError(f"expected list of str, got {type(obj).__name__}", path=path)
        if len(obj) > self.max_count:
            raise ValidationError(f"array of {len(obj)} > {self.max_count} strings", path=path)
        return list(obj)


def Reserved(size: int):
    """Zero bytes that keep the fixed part naturally aligned; non-zero is an error."""
    return Const(bytes(size))


VARIABLE_FIELDS = (BoundedBytes, BoundedString, BoundedStringArray)


def split_fields(body: Struct):
    """(fixed, variable) lists of (name, construct, docs) in wire order.

    The generators rely on every fixed-size field preceding every variable one,
    so the fixed part is a plain C struct prefix."""
    fixed, variable = [], []
    for sc in body.subcons:
        name, docs, inner = sc.name, "", sc
        while isinstance(inner, Renamed):  # `"x" / T * "doc"` nests two Renamed
            name = inner.name or name
            docs = inner.docs or docs
            inner = inner.subcon
        entry = (name, inner, docs)
        if isinstance(inner, VARIABLE_FIELDS):
            variable.append(entry)
        else:
            if variable:
                raise TypeError(f"fixed field {sc.name!r} follows a variable-length field")
            fixed.append(entry)
    return fixed, variable


def size_range(body: Struct) -> tuple[int, int]:
    """(smallest, largest) encoded size of a payload of this layout: every variable field empty,
    and every one at its bounds."""
    fixed, variable = split_fields(body)
    lo = sum(con.sizeof() for _, con, _ in fixed)
    hi = lo
    for _, con, _ in variable:
        lo += con.prefix_size
        if isinstance(con, BoundedStringArray):
            hi += con.prefix_size + con.max_count * (con.item.prefix_size + con.max_len)
        else:
            hi += con.prefix_size + con.max_len
    return lo, hi


def field_offsets(body: Struct) -> dict[str, int]:
    """Byte offset of every field of a fixed-size Struct, in wire order: offsets come from the spec,
    never typed again by hand."""
    out, off = {}, 0
    for sc in body.subcons:
        out[sc.name] = off
        off += sc.sizeof()
    return out
