"""Portal: shared memory between the host and a guest over virtio-pmem.

Layout: wslx.spec.portal (docs/portal.md). Host side: wslx.portal.region.Portal.
Guest service driver for the Linux guest: wslx.portal.guest. The ring code is
the guest's own C core, built for the host (build/portal/libportal_host.so)."""
from .errors import (PortalArenaFull, PortalCorrupt, PortalError, PortalHeaderChanged, PortalLibraryMissing,
                     PortalRemoteError, PortalSpanError, PortalStaleSpan, PortalTimeout)
from .region import Completion, Portal, Span

__all__ = ["Portal", "Span", "Completion", "PortalError", "PortalArenaFull", "PortalCorrupt", "PortalHeaderChanged",
           "PortalLibraryMissing", "PortalRemoteError", "PortalSpanError", "PortalStaleSpan", "PortalTimeout"]
