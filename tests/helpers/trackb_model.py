"""Host builds of Track B kernel code for the tests (tests/test_trackb_parsers.py,
tests/test_trackb_console.py): gcc under ASan+UBSan with every sanitizer report fatal,
headers generated from the construct specs, and the device models of tests/c/ linked
with the platform-layer model (tests/c/trackb_platform_model.c) and the kernel's
PCI, virtio-pci transport and virtqueue code, unchanged."""
from __future__ import annotations

import subprocess
from pathlib import Path

from wslx.codegen import c_header, c_structs

ROOT = Path(__file__).resolve().parents[2]
KERNEL = ROOT / "guest" / "trackb-kernel"
TESTS_C = ROOT / "tests" / "c"
SANITIZED = ["gcc", "-std=gnu11", "-g", "-O1", "-Wall", "-Wextra", "-Werror",
             "-fsanitize=address,undefined", "-fno-sanitize-recover=all", "-fno-omit-frame-pointer"]
# What every device model runs on: PCI enumeration, the virtio-pci transport, virtqueues,
# the page tables (kernel/vm.c), zeroed pages on the model's allocator (kernel/pmm_zeroed.c), and
# the parsers they use.
TRANSPORT = ["drivers/pci.c", "drivers/virtio_pci.c", "drivers/virtqueue.c", "kernel/string.c", "kernel/vm.c",
             "kernel/pmm_zeroed.c"]


def write_headers(d: Path, *spec_modules: str, agentx: bool = False) -> None:
    """The generated headers the kernel includes (e.g. virtio.h from wslx.spec.virtio), into d."""
    for mod in spec_modules:
        spec = c_structs.load_spec(mod)
        (d / f"{spec.name}.h").write_text(c_structs.generate_header(spec))
    if agentx:
        (d / "agentx_wire.h").write_text(c_header.generate())


def compile_sanitized(exe: Path, sources, gen: Path) -> Path:
    """gcc with ASan+UBSan of `sources`, headers from the kernel tree, tests/c and `gen`."""
    r = subprocess.run([*SANITIZED, f"-I{KERNEL}", f"-I{TESTS_C}", f"-I{gen}", *map(str, sources), "-o", str(exe)],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    return exe


def parser_sources() -> list[Path]:
    """The parsers and the names of the errors they return (kernel/errno.c)."""
    return [*sorted((KERNEL / "parse").glob("*.c")), KERNEL / "kernel" / "errno.c"]


def build_model(gen: Path, name: str, driver: str) -> Path:
    """tests/c/<name>.c (a device model) with the platform model, the transport and the
    kernel's `driver` (e.g. drivers/virtio_pmem.c); headers from `gen`."""
    sources = [TESTS_C / f"{name}.c", TESTS_C / "trackb_platform_model.c",
               *(KERNEL / s for s in [*TRANSPORT, driver]), *parser_sources()]
    return compile_sanitized(gen / name, sources, gen)


def run_model(exe: Path, scenario: str, lists: tuple[str, ...] = ()) -> dict:
    """Run one scenario; its key=value lines as a dict (the keys in `lists`: every value,
    in order; the others: the first). The model must exit 0: an abort() on an access it
    does not expect, a sanitizer report or a crash fails the test."""
    p = subprocess.run([str(exe), scenario], capture_output=True, timeout=60)
    assert p.returncode == 0, f"{scenario}: model died ({p.returncode}):\n{p.stderr.decode(errors='replace')[-3000:]}"
    out: dict = {}
    for line in p.stdout.decode().splitlines():
        k, sep, v = line.partition("=")
        if sep:
            out.setdefault(k, []).append(v)
    return {k: v if k in lists else v[0] for k, v in out.items()}
