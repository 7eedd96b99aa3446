/* platform.h: the thin hardware access layer of the Track B kernel.
 *
 * Everything that touches hardware (port I/O, MMIO, MSRs, CPUID, the TSC,
 * physical memory) goes through these functions. platform_x86.c implements
 * them with inline assembly (the only place that does); a host test model
 * implements them against a simulated device, so the drivers compile and run
 * on the host unchanged. Addresses are physical. The layer calls nothing
 * above it: which physical ranges are mapped is the kernel's business
 * (kernel/vm.h: vm_is_mapped, phys_ptr). */
#ifndef TRACKB_PLATFORM_H
#define TRACKB_PLATFORM_H

#include <stddef.h>
#include <stdint.h>

/* Port I/O. */
uint8_t pio_in8(uint16_t port);
uint16_t pio_in16(uint16_t port);
uint32_t pio_in32(uint16_t port);
void pio_out8(uint16_t port, uint8_t v);
void pio_out16(uint16_t port, uint16_t v);
void pio_out32(uint16_t port, uint32_t v);

/* MMIO at physical addresses (must be mapped: kernel/vm.h, vm_map_identity). */
uint8_t mmio_read8(uint64_t pa);
uint16_t mmio_read16(uint64_t pa);
uint32_t mmio_read32(uint64_t pa);
uint64_t mmio_read64(uint64_t pa);
void mmio_write8(uint64_t pa, uint8_t v);
void mmio_write16(uint64_t pa, uint16_t v);
void mmio_write32(uint64_t pa, uint32_t v);
void mmio_write64(uint64_t pa, uint64_t v);

/* The physical address of a kernel pointer (identity map in the VM). */
uint64_t virt_to_phys(const void *p);

/* CPU. */
void cpu_cpuid(uint32_t leaf, uint32_t subleaf, uint32_t out[4]);
uint64_t cpu_rdmsr(uint32_t msr);
void cpu_wrmsr(uint32_t msr, uint64_t v);
uint64_t cpu_rdtsc(void);
void cpu_relax(void);                 /* pause */
_Noreturn void cpu_halt_forever(void); /* cli; hlt loop */
uint64_t cpu_read_cr0(void);
void cpu_write_cr0(uint64_t v);
uint64_t cpu_read_cr2(void);
uint64_t cpu_read_cr3(void);
void cpu_write_cr3(uint64_t v);
uint64_t cpu_read_cr4(void);
void cpu_write_cr4(uint64_t v);
void cpu_invlpg(uint64_t va);
void cpu_load_idt(const void *base, uint16_t limit);

/* Interrupts: the kernel runs with them off (everything polled) unless the
 * Hyper-V path turns them on (kernel/irq.c). cpu_wait_for_interrupt enables
 * them, halts until one arrives and returns with them off again
 * (sti; hlt; cli: an interrupt pending before the hlt still wakes it). */
void cpu_irq_enable(void);
void cpu_irq_disable(void);
void cpu_wait_for_interrupt(void);

/* The hypervisor interface (hv/): everything the Hyper-V code does to the
 * hypervisor goes through these four, so the same hv/ code runs natively on
 * Hyper-V/OpenVMM (here: cpuid, rdmsr, wrmsr, a call into the hypercall page)
 * and against the wslx.hv model (in-process: hv/host/hv_host_main.c; beside
 * QEMU: the hvsim backend below).
 * hv_wrmsr returns 0, or -1 when the model says the write would #GP (natively
 * a #GP stops the kernel in trap()). hv_hypercall_page_call calls the page the
 * hypervisor filled (TLFS 3.7: RCX control, RDX/R8 input/output GPAs or the
 * data itself in the fast form) and returns RAX, the hypercall result value. */
void hv_cpuid(uint32_t leaf, uint32_t out[4]);
uint64_t hv_rdmsr(uint32_t msr);
int hv_wrmsr(uint32_t msr, uint64_t v);
uint64_t hv_hypercall_page_call(const void *page, uint64_t control, uint64_t input, uint64_t output);

/* hvsim (wslx --vmm hvsim): TCG neither traps synthetic MSRs nor runs vmcall,
 * so a host model answers hv_cpuid/hv_rdmsr/hv_wrmsr and the hypercall
 * page's vmcall through a request block in shared memory plus a doorbell
 * register (platform/hv_backend.c; layout build/gen/hvsim.h). The backend is
 * chosen once at boot (drivers/hvsim.c finds the model's device); until then,
 * and on Hyper-V/OpenVMM, the native instructions run. Each answer is awaited
 * at most spin_limit_tsc TSC ticks; ops->dead reports a model that does not
 * answer, or an access that faults as real hardware would (rdmsr #GP,
 * hypercall #UD), and does not return. Under hvsim cpu_wait_for_interrupt
 * first polls the block for the model's interrupts for idle_poll_tsc ticks
 * and may return before the interrupt is taken (callers loop anyway). */
struct hvsim_block;
struct hvsim_ops {
    void (*dead)(const char *what, uint32_t op, uint64_t arg, uint32_t fault) __attribute__((noreturn));
};
void hv_use_hvsim(volatile struct hvsim_block *block, uint64_t doorbell_pa, uint32_t doorbell_value,
                  uint64_t spin_limit_tsc, uint64_t idle_poll_tsc, uint64_t answer_spin_tsc,
                  const struct hvsim_ops *ops);
/* Called once interrupts can wake a halted CPU (hv_boot, SynIC in interrupt
 * mode). Under hvsim, when the model offers it (answer_spin_tsc != 0), an
 * answer that has not come after answer_spin_tsc is then awaited halted: the
 * model raises an MSI-X with it, and meanwhile the vCPU's host CPU is free for
 * the model. Natively nothing changes (a hypercall does not wait). */
void hv_wait_may_halt(void);
/* A #UD at rip (kernel/trap.c): under hvsim, a vmcall there is forwarded as
 * the hypercall (RCX control, RDX, R8) and *rax gets the result. The length
 * of the instruction to skip, or 0 when it is not hvsim's to handle. */
unsigned hv_forward_vmcall(uint64_t rip, uint64_t rcx, uint64_t rdx, uint64_t r8, uint64_t *rax);

/* Ordering between memory the device reads (virtqueues) and MMIO/port writes. */
void mb(void);
void rmb(void);
void wmb(void);

#endif
