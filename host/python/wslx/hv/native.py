"""cffi (ABI mode) binding of build/hv/libhvrelay.so: the hvsim model's hv_sock hot path in C (hvrelay.c).

The declarations are read from hvrelay.h, the header the library is compiled against. Two things use it:
- tests: NativeRing, the same ring operations as ring.py's HostReader/HostWriter (the reference), checked
  byte for byte on the same ring states;
- the hvsim model: NativeRelay, a pthread that owns the trap doorbell, answers the fast HvCallSignalEvent
  of the hv_sock channels handed to it (NativeBridge, VmbusHost.bridge_factory) and moves their data, and
  hands every other trap to the Python model (a callback on the relay's thread once the model sets one,
  else a note record in a pipe; notes also report broken channels and rescues). The Python model keeps
  every other piece of state; it pushes the SynIC facts the relay needs (sync) after each trap that may
  change them.
"""
from __future__ import annotations

import functools
import os
import re
import struct
from pathlib import Path

from .. import repo_root
from ..spec import hyperv as H
from .errors import GuestMemoryError, HvError, RingError
from .hvsock import FROM_HOST_LIMIT, TO_HOST_LIMIT, HvSockBridge, packet_chunk   # the same limits per channel

_HERE = Path(__file__).resolve().parent
HEADER = _HERE / "hvrelay.h"
NOTE = struct.Struct("<II")        # struct hvr_note: kind, value


class NativeMissing(HvError):
    """build/hv/libhvrelay.so is not built (or does not load)."""


LIBRARY_ENV = "WSLX_HVRELAY_LIB"     # another build of it (tests: the ASan one)


def library_path() -> Path:
    return Path(os.environ.get(LIBRARY_ENV) or repo_root() / "build" / "hv" / "libhvrelay.so")


def constants() -> dict[str, int]:
    return {k: int(v) for k, v in re.findall(r"^#define\s+(HVR_\w+)\s+\(?(-?\d+)\)?", HEADER.read_text(), re.M)}


C = constants()


@functools.lru_cache(maxsize=None)
def load():
    """(ffi, lib); NativeMissing says how to build it."""
    from ..portal.native import open_library
    path = library_path()
    try:
        return open_library(path, [HEADER], NativeMissing, ".venv/bin/scons -Q hvrelay")
    except OSError as e:
        raise NativeMissing(f"{path}: {e}") from e


def _error(code: int, where: str) -> RingError:
    ffi, lib = load()
    return RingError(f"{where}: {ffi.string(lib.hvr_strerror(code)).decode()} (HVR {code})")


def ring_offsets(ring) -> list[int]:
    """A ring.py Ring's pages as offsets into its guest-memory buffer, control page first."""
    return [ring._ctrl] + list(ring._pages)


class NativeRing:
    """hvrelay.c's ring over the same buffer and pages as a ring.py Ring (tests: both on one state)."""

    def __init__(self, buffer, offsets: list[int]):
        self.ffi, self.lib = load()
        self._buf = self.ffi.from_buffer(buffer)
        self.r = self.lib.hvr_ring_new(self._buf, len(self._buf), offsets, len(offsets))
        if self.r == self.ffi.NULL:
            raise RingError("hvr_ring_new: pages outside the buffer or fewer than two")
        self.size = self.lib.hvr_ring_size(self.r)

    def close(self) -> None:
        if self.r is not None:
            self.lib.hvr_ring_free(self.r)
            self.r = None

    def peek(self):
        """As HostReader.peek: (type, flags, trans_id, payload, next) or None; RingError if broken."""
        ffi = self.ffi
        t, f, tid, plen, nxt = ffi.new("uint16_t *"), ffi.new("uint16_t *"), ffi.new("uint64_t *"), \
            ffi.new("uint32_t *"), ffi.new("uint32_t *")
        buf = ffi.new("uint8_t[]", self.size)
        r = self.lib.hvr_ring_peek(self.r, t, f, tid, buf, self.size, plen, nxt)
        if r < 0:
            raise _error(r, "peek")
        if r == 0:
            return None
        return t[0], f[0], tid[0], bytes(ffi.buffer(buf, plen[0])), nxt[0]

    def commit(self, next_read: int) -> bool:
        r = self.lib.hvr_ring_commit(self.r, next_read)
        if r < 0:
            raise _error(r, "commit")
        return r == C["HVR_SIGNAL"]

    def write_packet(self, ptype: int, payload: bytes, trans_id: int = 0, flags: int = 0) -> bool | None:
        r = self.lib.hvr_ring_write(self.r, ptype, payload, len(payload), self.ffi.NULL, 0, trans_id, flags)
        if r < 0:
            raise _error(r, "write")
        return None if r == C["HVR_FULL"] else r == C["HVR_SIGNAL"]

    def packet_size(self, payload_len: int) -> int:
        return self.lib.hvr_packet_size(payload_len)

    def want_space(self, total: int) -> None:
        self.lib.hvr_ring_want_space(self.r, total)

    def clear_want(self) -> None:
        self.lib.hvr_ring_clear_want(self.r)


