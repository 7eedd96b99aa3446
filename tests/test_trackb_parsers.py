"""Track B kernel parsers (guest/trackb-kernel/parse/*.c) on crafted bytes.

The inputs are built with the construct specs the kernel's headers are
generated from (wslx.spec.x86boot, wslx.spec.virtio), so C and Python agree
on every layout. The parsers run in a host build under ASan+UBSan
(tests/c/trackb_parse_driver.c copies each input into an exactly sized
buffer): malformed input must be rejected with the right error and never
read out of bounds."""
from __future__ import annotations

import random
import shutil
import struct
import subprocess

import pytest

from helpers import trackb_model
from wslx.spec import virtio as V
from wslx.spec import x86boot as X

pytestmark = pytest.mark.skipif(shutil.which("gcc") is None, reason="needs host gcc")


@pytest.fixture(scope="module")
def driver(tmp_path_factory):
    d = tmp_path_factory.mktemp("trackb-parse")
    trackb_model.write_headers(d, "wslx.spec.x86boot", "wslx.spec.virtio")
    return trackb_model.compile_sanitized(
        d / "trackb_parse_driver", [trackb_model.TESTS_C / "trackb_parse_driver.c", *trackb_model.parser_sources()], d)


def run(driver, kind: str, data: bytes, arg: int | None = None) -> dict:
    """Parse `data` as `kind`; a sanitizer report or crash fails the test."""
    argv = [str(driver), kind] + ([str(arg)] if arg is not None else [])
    p = subprocess.run(argv, input=data, capture_output=True, timeout=30)
    assert p.returncode == 0, f"{kind}: driver died ({p.returncode}):\n{p.stderr.decode(errors='replace')[-3000:]}"
    out: dict = {}
    for line in p.stdout.decode().splitlines():
        k, _, v = line.partition("=")
        out.setdefault(k, []).append(v)
    return {k: v if len(v) > 1 or k in ("region", "cap", "ecam", "entry") else v[0] for k, v in out.items()}


def err(res) -> str:
    return res["strerror"]


# ---------------------------------------------------------------- PVH start_info

def start_info(**kw) -> bytes:
    f = dict(magic=X.HVM_START_MAGIC, version=1, flags=0, nr_modules=0, modlist_paddr=0, cmdline_paddr=0x20000,
             rsdp_paddr=0xF3720, memmap_paddr=0x7000, memmap_entries=3, reserved=0)
    f.update(kw)
    return X.HVM_START_INFO.build(f)


def test_start_info_fields(driver):
    r = run(driver, "pvh", start_info())
    assert (r["rc"], r["cmdline"], r["rsdp"], r["memmap"], r["entries"]) == ("0", "20000", "f3720", "7000", "3")


@pytest.mark.parametrize("kw,want", [
    (dict(magic=0x12345678), "bad signature"),
    (dict(version=0), "unsupported version"),
    (dict(memmap_entries=0), "not found"),
    (dict(memmap_paddr=0), "not found"),
])
def test_start_info_rejected(driver, kw, want):
    assert err(run(driver, "pvh", start_info(**kw))) == want


def test_start_info_truncated(driver):
    data = start_info()
    for n in (0, 4, len(data) - 1):
        assert err(run(driver, "pvh", data[:n])) == "truncated"


def memmap(entries) -> bytes:
    return b"".join(X.HVM_MEMMAP_ENTRY.build(dict(addr=a, size=s, type=t, reserved=0)) for a, s, t in entries)


def test_memmap_entries(driver):
    ents = [(0, 0x9FC00, 1), (0x9FC00, 0x400, 2), (0x100000, 0, 1), (0x100000, 0x1FF00000, 1)]
    r = run(driver, "pvh_memmap", memmap(ents), 4)
    assert r["rc"] == "3"          # the zero-sized entry is skipped
    assert r["region"] == ["0,9fc00,1", "9fc00,400,2", "100000,1ff00000,1"]


