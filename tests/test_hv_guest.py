"""The scripted guest against the model: from detection to AgentX HELLO and PING over hv_sock (ring buffers in
the model's guest memory) under each profile, a periodic timer, the VMBus host's rules, and every fault knob.

Sources as in test_hv_model.py: connection.c / channel.c / channel_mgmt.c / ring_buffer.c are Linux 6.1
drivers/hv, hyperv_transport.c is net/vmw_vsock, protocol.rs is OpenVMM's vmbus_core."""
from __future__ import annotations

import contextlib
import socket
import struct
import threading

import pytest

from wslx.agentx.client import AgentClient
from wslx.agentx.reference_agent import serve_in_thread
from wslx.hv import PROFILES, Faults, GuestMemory, HvTimeout, Partition
from wslx.hv.scripted_guest import GuestScriptError, GuestTimeout, NoHypervisor, ScriptedGuest
from wslx.spec import hyperv as H
from wslx.spec import vmbus as V
from wslx.spec.hyperv import HvCall, HvStatus, Msr
from wslx.spec.vmbus import ChannelMessageType as M

PORT = V.AGENTX_HVSOCK_PORT


def new(profile="hyperv", faults=None, timeout=5.0):
    mem = GuestMemory(bytearray(4 << 20))
    box = {}
    hv = Partition(mem, profile, faults=faults, inject=lambda v: box["g"].interrupt(v))
    g = box["g"] = ScriptedGuest(hv, mem, log=lambda *_: None, timeout=timeout)
    return hv, g, mem


@contextlib.contextmanager
def agentx_over_hvsock(profile, faults=None, ring_pages=V.HVSOCK_RING_PAGES):
    """The guest boots to hv_sock in a thread and bridges the channel to a reference agent; yields
    (partition, guest, AgentClient). Every thread and socket is ended on the way out."""
    hv, g, mem = new(profile, faults)
    listener = hv.hvsock_listen(PORT)
    stop = threading.Event()
    errors: list[BaseException] = []
    local = []

    def run():
        try:
            offer_port = PORT
            g.detect(); g.enlighten(); g.clock_check(); g.enable_synic(); g.vmbus_connect(); g.request_offers()
            ch = g.open_channel(g.hvsock_connect(offer_port), ring_pages=ring_pages)
            agent_end, guest_end = socket.socketpair()
            local.extend([agent_end, guest_end])
            serve_in_thread(agent_end)
            ch.bridge(guest_end, stop.is_set)
        except BaseException as e:  # reported by the test body
            errors.append(e)

    t = threading.Thread(target=run, name="scripted-guest", daemon=True)
    t.start()
    client = None
    try:
        try:
            sock = listener.accept(timeout=10)
        except HvTimeout:
            t.join(5)
            raise AssertionError(f"guest never connected: {errors!r}, steps {g.steps}, log {hv.log_lines}")
        client = AgentClient(sock, default_timeout=10, name=f"hv_sock/{profile}")
        yield hv, g, client
    finally:
        stop.set()
        t.join(10)
        assert not t.is_alive(), "scripted guest thread did not stop"
        if client is not None:
            client.transport.close()
        for s in local:
            s.close()
        hv.close()
    assert not errors, f"guest failed: {errors[0]!r}"


@pytest.mark.parametrize("profile", ["hyperv", "openvmm-kvm"])
def test_scripted_guest_reaches_agentx_ping_over_hvsock(profile):
    with agentx_over_hvsock(profile) as (hv, g, client):
        hello = client.wait_hello()
        assert hello.name.startswith("wslx-reference")
        assert client.ping(b"over hv_sock") == b"over hv_sock"
        big = bytes(range(256)) * 200          # 51 KB: several packets, ring wrap-around both ways
        assert client.ping(big) == big
        out = bytearray()
        proc = client.exec(["sh", "-c", "head -c 100000 /dev/zero | tr '\\0' x"], on_stdout=out.extend, timeout=10)
        assert proc.wait(timeout=20).exit_code == 0
        assert bytes(out) == b"x" * 100000           # 100 KB through 20 KiB rings: pending_send_sz at work
    expected = {"hyperv": ("WIN10_V5_3", "reference TSC page"), "openvmm-kvm": ("COPPER", "no reference TSC page")}
    version, clock = expected[profile]
    assert any(version in s for s in g.steps) and any(s.startswith(clock) for s in g.steps), g.steps
    assert hv.vmbus.dropped == []


