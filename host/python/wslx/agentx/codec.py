"""AgentX codec.

Two implementations of one spec (wslx.spec.agentx):
  * the reference path, `build_frame_reference`/`parse_frame_reference`, which is
    the construct spec itself;
  * the fast path (everything else here), compiled at import time from the same
    spec into struct.Struct calls, because construct alone manages only ~10k
    frames/s. Tests prove both give identical bytes and values.

Bodies are plain dicts keyed by field name (reserved fields omitted).
"""
from __future__ import annotations

import dataclasses
import struct
import zlib

from construct import Const, ConstructError

from ..spec import agentx as spec
from ..spec.fields import BoundedBytes, BoundedString, BoundedStringArray, split_fields
from .errors import (BadChecksum, BadFlags, BadMagic, FrameTooLarge, InvalidMessage, MalformedPayload, Truncated,
                     UnknownType, UnsupportedVersion)

HEADER = struct.Struct("<IBBHIIII")
_HEADER20 = struct.Struct("<IBBHIII")
MAGIC_BYTES = struct.pack("<I", spec.MAGIC)
_KNOWN_FLAGS = int(spec.FrameFlag.REPLY)
_crc32 = zlib.crc32


@dataclasses.dataclass(frozen=True, slots=True)
class Header:
    magic: int
    version: int
    flags: int
    type: int
    request_id: int
    payload_len: int
    payload_crc: int
    header_crc: int


@dataclasses.dataclass(slots=True)
class Frame:
    type: int
    request_id: int
    flags: int
    body: dict

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
    if h.header_crc != _crc32(bytes(buf[:20])):
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
    head = _HEADER20.pack(spec.MAGIC, spec.VERSION_MAX, flags, msg_type, request_id, len(payload), _crc32(payload))
    return head + struct.pack("<I", _crc32(head)) + payload


# ---- bodies: compiled from the spec --------------------------------------------------

_STR, _STRV, _BYTES = 1, 2, 3


class _BodyCodec:
    __slots__ = ("msg_type", "name", "fixed", "fixed_names", "reserved", "fixed_size", "variable", "all_names")

    def __init__(self, msg: spec.Message):
        fixed, variable = split_fields(msg.body)
        fmt = "<"
        self.fixed_names = []
        self.reserved = []  # (offset, size)
        off = 0
        for name, con, _ in fixed:
            size = con.sizeof()
            if isinstance(con, Const):
                fmt += f"{size}x"
                self.reserved.append((off, size))
            else:
                fmt += con.fmtstr[1:]
                self.fixed_names.append(name)
            off += size
        self.fixed = struct.Struct(fmt)
        assert self.fixed.size == off
        self.fixed_size = off
        self.variable = []
        for name, con, _ in variable:
            if isinstance(con, BoundedString):
                self.variable.append((name, _STR, con.max_len, 0))
            elif isinstance(con, BoundedStringArray):
                self.variable.append((name, _STRV, con.max_len, con.max_count))
            elif isinstance(con, BoundedBytes):
                self.variable.append((name, _BYTES, con.max_len, 0))
        self.msg_type = int(msg.type)
        self.name = msg.type.name
        self.all_names = tuple(self.fixed_names) + tuple(v[0] for v in self.variable)

    def decode(self, p) -> dict:
        n = len(p)
        if n < self.fixed_size:
            raise MalformedPayload(f"{self.name}: payload of {n} bytes < fixed part {self.fixed_size}")
        for roff, rsize in self.reserved:
            if any(p[roff:roff + rsize]):
                raise MalformedPayload(f"{self.name}: reserved bytes at {roff} are not zero")
        body = dict(zip(self.fixed_names, self.fixed.unpack_from(p)))
        off = self.fixed_size
        for name, kind, max_len, max_count in self.variable:
            if kind == _STR:
                body[name], off = _get_str(p, off, n, max_len, self.name, name)
            elif kind == _BYTES:
                if n - off < 4:
                    raise MalformedPayload(f"{self.name}.{name}: truncated length")
                (ln,) = struct.unpack_from("<I", p, off)
                if ln > max_len or n - off - 4 < ln:
                    raise MalformedPayload(f"{self.name}.{name}: length {ln} exceeds bound {max_len} or payload")
                body[name] = bytes(p[off + 4:off + 4 + ln])
                off += 4 + ln
            else:
                if n - off < 2:
                    raise MalformedPayload(f"{self.name}.{name}: truncated count")
                (count,) = struct.unpack_from("<H", p, off)
                if count > max_count:
                    raise MalformedPayload(f"{self.name}.{name}: {count} items > bound {max_count}")
                off += 2
                items = []
                for _ in range(count):
                    s, off = _get_str(p, off, n, max_len, self.name, name)
                    items.append(s)
                body[name] = items
        if off != n:
            raise MalformedPayload(f"{self.name}: {n - off} trailing bytes")
        return body

    def encode(self, body: dict) -> bytes:
        try:
            parts = [self.fixed.pack(*[body[k] for k in self.fixed_names])]
        except KeyError as e:
            raise InvalidMessage(f"{self.name}: missing field {e.args[0]!r}") from None
        except struct.error as e:
            raise InvalidMessage(f"{self.name}: bad fixed field value: {e}") from None
        for name, kind, max_len, max_count in self.variable:
            try:
                v = body[name]
            except KeyError:
                raise InvalidMessage(f"{self.name}: missing field {name!r}") from None
            if kind == _STR:
                parts.append(_put_str(v, max_len, self.name, name))
            elif kind == _BYTES:
                if not isinstance(v, (bytes, bytearray, memoryview)):
                    raise InvalidMessage(f"{self.name}.{name}: expected bytes, got {type(v).__name__}")
                if len(v) > max_len:
                    raise InvalidMessage(f"{self.name}.{name}: {len(v)} bytes > bound {max_len}")
                parts.append(struct.pack("<I", len(v)))
                parts.append(bytes(v))
            else:
                if not isinstance(v, (list, tuple)):
                    raise InvalidMessage(f"{self.name}.{name}: expected a list of str, got {type(v).__name__}")
                if len(v) > max_count:
                    raise InvalidMessage(f"{self.name}.{name}: {len(v)} items > bound {max_count}")
                parts.append(struct.pack("<H", len(v)))
                parts.extend(_put_str(s, max_len, self.name, name) for s in v)
        extra = set(body) - set(self.all_names)
        if extra:
            raise InvalidMessage(f"{self.name}: unknown fields {sorted(extra)}")
        return b"".join(parts)