def test_memmap_count_beyond_bytes(driver):
    data = memmap([(0, 0x1000, 1)] * 2)
    assert err(run(driver, "pvh_memmap", data, 3)) == "truncated"
    assert err(run(driver, "pvh_memmap", data[:-1], 2)) == "truncated"
    assert err(run(driver, "pvh_memmap", data, 0xFFFFFFFF)) == "truncated"


def test_memmap_wrapping_entry(driver):
    assert err(run(driver, "pvh_memmap", memmap([(0xFFFFFFFFFFFFF000, 0x2000, 1)]), 1)) == "value out of range"


def test_memmap_more_than_capacity(driver):
    r = run(driver, "pvh_memmap", memmap([(i << 20, 0x1000, 1) for i in range(12)]), 12)
    assert r["rc"] == "8" and len(r["region"]) == 8


# ---------------------------------------------------------------- boot_params

def boot_params(entries, cmdline=0x4_0002_0000, rsdp=0xE0000, count=None) -> bytes:
    page = bytearray(X.BP_SIZE)
    struct.pack_into("<Q", page, X.BP_ACPI_RSDP_ADDR, rsdp)
    struct.pack_into("<I", page, X.BP_CMD_LINE_PTR, cmdline & 0xFFFFFFFF)
    struct.pack_into("<I", page, X.BP_EXT_CMD_LINE_PTR, cmdline >> 32)
    page[X.BP_E820_ENTRIES] = len(entries) if count is None else count
    for i, (a, s, t) in enumerate(entries):
        e = X.BOOT_E820_ENTRY.build(dict(addr=a, size=s, type=t))
        off = X.BP_E820_TABLE + i * len(e)
        page[off:off + len(e)] = e
    return bytes(page)


def test_boot_params_e820(driver):
    r = run(driver, "bootparams", boot_params([(0, 0x9F000, 1), (0x100000, 0x3FF00000, 1), (0xFEC00000, 0x1000, 2)]))
    assert r["rc"] == "3"
    assert r["region"] == ["0,9f000,1", "100000,3ff00000,1", "fec00000,1000,2"]
    assert (r["cmdline"], r["rsdp"]) == ("400020000", "e0000")


def test_boot_params_bad(driver):
    assert err(run(driver, "bootparams", boot_params([], count=X.BP_E820_MAX + 1))) == "value out of range"
    assert err(run(driver, "bootparams", boot_params([], count=0))) == "not found"
    assert err(run(driver, "bootparams", boot_params([(0, 0x1000, 1)])[:-1])) == "truncated"
    # all 128 slots used: the last entry ends inside the page
    r = run(driver, "bootparams", boot_params([(i << 12, 0x1000, 1) for i in range(X.BP_E820_MAX)]))
    assert r["rc"] == "8"


# ---------------------------------------------------------------- ACPI

def checksum_fix(data: bytearray, at: int, upto: int | None = None) -> bytearray:
    data[at] = 0
    data[at] = (-sum(data[:upto] if upto else data)) & 0xFF
    return data


def rsdp(revision=2, xsdt=0xD2000, rsdt=0xD1000) -> bytes:
    d = bytearray(X.ACPI_RSDP.build(dict(signature=b"RSD PTR ", checksum=0, oem_id=b"BOCHS ", revision=revision,
                                         rsdt_address=rsdt, length=X.ACPI_RSDP.sizeof(), xsdt_address=xsdt,
                                         extended_checksum=0, reserved=b"\0\0\0")))
    checksum_fix(d, 8, X.ACPI_RSDP_V1_SIZE)
    checksum_fix(d, 32)
    return bytes(d)


def sdt(sig: bytes, body: bytes, length: int | None = None) -> bytes:
    hdr = X.ACPI_SDT_HEADER.build(dict(signature=sig, length=length or X.ACPI_SDT_HEADER.sizeof() + len(body),
                                       revision=1, checksum=0, oem_id=b"BOCHS ", oem_table_id=b"BXPC    ",
                                       oem_revision=1, creator_id=1, creator_revision=1))
    return bytes(checksum_fix(bytearray(hdr + body), 9))


