"""AgentX codec.

Three implementations of one spec (wslx.spec.agentx):
  * the reference path, `build_frame_reference`/`parse_frame_reference`, which is
    the construct spec itself;
  * the Python path (`encode_frame_python`, `decode_frame_python`,
    `decode_body_python` and everything else here), compiled at import time from
    the same spec into struct.Struct calls, because construct alone manages only
    ~10k frames/s;
  * the C path (wslx.agentx.ccodec): the generated C encoders/decoders the
    guests run, through a CPython extension that builds the Frame objects,
    dicts, lists and strings itself (wslx.codegen.c_host_capi), else through
    cffi. encode_frame, decode_frame and decode_body use it when its library is
    built (BACKEND says which), and fall back to the Python path for whatever C
    declines, so errors are always the Python path's typed errors. Tests prove
    all of them give identical bytes and values.
    Its batch path is what a host reading and writing bursts uses: FrameReader
    has one C call decode every whole good frame at the front of its buffer,
    and encode_frames writes many frames with one C call; both hand whatever C
    stops at to the frame-by-frame path, so frames, bytes and errors (and their
    order) are the same as one at a time.

Bodies are plain dicts keyed by field name (reserved fields omitted).
"""
from __future__ import annotations

import dataclasses
import operator
import struct
import zlib

from construct import Const, ConstructError

from ..spec import agentx as spec
from ..spec.fields import BoundedBytes, BoundedString, BoundedStringArray, field_offsets, split_fields
from . import ccodec as _ccodec
from .errors import (BadChecksum, BadFlags, BadMagic, FrameTooLarge, InvalidMessage, MalformedPayload, Truncated,
                     UnknownType, UnsupportedVersion)

# The fast paths pack and unpack the header positionally, in the spec's field order.
_FAST_PATH_ORDER = ("magic", "version", "flags", "type", "request_id", "payload_len", "payload_crc", "header_crc")


def _header_layout():
    """Field names, struct formats and offsets of spec.FrameHeader. header_crc is its last field and
    covers every header byte before it."""
    fixed, variable = split_fields(spec.FrameHeader)
    if variable or tuple(f[0] for f in fixed) != _FAST_PATH_ORDER:
        raise TypeError(f"spec.FrameHeader changed its fields {[f[0] for f in fixed]}: update the codec's fast paths")
    names = tuple(name for name, _, _ in fixed)
    formats = {name: con.fmtstr.lstrip("<") for name, con, _ in fixed}
    size = spec.FrameHeader.sizeof()
    if size != spec.HEADER_SIZE:
        raise TypeError(f"spec.FrameHeader is {size} bytes, HEADER_SIZE says {spec.HEADER_SIZE}")
    return names, formats, field_offsets(spec.FrameHeader)


HEADER_FIELDS, _FORMATS, HEADER_OFFSETS = _header_layout()
HEADER = struct.Struct("<" + "".join(_FORMATS[n] for n in HEADER_FIELDS))
_SEALED_FIELDS = HEADER_FIELDS[:-1]              # what header_crc covers
_SEALED = struct.Struct("<" + "".join(_FORMATS[n] for n in _SEALED_FIELDS))
HEADER_CRC_COVERS = HEADER_OFFSETS["header_crc"]  # bytes 0..HEADER_CRC_COVERS of the header
_VERSION_AT = HEADER_OFFSETS["version"]
_FIELD = {n: struct.Struct("<" + _FORMATS[n]) for n in HEADER_FIELDS}
_HEADER_CRC = _FIELD["header_crc"]
_PAYLOAD_LEN, _PAYLOAD_LEN_AT = _FIELD["payload_len"], HEADER_OFFSETS["payload_len"]
MAGIC_BYTES = _FIELD["magic"].pack(spec.MAGIC)
_KNOWN_FLAGS = int(spec.FrameFlag.REPLY)
_crc32 = zlib.crc32

Header = dataclasses.make_dataclass("Header", [(n, int) for n in HEADER_FIELDS], frozen=True, slots=True)
Header.__doc__ = "A decoded frame header: the fields of spec.FrameHeader."


@dataclasses.dataclass(slots=True)
class Frame:
    type: int
    request_id: int
    flags: int
    body: dict
    version: int = spec.VERSION_MAX  # the frame's protocol version (its body is in that version's layout)

    @property
    def name(self) -> str:
        try:
            return spec.MsgType(self.type).name
        except ValueError:
            return f"0x{self.type:04x}"

    @property
    def is_reply(self) -> bool:
        return bool(self.flags & spec.FrameFlag.REPLY)


