/*
 * crash_vector.c - kills during a vector bulk load and during optimize.
 *
 * Each iteration forks a child on one database (SOP_SYNC_FULL). Even
 * iterations load: batches of BATCH items with ids next, next + 1, ...
 * (vector = f(id)) through sop_vstore_upsert_batch, one transaction each,
 * acknowledging each committed batch on a pipe. Odd iterations run
 * sop_vstore_optimize() in small batches. The child is killed by the parent
 * after a random 0-60 ms, or by itself at a kill point of the engine or of
 * the optimize (SOP_KILLPOINT, needs -DSOP_TESTING=ON).
 * After each kill the parent reopens the database and checks:
 *   - sop_db_check() is clean;
 *   - the store holds exactly the ids 0..count-1, count a multiple of BATCH
 *     (a batch is all or nothing), every acknowledged batch present, at most
 *     one more;
 *   - every item's vector is f(id), and an exhaustive query for it returns
 *     it first at distance 0; a default query agrees with brute force on a
 *     few items (recall of the index as it stands);
 * and at the end that a last optimize completes (resumes) and leaves the
 * store trained with the same content.
 * Prints "vector-kill: <cases> cases, <lost> lost, <partial> partial,
 * <corrupt> corrupt"; exit status 1 unless the last three are 0.
 * Environment: SOP_VKILL_ITERS (default 16), SOP_TEST_SEED.
 */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "sop/sop.h"
#include "sop/vector.h"
#include "testutil.h"

#define D 16
#define BATCH 200
#define STORE "vk"

static const char *const KILLPOINTS[] = {
    "commit:after_append", "commit:after_sync", "vector:after_batch", "vector:before_flip",
    "log:extend",
};
#define NKP (sizeof KILLPOINTS / sizeof KILLPOINTS[0])

static void vec_of(uint64_t id, float *v)
{
    uint64_t s = id * 7919 + 1;
    for (int j = 0; j < D; j++)
        v[j] = (float)(tu_rand_below(&s, 2000)) / 100.0f - 10.0f + (float)(id % 8) * 5.0f;
}

static void idstr(char *out, uint64_t i) { snprintf(out, 24, "%" PRIu64, i); }

static sop_db *open_db(const char *dir)
{
    sop_db_options o;
    sop_db_options_init(&o);
    o.sync = SOP_SYNC_FULL;
    sop_db *db = NULL;
    int rc = sop_db_open(dir, &o, &db);
    if (rc) {
        fprintf(stderr, "open: %s: %s\n", sop_strerror(rc), sop_db_errmsg(db));
        sop_db_close(db);
        return NULL;
    }
    return db;
}

static uint64_t stored_count(sop_db *db)
{
    sop_txn *t;
    sop_vstore *vs;
    uint64_t n = 0;
    if (sop_txn_begin(db, SOP_TXN_READ, 0, &t))
        return 0;
    if (sop_vstore_open(t, STORE, &vs) == 0)
        sop_vstore_count(vs, &n);
    sop_txn_rollback(t);
    return n;
}

static void child_load(const char *dir, int ack)
{
    sop_db *db = open_db(dir);
    if (!db)
        _exit(3);
    sop_txn *t;
    sop_vstore *vs;
    if (sop_txn_begin(db, SOP_TXN_WRITE, 0, &t))
        _exit(3);
    if (sop_vstore_open(t, STORE, &vs) == SOP_ENOTFOUND) {
        sop_vstore_options o;
        sop_vstore_options_init(&o);
        o.dims = D;
        o.metric = SOP_METRIC_L2;
        o.nlist = 8;
        o.train_at = UINT32_MAX;
        if (sop_vstore_create(t, STORE, &o, &vs) || sop_txn_commit(t))
            _exit(3);
    } else {
        sop_txn_rollback(t);
    }
    uint64_t next = stored_count(db);
    static float x[BATCH * D];
    static char ids[BATCH][24];
    sop_vitem items[BATCH];
    for (int b = 0; b < 20; b++) {
        for (int i = 0; i < BATCH; i++) {
            idstr(ids[i], next + (uint64_t)i);
            vec_of(next + (uint64_t)i, x + i * D);
            items[i] = (sop_vitem){ids[i], strlen(ids[i]), x + i * D, D, NULL, 0};
        }
        if (sop_txn_begin(db, SOP_TXN_WRITE, 0, &t) || sop_vstore_open(t, STORE, &vs) ||
            sop_vstore_upsert_batch(vs, items, BATCH) || sop_txn_commit(t))
            _exit(4);
        next += BATCH;
        if (write(ack, &next, sizeof next) != sizeof next)
            _exit(5);
    }
    sop_db_close(db);
    _exit(0);
}

