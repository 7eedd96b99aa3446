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
    assert codec.parse_body_reference(msg.type, frame[24:]) == msg.example


def test_golden_file_covers_every_message_type():
    assert set(golden_frames()) == {m.type.name for m in spec.MESSAGES} == {t.name for t in spec.MsgType}


def test_message_type_values_are_explicit_and_unique():
    values = [int(t) for t in spec.MsgType]
    assert len(set(values)) == len(values)
    assert spec.MsgType.HELLO == 1 and spec.MsgType.SHUTDOWN == 0x0A and spec.MsgType.QUIESCE_COMPLETE == 0x85


def _frame(**kw):
    return codec.encode_frame(spec.MsgType.PING, dict(data=b"abc"), request_id=9, **kw)


@pytest.mark.parametrize("mutate,error,code", [
    (lambda f: b"XXXX" + f[4:], BadMagic, spec.ErrorCode.EBADMSG),
    (lambda f: f[:20] + b"\0\0\0\0" + f[24:], BadChecksum, spec.ErrorCode.EBADMSG),
    (lambda f: f[:-1] + bytes([f[-1] ^ 1]), BadChecksum, spec.ErrorCode.EBADMSG),
    (lambda f: f[:10], Truncated, spec.ErrorCode.EPROTO),
    (lambda f: f[:-2], Truncated, spec.ErrorCode.EPROTO),
])
def test_bad_frames_raise_typed_errors(mutate, error, code):
    with pytest.raises(error) as ei:
        codec.decode_frame(mutate(_frame()))
    assert ei.value.code == code
    assert str(ei.value)


def _reheader(msg_type=spec.MsgType.PING, payload=b"\3\0\0\0abc", version=1, flags=0, length=None, rid=9):
    head = struct.pack("<IBBHIII", spec.MAGIC, version, flags, msg_type, rid,
                       len(payload) if length is None else length, zlib.crc32(payload))
    return head + struct.pack("<I", zlib.crc32(head)) + payload


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
        codec.encode_body(spec.MsgType.SIGNAL, dict(pid=-1, signo=1))
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
