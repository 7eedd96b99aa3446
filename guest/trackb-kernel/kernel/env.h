/* env.h: kernel side of agent/agent_env.h (what main.c hands over). */
#ifndef TRACKB_ENV_H
#define TRACKB_ENV_H

#include "drivers/virtio_pmem.h"
#include "kernel/acpi.h"

/* pmem: the probed device or NULL; acpi: for S5 power-off. */
void env_init(struct virtio_pmem *pmem, const struct acpi_facts *acpi);

#endif
