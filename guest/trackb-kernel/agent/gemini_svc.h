/* gemini_svc.h: the `gemini` built-in (gemini_svc.c): guest/gemini's client over the Portal.
 * The environment registers it: agent_register_gemini(&gemini_service_ops). */
#ifndef WSLX_TRACKB_GEMINI_SVC_H
#define WSLX_TRACKB_GEMINI_SVC_H

#include "agent_int.h"

extern const struct agent_portal_ops gemini_service_ops;

#endif
