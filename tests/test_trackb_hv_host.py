"""Track B's Hyper-V code in-process: guest/trackb-kernel/hv/ (and the agent) built for the host under
ASan/UBSan (build/trackb/trackb-hv-host), its platform layer's hypervisor calls served by the wslx.hv model,
guest memory a buffer both share (wslx.conformance.trackb_hv_host). Under each profile the C code must detect
what is offered and pick its path, reach AgentX over hv_sock, keep its periodic stimer on the programmed
virtual times, and survive every fault knob of the model; a fuzzer throws mutated VMBus messages and ring
contents at the C parsers."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest

from wslx.agentx.client import AgentClient
from wslx.conformance.runner import run_suite
from wslx.conformance.targets import TARGETS
from wslx.conformance.trackb_hv_host import HvHostHarness
from wslx.hv import PROFILES, Faults
from wslx.spec.hyperv import Msr
from wslx.spec.gemini import Port
from wslx.spec.portal import RingId
from wslx.spec.vmbus import AGENTX_HVSOCK_PORT, Version

pytestmark = pytest.mark.skipif(shutil.which("gcc") is None, reason="needs host gcc")
HV_PROFILES = ["hyperv", "openvmm-kvm"]
TICK = 10_000                                   # hv/stimer.h STIMER_TICK_100NS: 1 ms
FUZZ_ITERATIONS = 100_000


@pytest.fixture(scope="session")
def binary(repo_root):
    r = subprocess.run([sys.executable, "-m", "SCons", "-Q", "trackb-hv-host"], cwd=repo_root,
                       capture_output=True, text=True)
    assert r.returncode == 0, f"scons trackb-hv-host failed:\n{r.stdout}\n{r.stderr}"
    return repo_root / "build" / "trackb" / "trackb-hv-host"


def boot(binary, profile="hyperv", **kw) -> dict:
    """Run the C code's bring-up against the model; its report, after checking it ended cleanly."""
    with HvHostHarness(profile, mode="boot", binary=binary, **kw) as h:
        rc = h.wait(60)
        assert h.error is None, f"model side raised {h.error!r}"
        assert rc == 0, f"trackb-hv-host exit {rc} (ASan/UBSan exit 99)\n{h.log_tail()}"
        r = dict(h.report)
        r["log"] = h.log_tail(60)
        r["eom_writes"] = h.msr_writes.get(Msr.EOM, 0)
        r["injected"] = list(h.partition.injected)
        return r


@pytest.mark.parametrize("profile", ["hyperv", "openvmm-kvm", "none"])
def test_detects_what_the_profile_offers_and_picks_its_path(binary, profile):
    p = PROFILES[profile]
    r = boot(binary, profile)
    assert r["present"] == str(int(p.hypervisor))
    if not p.hypervisor:                        # no hypervisor: nothing of hv/ runs, virtio/COM2 stay
        assert r["vmbus_connected"] == "0" and r["hvsock_open"] == "0" and r["irq_mode"] == "0"
        return
    assert r["ref_tsc"] == str(int(p.reference_tsc_page)), r["log"]
    assert r["stimer_direct"] == str(int(p.direct_mode_timers)), r["log"]
    assert r["partition_id"] == (f"1:{p.partition_id:x}" if p.partition_id_call else "0:0")
    assert r["irq_mode"] == "1" and int(r["interrupts"]) > 0    # SynIC messages came as interrupts
    assert r["vmbus_connected"] == "1" and int(r["vmbus_version"], 16) == Version.WIN10_V5_3
    assert r["msg_conn_id"] == str(p.message_connection_id)
    assert r["hvsock_open"] == "1" and r["hvsock_connects"] == "1"
    assert r["bad_messages"] == "0" and r["unknown_messages"] == "0"
    assert r["unload"] == "0"                   # Unload answered by UnloadComplete


