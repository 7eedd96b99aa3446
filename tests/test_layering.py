"""Track B layering: lower layers never reach up. The platform layer (all hardware access)
includes nothing but itself and the generated hvsim trap-block header; the parsers take raw bytes and include only themselves, the
one errno set and the headers generated from the specs."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

KERNEL = Path(__file__).resolve().parents[1] / "guest" / "trackb-kernel"
GENERATED = {"x86boot.h", "virtio.h", "agentx_wire.h", "portal_layout.h"}   # build/gen, from the specs
ALLOWED = {
    "platform": {"platform/platform.h", "hvsim.h"},   # hvsim.h: the generated trap block (hv_backend.c)
    "parse": {"parse/parse.h", "kernel/errno.h", *GENERATED},
}


def _includes(path: Path) -> set[str]:
    return set(re.findall(r'^\s*#\s*include\s+"([^"]+)"', path.read_text(), re.M))


@pytest.mark.parametrize("layer", sorted(ALLOWED))
def test_lower_layers_include_nothing_above_them(layer):
    files = sorted((KERNEL / layer).glob("*.[ch]"))
    assert files, f"no sources in {layer}/"
    wrong = {f.name: sorted(_includes(f) - ALLOWED[layer]) for f in files if _includes(f) - ALLOWED[layer]}
    assert not wrong, f"{layer}/ reaches up: {wrong}"


def test_errno_header_stands_alone():
    """kernel/errno.h is a leaf: parsers and drivers alike include it."""
    assert _includes(KERNEL / "kernel" / "errno.h") == set()
