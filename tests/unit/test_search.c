/*
 * test_search.c - the text index (sop/search.h).
 *
 *  - scores equal BM25 computed by hand (FTS5's IDF, k1 and b as given);
 *  - top-k with MaxScore pruning equals an exhaustive ranking computed by
 *    the test from its own model of the corpus (random corpora, queries of
 *    1..6 terms, k from 1 to 50, repeated query terms);
 *  - add / replace / upsert / delete, over several transactions with
 *    rollbacks, leave statistics, document frequencies and rankings exactly
 *    equal to an index built from the final documents alone;
 *  - concurrent writers in separate transactions: no conflict, exact stats;
 *  - rollback leaves no trace; one transaction writing a KV store, a vector
 *    store and a text index commits or rolls back as one;
 *  - named fields and "field:word" queries; hybrid rank fusion;
 *  - bad input: documented errors, nothing written.
 * Words of the random corpora are "w<number>": the tokenizer keeps them as
 * they are, so the test's model needs no tokenizer.
 */
#include <errno.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <pthread.h>

#include "sop/search.h"
#include "testutil.h"

static sop_db *open_db(const char *name)
{
    sop_db_options o;
    sop_db_options_init(&o);
    o.sync = SOP_SYNC_NONE;
    sop_db *db;
    assert_int_equal(sop_db_open(tu_tmpdir(name), &o, &db), 0);
    return db;
}

static sop_text *text(sop_txn *txn, const char *name)
{
    sop_text *t;
    int rc = sop_text_open(txn, name, &t);
    if (rc == SOP_ENOTFOUND)
        rc = sop_text_create(txn, name, NULL, &t);
    assert_int_equal(rc, 0);
    return t;
}

static int add(sop_text *t, const char *id, const char *body)
{
    sop_text_doc d = {id, strlen(id), body, strlen(body), NULL, 0};
    return sop_text_add(t, &d);
}

static uint32_t search(sop_text *t, const char *q, uint32_t k, sop_text_hit *hits)
{
    sop_text_query qu;
    sop_text_query_init(&qu);
    qu.text = q;
    qu.len = strlen(q);
    qu.k = k;
    uint32_t n = 99;
    assert_int_equal(sop_text_search(t, &qu, hits, &n), 0);
    return n;
}

static double idf(double N, double df)
{
    double x = log((N - df + 0.5) / (df + 0.5));
    return x <= 0 ? 1e-6 : x;
}

static double bm25(double tf, double dl, double df, double N, double avgdl)
{
    return idf(N, df) * tf * 2.2 / (tf + 1.2 * (0.25 + 0.75 * dl / avgdl));
}

/* ---- hand-computed scores ------------------------------------------ */

static void test_search_hand_bm25(void **state)
{
    (void)state;
    sop_db *db = open_db("hand");
    sop_txn *txn;
    assert_int_equal(sop_txn_begin(db, SOP_TXN_WRITE, 0, &txn), 0);
    sop_text *t = text(txn, "docs");
    /* lengths 3, 2, 4, 1, 2, 3: total 15, N 6, avgdl 2.5; "The" is a stop
     * word, "Apples" stems to "appl", "APPLE" folds to "appl" too */
    assert_int_equal(add(t, "d1", "Apples banana APPLE"), 0);
    assert_int_equal(add(t, "d2", "banana cherry"), 0);
    assert_int_equal(add(t, "d3", "cherry cherry cherry date the"), 0);
    assert_int_equal(add(t, "d4", "egg"), 0);
    assert_int_equal(add(t, "d5", "fig grape"), 0);
    assert_int_equal(add(t, "d6", "kiwi lemon mango"), 0);
    assert_int_equal(sop_txn_commit(txn), 0);
    /* a document of stop words only: length 0, counted, matches nothing */
    assert_int_equal(sop_txn_begin(db, SOP_TXN_WRITE, 0, &txn), 0);
    t = text(txn, "docs");
    assert_int_equal(add(t, "d0", "The and of it"), 0);
    assert_int_equal(sop_txn_commit(txn), 0);
    assert_int_equal(sop_txn_begin(db, SOP_TXN_WRITE, 0, &txn), 0);
    t = text(txn, "docs");
    uint32_t len0 = 9;
    assert_int_equal(sop_text_doc_len(t, "d0", 2, &len0), 0);
    assert_int_equal(len0, 0);
    assert_int_equal(sop_text_delete(t, "d0", 2), 0);
    assert_int_equal(sop_txn_commit(txn), 0);

    assert_int_equal(sop_txn_begin(db, SOP_TXN_READ, 0, &txn), 0);
    assert_int_equal(sop_text_open(txn, "docs", &t), 0);
    sop_text_stat st;
    assert_int_equal(sop_text_stats(t, &st), 0);
    assert_int_equal(st.docs, 6);
    assert_int_equal(st.total_len, 15);
    assert_int_equal(st.terms, 10);
    uint64_t df;
    assert_int_equal(sop_text_df(t, "cherries", 8, &df), 0); /* stems to cherri */
    assert_int_equal(df, 2);
    uint32_t len;
    assert_int_equal(sop_text_doc_len(t, "d3", 2, &len), 0);
    assert_int_equal(len, 4);

    sop_text_hit h[10];
    uint32_t n = search(t, "apple cherry", 10, h);
    assert_int_equal(n, 3);
    double d1 = bm25(2, 3, 1, 6, 2.5), d3 = bm25(3, 4, 2, 6, 2.5), d2 = bm25(1, 2, 2, 6, 2.5);
    assert_memory_equal(h[0].id.data, "d1", 2);
    assert_true(fabs(h[0].score - d1) < 1e-12);
    assert_memory_equal(h[1].id.data, "d3", 2);
    assert_true(fabs(h[1].score - d3) < 1e-12);
    assert_memory_equal(h[2].id.data, "d2", 2);
    assert_true(fabs(h[2].score - d2) < 1e-12);
    /* a repeated query word counts twice (as in FTS5) */
    n = search(t, "egg egg", 10, h);
    assert_int_equal(n, 1);
    assert_true(fabs(h[0].score - 2 * bm25(1, 1, 1, 6, 2.5)) < 1e-12);
    /* k1 and b */
    sop_text_query q;
    sop_text_query_init(&q);
    q.text = "banana";
    q.len = 6;
    q.k1 = 2.0;
    q.b = 0.5;
    assert_int_equal(sop_text_search(t, &q, h, &n), 0);
    assert_int_equal(n, 2);
    double i = idf(6, 2), s2 = i * 1 * 3.0 / (1 + 2.0 * (0.5 + 0.5 * 2 / 2.5)),
           s1 = i * 1 * 3.0 / (1 + 2.0 * (0.5 + 0.5 * 3 / 2.5));
    assert_memory_equal(h[0].id.data, "d2", 2);
    assert_true(fabs(h[0].score - s2) < 1e-12);
    assert_true(fabs(h[1].score - s1) < 1e-12);
    /* no term, unknown terms, stop words only: nothing */
    assert_int_equal(search(t, "", 10, h), 0);
    assert_int_equal(search(t, "zebra", 10, h), 0);
    assert_int_equal(search(t, "the of and", 10, h), 0);
    sop_txn_rollback(txn);
    assert_int_equal(sop_db_close(db), 0);
}

