"""The in-process Hyper-V harness: build/trackb/trackb-hv-host (the Track B kernel's hv/ code and agent,
host gcc, ASan+UBSan) with its platform layer's hypervisor calls served by the wslx.hv model.

Shim protocol (guest/trackb-kernel/hv/host/hv_host_main.c): the binary writes a 32-byte request
`u32 op, u32 arg, u64 a, b, c` on --req-fd and reads a 56-byte answer `u64 r[4], u32 fault, u32 nvec,
u8 vectors[16]` on --resp-fd. Ops: 1 CPUID(arg=leaf), 2 RDMSR(arg), 3 WRMSR(arg, a), 4 HYPERCALL(a=control,
b=rdx, c=r8), 5 RDTSC, 6 HALT (the VP executes hlt: the virtual clock jumps to the next timer deadline),
7 RELAX (a pause: the clock moves 10 us), 8 EXIT. `fault` is the exception vector a real CPU would raise.
The vectors the model injected meanwhile ride along; the binary takes them at its next hlt.
Guest memory is a memfd mapped at --mem-base in the binary and handed to the model as GuestMemory, so
GPAs are the binary's own addresses (the kernel's identity map)."""
from __future__ import annotations

import mmap
import os
import struct
import subprocess
import tempfile
import threading
import time
from pathlib import Path

from ..hv import Faults, GuestFault, GuestMemory, HvError, Partition, Region, VirtualClock
from ..spec.gemini import Port as GeminiPort
from ..spec.vmbus import AGENTX_HVSOCK_PORT as AGENTX_PORT

REQ = struct.Struct("<IIQQQ")
RESP = struct.Struct("<4QII16s")
OP_CPUID, OP_RDMSR, OP_WRMSR, OP_HYPERCALL, OP_RDTSC, OP_HALT, OP_RELAX, OP_EXIT = range(1, 9)
MEM_BASE = 0x20000000            # below 4 GiB like the kernel's RAM; free in an ASan process's address space
RELAX_TICKS = 100                # a pause costs 10 us of virtual time (bounded waits end quickly)
HALT_HOST_WAIT_S = 0.001         # at each hlt, wait this long (real time) for host stream data


class HarnessError(HvError):
    """The harness binary is missing, died or broke the shim protocol."""


def binary_path() -> Path:
    from .. import repo_root
    return repo_root() / "build" / "trackb" / "trackb-hv-host"


