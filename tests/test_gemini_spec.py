"""Gemini spec: the three ports per transport, the call/upcall records, the generated
C header agreeing with construct byte for byte, and docs/gemini.md in sync."""
from __future__ import annotations

import subprocess
import uuid

import pytest

from wslx.codegen import c_structs
from wslx.spec import agentx, gemini, portal
from wslx.spec.gemini import Port, Transport


def test_ports_are_the_seed_allocation_and_reuse_agentx_and_portal():
    assert [int(p) for p in Port] == [50010, 50011, 50012]
    assert Port.CONTROL == agentx.VSOCK_CONTROL_PORT and Port.SIGNAL == portal.DOORBELL_VSOCK_PORT


@pytest.mark.parametrize("port", list(Port))
def test_every_port_maps_on_every_transport(port):
    assert gemini.endpoint(port, Transport.VSOCK) == int(port)
    # independent of the spec's string: Linux's hv_sock template with the port as data1
    template = uuid.UUID(fields=(int(port), 0xFACB, 0x11E6, 0xBD, 0x58, 0x64006A7986D3))
    assert gemini.endpoint(port, Transport.HVSOCK) == str(template)
    name = gemini.endpoint(port, Transport.VIRTIO_SERIAL)
    assert name.startswith("org.wslx.") and len(name) < 32  # virtio-serial names are short sysfs strings
    assert len({gemini.endpoint(p, Transport.VIRTIO_SERIAL) for p in Port}) == len(Port)
    assert gemini.endpoint(Port.CONTROL, Transport.VIRTIO_SERIAL) == agentx.VIRTIO_SERIAL_PORT_NAME


def test_gemini_ops_never_collide_with_portal_ops_and_errors_are_errno():
    assert not {int(o) for o in gemini.Op} & {int(o) for o in portal.Op}
    import errno
    for e in gemini.Err:
        if e is not gemini.Err.OK:
            assert errno.errorcode[int(e)] == "E" + {"TOOBIG": "2BIG"}.get(e.name, e.name), e


def test_records_round_trip_through_construct():
    h = dict(magic=gemini.CALL_MAGIC, version=1, flags=0, service_len=2, method_len=4, args_len=5,
             reply_offset=48, reply_cap=4096, timeout_ms=0)
    raw = gemini.CallHeader.build(h)
    assert len(raw) == gemini.CALL_HEADER_SIZE and raw[:4].decode() == "GMN" + "I"  # the magic reads as text
    assert {k: v for k, v in gemini.CallHeader.parse(raw).items() if k in h} == h
    u = gemini.UpcallHeader.build(dict(magic=gemini.UPCALL_MAGIC, topic_len=3, flags=0, data_len=9))
    assert len(u) == gemini.UPCALL_HEADER_SIZE and u[:4].decode() == "GUP" + "C"


def test_c_header_agrees_with_construct(tmp_path, generated):
    """Compile the generated header and print what C thinks; compare with construct."""
    spec = gemini.C_HEADER
    (tmp_path / "gemini_wire.h").write_text(c_structs.generate_header(spec))
    prog = ['#include <stdio.h>', '#include "gemini_wire.h"', "int main(void) {",
            'printf("%zu %zu %zu\\n", sizeof(struct gemini_call_header), sizeof(struct gemini_upcall_header), '
            "sizeof(struct gemini_fs_stat));",
            'printf("%u %u %u %u\\n", GEMINI_PORT_CONTROL, GEMINI_PORT_SIGNAL, GEMINI_PORT_UPCALL, GEMINI_OP_REPLY);',
            'printf("%s %s %s\\n", GEMINI_SIGNAL_PORT_NAME, GEMINI_UPCALL_PORT_NAME, gemini_err_name(GEMINI_ERR_NOSYS));',
            'printf("%zu %zu\\n", offsetof(struct gemini_call_header, reply_cap), '
            "offsetof(struct gemini_upcall_header, data_len));",
            'printf("%zu %zu %s.%s %u %u %s\\n", sizeof(struct gemini_hello), offsetof(struct gemini_hello, host_max), '
            "GEMINI_HELLO_SERVICE, GEMINI_HELLO_METHOD, GEMINI_VERSION_MIN, GEMINI_VERSION, "
            "gemini_err_name(GEMINI_ERR_PROTONOSUPPORT));",
            "return 0; }"]
    (tmp_path / "t.c").write_text("\n".join(prog) + "\n")
    exe = tmp_path / "t"
    cc = subprocess.run(["gcc", "-std=c11", "-Wall", "-Werror", f"-I{tmp_path}", str(tmp_path / "t.c"), "-o", str(exe)],
                        capture_output=True, text=True, timeout=120)
    assert cc.returncode == 0, cc.stderr
    out = subprocess.run([str(exe)], capture_output=True, text=True, timeout=30).stdout.split("\n")
    assert out[0].split() == [str(gemini.CallHeader.sizeof()), str(gemini.UpcallHeader.sizeof()),
                              str(gemini.FsStat.sizeof())]
    assert out[1].split() == [str(int(Port.CONTROL)), str(int(Port.SIGNAL)), str(int(Port.UPCALL)),
                              str(int(gemini.Op.REPLY))]
    assert out[2].split() == [gemini.VIRTIO_SERIAL_NAMES[Port.SIGNAL], gemini.VIRTIO_SERIAL_NAMES[Port.UPCALL], "NOSYS"]
    ref = gemini.CallHeader.build(dict(magic=0, version=0, flags=0, service_len=0, method_len=0, args_len=0,
                                       reply_offset=0, reply_cap=0xAABBCCDD, timeout_ms=0))
    assert int(out[3].split()[0]) == ref.index(bytes.fromhex("DDCCBBAA"))
    uref = gemini.UpcallHeader.build(dict(magic=0, topic_len=0, flags=0, data_len=0xAABBCCDD))
    assert int(out[3].split()[1]) == uref.index(bytes.fromhex("DDCCBBAA"))
    href = gemini.Hello.build(dict(version=0, host_min=0, host_max=0xAABB))
    assert out[4].split() == [str(gemini.HELLO_SIZE), str(href.index(bytes.fromhex("BBAA"))),
                              f"{gemini.HELLO_SERVICE}.{gemini.HELLO_METHOD}", str(gemini.VERSION_MIN),
                              str(gemini.VERSION), "PROTONOSUPPORT"]


