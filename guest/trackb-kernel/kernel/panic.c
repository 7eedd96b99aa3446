/* panic.c: stop cleanly. The pvpanic write makes QEMU emit GUEST_PANICKED,
 * which QemuMachine turns into a GuestPanicked error with the console tail. */
#include <stdarg.h>

#include "drivers/qemu_isa.h"
#include "kernel/console.h"
#include "kernel/panic.h"
#include "platform/platform.h"

_Noreturn void panic_stop(void)
{
    kprintf("trackb: stopped\n");
    pio_out8(PVPANIC_PORT, PVPANIC_PANICKED);
    cpu_halt_forever();
}

_Noreturn void panic(const char *fmt, ...)
{
    va_list ap;
    kprintf("panic: ");
    va_start(ap, fmt);
    kvprintf(fmt, ap);
    va_end(ap);
    kprintf("\n");
    panic_stop();
}
