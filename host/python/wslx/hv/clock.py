"""The partition's reference time, in 100 ns units (TLFS "Partition Reference Counter").

VirtualClock moves only when told (tests, the in-process harness: deterministic timer checks);
MonotonicClock follows the host's monotonic clock (the model beside QEMU)."""
from __future__ import annotations

import time

from .errors import HostUsageError


class VirtualClock:
    def __init__(self, start: int = 0):
        self._now = start

    def now(self) -> int:
        return self._now

    def advance(self, ticks: int) -> int:
        if ticks < 0:
            raise HostUsageError("the reference clock never goes backwards")
        self._now += ticks
        return self._now

    def advance_to(self, when: int) -> int:
        return self.advance(max(0, when - self._now))


class MonotonicClock:
    def __init__(self):
        self._start = time.monotonic_ns()

    def now(self) -> int:
        return (time.monotonic_ns() - self._start) // 100

    def advance_to(self, when: int) -> int:  # real time cannot be pushed; the caller waits instead
        return self.now()
