"""Generate the host codec's batch path as a CPython extension (build/gen/agentx_host_capi.c).

The cffi module (wslx.codegen.c_host_codec) moves bodies as flat uint64 values,
so Python still builds every dict, list, str and Frame: at ~2.5 us a small
frame that glue, not C, was the codec's cost. This module is the same generated
C encoders/decoders (agentx_wire.h) called from the CPython C API, which builds
the Python objects itself:

    decode_frames(buf, Frame, window, max_frames) -> (frames, ends)
        the whole frames at the start of buf (a bytes-like object), each made
        as Frame(type, request_id, flags, body, version) with body a dict keyed
        by field name (reserved fields left out), up to the first frame C does
        not decode (bad, partial, an older protocol version: the caller's
        frame-by-frame path decides what it is), to max_frames, or to the first
        frame that does not end within window bytes. ends: bytes of native
        uint32, where frame i ends in buf.
    encode_frames(items, start, max_frames, window) -> (bytes, n)
        the frames of the list items[start:] of (msg_type, body, request_id,
        flags) tuples, one after another, up to the first one C declines (the
        caller encodes that one on the Python path, which raises the precise
        error), max_frames, or once window bytes are out.

C declines, never raises, for anything the Python codec might treat differently:
a body that is not a dict of exactly the spec's fields, a value of another type
than int / exact str / list or tuple of exact str / exact bytes or bytearray,
an out-of-range int, a string with NUL or over its bound, a payload over
MAX_PAYLOAD. Only MemoryError and a wrong call (TypeError) come out of it.

Frame is a slots dataclass; its fields are set through its own member
descriptors (what object.__new__ plus setattr does, without the ~0.3 us of the
generated __init__), and only for the field names FRAME_FIELDS, checked at load.
Per message, everything here comes from wslx.spec.agentx through host_fields():
nothing per message is written by hand.
"""
from __future__ import annotations

import zlib

from ..spec import agentx as spec
from . import c_host_codec
from .c_header import C_TYPES, marker
from .c_host_codec import host_fields, int_limits

MODULE = "_agentx_capi"  # the extension module's import name (PyInit__agentx_capi)
FRAME_FIELDS = ("type", "request_id", "flags", "body", "version")  # codec.Frame's fields, in order
_INTERFACE = "decode_frames(buf,make,window,max_frames);encode_frames(items,start,max_frames,window);ends:u32"


def spec_digest() -> int:
    """Ties a built module to the spec (through the cffi module's digest) and to this interface."""
    return zlib.crc32(f"{c_host_codec.spec_digest()}:{_INTERFACE}:{FRAME_FIELDS}".encode())


def _keys() -> list[str]:
    """Every field name of every body, once: the module's interned dict keys."""
    seen: dict[str, None] = {}
    for m in spec.MESSAGES:
        for name, _, _ in host_fields(m):
            seen.setdefault(name)
    return list(seen)


def _decode_case(w, msg, key):
    n, fields = msg.name, host_fields(msg)
    w(f"    case AGX_MSG_{msg.type.name}: {{")
    w(f"        struct agx_{n} *m = &s->{n};")
    w(f"        if (agx_{n}_decode(p, len, m)) return 1;")
    w(f"        if (!(d = NEW_DICT({len(fields)}))) return -1;")
    for name, kind, con in fields:
        if kind == "int":
            make = f"PyLong_FromLongLong((long long)m->{name})" if int_limits(con)[0] < 0 else \
                f"PyLong_FromUnsignedLongLong((unsigned long long)m->{name})"
        elif kind == "str":
            make = f"str_of(m->{name})"
        elif kind == "bytes":
            make = f"PyBytes_FromStringAndSize((const char *)m->{name}.ptr, m->{name}.len)"
        else:
            make = f"strv_of(m->{name}, m->{name}_count)"
        w(f"        if (put(d, K[{key[name]}], {make})) goto fail;")
    w("        break;")
    w("    }")


# A non-int body value into the C struct's field (0, or 1 when C declines it).
_AS = {"str": "as_str({v}, {con.max_len}u, &{m})", "bytes": "as_bytes({v}, {con.max_len}u, &{m})",
       "strv": "as_strv({v}, {con.max_count}u, {con.max_len}u, {m}, &{m}_count)"}


