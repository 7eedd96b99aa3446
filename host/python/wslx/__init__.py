"""WSLX guest kit, host side.

Subpackages:
  spec         the AgentX wire spec (construct), the single source of truth
  codegen      C header and Markdown reference generated from the spec
  agentx       fast codec, typed errors, client, pure-Python reference agent
  conformance  protocol-conformance suite, run against any agent
  vmm          virtual machine launchers (QEMU here, OpenVMM command lines)
  image        guest image builders (reproducible initramfs)
  kconfig      Linux config fragment validation
  bench        benchmarks that write JSON
  commands     one module per `wslx` subcommand
"""
import os
from pathlib import Path

__version__ = "0.1.0"


def repo_root() -> Path:
    """The checkout this package runs from (host/python/wslx -> repo root)."""
    env = os.environ.get("WSLX_ROOT")
    return Path(env) if env else Path(__file__).resolve().parents[3]