@pytest.mark.parametrize("profile", HV_PROFILES)
def test_polling_fallback_reaches_hvsock_without_interrupts(binary, profile):
    r = boot(binary, profile, poll=True)
    assert r["irq_mode"] == "0" and r["stimer_direct"] == "0"    # direct mode needs interrupts
    assert r["hvsock_open"] == "1"
    assert r["injected"] == [] and r["interrupts"] == "0"       # SINTs in polling mode: nothing injected


@pytest.mark.parametrize("profile,poll", [("hyperv", False), ("openvmm-kvm", False), ("hyperv", True)])
def test_periodic_stimer_delivers_at_the_programmed_virtual_times(binary, profile, poll):
    r = boot(binary, profile, poll=poll, ticks=8)
    times = [int(t) for t in r["stimer_expirations"].split(",")]
    assert len(times) == 8 and r["stimer_period"] == str(TICK)
    steps = [b - a for a, b in zip(times, times[1:])]
    if r["stimer_direct"] == "1":
        # direct mode has no message: the ISR reads the reference TSC page, whose scale rounds down by <= 1 tick
        assert all(abs(s - TICK) <= 1 for s in steps), times
    else:
        assert steps == [TICK] * 7, times      # message mode: the expiration times the model stamped


@pytest.mark.parametrize("profile", HV_PROFILES)
def test_hello_and_ping_over_hvsock(binary, profile):
    with HvHostHarness(profile, mode="agent", binary=binary) as h:
        c = AgentClient(h.accept(20), default_timeout=20, name="hv")
        try:
            assert c.wait_hello().agent_kind is not None
            assert c.ping(b"x" * 40_000) == b"x" * 40_000          # several packets, ring wrap
        finally:
            c.close()
        assert h.error is None


def test_big_rings_need_gpadl_body_messages(binary):
    """17 pages per ring = 34 pfns: 26 in the GpadlHeader, 8 in a GpadlBody; the model assembles them and
    the stream works across the bigger rings."""
    with HvHostHarness("hyperv", mode="agent", binary=binary, ring_pages=17) as h:
        c = AgentClient(h.accept(20), default_timeout=20, name="hv")
        try:
            c.wait_hello()
            assert c.ping(b"y" * 60_000) == b"y" * 60_000
        finally:
            c.close()
        assert h.error is None
        # 34 pfns cannot fit the header's 26: the GPADL completed only because the body came
        pfns = [len(r[2]) for g in h.partition.vmbus.gpadls.values() if g.complete for r in g.ranges]
        assert pfns == [34], pfns


@pytest.mark.parametrize("profile", HV_PROFILES)
def test_host_initiated_offer_is_accepted(binary, profile):
    """No host listener: the guest's TlConnectRequest is refused (it backs off and retries); the host
    connects to the guest's AgentX port instead and the agent answers on that channel."""
    with HvHostHarness(profile, mode="agent", binary=binary, listen=False) as h:
        c = AgentClient(h.partition.hvsock_connect(AGENTX_HVSOCK_PORT), default_timeout=20, name="hv")
        try:
            c.wait_hello()
            assert c.ping(b"from the host") == b"from the host"
        finally:
            c.close()
        assert h.error is None