def test_rsdp_v2_uses_xsdt(driver):
    r = run(driver, "rsdp", rsdp())
    assert (r["rc"], r["root"], r["xsdt"]) == ("0", "d2000", "1")


def test_rsdp_v1_uses_rsdt(driver):
    r = run(driver, "rsdp", rsdp(revision=0)[:X.ACPI_RSDP_V1_SIZE])
    assert (r["rc"], r["root"], r["xsdt"]) == ("0", "d1000", "0")


def test_rsdp_rejected(driver):
    good = rsdp()
    bad_sum = bytearray(good)
    bad_sum[8] ^= 1
    assert err(run(driver, "rsdp", bytes(bad_sum))) == "bad checksum"
    assert err(run(driver, "rsdp", b"RSD PTX" + good[7:])) == "bad signature"
    assert err(run(driver, "rsdp", good[:30])) == "truncated"           # v2 but cut short
    long_len = bytearray(good)
    struct.pack_into("<I", long_len, 20, 4096)                          # claims more than given
    checksum_fix(long_len, 8, X.ACPI_RSDP_V1_SIZE)
    assert err(run(driver, "rsdp", bytes(long_len))) == "value out of range"


def test_rsdp_scan_aligned_only(driver):
    area = bytearray(0x400)
    r = rsdp()
    area[0x108:0x108 + len(r)] = r          # unaligned: must not count
    assert err(run(driver, "rsdp_scan", bytes(area))) == "not found"
    area[0x230:0x230 + len(r)] = r
    assert run(driver, "rsdp_scan", bytes(area))["rc"] == str(0x230)
    # a candidate at the very end, cut short, is not read past the buffer
    assert err(run(driver, "rsdp_scan", bytes(area[:0x240]))) == "not found"


def test_root_tables(driver):
    xsdt = sdt(b"XSDT", struct.pack("<3Q", 0xD3000, 0xD4000, 0x1_0000_0000))
    r = run(driver, "root", xsdt, 1)
    assert r["entry"] == ["d3000", "d4000", "100000000"] and r["count"] == "3"
    rsdt = sdt(b"RSDT", struct.pack("<2I", 0xD3000, 0xD4000) + b"\x01\x02")  # trailing partial entry ignored
    r = run(driver, "root", rsdt, 0)
    assert r["entry"] == ["d3000", "d4000"]
    assert err(run(driver, "root", rsdt, 1)) == "bad signature"
    assert err(run(driver, "root", xsdt[:-4], 1)) == "truncated"        # length says more than we have
    corrupt = bytearray(xsdt)
    corrupt[40] ^= 0xFF
    assert err(run(driver, "root", bytes(corrupt), 1)) == "bad checksum"
    assert err(run(driver, "root", sdt(b"XSDT", b"", length=10), 1)) == "value out of range"


def mcfg(allocs) -> bytes:
    body = b"\0" * 8 + b"".join(X.ACPI_MCFG_ALLOCATION.build(dict(base_address=b, segment=s, start_bus=lo,
                                                                   end_bus=hi, reserved=0)) for b, s, lo, hi in allocs)
    return sdt(b"MCFG", body)


def test_mcfg(driver):
    r = run(driver, "mcfg", mcfg([(0xB0000000, 0, 0, 255), (0xE0000000, 1, 0, 15)]))
    assert r["ecam"] == ["b0000000,0,0,255", "e0000000,1,0,15"]


@pytest.mark.parametrize("alloc", [
    (0xB0000000, 0, 10, 5),                 # end bus before start bus
    (0, 0, 0, 255),                         # no base
    (0xB0000800, 0, 0, 1),                  # not 1 MiB aligned
    (0xFFFFFFFFFFF00000, 0, 0, 255),        # window wraps
])
def test_mcfg_bad_allocation(driver, alloc):
    assert err(run(driver, "mcfg", mcfg([alloc]))) == "value out of range"


