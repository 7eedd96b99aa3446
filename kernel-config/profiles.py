"""Kernel profiles: which features a kernel flavour carries, in order.

The vsock transport rule: AF_VSOCK has exactly one guest->host (G2H) transport
slot. vsock_core_register() hands it to the first transport that registers and
returns -EBUSY to every later one. Built in, virtio_vsock registers at init time
whether or not a virtio-vsock device exists (and it links before hv_sock), so a
kernel with VIRTIO_VSOCKETS=y and HYPERV_VSOCKETS=y has no working vsock on
Hyper-V. Each profile therefore states in `vsock_transports` which transport it
carries; composition rejects both =y unless `acknowledge_both_vsock_builtin`
gives a reason.
"""
from wslx.kconfig.model import Profile

COMMON = ("base", "virtio-pci", "portal", "snapshot", "pvpanic")

QEMU = Profile(
    "qemu",
    "QEMU (TCG or KVM) guest: virtio transports only",
    features=COMMON + ("vsock-virtio",),
    vsock_transports="virtio only (VIRTIO_VSOCKETS=y); HYPERV_VSOCKETS stays off",
    overrides={
        "HYPERV_VSOCKETS": ("n", "one G2H transport only: virtio must own the slot"),
    },
)

HYPERV = Profile(
    "hyperv",
    "Hyper-V / OpenVMM guest: VMBus transports; virtio-pmem stays for OpenVMM's virtio-pci",
    features=COMMON + ("hyperv", "vsock-hyperv"),
    vsock_transports="Hyper-V sockets only (HYPERV_VSOCKETS=y); VIRTIO_VSOCKETS forced off",
    overrides={
        "VIRTIO_VSOCKETS": ("n", "a built-in virtio transport would take the G2H slot and break hv_sock"),
    },
)

FULL = Profile(
    "full",
    "one kernel for both hosts: every feature, vsock transports as modules",
    features=COMMON + ("hyperv", "modules", "vsock-virtio", "vsock-hyperv"),
    vsock_transports=(
        "both as modules (=m): the guest init loads vmw_vsock_virtio_transport on QEMU or hv_sock on "
        "Hyper-V, so only the matching transport ever registers for the G2H slot"
    ),
    overrides={
        "VIRTIO_VSOCKETS": ("m", "module: loaded only on QEMU, so it cannot steal the G2H slot on Hyper-V"),
        "HYPERV_VSOCKETS": ("m", "module: loaded only on Hyper-V"),
    },
)

PROFILES = [QEMU, HYPERV, FULL]
