"""Typed errors of the Hyper-V model. Nothing else escapes its public entry points (Partition and the host
endpoints): a guest that misbehaves gets a status code, a #GP/#UD-worthy GuestFault, or a documented host
reaction; a bug in the model itself surfaces as ModelBug (still an HvError) with the cause chained."""
from __future__ import annotations


class HvError(Exception):
    """Base of every error the model raises."""


class GuestFault(HvError):
    """The guest's access would fault on real hardware; `vector` is the exception to raise in the guest."""
    vector = -1

    def __init__(self, message: str):
        super().__init__(f"{message} (guest exception {self.vector})")


class GeneralProtectionFault(GuestFault):
    """#GP: unknown synthetic MSR, reserved bits set, read-only MSR written (TLFS "Synthetic MSRs")."""
    vector = 13


class InvalidOpcodeFault(GuestFault):
    """#UD: a hypercall while the hypercall page is not enabled (TLFS "Hypercall Interface")."""
    vector = 6


class GuestMemoryError(HvError):
    """A guest-physical range outside guest memory."""


class RingError(HvError):
    """A VMBus ring buffer in guest memory holds impossible indices or packet descriptors."""


class HostUsageError(HvError):
    """The host side used the model wrongly (unknown profile, port in use, ...)."""


class HvTimeout(HvError):
    """A host-side wait ran out of time."""


class ModelBug(HvError):
    """An unexpected exception inside the model; the original is chained as __cause__."""
