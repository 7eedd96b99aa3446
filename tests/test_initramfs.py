"""wslx.image.initramfs: reproducible newc archive, busybox, module closure."""
from __future__ import annotations

import os
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

from wslx.image import initramfs as ir
from wslx.image.cpio import Entry, read_archive, write_archive

BUSYBOX = Path("/bin/busybox")
needs_busybox = pytest.mark.skipif(not BUSYBOX.is_file(), reason="busybox-static not installed")


def _default_kernel():
    try:
        return ir.find_default_kernel()
    except ir.InitramfsError:
        return None


KERNEL = _default_kernel()
needs_kernel = pytest.mark.skipif(KERNEL is None or ir.modules_dir_for(KERNEL) is None,
                                  reason="no Debian cloud kernel with modules (linux-image-cloud-amd64)")


@pytest.fixture
def fake_init(tmp_path):
    p = tmp_path / "wslx-init"
    p.write_bytes(b"\x7fELF fake agent\n")
    p.chmod(0o755)
    return p


def _entries(path: Path) -> dict[str, Entry]:
    return {e.name: e for e in read_archive(path.read_bytes())}


def _fake_modules_dir(tmp_path: Path) -> Path:
    """A synthetic /lib/modules/<kver> whose deps are listed in modprobe order."""
    d = tmp_path / "lib-modules" / "9.9.9-test"
    (d / "kernel").mkdir(parents=True)
    dep = {
        "kernel/a/top.ko": ["kernel/a/mid-one.ko", "kernel/a/base.ko"],
        "kernel/a/mid-one.ko": ["kernel/a/base.ko"],
        "kernel/a/base.ko": [],
        "kernel/b/other.ko": ["kernel/a/base.ko"],
        "kernel/b/zipped.ko.xz": ["kernel/b/other.ko", "kernel/a/base.ko"],
        "kernel/c/unrelated.ko": [],
    }
    import lzma
    for m in dep:
        f = d / m
        f.parent.mkdir(parents=True, exist_ok=True)
        payload = f"module {m}".encode()
        f.write_bytes(lzma.compress(payload) if m.endswith(".xz") else payload)
    (d / "modules.dep").write_text("".join(f"{m}: {' '.join(ds)}\n" for m, ds in dep.items()))
    (d / "modules.builtin").write_text("kernel/x/builtin_thing.ko\n")
    return d


# ------------------------------------------------------------------ cpio format


def test_cpio_roundtrip_and_format(tmp_path):
    entries = [Entry("dev", stat.S_IFDIR | 0o755, nlink=2),
               Entry("dev/console", stat.S_IFCHR | 0o600, rdev=(5, 1)),
               Entry("f", stat.S_IFREG | 0o644, b"abc"),
               Entry("l", stat.S_IFLNK | 0o777, b"/f")]
    out = tmp_path / "x.cpio"
    with open(out, "wb") as f:
        n = write_archive(f, entries, mtime=1234)
    data = out.read_bytes()
    assert len(data) == n and n % 512 == 0
    assert data.startswith(b"070701")
    assert b"TRAILER!!!\0" in data
    back = list(read_archive(data))
    assert [e.name for e in back] == ["dev", "dev/console", "f", "l"]
    assert [e.ino for e in back] == [1, 2, 3, 4]
    assert all(e.mtime == 1234 and e.uid == 0 and e.gid == 0 for e in back)
    assert back[1].rdev == (5, 1) and back[2].data == b"abc" and back[3].data == b"/f"


@pytest.mark.skipif(not shutil.which("cpio"), reason="no cpio(1)")
@needs_busybox
def test_archive_readable_by_cpio(tmp_path, fake_init):
    out = ir.build_initramfs(tmp_path / "i.cpio", fake_init, modules=False)
    listing = subprocess.run(["cpio", "-it", "--quiet"], stdin=open(out, "rb"), capture_output=True,
                             text=True, check=True).stdout.split()
    assert "init" in listing and "bin/busybox" in listing and "dev/console" in listing


# ------------------------------------------------------------------ contents


@needs_busybox
def test_contents_without_modules(tmp_path, fake_init):
    out = ir.build_initramfs(tmp_path / "i.cpio", fake_init, modules=False)
    es = _entries(out)
    init = es["init"]
    assert init.kind == "file" and stat.S_IMODE(init.mode) == 0o755 and init.data == fake_init.read_bytes()
    assert es["bin/busybox"].data == BUSYBOX.read_bytes()
    for d in ("dev", "proc", "sys", "run", "tmp", "etc", "lib/modules", "mnt"):
        assert es[d].kind == "dir", d
    assert es["dev/console"].kind == "chr" and es["dev/console"].rdev == (5, 1)
    assert es["dev/null"].kind == "chr" and es["dev/null"].rdev == (1, 3)
    names = {n.rsplit("/", 1)[-1]: e for n, e in es.items() if e.kind == "symlink"}
    for applet in ("sh", "true", "cat", "uname", "sleep", "mount", "poweroff"):
        assert names[applet].data == b"/bin/busybox", applet
    assert es["etc/wslx/modules.load"].data == b""
    assert not [n for n in es if n.startswith("lib/modules/")]
    # Every entry's parent precedes it; nlink is sensible; no hardlinks.
    seen = set()
    for e in read_archive(out.read_bytes()):
        if "/" in e.name:
            assert e.name.rsplit("/", 1)[0] in seen, e.name
        seen.add(e.name)
        assert e.nlink == 1 or e.kind == "dir"
    assert es["lib"].nlink == 3  # lib/modules


