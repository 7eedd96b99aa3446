/* panic.h: stop the machine with a message. */
#ifndef TRACKB_PANIC_H
#define TRACKB_PANIC_H

/* Print "panic: <msg>" on the console, tell the host (pvpanic), stop. */
_Noreturn void panic(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* The tail shared with trap(): pvpanic + cli;hlt forever. */
_Noreturn void panic_stop(void);

#endif
