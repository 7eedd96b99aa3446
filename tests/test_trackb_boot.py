"""The Track B kernel boots under QEMU TCG (PVH entry, qboot) via QemuMachine.

Checks the boot console (memory map, PCI functions, calibrated timer, the
virtio-pmem region matching the backing file and mapped), HELLO on the COM2
channel, a pmem flush through QUIESCE, power-off through isa-debug-exit, and
the exception path: a deliberate #PF / #UD prints vector, RIP, CR2 and error
code, and the host sees GuestPanicked (pvpanic) with the console tail. W^X at
run time: a write to .text and a call into .data or the stack fault with a
protection-violation #PF (write / instruction fetch) at the address the kernel
names, inside the section the ELF symbols bound. A kernel stack overflow runs
into the unmapped guard page and ends as a #DF on its IST stack with a
diagnostic, not a triple fault."""
from __future__ import annotations

import re
import shutil
import struct
import subprocess
from pathlib import Path

import pytest

from wslx.agentx.client import AgentClient
from wslx.bench.boot import _floor_seconds
from wslx.vmm.errors import GuestExited, GuestPanicked, LaunchError
from wslx.guests.trackb import ISA_DEBUG_EXIT, PANIC_REGEX
from wslx.vmm.qemu import QemuMachine

ROOT = Path(__file__).resolve().parents[1]
KERNEL = ROOT / "images" / "trackb-kernel.elf"
FLOOR = ROOT / "images" / "trackb-floor.elf"
DEBUG_EXIT = ISA_DEBUG_EXIT
PMEM_SIZE = 16 << 20
MAGIC = 0x5452_4143_4B42_2121   # written by the host at offset 0 of the pmem file

pytestmark = [
    pytest.mark.vm,
    pytest.mark.skipif(shutil.which("qemu-system-x86_64") is None, reason="needs qemu-system-x86_64"),
    pytest.mark.skipif(not KERNEL.exists(), reason="images/trackb-kernel.elf not built (scons trackb)"),
]


@pytest.fixture
def pmem_file(tmp_path):
    p = tmp_path / "pmem.img"
    with open(p, "wb") as f:
        f.write(struct.pack("<Q", MAGIC))
        f.truncate(PMEM_SIZE)
    return p


def machine(tmp_path, *, append="", pmem=None, quiet=False, kernel=KERNEL, extra=()):
    return QemuMachine(kernel, None, append=append, quiet=quiet, serial_transport=True,
                       pmem_path=pmem, extra_args=DEBUG_EXIT + list(extra), run_dir=tmp_path / "vm",
                       panic_regex=PANIC_REGEX)


def test_boot_console_and_hello(tmp_path, pmem_file):
    with machine(tmp_path, pmem=pmem_file) as vm:
        # Connect at once: a UART cannot tell whether anyone listens, and QEMU drops what the
        # guest sends to an unconnected socket chardev (wait=off), HELLO included.
        client = AgentClient(vm.serial_socket(10), default_timeout=20)
        vm.wait_console(r"^trackb: ready after \d+ us", timeout=30)
        con = vm.read_console()
        # memory map: 512 MiB of RAM from the PVH memmap, and the page allocator's view of it
        ram = [tuple(int(x, 16) for x in m) for m in re.findall(r"memmap: ([0-9a-f]{16})-([0-9a-f]{16}) ram", con)]
        assert sum(hi - lo + 1 for lo, hi in ram) >= 500 << 20
        kib = int(re.search(r"pmm: (\d+) KiB usable", con).group(1))
        assert 400 << 10 < kib < 512 << 10
        # PCI via ECAM from MCFG: the q35 host bridge and the virtio-pmem function
        assert re.search(r"acpi: MCFG segment 0 buses 0-255 ECAM at b0000000", con)
        assert re.search(r"pci: 00:00\.0 8086:29c0", con)
        assert re.search(r"pci: [0-9a-f]{2}:[0-9a-f]{2}\.\d 1af4:105b", con)
        assert "via ECAM" in con
        # timer: the TSC calibrated against the PIT (TCG runs it at the host TSC rate)
        khz = int(re.search(r"timer: TSC (\d+) kHz, calibrated against PIT channel 2", con).group(1))
        assert 100_000 < khz < 10_000_000
        # pmem: QEMU's config start/size, the host file's size, mapped (the host's magic reads back)
        m = re.search(r"pmem: region ([0-9a-f]+) size (\d+) bytes \(device config\)", con)
        assert m and int(m.group(2)) == PMEM_SIZE and int(m.group(1), 16) >= 1 << 32
        assert int(re.search(r"pmem: first 8 bytes ([0-9a-f]{16})", con).group(1), 16) == MAGIC

        hello = client.wait_hello(20)
        assert hello.os_release.startswith("wslx-trackb")
        for _ in range(3):      # the agent flushes pmem through the virtqueue; descriptors are recycled
            done = client.quiesce(timeout_ms=5000, timeout=20)
            assert done["flushed_regions"] == 1, done
            client.resume(timeout=20)
        client.shutdown(timeout=20)
        # isa-debug-exit: QEMU's status is (code << 1) | 1 for the agent's code 0
        assert vm.wait_exit(20) == 1
    assert "env: power off (code 0)" in vm.read_console()