/* ---- a model of a corpus, ranked exhaustively ------------------------ */

#define VOCAB 400
#define MAXDOCS 600

typedef struct mdoc {
    int live;
    uint16_t tf[VOCAB];
    uint32_t dl;
} mdoc;

typedef struct model {
    mdoc d[MAXDOCS];
} model;

static void make_text(uint64_t *rs, mdoc *d, char *buf, size_t cap)
{
    memset(d->tf, 0, sizeof d->tf);
    size_t n = 1 + tu_rand_below(rs, 40), off = 0;
    d->dl = (uint32_t)n;
    for (size_t i = 0; i < n; i++) {
        /* Zipf-like: small word numbers are frequent */
        uint64_t r = tu_rand_below(rs, VOCAB);
        uint64_t w = (r * r * r) / ((uint64_t)VOCAB * VOCAB);
        d->tf[w]++;
        off += (size_t)snprintf(buf + off, cap - off, "%sw%llu", i ? " " : "",
                                (unsigned long long)w);
    }
    d->live = 1;
}

typedef struct ranked {
    int doc;
    double score;
} ranked;

static int ranked_cmp(const void *pa, const void *pb)
{
    const ranked *a = pa, *b = pb;
    if (a->score != b->score)
        return a->score < b->score ? 1 : -1;
    char x[16], y[16]; /* ids in byte order, as the engine breaks ties */
    snprintf(x, sizeof x, "doc%d", a->doc);
    snprintf(y, sizeof y, "doc%d", b->doc);
    return strcmp(x, y);
}

/* Ranks the model's documents for query words @q (counts per word). */
static size_t rank_model(const model *m, const int *qw, size_t nq, ranked *out)
{
    double N = 0, L = 0;
    for (int i = 0; i < MAXDOCS; i++)
        if (m->d[i].live) {
            N++;
            L += m->d[i].dl;
        }
    double avgdl = L / N;
    size_t n = 0;
    for (int i = 0; i < MAXDOCS; i++) {
        if (!m->d[i].live)
            continue;
        double s = 0;
        int hit = 0;
        for (size_t j = 0; j < nq; j++) {
            int w = qw[j];
            if (!m->d[i].tf[w])
                continue;
            double df = 0;
            for (int x = 0; x < MAXDOCS; x++)
                df += m->d[x].live && m->d[x].tf[w];
            s += bm25(m->d[i].tf[w], m->d[i].dl, df, N, avgdl);
            hit = 1;
        }
        if (hit)
            out[n++] = (ranked){i, s};
    }
    qsort(out, n, sizeof *out, ranked_cmp);
    return n;
}

