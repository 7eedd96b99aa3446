"""The host's HELLO max_payload binds the guest agents (issue 11, bug 7): guest/agentx, which
wslx-init and the Track B agent both link, checked alone in C (tests/c/agentx_limit_test.c,
ASan + UBSan): the minimum (EINVAL), PING's EMSGSIZE, and STDIO output split to the limit with
contiguous offsets through a ring that wraps. The limits it uses are the spec's (the Python
helper agrees with the C one). The agents end to end: conformance case host_max_payload_binds."""
from __future__ import annotations

import pytest

from helpers.c_unit import build_sanitized, run_passes

from wslx.spec.agentx import MAX_PAYLOAD, MAX_PAYLOAD_MIN, STDIO_MAX_DATA, stdio_data_max

SOURCES = ["tests/c/agentx_limit_test.c", "guest/agentx/agentx_out.c", "guest/agentx/agentx_rx.c"]


@pytest.fixture(scope="module")
def limit_test(generated, repo_root, tmp_path_factory):
    out = tmp_path_factory.mktemp("agentx-limit") / "agentx_limit_test"
    return build_sanitized(repo_root, generated, SOURCES, ["guest/agentx"], out)


def test_shared_c_keeps_to_the_hosts_max_payload(limit_test):
    run_passes(limit_test, ("hello_minimum", "ping_check", "stdio_data_max", "chunking"))


def test_python_stdio_chunk_matches_the_encoding():
    """The reference agent's chunk (spec.stdio_data_max) fills a STDIO payload exactly to the limit."""
    from wslx.agentx import codec
    from wslx.spec.agentx import HEADER_SIZE, MsgType
    for version in (1, 2):
        for limit in (MAX_PAYLOAD_MIN, 4099, MAX_PAYLOAD):
            n = stdio_data_max(version, limit)
            body = dict(pid=1, stream=1, flags=0, offset=0, data=bytes(n))
            if version == 1:
                del body["offset"]
            size = len(codec.encode_frame(MsgType.STDIO, body, version=version)) - HEADER_SIZE
            assert size == limit or (n == STDIO_MAX_DATA and size < limit), (version, limit, n, size)
