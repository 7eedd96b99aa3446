"""cffi (ABI mode) binding of build/portal/libportal_host.so: the guest's
Portal core compiled for the host, plus the host fast-path loops.

The declarations are read from the very headers the library is compiled
against: the generated build/gen/portal_layout.h (wire structs and constants,
from wslx.spec.portal), guest/portal/portal.h (the core's structs and
functions) and portal_host.h (the fast path). Nothing is retyped here; load()
checks that cffi's layout of every struct matches the compiled library's."""
from __future__ import annotations

import functools
import re
from pathlib import Path

from .. import repo_root
from ..spec.portal import SLOT_SIZE
from .errors import PortalLibraryMissing

_HERE = Path(__file__).resolve().parent


def library_path() -> Path:
    return repo_root() / "build" / "portal" / "libportal_host.so"


def header_paths() -> list[Path]:
    """The library's headers, in include order."""
    return [repo_root() / "build" / "gen" / "portal_layout.h", repo_root() / "guest" / "portal" / "portal.h",
            _HERE / "portal_host.h"]


_COMMENT = re.compile(r"/\*.*?\*/|//[^\n]*", re.S)
_DEFINE = re.compile(r"^#define\s+(\w+)\s+(0x[0-9A-Fa-f]+|\d+)[uUlL]*\s*$", re.M)
_STATIC_ASSERT = re.compile(r"_Static_assert\s*\(.*?\)\s*;", re.S)


def _drop_inline_functions(text: str) -> str:
    """Remove `static inline ... { ... }` definitions (cffi declares, it does not compile)."""
    out, i = [], 0
    while (j := text.find("static inline", i)) >= 0:
        out.append(text[i:j])
        k = text.index("{", j)
        depth = 0
        while True:
            depth += {"{": 1, "}": -1}.get(text[k], 0)
            k += 1
            if depth == 0:
                break
        i = k
    out.append(text[i:])
    return "".join(out)


def cdef_from_headers(texts: list[str]) -> str:
    """cffi declarations from C headers: comments, preprocessor lines, static asserts and
    inline functions go; integer macros are substituted (array bounds use them)."""
    macros: dict[str, str] = {}
    decls = []
    for text in texts:
        text = _COMMENT.sub(" ", text)
        macros.update((name, str(int(value, 0))) for name, value in _DEFINE.findall(text))
        text = "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#"))
        decls.append(_drop_inline_functions(_STATIC_ASSERT.sub("", text)))
    body = "\n".join(decls)
    if macros:
        body = re.sub(r"\b(" + "|".join(map(re.escape, macros)) + r")\b", lambda m: macros[m.group(1)], body)
    body = body.replace("__attribute__((packed))", "")
    return "\n".join(line.rstrip() for line in body.splitlines() if line.strip()) + "\n"


def open_library(path: Path, headers: list[Path], missing: type[Exception], build: str):
    """(ffi, lib) for the C library at `path`, declared by `headers` (cdef_from_headers); a missing
    file raises `missing` saying how to build it (`build`, a command line)."""
    import cffi
    absent = [p for p in (*headers, path) if not p.exists()]
    if absent:
        raise missing(f"{absent[0]} is missing: build it with `{build}`")
    ffi = cffi.FFI()
    ffi.cdef(cdef_from_headers([p.read_text() for p in headers]))
    return ffi, ffi.dlopen(str(path))


_BUILD = ".venv/bin/python -m SCons -Q portal"


def cdef() -> str:
    missing = [p for p in header_paths() if not p.exists()]
    if missing:
        raise PortalLibraryMissing(f"{missing[0]} is missing: build it with `{_BUILD}`")
    return cdef_from_headers([p.read_text() for p in header_paths()])


@functools.lru_cache(maxsize=None)
def load():
    """(ffi, lib); PortalLibraryMissing tells how to build the library."""
    path = library_path()
    ffi, lib = open_library(path, header_paths(), PortalLibraryMissing, _BUILD)
    sizes = {"struct portal_msg": SLOT_SIZE, "struct portal_end": lib.portal_end_size(),
             "struct portal_arena": lib.portal_arena_size(), "struct portal_guest": lib.portal_guest_size()}
    wrong = {t: (ffi.sizeof(t), n) for t, n in sizes.items() if ffi.sizeof(t) != n}
    if wrong:
        raise PortalLibraryMissing(f"{path} does not match its headers (cffi size, library size): {wrong}; rebuild it")
    return ffi, lib
