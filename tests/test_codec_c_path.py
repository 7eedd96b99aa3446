"""The host codec's C path (wslx.agentx.ccodec: the generated C encoders/decoders
through cffi) agrees byte for byte with the Python path on every message type,
declines (never accepts) what the Python path rejects, and is chosen
automatically: used when built from the current spec, left alone when missing,
stale, or switched off. Its batch path (FrameReader over whole buffers,
encode_frames) reports the same frames, bytes and errors, in the same order, as
the frame-by-frame Python path."""
from __future__ import annotations

import itertools
import os
import subprocess
import sys

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from test_codec_properties import MESSAGE_AND_BODY
from wslx.agentx import ccodec, codec
from wslx.agentx.errors import InvalidMessage, ProtocolError
from wslx.codegen import c_host_capi
from wslx.spec import agentx as spec


@pytest.fixture(scope="module")
def c_codec(repo_root):
    r = subprocess.run([sys.executable, "-m", "SCons", "-Q", "codec"], cwd=repo_root, capture_output=True, text=True)
    if r.returncode and "Python.h" in r.stdout + r.stderr:
        pytest.skip("no Python.h: the C path is not built here (tools/setup.sh installs python3-dev)")
    assert r.returncode == 0, r.stdout + r.stderr
    ccodec.load.cache_clear()
    c = ccodec.load()
    assert c is not None, f"{ccodec.library_path()} was built but does not load"
    assert c.capi is not None, f"{ccodec.library_path(c_host_capi.MODULE)} was built but does not load"
    return c


@pytest.fixture(params=["capi", "cffi"])
def batch_path(request, c_codec, monkeypatch):
    """Each C batch path in turn: the CPython extension, and the cffi glue it falls back to."""
    if request.param == "cffi":
        monkeypatch.setattr(c_codec, "capi", None)
    return request.param


def _outcome(fn, *args, **kw):
    try:
        return fn(*args, **kw)
    except (ProtocolError, InvalidMessage) as e:
        return type(e)


def test_the_codec_uses_the_c_path_when_it_is_built(c_codec):
    assert codec.BACKEND == "c"
    frame = codec.encode_frame(spec.MsgType.PING, {"data": b"x"}, request_id=3)
    assert c_codec.decode_frame(frame)[3] == {"data": b"x"}


@settings(max_examples=600, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(MESSAGE_AND_BODY, st.integers(0, 2**32 - 1), st.sampled_from([0, 1]))
def test_c_and_python_agree_byte_for_byte(c_codec, batch_path, mb, request_id, flags):
    msg, body = mb
    python = codec.encode_frame_python(msg.type, body, request_id=request_id, flags=flags)
    c = c_codec.encode_frame(int(msg.type), body, request_id, flags)
    assert c == python  # never None: C accepts every body the spec allows
    t, rid, fl, decoded, used = c_codec.decode_frame(python + b"\0\1")
    frame, used_py = codec.decode_frame_python(python + b"\0\1")
    assert (t, rid, fl, decoded, used) == (frame.type, frame.request_id, frame.flags, frame.body, used_py)
    assert c_codec.decode_body(int(msg.type), python[spec.HEADER_SIZE:]) == body
    assert codec.decode_frame(python)[0] == frame and codec.encode_frame(msg.type, body, request_id=request_id,
                                                                         flags=flags) == python


JUNK = st.one_of(st.none(), st.booleans(), st.integers(-2**70, 2**70), st.text(max_size=5),
                 st.text(alphabet="a\0", max_size=3), st.binary(max_size=5), st.lists(st.text(max_size=3), max_size=3),
                 st.just("x" * 70000), st.just(["y" * 5000]), st.just(["z"] * 300), st.just("\udcff"))


def spoiled(body: dict, data, hows=("junk", "drop", "add")) -> dict:
    """A copy of body with one field replaced by junk, one dropped, one added, or ("none") as it was."""
    body = dict(body)
    how = data.draw(st.sampled_from(hows))
    if how == "junk" and body:
        body[data.draw(st.sampled_from(sorted(body)))] = data.draw(JUNK)
    elif how == "drop" and body:
        del body[data.draw(st.sampled_from(sorted(body)))]
    elif how != "none":
        body["extra"] = 1
    return body


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(MESSAGE_AND_BODY, st.data())
def test_bad_bodies_fail_the_same_way_on_both_paths(c_codec, batch_path, mb, data):
    """One field replaced by junk, one dropped or one added: the same bytes or the same typed error."""
    msg, body = mb
    body = spoiled(body, data)
    python = _outcome(codec.encode_frame_python, msg.type, body, request_id=9)
    assert _outcome(codec.encode_frame, msg.type, body, request_id=9) == python
    if not isinstance(python, bytes):
        assert c_codec.encode_frame(int(msg.type), body, 9, 0) is None  # C declined: Python raised


@settings(max_examples=800, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(MESSAGE_AND_BODY, st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 255)), min_size=1, max_size=4),
       st.booleans())
