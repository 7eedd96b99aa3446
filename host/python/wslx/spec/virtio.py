"""virtio-pci modern transport, split virtqueues, virtio-pmem and virtio-console.

Defined once here; build/gen/virtio.h is generated from this module for the
Track B drivers, and the host tests build crafted PCI capability lists and
device configs with these same Structs.

Source: OASIS Virtual I/O Device (VIRTIO) 1.2: 2.1 (device status), 2.7
(split virtqueues), 4.1.4 (virtio-pci capabilities: virtio_pci_cap,
virtio_pci_cap64, virtio_pci_notify_cap, virtio_pci_common_cfg), 5.19
(pmem device: config, flush request/response), 5.3 (console device:
virtio_console_config, virtio_console_control and its events, MULTIPORT);
feature bit 32 VERSION_1.
"""
from __future__ import annotations

import enum

from construct import Bytes, Int8ul, Int16ul, Int32ul, Int64ul, Struct

from .header import Constant, CStruct, HeaderSpec

PCI_VENDOR_ID = 0x1AF4
PMEM_PCI_DEVICE_ID = 0x105B     # 0x1040 + device id 27
PCI_CAP_ID_VNDR = 0x09
F_VERSION_1 = 32
PMEM_F_SHMEM_REGION = 0         # device advertises the region as shared memory id 0
PMEM_SHMEM_REGION_ID = 0
PMEM_REQ_TYPE_FLUSH = 0
CONSOLE_PCI_DEVICE_ID = 0x1043  # 0x1040 + device id 3
CONSOLE_PCI_TRANSITIONAL_ID = 0x1003  # QEMU's virtio-serial-pci on pcie.0: legacy + modern (4.1.2.1)
CONSOLE_F_SIZE = 0
CONSOLE_F_MULTIPORT = 1         # ports with names and a control queue pair
CONSOLE_F_EMERG_WRITE = 2


class PciCapType(enum.IntEnum):
    """virtio_pci_cap.cfg_type"""
    COMMON_CFG = 1
    NOTIFY_CFG = 2
    ISR_CFG = 3
    DEVICE_CFG = 4
    PCI_CFG = 5
    SHARED_MEMORY_CFG = 8


class DeviceStatus(enum.IntEnum):
    """device_status bits, set in this order: ACKNOWLEDGE, DRIVER, FEATURES_OK, DRIVER_OK"""
    ACKNOWLEDGE = 1
    DRIVER = 2
    DRIVER_OK = 4
    FEATURES_OK = 8
    NEEDS_RESET = 64
    FAILED = 128


class ConsoleEvent(enum.IntEnum):
    """virtio_console_control.event (5.3.6.2); DEVICE_ADD is Linux's and QEMU's PORT_ADD"""
    DEVICE_READY = 0
    DEVICE_ADD = 1
    DEVICE_REMOVE = 2
    PORT_READY = 3
    CONSOLE_PORT = 4
    RESIZE = 5
    PORT_OPEN = 6
    PORT_NAME = 7


class DescFlags(enum.IntEnum):
    """virtq_desc.flags"""
    NEXT = 1
    WRITE = 2
    INDIRECT = 4


VIRTIO_PCI_CAP = Struct(
    "cap_vndr" / Int8ul * "PCI_CAP_ID_VNDR",
    "cap_next" / Int8ul,
    "cap_len" / Int8ul * "length of this capability, >= 16",
    "cfg_type" / Int8ul * "PciCapType",
    "bar" / Int8ul * "0..5",
    "id" / Int8ul * "shared memory region id (cfg_type 8)",
    "padding" / Bytes(2),
    "offset" / Int32ul * "within the BAR",
    "length" / Int32ul,
)

VIRTIO_PCI_CAP64 = Struct(
    "cap" / VIRTIO_PCI_CAP,
    "offset_hi" / Int32ul,
    "length_hi" / Int32ul,
)

VIRTIO_PCI_NOTIFY_CAP = Struct(
    "cap" / VIRTIO_PCI_CAP,
    "notify_off_multiplier" / Int32ul * "queue notify address = offset + queue_notify_off * this",
)

VIRTIO_PCI_COMMON_CFG = Struct(
    "device_feature_select" / Int32ul,
    "device_feature" / Int32ul,
    "driver_feature_select" / Int32ul,
    "driver_feature" / Int32ul,
    "config_msix_vector" / Int16ul,
    "num_queues" / Int16ul,
    "device_status" / Int8ul,
    "config_generation" / Int8ul,
    "queue_select" / Int16ul,
    "queue_size" / Int16ul,
    "queue_msix_vector" / Int16ul,
    "queue_enable" / Int16ul,
    "queue_notify_off" / Int16ul,
    "queue_desc" / Int64ul,
    "queue_driver" / Int64ul * "available ring",
    "queue_device" / Int64ul * "used ring",
)

VIRTIO_PMEM_CONFIG = Struct(
    "start" / Int64ul * "guest-physical start of the region (0 on OpenVMM: use shared memory id 0)",
    "size" / Int64ul,
)
VIRTIO_PMEM_REQ = Struct("type" / Int32ul * "PMEM_REQ_TYPE_FLUSH")
VIRTIO_PMEM_RESP = Struct("ret" / Int32ul * "0: success")