static void child_optimize(const char *dir)
{
    sop_db *db = open_db(dir);
    if (!db)
        _exit(3);
    sop_voptimize_options o;
    sop_voptimize_options_init(&o);
    o.batch = 50;
    int rc = sop_vstore_optimize(db, STORE, &o);
    if (rc && rc != SOP_ENOTFOUND) {
        fprintf(stderr, "vector-kill: optimize: %s: %s\n", sop_strerror(rc), sop_db_errmsg(db));
        _exit(4);
    }
    sop_db_close(db);
    _exit(0);
}

typedef struct tally {
    uint64_t cases, lost, partial, corrupt;
} tally;

static void problem(uint64_t *counter, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void problem(uint64_t *counter, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "vector-kill: ");
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    (*counter)++;
}

static void on_check(const char *p, void *ctx)
{
    (void)ctx;
    fprintf(stderr, "vector-kill: check: %s\n", p);
}

/* Verifies the database; returns the item count. */
static uint64_t verify(const char *dir, uint64_t acked, tally *t)
{
    sop_db *db = open_db(dir);
    if (!db) {
        problem(&t->corrupt, "cannot reopen");
        return acked;
    }
    uint64_t nprob = 0;
    if (sop_db_check(db, on_check, NULL, &nprob) != 0 || nprob)
        problem(&t->corrupt, "sop_db_check found %" PRIu64 " problems", nprob);
    sop_txn *txn;
    sop_vstore *vs;
    uint64_t n = 0;
    if (sop_txn_begin(db, SOP_TXN_READ, 0, &txn)) {
        problem(&t->corrupt, "cannot begin");
        sop_db_close(db);
        return acked;
    }
    int rc = sop_vstore_open(txn, STORE, &vs);
    if (rc == SOP_ENOTFOUND && acked == 0) {
        sop_txn_rollback(txn);
        sop_db_close(db);
        return 0;
    }
    if (rc || sop_vstore_count(vs, &n)) {
        problem(&t->corrupt, "cannot open the store: %s: %s", sop_strerror(rc),
                sop_db_errmsg(db));
        sop_txn_rollback(txn);
        sop_db_close(db);
        return acked;
    }
    if (n < acked)
        problem(&t->lost, "%" PRIu64 " items, %" PRIu64 " acknowledged", n, acked);
    if (n % BATCH || n > acked + BATCH)
        problem(&t->partial, "%" PRIu64 " items after %" PRIu64 " acknowledged", n, acked);
    for (uint64_t i = 0; i < n; i++) {
        char id[24];
        float want[D], got[D];
        idstr(id, i);
        vec_of(i, want);
        rc = sop_vstore_get(vs, id, strlen(id), got, NULL);
        if (rc || memcmp(want, got, sizeof got) != 0) {
            problem(rc == SOP_ENOTFOUND ? &t->lost : &t->corrupt, "item %s: %s", id,
                    rc ? sop_strerror(rc) : "wrong vector");
            break;
        }
        if (i % 97 == 0) { /* exhaustive query: itself, at distance 0 */
            sop_vquery q;
            sop_vquery_init(&q);
            q.vec = want;
            q.dims = D;
            q.k = 1;
            q.nprobe = SOP_VECTOR_NLIST_MAX;
            sop_vhit h;
            uint32_t nh = 0;
            rc = sop_vstore_query(vs, &q, &h, &nh);
            if (rc || nh != 1 || h.score != 0.0f) {
                problem(&t->corrupt, "query for item %s: %s, %u hits, score %g", id,
                        sop_strerror(rc), nh, nh ? (double)h.score : -1.0);
                break;
            }
        }
    }
    sop_txn_rollback(txn);
    sop_db_close(db);
    return n;
}