def test_mutated_frames_decode_the_same_or_fail_the_same(c_codec, batch_path, mb, writes, reseal):
    msg, body = mb
    frame = bytearray(codec.encode_frame_python(msg.type, body, request_id=7))
    for pos, value in writes:
        frame[pos % len(frame)] = value
    if reseal:  # the CRCs pass: the header and payload checks are reached
        codec.reseal(frame)
    python = _outcome(codec.decode_frame_python, bytes(frame))
    assert _outcome(codec.decode_frame, bytes(frame)) == python
    c = c_codec.decode_frame(bytes(frame))
    if isinstance(python, tuple):
        assert c is None or (c[0], c[1], c[2], c[3], c[4]) == (python[0].type, python[0].request_id,
                                                               python[0].flags, python[0].body, python[1])
    else:
        assert c is None  # C never accepts a frame the Python path rejects


def test_str_subclasses_encode_the_same_on_both_paths(c_codec):
    import enum

    class Word(str, enum.Enum):
        TRUE = "/bin/true"
    body = dict(flags=0, argv=[Word.TRUE], env=[], cwd="/")
    python = codec.encode_frame_python(spec.MsgType.EXEC, body, request_id=1)
    assert c_codec.encode_frame(int(spec.MsgType.EXEC), body, 1, 0) == python == codec.encode_frame(
        spec.MsgType.EXEC, dict(body, argv=["/bin/true"]), request_id=1)


def test_missing_or_stale_library_means_the_python_path(c_codec, monkeypatch, tmp_path):
    try:
        monkeypatch.setattr(ccodec, "library_path", lambda module=None: tmp_path / "nothing.so")
        ccodec.load.cache_clear()
        assert ccodec.load() is None
        monkeypatch.undo()
        from wslx.codegen import c_host_codec
        monkeypatch.setattr(c_host_codec, "spec_digest", lambda: 0)  # the library was built from another spec
        ccodec.load.cache_clear()
        assert ccodec.load() is None
    finally:
        monkeypatch.undo()
        ccodec.load.cache_clear()


def test_missing_or_stale_extension_means_the_cffi_path(c_codec, monkeypatch, tmp_path):
    real = ccodec.library_path
    try:
        monkeypatch.setattr(ccodec, "library_path", lambda module=ccodec.c_host_codec.MODULE: (
            tmp_path / "nothing.so" if module == c_host_capi.MODULE else real(module)))
        ccodec.load.cache_clear()
        c = ccodec.load()
        assert c is not None and c.capi is None
        monkeypatch.undo()
        monkeypatch.setattr(c_host_capi, "spec_digest", lambda: 0)  # built from another spec or interface
        ccodec.load.cache_clear()
        c = ccodec.load()
        assert c is not None and c.capi is None
        monkeypatch.undo()
        monkeypatch.setenv("WSLX_CODEC", "cffi")  # switched off
        ccodec.load.cache_clear()
        c = ccodec.load()
        assert c is not None and c.capi is None
    finally:
        monkeypatch.undo()
        ccodec.load.cache_clear()


def test_wslx_codec_python_forces_the_python_path(c_codec, repo_root):
    env = dict(os.environ, WSLX_CODEC="python")
    out = subprocess.run([sys.executable, "-c", "from wslx.agentx import codec; print(codec.BACKEND)"], env=env,
                         capture_output=True, text=True, check=True, cwd=repo_root).stdout
    assert out.strip() == "python"


# ---- the batch path: FrameReader hands whole buffers to C ------------------------------

def _reader_events(data: bytes, chunks: list[int], *, batch: bool) -> tuple[list, int]:
    """Everything a FrameReader reports for data fed in the given chunk sizes: frames and
    (error type, message, request id, type), in order, then the bytes still pending."""
    r, events, pos = codec.FrameReader(batch=batch), [], 0
    for size in chunks + [len(data)]:
        r.feed(data[pos:pos + size])
        pos += size
        for _ in range(len(data) + 2):  # every next() consumes something or returns None
            try:
                f = r.next()
            except ProtocolError as e:
                events.append((type(e), str(e), e.request_id, e.msg_type))
                continue
            if f is None:
                break
            events.append(f)
        if pos >= len(data):
            break
    return events, r.pending


