/* main.c: the Track B kernel's boot path, from entry.S to the agent. */
#include <stdint.h>

#include "agent/agent_env.h"
#include "agent/portal_svc.h"
#include "agent/gemini_svc.h"
#include "agentx_wire.h"
#include "gemini_wire.h"
#include "hvsim.h"
#include "drivers/hvsim_dev.h"
#include "drivers/pci.h"
#include "drivers/virtio_console.h"
#include "drivers/virtio_pmem.h"
#include "hv/hv_boot.h"
#include "kernel/acpi.h"
#include "kernel/console.h"
#include "kernel/env.h"
#include "kernel/errno.h"
#include "kernel/hvbench.h"
#include "kernel/irq.h"
#include "kernel/klib.h"
#include "kernel/memlayout.h"
#include "kernel/panic.h"
#include "kernel/pmm.h"
#include "kernel/timer.h"
#include "kernel/trap.h"
#include "kernel/vm.h"
#include "platform/platform.h"
#include "virtio.h"
#include "x86boot.h"

#define MAX_REGIONS 64
#define CMDLINE_MAX 1024
#define PCI_HOLE_END 0xFEC00000ULL   /* IOAPIC and up are chipset devices */
#define VCON_PROBE_NS 50000000ULL    /* QEMU names its ports during the probe's own notifies */

extern char _kernel_start[], _kernel_end[];

static struct mem_region regions[MAX_REGIONS];
static char cmdline[CMDLINE_MAX];
static struct acpi_facts acpi;
static struct virtio_pmem pmem;
static struct virtio_console vcon;
static struct hv_caps hv;
static struct hvsock agent_hvsock;
static struct hvsock_aux hv_aux;               /* Gemini's doorbells under Hyper-V */
/* `ret` in .data (volatile: never promoted to .rodata) for trackb.fault=xdata. */
static volatile uint8_t xdata_code[16] = {0xC3};

/* Copy the boot loader's facts out before anything can overwrite them. */
static int read_boot_info(uint32_t kind, uint64_t info, struct boot_facts *facts)
{
    int n;
    if (kind == BOOT_PVH) {
        const uint8_t *si = phys_ptr(info, HVM_START_INFO_SIZE);
        int err = si ? pvh_parse_start_info(si, HVM_START_INFO_SIZE, facts) : ERR_RANGE;
        if (err)
            panic("PVH start_info at %lx: %s", info, err_str(err));
        uint64_t len = (uint64_t)facts->memmap_entries * HVM_MEMMAP_TABLE_ENTRY_SIZE;
        const uint8_t *mm = phys_ptr(facts->memmap_paddr, len);
        n = mm ? pvh_parse_memmap(mm, len, facts->memmap_entries, regions, MAX_REGIONS) : ERR_RANGE;
    } else if (kind == BOOT_LINUX64) {
        const uint8_t *bp = phys_ptr(info, X86BOOT_BP_SIZE);
        n = bp ? bootparams_parse(bp, X86BOOT_BP_SIZE, facts, regions, MAX_REGIONS) : ERR_RANGE;
    } else {
        panic("unknown boot kind %u", kind);
    }
    if (n <= 0)
        panic("boot memory map: %s", n == 0 ? "empty" : err_str(n));
    /* The command line: NUL terminated, bounded, unmapped means none. */
    for (size_t i = 0; facts->cmdline_paddr && i + 1 < CMDLINE_MAX; i++) {
        const char *c = phys_ptr(facts->cmdline_paddr + i, 1);
        if (!c || !*c)
            break;
        cmdline[i] = *c;
    }
    return n;
}

/* The next space-separated word of the command line at *p (length in *len), or NULL. */
static const char *cmdline_word(const char **p, size_t *len)
{
    while (**p == ' ')
        (*p)++;
    const char *w = *p;
    while (**p && **p != ' ')
        (*p)++;
    *len = (size_t)(*p - w);
    return *len ? w : NULL;
}

/* Value of word "key=value" on the command line, copied into val. */
static int cmdline_get(const char *key, char *val, size_t cap)
{
    size_t kl = strlen(key), wl;
    const char *p = cmdline;
    for (const char *w; (w = cmdline_word(&p, &wl));) {
        if (wl > kl && !memcmp(w, key, kl) && w[kl] == '=') {
            size_t n = wl - kl - 1;
            if (n >= cap)
                n = cap - 1;
            memcpy(val, w + kl + 1, n);
            val[n] = 0;
            return 1;
        }
    }
    return 0;
}

static int cmdline_has(const char *word)
{
    size_t len = strlen(word), wl;
    const char *p = cmdline;
    for (const char *w; (w = cmdline_word(&p, &wl));)
        if (wl == len && !memcmp(w, word, len))
            return 1;
    return 0;
}

