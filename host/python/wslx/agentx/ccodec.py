"""The AgentX codec's C path: the generated C encoders/decoders (agentx_wire.h)
in the cffi extension build/agentx/_agentx_codec.* (built by SCons from
wslx.codegen.c_host_codec), with Python glue compiled here at import from the
same spec description (c_host_codec.host_fields), so a new field costs no code.

load() returns a CCodec, or None when the library is missing, does not load,
or was built from another spec (wslx.agentx.codec then stays on its Python
path). Every CCodec method returns None instead of raising: whatever C does not
accept (a bad value, a malformed frame) is left to the Python codec, the
reference, which raises the precise typed error.
"""
from __future__ import annotations

import functools
import importlib.machinery
import importlib.util
import os
import struct
import sysconfig
import threading

from ..codegen import c_host_codec
from ..codegen.c_host_codec import host_fields, int_limits

_CATCH = (KeyError, TypeError, ValueError, UnicodeError, OverflowError, AttributeError, struct.error)


def library_path():
    from .. import repo_root
    return repo_root() / "build" / "agentx" / (c_host_codec.MODULE + sysconfig.get_config_var("EXT_SUFFIX"))


def _encoder_source(msg) -> list[str]:
    """prepare(body): (flat values, blob) of a body, or None for anything C should not see."""
    fields = host_fields(msg)
    src = ["def prepare(body):",
           f"    if len(body) != {len(fields)}: return None",
           "    vals = []",
           "    parts = []",
           "    off = 0"]
    for name, kind, con in fields:
        src.append(f"    v = body[{name!r}]")
        if kind == "int":
            lo, hi = int_limits(con)
            src.append(f"    if not isinstance(v, int) or not {lo} <= v <= {hi}: return None")
            src.append("    vals.append(v & 0xFFFFFFFFFFFFFFFF)")
        elif kind == "bytes":
            src += ["    if type(v) is not bytes and type(v) is not bytearray: return None",
                    "    parts.append(v)",
                    "    vals.append(off << 32 | len(v))",
                    "    off += len(v)"]
        else:
            if kind == "strv":
                src += ["    if type(v) is not list and type(v) is not tuple: return None",
                        "    vals.append(len(v))"]
            src += [f"    for s in {'v' if kind == 'strv' else '(v,)'}:",
                    "        if type(s) is not str: return None",
                    "        r = s.encode()",
                    "        parts.append(r)",
                    "        vals.append(off << 32 | len(r))",
                    "        off += len(r)"]
    src.append("    return vals, b''.join(parts)")
    return src


def _decoder_source(msg) -> list[str]:
    """decode(b, v): the body dict from the flat values v (a tuple) and the bytes b they point into."""
    src = ["def decode(b, v):", "    i = 0"]
    names = []
    for name, kind, con in host_fields(msg):
        names.append(name)
        if kind == "int":
            signed = int_limits(con)[0] < 0
            src.append(f"    f_{name} = v[i]" + (" - ((v[i] >> 63) << 64)" if signed else ""))
            src.append("    i += 1")
        elif kind == "strv":
            src += [f"    f_{name} = []", f"    app = f_{name}.append", "    i += 1",
                    "    for r in v[i:i + v[i - 1]]:",
                    "        o = r >> 32",
                    "        app(b[o:o + (r & 0xFFFFFFFF)].decode())",
                    "    i += v[i - 1]"]
        else:
            conv = ".decode()" if kind == "str" else ""
            src += ["    r = v[i]", "    o = r >> 32", f"    f_{name} = b[o:o + (r & 0xFFFFFFFF)]{conv}", "    i += 1"]
    src.append("    return {" + ", ".join(f"{n!r}: f_{n}" for n in names) + "}")
    return src


def _compile(lines: list[str], name: str):
    ns: dict = {}
    exec("\n".join(lines), ns)
    return ns[name]


