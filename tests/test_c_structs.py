"""The construct→C struct generator (wslx.codegen.c_structs): the C layout it
emits agrees with construct byte for byte, its static asserts fire on a layout
C would pad differently, it refuses field types it cannot express, and every
spec header in build/gen matches a fresh regeneration."""
from __future__ import annotations

import enum
import importlib
import pkgutil
import subprocess

import pytest
from construct import Array, Bytes, Int8ul, Int16ul, Int32ul, Int64ul, PaddedString, Struct

from wslx.codegen import c_structs
from wslx.spec.header import Constant, CStruct, HeaderSpec
from wslx.spec.fields import Reserved

INNER = Struct("a" / Int16ul * "first", "b" / Int16ul, "pad" / Reserved(4))
OUTER = Struct(
    "magic" / Int32ul * "magic number",
    "count" / Int32ul,
    "inner" / INNER,
    "slots" / Array(3, Int64ul) * "three slots",
    "tag" / Bytes(8),
)


class Color(enum.IntEnum):
    """A toy enum."""
    RED = 1
    GREEN = 22


class Bits(enum.IntFlag):
    """Flags get no name function."""
    A = 1


def toy_spec(structs=None) -> HeaderSpec:
    return HeaderSpec(name="toy_layout", source="tests/test_c_structs.py", prefix="TOY", title="toy",
                      constants=[Constant("MAGIC", 0x59544F54, "toy magic"), Constant("BIG", 1 << 40)],
                      enums=[("TOY_COLOR", Color), ("TOY_BITS", Bits)],
                      structs=structs or [CStruct("toy_inner", INNER), CStruct("toy_outer", OUTER, "outer")])


def _compile_and_run(tmp_path, header: str, main: str) -> subprocess.CompletedProcess:
    (tmp_path / "toy_layout.h").write_text(header)
    (tmp_path / "main.c").write_text('#include <stdio.h>\n#include <string.h>\n#include "toy_layout.h"\n' + main)
    cc = subprocess.run(["gcc", "-std=c11", "-Wall", "-Werror", "-o", str(tmp_path / "toy"), str(tmp_path / "main.c")],
                        capture_output=True, text=True)
    if cc.returncode != 0:
        return cc
    return subprocess.run([str(tmp_path / "toy")], capture_output=True, text=True)


def test_c_reads_what_construct_wrote(tmp_path):
    value = dict(magic=0x59544F54, count=7, inner=dict(a=0x1234, b=0xBEEF, pad=None),
                 slots=[1, 1 << 40, 0xFFFFFFFFFFFFFFFF], tag=b"ABCDEFGH")
    raw = OUTER.build(value)
    blob = ",".join(str(b) for b in raw)
    r = _compile_and_run(tmp_path, c_structs.generate_header(toy_spec()), f"""
int main(void) {{
    static const unsigned char raw[] = {{{blob}}};
    struct toy_outer o;
    _Static_assert(sizeof raw == TOY_OUTER_SIZE, "size");
    memcpy(&o, raw, sizeof o);
    printf("%x %u %x %x %llu %llu %llu %.8s %u\\n", o.magic, o.count, o.inner.a, o.inner.b,
           (unsigned long long)o.slots[0], (unsigned long long)o.slots[1], (unsigned long long)o.slots[2],
           (const char *)o.tag, (unsigned)TOY_OUTER_OFF_SLOTS);
    printf("%s %s %s\\n", toy_color_name(TOY_COLOR_RED), toy_color_name(22), toy_color_name(-5));
    return TOY_MAGIC == o.magic && TOY_BIG == (1ull << 40) ? 0 : 1;
}}""")
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["59544f54", "7", "1234", "beef", "1", str(1 << 40), str(2**64 - 1), "ABCDEFGH",
                                str(OUTER.sizeof() - 8 - 24), "RED", "GREEN", "?"]
    assert "toy_bits_name" not in c_structs.generate_header(toy_spec())


