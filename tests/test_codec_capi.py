"""The host codec's CPython extension (wslx.codegen.c_host_capi: the generated C
encoders/decoders building the Python objects themselves), called directly: it
gives the Python path's bytes and frames on every message type, declines (never
accepts or raises on) whatever the Python path rejects or might treat otherwise,
leaks no reference, leaves the garbage collector as it found it, and survives a
body whose keys run Python code in the middle of an encode."""
from __future__ import annotations

import dataclasses
import gc
import sys

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from test_codec_c_path import c_codec, spoiled  # noqa: F401 (the fixture builds the extension)
from test_codec_properties import MESSAGE_AND_BODY
from wslx.agentx import codec
from wslx.agentx.errors import InvalidMessage, ProtocolError
from wslx.spec import agentx as spec

WINDOW = 1 << 20
SLOW_OK = dict(suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])


@pytest.fixture(scope="module")
def capi(c_codec):  # noqa: F811
    return c_codec.capi


def _encode_one(capi, msg_type, body, request_id=0, flags=0):
    out, n = capi.encode_frames([(msg_type, body, request_id, flags)], 0, 1, WINDOW)
    assert n in (0, 1) and (n or out == b"")
    return out if n else None


def _python_encode(msg_type, body, request_id=0, flags=0):
    try:
        return codec.encode_frame_python(msg_type, body, request_id=request_id, flags=flags)
    except InvalidMessage:
        return None


@settings(max_examples=600, **SLOW_OK)
@given(MESSAGE_AND_BODY, st.integers(0, 2**32 - 1), st.sampled_from([0, 1]), st.binary(max_size=30))
def test_every_message_type_encodes_and_decodes_as_the_python_path(capi, mb, request_id, flags, tail):
    msg, body = mb
    python = codec.encode_frame_python(msg.type, body, request_id=request_id, flags=flags)
    assert _encode_one(capi, int(msg.type), body, request_id, flags) == python
    frames, ends = capi.decode_frames(python + tail, codec.Frame, WINDOW, 1 << 30)
    reference, used = codec.decode_frame_python(python)
    assert frames[0] == reference and type(frames[0]) is codec.Frame
    assert list(frames[0].body) == list(reference.body)  # the same keys in the same order
    assert repr(frames[0]) == repr(reference) and dataclasses.astuple(frames[0]) == dataclasses.astuple(reference)
    assert memoryview(ends).cast("I")[0] == used == len(python)
    if not tail:
        assert len(frames) == 1


@settings(max_examples=500, **SLOW_OK)
@given(MESSAGE_AND_BODY, st.data())
def test_bodies_the_python_path_rejects_are_declined(capi, mb, data):
    msg, body = mb
    body = spoiled(body, data, ("junk", "drop", "add", "none"))
    python = _python_encode(msg.type, body, request_id=5)
    c = _encode_one(capi, int(msg.type), body, 5)
    assert c is None or c == python  # C declines more (then the next path decides), never accepts more


@settings(max_examples=300, **SLOW_OK)
@given(st.one_of(st.integers(-2, 2**16 + 2), st.none(), st.text(max_size=2)),
       st.one_of(st.integers(-2**33, 2**33), st.none()), st.one_of(st.integers(-2, 300), st.just(1.0)))
def test_bad_header_values_are_declined(capi, msg_type, request_id, flags):
    body = {"data": b"x"}
    try:
        python = codec.encode_frame_python(msg_type, body, request_id=request_id, flags=flags)
    except (InvalidMessage, TypeError):
        python = None
    c = _encode_one(capi, msg_type, body, request_id, flags)
    assert c is None or c == python


@settings(max_examples=800, **SLOW_OK)
@given(MESSAGE_AND_BODY, st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 255)), min_size=1, max_size=4),
       st.booleans(), st.integers(0, 60))
def test_hostile_frames_are_declined_or_decoded_as_the_python_path(capi, mb, writes, reseal, cut):
    msg, body = mb
    frame = bytearray(codec.encode_frame_python(msg.type, body, request_id=7))
    for pos, value in writes:
        frame[pos % len(frame)] = value
    if reseal:
        codec.reseal(frame)
    if cut % 3 == 0:  # cut short: a partial frame
        del frame[max(0, len(frame) - cut):]
    try:
        python = codec.decode_frame_python(bytes(frame))
    except ProtocolError:
        python = None
    frames, ends = capi.decode_frames(frame, codec.Frame, WINDOW, 1 << 30)
    if python is None or python[0].version != spec.VERSION_MAX:
        assert frames == [] and ends == b""  # C never accepts what Python rejects; older layouts are Python's
    else:
        assert frames == [python[0]] or frames == []
        assert not frames or memoryview(ends).cast("I")[0] == python[1]


