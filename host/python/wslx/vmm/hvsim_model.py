"""The hvsim model process: the wslx.hv partition serving a QEMU guest as its ivshmem-doorbell server.

    python -m wslx.vmm.hvsim_model --run-dir D --ram-file F --ram-size BYTES --profile P --vsock-path V

Started by wslx.vmm.hvsim.HvsimMachine before QEMU (QEMU's ivshmem chardev is the client and needs a
listening server). It
- listens on D/ivshmem.sock and prints one line "ready" on stdout once it does;
- hands QEMU (peer 1) the shared block (wslx.spec.hvsim, BAR2) and eventfds as the ivshmem protocol
  says (QEMU docs/specs/ivshmem-spec.txt: int64 messages, one per sendmsg, each fd in its own message:
  version 0; the client's id; -1 with the memory fd; then, per peer, one eventfd per vector);
- maps the guest's RAM file (GuestMemory.q35: GPA -> file offset, RAM above 4 GiB included) and runs a
  Partition on it with a MonotonicClock;
- serving thread (serve_loop): wakes on the doorbell eventfd or a host stream; answers the request in the
  shared block (CPUID, MSRs, hypercalls) and publishes done_seq; if the guest halted for that answer
  (wait_seq, feature ANSWER_IRQ, which the block offers) it raises MSI-X entry ANSWER_MSIX_ENTRY; then it
  does a hypercall's host work (Partition.defer_service: the guest runs on meanwhile) and moves hv_sock
  data both ways (Partition.poll). Traps and streams share this thread because a PING round trip wakes
  the model twice (the host's data, then the guest's SignalEvent) and both then run one warm thread with
  no GIL or lock hand-off (interleaved against a trap thread beside an I/O thread, 10 rounds of 3000
  PINGs: faster in 8 of 10, model CPU per round trip lower in 8 of 10);
- with --native (the default when build/hv/libhvrelay.so is built; wslx.hv.native, hvrelay.c) a C
  thread owns the doorbell instead: it answers the fast HvCallSignalEvent to an hv_sock channel's
  connection id and moves that channel's data between its rings and its host stream (reading the host's
  data, writing packets, the event flag and the MSI-X) with no Python and no GIL; every other trap it
  hands, untouched, to relay_trap on its own thread (answer_traps(only=seq) and the follow-up above);
  the serving thread then watches only streams the relay does not own and the relay's notes (a ring it
  found broken: the channel is rescinded as in Python). The Python model keeps every other piece of
  state and pushes what the relay needs (message SINT, its SIEFP area, hypercall page and privilege)
  after each trap that may change it; the Python bridge (hvsock.py, ring.py) stays the reference the C
  one is tested against byte for byte (tests/test_hvrelay.py);
- I/O thread (io_loop): fires timers, refits the reference TSC page, and takes host-initiated
  connections on the hybrid-vsock socket V ("CONNECT <port>\\n" -> "OK <port>\\n"); guest connections to
  host port P are bridged to the Unix socket V_P (the OpenVMM convention, so the host side is the same
  for both VMMs);
- raises guest interrupts by writing QEMU's eventfd for MSI-X entry (vector - msix_vector_base), after the
  partition lock is released (raise_pending): the write wakes QEMU's main loop, which on a busy host may
  take this thread's CPU, and the other thread must not wait for the lock meanwhile.
It exits when QEMU disconnects, on SIGTERM, or (status 3) when the model itself fails; its log is
D/model.log. --raise-after N makes the model raise at the Nth trap request (tests: a failing model);
--answer-delay-us N makes it answer each request N us late (tests: a slow model, the guest halts).
"""
from __future__ import annotations

import argparse
import array
import collections
import mmap
import os
import select
import signal
import socket
import struct
import sys
import threading
import time
import traceback

from ..hv import GuestFault, GuestMemory, HvError, MonotonicClock, ModelBug, Partition
from ..spec import hvsim as S
from ..spec.hyperv import Msr

