"""wslx.vmm.openvmm builds the command lines OpenVMM documents.

The expectations come from the documented CLI in shared/reference/hyperv-guest-facts.md
("OpenVMM facts a launcher needs"), read by this test, not from a copy of argv(): each
documented usage template (`openvmm -k KERNEL [-r INITRD] [-c CMDLINE]`, `--com1
console|...`, `--virtio-pmem pcie_port=p0:PATH`, ...) is filled in and must appear in the
generated argv. In CI shared/ sits beside the clone (../shared); the nearest shared/ in the
repository's parent folders is used, and without one the tests skip."""
from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from wslx.vmm.openvmm import (OpenVMMConfig, OpenVMMConfigError, find_openvmm, openvmm_cmdline,
                              vsock_connect_request, vsock_listen_path)

ROOT = Path(__file__).resolve().parents[1]
FACTS_NAME = Path("shared") / "reference" / "hyperv-guest-facts.md"
SECTION = "## OpenVMM facts a launcher needs"
# Flags argv() emits that the facts sheet does not spell out (from OpenVMM's CLI page).
NOT_IN_SHEET = {"--processors": "the vCPU count", "--com2": "the second UART, same forms as --com1"}


def _facts_path() -> Path | None:
    for d in ROOT.parents:
        if (d / FACTS_NAME).is_file():
            return d / FACTS_NAME
    return None


@pytest.fixture(scope="module")
def documented() -> list[str]:
    """The backquoted usage templates of the sheet's OpenVMM section."""
    path = _facts_path()
    if path is None:
        pytest.skip(f"no {FACTS_NAME} in any parent folder of {ROOT} (CI puts shared/ beside the clone): "
                    "the documented OpenVMM CLI to check against is absent")
    text = path.read_text()
    assert SECTION in text, f"{path} has no section {SECTION!r}"
    section = text.split(SECTION, 1)[1].split("\n## ", 1)[0]
    return re.findall(r"`([^`]+)`", section)


def _template(documented, start: str) -> str:
    found = [t for t in documented if t.startswith(start)]
    assert len(found) == 1, f"want one documented template starting {start!r}, found {found}"
    return found[0]


def _fill(template: str, **values) -> list[str]:
    """The template's tokens with placeholders (upper-case words) replaced, optional
    [...] parts dropped unless all their placeholders are given."""
    def opt(m):
        inner = m.group(1)
        return inner if all(p in values for p in re.findall(r"\b[A-Z]+\b", inner)) else ""
    text = re.sub(r"\[([^\]]*)\]", opt, template)
    return [re.sub(r"\b[A-Z]+\b", lambda m: str(values.get(m.group(0), m.group(0))), tok) for tok in text.split()]


def _contains(argv: list[str], seq: list[str]) -> bool:
    return any(argv[i:i + len(seq)] == seq for i in range(len(argv) - len(seq) + 1))


def test_direct_boot_is_the_documented_usage(documented):
    usage = _template(documented, "openvmm ")
    a = openvmm_cmdline("/k/bzImage", "/i/initramfs.cpio", cmdline="console=ttyS0 wslx.transport=vsock", hv=False)
    want = _fill(usage, KERNEL="/k/bzImage", INITRD="/i/initramfs.cpio", CMDLINE="console=ttyS0 wslx.transport=vsock")
    assert a[:len(want)] == want
    a = openvmm_cmdline("/k/trackb.elf", cmdline="", hv=False)   # no initrd, no command line: both left out
    want = _fill(usage, KERNEL="/k/trackb.elf")
    assert a[:len(want)] == want and "-r" not in a and "-c" not in a


def test_hv_and_hv_sock_flags(documented):
    a = openvmm_cmdline("/k", vsock_path="/run/vm/vsock")
    assert _template(documented, "--hv") in a
    assert _contains(a, _fill(_template(documented, "--vmbus-vsock-path"), PATH="/run/vm/vsock"))
    assert "--hv" not in openvmm_cmdline("/k", hv=False)