# ---- header -------------------------------------------------------------------------

def parse_header(buf) -> Header:
    """Check a 24-byte header in the order the C header does (see agx_header_decode)."""
    if len(buf) < spec.HEADER_SIZE:
        raise Truncated(f"header needs {spec.HEADER_SIZE} bytes, got {len(buf)}")
    h = Header(*HEADER.unpack_from(buf))
    if h.magic != spec.MAGIC:
        raise BadMagic(f"bad magic 0x{h.magic:08x}, expected 0x{spec.MAGIC:08x}")
    if h.header_crc != _crc32(bytes(buf[:HEADER_CRC_COVERS])):
        raise BadChecksum(f"header CRC 0x{h.header_crc:08x} does not match its bytes")
    if not spec.VERSION_MIN <= h.version <= spec.VERSION_MAX:
        raise UnsupportedVersion(f"frame version {h.version} outside {spec.VERSION_MIN}..{spec.VERSION_MAX}",
                                 request_id=h.request_id, msg_type=h.type)
    if h.flags & ~_KNOWN_FLAGS:
        raise BadFlags(f"unknown flag bits 0x{h.flags & ~_KNOWN_FLAGS:02x}", request_id=h.request_id, msg_type=h.type)
    if h.payload_len > spec.MAX_PAYLOAD:
        raise FrameTooLarge(f"payload_len {h.payload_len} > MAX_PAYLOAD {spec.MAX_PAYLOAD}",
                            request_id=h.request_id, msg_type=h.type)
    return h


def seal(msg_type: int, payload: bytes, request_id: int = 0, flags: int = 0) -> bytes:
    """Header + payload for an already-encoded payload."""
    if len(payload) > spec.MAX_PAYLOAD:
        raise InvalidMessage(f"payload of {len(payload)} bytes > MAX_PAYLOAD {spec.MAX_PAYLOAD}")
    head = _SEALED.pack(spec.MAGIC, spec.VERSION_MAX, flags, msg_type, request_id, len(payload), _crc32(payload))
    return head + _HEADER_CRC.pack(_crc32(head)) + payload


def raw_frame(msg_type: int, payload=b"", **overrides) -> bytes:
    """Header + payload with any header field forced, for tests that need bad frames.

    Keywords are spec.FrameHeader's fields (magic, version, flags, request_id, payload_len,
    payload_crc, header_crc); a field not given, or given as None, holds what encode_frame
    writes: payload_len and payload_crc describe `payload`, header_crc covers the header as
    forced. The payload is appended as given, whatever payload_len says."""
    unknown = set(overrides) - set(HEADER_FIELDS)
    if unknown:
        raise TypeError(f"raw_frame: {sorted(unknown)} are not FrameHeader fields {HEADER_FIELDS}")
    payload = bytes(payload)
    values = dict(magic=spec.MAGIC, version=spec.VERSION_MAX, flags=0, type=msg_type, request_id=0,
                  payload_len=len(payload), payload_crc=_crc32(payload))
    values.update((k, v) for k, v in overrides.items() if v is not None)
    head = _SEALED.pack(*(values[n] for n in _SEALED_FIELDS))
    return head + _HEADER_CRC.pack(values.get("header_crc", _crc32(head))) + payload


def reseal(frame: bytearray) -> None:
    """Recompute both CRCs of a whole frame in place, so a mutated frame passes the CRC checks
    and reaches the header and payload checks. frame holds at least a header."""
    _FIELD["payload_crc"].pack_into(frame, HEADER_OFFSETS["payload_crc"], _crc32(bytes(frame[spec.HEADER_SIZE:])))
    _HEADER_CRC.pack_into(frame, HEADER_CRC_COVERS, _crc32(bytes(frame[:HEADER_CRC_COVERS])))


def header_field(buf, name: str) -> int:
    """One FrameHeader field read from raw bytes (at least up to that field), unchecked."""
    return _FIELD[name].unpack_from(buf, HEADER_OFFSETS[name])[0]


# ---- bodies: compiled from the spec --------------------------------------------------