def _get_str(p, off, n, max_len, msg, field):
    if n - off < 2:
        raise MalformedPayload(f"{msg}.{field}: truncated string length")
    (ln,) = struct.unpack_from("<H", p, off)
    if ln > max_len or n - off - 2 < ln:
        raise MalformedPayload(f"{msg}.{field}: string length {ln} exceeds bound {max_len} or payload")
    raw = bytes(p[off + 2:off + 2 + ln])
    if b"\0" in raw:
        raise MalformedPayload(f"{msg}.{field}: string contains NUL")
    try:
        return raw.decode("utf-8"), off + 2 + ln
    except UnicodeDecodeError as e:
        raise MalformedPayload(f"{msg}.{field}: not UTF-8 ({e.reason} at byte {e.start})") from None


def _put_str(s, max_len, msg, field) -> bytes:
    if not isinstance(s, str):
        raise InvalidMessage(f"{msg}.{field}: expected str, got {type(s).__name__}")
    try:
        raw = s.encode("utf-8")
    except UnicodeEncodeError as e:
        raise InvalidMessage(f"{msg}.{field}: cannot encode as UTF-8: {e.reason}") from None
    if len(raw) > max_len:
        raise InvalidMessage(f"{msg}.{field}: {len(raw)} bytes > bound {max_len}")
    if b"\0" in raw:
        raise InvalidMessage(f"{msg}.{field}: string contains NUL")
    return struct.pack("<H", len(raw)) + raw


CODECS: dict[int, _BodyCodec] = {t: _BodyCodec(m) for t, m in spec.BY_TYPE.items()}


def encode_body(msg_type: int, body: dict | None = None) -> bytes:
    try:
        codec = CODECS[int(msg_type)]
    except (KeyError, ValueError, TypeError):
        raise InvalidMessage(f"unknown message type {msg_type!r}") from None
    return codec.encode(body or {})


def decode_body(msg_type: int, payload, *, request_id: int = 0) -> dict:
    codec = CODECS.get(msg_type)
    if codec is None:
        raise UnknownType(f"unknown message type 0x{msg_type:04x}", request_id=request_id, msg_type=msg_type)
    try:
        return codec.decode(payload)
    except MalformedPayload as e:
        e.request_id, e.msg_type = request_id, msg_type
        raise


def encode_frame(msg_type: int, body: dict | None = None, *, request_id: int = 0, flags: int = 0) -> bytes:
    return seal(int(msg_type), encode_body(msg_type, body), request_id, int(flags))