def test_large_rings_need_gpadl_body_messages():
    # channel.c create_gpadl_header: 26 pfns in the header, the rest in GpadlBody messages of up to 28
    with agentx_over_hvsock("hyperv", ring_pages=20) as (hv, g, client):
        assert client.ping(b"x" * 60000) == b"x" * 60000
    assert any("(40 pfns)" in s for s in g.steps)


@pytest.mark.parametrize("profile", ["hyperv", "openvmm-kvm"])
def test_periodic_timer_expiry_messages_carry_exact_times(profile):
    # TLFS "Synthetic Timers": periodic, HvMessageTimerExpired carries ExpirationTime and DeliveryTime (100 ns
    # reference time)
    hv, g, _ = new(profile)
    g.detect(); g.enlighten(); g.enable_synic()
    hv.advance(1234)
    ticks = g.check_periodic_timer(period=10_000, ticks=6)
    assert [t[1] for t in ticks] == [1234 + 10_000 * k for k in range(1, 7)]
    assert all(delivery == expiry for _, expiry, delivery in ticks)   # virtual clock: delivered on time
    assert g.check_direct_timer() == (profile == "hyperv")


def test_no_hypervisor_profile_is_detected_as_such():
    # TLFS "Feature and Interface Discovery": no hypervisor bit, no Hv#1 interface
    hv, g, _ = new("none")
    with pytest.raises(NoHypervisor, match="CPUID.1:ECX"):
        g.detect()


# --- VMBus host rules ------------------------------------------------------------------------------------------------
def connected(profile="hyperv", faults=None, version=None, timeout=2.0):
    hv, g, mem = new(profile, faults, timeout=timeout)
    g.detect(); g.enlighten(); g.enable_synic()
    g.vmbus_connect([version] if version else None)
    return hv, g, mem


def test_version_negotiation_steps_down_to_what_the_host_answers():
    # connection.c vmbus_connect: newest first, next older while version_supported == 0
    hv, g, _ = connected("hyperv")
    assert g.version == V.Version.WIN10_V5_3                   # Hyper-V profile knows no Copper
    hv, g, _ = connected("openvmm-kvm")
    assert g.version == V.Version.COPPER                       # protocol.rs: VersionResponse2 for Copper
    hv, g, _ = connected("hyperv", version=V.Version.WIN8)     # before 5.0: connection id 1 throughout
    assert g.msg_conn_id == V.MESSAGE_CONNECTION_ID
    g.request_offers()


def test_connection_id_switch_from_5_0():
    # connection.c: InitiateContact to id 4 from 5.0, then VersionResponse.msg_conn_id
    hv, g, mem = connected(PROFILES["hyperv"].with_(message_connection_id=7))
    assert g.msg_conn_id == 7
    g.request_offers()                                          # on id 7: answered
    for conn, expected in ((1, HvStatus.INVALID_CONNECTION_ID), (4, HvStatus.SUCCESS)):
        payload = V.VMBUS_CHANNEL_REQUEST_OFFERS.build(dict(header=dict(msgtype=M.REQUESTOFFERS)))
        mem.write(g.input_page, struct.pack("<IIII", conn, 0, 1, len(payload)) + payload.ljust(240, b"\0"))
        assert hv.hypercall(HvCall.POST_MESSAGE, g.input_page, 0) & 0xFFFF == expected
    assert any("posted to connection id 4" in d for d in hv.vmbus.dropped)   # id 4 only takes InitiateContact


@pytest.mark.parametrize("conn", [V.MESSAGE_CONNECTION_ID, V.MESSAGE_CONNECTION_ID_4])
def test_initiate_contact_is_taken_on_either_contact_port(conn):
    # Linux posts InitiateContact to 4 from 5.0 (connection.c vmbus_negotiate_version); Microsoft's UEFI
    # firmware posts it to 1 even for Copper (mu_msvm MsvmPkg/VmbusDxe, gVmbusConnectionId)
    hv, g, mem = new("openvmm-kvm", timeout=1)
    g.detect(); g.enlighten(); g.enable_synic()
    g.msg_conn_id = conn
    payload = V.VMBUS_CHANNEL_INITIATE_CONTACT.build(dict(header=dict(msgtype=M.INITIATE_CONTACT),
                                                          vmbus_version_requested=V.Version.COPPER, target_vcpu=0,
                                                          interrupt_page=2, monitor_page1=0, monitor_page2=0))
    g._post_raw(payload)
    _, resp = g.wait_vmbus({M.VERSION_RESPONSE}, g._deadline())
    assert len(resp) == V.VMBUS_CHANNEL_VERSION_RESPONSE2.sizeof()           # protocol.rs VersionResponse2
    r = V.VMBUS_CHANNEL_VERSION_RESPONSE2.parse(resp)
    assert r.version_supported == 1 and r.msg_conn_id == V.MESSAGE_CONNECTION_ID


