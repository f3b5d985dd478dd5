/*
 * test_vector.c - the vector store: recall against brute force on Gaussian
 * mixtures (exact with nprobe = nlist), all three metrics, the flat index
 * before training, automatic training, optimize, transactions (visibility,
 * rollback, one transaction over a KV store and a vector store), filters,
 * the embedder identity, and bad input.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sop/sop.h"
#include "sop/vector.h"
#include "testutil.h"

#define D 24
#define CENTRES 16

/* n points of a mixture of CENTRES Gaussians in D dimensions (fixed seed) */
static float *mixture(size_t n, uint64_t seed)
{
    float *c = malloc(sizeof(float) * CENTRES * D), *x = malloc(sizeof(float) * n * D);
    assert_non_null(c);
    assert_non_null(x);
    uint64_t s = seed;
    for (int i = 0; i < CENTRES * D; i++)
        c[i] = (float)((double)tu_rand_below(&s, 2000) / 100.0 - 10.0);
    for (size_t i = 0; i < n; i++) {
        int k = (int)tu_rand_below(&s, CENTRES);
        for (int j = 0; j < D; j++) {
            /* Box-Muller */
            double u1 = ((double)tu_rand_below(&s, 1u << 30) + 1) / (double)(1u << 30);
            double u2 = (double)tu_rand_below(&s, 1u << 30) / (double)(1u << 30);
            double g = sqrt(-2 * log(u1)) * cos(6.283185307179586 * u2);
            x[i * D + j] = c[k * D + j] + (float)g;
        }
    }
    free(c);
    return x;
}

static void idstr(char *out, size_t i) { snprintf(out, 16, "%zu", i); }

static sop_db *open_db(const char *name)
{
    sop_db_options o;
    sop_db_options_init(&o);
    o.sync = SOP_SYNC_NONE;
    sop_db *db;
    assert_int_equal(sop_db_open(tu_tmpdir(name), &o, &db), 0);
    return db;
}

static void load(sop_db *db, const char *name, const sop_vstore_options *vo, const float *x,
                 size_t n, size_t per_txn)
{
    sop_txn *t;
    sop_vstore *vs;
    assert_int_equal(sop_txn_begin(db, SOP_TXN_WRITE, 0, &t), 0);
    assert_int_equal(sop_vstore_create(t, name, vo, &vs), 0);
    assert_int_equal(sop_txn_commit(t), 0);
    sop_vitem *items = calloc(per_txn, sizeof *items);
    char(*ids)[16] = calloc(per_txn, 16);
    for (size_t at = 0; at < n; at += per_txn) {
        size_t m = n - at < per_txn ? n - at : per_txn;
        for (size_t i = 0; i < m; i++) {
            idstr(ids[i], at + i);
            items[i] = (sop_vitem){ids[i], strlen(ids[i]), x + (at + i) * D, D, ids[i],
                                   strlen(ids[i])};
        }
        assert_int_equal(sop_txn_begin(db, SOP_TXN_WRITE, 0, &t), 0);
        assert_int_equal(sop_vstore_open(t, name, &vs), 0);
        int rc = sop_vstore_upsert_batch(vs, items, m);
        if (rc)
            fprintf(stderr, "%s\n", sop_db_errmsg(db));
        assert_int_equal(rc, 0);
        assert_int_equal(sop_txn_commit(t), 0);
    }
    free(items);
    free(ids);
}

static float score(int metric, const float *q, const float *x)
{
    double dot = 0, qq = 0, xx = 0, l2 = 0;
    for (int j = 0; j < D; j++) {
        dot += (double)q[j] * x[j];
        qq += (double)q[j] * q[j];
        xx += (double)x[j] * x[j];
        l2 += ((double)q[j] - x[j]) * ((double)q[j] - x[j]);
    }
    if (metric == SOP_METRIC_COSINE)
        return (float)(dot / sqrt(qq * xx));
    if (metric == SOP_METRIC_IP)
        return (float)dot;
    return (float)-sqrt(l2); /* higher is better here */
}

