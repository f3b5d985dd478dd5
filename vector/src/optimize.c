/* optimize.c - sop_vstore_optimize(): the online rebuild. Each step runs
 * in transactions of its own so that readers and writers go on:
 *   1. a READ transaction samples the active version and k-means trains
 *      the next centroids (no locks held, nothing written);
 *   2. one WRITE transaction creates the next version and records it in
 *      the config; from its commit on, every upsert and delete writes both
 *      versions (writers that read the old config fail with SOP_ECONFLICT
 *      and retry);
 *   3. WRITE transactions of `batch` items move the items, in id order,
 *      recording where they stopped (the progress record), so that a crash
 *      or a stop resumes there;
 *   4. one WRITE transaction flips the active version and drops the old.
 * A batch that conflicts with other writers is retried, halved. */
#include <errno.h>
#include <pthread.h>
#include <string.h>
#include <time.h>

#include "err.h"
#include "killpoint.h"
#include "mem.h"
#include "train.h"

#define LONG_TXN_MS (3600u * 1000u)
/* A step that keeps conflicting with other writers is retried (a batch at
 * half the size each time) for up to GIVE_UP_NS of consecutive conflicts,
 * then the optimize returns SOP_ECONFLICT (call it again). */
#define GIVE_UP_NS (30ull * 1000000000ull)
#define NOTHING 1 /* begin(): the store is empty, there is nothing to index */

/* optimizations running in this process: (db, name) */
typedef struct running {
    const sop_db *db;
    char name[VL_NAME_MAX + 1];
    struct running *next;
} running;
static pthread_mutex_t run_mu = PTHREAD_MUTEX_INITIALIZER;
static running *run_head;

static int run_enter(running *me)
{
    pthread_mutex_lock(&run_mu);
    for (running *r = run_head; r; r = r->next)
        if (r->db == me->db && strcmp(r->name, me->name) == 0) {
            pthread_mutex_unlock(&run_mu);
            return SOP_EBUSY;
        }
    me->next = run_head;
    run_head = me;
    pthread_mutex_unlock(&run_mu);
    return 0;
}

static void run_leave(running *me)
{
    pthread_mutex_lock(&run_mu);
    for (running **pp = &run_head; *pp; pp = &(*pp)->next)
        if (*pp == me) {
            *pp = me->next;
            break;
        }
    pthread_mutex_unlock(&run_mu);
}

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void backoff(int attempt)
{
    struct timespec ts = {0, (long)(1000000L * (attempt < 20 ? attempt + 1 : 20))};
    nanosleep(&ts, NULL);
}

/* Steps 1 and 2. Returns 0 once a next version exists, made here or by
 * another process (then its migration is resumed). */
static int begin(sop_db *db, const char *name, const sop_voptimize_options *o)
{
    uint64_t start = now_ns();
    for (int attempt = 0; now_ns() - start < GIVE_UP_NS; attempt++) {
        sop_txn *t = NULL;
        sop_vstore *vs;
        vc_cents *c = NULL;
        int rc = sop_txn_begin(db, SOP_TXN_READ, LONG_TXN_MS, &t);
        if (!rc)
            rc = sop_vstore_open(t, name, &vs);
        uint32_t active = 0, next = 0;
        uint64_t live = 0;
        if (!rc) {
            active = vs->cfg.active;
            next = vs->cfg.next;
            rc = sop_vstore_count(vs, &live);
            if (!rc && !next && live)
                rc = vs_train_next(vs, o->nlist, o->sample_max, &c);
        }
        sop_txn_rollback(t);
        if (rc || next)
            return rc;
        if (!live)
            return NOTHING;
        if ((rc = sop_txn_begin(db, SOP_TXN_WRITE, LONG_TXN_MS, &t))) {
            vc_discard(c);
            return rc;
        }
        rc = sop_vstore_open(t, name, &vs);
        if (!rc && vs->cfg.active == active && !vs->cfg.next) {
            rc = vs_begin_next(vs, c);
            c = NULL;
        }
        vc_discard(c);
        if (!rc)
            rc = sop_txn_commit(t);
        else
            sop_txn_rollback(t);
        if (rc != SOP_ECONFLICT)
            return rc;
        backoff(attempt);
    }
    return SOP_ECONFLICT;
}

/* Step 3, one batch; *done = 1 when every item has moved (or someone
 * else flipped already: *flipped). */
