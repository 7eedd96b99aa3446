"""A model of the partition Hyper-V (or OpenVMM on KVM) presents to a guest: CPUID, synthetic MSRs,
hypercalls, SynIC, synthetic timers, a VMBus host and hv_sock endpoints, over guest memory in any buffer.

    mem = bytearray(4 << 20)
    with Partition(mem, "hyperv", inject=on_vector) as hv:
        hv.cpuid(0x40000001)              # the guest's CPUID / rdmsr / wrmsr / hypercall
        listener = hv.hvsock_listen(wslx.spec.vmbus.AGENTX_HVSOCK_PORT)

See docs/hyperv.md and docs/vmbus.md for the wire formats (wslx.spec.hyperv / wslx.spec.vmbus)."""
from .clock import MonotonicClock, VirtualClock
from .errors import (GeneralProtectionFault, GuestFault, GuestMemoryError, HostUsageError, HvError, HvTimeout,
                     InvalidOpcodeFault, ModelBug, RingError)
from .faults import Faults
from .memory import GuestMemory, Region
from .partition import Partition
from .profiles import PROFILES, Profile, get_profile
from .vmbus import hvsock_guid, hvsock_port

__all__ = ["Partition", "GuestMemory", "Region", "VirtualClock", "MonotonicClock", "Faults", "PROFILES", "Profile",
           "get_profile", "HvError", "GuestFault", "GeneralProtectionFault", "InvalidOpcodeFault", "GuestMemoryError",
           "RingError", "HostUsageError", "HvTimeout", "ModelBug", "hvsock_guid", "hvsock_port"]