VIRTIO_CONSOLE_CONFIG = Struct(
    "cols" / Int16ul * "F_SIZE only",
    "rows" / Int16ul * "F_SIZE only",
    "max_nr_ports" / Int32ul * "F_MULTIPORT only: ports 0..max_nr_ports-1",
    "emerg_wr" / Int32ul * "F_EMERG_WRITE only",
)
VIRTIO_CONSOLE_CONTROL = Struct(
    "id" / Int32ul * "port number",
    "event" / Int16ul * "ConsoleEvent",
    "value" / Int16ul * "1: success/open, 0: failure/closed; PORT_NAME: the name bytes follow",
)

VIRTQ_DESC = Struct(
    "addr" / Int64ul,
    "len" / Int32ul,
    "flags" / Int16ul * "DescFlags",
    "next" / Int16ul,
)
VIRTQ_AVAIL = Struct("flags" / Int16ul, "idx" / Int16ul)      # then le16 ring[queue_size]
VIRTQ_USED = Struct("flags" / Int16ul, "idx" / Int16ul)       # then virtq_used_elem ring[queue_size]
VIRTQ_USED_ELEM = Struct("id" / Int32ul * "head descriptor index", "len" / Int32ul * "bytes written")
VIRTQ_AVAIL_F_NO_INTERRUPT = 1

C_HEADER = HeaderSpec(
    name="virtio", source="host/python/wslx/spec/virtio.py", prefix="VIRTIO",
    title="virtio-pci modern transport, split virtqueues, virtio-pmem, virtio-console (VIRTIO 1.2)",
    doc="Little-endian. virtq_avail/virtq_used are the ring headers; their rings follow.",
    constants=[
        Constant("PCI_VENDOR_ID", PCI_VENDOR_ID, "all virtio PCI functions"),
        Constant("PMEM_PCI_DEVICE_ID", PMEM_PCI_DEVICE_ID, "modern virtio-pmem (0x1040 + 27)"),
        Constant("PCI_CAP_ID_VNDR", PCI_CAP_ID_VNDR, "PCI vendor-specific capability"),
        Constant("F_VERSION_1", F_VERSION_1, "feature bit: VIRTIO 1.0+ device"),
        Constant("PMEM_F_SHMEM_REGION", PMEM_F_SHMEM_REGION, "feature bit: region is shared memory id 0"),
        Constant("PMEM_SHMEM_REGION_ID", PMEM_SHMEM_REGION_ID, "shared memory id of the pmem range"),
        Constant("PMEM_REQ_TYPE_FLUSH", PMEM_REQ_TYPE_FLUSH, "virtio_pmem_req.type"),
        Constant("CONSOLE_PCI_DEVICE_ID", CONSOLE_PCI_DEVICE_ID, "modern virtio-console (0x1040 + 3)"),
        Constant("CONSOLE_PCI_TRANSITIONAL_ID", CONSOLE_PCI_TRANSITIONAL_ID, "transitional virtio-console"),
        Constant("CONSOLE_F_SIZE", CONSOLE_F_SIZE, "feature bit: cols/rows valid"),
        Constant("CONSOLE_F_MULTIPORT", CONSOLE_F_MULTIPORT, "feature bit: control queues, named ports"),
        Constant("CONSOLE_F_EMERG_WRITE", CONSOLE_F_EMERG_WRITE, "feature bit: emerg_wr valid"),
        Constant("VIRTQ_AVAIL_F_NO_INTERRUPT", VIRTQ_AVAIL_F_NO_INTERRUPT, "driver polls; no interrupts"),
    ],
    enums=[("VIRTIO_PCI_CAP", PciCapType), ("VIRTIO_STATUS", DeviceStatus), ("VIRTQ_DESC_F", DescFlags),
           ("VIRTIO_CONSOLE", ConsoleEvent)],
    structs=[
        CStruct("virtio_pci_cap", VIRTIO_PCI_CAP, "vendor capability in PCI config space"),
        CStruct("virtio_pci_cap64", VIRTIO_PCI_CAP64, "capability with 64-bit offset/length (shared memory)"),
        CStruct("virtio_pci_notify_cap", VIRTIO_PCI_NOTIFY_CAP, "notify capability"),
        CStruct("virtio_pci_common_cfg", VIRTIO_PCI_COMMON_CFG, "common configuration structure (MMIO)"),
        CStruct("virtio_pmem_config", VIRTIO_PMEM_CONFIG, "virtio-pmem device configuration"),
        CStruct("virtio_pmem_req", VIRTIO_PMEM_REQ, "driver-readable request"),
        CStruct("virtio_pmem_resp", VIRTIO_PMEM_RESP, "device-writable response"),
        CStruct("virtio_console_config", VIRTIO_CONSOLE_CONFIG, "virtio-console device configuration"),
        CStruct("virtio_console_control", VIRTIO_CONSOLE_CONTROL, "control queue message (MULTIPORT)"),
        CStruct("virtq_desc", VIRTQ_DESC, "split virtqueue descriptor"),
        CStruct("virtq_avail", VIRTQ_AVAIL, "available ring header"),
        CStruct("virtq_used", VIRTQ_USED, "used ring header"),
        CStruct("virtq_used_elem", VIRTQ_USED_ELEM, "used ring element"),
    ],
)
