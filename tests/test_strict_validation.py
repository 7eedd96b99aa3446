"""Strict validation (issue 11, item 7), agent by agent, for what the shared conformance cases
cannot pin because the answer depends on what the agent can do: CONFIG's Portal device.
(The cases every agent answers alike are in wslx.conformance.suite.)"""
from __future__ import annotations

import errno
import subprocess
import sys

import pytest

from helpers.init_sandbox import skip_without_sandbox
from wslx.agentx.errors import RemoteError
from wslx.conformance.targets import TARGETS
from wslx.spec.agentx import Capability, ErrorCode

MiB = 1 << 20


@pytest.fixture(scope="module")
def built(repo_root):
    r = subprocess.run([sys.executable, "-m", "SCons", "-Q", "init", "trackb-agent-host"], cwd=repo_root,
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    skip_without_sandbox(repo_root / "images" / "wslx-init")


def refused(client, **kw) -> int:
    with pytest.raises(RemoteError) as e:
        client.config(env=["REFUSED=1"], timeout=5, **kw)
    return e.value.code


def capabilities(client) -> int:
    return client.request(0x0001, dict(version_min=1, version_max=1, version_selected=0, agent_kind=0,
                                       capabilities=0, max_payload=65536, uptime_ms=0, name="t", os_release=""),
                          timeout=5).body["capabilities"]


def test_init_checks_the_portal_device(built, tmp_path):
    small = tmp_path / "small.img"
    small.write_bytes(bytes(4096))
    with TARGETS["init-host"](timeout=5) as t:
        c = t.client
        c.wait_hello()
        assert refused(c, portal_size=2 * MiB, portal_device="/nonexistent") == ErrorCode.ENOENT
        assert refused(c, portal_size=2 * MiB, portal_device=str(tmp_path)) == errno.ENODEV  # a directory (not in ErrorCode yet)
        assert refused(c, portal_size=2 * MiB, portal_device="/etc/passwd") == ErrorCode.EINVAL  # far too small
        assert refused(c, portal_size=8192, portal_device=str(small)) == ErrorCode.EINVAL
        assert not capabilities(c) & Capability.PORTAL
        assert b"REFUSED" not in c.run(["env"], timeout=5).stdout  # nothing of a refused CONFIG applied
        c.config(portal_size=4096, portal_device=str(small), timeout=5)  # a file stands in, in test mode
        assert capabilities(c) & Capability.PORTAL


@pytest.mark.parametrize("pmem", [0, 2 * MiB], ids=["no-pmem", "2MiB-pmem"])
def test_trackb_portal_needs_its_pmem_and_must_fit(built, pmem):
    with TARGETS["trackb-host"](timeout=5, pmem_size=pmem) as t:
        c = t.client
        c.wait_hello()
        if not pmem:
            assert refused(c, portal_size=2 * MiB, portal_device="/dev/pmem0") == ErrorCode.EOPNOTSUPP
        else:
            assert refused(c, portal_size=4 * MiB, portal_device="/dev/pmem0") == ErrorCode.EINVAL
            c.config(portal_size=2 * MiB, portal_device="/dev/pmem0", timeout=5)


def test_reference_has_no_portal():
    with TARGETS["reference"](timeout=5) as t:
        c = t.client
        c.wait_hello()
        assert refused(c, portal_size=2 * MiB, portal_device="/dev/pmem0") == ErrorCode.EOPNOTSUPP
        assert refused(c, portal_size=1 << 63, portal_device="/dev/pmem0") == ErrorCode.EINVAL  # fields first
        assert b"REFUSED" not in c.run(["env"], timeout=5).stdout
