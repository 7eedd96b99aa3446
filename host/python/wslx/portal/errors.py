"""Typed Portal errors. Everything the guest writes into the region is hostile:
whatever it does, the host gets one of these (or a timeout), never a crash."""
from __future__ import annotations

from ..spec.portal import HOST_TIMEOUT, Err


class PortalError(Exception):
    """Base of all Portal errors."""


class PortalLibraryMissing(PortalError):
    """build/portal/libportal_host.so is not built."""


class PortalHeaderChanged(PortalError):
    """The region header (magic, version, generation, portal_id) no longer matches what we attached to."""


class PortalCorrupt(PortalError):
    """A ring index moved backwards or out of range, or a completion does not match any request."""


class PortalSpanError(PortalError):
    """A span lies outside its arena or the window, or belongs to another region."""


class PortalStaleSpan(PortalSpanError):
    """A span's generation is not that of a live allocation."""


class PortalArenaFull(PortalError):
    """No room (or no free entry) left in the arena."""


class PortalTimeout(PortalError):
    """The guest did not drain or answer in time."""


class PortalRemoteError(PortalError):
    """The guest service completed a request with a non-zero status."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status

    @property
    def err(self) -> Err | None:
        try:
            return Err(self.status)
        except ValueError:
            return None


_BY_CODE = {Err.HEADER: PortalHeaderChanged, Err.PROTO: PortalCorrupt, Err.FAULT: PortalSpanError,
            Err.XDEV: PortalSpanError, Err.STALE: PortalStaleSpan, Err.NOSPC: PortalArenaFull,
            HOST_TIMEOUT: PortalTimeout}


def from_code(rc: int, what: str) -> PortalError:
    """The exception for a negative return value of the C core."""
    code = -rc
    name = Err(code).name if code in Err._value2member_map_ else ("TIMEOUT" if code == HOST_TIMEOUT else str(code))
    return _BY_CODE.get(code, PortalError)(f"{what}: {name}")