def _encode_case(w, msg, key):
    n, fields = msg.name, host_fields(msg)
    w(f"    case AGX_MSG_{msg.type.name}: {{")
    w(f"        struct agx_{n} *m = &s->{n};")
    if not fields:
        w("        if (body != Py_None && !(PyDict_CheckExact(body) && PyDict_GET_SIZE(body) == 0)) return 1;")
        w(f"        len = agx_{n}_encode(out, cap, m);")
        w("        break;")
        w("    }")
        return
    w(f"        if (!PyDict_CheckExact(body) || PyDict_GET_SIZE(body) != {len(fields)}) return 1;")
    # Every lookup first (a key's __eq__ may run Python code), then nothing but C until the values are released.
    for i, (name, _, _) in enumerate(fields):
        w(f"        if (fetch(body, K[{key[name]}], &v[{i}])) goto declined;")
    for i, (name, kind, con) in enumerate(fields):
        if kind != "int":
            w(f"        if ({_AS[kind].format(v=f'v[{i}]', m=f'm->{name}', con=con)}) goto declined;")
            continue
        lo, hi = int_limits(con)
        conv, tmp = ((f"as_signed(v[{i}], {lo}LL, {hi}LL, &sv)", "sv") if lo < 0
                     else (f"as_unsigned(v[{i}], {hi}ull, &uv)", "uv"))
        w(f"        if ({conv}) goto declined;")
        w(f"        m->{name} = ({C_TYPES[con.fmtstr]}){tmp};")
    w(f"        len = agx_{n}_encode(out, cap, m);")
    w("        break;")
    w("    }")


_PRELUDE = r"""
static PyObject *K[NKEYS];  /* interned field names */

/* Per call, so a call made from a finalizer during another one (object allocation runs the GC) has its own. */
union scratch {
@UNION@
};

static int put(PyObject *d, PyObject *k, PyObject *v)
{
    if (!v) return -1;
    int r = PyDict_SetItem(d, k, v);
    Py_DECREF(v);
    return r;
}

static PyObject *str_of(struct agx_str s)
{
    return PyUnicode_DecodeUTF8(s.ptr, s.len, "strict");  /* agx_get_str checked it is UTF-8 without NUL */
}

static PyObject *strv_of(const struct agx_str *items, unsigned n)
{
    PyObject *l = PyList_New(n);
    if (!l) return NULL;
    for (unsigned i = 0; i < n; i++) {
        PyObject *s = str_of(items[i]);
        if (!s) { Py_DECREF(l); return NULL; }
        PyList_SET_ITEM(l, i, s);
    }
    return l;
}

/* A body's dict into *out: 0, 1 when C declines the payload, -1 with a Python error. */
static int decode_body(unsigned type, const uint8_t *p, size_t len, union scratch *s, PyObject **out)
{
    PyObject *d = NULL;
    switch (type) {
@DECODE@
    default: return 1;
    }
    *out = d;
    return 0;
fail:
    Py_DECREF(d);
    return -1;
}

/* Encode-side conversions: 0, or 1 when C declines the value (no Python error left set). */
static int fetch(PyObject *body, PyObject *key, PyObject **v)
{
    *v = PyDict_GetItemWithError(body, key);
    if (!*v) { PyErr_Clear(); return 1; }
    Py_INCREF(*v);
    return 0;
}

static int as_unsigned(PyObject *o, unsigned long long hi, unsigned long long *u)
{
    if (!PyLong_Check(o)) return 1;
    *u = PyLong_AsUnsignedLongLong(o);
    if (*u == (unsigned long long)-1 && PyErr_Occurred()) { PyErr_Clear(); return 1; }
    return *u > hi;
}

static int as_signed(PyObject *o, long long lo, long long hi, long long *sv)
{
    int overflow;
    if (!PyLong_Check(o)) return 1;
    *sv = PyLong_AsLongLongAndOverflow(o, &overflow);
    if (overflow || (*sv == -1 && PyErr_Occurred())) { PyErr_Clear(); return 1; }
    return *sv < lo || *sv > hi;
}

/* Exact str only: a subclass may encode itself otherwise. */
static int as_str(PyObject *o, size_t max_len, struct agx_str *s)
{
    Py_ssize_t n;
    if (!PyUnicode_CheckExact(o)) return 1;
    const char *p = PyUnicode_AsUTF8AndSize(o, &n);  /* fails on lone surrogates, as str.encode does */
    if (!p) { PyErr_Clear(); return 1; }
    if ((size_t)n > max_len || memchr(p, 0, (size_t)n)) return 1;
    s->ptr = p;
    s->len = (uint16_t)n;
    return 0;
}

static int as_strv(PyObject *o, size_t max_count, size_t max_len, struct agx_str *items, uint16_t *count)
{
    PyObject **it;
    Py_ssize_t n;
    if (PyList_CheckExact(o)) { it = ((PyListObject *)o)->ob_item; n = PyList_GET_SIZE(o); }
    else if (PyTuple_CheckExact(o)) { it = ((PyTupleObject *)o)->ob_item; n = PyTuple_GET_SIZE(o); }
    else return 1;
    if ((size_t)n > max_count) return 1;
    for (Py_ssize_t i = 0; i < n; i++)
        if (as_str(it[i], max_len, &items[i])) return 1;
    *count = (uint16_t)n;
    return 0;
}

static int as_bytes(PyObject *o, size_t max_len, struct agx_bytes *b)
{
    Py_ssize_t n;
    if (PyBytes_CheckExact(o)) { b->ptr = (const uint8_t *)PyBytes_AS_STRING(o); n = PyBytes_GET_SIZE(o); }
    else if (PyByteArray_CheckExact(o)) {
        b->ptr = (const uint8_t *)PyByteArray_AS_STRING(o);
        n = PyByteArray_GET_SIZE(o);
    }
    else return 1;
    if ((size_t)n > max_len) return 1;
    b->len = (uint32_t)n;
    return 0;
}

/* A body into out[0..cap): 0 with *plen set, or 1 when C declines it. */
static int encode_body(long type, PyObject *body, uint8_t *out, size_t cap, union scratch *s, long *plen)
{
    PyObject *v[MAX_FIELDS] = {0};
    unsigned long long uv;
    long long sv;
    long len = -1;
    int r = 1;
    (void)uv; (void)sv;
    switch (type) {
@ENCODE@
    default: return 1;
    }
    if (len >= 0) {
        *plen = len;
        r = 0;
    }
declined:
    for (int i = 0; i < MAX_FIELDS; i++) Py_XDECREF(v[i]);
    return r;
}
"""

