"""The Hyper-V and VMBus specs: generated headers compile and match regeneration, the committed docs do not
drift, C reads what construct writes, and the spec modules hold specs only (no codegen, no runtime code)."""
from __future__ import annotations

import ast
import subprocess
from pathlib import Path

import pytest

from wslx.codegen import c_structs
from wslx.spec import hyperv as hyperv_spec, vmbus as vmbus_spec
from wslx.spec import hyperv as H
from wslx.spec import vmbus as V

HEADERS = {"hyperv": hyperv_spec.C_HEADER, "vmbus": vmbus_spec.C_HEADER}


@pytest.mark.parametrize("name", sorted(HEADERS))
def test_committed_doc_matches_the_spec(name, repo_root):
    committed = (repo_root / "docs" / f"{name}.md").read_text()
    assert committed == c_structs.generate_markdown(HEADERS[name]), (
        f"docs/{name}.md drifted from wslx/spec/{name}.py: regenerate with `.venv/bin/scons -Q gen && "
        f"cp build/gen/{name}.md docs/{name}.md`")


@pytest.mark.parametrize("name", sorted(HEADERS))
def test_built_header_and_doc_match_regeneration(name, generated):
    assert (generated / f"{name}.h").read_text() == c_structs.generate_header(HEADERS[name])
    assert (generated / f"{name}.md").read_text() == c_structs.generate_markdown(HEADERS[name])


@pytest.mark.parametrize("name", sorted(HEADERS))
def test_spec_module_imports_no_codegen_and_defines_no_functions(name, repo_root):
    tree = ast.parse((repo_root / "host/python/wslx/spec" / f"{name}.py").read_text())
    for node in ast.walk(tree):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            mod = node.module if isinstance(node, ast.ImportFrom) else node.names[0].name
            assert "codegen" not in (mod or ""), f"spec/{name}.py imports {mod}"
        assert not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)), \
            f"spec/{name}.py defines function {getattr(node, 'name', '?')}: specs hold specs only"


def test_c_reads_what_construct_wrote(generated, tmp_path):
    """An OfferChannel and a SynIC message built with construct, read through the generated structs."""
    offer = V.VMBUS_CHANNEL_OFFER_CHANNEL.build(dict(
        header=dict(msgtype=V.ChannelMessageType.OFFERCHANNEL), if_type=bytes(range(16)),
        if_instance=bytes(range(16, 32)), reserved1=0, reserved2=0, chn_flags=V.OfferFlags.TLNPI_PROVIDER_OFFER,
        mmio_megabytes=0, user_def=bytes(4) + b"\x01" + bytes(115), sub_channel_index=0, reserved3=0,
        child_relid=0x1234, monitorid=7, monitor_flags=1, interrupt_flags=0, connection_id=0xABCDEF))
    msg = H.HV_MESSAGE.build(dict(header=dict(message_type=H.HvMessageType.TIMER_EXPIRED, payload_size=24,
                                              flags=H.MESSAGE_FLAG_PENDING, sender=0),
                                  payload=H.HV_TIMER_MESSAGE_PAYLOAD.build(dict(
                                      timer_index=3, expiration_time=10**12, delivery_time=10**12 + 5))
                                  .ljust(240, b"\0")))
    src = tmp_path / "read.c"
    src.write_text(f"""
#include <stdio.h>
#include <string.h>
#include "hyperv.h"
#include "vmbus.h"
static const unsigned char offer[] = {{{",".join(map(str, offer))}}};
static const unsigned char msg[] = {{{",".join(map(str, msg))}}};
int main(void) {{
    struct vmbus_channel_offer_channel o; struct hv_message m; struct hv_timer_message_payload t;
    memcpy(&o, offer, sizeof o); memcpy(&m, msg, sizeof m); memcpy(&t, m.payload, sizeof t);
    printf("%u %u %u %u %u %u %u\\n", o.header.msgtype, o.chn_flags, o.user_def[4], o.child_relid, o.monitorid,
           o.connection_id, o.if_instance[15]);
    printf("%u %u %u %u %llu %llu\\n", m.header.message_type, m.header.payload_size, m.header.flags, t.timer_index,
           (unsigned long long)t.expiration_time, (unsigned long long)t.delivery_time);
    return sizeof offer != sizeof o || sizeof msg != sizeof m;
}}
""")
    exe = tmp_path / "read"
    subprocess.run(["gcc", "-std=c11", "-Wall", "-Werror", f"-I{generated}", str(src), "-o", str(exe)], check=True)
    out = subprocess.run([str(exe)], capture_output=True, text=True, check=True).stdout.split("\n")
    assert out[0] == f"1 8192 1 {0x1234} 7 {0xABCDEF} 31"
    assert out[1] == f"{0x80000010} 24 1 3 {10**12} {10**12 + 5}"


def test_hvsock_guid_template_is_the_linux_one():
    # 00000000-facb-11e6-bd58-64006a7986d3 in wire order (data1..3 little-endian)
    assert V.HVSOCK_GUID_TEMPLATE.hex() == "00000000cbfae611bd5864006a7986d3"
    assert V.AGENTX_HVSOCK_PORT == 50010


