/* sh.h: the built-in "processes" of the Track B agent.
 *
 * There is no userspace: a process is a set of cooperative jobs (one main job,
 * plus one per `cmd &`), each an interpreter with an explicit frame stack, so
 * the agent loop can step it a bounded amount and SIGNAL can end it between
 * two steps. Built-in programs are state machines (sleep keeps a deadline,
 * head a byte count). `sh -c` parses a small POSIX-sh subset (see README.md)
 * into nodes kept in the process's arena. */
#ifndef WSLX_TRACKB_SH_H
#define WSLX_TRACKB_SH_H

#include "agent_int.h"

#define PROC_MAX 8
#define JOB_MAX 4
#define FRAME_MAX 24
#define ARENA_SIZE 24576
#define SCRATCH_SIZE 4096
#define ARGS_MAX 64
#define VAR_MAX 24
#define VAR_VAL_MAX 256
#define OUTBUF 2048
#define CWD_MAX 256
#define RUN (-1)          /* a built-in step that wants another step */

/* where fd 1 and fd 2 of a command go */
enum { SINK_NULL, SINK_OUT, SINK_ERR, SINK_FILE };
struct fdmap {
    uint8_t kind[3];
    uint8_t file[3];   /* SINK_FILE: index into the file table */
};

enum { N_SIMPLE, N_LIST, N_SUB, N_GROUP, N_FOR, N_IF };
enum { C_SEQ, C_AND, C_OR };

struct redir {
    uint8_t fd;        /* 0, 1 or 2 */
    uint8_t op;        /* '>' write, 'a' append, '<' read, '&' dup (>&N / <&-) */
    const char *word;  /* target word (unexpanded), or "1"/"2"/"-" for '&' */
};

struct node {
    uint8_t kind, bg, conn, literal;  /* literal: words are argv already (EXEC of a built-in) */
    uint16_t nwords, nredir;
    char **words;
    struct redir *redirs;
    const char *var;                  /* for VAR in ... */
    struct node *child, *next;        /* list items / body; next item in a list */
    struct node *then_part, *else_part;
};

struct proc;
struct job;
struct cmd;

/* A built-in: returns RUN to be stepped again, else its exit status (0..255). */
typedef int (*builtin_fn)(struct proc *p, struct job *j, struct cmd *c);
struct builtin {
    const char *name;
    builtin_fn fn;
    const char *help;
    void (*kill)(struct cmd *c, int signo);  /* optional: SIGNAL/SHUTDOWN ends it mid-run */
};

struct cmd {
    const struct builtin *b;
    int argc;
    char *argv[ARGS_MAX + 1];
    uint64_t t, n;     /* per-built-in state: deadline, byte counts... */
    int phase;
    void *priv;
};

enum { FR_CMD, FR_LIST, FR_SUB, FR_GROUP, FR_FOR, FR_IF };
struct frame {
    uint8_t kind, phase;
    const struct node *node;
    const struct node *cur;
    uint16_t idx, nwords;
    char **words;      /* FR_FOR: expanded words */
    struct fdmap fd;
};

struct job {
    int used;
    int depth;
    int status;        /* of the last command: $? */
    int exited;        /* `exit` was called: unwind to the nearest subshell */
    struct frame st[FRAME_MAX];
    struct cmd cmd;    /* the running built-in (only the top frame can be FR_CMD) */
    char scratch[SCRATCH_SIZE];  /* expanded argv of the running command */
};

struct var {
    char name[32];
    char val[VAR_VAL_MAX];
};

struct proc {
    int used;
    uint32_t pid;
    int reaped;        /* main job over (status below); output may still be produced by jobs */
    uint8_t how;
    int32_t code;
    int merge;         /* EXEC STDERR_TO_STDOUT */
    int eof_sent[3];
    uint64_t eof_deadline;
    struct job jobs[JOB_MAX];
    char cwd[CWD_MAX];
    const char *env[AGX_EXEC_ENV_MAX_COUNT + AGX_CONFIG_ENV_MAX_COUNT];
    size_t nenv;
    struct var vars[VAR_MAX];
    uint8_t ob[3][OUTBUF];
    size_t ob_len[3];
    size_t arena_used;
    uint8_t arena[ARENA_SIZE];
};

/* proc.c */
void *arena_alloc(struct proc *p, size_t n);
char *arena_strndup(struct proc *p, const char *s, size_t n);
void sink_write(struct proc *p, const struct fdmap *m, int fd, const void *data, size_t len);
void job_write(struct proc *p, struct job *j, int fd, const void *data, size_t len);
void job_printf(struct proc *p, struct job *j, int fd, const char *fmt, ...) __attribute__((format(printf, 4, 5)));
const char *var_get(struct proc *p, const char *name, size_t len);
int var_set(struct proc *p, const char *name, size_t nlen, const char *val);

/* sh_parse.c */
struct node *sh_parse(struct proc *p, const char *src, char *err, size_t errcap);

/* builtins.c */
const struct builtin *builtin_find(const char *name);
const struct builtin *builtin_table(size_t *n);
/* ramfs: tiny in-memory files so scripts can touch, test and cat */
int fs_resolve(const char *cwd, const char *path, char *out, size_t cap);
int fs_is_dir(const char *abs);
int fs_write_idx(const char *abs, int append);  /* file index for '>' redirection, or -errno */
void fs_append(int idx, const void *data, size_t len);

#endif