def test_boot_without_pmem(tmp_path):
    with machine(tmp_path) as vm:
        client = AgentClient(vm.serial_socket(10), default_timeout=20)
        vm.wait_console(r"^trackb: ready after", timeout=30)
        assert "pmem: no virtio-pmem device" in vm.read_console()
        client.wait_hello(20)


def test_quiet_boot_prints_summary_only(tmp_path, pmem_file):
    with machine(tmp_path, pmem=pmem_file, quiet=True) as vm:
        vm.wait_console(r"^trackb: ready after", timeout=30)
        con = vm.read_console()
    assert "memmap:" not in con and "pci: 00:00.0" not in con
    assert re.search(r"pmem: region [0-9a-f]+ size 16777216", con)


@pytest.mark.parametrize("kind,vector,name", [("pf", 14, "#PF page fault"), ("ud", 6, "#UD invalid opcode")])
def test_fault_diagnostic_and_panic(tmp_path, kind, vector, name):
    # The fault comes within milliseconds, often before QMP is up: launch itself may report it.
    with pytest.raises(GuestPanicked) as ei:
        with machine(tmp_path, append=f"trackb.fault={kind}") as vm:
            vm.wait_console(r"this line never appears", timeout=30)
    tail = ei.value.console_tail
    m = re.search(rf"trap: vector {vector} \({re.escape(name)}\) rip=([0-9a-f]+) cr2=([0-9a-f]+) error=([0-9a-f]+)",
                  tail)
    assert m, tail
    assert 0x100000 <= int(m.group(1), 16) < 0x200000        # inside the kernel image
    if kind == "pf":
        assert int(m.group(2), 16) == 0xDEAD0000000          # env_fault_on_purpose's address
        assert int(m.group(3), 16) & 1 == 0                  # not-present fault
    assert "trackb: stopped" in tail


def kernel_symbols(*names: str) -> dict[str, int]:
    from elftools.elf.elffile import ELFFile
    with open(KERNEL, "rb") as f:
        symtab = ELFFile(f).get_section_by_name(".symtab")
        return {n: symtab.get_symbol_by_name(n)[0]["st_value"] for n in names}


PF_P, PF_W, PF_U, PF_RSVD, PF_I = 0x01, 0x02, 0x04, 0x08, 0x10     # Intel SDM Vol. 3A 4.7