/* brute-force top k ids (higher score first) */
static void exact(int metric, const float *x, size_t n, const float *q, size_t k, size_t *out,
                  const int *alive)
{
    float *best = malloc(k * sizeof *best);
    size_t have = 0;
    for (size_t i = 0; i < n; i++) {
        if (alive && !alive[i])
            continue;
        float s = score(metric, q, x + i * D);
        if (have == k && s <= best[k - 1])
            continue;
        size_t j = have < k ? have++ : k - 1;
        while (j > 0 && best[j - 1] < s) {
            best[j] = best[j - 1];
            out[j] = out[j - 1];
            j--;
        }
        best[j] = s;
        out[j] = i;
    }
    free(best);
}

/* recall@k of nq queries (points of the data set, perturbed) */
static double recall(sop_db *db, const char *name, int metric, const float *x, size_t n,
                     uint32_t nprobe, size_t nq, const int *alive)
{
    sop_txn *t;
    sop_vstore *vs;
    assert_int_equal(sop_txn_begin(db, SOP_TXN_READ, 0, &t), 0);
    assert_int_equal(sop_vstore_open(t, name, &vs), 0);
    size_t hit = 0, total = 0;
    uint64_t s = 99;
    for (size_t qi = 0; qi < nq; qi++) {
        float q[D];
        size_t base = tu_rand_below(&s, n);
        for (int j = 0; j < D; j++)
            q[j] = x[base * D + j] + (float)tu_rand_below(&s, 100) / 100.0f - 0.5f;
        size_t want[10];
        exact(metric, x, n, q, 10, want, alive);
        sop_vquery vq;
        sop_vquery_init(&vq);
        vq.vec = q;
        vq.dims = D;
        vq.k = 10;
        vq.nprobe = nprobe;
        sop_vhit hits[10];
        uint32_t nh;
        assert_int_equal(sop_vstore_query(vs, &vq, hits, &nh), 0);
        assert_int_equal(nh, 10);
        for (uint32_t i = 1; i < nh; i++) /* best first */
            if (metric == SOP_METRIC_L2)
                assert_true(hits[i - 1].score <= hits[i].score);
            else
                assert_true(hits[i - 1].score >= hits[i].score);
        for (int i = 0; i < 10; i++) {
            char id[16];
            idstr(id, want[i]);
            for (uint32_t h = 0; h < nh; h++)
                if (hits[h].id.size == strlen(id) && memcmp(hits[h].id.data, id, strlen(id)) == 0) {
                    hit++;
                    break;
                }
            total++;
        }
    }
    sop_txn_rollback(t);
    return (double)hit / (double)total;
}

static void stats(sop_db *db, const char *name, sop_vstore_stat *st)
{
    sop_txn *t;
    sop_vstore *vs;
    assert_int_equal(sop_txn_begin(db, SOP_TXN_READ, 0, &t), 0);
    assert_int_equal(sop_vstore_open(t, name, &vs), 0);
    assert_int_equal(sop_vstore_stats(vs, st, NULL, 0), 0);
    sop_txn_rollback(t);
}