IVSHMEM_PROTOCOL_VERSION = 0
MODEL_PEER = 0
QEMU_PEER = 1
I64 = struct.Struct("<q")
REQ = struct.Struct("<II4Q")                 # seq, op, arg0, arg1, arg2, guest_tsc (at OFF_SEQ)
ANSWER = struct.Struct("<I4Q")               # fault, result[4] (at OFF_DONE_SEQ + 4)
U32 = struct.Struct("<I")
ACCEPT_TIMEOUT_S = 60.0                      # QEMU connects right after it starts
IO_TICK_S = 0.05                             # each thread re-reads its sockets at least this often
CONNECT_LINE_MAX = 64
TSC_REFIT_S = 1.0                            # the reference TSC page is refitted this often
GIL_SWITCH_S = 0.0002                        # a thread waiting for the GIL gets it within this (default 5 ms)


def _host_rdtsc():
    """A callable returning the host CPU's TSC (x86-64: `rdtsc; shl rdx,32; or rax,rdx; ret` in an executable
    page), or None where that cannot work. Under TCG on an x86-64 host the guest's rdtsc is the host's TSC
    minus a constant (QEMU cpu_get_ticks: cpu_get_host_ticks() + cpu_ticks_offset)."""
    import ctypes
    import platform
    if platform.machine() not in ("x86_64", "AMD64"):
        return None
    try:
        page = mmap.mmap(-1, mmap.PAGESIZE, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)
        page.write(bytes([0x0F, 0x31, 0x48, 0xC1, 0xE2, 0x20, 0x48, 0x09, 0xD0, 0xC3]))
        fn = ctypes.CFUNCTYPE(ctypes.c_uint64)(ctypes.addressof(ctypes.c_char.from_buffer(page)))
        fn._page = page                      # the code lives as long as the function
        a, b = fn(), fn()
        return fn if b >= a else None
    except (OSError, ValueError, TypeError):
        return None


