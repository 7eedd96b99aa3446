"""Running processes, read from /proc: no ps, pgrep or pkill, which a minimal Debian
(no procps) does not have. Used by the leftover-QEMU checks (vmm.qemu, the test suite)
and the benchmarks' host-load figures."""
from __future__ import annotations

import dataclasses
import os
import shlex


def _read(pid: int, name: str) -> bytes | None:
    """/proc/PID/NAME, or None when the process is gone or not ours to read."""
    try:
        with open(f"/proc/{pid}/{name}", "rb") as f:
            return f.read()
    except OSError:
        return None


@dataclasses.dataclass(frozen=True)
class Process:
    pid: int
    argv: tuple[str, ...]

    @property
    def cmdline(self) -> str:
        return shlex.join(self.argv)

    def environ(self) -> dict[str, str]:
        """Its environment ({} once it is gone or when it is not ours to read)."""
        env = {}
        for kv in (_read(self.pid, "environ") or b"").split(b"\0"):
            k, sep, v = kv.partition(b"=")
            if sep:
                env[k.decode(errors="replace")] = v.decode(errors="replace")
        return env


def processes(name_prefix: str = "") -> list[Process]:
    """Live processes (no zombies, no kernel threads, not this one), by pid, whose program
    name (the base name of argv[0]) starts with name_prefix."""
    out = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        pid = int(entry)
        raw = _read(pid, "cmdline")
        if not raw:           # a kernel thread, a zombie, or gone
            continue
        argv = tuple(a.decode(errors="replace") for a in raw.rstrip(b"\0").split(b"\0"))
        if not os.path.basename(argv[0]).startswith(name_prefix):
            continue
        stat = _read(pid, "stat") or b""
        if stat[stat.rfind(b")") + 2:][:1] in (b"Z", b"X", b""):   # state follows "(comm) "
            continue
        out.append(Process(pid, argv))
    return sorted(out, key=lambda p: p.pid)