static void test_recall_all_metrics(void **state)
{
    (void)state;
    const size_t n = 6000;
    float *x = mixture(n, 7);
    sop_db *db = open_db("recall");
    int metrics[] = {SOP_METRIC_COSINE, SOP_METRIC_IP, SOP_METRIC_L2};
    for (int m = 0; m < 3; m++) {
        char name[16];
        snprintf(name, sizeof name, "v%d", m);
        sop_vstore_options vo;
        sop_vstore_options_init(&vo);
        vo.dims = D;
        vo.metric = (sop_metric)metrics[m];
        vo.nlist = 32;
        vo.train_at = 2000; /* trains inside the load */
        load(db, name, &vo, x, n, 1000);
        sop_vstore_stat st;
        stats(db, name, &st);
        assert_int_equal(st.trained, 1);
        assert_int_equal(st.version, 1);
        assert_int_equal(st.nlist, 32);
        assert_int_equal(st.count, n);
        assert_true(st.min_cluster <= st.max_cluster);
        double exhaustive = recall(db, name, metrics[m], x, n, 32, 40, NULL);
        double clamped = recall(db, name, metrics[m], x, n, 1000, 40, NULL);
        double typical = recall(db, name, metrics[m], x, n, 4, 40, NULL);
        fprintf(stderr, "metric %d: recall@10 nprobe 32: %.3f, 1000: %.3f, 4: %.3f\n",
                metrics[m], exhaustive, clamped, typical);
        assert_true(exhaustive == 1.0);
        assert_true(clamped == 1.0); /* nprobe > nlist is clamped */
        /* the floor at nprobe = nlist / 8 on this mixture */
        assert_true(typical >= 0.85);
    }
    assert_int_equal(sop_db_close(db), 0);
    free(x);
}

static void test_flat_then_optimize(void **state)
{
    (void)state;
    const size_t n = 3000;
    float *x = mixture(n, 11);
    sop_db *db = open_db("flat");
    sop_vstore_options vo;
    sop_vstore_options_init(&vo);
    vo.dims = D;
    vo.metric = SOP_METRIC_L2;
    vo.train_at = UINT32_MAX; /* stays flat */
    load(db, "f", &vo, x, n, 700);
    sop_vstore_stat st;
    stats(db, "f", &st);
    assert_int_equal(st.trained, 0);
    assert_int_equal(st.nlist, 1);
    assert_int_equal(st.count, n);
    assert_true(recall(db, "f", SOP_METRIC_L2, x, n, 1, 30, NULL) == 1.0);

    /* delete a tenth, then optimize: trained, tombstones reaped, exact */
    int *alive = malloc(n * sizeof *alive);
    sop_txn *t;
    sop_vstore *vs;
    assert_int_equal(sop_txn_begin(db, SOP_TXN_WRITE, 0, &t), 0);
    assert_int_equal(sop_vstore_open(t, "f", &vs), 0);
    for (size_t i = 0; i < n; i++) {
        alive[i] = i % 10 != 3;
        if (!alive[i]) {
            char id[16];
            idstr(id, i);
            assert_int_equal(sop_vstore_delete(vs, id, strlen(id)), 0);
            assert_int_equal(sop_vstore_delete(vs, id, strlen(id)), SOP_ENOTFOUND);
        }
    }
    assert_int_equal(sop_txn_commit(t), 0);
    sop_voptimize_options oo;
    sop_voptimize_options_init(&oo);
    oo.nlist = 16;
    oo.batch = 500;
    oo.sample_max = 500; /* sampled through the lookup tree, tombstones skipped */
    assert_int_equal(sop_vstore_optimize(db, "f", &oo), 0);
    stats(db, "f", &st);
    assert_int_equal(st.trained, 1);
    assert_int_equal(st.version, 1);
    assert_int_equal(st.nlist, 16);
    assert_int_equal(st.optimizing, 0);
    assert_int_equal(st.count, n - n / 10);
    assert_true(recall(db, "f", SOP_METRIC_L2, x, n, 16, 30, alive) == 1.0);
    /* the tombstones are gone from the content store */
    assert_int_equal(sop_txn_begin(db, SOP_TXN_READ, 0, &t), 0);
    sop_store *content;
    assert_int_equal(sop_store_open(t, "f.vec.content", &content), 0);
    uint64_t c;
    assert_int_equal(sop_store_count(content, &c), 0);
    assert_int_equal(c, n - n / 10);
    assert_int_equal(sop_store_open(t, "f.vec.ivf.0", &content), SOP_ENOTFOUND);
    sop_txn_rollback(t);

    /* and again, in one transaction: version 2, same answers */
    oo.nlist = 8;
    oo.sample_max = 0;
    oo.batch = UINT32_MAX;
    assert_int_equal(sop_vstore_optimize(db, "f", &oo), 0);
    stats(db, "f", &st);
    assert_int_equal(st.version, 2);
    assert_int_equal(st.nlist, 8);
    assert_true(recall(db, "f", SOP_METRIC_L2, x, n, 8, 30, alive) == 1.0);
    assert_int_equal(sop_db_close(db), 0);
    free(alive);
    free(x);
}