static const char *type_name(uint32_t t)
{
    switch (t) {
    case X86BOOT_E820_RAM: return "ram";
    case X86BOOT_E820_RESERVED: return "reserved";
    case X86BOOT_E820_ACPI: return "acpi";
    case X86BOOT_E820_NVS: return "nvs";
    case X86BOOT_E820_UNUSABLE: return "unusable";
    case X86BOOT_E820_PMEM: return "pmem";
    default: return "other";
    }
}

/* Where unassigned BARs may go: above every memory-map entry below 4 GiB. */
static uint64_t pci_window_start(int n)
{
    uint64_t lo = 0xC0000000ULL;
    for (int i = 0; i < n; i++) {
        uint64_t end = regions[i].base + regions[i].size;
        if (regions[i].base < PCI_HOLE_END && end > lo)
            lo = end;
    }
    return (lo + 0xFFFFFULL) & ~0xFFFFFULL;
}

_Noreturn void kmain(uint32_t kind, uint64_t info);   /* called from entry.S */

static int streq(const char *a, const char *b) { return strlen(a) == strlen(b) && !memcmp(a, b, strlen(a)); }

/* trackb.fault=...: the exception path on purpose (tests). Each names the
 * address first; if the access does not fault, a unique panic says W^X is off. */
static _Noreturn void fault_on_purpose(const char *kind)
{
    if (streq(kind, "ud"))                            /* #UD */
        __builtin_trap();
    if (streq(kind, "wtext")) {                       /* #PF, write to a read-only page */
        volatile uint8_t *p = (volatile uint8_t *)(uintptr_t)&kmain;
        kprintf("trackb: faulting on purpose (write to .text at %lx)\n", (uint64_t)(uintptr_t)p);
        *p = 0xCC;
        panic("wtext: .text is writable");
    }
    if (streq(kind, "xdata")) {                       /* #PF, instruction fetch from an NX page */
        kprintf("trackb: faulting on purpose (call into .data at %lx)\n", (uint64_t)(uintptr_t)xdata_code);
        ((void (*)(void))(uintptr_t)xdata_code)();
        panic("xdata: .data is executable");
    }
    if (streq(kind, "xstack")) {                      /* the same on the stack */
        volatile uint8_t code[16];
        code[0] = 0xC3;
        kprintf("trackb: faulting on purpose (call into the stack at %lx)\n", (uint64_t)(uintptr_t)code);
        ((void (*)(void))(uintptr_t)code)();
        panic("xstack: the stack is executable");
    }
    if (streq(kind, "stack"))                         /* #PF in the guard page -> #DF on its IST stack */
        trap_overflow_stack();
    env_fault_on_purpose();                           /* pf: read of an unmapped address */
}

