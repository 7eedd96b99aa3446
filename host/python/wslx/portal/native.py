"""cffi (ABI mode) binding of build/portal/libportal_host.so: the guest's
Portal core compiled for the host, plus the host fast-path loops. The struct
declarations of the cdef are generated from wslx.spec.portal, like the C header."""
from __future__ import annotations

import functools
from pathlib import Path

from .. import repo_root
from ..codegen.c_structs import layouts
from ..spec.portal import C_HEADER, SLOT_SIZE
from .errors import PortalLibraryMissing

FUNCTIONS = """
size_t portal_end_size(void);
size_t portal_arena_size(void);
int portal_attach(void *e, void *base, uint64_t size, int side);
int portal_attach_header(void *e, void *base, uint64_t size, int side, const void *h);
int portal_check(void *e);
int portal_span_check(void *e, const struct portal_span *s, void **ptr);
int portal_send(void *e, unsigned ring, const struct portal_msg *m, unsigned n);
int portal_recv(void *e, unsigned ring, struct portal_msg *out, unsigned max);
int64_t portal_space(void *e, unsigned ring);
int64_t portal_pending(void *e, unsigned ring);
void portal_want_wakeup(void *e, unsigned ring, int on);
int portal_peer_wants_wakeup(void *e, unsigned ring);
void portal_arena_init(void *a, void *e, int side);
int portal_arena_alloc(void *a, uint64_t length, struct portal_span *out);
int portal_arena_free(void *a, const struct portal_span *s);
int portal_arena_check(void *a, const struct portal_span *s);
size_t portal_guest_size(void);
int portal_guest_init(void *g, void *base, uint64_t size);
int portal_service_step(void *g, unsigned budget);
int portal_guest_host_wants_wakeup(void *g);
uint64_t portal_sum64(const void *p, uint64_t len);
void portal_xor64(void *p, uint64_t len, uint64_t key);
int portal_recv_spin(void *e, unsigned ring, struct portal_msg *out, unsigned max, uint64_t spin_ns);
int64_t portal_pingpong(void *e, uint64_t n, uint64_t timeout_ns);
int64_t portal_stream(void *e, uint64_t n, unsigned batch, uint64_t timeout_ns);
int portal_spin_u64(void *e, uint64_t off, uint64_t want, uint64_t timeout_ns);
"""


def library_path() -> Path:
    return repo_root() / "build" / "portal" / "libportal_host.so"


def cdef() -> str:
    out = []
    for cs, fields, _size in layouts(C_HEADER):
        if cs.c_name in ("portal_span", "portal_msg"):
            out.append(f"struct {cs.c_name} {{ " + " ".join(f"{f.c_decl};" for f in fields) + " };")
    return "\n".join(out) + FUNCTIONS


@functools.lru_cache(maxsize=None)
def load():
    """(ffi, lib); PortalLibraryMissing tells how to build the library."""
    import cffi
    path = library_path()
    if not path.exists():
        raise PortalLibraryMissing(f"{path} is missing: build it with `.venv/bin/python -m SCons -Q portal`")
    ffi = cffi.FFI()
    ffi.cdef(cdef())
    lib = ffi.dlopen(str(path))
    if ffi.sizeof("struct portal_msg") != SLOT_SIZE:
        raise PortalLibraryMissing("cdef of struct portal_msg does not match the spec")
    return ffi, lib