class HvHostHarness:
    """One run of trackb-hv-host against a Partition. mode "boot": hv/ brings everything up and prints
    key=value facts (self.report); mode "agent": the agent serves AgentX over hv_sock (self.listener)."""

    def __init__(self, profile="hyperv", *, mode: str = "agent", poll: bool = False, faults: Faults | None = None,
                 mem_size: int = 16 << 20, ticks: int = 8, timeout: float = 20.0, binary: Path | None = None,
                 listen: bool = True, ring_pages: int | None = None, doorbell_ports: bool = False):
        self.profile, self.mode, self.poll, self.faults = profile, mode, poll, faults or Faults()
        self.mem_size, self.ticks, self.timeout = mem_size, ticks, timeout
        self.binary = Path(binary) if binary else binary_path()
        self.ring_pages = ring_pages    # hv_sock ring pages per direction (default: the kernel's 6)
        self.listen = listen            # False: no host listener on the AgentX port (only host-initiated offers)
        self.doorbell_ports = doorbell_ports   # True: the guest also dials Gemini's SIGNAL and UPCALL ports
        self.doorbells: dict = {}       # Port -> its HvSockListener
        self.vectors: list[int] = []
        self.requests = 0
        self.msr_writes: dict[int, int] = {}     # MSR -> how many times the guest wrote it
        self.error: BaseException | None = None
        self.report: dict[str, str] = {}

    # -- lifecycle ---------------------------------------------------------------------------------------------
    def __enter__(self):
        if not self.binary.exists():
            raise HarnessError(f"{self.binary} does not exist: build it with `scons trackb-hv-host`")
        self.dir = tempfile.mkdtemp(prefix="wslx-hv-host-", dir=os.environ.get("WSLX_RUN_DIR"))
        self.log_path = os.path.join(self.dir, "guest.log")
        self.model_log = open(os.path.join(self.dir, "model.log"), "w")
        self.memfd = os.memfd_create("wslx-hv-guest-ram")
        os.ftruncate(self.memfd, self.mem_size)
        self.mm = mmap.mmap(self.memfd, self.mem_size, mmap.MAP_SHARED)
        mem = GuestMemory(self.mm, [Region(MEM_BASE, self.mem_size, 0)])
        self.partition = Partition(mem, self.profile, clock=VirtualClock(), inject=self.vectors.append,
                                   faults=self.faults, log=lambda s: print(s, file=self.model_log))
        self.listener = self.partition.hvsock_listen(AGENTX_PORT) if self.listen else None
        if self.doorbell_ports:
            self.doorbells = {p: self.partition.hvsock_listen(int(p)) for p in (GeminiPort.SIGNAL, GeminiPort.UPCALL)}
        req_r, req_w = os.pipe()
        resp_r, resp_w = os.pipe()
        argv = [str(self.binary), "--mem-fd", str(self.memfd), "--mem-base", hex(MEM_BASE), "--mem-size",
                str(self.mem_size), "--req-fd", str(req_w), "--resp-fd", str(resp_r), "--mode", self.mode,
                "--ticks", str(self.ticks)] + (["--poll"] if self.poll else []) \
            + (["--ring-pages", str(self.ring_pages)] if self.ring_pages else []) \
            + (["--aux-ports"] if self.doorbell_ports else [])
        self._log = open(self.log_path, "wb")
        env = dict(os.environ, ASAN_OPTIONS="abort_on_error=0:exitcode=99:detect_leaks=0")
        self.proc = subprocess.Popen(argv, pass_fds=(self.memfd, req_w, resp_r), stdout=subprocess.PIPE,
                                     stderr=self._log, start_new_session=True, env=env)
        os.close(req_w), os.close(resp_r)
        self._req, self._resp = req_r, resp_w
        self.thread = threading.Thread(target=self._serve, name="hv-model", daemon=True)
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        try:
            self.proc.wait(5)
        finally:
            self.thread.join(5)
            for fd in (self._req, self._resp, self.memfd):
                try:
                    os.close(fd)
                except OSError:
                    pass
            self.partition.close()
            self.proc.stdout.close()
            self._log.close()
            self.model_log.close()

    def accept(self, timeout: float):
        """The host end of the guest's hv_sock connection to the AgentX port. ConnectionLost if the binary
        ends first (e.g. profile none: no hypervisor, so the kernel code never opens hv_sock) or none comes."""
        from ..agentx.errors import ConnectionLost
        from ..hv import HvTimeout
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            try:
                return self.listener.accept(0.1)
            except HvTimeout:
                if self.proc.poll() is not None:
                    break
        raise ConnectionLost(f"{self.binary.name} (profile {self.profile}) opened no hv_sock connection to port "
                             f"{AGENTX_PORT} (exit status {self.proc.poll()}); {self.log_tail(5)}")

    def wait(self, timeout: float | None = None) -> int:
        """Boot mode: wait for the binary to finish; parse its report. Its exit status."""
        out, _ = self.proc.communicate(timeout=timeout or self.timeout)
        for line in out.decode(errors="replace").splitlines():
            k, _, v = line.partition("=")
            self.report[k] = v
        self.thread.join(5)
        return self.proc.returncode

    def log_tail(self, lines: int = 30) -> str:
        self._log.flush()
        text = Path(self.log_path).read_text(errors="replace").splitlines()
        return "guest log tail:\n" + "\n".join(text[-lines:])

    # -- the shim's other end --------------------------------------------------------------------------------
    def _read_req(self) -> bytes | None:
        buf = b""
        while len(buf) < REQ.size:
            chunk = os.read(self._req, REQ.size - len(buf))
            if not chunk:
                return None
            buf += chunk
        return buf

    def _serve(self) -> None:
        try:
            while True:
                raw = self._read_req()
                if raw is None:
                    return
                op, arg, a, b, c = REQ.unpack(raw)
                self.requests += 1
                r, fault = self._dispatch(op, arg, a, b, c)
                vecs, self.vectors[:] = bytes(self.vectors[:16]), self.vectors[16:]
                r = [x & (2**64 - 1) for x in r] + [0] * (4 - len(r))
                os.write(self._resp, RESP.pack(*r, fault, len(vecs), vecs.ljust(16, b"\0")))
                if op == OP_EXIT:
                    return
        except (OSError, BrokenPipeError):
            return
        except BaseException as e:   # recorded for the test; the binary sees EOF and exits
            self.error = e

    def _dispatch(self, op, arg, a, b, c):
        p = self.partition
        try:
            if op == OP_CPUID:
                return list(p.cpuid(arg)), 0
            if op == OP_RDMSR:
                return [p.rdmsr(arg)], 0
            if op == OP_WRMSR:
                self.msr_writes[arg] = self.msr_writes.get(arg, 0) + 1
                p.wrmsr(arg, a)
                return [], 0
            if op == OP_HYPERCALL:
                return [p.hypercall(a, b, c)], 0
            if op == OP_RDTSC:
                return [p.rdtsc()], 0
            if op == OP_HALT:
                p.wait_host(HALT_HOST_WAIT_S)
                if p.next_deadline() is None:
                    p.advance(RELAX_TICKS)
                else:
                    p.halt()
                return [], 0
            if op == OP_RELAX:
                p.advance(RELAX_TICKS)
                return [], 0
            if op == OP_EXIT:
                return [], 0
        except GuestFault as e:
            return [], e.vector
        raise HarnessError(f"unknown shim op {op}")