class _BodyCodec:
    """Encoder and decoder of one message body, compiled from the spec into
    straight-line Python (as construct's own compiler does) for speed."""

    def __init__(self, msg: spec.Message, body=None):
        fixed, variable = split_fields(msg.body if body is None else body)
        self.msg_type = int(msg.type)
        self.name = msg.type.name
        fmt, names, reserved, off = "<", [], [], 0
        for name, con, _ in fixed:
            size = con.sizeof()
            if isinstance(con, Const):
                fmt += f"{size}x"
                reserved.append((off, size))
            else:
                fmt += con.fmtstr[1:]
                names.append(name)
            off += size
        self.fixed_size = off
        self.all_names = tuple(names) + tuple(v[0] for v in variable)
        ns = {"_fixed": struct.Struct(fmt), "_H": struct.Struct("<H"), "_I": struct.Struct("<I"),
              "Malformed": MalformedPayload, "Invalid": InvalidMessage, "_extra": self._extra,
              "_struct_error": struct.error}
        self.decode = self._compile(ns, "decode", self._decoder_source(names, reserved, variable))
        self.encode = self._compile(ns, "encode", self._encoder_source(names, variable))

    @staticmethod
    def _compile(ns, fn_name, lines):
        exec("\n".join(lines), ns)
        return ns[fn_name]

    def _extra(self, body):
        missing = [k for k in self.all_names if k not in body]
        if missing:
            raise InvalidMessage(f"{self.name}: missing field {missing[0]!r}")
        raise InvalidMessage(f"{self.name}: unknown fields {sorted(set(body) - set(self.all_names))}")

    def _decoder_source(self, names, reserved, variable):
        m = self.name
        src = ["def decode(p):",
               "    n = len(p)",
               f"    if n < {self.fixed_size}: raise Malformed(f'{m}: payload of {{n}} bytes < fixed part {self.fixed_size}')"]
        for roff, rsize in reserved:
            src.append(f"    if any(p[{roff}:{roff + rsize}]): raise Malformed('{m}: reserved bytes at {roff} are not zero')")
        if names:
            src.append(f"    {', '.join(f'v_{k}' for k in names)}, = _fixed.unpack_from(p)")
        src += [f"    off = {self.fixed_size}", "    try:"]

        def get_str(store, field, max_len, ind):
            return [f"{ind}if n - off < 2: raise Malformed('{m}.{field}: truncated string length')",
                    f"{ind}ln = _H.unpack_from(p, off)[0]",
                    f"{ind}off += 2",
                    f"{ind}if ln > {max_len} or n - off < ln: raise Malformed(f'{m}.{field}: string length {{ln}} exceeds bound {max_len} or payload')",
                    f"{ind}raw = p[off:off + ln]",
                    f"{ind}off += ln",
                    f"{ind}if b'\\0' in raw: raise Malformed('{m}.{field}: string contains NUL')",
                    ind + store.format("raw.decode('utf-8')")]
        for name, con, _ in variable:
            if isinstance(con, BoundedString):
                src += get_str(f"v_{name} = {{}}", name, con.max_len, " " * 8)
            elif isinstance(con, BoundedBytes):
                src += [f"        if n - off < 4: raise Malformed('{m}.{name}: truncated length')",
                        "        ln = _I.unpack_from(p, off)[0]",
                        "        off += 4",
                        f"        if ln > {con.max_len} or n - off < ln: raise Malformed(f'{m}.{name}: length {{ln}} exceeds bound {con.max_len} or payload')",
                        f"        v_{name} = p[off:off + ln]",
                        "        off += ln"]
            else:
                src += [f"        if n - off < 2: raise Malformed('{m}.{name}: truncated count')",
                        "        cnt = _H.unpack_from(p, off)[0]",
                        "        off += 2",
                        f"        if cnt > {con.max_count}: raise Malformed(f'{m}.{name}: {{cnt}} items > bound {con.max_count}')",
                        f"        v_{name} = []",
                        f"        app = v_{name}.append",
                        "        for _ in range(cnt):"]
                src += get_str("app({})", name, con.max_len, " " * 12)
        src += ["        pass",
                "    except UnicodeDecodeError as e:",
                f"        raise Malformed(f'{m}: string is not UTF-8 ({{e.reason}})') from None",
                f"    if off != n: raise Malformed(f'{m}: {{n - off}} trailing bytes')",
                "    return {" + ", ".join(f"'{k}': v_{k}" for k in self.all_names) + "}"]
        return src

    def _encoder_source(self, names, variable):
        m = self.name

        def put_str(value, field, max_len, ind):
            return [f"{ind}if not isinstance({value}, str): raise Invalid(f'{m}.{field}: expected str, got {{type({value}).__name__}}')",
                    f"{ind}raw = {value}.encode('utf-8')",
                    f"{ind}if len(raw) > {max_len}: raise Invalid(f'{m}.{field}: {{len(raw)}} bytes > bound {max_len}')",
                    f"{ind}if b'\\0' in raw: raise Invalid('{m}.{field}: string contains NUL')",
                    f"{ind}out.append(_H.pack(len(raw)))",
                    f"{ind}out.append(raw)"]
        src = ["def encode(body):",
               f"    if len(body) != {len(self.all_names)}: _extra(body)",
               "    try:",
               (f"        out = [_fixed.pack({', '.join(f'body[{k!r}]' for k in names)})]" if names else "        out = []")]
        for name, con, _ in variable:
            src.append(f"        v = body[{name!r}]")
            if isinstance(con, BoundedString):
                src += put_str("v", name, con.max_len, " " * 8)
            elif isinstance(con, BoundedBytes):
                src += [f"        if not isinstance(v, (bytes, bytearray, memoryview)): raise Invalid(f'{m}.{name}: expected bytes, got {{type(v).__name__}}')",
                        f"        if len(v) > {con.max_len}: raise Invalid(f'{m}.{name}: {{len(v)}} bytes > bound {con.max_len}')",
                        "        out.append(_I.pack(len(v)))",
                        "        out.append(bytes(v))"]
            else:
                src += [f"        if not isinstance(v, (list, tuple)): raise Invalid(f'{m}.{name}: expected a list of str, got {{type(v).__name__}}')",
                        f"        if len(v) > {con.max_count}: raise Invalid(f'{m}.{name}: {{len(v)}} items > bound {con.max_count}')",
                        "        out.append(_H.pack(len(v)))",
                        "        for s in v:"]
                src += put_str("s", name, con.max_len, " " * 12)
        src += ["    except KeyError as e:",
                f"        raise Invalid(f'{m}: missing field {{e.args[0]!r}}') from None",
                "    except _struct_error as e:",
                f"        raise Invalid(f'{m}: bad fixed field value: {{e}}') from None",
                "    except UnicodeEncodeError as e:",
                f"        raise Invalid(f'{m}: cannot encode as UTF-8: {{e.reason}}') from None",
                "    return b''.join(out)"]
        return src


