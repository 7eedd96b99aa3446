/* trackb_platform_model.h: the host model of the Track B platform layer with
 * one virtio-pci function on it, shared by the device models
 * (tests/c/trackb_model.c: virtio-pmem, tests/c/trackb_console_model.c:
 * virtio-console).
 *
 * trackb_platform_model.c implements platform/platform.h (MMIO dispatch to
 * the function: ECAM config space at MODEL_ECAM_BASE, BAR 4 with the virtio
 * common configuration, ISR, device configuration and per-queue notify
 * registers), entry.S's boot page tables (kernel/vm.c runs unchanged on them),
 * the page allocator (pages below 4 GiB, as the kernel's RAM, so the real
 * phys_ptr() of kernel/vm.c accepts them, each followed by a guard page ASan
 * keeps poisoned; with a page budget), the timer (CLOCK_MONOTONIC) and kprintf. "Physical"
 * addresses are host addresses. A device model supplies what is its own
 * through struct model_virtio_dev and works its queues with model_vq_*.
 * Every access the model does not expect is an abort(). */
#ifndef TRACKB_PLATFORM_MODEL_H
#define TRACKB_PLATFORM_MODEL_H

#include <stdint.h>

#include "virtio.h"

#define MODEL_ECAM_BASE 0xB0000000ULL
#define MODEL_BAR4_SIZE 0x4000ULL
/* BAR 4, laid out like QEMU's modern virtio-pci BAR: one 4 KiB page per structure. */
#define MODEL_DEVCFG_OFF 0x2000u
#define MODEL_NOTIFY_OFF 0x3000u
#define MODEL_NOTIFY_MULT 4u
#define MODEL_MAXQ 64
/* The capability list: notify 0x40, device cfg 0x54, ISR 0x64, common cfg
 * MODEL_CAP_LAST; a device may chain more from there, from MODEL_CAP_FREE. */
#define MODEL_CAP_LAST 0x74
#define MODEL_CAP_FREE 0x84

/* What a device model adds to the transport. */
struct model_virtio_dev {
    unsigned slot;                                  /* 00:slot.0 */
    uint16_t device_id;
    uint32_t class_rev;                             /* config dword 8 */
    uint32_t num_queues;
    uint64_t (*features)(void);                     /* offered */
    uint16_t (*queue_max)(unsigned n);              /* n < num_queues */
    uint64_t (*config_read)(uint64_t off, int size);    /* off within the device configuration */
    void (*notify)(unsigned n);                     /* the driver notified live queue n */
};

/* ---- transport scenario knobs (a hostile or unwilling device) ---- */
extern int model_refuse_features;   /* FEATURES_OK never sticks */
extern int model_notify_beyond;     /* queue_notify_off points past the notify capability */
extern int model_devcfg_beyond_bar; /* the device cfg capability ends past BAR 4 */

/* ---- the function's state ---- */
struct model_queue {
    uint16_t size, enable, last_avail;
    uint64_t desc, driver, device;
};
extern uint8_t model_cfg[256];
extern uint64_t model_bar[6], model_bar_mask[6];
extern uint64_t model_drv_features;
extern uint8_t model_status;
extern struct model_queue model_q[MODEL_MAXQ];
extern int model_notifies;

void model_put32(uint8_t *p, uint32_t v);
/* A vendor capability at config offset `off`, pointing into `bar`. */
void model_cap(uint8_t off, uint8_t next, uint8_t len, uint8_t type, uint8_t bar, uint32_t o, uint32_t l);
/* Config space with the four capabilities in BAR 4 (a device may chain more
 * after), the device reset. */
void model_virtio_init(const struct model_virtio_dev *dev);
/* pci_init() over the model's ECAM, then pci_enumerate(): the functions found. */
int model_pci_enumerate(void);

/* ---- the device side of the split virtqueues ---- */
#define MODEL_AVAIL(n) ((struct virtq_avail *)(uintptr_t)model_q[n].driver)
#define MODEL_USED(n) ((struct virtq_used *)(uintptr_t)model_q[n].device)
#define MODEL_DESC(n) ((struct virtq_desc *)(uintptr_t)model_q[n].desc)
int model_vq_ready(unsigned n);
/* The head of the next available chain of queue n (its id in *head), or NULL. */
struct virtq_desc *model_vq_pop(unsigned n, uint16_t *head);
void model_vq_push_used(unsigned n, uint32_t id, uint32_t len);

/* ---- memory ---- */
extern long model_page_budget;      /* pages the allocator may still hand out; -1: no limit */
extern int model_pages_out;         /* pages handed out and not freed */
/* 1 if [pa, pa+len) is identity mapped with 2 MiB RW pages in the page tables. */
int model_identity_mapped(uint64_t pa, uint64_t len, int uncached);
/* Page-table pages added after boot; with free_them, given back and their entries cleared. */
int model_page_table_pages(int free_them);

#endif