def decode_frame(buf) -> tuple[Frame, int]:
    """Decode one whole frame at the start of buf: (frame, bytes consumed)."""
    h = parse_header(buf)
    end = spec.HEADER_SIZE + h.payload_len
    if len(buf) < end:
        raise Truncated(f"frame needs {end} bytes, got {len(buf)}", request_id=h.request_id, msg_type=h.type)
    payload = bytes(buf[spec.HEADER_SIZE:end])
    if _crc32(payload) != h.payload_crc:
        raise BadChecksum("payload CRC does not match", request_id=h.request_id, msg_type=h.type)
    return Frame(h.type, h.request_id, h.flags, decode_body(h.type, payload, request_id=h.request_id)), end


class FrameReader:
    """Incremental frame decoder for a byte stream, with resynchronisation.

    feed() bytes, then call next() until it returns None. next() raises a
    ProtocolError for each bad frame *after* consuming it, so the caller can
    answer and call next() again. Bad magic or header CRC means the length is
    untrustworthy: the reader drops bytes up to the next magic and reports that
    episode once. Oversized frames are skipped the same way: their payload is
    never waited for."""

    def __init__(self):
        self._buf = bytearray()
        self._in_garbage = False

    def feed(self, data) -> None:
        self._buf += data

    @property
    def pending(self) -> int:
        return len(self._buf)

    def next(self) -> Frame | None:
        buf = self._buf
        while True:
            if len(buf) < spec.HEADER_SIZE:
                return None
            try:
                h = parse_header(buf)
            except (BadMagic, BadChecksum) as e:
                self._skip_to_magic(1)
                if not self._in_garbage:
                    self._in_garbage = True
                    raise
                continue
            except FrameTooLarge:
                self._skip_to_magic(spec.HEADER_SIZE)
                self._in_garbage = False
                raise
            except (UnsupportedVersion, BadFlags) as e:
                # The header is intact (CRC ok), so its length is trusted: skip the frame.
                need = spec.HEADER_SIZE + _header_len(buf)
                if len(buf) < need:
                    return None
                del buf[:need]
                self._in_garbage = False
                raise
            end = spec.HEADER_SIZE + h.payload_len
            if len(buf) < end:
                return None
            payload = bytes(buf[spec.HEADER_SIZE:end])
            del buf[:end]
            self._in_garbage = False
            if _crc32(payload) != h.payload_crc:
                raise BadChecksum(f"payload CRC mismatch in {_type_name(h.type)} frame", request_id=h.request_id,
                                  msg_type=h.type)
            return Frame(h.type, h.request_id, h.flags, decode_body(h.type, payload, request_id=h.request_id))

    def _skip_to_magic(self, start: int) -> None:
        i = self._buf.find(MAGIC_BYTES, start)
        if i < 0:
            # keep a possible partial magic at the tail
            keep = len(MAGIC_BYTES) - 1
            del self._buf[:max(0, len(self._buf) - keep)]
        else:
            del self._buf[:i]

    def check_eof(self) -> None:
        """At end of stream: a partial frame left over is a Truncated error."""
        if self._buf:
            n = len(self._buf)
            self._buf.clear()
            raise Truncated(f"stream ended inside a frame ({n} bytes pending)")


def _header_len(buf) -> int:
    return struct.unpack_from("<I", buf, 12)[0]


def _type_name(t: int) -> str:
    try:
        return spec.MsgType(t).name
    except ValueError:
        return f"0x{t:04x}"


# ---- reference path: the construct spec itself ---------------------------------------

def build_frame_reference(msg_type: int, body: dict, *, request_id: int = 0, flags: int = 0) -> bytes:
    msg = spec.BY_TYPE[int(msg_type)]
    payload = msg.body.build(body)
    head = spec.FrameHeader.build(dict(magic=spec.MAGIC, version=spec.VERSION_MAX, flags=int(flags),
                                       type=int(msg_type), request_id=request_id, payload_len=len(payload),
                                       payload_crc=zlib.crc32(payload), header_crc=0))
    head = head[:20] + struct.pack("<I", zlib.crc32(head[:20]))
    return head + payload


def parse_body_reference(msg_type: int, payload: bytes) -> dict:
    """Parse with construct; raises ConstructError on anything malformed."""
    c = spec.BY_TYPE[int(msg_type)].body.parse(payload)
    return {k: v for k, v in c.items() if not k.startswith("_")}


__all__ = ["Frame", "FrameReader", "Header", "parse_header", "seal", "encode_body", "decode_body", "encode_frame",
           "decode_frame", "build_frame_reference", "parse_body_reference", "ConstructError"]
