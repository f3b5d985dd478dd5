/*
 * vector_optimize.c - readers and writers of a vector store while it is
 * optimized (rebuilt) again and again.
 *
 * Two writer threads upsert and delete items of their own ids (writer w
 * owns the ids congruent to w mod 2) with vectors f(id, generation),
 * retrying on SOP_ECONFLICT, and keep a model of what they committed. One
 * reader thread runs exhaustive queries in READ snapshots and checks that
 * every hit is consistent with the snapshot (its vector, read back, gives
 * the score). The main thread runs sop_vstore_optimize() repeatedly (a
 * second concurrent optimize of the store must get SOP_EBUSY).
 * At the end every id is as the model says (present with its last vector,
 * or absent), the count matches, sop_db_check() is clean and the index is
 * exact at nprobe = nlist. Runs under ThreadSanitizer in scripts/test.sh.
 * Environment: SOP_VOPT_ROUNDS (optimizations, default 4).
 */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sop/sop.h"
#include "sop/vector.h"
#include "testutil.h"

#define D 8
#define IDS 3000
#define STORE "vo"

static sop_db *db;
static atomic_int stop;
static atomic_int failed;
static int model[IDS]; /* generation of the committed vector, 0 absent */

#define FAIL(...)                                                                                  \
    do {                                                                                           \
        fprintf(stderr, "vector_optimize: " __VA_ARGS__);                                         \
        fputc('\n', stderr);                                                                       \
        atomic_store(&failed, 1);                                                                  \
    } while (0)

static void vec_of(int id, int gen, float *v)
{
    uint64_t s = (uint64_t)id * 1315423911u + (uint64_t)gen * 2654435761u + 1;
    for (int j = 0; j < D; j++)
        v[j] = (float)tu_rand_below(&s, 1000) / 50.0f + (float)(id % 5) * 3.0f;
}

typedef struct writer {
    int w;
    uint64_t rs;
    int commits, conflicts;
} writer;

static void *writer_main(void *arg)
{
    writer *wr = arg;
    while (!atomic_load(&stop) && !atomic_load(&failed)) {
        int id = (int)tu_rand_below(&wr->rs, IDS / 2) * 2 + wr->w;
        int del = model[id] && tu_rand_below(&wr->rs, 4) == 0;
        int gen = model[id] + 1;
        char key[16];
        snprintf(key, sizeof key, "%d", id);
        float v[D];
        vec_of(id, gen, v);
        sop_txn *t;
        sop_vstore *vs;
        int rc = sop_txn_begin(db, SOP_TXN_WRITE, 0, &t);
        if (!rc)
            rc = sop_vstore_open(t, STORE, &vs);
        if (!rc) {
            if (del) {
                rc = sop_vstore_delete(vs, key, strlen(key));
            } else {
                sop_vitem it = {key, strlen(key), v, D, key, strlen(key)};
                rc = sop_vstore_upsert(vs, &it);
            }
        }
        if (!rc)
            rc = sop_txn_commit(t);
        else
            sop_txn_rollback(t);
        if (rc == SOP_ECONFLICT) {
            wr->conflicts++;
            continue;
        }
        if (rc) {
            FAIL("writer %d: %s: %s", wr->w, sop_strerror(rc), sop_db_errmsg(db));
            break;
        }
        model[id] = del ? 0 : gen; /* only this thread touches this id */
        wr->commits++;
    }
    return NULL;
}

static void *reader_main(void *arg)
{
    int *queries = arg;
    uint64_t rs = 7;
    while (!atomic_load(&stop) && !atomic_load(&failed)) {
        sop_txn *t;
        sop_vstore *vs;
        if (sop_txn_begin(db, SOP_TXN_READ, 0, &t))
            continue;
        int rc = sop_vstore_open(t, STORE, &vs);
        for (int i = 0; i < 20 && !rc; i++) {
            float q[D];
            vec_of((int)tu_rand_below(&rs, IDS), 1, q);
            sop_vquery vq;
            sop_vquery_init(&vq);
            vq.vec = q;
            vq.dims = D;
            vq.k = 5;
            vq.nprobe = SOP_VECTOR_NLIST_MAX;
            sop_vhit h[5];
            uint32_t nh;
            if ((rc = sop_vstore_query(vs, &vq, h, &nh)))
                break;
            char ids[5][16];
            float sc[5];
            for (uint32_t j = 0; j < nh; j++) {
                snprintf(ids[j], sizeof ids[j], "%.*s", (int)h[j].id.size,
                         (const char *)h[j].id.data);
                sc[j] = h[j].score;
            }
            for (uint32_t j = 0; j < nh && !rc; j++) {
                float got[D];
                if ((rc = sop_vstore_get(vs, ids[j], strlen(ids[j]), got, NULL))) {
                    FAIL("reader: hit %s not readable in its snapshot: %s", ids[j],
                         sop_strerror(rc));
                    break;
                }
                double d2 = 0;
                for (int c = 0; c < D; c++)
                    d2 += ((double)got[c] - q[c]) * ((double)got[c] - q[c]);
                if (fabs(sqrt(d2) - sc[j]) > 1e-3 * (1 + sc[j])) {
                    FAIL("reader: hit %s score %g, its vector is at %g", ids[j], (double)sc[j],
                         sqrt(d2));
                    rc = -1;
                }
            }
            (*queries)++;
        }
        if (rc > 0 || (rc && rc != -1))
            FAIL("reader: %s: %s", sop_strerror(rc), sop_db_errmsg(db));
        sop_txn_rollback(t);
    }
    return NULL;
}

static void *second_optimize(void *arg)
{
    int *rc = arg;
    *rc = sop_vstore_optimize(db, STORE, NULL);
    return NULL;
}

