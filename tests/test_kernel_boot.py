"""The kernel built from the `qemu` kernel-config profile boots the AgentX
initramfs (no modules), shows the Portal device, and passes conformance."""
from __future__ import annotations

import pytest

from wslx.conformance import runner
from wslx.guests.linux import LinuxGuest

pytestmark = [pytest.mark.vm, pytest.mark.slow, pytest.mark.kernel_build]

# Switch the virtio-pmem namespace from raw (/dev/pmem0) to device-dax (/dev/dax0.0)
# through libnvdimm's sysfs, as `ndctl create-namespace -m devdax` would.
TO_DEVDAX = r"""
set -e
nd=/sys/bus/nd
echo namespace0.0 > $nd/drivers/nd_pmem/unbind
cat /proc/sys/kernel/random/uuid > $nd/devices/dax0.0/uuid
echo pmem > $nd/devices/dax0.0/mode
echo 4096 > $nd/devices/dax0.0/align
echo namespace0.0 > $nd/devices/dax0.0/namespace
echo dax0.0 > $nd/drivers/dax_pmem/bind
for i in 1 2 3 4 5 6 7 8 9 10; do [ -c /dev/dax0.0 ] && break; sleep 0.1; done
ls /dev/dax0.0
"""


@pytest.fixture(scope="module")
def qemu_kernel():
    from wslx.kconfig.build import build_kernel
    return build_kernel("qemu")


@pytest.fixture
def pmem_file(tmp_path):
    p = tmp_path / "portal.img"
    p.write_bytes(bytes(64 << 20))
    return p


def test_fragment_kernel_boots_to_hello_with_portal_devices(qemu_kernel, pmem_file):
    with LinuxGuest(qemu_kernel, pmem_path=pmem_file, pmem_size=64 << 20, log=lambda s: None) as g:
        assert g.hello.name.startswith("wslx-init")
        assert not g.hello.os_release.endswith("cloud-amd64"), "booted the Debian kernel, not the fragment kernel"
        r = g.client.run(["sh", "-c", "ls /dev/pmem0 && cat /proc/modules | wc -l"])
        assert r.stdout == b"/dev/pmem0\n0\n", (r.stdout, r.stderr)  # built in: no modules loaded
        r = g.client.run(["sh", "-c", TO_DEVDAX])
        assert r.returncode == 0 and r.stdout == b"/dev/dax0.0\n", r.stderr
        g.shutdown()


def test_fragment_kernel_passes_conformance(qemu_kernel):
    with LinuxGuest(qemu_kernel, timeout=20, log=lambda s: None) as g:
        g.name = "linux-qemu-profile"
        report = runner.run_suite(g, timeout=20, log=lambda s: None)
    assert report.ok, runner.format_table(report)
