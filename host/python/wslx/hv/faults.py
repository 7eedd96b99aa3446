"""Fault-injection knobs: the host misbehaving on purpose, so guest code can prove it survives.
Each knob's effect is the model's defined behaviour (tests/test_hv_guest.py shows each one;
tests/test_trackb_hv_host.py shows the C guest surviving it)."""
from __future__ import annotations

from dataclasses import dataclass

from .errors import HostUsageError

RESCIND_STEPS = ("offer", "gpadl", "open", "data")


@dataclass
class Faults:
    # Channel messages the host sends are cut to half their size (payload_size says so honestly).
    malformed_messages: bool = False
    # The SynIC slot's payload_size field claims 255 bytes (more than the 240 a slot holds).
    oversize_messages: bool = False
    # Before every channel message, the host sends one with an unknown msgtype (99).
    unknown_message_types: bool = False
    # Rescind the hv_sock channel when the guest reaches this step: "offer" (right after offering it),
    # "gpadl" (on GpadlHeader), "open" (on OpenChannel, before OpenResult), "data" (on the first guest signal).
    rescind_at: str | None = None
    # The next N HvCallPostMessage calls return HV_STATUS_INSUFFICIENT_BUFFERS (the host queue is "full").
    insufficient_buffers: int = 0
    # InitiateContact is swallowed: no VersionResponse ever comes.
    ignore_initiate_contact: bool = False
    # When the host next writes a ring, it publishes write_index beyond the ring's data area.
    corrupt_ring_indices: bool = False

    def __post_init__(self):
        if self.rescind_at not in (None, *RESCIND_STEPS):
            raise HostUsageError(f"rescind_at={self.rescind_at!r}: expected one of {RESCIND_STEPS} or None")