def test_limits_stop_a_batch(capi):
    small = dict(flags=0, argv=["/bin/true"], env=[], cwd="/")
    one = codec.encode_frame_python(spec.MsgType.EXEC, small, request_id=1)
    data = one * 10
    frames, ends = capi.decode_frames(data, codec.Frame, WINDOW, 3)
    assert len(frames) == 3 and memoryview(ends).cast("I").tolist() == [len(one), 2 * len(one), 3 * len(one)]
    frames, _ = capi.decode_frames(data, codec.Frame, 4 * len(one) + 5, 1 << 30)
    assert len(frames) == 4  # the fifth frame does not end within the window
    items = [(spec.MsgType.EXEC, small, i, 0) for i in range(10)]
    assert capi.encode_frames(items, 2, 3, WINDOW) == (b"".join(
        codec.encode_frame_python(spec.MsgType.EXEC, small, request_id=i) for i in range(2, 5)), 3)
    assert capi.encode_frames(items, 0, 100, 2 * len(one)) == (b"".join(  # stops once the window is out
        codec.encode_frame_python(spec.MsgType.EXEC, small, request_id=i) for i in range(2)), 2)
    with pytest.raises(TypeError):
        capi.decode_frames(data, dict, WINDOW, 1)  # only a type with the Frame fields as slots
    with pytest.raises(TypeError):
        capi.encode_frames(tuple(items), 0, 1, WINDOW)


def test_a_version_1_frame_is_left_to_the_python_path(capi):
    old = codec.encode_frame_python(spec.MsgType.STDIO, dict(pid=1, stream=1, flags=0, data=b"ab"), version=1)
    assert capi.decode_frames(old, codec.Frame, WINDOW, 1 << 30) == ([], b"")
    assert codec.decode_frame(old)[0].version == 1


def test_no_reference_is_leaked_and_the_gc_is_left_as_found(capi):
    argv0, data = "/bin/some-long-name-" + "x" * 40, bytes(range(200))
    exec_body = dict(flags=0, argv=[argv0], env=[], cwd="/")
    items = [(spec.MsgType.EXEC, exec_body, 1, 0), (spec.MsgType.PING, {"data": data}, 2, 0),
             (spec.MsgType.EXEC, dict(exec_body, flags=-1), 3, 0)]  # the last one is declined
    before = [sys.getrefcount(o) for o in (argv0, data, exec_body, items[0], items[2])]
    for _ in range(2000):
        out, n = capi.encode_frames(items, 0, 10, WINDOW)
        assert n == 2
    assert [sys.getrefcount(o) for o in (argv0, data, exec_body, items[0], items[2])] == before
    refs = []
    for enabled in (True, False, True, False):  # a reference lost per call would show as a growing count
        (gc.enable if enabled else gc.disable)()
        try:
            for _ in range(300):
                frames, ends = capi.decode_frames(out, codec.Frame, WINDOW, 1 << 30)
                assert [f.body for f in frames] == [exec_body, {"data": data}]
                assert gc.isenabled() is enabled
            del frames, ends
        finally:
            gc.enable()
        refs.append([sys.getrefcount(o) for o in (codec.Frame, argv0, data)])
    assert refs[1] == refs[2] == refs[3]


def test_a_key_that_runs_code_during_an_encode_cannot_break_it(capi):
    """A body key whose __eq__ empties the item list while C looks the body up: C holds what it
    uses, reads the list again, and declines; nothing crashes."""
    items = []

    class Evil:
        def __hash__(self):
            return hash("flags")

        def __eq__(self, other):
            items.clear()
            return False
    body = {Evil(): 0, "argv": ["/bin/true"], "env": [], "cwd": "/"}
    items += [(spec.MsgType.EXEC, body, i, 0) for i in range(5)]
    assert capi.encode_frames(items, 0, 10, WINDOW) == (b"", 0) and items == []


def test_the_built_source_is_what_the_generator_gives(c_codec, repo_root):  # noqa: F811
    from wslx.codegen import c_host_capi
    assert (repo_root / "build" / "gen" / "agentx_host_capi.c").read_text() == c_host_capi.generate_source()