/* Checks random queries against the model. */
static void check_queries(sop_text *t, const model *m, uint64_t *rs, int rounds)
{
    static ranked want[MAXDOCS];
    static sop_text_hit got[64];
    for (int r = 0; r < rounds; r++) {
        int qw[6];
        size_t nq = 1 + tu_rand_below(rs, 6), off = 0;
        char q[128];
        for (size_t j = 0; j < nq; j++) {
            qw[j] = (int)tu_rand_below(rs, VOCAB / 2);
            if (j && tu_rand_below(rs, 5) == 0)
                qw[j] = qw[0]; /* repeated words */
            off += (size_t)snprintf(q + off, sizeof q - off, " w%d", qw[j]);
        }
        uint32_t k = 1 + (uint32_t)tu_rand_below(rs, 50);
        size_t nw = rank_model(m, qw, nq, want);
        uint32_t n = search(t, q, k, got);
        assert_int_equal(n, nw < k ? nw : k);
        for (uint32_t i = 0; i < n; i++) {
            char id[16];
            snprintf(id, sizeof id, "doc%d", want[i].doc);
            /* the same document, or one whose model score ties within
             * rounding (sums in another order differ in the last bits) */
            int same = got[i].id.size == strlen(id) && !memcmp(got[i].id.data, id, got[i].id.size);
            double eps = 1e-9 * want[i].score;
            for (size_t j = 0; !same && j < nw; j++) {
                snprintf(id, sizeof id, "doc%d", want[j].doc);
                if (got[i].id.size == strlen(id) && !memcmp(got[i].id.data, id, got[i].id.size))
                    same = fabs(want[j].score - want[i].score) <= eps;
            }
            snprintf(id, sizeof id, "doc%d", want[i].doc);
            if (!same || fabs(got[i].score - want[i].score) > eps) {
                fprintf(stderr, "query \"%s\" k %u rank %u: got %.*s %.12f, want %s %.12f\n", q,
                        k, i, (int)got[i].id.size, (const char *)got[i].id.data, got[i].score,
                        id, want[i].score);
                fail();
            }
        }
    }
}

static void check_stats(sop_text *t, const model *m)
{
    sop_text_stat st;
    assert_int_equal(sop_text_stats(t, &st), 0);
    uint64_t N = 0, L = 0, terms = 0;
    for (int i = 0; i < MAXDOCS; i++)
        if (m->d[i].live) {
            N++;
            L += m->d[i].dl;
        }
    for (int w = 0; w < VOCAB; w++) {
        uint64_t df = 0, got;
        for (int i = 0; i < MAXDOCS; i++)
            df += m->d[i].live && m->d[i].tf[w];
        char word[16];
        snprintf(word, sizeof word, "w%d", w);
        assert_int_equal(sop_text_df(t, word, strlen(word), &got), 0);
        assert_int_equal(got, df);
        terms += df > 0;
    }
    assert_int_equal(st.docs, N);
    assert_int_equal(st.total_len, L);
    assert_int_equal(st.terms, terms);
    for (int i = 0; i < MAXDOCS; i++) { /* every record: single or in a block */
        char id[16];
        uint32_t dl = 0;
        snprintf(id, sizeof id, "doc%d", i);
        int rc = sop_text_doc_len(t, id, strlen(id), &dl);
        assert_int_equal(rc, m->d[i].live ? 0 : SOP_ENOTFOUND);
        if (!rc)
            assert_int_equal(dl, m->d[i].dl);
    }
}

