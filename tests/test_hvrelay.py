"""The hvsim model's native hot path (build/hv/libhvrelay.so, wslx.hv.native).

1. Ring agreement: hvrelay.c's ring code against ring.py's HostReader/HostWriter (the reference), on the
   same ring states in two copies of one buffer: every return value and every byte of the buffers agree,
   through wrap-around, pending_send_sz crossings, non-contiguous pages and hostile indices/descriptors.
2. The relay thread without a VM: a fast SignalEvent posted in the request block is answered and the
   channel's ring data reaches the host socket; host data becomes a packet in the host-to-guest ring with
   the event flag set and the MSI-X eventfd raised; any other trap is forwarded untouched; a hostile ring
   stops the channel with a typed error and a BROKEN note.
"""
from __future__ import annotations

import os
import random
import select
import socket
import struct

import pytest

from wslx.hv import GuestMemory
from wslx.hv.errors import RingError
from wslx.hv.ring import CTRL, DESC, HostReader, HostWriter
from wslx.spec import hvsim as S
from wslx.spec import hyperv as H
from wslx.spec.vmbus import PIPE_MSG_DATA, PacketType

native = pytest.importorskip("wslx.hv.native")
try:
    native.load()
except native.NativeMissing as e:
    pytest.skip(f"native hot path not built: {e}", allow_module_level=True)

PAGE = H.PAGE_SIZE
U32 = struct.Struct("<I")
WAIT_S = 5.0


def _rings(kind, pfns, npages=24):
    """(python ring over buffer A, native ring over buffer B) for the same pages; B starts as a copy of A."""
    a = bytearray(npages * PAGE)
    b = bytearray(npages * PAGE)
    py = kind(GuestMemory(a), pfns, "test ring")
    return a, b, py, native.NativeRing(b, native.ring_offsets(py))


def _ctrl(buf, py, field, value=None):
    off = py._ctrl + CTRL[field]
    if value is None:
        return U32.unpack_from(buf, off)[0]
    U32.pack_into(buf, off, value)


def _both(fn_py, fn_c):
    """Run both; equal results, or both RingError."""
    try:
        want = ("ok", fn_py())
    except RingError:
        want = ("err",)
    try:
        got = ("ok", fn_c())
    except RingError:
        got = ("err",)
    assert got == want
    return want


PFN_LAYOUTS = {"contiguous": [3, 4, 5, 6, 7], "scattered": [10, 2, 17, 5, 8], "one-data-page": [1, 2]}


@pytest.mark.parametrize("layout", PFN_LAYOUTS)
def test_writer_agrees_byte_for_byte_through_wraparound(layout):
    a, b, py, c = _rings(HostWriter, PFN_LAYOUTS[layout])
    rnd = random.Random(layout)
    _ctrl(a, py, "feature_bits", 1)
    b[:] = a
    for step in range(600):
        n = rnd.choice([0, 1, 7, 8, 9, 100, rnd.randrange(0, py.size)])
        payload = bytes(rnd.randrange(256) for _ in range(n))
        tid, flags = rnd.randrange(1 << 64), rnd.randrange(1 << 16)
        r = _both(lambda: py.write_packet(PacketType.DATA_INBAND, payload, tid, flags),
                  lambda: c.write_packet(PacketType.DATA_INBAND, payload, tid, flags))
        if r == ("ok", None):
            _both(lambda: py.want_space(py.packet_size(n)), lambda: c.want_space(c.packet_size(n)))
        elif rnd.random() < 0.5:
            _both(py.clear_want, c.clear_want)
        assert a == b, f"step {step}: buffers differ"
        # the guest reads some of it: read_index moves on to a packet boundary or to write_index
        if rnd.random() < 0.6:
            w = _ctrl(a, py, "write_index")
            for buf in (a, b):
                _ctrl(buf, py, "read_index", w)
                _ctrl(buf, py, "interrupt_mask", step % 3 == 0)
    assert py.packet_size(5) == c.packet_size(5)