def test_a_second_initiate_contact_while_connected_is_refused():
    hv, g, _ = connected()
    with pytest.raises(GuestScriptError, match="accepted no VMBus version"):
        g.vmbus_connect([V.Version.WIN10_V5_3])


def test_tl_connect_without_a_listener_is_refused():
    # protocol.rs: TlConnectResult {endpoint_id, service_id, status} from 4.1 (Win10Rs3_0)
    hv, g, _ = connected()
    g.request_offers()
    with pytest.raises(GuestScriptError, match="refused: status 0xc0000236"):
        g.hvsock_connect(12345)


def test_host_initiated_hvsock_offer_is_opened_and_carries_data():
    # hyperv_transport.c hvs_open_connection: conn_from_host = user_def[4] (offer.u.pipe.user_def[0])
    hv, g, _ = connected()
    host_sock = hv.hvsock_connect(6000)
    g.request_offers()
    (offer,) = g.offers.values()
    assert offer.if_type == (6000).to_bytes(4, "little") + V.HVSOCK_GUID_TEMPLATE[4:]
    assert offer.user_def[V.OFFER_PIPE_USER_DEF_OFFSET] == 1 and offer.flags & V.OfferFlags.TLNPI_PROVIDER_OFFER
    ch = g.open_channel(offer)
    host_sock.sendall(b"from the host")
    hv.poll()
    assert ch.receive() == b"from the host"
    ch.send(b"from the guest")
    host_sock.settimeout(2)
    assert host_sock.recv(100) == b"from the guest"
    host_sock.close()
    hv.poll()
    assert ch.receive() == b"" and ch.peer_closed                      # data_size 0: the peer closed