class NativeRelay:
    """The relay thread of one hvsim model (see the module docstring). The model polls `note_fd`."""

    STATS = ("answered", "forwarded", "injected", "dropped_vectors", "answer_irqs", "bytes_to_host",
             "bytes_to_guest", "rescues")

    def __init__(self, shm_fd: int, shm_size: int, ram_fd: int, ram_size: int, trap_efd: int,
                 guest_efd: list[int], log):
        self.ffi, self.lib = load()
        self.log = log
        self.note_r, self.note_w = os.pipe2(os.O_CLOEXEC | os.O_NONBLOCK)
        self.h = self.lib.hvr_new(shm_fd, shm_size, ram_fd, ram_size, trap_efd, guest_efd, len(guest_efd),
                                  self.note_w)
        if self.h == self.ffi.NULL:
            os.close(self.note_r)
            os.close(self.note_w)
            raise NativeMissing("hvr_new failed (mmap or eventfd)")
        self._msg = self.ffi.new("char[]", 256)

    def set_trap_handler(self, fn) -> None:
        """fn(seq) answers a forwarded trap, called on the relay's thread (cffi takes the GIL): one wake-up per
        trap, not the relay's and then the serving thread's. Exceptions are fn's to handle."""
        self._trap_cb = self.ffi.callback("hvr_trap_fn", lambda seq: fn(seq) or 0)
        self.lib.hvr_set_trap_handler(self.h, self._trap_cb)

    def start(self) -> None:
        if self.lib.hvr_start(self.h):
            raise NativeMissing("hvr_start: pthread_create failed")

    def wake(self) -> None:
        """Wake the Python serving thread (a note of kind WAKE)."""
        os.write(self.note_w, NOTE.pack(C["HVR_NOTE_WAKE"], 0))

    def notes(self) -> tuple[list[int], bool]:
        """(request seqs the Python model must answer, whether a channel broke) from the pipe."""
        seqs, broke = [], False
        try:
            data = os.read(self.note_r, NOTE.size * 512)
        except BlockingIOError:
            return seqs, broke
        for kind, value in NOTE.iter_unpack(data[:len(data) - len(data) % NOTE.size]):
            if kind == C["HVR_NOTE_TRAP"]:
                seqs.append(value)
            elif kind == C["HVR_NOTE_BROKEN"]:
                broke = True
            elif kind == C["HVR_NOTE_RESCUE"]:
                self.log(f"native relay: relid {value}: the safety-net tick moved data no signal moved "
                         "(a lost wake-up)")
        return seqs, broke

    def sync(self, p) -> None:
        """Push what the relay needs of the partition's state (called after a trap that may change it)."""
        syn, sint = p.synic, p.vmbus.sint
        sief = -1
        if syn.enabled and syn.siefp & H.PAGE_MSR_ENABLE:
            try:
                sief = p.mem.offset_of((syn.siefp & H.PAGE_MSR_PFN_MASK) + sint * H.EVENT_FLAGS_BYTES,
                                       H.EVENT_FLAGS_BYTES)
            except GuestMemoryError:
                sief = -1
        ok = bool(p.profile.hypervisor and p.hypercall_msr & H.PAGE_MSR_ENABLE
                  and p._features_ebx & H.FeaturesEbx.SIGNAL_EVENTS and p.faults.rescind_at != "data")
        self.lib.hvr_set_synic(self.h, sief, syn.sint[sint], int(ok))

    def bridge(self, ch, reader, writer, signal_guest):
        """VmbusHost.bridge_factory: the channel's data moves here from now on, or (every relay slot taken)
        in Python as before."""
        try:
            return NativeBridge(self, ch, reader, writer)
        except RingError as e:
            self.log(f"native relay: {e}: relid {ch.relid} stays on the Python path")
            return HvSockBridge(ch.model_sock, reader, writer, signal_guest, self.log)

    def stats(self) -> dict[str, int]:
        out = self.ffi.new(f"uint64_t[{len(self.STATS)}]")
        self.lib.hvr_stats(self.h, out)
        return dict(zip(self.STATS, out))

    def stop(self) -> None:
        self.lib.hvr_stop(self.h)

    def close(self) -> None:
        if self.h is not None:
            self.lib.hvr_free(self.h)
            self.h = None
            os.close(self.note_r)
            os.close(self.note_w)


class NativeBridge:
    """HvSockBridge's place in a Channel when the relay moves the data: the model's poll leaves its socket
    alone (wants_read False, nothing buffered here); pump() has the relay move what can move (a SignalEvent
    the Python model answered: any other form than the relay's) and reports a ring the relay found broken
    as the RingError the VMBus host rescinds the channel for; close() takes the channel back."""

    to_host = b""

    def __init__(self, relay: NativeRelay, ch, reader, writer):
        self.relay, self.relid, self.sock = relay, ch.relid, ch.model_sock
        self.sock.setblocking(False)
        self.dead = False
        g2h, h2g = ring_offsets(reader), ring_offsets(writer)
        r = relay.lib.hvr_attach(relay.h, ch.relid, ch.connection_id, self.sock.fileno(), g2h, len(g2h), h2g,
                                 len(h2g), TO_HOST_LIMIT, FROM_HOST_LIMIT, packet_chunk(writer.size))
        if r:
            raise _error(r, f"relid {ch.relid}: attach")
        relay.log(f"native relay: relid {ch.relid} (connection {ch.connection_id:#x}) attached, control pages at "
                  f"{reader.ctrl:#x} (guest to host) and {writer.ctrl:#x} (host to guest)")

    def fileno(self) -> int:
        return self.sock.fileno()

    def wants_read(self) -> bool:
        return False

    def pump(self) -> bool:
        if self.dead:
            return False
        r = self.relay.lib.hvr_pump(self.relay.h, self.relid, self.relay._msg, 256)
        if r:
            raise RingError(f"{self.relay.ffi.string(self.relay._msg).decode()} (HVR {r})")
        return False

    def close(self) -> None:
        if self.dead:
            return
        self.dead = True
        self.relay.lib.hvr_detach(self.relay.h, self.relid)
        try:
            self.sock.close()
        except OSError:
            pass


__all__ = ["NativeMissing", "NativeRing", "NativeRelay", "NativeBridge", "load", "library_path"]
