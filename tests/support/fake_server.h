/* fake_server.h - starting and stopping the fake Ollama server
 * (tests/support/fake_ollama.c, path in $SOP_FAKE_OLLAMA) from a test. */
#ifndef SOP_TEST_FAKE_SERVER_H
#define SOP_TEST_FAKE_SERVER_H
#include <stdarg.h>
#include <sys/types.h>

typedef struct tu_fake {
    pid_t pid;
    char url[64];  /* http://127.0.0.1:<port> */
    char log[512]; /* its request log */
} tu_fake;

/** @brief Starts the fake with the options after @p name (a tu_tmpdir()
 *  name for its files), a NULL-terminated list, and waits (up to 10 s) for
 *  its port. @return 0, or -1 after printing why to stderr. */
int tu_fake_start(tu_fake *s, const char *name, ...);
int tu_fake_startv(tu_fake *s, const char *name, va_list ap);

/** @brief Stops it (SIGTERM) and waits for it. */
void tu_fake_stop(tu_fake *s);

/** @brief The number of requests it logged. */
int tu_fake_requests(const tu_fake *s);

#endif