@pytest.mark.parametrize("profile", HV_PROFILES)
def test_doorbell_ports_open_beside_agentx_and_carry_bytes(binary, profile):
    """--aux-ports: the kernel's hvsock_aux dials Gemini's SIGNAL and UPCALL ports (two more channels,
    2-page rings) beside AgentX's; EVENT arrives as one byte on SIGNAL, and the UPCALL bytes the host
    sends are all counted by the drains until the host closes that stream (then drain says -1)."""
    with HvHostHarness(profile, mode="boot", binary=binary, doorbell_ports=True) as h:
        sig = h.doorbells[Port.SIGNAL].accept(20)
        upc = h.doorbells[Port.UPCALL].accept(20)
        sig.settimeout(20)
        assert sig.recv(16) == bytes([RingId.EVENT])
        with h.partition._lock:                      # while open (unload tears the GPADLs down)
            rings = sorted(len(rng[2]) for g in h.partition.vmbus.gpadls.values() if g.complete for rng in g.ranges)
        assert rings.count(4) == 2 and len(rings) == 3, rings   # 2 pages a direction for each doorbell channel
        upc.sendall(bytes([RingId.UPCALL]) * 3)
        upc.sendall(bytes([RingId.UPCALL]) * 2)
        upc.close()
        sig.close()
        assert h.wait() == 0, h.log_tail()
    assert h.error is None
    r = h.report
    assert (r["aux_open"], r["aux_signal_sent"], r["aux_upcall_heard"], r["aux_bad_packets"]) == ("1,1", "1", "5", "0"), r
    assert r["hvsock_open"] == "1" and r["unload"] == "0"


def test_a_hostile_doorbell_ring_ends_that_stream_only(binary):
    """The host's first ring write (the UPCALL bytes: in boot mode AgentX carries nothing) publishes an
    impossible write index: the kernel counts nothing from it, drops that stream (drain then says -1:
    poll instead) and neither reads out of bounds (ASan) nor loses AgentX's stream or VMBus."""
    with HvHostHarness("hyperv", mode="boot", binary=binary, doorbell_ports=True,
                       faults=Faults(corrupt_ring_indices=True)) as h:
        sig = h.doorbells[Port.SIGNAL].accept(20)
        upc = h.doorbells[Port.UPCALL].accept(20)
        upc.sendall(bytes([RingId.UPCALL]) * 4)
        assert h.wait() == 0, h.log_tail()
        log = h.log_tail(200)
        sig.close(), upc.close()
    r = h.report
    assert (r["aux_open"], r["aux_upcall_heard"], r["hvsock_open"], r["vmbus_connected"]) == ("1,1", "0", "1", "1"), r
    assert f"port {int(Port.UPCALL)} stream closed (impossible ring index or packet)" in log, log


