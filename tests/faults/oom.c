/*
 * oom.c - the out-of-memory sweep (reliability plan C3, issue 7): the
 * allocator hook (sop_set_allocator) fails the Nth allocation, for every N
 * of representative operations of each layer, once ("transient") and then
 * for every allocation from the Nth on ("persistent"). For each N:
 *
 *   - the operation returns 0 or an error code (never crashes; ASan and
 *     UBSan watch every run);
 *   - once the handles are closed, every allocation made through the hook
 *     has been freed (a leak is reported with the N that caused it);
 *   - reopened with a working allocator, sop_db_check() finds nothing and
 *     the data is the state before the operation or the state after it,
 *     across all layers at once (one transaction writes a KV store, a
 *     vector store, a text index and a knowledge base); an operation that
 *     returned 0 must have left the state after it.
 *
 * Operations: open (and read everything), a cross-layer write transaction
 * with queries, a checkpoint, a vector store optimize, and a knowledge
 * base load from a fallback file (batched: a failed load keeps whole
 * batches and a second run completes it).
 *
 * Environment: SOP_OOM_STRIDE (default 1: every N) to sample N for long
 * runs; SOP_TEST_TMP. Exit 0 when every case held, 1 otherwise.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "sop/agent.h"
#include "sop/search.h"
#include "sop/vector.h"
#include "testutil.h"

/* ---- the failing allocator: counts, fails the Nth, tracks what is live ---- */

#define HDR 16
static struct {
    long calls;   /* allocations since armed */
    long fail_at; /* 0: never */
    int persistent;
    long failures;
    long live; /* allocations not yet freed */
} g_a;

static int should_fail(void)
{
    if (!g_a.fail_at)
        return 0;
    long c = ++g_a.calls;
    if (c == g_a.fail_at || (g_a.persistent && c > g_a.fail_at)) {
        g_a.failures++;
        return 1;
    }
    return 0;
}

static void *a_malloc(size_t n, void *ctx)
{
    (void)ctx;
    if (should_fail())
        return NULL;
    char *p = malloc(n + HDR);
    if (!p)
        return NULL;
    g_a.live++;
    return p + HDR;
}

static void *a_realloc(void *p, size_t n, void *ctx)
{
    if (!p)
        return a_malloc(n, ctx);
    if (should_fail())
        return NULL;
    char *q = realloc((char *)p - HDR, n + HDR);
    return q ? q + HDR : NULL;
}

static void a_free(void *p, void *ctx)
{
    (void)ctx;
    if (!p)
        return;
    g_a.live--;
    free((char *)p - HDR);
}

static void arm(long n, int persistent)
{
    g_a.calls = 0;
    g_a.failures = 0;
    g_a.persistent = persistent;
    g_a.fail_at = n;
}

static void disarm(void) { g_a.fail_at = 0; }

/* The vector layer's process-wide cache of centroid sets (bounded, kept
 * across handles): emptied before allocations are counted. Internal. */
void vc_clear(void);

/* ---- the data: N visits in four stores ---- */

#define BASE 24  /* visits before the operation */
#define ADD 6    /* visits the write transaction adds */
#define DIMS 8

static long g_cases;
static sop_embedder *g_emb;

typedef struct stores {
    sop_store *kv;
    sop_vstore *vec;
    sop_text *text;
    sop_kb *kb;
} stores;

static const char *const words[] = {"pain", "fever", "cough", "rash", "nausea", "fatigue",
                                    "headache", "dizzy", "wheeze", "chills"};

static void visit(int i, char *id, size_t idl, char *note, size_t nl, float *vec)
{
    snprintf(id, idl, "v%04d", i);
    snprintf(note, nl, "visit %d: %s and %s since %d days", i, words[i % 10],
             words[(i * 7 + 3) % 10], i % 9 + 1);
    for (int d = 0; d < DIMS; d++)
        vec[d] = (float)((i * 31 + d * 17) % 23) / 23.0f - 0.5f;
}