@needs_busybox
def test_extra_files_and_init_script(tmp_path):
    out = ir.build_initramfs(tmp_path / "i.cpio", None, modules=False, init_script="#!/bin/sh\necho hi\n",
                             extra_files={"/etc/wslx/x.conf": "k=v\n", "opt/tool": (b"bin", 0o700),
                                          "opt/link": ("symlink", "/opt/tool")})
    es = _entries(out)
    assert es["init"].data.startswith(b"#!/bin/sh") and stat.S_IMODE(es["init"].mode) == 0o755
    assert es["etc/wslx/x.conf"].data == b"k=v\n"
    assert stat.S_IMODE(es["opt/tool"].mode) == 0o700 and es["opt"].kind == "dir"
    assert es["opt/link"].kind == "symlink"


def test_missing_init_is_an_error(tmp_path):
    with pytest.raises(ir.InitramfsError):
        ir.build_initramfs(tmp_path / "i.cpio", None, modules=False, busybox=None)


# ------------------------------------------------------------------ reproducibility


@needs_busybox
@needs_kernel
def test_reproducible_across_dirs_and_mtimes(tmp_path, monkeypatch):
    monkeypatch.delenv("SOURCE_DATE_EPOCH", raising=False)
    outs = []
    for i, mt in enumerate((1_000_000, 2_000_000_000)):
        d = tmp_path / f"run{i}"
        d.mkdir()
        init = d / "wslx-init"
        init.write_bytes(b"\x7fELF same agent")
        os.utime(init, (mt, mt))
        outs.append(ir.build_initramfs(d / "out" / "linux-initramfs.cpio", init, kernel=KERNEL))
    a, b = (p.read_bytes() for p in outs)
    assert a == b
    es = {e.name: e for e in read_archive(a)}
    assert all(e.mtime == 0 for e in es.values())
    assert all(e.uid == 0 and e.gid == 0 for e in es.values())
    assert [e.ino for e in read_archive(a)] == list(range(1, len(es) + 1))


@needs_busybox
def test_source_date_epoch(tmp_path, fake_init, monkeypatch):
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    out = ir.build_initramfs(tmp_path / "a.cpio", fake_init, modules=False)
    assert {e.mtime for e in read_archive(out.read_bytes())} == {1700000000}
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000001")
    out2 = ir.build_initramfs(tmp_path / "b.cpio", fake_init, modules=False)
    assert out.read_bytes() != out2.read_bytes()


# ------------------------------------------------------------------ modules


def test_closure_order_on_synthetic_tree(tmp_path, caplog):
    d = _fake_modules_dir(tmp_path)
    cl = ir.resolve_modules(d, ["top", "zipped", "builtin-thing", "nope"])
    assert cl.order == ["base", "mid_one", "top", "other", "zipped"]
    assert cl.builtin == ["builtin_thing"] and cl.missing == ["nope"]
    assert "nope" in caplog.text
    assert "unrelated" not in cl.order


@needs_busybox
def test_modules_shipped_decompressed_with_load_list(tmp_path, fake_init):
    d = _fake_modules_dir(tmp_path)
    out = ir.build_initramfs(tmp_path / "i.cpio", fake_init, modules_dir=d, module_roots=["zipped"])
    es = _entries(out)
    assert es["lib/modules/zipped.ko"].data == b"module kernel/b/zipped.ko.xz"
    assert es["etc/wslx/modules.load"].data.decode().splitlines() == [
        "/lib/modules/base.ko", "/lib/modules/other.ko", "/lib/modules/zipped.ko"]
    assert es["etc/wslx/kernel-release"].data == b"9.9.9-test\n"


@needs_kernel
def test_debian_kernel_closure_respects_modules_dep():
    mdir = ir.modules_dir_for(KERNEL)
    cl = ir.resolve_modules(mdir)
    dep = ir.parse_modules_dep((mdir / "modules.dep").read_text())
    pos = {n: i for i, n in enumerate(cl.order)}
    for n in cl.order:
        for dpath in dep[n][1]:
            d = ir.module_name(dpath)
            assert d in pos and pos[d] < pos[n], f"{d} must load before {n}"
    for root in ("virtio_pci", "virtio_console", "vsock", "virtio_pmem", "nd_pmem", "pvpanic_mmio"):
        assert root in pos or root in cl.builtin, root
    assert pos["virtio_ring"] < pos["virtio"] and pos["nd_btt"] < pos["nd_pmem"]


@needs_busybox
@needs_kernel
def test_debian_kernel_initramfs_modules(tmp_path, fake_init):
    out = ir.build_initramfs(tmp_path / "i.cpio", fake_init, kernel=KERNEL)
    es = _entries(out)
    load = es["etc/wslx/modules.load"].data.decode().splitlines()
    assert load and all(l.startswith("/lib/modules/") and l.endswith(".ko") for l in load)
    for l in load:
        e = es[l.lstrip("/")]
        assert e.data[:4] == b"\x7fELF", l  # stored uncompressed
    assert len(load) == len(set(load))


def test_find_default_kernel_picks_newest(tmp_path):
    for v in ("6.1.0-9-cloud-amd64", "6.1.0-56-cloud-amd64", "6.1.0-10-cloud-amd64"):
        (tmp_path / f"vmlinuz-{v}").write_bytes(b"")
    (tmp_path / "vmlinuz-7.0.0-1-amd64").write_bytes(b"")
    assert ir.find_default_kernel(tmp_path).name == "vmlinuz-6.1.0-56-cloud-amd64"
    assert ir.kernel_release("/boot/vmlinuz-6.1.0-56-cloud-amd64") == "6.1.0-56-cloud-amd64"
    assert ir.kernel_release("build/bzImage") is None