static void test_search_model(void **state)
{
    (void)state;
    sop_db *db = open_db("model");
    static model m, work;
    memset(&m, 0, sizeof m);
    uint64_t rs = tu_seed();
    static char body[1024];
    sop_txn *txn;
    assert_int_equal(sop_txn_begin(db, SOP_TXN_WRITE, 0, &txn), 0);
    text(txn, "model");
    assert_int_equal(sop_txn_commit(txn), 0);
    for (int round = 0; round < 30; round++) {
        work = m;
        assert_int_equal(sop_txn_begin(db, SOP_TXN_WRITE, 0, &txn), 0);
        sop_text *t = text(txn, "model");
        /* bulk rounds (>= 32 adds: blocks of postings and of records,
         * merged into the blocks earlier rounds wrote) and small ones
         * (singles) */
        int bulk = round % 3 == 0;
        int ops = round == 0 ? 400 : bulk ? 100 + (int)tu_rand_below(&rs, 200)
                                          : 1 + (int)tu_rand_below(&rs, 30);
        for (int o = 0; o < ops; o++) {
            int i = (int)tu_rand_below(&rs, MAXDOCS);
            char id[16];
            snprintf(id, sizeof id, "doc%d", i);
            mdoc nd;
            make_text(&rs, &nd, body, sizeof body);
            sop_text_doc d = {id, strlen(id), body, strlen(body), NULL, 0};
            int what = (int)tu_rand_below(&rs, 4), rc;
            if (what == 0) {
                rc = sop_text_add(t, &d);
                assert_int_equal(rc, work.d[i].live ? SOP_EEXISTS : 0);
            } else if (what == 1) {
                rc = sop_text_replace(t, &d);
                assert_int_equal(rc, work.d[i].live ? 0 : SOP_ENOTFOUND);
            } else if (what == 2) {
                assert_int_equal(sop_text_upsert(t, &d), 0);
                rc = 0;
            } else {
                rc = sop_text_delete(t, id, strlen(id));
                assert_int_equal(rc, work.d[i].live ? 0 : SOP_ENOTFOUND);
                if (!rc)
                    work.d[i].live = 0;
                continue;
            }
            if (!rc)
                work.d[i] = nd;
            /* reads inside the writer see its writes (and flush the buffer) */
            if (tu_rand_below(&rs, bulk ? 250 : 50) == 0)
                check_queries(t, &work, &rs, 2);
        }
        if (tu_rand_below(&rs, 5) == 0) {
            sop_txn_rollback(txn);
        } else {
            assert_int_equal(sop_txn_commit(txn), 0);
            m = work;
        }
        assert_int_equal(sop_txn_begin(db, SOP_TXN_READ, 0, &txn), 0);
        assert_int_equal(sop_text_open(txn, "model", &t), 0);
        check_stats(t, &m);
        check_queries(t, &m, &rs, 20);
        sop_txn_rollback(txn);
    }
    /* an index built from the final documents alone ranks identically */
    assert_int_equal(sop_txn_begin(db, SOP_TXN_WRITE, 0, &txn), 0);
    sop_text *fresh = text(txn, "fresh"), *old = text(txn, "model");
    for (int i = 0; i < MAXDOCS; i++) {
        if (!m.d[i].live)
            continue;
        size_t off = 0;
        for (int w = VOCAB - 1; w >= 0; w--) /* another word order: BM25 ignores it */
            for (int c = 0; c < m.d[i].tf[w]; c++)
                off += (size_t)snprintf(body + off, sizeof body - off, "w%d ", w);
        char id[16];
        snprintf(id, sizeof id, "doc%d", i);
        assert_int_equal(add(fresh, id, body), 0);
    }
    sop_text_stat a, b;
    assert_int_equal(sop_text_stats(fresh, &a), 0);
    assert_int_equal(sop_text_stats(old, &b), 0);
    assert_memory_equal(&a, &b, sizeof a);
    for (int r = 0; r < 50; r++) {
        char q[64];
        snprintf(q, sizeof q, "w%d w%d w%d", (int)tu_rand_below(&rs, VOCAB),
                 (int)tu_rand_below(&rs, 20), (int)tu_rand_below(&rs, VOCAB));
        static sop_text_hit ha[40], hb[40];
        uint32_t na = search(fresh, q, 40, ha);
        static uint8_t ida[40][16];
        for (uint32_t i = 0; i < na; i++)
            memcpy(ida[i], ha[i].id.data, ha[i].id.size);
        uint32_t nb = search(old, q, 40, hb);
        assert_int_equal(na, nb);
        for (uint32_t i = 0; i < na; i++) {
            assert_int_equal(ha[i].id.size, hb[i].id.size);
            assert_memory_equal(ida[i], hb[i].id.data, hb[i].id.size);
            assert_true(ha[i].score == hb[i].score); /* bit for bit */
        }
    }
    assert_int_equal(sop_txn_commit(txn), 0);
    assert_int_equal(sop_db_close(db), 0);
}

/* ---- concurrent writers ---------------------------------------------- */

#define WRITERS 4
#define PER_WRITER 60

static struct {
    sop_db *db;
    int failures;
    pthread_mutex_t mu;
    char bodies[WRITERS * PER_WRITER][256];
} cw = {.mu = PTHREAD_MUTEX_INITIALIZER};

static void *writer(void *arg)
{
    int id = (int)(intptr_t)arg;
    for (int i = 0; i < PER_WRITER; i++) {
        int n = id * PER_WRITER + i;
        char did[16];
        snprintf(did, sizeof did, "doc%d", n);
        sop_txn *txn;
        sop_text *t;
        int rc = sop_txn_begin(cw.db, SOP_TXN_WRITE, 0, &txn);
        if (!rc)
            rc = sop_text_open(txn, "cw", &t);
        sop_text_doc d = {did, strlen(did), cw.bodies[n], strlen(cw.bodies[n]), NULL, 0};
        if (!rc)
            rc = sop_text_add(t, &d);
        if (!rc && i % 3 == 2) { /* and take back the one before */
            char prev[16];
            snprintf(prev, sizeof prev, "doc%d", n - 1);
            rc = sop_text_delete(t, prev, strlen(prev));
        }
        if (!rc)
            rc = sop_txn_commit(txn);
        else
            sop_txn_rollback(txn);
        if (rc) {
            pthread_mutex_lock(&cw.mu);
            cw.failures++;
            fprintf(stderr, "writer %d doc %d: %s\n", id, n, sop_strerror(rc));
            pthread_mutex_unlock(&cw.mu);
        }
    }
    return NULL;
}