CODECS: dict[int, _BodyCodec] = {t: _BodyCodec(m) for t, m in spec.BY_TYPE.items()}  # newest layouts
# (type, version) -> codec for every version a message exists in (older layouts from Message.legacy)
VERSIONED: dict[tuple[int, int], _BodyCodec] = {
    (t, v): (CODECS[t] if m.body_for(v) is m.body else _BodyCodec(m, m.body_for(v)))
    for t, m in spec.BY_TYPE.items() for v in m.versions}


def _codec(msg_type: int, version: int) -> _BodyCodec | None:
    return VERSIONED.get((msg_type, version))


def _for_layout(codec: _BodyCodec, msg_type: int, body: dict) -> dict:
    """A body encoded in an older layout leaves out the fields only newer layouts have (STDIO's
    offset in a version-1 frame), so one body serves every version."""
    if codec is CODECS.get(msg_type) or not body:
        return body
    newer = set(CODECS[msg_type].all_names) - set(codec.all_names)
    return {k: v for k, v in body.items() if k not in newer}


def encode_body(msg_type: int, body: dict | None = None, *, version: int = spec.VERSION_MAX) -> bytes:
    codec = _codec(msg_type, version)
    if codec is None:
        raise InvalidMessage(f"message type {msg_type!r} does not exist in version {version}")
    return codec.encode(_for_layout(codec, msg_type, body or {}))


def decode_body_python(msg_type: int, payload, *, request_id: int = 0, version: int = spec.VERSION_MAX) -> dict:
    codec = _codec(msg_type, version)
    if codec is None:
        where = "" if msg_type in CODECS else " at all"
        raise UnknownType(f"unknown message type 0x{msg_type:04x} in version {version}{where}",
                          request_id=request_id, msg_type=msg_type)
    try:
        return codec.decode(payload)
    except MalformedPayload as e:
        e.request_id, e.msg_type = request_id, msg_type
        raise


