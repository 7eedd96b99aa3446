"""The Track B kernel's virtio-console driver (guest/trackb-kernel/drivers/virtio_console.c)
against a model device, on the host under ASan+UBSan.

The kernel's PCI, virtio-pci transport, virtqueue and virtio-console code is compiled
unchanged against tests/c/trackb_console_model.c, which implements platform.h with a
virtio-console PCI function (MULTIPORT) that answers DEVICE_READY/PORT_READY/PORT_OPEN the
way QEMU's virtio-serial-bus does, and can also write anything into the driver's control
and data buffers and used rings. The driver is asked for Gemini's SIGNAL and UPCALL ports
as aux ports, as kernel/main.c asks. The headers are generated from the construct specs
(wslx.spec.virtio, wslx.spec.agentx, wslx.spec.gemini), so the model and the driver share
one layout and one set of port names.
A sanitizer report, an abort() on an access the model does not expect, or a crash fails
the test."""
from __future__ import annotations

import shutil

import pytest

from helpers import trackb_model
from wslx.spec import virtio as V

# The driver's fixed sizes (drivers/virtio_console.h), as the model sees them through the ring.
PAGES_HELD = 2 + 2 * 4 + 1 + 1 + 8 + 16   # ring pages (control + 4 ports), control page, aux-port page, rx + tx pages
STATUS_OK = V.DeviceStatus.ACKNOWLEDGE | V.DeviceStatus.DRIVER | V.DeviceStatus.FEATURES_OK | V.DeviceStatus.DRIVER_OK
FEATURES = 1 << V.F_VERSION_1 | 1 << V.CONSOLE_F_MULTIPORT

pytestmark = pytest.mark.skipif(shutil.which("gcc") is None, reason="needs host gcc")


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    gen = tmp_path_factory.mktemp("trackb-console")
    trackb_model.write_headers(gen, "wslx.spec.x86boot", "wslx.spec.virtio", "wslx.spec.gemini", agentx=True)
    return trackb_model.build_model(gen, "trackb_console_model", "drivers/virtio_console.c")


def run_model(model, scenario: str) -> dict:
    return trackb_model.run_model(model, scenario, lists=("model_port", "aux_host_rx"))


def ports(r) -> dict:
    """model_port lines: {id: {"ready": .., "guest_open": ..}}"""
    out = {}
    for line in r.get("model_port", []):
        pid, *kv = line.split(",")
        out[int(pid)] = {k: int(v) for k, v in (x.split("=") for x in kv)}
    return out


def assert_working(r, port=1):
    assert r["probe"] == "0" and int(r["status"]) == STATUS_OK
    assert int(r["features"], 16) == FEATURES, "MULTIPORT only (EMERG_WRITE is offered but not wanted)"
    assert r["port"] == str(port) and r["device_ready"] == "1"
    assert ports(r)[port] == {"ready": 1, "guest_open": 1}, "our port: PORT_READY 1, then our PORT_OPEN 1"
    assert r["round_trip"] == "1", "bytes both ways through the port, in order and whole"


@pytest.mark.parametrize("scenario", ["qemu", "transitional"])
def test_finds_the_agentx_port_and_moves_bytes(model, scenario):
    """QEMU's layout: one virtserialport, number 1, named org.wslx.agentx, host connected; the
    modern (1AF4:1043) and the transitional id QEMU gives on pcie.0 (1AF4:1003). 200,000 bytes
    out in 4 KiB buffers and 50,000 in, read back 1,000 at a time across buffer boundaries."""
    r = run_model(model, scenario)
    assert_working(r)
    assert r["host_connected"] == "1" and r["host_opens"] == "1"
    assert r["host_bytes"] == "200000"
    assert (r["bad_used"], r["bad_len"], r["bad_ctrl"]) == ("0", "0", "0")
    assert int(r["pages_out"]) == PAGES_HELD


def test_port_names_must_match_exactly(model):
    """Ports 1 and 2 are near misses (a longer name, a prefix); port 3 carries the name without
    a NUL (the spec does not promise one); port 5 has the name too but no queues (the driver
    sets up ports 0..3) and gets PORT_READY 0. Only port 3 is opened."""
    r = run_model(model, "names")
    assert_working(r, port=3)
    p = ports(r)
    assert p[1] == {"ready": 1, "guest_open": 0} and p[2] == {"ready": 1, "guest_open": 0}
    assert p[5]["ready"] == 0 and p[5]["guest_open"] == 0
    assert r["bad_ctrl"] == "0"