class _Buffers(threading.local):
    """Per thread: what the C functions fill in place, and their cdata pointers (made once)."""

    def __init__(self, ffi, cap: int, nvals: int):
        self.out = bytearray(cap)
        self.out_view = memoryview(self.out)
        self.vals = bytearray(8 * nvals)
        self.head = bytearray(8 * 4)
        self.out_ptr = ffi.cast("char *", ffi.from_buffer(self.out))
        self.vals_ptr = ffi.cast("uint64_t *", ffi.from_buffer(self.vals))
        self.head_ptr = ffi.cast("uint64_t *", ffi.from_buffer(self.head))


class CCodec:
    """Frames through the C codec. Each method returns None where C declines (then use Python)."""

    def __init__(self, module):
        from ..spec import agentx as spec
        self.ffi, self.lib = module.ffi, module.lib
        self._cap = spec.HEADER_SIZE + spec.MAX_PAYLOAD
        nvals = c_host_codec.max_values()
        self._tls = _Buffers(self.ffi, self._cap, nvals)
        self._structs = [struct.Struct(f"<{k}Q") for k in range(nvals + 1)]
        self._header = struct.Struct("<4Q")
        self._encode = self.lib.agx_host_encode_frame
        self._decode_frame = self.lib.agx_host_decode_frame
        self._decode_body = self.lib.agx_host_decode_body
        self.preparers = {int(m.type): _compile(_encoder_source(m), "prepare") for m in spec.MESSAGES}
        self.decoders = {int(m.type): _compile(_decoder_source(m), "decode") for m in spec.MESSAGES}

    def encode_frame(self, msg_type: int, body: dict, request_id: int, flags: int) -> bytes | None:
        prepare = self.preparers.get(msg_type)
        if prepare is None:
            return None
        try:
            prepared = prepare(body)
            if prepared is None:
                return None
            vals, blob = prepared
            b = self._tls
            self._structs[len(vals)].pack_into(b.vals, 0, *vals)
            n = self._encode(msg_type, flags, request_id, b.vals_ptr, len(vals), blob, len(blob), b.out_ptr,
                             self._cap)
        except _CATCH:
            return None
        return None if n < 0 else bytes(b.out_view[:n])

    def decode_frame(self, buf) -> tuple[int, int, int, dict, int] | None:
        """(type, request_id, flags, body, bytes used) of the frame at the start of buf, or None."""
        if type(buf) is not bytes:
            buf = bytes(buf)
        b = self._tls
        k = self._decode_frame(buf, len(buf), b.head_ptr, b.vals_ptr)
        if k < 0:
            return None
        t, rid, flags, used = self._header.unpack_from(b.head)
        return t, rid, flags, self.decoders[t](buf, self._structs[k].unpack_from(b.vals)), used

    def decode_body(self, msg_type: int, payload) -> dict | None:
        decode = self.decoders.get(msg_type)
        if decode is None:
            return None
        if type(payload) is not bytes:
            payload = bytes(payload)
        b = self._tls
        k = self._decode_body(msg_type, payload, len(payload), b.vals_ptr)
        return None if k < 0 else decode(payload, self._structs[k].unpack_from(b.vals))


@functools.lru_cache(maxsize=None)
def load() -> CCodec | None:
    """The C codec, or None (missing, unloadable or stale library; WSLX_CODEC=python forces None)."""
    if os.environ.get("WSLX_CODEC") == "python":
        return None
    path = library_path()
    if not path.exists():
        return None
    try:
        loader = importlib.machinery.ExtensionFileLoader(c_host_codec.MODULE, str(path))
        module = importlib.util.module_from_spec(importlib.util.spec_from_file_location(
            c_host_codec.MODULE, str(path), loader=loader))
        loader.exec_module(module)
    except (ImportError, OSError):
        return None
    if module.lib.agx_host_spec_digest() != c_host_codec.spec_digest():
        return None  # built from another spec: rebuild with scons
    return CCodec(module)
