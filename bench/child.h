/*
 * child.h - one engine's run in a forked child process, as the kv, text,
 * vector and load suites do it: the child has its own peak RSS and a
 * timeout (SIGALRM), and streams fixed-size messages to the parent over a
 * pipe, so that a crash of one engine costs only that engine's remaining
 * results. The parent hands every message to the suite, reaps the child
 * and reports a crash or a non-zero exit.
 *
 * A suite's message type starts with a bench_msg (kind, stage, text); the
 * kinds STAGE and ERROR are common, the suite numbers its own from
 * BENCH_MSG_USER.
 */
#ifndef SOP_BENCH_CHILD_H
#define SOP_BENCH_CHILD_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

enum { BENCH_MSG_STAGE = 1, BENCH_MSG_ERROR, BENCH_MSG_USER };

/** The head of every message. */
typedef struct bench_msg {
    int kind;       /**< BENCH_MSG_* or the suite's own */
    int stage;      /**< STAGE: the stage entered; ERROR: the stage it happened in */
    char text[340]; /**< ERROR: "what: detail"; else the suite's note */
} bench_msg;

/** One run in a child. */
typedef struct bench_child {
    void (*main)(void *arg); /**< the child's work; the child then exits 0 */
    /** The parent's handler of each message but STAGE (@p msg: msg_size bytes). */
    void (*on_msg)(const void *msg, void *arg);
    void *arg;        /**< given to both */
    size_t msg_size;  /**< size of the suite's message type (< PIPE_BUF: atomic writes) */
    uint64_t timeout; /**< seconds before SIGALRM ends the child (0: no limit) */
} bench_child;

/** How a child ended. */
typedef struct bench_child_end {
    int status;         /**< its wait status */
    int stage;          /**< the last stage it entered, -1 if none */
    uint64_t maxrss_kb; /**< its peak RSS */
} bench_child_end;

/** Makes a pipe into @p fds, flushes stdout and stderr, forks; dies (exit 2)
 *  if pipe or fork fail. Returns fork()'s pid (0 in the child). */
pid_t bench_fork_piped(int fds[2]);

/** Forks, runs c->main in the child, hands its messages to c->on_msg until
 *  the child closes the pipe, then reaps it into @p end. Dies (exit 2) if
 *  pipe, fork or wait fail. */
void bench_child_run(const bench_child *c, bench_child_end *end);

/** Reports an abnormal end of a child on stderr ("  [who] CRASHED with
 *  signal ... during where (pass N)", "  [who] exited with status ...") and
 *  in the error list @p errors (of @p cap bytes; entries led by "tag: "
 *  when @p tag is not NULL). Returns 1 if the child exited with status 0. */
int bench_child_verdict(const bench_child_end *end, const char *who, const char *tag,
                        const char *where, int pass, char *errors, size_t cap);

/** In the child: sends @p m, a message of the run's msg_size. */
void bench_child_send(const void *m);

/** In the child: enters @p stage (sent to the parent, which names it when
 *  the child crashes; the stage of later errors). */
void bench_child_stage(int stage);

/** In the child: sends the error "what: detail" (at most 20 and 310
 *  characters) with the current stage (0 before any). */
void bench_child_error(const char *what, const char *detail);

/** In the child: deletes and recreates the work directory @p dir; on
 *  failure sends the error "mkdir: <reason>" and returns -1. */
int bench_child_workdir(const char *dir);

/** This process's peak RSS so far, in KiB (getrusage ru_maxrss). */
uint64_t bench_maxrss_kb(void);

#endif /* SOP_BENCH_CHILD_H */
