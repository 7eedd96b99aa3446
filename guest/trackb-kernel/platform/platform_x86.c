/* platform_x86.c: platform.h on real (virtual) x86-64 hardware.
 * The only file with inline assembly for hardware access. */
#include "platform/platform.h"

uint8_t pio_in8(uint16_t port) { uint8_t v; __asm__ volatile("inb %1, %0" : "=a"(v) : "Nd"(port)); return v; }
uint16_t pio_in16(uint16_t port) { uint16_t v; __asm__ volatile("inw %1, %0" : "=a"(v) : "Nd"(port)); return v; }
uint32_t pio_in32(uint16_t port) { uint32_t v; __asm__ volatile("inl %1, %0" : "=a"(v) : "Nd"(port)); return v; }
void pio_out8(uint16_t port, uint8_t v) { __asm__ volatile("outb %0, %1" : : "a"(v), "Nd"(port)); }
void pio_out16(uint16_t port, uint16_t v) { __asm__ volatile("outw %0, %1" : : "a"(v), "Nd"(port)); }
void pio_out32(uint16_t port, uint32_t v) { __asm__ volatile("outl %0, %1" : : "a"(v), "Nd"(port)); }

/* volatile accesses of the natural width: one MMIO transaction each. */
uint8_t mmio_read8(uint64_t pa) { return *(volatile uint8_t *)(uintptr_t)pa; }
uint16_t mmio_read16(uint64_t pa) { return *(volatile uint16_t *)(uintptr_t)pa; }
uint32_t mmio_read32(uint64_t pa) { return *(volatile uint32_t *)(uintptr_t)pa; }
uint64_t mmio_read64(uint64_t pa) { return *(volatile uint64_t *)(uintptr_t)pa; }
void mmio_write8(uint64_t pa, uint8_t v) { *(volatile uint8_t *)(uintptr_t)pa = v; }
void mmio_write16(uint64_t pa, uint16_t v) { *(volatile uint16_t *)(uintptr_t)pa = v; }
void mmio_write32(uint64_t pa, uint32_t v) { *(volatile uint32_t *)(uintptr_t)pa = v; }
void mmio_write64(uint64_t pa, uint64_t v) { *(volatile uint64_t *)(uintptr_t)pa = v; }

uint64_t virt_to_phys(const void *p) { return (uint64_t)(uintptr_t)p; }

void cpu_cpuid(uint32_t leaf, uint32_t subleaf, uint32_t out[4])
{
    __asm__ volatile("cpuid" : "=a"(out[0]), "=b"(out[1]), "=c"(out[2]), "=d"(out[3]) : "a"(leaf), "c"(subleaf));
}

uint64_t cpu_rdmsr(uint32_t msr)
{
    uint32_t lo, hi;
    __asm__ volatile("rdmsr" : "=a"(lo), "=d"(hi) : "c"(msr));
    return ((uint64_t)hi << 32) | lo;
}

void cpu_wrmsr(uint32_t msr, uint64_t v)
{
    __asm__ volatile("wrmsr" : : "c"(msr), "a"((uint32_t)v), "d"((uint32_t)(v >> 32)) : "memory");
}

uint64_t cpu_rdtsc(void)
{
    uint32_t lo, hi;
    __asm__ volatile("rdtsc" : "=a"(lo), "=d"(hi));
    return ((uint64_t)hi << 32) | lo;
}

void cpu_relax(void) { __asm__ volatile("pause" ::: "memory"); }

_Noreturn void cpu_halt_forever(void)
{
    for (;;)
        __asm__ volatile("cli; hlt" ::: "memory");
}

uint64_t cpu_read_cr0(void) { uint64_t v; __asm__ volatile("mov %%cr0, %0" : "=r"(v)); return v; }
void cpu_write_cr0(uint64_t v) { __asm__ volatile("mov %0, %%cr0" : : "r"(v) : "memory"); }
uint64_t cpu_read_cr4(void) { uint64_t v; __asm__ volatile("mov %%cr4, %0" : "=r"(v)); return v; }
void cpu_write_cr4(uint64_t v) { __asm__ volatile("mov %0, %%cr4" : : "r"(v) : "memory"); }
uint64_t cpu_read_cr2(void) { uint64_t v; __asm__ volatile("mov %%cr2, %0" : "=r"(v)); return v; }
uint64_t cpu_read_cr3(void) { uint64_t v; __asm__ volatile("mov %%cr3, %0" : "=r"(v)); return v; }
void cpu_write_cr3(uint64_t v) { __asm__ volatile("mov %0, %%cr3" : : "r"(v) : "memory"); }
void cpu_invlpg(uint64_t va) { __asm__ volatile("invlpg (%0)" : : "r"(va) : "memory"); }

void cpu_load_idt(const void *base, uint16_t limit)
{
    struct {
        uint16_t limit;
        uint64_t base;
    } __attribute__((packed)) desc = {limit, (uint64_t)(uintptr_t)base};
    __asm__ volatile("lidt %0" : : "m"(desc));
}

void cpu_irq_enable(void) { __asm__ volatile("sti" ::: "memory"); }
void cpu_irq_disable(void) { __asm__ volatile("cli" ::: "memory"); }

void mb(void) { __asm__ volatile("mfence" ::: "memory"); }
void rmb(void) { __asm__ volatile("lfence" ::: "memory"); }
void wmb(void) { __asm__ volatile("sfence" ::: "memory"); }
