"""images/wslx-init links one CRC-32 table: agentx_wire.h's table is static, so only
guest/agentx/agentx_rx.c may call its inline CRC helpers (agent.c seals frames with
agentx_frame_seal). The binary is stripped, so the table is found by its bytes."""
from __future__ import annotations

import struct
import subprocess
import sys


def _crc32_table_row(n: int) -> bytes:
    """The first n entries of the reflected CRC-32 table (polynomial 0xEDB88320), as the
    little-endian uint32 array the C code holds."""
    out = []
    for i in range(n):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ 0xEDB88320 if c & 1 else c >> 1
        out.append(c)
    return struct.pack(f"<{n}I", *out)


def test_wslx_init_has_one_crc_table(repo_root):
    subprocess.run([sys.executable, "-m", "SCons", "-Q", "images/wslx-init"], cwd=repo_root, check=True,
                   capture_output=True)
    image = (repo_root / "images" / "wslx-init").read_bytes()
    assert image.count(_crc32_table_row(16)) == 1


def test_readme_quotes_the_stripped_size(repo_root):
    """guest/init/README.md's "about N KiB stripped" is within 15% of images/wslx-init (it said
    106 KiB while the image was 174 KiB)."""
    import re
    subprocess.run([sys.executable, "-m", "SCons", "-Q", "images/wslx-init"], cwd=repo_root, check=True,
                   capture_output=True)
    m = re.search(r"about (\d+) KiB stripped", (repo_root / "guest" / "init" / "README.md").read_text())
    assert m, "guest/init/README.md no longer quotes the image size ('about N KiB stripped')"
    actual_kib = (repo_root / "images" / "wslx-init").stat().st_size / 1024
    assert abs(int(m.group(1)) - actual_kib) <= 0.15 * actual_kib, \
        f"README says about {m.group(1)} KiB, images/wslx-init is {actual_kib:.0f} KiB"