static int slow_progress(uint64_t done, uint64_t total, void *ctx)
{
    (void)done;
    (void)total;
    atomic_int *inside = ctx;
    atomic_store(inside, 1);
    return 0;
}

int main(void)
{
    sop_db_options o;
    sop_db_options_init(&o);
    o.sync = SOP_SYNC_NONE;
    if (sop_db_open(tu_tmpdir("db"), &o, &db))
        return 2;
    int rounds = getenv("SOP_VOPT_ROUNDS") ? atoi(getenv("SOP_VOPT_ROUNDS")) : 4;

    /* the initial items, all of generation 1 */
    sop_txn *t;
    sop_vstore *vs;
    sop_vstore_options vo;
    sop_vstore_options_init(&vo);
    vo.dims = D;
    vo.metric = SOP_METRIC_L2;
    vo.nlist = 16;
    vo.train_at = UINT32_MAX;
    /* small nodes: with the default 64 KiB the whole store is three leaves
     * and every write conflicts with every optimize batch (correct, but
     * slow under TSan) */
    vo.node_bytes = 4096;
    if (sop_txn_begin(db, SOP_TXN_WRITE, 0, &t) || sop_vstore_create(t, STORE, &vo, &vs))
        return 2;
    for (int id = 0; id < IDS; id++) {
        char key[16];
        snprintf(key, sizeof key, "%d", id);
        float v[D];
        vec_of(id, 1, v);
        sop_vitem it = {key, strlen(key), v, D, key, strlen(key)};
        if (sop_vstore_upsert(vs, &it))
            return 2;
        model[id] = 1;
    }
    if (sop_txn_commit(t))
        return 2;

    writer wr[2] = {{.w = 0, .rs = 11}, {.w = 1, .rs = 12}};
    int queries = 0;
    pthread_t th[3];
    for (int i = 0; i < 2; i++)
        pthread_create(&th[i], NULL, writer_main, &wr[i]);
    pthread_create(&th[2], NULL, reader_main, &queries);

    sop_voptimize_options oo;
    sop_voptimize_options_init(&oo);
    oo.batch = 100;
    atomic_int inside = 0;
    oo.progress = slow_progress;
    oo.progress_ctx = &inside;
    int busy_checked = 0;
    for (int r = 0; r < rounds && !atomic_load(&failed); r++) {
        oo.nlist = r % 2 ? 8 : 16;
        int rc = sop_vstore_optimize(db, STORE, &oo);
        if (rc)
            FAIL("optimize %d: %s: %s", r, sop_strerror(rc), sop_db_errmsg(db));
        if (!busy_checked && atomic_load(&inside)) {
            /* a second optimize while none runs succeeds; run one in a thread
             * and race a third against it: one of the two may be refused */
            int rc2 = 0;
            pthread_t ot;
            pthread_create(&ot, NULL, second_optimize, &rc2);
            int rc3 = sop_vstore_optimize(db, STORE, &oo);
            pthread_join(ot, NULL);
            if ((rc2 && rc2 != SOP_EBUSY) || (rc3 && rc3 != SOP_EBUSY) || (rc2 && rc3))
                FAIL("concurrent optimizes: %s / %s", sop_strerror(rc2), sop_strerror(rc3));
            busy_checked = 1;
        }
    }
    atomic_store(&stop, 1);
    for (int i = 0; i < 3; i++)
        pthread_join(th[i], NULL);

    /* the end state against the model */
    uint64_t live = 0, n = 0;
    if (sop_txn_begin(db, SOP_TXN_READ, 0, &t) || sop_vstore_open(t, STORE, &vs))
        return 2;
    for (int id = 0; id < IDS && !atomic_load(&failed); id++) {
        char key[16];
        snprintf(key, sizeof key, "%d", id);
        float got[D], want[D];
        int rc = sop_vstore_get(vs, key, strlen(key), got, NULL);
        if (model[id] == 0) {
            if (rc != SOP_ENOTFOUND)
                FAIL("id %d: deleted, get says %s", id, sop_strerror(rc));
            continue;
        }
        live++;
        vec_of(id, model[id], want);
        if (rc || memcmp(got, want, sizeof got) != 0)
            FAIL("id %d: generation %d: %s", id, model[id], rc ? sop_strerror(rc) : "other vector");
        sop_vquery q;
        sop_vquery_init(&q);
        q.vec = want;
        q.dims = D;
        q.k = 1;
        q.nprobe = SOP_VECTOR_NLIST_MAX;
        sop_vhit h;
        uint32_t nh;
        if (sop_vstore_query(vs, &q, &h, &nh) || nh != 1 || h.score != 0.0f)
            FAIL("id %d: not found by an exhaustive query", id);
    }
    sop_vstore_stat st;
    if (sop_vstore_count(vs, &n) || n != live || sop_vstore_stats(vs, &st, NULL, 0) ||
        st.optimizing || !st.trained)
        FAIL("count %" PRIu64 ", model %" PRIu64 ", optimizing %d", n, live, st.optimizing);
    sop_txn_rollback(t);
    uint64_t problems = 0;
    if (sop_db_check(db, NULL, NULL, &problems) || problems)
        FAIL("sop_db_check: %" PRIu64 " problems", problems);
    sop_db_close(db);
    printf("vector_optimize: %d rounds at index version %u, %d + %d writes (%d + %d conflicts), "
           "%d queries, %" PRIu64 " live: %s\n",
           rounds, st.version, wr[0].commits, wr[1].commits, wr[0].conflicts, wr[1].conflicts,
           queries, live, atomic_load(&failed) ? "FAILED" : "ok");
    return atomic_load(&failed) ? 1 : 0;
}