static int open_all(sop_txn *t, stores *s, int create)
{
    int rc = sop_store_open(t, "visits", &s->kv);
    if (rc == SOP_ENOTFOUND && create)
        rc = sop_store_create(t, "visits", NULL, &s->kv);
    if (!rc && (rc = sop_vstore_open(t, "visits-vec", &s->vec)) == SOP_ENOTFOUND && create) {
        sop_vstore_options o;
        sop_vstore_options_init(&o);
        o.dims = DIMS;
        rc = sop_vstore_create(t, "visits-vec", &o, &s->vec);
    }
    if (!rc && (rc = sop_text_open(t, "visits-text", &s->text)) == SOP_ENOTFOUND && create)
        rc = sop_text_create(t, "visits-text", NULL, &s->text);
    if (!rc && (rc = sop_kb_open(t, "handbook", &s->kb)) == SOP_ENOTFOUND && create)
        rc = sop_kb_create(t, "handbook", sop_embedder_name(g_emb), sop_embedder_dim(g_emb),
                           &s->kb);
    return rc;
}

static int write_visit(const stores *s, int i)
{
    char id[16], note[128];
    float vec[DIMS];
    visit(i, id, sizeof id, note, sizeof note, vec);
    size_t idl = strlen(id), nl = strlen(note);
    sop_val k = {id, idl}, val = {note, nl};
    sop_vitem item = {id, idl, vec, DIMS, NULL, 0};
    sop_text_doc doc = {id, idl, note, nl, NULL, 0};
    sop_kb_record rec = {id, note, "{\"kind\":\"visit\"}", NULL};
    int rc = sop_upsert(s->kv, &k, &val);
    if (!rc)
        rc = sop_vstore_upsert(s->vec, &item);
    if (!rc)
        rc = sop_text_upsert(s->text, &doc);
    if (!rc)
        rc = sop_kb_put(s->kb, g_emb, &rec, 1);
    return rc;
}

/* Writes visits [from, to) in one transaction and queries every layer. */
static int txn_op(sop_db *db, int from, int to)
{
    sop_txn *t;
    stores s;
    int rc = sop_txn_begin(db, SOP_TXN_WRITE, 0, &t);
    if (rc)
        return rc;
    rc = open_all(t, &s, 1);
    for (int i = from; !rc && i < to; i++)
        rc = write_visit(&s, i);
    if (!rc) {
        float q[DIMS];
        char id[16], note[128];
        visit(from, id, sizeof id, note, sizeof note, q);
        sop_vquery vq;
        sop_vquery_init(&vq);
        vq.vec = q;
        vq.dims = DIMS;
        vq.k = 5;
        sop_vhit vh[5];
        uint32_t nh = 5;
        rc = sop_vstore_query(s.vec, &vq, vh, &nh);
        if (!rc) {
            sop_text_query tq;
            sop_text_query_init(&tq);
            tq.text = "fever cough";
            tq.len = strlen(tq.text);
            tq.k = 5;
            sop_text_hit th[5];
            uint32_t nt = 5;
            rc = sop_text_search(s.text, &tq, th, &nt);
        }
        if (!rc) {
            sop_kb_hit kh[3];
            uint32_t nk = 3;
            rc = sop_kb_search(s.kb, g_emb, "a rash and chills", 3, kh, &nk);
        }
    }
    if (rc) {
        sop_txn_rollback(t);
        return rc;
    }
    return sop_txn_commit(t);
}

/* How many visits each layer holds: -1 when a layer is unreadable; the
 * KV count when all four agree, else -2. Also checks the contents of the
 * KV store against visit(). */
static long count_visits(sop_db *db)
{
    sop_txn *t;
    stores s;
    if (sop_txn_begin(db, SOP_TXN_READ, 0, &t))
        return -1;
    long out = -1;
    uint64_t kv, vec, kb;
    sop_text_stat ts;
    if (!open_all(t, &s, 0) && !sop_store_count(s.kv, &kv) && !sop_vstore_count(s.vec, &vec) &&
        !sop_text_stats(s.text, &ts) && !sop_kb_count(s.kb, &kb)) {
        out = kv == vec && kv == ts.docs && kv == kb ? (long)kv : -2;
        for (long i = 0; out >= 0 && i < out; i++) {
            char id[16], note[128];
            float v[DIMS];
            visit((int)i, id, sizeof id, note, sizeof note, v);
            sop_val k = {id, strlen(id)}, got;
            if (sop_get(s.kv, &k, &got) || got.size != strlen(note) ||
                memcmp(got.data, note, got.size))
                out = -3;
        }
    }
    sop_txn_rollback(t);
    return out;
}

