/* redis_server.c - see redis_server.h. */
#include "redis_server.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
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

/* Asks the server on the port for its process id (INFO server): the pid,
 * 0 when nothing answers. A server of someone else's on a port we chose
 * answers too, so spawn() compares the pid with its child's. */
static long server_pid(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        return 0;
    struct sockaddr_in a = {0};
    a.sin_family = AF_INET;
    a.sin_port = htons((uint16_t)port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    long pid = 0;
    static const char cmd[] = "INFO server\r\n";
    if (connect(fd, (struct sockaddr *)&a, sizeof a) == 0 && write(fd, cmd, sizeof cmd - 1) > 0) {
        char buf[4096];
        size_t n = 0;
        struct timeval tv = {1, 0};
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        while (n < sizeof buf - 1) {
            ssize_t got = read(fd, buf + n, sizeof buf - 1 - n);
            if (got <= 0)
                break;
            n += (size_t)got;
            buf[n] = 0;
            const char *p = strstr(buf, "process_id:");
            if (p && strchr(p, '\n')) {
                pid = strtol(p + 11, NULL, 10);
                break;
            }
        }
    }
    close(fd);
    return pid;
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
        prctl(PR_SET_PDEATHSIG, SIGKILL); /* no server left behind by a killed test */
        execlp("redis-server", "redis-server", "--port", port, "--bind", "127.0.0.1", "--save", "",
               "--appendonly", "no", "--dir", r->dir, "--logfile", log, "--daemonize", "no",
               (char *)NULL);
        _exit(127);
    }
    for (int i = 0; i < 500; i++) { /* up to 5 s */
        if (server_pid(r->port) == (long)pid) {
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
        if (server_pid(r->port))
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
