"""The AgentX codec's C path: the generated C encoders/decoders (agentx_wire.h)
in the cffi extension build/agentx/_agentx_codec.* (built by SCons from
wslx.codegen.c_host_codec), with Python glue compiled here at import from the
same spec description (c_host_codec.host_fields), so a new field costs no code.

load() returns a CCodec, or None when the library is missing, does not load,
or was built from another spec (wslx.agentx.codec then stays on its Python
path). Every CCodec method returns None instead of raising: whatever C does not
accept (a bad value, a malformed frame) is left to the Python codec, the
reference, which raises the precise typed error.

Where the CPython extension build/agentx/_agentx_capi.* (wslx.codegen.c_host_capi,
the same generated C building the Python objects itself) is built from the same
spec, CCodec.capi is it and the batch path and frame-at-a-time calls go through
it first; anything it declines goes on to the cffi glue, then to Python. Without
it (missing, stale, WSLX_CODEC=cffi) CCodec.capi is None and cffi does it all.
"""
from __future__ import annotations

import functools
import importlib.machinery
import importlib.util
import os
import struct
import sys
import sysconfig
import threading

from ..codegen import c_host_capi, c_host_codec
from ..codegen.c_host_codec import host_fields, int_limits

_FRAME_VALUES = c_host_codec.FRAME_VALUES
_CATCH = (KeyError, TypeError, ValueError, UnicodeError, OverflowError, AttributeError, struct.error)


def library_path(module: str = c_host_codec.MODULE):
    from .. import repo_root
    return repo_root() / "build" / "agentx" / (module + sysconfig.get_config_var("EXT_SUFFIX"))


def _load_extension(module: str):
    """The built extension module, or None (missing or not loadable)."""
    path = library_path(module)
    if not path.exists():
        return None
    try:
        loader = importlib.machinery.ExtensionFileLoader(module, str(path))
        mod = importlib.util.module_from_spec(importlib.util.spec_from_file_location(module, str(path), loader=loader))
        loader.exec_module(mod)
    except (ImportError, OSError):
        return None
    return mod


def _encoder_source(msg, batch: bool = False) -> tuple[list[str], str]:
    """(source, struct format of the values) of prepare(body, rid, flags, vals, at): the frame's flat values
    packed into vals at byte offset at, and (text, bin) of its strings and bytes (wslx.codegen.c_host_codec),
    or None for anything C should not see. batch: the values start with the lengths of text and bin, as
    agx_host_encode_frames takes them."""
    fields = host_fields(msg)
    fmt = "<" + "Q" * (c_host_codec.FRAME_VALUES + 2 * batch)
    values, strings, blobs = [str(int(msg.type)), "rid", "flags", str(c_host_codec.encode_values(msg))], [], []
    src = ["def prepare(body, rid, flags, vals, at=0):",
           f"    if len(body) != {len(fields)}: return None"]
    for name, kind, con in fields:
        src.append(f"    f_{name} = body[{name!r}]")
        if kind == "int":
            fmt += "q" if int_limits(con)[0] < 0 else "Q"
            values.append(f"f_{name}")
        elif kind == "strv":
            src.append(f"    if type(f_{name}) is not list and type(f_{name}) is not tuple: return None")
            fmt += "Q"
            values.append(f"len(f_{name})")
            strings.append(f"*f_{name}")
        elif kind == "str":
            strings.append(f"f_{name}")
        else:
            src.append(f"    if type(f_{name}) is not bytes and type(f_{name}) is not bytearray: return None")
            fmt += "Q"
            values.append(f"len(f_{name})")
            blobs.append(f"f_{name}")
    src += [f"    text = '\\0'.join(({', '.join(strings)},)).encode()" if strings else "    text = b''",
            f"    data = b''.join(({', '.join(blobs)},))" if blobs else "    data = b''"]
    if batch:
        values[:0] = ["len(text)", "len(data)"]
    src += [f"    _pack_into(vals, at, {', '.join(values)})", "    return text, data"]
    return src, fmt