def encode_frame_python(msg_type: int, body: dict | None = None, *, request_id: int = 0, flags: int = 0,
                        version: int = spec.VERSION_MAX) -> bytes:
    """A whole frame in this protocol version (the body in that version's layout)."""
    codec = _codec(msg_type, version)
    if codec is None:
        raise InvalidMessage(f"message type {msg_type!r} does not exist in version {version}")
    payload = codec.encode(_for_layout(codec, msg_type, body or {}))
    try:
        head = _SEALED.pack(spec.MAGIC, version, flags, msg_type, request_id, len(payload), _crc32(payload))
    except struct.error as e:
        raise InvalidMessage(f"bad header value: {e}") from None
    return head + _HEADER_CRC.pack(_crc32(head)) + payload


def decode_frame_python(buf) -> tuple[Frame, int]:
    """Decode one whole frame at the start of buf: (frame, bytes consumed)."""
    fast = False
    if len(buf) >= spec.HEADER_SIZE:
        magic, version, flags, msg_type, rid, plen, pcrc, hcrc = HEADER.unpack_from(buf)
        fast = (magic == spec.MAGIC and spec.VERSION_MIN <= version <= spec.VERSION_MAX and not flags & ~_KNOWN_FLAGS
                and plen <= spec.MAX_PAYLOAD and hcrc == _crc32(buf[:HEADER_CRC_COVERS]))
    if not fast:
        h = parse_header(buf)  # the careful path raises the precise error
        magic, version, flags, msg_type, rid, plen, pcrc, hcrc = dataclasses.astuple(h)
    end = spec.HEADER_SIZE + plen
    if len(buf) < end:
        raise Truncated(f"frame needs {end} bytes, got {len(buf)}", request_id=rid, msg_type=msg_type)
    payload = bytes(buf[spec.HEADER_SIZE:end])
    if _crc32(payload) != pcrc:
        raise BadChecksum("payload CRC does not match", request_id=rid, msg_type=msg_type)
    return Frame(msg_type, rid, flags, decode_body_python(msg_type, payload, request_id=rid, version=version),
                 version), end


# ---- the C path where it is built, else the Python path ----------------------------------
# The C path knows the newest layouts only: frames of an older version take the Python path.

_C = _ccodec.load()
BACKEND = "c" if _C is not None else "python"
if (tuple(f.name for f in dataclasses.fields(Frame)) != _ccodec.c_host_capi.FRAME_FIELDS
        or hasattr(Frame, "__post_init__")):
    raise TypeError("Frame changed: the C path sets c_host_capi.FRAME_FIELDS by name, without __init__")


def encode_frame(msg_type: int, body: dict | None = None, *, request_id: int = 0, flags: int = 0,
                 version: int = spec.VERSION_MAX) -> bytes:
    """Header + payload of a message in this protocol version; InvalidMessage for a body the spec does
    not allow."""
    if _C is not None and version == spec.VERSION_MAX:
        frame = _C.encode_frame(msg_type, body or {}, request_id, flags)
        if frame is not None:
            return frame
    return encode_frame_python(msg_type, body, request_id=request_id, flags=flags, version=version)


def encode_frames(items) -> bytes:
    """The frames of many (msg_type, body, request_id, flags) items, one after another: what
    b"".join(encode_frame(...) for each) gives, or the error the first bad item raises there.
    The batch path: where C is built, one C call encodes thousands of frames."""
    items = items if isinstance(items, list) else list(items)
    out, pos = [], 0
    while pos < len(items):
        if _C is not None:
            chunk, n = _C.encode_frames(items, pos)
            if n:
                out.append(chunk)
                pos += n
                continue
        msg_type, body, request_id, flags = items[pos]
        out.append(encode_frame(msg_type, body, request_id=request_id, flags=flags))
        pos += 1
    return b"".join(out)


def decode_frame(buf) -> tuple[Frame, int]:
    """Decode one whole frame at the start of buf: (frame, bytes consumed); a typed ProtocolError if bad."""
    if _C is not None and len(buf) > _VERSION_AT and buf[_VERSION_AT] == spec.VERSION_MAX:
        if _C.capi is not None:  # it declines exactly what the cffi decoder declines
            return _C.decode_frame_object(buf, Frame) or decode_frame_python(buf)
        r = _C.decode_frame(buf)
        if r is not None:
            return Frame(r[0], r[1], r[2], r[3]), r[4]
    return decode_frame_python(buf)


