"""Post-link checks for the Track B kernel images (pyelftools).

    report = check_kernel("images/trackb-kernel.elf", budget=512 * 1024)

raises ElfCheckError listing every problem found:
- not an ELF64 x86-64 executable, or dynamically linked;
- the 64-bit entry (e_entry, OpenVMM direct boot) not inside a loaded executable segment;
- no well-formed PVH note: a "Xen" note of type XEN_ELFNOTE_PHYS32_ENTRY (wslx.spec.x86boot) in a PT_NOTE
  segment, 8-byte descriptor in an ELF64 file (QEMU reads it as a pointer), read at the same
  place by QEMU's loader (which aligns the name to the segment's p_align) as by the ELF rules,
  and a 32-bit physical address inside a loaded executable segment;
- undefined symbols;
- a segment both writable and executable;
- loaded bytes (sum of PT_LOAD p_filesz) over the budget (default: the kernel's, wslx.spec.trackb).

Also a command: python -m wslx.image.elfcheck IMAGE [--budget BYTES].
"""
from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass, field
from pathlib import Path

from elftools.common.exceptions import ELFError
from elftools.elf.constants import P_FLAGS
from elftools.elf.elffile import ELFFile
from elftools.elf.sections import SymbolTableSection

from ..spec.trackb import KERNEL_LOAD_BUDGET as DEFAULT_BUDGET
from ..spec.x86boot import XEN_ELFNOTE_PHYS32_ENTRY


class ElfCheckError(Exception):
    """The image failed one or more checks; `problems` lists them."""

    def __init__(self, path: Path | str, problems: list[str]):
        self.path = Path(path)
        self.problems = problems
        super().__init__(f"{path}: {len(problems)} problem(s):\n" + "\n".join(f"  - {p}" for p in problems))


@dataclass
class ElfReport:
    path: Path
    entry64: int
    pvh_entry: int | None
    loaded_bytes: int
    memory_bytes: int
    budget: int
    segments: list[tuple[int, int, int, str]] = field(default_factory=list)  # paddr, filesz, memsz, flags

    def summary(self) -> str:
        pvh = f"{self.pvh_entry:#x}" if self.pvh_entry is not None else "none"
        return (f"{self.path.name}: entry64 {self.entry64:#x}, PVH entry {pvh}, "
                f"{self.loaded_bytes} bytes loaded of {self.budget} budget, {self.memory_bytes} bytes in memory")


def _flags(p_flags: int) -> str:
    return "".join(c if p_flags & bit else "-" for c, bit in (("R", P_FLAGS.PF_R), ("W", P_FLAGS.PF_W),
                                                                ("X", P_FLAGS.PF_X)))


def _align(n: int, a: int) -> int:
    return (n + a - 1) // a * a if a > 1 else n


def _pvh_notes(elf: ELFFile, seg, problems: list[str]) -> list[int]:
    """Entries of the XEN_ELFNOTE_PHYS32_ENTRY notes in one PT_NOTE segment, checked
    the way QEMU's read_pvh_start_addr reads them."""
    data = seg.data()
    align = max(int(seg["p_align"]), 1)
    is64 = elf.elfclass == 64
    out, off = [], 0
    while off + 12 <= len(data):
        namesz, descsz, ntype = (int.from_bytes(data[off + i:off + i + 4], "little") for i in (0, 4, 8))
        name_off = off + 12
        desc_off = name_off + _align(namesz, 4)
        end = desc_off + _align(descsz, 4)
        if end > len(data):
            problems.append(f"PT_NOTE at {seg['p_offset']:#x}: note at +{off:#x} runs past the segment")
            break
        name = data[name_off:name_off + namesz].rstrip(b"\0")
        if name == b"Xen" and ntype == XEN_ELFNOTE_PHYS32_ENTRY:
            want = 8 if is64 else 4
            if descsz != want:
                problems.append(f"PVH note descriptor is {descsz} bytes; QEMU reads {want} in an ELF{elf.elfclass}")
            else:
                value = int.from_bytes(data[desc_off:desc_off + want], "little")
                qemu_off = name_off + _align(namesz, align)
                qemu_value = int.from_bytes(data[qemu_off:qemu_off + want], "little")
                if qemu_value != value:
                    problems.append(f"PVH note: QEMU would read {qemu_value:#x} (name aligned to p_align {align}) "
                                    f"instead of {value:#x}; use p_align 4 for the note segment")
                out.append(value)
        off = end
    return out


