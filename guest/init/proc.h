/* proc.h: processes started by EXEC (proc.c), behind a small interface to the
 * agent. proc.c calls nothing of agent.c: the agent hands it a struct proc_host
 * (frames towards the host, the event loop, two facts about the run), so
 * proc.c links and is tested alone (tests/c/init_proc_test.c). */
#ifndef WSLX_INIT_PROC_H
#define WSLX_INIT_PROC_H

#include <stddef.h>
#include <stdint.h>

#include "agentx_wire.h"
#include "../agentx/agentx_out.h"

struct proc_host {
    struct agx_proc_sink send;   /* frames towards the host (agentx_out.h) */
    /* STDIN_ACK: 0 when queued; -1 when disconnected or (unless force) the output is too full */
    int (*stdin_ack)(uint32_t pid, uint32_t bytes, uint32_t flags, int force);
    int (*connected)(void);
    int (*bulk_ok)(void);                 /* room for bulk output (child stdout/stderr) right now? */
    int (*output_paused)(void);           /* quiesced: leave child output in the pipes */
    void (*flush_blocking)(int timeout_ms);
    /* the event loop: watch fds with an ev_tag() (init.h) */
    int (*ev_add)(int fd, uint32_t events, uint64_t tag);
    int (*ev_mod)(int fd, uint32_t events, uint64_t tag);
    void (*ev_del)(int fd);
    int pid1;        /* PID 1: reap and signal every process, not only ours */
    int test_mode;   /* children die with the agent (PR_SET_PDEATHSIG) */
};

#define PROC_MAX ((int)AGX_PROCESS_MAX_LINUX_INIT)
void proc_init(const struct proc_host *host);
void proc_exec(uint32_t rid, const struct agx_exec *m, const char *const *default_env, size_t ndefault);
void proc_stdin(uint8_t version, const struct agx_stdio *m);   /* version: of the frame (2: offset checked) */
void proc_signal(uint32_t rid, const struct agx_signal *m);
void proc_on_output(uint32_t idx, uint32_t stream);
/* epoll reported events (EPOLLOUT, or EPOLLERR: the process closed its stdin) on a stdin pipe */
void proc_on_stdin_writable(uint32_t idx, uint32_t events);
void proc_reap(void);
/* Enable/disable reading child output (backpressure). */
void proc_set_reading(int on);
unsigned proc_running(void);
/* SIGTERM all our process groups (and in PID 1 mode everything), wait grace, SIGKILL. */
void proc_terminate_all(uint32_t grace_ms);
/* Drain remaining output / emit EXIT for finished processes (after terminate_all). */
void proc_drain_finished(void);
/* Event loop hooks: ms until the next EOF-grace deadline (-1: none), fire expired deadlines,
 * retry deferred STDIN_ACKs, forget stdin credit owed to a lost connection. */
int proc_timeout_ms(void);
void proc_timers(void);
void proc_flush_acks(void);
void proc_connection_lost(void);
/* Version-2 sessions: OUTPUT_ACK from the host; a new session sends everything not acknowledged
 * again; pump frames held output (then EOFs, then EXIT) while the host takes it; watch the pipes
 * of streams with room in their buffer. */
void proc_output_ack(const struct agx_output_ack *m);
void proc_new_session(void);
void proc_pump_output(void);
void proc_update_watches(void);

#endif