_BODY = r"""
/* The Frame type's member descriptors, looked up again only when another type is passed. */
static PyObject *frame_type, *frame_descr[NFRAME];
static const char *const frame_fields[NFRAME] = {@FRAME_FIELDS@};

static int bind_frame(PyObject *make)
{
    PyObject *d[NFRAME] = {0};
    if (!PyType_Check(make)) {
        PyErr_SetString(PyExc_TypeError, "decode_frames: make must be the Frame type");
        return -1;
    }
    for (int i = 0; i < NFRAME; i++) {
        d[i] = PyObject_GetAttrString(make, frame_fields[i]);
        if (!d[i] || !Py_IS_TYPE(d[i], &PyMemberDescr_Type)) {
            PyErr_Format(PyExc_TypeError, "decode_frames: %R has no slot %s", make, frame_fields[i]);
            for (int k = 0; k <= i; k++) Py_XDECREF(d[k]);
            return -1;
        }
    }
    Py_XDECREF(frame_type);
    frame_type = Py_NewRef(make);
    for (int i = 0; i < NFRAME; i++) {
        Py_XDECREF(frame_descr[i]);
        frame_descr[i] = d[i];
    }
    return 0;
}

static PyObject *new_frame(PyTypeObject *t, PyObject *const *descr, PyObject *const *vals)
{
    PyObject *f = t->tp_alloc(t, 0);
    if (!f) return NULL;
    for (int i = 0; i < NFRAME; i++)
        if (Py_TYPE(descr[i])->tp_descr_set(descr[i], f, vals[i])) { Py_DECREF(f); return NULL; }
    return f;
}

static PyObject *decode_frames(PyObject *self, PyObject *args)
{
    PyObject *buf, *make, *frames = NULL, *result = NULL, *vals[NFRAME] = {0}, *descr[NFRAME] = {0};
    Py_ssize_t window, max_frames;
    Py_buffer view;
    uint32_t *ends = NULL;
    size_t ends_cap = 0, off = 0, n;
    Py_ssize_t count = 0;
    union scratch *s = NULL;
    if (!PyArg_ParseTuple(args, "OOnn:decode_frames", &buf, &make, &window, &max_frames)) return NULL;
    if (window < 0 || window > 0xFFFFFFFFll) {
        PyErr_SetString(PyExc_ValueError, "decode_frames: window out of range");
        return NULL;
    }
    if (make != frame_type && bind_frame(make)) return NULL;
    if (PyObject_GetBuffer(buf, &view, PyBUF_SIMPLE)) return NULL;  /* held: buf cannot be resized under us */
    for (int i = 0; i < NFRAME; i++) descr[i] = Py_NewRef(frame_descr[i]);
    PyTypeObject *t = (PyTypeObject *)Py_NewRef(make);
    n = (size_t)(view.len < window ? view.len : window);
    /* A burst makes thousands of containers that all live on: collecting them every 700 (gen 0's
     * threshold) promotes them to older generations in small steps, and the full collections that
     * brings cost more than the decode. One collection of the whole burst afterwards does the same
     * work once. Global state, but the GIL is held, and nothing here runs Python code. */
    int gc_was_enabled = PyGC_Disable();
    if (!(frames = PyList_New(0)) || !(s = PyMem_Malloc(sizeof *s))) { PyErr_NoMemory(); goto out; }
    while (count < max_frames && n - off >= AGX_HEADER_SIZE) {
        const uint8_t *b = (const uint8_t *)view.buf + off;
        struct agx_header h;
        PyObject *body = NULL, *f;
        if (agx_header_decode(b, &h) || h.version != AGX_VERSION_MAX) break;  /* older layouts: the Python path */
        if (n - off - AGX_HEADER_SIZE < h.payload_len || agx_payload_verify(&h, b + AGX_HEADER_SIZE)) break;
        int r = decode_body(h.type, b + AGX_HEADER_SIZE, h.payload_len, s, &body);
        if (r > 0) break;
        if (r < 0) goto out;
        vals[0] = PyLong_FromUnsignedLong(h.type);
        vals[1] = PyLong_FromUnsignedLong(h.request_id);
        vals[2] = PyLong_FromUnsignedLong(h.flags);
        vals[3] = body;
        vals[4] = PyLong_FromUnsignedLong(h.version);
        f = vals[0] && vals[1] && vals[2] && vals[4] ? new_frame(t, descr, vals) : NULL;
        for (int i = 0; i < NFRAME; i++) Py_CLEAR(vals[i]);
        if (!f) goto out;
        r = PyList_Append(frames, f);
        Py_DECREF(f);
        if (r) goto out;
        if ((size_t)count == ends_cap) {
            ends_cap = ends_cap ? 2 * ends_cap : 256;
            uint32_t *e = PyMem_Realloc(ends, ends_cap * sizeof *ends);
            if (!e) { PyErr_NoMemory(); goto out; }
            ends = e;
        }
        off += AGX_HEADER_SIZE + (size_t)h.payload_len;
        ends[count++] = (uint32_t)off;
    }
    result = Py_BuildValue("(Oy#)", frames, ends ? (const char *)ends : "", (Py_ssize_t)(count * sizeof *ends));
out:
    if (gc_was_enabled) PyGC_Enable();
    Py_XDECREF(frames);
    PyMem_Free(ends);
    PyMem_Free(s);
    PyBuffer_Release(&view);
    for (int i = 0; i < NFRAME; i++) Py_DECREF(descr[i]);
    Py_DECREF(t);
    return result;
}

static PyObject *encode_frames(PyObject *self, PyObject *args)
{
    PyObject *items, *result = NULL;
    Py_ssize_t start, max_frames, window, i;
    size_t used = 0, cap = AGX_MAX_FRAME;
    uint8_t *out;
    union scratch *s;
    if (!PyArg_ParseTuple(args, "O!nnn:encode_frames", &PyList_Type, &items, &start, &max_frames, &window)) return NULL;
    if (start < 0 || window < 0) {
        PyErr_SetString(PyExc_ValueError, "encode_frames: negative start or window");
        return NULL;
    }
    out = PyMem_Malloc(cap);
    s = PyMem_Malloc(sizeof *s);
    if (!out || !s) { PyErr_NoMemory(); goto out; }
    /* The list's length is read again every time: a lookup may have run Python code that changed it. */
    for (i = start; i < PyList_GET_SIZE(items) && i - start < max_frames && used < (size_t)window; i++) {
        PyObject *item = Py_NewRef(PyList_GET_ITEM(items, i));
        long len;
        unsigned long long type, rid, flags;
        int declined = !PyTuple_CheckExact(item) || PyTuple_GET_SIZE(item) != 4;
        if (!declined && cap - used < AGX_MAX_FRAME) {
            uint8_t *grown = PyMem_Realloc(out, 2 * cap);
            if (!grown) { Py_DECREF(item); PyErr_NoMemory(); goto out; }
            out = grown;
            cap *= 2;
        }
        declined = declined || as_unsigned(PyTuple_GET_ITEM(item, 0), 0xFFFFu, &type)
            || as_unsigned(PyTuple_GET_ITEM(item, 2), 0xFFFFFFFFu, &rid)
            || as_unsigned(PyTuple_GET_ITEM(item, 3), 0xFFu, &flags);
        if (!declined)
            declined = encode_body((long)type, PyTuple_GET_ITEM(item, 1), out + used + AGX_HEADER_SIZE,
                                   AGX_MAX_PAYLOAD, s, &len);
        Py_DECREF(item);
        if (declined) break;
        used += agx_frame_seal(out + used, (uint16_t)type, (uint8_t)flags, (uint32_t)rid, (uint32_t)len);
    }
    result = Py_BuildValue("(y#n)", (const char *)out, (Py_ssize_t)used, i - start);
out:
    PyMem_Free(out);
    PyMem_Free(s);
    return result;
}

static PyObject *spec_digest(PyObject *self, PyObject *unused)
{
    return PyLong_FromUnsignedLong(AGX_HOST_CAPI_DIGEST);
}

static PyMethodDef methods[] = {
    {"decode_frames", decode_frames, METH_VARARGS, "The whole frames at the start of a buffer: (frames, ends)."},
    {"encode_frames", encode_frames, METH_VARARGS, "Frames of (type, body, request_id, flags) items: (bytes, n)."},
    {"spec_digest", spec_digest, METH_NOARGS, "The digest of the spec and interface this module was built from."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "@MODULE@", NULL, -1, methods};

PyMODINIT_FUNC PyInit_@MODULE@(void)
{
    static const char *const names[NKEYS] = {@KEYS@};
    for (int i = 0; i < NKEYS; i++)
        if (!K[i] && !(K[i] = PyUnicode_InternFromString(names[i]))) return NULL;
    return PyModule_Create(&module);
}
"""