def test_static_asserts_fire_when_c_would_pad_differently(tmp_path):
    odd = Struct("flag" / Int8ul, "value" / Int32ul)  # construct packs; C aligns value at 4
    header = c_structs.generate_header(toy_spec([CStruct("toy_odd", odd)]))
    r = _compile_and_run(tmp_path, header, "int main(void) { return 0; }")
    assert r.returncode != 0 and "toy_odd" in r.stderr
    packed = c_structs.generate_header(toy_spec([CStruct("toy_odd", odd, packed=True)]))
    assert _compile_and_run(tmp_path, packed, "int main(void) { return 0; }").returncode == 0


def test_unsupported_fields_are_refused():
    with pytest.raises(TypeError, match="unsupported construct"):
        c_structs.generate_header(toy_spec([CStruct("toy_str", Struct("name" / PaddedString(8, "ascii")))]))
    with pytest.raises(TypeError, match="nested struct"):
        c_structs.generate_header(toy_spec([CStruct("toy_outer", OUTER)]))


def test_markdown_lists_every_field_with_offsets():
    md = c_structs.generate_markdown(toy_spec())
    assert "## struct toy_outer (48 bytes)" in md
    assert "| 4 | 4 | `uint8_t[4]` | `pad` | reserved, must be zero |" in md
    assert "| 16 | 24 | `uint64_t[3]` | `slots` | three slots |" in md


def spec_modules() -> list[str]:
    import wslx.spec
    names = []
    for info in pkgutil.iter_modules(wslx.spec.__path__):
        mod = importlib.import_module(f"wslx.spec.{info.name}")
        if isinstance(getattr(mod, "C_HEADER", None), HeaderSpec):
            names.append(mod.__name__)
    return names


@pytest.mark.parametrize("module", spec_modules())
def test_spec_headers_in_the_build_match_regeneration(module, generated):
    spec = c_structs.load_spec(module)
    built = generated / f"{spec.name}.h"
    assert built.exists(), f"{built} is not built: add env.SpecHeader('{spec.name}.h', SPEC='{module}') to host/python/SConscript"
    assert built.read_text() == c_structs.generate_header(spec)


def test_assembler_header_gives_assembler_and_c_the_same_numbers(tmp_path):
    """A HeaderSpec with assembler=True: a .S file includes it and gets the constants, enum
    values and offsets (without C suffixes); a C file including the same header still gets
    the structs and their static asserts."""
    import dataclasses
    spec = dataclasses.replace(toy_spec(), assembler=True)
    (tmp_path / "toy_layout.h").write_text(c_structs.generate_header(spec))
    (tmp_path / "toy.S").write_text('#include "toy_layout.h"\n        .data\n'
                                    "        .quad TOY_MAGIC, TOY_BIG, TOY_COLOR_GREEN, TOY_OUTER_OFF_SLOTS, TOY_OUTER_SIZE\n")
    obj = tmp_path / "toy.o"
    cc = subprocess.run(["gcc", "-c", f"-I{tmp_path}", str(tmp_path / "toy.S"), "-o", str(obj)],
                        capture_output=True, text=True)
    assert cc.returncode == 0, cc.stderr
    from elftools.elf.elffile import ELFFile
    with open(obj, "rb") as f:
        data = ELFFile(f).get_section_by_name(".data").data()
    slots_off = c_structs.layouts(spec)[1][1][3].offset
    assert Array(5, Int64ul).parse(data) == [0x59544F54, 1 << 40, Color.GREEN, slots_off, OUTER.sizeof()]
    r = _compile_and_run(tmp_path, c_structs.generate_header(spec),
                         'int main(void) { struct toy_outer o; printf("%zu %s\\n", sizeof o, toy_color_name(22));'
                         " return TOY_OUTER_OFF_SLOTS != offsetof(struct toy_outer, slots); }")
    assert r.returncode == 0 and r.stdout.split() == [str(OUTER.sizeof()), "GREEN"], r.stderr