static void count_problem(const char *problem, void *ctx)
{
    (void)ctx;
    fprintf(stderr, "  check: %s\n", problem);
}

/* Reopens @path with a working allocator: check clean, visits counted. */
static long verify(const char *path, const char *what, long n)
{
    sop_db *db;
    int rc = sop_db_open(path, NULL, &db);
    CHECK(rc == 0, "%s N=%ld: reopen: %s (%s)", what, n, sop_strerror(rc), sop_db_errmsg(db));
    long c = -1;
    if (!rc) {
        uint64_t problems = 0;
        rc = sop_db_check(db, count_problem, NULL, &problems);
        CHECK(rc == 0 && problems == 0, "%s N=%ld: check: %s, %llu problems", what, n,
              sop_strerror(rc), (unsigned long long)problems);
        c = count_visits(db);
    }
    sop_db_close(db);
    return c;
}

static long stride(void)
{
    const char *s = getenv("SOP_OOM_STRIDE");
    long v = s ? atol(s) : 1;
    return v > 0 ? v : 1;
}

/* ---- the sweeps ---- */

typedef enum { OP_OPEN, OP_TXN, OP_CKPT, OP_OPTIMIZE, OP_LOAD } op_kind;
static const char *const op_names[] = {"open", "txn", "checkpoint", "optimize", "kb-load"};

static char g_fallback[600];

/* One case: the database copied from @tmpl, operation @k with the Nth
 * allocation failing. Returns whether the failure was reached. */
static int one_case(const char *tmpl, const char *path, op_kind k, long n, int persistent)
{
    tu_rmtree(path);
    if (tu_copydir(tmpl, path))
        exit(1);
    const char *what = op_names[k];
    vc_clear();
    long live0 = g_a.live;
    sop_db *db = NULL;
    int rc = 0;
    if (k != OP_OPEN) {
        rc = sop_db_open(path, NULL, &db);
        if (rc) {
            CHECK(0, "%s: setup open: %s", what, sop_db_errmsg(db));
            sop_db_close(db);
            return 0;
        }
    }
    long before = BASE, after = BASE;
    if (k == OP_CKPT) { /* commits since the last checkpoint, to write out */
        rc = txn_op(db, BASE, BASE + ADD);
        CHECK(rc == 0, "checkpoint: setup commit: %s", sop_db_errmsg(db));
        before = after = BASE + ADD;
    } else if (k == OP_TXN) {
        after = BASE + ADD;
    }
    arm(n, persistent);
    switch (k) {
    case OP_OPEN:
        rc = sop_db_open(path, NULL, &db);
        if (!rc && count_visits(db) != BASE)
            rc = -1; /* a read failed (or was wrong): told apart below */
        break;
    case OP_TXN:
        rc = txn_op(db, BASE, BASE + ADD);
        break;
    case OP_CKPT:
        rc = sop_db_checkpoint(db);
        break;
    case OP_OPTIMIZE: {
        sop_voptimize_options o;
        sop_voptimize_options_init(&o);
        rc = sop_vstore_optimize(db, "visits-vec", &o);
        break;
    }
    case OP_LOAD: {
        sop_kb_load_options o;
        sop_kb_load_options_init(&o);
        o.name = "loaded";
        o.batch = 4;
        o.embedder = g_emb;
        sop_kb_load_report rep;
        rc = sop_kb_load(db, g_fallback, &o, &rep);
        break;
    }
    }
    int hit = g_a.failures > 0;
    disarm();
    if (!hit)
        CHECK(rc == 0, "%s: no allocation failed but it returned %s (%s)", what, sop_strerror(rc),
              db ? sop_db_errmsg(db) : "");
    sop_db_close(db);
    vc_clear();
    CHECK(g_a.live == live0, "%s N=%ld%s: %ld allocations leaked", what, n,
          persistent ? " persistent" : "", g_a.live - live0);
    g_a.live = live0; /* report each leak once */
    long c = verify(path, what, n);
    if (rc == 0)
        CHECK(c == after, "%s N=%ld: returned 0 but %ld visits (want %ld)", what, n, c, after);
    else
        CHECK(c == before || c == after, "%s N=%ld: failed (%s) and left %ld visits", what, n,
              sop_strerror(rc), c);
    if (k == OP_LOAD && hit) {
        /* a second run completes what the first left */
        sop_db *d2;
        int r2 = sop_db_open(path, NULL, &d2);
        sop_kb_load_options o;
        sop_kb_load_options_init(&o);
        o.name = "loaded";
        o.batch = 4;
        o.embedder = g_emb;
        if (!r2)
            r2 = sop_kb_load(d2, g_fallback, &o, NULL);
        sop_txn *t;
        sop_kb *kb;
        uint64_t cnt = 0;
        int complete = 0;
        if (!r2 && !(r2 = sop_txn_begin(d2, SOP_TXN_READ, 0, &t))) {
            if (!(r2 = sop_kb_open(t, "loaded", &kb)))
                r2 = sop_kb_count(kb, &cnt);
            complete = sop_kb_complete(t, "loaded");
            sop_txn_rollback(t);
        }
        CHECK(r2 == 0 && cnt == 10 && complete == 1,
              "kb-load N=%ld: the second load: %s, %llu records, complete %d", n,
              sop_strerror(r2), (unsigned long long)cnt, complete);
        sop_db_close(d2);
    }
    g_cases++;
    return hit;
}

