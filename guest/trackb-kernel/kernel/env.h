/* env.h: kernel side of agent/agent_env.h (what main.c hands over). */
#ifndef TRACKB_ENV_H
#define TRACKB_ENV_H

#include "drivers/virtio_console.h"
#include "drivers/virtio_pmem.h"
#include "hv/hvsock.h"
#include "kernel/acpi.h"

/* The virtio-console's auxiliary ports (virtio_console_want_aux slots): Gemini's doorbells. */
enum { ENV_AUX_SIGNAL, ENV_AUX_UPCALL, ENV_AUX_PORTS };
_Static_assert(ENV_AUX_PORTS <= VCON_AUX_MAX, "aux port slots");

/* pmem: the probed device or NULL; hs: hv_sock to the AgentX port (Hyper-V)
 * or NULL; con: the virtio-console with the AgentX port open, or NULL for
 * COM2; acpi: for S5 power-off. The first channel given wins. */
void env_init(struct virtio_pmem *pmem, struct hvsock *hs, struct virtio_console *con, const struct acpi_facts *acpi);

#endif
