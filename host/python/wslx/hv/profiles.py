"""What each host offers a guest, as data, in one place.

hyperv       Hyper-V on Windows: every enlightenment the kit uses (reference TSC page, direct-mode timers,
             HvCallGetPartitionId), VMBus up to 5.3 (Iron).
openvmm-kvm  OpenVMM with --hv on KVM: KVM's own Hyper-V emulation provides SynIC and timers, so no reference
             TSC page and no direct-mode timer; VMBus messages only on SINT 2; VMBus up to 6.0 (Copper),
             VersionResponse2 for Copper, message connection id 1 (hyperv-guest-facts.md, "OpenVMM facts").
none         no hypervisor: CPUID.1:ECX[31] clear, no hypervisor leaves, synthetic MSRs #GP.

Where a host's behaviour is not public (Hyper-V's VersionResponse connection id, its channel connection
ids) the value is the model's choice and says so; a guest must use what it is told, never assume these.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace

from ..spec.hyperv import (CPUID_MIN_MAX_LEAF, FeaturesEax, FeaturesEbx, FeaturesEdx, RecommendationsEax,
                           VENDOR_SIGNATURE)
from ..spec.vmbus import MESSAGE_SINT, Version
from .errors import HostUsageError

_V = Version


@dataclass(frozen=True)
class Profile:
    name: str
    hypervisor: bool
    max_leaf: int = CPUID_MIN_MAX_LEAF
    vendor: bytes = VENDOR_SIGNATURE
    features_eax: int = 0            # CPUID 0x40000003 EAX: which synthetic MSRs exist
    features_ebx: int = 0            # CPUID 0x40000003 EBX: which hypercalls are allowed
    features_edx: int = 0            # CPUID 0x40000003 EDX
    hints_eax: int = 0               # CPUID 0x40000004 EAX
    build: tuple[int, int, int] = (0, 0, 0)   # CPUID 0x40000002: build number, major.minor, service
    max_vps: int = 1                 # CPUID 0x40000005 EAX
    vmbus_versions: tuple[int, ...] = ()      # accepted in InitiateContact, newest first
    message_connection_id: int = 1   # VersionResponse.msg_conn_id from 5.0 on
    fixed_message_sint: int | None = None     # host ignores InitiateContact's SINT and uses this one
    version_response2: bool = False  # answer a Copper request with VersionResponse2
    channel_connection_id_base: int = 0       # offer connection_id = base + relid
    partition_id: int = 0
    tsc_hz: int = 2_400_000_000      # the model's TSC frequency (reference TSC page scale)
    notes: dict[str, str] = field(default_factory=dict)

    @property
    def reference_tsc_page(self) -> bool:
        return bool(self.features_eax & FeaturesEax.REFERENCE_TSC)

    @property
    def direct_mode_timers(self) -> bool:
        return bool(self.features_edx & FeaturesEdx.STIMER_DIRECT_MODE)

    @property
    def partition_id_call(self) -> bool:
        return bool(self.features_ebx & FeaturesEbx.ACCESS_PARTITION_ID)

    def with_(self, **changes) -> "Profile":
        """A variant for a test, e.g. PROFILES['hyperv'].with_(message_connection_id=7)."""
        return replace(self, **changes)


_BASE_EAX = (FeaturesEax.TIME_REF_COUNT | FeaturesEax.SYNIC | FeaturesEax.SYNTIMER | FeaturesEax.HYPERCALL
             | FeaturesEax.VP_INDEX)
_ALL_VERSIONS = (_V.WIN10_V5_3, _V.WIN10_V5_2, _V.WIN10_V5_1, _V.WIN10_V5, _V.WIN10_V4_1, _V.WIN10, _V.WIN8_1,
                 _V.WIN8, _V.WIN7, _V.WS2008)

PROFILES: dict[str, Profile] = {
    "hyperv": Profile(
        name="hyperv", hypervisor=True,
        features_eax=_BASE_EAX | FeaturesEax.VP_RUNTIME | FeaturesEax.APIC_ACCESS | FeaturesEax.RESET
        | FeaturesEax.REFERENCE_TSC,
        features_ebx=FeaturesEbx.ACCESS_PARTITION_ID | FeaturesEbx.POST_MESSAGES | FeaturesEbx.SIGNAL_EVENTS,
        features_edx=FeaturesEdx.STIMER_DIRECT_MODE | FeaturesEdx.HYPERCALL_XMM_INPUT,
        hints_eax=RecommendationsEax.LOCAL_TLB_FLUSH | RecommendationsEax.REMOTE_TLB_FLUSH
        | RecommendationsEax.RELAXED_TIMING | RecommendationsEax.DEPRECATING_AEOI,
        build=(20348, 0x000A0000, 0), vmbus_versions=_ALL_VERSIONS,
        message_connection_id=1, channel_connection_id_base=0x10000, partition_id=0x1000000000000042,
        notes={"message_connection_id": "not public for Hyper-V; the model answers 1 like OpenVMM",
               "channel_connection_id_base": "model's choice",
               "vmbus_versions": "up to 5.3 as Linux 6.1 knows; whether a given Windows host takes 6.0 (Copper) is "
                                 "not public (Microsoft's UEFI firmware asks for Copper, then falls back to 3.0)"}),
    "openvmm-kvm": Profile(
        name="openvmm-kvm", hypervisor=True,
        features_eax=_BASE_EAX,
        features_ebx=FeaturesEbx.POST_MESSAGES | FeaturesEbx.SIGNAL_EVENTS,
        features_edx=0, hints_eax=RecommendationsEax.RELAXED_TIMING,
        vmbus_versions=(_V.COPPER,) + _ALL_VERSIONS, message_connection_id=1,
        fixed_message_sint=MESSAGE_SINT, version_response2=True,
        channel_connection_id_base=MESSAGE_SINT << 12,   # OpenVMM ConnectionId::new(relid, vtl 0, sint 2)
        notes={"source": "hyperv-guest-facts.md; OpenVMM vm/devices/vmbus/vmbus_core/src/protocol.rs"}),
    "none": Profile(name="none", hypervisor=False, max_leaf=0),
}


def get_profile(profile: str | Profile) -> Profile:
    if isinstance(profile, Profile):
        return profile
    try:
        return PROFILES[profile]
    except KeyError:
        raise HostUsageError(f"unknown hypervisor profile {profile!r}; expected one of {sorted(PROFILES)}") from None