static int batch(sop_db *db, const char *name, uint32_t n, int *done, uint64_t *moved,
                 int *flipped)
{
    sop_txn *t;
    sop_vstore *vs;
    int rc = sop_txn_begin(db, SOP_TXN_WRITE, LONG_TXN_MS, &t);
    if (rc)
        return rc;
    rc = sop_vstore_open(t, name, &vs);
    vl_progress p;
    if (!rc && !vs->cfg.next) {
        *flipped = 1;
        sop_txn_rollback(t);
        return 0;
    }
    if (!rc)
        rc = vs_get_progress(vs, &p);
    if (!rc && !p.done)
        rc = vs_migrate_batch(vs, n, &p);
    if (rc) {
        sop_txn_rollback(t);
        return rc;
    }
    rc = sop_txn_commit(t);
    if (!rc) {
        SOP_KILL_POINT("vector:after_batch");
        *done = p.done;
        *moved = p.moved;
    }
    return rc;
}

static int flip(sop_db *db, const char *name, int *again)
{
    sop_txn *t;
    sop_vstore *vs;
    int rc = sop_txn_begin(db, SOP_TXN_WRITE, LONG_TXN_MS, &t);
    if (rc)
        return rc;
    rc = sop_vstore_open(t, name, &vs);
    vl_progress p;
    if (!rc && vs->cfg.next) {
        rc = vs_get_progress(vs, &p);
        if (!rc && !p.done)
            *again = 1;
        else if (!rc) {
            SOP_KILL_POINT("vector:before_flip");
            rc = vs_flip(vs);
        }
    }
    if (rc || *again) {
        sop_txn_rollback(t);
        return rc;
    }
    return sop_txn_commit(t);
}

int sop_vstore_optimize(sop_db *db, const char *name, const sop_voptimize_options *opts)
{
    if (!db)
        return -EINVAL;
    sop_voptimize_options o;
    sop_voptimize_options_init(&o);
    if (opts) {
        if (opts->struct_size < sizeof o)
            return sop__err(db, -EINVAL, "optimize: uninitialised sop_voptimize_options");
        o = *opts;
    }
    if (o.nlist > SOP_VECTOR_NLIST_MAX)
        return sop__err(db, -EINVAL, "optimize: nlist above %u", SOP_VECTOR_NLIST_MAX);
    if (!o.batch)
        o.batch = 5000;
    if (!name || strlen(name) > VL_NAME_MAX)
        return sop__err(db, SOP_ENAME, "invalid vector store name");
    running me = {.db = db};
    strcpy(me.name, name);
    if (run_enter(&me))
        return sop__err(db, SOP_EBUSY, "vector store %s: an optimize is running already", name);
    int rc = begin(db, name, &o);
    if (rc == NOTHING) {
        run_leave(&me);
        return 0;
    }
    uint64_t total = 0;
    if (!rc) { /* for progress reports */
        sop_txn *t;
        sop_vstore *vs;
        rc = sop_txn_begin(db, SOP_TXN_READ, 0, &t);
        if (!rc)
            rc = sop_vstore_open(t, name, &vs);
        if (!rc)
            rc = sop_store_count(vs->s_content, &total);
        sop_txn_rollback(t);
    }
    int again = 1, flipped = 0;
    while (!rc && again && !flipped) {
        int done = 0, fails = 0;
        uint64_t first_fail = 0;
        uint32_t n = o.batch;
        uint64_t moved = 0;
        while (!rc && !done && !flipped) {
            rc = batch(db, name, n, &done, &moved, &flipped);
            if (rc == SOP_ECONFLICT) {
                if (fails++ == 0)
                    first_fail = now_ns();
                if (now_ns() - first_fail < GIVE_UP_NS) {
                    n = n / 2 ? n / 2 : 1;
                    backoff(fails);
                    rc = 0;
                    continue;
                }
            }
            fails = 0;
            if (n < o.batch) /* back up after a success */
                n = o.batch - n > n ? 2 * n : o.batch;
            if (!rc && o.progress && (rc = o.progress(moved, total, o.progress_ctx)))
                break;
        }
        if (rc || flipped)
            break;
        rc = SOP_ECONFLICT;
        uint64_t start = now_ns();
        for (int attempt = 0; rc == SOP_ECONFLICT && now_ns() - start < GIVE_UP_NS; attempt++) {
            if (attempt)
                backoff(attempt);
            again = 0;
            rc = flip(db, name, &again);
        }
    }
    run_leave(&me);
    return rc;
}
