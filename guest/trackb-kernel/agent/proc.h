/* proc.h: the Track B agent's processes (proc.c), behind a small interface to
 * the agent. proc.c calls nothing of agent.c: the agent hands it a struct
 * proc_host with the frames towards the host and the CONFIG state the
 * processes see, so agent.c -> proc.c -> builtins.c has no cycle. */
#ifndef WSLX_TRACKB_PROC_H
#define WSLX_TRACKB_PROC_H

#include <stddef.h>
#include <stdint.h>

#include "agentx_wire.h"
#include "../../agentx/agentx_out.h"

struct proc_host {
    struct agx_proc_sink send;   /* frames towards the host (agentx_out.h) */
    const char *(*hostname)(void);                 /* CONFIG hostname */
    size_t (*default_env)(const char *const **out); /* CONFIG env */
};

void proc_init(const struct proc_host *host);
void proc_exec(uint32_t rid, const struct agx_exec *m);
void proc_signal(uint32_t rid, const struct agx_signal *m);
void proc_stdin(const struct agx_stdio *m);
int proc_step_all(void);            /* steps programs with room for their output, then frames it; 1 if work */
void proc_pump_output(void);        /* frame held output, EOFs, EXITs while events_ok */
void proc_output_ack(const struct agx_output_ack *m);
void proc_new_session(void);        /* send everything not acknowledged again */
unsigned proc_running(void);
void proc_kill_all(int signo);      /* SHUTDOWN: end everything (EOFs and EXITs follow the held output) */

#endif