def test_hostile_control_messages_and_used_rings(model):
    """Short and oversize control messages, unknown events and port ids (77, 0xFFFFFFFF), a
    device-only event sent to the driver, a port added twice, a bad PORT_OPEN value, removal of
    a port never added, a second name for our port; used-ring ids never lent, a data length past
    its buffer, a used index 5,000 ahead. Each is counted and ignored (the port and the host
    state do not change), traffic still flows, and the removal of our port ends the channel."""
    r = run_model(model, "hostile")
    assert r["after_ctrl_port"] == "1" and r["after_ctrl_connected"] == "1"
    assert r["read_bad_id"] == "0" and r["read_oversize"] == "0", "nothing from a bad entry reaches the reader"
    assert r["bad_ctrl"] == "8"      # 99, DEVICE_READY, name of 77, open/add of 0xFFFFFFFF, add twice, value 7, remove 2
    assert r["bad_len"] == "4"       # 4 bytes, 100000, 129 (control), 8192 (data)
    assert r["bad_used"] == "2"      # id 999 on the control and the data receiveq
    assert_working(r)
    assert int(r["read_runaway_min"]) >= 0 and int(r["runaway_bad_used"]) >= 2
    assert r["read_removed"] == "-1" and r["write_removed"] == "-1"


def test_port_without_queues_gets_port_ready_0(model):
    r = run_model(model, "hostile")
    assert r["port_ready_fail_after"] == "6", "DEVICE_ADD 6 (< max_nr_ports, no queues) must be refused"


def test_host_connects_late_and_reconnects(model):
    """Host side closed at boot: writes are dropped (0, nothing queued), as QEMU would drop them;
    each PORT_OPEN 1 after a close counts one connect (env.c re-announces HELLO on it); a repeated
    PORT_OPEN 1 does not."""
    r = run_model(model, "host_late")
    assert r["probe"] == "0" and r["host_connected"] == "0" and r["host_opens"] == "0"
    assert r["write_closed"] == "0" and r["host_bytes_closed"] == "0"
    assert r["opens_after_connect"] == "1"
    assert r["connected_after_close"] == "0" and r["opens_after_close"] == "1"
    assert r["write_after_close"] == "0" and r["host_bytes_after_close"] == "0"
    assert r["opens_after_reconnect"] == "2"
    assert r["round_trip"] == "1"


@pytest.mark.parametrize("scenario, rc, status", [
    ("no_multiport", -95, STATUS_OK & ~V.DeviceStatus.DRIVER_OK | V.DeviceStatus.FAILED),
    ("zero_ports", -5, STATUS_OK & ~V.DeviceStatus.DRIVER_OK | V.DeviceStatus.FAILED),
    ("no_port", -2, V.DeviceStatus.FAILED),   # reset first: the device forgets the queues
])
def test_unusable_device_is_refused_and_everything_freed(model, scenario, rc, status):
    """No MULTIPORT (ports have no names), max_nr_ports 0, or no port with our name within the
    probe time (20 ms here): a negative errno, FAILED status, and every page back (the kernel then
    keeps AgentX on COM2)."""
    r = run_model(model, scenario)
    assert int(r["probe"]) == rc and int(r["status"]) == status
    assert r["pages_out"] == "0" and r["port"] == "-1"
    if scenario == "no_port":
        assert int(r["probe_ms"]) < 1000


def test_device_config_and_queue_count_are_bounded(model):
    """max_nr_ports 0xFFFFFFFF is clamped to the 4 ports the driver serves; a device with fewer
    queues than max_nr_ports implies gets ports 0 and 1 only (and gives back the pages of the
    queues it refused)."""
    r = run_model(model, "huge_ports")
    assert_working(r)
    assert r["nports"] == "4"
    r = run_model(model, "few_queues")
    assert_working(r)
    assert r["nports"] == "2" and int(r["pages_out"]) == PAGES_HELD - 4