def _decoder_source(msg) -> list[str]:
    """decode(b, v, i): the body dict from the flat values v[i:] (a list or tuple) and the bytes b they point into.
    Values before the first string array sit at fixed offsets from i (k below); an array moves i on."""
    src = ["def decode(b, v, i):"]
    names, k = [], 0

    def at(k):
        return f"v[i + {k}]" if k else "v[i]"
    for name, kind, con in host_fields(msg):
        names.append(name)
        if kind == "int":
            signed = int_limits(con)[0] < 0
            src.append(f"    f_{name} = {at(k)}" + (f" - (({at(k)} >> 63) << 64)" if signed else ""))
            k += 1
        elif kind == "strv":
            # Most arrays on the wire hold none or one string: those skip the loop.
            src += [f"    c = {at(k)}",
                    "    if c == 0:",
                    f"        f_{name} = []",
                    "    elif c == 1:",
                    f"        r = v[i + {k + 1}]",
                    f"        f_{name} = [b[r >> 32:(r >> 32) + (r & 0xFFFFFFFF)].decode()]",
                    "    else:",
                    f"        f_{name} = []",
                    f"        app = f_{name}.append",
                    f"        for r in v[i + {k + 1}:i + {k + 1} + c]:",
                    "            o = r >> 32",
                    "            app(b[o:o + (r & 0xFFFFFFFF)].decode())",
                    f"    i += {k + 1} + c"]
            k = 0
        else:
            conv = ".decode()" if kind == "str" else ""
            src += [f"    r = {at(k)}", f"    f_{name} = b[r >> 32:(r >> 32) + (r & 0xFFFFFFFF)]{conv}"]
            k += 1
    src.append("    return {" + ", ".join(f"{n!r}: f_{n}" for n in names) + "}")
    return src


def _compile(lines: list[str], name: str, **env):
    ns: dict = dict(env)
    exec("\n".join(lines), ns)
    return ns[name]


class _Buffers(threading.local):
    """Per thread: what the C functions fill in place, and their cdata pointers (made once)."""

    def __init__(self, ffi, cap: int, nvals: int, batch_cap: int = 1 << 16):
        self.batch = bytearray(8 * batch_cap)     # the batch decoder's values (uint64, native order)
        self.batch_cap = batch_cap
        self.batch_view = memoryview(self.batch).cast("Q")
        self.batch_ptr = ffi.cast("uint64_t *", ffi.from_buffer(self.batch))
        self.used = ffi.new("size_t[2]")
        self.batch_out = bytearray(1 << 20)  # the batch encoder's output: stops a frame short of its end
        self.batch_out_view = memoryview(self.batch_out)
        self.batch_out_ptr = ffi.cast("char *", ffi.from_buffer(self.batch_out))
        self.out = bytearray(cap)
        self.out_view = memoryview(self.out)
        self.vals = bytearray(8 * nvals)
        self.out_ptr = ffi.cast("char *", ffi.from_buffer(self.out))
        self.vals_ptr = ffi.cast("uint64_t *", ffi.from_buffer(self.vals))


