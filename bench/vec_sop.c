/*
 * vec_sop.c - the SOP engine of the vector suite, through the public API
 * only (sop/sop.h, sop/vector.h).
 *
 * Build: a database in the work directory (SOP_SYNC_FULL, a node cache of
 * SOP_BENCH_CACHE_MB, default 1024 MiB, to hold the index as FAISS does;
 * SOP_BENCH_NODE_BYTES sets the index node size, default 64 KiB),
 * one vector store "glove" (dims of the data, SOP_METRIC_COSINE, nlist as
 * given, train_at UINT32_MAX so that nothing trains during the load); the
 * base is loaded with sop_vstore_upsert_batch() in write transactions of
 * 10,000 items (id = the row number in decimal, no payload), then
 * sop_vstore_optimize() trains the centroids and builds the index (the
 * migration in one transaction: batch UINT32_MAX, the bulk path). The
 * load is reported as "add", the optimize as "train". The database is then
 * closed, its bytes on disk counted, and reopened for the queries.
 * Queries: sop_vstore_query() one query per call, k = 10, up to 1,000
 * queries per READ transaction.
 *
 * Compiled only with -DSOP_BENCH_VECTOR_SOP=ON (and without
 * SOP_BENCH_NO_SOP): it needs the vector layer's implementation.
 */
#if defined(SOP_BENCH_VECTOR_SOP) && !defined(SOP_BENCH_NO_SOP)

#include "vector.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_util.h"
#include "sop/sop.h"
#include "sop/vector.h"

#define VSTORE_NAME "glove"
#define LOAD_BATCH 10000
#define QUERIES_PER_TXN 1000
/* generous time limits: a load batch or 1,000 queries at a large nprobe */
#define TXN_MAX_MS (3600u * 1000u)

struct vec_index {
    sop_db *db;
    char path[4200];
    sop_vhit hits[VEC_K];
};

static void sop_err(sop_db *db, const char *what, int rc)
{
    const char *detail = db ? sop_db_errmsg(db) : "";
    vec_set_err("%s: %s (%s)%s%s", what, sop_strerror(rc), sop_err_name(rc),
                *detail ? ": " : "", detail);
}

/* The node cache: large enough by default to hold the index, as FAISS
 * holds its lists in memory (SOP_BENCH_CACHE_MB overrides; the library's
 * default is 64 MiB). */
static size_t cache_mb(void)
{
    const char *e = getenv("SOP_BENCH_CACHE_MB");
    return e && atol(e) > 0 ? (size_t)atol(e) : 1024;
}

static int open_db(vec_index *ix)
{
    sop_db_options o;
    sop_db_options_init(&o);
    o.cache_bytes = cache_mb() << 20;
    int rc = sop_db_open(ix->path, &o, &ix->db);
    if (rc != SOP_OK) {
        sop_err(ix->db, "sop_db_open", rc);
        if (rc != -ENOMEM)
            sop_db_close(ix->db);
        ix->db = NULL;
        return -1;
    }
    return 0;
}

static void vs_close(vec_index *ix)
{
    if (!ix)
        return;
    if (ix->db) {
        int rc = sop_db_close(ix->db);
        if (rc != SOP_OK)
            fprintf(stderr, "sop-bench: sop_db_close: %s (%s)\n", sop_strerror(rc),
                    sop_err_name(rc));
    }
    free(ix);
}

/* Begins a transaction and opens the store in it. */
static int begin(vec_index *ix, sop_txn_mode mode, sop_txn **t, sop_vstore **vs)
{
    int rc = sop_txn_begin(ix->db, mode, TXN_MAX_MS, t);
    if (rc != SOP_OK) {
        sop_err(ix->db, "sop_txn_begin", rc);
        return -1;
    }
    rc = sop_vstore_open(*t, VSTORE_NAME, vs);
    if (rc != SOP_OK) {
        sop_err(ix->db, "sop_vstore_open", rc);
        sop_txn_rollback(*t);
        return -1;
    }
    return 0;
}