@pytest.mark.parametrize("layout", PFN_LAYOUTS)
def test_reader_agrees_byte_for_byte_through_wraparound(layout):
    a, b, py, c = _rings(HostReader, PFN_LAYOUTS[layout])
    guest = HostWriter(GuestMemory(a), PFN_LAYOUTS[layout], "guest's writer")   # writes what the guest would
    rnd = random.Random(layout + "r")
    for step in range(600):
        for _ in range(rnd.randrange(4)):
            guest.write_packet(rnd.choice([PacketType.DATA_INBAND, 11]), bytes(rnd.randrange(256) for _ in
                               range(rnd.randrange(0, 300))), rnd.randrange(1 << 64), rnd.randrange(1 << 16))
        _ctrl(a, py, "pending_send_sz", rnd.choice([0, 0, 64, py.size // 2, py.size - 8]))
        b[:] = a
        pkt = _both(py.peek, c.peek)
        assert pkt[0] == "ok"
        if pkt[1] is not None:
            nxt = pkt[1][4]
            _both(lambda: py.commit(nxt), lambda: c.commit(nxt))
        assert a == b, f"step {step}: buffers differ"


def test_reader_signals_a_writer_that_filled_the_ring_during_its_commit():
    """The lost wake-up, exactly: the host has read a packet's index; before it moves read_index the guest
    fills the ring, sets pending_send_sz and looks again (still full). The commit frees a packet, so the
    guest's next one fits: commit must say signal (free space from the write index read after read_index
    is out, as ring_buffer.c hv_pkt_iter_close does; the index read before said the ring was never short)."""
    pfns = PFN_LAYOUTS["contiguous"]
    mem = GuestMemory(bytearray(24 * PAGE))
    host = HostReader(mem, pfns, "host's reader")
    guest = HostWriter(mem, pfns, "guest's writer")        # writes what the guest would
    payload = bytes(3000)
    assert guest.write_packet(PacketType.DATA_INBAND, payload) is not None
    nxt = host.peek()[4]
    blocked = []

    def guest_fills_the_ring():
        while guest.write_packet(PacketType.DATA_INBAND, payload) is not None:
            pass
        guest.ctrl_set("pending_send_sz", guest.packet_size(len(payload)))
        blocked.append(guest.write_packet(PacketType.DATA_INBAND, payload) is None)

    set_ctrl = host.ctrl_set

    def racing_set(field, value):
        if field == "read_index":
            guest_fills_the_ring()
        set_ctrl(field, value)

    host.ctrl_set = racing_set
    assert host.commit(nxt) is True and blocked == [True]
    assert guest.write_packet(PacketType.DATA_INBAND, payload) is not None   # the room the signal is for


@pytest.mark.parametrize("seed", range(4))
def test_hostile_indices_and_descriptors_agree(seed):
    """Random control pages and data (indices out of range, unaligned, descriptors lying about lengths):
    the same packet or both a RingError; never a read outside the buffer."""
    rnd = random.Random(seed)
    seen = set()
    for _ in range(400):
        a, b, rp, rc = _rings(HostReader, PFN_LAYOUTS["scattered"])
        wp = HostWriter(GuestMemory(a), PFN_LAYOUTS["scattered"], "w")
        size = rp.size
        for o in rp._pages:
            a[o:o + PAGE] = bytes(rnd.randrange(256) for _ in range(PAGE)) if rnd.random() < 0.3 else a[o:o + PAGE]
        for field in ("write_index", "read_index"):
            _ctrl(a, rp, field, rnd.choice([0, 8, size - 8, size, size + 8, 0xFFFFFFF8, rnd.randrange(1 << 32),
                                            rnd.randrange(size // 8) * 8]))
        r0 = _ctrl(a, rp, "read_index")
        if r0 < size and r0 % 8 == 0 and rnd.random() < 0.7:   # a descriptor at read_index, maybe lying
            d = DESC.pack(rnd.choice([6, 11, 0]), rnd.choice([0, 1, 2, 3, 0xFFFF]), rnd.choice([0, 2, 3, 40, 0xFFFF]),
                          0, 0)
            wp._copy_in(r0, d)
        b[:] = a
        pkt = _both(rp.peek, rc.peek)
        seen.add("err" if pkt[0] == "err" else "empty" if pkt[1] is None else "packet")
        if pkt[0] == "ok" and pkt[1] is not None:
            _both(lambda: rp.commit(pkt[1][4]), lambda: rc.commit(pkt[1][4]))
        assert a == b
        # the writer on the same hostile control page
        a2, b2, wpy, wc = _rings(HostWriter, PFN_LAYOUTS["scattered"])
        a2[:] = a
        b2[:] = a
        n = rnd.randrange(0, 200)
        _both(lambda: wpy.write_packet(6, bytes(n)), lambda: wc.write_packet(6, bytes(n)))
        assert a2 == b2
    assert seen == {"err", "empty", "packet"}          # the states covered all three outcomes


def test_rings_outside_the_buffer_are_refused():
    buf = bytearray(4 * PAGE)
    with pytest.raises(RingError):
        native.NativeRing(buf, [0])                         # no data page
    with pytest.raises(RingError):
        native.NativeRing(buf, [0, 3 * PAGE + 1])           # a page past the end
    with pytest.raises(RingError):
        native.NativeRing(buf, [0, 1 << 62])


# -- the relay thread without a VM ---------------------------------------------------------------------
RAM_PAGES = 64
SIEF_PFN, G2H, H2G = 2, [10, 11, 12, 13], [20, 21, 22, 23]
SINT_VECTOR, MSIX_BASE = 0x32, 0x30
RELID, CONN = 5, 0x2005


@pytest.fixture
def relay(tmp_path):
    shm_fd = os.memfd_create("t-shm")
    os.ftruncate(shm_fd, S.SHM_SIZE)
    ram_path = tmp_path / "ram"
    ram_path.write_bytes(bytes(RAM_PAGES * PAGE))
    ram_fd = os.open(ram_path, os.O_RDWR)
    trap = os.eventfd(0, os.EFD_CLOEXEC | os.EFD_NONBLOCK)
    guest = [os.eventfd(0, os.EFD_CLOEXEC | os.EFD_NONBLOCK) for _ in range(S.MSIX_VECTORS)]
    import mmap
    shm = mmap.mmap(shm_fd, S.SHM_SIZE)
    ram = mmap.mmap(ram_fd, RAM_PAGES * PAGE)
    U32.pack_into(shm, S.OFF_MSIX_VECTOR_BASE, MSIX_BASE)
    U32.pack_into(shm, S.OFF_MSIX_VECTORS, S.MSIX_VECTORS)
    r = native.NativeRelay(shm_fd, S.SHM_SIZE, ram_fd, RAM_PAGES * PAGE, trap, guest, log=lambda s: None)
    r.lib.hvr_set_synic(r.h, SIEF_PFN * PAGE + H.EVENT_FLAGS_BYTES * 2, SINT_VECTOR, 1)
    host, model_end = socket.socketpair()
    mem = GuestMemory(ram)
    g2h_guest = HostWriter(mem, G2H, "guest writes g2h")
    h2g_guest = HostReader(mem, H2G, "guest reads h2g")

    class Ch:
        relid, connection_id, model_sock = RELID, CONN, model_end
    r.start()
    bridge = r.bridge(Ch, HostReader(mem, G2H, "g2h"), HostWriter(mem, H2G, "h2g"), None)
    env = dict(relay=r, shm=shm, ram=ram, trap=trap, guest=guest, host=host, g2h=g2h_guest, h2g=h2g_guest,
               bridge=bridge, seq=[0])
    try:
        yield env
    finally:
        r.stop()
        bridge.close()
        r.close()
        host.close()
        del mem, g2h_guest, h2g_guest
        for fd in [trap, *guest, ram_fd, shm_fd]:
            os.close(fd)


def _trap(env, op, a0, a1=0, a2=0) -> int:
    env["seq"][0] += 1
    seq = env["seq"][0]
    struct.pack_into("<I4Q", env["shm"], S.OFF_SEQ + 4, op, a0, a1, a2, 0)
    U32.pack_into(env["shm"], S.OFF_SEQ, seq)
    os.eventfd_write(env["trap"], 1)
    return seq


def _wait(fn, what):
    """Poll a condition the relay thread makes true, each look bounded by a select on its note pipe."""
    import time
    end = time.monotonic() + WAIT_S
    while time.monotonic() < end:
        if fn():
            return
        select.select([], [], [], 0.001)
    raise AssertionError(f"relay did not {what} within {WAIT_S} s")


SIGNAL = H.HvCall.SIGNAL_EVENT | H.HYPERCALL_FAST


def test_signal_event_answered_and_data_both_ways(relay):
    env = relay
    env["g2h"].write_packet(PacketType.DATA_INBAND, struct.pack("<II", PIPE_MSG_DATA, 5) + b"hello")
    seq = _trap(env, S.Op.HYPERCALL, SIGNAL, CONN)
    _wait(lambda: U32.unpack_from(env["shm"], S.OFF_DONE_SEQ)[0] == seq, "answer the SignalEvent")
    assert struct.unpack_from("<I4Q", env["shm"], S.OFF_DONE_SEQ + 4) == (0, 0, 0, 0, 0)
    env["host"].settimeout(WAIT_S)
    assert env["host"].recv(64) == b"hello"
    # host -> guest: a packet in the h2g ring, event flag relid set in SINT 2's area, MSI-X entry raised
    env["host"].sendall(b"world!")
    _wait(lambda: env["h2g"].available() > 0, "write the host's data into the ring")
    ptype, _, _, payload, nxt = env["h2g"].peek()
    assert (ptype, payload[8:14]) == (PacketType.DATA_INBAND, b"world!")
    assert struct.unpack_from("<II", payload) == (PIPE_MSG_DATA, 6)
    flags = env["ram"][SIEF_PFN * PAGE + 2 * H.EVENT_FLAGS_BYTES + RELID // 8]
    assert flags & (1 << RELID % 8)
    assert os.eventfd_read(env["guest"][SINT_VECTOR - MSIX_BASE]) >= 1
    st = env["relay"].stats()
    assert st["answered"] == 1 and st["bytes_to_host"] == 5 and st["bytes_to_guest"] == 6
    assert st["rescues"] == 0                    # every byte moved on an event


def test_the_safety_net_moves_and_counts_what_no_signal_moved(relay):
    """A guest packet with no SignalEvent (a lost wake-up): the relay's tick moves it after a whole tick
    without progress, counts a rescue and notes it for the model log."""
    env, logged = relay, []
    env["relay"].log = logged.append
    env["g2h"].write_packet(PacketType.DATA_INBAND, struct.pack("<II", PIPE_MSG_DATA, 4) + b"lost")
    env["host"].settimeout(WAIT_S)
    assert env["host"].recv(64) == b"lost"
    assert env["relay"].stats()["rescues"] == 1
    r, _, _ = select.select([env["relay"].note_r], [], [], WAIT_S)
    assert r and env["relay"].notes() == ([], False)
    assert logged == [f"native relay: relid {RELID}: the safety-net tick moved data no signal moved (a lost wake-up)"]


def test_other_traps_are_forwarded_untouched(relay):
    env = relay
    for op, a0, a1 in [(S.Op.RDMSR, 0x40000002, 0), (S.Op.HYPERCALL, H.HvCall.POST_MESSAGE, 0x1000),
                       (S.Op.HYPERCALL, SIGNAL, CONN + 1), (S.Op.HYPERCALL, SIGNAL | (1 << 17), CONN),
                       (S.Op.HYPERCALL, SIGNAL, CONN | (1 << 60))]:
        seq = _trap(env, op, a0, a1)
        r, _, _ = select.select([env["relay"].note_r], [], [], WAIT_S)
        assert r, "no note from the relay"
        seqs, broke = env["relay"].notes()
        assert seqs == [seq] and not broke
        assert U32.unpack_from(env["shm"], S.OFF_DONE_SEQ)[0] == seq - 1      # untouched: Python answers
        U32.pack_into(env["shm"], S.OFF_DONE_SEQ, seq)                       # as the Python model would
    assert env["relay"].stats()["forwarded"] == 5


def test_a_hostile_ring_stops_the_channel_with_a_typed_error(relay):
    env = relay
    g2h = env["g2h"]
    g2h.ctrl_set("write_index", g2h.size + 8)                  # beyond the data area
    seq = _trap(env, S.Op.HYPERCALL, SIGNAL, CONN)
    _wait(lambda: U32.unpack_from(env["shm"], S.OFF_DONE_SEQ)[0] == seq, "answer the SignalEvent")
    select.select([env["relay"].note_r], [], [], WAIT_S)
    assert env["relay"].notes() == ([], True)
    with pytest.raises(RingError, match="index outside the data area"):
        env["bridge"].pump()
    # the channel is stopped: its next SignalEvent is Python's (which rescinds it)
    seq = _trap(env, S.Op.HYPERCALL, SIGNAL, CONN)
    select.select([env["relay"].note_r], [], [], WAIT_S)
    assert env["relay"].notes() == ([seq], False)


def test_a_signal_python_answered_still_moves_the_data(relay):
    """A SignalEvent in a form the relay does not answer (memory form, say) is the Python model's; its
    service pass (bridge.pump) has the relay move the channel's data at once."""
    env = relay
    env["g2h"].write_packet(PacketType.DATA_INBAND, struct.pack("<II", PIPE_MSG_DATA, 3) + b"abc")
    assert env["bridge"].pump() is False
    env["host"].settimeout(WAIT_S)
    assert env["host"].recv(64) == b"abc"


def test_channels_past_the_relays_slots_stay_on_python(relay):
    from wslx.hv.hvsock import HvSockBridge
    env = relay
    mem = GuestMemory(env["ram"])
    made, socks = [], []
    try:
        for relid in range(100, 100 + 64):
            a, b = socket.socketpair()
            socks += [a, b]

            class Ch:
                pass
            Ch.relid, Ch.connection_id, Ch.model_sock = relid, 0x3000 + relid, b
            made.append(env["relay"].bridge(Ch, HostReader(mem, G2H, "g2h"), HostWriter(mem, H2G, "h2g"),
                                            lambda: None))
        kinds = [type(m).__name__ for m in made]
        assert kinds[:63] == ["NativeBridge"] * 63 and kinds[63] == HvSockBridge.__name__   # 64 slots, 1 taken
    finally:
        for m in made:
            m.close()
        for s in socks:
            s.close()
        del mem


def test_hostile_rings_and_the_relay_under_asan(tmp_path):
    """This file's other tests again against build/hv/asan/libhvrelay.so (ASan+UBSan, every report fatal):
    the hostile ring states and the relay thread never read or write outside what they were given."""
    import subprocess
    import sys
    from pathlib import Path
    from wslx import repo_root
    lib = repo_root() / "build" / "hv" / "asan" / "libhvrelay.so"
    if not lib.exists():
        pytest.skip(f"{lib} is not built (scons hvrelay)")
    preload = []
    for name in ("libasan.so", "libubsan.so"):
        out = subprocess.run(["gcc", f"-print-file-name={name}"], capture_output=True, text=True, timeout=30)
        if out.returncode or not Path(out.stdout.strip()).is_absolute():
            pytest.skip(f"gcc does not know where {name} is")
        preload.append(out.stdout.strip())
    env = dict(os.environ, LD_PRELOAD=" ".join(preload), ASAN_OPTIONS="detect_leaks=0:abort_on_error=1",
               UBSAN_OPTIONS="halt_on_error=1", **{native.LIBRARY_ENV: str(lib)})
    r = subprocess.run([sys.executable, "-m", "pytest", __file__, "-q", "-x", "-p", "no:cacheprovider",
                        "-k", "not under_asan"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert " passed" in r.stdout and "ERROR: AddressSanitizer" not in r.stderr
