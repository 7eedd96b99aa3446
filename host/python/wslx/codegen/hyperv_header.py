"""build/gen/hyperv.h and docs/hyperv.md: the HeaderSpec of wslx.spec.hyperv."""
from ..spec import hyperv
from .spec_module import header_spec

C_HEADER = header_spec(hyperv, "hyperv")