def _sample(body, seed: int) -> dict:
    """A value for every field of a spec Struct, distinct per field (Reserved stays zero)."""
    from construct import Bytes as CBytes
    from construct import Const, FormatField
    out = {}
    for i, sc in enumerate(body.subcons):
        name, _docs, inner = c_structs._unwrap(sc)
        if isinstance(inner, Const):
            continue
        if isinstance(inner, FormatField):
            bits = 8 * inner.sizeof()
            value = (0x9E3779B97F4A7C15 * (seed + i + 1)) & ((1 << bits) - 1)
            out[name] = value - (1 << bits) if inner.fmtstr[-1].islower() and value >> (bits - 1) else value
        elif isinstance(inner, CBytes):
            out[name] = bytes((seed * 7 + i * 13 + k) & 0xFF for k in range(inner.sizeof()))
        else:   # a nested struct
            out[name] = _sample(inner, seed + 100 * (i + 1))
    return out


def _leaves(body, value: dict, prefix: str = ""):
    """(C access path, expected printed value) for every non-reserved leaf field."""
    from construct import Bytes as CBytes
    from construct import Const, FormatField
    for sc in body.subcons:
        name, _docs, inner = c_structs._unwrap(sc)
        if isinstance(inner, Const):
            continue
        path = f"{prefix}{name}"
        if isinstance(inner, FormatField):
            yield path, "sint" if inner.fmtstr[-1].islower() else "uint", str(value[name])
        elif isinstance(inner, CBytes):
            yield path, "bytes", value[name].hex()
        else:
            yield from _leaves(inner, value[name], f"{path}.")


def test_c_and_construct_agree_on_every_field_of_every_struct(generated, tmp_path):
    """For each struct of hyperv.h and vmbus.h: construct builds a sample with a distinct value in every field,
    the C program reads every field through the generated struct, and the printed values match."""
    lines, expected, n = [], [], 0
    for name, spec in sorted(HEADERS.items()):
        for cs, _fields, size in c_structs.layouts(spec):
            value = _sample(cs.body, n)
            raw = cs.body.build(value)
            assert len(raw) == size
            var = f"s{n}"
            lines.append(f"    {{ static const unsigned char b[] = {{{','.join(map(str, raw))}}}; struct {cs.c_name} {var};"
                         f" memcpy(&{var}, b, sizeof {var}); if (sizeof {var} != {size}) return 1;")
            for path, kind, want in _leaves(cs.body, value):
                if kind in ("sint", "uint"):
                    fmt, cast = ("%lld", "long long") if kind == "sint" else ("%llu", "unsigned long long")
                    lines.append(f'      printf("{fmt}\\n", ({cast}){var}.{path});')
                else:
                    lines.append(f'      {{ for (size_t i = 0; i < sizeof {var}.{path}; i++) '
                                 f'printf("%02x", {var}.{path}[i]); printf("\\n"); }}')
                expected.append(f"{cs.c_name}.{path}={want}")
            lines.append("    }")
            n += 1
    src = tmp_path / "agree.c"
    src.write_text("#include <stdio.h>\n#include <string.h>\n#include \"hyperv.h\"\n#include \"vmbus.h\"\n"
                   "int main(void) {\n" + "\n".join(lines) + "\n    return 0;\n}\n")
    exe = tmp_path / "agree"
    subprocess.run(["gcc", "-std=c11", "-Wall", "-Werror", "-flarge-source-files", f"-I{generated}", str(src), "-o",
                    str(exe)], check=True, capture_output=True)
    out = subprocess.run([str(exe)], capture_output=True, text=True, check=True).stdout.split()
    names = [e.split("=", 1)[0] for e in expected]
    got = [f"{nm}={v}" for nm, v in zip(names, out)]
    assert len(out) == len(expected) and got == expected
    assert n >= 30 and len(expected) >= 100


@pytest.mark.parametrize("body", [H.HV_MESSAGE_HEADER, H.HV_TIMER_MESSAGE_PAYLOAD, V.VMPACKET_DESCRIPTOR,
                                  V.VMPIPE_PROTO_HEADER, H.HV_INPUT_POST_MESSAGE], ids=lambda b: "/".join(sc.name for sc in b.subcons))
def test_model_fast_paths_pack_with_the_specs_layout(body):
    """wslx.hv packs its hot-path structs with struct.Struct formats derived from the spec (hv.ring.packer):
    distinct values in every field survive a struct pack and a construct parse, field by field."""
    from wslx.hv.ring import packer
    p = packer(body)
    values = []
    for i, sc in enumerate(body.subcons):
        if sc.name == "reserved":
            values.append(0)
        elif sc.sizeof() > 8:                                   # Bytes(n)
            values.append(bytes((i + j) & 0xFF for j in range(sc.sizeof())))
        else:
            values.append((0x11 * (i + 1)) & ((1 << (8 * sc.sizeof() - 1)) - 1) or 1)
    parsed = body.parse(p.pack(*values))
    assert [parsed[sc.name] for sc in body.subcons if sc.name != "reserved"] == \
        [v for sc, v in zip(body.subcons, values) if sc.name != "reserved"]
    assert p.unpack(body.build({sc.name: v for sc, v in zip(body.subcons, values) if sc.name != "reserved"})) == \
        tuple(values)
