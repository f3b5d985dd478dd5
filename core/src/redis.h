/*
 * redis.h - the engine's Redis client: the one file that knows hiredis
 * (redis.c). Replies are copied into sop__rval, so no hiredis type leaves
 * redis.c.
 *
 * A client connects lazily, at its first call, and again after any
 * failure: a call that cannot be sent or answered within the timeout
 * drops the connection and fails with SOP_EREDIS, and the next call
 * reconnects (connect, AUTH, SELECT, INFO server for the run id). So a
 * restarted server is noticed as a new connection with a new run id.
 * Calls are serialised by a mutex (thread-safe, one command at a time).
 */
#ifndef SOP_REDIS_H
#define SOP_REDIS_H
#include <stddef.h>
#include <stdint.h>

typedef struct sop__redis sop__redis;

enum { SOP__R_NIL, SOP__R_INT, SOP__R_STR, SOP__R_ARR, SOP__R_STATUS };

typedef struct sop__rval {
    int type;
    long long i;          /* SOP__R_INT */
    char *s;              /* SOP__R_STR / SOP__R_STATUS, NUL-terminated */
    size_t len;
    size_t n;             /* SOP__R_ARR */
    struct sop__rval *a;
} sop__rval;

/* Parses @url ("redis://[:password@]host[:port][/db]", "host:port" or
 * "host") without connecting. -EINVAL with a message in @err on a bad URL. */
int sop__redis_new(const char *url, uint32_t timeout_ms, sop__redis **out, char *err,
                   size_t errlen);
void sop__redis_free(sop__redis *r);

/* Sends one command (binary-safe arguments) and returns its reply in *out
 * (free with sop__rval_free). SOP_EREDIS when the server cannot be reached
 * or does not answer in time, or answers with an error (its text in @err);
 * -ENOMEM. */
int sop__redis_call(sop__redis *r, int argc, const char *const *argv, const size_t *lens,
                    sop__rval **out, char *err, size_t errlen);
/* The same with NUL-terminated arguments. */
int sop__redis_callv(sop__redis *r, sop__rval **out, char *err, size_t errlen, int argc, ...);
void sop__rval_free(sop__rval *v);

/* The run id of the server of the current (or last) connection, and how
 * many connections were made so far. */
void sop__redis_run_id(sop__redis *r, char out[48]);
uint64_t sop__redis_connections(sop__redis *r);
/* Calls made and calls that failed (round trips). */
uint64_t sop__redis_calls(sop__redis *r);
const char *sop__redis_addr(const sop__redis *r);

#endif