def decode_body(msg_type: int, payload, *, request_id: int = 0, version: int = spec.VERSION_MAX) -> dict:
    if _C is not None and version == spec.VERSION_MAX:
        body = _C.decode_body(msg_type, payload)
        if body is not None:
            return body
    return decode_body_python(msg_type, payload, request_id=request_id, version=version)


class FrameReader:
    """Incremental frame decoder for a byte stream, with resynchronisation.

    feed() bytes, then call next() until it returns None. next() raises a
    ProtocolError for each bad frame *after* consuming it, so the caller can
    answer and call next() again. The rules (the same in guest/agentx/agentx_rx.c):
    bad magic or header CRC means the length is untrustworthy: the reader drops
    bytes up to the next magic and reports that episode once. Oversized frames
    are skipped the same way: their payload is never waited for. A payload CRC
    mismatch drops only the header and scans on right after it, so frames inside
    a bogus payload (a header that lied about its length) are recovered. An intact
    header with a bad version or flags is reported at once; its payload is dropped
    whole only if it arrives with a matching CRC. Resynchronisation is linear: one
    magic search and one header CRC per candidate, no exception per candidate."""

    def __init__(self, *, batch: bool = True):
        self._buf = bytearray()
        self._in_garbage = False
        self._reject: tuple[int, int] | None = None  # (payload_len, payload_crc) of a rejected header
        # The batch path (C, where built): one call decodes every whole good frame at the front of
        # the buffer; next() hands them out in order. Whatever it stops at goes the careful way below.
        self._batch = _C.decode_frames if batch and _C is not None else None
        # The batch's frames not handed out yet, as an iterator: next() takes one with a bare for
        # loop, the cheapest step Python has. _ready_ends: where each of them ended in the buffer.
        self._ready = iter(())
        self._ready_count = 0
        self._ready_ends: list = []

    def feed(self, data) -> None:
        self._buf += data

    @property
    def pending(self) -> int:
        """Bytes fed and not yet handed out as frames or reported as errors."""
        queued, left, ends = 0, operator.length_hint(self._ready), self._ready_ends
        if left:
            i = self._ready_count - left
            queued = ends[-1] - (ends[i - 1] if i else 0)
        return len(self._buf) + queued

    def next(self) -> Frame | None:
        for frame in self._ready:
            return frame
        buf = self._buf
        while True:
            # The first frame not all here (by its unchecked length) leaves C nothing to do: a big frame
            # arriving in pieces is not copied for C once per piece.
            if (self._batch is not None and self._reject is None and len(buf) >= spec.HEADER_SIZE
                    and len(buf) >= spec.HEADER_SIZE + _PAYLOAD_LEN.unpack_from(buf, _PAYLOAD_LEN_AT)[0]):
                frames, ends = self._batch(buf, Frame)
                if frames:
                    del buf[:ends[-1]]
                    self._in_garbage = False
                    self._ready, self._ready_count, self._ready_ends = iter(frames), len(frames), ends
                    return next(self._ready)
            if self._reject is not None:
                length, crc = self._reject
                if len(buf) < length:
                    return None
                self._reject = None
                if _crc32(memoryview(buf)[:length]) == crc:
                    del buf[:length]
                else:
                    self._in_garbage = True  # its header lied: what follows it is scanned
                continue
            if len(buf) < spec.HEADER_SIZE:
                return None
            try:
                h = parse_header(buf)
            except (BadMagic, BadChecksum) as e:
                self._resync(1)
                if not self._in_garbage:
                    self._in_garbage = True
                    raise
                continue
            except FrameTooLarge:
                self._skip_to_magic(spec.HEADER_SIZE)
                self._in_garbage = False
                raise
            except (UnsupportedVersion, BadFlags):
                # The header is intact (CRC ok): report now. A length up to MAX_PAYLOAD is checked
                # against the payload CRC once the payload is here; an oversized one is not trusted.
                length, crc = header_field(buf, "payload_len"), header_field(buf, "payload_crc")
                del buf[:spec.HEADER_SIZE]
                if length <= spec.MAX_PAYLOAD:
                    self._reject = (length, crc)
                else:
                    self._skip_to_magic(0)
                self._in_garbage = False
                raise
            end = spec.HEADER_SIZE + h.payload_len
            if len(buf) < end:
                return None
            payload = bytes(buf[spec.HEADER_SIZE:end])
            if _crc32(payload) != h.payload_crc:
                del buf[:spec.HEADER_SIZE]  # the header may have lied about its length: scan on after it
                self._in_garbage = True
                raise BadChecksum(f"payload CRC mismatch in {_type_name(h.type)} frame", request_id=h.request_id,
                                  msg_type=h.type)
            del buf[:end]
            self._in_garbage = False
            return Frame(h.type, h.request_id, h.flags,
                         decode_body(h.type, payload, request_id=h.request_id, version=h.version), h.version)

    def _skip_to_magic(self, start: int) -> None:
        """Drop bytes before the next magic at or after `start`."""
        i = self._buf.find(MAGIC_BYTES, start)
        if i < 0:
            # keep a possible partial magic at the tail, but nothing before `start`
            i = max(start, len(self._buf) - (len(MAGIC_BYTES) - 1))
        del self._buf[:i]

    def _resync(self, start: int) -> None:
        """Drop bytes before the next magic at or after `start` whose header CRC is good (or
        that is too close to the end to tell): magic-dense garbage costs one find and one
        CRC per candidate, not one parse_header exception."""
        buf, view = self._buf, memoryview(self._buf)
        hsize, crc_off = spec.HEADER_SIZE, HEADER_CRC_COVERS
        i = buf.find(MAGIC_BYTES, start)
        while 0 <= i and i + hsize <= len(buf) and _HEADER_CRC.unpack_from(buf, i + crc_off)[0] != _crc32(
                view[i:i + crc_off]):
            i = buf.find(MAGIC_BYTES, i + 1)
        view.release()
        if i < 0:
            i = max(start, len(buf) - (len(MAGIC_BYTES) - 1))
        del buf[:i]

    def check_eof(self) -> None:
        """At end of stream: a partial frame left over is a Truncated error."""
        if self._buf:
            n = len(self._buf)
            self._buf.clear()
            raise Truncated(f"stream ended inside a frame ({n} bytes pending)")


