/* proc.h: the Track B agent's processes (proc.c), behind a small interface to
 * the agent. proc.c calls nothing of agent.c: the agent hands it a struct
 * proc_host with the frames towards the host and the CONFIG state the
 * processes see, so agent.c -> proc.c -> builtins.c has no cycle. */
#ifndef WSLX_TRACKB_PROC_H
#define WSLX_TRACKB_PROC_H

#include <stddef.h>
#include <stdint.h>

#include "agentx_wire.h"
#include "../../agentx/agentx_rx.h"

struct proc_host {
    agx_error_fn *error;
    void (*ok)(uint32_t rid);
    void (*exec_started)(uint32_t rid, uint32_t pid);
    void (*stdio)(uint32_t pid, uint8_t stream, uint8_t flags, const uint8_t *data, uint32_t len);
    void (*exit)(uint32_t pid, uint8_t how, int32_t code);
    const char *(*hostname)(void);                 /* CONFIG hostname */
    size_t (*default_env)(const char *const **out); /* CONFIG env */
};

void proc_init(const struct proc_host *host);
void proc_exec(uint32_t rid, const struct agx_exec *m);
void proc_signal(uint32_t rid, const struct agx_signal *m);
void proc_stdin(const struct agx_stdio *m);
int proc_step_all(void);            /* 1 if any work was done */
unsigned proc_running(void);
void proc_kill_all(int signo);      /* SHUTDOWN: end everything, send EOFs and EXITs */

#endif
