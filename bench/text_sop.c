/*
 * text_sop.c - the SOP engine of the text suite, through the public API
 * only (sop/sop.h, sop/search.h).
 *
 * Build: a database in the work directory (SOP_SYNC_FULL: the commit is
 * durable when it returns; a node cache of SOP_BENCH_CACHE_MB, default
 * 64 MiB, the library's default, and SQLite's page cache here), then ONE
 * write transaction: sop_text_create() of index "t" (default options:
 * Porter stemming, the 33 Lucene stop words, case folding;
 * SOP_BENCH_TEXT_STOPWORDS=0 keeps the stop words, as the peers do), one
 * sop_text_add() per document (id = the row number in decimal; an empty
 * text is given as " ", indexed with length 0, as the peers index an
 * empty row), commit. The database is then closed (close_s) and its bytes
 * on disk counted.
 *
 * Queries: sop_text_search() with the query's words as the text (OR of
 * its terms), k as asked, BM25 k1 1.2, b 0.75 (the defaults); one
 * SOP_TXN_READ transaction (and sop_text_open()) per TEXT_QUERIES_PER_TXN
 * queries.
 *
 * Compiled only with -DSOP_BENCH_TEXT_SOP=ON (and without
 * SOP_BENCH_NO_SOP): it needs the text layer's implementation.
 */
#if defined(SOP_BENCH_TEXT_SOP) && !defined(SOP_BENCH_NO_SOP)

#include "text.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_util.h"
#include "sop/search.h"
#include "sop/sop.h"

#define INDEX_NAME "t"
/* generous time limits: the whole corpus in one transaction, or 1,000
 * queries of depth 1,000 */
#define TXN_MAX_MS (3600u * 1000u)

struct text_index {
    sop_db *db;
    size_t ndocs;
    sop_text_hit *hits;
    uint32_t cap;
};

static void sop_err(sop_db *db, const char *what, int rc)
{
    const char *detail = db ? sop_db_errmsg(db) : "";
    text_set_err("%s: %s (%s)%s%s", what, sop_strerror(rc), sop_err_name(rc),
                 *detail ? ": " : "", detail);
}

static int open_db(const char *dir, sop_db **db)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/db", dir);
    sop_db_options o;
    sop_db_options_init(&o);
    o.sync = SOP_SYNC_FULL;
    o.cache_bytes = text_cache_mb() << 20;
    int rc = sop_db_open(path, &o, db);
    if (rc != SOP_OK) {
        sop_err(*db, "sop_db_open", rc);
        if (rc != -ENOMEM)
            sop_db_close(*db);
        *db = NULL;
        return -1;
    }
    return 0;
}

static int st_build(const text_corpus *c, const char *dir, text_build *b)
{
    sop_db *db = NULL;
    sop_txn *t = NULL;
    sop_text *tx;
    double t0 = bench_now();
    if (open_db(dir, &db) != 0)
        return -1;
    int rc = sop_txn_begin(db, SOP_TXN_WRITE, TXN_MAX_MS, &t);
    if (rc != SOP_OK) {
        sop_err(db, "sop_txn_begin", rc);
        goto fail;
    }
    sop_text_options to;
    sop_text_options_init(&to);
    /* SOP_BENCH_TEXT_STOPWORDS=0 keeps stop words, as the peers do (a
     * diagnostic: rankings then differ from FTS5's by ties alone) */
    const char *sw = getenv("SOP_BENCH_TEXT_STOPWORDS");
    if (sw && *sw)
        to.stopwords = atoi(sw) != 0;
    if ((rc = sop_text_create(t, INDEX_NAME, &to, &tx)) != SOP_OK) {
        sop_err(db, "sop_text_create", rc);
        goto fail;
    }
    for (size_t i = 0; i < c->n; i++) {
        char id[24];
        int idlen = snprintf(id, sizeof id, "%zu", i);
        sop_text_doc d = {.id = id, .id_len = (size_t)idlen, .text = c->docs[i].text,
                          .text_len = c->docs[i].len};
        if (d.text_len == 0) {
            d.text = " ";
            d.text_len = 1;
        }
        if ((rc = sop_text_add(tx, &d)) != SOP_OK) {
            char what[64];
            snprintf(what, sizeof what, "sop_text_add (doc %zu)", i);
            sop_err(db, what, rc);
            goto fail;
        }
    }
    double tc = bench_now();
    rc = sop_txn_commit(t);
    t = NULL;
    if (rc != SOP_OK) {
        sop_err(db, "sop_txn_commit", rc);
        goto fail;
    }
    double t1 = bench_now();
    rc = sop_db_close(db);
    db = NULL;
    double t2 = bench_now();
    if (rc != SOP_OK) {
        text_set_err("sop_db_close: %s (%s)", sop_strerror(rc), sop_err_name(rc));
        return -1;
    }
    b->index_s = t1 - t0;
    b->commit_s = t1 - tc;
    b->close_s = t2 - t1;
    snprintf(b->desc, sizeof b->desc,
             "sop text index, Porter, %s, folding; one write transaction, SOP_SYNC_FULL "
             "(commit durable); cache %zu MiB",
             to.stopwords ? "Lucene stop words" : "stop words KEPT", text_cache_mb());
    return 0;
fail:
    if (t)
        sop_txn_rollback(t);
    if (db)
        sop_db_close(db);
    return -1;
}