static int create_store(vec_index *ix, const vec_data *d, uint32_t nlist)
{
    sop_txn *t;
    sop_vstore *vs;
    int rc = sop_txn_begin(ix->db, SOP_TXN_WRITE, 0, &t);
    if (rc != SOP_OK) {
        sop_err(ix->db, "sop_txn_begin", rc);
        return -1;
    }
    sop_vstore_options o;
    sop_vstore_options_init(&o);
    o.dims = d->dims;
    o.metric = SOP_METRIC_COSINE;
    o.nlist = nlist;
    o.train_at = UINT32_MAX;
    /* index node size (default 64 KiB): SOP_BENCH_NODE_BYTES=8192 etc. */
    if (getenv("SOP_BENCH_NODE_BYTES"))
        o.node_bytes = (uint32_t)atol(getenv("SOP_BENCH_NODE_BYTES"));
    if ((rc = sop_vstore_create(t, VSTORE_NAME, &o, &vs)) != SOP_OK) {
        sop_err(ix->db, "sop_vstore_create", rc);
        sop_txn_rollback(t);
        return -1;
    }
    if ((rc = sop_txn_commit(t)) != SOP_OK) {
        sop_err(ix->db, "sop_txn_commit (create)", rc);
        return -1;
    }
    return 0;
}

/* Upserts rows [r0, r0 + cnt) in one write transaction (retried on
 * conflict). @p items and @p idbuf have room for LOAD_BATCH items. */
static int load_batch(vec_index *ix, const vec_data *d, size_t r0, size_t cnt, sop_vitem *items,
                      char *idbuf)
{
    for (size_t i = 0; i < cnt; i++) {
        char *id = idbuf + i * 16;
        int len = snprintf(id, 16, "%zu", r0 + i);
        items[i] = (sop_vitem){.id = id, .id_len = (size_t)len,
                               .vec = d->base + (r0 + i) * d->dims, .dims = d->dims};
    }
    for (;;) {
        sop_txn *t;
        sop_vstore *vs;
        if (begin(ix, SOP_TXN_WRITE, &t, &vs) != 0)
            return -1;
        int rc = sop_vstore_upsert_batch(vs, items, cnt);
        if (rc != SOP_OK) {
            sop_err(ix->db, "sop_vstore_upsert_batch", rc);
            sop_txn_rollback(t);
            return -1;
        }
        rc = sop_txn_commit(t);
        if (rc == SOP_OK)
            return 0;
        if (rc != SOP_ECONFLICT) {
            sop_err(ix->db, "sop_txn_commit (load)", rc);
            return -1;
        }
    }
}

static int describe(vec_index *ix, vec_build *b, double load_s, double opt_s)
{
    sop_txn *t;
    sop_vstore *vs;
    if (begin(ix, SOP_TXN_READ, &t, &vs) != 0)
        return -1;
    sop_vstore_stat st;
    int rc = sop_vstore_stats(vs, &st, NULL, 0);
    sop_txn_rollback(t);
    if (rc != SOP_OK) {
        sop_err(ix->db, "sop_vstore_stats", rc);
        return -1;
    }
    snprintf(b->desc, sizeof b->desc,
             "IVF cosine, %s nlist %u, %llu items, clusters %llu..%llu; load %.1f s, optimize "
             "%.1f s (default threads); cache %zu MiB",
             st.trained ? "trained" : "UNTRAINED", st.nlist, (unsigned long long)st.count,
             (unsigned long long)st.min_cluster, (unsigned long long)st.max_cluster, load_s,
             opt_s, cache_mb());
    return 0;
}