static void sweep(const char *tmpl, const char *path, op_kind k)
{
    long st = stride(), n, cases = 0;
    for (int persistent = 0; persistent < 2; persistent++) {
        for (n = 1;; n += st) {
            cases++;
            if (!one_case(tmpl, path, k, n, persistent))
                break;
            if (tu_failed > 20)
                return;
        }
        printf("oom %-10s %-10s: %ld allocations, %ld cases\n", op_names[k],
               persistent ? "persistent" : "transient", n - 1, cases);
        fflush(stdout);
        cases = 0;
    }
}

static void write_fallback(const char *path)
{
    FILE *f = fopen(path, "w");
    if (!f)
        exit(1);
    fprintf(f, "{\"format\":\"sop-fallback\",\"version\":1,\"name\":\"loaded\",\"records\":[");
    for (int i = 0; i < 10; i++) {
        char id[16], note[128];
        float v[DIMS];
        visit(100 + i, id, sizeof id, note, sizeof note, v);
        fprintf(f, "%s{\"id\":\"%s\",\"text\":\"%s\",\"metadata\":{\"n\":%d}}", i ? "," : "", id,
                note, i);
    }
    fprintf(f, "]}\n");
    fclose(f);
}

int main(void)
{
    sop_allocator a = {a_malloc, a_realloc, a_free, NULL};
    if (sop_set_allocator(&a))
        return 1;
    if (sop_embedder_builtin(64, &g_emb))
        return 1;
    const char *tmpl = tu_tmpdir("oom/template");
    const char *path = tu_tmpdir("oom/db");
    snprintf(g_fallback, sizeof g_fallback, "%s/fallback.json", tu_tmpdir("oom/files"));
    write_fallback(g_fallback);

    sop_db *db;
    int rc = sop_db_open(tmpl, NULL, &db);
    if (!rc)
        rc = txn_op(db, 0, BASE);
    if (rc) {
        fprintf(stderr, "setup: %s (%s)\n", sop_strerror(rc), sop_db_errmsg(db));
        return 1;
    }
    sop_db_close(db);
    if (verify(tmpl, "setup", 0) != BASE) {
        fprintf(stderr, "setup: the template does not hold %d visits\n", BASE);
        return 1;
    }
    for (op_kind k = OP_OPEN; k <= OP_LOAD; k++)
        sweep(tmpl, path, k);
    sop_embedder_free(g_emb);
    printf("oom: %ld cases, %d failed\n", g_cases, tu_failed);
    return tu_failed ? 1 : 0;
}
