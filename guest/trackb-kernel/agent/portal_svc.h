/* portal_svc.h: the Portal service of the `portal` built-in (portal_svc.c).
 * The environment registers it: agent_register_portal(&portal_service_ops). */
#ifndef WSLX_TRACKB_PORTAL_SVC_H
#define WSLX_TRACKB_PORTAL_SVC_H

#include "agent_int.h"

extern const struct agent_portal_ops portal_service_ops;

#endif
