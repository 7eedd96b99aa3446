"""Linux 6.1's own Hyper-V definitions as a C program: the independent check for wslx.spec.hyperv/vmbus.

The Linux headers cannot be included whole in a user-space program (include/linux/hyperv.h pulls in most of
the kernel), so this takes the definitions themselves out of the files, verbatim: every #define of the named
files, and each named struct/union/enum/typedef/static initializer, found by brace matching after comments are
stripped. A short prelude shims the kernel's integer types and bit macros (BIT, GENMASK_ULL, __packed).
gcc then compiles Linux's definitions; nothing of ours is involved on the C side."""
from __future__ import annotations

import re
from pathlib import Path

DEFINE_FILES = [
    "include/uapi/linux/uuid.h",
    "include/linux/uuid.h",
    "include/asm-generic/hyperv-tlfs.h",
    "arch/x86/include/asm/hyperv-tlfs.h",
    "include/linux/hyperv.h",
    "drivers/hv/hyperv_vmbus.h",
    "net/vmw_vsock/hyperv_transport.c",
    "arch/x86/include/asm/cpufeatures.h",
]

# (file, kind, name): kind is struct / union / enum / typedef (a `typedef struct {...} name;`) / anon_enum (an
# anonymous enum found by one member) / static (a `static const T name = ...;` initializer).
BLOCKS = [
    ("include/uapi/linux/uuid.h", "typedef", "guid_t"),
    ("include/asm-generic/hyperv-tlfs.h", "struct", "ms_hyperv_tsc_page"),
    ("include/asm-generic/hyperv-tlfs.h", "union", "hv_reference_tsc_msr"),
    ("include/asm-generic/hyperv-tlfs.h", "enum", "hv_message_type"),
    ("include/asm-generic/hyperv-tlfs.h", "union", "hv_message_flags"),
    ("include/asm-generic/hyperv-tlfs.h", "union", "hv_port_id"),
    ("include/asm-generic/hyperv-tlfs.h", "struct", "hv_message_header"),
    ("include/asm-generic/hyperv-tlfs.h", "struct", "hv_message"),
    ("include/asm-generic/hyperv-tlfs.h", "struct", "hv_timer_message_payload"),
    ("include/asm-generic/hyperv-tlfs.h", "union", "hv_stimer_config"),
    ("include/asm-generic/hyperv-tlfs.h", "union", "hv_synic_event_flags"),
    ("include/asm-generic/hyperv-tlfs.h", "union", "hv_synic_scontrol"),
    ("include/asm-generic/hyperv-tlfs.h", "union", "hv_synic_sint"),
    ("include/asm-generic/hyperv-tlfs.h", "union", "hv_synic_simp"),
    ("include/asm-generic/hyperv-tlfs.h", "union", "hv_synic_siefp"),
    ("include/asm-generic/hyperv-tlfs.h", "struct", "hv_tlb_flush"),
    ("include/asm-generic/hyperv-tlfs.h", "struct", "hv_get_partition_id"),
    ("arch/x86/include/asm/hyperv-tlfs.h", "union", "hv_x64_msr_hypercall_contents"),
    ("include/linux/hyperv.h", "struct", "hv_ring_buffer"),
    ("include/linux/hyperv.h", "struct", "vmbus_channel_offer"),
    ("include/linux/hyperv.h", "struct", "vmpacket_descriptor"),
    ("include/linux/hyperv.h", "struct", "gpa_range"),
    ("include/linux/hyperv.h", "enum", "vmbus_packet_type"),
    ("include/linux/hyperv.h", "enum", "vmbus_channel_message_type"),
    ("include/linux/hyperv.h", "struct", "vmbus_channel_message_header"),
    ("include/linux/hyperv.h", "struct", "vmbus_channel_offer_channel"),
    ("include/linux/hyperv.h", "struct", "vmbus_channel_rescind_offer"),
    ("include/linux/hyperv.h", "struct", "vmbus_channel_open_channel"),
    ("include/linux/hyperv.h", "struct", "vmbus_channel_open_result"),
    ("include/linux/hyperv.h", "struct", "vmbus_channel_close_channel"),
    ("include/linux/hyperv.h", "struct", "vmbus_channel_gpadl_header"),
    ("include/linux/hyperv.h", "struct", "vmbus_channel_gpadl_body"),
    ("include/linux/hyperv.h", "struct", "vmbus_channel_gpadl_created"),
    ("include/linux/hyperv.h", "struct", "vmbus_channel_gpadl_teardown"),
    ("include/linux/hyperv.h", "struct", "vmbus_channel_gpadl_torndown"),
    ("include/linux/hyperv.h", "struct", "vmbus_channel_relid_released"),
    ("include/linux/hyperv.h", "struct", "vmbus_channel_initiate_contact"),
    ("include/linux/hyperv.h", "struct", "vmbus_channel_tl_connect_request"),
    ("include/linux/hyperv.h", "struct", "vmbus_channel_version_response"),
    ("include/linux/hyperv.h", "union", "hv_connection_id"),
    ("drivers/hv/hyperv_vmbus.h", "struct", "hv_input_post_message"),
    ("drivers/hv/hyperv_vmbus.h", "anon_enum", "VMBUS_MESSAGE_CONNECTION_ID"),
    ("net/vmw_vsock/hyperv_transport.c", "struct", "vmpipe_proto_header"),
    ("net/vmw_vsock/hyperv_transport.c", "union", "hvs_service_id"),
    ("net/vmw_vsock/hyperv_transport.c", "static", "srv_id_template"),
]

