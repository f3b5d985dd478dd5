/* fake_server.c - see fake_server.h. */
#include "fake_server.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include "testutil.h"

int tu_fake_startv(tu_fake *s, const char *name, va_list ap)
{
    const char *bin = getenv("SOP_FAKE_OLLAMA");
    if (!bin) {
        fprintf(stderr, "SOP_FAKE_OLLAMA is not set\n");
        return -1;
    }
    const char *dir = tu_tmpdir(name);
    char portf[512];
    snprintf(portf, sizeof portf, "%s/port", dir);
    snprintf(s->log, sizeof s->log, "%s/log", dir);
    const char *argv[32] = {"fake_ollama", "--port-file", portf, "--log", s->log};
    int n = 5;
    for (const char *a; (a = va_arg(ap, const char *)) != NULL && n < 31;)
        argv[n++] = a;
    argv[n] = NULL;
    s->pid = fork();
    if (s->pid < 0) {
        perror("fork");
        return -1;
    }
    if (s->pid == 0) {
        execv(bin, (char *const *)argv);
        _exit(127);
    }
    for (int i = 0; i < 1000; i++) { /* up to 10 s */
        FILE *f = fopen(portf, "r");
        int port = 0;
        if (f) {
            int ok = fscanf(f, "%d", &port) == 1;
            fclose(f);
            if (ok) {
                snprintf(s->url, sizeof s->url, "http://127.0.0.1:%d", port);
                return 0;
            }
        }
        int st;
        if (waitpid(s->pid, &st, WNOHANG) != 0) {
            fprintf(stderr, "the fake server exited at start\n");
            return -1;
        }
        usleep(10000);
    }
    fprintf(stderr, "the fake server did not start\n");
    tu_fake_stop(s);
    return -1;
}

int tu_fake_start(tu_fake *s, const char *name, ...)
{
    va_list ap;
    va_start(ap, name);
    int rc = tu_fake_startv(s, name, ap);
    va_end(ap);
    return rc;
}

void tu_fake_stop(tu_fake *s)
{
    kill(s->pid, SIGTERM);
    int st;
    waitpid(s->pid, &st, 0);
}

int tu_fake_requests(const tu_fake *s)
{
    FILE *f = fopen(s->log, "r");
    int n = 0, c;
    if (!f)
        return 0;
    while ((c = fgetc(f)) != EOF)
        n += c == '\n';
    fclose(f);
    return n;
}