int main(void)
{
    const char *dir = tu_tmpdir("db");
    int iters = getenv("SOP_VKILL_ITERS") ? atoi(getenv("SOP_VKILL_ITERS")) : 16;
    uint64_t seed = tu_seed(), rs = seed;
    tally t = {0};
    uint64_t acked = 0;
    uint32_t version = 0;
    for (int it = 0; it < iters; it++) {
        int fds[2];
        if (pipe(fds) != 0)
            return 2;
        int optimize = it % 2 == 1;
        const char *kp = NULL;
        char kpbuf[64];
        if (tu_rand_below(&rs, 2)) {
            kp = KILLPOINTS[tu_rand_below(&rs, NKP)];
            snprintf(kpbuf, sizeof kpbuf, "%s:%u", kp, (unsigned)(1 + tu_rand_below(&rs, 6)));
        }
        pid_t pid = fork();
        if (pid == 0) {
            close(fds[0]);
            if (kp)
                setenv("SOP_KILLPOINT", kpbuf, 1);
            if (optimize)
                child_optimize(dir);
            child_load(dir, fds[1]);
        }
        close(fds[1]);
        if (!kp) {
            struct timespec ts = {0, (long)tu_rand_below(&rs, 60) * 1000000L};
            nanosleep(&ts, NULL);
            kill(pid, SIGKILL);
        }
        uint64_t v;
        while (read(fds[0], &v, sizeof v) == sizeof v)
            acked = v;
        close(fds[0]);
        int st;
        waitpid(pid, &st, 0);
        if (WIFEXITED(st) && WEXITSTATUS(st) != 0)
            problem(&t.corrupt, "child (%s) failed with status %d", optimize ? "optimize" : "load",
                    WEXITSTATUS(st));
        t.cases++;
        uint64_t n = verify(dir, acked, &t);
        if (n > acked)
            acked = n; /* the batch in flight committed */
    }
    /* a last optimize resumes whatever was interrupted and completes */
    sop_db *db = open_db(dir);
    if (db) {
        sop_voptimize_options o;
        sop_voptimize_options_init(&o);
        int rc = sop_vstore_optimize(db, STORE, &o);
        if (rc && !(rc == SOP_ENOTFOUND && acked == 0))
            problem(&t.corrupt, "final optimize: %s: %s", sop_strerror(rc), sop_db_errmsg(db));
        sop_txn *txn;
        sop_vstore *vs;
        sop_vstore_stat st;
        if (!rc && !sop_txn_begin(db, SOP_TXN_READ, 0, &txn)) {
            if (sop_vstore_open(txn, STORE, &vs) == 0 && sop_vstore_stats(vs, &st, NULL, 0) == 0 &&
                (!st.trained || st.optimizing))
                problem(&t.corrupt, "after the final optimize: trained %d optimizing %d",
                        st.trained, st.optimizing);
            version = st.version;
            sop_txn_rollback(txn);
        }
        sop_db_close(db);
        t.cases++;
        verify(dir, acked, &t);
    }
    printf("vector-kill: %" PRIu64 " items, index version %u at the end\n", acked, version);
    printf("vector-kill: %" PRIu64 " cases, %" PRIu64 " lost, %" PRIu64 " partial, %" PRIu64
           " corrupt (seed %" PRIu64 ")\n",
           t.cases, t.lost, t.partial, t.corrupt, seed);
    return t.lost || t.partial || t.corrupt ? 1 : 0;
}