static void test_search_concurrent_writers(void **state)
{
    (void)state;
    cw.db = open_db("concurrent");
    static model m;
    memset(&m, 0, sizeof m);
    uint64_t rs = tu_seed() + 7;
    for (int n = 0; n < WRITERS * PER_WRITER; n++) {
        make_text(&rs, &m.d[n], cw.bodies[n], sizeof cw.bodies[n]);
        if (n % PER_WRITER % 3 == 1)
            m.d[n].live = 0; /* deleted by the next one */
    }
    sop_txn *txn;
    assert_int_equal(sop_txn_begin(cw.db, SOP_TXN_WRITE, 0, &txn), 0);
    text(txn, "cw");
    assert_int_equal(sop_txn_commit(txn), 0);
    pthread_t th[WRITERS];
    for (int i = 0; i < WRITERS; i++)
        assert_int_equal(pthread_create(&th[i], NULL, writer, (void *)(intptr_t)i), 0);
    for (int i = 0; i < WRITERS; i++)
        pthread_join(th[i], NULL);
    assert_int_equal(cw.failures, 0); /* no conflict between writers */
    assert_int_equal(sop_txn_begin(cw.db, SOP_TXN_READ, 0, &txn), 0);
    sop_text *t;
    assert_int_equal(sop_text_open(txn, "cw", &t), 0);
    check_stats(t, &m);
    check_queries(t, &m, &rs, 50);
    sop_txn_rollback(txn);
    uint64_t problems = 1;
    assert_int_equal(sop_db_check(cw.db, NULL, NULL, &problems), 0);
    assert_int_equal(problems, 0);
    assert_int_equal(sop_db_close(cw.db), 0);
}

/* ---- one transaction, three kinds of stores ---------------------------- */

static void write_all(sop_db *db, const char *id, int commit)
{
    sop_txn *txn;
    assert_int_equal(sop_txn_begin(db, SOP_TXN_WRITE, 0, &txn), 0);
    sop_store *kv;
    int rc = sop_store_open(txn, "kv", &kv);
    if (rc == SOP_ENOTFOUND)
        rc = sop_store_create(txn, "kv", NULL, &kv);
    assert_int_equal(rc, 0);
    sop_vstore *vs;
    rc = sop_vstore_open(txn, "vec", &vs);
    if (rc == SOP_ENOTFOUND) {
        sop_vstore_options o;
        sop_vstore_options_init(&o);
        o.dims = 2;
        rc = sop_vstore_create(txn, "vec", &o, &vs);
    }
    assert_int_equal(rc, 0);
    sop_text *t = text(txn, "txt");
    sop_val k = {id, strlen(id)}, v = {"value", 5};
    assert_int_equal(sop_add(kv, &k, &v), 0);
    float vec[2] = {1, (float)strlen(id)};
    sop_vitem it = {id, strlen(id), vec, 2, NULL, 0};
    assert_int_equal(sop_vstore_upsert(vs, &it), 0);
    assert_int_equal(add(t, id, "shared words here"), 0);
    if (commit)
        assert_int_equal(sop_txn_commit(txn), 0);
    else
        sop_txn_rollback(txn);
}

static void test_search_one_txn_three_layers(void **state)
{
    (void)state;
    sop_db *db = open_db("three");
    write_all(db, "a", 1);
    write_all(db, "bb", 0);
    sop_txn *txn;
    assert_int_equal(sop_txn_begin(db, SOP_TXN_READ, 0, &txn), 0);
    sop_store *kv;
    sop_vstore *vs;
    sop_text *t;
    assert_int_equal(sop_store_open(txn, "kv", &kv), 0);
    assert_int_equal(sop_vstore_open(txn, "vec", &vs), 0);
    assert_int_equal(sop_text_open(txn, "txt", &t), 0);
    uint64_t n;
    assert_int_equal(sop_store_count(kv, &n), 0);
    assert_int_equal(n, 1);
    assert_int_equal(sop_vstore_count(vs, &n), 0);
    assert_int_equal(n, 1);
    sop_text_stat st;
    assert_int_equal(sop_text_stats(t, &st), 0);
    assert_int_equal(st.docs, 1);
    assert_int_equal(st.total_len, 3);
    sop_val out;
    sop_val kb = {"bb", 2};
    assert_int_equal(sop_get(kv, &kb, &out), SOP_ENOTFOUND);
    assert_int_equal(sop_vstore_get(vs, "bb", 2, NULL, NULL), SOP_ENOTFOUND);
    uint32_t len;
    assert_int_equal(sop_text_doc_len(t, "bb", 2, &len), SOP_ENOTFOUND);
    sop_text_hit h[4];
    assert_int_equal(search(t, "words", 4, h), 1);

    /* hybrid: ranks fused by hand */
    sop_txn_rollback(txn);
    assert_int_equal(sop_txn_begin(db, SOP_TXN_WRITE, 0, &txn), 0);
    assert_int_equal(sop_vstore_open(txn, "vec", &vs), 0);
    t = text(txn, "txt");
    const char *ids[] = {"x1", "x2", "x3"};
    const char *bodies[] = {"rare rare common", "common", "nothing"};
    float vecs[3][2] = {{0, 1}, {1, 0.1f}, {1, 0}};
    for (int i = 0; i < 3; i++) {
        assert_int_equal(add(t, ids[i], bodies[i]), 0);
        sop_vitem it = {ids[i], 2, vecs[i], 2, NULL, 0};
        assert_int_equal(sop_vstore_upsert(vs, &it), 0);
    }
    sop_hybrid_query hq;
    sop_hybrid_query_init(&hq);
    hq.text = "rare common";
    hq.len = strlen(hq.text);
    float qv[2] = {1, 0};
    hq.vec = qv;
    hq.dims = 2;
    hq.k = 3;
    hq.depth = 3;
    hq.vec_weight = 2;
    sop_hybrid_hit hh[3];
    uint32_t nh;
    assert_int_equal(sop_text_hybrid(t, vs, &hq, hh, &nh), 0);
    /* text: x1 (1), x2 (2); vector (cosine to (1,0)): x3 (1), x2 (2), a (3:
     * (1,1)/sqrt2 beats x1's (0,1)). x2 = 1/62 + 2/62, x3 = 2/61, a = 2/63,
     * x1 = 1/61 */
    assert_int_equal(nh, 3);
    assert_memory_equal(hh[0].id.data, "x2", 2);
    assert_true(fabs(hh[0].score - (1.0 / 62 + 2.0 / 62)) < 1e-12);
    assert_int_equal(hh[0].text_rank, 2);
    assert_int_equal(hh[0].vec_rank, 2);
    assert_memory_equal(hh[1].id.data, "x3", 2);
    assert_true(fabs(hh[1].score - 2.0 / 61) < 1e-12);
    assert_int_equal(hh[1].text_rank, 0);
    assert_memory_equal(hh[2].id.data, "a", 1);
    assert_true(fabs(hh[2].score - 2.0 / 63) < 1e-12);
    /* text only, and bad queries */
    hq.vec = NULL;
    assert_int_equal(sop_text_hybrid(t, NULL, &hq, hh, &nh), 0);
    assert_int_equal(nh, 2);
    assert_memory_equal(hh[0].id.data, "x1", 2);
    assert_true(fabs(hh[0].score - 1.0 / 61) < 1e-12);
    hq.text = NULL;
    hq.len = 0;
    assert_int_equal(sop_text_hybrid(t, vs, &hq, hh, &nh), -EINVAL);
    sop_txn_rollback(txn);
    assert_int_equal(sop_db_close(db), 0);
}