def test_transmit_that_never_completes_times_out(model):
    """A device that never hands transmit buffers back: the write gives up after its timeout
    (30 ms here) instead of spinning, and says how much the device took (its 16 transmit pages):
    the caller keeps the rest, so nothing is lost and no frame is cut short (issue 11, bug 1)."""
    r = run_model(model, "silent_tx")
    assert r["write"] == str(16 * 4096)
    assert 25 <= int(r["write_ms"]) < 1000


def test_port_removed(model):
    r = run_model(model, "removed")
    assert_working(r)
    assert r["read_removed"] == "-1" and r["write_removed"] == "-1"


def test_aux_ports_signal_and_upcall(model):
    """QEMU's layout here (wslx.gemini.host.gemini_machine_kw): AgentX on port 1, then the
    ports named SIGNAL and UPCALL, UPCALL's host side not connected yet. Both aux ports are
    opened (PORT_OPEN 1) in the pages the driver already held; each byte goes out on its own
    port and never into the AgentX stream; a closed host side drains -1 (poll) and sends
    -1; host bytes are counted per port, and the four 256-byte receive buffers come back
    after each drain (2,000 bytes through them)."""
    r = run_model(model, "aux")
    assert_working(r)
    assert r["aux_ports"] == "2,3"
    assert ports(r)[2] == ports(r)[3] == {"ready": 1, "guest_open": 1}, "opened before the host side is"
    assert r["aux_sent"] == "2,-1", "two bytes on SIGNAL; UPCALL's host side closed"
    assert r["aux_host_rx"] == ["2,7", "2,8"]
    assert r["drain_closed"] == "-1" and r["drain_open_empty"] == "0"
    assert r["host_sent"] == "7" and r["drained"] == "2,5"
    assert r["drained_many"] == "2000"
    assert r["host_bytes"] == "200000", "no doorbell byte in the AgentX stream"
    assert (r["bad_used"], r["bad_len"], r["bad_ctrl"]) == ("0", "0", "0")
    assert int(r["pages_out"]) == PAGES_HELD


def test_removed_aux_port_is_not_taken_again(model):
    """DEVICE_REMOVE of UPCALL: drain and send say -1 (both sides poll); the device adding a
    port with the same name again gets PORT_READY 1 but no PORT_OPEN from us (the old
    queue may still hold our receive buffers); SIGNAL keeps working."""
    r = run_model(model, "aux")
    assert r["removed_port"] == "-1" and r["removed_drain"] == "-1" and r["removed_send"] == "-1"
    assert r["readded_ready"] == "1" and r["readded_guest_open"] == "0" and r["readded_port"] == "-1"
    assert r["signal_after"] == "1"


def test_aux_port_names_and_hostile_control_messages(model):
    """Port 0 is a near miss of UPCALL, SIGNAL is named before AgentX, SIGNAL's name again on
    a port without queues, port 3 unnamed at first. Then AgentX's port and SIGNAL's are
    renamed UPCALL before port 3 gets that name (without a NUL), port 0 is renamed UPCALL
    too, AgentX's port SIGNAL and UPCALL's AgentX, a bad PORT_OPEN value for UPCALL and one
    for a port never added: every port keeps its first role (one receiveq never gets two
    pools) and its host state; used entries never lent, a length past the 256-byte buffer and
    a used index 5,000 ahead are counted, none counts as a doorbell, and the drain's work
    stays bounded. AgentX traffic still flows."""
    r = run_model(model, "aux_names")
    assert_working(r, port=2)
    p = ports(r)
    assert p[0] == {"ready": 1, "guest_open": 0}
    assert p[1]["guest_open"] == 1 and p[3]["guest_open"] == 0 and p[5]["ready"] == 0
    assert r["upcall_before"] == "-1", "a port that already has a role is not taken as UPCALL"
    assert r["hostile_roles"] == "2,1,3" and r["hostile_connected"] == "1,1" and r["upcall_guest_open"] == "1"
    assert r["hostile_drain"] == "0" and r["runaway_drain_min"] == "0"
    assert r["aux_bad"] == "2,1,1", "bad PORT_OPEN value and unknown port; one oversize length; an id never lent"
    assert int(r["runaway_bad_used"]) >= 2
    assert r["host_bytes"] == "200000"
