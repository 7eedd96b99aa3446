"""Kernel features of the WSLX guest, each a small set of Kconfig symbols (Linux 6.1 names).

Symbols are written without the CONFIG_ prefix. Every value is explicit and
carries a one-line reason. The base is tinyconfig (everything off), so a feature
has to name everything it relies on, including dependencies that a fuller base
would have had on anyway. Check with `wslx kconfig check --profile P`.
"""
from wslx.kconfig.model import Feature

BASE = Feature(
    "base",
    "serial console + initramfs + what a static musl PID 1 (AgentX init) uses",
    symbols={
        "64BIT": ("y", "x86_64 kernel: explicit, so the fragment also holds with ARCH=x86"),
        "SMP": ("y", "use every vCPU the VMM gives for EXEC workloads"),
        "PRINTK": ("y", "kernel messages on the console; boot failures are otherwise silent"),
        "PRINTK_TIME": ("y", "timestamps in dmesg, used to measure boot-to-init time"),
        "TTY": ("y", "console and serial devices are ttys"),
        "SERIAL_8250": ("y", "the PC UART that QEMU and Hyper-V COM1 emulate"),
        "SERIAL_8250_CONSOLE": ("y", "console=ttyS0"),
        "UNIX98_PTYS": ("y", "EXEC with a terminal needs /dev/ptmx"),
        "BLK_DEV_INITRD": ("y", "the guest root is an initramfs"),
        "RD_GZIP": ("y", "accept a gzip-compressed initramfs (uncompressed cpio always works)"),
        "DEVTMPFS": ("y", "device nodes without a userspace udev"),
        "DEVTMPFS_MOUNT": ("y", "kernel mounts /dev so PID 1 finds /dev/console at once"),
        "TMPFS": ("y", "writable /tmp and /run in RAM"),
        "SHMEM": ("y", "backs tmpfs and memfd"),
        "PROC_FS": ("y", "/proc for ps, mounts, self/fd"),
        "SYSFS": ("y", "/sys for device discovery (pmem, dax, vsock)"),
        "BINFMT_ELF": ("y", "run the static ELF init and user programs"),
        "BINFMT_SCRIPT": ("y", "#! scripts (busybox sh test inits)"),
        "MULTIUSER": ("y", "setuid/setgid/capabilities syscalls that EXEC'd programs call"),
        "FUTEX": ("y", "musl threads and mutexes"),
        "EPOLL": ("y", "the init's event loop"),
        "SIGNALFD": ("y", "child reaping inside the event loop"),
        "EVENTFD": ("y", "wakeups between the init's threads"),
        "TIMERFD": ("y", "timeouts inside the event loop"),
        "POSIX_TIMERS": ("y", "clock_nanosleep/timer_create used by libc and tools"),
        "FILE_LOCKING": ("y", "flock/fcntl locks used by ordinary programs"),
        "NET": ("y", "sockets at all: AF_UNIX and AF_VSOCK need it"),
        "UNIX": ("y", "AF_UNIX sockets"),
        "PCI": ("y", "virtio devices on q35 are PCI functions"),
        "PCI_MSI": ("y", "per-queue interrupts for virtio-pci"),
        "BLOCK": ("y", "block layer for /dev/pmem0 (tinyconfig turns it off)"),
        "BLK_DEV": ("y", "block device drivers menu (pmem lives under it)"),
        "RTC_CLASS": ("y", "wall clock from the RTC at boot and after restore"),
        "RTC_DRV_CMOS": ("y", "the PC CMOS RTC of QEMU and Hyper-V generation 1/2"),
    },
)

VIRTIO_PCI = Feature(
    "virtio-pci",
    "virtio over PCI and the virtio console",
    symbols={
        "VIRTIO_MENU": ("y", "virtio drivers menu; gates VIRTIO_PCI and VIRTIO_PMEM"),
        "VIRTIO_PCI": ("y", "QEMU's -device virtio-*-pci transport"),
        "VIRTIO_CONSOLE": ("y", "virtio-serial ports (hvc0 and named ports)"),
        "HW_RANDOM": ("n", "virtio-rng not used; keeps the kernel small"),
    },
)