/* ---- fields ------------------------------------------------------------ */

static void test_search_fields(void **state)
{
    (void)state;
    sop_db *db = open_db("fields");
    sop_txn *txn;
    assert_int_equal(sop_txn_begin(db, SOP_TXN_WRITE, 0, &txn), 0);
    sop_text *t = text(txn, "f");
    sop_text_field f1[] = {{"title", "Heart attack", 12}};
    sop_text_field f2[] = {{"title", "Lung disease", 12}, {"notes", "heart rate normal", 17}};
    sop_text_doc d1 = {"p1", 2, "chest pain", 10, f1, 1}, d2 = {"p2", 2, NULL, 0, f2, 2};
    assert_int_equal(sop_text_add(t, &d1), 0);
    assert_int_equal(sop_text_add(t, &d2), 0);
    uint32_t len;
    assert_int_equal(sop_text_doc_len(t, "p1", 2, &len), 0);
    assert_int_equal(len, 4);
    assert_int_equal(sop_text_doc_len(t, "p2", 2, &len), 0);
    assert_int_equal(len, 5);
    sop_text_hit h[4];
    assert_int_equal(search(t, "heart", 4, h), 2);
    assert_int_equal(search(t, "title:heart", 4, h), 1);
    assert_memory_equal(h[0].id.data, "p1", 2);
    assert_int_equal(search(t, "notes:heart", 4, h), 1);
    assert_memory_equal(h[0].id.data, "p2", 2);
    assert_int_equal(search(t, "notes:chest", 4, h), 0);
    uint64_t df;
    assert_int_equal(sop_text_df(t, "title:Lung", 10, &df), 0);
    assert_int_equal(df, 1);
    /* bad fields */
    sop_text_field bad1[] = {{"Title", "x", 1}};
    sop_text_field bad2[] = {{"a", "x", 1}, {"a", "y", 1}};
    sop_text_field bad3[] = {{"", "x", 1}};
    sop_text_doc b = {"p3", 2, "x", 1, bad1, 1};
    assert_int_equal(sop_text_add(t, &b), -EINVAL);
    b.fields = bad2;
    b.nfields = 2;
    assert_int_equal(sop_text_add(t, &b), -EINVAL);
    b.fields = bad3;
    b.nfields = 1;
    assert_int_equal(sop_text_add(t, &b), -EINVAL);
    b.nfields = SOP_TEXT_FIELDS_MAX + 1;
    assert_int_equal(sop_text_add(t, &b), -EINVAL);
    assert_int_equal(sop_txn_commit(txn), 0);
    assert_int_equal(sop_db_close(db), 0);
}

/* ---- bulk blocks with long ids ------------------------------------------ */

/* Ids longer than the block format's short lengths (shared prefix and
 * suffix of 15+ bytes), written in bulk (blocks), read, deleted. */
