/* redis_server.c - see redis_server.h. */
#include "redis_server.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "testutil.h"

static int have_server(void)
{
    return system("command -v redis-server >/dev/null 2>&1") == 0;
}

/* PING on the port: 1 when "+PONG" comes back. */
static int ping(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        return 0;
    struct sockaddr_in a = {0};
    a.sin_family = AF_INET;
    a.sin_port = htons((uint16_t)port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int ok = 0;
    if (connect(fd, (struct sockaddr *)&a, sizeof a) == 0 && write(fd, "PING\r\n", 6) == 6) {
        char buf[16] = {0};
        struct timeval tv = {1, 0};
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        ok = read(fd, buf, sizeof buf - 1) > 0 && !strncmp(buf, "+PONG", 5);
    }
    close(fd);
    return ok;
}

static int spawn(tu_redis *r)
{
    char port[16], log[600];
    snprintf(port, sizeof port, "%d", r->port);
    snprintf(log, sizeof log, "%s/redis.log", r->dir);
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        execlp("redis-server", "redis-server", "--port", port, "--bind", "127.0.0.1", "--save", "",
               "--appendonly", "no", "--dir", r->dir, "--logfile", log, "--daemonize", "no",
               (char *)NULL);
        _exit(127);
    }
    for (int i = 0; i < 500; i++) { /* up to 5 s */
        if (ping(r->port)) {
            r->pid = pid;
            return 0;
        }
        int st;
        if (waitpid(pid, &st, WNOHANG) == pid)
            return -1; /* exited: port taken? */
        usleep(10000);
    }
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    return -1;
}

int tu_redis_start(tu_redis *r, const char *name)
{
    memset(r, 0, sizeof *r);
    if (!have_server())
        return 77;
    snprintf(r->dir, sizeof r->dir, "%s", tu_tmpdir(name));
    mkdir(r->dir, 0700);
    unsigned seed = (unsigned)time(NULL) ^ (unsigned)getpid() * 2654435761u;
    for (int tries = 0; tries < 20; tries++) {
        r->port = 20000 + (int)(rand_r(&seed) % 30000);
        if (ping(r->port))
            continue; /* someone else's */
        if (spawn(r) == 0) {
            snprintf(r->url, sizeof r->url, "redis://127.0.0.1:%d", r->port);
            return 0;
        }
    }
    return -1;
}

int tu_redis_restart(tu_redis *r)
{
    for (int tries = 0; tries < 50; tries++) {
        if (spawn(r) == 0)
            return 0;
        usleep(100000); /* the port may linger */
    }
    return -1;
}

void tu_redis_kill(tu_redis *r)
{
    if (!r->pid)
        return;
    kill(r->pid, SIGKILL);
    waitpid(r->pid, NULL, 0);
    r->pid = 0;
}

int tu_redis_cli(tu_redis *r, const char *cmd)
{
    char buf[256];
    snprintf(buf, sizeof buf, "redis-cli -p %d %s >/dev/null 2>&1", r->port, cmd);
    return system(buf);
}
