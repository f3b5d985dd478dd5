/* redis_server.h - a real redis-server on a loopback port, started and
 * stopped by a test (test support only). No persistence (--save "",
 * --appendonly no), so a kill or restart loses every key, as a crash of an
 * unpersisted Redis does. */
#ifndef TU_REDIS_SERVER_H
#define TU_REDIS_SERVER_H
#include <sys/types.h>

typedef struct tu_redis {
    pid_t pid;  /* 0: not running */
    int port;
    char dir[512];
    char url[64]; /* "redis://127.0.0.1:<port>" */
} tu_redis;

/* Starts a server on a free port in a fresh directory under tu_tmpdir().
 * 0; 77 when redis-server is not installed (the test then skips); -1. */
int tu_redis_start(tu_redis *r, const char *name);
/* Starts it again on the same port (after tu_redis_kill). 0 or -1. */
int tu_redis_restart(tu_redis *r);
/* SIGKILL and wait. */
void tu_redis_kill(tu_redis *r);
/* Runs one command through redis-cli (e.g. "FLUSHALL"); its exit status. */
int tu_redis_cli(tu_redis *r, const char *cmd);

#endif
