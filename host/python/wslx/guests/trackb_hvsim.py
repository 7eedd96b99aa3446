"""Track B under hvsim: the same kernel ELF under QEMU beside the wslx.hv model (wslx.vmm.hvsim), its
agent on hv_sock through VMBus ring buffers in guest RAM (the host side is the hybrid-vsock socket
run_dir/vsock_50010, as under OpenVMM). virtio-pmem (the Portal) and the virtio-serial port stay on the
machine; with hv_profile 'none' the kernel finds no Hyper-V and talks over virtio-console instead (the
bench's comparison: same kernel, same machine)."""
from __future__ import annotations

from ..spec.vmbus import AGENTX_HVSOCK_PORT
from ..vmm.hvsim import HV_PROFILES, HvsimMachine
from .trackb import TrackBGuest


class TrackBHvsimGuest(TrackBGuest):
    MACHINE = HvsimMachine

    def __init__(self, kernel=None, *, hv_profile: str = "hyperv", model_raise_after: int = 0, **kw):
        if hv_profile not in HV_PROFILES:
            raise ValueError(f"hv_profile must be one of {HV_PROFILES}, not {hv_profile!r}")
        super().__init__(kernel, channel="agentx", hv_profile=hv_profile, model_raise_after=model_raise_after, **kw)
        self.hv_profile = hv_profile
        self.CHANNEL = "agentx" if hv_profile == "none" else "hvsock"

    def machine(self, *, dry_run: bool = False) -> HvsimMachine:
        m = super().machine(dry_run=dry_run)
        if not dry_run and self.CHANNEL == "hvsock":
            m.hvsock_listen(AGENTX_HVSOCK_PORT)      # before launch: the guest dials at boot
        return m

    def _connect(self, timeout: float):
        if self.CHANNEL == "hvsock":
            return self.vm.hvsock_accept(AGENTX_HVSOCK_PORT, timeout)
        return super()._connect(timeout)