PORTAL = Feature(
    "portal",
    "virtio-pmem shared region ('Portal') with DAX so host and guest see each other's writes",
    symbols={
        "SPARSEMEM_VMEMMAP": ("y", "ZONE_DEVICE needs vmemmap to create struct pages for pmem"),
        "MEMORY_HOTPLUG": ("y", "pmem pages are hot-added device memory"),
        "MIGRATION": ("y", "MEMORY_HOTREMOVE depends on it; merge_config silently drops the chain without it"),
        "MEMORY_HOTREMOVE": ("y", "ZONE_DEVICE depends on it"),
        "ZONE_DEVICE": ("y", "struct pages for pmem: needed by fsdax and devdax"),
        "TRANSPARENT_HUGEPAGE": ("y", "DEV_DAX depends on it"),
        "LIBNVDIMM": ("y", "NVDIMM core that virtio-pmem registers its region with"),
        "BLK_DEV_PMEM": ("y", "nd_pmem: the /dev/pmem0 block device"),
        "NVDIMM_PFN": ("y", "struct-page mode of a pmem namespace (fsdax)"),
        "NVDIMM_DAX": ("y", "devdax mode of a pmem namespace"),
        "VIRTIO_PMEM": ("y", "the virtio-pmem-pci device itself (6.1 name; there is no ND_VIRTIO)"),
        "DAX": ("y", "DAX core"),
        "DEV_DAX": ("y", "/dev/daxN.M character devices: mmap without the page cache"),
        "DEV_DAX_PMEM": ("y", "devdax on top of a pmem namespace"),
        "FS_DAX": ("y", "mount -o dax: file mappings go straight to pmem"),
        "EXT2_FS": ("y", "small DAX-capable filesystem for the region"),
        "EXT4_FS": ("y", "DAX-capable filesystem (journalled)"),
    },
)

VSOCK_VIRTIO = Feature(
    "vsock-virtio",
    "AF_VSOCK to the host over virtio-vsock (QEMU vhost-vsock)",
    symbols={
        "VSOCKETS": ("y", "AF_VSOCK socket family"),
        "VIRTIO_VSOCKETS": ("y", "virtio guest->host transport"),
    },
)

VSOCK_HYPERV = Feature(
    "vsock-hyperv",
    "AF_VSOCK to the host over Hyper-V sockets (hv_sock)",
    symbols={
        "VSOCKETS": ("y", "AF_VSOCK socket family"),
        "HYPERV_VSOCKETS": ("y", "Hyper-V (VMBus) guest->host transport"),
    },
)

HYPERV = Feature(
    "hyperv",
    "run as a Hyper-V / OpenVMM guest: VMBus, Hyper-V clock",
    symbols={
        "ACPI": ("y", "HYPERV depends on it; Hyper-V describes VMBus in ACPI"),
        "HYPERVISOR_GUEST": ("y", "hypervisor detection; HYPERV depends on it"),
        "PARAVIRT": ("y", "paravirt ops that HYPERV selects; explicit so it shows in the fragment"),
        "HYPERV": ("y", "VMBus core (hv_vmbus); 6.1 has no separate HYPERV_VMBUS symbol"),
        "HYPERV_TIMER": ("y", "Hyper-V reference TSC clocksource; def_bool of HYPERV on x86"),
        "CONNECTOR": ("y", "HYPERV_UTILS depends on it (KVP and VSS talk to userspace over it)"),
        "NLS": ("y", "HYPERV_UTILS depends on it"),
        "HYPERV_UTILS": ("y", "time sync and heartbeat; fixes the clock after a snapshot restore"),
    },
)

SNAPSHOT = Feature(
    "snapshot",
    "what snapshot/restore and crash reporting need from the guest",
    symbols={
        "ACPI": ("y", "VMGENID and pvpanic are found through ACPI"),
        "VIRT_DRIVERS": ("y", "menu that VMGENID lives in"),
        "VMGENID": ("y", "reseed the RNG when a snapshot is restored or cloned, so clones differ"),
        "PVPANIC": ("y", "report guest panics to the VMM instead of hanging"),
        "PVPANIC_PCI": ("y", "QEMU's -device pvpanic-pci"),
        "RTC_HCTOSYS": ("y", "set the system clock from the RTC at boot"),
    },
)

PVPANIC = Feature(
    "pvpanic",
    "the ISA pvpanic device the QEMU launcher attaches (-device pvpanic)",
    symbols={
        "ACPI": ("y", "the ISA pvpanic device is enumerated as ACPI QEMU0001"),
        "PVPANIC": ("y", "pvpanic driver menu"),
        "PVPANIC_MMIO": ("y", "driver for the ACPI/ISA pvpanic (port 0x505) despite its name"),
    },
)

MODULES = Feature(
    "modules",
    "loadable modules, for profiles that choose drivers at runtime",
    symbols={
        "MODULES": ("y", "load the one right vsock transport at runtime"),
        "MODULE_UNLOAD": ("y", "rmmod the transport that is not used"),
    },
)

FEATURES = [BASE, VIRTIO_PCI, PORTAL, VSOCK_VIRTIO, VSOCK_HYPERV, HYPERV, SNAPSHOT, PVPANIC, MODULES]