_Noreturn void kmain(uint32_t kind, uint64_t info)
{
    struct boot_facts facts = {0};
    char fault[16];

    console_init();                                   /* COM1: ttyS0 */
    trap_init();                                      /* exceptions print and stop */
    int n = read_boot_info(kind, info, &facts);       /* memory map, command line, RSDP */
    console_set_quiet(cmdline_has("quiet"));
    kprintf("\ntrackb: Track B kernel, %s entry, boot info at %lx\n", kind == BOOT_PVH ? "PVH" : "64-bit", info);
    kdetail("cmdline: %s\n", cmdline);
    for (int i = 0; i < n; i++)
        kdetail("memmap: %016lx-%016lx %s\n", regions[i].base, regions[i].base + regions[i].size - 1,
                type_name(regions[i].type));

    timer_init();                                     /* TSC against PIT channel 2 */
    kprintf("timer: TSC %lu kHz, calibrated against %s in %lu us\n", timer_tsc_hz() / 1000, timer_source(),
            timer_calibration_ns() / 1000);

    pmm_init(regions, (size_t)n, (uint64_t)(uintptr_t)_kernel_start, (uint64_t)(uintptr_t)_kernel_end);
    kprintf("pmm: %lu KiB usable in %d memory map entries, kernel %lx-%lx\n", pmm_total_bytes() / 1024, n, (uint64_t)(uintptr_t)_kernel_start,
            (uint64_t)(uintptr_t)_kernel_end);
    vm_init();                                        /* W^X: text R+X, rodata R, the rest RW+NX */

    acpi_init(facts.rsdp_paddr, &acpi);               /* MCFG, FADT/S5 */
    pci_init(acpi.ecam, acpi.n_ecam, pci_window_start(n), PCI_HOLE_END);
    int ndev = pci_enumerate();                       /* bus 0 and behind bridges */
    kprintf("pci: %d functions via %s\n", ndev, pci_access_method());

    struct pci_dev *pd = pci_find(VIRTIO_PCI_VENDOR_ID, VIRTIO_PMEM_PCI_DEVICE_ID);
    struct virtio_pmem *pm = NULL;
    if (!pd) {
        kprintf("pmem: no virtio-pmem device\n");
    } else {
        int err = virtio_pmem_probe(pd, &pmem);
        if (err)
            kprintf("pmem: %02x:%02x.%u probe failed (%d)\n", pd->bus, pd->dev, pd->fn, err);
        else {
            pm = &pmem;
            kprintf("pmem: region %lx size %lu bytes (%s), queue size %u\n", pmem.start, pmem.size,
                    pmem.region_source, pmem.vq.size);
            kdetail("pmem: first 8 bytes %016lx\n", *(volatile uint64_t *)pmem.base);  /* proves the mapping */
        }
    }

    /* virtio-console: the AgentX port when QEMU has one (modern id, or transitional on pcie.0). */
    struct pci_dev *cd = pci_find(VIRTIO_PCI_VENDOR_ID, VIRTIO_CONSOLE_PCI_DEVICE_ID);
    if (!cd)
        cd = pci_find(VIRTIO_PCI_VENDOR_ID, VIRTIO_CONSOLE_PCI_TRANSITIONAL_ID);
    struct virtio_console *con = NULL;
    if (cd) {
        uint64_t t0 = timer_now_ns();
        virtio_console_want_aux(&vcon, ENV_AUX_SIGNAL, GEMINI_SIGNAL_PORT_NAME);   /* doorbells, when QEMU */
        virtio_console_want_aux(&vcon, ENV_AUX_UPCALL, GEMINI_UPCALL_PORT_NAME);   /* has the ports */
        int err = virtio_console_probe(cd, &vcon, AGX_VIRTIO_SERIAL_PORT_NAME, VCON_PROBE_NS);
        if (err)
            kprintf("vcon: %02x:%02x.%u has no usable port %s (%d)\n", cd->bus, cd->dev, cd->fn,
                    AGX_VIRTIO_SERIAL_PORT_NAME, err);
        else
            con = &vcon;
        kdetail("vcon: probe %lu us, max_nr_ports %u, ports added %x, signal port %d, upcall port %d, "
                "bad used %u len %u ctrl %u\n", (timer_now_ns() - t0) / 1000, vcon.max_nr_ports, vcon.added,
                vcon.aux[ENV_AUX_SIGNAL].port, vcon.aux[ENV_AUX_UPCALL].port, vcon.bad_used,
                vcon.bad_len, vcon.bad_ctrl);
    }

    /* hvsim: the wslx.hv model beside QEMU answers the hypervisor interface (else native). */
    hvsim_probe(pci_find(HVSIM_IVSHMEM_VENDOR_ID, HVSIM_IVSHMEM_DEVICE_ID));

    if (cmdline_has("trackb.irqtest"))               /* tests: the interrupt path, without Hyper-V */
        kprintf("irq: self-test %s\n", irq_self_test() ? "FAILED" : "ok (vector 0x3e taken and returned)");

    /* Hyper-V: enlightenments, SynIC, stimer, VMBus, hv_sock (trackb.hv_poll: no interrupts). */
    struct hvsock *hs = hv_boot(&hv, cmdline_has("trackb.hv_poll"), &agent_hvsock);
    if (hs && cmdline_get("trackb.hvbench", fault, sizeof fault))   /* `wslx bench hv`: time traps and ticks */
        hvbench_run(fault);

    env_init(pm, hs, con, &acpi);                     /* agent environment: hv_sock, virtio-console or COM2, pmem, power */
    if (hs) {                                         /* Gemini's doorbells: hv_sock to the SIGNAL and UPCALL ports */
        static const uint32_t aux_ports[ENV_AUX_PORTS] = {GEMINI_PORT_SIGNAL, GEMINI_PORT_UPCALL};
        hvsock_aux_init(&hv_aux, aux_ports, ENV_AUX_PORTS);
        env_set_aux(&hvsock_aux_ops, &hv_aux);
    } else if (con)                                   /* ... or QEMU's named virtio-serial ports */
        env_set_aux(&virtio_console_aux_ops, con);
    agent_register_portal(&portal_service_ops);       /* `portal serve`: guest/portal's service */
    agent_register_gemini(&gemini_service_ops);       /* `gemini`: guest/gemini's client */
    kprintf("trackb: ready after %lu us\n", timer_now_ns() / 1000);

    if (cmdline_get("trackb.fault", fault, sizeof fault))   /* tests: pf|ud|wtext|xdata|xstack|stack */
        fault_on_purpose(fault);
    agent_main();
}