static void st_close(text_index *ix)
{
    if (!ix)
        return;
    if (ix->db) {
        int rc = sop_db_close(ix->db);
        if (rc != SOP_OK)
            fprintf(stderr, "sop-bench: sop_db_close: %s (%s)\n", sop_strerror(rc),
                    sop_err_name(rc));
    }
    free(ix->hits);
    free(ix);
}

static int st_open(const char *dir, size_t ndocs, text_index **out)
{
    text_index *ix = calloc(1, sizeof *ix);
    if (!ix) {
        text_set_err("out of memory");
        return -1;
    }
    ix->ndocs = ndocs;
    if (open_db(dir, &ix->db) != 0) {
        free(ix);
        return -1;
    }
    *out = ix;
    return 0;
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

static int st_search(text_index *ix, const text_queries *qs, size_t q0, size_t nq, uint32_t k,
                     int32_t *out)
{
    if (k > ix->cap) {
        free(ix->hits);
        ix->hits = malloc(k * sizeof *ix->hits);
        ix->cap = ix->hits ? k : 0;
        if (!ix->hits) {
            text_set_err("out of memory");
            return -1;
        }
    }
    for (size_t b0 = 0; b0 < nq; b0 += TEXT_QUERIES_PER_TXN) {
        size_t cnt = nq - b0 < TEXT_QUERIES_PER_TXN ? nq - b0 : TEXT_QUERIES_PER_TXN;
        sop_txn *t;
        sop_text *tx;
        int rc = sop_txn_begin(ix->db, SOP_TXN_READ, TXN_MAX_MS, &t);
        if (rc != SOP_OK) {
            sop_err(ix->db, "sop_txn_begin", rc);
            return -1;
        }
        if ((rc = sop_text_open(t, INDEX_NAME, &tx)) != SOP_OK) {
            sop_err(ix->db, "sop_text_open", rc);
            sop_txn_rollback(t);
            return -1;
        }
        for (size_t q = b0; q < b0 + cnt; q++) {
            const char *s = qs->q[q0 + q];
            sop_text_query qu;
            sop_text_query_init(&qu);
            qu.text = s;
            qu.len = strlen(s);
            qu.k = k;
            uint32_t nh = 0;
            if ((rc = sop_text_search(tx, &qu, ix->hits, &nh)) != SOP_OK) {
                sop_err(ix->db, "sop_text_search", rc);
                sop_txn_rollback(t);
                return -1;
            }
            int32_t *o = out + q * k;
            for (uint32_t j = 0; j < k; j++)
                o[j] = j < nh ? parse_row(&ix->hits[j].id, ix->ndocs) : -1;
        }
        sop_txn_rollback(t);
    }
    return 0;
}

const text_engine text_engine_sop = {.name = "sop", .build = st_build, .open = st_open,
                                     .search = st_search, .close = st_close};

#else
/* ISO C forbids an empty translation unit. */
typedef int text_sop_compiled_out;
#endif