static int count_items(sop_db *db, const char *name, uint64_t *n)
{
    sop_txn *t;
    sop_vstore *vs;
    assert_int_equal(sop_txn_begin(db, SOP_TXN_READ, 0, &t), 0);
    int rc = sop_vstore_open(t, name, &vs);
    if (!rc)
        rc = sop_vstore_count(vs, n);
    sop_txn_rollback(t);
    return rc;
}

static uint32_t top1(sop_vstore *vs, const float *q, char *id)
{
    sop_vquery vq;
    sop_vquery_init(&vq);
    vq.vec = q;
    vq.dims = D;
    vq.k = 1;
    vq.nprobe = 1000;
    vq.with_payload = 1;
    sop_vhit h;
    uint32_t nh = 0;
    assert_int_equal(sop_vstore_query(vs, &vq, &h, &nh), 0);
    if (nh)
        snprintf(id, 32, "%.*s", (int)h.id.size, (const char *)h.id.data);
    return nh;
}

static void test_transactions(void **state)
{
    (void)state;
    sop_db *db = open_db("txn");
    float a[D] = {0}, b[D] = {0};
    a[0] = 1;
    b[1] = 1;
    sop_vstore_options vo;
    sop_vstore_options_init(&vo);
    vo.dims = D;
    sop_txn *t, *r;
    sop_vstore *vs, *rv;
    sop_store *kv;

    /* creation rolls back */
    assert_int_equal(sop_txn_begin(db, SOP_TXN_WRITE, 0, &t), 0);
    assert_int_equal(sop_vstore_create(t, "tx", &vo, &vs), 0);
    assert_int_equal(sop_txn_rollback(t), 0);
    uint64_t n;
    assert_int_equal(count_items(db, "tx", &n), SOP_ENOTFOUND);

    /* one transaction: a KV store and a vector store, rolled back: no trace */
    assert_int_equal(sop_txn_begin(db, SOP_TXN_WRITE, 0, &t), 0);
    assert_int_equal(sop_vstore_create(t, "tx", &vo, &vs), 0);
    assert_int_equal(sop_store_create(t, "kv", NULL, &kv), 0);
    assert_int_equal(sop_txn_commit(t), 0);
    assert_int_equal(sop_txn_begin(db, SOP_TXN_WRITE, 0, &t), 0);
    assert_int_equal(sop_vstore_open(t, "tx", &vs), 0);
    assert_int_equal(sop_store_open(t, "kv", &kv), 0);
    sop_vitem it = {"a", 1, a, D, "{\"x\":1}", 7};
    assert_int_equal(sop_vstore_upsert(vs, &it), 0);
    sop_val k = {"k", 1}, v = {"v", 1};
    assert_int_equal(sop_upsert(kv, &k, &v), 0);
    char id[32];
    assert_int_equal(top1(vs, a, id), 1); /* the transaction sees its own write */
    assert_string_equal(id, "a");
    assert_int_equal(sop_txn_rollback(t), 0);
    assert_int_equal(count_items(db, "tx", &n), 0);
    assert_int_equal(n, 0);
    assert_int_equal(sop_txn_begin(db, SOP_TXN_READ, 0, &r), 0);
    assert_int_equal(sop_store_open(r, "kv", &kv), 0);
    assert_int_equal(sop_get(kv, &k, &v), SOP_ENOTFOUND);
    assert_int_equal(sop_vstore_open(r, "tx", &rv), 0);
    assert_int_equal(top1(rv, a, id), 0);
    sop_txn_rollback(r);

    /* committed together; invisible to an older snapshot until then */
    assert_int_equal(sop_txn_begin(db, SOP_TXN_READ, 0, &r), 0);
    assert_int_equal(sop_vstore_open(r, "tx", &rv), 0);
    assert_int_equal(sop_txn_begin(db, SOP_TXN_WRITE, 0, &t), 0);
    assert_int_equal(sop_vstore_open(t, "tx", &vs), 0);
    assert_int_equal(sop_store_open(t, "kv", &kv), 0);
    assert_int_equal(sop_vstore_upsert(vs, &it), 0);
    assert_int_equal(sop_upsert(kv, &k, &v), 0);
    assert_int_equal(top1(rv, a, id), 0);
    assert_int_equal(sop_txn_commit(t), 0);
    assert_int_equal(top1(rv, a, id), 0); /* still its snapshot */
    sop_txn_rollback(r);
    assert_int_equal(count_items(db, "tx", &n), 0);
    assert_int_equal(n, 1);

    /* replace: the vector moves, the payload changes */
    assert_int_equal(sop_txn_begin(db, SOP_TXN_WRITE, 0, &t), 0);
    assert_int_equal(sop_vstore_open(t, "tx", &vs), 0);
    sop_vitem it2 = {"b", 1, b, D, NULL, 0};
    assert_int_equal(sop_vstore_upsert(vs, &it2), 0);
    sop_vitem it3 = {"a", 1, b, D, "{\"x\":2}", 7};
    assert_int_equal(sop_vstore_upsert(vs, &it3), 0);
    float got[D];
    sop_val pay;
    assert_int_equal(sop_vstore_get(vs, "a", 1, got, &pay), 0);
    assert_true(got[1] == 1.0f && got[0] == 0.0f);
    assert_int_equal(pay.size, 7);
    assert_memory_equal(pay.data, "{\"x\":2}", 7);
    assert_int_equal(sop_txn_commit(t), 0);
    assert_int_equal(count_items(db, "tx", &n), 0);
    assert_int_equal(n, 2);

    /* delete: gone from queries and gets, after commit only */
    assert_int_equal(sop_txn_begin(db, SOP_TXN_READ, 0, &r), 0);
    assert_int_equal(sop_vstore_open(r, "tx", &rv), 0);
    assert_int_equal(sop_txn_begin(db, SOP_TXN_WRITE, 0, &t), 0);
    assert_int_equal(sop_vstore_open(t, "tx", &vs), 0);
    assert_int_equal(sop_vstore_delete(vs, "b", 1), 0);
    assert_int_equal(sop_vstore_get(vs, "b", 1, NULL, NULL), SOP_ENOTFOUND);
    assert_int_equal(sop_txn_commit(t), 0);
    assert_int_equal(sop_vstore_get(rv, "b", 1, NULL, NULL), 0);
    sop_txn_rollback(r);
    assert_int_equal(sop_txn_begin(db, SOP_TXN_READ, 0, &r), 0);
    assert_int_equal(sop_vstore_open(r, "tx", &rv), 0);
    assert_int_equal(sop_vstore_get(rv, "b", 1, NULL, NULL), SOP_ENOTFOUND);
    assert_int_equal(top1(rv, b, id), 1);
    assert_string_equal(id, "a");
    sop_txn_rollback(r);

    /* remove the whole store */
    assert_int_equal(sop_txn_begin(db, SOP_TXN_WRITE, 0, &t), 0);
    assert_int_equal(sop_vstore_remove(t, "tx"), 0);
    assert_int_equal(sop_txn_commit(t), 0);
    assert_int_equal(count_items(db, "tx", &n), SOP_ENOTFOUND);
    assert_int_equal(sop_db_close(db), 0);
}