def _type_name(t: int) -> str:
    try:
        return spec.MsgType(t).name
    except ValueError:
        return f"0x{t:04x}"


# ---- raw bodies for tests: no validation, so they can be malformed on purpose ----------

def raw_exec_body(argv: list[bytes], *, env: list[bytes] = (), cwd: bytes = b"", flags: int = 0) -> bytes:
    """An EXEC payload laid out by the spec (ExecBody) from raw bytes, checking nothing:
    invalid UTF-8, NUL bytes and counts above the bounds go on the wire as given."""
    values = dict(flags=flags, argv=argv, env=list(env), cwd=cwd)
    fixed, variable = split_fields(spec.ExecBody)
    out = [struct.pack("<" + "".join(con.fmtstr[1:] for _, con, _ in fixed), *(values[n] for n, _, _ in fixed))]
    for name, con, _ in variable:
        items = values[name] if isinstance(con, BoundedStringArray) else [values[name]]
        if isinstance(con, BoundedStringArray):
            out.append(len(items).to_bytes(con.prefix_size, "little"))
        out += [len(raw).to_bytes(BoundedString.prefix_size, "little") + raw for raw in items]
    return b"".join(out)


# ---- reference path: the construct spec itself ---------------------------------------

def build_frame_reference(msg_type: int, body: dict, *, request_id: int = 0, flags: int = 0,
                          version: int = spec.VERSION_MAX) -> bytes:
    msg = spec.BY_TYPE[int(msg_type)]
    payload = msg.body_for(version).build(body)
    head = spec.FrameHeader.build(dict(magic=spec.MAGIC, version=version, flags=int(flags),
                                       type=int(msg_type), request_id=request_id, payload_len=len(payload),
                                       payload_crc=zlib.crc32(payload), header_crc=0))
    head = head[:HEADER_CRC_COVERS] + _HEADER_CRC.pack(zlib.crc32(head[:HEADER_CRC_COVERS]))
    return head + payload


def parse_body_reference(msg_type: int, payload: bytes, version: int = spec.VERSION_MAX) -> dict:
    """Parse with construct; raises ConstructError on anything malformed."""
    c = spec.BY_TYPE[int(msg_type)].body_for(version).parse(payload)
    return {k: v for k, v in c.items() if not k.startswith("_")}


__all__ = ["Frame", "FrameReader", "Header", "parse_header", "seal", "raw_frame", "reseal", "header_field", "encode_body",
           "decode_body", "encode_frame", "encode_frames", "decode_frame", "decode_body_python", "encode_frame_python",
           "decode_frame_python", "BACKEND", "raw_exec_body", "build_frame_reference", "parse_body_reference",
           "ConstructError"]