@pytest.mark.parametrize("kind,what,section,bits,words", [
    ("wtext", "write to .text", ("__text_start", "__text_end"), PF_P | PF_W, "protection violation, write, cr2 in .text"),
    ("xdata", "call into .data", ("__data_start", "__bss_start"), PF_P | PF_I,
     "protection violation, instruction fetch, cr2 in .data/.bss"),
    ("xstack", "call into the stack", ("__bss_start", "_kernel_end"), PF_P | PF_I,
     "protection violation, instruction fetch, cr2 in .data/.bss"),
], ids=["wtext", "xdata", "xstack"])
def test_wx_violation_faults(tmp_path, kind, what, section, bits, words):
    """W^X at run time: the kernel names the address it writes to / calls; the #PF comes at that
    address (CR2, and RIP for a fetch) with the protection-violation bit and the access kind set.
    Without W^X the access succeeds and a 'wtext: .text is writable'-style panic follows instead."""
    lo, hi = kernel_symbols(*section).values()
    vm = machine(tmp_path, append=f"trackb.fault={kind}")
    with pytest.raises(GuestPanicked) as ei:
        with vm:
            vm.wait_console(r"this line never appears", timeout=30)
    tail = ei.value.console_tail
    assert re.search(r"^vm: text [0-9a-f]+-[0-9a-f]+ r-x, .* NX on, in \d+ us\r?$", vm.read_console(), re.M)
    addr = int(re.search(rf"trackb: faulting on purpose \({what} at ([0-9a-f]+)\)", tail).group(1), 16)
    assert lo <= addr < hi, (hex(addr), hex(lo), hex(hi))
    m = re.search(r"trap: vector 14 \(#PF page fault\) rip=([0-9a-f]+) cr2=([0-9a-f]+) error=([0-9a-f]+)", tail)
    assert m, tail
    rip, cr2, err = (int(g, 16) for g in m.groups())
    assert cr2 == addr
    assert err & (PF_P | PF_W | PF_U | PF_RSVD | PF_I) == bits, hex(err)
    text_start, text_end = kernel_symbols("__text_start", "__text_end").values()
    if bits & PF_I:
        assert rip == addr                                   # the fetch itself faulted
    else:
        assert text_start <= rip < text_end                  # the store instruction in .text
    assert f"trap: #PF {words}\n" in tail
    assert "is writable" not in tail and "is executable" not in tail
    assert "trackb: stopped" in tail


def test_stack_overflow_double_faults_on_ist(tmp_path):
    """trackb.fault=stack recurses without bound: the boot stack runs into the unmapped guard page
    below it, the #PF frame cannot be pushed there either, so the CPU raises #DF, which switches
    to its IST stack (TSS) and prints. Without the guard page the recursion would run on through
    .bss; without IST the #DF push would fault too and triple-fault (QEMU resets, no diagnostic)."""
    guard, stack, top = kernel_symbols("boot_stack_guard", "boot_stack", "boot_stack_top").values()
    assert stack - guard == 4096 and top - stack == 32 << 10
    vm = machine(tmp_path, append="trackb.fault=stack")
    with pytest.raises(GuestPanicked) as ei:
        with vm:
            vm.wait_console(r"this line never appears", timeout=30)
    tail = ei.value.console_tail
    assert re.search(rf"^vm: .* stack guard {guard:x}-{stack:x} ---, .* NX on", vm.read_console(), re.M)
    assert f"trackb: faulting on purpose (unbounded recursion, guard page at {guard:x})" in tail
    m = re.search(r"trap: vector 8 \(#DF double fault\) rip=([0-9a-f]+) cr2=([0-9a-f]+) error=([0-9a-f]+)", tail)
    assert m, tail
    rip, cr2, err = (int(g, 16) for g in m.groups())
    text_start, text_end = kernel_symbols("__text_start", "__text_end").values()
    assert text_start <= rip < text_end and err == 0                   # #DF's error code is always 0
    assert guard <= cr2 < stack                                        # the fault was in the guard page
    assert f"trap: kernel stack overflow (cr2 {cr2:x} in the guard page {guard:x}-{stack:x} " \
           f"below the boot stack {stack:x}-{top:x})" in tail
    rsp = int(re.search(r"trap: rsp=([0-9a-f]+)", tail).group(1), 16)
    assert guard <= rsp <= stack                                       # the interrupted RSP: at the bottom
    assert "vector 14" not in tail and "panic:" not in tail            # #PF never ran; no fallback panic
    assert "trackb: stopped" in tail


