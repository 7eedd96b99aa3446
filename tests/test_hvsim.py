"""--vmm hvsim: the real Track B ELF under QEMU beside the wslx.hv model (wslx.vmm.hvsim).

Without QEMU: the model process as an ivshmem server, driven by a Python stand-in for QEMU that speaks
the ivshmem protocol, writes trap requests into the shared block (wslx.spec.hvsim) and rings the
doorbell; guest RAM above 4 GiB lands at its q35 file offset.
With QEMU (vm): HELLO, PING, EXEC and the Portal over hv_sock in both profiles, the SynIC's interrupts
arrive as MSI-X, and no model or QEMU process outlives a hanging guest or a failing model."""
from __future__ import annotations

import array
import mmap
import os
import re
import select
import socket
import struct
import subprocess
import sys
import time
from pathlib import Path

import pytest

from wslx.spec import hvsim as S
from wslx.spec.hyperv import HYPERCALL_PAGE_CODE_INTEL, INTERFACE_SIGNATURE, CpuidLeaf, Msr
from wslx.vmm.hvsim import MODEL_MODULE, leftover_model_processes
from wslx.vmm.qemu import leftover_qemu_processes

vm = pytest.mark.vm
I64 = struct.Struct("<q")


# ---------------------------------------------------------------- the model without QEMU


class FakeQemu:
    """The ivshmem client side: receives version, peer id, the memory fd and the eventfds."""

    def __init__(self, sock_path: Path):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(str(sock_path))
        self.sock.settimeout(10)
        msgs = []
        for _ in range(3 + 2 * S.MSIX_VECTORS):
            fds = array.array("i")
            data, anc, _, _ = self.sock.recvmsg(8, socket.CMSG_SPACE(4))
            for level, typ, raw in anc:
                if level == socket.SOL_SOCKET and typ == socket.SCM_RIGHTS:
                    fds.frombytes(raw[:4])
            msgs.append((I64.unpack(data)[0], fds[0] if fds else None))
        self.msgs = msgs
        assert msgs[0] == (0, None), "protocol version 0, no fd"
        self.peer = msgs[1][0]
        assert msgs[1][1] is None
        assert msgs[2][0] == -1 and msgs[2][1] is not None, "-1 with the shared memory fd"
        self.shm = mmap.mmap(msgs[2][1], S.SHM_SIZE, mmap.MAP_SHARED)
        self.model_efd = [fd for peer, fd in msgs[3:3 + S.MSIX_VECTORS]]
        self.own_efd = [fd for peer, fd in msgs[3 + S.MSIX_VECTORS:]]
        assert {peer for peer, _ in msgs[3:3 + S.MSIX_VECTORS]} == {0}
        assert {peer for peer, _ in msgs[3 + S.MSIX_VECTORS:]} == {self.peer}
        self.seq = 0

    def block(self):
        return S.HVSIM_BLOCK.parse(bytes(self.shm[:S.HVSIM_BLOCK.sizeof()]))

    def trap(self, op: int, a0: int = 0, a1: int = 0, a2: int = 0, timeout: float = 10.0, tsc: int = 0):
        """What the kernel's platform layer does: request, seq last, doorbell, wait for done_seq."""
        self.seq += 1
        struct.pack_into("<I4Q", self.shm, S.OFF_SEQ + 4, op, a0, a1, a2, tsc)
        struct.pack_into("<I", self.shm, S.OFF_SEQ, self.seq)
        os.eventfd_write(self.model_efd[S.TRAP_DOORBELL_VECTOR], 1)
        end = time.monotonic() + timeout
        while struct.unpack_from("<I", self.shm, S.OFF_DONE_SEQ)[0] != self.seq:
            assert time.monotonic() < end, f"no answer to op {op}"
            time.sleep(0.0005)
        b = self.block()
        return b.fault, list(b.result)

    def close(self):
        self.sock.close()