static void test_search_bulk_long_ids(void **state)
{
    (void)state;
    sop_db *db = open_db("longids");
    sop_txn *txn;
    assert_int_equal(sop_txn_begin(db, SOP_TXN_WRITE, 0, &txn), 0);
    sop_text *t = text(txn, "l");
    char id[128], body[64];
    for (int i = 0; i < 200; i++) {
        int n = snprintf(id, sizeof id, "%s-%05d%s", "a-very-long-common-prefix-for-document-ids", i,
                         i % 3 ? "" : "-and-a-long-tail-after-the-number");
        snprintf(body, sizeof body, "common w%d w%d", i % 7, i);
        sop_text_doc d = {id, (size_t)n, body, strlen(body), NULL, 0};
        assert_int_equal(sop_text_add(t, &d), 0);
    }
    assert_int_equal(sop_txn_commit(txn), 0);
    assert_int_equal(sop_txn_begin(db, SOP_TXN_WRITE, 0, &txn), 0);
    t = text(txn, "l");
    uint64_t df;
    assert_int_equal(sop_text_df(t, "common", 6, &df), 0);
    assert_int_equal(df, 200);
    assert_int_equal(sop_text_df(t, "w3", 2, &df), 0);
    assert_int_equal(df, 29);
    sop_text_hit h[40];
    assert_int_equal(search(t, "w3", 40, h), 29);
    for (uint32_t i = 0; i < 29; i++) { /* the ids come back whole */
        char digits[6] = {0}; /* the id is not NUL-terminated: copy its 5 digits */
        assert_true(h[i].id.size >= 48);
        memcpy(digits, (const char *)h[i].id.data + 43, 5);
        int num = atoi(digits);
        assert_int_equal(num % 7, 3);
        assert_int_equal(h[i].id.size, num % 3 ? 48 : 81);
    }
    for (int i = 0; i < 200; i += 2) { /* delete half: out of their blocks */
        int n = snprintf(id, sizeof id, "%s-%05d%s", "a-very-long-common-prefix-for-document-ids", i,
                         i % 3 ? "" : "-and-a-long-tail-after-the-number");
        assert_int_equal(sop_text_delete(t, id, (size_t)n), 0);
    }
    assert_int_equal(sop_text_df(t, "common", 6, &df), 0);
    assert_int_equal(df, 100);
    assert_int_equal(search(t, "common", 40, h), 40);
    assert_int_equal(search(t, "w4", 40, h), 14); /* odd i with i % 7 == 4 */
    assert_int_equal(sop_txn_commit(txn), 0);
    uint64_t problems = 1;
    assert_int_equal(sop_db_check(db, NULL, NULL, &problems), 0);
    assert_int_equal(problems, 0);
    assert_int_equal(sop_db_close(db), 0);
}

/* ---- bad input --------------------------------------------------------- */

