/* env.h: kernel side of agent/agent_env.h (what main.c hands over). */
#ifndef TRACKB_ENV_H
#define TRACKB_ENV_H

#include "drivers/virtio_console.h"
#include "drivers/virtio_pmem.h"
#include "hv/hvsock.h"
#include "kernel/acpi.h"

/* Aux-port slots (kernel/aux_port.h) of Gemini's doorbells: virtio-serial or hv_sock. */
enum { ENV_AUX_SIGNAL, ENV_AUX_UPCALL, ENV_AUX_PORTS };
_Static_assert(ENV_AUX_PORTS <= VCON_AUX_MAX && ENV_AUX_PORTS <= HVSOCK_AUX_MAX, "aux port slots");

/* pmem: the probed device or NULL; hs: hv_sock to the AgentX port (Hyper-V)
 * or NULL; con: the virtio-console with the AgentX port open, or NULL for
 * COM2; acpi: for S5 power-off. The first channel given wins. */
void env_init(struct virtio_pmem *pmem, struct hvsock *hs, struct virtio_console *con, const struct acpi_facts *acpi);
/* Gemini's doorbell ports (ENV_AUX_* slots): ops over dev, the transport main.c chose
 * (virtio-serial names under QEMU, hv_sock ports under Hyper-V); NULL: none, both sides poll. */
void env_set_aux(const struct aux_port_ops *ops, void *dev);

#endif