FRAMES = st.lists(st.tuples(MESSAGE_AND_BODY, st.integers(0, 2**32 - 1), st.sampled_from([0, 1])), max_size=12)


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(FRAMES, st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 255)), max_size=6), st.booleans(),
       st.binary(max_size=40), st.lists(st.integers(1, 400), max_size=6))
def test_batch_reader_reports_what_the_frame_by_frame_reader_reports(c_codec, batch_path, frames, writes, reseal_last,
                                                                     junk, chunks):
    """Good, mutated and garbage bytes, fed in arbitrary chunks: the batch path (C decodes whole
    buffers) gives the same frames and the same typed errors, in the same order, as the pure
    Python frame-by-frame reader, and leaves the same bytes pending; no frame is swallowed."""
    encoded = [bytearray(codec.encode_frame_python(m.type, b, request_id=rid, flags=fl)) for (m, b), rid, fl in frames]
    stream = bytearray(b"".join(encoded) + junk)
    for pos, value in writes:
        if stream:
            stream[pos % len(stream)] = value
    if reseal_last and encoded:  # a mutated frame whose CRCs hold reaches the header and body checks
        last = encoded[-1]
        if writes:
            last[len(last) // 2] ^= 0x5A
        codec.reseal(last)
        stream += last
    data = bytes(stream)
    batch = _reader_events(data, chunks, batch=True)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(codec, "_C", None)  # the reference: the Python path, frame by frame
        reference = _reader_events(data, chunks, batch=False)
    assert batch == reference
    if not writes and not junk and not reseal_last:
        assert [f.body for f in batch[0]] == [b for (_, b), _, _ in frames]  # untouched: every frame, in order


def test_batch_reader_decodes_a_burst_in_one_call_and_stops_at_a_bad_frame(c_codec, batch_path):
    good = [codec.encode_frame(spec.MsgType.EXEC, dict(flags=0, argv=["/bin/true"], env=[], cwd="/"), request_id=i)
            for i in range(1, 2001)]
    bad = bytearray(good[0])
    bad[-1] ^= 1  # payload CRC mismatch
    frames, ends = c_codec.decode_frames(b"".join(good) + bytes(bad) + good[1], codec.Frame)
    assert [f.request_id for f in frames] == list(range(1, 2001))
    assert list(ends) == list(itertools.accumulate(map(len, good)))
    r = codec.FrameReader()
    r.feed(b"".join(good) + bytes(bad) + good[1])
    got = [r.next() for _ in range(2000)]
    assert [f.request_id for f in got] == list(range(1, 2001))
    assert r.pending == len(bad) + len(good[1])
    with pytest.raises(ProtocolError):
        r.next()
    assert r.next().request_id == 2 and r.next() is None and r.pending == 0


ITEM_JUNK = ("junk", "drop", "add", "none")


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(FRAMES, st.data())
def test_batch_encoder_gives_the_frame_by_frame_bytes_or_the_first_error(c_codec, batch_path, frames, data):
    """encode_frames of many items: exactly the Python path's frames joined, or the typed error
    the first bad item raises on the Python path (bad items: a field junk, dropped or added)."""
    items = [(msg.type, spoiled(body, data, ITEM_JUNK), rid, fl) for (msg, body), rid, fl in frames]

    def python():
        return b"".join(codec.encode_frame_python(t, b, request_id=r, flags=f) for t, b, r, f in items)
    expected = _outcome(python)
    got = _outcome(codec.encode_frames, items)
    if isinstance(expected, bytes):
        assert got == expected
    else:
        assert got is expected  # the same typed error class...
        with pytest.raises(expected) as e_batch:
            codec.encode_frames(items)
        with pytest.raises(expected) as e_python:
            python()
        assert str(e_batch.value) == str(e_python.value)  # ...for the same item


def test_batch_encoder_spans_many_calls_and_hands_what_c_declines_to_python(c_codec, batch_path):
    small = dict(flags=0, argv=["/bin/true"], env=[], cwd="/")
    big = dict(pid=1, stream=1, flags=0, offset=0, data=bytes(range(256)) * 200)
    items = [(spec.MsgType.EXEC, small, i, 0) for i in range(1, 9000)]
    items[4000] = (spec.MsgType.STDIO, dict(big, data=memoryview(b"xy")), 4001, 0)  # C declines a memoryview
    items += [(spec.MsgType.STDIO, big, 9000 + i, 0) for i in range(40)]  # more than one output buffer
    out, n = c_codec.encode_frames(items)
    assert n == 4000 and out == b"".join(codec.encode_frame_python(t, b, request_id=r, flags=f)
                                          for t, b, r, f in items[:4000])
    assert codec.encode_frames(items) == b"".join(codec.encode_frame_python(t, b, request_id=r, flags=f)
                                                  for t, b, r, f in items)