def test_agent_fault_builtin(tmp_path):
    with machine(tmp_path) as vm:
        client = AgentClient(vm.serial_socket(10), default_timeout=20)
        client.wait_hello(20)
        client.exec(["fault"])
        with pytest.raises(GuestPanicked) as ei:
            vm.wait_console(r"this line never appears", timeout=30)
    assert "trap: vector 14 (#PF page fault)" in ei.value.console_tail


@pytest.mark.skipif(not FLOOR.exists(), reason="images/trackb-floor.elf not built")
def test_floor_exits_at_once(tmp_path):
    """The floor leaves through isa-debug-exit at its first instruction, often before QMP is
    up: launch then reports the exit as a LaunchError that carries QEMU's status."""
    try:
        with machine(tmp_path, kernel=FLOOR) as vm:
            rc = vm.wait_exit(20)
    except LaunchError as e:
        rc = e.exitcode
    assert rc is not None and rc & 1 == 1                     # isa-debug-exit status, not a crash
    assert (tmp_path / "vm" / "console.log").read_text() == ""
    # the boot benchmark's own measurement of the same kernel (raises unless isa-debug-exit)
    assert _floor_seconds(FLOOR, log=lambda s: None) > 0


SHIM_LDS = """SECTIONS { . = 0x4000000; .text : { *(.text) } . = ALIGN(4096);
  .note.Xen : { KEEP(*(.note.Xen)) } .rodata : { *(.rodata) } . = ALIGN(4096); .data : { *(.data) }
  /DISCARD/ : { *(.note.GNU-stack) } }"""


def test_64bit_entry_with_boot_params(tmp_path, pmem_file):
    """The OpenVMM way in: 64-bit mode, identity map, RSI = boot_params. tests/c/trackb_shim64.S
    (entered by QEMU through PVH) builds boot_params from start_info and jumps to e_entry of the
    kernel, which `-device loader` put at its physical addresses."""
    from elftools.elf.elffile import ELFFile
    with open(KERNEL, "rb") as f:
        entry = ELFFile(f)["e_entry"]
    (tmp_path / "shim.ld").write_text(SHIM_LDS)
    shim = tmp_path / "shim.elf"
    subprocess.run(["gcc", "-nostdlib", "-static", "-no-pie", "-Wa,--noexecstack", "-Wl,--build-id=none",
                    "-Wl,-z,max-page-size=4096", f"-Wl,-T,{tmp_path / 'shim.ld'}", f"-DKERNEL_ENTRY={entry:#x}",
                    f"-I{ROOT / 'build' / 'gen'}", f"-I{ROOT / 'guest' / 'trackb-kernel'}", str(ROOT / "tests" / "c" / "trackb_shim64.S"), "-o", str(shim)], check=True, capture_output=True)
    with machine(tmp_path, kernel=shim, pmem=pmem_file, append="trackb.via=shim",
                 extra=["-device", f"loader,file={KERNEL}"]) as vm:
        client = AgentClient(vm.serial_socket(10), default_timeout=20)
        vm.wait_console(r"^trackb: ready after", timeout=30)
        con = vm.read_console()
        assert "trackb: Track B kernel, 64-bit entry, boot info at 90000" in con
        assert "trackb.via=shim" in con                          # command line through cmd_line_ptr
        assert re.search(r"memmap: 0000000000100000-000000001fffffff ram", con)   # e820 from boot_params
        assert re.search(r"acpi: MCFG segment 0", con)          # RSDP through acpi_rsdp_addr
        assert re.search(r"^vm: text 100000-[0-9a-f]+ r-x, .* NX on", con, re.M)   # W^X on this path too
        assert re.search(r"pmem: region [0-9a-f]+ size 16777216", con)
        client.wait_hello(20)
