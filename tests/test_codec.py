"""AgentX codec: every message round-trips, matches the golden bytes and the
normative construct spec, and every kind of bad input gives its typed error."""
from __future__ import annotations

import struct
import zlib
from pathlib import Path

import pytest

from wslx.agentx import codec
from wslx.agentx.errors import (BadChecksum, BadFlags, BadMagic, FrameTooLarge, InvalidMessage, MalformedPayload,
                                ProtocolError, Truncated, UnknownType, UnsupportedVersion)
from wslx.spec import agentx as spec

GOLDEN = Path(__file__).parent / "golden" / "agentx_examples.hex"


def golden_frames() -> dict[str, bytes]:
    out = {}
    for line in GOLDEN.read_text().splitlines():
        if line and not line.startswith("#"):
            name, hexbytes = line.split()
            out[name] = bytes.fromhex(hexbytes)
    return out


@pytest.mark.parametrize("msg", spec.MESSAGES, ids=lambda m: m.name)
def test_every_message_round_trips_and_matches_golden_bytes(msg):
    i = spec.MESSAGES.index(msg)
    flags = spec.FrameFlag.REPLY if msg.kind == "reply" else 0
    frame = codec.encode_frame(msg.type, msg.example, request_id=0x100 + i, flags=flags)
    assert frame == golden_frames()[msg.type.name]
    assert frame == codec.build_frame_reference(msg.type, msg.example, request_id=0x100 + i, flags=flags)
    decoded, used = codec.decode_frame(frame)
    assert used == len(frame)
    assert (decoded.type, decoded.request_id, decoded.flags) == (msg.type, 0x100 + i, flags)
    assert decoded.body == msg.example
    assert codec.parse_body_reference(msg.type, frame[spec.HEADER_SIZE:]) == msg.example


def test_golden_file_covers_every_message_type():
    assert set(golden_frames()) == {m.type.name for m in spec.MESSAGES} == {t.name for t in spec.MsgType}


def test_message_type_values_are_explicit_and_unique():
    values = [int(t) for t in spec.MsgType]
    assert len(set(values)) == len(values)
    assert spec.MsgType.HELLO == 1 and spec.MsgType.SHUTDOWN == 0x0A and spec.MsgType.QUIESCE_COMPLETE == 0x85


def _frame(**kw):
    return codec.encode_frame(spec.MsgType.PING, dict(data=b"abc"), request_id=9, **kw)


@pytest.mark.parametrize("mutate,error,code", [
    (lambda f: b"XXXX" + f[len(codec.MAGIC_BYTES):], BadMagic, spec.ErrorCode.EBADMSG),
    (lambda f: f[:codec.HEADER_CRC_COVERS] + bytes(4) + f[spec.HEADER_SIZE:], BadChecksum, spec.ErrorCode.EBADMSG),
    (lambda f: f[:-1] + bytes([f[-1] ^ 1]), BadChecksum, spec.ErrorCode.EBADMSG),
    (lambda f: f[:10], Truncated, spec.ErrorCode.EPROTO),
    (lambda f: f[:-2], Truncated, spec.ErrorCode.EPROTO),
])
def test_bad_frames_raise_typed_errors(mutate, error, code):
    with pytest.raises(error) as ei:
        codec.decode_frame(mutate(_frame()))
    assert ei.value.code == code
    assert str(ei.value)


def test_header_layout_is_the_specs():
    """The fast codec's header struct is compiled from spec.FrameHeader, field for field."""
    assert codec.HEADER.size == spec.FrameHeader.sizeof() == spec.HEADER_SIZE
    values = dict(magic=1, version=2, flags=3, type=4, request_id=5, payload_len=6, payload_crc=7, header_crc=8)
    raw = spec.FrameHeader.build(values)
    assert codec.HEADER.unpack(raw) == tuple(values[n] for n in codec.HEADER_FIELDS)
    assert {n: codec.header_field(raw, n) for n in codec.HEADER_FIELDS} == values


def test_raw_frame_defaults_to_the_encoders_bytes_and_forces_any_field():
    payload = codec.encode_body(spec.MsgType.PING, dict(data=b"abc"))
    good = codec.encode_frame(spec.MsgType.PING, dict(data=b"abc"), request_id=9)
    assert codec.raw_frame(spec.MsgType.PING, payload, request_id=9) == good
    assert codec.raw_frame(spec.MsgType.PING, payload, request_id=9, payload_len=None) == good
    for name in codec.HEADER_FIELDS:
        bad = codec.raw_frame(spec.MsgType.PING, payload, **{"request_id": 9, name: 0x7E})
        assert codec.header_field(bad, name) == 0x7E and bad[spec.HEADER_SIZE:] == payload
        if name != "header_crc":  # the header CRC still covers the forced header: only that field is wrong
            assert codec.header_field(bad, "header_crc") == zlib.crc32(bad[:codec.HEADER_CRC_COVERS])
    with pytest.raises(TypeError, match="length"):
        codec.raw_frame(spec.MsgType.PING, payload, length=3)


def test_reseal_repairs_both_crcs():
    f = bytearray(codec.encode_frame(spec.MsgType.PING, dict(data=b"abc"), request_id=9))
    f[-1] ^= 1
    f[codec.HEADER_OFFSETS["request_id"]] ^= 1
    with pytest.raises(BadChecksum):
        codec.decode_frame(bytes(f))
    codec.reseal(f)
    frame, _ = codec.decode_frame(bytes(f))
    assert frame.request_id == 8 and frame.body == dict(data=b"abb")


