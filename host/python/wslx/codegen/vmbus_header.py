"""build/gen/vmbus.h and docs/vmbus.md: the HeaderSpec of wslx.spec.vmbus."""
from ..spec import vmbus
from .spec_module import header_spec

C_HEADER = header_spec(vmbus, "vmbus")