def test_mcfg_truncated(driver):
    assert err(run(driver, "mcfg", sdt(b"MCFG", b"\0" * 4))) == "truncated"      # shorter than the reserved field
    assert err(run(driver, "mcfg", mcfg([(0xB0000000, 0, 0, 255)])[:50])) == "truncated"
    assert err(run(driver, "mcfg", sdt(b"APIC", b"\0" * 8))) == "bad signature"


def test_fadt_and_s5(driver):
    body = bytearray(X.ACPI_FADT_X_DSDT + 8 - X.ACPI_SDT_HEADER.sizeof())
    base = X.ACPI_SDT_HEADER.sizeof()
    struct.pack_into("<I", body, X.ACPI_FADT_DSDT - base, 0xD0040)
    struct.pack_into("<I", body, X.ACPI_FADT_PM1A_CNT_BLK - base, 0x604)
    r = run(driver, "fadt", sdt(b"FACP", bytes(body)))
    assert (r["rc"], r["pm1a"], r["dsdt"]) == ("0", "604", "d0040")
    struct.pack_into("<Q", body, X.ACPI_FADT_X_DSDT - base, 0x1_0000_0000)
    assert run(driver, "fadt", sdt(b"FACP", bytes(body)))["dsdt"] == "100000000"
    assert err(run(driver, "fadt", sdt(b"FACP", b"\0" * 8))) == "truncated"
    # Name(_S5, Package(4){0x05, 0x05, 0, 0}) as iasl emits it
    aml = b"\x10\x05\\_SB_" + b"\x08_S5_\x12\x0a\x04\x0a\x05\x0a\x05\x00\x00"
    assert run(driver, "s5", sdt(b"DSDT", aml))["slp_typa"] == "5"
    aml0 = b"\x08_S5_\x12\x06\x04\x00\x00\x00\x00"     # QEMU q35: SLP_TYP 0 as ZeroOp
    assert run(driver, "s5", sdt(b"DSDT", aml0))["slp_typa"] == "0"
    assert err(run(driver, "s5", sdt(b"DSDT", b"\x08_S5_\x12\x0a"))) == "truncated"
    assert err(run(driver, "s5", sdt(b"DSDT", b"\x08_S4_\x12\x06\x04\x00"))) == "not found"


# ---------------------------------------------------------------- PCI capability lists

def cfg_space(caps: list[tuple[int, bytes]], first: int | None = None, size: int = 256, status_caps: bool = True):
    """Config space with capabilities at the given offsets, chained in list order."""
    cfg = bytearray(size)
    struct.pack_into("<HH", cfg, 0, V.PCI_VENDOR_ID, V.PMEM_PCI_DEVICE_ID)
    struct.pack_into("<H", cfg, 6, 0x10 if status_caps else 0)
    cfg[0x34] = first if first is not None else (caps[0][0] if caps else 0)
    for i, (off, body) in enumerate(caps):
        cfg[off:off + len(body)] = body
        cfg[off + 1] = caps[i + 1][0] if i + 1 < len(caps) else 0
    return bytes(cfg)


def vcap(cfg_type, bar, offset, length, cap_len=16, id=0, extra=b"") -> bytes:
    c = dict(cap_vndr=V.PCI_CAP_ID_VNDR, cap_next=0, cap_len=cap_len, cfg_type=cfg_type, bar=bar, id=id,
             padding=b"\0\0", offset=offset, length=length)
    return V.VIRTIO_PCI_CAP.build(c) + extra


def notify_cap(bar, offset, length, mult) -> bytes:
    return V.VIRTIO_PCI_NOTIFY_CAP.build(dict(cap=dict(cap_vndr=V.PCI_CAP_ID_VNDR, cap_next=0, cap_len=20,
                                                       cfg_type=V.PciCapType.NOTIFY_CFG, bar=bar, id=0,
                                                       padding=b"\0\0", offset=offset, length=length),
                                              notify_off_multiplier=mult))