static int even_only(const sop_val *id, const sop_val *payload, void *ctx)
{
    (void)payload;
    int *calls = ctx;
    (*calls)++;
    char last = ((const char *)id->data)[id->size - 1];
    return (last - '0') % 2 == 0;
}

static void test_filter_widens(void **state)
{
    (void)state;
    const size_t n = 3000;
    float *x = mixture(n, 5);
    sop_db *db = open_db("filter");
    sop_vstore_options vo;
    sop_vstore_options_init(&vo);
    vo.dims = D;
    vo.metric = SOP_METRIC_L2;
    vo.nlist = 64;
    vo.train_at = 1000;
    load(db, "flt", &vo, x, n, 3000);
    sop_txn *t;
    sop_vstore *vs;
    assert_int_equal(sop_txn_begin(db, SOP_TXN_READ, 0, &t), 0);
    assert_int_equal(sop_vstore_open(t, "flt", &vs), 0);
    sop_vquery vq;
    sop_vquery_init(&vq);
    vq.vec = x;
    vq.dims = D;
    vq.k = 100; /* more than a cluster holds on average: the probe must widen */
    vq.nprobe = 1;
    int calls = 0;
    vq.filter = even_only;
    vq.filter_ctx = &calls;
    sop_vhit hits[100];
    uint32_t nh;
    assert_int_equal(sop_vstore_query(vs, &vq, hits, &nh), 0);
    assert_int_equal(nh, 100);
    assert_true(calls >= 100);
    for (uint32_t i = 0; i < nh; i++) {
        char last = ((const char *)hits[i].id.data)[hits[i].id.size - 1];
        assert_int_equal((last - '0') % 2, 0);
    }
    /* the same as brute force over the even ids */
    int *alive = malloc(n * sizeof *alive);
    for (size_t i = 0; i < n; i++)
        alive[i] = i % 2 == 0;
    size_t want[100];
    vq.nprobe = 64;
    assert_int_equal(sop_vstore_query(vs, &vq, hits, &nh), 0);
    exact(SOP_METRIC_L2, x, n, x, 100, want, alive);
    for (int i = 0; i < 100; i++) {
        char id[16];
        idstr(id, want[i]);
        assert_int_equal(hits[i].id.size, strlen(id));
        assert_memory_equal(hits[i].id.data, id, strlen(id));
    }
    /* a filter error stops the query */
    sop_txn_rollback(t);
    assert_int_equal(sop_db_close(db), 0);
    free(alive);
    free(x);
}

