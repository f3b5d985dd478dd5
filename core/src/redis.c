/*
 * redis.c - the engine's Redis client over hiredis 0.14 (see redis.h).
 * hiredis allocates with malloc (0.14 has no allocator hooks); its memory
 * never leaves this file: replies are copied into sop__rval.
 */
#include <errno.h>
#include <hiredis/hiredis.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include "mem.h"
#include "redis.h"
#include "sop/sop.h"

struct sop__redis {
    pthread_mutex_t mu;
    redisContext *c;
    char host[256];
    int port;
    int dbno;
    char password[256];
    char addr[300];
    uint32_t timeout_ms;
    char run_id[48];
    uint64_t nconn;
    atomic_uint_fast64_t ncalls;
};

int sop__redis_new(const char *url, uint32_t timeout_ms, sop__redis **out, char *err,
                   size_t errlen)
{
    *out = NULL;
    if (!url || !*url) {
        snprintf(err, errlen, "no Redis address given");
        return -EINVAL;
    }
    sop__redis *r = sop__calloc(1, sizeof *r);
    if (!r)
        return -ENOMEM;
    r->port = 6379;
    r->timeout_ms = timeout_ms ? timeout_ms : 2000;
    const char *p = url;
    if (!strncmp(p, "redis://", 8))
        p += 8;
    const char *at = strrchr(p, '@');
    if (at) {
        const char *pw = memchr(p, ':', (size_t)(at - p));
        pw = pw ? pw + 1 : p; /* "user:pass@" or "pass@": the user is ignored */
        size_t n = (size_t)(at - pw);
        if (n >= sizeof r->password)
            goto bad;
        memcpy(r->password, pw, n);
        p = at + 1;
    }
    const char *slash = strchr(p, '/');
    const char *end = slash ? slash : p + strlen(p);
    const char *colon = memchr(p, ':', (size_t)(end - p));
    const char *hend = colon ? colon : end;
    if (hend == p || (size_t)(hend - p) >= sizeof r->host)
        goto bad;
    memcpy(r->host, p, (size_t)(hend - p));
    if (colon) {
        char *e;
        long v = strtol(colon + 1, &e, 10);
        if (e != end || v <= 0 || v > 65535)
            goto bad;
        r->port = (int)v;
    }
    if (slash && slash[1]) {
        char *e;
        long v = strtol(slash + 1, &e, 10);
        if (*e || v < 0 || v > 1000000)
            goto bad;
        r->dbno = (int)v;
    }
    snprintf(r->addr, sizeof r->addr, "%s:%d/%d", r->host, r->port, r->dbno);
    pthread_mutex_init(&r->mu, NULL);
    *out = r;
    return 0;
bad:
    at = strrchr(url, '@'); /* never echo a password into a message that may be logged */
    snprintf(err, errlen,
             "bad Redis address \"%s%s\" (expected redis://[:password@]host[:port][/db])",
             at ? "redis://***@" : url, at ? at + 1 : "");
    sop__free(r);
    return -EINVAL;
}

void sop__redis_free(sop__redis *r)
{
    if (!r)
        return;
    if (r->c)
        redisFree(r->c);
    pthread_mutex_destroy(&r->mu);
    sop__free(r);
}

static void drop(sop__redis *r)
{
    if (r->c)
        redisFree(r->c);
    r->c = NULL;
}

static struct timeval tv_of(uint32_t ms)
{
    struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)(ms % 1000) * 1000};
    return tv;
}

/* mu held: one command on the raw context. */
static redisReply *raw(sop__redis *r, int argc, const char *const *argv, const size_t *lens,
                       char *err, size_t errlen)
{
    atomic_fetch_add(&r->ncalls, 1);
    redisReply *rep = redisCommandArgv(r->c, argc, (const char **)argv, lens);
    if (!rep) {
        snprintf(err, errlen, "Redis at %s: %s", r->addr, r->c->errstr[0] ? r->c->errstr : "no answer");
        drop(r);
    }
    return rep;
}