static int vs_build(const vec_data *d, uint32_t nlist, const char *dir, vec_index **out,
                    vec_build *b)
{
    vec_index *ix = calloc(1, sizeof *ix);
    sop_vitem *items = malloc(LOAD_BATCH * sizeof *items);
    char *idbuf = malloc(LOAD_BATCH * 16);
    if (!ix || !items || !idbuf) {
        vec_set_err("out of memory");
        goto fail;
    }
    snprintf(ix->path, sizeof ix->path, "%s/db", dir);
    if (open_db(ix) != 0 || create_store(ix, d, nlist) != 0)
        goto fail;
    double t0 = bench_now();
    for (size_t r = 0; r < d->n; r += LOAD_BATCH) {
        size_t cnt = d->n - r < LOAD_BATCH ? d->n - r : LOAD_BATCH;
        if (load_batch(ix, d, r, cnt, items, idbuf) != 0)
            goto fail;
    }
    double t1 = bench_now();
    sop_voptimize_options oo;
    sop_voptimize_options_init(&oo);
    oo.nlist = nlist;
    oo.batch = UINT32_MAX; /* a bulk build: one migration transaction */
    int rc = sop_vstore_optimize(ix->db, VSTORE_NAME, &oo);
    if (rc != SOP_OK) {
        sop_err(ix->db, "sop_vstore_optimize", rc);
        goto fail;
    }
    double t2 = bench_now();
    b->add_s = t1 - t0;
    b->train_s = t2 - t1;
    if (describe(ix, b, t1 - t0, t2 - t1) != 0)
        goto fail;
    /* bytes on disk of the closed database, then reopen for the queries */
    rc = sop_db_close(ix->db);
    ix->db = NULL;
    if (rc != SOP_OK) {
        vec_set_err("sop_db_close: %s (%s)", sop_strerror(rc), sop_err_name(rc));
        goto fail;
    }
    b->bytes = bench_du(ix->path);
    if (open_db(ix) != 0)
        goto fail;
    free(items);
    free(idbuf);
    *out = ix;
    return 0;
fail:
    free(items);
    free(idbuf);
    vs_close(ix);
    return -1;
}

static int32_t parse_row(const sop_val *id, size_t n)
{
    if (id->size == 0 || id->size > 10)
        return -2;
    const unsigned char *p = id->data;
    uint64_t v = 0;
    for (size_t i = 0; i < id->size; i++) {
        if (p[i] < '0' || p[i] > '9')
            return -2;
        v = v * 10 + (uint64_t)(p[i] - '0');
    }
    return v < n ? (int32_t)v : -2;
}

static int vs_search(vec_index *ix, const vec_data *d, uint32_t p, size_t q0, size_t nq,
                     int32_t *out)
{
    for (size_t b0 = 0; b0 < nq; b0 += QUERIES_PER_TXN) {
        size_t cnt = nq - b0 < QUERIES_PER_TXN ? nq - b0 : QUERIES_PER_TXN;
        sop_txn *t;
        sop_vstore *vs;
        if (begin(ix, SOP_TXN_READ, &t, &vs) != 0)
            return -1;
        for (size_t q = b0; q < b0 + cnt; q++) {
            sop_vquery qu;
            sop_vquery_init(&qu);
            qu.vec = d->queries + (q0 + q) * d->dims;
            qu.dims = d->dims;
            qu.k = VEC_K;
            qu.nprobe = p;
            uint32_t nh = 0;
            int rc = sop_vstore_query(vs, &qu, ix->hits, &nh);
            if (rc != SOP_OK) {
                sop_err(ix->db, "sop_vstore_query", rc);
                sop_txn_rollback(t);
                return -1;
            }
            int32_t *o = out + q * VEC_K;
            for (uint32_t j = 0; j < VEC_K; j++)
                o[j] = j < nh ? parse_row(&ix->hits[j].id, d->n) : -1;
        }
        sop_txn_rollback(t);
    }
    return 0;
}

const vec_engine vec_engine_sop = {.name = "sop", .param = "nprobe", .ivf = 1,
                                   .build = vs_build, .search = vs_search, .close = vs_close};

#else
/* ISO C forbids an empty translation unit. */
typedef int vec_sop_compiled_out;
#endif