static void test_search_bad_input(void **state)
{
    (void)state;
    sop_db *db = open_db("bad");
    sop_txn *txn;
    sop_text *t;
    assert_int_equal(sop_txn_begin(db, SOP_TXN_WRITE, 0, &txn), 0);
    assert_int_equal(sop_text_open(txn, "missing", &t), SOP_ENOTFOUND);
    assert_int_equal(sop_text_open(txn, ".bad", &t), SOP_ENAME);
    assert_int_equal(sop_text_create(txn, "a/b", NULL, &t), SOP_ENAME);
    sop_text_options o;
    sop_text_options_init(&o);
    o.node_bytes = 100;
    assert_int_equal(sop_text_create(txn, "x", &o, &t), -EINVAL);
    /* node_bytes: 2048..65536, as search.h says (it said 1024 once) */
    o.node_bytes = 2047;
    assert_int_equal(sop_text_create(txn, "x", &o, &t), -EINVAL);
    o.node_bytes = 65537;
    assert_int_equal(sop_text_create(txn, "x", &o, &t), -EINVAL);
    o.node_bytes = 2048;
    assert_int_equal(sop_text_create(txn, "n2048", &o, &t), 0);
    o.node_bytes = 65536;
    assert_int_equal(sop_text_create(txn, "n65536", &o, &t), 0);
    t = text(txn, "docs");
    assert_int_equal(sop_text_create(txn, "docs", NULL, &t), SOP_EEXISTS);
    t = text(txn, "docs");
    /* empty text */
    assert_int_equal(add(t, "e", ""), -EINVAL);
    /* ids */
    assert_int_equal(add(t, "", "x"), -EINVAL);
    char longid[SOP_TEXT_ID_MAX + 2];
    memset(longid, 'i', sizeof longid - 1);
    longid[sizeof longid - 1] = 0;
    assert_int_equal(add(t, longid, "x"), -EINVAL);
    longid[SOP_TEXT_ID_MAX] = 0; /* the maximum is fine */
    assert_int_equal(add(t, longid, "long id words"), 0);
    /* a document over the limit */
    size_t big = SOP_TEXT_DOC_MAX + 1;
    char *huge = malloc(big + 1);
    assert_non_null(huge);
    for (size_t i = 0; i < big; i++)
        huge[i] = (i % 8 == 7) ? ' ' : (char)('a' + (i / 8) % 26);
    huge[big] = 0;
    sop_text_doc d = {"h", 1, huge, big, NULL, 0};
    assert_int_equal(sop_text_add(t, &d), SOP_ETOOBIG);
    /* a huge document at the limit: ~2M words of 26 distinct terms */
    d.text_len = SOP_TEXT_DOC_MAX;
    assert_int_equal(sop_text_add(t, &d), 0);
    uint32_t len;
    assert_int_equal(sop_text_doc_len(t, "h", 1, &len), 0);
    assert_int_equal(len, SOP_TEXT_DOC_MAX / 8);
    free(huge);
    /* invalid UTF-8: the bad bytes separate words, nothing fails */
    const char inv[] = "caf\xc3\xa9\xff\xfeword \xc0\xafsplit\xed\xa0\x80more \xe2\x82";
    sop_text_doc di = {"u", 1, inv, sizeof inv - 1, NULL, 0};
    assert_int_equal(sop_text_add(t, &di), 0);
    assert_int_equal(sop_text_doc_len(t, "u", 1, &len), 0);
    assert_int_equal(len, 4); /* cafe word split more; the cut tail is a separator */
    sop_text_hit h[4];
    assert_int_equal(search(t, "CAFÉ", 4, h), 1);
    assert_int_equal(search(t, "split", 4, h), 1);
    /* deletes and lookups of unknown documents */
    assert_int_equal(sop_text_delete(t, "nope", 4), SOP_ENOTFOUND);
    assert_int_equal(sop_text_delete(t, NULL, 0), -EINVAL);
    assert_int_equal(sop_text_doc_len(t, "nope", 4, &len), SOP_ENOTFOUND);
    /* bad queries */
    sop_text_query q;
    sop_text_query_init(&q);
    uint32_t n;
    q.k = 0;
    assert_int_equal(sop_text_search(t, &q, h, &n), -EINVAL);
    q.k = SOP_TEXT_K_MAX + 1;
    assert_int_equal(sop_text_search(t, &q, h, &n), -EINVAL);
    q.k = 4;
    q.b = 1.5;
    assert_int_equal(sop_text_search(t, &q, h, &n), -EINVAL);
    q.b = 0.75;
    q.k1 = NAN;
    assert_int_equal(sop_text_search(t, &q, h, &n), -EINVAL);
    uint64_t df;
    assert_int_equal(sop_text_df(t, "two words", 9, &df), -EINVAL);
    /* none of this failed the transaction */
    assert_int_equal(sop_txn_commit(txn), 0);

    /* writes outside WRITE transactions */
    assert_int_equal(sop_txn_begin(db, SOP_TXN_READ, 0, &txn), 0);
    assert_int_equal(sop_text_open(txn, "docs", &t), 0);
    assert_int_equal(add(t, "r", "read only"), SOP_EREADONLY);
    sop_txn_rollback(txn);
    assert_int_equal(sop_txn_begin(db, SOP_TXN_NOCHECK, 0, &txn), 0);
    assert_int_equal(sop_text_open(txn, "docs", &t), 0);
    assert_int_equal(add(t, "r", "nocheck"), -EINVAL);
    sop_txn_rollback(txn);

    /* rollback leaves no trace; remove removes */
    assert_int_equal(sop_txn_begin(db, SOP_TXN_WRITE, 0, &txn), 0);
    t = text(txn, "docs");
    sop_text_stat before, after;
    assert_int_equal(sop_text_stats(t, &before), 0);
    assert_int_equal(add(t, "new", "entirely novel vocabulary"), 0);
    assert_int_equal(sop_text_delete(t, "u", 1), 0);
    sop_txn_rollback(txn);
    assert_int_equal(sop_txn_begin(db, SOP_TXN_WRITE, 0, &txn), 0);
    t = text(txn, "docs");
    assert_int_equal(sop_text_stats(t, &after), 0);
    assert_memory_equal(&before, &after, sizeof before);
    assert_int_equal(search(t, "novel", 4, h), 0);
    assert_int_equal(sop_text_remove(txn, "docs"), 0);
    assert_int_equal(sop_text_remove(txn, "docs"), SOP_ENOTFOUND);
    assert_int_equal(sop_txn_commit(txn), 0);
    assert_int_equal(sop_txn_begin(db, SOP_TXN_READ, 0, &txn), 0);
    assert_int_equal(sop_text_open(txn, "docs", &t), SOP_ENOTFOUND);
    sop_txn_rollback(txn);
    uint64_t problems = 1;
    assert_int_equal(sop_db_check(db, NULL, NULL, &problems), 0);
    assert_int_equal(problems, 0);
    assert_int_equal(sop_db_close(db), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_search_hand_bm25),
        cmocka_unit_test(test_search_model),
        cmocka_unit_test(test_search_concurrent_writers),
        cmocka_unit_test(test_search_one_txn_three_layers),
        cmocka_unit_test(test_search_fields),
        cmocka_unit_test(test_search_bulk_long_ids),
        cmocka_unit_test(test_search_bad_input),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