class TscFit:
    """The guest's TSC against model time, so the reference TSC page turns the guest's own rdtsc (QEMU's, not
    the model's) into the model's reference time.

    With the host's TSC (x86-64 host): the rate is the host TSC against the model clock, read back to back
    in this process over a baseline that grows with the run; the guest's offset is the least
    (host TSC when the model reads a request) - (guest TSC written in it): every request's latency only
    adds, so the minimum converges on the true offset. Without it: the guest_tsc of the requests against
    the time the model read them (first and latest; off by those requests' latency)."""

    SKIP = 3                                # the first requests answer late (a cold model): not a baseline

    def __init__(self, clock, host_rdtsc=None):
        self.clock = clock
        self.rdtsc = host_rdtsc
        self.anchor = self._pair() if host_rdtsc else None
        self.offset = None                  # host TSC - guest TSC
        self.first = self.last = None       # fallback: (guest_tsc, model time in 100 ns)
        self.samples = 0

    def _pair(self) -> tuple[int, int]:
        """(host TSC, model time) read together: the tightest of a few brackets tsc, now, tsc (a preemption
        between the reads would skew the rate)."""
        best = None
        for _ in range(5):
            a, t, b = self.rdtsc(), self.clock.now(), self.rdtsc()
            if best is None or b - a < best[0]:
                best = (b - a, (a + b) // 2, t)
        return best[1], best[2]

    def sample(self, tsc: int) -> None:
        if not tsc:
            return
        if self.rdtsc:
            d = self.rdtsc() - tsc
            self.offset = d if self.offset is None else min(self.offset, d)
            return
        self.samples += 1
        self.last = (tsc, self.clock.now())
        if self.first is None and self.samples > self.SKIP:
            self.first = self.last

    def hz(self) -> int | None:
        if self.rdtsc:
            tsc0, t0 = self.anchor
            tsc, t = self._pair()
            return (tsc - tsc0) * 10_000_000 // (t - t0) if t - t0 >= 10_000 else None
        if self.first is None or self.last[1] - self.first[1] < 10_000:     # under 1 ms: no fit yet
            return None
        return (self.last[0] - self.first[0]) * 10_000_000 // (self.last[1] - self.first[1])

    def ready(self) -> bool:
        return self.offset is not None if self.rdtsc else self.last is not None

    def tsc_at(self, now: int, hz: int) -> int:
        """The guest's TSC now (`now` is the model clock, read just before)."""
        if self.rdtsc:
            return self.rdtsc() - self.offset
        tsc, t = self.last
        return tsc + (now - t) * hz // 10_000_000


class HvsimPartition(Partition):
    """A Partition whose TSC is the guest's (TscFit) rather than a model-invented one."""

    def __init__(self, *a, **kw):
        super().__init__(*a, **kw)
        self.tsc_fit = TscFit(self.clock, _host_rdtsc())
        self.log(f"hvsim: guest TSC from {'the host TSC' if self.tsc_fit.rdtsc else 'request timestamps'}")

    def rdtsc(self) -> int:
        if not self.tsc_fit.ready():
            return super().rdtsc()
        return self.tsc_fit.tsc_at(self.clock.now(), self.profile.tsc_hz)

    def fit_tsc(self) -> None:
        hz = self.tsc_fit.hz()
        if hz and hz > 0:
            self.profile = self.profile.with_(tsc_hz=hz)

    def refresh_tsc_page(self) -> None:
        """Refit on the longer baseline and rewrite the reference TSC page (a new sequence: the guest re-reads,
        as after a migration on Hyper-V)."""
        with self._lock:
            if self.reference_tsc_msr & 1 and self.tsc_fit.hz():
                self.fit_tsc()
                self._write_reference_tsc(self.reference_tsc_msr)


class Model:
    def __init__(self, args):
        self.args = args
        self.log_file = open(os.path.join(args.run_dir, "model.log"), "a", buffering=1)
        self.stop = threading.Event()
        self.failed: BaseException | None = None
        self.requests = 0
        self.answer_irqs = 0              # answers a halted guest was woken for (ANSWER_IRQ)
        self.injected = self.dropped_vectors = 0
        self.by_vector: dict[int, int] = {}
        self.pending_irqs: collections.deque[int] = collections.deque()   # MSI-X entries to raise
        # the shared block (ivshmem BAR2)
        self.shm_fd = os.memfd_create("hvsim-shm")
        os.ftruncate(self.shm_fd, S.SHM_SIZE)
        self.shm = mmap.mmap(self.shm_fd, S.SHM_SIZE, mmap.MAP_SHARED)
        S.HVSIM_BLOCK.build_stream(dict(magic=S.MAGIC, version=S.VERSION, model_peer=MODEL_PEER, msix_vector_base=0,
                                        msix_vectors=0, irq_seq=0, idle_poll_ns=args.idle_poll_ns,
                                        features=S.FEATURE_ANSWER_IRQ, wait_seq=0, seq=0, op=0, arg0=0, arg1=0, arg2=0, guest_tsc=0,
                                        done_seq=0, fault=0, result=[0] * 4), _Writer(self.shm))
        self.model_efd = [os.eventfd(0, os.EFD_CLOEXEC) for _ in range(S.MSIX_VECTORS)]   # guest doorbells
        self.guest_efd = [os.eventfd(0, os.EFD_CLOEXEC) for _ in range(S.MSIX_VECTORS)]   # MSI-X entries
        # guest RAM
        self.ram_fd = os.open(args.ram_file, os.O_RDWR)
        self.ram = mmap.mmap(self.ram_fd, args.ram_size, mmap.MAP_SHARED)
        self.partition = HvsimPartition(GuestMemory.q35(self.ram, args.ram_size), args.profile,
                                        clock=MonotonicClock(), inject=self.inject, log=self.log)
        self.partition.defer_service = True
        self.vsock_path = args.vsock_path
        for port in args.listen_port:
            self.partition.hvsock_listen(port, dial=lambda p=port: self.dial_host(p))
        self.wake_r, self.wake_w = os.pipe()
        self.fence = threading.Lock()        # `with fence: pass` is a locked instruction (a full barrier)
        self.relay = self._native_relay() if args.native else None
        if args.native is False:
            self.log("hvsim: hv_sock hot path in Python (--no-native)")

    def _native_relay(self):
        """The native hot path (wslx.hv.native): a C thread owns the trap doorbell, answers the fast
        SignalEvent of the hv_sock channels it moves and forwards every other trap here; None (the Python
        path, said in the log) when the library is not built."""
        from ..hv import native
        try:
            relay = native.NativeRelay(self.shm_fd, S.SHM_SIZE, self.ram_fd, self.args.ram_size,
                                       self.model_efd[S.TRAP_DOORBELL_VECTOR], self.guest_efd, self.log)
        except native.NativeMissing as e:
            self.log(f"hvsim: native hot path unavailable ({e}): hv_sock and traps stay in Python")
            return None
        self.partition.vmbus.bridge_factory = relay.bridge
        relay.set_trap_handler(self.relay_trap)
        self.log(f"hvsim: native hot path {native.library_path()}: SignalEvent and hv_sock data in C")
        return relay

    def relay_trap(self, seq: int) -> None:
        """A trap the relay forwarded, answered on the relay's thread (one wake-up, as when the serving thread
        owned the doorbell), with the serving thread's follow-up: a hypercall's host work, queued MSI-X, and
        a wake so the serving thread re-reads the streams it watches (if it watches any)."""
        p = self.partition
        try:
            if self.answer_traps(only=seq) or p.service_due:
                with p._lock:
                    p.poll()
                    python_streams = any(b.wants_read() or b.to_host for b in p.vmbus.bridges())
                self.raise_pending()
                if python_streams:             # only bridges the relay does not own have sockets to watch
                    self.relay.wake()
            else:
                self.raise_pending()
        except BaseException as e:     # the model failed: as a failing serving thread (_thread)
            self.failed = e
            self.log(f"relay trap: {type(e).__name__}: {e}\n{traceback.format_exc()}")
            self.stop.set()
            os.write(self.wake_w, b"x")

    def wake_serve(self) -> None:
        """Make the serving thread look again (it polls the relay's notes when the relay owns the doorbell)."""
        if self.relay is not None:
            self.relay.wake()
        else:
            os.eventfd_write(self.model_efd[S.TRAP_DOORBELL_VECTOR], 1)

    def log(self, line: str) -> None:
        self.log_file.write(f"{time.monotonic():.6f} {line}\n")

    # -- ivshmem server --------------------------------------------------------------------------------------
    def serve_qemu(self, listener: socket.socket) -> socket.socket:
        listener.settimeout(ACCEPT_TIMEOUT_S)
        conn, _ = listener.accept()
        conn.settimeout(None)

        def send(value: int, fd: int | None = None):
            anc = [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", [fd]))] if fd is not None else []
            conn.sendmsg([I64.pack(value)], anc)

        send(IVSHMEM_PROTOCOL_VERSION)
        send(QEMU_PEER)
        send(-1, self.shm_fd)
        for fd in self.model_efd:
            send(MODEL_PEER, fd)
        for fd in self.guest_efd:
            send(QEMU_PEER, fd)
        self.log(f"ivshmem: QEMU connected as peer {QEMU_PEER}, {S.MSIX_VECTORS} vectors")
        return conn

    # -- interrupts ------------------------------------------------------------------------------------------
    def inject(self, vector: int) -> None:
        base, count = U32.unpack_from(self.shm, S.OFF_MSIX_VECTOR_BASE)[0], U32.unpack_from(self.shm, S.OFF_MSIX_VECTORS)[0]
        i = vector - base
        if not base or not 0 <= i < min(count, S.MSIX_VECTORS):
            self.dropped_vectors += 1
            self.log(f"inject: vector {vector:#x} has no MSI-X entry (base {base:#x}, {count} entries): dropped")
            return
        self.injected += 1
        self.by_vector[vector] = self.by_vector.get(vector, 0) + 1
        self.pending_irqs.append(i)          # raised by raise_pending, once the caller's lock is released

    def raise_entry(self, i: int) -> None:
        """Raise MSI-X entry i if the guest programmed it."""
        if U32.unpack_from(self.shm, S.OFF_MSIX_VECTOR_BASE)[0] and i < min(U32.unpack_from(self.shm, S.OFF_MSIX_VECTORS)[0], S.MSIX_VECTORS):
            os.eventfd_write(self.guest_efd[i], 1)

    def raise_pending(self) -> None:
        """Raise the MSI-X the model queued (called without the partition lock)."""
        while self.pending_irqs:
            try:
                i = self.pending_irqs.popleft()
            except IndexError:               # the other thread took the last one
                return
            os.eventfd_write(self.guest_efd[i], 1)
            # after the MSI-X is on its way: a guest that sees the bump has an interrupt coming
            U32.pack_into(self.shm, S.OFF_IRQ_SEQ, (U32.unpack_from(self.shm, S.OFF_IRQ_SEQ)[0] + 1) & 0xFFFFFFFF)

    # -- traps ---------------------------------------------------------------------------------------------
    def answer_traps(self, only: int | None = None) -> bool:
        """Answer every request the guest posted (CPUID, MSRs, hypercalls) and publish done_seq; if the guest
        halted for that answer (wait_seq, ANSWER_IRQ) raise MSI-X entry ANSWER_MSIX_ENTRY. True if one was a
        hypercall, whose host work (Partition.defer_service: service_due) is left to the caller: the VP runs
        on meanwhile. only: answer just request `only` (the native relay forwarded it; the next one is the
        relay's)."""
        shm, hypercall = self.shm, False
        while True:
            seq, op, a0, a1, a2, tsc = REQ.unpack_from(shm, S.OFF_SEQ)
            if seq == U32.unpack_from(shm, S.OFF_DONE_SEQ)[0] or (only is not None and seq != only):
                return hypercall
            hypercall |= op == S.Op.HYPERCALL
            fault, result = self.answer(op, a0, a1, a2, tsc)
            if self.relay is not None and op in (S.Op.WRMSR, S.Op.HYPERCALL):
                self.relay.sync(self.partition)             # before the guest runs on: SynIC, hypercall page
            if self.args.answer_delay_us:                   # tests: a slow model
                time.sleep(self.args.answer_delay_us / 1e6)
            ANSWER.pack_into(shm, S.OFF_DONE_SEQ + 4, fault, *result)
            U32.pack_into(shm, S.OFF_DONE_SEQ, seq)          # last: the guest stops spinning
            with self.fence:                                # a locked instruction: done_seq before wait_seq
                pass
            if U32.unpack_from(shm, S.OFF_WAIT_SEQ)[0] == seq:    # it halted: wake it (ANSWER_IRQ)
                self.raise_entry(S.ANSWER_MSIX_ENTRY)
                self.answer_irqs += 1
            if only is not None:
                return hypercall

    def answer(self, op, a0, a1, a2, tsc):
        p = self.partition
        self.requests += 1
        if self.args.raise_after and self.requests >= self.args.raise_after:
            raise RuntimeError(f"--raise-after {self.args.raise_after}: the model fails on purpose")
        p.tsc_fit.sample(tsc)
        try:
            if op == S.Op.CPUID:
                return 0, p.cpuid(a0 & 0xFFFFFFFF)
            if op == S.Op.RDMSR:
                return 0, (p.rdmsr(a0 & 0xFFFFFFFF), 0, 0, 0)
            if op == S.Op.WRMSR:
                if a0 == Msr.REFERENCE_TSC:
                    p.fit_tsc()
                p.wrmsr(a0 & 0xFFFFFFFF, a1)
                return 0, (0, 0, 0, 0)
            if op == S.Op.HYPERCALL:
                return 0, (p.hypercall(a0, a1, a2), 0, 0, 0)
            self.log(f"trap: unknown op {op}: #UD")
            return 6, (0, 0, 0, 0)
        except GuestFault as e:
            self.log(f"trap: op {op} {a0:#x}: {e}")
            return e.vector, (0, 0, 0, 0)
        except ModelBug:
            raise
        except HvError as e:   # a typed model refusal that is not a CPU fault: the access #GPs
            self.log(f"trap: op {op} {a0:#x}: {type(e).__name__}: {e}: #GP")
            return 13, (0, 0, 0, 0)

    # -- hv_sock streams, timers, host-initiated connections -------------------------------------------------
    def streams(self) -> tuple[list, list]:
        """Host streams to read (room in the guest-bound buffer) and to write (guest data waiting)."""
        with self.partition._lock:
            bridges = self.partition.vmbus.bridges()
            return [b for b in bridges if b.wants_read()], [b for b in bridges if b.to_host and not b.dead]

    def dial_host(self, port: int) -> socket.socket:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        path = f"{self.vsock_path}_{port}"
        try:
            s.connect(path)
            self.log(f"hv_sock: guest connection to host port {port} bridged to {path}")
        except OSError as e:   # nobody listens: the guest sees the peer close at once and may redial
            self.log(f"hv_sock: guest connection to host port {port}: {path}: {e}; closing it")
            s.close()
            s, other = socket.socketpair()
            other.close()
        os.write(self.wake_w, b"x")
        return s

    def take_connect(self, listener: socket.socket) -> None:
        conn, _ = listener.accept()
        conn.settimeout(2.0)
        try:
            line = b""
            while not line.endswith(b"\n") and len(line) < CONNECT_LINE_MAX:
                chunk = conn.recv(1)
                if not chunk:
                    break
                line += chunk
            word, _, port = line.decode("ascii", "replace").strip().partition(" ")
            if word != "CONNECT" or not port.isdigit() or not 0 < int(port) < 1 << 32:
                self.log(f"hybrid vsock: bad request {line!r}: closed")
                conn.close()
                return
            conn.sendall(f"OK {int(port)}\n".encode())
            conn.settimeout(None)
            self.partition.hvsock_connect(int(port), model_end=conn)
            self.log(f"hybrid vsock: host connection offered to guest port {port}")
        except (OSError, HvError) as e:
            self.log(f"hybrid vsock: {e}")
            conn.close()

    def serve_loop(self) -> None:
        """Traps and hv_sock streams, in one thread: a PING round trip wakes the model twice (the host's
        data, then the guest's SignalEvent doorbell), and both wake-ups run this warm thread, with no GIL or
        partition-lock hand-off to another thread. An MSR or CPUID trap costs a poll, the answer and nothing
        else; the streams' poll registrations are redone only after data moved or a hypercall."""
        p = self.partition
        relay = self.relay                                # it owns the doorbell and says what is ours
        efd = self.model_efd[S.TRAP_DOORBELL_VECTOR] if relay is None else relay.note_r
        poller = select.poll()                            # QEMU makes the eventfd non-blocking (shared)
        poller.register(efd, select.POLLIN)
        watched: dict[int, int] = {}
        while not self.stop.is_set():
            events = poller.poll(IO_TICK_S * 1000)
            trap = streams = False
            for fd, _ in events:
                if fd == efd:
                    trap = True
                else:
                    streams = True
            if relay is not None:
                seqs, broke = relay.notes() if trap else ([], False)
                if broke:
                    p.service_due = True                  # pump() raises its RingError: rescinded
                hypercall = False
                for seq in seqs:
                    hypercall |= self.answer_traps(only=seq)
            else:
                if trap:
                    try:
                        os.eventfd_read(efd)
                    except BlockingIOError:
                        pass
                hypercall = self.answer_traps()           # the guest may be spinning on the answer: first
            if not (streams or hypercall or p.service_due or not events):
                self.raise_pending()                      # an EOM or a timer MSR may have queued one
                continue                                  # an MSR/CPUID trap: the streams are as they were
            with p._lock:
                if streams or p.service_due:
                    p.poll()
                readers, writers = self.streams()
            self.raise_pending()
            want = {}
            for b in readers:
                want[b.fileno()] = select.POLLIN
            for b in writers:
                want[b.fileno()] = want.get(b.fileno(), 0) | select.POLLOUT
            for fd in watched.keys() - want.keys():
                poller.unregister(fd)
            for fd, mask in want.items():
                if watched.get(fd) != mask:
                    poller.register(fd, mask)
            watched = want

    def io_loop(self, vsock_listener: socket.socket, qemu: socket.socket) -> None:
        """Timers, the reference TSC page's refit, host-initiated connections and QEMU's disconnect."""
        p = self.partition
        next_refit = time.monotonic() + TSC_REFIT_S
        while not self.stop.is_set():
            if time.monotonic() >= next_refit:
                p.refresh_tsc_page()
                next_refit += TSC_REFIT_S
            deadline = p.next_deadline()
            wait = IO_TICK_S if deadline is None else min(IO_TICK_S, max(0.0, (deadline - p.clock.now()) / 1e7))
            r, _, _ = select.select([vsock_listener, qemu, self.wake_r], [], [], wait)
            if qemu in r:
                if not qemu.recv(64):
                    self.log("ivshmem: QEMU disconnected; the model ends")
                    return
            if self.wake_r in r:
                os.read(self.wake_r, 4096)
            if vsock_listener in r:
                self.take_connect(vsock_listener)
                self.wake_serve()                                              # the serving thread looks again
            p.fire_timers()
            self.raise_pending()


class _Writer:
    """A write-only file over an mmap, for construct's build_stream."""

    def __init__(self, mm):
        self.mm, self.pos = mm, 0

    def write(self, data):
        self.mm[self.pos:self.pos + len(data)] = data
        self.pos += len(data)
        return len(data)


def _thread(model: Model, name: str, fn, *args) -> threading.Thread:
    def run():
        try:
            fn(*args)
        except BaseException as e:     # the model failed: say so in the log, and end the process
            model.failed = e
            model.log(f"{name}: {type(e).__name__}: {e}\n{traceback.format_exc()}")
        finally:
            model.stop.set()
            os.write(model.wake_w, b"x")
    t = threading.Thread(target=run, name=name, daemon=True)
    t.start()
    return t


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m wslx.vmm.hvsim_model")
    ap.add_argument("--run-dir", required=True)
    ap.add_argument("--ram-file", required=True)
    ap.add_argument("--ram-size", type=int, required=True)
    ap.add_argument("--profile", default="hyperv")
    ap.add_argument("--vsock-path", required=True)
    ap.add_argument("--listen-port", type=int, action="append", default=[])
    ap.add_argument("--raise-after", type=int, default=0)
    ap.add_argument("--answer-delay-us", type=int, default=0)
    ap.add_argument("--idle-poll-ns", type=int, default=S.IDLE_POLL_NS)
    ap.add_argument("--native", action=argparse.BooleanOptionalAction, default=True,
                    help="SignalEvent and hv_sock data in C (build/hv/libhvrelay.so) when it is built")
    args = ap.parse_args(argv)
    sys.setswitchinterval(GIL_SWITCH_S)     # neither a trap answer nor a timer waits 5 ms behind the other thread
    model = Model(args)
    signal.signal(signal.SIGTERM, lambda *_: (model.stop.set(), os.write(model.wake_w, b"x")))
    ivs = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    ivs.bind(os.path.join(args.run_dir, "ivshmem.sock"))
    ivs.listen(1)
    vsock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    vsock.bind(args.vsock_path)
    vsock.listen(8)
    model.log(f"model up: profile {args.profile}, RAM {args.ram_size >> 20} MiB in {args.ram_file}")
    print("ready", flush=True)
    try:
        qemu = model.serve_qemu(ivs)
    except OSError as e:
        model.log(f"ivshmem: no QEMU connected: {e}")
        return 2
    ivs.close()
    if model.relay is not None:
        model.relay.start()
    threads = [_thread(model, "serve", model.serve_loop), _thread(model, "io", model.io_loop, vsock, qemu)]
    while not model.stop.is_set():
        model.stop.wait(1.0)
    # the serving thread may sit in poll: wake it so it sees stop
    model.wake_serve()
    for t in threads:
        t.join(2.0)
    if model.relay is not None:
        model.relay.stop()                  # before the partition ends its channels (hvr_detach)
        model.log("native relay: " + ", ".join(f"{k} {v}" for k, v in model.relay.stats().items()))
    model.log(f"model ends: {model.requests} trap requests ({model.answer_irqs} answers woke a halted guest), "
              f"{model.injected} interrupts raised, "
              f"{model.dropped_vectors} dropped; by vector "
              + ", ".join(f"{v:#x}: {n}" for v, n in sorted(model.by_vector.items())))
    model.partition.close()
    if model.relay is not None:
        model.relay.close()
    return 3 if model.failed else 0


if __name__ == "__main__":
    sys.exit(main())