class CCodec:
    """Frames through the C codec. Each method returns None where C declines (then use Python)."""

    def __init__(self, module, capi=None):
        from ..spec import agentx as spec
        self.ffi, self.lib = module.ffi, module.lib
        self.capi = capi  # the CPython extension, tried first where built
        self._cap = spec.HEADER_SIZE + spec.MAX_PAYLOAD  # AGX_MAX_FRAME
        nvals = c_host_codec.max_values()
        self._tls = _Buffers(self.ffi, self._cap, nvals)
        self._structs = [struct.Struct(f"<{k}Q") for k in range(nvals + 1)]
        self._encode = self.lib.agx_host_encode_frame
        self._decode_frame = self.lib.agx_host_decode_frame
        self._decode_body = self.lib.agx_host_decode_body
        self._decode_frames = self.lib.agx_host_decode_frames
        if _FRAME_VALUES != 4:
            raise TypeError("decode_frames' value offsets assume FRAME_VALUES == 4")
        self.preparers, self._batch_preparers = {}, {}
        for m in spec.MESSAGES:
            lines, fmt = _encoder_source(m)
            self.preparers[int(m.type)] = _compile(lines, "prepare", _pack_into=struct.Struct(fmt).pack_into)
            lines, fmt = _encoder_source(m, batch=True)
            self._batch_preparers[int(m.type)] = (_compile(lines, "prepare", _pack_into=struct.Struct(fmt).pack_into),
                                                  struct.calcsize(fmt))
        self._encode_frames = self.lib.agx_host_encode_frames
        self.decoders = {int(m.type): _compile(_decoder_source(m), "decode") for m in spec.MESSAGES}

    def encode_frame(self, msg_type: int, body: dict, request_id: int, flags: int) -> bytes | None:
        if self.capi is not None:
            out, n = self.capi.encode_frames([(msg_type, body, request_id, flags)], 0, 1, 1)
            if n:
                return out
        prepare = self.preparers.get(msg_type)
        if prepare is None:
            return None
        b = self._tls
        try:
            prepared = prepare(body, request_id, flags, b.vals)
        except _CATCH:
            return None
        if prepared is None:
            return None
        text, data = prepared
        n = self._encode(b.vals_ptr, text, len(text), data, len(data), b.out_ptr)
        return None if n < 0 else bytes(b.out_view[:n])

    def encode_frames(self, items, start: int = 0) -> tuple[bytes, int]:
        """The batch path: (the frames of items[start:], one after another, how many) for
        (msg_type, body, request_id, flags) items, up to the first one C declines (the caller
        encodes that one frame by frame: it raises the precise error) or as many as fit."""
        if self.capi is not None:
            return self.capi.encode_frames(items, start, self.BATCH_FRAMES, self.BATCH_WINDOW)
        b = self._tls
        vals, cap, preparers = b.batch, len(b.batch), self._batch_preparers
        texts, blobs, at, count = [], [], 0, 0
        for msg_type, body, request_id, flags in items[start:start + self.BATCH_FRAMES]:
            prepare, size = preparers.get(msg_type, (None, 0))
            if prepare is None or at + size > cap:
                break
            try:
                prepared = prepare(body, request_id, flags, vals, at)
            except _CATCH:
                break
            if prepared is None:
                break
            texts.append(prepared[0])
            blobs.append(prepared[1])
            at += size
            count += 1
        if not count:
            return b"", 0
        n = self._encode_frames(b.batch_ptr, count, b"".join(texts), b"".join(blobs), b.batch_out_ptr,
                                len(b.batch_out), b.used)
        return bytes(b.batch_out_view[:b.used[0]]), n

    def decode_frame(self, buf) -> tuple[int, int, int, dict, int] | None:
        """(type, request_id, flags, body, bytes used) of the frame at the start of buf, or None."""
        if type(buf) is not bytes:
            buf = bytes(buf)
        b = self._tls
        k = self._decode_frame(buf, len(buf), b.vals_ptr)
        if k < 0:
            return None
        v = self._structs[k].unpack_from(b.vals)
        return v[0], v[1], v[2], self.decoders[v[0]](buf, v, _FRAME_VALUES), v[3]

    # Bytes one decode_frames call looks at: string offsets must fit in 32 bits, and a window
    # a few frames long keeps the copy for the frames' bytes objects small.
    BATCH_WINDOW = 1 << 20
    BATCH_FRAMES = 4096  # frames per encode_frames call

    def decode_frames(self, buf, make) -> tuple[list, list]:
        """The batch path: (frames, ends) for the whole frames at the start of buf, made by
        make(type, request_id, flags, body, version) (codec.Frame), up to the first frame C does
        not decode (bad, partial, older version: the caller's frame-by-frame path decides what
        it is; nothing is skipped). ends[i]: where frame i ends in buf."""
        if self.capi is not None:
            frames, ends = self.capi.decode_frames(buf, make, self.BATCH_WINDOW, 1 << 30)
            return frames, memoryview(ends).cast("I")
        data = bytes(buf[:self.BATCH_WINDOW])
        b = self._tls
        n = self._decode_frames(data, len(data), b.batch_ptr, b.batch_cap, b.used)
        if n <= 0:
            return [], []
        decoders, frames, ends, i, end = self.decoders, [], [], 0, 0
        v = b.batch_view[:b.used[1]].tolist()
        app = frames.append
        for _ in range(n):
            t = v[i + 1]
            app(make(t, v[i + 2], v[i + 3], decoders[t](data, v, i + 5)))  # 5: the count, then FRAME_VALUES
            end += v[i + 4]
            ends.append(end)
            i += v[i]
        return frames, ends

    def decode_frame_object(self, buf, make):
        """(make(...) of the frame at the start of buf, bytes used), or None: through the CPython
        extension (None without it)."""
        if self.capi is None:
            return None
        frames, ends = self.capi.decode_frames(buf, make, self._cap, 1)
        return (frames[0], int.from_bytes(ends, sys.byteorder)) if frames else None

    def decode_body(self, msg_type: int, payload) -> dict | None:
        decode = self.decoders.get(msg_type)
        if decode is None:
            return None
        if type(payload) is not bytes:
            payload = bytes(payload)
        b = self._tls
        k = self._decode_body(msg_type, payload, len(payload), b.vals_ptr)
        return None if k < 0 else decode(payload, self._structs[k].unpack_from(b.vals), 0)


@functools.lru_cache(maxsize=None)
def load() -> CCodec | None:
    """The C codec, or None (missing, unloadable or stale library; WSLX_CODEC=python forces None,
    WSLX_CODEC=cffi leaves the CPython extension out)."""
    choice = os.environ.get("WSLX_CODEC")
    if choice == "python":
        return None
    module = _load_extension(c_host_codec.MODULE)
    if module is None or module.lib.agx_host_spec_digest() != c_host_codec.spec_digest():
        return None  # missing, or built from another spec: rebuild with scons
    capi = None if choice == "cffi" else _load_extension(c_host_capi.MODULE)
    if capi is not None and capi.spec_digest() != c_host_capi.spec_digest():
        capi = None
    return CCodec(module, capi)
