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