def shm_cap(bar, offset, length, id=0) -> bytes:
    return V.VIRTIO_PCI_CAP64.build(dict(cap=dict(cap_vndr=V.PCI_CAP_ID_VNDR, cap_next=0, cap_len=24,
                                                  cfg_type=V.PciCapType.SHARED_MEMORY_CFG, bar=bar, id=id,
                                                  padding=b"\0\0", offset=offset & 0xFFFFFFFF,
                                                  length=length & 0xFFFFFFFF),
                                         offset_hi=offset >> 32, length_hi=length >> 32))


QEMU_CAPS = [  # what QEMU 7.2's virtio-pmem-pci exposes (MSI-X first, then the virtio caps on BAR 4)
    (0x84, bytes([0x11, 0, 0, 0]) + b"\0" * 8),
    (0x74, vcap(V.PciCapType.COMMON_CFG, 4, 0x0000, 0x1000)),
    (0x64, vcap(V.PciCapType.ISR_CFG, 4, 0x1000, 0x1000)),
    (0x54, vcap(V.PciCapType.DEVICE_CFG, 4, 0x2000, 0x1000)),
    (0x40, notify_cap(4, 0x3000, 0x1000, 4)),
]


def test_cap_list_order(driver):
    r = run(driver, "caps", cfg_space(QEMU_CAPS))
    assert r["cap"] == ["84", "74", "64", "54", "40"]


def test_cap_list_absent(driver):
    assert run(driver, "caps", cfg_space(QEMU_CAPS, status_caps=False))["rc"] == "0"


def test_cap_list_loop(driver):
    cfg = bytearray(cfg_space(QEMU_CAPS))
    cfg[0x40 + 1] = 0x74          # last points back into the list
    assert err(run(driver, "caps", bytes(cfg))) == "capability loop"
    cfg[0x40 + 1] = 0x40          # points at itself
    assert err(run(driver, "caps", bytes(cfg))) == "capability loop"


def test_cap_pointer_out_of_range(driver):
    assert err(run(driver, "caps", cfg_space([(0x40, b"\x09\x00")], first=0x20))) == "value out of range"
    # pointer past a truncated snapshot
    assert err(run(driver, "caps", cfg_space([(0x40, b"\x09\x00")], first=0xF0, size=0x80))) == "value out of range"
    assert err(run(driver, "caps", bytes(0x30))) == "truncated"


def test_virtio_caps_qemu_layout(driver):
    r = run(driver, "virtio_caps", cfg_space(QEMU_CAPS))
    assert r["rc"] == "0"
    assert (r["common"], r["isr"], r["device"], r["notify"]) == ("4,0,1000", "4,1000,1000", "4,2000,1000",
                                                                  "4,3000,1000")
    assert r["notify_mult"] == "4" and "shm" not in r


def test_virtio_caps_shared_memory(driver):
    caps = QEMU_CAPS + [(0x90, shm_cap(2, 0x1_0000_0000, 0x2_0000_0000, id=1)),
                        (0xA8, shm_cap(4, 0x1_0000_0000, 0x4000_0000))]
    r = run(driver, "virtio_caps", cfg_space(caps))
    assert r["shm"] == "4,100000000,40000000"       # id 1 is not the pmem region


def test_virtio_caps_first_wins_and_bad_bar_ignored(driver):
    caps = [(0x90, vcap(V.PciCapType.COMMON_CFG, 7, 0, 0x1000))] + QEMU_CAPS + \
           [(0xA0, vcap(V.PciCapType.DEVICE_CFG, 0, 0x8000, 0x100))]
    r = run(driver, "virtio_caps", cfg_space(caps))
    assert r["common"] == "4,0,1000" and r["device"] == "4,2000,1000"


