"""wslx.image.elfcheck: the post-link checks of the Track B kernel images.

The built images must pass; crafted bad ELFs (linked here with host gcc)
show each check fires: a W+X segment, a missing or malformed PVH note,
entries outside executable segments, undefined symbols, an image over
budget. The SCons post-link step deletes an image that fails."""
from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from wslx.image import elfcheck
from wslx.spec import trackb as image
from wslx.spec.x86boot import XEN_ELFNOTE_PHYS32_ENTRY

ROOT = Path(__file__).resolve().parents[1]
IMAGES = ROOT / "images"

pytestmark = pytest.mark.skipif(shutil.which("gcc") is None, reason="needs host gcc")


@pytest.fixture(scope="module")
def images():
    """The real images, built with `scons trackb` when missing."""
    kernel, floor = IMAGES / "trackb-kernel.elf", IMAGES / "trackb-floor.elf"
    if not (kernel.exists() and floor.exists()):
        subprocess.run([sys.executable, "-m", "SCons", "-Q", "trackb"], cwd=ROOT, check=True, timeout=900,
                       capture_output=True)
    return kernel, floor


def test_budget_is_a_real_limit(images):
    """The budgets (wslx.spec.trackb, which the SConscript and elfcheck's default use) bind: the
    kernel loads most of its budget (the agent's big tables live in .bss), so a kernel that grew
    by a lot fails the build, and one that shrank by half should lower the budget."""
    kernel, floor = images
    assert elfcheck.DEFAULT_BUDGET == image.KERNEL_LOAD_BUDGET
    assert image.KERNEL_LOAD_BUDGET // 2 < elfcheck.check_kernel(kernel).loaded_bytes <= image.KERNEL_LOAD_BUDGET
    assert elfcheck.check_kernel(floor, budget=image.FLOOR_LOAD_BUDGET).loaded_bytes <= image.FLOOR_LOAD_BUDGET


def test_built_kernel_passes(images):
    kernel, _ = images
    r = elfcheck.check_kernel(kernel, budget=image.KERNEL_LOAD_BUDGET)
    assert r.pvh_entry is not None and r.pvh_entry < 1 << 32
    assert r.entry64 != r.pvh_entry
    assert 0 < r.loaded_bytes <= image.KERNEL_LOAD_BUDGET
    assert all(not ("W" in f and "X" in f) for *_, f in r.segments)


def test_built_floor_passes(images):
    _, floor = images
    r = elfcheck.check_kernel(floor, budget=image.FLOOR_LOAD_BUDGET)
    assert r.loaded_bytes < image.FLOOR_LOAD_BUDGET


def test_budget_fires_on_real_kernel(images):
    kernel, _ = images
    with pytest.raises(elfcheck.ElfCheckError) as ei:
        elfcheck.check_kernel(kernel, budget=1024)
    assert any("over the budget" in p for p in ei.value.problems)


# ---------------------------------------------------------------- crafted images

NOTE = """
        .section .note.Xen, "a", @note
        .balign 4
        .long 4
        .long {descsz}
        .long {ntype}
        .asciz "Xen"
        .balign 4
        {desc}
        .balign 4
"""
CODE = """
        .section .text, "ax"
        .code32
        .globl pvh32
pvh32:  hlt
        .code64
        .globl entry64
entry64:
        hlt
        {extra_code}
        .section .data, "aw"
        .globl datum
datum:  .quad 0
"""
LDS = """
ENTRY({entry})
PHDRS {{ {phdrs} }}
SECTIONS {{
    . = 0x100000;
    .text : {{ *(.text) }} :text
    . = ALIGN(4096);
    .note.Xen : {{ KEEP(*(.note.Xen)) }} {note_phdrs}
    . = ALIGN(4096);
    .data : {{ *(.data) }} :data
    /DISCARD/ : {{ *(.note.GNU-stack) *(.comment) }}
}}
"""
GOOD_PHDRS = "text PT_LOAD FLAGS(5); rodata PT_LOAD FLAGS(4); data PT_LOAD FLAGS(6); note PT_NOTE FLAGS(4);"