@pytest.fixture
def model(tmp_path):
    """The model process on a 3 GiB sparse RAM file (RAM above 4 GiB exists), and a FakeQemu."""
    ram = tmp_path / "guest-ram"
    ram_size = 3 << 30
    with open(ram, "wb") as f:
        f.truncate(ram_size)
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1] / "host" / "python"))
    proc = subprocess.Popen([sys.executable, "-m", MODEL_MODULE, "--run-dir", str(tmp_path), "--ram-file", str(ram),
                             "--ram-size", str(ram_size), "--profile", "hyperv", "--vsock-path", str(tmp_path / "vsock")],
                            stdout=subprocess.PIPE, env=env)
    try:
        assert select.select([proc.stdout], [], [], 20)[0], "the model did not say ready"
        assert proc.stdout.readline().strip() == b"ready"
        q = FakeQemu(tmp_path / "ivshmem.sock")
        yield proc, q, ram, ram_size
        q.close()     # QEMU gone: the model ends by itself
        assert proc.wait(10) == 0, (tmp_path / "model.log").read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()


def test_model_serves_the_ivshmem_protocol_and_traps(model, tmp_path):
    proc, q, ram, ram_size = model
    b = q.block()
    assert (b.magic, b.version, b.model_peer) == (S.MAGIC, S.VERSION, 0)
    assert q.trap(S.Op.CPUID, CpuidLeaf.INTERFACE)[1][0] == INTERFACE_SIGNATURE   # "Hv#1"
    assert q.trap(S.Op.RDMSR, Msr.SVERSION) == (0, [1, 0, 0, 0])
    assert q.trap(S.Op.WRMSR, Msr.VP_INDEX, 5)[0] == 13                # read-only: #GP
    assert q.trap(S.Op.RDMSR, 0x40000fff)[0] == 13                     # unknown synthetic MSR
    assert q.trap(S.Op.HYPERCALL, 0x5C)[0] == 6                        # page not enabled: #UD
    assert q.trap(99)[0] == 6                                          # unknown op
    # the hypercall page above 4 GiB: q35 puts GPA 4 GiB + x at file offset lowmem (2 GiB for 3 GiB RAM) + x
    assert q.trap(S.Op.WRMSR, Msr.GUEST_OS_ID, 1 << 63)[0] == 0
    gpa = (1 << 32) + 0x3000
    assert q.trap(S.Op.WRMSR, Msr.HYPERCALL, gpa | 1)[0] == 0
    with open(ram, "rb") as f:
        f.seek(0x80000000 + 0x3000)
        assert f.read(len(HYPERCALL_PAGE_CODE_INTEL)) == HYPERCALL_PAGE_CODE_INTEL
    assert q.trap(S.Op.HYPERCALL, 0x7FF, 0, 0)[1][0] & 0xFFFF == 2      # unknown call code: INVALID_HYPERCALL_CODE