@pytest.mark.parametrize("bad,want", [
    ((0x50, vcap(V.PciCapType.DEVICE_CFG, 4, 0x2000, 0x1000, cap_len=8)), "value out of range"),
    ((0x50, vcap(V.PciCapType.DEVICE_CFG, 4, 0x2000, 0x1000, cap_len=0xF0)), "value out of range"),
    ((0x50, vcap(V.PciCapType.NOTIFY_CFG, 4, 0x2000, 0x1000, cap_len=16)), "value out of range"),
    ((0x50, vcap(V.PciCapType.SHARED_MEMORY_CFG, 4, 0x2000, 0x1000, cap_len=16)), "value out of range"),
    ((0x50, vcap(V.PciCapType.COMMON_CFG, 4, 0x2000, 8)), "value out of range"),
    ((0x50, shm_cap(4, 0xFFFFFFFFFFFFF000, 0x2000)), "value out of range"),
])
def test_virtio_caps_malformed(driver, bad, want):
    caps = [c for c in QEMU_CAPS if c[0] != 0x54] + [(0xA0, bad[1])]
    assert err(run(driver, "virtio_caps", cfg_space(caps))) == want


def test_virtio_cap_at_end_of_snapshot(driver):
    # a vendor capability starting 8 bytes before the end of a short snapshot: rejected, not over-read
    caps = QEMU_CAPS[2:] + [(0x78, bytes([V.PCI_CAP_ID_VNDR, 0, 16, 4, 4, 0, 0, 0]))]
    assert err(run(driver, "virtio_caps", cfg_space(caps, size=0x80))) == "truncated"


def test_virtio_caps_missing_device(driver):
    caps = [c for c in QEMU_CAPS if c[0] != 0x54]
    assert err(run(driver, "virtio_caps", cfg_space(caps))) == "not found"


# ---------------------------------------------------------------- virtio-pmem config

def test_pmem_config(driver):
    r = run(driver, "pmem_cfg", V.VIRTIO_PMEM_CONFIG.build(dict(start=0x1_0000_0000, size=16 << 20)))
    assert (r["rc"], r["start"], r["size"]) == ("0", "100000000", "1000000")


@pytest.mark.parametrize("start,size,want", [
    (0, 0, "not found"),                            # OpenVMM: use the shared memory capability
    (0x1_0000_0800, 16 << 20, "value out of range"),
    (0x1_0000_0000, 0, "value out of range"),
    (0xFFFFFFFFFFFFF000, 0x2000, "value out of range"),
])
def test_pmem_config_rejected(driver, start, size, want):
    assert err(run(driver, "pmem_cfg", V.VIRTIO_PMEM_CONFIG.build(dict(start=start, size=size)))) == want


def test_pmem_config_truncated(driver):
    assert err(run(driver, "pmem_cfg", b"\0" * 15)) == "truncated"


# ---------------------------------------------------------------- hostile bytes

SEEDS = {
    "pvh": start_info(), "bootparams": boot_params([(0, 0x9F000, 1)]), "rsdp": rsdp(),
    "mcfg": mcfg([(0xB0000000, 0, 0, 255)]), "caps": cfg_space(QEMU_CAPS), "virtio_caps": cfg_space(QEMU_CAPS),
    "s5": sdt(b"DSDT", b"\x08_S5_\x12\x0a\x04\x0a\x05\x0a\x05\x00\x00"),
    "pmem_cfg": V.VIRTIO_PMEM_CONFIG.build(dict(start=1 << 32, size=1 << 24)),
}


@pytest.mark.parametrize("kind", sorted(SEEDS))
def test_mutated_inputs_never_crash(driver, kind):
    """Random byte flips and truncations: any answer is fine, a sanitizer report is not."""
    rng = random.Random(f"trackb-{kind}")
    seed = SEEDS[kind]
    for _ in range(40):
        data = bytearray(seed)
        for _ in range(rng.randint(1, 6)):
            data[rng.randrange(len(data))] = rng.randrange(256)
        if rng.random() < 0.3:
            data = data[:rng.randrange(len(data) + 1)]
        run(driver, kind, bytes(data))