def test_committed_docs_match_the_spec(repo_root):
    committed = (repo_root / "docs" / "gemini.md").read_text()
    assert committed == c_structs.generate_markdown(gemini.C_HEADER), (
        "docs/gemini.md drifted from the spec: regenerate with .venv/bin/python -c 'from wslx.codegen import "
        "c_structs; from wslx.spec import gemini; print(c_structs.generate_markdown(gemini.C_HEADER), end=\"\")' "
        "> docs/gemini.md (PYTHONPATH=host/python)")


def test_port_named_inverts_the_virtio_serial_names():
    for p in Port:
        assert gemini.port_named(gemini.endpoint(p, Transport.VIRTIO_SERIAL)) is p
    assert gemini.port_named("org.wslx.other") is None


def _init_ports(cmdline: str) -> list[str]:
    from wslx.guests.linux import ensure_built, images_dir
    ensure_built(log=lambda s: None)
    r = subprocess.run([str(images_dir() / "wslx-init"), "gemini", "ports", "--cmdline", cmdline],
                       capture_output=True, timeout=30)
    assert r.returncode == 0, r
    return r.stdout.decode().splitlines()


@pytest.mark.parametrize("cmdline, tries", [
    ("", "vsock"),                                   # auto: no port by that name here, so vsock next
    ("wslx.transport=vsock", "vsock"),
    ("wslx.transport=virtio-serial", "virtio-serial"),
    ("wslx.transport=serial", None),                 # a serial line has no second channel
])
def test_the_linux_init_opens_the_doorbell_ports_where_its_transport_goes(cmdline, tries):
    """`wslx-init gemini ports` (what `gemini serve` and `portal serve` open, run on this host,
    which has no virtio-serial ports and no vsock peer at CID 2): the transport decides what is
    tried, and vsock dials the SIGNAL and UPCALL port numbers of the spec."""
    lines = _init_ports(cmdline)
    assert len(lines) == 2 and all("polling instead" in line for line in lines), lines
    for line, port, what in zip(lines, (Port.SIGNAL, Port.UPCALL), ("signal", "upcall")):
        assert line.startswith(f"gemini: no {what} port: ")
        if tries == "vsock":
            assert f"vsock cid {agentx.VSOCK_HOST_CID} port {int(port)}:" in line, line
        elif tries == "virtio-serial":
            assert f"{gemini.endpoint(port, Transport.VIRTIO_SERIAL)} (virtio-serial)" in line and "vsock" not in line
        else:
            assert "no doorbell port on transport serial" in line


def test_machines_map_the_named_ports_per_transport(tmp_path):
    """QEMU: virtio-serial ports; with a vsock device: vsock ports; hvsim: hv_sock ports the model
    bridges (--listen-port), unless the profile is 'none' (no Hyper-V: virtio-serial again)."""
    from wslx.vmm.hvsim import HvsimMachine
    from wslx.vmm.qemu import QemuMachine
    names = [gemini.endpoint(p, Transport.VIRTIO_SERIAL) for p in (Port.SIGNAL, Port.UPCALL)]
    streams = {n: int(gemini.port_named(n)) for n in names}
    plain = QemuMachine("k", named_ports=names)
    plain.run_dir = tmp_path                        # build_cmdline needs one; nothing is launched
    assert plain.named_ports == names and not plain.stream_ports
    assert sum("virtserialport" in a for a in plain.build_cmdline()) == 2
    vs = QemuMachine("k", named_ports=names, vsock_cid=52)
    vs.run_dir = tmp_path
    assert not vs.named_ports and vs.stream_ports == streams == {names[0]: Port.SIGNAL, names[1]: Port.UPCALL}
    args = vs.build_cmdline()
    assert "vhost-vsock-pci,guest-cid=52" in args and not any("virtserialport" in a for a in args)
    hv = HvsimMachine("k", named_ports=names, run_dir=tmp_path)
    assert not hv.named_ports and hv.stream_ports == streams and {Port.SIGNAL, Port.UPCALL} <= set(hv.hvsock_ports)
    assert all(hv.has_named_port(n) for n in names)
    none = HvsimMachine("k", named_ports=names, hv_profile="none", run_dir=tmp_path)
    assert none.named_ports == names and not none.stream_ports
    from wslx.vmm.openvmm_machine import OpenVMMMachine   # hybrid vsock, as hvsim
    assert OpenVMMMachine("k", named_ports=names).stream_ports == streams
    assert not OpenVMMMachine("k", named_ports=names, hv=False).stream_ports
