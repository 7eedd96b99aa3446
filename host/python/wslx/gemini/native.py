"""cffi (ABI mode) binding of build/gemini/libgemini_guest.so: the guest's Gemini core and
the Portal core (compiled unchanged for the host), plus the host's C side (gemini_host.c:
the call-record checks and the null.call fast path). Declarations come from the very
headers the library is compiled against."""
from __future__ import annotations

import functools
from pathlib import Path

from .. import repo_root
from ..portal.errors import PortalLibraryMissing
from ..portal.native import open_library


def library_path():
    return repo_root() / "build" / "gemini" / "libgemini_guest.so"


def header_paths():
    r = repo_root()
    return [r / "build/gen/portal_layout.h", r / "guest/portal/portal.h", r / "build/gen/gemini_wire.h",
            r / "guest/gemini/gemini.h", Path(__file__).resolve().parent / "gemini_host.h"]


@functools.lru_cache(maxsize=None)
def load():
    return open_library(library_path(), header_paths(), PortalLibraryMissing, ".venv/bin/scons -Q gemini")