# ---------------------------------------------------------------- driver model
# The kernel's PCI, virtio-pci transport, virtqueue, virtio-pmem driver and vm_map_identity
# (kernel/vm.c), compiled unchanged against tests/c/trackb_platform_model.c (platform.h, a page
# allocator with a page budget, entry.S's boot page tables) and tests/c/trackb_model.c: a model
# virtio-pmem function (its config, a device that answers flush requests from the split virtqueue).


@pytest.fixture(scope="module")
def model(driver):
    return trackb_model.build_model(driver.parent, "trackb_model", "drivers/virtio_pmem.c")


def run_model(model, scenario: str) -> dict:
    return trackb_model.run_model(model, scenario, lists=("mapped",))


STATUS_OK = V.DeviceStatus.ACKNOWLEDGE | V.DeviceStatus.DRIVER | V.DeviceStatus.FEATURES_OK | V.DeviceStatus.DRIVER_OK


def test_model_qemu_config_region(model):
    r = run_model(model, "qemu")
    assert (r["probe"], r["status"], r["source"]) == ("0", str(int(STATUS_OK)), "device config")
    assert (r["start"], r["size"]) == ("100000000", "1000000")
    assert int(r["features"], 16) == 1 << V.F_VERSION_1 | 1 << V.PMEM_F_SHMEM_REGION  # never bit 33
    assert r["bar4"] == "c0000000"                       # unassigned BAR placed in the window
    assert r["mapped"] == ["100000000,1000000"]          # identity, 2 MiB pages, in the tables vm.c built
    assert r["pt_pages"] == "1"                          # one PD for [4 GiB, 5 GiB)
    assert (r["flush"], r["flushes"], r["pages_out"]) == ("0", "1", "0")


def test_model_openvmm_shared_memory_region(model):
    r = run_model(model, "openvmm")
    assert (r["probe"], r["source"]) == ("0", "shared memory cap")
    assert r["start"] == r["bar2"] and r["size"] == "2000000"
    assert f"{r['bar2']},2000000" in r["mapped"]
    assert r["pt_pages"] == "0"                          # below 4 GiB: the boot map has it


@pytest.mark.parametrize("scenario", ["no_version1", "refuse_features"])
def test_model_feature_negotiation_failure(model, scenario):
    r = run_model(model, scenario)
    assert r["probe"] != "0"
    assert int(r["status"]) & V.DeviceStatus.FAILED and not int(r["status"]) & V.DeviceStatus.DRIVER_OK
    assert r["pages_out"] == "0"


@pytest.mark.parametrize("scenario,want", [("device_error", "-5"), ("bad_used_id", "-5"), ("short_len", "-5"),
                                           ("silent", "-110")])
def test_model_flush_errors(model, scenario, want):
    r = run_model(model, scenario)
    assert r["probe"] == "0" and r["flush"] == want


@pytest.mark.parametrize("scenario", ["cap_beyond_bar", "notify_beyond"])
def test_model_device_regions_outside_their_bar_are_refused(model, scenario):
    """A capability (device config) that ends past its BAR, a queue notify offset past the
    notify capability: the probe fails (no MMIO outside the BAR; the model aborts on any)."""
    r = run_model(model, scenario)
    assert r["probe"] != "0" and not int(r["status"]) & V.DeviceStatus.DRIVER_OK
    if scenario == "notify_beyond":      # found after negotiation: the device is told the driver gave up
        assert int(r["status"]) & V.DeviceStatus.FAILED
    assert r["pages_out"] == "0"