def test_serial_forms_are_the_documented_ones(documented):
    flag, forms = _template(documented, "--com1 ").split(" ", 1)
    examples = {"PATH": "/run/vm/x", "IP": "127.0.0.1", "PORT": "4444"}
    for form in forms.split("|"):
        value = " ".join(_fill(form, **examples))
        assert _contains(openvmm_cmdline("/k", com1=value), [flag, value]), form
        assert _contains(openvmm_cmdline("/k", com2=value), ["--com2", value]), form
    for undocumented in ("/bare/path", "tcp:127.0.0.1:4444", "pipe=/x"):
        with pytest.raises(OpenVMMConfigError):
            openvmm_cmdline("/k", com1=undocumented)


def test_virtio_pmem_is_the_documented_pcie_form(documented):
    template = _template(documented, "--pcie-root-complex ")
    a = openvmm_cmdline("/k", pmem=["/run/vm/pmem.img"])
    assert _contains(a, _fill(template, PATH="/run/vm/pmem.img"))
    # a second device gets a port of its own on the same root complex
    b = openvmm_cmdline("/k", pmem=["/a", "/b"])
    ports = [b[i + 1] for i, t in enumerate(b) if t == "--pcie-root-port"]
    devices = [b[i + 1] for i, t in enumerate(b) if t == "--virtio-pmem"]
    assert len(set(ports)) == 2 and [d.split(":", 1)[1] for d in devices] == ["/a", "/b"]
    assert {d.split(":", 1)[0].removeprefix("pcie_port=") for d in devices} == {p.split(":")[1] for p in ports}


def test_snapshot_forms_and_their_documented_limit(documented):
    a = openvmm_cmdline("/k", memory="2GB", memory_file="/m/mem.bin", restore_snapshot="/m/snap")
    assert _contains(a, _fill(_template(documented, "--memory "), SIZE="2GB", PATH="/m/mem.bin"))
    assert _contains(a, _fill(_template(documented, "--restore-snapshot "), DIR="/m/snap"))
    section = " ".join(documented)
    assert "--restore-snapshot" in section
    # "PCIe devices are not supported in snapshots yet": virtio-pmem (on PCIe) plus a restore is refused
    with pytest.raises(OpenVMMConfigError):
        openvmm_cmdline("/k", pmem=["/p"], restore_snapshot="/snap")


def test_hv_sock_host_side_is_the_documented_protocol(documented):
    connect = _template(documented, "CONNECT ")
    assert vsock_connect_request(50010) == (" ".join(_fill(connect, P="50010")).replace("\\n", "\n")).encode()
    listen = _template(documented, "PATH_")
    assert str(vsock_listen_path("/run/vm/vsock", 50010)) == listen.replace("PATH", "/run/vm/vsock").replace("P", "50010")


def test_every_flag_emitted_is_documented(documented):
    everything = OpenVMMConfig("/k", "/i", cmdline="c", processors=2, memory=1024, memory_file="/m", hv=True,
                               com1="console", com2="listen=/s", vsock_path="/v", pmem=["/p"]).argv()
    flags = {t for t in everything if t.startswith("-")}
    known = {tok for t in documented for tok in t.replace("[", " ").replace("]", " ").split() if tok.startswith("-")}
    assert flags - known <= set(NOT_IN_SHEET), f"flags neither in the sheet nor in NOT_IN_SHEET: {flags - known}"


@pytest.mark.parametrize("kw", [dict(processors=0), dict(memory=0), dict(hv=False, vsock_path="/v")])
def test_invalid_configs(kw):
    """No CPUs or memory; hv_sock without VMBus (--vmbus-vsock-path needs --hv)."""
    with pytest.raises(OpenVMMConfigError):
        openvmm_cmdline("/k", **kw)


@pytest.mark.skipif(find_openvmm() is None, reason="no openvmm binary on this host")
def test_openvmm_accepts_our_flags():
    out = subprocess.run([find_openvmm(), "--help"], capture_output=True, text=True, timeout=30).stdout
    flags = {t for t in OpenVMMConfig("/k", "/i", vsock_path="/v", com1="console", com2="console",
                                      pmem=["/p"]).argv() if t.startswith("--")}
    for flag in sorted(flags):
        assert flag in out, flag