def test_ring_hand_shake_interleavings_lose_no_wake_up(repo_root, generated, tmp_path):
    """tests/c/hv_ring_race.c: the guest's vmbus_ring.c and the relay's ring code (hvrelay.c) on one ring,
    the host's steps run inside the guest's barriers (ASan/UBSan). Host-to-guest: the host fills the ring
    and sets pending_send_sz while the guest is mid-read; the read frees room, so the guest signals (it
    did not when it judged by the write index it began with: the host then waited on an empty ring).
    Guest-to-host: the host drains the ring between the guest's pending_send_sz and its second look;
    the second look writes."""
    exe = tmp_path / "hv_ring_race"
    subprocess.run(["gcc", "-std=gnu11", "-O1", "-g", "-Wall", "-Wextra", "-Werror", "-fsanitize=address,undefined",
                    "-fno-sanitize-recover=undefined", "-pthread", f"-I{generated}",
                    f"-I{repo_root / 'guest/trackb-kernel'}", f"-I{repo_root / 'host/python/wslx/hv'}",
                    str(repo_root / "tests/c/hv_ring_race.c"), str(repo_root / "guest/trackb-kernel/hv/vmbus_ring.c"),
                    str(repo_root / "guest/trackb-kernel/hv/hv_parse.c"),
                    str(repo_root / "host/python/wslx/hv/hvrelay.c"), "-o", str(exe)], check=True)
    r = subprocess.run([str(exe)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    got = dict(line.split("=", 1) for line in r.stdout.split())
    assert got["reader_host_blocked"] == "1" and int(got["reader_read"]) > 0, got
    assert got["reader_signal"] == "1" and got["reader_host_write_after"] == "1", got
    assert int(got["reader_drain_signals"]) >= 1, got
    assert got["writer_wrote"] == "1", got


@pytest.mark.parametrize("profile", HV_PROFILES)
def test_conformance_suite_over_hvsock(binary, profile):
    with TARGETS["trackb-hv-host"](timeout=20, hv_profile=profile) as t:
        report = run_suite(t, timeout=20, log=lambda s: None)
    assert report.ok, [(c.name, c.status, c.message) for c in report.results if c.status not in ("pass", "skip")]
    passed = {c.name for c in report.results if c.status == "pass"}
    assert "reconnect_after_host_disconnect" in passed and len(passed) >= 40


def test_conformance_cli_says_no_hypervisor_under_none(repo_root, binary):
    r = subprocess.run([sys.executable, "-m", "wslx.cli", "conformance", "--target", "trackb-hv-host", "--hv-profile",
                        "none", "--timeout", "5"], cwd=repo_root, capture_output=True, text=True, timeout=60)
    assert r.returncode == 1
    assert "opened no hv_sock connection" in r.stderr and "Traceback" not in r.stderr


# Each knob: the C code logs, fails that channel (or VMBus) cleanly or recovers, never hangs or reads out of
# bounds (ASan/UBSan abort with exit 99; the harness's wait is bounded).
BOOT_KNOBS = {
    "malformed": (dict(malformed_messages=True), dict(vmbus_connected="0", bad_messages=">0")),
    "oversize": (dict(oversize_messages=True), dict(vmbus_connected="0", bad_messages=">0")),
    "unknown": (dict(unknown_message_types=True), dict(hvsock_open="1", unknown_messages=">0", eom_writes=">0")),
    "rescind-offer": (dict(rescind_at="offer"), dict(hvsock_open="1", rescinds=">0")),
    "rescind-gpadl": (dict(rescind_at="gpadl"), dict(hvsock_open="1", rescinds=">0")),
    "rescind-open": (dict(rescind_at="open"), dict(hvsock_open="1", rescinds=">0")),
    "insufficient-buffers": (dict(insufficient_buffers=20), dict(hvsock_open="1", post_retries="20")),
    "insufficient-buffers-storm": (dict(insufficient_buffers=100_000), dict(vmbus_connected="0", post_failures=">0")),
    "never-answers-initiate-contact": (dict(ignore_initiate_contact=True), dict(vmbus_connected="0")),
}


@pytest.mark.parametrize("knob", sorted(BOOT_KNOBS))
def test_fault_knob_is_survived_at_bring_up(binary, knob):
    faults, want = BOOT_KNOBS[knob]
    r = boot(binary, "hyperv", faults=Faults(**faults))
    for key, value in want.items():
        if value == ">0":                       # (eom_writes: the queued message behind each one needed EOM)
            assert int(r[key]) > 0, (key, r["log"])
        else:
            assert r[key] == value, (key, r["log"])


@pytest.mark.parametrize("faults", [dict(rescind_at="data"), dict(corrupt_ring_indices=True)],
                         ids=["rescind-data", "corrupt-ring-indices"])
def test_fault_knob_on_an_open_stream_is_survived_by_reconnecting(binary, faults):
    """Once data flows, a rescind or impossible ring index ends that stream: the agent closes it and
    dials the port again, and a new host gets HELLO and answers."""
    with HvHostHarness("hyperv", mode="agent", binary=binary, faults=Faults(**faults)) as h:
        first = AgentClient(h.accept(20), default_timeout=5, name="hv", negotiate=False)  # PING is the first data
        try:
            first.wait_hello()
            try:
                first.ping(b"hello")
            except Exception:
                pass                            # the stream this knob broke
        finally:
            first.close()
        h.partition.faults.rescind_at = None
        h.partition.faults.corrupt_ring_indices = False
        second = AgentClient(h.accept(20), default_timeout=20, name="hv2")
        try:
            second.wait_hello()
            assert second.ping(b"again") == b"again"
        finally:
            second.close()
        assert h.error is None
        assert "stream closed" in h.log_tail(80)


def test_fuzzed_vmbus_messages_and_rings_under_asan(repo_root, tmp_path):
    exe = tmp_path / "hv_fuzz"
    src = [repo_root / "tests/c/hv_fuzz.c"] + [repo_root / "guest/trackb-kernel" / f for f in
                                               ("hv/hv_parse.c", "hv/vmbus_ring.c", "hv/vmbus_client.c", "hv/stimer.c",
                                                "kernel/errno.c", "kernel/pmm_zeroed.c")]
    cc = ["gcc", "-std=gnu11", "-O1", "-g", "-Wall", "-Wextra", "-Werror", "-fsanitize=address,undefined",
          "-fno-sanitize-recover=undefined", f"-I{repo_root}/build/gen", f"-I{repo_root}/guest/trackb-kernel",
          *map(str, src), "-o", str(exe)]
    subprocess.run(cc, check=True)
    # detect_leaks=0: pages of a GPADL the host never tore down are kept on purpose (hv_fuzz.c)
    r = subprocess.run([str(exe), str(FUZZ_ITERATIONS), "0x5eed"], capture_output=True, text=True, timeout=300,
                       env={**os.environ, "ASAN_OPTIONS": "detect_leaks=0"})
    assert r.returncode == 0, r.stderr[-3000:]
    counts = dict(kv.split("=") for kv in r.stdout.split())
    assert int(counts["iterations"]) == FUZZ_ITERATIONS
    assert int(counts["parsed_ok"]) > 0 and int(counts["rejected"]) > 0   # both sides of every check were taken
    assert int(counts["client_messages"]) > FUZZ_ITERATIONS and int(counts["opens"]) > 0   # the state machine ran


def test_hv_code_reaches_the_hypervisor_only_through_platform_h(repo_root):
    """hv/ has no inline assembly and never calls the CPU's MSR/CPUID functions directly: every hypervisor
    access is hv_cpuid/hv_rdmsr/hv_wrmsr/hv_hypercall_page_call, so the same code runs natively, against the
    model here, and through a trap path beside QEMU. It includes nothing of the agent or the drivers, and
    its parsers (hv_parse.c) nothing but their header, the errno set and the generated headers."""
    import re
    hv = repo_root / "guest" / "trackb-kernel" / "hv"
    sources = sorted(hv.glob("*.[ch]"))
    assert len(sources) >= 15
    for f in sources:
        text = f.read_text()
        assert "__asm__" not in text and "asm(" not in text, f.name
        assert not re.search(r"\bcpu_(rdmsr|wrmsr|cpuid)\b", text), f.name
        includes = set(re.findall(r'^\s*#\s*include\s+"([^"]+)"', text, re.M))
        assert not {i for i in includes if i.startswith(("agent/", "drivers/"))}, (f.name, includes)
    parse_includes = set(re.findall(r'^\s*#\s*include\s+"([^"]+)"', (hv / "hv_parse.c").read_text(), re.M))
    assert parse_includes <= {"hv/hv_parse.h", "kernel/errno.h", "kernel/klib.h"}, parse_includes


@pytest.mark.vm
def test_interrupt_path_runs_under_qemu(repo_root, tmp_path):
    """QEMU has no Hyper-V, so the SynIC never interrupts there; trackb.irqtest sends a self-IPI instead,
    through the same LAPIC setup, IDT gate, irq_vec stub, handler, EOI and iretq the SynIC vectors use,
    and the kernel then boots on to HELLO as usual (interrupts off again)."""
    from wslx.guests.trackb import TrackBGuest
    with TrackBGuest(repo_root / "images" / "trackb-kernel.elf", append="trackb.irqtest", build=False,
                     log=lambda s: None) as g:
        assert g.client.ping(b"after the interrupt") == b"after the interrupt"
        console = g.vm.read_console()
    assert "irq: self-test ok" in console, console[-2000:]
    assert "trap:" not in console