def test_model_region_over_ram_is_refused(model):
    """A device config that claims guest RAM (here 16 MiB at 16 MiB) as the pmem region: the
    Portal would write into the kernel's own memory, so the probe refuses it."""
    r = run_model(model, "over_ram")
    assert r["probe"] == "-34" and int(r["status"]) & V.DeviceStatus.FAILED
    assert r["pages_out"] == "0"


def test_model_oversize_pmem_region_is_refused(model):
    """A device config claiming 64 TiB (canonical, page aligned, not RAM): beyond PMEM_MAX_SIZE
    (64 GiB), refused before any page is allocated; without the bound vm_map_identity would
    try to build 64 Ki PDs (256 MiB of page tables) from the guest's RAM."""
    r = run_model(model, "huge")
    assert r["probe"] == "-34" and int(r["status"]) & V.DeviceStatus.FAILED
    assert (r["pt_pages"], r["pages_out"]) == ("0", "0")


def test_model_pmem_region_at_the_limit_is_mapped(model):
    r = run_model(model, "max_size")
    assert (r["probe"], r["size"]) == ("0", f"{64 << 30:x}")
    assert r["mapped"] == [f"100000000,{64 << 30:x}"]    # every 2 MiB leaf walked
    assert r["pt_pages"] == "64" and r["pages_out"] == "0"


def test_model_page_tables_exhausted_part_way(model):
    """32 GiB needs 32 PDs; the allocator runs dry after 5: the probe fails with ENOMEM and the
    5 PDs vm_map_identity took are back (no leak, no half-built entries left in the PDPT)."""
    r = run_model(model, "tables_exhausted")
    assert r["probe"] == "-12" and int(r["status"]) & V.DeviceStatus.FAILED
    assert (r["pt_pages"], r["pages_out"]) == ("0", "0")


def test_model_vm_map_identity_bounds_and_rollback(model):
    r = run_model(model, "vm")
    # non-canonical end, over VM_MAP_MAX_LEN, wrapping: refused without allocating
    assert (r["canonical"], r["over_limit"], r["wraps"], r["pages_after_refused"]) == ("-1", "-1", "-1", "0")
    assert (r["first"], r["first_pages"]) == ("0", "1")
    # [511 GiB, 519 GiB) with 2 pages left: PD 511 and the new PDPT are taken, PD 512 fails;
    # both go back, their entries are cleared, the earlier mapping is untouched
    assert (r["exhausted"], r["pages_after_exhausted"], r["pml4_1"], r["pdpt_511"]) == ("-1", "1", "0", "0")
    assert (r["exhausted_mapped"], r["first_still_mapped"]) == ("0", "1")
    assert (r["retry"], r["retry_pages"], r["retry_mapped"]) == ("0", "10", "1")   # 1 + PD 511, PDPT, 7 PDs
    # the worst case VM_MAP_MAX_LEN: 65 PDs and 2 PDPTs, all new (vm.c's MAX_NEW_TABLES)
    assert (r["max"], r["max_mapped"]) == ("0", "1") and int(r["max_pages"]) - int(r["retry_pages"]) == 67
    assert r["pages_out"] == "0"


def test_model_device_rewriting_descriptors_is_harmless(model):
    """The device scribbles desc[].next after every request: the driver's free list is private,
    so 300 flushes still recycle the 64 descriptors (ASan would catch a walk off the table)."""
    r = run_model(model, "scribble_next")
    assert (r["flush"], r["flushes"]) == ("0", "300")


def test_model_late_answer_to_a_timed_out_flush(model):
    """A flush that timed out is answered with the next one: the next flush skips the stale
    completion (and frees its chain) instead of failing."""
    r = run_model(model, "late")
    assert (r["flush_first"], r["flush"], r["flushes"]) == ("-110", "0", "2")


def test_model_queue_size_and_recycling(model):
    assert run_model(model, "small_queue")["qsize"] == "8"
    r = run_model(model, "many")                          # 300 flushes through a 64-entry queue
    assert (r["flush"], r["flushes"], r["notifies"]) == ("0", "300", "300")
