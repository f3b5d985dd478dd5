/* child.c - see child.h */
#include "child.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/time.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench_util.h"

#define MSG_MAX 4096 /* PIPE_BUF on Linux */

/* A message of any suite, aligned for its type. */
typedef union msg_buf {
    bench_msg head;
    long double align;
    unsigned char bytes[MSG_MAX];
} msg_buf;

/* The child's end of the pipe, its message size and its current stage. */
static int msg_fd = -1;
static size_t msg_size;
static int msg_stage;

void bench_child_send(const void *m) { bench_write_all(msg_fd, m, msg_size); }

/* Sends a message of the run's size with only a head. */
static void send_head(int kind, const char *text)
{
    msg_buf b;
    memset(&b, 0, msg_size);
    b.head.kind = kind;
    b.head.stage = msg_stage;
    if (text)
        snprintf(b.head.text, sizeof b.head.text, "%s", text);
    bench_child_send(&b);
}

void bench_child_stage(int stage)
{
    msg_stage = stage;
    send_head(BENCH_MSG_STAGE, NULL);
}

void bench_child_error(const char *what, const char *detail)
{
    char text[sizeof((bench_msg *)0)->text];
    snprintf(text, sizeof text, "%.20s: %.310s", what, detail);
    send_head(BENCH_MSG_ERROR, text);
}

int bench_child_workdir(const char *dir)
{
    bench_rmtree(dir);
    if (bench_mkdirs(dir) != 0) {
        bench_child_error("mkdir", strerror(errno));
        return -1;
    }
    return 0;
}

uint64_t bench_maxrss_kb(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (uint64_t)ru.ru_maxrss;
}

/* The child: runs c->main with the pipe's write end, then exits. */
static void child_side(const bench_child *c, int fd)
{
    msg_fd = fd;
    msg_size = c->msg_size;
    msg_stage = 0;
    if (c->timeout)
        alarm((unsigned)c->timeout);
    c->main(c->arg);
    close(msg_fd);
    _exit(0);
}

/* The parent: every message to c->on_msg; returns the last stage. */
static int collect(const bench_child *c, int fd)
{
    int stage = -1;
    msg_buf b;
    while (bench_read_all(fd, &b, c->msg_size) == 0) {
        if (b.head.kind == BENCH_MSG_STAGE)
            stage = b.head.stage;
        else
            c->on_msg(&b, c->arg);
    }
    return stage;
}

pid_t bench_fork_piped(int fds[2])
{
    if (pipe(fds) != 0)
        bench_die("pipe: %s", strerror(errno));
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid < 0)
        bench_die("fork: %s", strerror(errno));
    return pid;
}

void bench_child_run(const bench_child *c, bench_child_end *end)
{
    if (c->msg_size < sizeof(bench_msg) || c->msg_size > MSG_MAX)
        bench_die("message size %zu out of range", c->msg_size);
    int fds[2];
    pid_t pid = bench_fork_piped(fds);
    if (pid == 0) {
        close(fds[0]);
        child_side(c, fds[1]);
    }
    close(fds[1]);
    end->stage = collect(c, fds[0]);
    close(fds[0]);
    struct rusage ru;
    memset(&ru, 0, sizeof ru);
    while (wait4(pid, &end->status, 0, &ru) < 0) {
        if (errno != EINTR)
            bench_die("wait4: %s", strerror(errno));
    }
    end->maxrss_kb = (uint64_t)ru.ru_maxrss;
}

int bench_child_verdict(const bench_child_end *end, const char *who, const char *tag,
                        const char *where, int pass, char *errors, size_t cap)
{
    const char *sep = tag ? ": " : "";
    tag = tag ? tag : "";
    if (WIFSIGNALED(end->status)) {
        int sig = WTERMSIG(end->status);
        const char *what = sig == SIGALRM ? "timeout" : strsignal(sig);
        fprintf(stderr, "  [%s] CRASHED with signal %d (%s) during %s (pass %d)\n", who, sig, what,
                where, pass + 1);
        bench_append_err(errors, cap, "%s%scrashed with signal %d (%s) during %s", tag, sep, sig,
                         what, where);
        return 0;
    }
    if (WEXITSTATUS(end->status) != 0) {
        fprintf(stderr, "  [%s] exited with status %d during %s\n", who, WEXITSTATUS(end->status),
                where);
        bench_append_err(errors, cap, "%s%sexited with status %d during %s", tag, sep,
                         WEXITSTATUS(end->status), where);
        return 0;
    }
    return 1;
}