def craft(tmp_path: Path, name: str, *, note: str | None = ".quad pvh32", descsz: int = 8, entry="entry64",
          phdrs=GOOD_PHDRS, note_phdrs=":rodata :note", extra_code="", ldflags=()) -> Path:
    src = CODE.format(extra_code=extra_code)
    if note is not None:
        src = NOTE.format(descsz=descsz, desc=note, ntype=XEN_ELFNOTE_PHYS32_ENTRY) + src
    (tmp_path / f"{name}.S").write_text(src)
    (tmp_path / f"{name}.ld").write_text(LDS.format(entry=entry, phdrs=phdrs, note_phdrs=note_phdrs))
    out = tmp_path / f"{name}.elf"
    p = subprocess.run(["gcc", "-nostdlib", "-static", "-no-pie", "-Wa,--noexecstack", "-Wl,--build-id=none",
                        "-Wl,-z,max-page-size=4096", "-Wl,--no-warn-rwx-segments", f"-Wl,-T,{tmp_path / name}.ld",
                        *ldflags, str(tmp_path / f"{name}.S"), "-o", str(out)], capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    return out


def problems(path: Path, budget: int = 64 * 1024) -> list[str]:
    with pytest.raises(elfcheck.ElfCheckError) as ei:
        elfcheck.check_kernel(path, budget=budget)
    return ei.value.problems


def test_crafted_good_image_passes(tmp_path):
    r = elfcheck.check_kernel(craft(tmp_path, "good"), budget=64 * 1024)
    assert r.pvh_entry == 0x100000 and r.entry64 == 0x100001


def test_writable_and_executable_segment(tmp_path):
    img = craft(tmp_path, "wx", phdrs="text PT_LOAD FLAGS(7); rodata PT_LOAD FLAGS(4); data PT_LOAD FLAGS(6); "
                                       "note PT_NOTE FLAGS(4);")
    assert any("both writable and executable" in p for p in problems(img))


def test_missing_pvh_note(tmp_path):
    img = craft(tmp_path, "nonote", note=None, note_phdrs=":rodata")
    assert any("no PVH note" in p for p in problems(img))
    # the same image is fine for a loader that does not need the note
    elfcheck.check_kernel(img, budget=64 * 1024, require_pvh=False)


def test_note_outside_pt_note(tmp_path):
    img = craft(tmp_path, "notnote", note_phdrs=":rodata")     # bytes present, no PT_NOTE segment
    assert any("no PVH note" in p for p in problems(img))


def test_pvh_entry_not_executable(tmp_path):
    img = craft(tmp_path, "pvhdata", note=".quad datum")
    assert any("PVH entry" in p and "executable" in p for p in problems(img))


def test_pvh_entry_4_byte_descriptor(tmp_path):
    img = craft(tmp_path, "desc4", note=".long pvh32", descsz=4)
    assert any("descriptor is 4 bytes" in p for p in problems(img))


def test_pvh_note_misread_by_qemu(tmp_path):
    # A PT_NOTE with p_align 8: QEMU aligns the 4-byte name to 8 and reads the wrong bytes.
    img = craft(tmp_path, "align8", note_phdrs=":rodata :note")
    lds = (tmp_path / "align8.ld").read_text().replace(".note.Xen : {", ".note.Xen : ALIGN(8) { . = ALIGN(8);")
    (tmp_path / "align8.ld").write_text(lds)
    src = (tmp_path / "align8.S").read_text().replace('.section .note.Xen, "a", @note\n        .balign 4',
                                                     '.section .note.Xen, "a", @note\n        .balign 8')
    (tmp_path / "align8.S").write_text(src)
    subprocess.run(["gcc", "-nostdlib", "-static", "-no-pie", "-Wa,--noexecstack", "-Wl,--build-id=none",
                    "-Wl,-z,max-page-size=4096", f"-Wl,-T,{tmp_path / 'align8.ld'}", str(tmp_path / "align8.S"),
                    "-o", str(img)], check=True, capture_output=True)
    from elftools.elf.elffile import ELFFile
    with open(img, "rb") as f:
        aligns = [s["p_align"] for s in ELFFile(f).iter_segments() if s["p_type"] == "PT_NOTE"]
    if aligns != [8]:
        pytest.skip(f"linker gave the note segment p_align {aligns}, not 8")
    assert any("QEMU would read" in p for p in problems(img))


def test_entry64_not_executable(tmp_path):
    img = craft(tmp_path, "entrydata", entry="datum")
    assert any("e_entry" in p for p in problems(img))


def test_undefined_symbol(tmp_path):
    # Told to ignore it, ld links the call to address 0; --emit-relocs keeps the symbol visible.
    img = craft(tmp_path, "undef", extra_code="call missing_function",
                ldflags=("-Wl,--unresolved-symbols=ignore-all", "-Wl,--emit-relocs"))
    assert any("undefined symbols: missing_function" in p for p in problems(img))


def test_over_budget(tmp_path):
    img = craft(tmp_path, "big", extra_code=".fill 70000, 1, 0x90")
    assert any("over the budget of 65536" in p for p in problems(img))


def test_not_an_elf(tmp_path):
    junk = tmp_path / "junk.elf"
    junk.write_bytes(b"\x7fELF" + b"\0" * 10)
    assert any("not a readable ELF" in p for p in problems(junk))


def test_scons_step_deletes_failing_image(tmp_path):
    """The post-link action of site_scons/site_tools/trackb.py fails and removes the image."""
    spec = importlib.util.spec_from_file_location("trackb_tool", ROOT / "site_scons" / "site_tools" / "trackb.py")
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    img = craft(tmp_path, "wx2", phdrs="text PT_LOAD FLAGS(7); rodata PT_LOAD FLAGS(4); data PT_LOAD FLAGS(6); "
                                        "note PT_NOTE FLAGS(4);")
    assert tool._elfcheck([img], [], {"IMAGE_BUDGET": 65536}) == 1
    assert not img.exists()
    good = craft(tmp_path, "good2")
    assert tool._elfcheck([good], [], {"IMAGE_BUDGET": 65536}) == 0 and good.exists()


def test_no_duplicated_or_oversized_loaded_data(images):
    """One CRC table (agentx_wire.h's is static: only guest/agentx/agentx_rx.c may use it), and no object over
    8 KiB in the loaded data/rodata (big tables belong in .bss, which costs no image bytes)."""
    from elftools.elf.elffile import ELFFile
    kernel, _ = images
    with open(kernel, "rb") as f:
        elf = ELFFile(f)
        loaded = [s for s in elf.iter_sections() if s.name in (".data", ".rodata")]
        symtab = elf.get_section_by_name(".symtab")
        syms = [(s.name, s["st_value"], s["st_size"]) for s in symtab.iter_symbols() if s["st_info"]["type"] == "STT_OBJECT"]
    assert sum(1 for n, *_ in syms if n == "agx_crc32_table") == 1
    big = [(n, size) for n, addr, size in syms if size > 8192 and
           any(sec["sh_addr"] <= addr < sec["sh_addr"] + sec["sh_size"] for sec in loaded)]
    assert not big, f"large initialised objects: {big}"