def _reheader(msg_type=spec.MsgType.PING, payload=b"\3\0\0\0abc", version=1, flags=0, length=None, rid=9):
    return codec.raw_frame(msg_type, payload, version=version, flags=flags, payload_len=length, request_id=rid)


@pytest.mark.parametrize("frame,error", [
    (_reheader(version=9), UnsupportedVersion),
    (_reheader(flags=0x40), BadFlags),
    (_reheader(length=spec.MAX_PAYLOAD + 1), FrameTooLarge),
    (_reheader(msg_type=0x7777), UnknownType),
    (_reheader(payload=b"\3\0\0\0ab"), MalformedPayload),
    (_reheader(payload=b"\3\0\0\0abcd"), MalformedPayload),
    (_reheader(msg_type=spec.MsgType.EXEC, payload=b"\0\0\0\0\1\0\2\0\xff\xfe\0\0\0\0"), MalformedPayload),
    (_reheader(msg_type=spec.MsgType.EXIT, payload=struct.pack("<IB3si", 1, 0, b"\0\1\0", 0)), MalformedPayload),
])
def test_header_and_payload_violations(frame, error):
    with pytest.raises(error) as ei:
        codec.decode_frame(frame)
    assert ei.value.request_id == 9, "errors after a valid header carry its request_id"


def test_bounds_are_enforced_on_encode_and_decode():
    ok = dict(flags=0, argv=["a" * spec.PATH_MAX_LEN], env=[], cwd="")
    codec.encode_body(spec.MsgType.EXEC, ok)
    with pytest.raises(InvalidMessage, match="bound"):
        codec.encode_body(spec.MsgType.EXEC, dict(ok, argv=["a" * (spec.PATH_MAX_LEN + 1)]))
    with pytest.raises(InvalidMessage, match="items"):
        codec.encode_body(spec.MsgType.EXEC, dict(ok, argv=["a"] * (spec.ARGV_MAX_COUNT + 1)))
    with pytest.raises(InvalidMessage, match="NUL"):
        codec.encode_body(spec.MsgType.EXEC, dict(ok, cwd="a\0b"))
    with pytest.raises(InvalidMessage, match="missing"):
        codec.encode_body(spec.MsgType.EXEC, dict(flags=0))
    with pytest.raises(InvalidMessage, match="unknown fields"):
        codec.encode_body(spec.MsgType.EXEC, dict(ok, bogus=1))
    with pytest.raises(InvalidMessage, match="fixed field"):
        codec.encode_body(spec.MsgType.SIGNAL, dict(pid=-1, signo=spec.Signal.SIGHUP))
    with pytest.raises(InvalidMessage):
        codec.encode_body(spec.MsgType.PING, dict(data=b"x" * (spec.PING_MAX_DATA + 1)))
    with pytest.raises(InvalidMessage):
        codec.encode_frame(0x7777, {})


def test_reader_resynchronises_after_garbage_and_reports_once():
    r = codec.FrameReader()
    good = codec.encode_frame(spec.MsgType.PING, dict(data=b"1"), request_id=1)
    r.feed(b"\x01garbage-without-magic" * 5 + good)
    with pytest.raises(BadMagic):
        r.next()
    f = r.next()
    assert f.type == spec.MsgType.PING and f.request_id == 1
    assert r.next() is None and r.pending == 0


def test_reader_skips_oversized_frames_without_waiting_for_their_payload():
    r = codec.FrameReader()
    r.feed(_reheader(length=spec.MAX_PAYLOAD + 1)[:24] + codec.encode_frame(spec.MsgType.PING, dict(data=b"z"), request_id=2))
    with pytest.raises(FrameTooLarge):
        r.next()
    assert r.next().request_id == 2


def test_reader_handles_byte_at_a_time_input():
    frames = b"".join(codec.encode_frame(spec.MsgType.PING, dict(data=bytes([i]) * i), request_id=i + 1)
                      for i in range(5))
    r, got = codec.FrameReader(), []
    for b in frames:
        r.feed(bytes([b]))
        while (f := r.next()) is not None:
            got.append(f.request_id)
    assert got == [1, 2, 3, 4, 5]


def test_reader_reports_truncation_at_end_of_stream():
    r = codec.FrameReader()
    r.feed(_frame()[:30])
    assert r.next() is None
    with pytest.raises(Truncated):
        r.check_eof()


def test_all_protocol_errors_share_one_base():
    for cls in (BadMagic, BadChecksum, BadFlags, FrameTooLarge, Truncated, UnknownType, MalformedPayload,
                UnsupportedVersion):
        assert issubclass(cls, ProtocolError)


def test_reader_reports_bad_version_at_once_and_discards_its_payload_as_it_arrives():
    payload = b"\3\0\0\0abc"
    frame = _reheader(version=9, payload=payload)
    r = codec.FrameReader()
    r.feed(frame[:24])  # only the header so far: the error must not wait for the payload
    with pytest.raises(UnsupportedVersion):
        r.next()
    r.feed(frame[24:26])
    assert r.next() is None
    r.feed(frame[26:] + codec.encode_frame(spec.MsgType.PING, dict(data=b"ok"), request_id=3))
    f = r.next()
    assert f.request_id == 3 and f.body["data"] == b"ok"


def test_reader_skipping_an_oversized_header_keeps_none_of_its_bytes():
    r = codec.FrameReader()
    r.feed(_reheader(length=spec.MAX_PAYLOAD + 1)[:24])
    with pytest.raises(FrameTooLarge):
        r.next()
    assert r.pending == 0, "bytes of the rejected header would corrupt the next frame"
    r.feed(codec.encode_frame(spec.MsgType.PING, dict(data=b"n"), request_id=4))
    assert r.next().request_id == 4
