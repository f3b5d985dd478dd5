/* centcache.c - the process-wide centroid cache: a list under one mutex,
 * the most recently used first; sets nobody references are freed, oldest
 * first, while the cache holds more than VC_LIMIT bytes. */
#include "centcache.h"

#include <pthread.h>
#include <stdatomic.h>
#include <time.h>
#include <unistd.h>

#include "mem.h"
#include "rng.h"
#include "vmath.h"

#define VC_LIMIT ((size_t)256 << 20)

static pthread_mutex_t vc_mu = PTHREAD_MUTEX_INITIALIZER;
static vc_cents *vc_head;
static size_t vc_bytes;

static size_t cents_bytes(const vc_cents *c) { return (size_t)c->n * (c->dims + 1) * sizeof(float); }

static void cents_free(vc_cents *c)
{
    if (!c)
        return;
    sop__free(c->c);
    sop__free(c->norms);
    sop__free(c);
}

vc_cents *vc_new(uint64_t uid, uint32_t n, uint32_t dims)
{
    vc_cents *c = sop__calloc(1, sizeof *c);
    if (!c)
        return NULL;
    c->uid = uid;
    c->n = n;
    c->dims = dims;
    c->refs = 1;
    c->c = sop__calloc((size_t)n * dims, sizeof(float));
    c->norms = sop__calloc(n, sizeof(float));
    if (!c->c || !c->norms) {
        cents_free(c);
        return NULL;
    }
    return c;
}

void vc_discard(vc_cents *c) { cents_free(c); }

vc_cents *vc_get(uint64_t uid, uint32_t n, uint32_t dims)
{
    pthread_mutex_lock(&vc_mu);
    vc_cents **pp = &vc_head, *c;
    while ((c = *pp) && !(c->uid == uid && c->n == n && c->dims == dims))
        pp = &c->next;
    if (c) {
        c->refs++;
        *pp = c->next; /* to the front */
        c->next = vc_head;
        vc_head = c;
    }
    pthread_mutex_unlock(&vc_mu);
    return c;
}

static void trim_locked(void)
{
    while (vc_bytes > VC_LIMIT) {
        vc_cents **victim = NULL;
        for (vc_cents **pp = &vc_head; *pp; pp = &(*pp)->next)
            if ((*pp)->refs == 0)
                victim = pp;
        if (!victim)
            return;
        vc_cents *c = *victim;
        *victim = c->next;
        vc_bytes -= cents_bytes(c);
        cents_free(c);
    }
}

vc_cents *vc_put(vc_cents *c)
{
    pthread_mutex_lock(&vc_mu);
    for (vc_cents *o = vc_head; o; o = o->next)
        if (o->uid == c->uid && o->n == c->n && o->dims == c->dims) {
            o->refs++;
            pthread_mutex_unlock(&vc_mu);
            cents_free(c);
            return o;
        }
    c->next = vc_head;
    vc_head = c;
    vc_bytes += cents_bytes(c);
    trim_locked();
    pthread_mutex_unlock(&vc_mu);
    return c;
}

void vc_release(vc_cents *c)
{
    if (!c)
        return;
    pthread_mutex_lock(&vc_mu);
    c->refs--;
    trim_locked();
    pthread_mutex_unlock(&vc_mu);
}

void vc_clear(void)
{
    pthread_mutex_lock(&vc_mu);
    for (vc_cents **pp = &vc_head; *pp;) {
        vc_cents *c = *pp;
        if (c->refs) {
            pp = &c->next;
            continue;
        }
        *pp = c->next;
        vc_bytes -= cents_bytes(c);
        cents_free(c);
    }
    pthread_mutex_unlock(&vc_mu);
}

uint64_t vc_new_uid(void)
{
    static _Atomic uint64_t counter;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    uint64_t s = (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
    s ^= (uint64_t)getpid() << 40;
    s ^= atomic_fetch_add(&counter, 1) * 0x9e3779b97f4a7c15ull;
    uint64_t u = sop__rng_next(&s);
    return u ? u : 1;
}