def generate_source() -> str:
    """The C source of the extension module."""
    keys = _keys()
    key = {k: f"K_{k}" for k in keys}
    dec, enc = [], []
    for m in spec.MESSAGES:
        _decode_case(dec.append, m, key)
        _encode_case(enc.append, m, key)
    head = [f"/* agentx_host_capi: the host codec's batch path, CPython API. {marker('wslx.codegen.c_host_capi')}.",
            " * See wslx/codegen/c_host_capi.py for what it does and declines. */",
            "#define PY_SSIZE_T_CLEAN",
            "#include <Python.h>",
            "#include <string.h>",
            '#include "agentx_wire.h"',
            "",
            f"#define AGX_HOST_CAPI_DIGEST 0x{spec_digest():08X}u",
            f"enum {{ {', '.join(f'K_{k}' for k in keys)}, NKEYS }};  /* the field names' slots in K */",
            f"#define NFRAME {len(FRAME_FIELDS)}",
            "#if PY_VERSION_HEX < 0x030D0000",
            "#define NEW_DICT(n) _PyDict_NewPresized(n)  /* sized once: a body's keys are known */",
            "#else",
            "#define NEW_DICT(n) PyDict_New()",
            "#endif",
            f"#define MAX_FIELDS {max(len(host_fields(m)) for m in spec.MESSAGES)}"]
    union = "\n".join(f"    struct agx_{m.name} {m.name};" for m in spec.MESSAGES)
    prelude = _PRELUDE.replace("@UNION@", union).replace("@DECODE@", "\n".join(dec)).replace("@ENCODE@", "\n".join(enc))
    body = (_BODY.replace("@FRAME_FIELDS@", ", ".join(f'"{f}"' for f in FRAME_FIELDS))
            .replace("@KEYS@", ", ".join(f'"{k}"' for k in keys)).replace("@MODULE@", MODULE))
    return "\n".join(head) + "\n" + prelude + body