def test_reference_tsc_page_follows_the_guests_tsc(model):
    """Under TCG the guest's TSC is the host's minus a constant: the page the model writes must turn the
    guest's TSC into the model's reference time, at the host TSC's rate, whatever the constant."""
    from wslx.vmm.hvsim_model import _host_rdtsc
    rdtsc = _host_rdtsc()
    if rdtsc is None:
        pytest.skip("no host TSC to read here (not x86-64)")
    proc, q, ram, ram_size = model
    # behind the host's by a large constant, but never below zero (a host booted minutes ago has a small TSC)
    behind = min(10**12, rdtsc() // 2)
    guest_tsc = lambda: rdtsc() - behind                                   # noqa: E731 (the guest's clock)
    t0, c0 = time.monotonic_ns(), rdtsc()
    for _ in range(50):      # the offset is the least (host - guest) TSC over requests: give it a few
        q.trap(S.Op.CPUID, CpuidLeaf.INTERFACE, tsc=guest_tsc())
    for msr, value in ((Msr.GUEST_OS_ID, 1 << 63), (Msr.REFERENCE_TSC, 0x20000 | 1)):
        time.sleep(0.05)
        assert q.trap(S.Op.WRMSR, msr, value, tsc=guest_tsc())[0] == 0
    seq, _, scale, offset = struct.unpack_from("<IIQq", _read_ram(ram, 0x20000, 24))
    assert seq != 0
    host_hz = (rdtsc() - c0) * 1e9 / (time.monotonic_ns() - t0)
    page_hz = 10**7 * 2**64 / scale                                        # 100 ns ticks per TSC tick, inverted
    assert abs(page_hz / host_hz - 1) < 0.01, (page_hz, host_hz)
    ref = ((guest_tsc() * scale) >> 64) + offset                           # what the guest computes
    ref_count = q.trap(S.Op.RDMSR, Msr.TIME_REF_COUNT)[1][0]               # what the model says after it
    # read after the guest's, within one trap's latency (20 ms on a loaded host), give or take the offset's
    # error (the quickest of the requests' latencies, 0.5 ms on a loaded host)
    assert -5_000 <= ref_count - ref < 200_000, (ref, ref_count)


def _read_ram(ram: Path, offset: int, n: int) -> bytes:
    with open(ram, "rb") as f:
        f.seek(offset)
        return f.read(n)


def test_model_raises_interrupts_on_the_guests_msix_entries(model):
    """A SynIC message for a SINT raises MSI-X entry (vector - msix_vector_base): the eventfd QEMU got."""
    proc, q, ram, ram_size = model
    struct.pack_into("<II", q.shm, S.OFF_MSIX_VECTOR_BASE, 0x30, S.MSIX_VECTORS)  # what drivers/hvsim.c writes
    for msr, value in ((Msr.GUEST_OS_ID, 1 << 63), (Msr.SIMP, 0x10000 | 1), (Msr.SIEFP, 0x11000 | 1),
                       (Msr.SINT0 + 3, 0x31), (Msr.SCONTROL, 1)):
        assert q.trap(S.Op.WRMSR, msr, value)[0] == 0
    # a one-shot stimer0 on SINT 3 due now: its expiry message arrives as vector 0x31 = entry 1
    assert q.trap(S.Op.WRMSR, Msr.STIMER0_COUNT, 1)[0] == 0
    assert q.trap(S.Op.WRMSR, Msr.STIMER0_CONFIG, 1 | 3 << 16)[0] == 0
    assert select.select([q.own_efd[1]], [], [], 5)[0], "no MSI-X for the timer's SINT vector"
    assert os.eventfd_read(q.own_efd[1]) >= 1


def test_model_wakes_a_guest_halted_on_its_answer(model):
    """ANSWER_IRQ: the block offers it; an answer to a request whose seq the guest put in wait_seq (it halted)
    raises MSI-X entry ANSWER_MSIX_ENTRY after done_seq; an answer nobody waits for raises nothing, and neither
    does a wait_seq naming another request."""
    proc, q, ram, ram_size = model
    assert q.block().features & S.FEATURE_ANSWER_IRQ
    struct.pack_into("<II", q.shm, S.OFF_MSIX_VECTOR_BASE, 0x30, S.MSIX_VECTORS)  # what drivers/hvsim.c writes
    efd = q.own_efd[S.ANSWER_MSIX_ENTRY]
    assert q.trap(S.Op.RDMSR, Msr.SVERSION)[0] == 0                   # wait_seq 0: spinning guest
    struct.pack_into("<I", q.shm, S.OFF_WAIT_SEQ, q.seq + 7)          # names a later request
    assert q.trap(S.Op.RDMSR, Msr.SVERSION)[0] == 0
    assert not select.select([efd], [], [], 0.2)[0], "an answer nobody halted for raised the answer entry"
    struct.pack_into("<I", q.shm, S.OFF_WAIT_SEQ, q.seq + 1)          # the guest halts for the next one
    assert q.trap(S.Op.RDMSR, Msr.SVERSION) == (0, [1, 0, 0, 0])
    assert select.select([efd], [], [], 5)[0], "no MSI-X for the guest halted on its answer"
    assert os.eventfd_read(efd) == 1
    assert q.block().wait_seq == q.seq                                # the guest clears it, not the model


# ---------------------------------------------------------------- QEMU + model


@pytest.fixture(scope="module")
def built(repo_root):
    r = subprocess.run([sys.executable, "-m", "SCons", "-Q", "trackb"], cwd=repo_root, capture_output=True, text=True)
    if r.returncode != 0:
        pytest.fail(f"scons trackb failed:\n{r.stdout}\n{r.stderr}")
    return repo_root / "images" / "trackb-kernel.elf"


def _no_leftovers(run_dir: Path):
    assert not [p for p in leftover_qemu_processes() if str(run_dir) in p[1]]
    assert not leftover_model_processes(str(run_dir))


@vm
@pytest.mark.parametrize("native", [True, False], ids=["native", "python"])
@pytest.mark.parametrize("profile", ["hyperv", "openvmm-kvm"])
def test_hello_exec_and_portal_over_hvsock(built, profile, native, tmp_path):
    """Both model paths: the native hot path (SignalEvent and ring data in the relay thread) and Python."""
    from test_trackb_agent import check_portal_rpcs
    from wslx.guests.trackb_hvsim import TrackBHvsimGuest
    from wslx.hv import native as hv_native
    from wslx.portal import Portal
    from wslx.portal.trackb import TrackBPortalService, trackb_portal_kw
    if native and not hv_native.library_path().exists():
        pytest.skip(f"{hv_native.library_path()} is not built (scons hvrelay)")
    with Portal.create(tmp_path / "portal.img", 16 << 20) as p, \
            TrackBHvsimGuest(built, hv_profile=profile, build=False, log=lambda s: None, native=native,
                             **trackb_portal_kw(p)) as g:
        assert g.hello.name.startswith("wslx-trackb")
        assert g.client.ping(b"over VMBus", timeout=10) == b"over VMBus"
        r = g.client.run(["echo", "hv_sock"], timeout=30)
        assert r.returncode == 0 and r.stdout == b"hv_sock\n"
        with TrackBPortalService(g, p) as svc:           # the Portal still works over virtio-pmem beside it
            check_portal_rpcs(p, svc)
        console = g.vm.read_console()
        assert "hvsim: model at" in console and "env: control channel hv_sock port 50010" in console, console
        assert ("reference TSC page" in console) == (profile == "hyperv"), console
        assert "trap:" not in console and "panic:" not in console, console[-2000:]
        run_dir = g.vm.run_dir
        assert g.shutdown() is not None
    model_log = (run_dir / "model.log").read_text()
    assert "vmbus: connected" in model_log and "by vector 0x30:" in model_log, model_log[-2000:]   # SynIC MSI-X
    if native:        # the relay answered SignalEvents and moved the AgentX bytes, and ended with the model
        m = re.search(r"native relay: answered (\d+), forwarded (\d+), .* bytes_to_host (\d+), bytes_to_guest (\d+)",
                      model_log)
        assert m and all(int(x) > 0 for x in m.groups()), model_log[-2000:]
    else:
        assert "hot path in Python (--no-native)" in model_log and "native relay" not in model_log
    _no_leftovers(run_dir)


@vm
def test_a_slow_model_wakes_the_halted_guest(built, tmp_path):
    """Every trap answered 300 us late (past the guest's ANSWER_SPIN_NS): the guest halts with wait_seq set and
    the model's answer MSI-X wakes it; it boots, says HELLO and answers PING and EXEC over hv_sock, and the
    model counts the answers it woke the guest for."""
    import re
    from wslx.guests.trackb_hvsim import TrackBHvsimGuest
    run_dir = tmp_path / "run"
    with TrackBHvsimGuest(built, build=False, log=lambda s: None, model_answer_delay_us=300, hello_timeout=120,
                          timeout=60, run_dir=run_dir) as g:
        assert g.client.ping(b"slow model", timeout=30) == b"slow model"
        assert g.client.run(["echo", "woken"], timeout=30).stdout == b"woken\n"
        g.shutdown()
    m = re.search(r"model ends: \d+ trap requests \((\d+) answers woke a halted guest\)",
                  (run_dir / "model.log").read_text())
    assert m and int(m.group(1)) > 0, (run_dir / "model.log").read_text()[-2000:]
    _no_leftovers(run_dir)


@vm
def test_a_failing_model_ends_everything(built, tmp_path):
    """The model raises at its 12th trap request (VMBus bring-up): the guest's bounded spin ends in a panic naming the
    unanswered op, the host sees a typed error, and neither QEMU nor the model is left running."""
    from wslx.guests.trackb_hvsim import TrackBHvsimGuest
    from wslx.vmm.errors import VMError
    run_dir = tmp_path / "run"
    with pytest.raises(VMError) as ei:
        with TrackBHvsimGuest(built, build=False, log=lambda s: None, model_raise_after=12, hello_timeout=30,
                              run_dir=run_dir):
            pass
    text = str(ei.value)
    assert "the model did not answer" in text or "hvsim model exited" in text, text
    assert "fails on purpose" in (run_dir / "model.log").read_text()
    _no_leftovers(run_dir)


@vm
def test_a_hanging_guest_ends_everything(built, tmp_path):
    """A guest that stops (QMP stop: the vCPU never runs again) never dials hv_sock: the wait times out with
    a typed error and the machine and model are ended."""
    from wslx.spec.vmbus import AGENTX_HVSOCK_PORT
    from wslx.vmm.errors import ChannelTimeout
    from wslx.vmm.hvsim import HvsimMachine
    run_dir = tmp_path / "run"
    m = HvsimMachine(built, None, run_dir=run_dir, log=lambda s: None)
    m.hvsock_listen(AGENTX_HVSOCK_PORT)
    with pytest.raises(ChannelTimeout):
        with m:
            m.qmp.cmd("stop")
            m.hvsock_accept(AGENTX_HVSOCK_PORT, timeout=3)
    assert m.model.returncode is not None
    _no_leftovers(run_dir)


# ---------------------------------------------------------------- the CLI

WSLX = [sys.executable, "-m", "wslx.cli"]


def _wslx(*args, timeout=600, env=None):
    return subprocess.run(WSLX + list(args), capture_output=True, text=True, timeout=timeout, env=env)


def test_hvsim_is_for_trackb_only():
    r = _wslx("boot", "linux", "--vmm", "hvsim")
    assert r.returncode == 2 and "trackb guest only" in r.stderr and "Traceback" not in r.stderr
    r = _wslx("conformance", "--target", "reference", "--vmm", "hvsim")
    assert r.returncode == 2 and "--target trackb only" in r.stderr


@vm
def test_cli_boot_and_run_under_hvsim(built):
    r = _wslx("boot", "trackb", "--vmm", "hvsim", "--hv-profile", "openvmm-kvm")
    assert r.returncode == 0, r.stderr[-3000:]
    assert "agent:        wslx-trackb-agent" in r.stdout
    r = _wslx("run", "trackb", "--vmm", "hvsim", "--", "echo", "over", "hv_sock")
    assert r.returncode == 0 and r.stdout == "over hv_sock\n", r.stderr[-3000:]


@vm
@pytest.mark.parametrize("profile", ["hyperv", "openvmm-kvm"])
def test_conformance_passes_under_hvsim(built, profile, tmp_path):
    """The whole suite over hv_sock (the native relay moves the data), and no wake-up lost on the way: the
    relay's safety-net tick moved nothing the signals should have (its rescues counter, in the model log)."""
    r = _wslx("conformance", "--target", "trackb", "--vmm", "hvsim", "--hv-profile", profile,
              env=dict(os.environ, WSLX_RUN_DIR=str(tmp_path)))
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert "0 failed, 0 errors" in r.stdout
    logs = [p.read_text() for p in tmp_path.glob("*/model.log")]
    rescues = [int(n) for log in logs for n in re.findall(r"native relay: answered .* rescues (\d+)", log)]
    assert rescues and rescues == [0] * len(rescues), [log[-2000:] for log in logs]


@vm
def test_bench_hv_writes_its_keys_and_a_plot(built, tmp_path):
    """One short run of `wslx bench hv`: every key the issue names, plausible values, the same-run ratio."""
    import json
    r = _wslx("bench", "hv", "--out", str(tmp_path), "--runs", "1", "--traps", "300", "--seconds", "0.5",
              "--bulk-mib", "1")
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    doc = json.loads((tmp_path / "hv.json").read_text())
    m = doc["median"]
    for key in ("trap_rtt_us", "hypercall_rtt_us", "hvsock_roundtrips_per_s", "virtio_console_roundtrips_per_s",
                "hvsock_bulk_mb_per_s", "virtio_console_bulk_mb_per_s", "stimer_late_us_p50", "stimer_late_us_p99"):
        assert key in m and m[key] >= 0, key
    assert 0 < m["trap_rtt_us"] < 10_000 and m["hvsock_roundtrips_per_s"] > 0 and m["stimer_ticks"] > 0
    assert m["stimer_late_us_p50"] <= m["stimer_late_us_p99"] <= 1000     # within one 1 ms period by definition
    assert abs(m["hvsock_vs_virtio_console_roundtrips"]
               - m["hvsock_roundtrips_per_s"] / m["virtio_console_roundtrips_per_s"]) < 1e-9
    if m["hvsock_native"]:        # the same run on the model's Python path beside it (--native-ab)
        assert m["hvsock_python_roundtrips_per_s"] > 0 and m["model_cpu_us_per_roundtrip_python"] > 0
        assert 0 < m["trap_rtt_us_python"] < 10_000
    assert (tmp_path / "hv.png").stat().st_size > 1000