def test_ring_signalling_rules():
    # ring_buffer.c hv_signal_on_write: signal only if interrupt_mask == 0 and the ring was empty
    hv, g, _ = connected()
    host_sock = hv.hvsock_connect(6001)
    g.request_offers()
    ch = g.open_channel(next(iter(g.offers.values())))
    relid_bit = (g.siefp + 2 * 256 + ch.offer.relid // 8, 1 << (ch.offer.relid % 8))

    def flagged():
        return bool(g.mem.read(relid_bit[0], 1)[0] & relid_bit[1])

    ch.inn.set("interrupt_mask", 1)                  # guest polls: host must not signal
    host_sock.sendall(b"a")
    hv.poll()
    assert not flagged()
    ch.receive()
    ch.inn.set("interrupt_mask", 0)
    host_sock.sendall(b"b")
    hv.poll()
    assert flagged()                                  # empty ring, unmasked: signalled
    ch._event_pending()
    host_sock.sendall(b"c")
    hv.poll()
    assert not flagged()                              # ring was not empty (b unread): no signal
    assert ch.receive() == b"bc"


def test_pending_send_size_lets_the_host_finish_a_large_write():
    # ring_buffer.c hv_pkt_iter_close: the reader signals when free space crosses pending_send_sz
    hv, g, _ = connected()
    host_sock = hv.hvsock_connect(6002)
    g.request_offers()
    ch = g.open_channel(next(iter(g.offers.values())), ring_pages=2)    # 4 KiB of data area per ring
    data = bytes(range(256)) * 64                                          # 16 KiB from the host
    host_sock.sendall(data)
    got = bytearray()
    for _ in range(200):
        hv.poll()
        got += ch.receive()                                                # signals the host when room frees
        if len(got) == len(data):
            break
    assert got == data
    assert ch.inn.get("pending_send_sz") == 0


def test_unload_drops_channels_and_answers():
    # Linux channel_mgmt.c vmbus_initiate_unload: CHANNELMSG_UNLOAD, answered by UNLOAD_RESPONSE; the host drops
    # every channel
    hv, g, _ = connected()
    host_sock = hv.hvsock_connect(6003)
    g.request_offers()
    g.open_channel(next(iter(g.offers.values())))
    g.post(V.VMBUS_CHANNEL_UNLOAD)
    g.wait_vmbus({M.UNLOAD_RESPONSE}, g._deadline())
    assert not hv.vmbus.connected and not hv.vmbus.gpadls
    host_sock.settimeout(2)
    assert host_sock.recv(10) == b""                  # the host stream sees the end


def test_bad_gpadls_and_opens_get_failure_status():
    # hyperv-guest-facts.md: GpadlCreated/OpenResult carry u32 status, 0 ok; Linux channel.c __vmbus_open fails
    # on open_result.status != 0
    hv, g, mem = connected()
    hv.hvsock_connect(6004)
    g.request_offers()
    offer = next(iter(g.offers.values()))
    bad_pfn = (8 << 20) >> 12                         # beyond the 4 MiB of guest memory
    header = V.VMBUS_CHANNEL_GPADL_HEADER.build(dict(header=dict(msgtype=M.GPADL_HEADER), child_relid=offer.relid,
                                                     gpadl=0x77, range_buflen=16, rangecount=1))
    g._post_raw(header + struct.pack("<IIQ", 4096, 0, bad_pfn))
    _, p = g.wait_vmbus({M.GPADL_CREATED}, g._deadline())
    assert V.VMBUS_CHANNEL_GPADL_CREATED.parse(p).creation_status != 0
    g.post(V.VMBUS_CHANNEL_OPEN_CHANNEL, child_relid=offer.relid, openid=1, ringbuffer_gpadlhandle=0x77, target_vp=0,
           downstream_ringbuffer_pageoffset=1, userdata=bytes(120))
    _, p = g.wait_vmbus({M.OPENCHANNEL_RESULT}, g._deadline())
    assert V.VMBUS_CHANNEL_OPEN_RESULT.parse(p).status != 0


def test_corrupt_guest_ring_rescinds_the_channel_and_closes_the_host_stream():
    # hyperv-guest-facts.md "VMBus ring buffers": indices are byte offsets into the data area; an impossible one
    # is host behaviour of our choosing (wslx/hv/vmbus.py: rescind the channel)
    hv, g, _ = connected()
    host_sock = hv.hvsock_connect(6005)
    g.request_offers()
    ch = g.open_channel(next(iter(g.offers.values())))
    ch.out.set("write_index", 0x7FFFFFF8)            # hostile index
    g.signal(ch.offer.connection_id)
    _, p = g.wait_vmbus({M.RESCIND_CHANNELOFFER}, g._deadline())
    assert V.VMBUS_CHANNEL_RESCIND_OFFER.parse(p).child_relid == ch.offer.relid
    host_sock.settimeout(2)
    assert host_sock.recv(10) == b""
    assert any("broken" in line for line in hv.log_lines)


def test_paused_host_queue_answers_insufficient_buffers():
    # TLFS HvCallPostMessage: HV_STATUS_INSUFFICIENT_BUFFERS when the receiver's queue is full
    hv, g, mem = connected()
    hv.vmbus.pause()
    payload = V.VMBUS_CHANNEL_REQUEST_OFFERS.build(dict(header=dict(msgtype=M.REQUESTOFFERS)))
    mem.write(g.input_page, struct.pack("<IIII", 1, 0, 1, len(payload)) + payload.ljust(240, b"\0"))
    results = [hv.hypercall(HvCall.POST_MESSAGE, g.input_page, 0) & 0xFFFF for _ in range(40)]
    assert results[:32] == [HvStatus.SUCCESS] * 32 and set(results[32:]) == {HvStatus.INSUFFICIENT_BUFFERS}
    hv.vmbus.resume()
    assert not hv.vmbus.inbound and hv.vmbus.offers_requested    # the queued messages were processed


# --- fault knobs: each has defined host behaviour and the guest sees it ------------------------------------------------
def test_fault_malformed_messages_are_cut_in_half():
    hv, g, mem = new("hyperv", Faults(malformed_messages=True), timeout=1)
    g.detect(); g.enlighten(); g.enable_synic()
    g.post(V.VMBUS_CHANNEL_INITIATE_CONTACT, vmbus_version_requested=V.Version.WIN10_V5_3, target_vcpu=0,
           interrupt_page=2, monitor_page1=0, monitor_page2=0)
    mtype, payload = g.take_message(2)
    assert mtype == H.HvMessageType.VMBUS and len(payload) == V.VMBUS_CHANNEL_VERSION_RESPONSE.sizeof() // 2


def test_fault_oversize_messages_claim_255_bytes():
    hv, g, mem = new("hyperv", Faults(oversize_messages=True), timeout=1)
    g.detect(); g.enlighten(); g.enable_synic()
    g.post(V.VMBUS_CHANNEL_INITIATE_CONTACT, vmbus_version_requested=V.Version.WIN10_V5_3, target_vcpu=0,
           interrupt_page=2, monitor_page1=0, monitor_page2=0)
    assert mem.read(g.simp + 2 * 256 + 4, 1)[0] == 255


def test_fault_unknown_message_types_come_first_and_the_guest_skips_them():
    hv, g, _ = connected("hyperv", Faults(unknown_message_types=True))
    assert g.version == V.Version.WIN10_V5_3
    g.request_offers()
    assert any(t == 99 for t, _ in g.messages)


@pytest.mark.parametrize("step", ["offer", "gpadl", "open"])
def test_fault_rescind_during_setup(step):
    hv, g, _ = connected("hyperv", Faults(rescind_at=step))
    hv.hvsock_listen(PORT)
    g.request_offers()
    with pytest.raises(GuestScriptError, match="rescinded"):
        g.open_channel(g.hvsock_connect(PORT))
    assert hv.faults.rescind_at is None                 # fires once
    assert not hv.vmbus.channels                        # the guest released the relid
    assert g.open_channel(g.hvsock_connect(PORT))       # and a second attempt works


def test_fault_rescind_on_first_data_ends_the_bridge():
    hv, g, _ = connected("hyperv", Faults(rescind_at="data"))
    host_sock = hv.hvsock_connect(6006)
    g.request_offers()
    ch = g.open_channel(next(iter(g.offers.values())))
    a, b = socket.socketpair()
    b.sendall(b"hello")
    ch.bridge(a, lambda: False)                       # returns once the rescind arrives
    assert ch.rescinded
    host_sock.settimeout(2)
    got = b""
    while chunk := host_sock.recv(10):
        got += chunk
    assert got == b"hello"        # what the guest wrote before the rescind still arrives, then EOF
    a.close(); b.close()


@pytest.mark.parametrize("storm,ok", [(5, True), (150, False)])
def test_fault_insufficient_buffers_storm(storm, ok):
    hv, g, _ = new("hyperv", Faults(insufficient_buffers=storm), timeout=1)
    g.detect(); g.enlighten(); g.enable_synic()
    if ok:
        assert g.vmbus_connect()                      # the guest retries and gets through
    else:
        with pytest.raises(GuestScriptError, match="INSUFFICIENT_BUFFERS"):
            g.vmbus_connect()


def test_fault_host_never_answers_initiate_contact():
    hv, g, _ = new("hyperv", Faults(ignore_initiate_contact=True), timeout=0.2)
    g.detect(); g.enlighten(); g.enable_synic()
    with pytest.raises(GuestTimeout, match="VERSION_RESPONSE"):
        g.vmbus_connect()
    assert any("ignore_initiate_contact" in d for d in hv.vmbus.dropped)


def test_fault_corrupt_ring_indices_reach_the_guest_which_rejects_them():
    hv, g, _ = connected("hyperv", Faults(corrupt_ring_indices=True))
    host_sock = hv.hvsock_connect(6007)
    g.request_offers()
    ch = g.open_channel(next(iter(g.offers.values())))
    host_sock.sendall(b"x")
    hv.poll()
    assert ch.inn.get("write_index") >= ch.inn.size
    with pytest.raises(GuestScriptError, match="ring indices"):
        ch.receive()
    host_sock.close()


def test_fuzzed_channel_messages_and_ring_contents_never_break_the_model():
    """Structured fuzz: real message types with random fields, and random bytes in both rings of an open
    channel. The model answers, drops or rescinds; nothing escapes (a ModelBug would)."""
    import random
    rng = random.Random(7)
    hv, g, mem = connected()
    hv.hvsock_connect(6100)
    g.request_offers()
    ch = g.open_channel(next(iter(g.offers.values())))
    types = [M.GPADL_HEADER, M.GPADL_BODY, M.GPADL_TEARDOWN, M.OPENCHANNEL, M.CLOSECHANNEL, M.RELID_RELEASED,
             M.TL_CONNECT_REQUEST, M.REQUESTOFFERS, M.MODIFYCHANNEL]
    for i in range(1500):
        if i % 3:
            body = struct.pack("<II", rng.choice(types), 0) + struct.pack("<IIHH", rng.randrange(4),
                                                                          rng.randrange(0xE1E10, 0xE1E14),
                                                                          rng.randrange(0, 300), rng.randrange(3))
            body += rng.randbytes(rng.randrange(0, 220))
            mem.write(g.input_page, struct.pack("<IIII", g.msg_conn_id, 0, 1, len(body)) + body.ljust(240, b"\0"))
            hv.hypercall(HvCall.POST_MESSAGE, g.input_page, 0)
        else:
            ring = rng.choice([ch.out, ch.inn])
            field = rng.choice(["write_index", "read_index", "pending_send_sz", "interrupt_mask"])
            ring.set(field, rng.choice([0, 8, ring.size - 8, rng.getrandbits(32)]))
            mem.write(ring.data + rng.randrange(0, ring.size - 64), rng.randbytes(64))
            hv.hypercall(HvCall.SIGNAL_EVENT | H.HYPERCALL_FAST, ch.offer.connection_id, 0)
            hv.poll()
        while g.take_message(2):
            pass
    assert hv.vmbus.dropped and any("broken" in line or "refused" in line for line in hv.log_lines)


@pytest.mark.parametrize("profile,expected_sint", [("hyperv", 5), ("openvmm-kvm", 2)])
def test_message_sint_from_initiate_contact(profile, expected_sint):
    # From 5.0 InitiateContact byte 16 names the message SINT (hyperv.h vmbus_channel_initiate_contact.msg_sint);
    # OpenVMM on KVM delivers host messages on SINT 2 only (hyperv-guest-facts.md, OpenVMM facts)
    hv, g, mem = new(profile, timeout=1)
    g.detect(); g.enlighten(); g.enable_synic()
    g.post(V.VMBUS_CHANNEL_INITIATE_CONTACT, vmbus_version_requested=V.Version.WIN10_V5_3, target_vcpu=0,
           interrupt_page=5, monitor_page1=0, monitor_page2=0)
    got = g.take_message(expected_sint)
    assert got is not None and int.from_bytes(got[1][:4], "little") == M.VERSION_RESPONSE
    assert g.take_message(7 - expected_sint) is None


def test_guest_memory_in_a_shared_file_mapping_and_real_time_timers(tmp_path):
    """The shape of the model beside QEMU: guest RAM is an mmap of a file (GuestMemory.q35) and the clock is
    real (MonotonicClock); hv_sock still carries AgentX-sized pings and a one-shot timer fires on halt()."""
    import mmap
    import time
    from wslx.hv import MonotonicClock
    size = 4 << 20
    path = tmp_path / "ram"
    path.write_bytes(bytes(size))
    with open(path, "r+b") as f, mmap.mmap(f.fileno(), size) as ram:
        mem = GuestMemory.q35(ram, size)
        box = {}
        hv = Partition(mem, "openvmm-kvm", clock=MonotonicClock(), inject=lambda v: box["g"].interrupt(v))
        g = box["g"] = ScriptedGuest(hv, mem, log=lambda *_: None, timeout=5)
        host_sock = hv.hvsock_connect(6200)
        g.detect(); g.enlighten(); g.enable_synic(); g.vmbus_connect(); g.request_offers()
        ch = g.open_channel(next(iter(g.offers.values())))
        host_sock.sendall(b"ping" * 1000)
        got = bytearray()
        deadline = time.monotonic() + 5
        while len(got) < 4000 and time.monotonic() < deadline:
            hv.wait_host(0.01)
            got += ch.receive()
        assert got == b"ping" * 1000
        with open(path, "rb") as again:    # the bytes are really in the file, where QEMU would see them
            again.seek(g.simp)
            assert again.read(4) == ram[g.simp:g.simp + 4]
        start = hv.rdmsr(Msr.TIME_REF_COUNT)
        hv.wrmsr(Msr.STIMER0_CONFIG, H.StimerConfigBits.ENABLE | (3 << H.STIMER_SINT_SHIFT))
        hv.wrmsr(Msr.STIMER0_COUNT, start + 20_000)       # 2 ms from now
        while g.take_message(3) is None and time.monotonic() < deadline:
            hv.halt(timeout=0.01)
        payload = H.HV_TIMER_MESSAGE_PAYLOAD.parse(mem.read(g.simp + 3 * 256 + 16, 24))
        assert payload.expiration_time == start + 20_000 <= payload.delivery_time
        assert hv.rdmsr(Msr.TIME_REF_COUNT) >= start + 20_000
        host_sock.close()
        hv.close()
        mem.close()