PRELUDE = r"""
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
/* type shims: the kernel's fixed-width types and the bit helpers of <linux/bits.h> */
typedef uint8_t u8; typedef uint16_t u16; typedef uint32_t u32; typedef uint64_t u64; typedef int64_t s64;
typedef uint8_t __u8; typedef uint16_t __u16; typedef uint32_t __u32; typedef uint64_t __u64;
#define __packed __attribute__((packed))
#define BIT(nr) (1UL << (nr))
#define BIT_ULL(nr) (1ULL << (nr))
#define GENMASK(h, l) (((~0UL) << (l)) & (~0UL >> (63 - (h))))
#define GENMASK_ULL(h, l) (((~0ULL) << (l)) & (~0ULL >> (63 - (h))))
#define NSEC_PER_SEC 1000000000L
#define PAGE_SIZE 4096UL
#define U32_MAX 0xFFFFFFFFu
#define U64_MAX 0xFFFFFFFFFFFFFFFFull
static size_t first_nonzero(const void *p, size_t n)
{ const unsigned char *b = p; for (size_t i = 0; i < n; i++) if (b[i]) return i; return (size_t)-1; }
static unsigned byte_at(const void *p, size_t i) { return ((const unsigned char *)p)[i]; }
"""

_COMMENTS = re.compile(r"/\*.*?\*/|//[^\n]*", re.S)
_SKIP_DEFINES = {"PAGE_SIZE", "pr_fmt", "BIT", "GENMASK"}


def strip_comments(text: str) -> str:
    return _COMMENTS.sub(" ", text)


def defines(text: str) -> list[str]:
    """Every #define (with its continuation lines) that is not an include guard or shimmed above."""
    out = []
    for m in re.finditer(r"^[ \t]*#[ \t]*define[ \t]+(\w+)((?:[^\n]*\\\n)*[^\n]*)", text, re.M):
        name, body = m.group(1), m.group(2)
        if name in _SKIP_DEFINES or (name.startswith("_") and name.endswith("_H")) or name.endswith("_H_"):
            continue
        out.append(f"#define {name}{body}")
    return out


def _match_braces(text: str, start: int) -> int:
    """Index just past the `;` that ends the declaration whose first `{` is at or after start."""
    i = text.index("{", start)
    depth = 0
    while True:
        c = text[i]
        if c == "{":
            depth += 1
        elif c == "}":
            depth -= 1
            if depth == 0:
                return text.index(";", i) + 1
        i += 1


def block(text: str, kind: str, name: str) -> str:
    if kind in ("struct", "union", "enum"):
        m = re.search(rf"^{kind}\s+{name}\s*\{{", text, re.M)
    elif kind == "typedef":
        m = re.search(rf"^typedef\s+(?:struct|union)\s*\{{[^{{}}]*\}}\s*{name}\s*;", text, re.M)
    elif kind == "anon_enum":
        pos = re.search(rf"\b{name}\s*=", text).start()
        m = list(re.finditer(r"^enum\s*\{", text[:pos], re.M))[-1]
    elif kind == "static":
        m = re.search(rf"^static\s+const\s+\w+\s+{name}\s*=", text, re.M)
    else:
        raise ValueError(kind)
    if m is None:
        raise LookupError(f"{kind} {name} not found")
    start = m.start()
    end = m.end() if kind == "typedef" else (_match_braces(text, start) if kind != "static"
                                              else text.index(";", start) + 1)
    return text[start:end]


def program(tree: Path, checks: list[tuple[str, str]]) -> str:
    """C source: Linux's definitions, then main() printing `label<TAB>value` for each (label, C expression)."""
    texts = {f: strip_comments((tree / f).read_text(errors="replace")) for f in set(DEFINE_FILES)}
    parts = [PRELUDE]
    for f in DEFINE_FILES:  # macros first: the blocks use them, and unused ones cost nothing
        parts.append(f"/* {f}: #defines */\n" + "\n".join(defines(texts[f])))
    for f, kind, name in BLOCKS:
        parts.append(f"/* {f}: {kind} {name} */\n" + block(texts[f], kind, name))
    body = "\n".join(f'    printf("%s\\t%llu\\n", "{label}", (unsigned long long)({expr}));' for label, expr in checks)
    parts.append("int main(void)\n{\n" + body + "\n    return 0;\n}\n")
    return "\n\n".join(parts)