def check_kernel(path: Path | str, *, budget: int = DEFAULT_BUDGET, require_pvh: bool = True) -> ElfReport:
    path = Path(path)
    problems: list[str] = []
    try:
        f = open(path, "rb")
    except OSError as e:
        raise ElfCheckError(path, [f"cannot open: {e}"]) from None
    with f:
        try:
            elf = ELFFile(f)
            segs = list(elf.iter_segments())
        except ELFError as e:
            raise ElfCheckError(path, [f"not a readable ELF file: {e}"]) from None
        if elf.elfclass != 64 or elf["e_machine"] != "EM_X86_64":
            problems.append(f"not an ELF64 x86-64 file (class {elf.elfclass}, machine {elf['e_machine']})")
        if elf["e_type"] != "ET_EXEC":
            problems.append(f"e_type is {elf['e_type']}, want ET_EXEC (loaded at its physical addresses)")
        loads = [s for s in segs if s["p_type"] == "PT_LOAD"]
        for s in segs:
            if s["p_type"] in ("PT_INTERP", "PT_DYNAMIC"):
                problems.append(f"{s['p_type']} segment: the kernel must be statically linked")
        for s in loads:
            if s["p_flags"] & P_FLAGS.PF_W and s["p_flags"] & P_FLAGS.PF_X:
                problems.append(f"segment at {s['p_paddr']:#x} ({s['p_memsz']} bytes) is both writable and executable")

        def in_exec(addr: int, use_paddr: bool) -> bool:
            key = "p_paddr" if use_paddr else "p_vaddr"
            return any(s["p_flags"] & P_FLAGS.PF_X and s[key] <= addr < s[key] + s["p_memsz"] for s in loads)

        entry = int(elf["e_entry"])
        if entry == 0 or not in_exec(entry, use_paddr=False):
            problems.append(f"64-bit entry e_entry={entry:#x} is not inside a loaded executable segment")

        pvh: list[int] = []
        for s in segs:
            if s["p_type"] == "PT_NOTE":
                pvh += _pvh_notes(elf, s, problems)
        pvh_entry = pvh[0] if pvh else None
        if require_pvh:
            if not pvh:
                problems.append(f"no PVH note (Xen ELF note type {XEN_ELFNOTE_PHYS32_ENTRY}, XEN_ELFNOTE_PHYS32_ENTRY) "
                                "in a PT_NOTE segment")
            elif len(pvh) > 1:
                problems.append(f"{len(pvh)} PVH notes; want exactly one")
            elif pvh_entry >= 1 << 32:
                problems.append(f"PVH entry {pvh_entry:#x} is not a 32-bit physical address")
            elif not in_exec(pvh_entry, use_paddr=True):
                problems.append(f"PVH entry {pvh_entry:#x} is not inside a loaded executable segment")

        symtab = elf.get_section_by_name(".symtab")
        if isinstance(symtab, SymbolTableSection):
            undefined = sorted({sym.name for sym in symtab.iter_symbols()
                                if sym.name and sym["st_shndx"] == "SHN_UNDEF"})
            if undefined:
                problems.append("undefined symbols: " + ", ".join(undefined[:20]))

        loaded = sum(int(s["p_filesz"]) for s in loads)
        memory = sum(int(s["p_memsz"]) for s in loads)
        if loaded > budget:
            problems.append(f"image loads {loaded} bytes, over the budget of {budget} bytes")
        report = ElfReport(path, entry, pvh_entry, loaded, memory, budget,
                           [(int(s["p_paddr"]), int(s["p_filesz"]), int(s["p_memsz"]), _flags(s["p_flags"]))
                            for s in loads])
    if problems:
        raise ElfCheckError(path, problems)
    return report


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m wslx.image.elfcheck", description=__doc__.splitlines()[0])
    ap.add_argument("image", type=Path)
    ap.add_argument("--budget", type=int, default=DEFAULT_BUDGET, help="loaded bytes allowed (default %(default)s)")
    ap.add_argument("--no-pvh", action="store_true", help="do not require the PVH note")
    args = ap.parse_args(argv)
    try:
        print(check_kernel(args.image, budget=args.budget, require_pvh=not args.no_pvh).summary())
    except ElfCheckError as e:
        print(f"elfcheck: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