static int connect_locked(sop__redis *r, char *err, size_t errlen)
{
    redisContext *c = redisConnectWithTimeout(r->host, r->port, tv_of(r->timeout_ms));
    if (!c) {
        snprintf(err, errlen, "cannot reach Redis at %s: out of memory", r->addr);
        return SOP_EREDIS;
    }
    if (c->err) {
        snprintf(err, errlen, "cannot reach Redis at %s: %s", r->addr, c->errstr);
        redisFree(c);
        return SOP_EREDIS;
    }
    if (redisSetTimeout(c, tv_of(r->timeout_ms)) != REDIS_OK) {
        snprintf(err, errlen, "Redis at %s: cannot set the timeout", r->addr);
        redisFree(c);
        return SOP_EREDIS;
    }
    redisEnableKeepAlive(c);
    r->c = c;
    redisReply *rep;
    if (r->password[0]) {
        const char *a[] = {"AUTH", r->password};
        size_t l[] = {4, strlen(r->password)};
        if (!(rep = raw(r, 2, a, l, err, errlen)))
            return SOP_EREDIS;
        int bad = rep->type == REDIS_REPLY_ERROR;
        if (bad)
            snprintf(err, errlen, "Redis at %s refused the password: %s", r->addr, rep->str);
        freeReplyObject(rep);
        if (bad) {
            drop(r);
            return SOP_EREDIS;
        }
    }
    if (r->dbno) {
        char num[16];
        snprintf(num, sizeof num, "%d", r->dbno);
        const char *a[] = {"SELECT", num};
        size_t l[] = {6, strlen(num)};
        if (!(rep = raw(r, 2, a, l, err, errlen)))
            return SOP_EREDIS;
        int bad = rep->type == REDIS_REPLY_ERROR;
        if (bad)
            snprintf(err, errlen, "Redis at %s: SELECT %d: %s", r->addr, r->dbno, rep->str);
        freeReplyObject(rep);
        if (bad) {
            drop(r);
            return SOP_EREDIS;
        }
    }
    const char *a[] = {"INFO", "server"};
    size_t l[] = {4, 6};
    if (!(rep = raw(r, 2, a, l, err, errlen)))
        return SOP_EREDIS;
    r->run_id[0] = 0;
    if (rep->type == REDIS_REPLY_STRING || rep->type == REDIS_REPLY_STATUS) {
        const char *p = strstr(rep->str, "run_id:");
        if (p) {
            p += 7;
            size_t n = strcspn(p, "\r\n");
            if (n >= sizeof r->run_id)
                n = sizeof r->run_id - 1;
            memcpy(r->run_id, p, n);
            r->run_id[n] = 0;
        }
    }
    freeReplyObject(rep);
    r->nconn++;
    return 0;
}

static int copy(const redisReply *rep, sop__rval *v)
{
    memset(v, 0, sizeof *v);
    switch (rep->type) {
    case REDIS_REPLY_INTEGER:
        v->type = SOP__R_INT;
        v->i = rep->integer;
        return 0;
    case REDIS_REPLY_STRING:
    case REDIS_REPLY_STATUS:
        v->type = rep->type == REDIS_REPLY_STRING ? SOP__R_STR : SOP__R_STATUS;
        v->s = sop__malloc(rep->len + 1);
        if (!v->s)
            return -ENOMEM;
        memcpy(v->s, rep->str, rep->len);
        v->s[rep->len] = 0;
        v->len = rep->len;
        return 0;
    case REDIS_REPLY_ARRAY:
        v->type = SOP__R_ARR;
        if (!rep->elements)
            return 0;
        v->a = sop__calloc(rep->elements, sizeof *v->a);
        if (!v->a)
            return -ENOMEM;
        v->n = rep->elements;
        for (size_t i = 0; i < rep->elements; i++) {
            int rc = copy(rep->element[i], &v->a[i]);
            if (rc)
                return rc;
        }
        return 0;
    default:
        v->type = SOP__R_NIL;
        return 0;
    }
}

static void rval_clear(sop__rval *v)
{
    if (v->type == SOP__R_ARR)
        for (size_t i = 0; i < v->n; i++)
            rval_clear(&v->a[i]);
    sop__free(v->a);
    sop__free(v->s);
}

void sop__rval_free(sop__rval *v)
{
    if (!v)
        return;
    rval_clear(v);
    sop__free(v);
}

int sop__redis_call(sop__redis *r, int argc, const char *const *argv, const size_t *lens,
                    sop__rval **out, char *err, size_t errlen)
{
    *out = NULL;
    pthread_mutex_lock(&r->mu);
    int rc = 0;
    if (!r->c)
        rc = connect_locked(r, err, errlen);
    redisReply *rep = rc ? NULL : raw(r, argc, argv, lens, err, errlen);
    if (!rc && !rep)
        rc = SOP_EREDIS;
    pthread_mutex_unlock(&r->mu);
    if (rc)
        return rc;
    if (rep->type == REDIS_REPLY_ERROR) {
        snprintf(err, errlen, "Redis at %s: %s", r->addr, rep->str);
        freeReplyObject(rep);
        return SOP_EREDIS;
    }
    sop__rval *v = sop__calloc(1, sizeof *v);
    rc = v ? copy(rep, v) : -ENOMEM;
    freeReplyObject(rep);
    if (rc) {
        sop__rval_free(v);
        return rc;
    }
    *out = v;
    return 0;
}

int sop__redis_callv(sop__redis *r, sop__rval **out, char *err, size_t errlen, int argc, ...)
{
    const char *argv[16];
    size_t lens[16];
    if (argc > 16)
        return -EINVAL;
    va_list ap;
    va_start(ap, argc);
    for (int i = 0; i < argc; i++) {
        argv[i] = va_arg(ap, const char *);
        lens[i] = strlen(argv[i]);
    }
    va_end(ap);
    return sop__redis_call(r, argc, argv, lens, out, err, errlen);
}

void sop__redis_run_id(sop__redis *r, char out[48])
{
    pthread_mutex_lock(&r->mu);
    memcpy(out, r->run_id, 48);
    pthread_mutex_unlock(&r->mu);
}

uint64_t sop__redis_connections(sop__redis *r)
{
    pthread_mutex_lock(&r->mu);
    uint64_t n = r->nconn;
    pthread_mutex_unlock(&r->mu);
    return n;
}

uint64_t sop__redis_calls(sop__redis *r) { return atomic_load(&r->ncalls); }

const char *sop__redis_addr(const sop__redis *r) { return r->addr; }