static void test_bad_input(void **state)
{
    (void)state;
    sop_db *db = open_db("bad");
    sop_txn *t;
    sop_vstore *vs;
    sop_vstore_options vo;
    sop_vstore_options_init(&vo);
    assert_int_equal(sop_txn_begin(db, SOP_TXN_WRITE, 0, &t), 0);
    assert_int_equal(sop_vstore_create(t, "b", &vo, &vs), -EINVAL); /* dims 0 */
    vo.dims = SOP_VECTOR_DIMS_MAX + 1;
    assert_int_equal(sop_vstore_create(t, "b", &vo, &vs), -EINVAL);
    vo.dims = D;
    vo.metric = (sop_metric)9;
    assert_int_equal(sop_vstore_create(t, "b", &vo, &vs), -EINVAL);
    vo.metric = SOP_METRIC_COSINE;
    vo.node_bytes = 2048;
    assert_int_equal(sop_vstore_create(t, "b", &vo, &vs), -EINVAL);
    vo.node_bytes = 0;
    assert_int_equal(sop_vstore_create(t, "../x", &vo, &vs), SOP_ENAME);
    assert_int_equal(sop_vstore_create(t, "", &vo, &vs), SOP_ENAME);
    assert_int_equal(sop_vstore_open(t, "nope", &vs), SOP_ENOTFOUND);
    vo.embedder = "e1";
    assert_int_equal(sop_vstore_create(t, "b", &vo, &vs), 0);
    assert_int_equal(sop_vstore_create(t, "b", &vo, &vs), SOP_EEXISTS);
    assert_int_equal(sop_vstore_open(t, "b", &vs), 0);

    float v[D] = {0}, z[D] = {0};
    v[3] = 2;
    sop_vitem it = {"x", 1, v, D - 1, NULL, 0};
    assert_int_equal(sop_vstore_upsert(vs, &it), SOP_EDIM);
    it.dims = D;
    v[5] = NAN;
    assert_int_equal(sop_vstore_upsert(vs, &it), SOP_EVECTOR);
    v[5] = INFINITY;
    assert_int_equal(sop_vstore_upsert(vs, &it), SOP_EVECTOR);
    v[5] = 0;
    it.vec = z;
    assert_int_equal(sop_vstore_upsert(vs, &it), SOP_EVECTOR); /* zero under cosine */
    it.vec = v;
    it.id_len = 0;
    assert_int_equal(sop_vstore_upsert(vs, &it), -EINVAL);
    it.id_len = SOP_VECTOR_ID_MAX + 1;
    assert_int_equal(sop_vstore_upsert(vs, &it), -EINVAL);
    it.id_len = 1;
    assert_int_equal(sop_vstore_upsert(vs, &it), 0);
    assert_int_equal(sop_vstore_get(vs, "y", 1, NULL, NULL), SOP_ENOTFOUND);
    assert_int_equal(sop_vstore_delete(vs, "y", 1), SOP_ENOTFOUND);

    sop_vquery q;
    sop_vquery_init(&q);
    q.vec = v;
    q.dims = D;
    sop_vhit hits[4];
    uint32_t nh;
    q.k = 0;
    assert_int_equal(sop_vstore_query(vs, &q, hits, &nh), -EINVAL);
    q.k = SOP_VECTOR_K_MAX + 1;
    assert_int_equal(sop_vstore_query(vs, &q, hits, &nh), -EINVAL);
    q.k = 4;
    q.dims = 3;
    assert_int_equal(sop_vstore_query(vs, &q, hits, &nh), SOP_EDIM);
    q.dims = D;
    q.vec = z;
    assert_int_equal(sop_vstore_query(vs, &q, hits, &nh), SOP_EVECTOR);
    q.vec = v;
    q.nprobe = 1u << 30; /* clamped */
    assert_int_equal(sop_vstore_query(vs, &q, hits, &nh), 0);
    assert_int_equal(nh, 1); /* fewer than k: the store has one item */

    /* the embedder identity */
    assert_int_equal(sop_vstore_bind_embedder(vs, "e1", D), 0);
    assert_int_equal(sop_vstore_bind_embedder(vs, "e2", D), SOP_EMISMATCH);
    assert_int_equal(sop_vstore_bind_embedder(vs, "e1", D + 1), SOP_EMISMATCH);
    assert_int_equal(sop_txn_commit(t), 0);

    /* writes in a READ transaction */
    assert_int_equal(sop_txn_begin(db, SOP_TXN_READ, 0, &t), 0);
    assert_int_equal(sop_vstore_open(t, "b", &vs), 0);
    assert_int_equal(sop_vstore_upsert(vs, &it), SOP_EREADONLY);
    assert_int_equal(sop_vstore_delete(vs, "x", 1), SOP_EREADONLY);
    sop_txn_rollback(t);
    /* and in a NOCHECK one, whose stale reads could miss a migration */
    assert_int_equal(sop_txn_begin(db, SOP_TXN_NOCHECK, 0, &t), 0);
    assert_int_equal(sop_vstore_open(t, "b", &vs), 0);
    assert_int_equal(sop_vstore_upsert(vs, &it), -EINVAL);
    assert_int_equal(sop_vstore_upsert_batch(vs, &it, 1), -EINVAL);
    assert_int_equal(sop_vstore_delete(vs, "x", 1), -EINVAL);
    q.nprobe = 0;
    assert_int_equal(sop_vstore_query(vs, &q, hits, &nh), 0); /* reads are fine */
    assert_int_equal(nh, 1);
    sop_txn_rollback(t);
    assert_int_equal(sop_db_close(db), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_recall_all_metrics), cmocka_unit_test(test_flat_then_optimize),
        cmocka_unit_test(test_transactions),       cmocka_unit_test(test_filter_widens),
        cmocka_unit_test(test_bad_input),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
