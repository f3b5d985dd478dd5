/*
 * test_model.c - model-based randomized test of the core API, plus small
 * deterministic checks of API contracts.
 *
 * The randomized test keeps an in-memory model of every store (a sorted
 * array of items; duplicates in insertion order) and runs random
 * transactions against the engine and the model. Changes of a transaction
 * go to a working copy of the model that replaces the committed one only
 * when sop_txn_commit() returns SOP_OK. Every operation's result is checked
 * against the model; after each commit or rollback every store is verified
 * in full (cursors both ways, sop_scan over random ranges, find modes,
 * counts, store list); the database is periodically closed, reopened
 * (sometimes read-only first), checked with sop_db_check() and verified
 * again. READ snapshots are kept open across write transactions and must
 * keep seeing the state of their start.
 *
 * test_model_random runs one writer at a time. test_model_pairs also runs
 * two write transactions at once with interleaved point operations: on
 * disjoint keys (split into two partitions by a hash) sop.h promises that
 * they do not conflict, so both commits must return SOP_OK; on a few
 * shared keys the second commit must be serializable after the first (see
 * pair_txn()).
 *
 * Stores:
 *   uniq  BYTES, unique, node 4096 (keys up to the 1008-byte maximum)
 *   dup   BYTES, duplicate keys, node 4096, inline_max 100
 *   int   INT64, unique
 *   deep  BYTES, unique, node 1024 (long keys: deep trees)
 *   cust  CUSTOM ("prefix4": only the first 4 key bytes are compared, the
 *         rest is metadata), unique, node 2048 - exercises update_key
 *   tmp.0 .. tmp.4: created and removed at random (random options)
 *
 * Environment: SOP_TEST_SEED (reproduce a run), SOP_TEST_ITERS (write
 * transactions of test_model_random, default 1200, sized for ~30 s under
 * ASan; test_model_pairs runs a quarter as many), SOP_TEST_ALLOW_CONFLICTS=1
 * (test_model_pairs accepts SOP_ECONFLICT from the second commit of a pair
 * on disjoint keys, and then checks that nothing of it shows),
 * SOP_TEST_FILTER (cmocka test name pattern, e.g. "test_model_*").
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "sop/sop.h"
#include "testutil.h"

/* ------------------------------------------------------------------ */
/* Context for failure messages                                       */
/* ------------------------------------------------------------------ */

static struct {
    uint64_t seed;
    long txn_no;
    long op_no;
    const char *what;
    const char *store;
} CX = {0, -1, -1, "setup", "-"};

#define CTX_FMT " [seed=%" PRIu64 " txn=%ld op=%ld %s store=%s]"
#define CTX_ARGS CX.seed, CX.txn_no, CX.op_no, CX.what, CX.store

#define RC(expr, want)                                                                         \
    do {                                                                                       \
        int rc_ = (expr);                                                                      \
        int w_ = (want);                                                                       \
        if (rc_ != w_)                                                                         \
            fail_msg("%s:%d: %s = %s (%d), expected %s (%d)" CTX_FMT, __FILE__, __LINE__, #expr, \
                     sop_err_name(rc_), rc_, sop_err_name(w_), w_, CTX_ARGS);                  \
    } while (0)

#define CHECK(cond, ...)                                                                       \
    do {                                                                                       \
        if (!(cond)) {                                                                         \
            fprintf(stderr, __VA_ARGS__);                                                      \
            fprintf(stderr, "\n");                                                             \
            fail_msg("%s:%d: check failed: %s" CTX_FMT, __FILE__, __LINE__, #cond, CTX_ARGS);  \
        }                                                                                      \
    } while (0)

static const char *hexs(const void *p, size_t n)
{
    static char buf[4][200];
    static int which;
    char *b = buf[which++ & 3];
    const uint8_t *u = p;
    size_t o = 0;
    o += (size_t)snprintf(b, 200, "(%zu)", n);
    for (size_t i = 0; i < n && o + 4 < 200; i++)
        o += (size_t)snprintf(b + o, 200 - o, "%02x", u[i]);
    if (n * 2 + 8 > 200)
        snprintf(b + 192, 8, "..");
    return b;
}

/* ------------------------------------------------------------------ */
/* Random numbers                                                     */
/* ------------------------------------------------------------------ */

static uint64_t RNG;
static uint64_t rnd(void)
{
    return tu_rand(&RNG);
}
static uint64_t rn(uint64_t n)
{
    return n ? rnd() % n : 0;
}
static int chance(unsigned pct)
{
    return rn(100) < pct;
}
static uint64_t mix64(uint64_t x)
{
    x += 0x9E3779B97F4A7C15ull;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
    return x ^ (x >> 31);
}

/* ------------------------------------------------------------------ */
/* The model                                                          */
/* ------------------------------------------------------------------ */

enum { K_UNIQ, K_DUP, K_INT, K_DEEP, K_CUST, K_TMP };

#define NPRIMARY 5
#define NTMP 5
#define NSLOTS (NPRIMARY + NTMP)
#define MAXK 1100
#define MAXV 72000

typedef struct mitem {
    uint8_t *k;
    size_t klen;
    uint8_t *v;
    size_t vlen;
} mitem;

typedef struct mstore {
    char name[16];
    int kind;
    int unique;
    sop_key_order order;
    uint32_t node_bytes, inline_max;
    int exists;
    mitem *it;
    size_t n, cap;
} mstore;

typedef struct mstate {
    mstore s[NSLOTS];
} mstate;

static int prefix4_cmp(const void *a, size_t al, const void *b, size_t bl)
{
    size_t x = al < 4 ? al : 4, y = bl < 4 ? bl : 4;
    int c = memcmp(a, b, x < y ? x : y);
    if (c)
        return c;
    return x < y ? -1 : x > y;
}

static int cust_cmp(const sop_val *a, const sop_val *b, void *ctx)
{
    (void)ctx;
    return prefix4_cmp(a->data, a->size, b->data, b->size);
}

static int mcmp(const mstore *s, const void *a, size_t al, const void *b, size_t bl)
{
    if (s->order == SOP_ORDER_INT64) {
        int64_t x, y;
        assert_true(al == 8 && bl == 8);
        memcpy(&x, a, 8);
        memcpy(&y, b, 8);
        return x < y ? -1 : x > y;
    }
    if (s->order == SOP_ORDER_CUSTOM)
        return prefix4_cmp(a, al, b, bl);
    size_t m = al < bl ? al : bl;
    int c = m ? memcmp(a, b, m) : 0;
    if (c)
        return c;
    return al < bl ? -1 : al > bl;
}

static size_t m_lower(const mstore *s, const void *k, size_t kl)
{
    size_t lo = 0, hi = s->n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (mcmp(s, s->it[mid].k, s->it[mid].klen, k, kl) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

static size_t m_upper(const mstore *s, const void *k, size_t kl)
{
    size_t lo = 0, hi = s->n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (mcmp(s, s->it[mid].k, s->it[mid].klen, k, kl) <= 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

static uint8_t *mdup(const void *p, size_t n)
{
    uint8_t *d = malloc(n ? n : 1);
    assert_non_null(d);
    if (n)
        memcpy(d, p, n);
    return d;
}

static void m_insert(mstore *s, size_t at, const void *k, size_t kl, const void *v, size_t vl)
{
    if (s->n == s->cap) {
        s->cap = s->cap ? s->cap * 2 : 64;
        s->it = realloc(s->it, s->cap * sizeof *s->it);
        assert_non_null(s->it);
    }
    memmove(&s->it[at + 1], &s->it[at], (s->n - at) * sizeof *s->it);
    s->it[at].k = mdup(k, kl);
    s->it[at].klen = kl;
    s->it[at].v = mdup(v, vl);
    s->it[at].vlen = vl;
    s->n++;
}

static void m_remove(mstore *s, size_t at)
{
    free(s->it[at].k);
    free(s->it[at].v);
    memmove(&s->it[at], &s->it[at + 1], (s->n - at - 1) * sizeof *s->it);
    s->n--;
}

static void m_setval(mstore *s, size_t at, const void *v, size_t vl)
{
    free(s->it[at].v);
    s->it[at].v = mdup(v, vl);
    s->it[at].vlen = vl;
}

static void m_setkey(mstore *s, size_t at, const void *k, size_t kl)
{
    free(s->it[at].k);
    s->it[at].k = mdup(k, kl);
    s->it[at].klen = kl;
}

static void m_clear(mstore *s)
{
    for (size_t i = 0; i < s->n; i++) {
        free(s->it[i].k);
        free(s->it[i].v);
    }
    free(s->it);
    s->it = NULL;
    s->n = s->cap = 0;
}

static void mstate_free(mstate *m)
{
    for (int i = 0; i < NSLOTS; i++)
        m_clear(&m->s[i]);
}

static void mstate_copy(mstate *dst, const mstate *src)
{
    for (int i = 0; i < NSLOTS; i++) {
        const mstore *a = &src->s[i];
        mstore *b = &dst->s[i];
        *b = *a;
        b->it = NULL;
        b->n = b->cap = 0;
        if (a->n) {
            b->cap = a->n;
            b->it = malloc(b->cap * sizeof *b->it);
            assert_non_null(b->it);
            for (size_t j = 0; j < a->n; j++) {
                b->it[j].k = mdup(a->it[j].k, a->it[j].klen);
                b->it[j].klen = a->it[j].klen;
                b->it[j].v = mdup(a->it[j].v, a->it[j].vlen);
                b->it[j].vlen = a->it[j].vlen;
            }
            b->n = a->n;
        }
    }
}

/* A point operation as a transaction ran it, with what it returned. */
typedef struct oplog {
    int si, which;
    uint8_t *k, *v, *got;
    size_t kl, vl, gotl;
    int rc;
} oplog;

/* A write transaction and the working copy of the model it changes. */
typedef struct txctx {
    sop_txn *txn;
    sop_txn_mode mode;
    sop_store *h[NSLOTS]; /* handles opened in txn (NULL: not yet) */
    mstate wk;            /* the model as txn sees it */
    int part;             /* -1: any key; 0 or 1: only keys of that partition */
    int narrow;           /* keys from a small subset (concurrent writers collide) */
    int logging;          /* record point operations in log */
    oplog *log;
    size_t nlog, caplog;
} txctx;

static txctx *X; /* the transaction the random operations go to */

/* ------------------------------------------------------------------ */
/* Keys and values                                                    */
/* ------------------------------------------------------------------ */

static const uint8_t ALPHA[6] = {0x00, 0x01, 'a', 'b', 0xfe, 0xff};

static uint64_t keyspace(const mstore *s)
{
    switch (s->kind) {
    case K_UNIQ:
        return 400;
    case K_DUP:
        return 80;
    case K_INT:
        return 300;
    case K_DEEP:
        return 1000;
    case K_CUST:
        return 200;
    default:
        return 40;
    }
}

static size_t max_key(const mstore *s)
{
    return s->node_bytes / 4 - 16;
}

/* The key number @idx of store @s (deterministic except the metadata
 * suffix of custom keys). */
static size_t key_of(const mstore *s, uint64_t idx, uint8_t *out)
{
    uint64_t h = mix64(idx * 0x9E3779B97F4A7C15ull + (uint64_t)s->kind * 1000003u + 1);
    size_t len;
    switch (s->kind) {
    case K_INT: {
        int64_t v;
        if (idx == 0)
            v = INT64_MIN;
        else if (idx == 1)
            v = INT64_MAX;
        else if (idx == 2)
            v = INT64_MIN + 1;
        else
            v = ((int64_t)idx - 150) * 3;
        memcpy(out, &v, 8);
        return 8;
    }
    case K_CUST: {
        uint32_t id = (uint32_t)idx * 2 + 1000;
        out[0] = (uint8_t)(id >> 24);
        out[1] = (uint8_t)(id >> 16);
        out[2] = (uint8_t)(id >> 8);
        out[3] = (uint8_t)id;
        len = 4 + (size_t)rn(9);
        for (size_t i = 4; i < len; i++)
            out[i] = (uint8_t)rnd();
        return len;
    }
    case K_UNIQ:
        if (idx == 60)
            len = 1008;
        else if (idx % 61 == 7)
            len = 200 + h % 600;
        else
            len = 1 + h % 7;
        break;
    case K_DUP:
        len = 1 + h % 3;
        break;
    case K_DEEP:
        len = (idx % 97 == 5) ? 240 : 16 + h % 200;
        break;
    default:
        len = 1 + h % 5;
        break;
    }
    if (len > max_key(s))
        len = max_key(s);
    for (size_t i = 0; i < len; i++)
        out[i] = i < 8 ? ALPHA[(h >> (i * 5)) % 6] : (uint8_t)mix64(h + i);
    return len;
}

/* The partition of a key (two concurrent writers use disjoint keys). */
static int key_part(const mstore *s, const uint8_t *k, size_t kl)
{
    size_t n = s->kind == K_CUST ? 4 : kl;
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++)
        h = (h ^ k[i]) * 1099511628211ull;
    return (int)(mix64(h) & 1);
}

/* A key for an operation: one of the store's key space (of the current
 * transaction's partition, if it has one). */
static size_t op_key(const mstore *s, uint8_t *out)
{
    for (int tries = 0;; tries++) {
        uint64_t ks = keyspace(s);
        if (X && X->narrow && ks > 12)
            ks = 12;
        size_t kl = key_of(s, rn(ks), out);
        if (X && X->narrow && s->kind == K_CUST)
            kl = 4; /* equal keys have equal bytes */
        if (!X || X->part < 0 || key_part(s, out, kl) == X->part)
            return kl;
        assert_true(tries < 10000);
    }
}

/* A key for a search: often absent. */
static size_t search_key(const mstore *s, uint8_t *out)
{
    if (s->kind == K_INT) {
        int64_t v;
        unsigned r = (unsigned)rn(100);
        if (r < 60)
            return key_of(s, rn(keyspace(s)), out);
        else if (r < 85)
            v = (int64_t)rn(1300) - 650;
        else if (r < 90)
            v = INT64_MIN;
        else if (r < 95)
            v = INT64_MAX;
        else
            v = (int64_t)rnd();
        memcpy(out, &v, 8);
        return 8;
    }
    if (s->kind == K_CUST) {
        uint32_t id = (uint32_t)rn(2 * keyspace(s) + 40) + 980;
        out[0] = (uint8_t)(id >> 24);
        out[1] = (uint8_t)(id >> 16);
        out[2] = (uint8_t)(id >> 8);
        out[3] = (uint8_t)id;
        size_t len = 4 + (size_t)rn(9);
        for (size_t i = 4; i < len; i++)
            out[i] = (uint8_t)rnd();
        return len;
    }
    if (chance(70))
        return key_of(s, rn(2 * keyspace(s)), out);
    size_t len = 1 + (size_t)rn(6);
    for (size_t i = 0; i < len; i++)
        out[i] = ALPHA[rn(6)];
    return len;
}

static uint8_t *VBUF;

/* A random value in VBUF; sizes around and above inline_max too. */
static size_t gen_val(const mstore *s)
{
    uint32_t im = s->inline_max;
    size_t len;
    unsigned r = (unsigned)rn(1000);
    if (r < 400)
        len = rn(41);
    else if (r < 700)
        len = rn(im + 1);
    else if (r < 850)
        len = im - 2 + rn(5);
    else if (r < 995)
        len = im + 1 + rn(3 * s->node_bytes);
    else
        len = 60000 + rn(10000);
    for (size_t i = 0; i < len; i += 8) {
        uint64_t x = rnd();
        memcpy(VBUF + i, &x, len - i < 8 ? len - i : 8);
    }
    return len;
}

/* ------------------------------------------------------------------ */
/* The test state                                                     */
/* ------------------------------------------------------------------ */

static struct {
    char dir[512];
    sop_db *db;
    mstate com; /* committed */
    txctx tx[2];
    /* statistics */
    unsigned long commits, rollbacks, reopens, ops, eexists, enotfound, blobs, snapshots, pairs;
    unsigned long conflicts;      /* tolerated (SOP_TEST_ALLOW_CONFLICTS) */
    unsigned long merged;         /* pairs on shared keys that both committed */
    unsigned long exp_conflicts;  /* pairs: conflicts that had to be */
    unsigned long opt_conflicts;  /* pairs: allowed conflicts that need not be */
    int pair_pct;        /* percentage of iterations that run two writers at once */
    int allow_conflicts; /* SOP_TEST_ALLOW_CONFLICTS: tolerate SOP_ECONFLICT of pairs */
} G;


static void check_cb(const char *problem, void *ctx)
{
    (void)ctx;
    fprintf(stderr, "sop_db_check: %s\n", problem);
}

static void db_open_random(void)
{
    sop_db_options o;
    sop_db_options_init(&o);
    o.sync = chance(5) ? SOP_SYNC_FULL : SOP_SYNC_NONE;
    if (chance(30))
        o.cache_bytes = 256 * 1024; /* force evictions and reloads */
    o.map_reads = chance(50); /* cache misses through segment maps */
    if (chance(30)) {
        o.segment_bytes = 1024 * 1024;
        o.checkpoint_bytes = 512 * 1024;
    }
    int rc = sop_db_open(G.dir, &o, &G.db);
    if (rc != SOP_OK)
        fail_msg("sop_db_open(%s) = %s: %s" CTX_FMT, G.dir, sop_err_name(rc),
                 G.db ? sop_db_errmsg(G.db) : "", CTX_ARGS);
    RC(sop_db_set_comparator(G.db, "prefix4", cust_cmp, NULL), SOP_OK);
}

static void db_check_clean(void)
{
    uint64_t problems = 1234;
    CX.what = "sop_db_check";
    RC(sop_db_check(G.db, check_cb, NULL, &problems), SOP_OK);
    CHECK(problems == 0, "problems=%" PRIu64, problems);
}

/* ------------------------------------------------------------------ */
/* Verification of a whole store                                      */
/* ------------------------------------------------------------------ */

static void check_item(const mstore *s, size_t idx, const sop_val *k, const sop_val *v)
{
    CHECK(idx < s->n, "position %zu past the end (%zu items)", idx, s->n);
    const mitem *it = &s->it[idx];
    CHECK(k->size == it->klen && memcmp(k->data, it->k, it->klen) == 0,
          "item %zu/%zu: key %s, expected %s", idx, s->n, hexs(k->data, k->size),
          hexs(it->k, it->klen));
    if (v) {
        CHECK(v->size == it->vlen && (it->vlen == 0 || memcmp(v->data, it->v, it->vlen) == 0),
              "item %zu/%zu key %s: value %s, expected %s", idx, s->n, hexs(it->k, it->klen),
              hexs(v->data, v->size), hexs(it->v, it->vlen));
    }
}

/* Checks that cursor @c is on item @idx of @s. */
static void check_at(sop_cursor *c, const mstore *s, size_t idx)
{
    sop_val k, v;
    RC(sop_cursor_get(c, &k, &v), SOP_OK);
    check_item(s, idx, &k, &v);
    RC(sop_cursor_key(c, &k), SOP_OK);
    check_item(s, idx, &k, NULL);
}

/* Expected position of a find; -1 when none. */
static long expect_find(const mstore *s, const void *k, size_t kl, sop_find_mode mode)
{
    size_t lb = m_lower(s, k, kl), ub = m_upper(s, k, kl);
    switch (mode) {
    case SOP_FIND_EXACT:
        return lb < ub ? (long)lb : -1;
    case SOP_FIND_LAST:
        return lb < ub ? (long)ub - 1 : -1;
    case SOP_FIND_GE:
        return lb < s->n ? (long)lb : -1;
    case SOP_FIND_GT:
        return ub < s->n ? (long)ub : -1;
    case SOP_FIND_LE:
        return ub > 0 ? (long)ub - 1 : -1;
    case SOP_FIND_LT:
        return lb > 0 ? (long)lb - 1 : -1;
    }
    return -1;
}

typedef struct scanctx {
    const mstore *s;
    size_t lo, hi; /* expected index range [lo, hi) in scan order */
    int reverse, keys_only;
    size_t pos, stop_at;
    char err[400];
} scanctx;

static int scan_cb(const sop_val *k, const sop_val *v, void *arg)
{
    scanctx *x = arg;
    size_t n = x->hi - x->lo;
    if (x->pos >= n) {
        snprintf(x->err, sizeof x->err, "extra item %zu: key %s", x->pos, hexs(k->data, k->size));
        return 999;
    }
    size_t idx = x->reverse ? x->hi - 1 - x->pos : x->lo + x->pos;
    const mitem *it = &x->s->it[idx];
    if (k->size != it->klen || memcmp(k->data, it->k, it->klen) != 0) {
        snprintf(x->err, sizeof x->err, "item %zu (index %zu): key %s, expected %s", x->pos, idx,
                 hexs(k->data, k->size), hexs(it->k, it->klen));
        return 999;
    }
    if (x->keys_only) {
        if (v->data != NULL || v->size != 0) {
            snprintf(x->err, sizeof x->err, "keys_only scan gave value of %zu bytes", v->size);
            return 999;
        }
    } else if (v->size != it->vlen || (it->vlen && memcmp(v->data, it->v, it->vlen) != 0)) {
        snprintf(x->err, sizeof x->err, "item %zu key %s: value %s, expected %s", x->pos,
                 hexs(it->k, it->klen), hexs(v->data, v->size), hexs(it->v, it->vlen));
        return 999;
    }
    x->pos++;
    if (x->stop_at && x->pos == x->stop_at)
        return 77;
    return 0;
}

/* One sop_scan over a random range, checked against the model. */
static void check_scan(sop_store *h, const mstore *s, int full)
{
    uint8_t fk[MAXK], tk[MAXK];
    sop_val from = {fk, 0}, to = {tk, 0};
    sop_range r;
    memset(&r, 0, sizeof r);
    scanctx x;
    memset(&x, 0, sizeof x);
    x.s = s;
    size_t lo = 0, hi = s->n;
    if (!full) {
        if (chance(75)) {
            from.size = search_key(s, fk);
            r.from = &from;
        }
        if (chance(75)) {
            to.size = search_key(s, tk);
            r.to = &to;
        }
        if (r.from && r.to && chance(80) && mcmp(s, fk, from.size, tk, to.size) > 0) {
            sop_val t = from;
            from.data = tk;
            from.size = to.size;
            to.data = fk;
            to.size = t.size;
        }
        r.from_exclusive = chance(40);
        r.to_exclusive = chance(40);
        r.offset = chance(30) ? rn(20) : 0;
        r.limit = chance(30) ? 1 + rn(30) : 0;
        if (r.from)
            lo = r.from_exclusive ? m_upper(s, from.data, from.size)
                                  : m_lower(s, from.data, from.size);
        if (r.to)
            hi = r.to_exclusive ? m_lower(s, to.data, to.size) : m_upper(s, to.data, to.size);
        if (hi < lo)
            hi = lo;
    }
    r.reverse = chance(50);
    r.keys_only = chance(25);
    /* apply offset and limit to [lo, hi) in scan order */
    size_t n = hi - lo;
    size_t off = r.offset < n ? (size_t)r.offset : n;
    n -= off;
    if (r.limit && r.limit < n)
        n = (size_t)r.limit;
    if (r.reverse) {
        hi -= off;
        lo = hi - n;
    } else {
        lo += off;
        hi = lo + n;
    }
    x.lo = lo;
    x.hi = hi;
    x.reverse = r.reverse;
    x.keys_only = r.keys_only;
    if (n && chance(15))
        x.stop_at = 1 + rn(n);
    int rc = sop_scan(h, &r, scan_cb, &x);
    CHECK(x.err[0] == 0, "scan (from=%s%s to=%s%s rev=%d off=%" PRIu64 " lim=%" PRIu64 "): %s",
          r.from ? hexs(from.data, from.size) : "-", r.from_exclusive ? "(ex)" : "",
          r.to ? hexs(to.data, to.size) : "-", r.to_exclusive ? "(ex)" : "", r.reverse, r.offset,
          r.limit, x.err);
    if (x.stop_at) {
        RC(rc, 77);
        CHECK(x.pos == x.stop_at, "scan stopped after %zu items, expected %zu", x.pos, x.stop_at);
    } else {
        RC(rc, SOP_OK);
        CHECK(x.pos == n,
              "scan (from=%s%s to=%s%s rev=%d off=%" PRIu64 " lim=%" PRIu64
              ") gave %zu items, expected %zu",
              r.from ? hexs(from.data, from.size) : "-", r.from_exclusive ? "(ex)" : "",
              r.to ? hexs(to.data, to.size) : "-", r.to_exclusive ? "(ex)" : "", r.reverse,
              r.offset, r.limit, x.pos, n);
    }
}

static const char *mode_name(sop_find_mode m)
{
    static const char *names[] = {"EXACT", "GE", "GT", "LE", "LT", "LAST"};
    return (unsigned)m < 6 ? names[m] : "?";
}

/* A random find on @c, checked; returns the expected position or -1. */
static long check_find(sop_cursor *c, const mstore *s)
{
    uint8_t k[MAXK];
    size_t kl = chance(50) && s->n && s->kind != K_CUST ? 0 : search_key(s, k);
    if (kl == 0) {
        /* an existing key */
        const mitem *it = &s->it[rn(s->n)];
        memcpy(k, it->k, it->klen);
        kl = it->klen;
    }
    sop_find_mode mode = (sop_find_mode)rn(6);
    long e = expect_find(s, k, kl, mode);
    sop_val key = {k, kl};
    int rc = sop_cursor_find(c, &key, mode);
    if (e < 0) {
        CHECK(rc == SOP_ENOTFOUND, "find %s %s = %s, expected SOP_ENOTFOUND", mode_name(mode),
              hexs(k, kl), sop_err_name(rc));
        RC(sop_cursor_next(c), SOP_EINCOMPLETE);
    } else {
        CHECK(rc == SOP_OK, "find %s %s = %s, expected item %ld", mode_name(mode), hexs(k, kl),
              sop_err_name(rc), e);
        check_at(c, s, (size_t)e);
    }
    return e;
}

static void verify_store(sop_store *h, const mstore *s, int thorough)
{
    const char *saved = CX.store;
    CX.store = s->name;
    sop_store_options o;
    memset(&o, 0, sizeof o);
    RC(sop_store_get_options(h, &o), SOP_OK);
    CHECK(o.unique == s->unique && o.order == s->order && o.node_bytes == s->node_bytes &&
              o.inline_max == s->inline_max,
          "options unique=%d order=%d node=%u inline=%u, expected %d %d %u %u", o.unique,
          (int)o.order, o.node_bytes, o.inline_max, s->unique, (int)s->order, s->node_bytes,
          s->inline_max);
    if (s->order == SOP_ORDER_CUSTOM)
        CHECK(o.comparator && strcmp(o.comparator, "prefix4") == 0, "comparator %s",
              o.comparator ? o.comparator : "(null)");

    uint64_t cnt = 0;
    RC(sop_store_count(h, &cnt), SOP_OK);
    CHECK(cnt == s->n, "count %" PRIu64 ", expected %zu", cnt, s->n);

    sop_cursor *c = NULL;
    RC(sop_cursor_open(h, &c), SOP_OK);
    /* forward */
    int rc = sop_cursor_first(c);
    for (size_t i = 0; i < s->n; i++) {
        CHECK(rc == SOP_OK, "forward walk: item %zu of %zu: %s", i, s->n, sop_err_name(rc));
        sop_val k, v;
        if (i % 3 == 1) {
            RC(sop_cursor_key(c, &k), SOP_OK);
            check_item(s, i, &k, NULL);
        } else {
            RC(sop_cursor_get(c, &k, &v), SOP_OK);
            check_item(s, i, &k, &v);
        }
        rc = sop_cursor_next(c);
    }
    CHECK(rc == SOP_ENOTFOUND, "forward walk past %zu items: %s", s->n, sop_err_name(rc));
    RC(sop_cursor_next(c), SOP_EINCOMPLETE);
    RC(sop_cursor_prev(c), SOP_EINCOMPLETE);
    sop_val k0;
    RC(sop_cursor_key(c, &k0), SOP_EINCOMPLETE);
    /* backward */
    rc = sop_cursor_last(c);
    for (size_t i = s->n; i-- > 0;) {
        CHECK(rc == SOP_OK, "backward walk: item %zu of %zu: %s", i, s->n, sop_err_name(rc));
        sop_val k, v;
        RC(sop_cursor_get(c, &k, i % 2 ? &v : NULL), SOP_OK);
        check_item(s, i, &k, i % 2 ? &v : NULL);
        rc = sop_cursor_prev(c);
    }
    CHECK(rc == SOP_ENOTFOUND, "backward walk past %zu items: %s", s->n, sop_err_name(rc));
    /* paging with skip */
    if (s->n) {
        int64_t step = 1 + (int64_t)rn(40);
        size_t i = 0;
        RC(sop_cursor_first(c), SOP_OK);
        for (;;) {
            check_at(c, s, i);
            rc = sop_cursor_skip(c, step);
            if (i + (size_t)step >= s->n) {
                CHECK(rc == SOP_ENOTFOUND, "skip %" PRId64 " from %zu of %zu: %s", step, i, s->n,
                      sop_err_name(rc));
                break;
            }
            CHECK(rc == SOP_OK, "skip %" PRId64 " from %zu of %zu: %s", step, i, s->n,
                  sop_err_name(rc));
            i += (size_t)step;
        }
        RC(sop_cursor_last(c), SOP_OK);
        i = s->n - 1;
        for (;;) {
            rc = sop_cursor_skip(c, -step);
            if (i < (size_t)step) {
                CHECK(rc == SOP_ENOTFOUND, "skip -%" PRId64 " from %zu of %zu: %s", step, i,
                      s->n, sop_err_name(rc));
                break;
            }
            CHECK(rc == SOP_OK, "skip -%" PRId64 " from %zu: %s", step, i, sop_err_name(rc));
            i -= (size_t)step;
            check_at(c, s, i);
        }
    } else {
        RC(sop_cursor_first(c), SOP_ENOTFOUND);
        RC(sop_cursor_last(c), SOP_ENOTFOUND);
    }
    /* finds */
    int nf = thorough ? 40 : 12;
    for (int i = 0; i < nf; i++)
        check_find(c, s);
    sop_cursor_close(c);

    /* scans: full both ways, then random ranges */
    check_scan(h, s, 1);
    check_scan(h, s, 1);
    int ns = thorough ? 30 : 8;
    for (int i = 0; i < ns; i++)
        check_scan(h, s, 0);

    /* point reads */
    int ng = thorough ? 60 : 15;
    for (int i = 0; i < ng; i++) {
        uint8_t k[MAXK];
        size_t kl = search_key(s, k);
        size_t lb = m_lower(s, k, kl), ub = m_upper(s, k, kl);
        sop_val key = {k, kl}, v;
        rc = sop_get(h, &key, &v);
        if (lb < ub) {
            CHECK(rc == SOP_OK, "get %s = %s", hexs(k, kl), sop_err_name(rc));
            CHECK(v.size == s->it[lb].vlen && memcmp(v.data, s->it[lb].v, v.size) == 0,
                  "get %s value %s, expected %s", hexs(k, kl), hexs(v.data, v.size),
                  hexs(s->it[lb].v, s->it[lb].vlen));
        } else {
            CHECK(rc == SOP_ENOTFOUND, "get %s = %s, expected SOP_ENOTFOUND", hexs(k, kl),
                  sop_err_name(rc));
        }
    }
    CX.store = saved;
}

typedef struct namelist {
    char names[NSLOTS + 8][SOP_STORE_NAME_MAX + 1];
    int n;
    int overflow;
} namelist;

static int list_cb(const char *name, void *ctx)
{
    namelist *l = ctx;
    if (l->n >= NSLOTS + 8) {
        l->overflow = 1;
        return 0;
    }
    snprintf(l->names[l->n++], SOP_STORE_NAME_MAX + 1, "%s", name);
    return 0;
}

static int list_stop_cb(const char *name, void *ctx)
{
    (void)name;
    (*(int *)ctx)++;
    return 5;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static void verify_list(sop_txn *txn, const mstate *m)
{
    namelist l;
    memset(&l, 0, sizeof l);
    CX.store = "-";
    RC(sop_store_list(txn, list_cb, &l), SOP_OK);
    const char *exp[NSLOTS];
    int ne = 0;
    for (int i = 0; i < NSLOTS; i++)
        if (m->s[i].exists)
            exp[ne++] = m->s[i].name;
    qsort(exp, (size_t)ne, sizeof exp[0], cmp_str);
    CHECK(!l.overflow && l.n == ne, "store list has %d names, expected %d", l.n, ne);
    for (int i = 0; i < ne; i++)
        CHECK(strcmp(l.names[i], exp[i]) == 0, "store list[%d] = %s, expected %s", i, l.names[i],
              exp[i]);
    /* a non-zero return of the callback stops the listing and is returned */
    if (ne > 1) {
        int calls = 0;
        RC(sop_store_list(txn, list_stop_cb, &calls), 5);
        CHECK(calls == 1, "listing went on after the callback returned 5 (%d calls)", calls);
    }
}

/* Verifies every store of @m as seen by @txn (handles opened here). */
static void verify_all(sop_txn *txn, const mstate *m, int thorough)
{
    const char *saved = CX.what;
    CX.what = "verify";
    verify_list(txn, m);
    for (int i = 0; i < NSLOTS; i++) {
        const mstore *s = &m->s[i];
        sop_store *h = NULL;
        CX.store = s->name;
        if (!s->exists) {
            RC(sop_store_open(txn, s->name, &h), SOP_ENOTFOUND);
            continue;
        }
        RC(sop_store_open(txn, s->name, &h), SOP_OK);
        verify_store(h, s, thorough);
    }
    CX.what = saved;
    CX.store = "-";
}

static void verify_committed(int thorough)
{
    sop_txn *r = NULL;
    RC(sop_txn_begin(G.db, SOP_TXN_READ, 0, &r), SOP_OK);
    verify_all(r, &G.com, thorough);
    if (chance(50))
        RC(sop_txn_commit(r), SOP_OK);
    else
        RC(sop_txn_rollback(r), SOP_OK);
}

/* ------------------------------------------------------------------ */
/* Random operations in a write transaction                           */
/* ------------------------------------------------------------------ */

static sop_store *handle(int si)
{
    if (!X->h[si])
        RC(sop_store_open(X->txn, X->wk.s[si].name, &X->h[si]), SOP_OK);
    return X->h[si];
}

static int pick_store(void)
{
    for (;;) {
        int si = chance(85) ? (int)rn(NPRIMARY) : NPRIMARY + (int)rn(NTMP);
        if (X->wk.s[si].exists)
            return si;
    }
}

enum { OP_ADD, OP_ADD_IF_ABSENT, OP_UPDATE, OP_UPSERT, OP_REMOVE, OP_GET, OP_GET_COPY };

/* Applies a point operation to the model; returns the expected result.
 * *at is the position of the (first) item with the key, for reads. */
static int m_apply(mstore *s, int which, const uint8_t *k, size_t kl, const uint8_t *v,
                   size_t vl, size_t *at)
{
    size_t lb = m_lower(s, k, kl), ub = m_upper(s, k, kl);
    int present = lb < ub;
    *at = lb;
    switch (which) {
    case OP_ADD:
    case OP_ADD_IF_ABSENT:
        if (present && (s->unique || which == OP_ADD_IF_ABSENT))
            return SOP_EEXISTS;
        m_insert(s, ub, k, kl, v, vl);
        return SOP_OK;
    case OP_UPDATE:
    case OP_UPSERT:
        if (present)
            m_setval(s, lb, v, vl);
        else if (which == OP_UPDATE)
            return SOP_ENOTFOUND;
        else
            m_insert(s, ub, k, kl, v, vl);
        return SOP_OK;
    case OP_REMOVE:
        if (!present)
            return SOP_ENOTFOUND;
        m_remove(s, lb);
        return SOP_OK;
    default: /* OP_GET, OP_GET_COPY */
        return present ? SOP_OK : SOP_ENOTFOUND;
    }
}

static const char *const OP_NAMES[] = {"sop_add",    "sop_add_if_absent", "sop_update",
                                       "sop_upsert", "sop_remove",        "sop_get",
                                       "sop_get_copy"};

static void log_op(txctx *x, int si, int which, const uint8_t *k, size_t kl, const uint8_t *v,
                   size_t vl, int rc, const mitem *got)
{
    if (x->nlog == x->caplog) {
        x->caplog = x->caplog ? 2 * x->caplog : 64;
        x->log = realloc(x->log, x->caplog * sizeof *x->log);
        assert_non_null(x->log);
    }
    oplog *e = &x->log[x->nlog++];
    e->si = si;
    e->which = which;
    e->k = mdup(k, kl);
    e->kl = kl;
    e->v = mdup(v, vl);
    e->vl = vl;
    e->rc = rc;
    e->got = got ? mdup(got->v, got->vlen) : NULL;
    e->gotl = got ? got->vlen : 0;
}

static void log_free(txctx *x)
{
    for (size_t i = 0; i < x->nlog; i++) {
        free(x->log[i].k);
        free(x->log[i].v);
        free(x->log[i].got);
    }
    free(x->log);
    x->log = NULL;
    x->nlog = x->caplog = 0;
}

static void op_kv(int si, int which)
{
    mstore *s = &X->wk.s[si];
    sop_store *h = handle(si);
    uint8_t k[MAXK];
    size_t kl = op_key(s, k);
    size_t lb = m_lower(s, k, kl), ub = m_upper(s, k, kl);
    int present = lb < ub;
    sop_val key = {k, kl}, val = {VBUF, 0}, got = {NULL, 0};
    int rc = 0;
    size_t at;
    CX.what = OP_NAMES[which];
    if ((which == OP_UPDATE || which == OP_UPSERT) && present && s->kind == K_CUST) {
        /* use the stored key bytes: which key bytes an update keeps is not
         * part of the contract */
        memcpy(k, s->it[lb].k, s->it[lb].klen);
        key.size = kl = s->it[lb].klen;
    }
    (void)ub;
    switch (which) {
    case OP_ADD:
        val.size = gen_val(s);
        rc = sop_add(h, &key, &val);
        break;
    case OP_ADD_IF_ABSENT:
        val.size = gen_val(s);
        rc = sop_add_if_absent(h, &key, &val);
        break;
    case OP_UPDATE:
        val.size = gen_val(s);
        rc = sop_update(h, &key, &val);
        break;
    case OP_UPSERT:
        val.size = gen_val(s);
        rc = sop_upsert(h, &key, &val);
        break;
    case OP_REMOVE:
        rc = sop_remove(h, &key);
        break;
    case OP_GET:
        rc = sop_get(h, &key, &got);
        if (rc == SOP_OK)
            check_item(s, lb, &(sop_val){s->it[lb].k, s->it[lb].klen}, &got);
        break;
    case OP_GET_COPY: {
        size_t vl = present ? s->it[lb].vlen : 0;
        size_t cap;
        switch (rn(4)) {
        case 0:
            cap = 0;
            break;
        case 1:
            cap = vl / 2;
            break;
        case 2:
            cap = vl;
            break;
        default:
            cap = vl + 10;
            break;
        }
        uint8_t *buf = malloc(cap + 1);
        assert_non_null(buf);
        memset(buf, 0xA5, cap + 1);
        size_t len = 12345678;
        rc = sop_get_copy(h, &key, buf, cap, &len);
        if (rc == SOP_OK && present) {
            CHECK(len == vl, "get_copy len %zu, expected %zu", len, vl);
            size_t m = cap < vl ? cap : vl;
            CHECK(memcmp(buf, s->it[lb].v, m) == 0, "get_copy content differs (cap %zu)", cap);
            CHECK(buf[cap] == 0xA5, "get_copy wrote past cap %zu", cap);
        }
        free(buf);
        break;
    }
    }
    int want = m_apply(s, which, k, kl, VBUF, val.size, &at);
    if (rc != want)
        fail_msg("%s(%s) = %s, expected %s" CTX_FMT, OP_NAMES[which], hexs(k, kl),
                 sop_err_name(rc), sop_err_name(want), CTX_ARGS);
    if (want == SOP_EEXISTS)
        G.eexists++;
    else if (want == SOP_ENOTFOUND)
        G.enotfound++;
    if (X->logging)
        log_op(X, si, which, k, kl, VBUF, val.size, want,
               want == SOP_OK && (which == OP_GET || which == OP_GET_COPY) ? &s->it[at] : NULL);
}

/* Positions cursor @c at random; returns the expected index or -1. */
static long cur_position(sop_cursor *c, const mstore *s)
{
    unsigned r = (unsigned)rn(10);
    if (r == 0) {
        int rc = sop_cursor_first(c);
        if (!s->n) {
            RC(rc, SOP_ENOTFOUND);
            return -1;
        }
        RC(rc, SOP_OK);
        check_at(c, s, 0);
        return 0;
    }
    if (r == 1) {
        int rc = sop_cursor_last(c);
        if (!s->n) {
            RC(rc, SOP_ENOTFOUND);
            return -1;
        }
        RC(rc, SOP_OK);
        check_at(c, s, s->n - 1);
        return (long)s->n - 1;
    }
    return check_find(c, s);
}

/* Random moves; returns the position afterwards (or -1). */
static long cur_moves(sop_cursor *c, const mstore *s, long pos, int moves)
{
    for (int i = 0; i < moves && pos >= 0; i++) {
        unsigned r = (unsigned)rn(3);
        int rc;
        long np;
        if (r == 0) {
            rc = sop_cursor_next(c);
            np = pos + 1;
        } else if (r == 1) {
            rc = sop_cursor_prev(c);
            np = pos - 1;
        } else {
            int64_t d = (int64_t)rn(11) - 5;
            if (d == 0)
                d = 3;
            rc = sop_cursor_skip(c, d);
            np = pos + d;
        }
        if (np < 0 || np >= (long)s->n) {
            CHECK(rc == SOP_ENOTFOUND, "move from %ld to %ld of %zu: %s", pos, np, s->n,
                  sop_err_name(rc));
            RC(sop_cursor_next(c), SOP_EINCOMPLETE);
            RC(sop_cursor_skip(c, 1), SOP_EINCOMPLETE);
            return -1;
        }
        CHECK(rc == SOP_OK, "move from %ld to %ld of %zu: %s", pos, np, s->n, sop_err_name(rc));
        check_at(c, s, (size_t)np);
        pos = np;
    }
    return pos;
}

enum { CM_NONE, CM_UPDATE, CM_REMOVE, CM_UPDATE_KEY, CM_SWEEP };

static void op_cursor(int si, int what)
{
    mstore *s = &X->wk.s[si];
    sop_store *h = handle(si);
    sop_cursor *c = NULL;
    CX.what = "cursor";
    RC(sop_cursor_open(h, &c), SOP_OK);
    long pos = cur_position(c, s);
    pos = cur_moves(c, s, pos, (int)rn(4));
    if (pos < 0) {
        if (what != CM_NONE) {
            sop_val v = {VBUF, 3};
            CX.what = "cursor unpositioned";
            RC(sop_cursor_update(c, &v), SOP_EINCOMPLETE);
            RC(sop_cursor_remove(c), SOP_EINCOMPLETE);
        }
        sop_cursor_close(c);
        return;
    }
    size_t idx = (size_t)pos;
    switch (what) {
    case CM_UPDATE: {
        CX.what = "sop_cursor_update";
        sop_val v = {VBUF, gen_val(s)};
        RC(sop_cursor_update(c, &v), SOP_OK);
        m_setval(s, idx, VBUF, v.size);
        check_at(c, s, idx);
        cur_moves(c, s, pos, 2);
        break;
    }
    case CM_REMOVE:
    case CM_SWEEP: {
        int n = what == CM_SWEEP ? 1 + (int)rn(40) : 1;
        CX.what = what == CM_SWEEP ? "cursor sweep" : "sop_cursor_remove";
        for (int i = 0; i < n; i++) {
            int rc = sop_cursor_remove(c);
            m_remove(s, idx);
            if (idx < s->n) {
                RC(rc, SOP_OK);
                check_at(c, s, idx);
            } else {
                RC(rc, SOP_ENOTFOUND);
                RC(sop_cursor_next(c), SOP_EINCOMPLETE);
                break;
            }
        }
        break;
    }
    case CM_UPDATE_KEY: {
        CX.what = "sop_cursor_update_key";
        uint8_t k[MAXK];
        size_t kl = s->it[idx].klen;
        memcpy(k, s->it[idx].k, kl);
        int bad = chance(25);
        if (s->kind == K_CUST) {
            /* same 4-byte id, new metadata suffix */
            kl = 4 + (size_t)rn(9);
            for (size_t i = 4; i < kl; i++)
                k[i] = (uint8_t)rnd();
            if (bad)
                k[3] ^= 1; /* another id: not equal */
        } else if (bad) {
            if (s->kind == K_INT) {
                int64_t x;
                memcpy(&x, k, 8);
                x = x == INT64_MAX ? x - 1 : x + 1;
                memcpy(k, &x, 8);
            } else if (kl < max_key(s) && chance(50)) {
                k[kl++] = 'z';
            } else {
                k[kl - 1] ^= 0x40;
            }
        }
        sop_val key = {k, kl};
        int rc = sop_cursor_update_key(c, &key);
        if (bad) {
            RC(rc, -EINVAL);
        } else {
            RC(rc, SOP_OK);
            m_setkey(s, idx, k, kl);
            check_at(c, s, idx);
            cur_moves(c, s, pos, 2);
        }
        break;
    }
    default:
        break;
    }
    sop_cursor_close(c);
}

static void tmp_options(mstore *s)
{
    s->unique = chance(50);
    s->order = SOP_ORDER_BYTES;
    s->node_bytes = chance(50) ? 1024 : 4096;
    s->inline_max = chance(50) ? s->node_bytes / 4 : 32 + (uint32_t)rn(64);
}

static void to_options(const mstore *s, sop_store_options *o)
{
    sop_store_options_init(o);
    o->unique = s->unique;
    o->order = s->order;
    o->node_bytes = s->node_bytes;
    o->inline_max = s->inline_max;
    if (s->order == SOP_ORDER_CUSTOM)
        o->comparator = "prefix4";
}

static void op_tmp_store(void)
{
    int si = NPRIMARY + (int)rn(NTMP);
    mstore *s = &X->wk.s[si];
    CX.store = s->name;
    unsigned r = (unsigned)rn(10);
    if (r < 5) {
        CX.what = "sop_store_create";
        sop_store_options o;
        sop_store *h = NULL;
        if (s->exists) {
            to_options(s, &o);
            RC(sop_store_create(X->txn, s->name, &o, &h), SOP_EEXISTS);
            return;
        }
        tmp_options(s);
        to_options(s, &o);
        RC(sop_store_create(X->txn, s->name, &o, &h), SOP_OK);
        assert_non_null(h);
        s->exists = 1;
        X->h[si] = h;
        /* fill it a little */
        int n = (int)rn(30);
        for (int i = 0; i < n; i++)
            op_kv(si, OP_ADD);
    } else if (r < 8) {
        CX.what = "sop_store_remove";
        if (!s->exists) {
            RC(sop_store_remove(X->txn, s->name), SOP_ENOTFOUND);
            return;
        }
        RC(sop_store_remove(X->txn, s->name), SOP_OK);
        m_clear(s);
        s->exists = 0;
        X->h[si] = NULL;
    } else {
        CX.what = "sop_store_open";
        sop_store *h = NULL;
        if (!s->exists) {
            RC(sop_store_open(X->txn, s->name, &h), SOP_ENOTFOUND);
        } else {
            RC(sop_store_open(X->txn, s->name, &h), SOP_OK);
            X->h[si] = h;
        }
    }
}

static void one_op(void)
{
    int si = pick_store();
    CX.store = X->wk.s[si].name;
    unsigned r = (unsigned)rn(100);
    G.ops++;
    if (r < 20)
        op_kv(si, OP_ADD);
    else if (r < 27)
        op_kv(si, OP_ADD_IF_ABSENT);
    else if (r < 35)
        op_kv(si, OP_UPDATE);
    else if (r < 46)
        op_kv(si, OP_UPSERT);
    else if (r < 58)
        op_kv(si, OP_REMOVE);
    else if (r < 66)
        op_kv(si, OP_GET);
    else if (r < 70)
        op_kv(si, OP_GET_COPY);
    else if (r < 75)
        op_cursor(si, CM_UPDATE);
    else if (r < 80)
        op_cursor(si, CM_REMOVE);
    else if (r < 84)
        op_cursor(si, CM_UPDATE_KEY);
    else if (r < 89)
        op_cursor(si, CM_NONE);
    else if (r < 90)
        op_cursor(si, chance(30) ? CM_SWEEP : CM_NONE);
    else if (r < 93) {
        CX.what = "sop_store_count";
        uint64_t cnt = 0;
        RC(sop_store_count(handle(si), &cnt), SOP_OK);
        CHECK(cnt == X->wk.s[si].n, "count %" PRIu64 ", expected %zu", cnt, X->wk.s[si].n);
    } else if (r < 95) {
        CX.what = "scan in txn";
        check_scan(handle(si), &X->wk.s[si], 0);
    } else if (r < 99) {
        op_tmp_store();
    } else {
        CX.what = "verify in txn";
        verify_list(X->txn, &X->wk);
        verify_store(handle(si), &X->wk.s[si], 0);
    }
}

/* ------------------------------------------------------------------ */
/* The randomized test                                                */
/* ------------------------------------------------------------------ */

static void model_init(void)
{
    static const struct {
        const char *name;
        int kind, unique;
        sop_key_order order;
        uint32_t node, inl;
    } P[NPRIMARY] = {
        {"uniq", K_UNIQ, 1, SOP_ORDER_BYTES, 4096, 1024},
        {"dup", K_DUP, 0, SOP_ORDER_BYTES, 4096, 100},
        {"int", K_INT, 1, SOP_ORDER_INT64, 4096, 1024},
        {"deep", K_DEEP, 1, SOP_ORDER_BYTES, 1024, 256},
        {"cust", K_CUST, 1, SOP_ORDER_CUSTOM, 2048, 64},
    };
    memset(&G.com, 0, sizeof G.com);
    for (int i = 0; i < NPRIMARY; i++) {
        mstore *s = &G.com.s[i];
        snprintf(s->name, sizeof s->name, "%s", P[i].name);
        s->kind = P[i].kind;
        s->unique = P[i].unique;
        s->order = P[i].order;
        s->node_bytes = P[i].node;
        s->inline_max = P[i].inl;
        s->exists = 1;
    }
    for (int i = 0; i < NTMP; i++) {
        mstore *s = &G.com.s[NPRIMARY + i];
        snprintf(s->name, sizeof s->name, "tmp.%d", i);
        s->kind = K_TMP;
        s->order = SOP_ORDER_BYTES;
        s->unique = 1;
        s->node_bytes = 4096;
        s->inline_max = 1024;
    }
}

/* Opens the database read-only: contents as committed; writes refused. */
static void readonly_pass(void)
{
    sop_db_options o;
    sop_db_options_init(&o);
    o.flags = SOP_DB_RDONLY;
    CX.what = "open read-only";
    int rc = sop_db_open(G.dir, &o, &G.db);
    if (rc != SOP_OK)
        fail_msg("sop_db_open(RDONLY) = %s: %s" CTX_FMT, sop_err_name(rc),
                 G.db ? sop_db_errmsg(G.db) : "", CTX_ARGS);
    RC(sop_db_set_comparator(G.db, "prefix4", cust_cmp, NULL), SOP_OK);
    sop_txn *t = NULL;
    RC(sop_txn_begin(G.db, SOP_TXN_WRITE, 0, &t), SOP_EREADONLY);
    RC(sop_txn_begin(G.db, SOP_TXN_NOCHECK, 0, &t), SOP_EREADONLY);
    RC(sop_db_checkpoint(G.db), SOP_EREADONLY);
    db_check_clean();
    verify_committed(0);
    CX.what = "close read-only";
    RC(sop_db_close(G.db), SOP_OK);
    G.db = NULL;
}

static void reopen(void)
{
    CX.what = "sop_db_close";
    RC(sop_db_close(G.db), SOP_OK);
    G.db = NULL;
    if (chance(25))
        readonly_pass();
    CX.what = "reopen";
    db_open_random();
    db_check_clean();
    verify_committed(1);
    G.reopens++;
}

static void begin_tx(txctx *x, int part)
{
    CX.what = "sop_txn_begin";
    sop_txn_mode mode = chance(25) ? SOP_TXN_NOCHECK : SOP_TXN_WRITE;
    RC(sop_txn_begin(G.db, mode, 0, &x->txn), SOP_OK);
    assert_int_equal(sop_txn_get_mode(x->txn), mode);
    x->mode = mode;
    memset(x->h, 0, sizeof x->h);
    mstate_copy(&x->wk, &G.com);
    x->part = part;
    x->narrow = 0;
    x->logging = 0;
}

/* One write transaction with any operations; commits or rolls back. */
static void single_txn(long t)
{
    X = &G.tx[0];
    begin_tx(X, -1);
    long nops = t < 10 ? 150 + (long)rn(100) : chance(10) ? 60 + (long)rn(120) : (long)rn(30);
    for (long op = 0; op < nops; op++) {
        CX.op_no = op;
        one_op();
    }
    CX.op_no = -1;
    if (chance(72) || t < 10) {
        CX.what = "sop_txn_commit";
        RC(sop_txn_commit(X->txn), SOP_OK);
        mstate_free(&G.com);
        G.com = X->wk;
        memset(&X->wk, 0, sizeof X->wk);
        G.commits++;
    } else {
        CX.what = "sop_txn_rollback";
        RC(sop_txn_rollback(X->txn), SOP_OK);
        mstate_free(&X->wk);
        G.rollbacks++;
    }
    X->txn = NULL;
}

/* Runs the logged operations of @x again on @m (the state after another
 * writer's commit), changing @m. Returns how many of them give another
 * result than when @x ran them (reads count only when @reads); *first is
 * the index of the first. */
static int replay(mstate *m, const txctx *x, int reads, long *first)
{
    int bad = 0;
    for (size_t i = 0; i < x->nlog; i++) {
        const oplog *e = &x->log[i];
        mstore *s = &m->s[e->si];
        size_t at;
        int isread = e->which == OP_GET || e->which == OP_GET_COPY;
        int rc = m_apply(s, e->which, e->k, e->kl, e->v, e->vl, &at);
        int differs = rc != e->rc;
        if (!differs && isread && rc == SOP_OK)
            differs = s->it[at].vlen != e->gotl ||
                      (e->gotl && memcmp(s->it[at].v, e->got, e->gotl) != 0);
        if (differs && (reads || !isread)) {
            if (!bad)
                *first = (long)i;
            bad++;
        }
    }
    return bad;
}

/* A point operation (no cursor, scan, count or store change). */
static void one_point_op(void)
{
    int si = pick_store();
    CX.store = X->wk.s[si].name;
    G.ops++;
    op_kv(si, (int)rn(OP_GET_COPY + 1));
}

static void dump_log(const char *who, const txctx *x)
{
    fprintf(stderr, "%s (%s), %zu operations:\n", who,
            x->mode == SOP_TXN_WRITE ? "WRITE" : "NOCHECK", x->nlog);
    for (size_t i = 0; i < x->nlog; i++) {
        const oplog *e = &x->log[i];
        fprintf(stderr, "  %zu: %s %s(%s, %zu-byte value) = %s\n", i, G.com.s[e->si].name,
                OP_NAMES[e->which], hexs(e->k, e->kl), e->vl, sop_err_name(e->rc));
    }
}

/* Whether the items with key @k differ between @a and @b. */
static int key_changed(const mstore *a, const mstore *b, const uint8_t *k, size_t kl)
{
    size_t la = m_lower(a, k, kl), ua = m_upper(a, k, kl);
    size_t lb = m_lower(b, k, kl), ub = m_upper(b, k, kl);
    if (ua - la != ub - lb)
        return 1;
    for (size_t i = 0; i < ua - la; i++) {
        const mitem *x = &a->it[la + i], *y = &b->it[lb + i];
        if (x->klen != y->klen || memcmp(x->k, y->k, x->klen) != 0 || x->vlen != y->vlen ||
            (x->vlen && memcmp(x->v, y->v, x->vlen) != 0))
            return 1;
    }
    return 0;
}

/* Two write transactions open at once, with interleaved point operations,
 * half of the time on disjoint keys, otherwise on a few shared keys. The
 * first commit has no concurrent commit and must succeed. The second is
 * checked against the serial execution "first, then second": the model
 * runs its operations again on the state after the first commit.
 *  - It must fail with SOP_ECONFLICT when one of its operations would then
 *    give another result (WRITE: reads included, serializable; NOCHECK:
 *    writes only, "validated item by item"), or when, in NOCHECK, one of
 *    its writes succeeded on a key (of a unique store) the first one
 *    changed.
 *  - It must succeed when none of its operations (NOCHECK: writes) used a
 *    key whose items the first one changed (sop.h: transactions that
 *    touched different items do not conflict, even in the same nodes).
 *  - Otherwise either is allowed. When it succeeds, the result must be the
 *    serial execution. */
static void pair_txn(void)
{
    txctx *a = &G.tx[0], *b = &G.tx[1];
    int overlap = chance(50);
    begin_tx(a, overlap ? -1 : 0);
    begin_tx(b, overlap ? -1 : 1);
    a->narrow = b->narrow = overlap;
    a->logging = b->logging = 1;
    long nops = overlap ? 2 + (long)rn(12) : 10 + (long)rn(80);
    for (long op = 0; op < nops; op++) {
        CX.op_no = op;
        X = chance(50) ? a : b;
        one_point_op();
    }
    CX.op_no = -1;
    X = a;
    int order = (int)rn(2);
    txctx *f = &G.tx[order], *sx = &G.tx[1 - order];
    int keep_f = chance(85);
    if (keep_f) {
        CX.what = "pair: first commit";
        RC(sop_txn_commit(f->txn), SOP_OK);
        G.commits++;
    } else {
        CX.what = "pair: first rollback";
        RC(sop_txn_rollback(f->txn), SOP_OK);
        G.rollbacks++;
    }
    f->txn = NULL;
    /* which of its operations used keys that the first one changed */
    int reads = sx->mode == SOP_TXN_WRITE;
    long touched = -1; /* the first such operation (WRITE: any; NOCHECK: writes) */
    long ww = -1;      /* NOCHECK: the first such write that succeeded */
    for (size_t i = 0; i < sx->nlog && keep_f; i++) {
        const oplog *e = &sx->log[i];
        int isread = e->which == OP_GET || e->which == OP_GET_COPY;
        if (!reads && isread)
            continue;
        if (!key_changed(&G.com.s[e->si], &f->wk.s[e->si], e->k, e->kl))
            continue;
        if (touched < 0)
            touched = (long)i;
        /* one item per key only in a unique store (in a duplicate store
         * the two may have written different items of the key) */
        if (!reads && e->rc == SOP_OK && G.com.s[e->si].unique && ww < 0)
            ww = (long)i;
    }
    mstate m;
    mstate_copy(&m, keep_f ? &f->wk : &G.com);
    long first_bad = -1;
    int bad = replay(&m, sx, reads, &first_bad);
    /* must conflict: an operation gives another result after the first
     * commit (not serializable otherwise), or a NOCHECK write hit an item
     * the first one wrote; must commit: nothing it used was changed */
    long must = bad ? first_bad : ww;
    int committed = 0;
    if (chance(85)) {
        CX.what = "pair: second commit";
        int rc = sop_txn_commit(sx->txn);
        if (rc == SOP_OK && must < 0) {
            committed = 1;
            G.commits++;
            if (overlap && keep_f)
                G.merged++;
        } else if (rc == SOP_ECONFLICT && must >= 0) {
            G.exp_conflicts++;
        } else if (rc == SOP_ECONFLICT && touched >= 0) {
            G.opt_conflicts++; /* allowed: it used an item changed meanwhile */
        } else if (rc == SOP_ECONFLICT && G.allow_conflicts) {
            G.conflicts++;
        } else {
            dump_log("first", f);
            dump_log("second", sx);
            if (rc == SOP_OK && bad) {
                const oplog *e = &sx->log[first_bad];
                fprintf(stderr, "op %ld %s(%s) returned %s, but after the first commit it does not\n",
                        first_bad, OP_NAMES[e->which], hexs(e->k, e->kl), sop_err_name(e->rc));
            }
            if (ww >= 0)
                fprintf(stderr, "op %ld (NOCHECK) wrote a key the first transaction wrote\n", ww);
            if (touched >= 0)
                fprintf(stderr, "op %ld is the first to use a key the first transaction changed\n",
                        touched);
            fail_msg("second commit of a pair (%s, %s keys, first %s) = %s (\"%s\"), expected %s"
                     CTX_FMT, reads ? "WRITE" : "NOCHECK", overlap ? "shared" : "disjoint",
                     keep_f ? "committed" : "rolled back", sop_err_name(rc),
                     rc ? sop_db_errmsg(G.db) : "", must >= 0 ? "SOP_ECONFLICT" : "SOP_OK",
                     CTX_ARGS);
        }
    } else {
        CX.what = "pair: second rollback";
        RC(sop_txn_rollback(sx->txn), SOP_OK);
        G.rollbacks++;
    }
    sx->txn = NULL;
    if (committed) {
        mstate_free(&G.com);
        G.com = m;
        mstate_free(&f->wk);
    } else {
        mstate_free(&m);
        if (keep_f) {
            mstate_free(&G.com);
            G.com = f->wk;
            memset(&f->wk, 0, sizeof f->wk);
        } else {
            mstate_free(&f->wk);
        }
    }
    mstate_free(&sx->wk);
    log_free(a);
    log_free(b);
    a->part = b->part = -1;
    a->narrow = b->narrow = 0;
    a->logging = b->logging = 0;
    G.pairs++;
}

static long env_long(const char *name, long dflt)
{
    const char *e = getenv(name);
    if (!e || !*e)
        return dflt;
    long v = strtol(e, NULL, 10);
    return v > 0 ? v : dflt;
}

static void run_model(const char *name, int pair_pct, long dflt_iters)
{
    memset(&G, 0, sizeof G);
    G.pair_pct = pair_pct;
    G.allow_conflicts = env_long("SOP_TEST_ALLOW_CONFLICTS", 0) > 0;
    CX.seed = tu_seed();
    RNG = CX.seed;
    CX.txn_no = -1;
    CX.op_no = -1;
    CX.what = "setup";
    CX.store = "-";
    /* SOP_TEST_ITERS sets the iterations of test_model_random; the other
     * runs scale with it */
    long iters = env_long("SOP_TEST_ITERS", 0);
    iters = iters ? iters * dflt_iters / 1200 + 1 : dflt_iters;
    VBUF = malloc(MAXV);
    assert_non_null(VBUF);
    snprintf(G.dir, sizeof G.dir, "%s", tu_tmpdir(name));
    model_init();
    db_open_random();

    /* create the primary stores */
    sop_txn *t0 = NULL;
    RC(sop_txn_begin(G.db, SOP_TXN_WRITE, 0, &t0), SOP_OK);
    for (int i = 0; i < NPRIMARY; i++) {
        sop_store_options o;
        sop_store *h = NULL;
        to_options(&G.com.s[i], &o);
        CX.store = G.com.s[i].name;
        RC(sop_store_create(t0, G.com.s[i].name, &o, &h), SOP_OK);
    }
    RC(sop_txn_commit(t0), SOP_OK);
    verify_committed(1);

    long next_reopen = 20 + (long)rn(30);
    for (long t = 0; t < iters; t++) {
        CX.txn_no = t;
        CX.op_no = -1;
        CX.store = "-";
        if (t == next_reopen) {
            reopen();
            next_reopen = t + 20 + (long)rn(40);
        }
        if (chance(2)) {
            CX.what = "sop_db_checkpoint";
            RC(sop_db_checkpoint(G.db), SOP_OK);
        }
        /* a read snapshot kept open across the write transaction */
        sop_txn *snap = NULL;
        mstate snapm;
        memset(&snapm, 0, sizeof snapm);
        if (chance(12)) {
            CX.what = "snapshot begin";
            RC(sop_txn_begin(G.db, SOP_TXN_READ, 0, &snap), SOP_OK);
            mstate_copy(&snapm, &G.com);
            if (chance(50))
                verify_all(snap, &snapm, 0); /* read before the writer starts, too */
        }

        if (t >= 10 && chance((unsigned)G.pair_pct))
            pair_txn();
        else
            single_txn(t);

        if (snap) {
            CX.what = "snapshot verify";
            verify_all(snap, &snapm, 0);
            RC(sop_txn_commit(snap), SOP_OK);
            mstate_free(&snapm);
            G.snapshots++;
        }
        verify_committed(0);
    }
    CX.txn_no = -2;
    reopen();
    sop_db_stat st;
    memset(&st, 0, sizeof st);
    RC(sop_db_stats(G.db, &st), SOP_OK);
    fprintf(stderr,
            "%s: engine: %" PRIu64 " nodes, %" PRIu64 " segments, %" PRIu64 " file bytes, %" PRIu64
            " live bytes, %" PRIu64 " checkpoints, cache %" PRIu64 " hits / %" PRIu64 " misses\n",
            name, st.nodes, st.segments, st.file_bytes, st.live_bytes, st.checkpoints, st.cache_hits,
            st.cache_misses);
    CX.what = "final close";
    RC(sop_db_close(G.db), SOP_OK);
    G.db = NULL;

    unsigned long blobs = 0, items = 0;
    for (int i = 0; i < NSLOTS; i++) {
        items += G.com.s[i].n;
        for (size_t j = 0; j < G.com.s[i].n; j++)
            blobs += G.com.s[i].it[j].vlen > G.com.s[i].inline_max;
    }
    fprintf(stderr,
            "%s: %ld txns (%lu commits, %lu rollbacks, %lu concurrent pairs: %lu on shared keys"
            " both committed, %lu required conflicts, %lu allowed conflicts, %lu tolerated"
            " conflicts), %lu ops,"
            " %lu reopens,"
            " %lu snapshots,"
            " %lu EEXISTS, %lu ENOTFOUND; final %lu items (%lu in blobs)\n",
            name, iters, G.commits, G.rollbacks, G.pairs, G.merged, G.exp_conflicts,
            G.opt_conflicts, G.conflicts, G.ops, G.reopens, G.snapshots, G.eexists, G.enotfound,
            items, blobs);
    mstate_free(&G.com);
    free(VBUF);
    VBUF = NULL;
    tu_rmtree(G.dir);
}

/* Single writer: every operation, commits and rollbacks, snapshots,
 * reopens. */
static void test_model_random(void **state)
{
    (void)state;
    run_model("model", 0, 1200);
}

/* Also two writers at once (see pair_txn()). */
static void test_model_pairs(void **state)
{
    (void)state;
    run_model("pairs", 50, 300);
}

/* ------------------------------------------------------------------ */
/* Deterministic API contracts                                        */
/* ------------------------------------------------------------------ */

static sop_db *open_fresh(const char *name, char *dir, size_t dirsz)
{
    snprintf(dir, dirsz, "%s", tu_tmpdir(name));
    sop_db_options o;
    sop_db_options_init(&o);
    o.sync = SOP_SYNC_NONE;
    sop_db *db = NULL;
    int rc = sop_db_open(dir, &o, &db);
    if (rc != SOP_OK)
        fail_msg("sop_db_open(%s) = %s: %s", dir, sop_err_name(rc), db ? sop_db_errmsg(db) : "");
    return db;
}

static void close_clean(sop_db *db, const char *dir)
{
    uint64_t problems = 99;
    assert_int_equal(sop_db_check(db, check_cb, NULL, &problems), SOP_OK);
    assert_int_equal(problems, 0);
    assert_int_equal(sop_db_close(db), SOP_OK);
    tu_rmtree(dir);
}

static sop_val V(const char *s)
{
    sop_val v = {s, strlen(s)};
    return v;
}

static void test_readonly_txn(void **state)
{
    (void)state;
    char dir[512];
    sop_db *db = open_fresh("readonly", dir, sizeof dir);
    sop_txn *t = NULL;
    sop_store *s = NULL;
    sop_val k = V("k"), v = V("v"), got;

    assert_int_equal(sop_txn_begin(db, SOP_TXN_WRITE, 0, &t), SOP_OK);
    assert_int_equal(sop_store_create(t, "s", NULL, &s), SOP_OK);
    assert_int_equal(sop_add(s, &k, &v), SOP_OK);
    assert_int_equal(sop_txn_commit(t), SOP_OK);

    assert_int_equal(sop_txn_begin(db, SOP_TXN_READ, 0, &t), SOP_OK);
    assert_int_equal(sop_txn_get_mode(t), SOP_TXN_READ);
    assert_int_equal(sop_store_open(t, "s", &s), SOP_OK);
    sop_val k2 = V("k2");
    assert_int_equal(sop_add(s, &k2, &v), SOP_EREADONLY);
    assert_int_equal(sop_add_if_absent(s, &k2, &v), SOP_EREADONLY);
    assert_int_equal(sop_update(s, &k, &v), SOP_EREADONLY);
    assert_int_equal(sop_upsert(s, &k, &v), SOP_EREADONLY);
    assert_int_equal(sop_remove(s, &k), SOP_EREADONLY);
    sop_store *s2 = NULL;
    assert_int_equal(sop_store_create(t, "s2", NULL, &s2), SOP_EREADONLY);
    assert_int_equal(sop_store_remove(t, "s"), SOP_EREADONLY);
    sop_cursor *c = NULL;
    assert_int_equal(sop_cursor_open(s, &c), SOP_OK);
    assert_int_equal(sop_cursor_first(c), SOP_OK);
    assert_int_equal(sop_cursor_update(c, &v), SOP_EREADONLY);
    assert_int_equal(sop_cursor_update_key(c, &k), SOP_EREADONLY);
    assert_int_equal(sop_cursor_remove(c), SOP_EREADONLY);
    sop_cursor_close(c);
    /* the item is untouched and still readable */
    assert_int_equal(sop_get(s, &k, &got), SOP_OK);
    assert_int_equal(got.size, 1);
    assert_memory_equal(got.data, "v", 1);
    assert_int_equal(sop_txn_commit(t), SOP_OK);

    /* nothing changed */
    assert_int_equal(sop_txn_begin(db, SOP_TXN_READ, 0, &t), SOP_OK);
    assert_int_equal(sop_store_open(t, "s", &s), SOP_OK);
    uint64_t n = 0;
    assert_int_equal(sop_store_count(s, &n), SOP_OK);
    assert_int_equal(n, 1);
    assert_int_equal(sop_store_open(t, "s2", &s2), SOP_ENOTFOUND);
    assert_int_equal(sop_txn_rollback(t), SOP_OK);
    close_clean(db, dir);
}

static void test_store_names(void **state)
{
    (void)state;
    char dir[512];
    sop_db *db = open_fresh("names", dir, sizeof dir);
    sop_txn *t = NULL;
    sop_store *s = NULL;
    char longname[SOP_STORE_NAME_MAX + 2];
    memset(longname, 'a', sizeof longname);
    longname[SOP_STORE_NAME_MAX + 1] = 0; /* 201 bytes */
    const char *bad[] = {"../x", "", longname, "a/b", "/abs", ".hidden", "a b", "x\\y", "..",
                         "."};
    assert_int_equal(sop_txn_begin(db, SOP_TXN_WRITE, 0, &t), SOP_OK);
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        print_message("bad name \"%.20s\" (%zu bytes)\n", bad[i], strlen(bad[i]));
        assert_int_equal(sop_store_create(t, bad[i], NULL, &s), SOP_ENAME);
        assert_int_equal(sop_store_open(t, bad[i], &s), SOP_ENAME);
        assert_int_equal(sop_store_remove(t, bad[i]), SOP_ENAME);
    }
    /* 200 bytes and every allowed character are fine */
    longname[SOP_STORE_NAME_MAX] = 0;
    assert_int_equal(sop_store_create(t, longname, NULL, &s), SOP_OK);
    assert_int_equal(sop_store_create(t, "Az09_.-x", NULL, &s), SOP_OK);
    assert_int_equal(sop_txn_commit(t), SOP_OK);
    assert_int_equal(sop_txn_begin(db, SOP_TXN_READ, 0, &t), SOP_OK);
    assert_int_equal(sop_store_open(t, longname, &s), SOP_OK);
    assert_int_equal(sop_store_open(t, "Az09_.-x", &s), SOP_OK);
    assert_int_equal(sop_txn_commit(t), SOP_OK);
    close_clean(db, dir);
}

static void test_too_big(void **state)
{
    (void)state;
    char dir[512];
    sop_db *db = open_fresh("toobig", dir, sizeof dir);
    sop_txn *t = NULL;
    sop_store *s4 = NULL, *s1 = NULL;
    sop_store_options o;
    static uint8_t kb[2000];
    memset(kb, 'k', sizeof kb);
    sop_val v = V("v");
    assert_int_equal(sop_txn_begin(db, SOP_TXN_WRITE, 0, &t), SOP_OK);
    sop_store_options_init(&o);
    assert_int_equal(o.node_bytes, 4096);
    assert_int_equal(o.unique, 1);
    assert_int_equal(sop_store_create(t, "n4096", &o, &s4), SOP_OK);
    o.node_bytes = 1024;
    o.inline_max = 256;
    assert_int_equal(sop_store_create(t, "n1024", &o, &s1), SOP_OK);

    sop_val k = {kb, 4096 / 4 - 16};
    assert_int_equal(sop_add(s4, &k, &v), SOP_OK);
    k.size++;
    assert_int_equal(sop_add(s4, &k, &v), SOP_ETOOBIG);
    assert_int_equal(sop_upsert(s4, &k, &v), SOP_ETOOBIG);
    k.size = 1024 / 4 - 16;
    assert_int_equal(sop_add(s1, &k, &v), SOP_OK);
    k.size++;
    assert_int_equal(sop_add(s1, &k, &v), SOP_ETOOBIG);
    k.size = 1500;
    assert_int_equal(sop_add(s1, &k, &v), SOP_ETOOBIG);
    /* the limit is the same for a store with duplicate keys (sop.h) */
    sop_store *sd = NULL;
    sop_store_options_init(&o);
    o.unique = 0;
    assert_int_equal(sop_store_create(t, "dup", &o, &sd), SOP_OK);
    k.size = 4096 / 4 - 16;
    assert_int_equal(sop_add(sd, &k, &v), SOP_OK);
    assert_int_equal(sop_add(sd, &k, &v), SOP_OK);
    k.size++;
    assert_int_equal(sop_add(sd, &k, &v), SOP_ETOOBIG);

    /* a value larger than SOP_VALUE_MAX (calloc maps it lazily) */
    uint8_t *big = calloc(1, (size_t)SOP_VALUE_MAX + 1);
    assert_non_null(big);
    sop_val bv = {big, (size_t)SOP_VALUE_MAX + 1};
    sop_val k2 = V("big");
    assert_int_equal(sop_add(s4, &k2, &bv), SOP_ETOOBIG);
    free(big);

    uint64_t n = 0;
    assert_int_equal(sop_store_count(s4, &n), SOP_OK);
    assert_int_equal(n, 1);
    assert_int_equal(sop_store_count(s1, &n), SOP_OK);
    assert_int_equal(n, 1);
    assert_int_equal(sop_txn_commit(t), SOP_OK);

    /* bad store options */
    assert_int_equal(sop_txn_begin(db, SOP_TXN_WRITE, 0, &t), SOP_OK);
    sop_store_options_init(&o);
    o.node_bytes = 512;
    assert_int_equal(sop_store_create(t, "bad1", &o, &s1), -EINVAL);
    o.node_bytes = 131072;
    assert_int_equal(sop_store_create(t, "bad2", &o, &s1), -EINVAL);
    sop_store_options_init(&o);
    o.order = SOP_ORDER_CUSTOM;
    o.comparator = "not-registered";
    assert_int_equal(sop_store_create(t, "bad3", &o, &s1), SOP_ENOCMP);
    assert_int_equal(sop_txn_rollback(t), SOP_OK);
    close_clean(db, dir);
}

static void test_int64_key_size(void **state)
{
    (void)state;
    char dir[512];
    sop_db *db = open_fresh("int64", dir, sizeof dir);
    sop_txn *t = NULL;
    sop_store *s = NULL;
    sop_store_options o;
    sop_store_options_init(&o);
    o.order = SOP_ORDER_INT64;
    uint8_t kb[16] = {0};
    sop_val v = V("v"), got;
    assert_int_equal(sop_txn_begin(db, SOP_TXN_WRITE, 0, &t), SOP_OK);
    assert_int_equal(sop_store_create(t, "i", &o, &s), SOP_OK);
    size_t sizes[] = {0, 1, 4, 7, 9, 16};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        sop_val k = {kb, sizes[i]};
        print_message("int64 key of %zu bytes\n", sizes[i]);
        assert_int_equal(sop_add(s, &k, &v), -EINVAL);
        assert_int_equal(sop_upsert(s, &k, &v), -EINVAL);
        assert_int_equal(sop_get(s, &k, &got), -EINVAL);
        assert_int_equal(sop_remove(s, &k), -EINVAL);
        sop_cursor *c = NULL;
        assert_int_equal(sop_cursor_open(s, &c), SOP_OK);
        assert_int_equal(sop_cursor_find(c, &k, SOP_FIND_GE), -EINVAL);
        sop_cursor_close(c);
    }
    /* 8 bytes work, and order is numeric (host order) */
    int64_t vals[] = {5, -3, INT64_MIN, 0, INT64_MAX, -1, 256};
    for (size_t i = 0; i < sizeof vals / sizeof vals[0]; i++) {
        sop_val k = {&vals[i], 8};
        assert_int_equal(sop_add(s, &k, &v), SOP_OK);
    }
    int64_t sorted[] = {INT64_MIN, -3, -1, 0, 5, 256, INT64_MAX};
    sop_cursor *c = NULL;
    assert_int_equal(sop_cursor_open(s, &c), SOP_OK);
    assert_int_equal(sop_cursor_first(c), SOP_OK);
    for (size_t i = 0; i < 7; i++) {
        sop_val k;
        int64_t x;
        assert_int_equal(sop_cursor_key(c, &k), SOP_OK);
        assert_int_equal(k.size, 8);
        memcpy(&x, k.data, 8);
        assert_true(x == sorted[i]);
        assert_int_equal(sop_cursor_next(c), i == 6 ? SOP_ENOTFOUND : SOP_OK);
    }
    sop_cursor_close(c);
    assert_int_equal(sop_txn_commit(t), SOP_OK);
    close_clean(db, dir);
}

static int count_cb(const char *name, void *ctx)
{
    (void)name;
    (*(int *)ctx)++;
    return 0;
}

static int stop_cb(const char *name, void *ctx)
{
    (void)name;
    (*(int *)ctx)++;
    return 42;
}

static void test_store_lifecycle(void **state)
{
    (void)state;
    char dir[512];
    sop_db *db = open_fresh("lifecycle", dir, sizeof dir);
    sop_txn *t = NULL;
    sop_store *s = NULL, *s2 = NULL;
    sop_val k = V("k"), v = V("v"), got;
    int n;

    /* missing store */
    assert_int_equal(sop_txn_begin(db, SOP_TXN_WRITE, 0, &t), SOP_OK);
    assert_int_equal(sop_store_open(t, "nope", &s), SOP_ENOTFOUND);
    assert_int_equal(sop_store_remove(t, "nope"), SOP_ENOTFOUND);
    /* duplicate create, in the same transaction */
    assert_int_equal(sop_store_create(t, "a", NULL, &s), SOP_OK);
    assert_int_equal(sop_store_create(t, "a", NULL, &s2), SOP_EEXISTS);
    assert_int_equal(sop_add(s, &k, &v), SOP_OK);
    assert_int_equal(sop_txn_commit(t), SOP_OK);
    /* and after commit */
    assert_int_equal(sop_txn_begin(db, SOP_TXN_WRITE, 0, &t), SOP_OK);
    assert_int_equal(sop_store_create(t, "a", NULL, &s2), SOP_EEXISTS);
    assert_int_equal(sop_store_open(t, "a", &s), SOP_OK);
    assert_int_equal(sop_get(s, &k, &got), SOP_OK);
    assert_int_equal(sop_txn_rollback(t), SOP_OK);

    /* rollback of a creation: the store vanishes */
    assert_int_equal(sop_txn_begin(db, SOP_TXN_WRITE, 0, &t), SOP_OK);
    assert_int_equal(sop_store_create(t, "b", NULL, &s), SOP_OK);
    assert_int_equal(sop_add(s, &k, &v), SOP_OK);
    n = 0;
    assert_int_equal(sop_store_list(t, count_cb, &n), SOP_OK);
    assert_int_equal(n, 2);
    assert_int_equal(sop_txn_rollback(t), SOP_OK);
    assert_int_equal(sop_txn_begin(db, SOP_TXN_READ, 0, &t), SOP_OK);
    assert_int_equal(sop_store_open(t, "b", &s), SOP_ENOTFOUND);
    n = 0;
    assert_int_equal(sop_store_list(t, count_cb, &n), SOP_OK);
    assert_int_equal(n, 1);
    n = 0;
    assert_int_equal(sop_store_list(t, stop_cb, &n), 42);
    assert_int_equal(n, 1);
    assert_int_equal(sop_txn_rollback(t), SOP_OK);
    /* and "b" can be created afterwards */
    assert_int_equal(sop_txn_begin(db, SOP_TXN_WRITE, 0, &t), SOP_OK);
    assert_int_equal(sop_store_create(t, "b", NULL, &s), SOP_OK);
    uint64_t cnt = 7;
    assert_int_equal(sop_store_count(s, &cnt), SOP_OK);
    assert_int_equal(cnt, 0);
    assert_int_equal(sop_txn_commit(t), SOP_OK);

    /* rollback of a removal: the store and its items come back */
    assert_int_equal(sop_txn_begin(db, SOP_TXN_WRITE, 0, &t), SOP_OK);
    assert_int_equal(sop_store_remove(t, "a"), SOP_OK);
    assert_int_equal(sop_store_open(t, "a", &s), SOP_ENOTFOUND);
    assert_int_equal(sop_txn_rollback(t), SOP_OK);
    assert_int_equal(sop_txn_begin(db, SOP_TXN_WRITE, 0, &t), SOP_OK);
    assert_int_equal(sop_store_open(t, "a", &s), SOP_OK);
    assert_int_equal(sop_get(s, &k, &got), SOP_OK);
    /* remove and recreate in one transaction: the new store is empty */
    assert_int_equal(sop_store_remove(t, "a"), SOP_OK);
    sop_store_options o;
    sop_store_options_init(&o);
    o.unique = 0;
    assert_int_equal(sop_store_create(t, "a", &o, &s), SOP_OK);
    assert_int_equal(sop_get(s, &k, &got), SOP_ENOTFOUND);
    assert_int_equal(sop_add(s, &k, &v), SOP_OK);
    assert_int_equal(sop_add(s, &k, &v), SOP_OK);
    assert_int_equal(sop_txn_commit(t), SOP_OK);

    /* it survives a reopen */
    assert_int_equal(sop_db_close(db), SOP_OK);
    db = NULL;
    assert_int_equal(sop_db_open(dir, NULL, &db), SOP_OK);
    assert_int_equal(sop_txn_begin(db, SOP_TXN_READ, 0, &t), SOP_OK);
    assert_int_equal(sop_store_open(t, "a", &s), SOP_OK);
    assert_int_equal(sop_store_count(s, &cnt), SOP_OK);
    assert_int_equal(cnt, 2);
    assert_int_equal(sop_store_get_options(s, &o), SOP_OK);
    assert_int_equal(o.unique, 0);
    assert_int_equal(sop_store_open(t, "b", &s), SOP_OK);
    assert_int_equal(sop_txn_rollback(t), SOP_OK);
    close_clean(db, dir);
}

static void test_cursor_contract(void **state)
{
    (void)state;
    char dir[512];
    sop_db *db = open_fresh("cursor", dir, sizeof dir);
    sop_txn *t = NULL;
    sop_store *s = NULL;
    sop_cursor *c = NULL;
    sop_val k, v;
    assert_int_equal(sop_txn_begin(db, SOP_TXN_WRITE, 0, &t), SOP_OK);
    assert_int_equal(sop_store_create(t, "c", NULL, &s), SOP_OK);
    assert_int_equal(sop_cursor_open(s, &c), SOP_OK);
    /* unpositioned and empty */
    assert_int_equal(sop_cursor_next(c), SOP_EINCOMPLETE);
    assert_int_equal(sop_cursor_prev(c), SOP_EINCOMPLETE);
    assert_int_equal(sop_cursor_key(c, &k), SOP_EINCOMPLETE);
    assert_int_equal(sop_cursor_get(c, &k, &v), SOP_EINCOMPLETE);
    assert_int_equal(sop_cursor_first(c), SOP_ENOTFOUND);
    assert_int_equal(sop_cursor_last(c), SOP_ENOTFOUND);
    sop_val a = V("a"), b = V("b"), x = V("x");
    assert_int_equal(sop_cursor_find(c, &a, SOP_FIND_GE), SOP_ENOTFOUND);
    sop_cursor_close(c);
    assert_int_equal(sop_add(s, &a, &x), SOP_OK);
    assert_int_equal(sop_add(s, &b, &x), SOP_OK);
    assert_int_equal(sop_cursor_open(s, &c), SOP_OK);
    /* update_key with a key that does not compare equal */
    assert_int_equal(sop_cursor_find(c, &a, SOP_FIND_EXACT), SOP_OK);
    assert_int_equal(sop_cursor_update_key(c, &b), -EINVAL);
    assert_int_equal(sop_cursor_update_key(c, &a), SOP_OK);
    /* remove the last item: unpositioned */
    assert_int_equal(sop_cursor_last(c), SOP_OK);
    assert_int_equal(sop_cursor_remove(c), SOP_ENOTFOUND);
    assert_int_equal(sop_cursor_next(c), SOP_EINCOMPLETE);
    /* remove the first: moves to the next */
    assert_int_equal(sop_add(s, &b, &x), SOP_OK);
    sop_cursor_close(c);
    assert_int_equal(sop_cursor_open(s, &c), SOP_OK);
    assert_int_equal(sop_cursor_first(c), SOP_OK);
    assert_int_equal(sop_cursor_remove(c), SOP_OK);
    assert_int_equal(sop_cursor_key(c, &k), SOP_OK);
    assert_int_equal(k.size, 1);
    assert_memory_equal(k.data, "b", 1);
    sop_cursor_close(c);
    assert_int_equal(sop_txn_commit(t), SOP_OK);
    close_clean(db, dir);
}

/* Fills store "s" with k000..k299, values of 200 bytes (so that about 20
 * items fill a leaf, and k010, k105, k150 and k290 sit in different leaves). */
static void fill300(sop_db *db)
{
    sop_txn *t = NULL;
    sop_store *s = NULL;
    static char vb[200];
    memset(vb, 'v', sizeof vb);
    assert_int_equal(sop_txn_begin(db, SOP_TXN_WRITE, 0, &t), SOP_OK);
    assert_int_equal(sop_store_create(t, "s", NULL, &s), SOP_OK);
    for (int i = 0; i < 300; i++) {
        char k[16];
        snprintf(k, sizeof k, "k%03d", i);
        sop_val kk = V(k), v = {vb, sizeof vb};
        assert_int_equal(sop_add(s, &kk, &v), SOP_OK);
    }
    assert_int_equal(sop_txn_commit(t), SOP_OK);
}

static void begin2(sop_db *db, sop_txn_mode mb, sop_txn **a, sop_store **sa, sop_txn **b,
                   sop_store **sb)
{
    assert_int_equal(sop_txn_begin(db, SOP_TXN_WRITE, 0, a), SOP_OK);
    assert_int_equal(sop_txn_begin(db, mb, 0, b), SOP_OK);
    assert_int_equal(sop_store_open(*a, "s", sa), SOP_OK);
    assert_int_equal(sop_store_open(*b, "s", sb), SOP_OK);
}

static int count_items_cb(const sop_val *k, const sop_val *v, void *ctx)
{
    (void)k;
    (void)v;
    (*(int *)ctx)++;
    return 0;
}

/* Serializable validation: what a WRITE transaction read is checked at
 * commit (keys far apart, so that they sit in different leaves). */
static void test_conflicts(void **state)
{
    (void)state;
    char dir[512];
    sop_db *db = open_fresh("conflicts", dir, sizeof dir);
    fill300(db);
    sop_txn *a, *b;
    sop_store *sa, *sb;
    sop_val got, x = V("x"), y = V("y");
    sop_val k010 = V("k010"), k290 = V("k290"), k150x = V("k150x"), k105x = V("k105x");

    /* lost update: both change k010; the second commit must fail */
    begin2(db, SOP_TXN_WRITE, &a, &sa, &b, &sb);
    assert_int_equal(sop_get(sa, &k010, &got), SOP_OK);
    assert_int_equal(sop_get(sb, &k010, &got), SOP_OK);
    assert_int_equal(sop_update(sa, &k010, &x), SOP_OK);
    assert_int_equal(sop_update(sb, &k010, &y), SOP_OK);
    assert_int_equal(sop_txn_commit(a), SOP_OK);
    assert_int_equal(sop_txn_commit(b), SOP_ECONFLICT);

    /* write skew: A reads k010 and writes k290, B reads k290 and writes k010 */
    begin2(db, SOP_TXN_WRITE, &a, &sa, &b, &sb);
    assert_int_equal(sop_get(sa, &k010, &got), SOP_OK);
    assert_int_equal(sop_update(sa, &k290, &x), SOP_OK);
    assert_int_equal(sop_get(sb, &k290, &got), SOP_OK);
    assert_int_equal(sop_update(sb, &k010, &x), SOP_OK);
    assert_int_equal(sop_txn_commit(a), SOP_OK);
    assert_int_equal(sop_txn_commit(b), SOP_ECONFLICT);

    /* a key read as absent, then added by another: conflict */
    begin2(db, SOP_TXN_WRITE, &a, &sa, &b, &sb);
    assert_int_equal(sop_get(sa, &k150x, &got), SOP_ENOTFOUND);
    assert_int_equal(sop_update(sa, &k290, &y), SOP_OK);
    assert_int_equal(sop_add(sb, &k150x, &y), SOP_OK);
    assert_int_equal(sop_txn_commit(b), SOP_OK);
    assert_int_equal(sop_txn_commit(a), SOP_ECONFLICT);

    /* a phantom in a scanned range: conflict */
    begin2(db, SOP_TXN_WRITE, &a, &sa, &b, &sb);
    sop_val from = V("k100"), to = V("k120");
    sop_range r;
    memset(&r, 0, sizeof r);
    r.from = &from;
    r.to = &to;
    int n = 0;
    assert_int_equal(sop_scan(sa, &r, count_items_cb, &n), SOP_OK);
    assert_int_equal(n, 21);
    assert_int_equal(sop_update(sa, &k290, &x), SOP_OK);
    assert_int_equal(sop_add(sb, &k105x, &y), SOP_OK);
    assert_int_equal(sop_txn_commit(b), SOP_OK);
    assert_int_equal(sop_txn_commit(a), SOP_ECONFLICT);

    /* a count read, changed by another: conflict */
    begin2(db, SOP_TXN_WRITE, &a, &sa, &b, &sb);
    uint64_t cnt = 0;
    assert_int_equal(sop_store_count(sa, &cnt), SOP_OK);
    assert_int_equal(cnt, 302);
    assert_int_equal(sop_update(sa, &k290, &y), SOP_OK);
    assert_int_equal(sop_remove(sb, &k105x), SOP_OK);
    assert_int_equal(sop_txn_commit(b), SOP_OK);
    assert_int_equal(sop_txn_commit(a), SOP_ECONFLICT);

    /* the same read in NOCHECK is not validated */
    begin2(db, SOP_TXN_WRITE, &a, &sa, &b, &sb);
    assert_int_equal(sop_get(sb, &k010, &got), SOP_OK);
    assert_int_equal(sop_update(sb, &k290, &x), SOP_OK);
    assert_int_equal(sop_update(sa, &k010, &y), SOP_OK);
    assert_int_equal(sop_txn_commit(a), SOP_OK);
    assert_int_equal(sop_txn_rollback(b), SOP_OK);
    begin2(db, SOP_TXN_NOCHECK, &a, &sa, &b, &sb);
    assert_int_equal(sop_get(sb, &k010, &got), SOP_OK);
    assert_int_equal(sop_update(sb, &k290, &y), SOP_OK);
    assert_int_equal(sop_update(sa, &k010, &x), SOP_OK);
    assert_int_equal(sop_txn_commit(a), SOP_OK);
    assert_int_equal(sop_txn_commit(b), SOP_OK);

    /* the end state: k010 = x, k290 = y, k150x = y, no k105x */
    assert_int_equal(sop_txn_begin(db, SOP_TXN_READ, 0, &a), SOP_OK);
    assert_int_equal(sop_store_open(a, "s", &sa), SOP_OK);
    assert_int_equal(sop_get(sa, &k010, &got), SOP_OK);
    assert_true(got.size == 1 && memcmp(got.data, "x", 1) == 0);
    assert_int_equal(sop_get(sa, &k290, &got), SOP_OK);
    assert_true(got.size == 1 && memcmp(got.data, "y", 1) == 0);
    assert_int_equal(sop_get(sa, &k150x, &got), SOP_OK);
    assert_int_equal(sop_get(sa, &k105x, &got), SOP_ENOTFOUND);
    assert_int_equal(sop_store_count(sa, &cnt), SOP_OK);
    assert_int_equal(cnt, 301);
    assert_int_equal(sop_txn_commit(a), SOP_OK);
    close_clean(db, dir);
}

/* NOCHECK: "what it read is not validated at commit (its writes still are,
 * item by item)": two NOCHECK transactions that write the same item
 * concurrently - the second must fail rather than silently overwrite. */
static void test_nocheck_write_conflict(void **state)
{
    (void)state;
    char dir[512];
    sop_db *db = open_fresh("nocheck", dir, sizeof dir);
    fill300(db);
    sop_txn *a, *b;
    sop_store *sa, *sb;
    sop_val k = V("k010"), x = V("x"), y = V("y"), got;
    begin2(db, SOP_TXN_NOCHECK, &a, &sa, &b, &sb);
    assert_int_equal(sop_update(sa, &k, &x), SOP_OK);
    assert_int_equal(sop_update(sb, &k, &y), SOP_OK);
    assert_int_equal(sop_txn_commit(a), SOP_OK);
    int rc = sop_txn_commit(b);
    assert_int_equal(sop_txn_begin(db, SOP_TXN_READ, 0, &a), SOP_OK);
    assert_int_equal(sop_store_open(a, "s", &sa), SOP_OK);
    assert_int_equal(sop_get(sa, &k, &got), SOP_OK);
    print_message("second NOCHECK update of the same item: %s; value now %.*s\n",
                  sop_err_name(rc), (int)got.size, (const char *)got.data);
    assert_int_equal(sop_txn_commit(a), SOP_OK);
    assert_int_equal(rc, SOP_ECONFLICT);
    close_clean(db, dir);
}

/* A WRITE transaction that only reads: a concurrent commit that changed
 * another item of the same leaf is no conflict (sop.h: what it read is
 * validated, key by key). */
static void test_read_only_write_txn(void **state)
{
    (void)state;
    char dir[512];
    sop_db *db = open_fresh("readonly_write", dir, sizeof dir);
    sop_txn *t, *a, *b;
    sop_store *s, *sa, *sb;
    sop_val k1 = V("k1"), k5 = V("k5"), v = V("v"), x = V("x"), got;
    assert_int_equal(sop_txn_begin(db, SOP_TXN_WRITE, 0, &t), SOP_OK);
    assert_int_equal(sop_store_create(t, "s", NULL, &s), SOP_OK);
    assert_int_equal(sop_add(s, &k1, &v), SOP_OK);
    assert_int_equal(sop_add(s, &k5, &v), SOP_OK);
    assert_int_equal(sop_txn_commit(t), SOP_OK);
    begin2(db, SOP_TXN_WRITE, &a, &sa, &b, &sb);
    assert_int_equal(sop_get(sb, &k5, &got), SOP_OK);
    assert_int_equal(sop_update(sa, &k1, &x), SOP_OK);
    assert_int_equal(sop_txn_commit(a), SOP_OK);
    assert_int_equal(sop_txn_commit(b), SOP_OK);
    close_clean(db, dir);
}

/* WRITE is serializable, also in a store with duplicate keys: B adds a
 * "d" and then reads the first "d"; A changes that item and commits; B
 * must not commit what it read before A's change. */
static void test_dup_read_validated(void **state)
{
    (void)state;
    char dir[512];
    sop_db *db = open_fresh("dup_read", dir, sizeof dir);
    sop_txn *t, *a, *b;
    sop_store *s, *sa, *sb;
    sop_store_options o;
    sop_store_options_init(&o);
    o.unique = 0;
    sop_val d = V("d"), old = V("old"), nw = V("new"), bv = V("b"), got;
    assert_int_equal(sop_txn_begin(db, SOP_TXN_WRITE, 0, &t), SOP_OK);
    assert_int_equal(sop_store_create(t, "s", &o, &s), SOP_OK);
    assert_int_equal(sop_add(s, &d, &old), SOP_OK);
    assert_int_equal(sop_txn_commit(t), SOP_OK);
    begin2(db, SOP_TXN_WRITE, &a, &sa, &b, &sb);
    assert_int_equal(sop_add(sb, &d, &bv), SOP_OK);
    assert_int_equal(sop_get(sb, &d, &got), SOP_OK);
    assert_true(got.size == 3 && memcmp(got.data, "old", 3) == 0);
    assert_int_equal(sop_update(sa, &d, &nw), SOP_OK);
    assert_int_equal(sop_txn_commit(a), SOP_OK);
    assert_int_equal(sop_txn_commit(b), SOP_ECONFLICT);
    close_clean(db, dir);
}

/* NOCHECK writes are validated item by item, also one that found nothing:
 * B's remove of "e" gave SOP_ENOTFOUND, then A adds "e"; B must not commit
 * (it does conflict when B's other write shares a leaf with "e"; here it
 * is in another store). */
static void test_nocheck_failed_write(void **state)
{
    (void)state;
    char dir[512];
    sop_db *db = open_fresh("nocheck_failed", dir, sizeof dir);
    sop_txn *t, *a, *b;
    sop_store *s, *s2, *sa, *sb;
    sop_val e = V("e"), z = V("z"), v = V("v");
    assert_int_equal(sop_txn_begin(db, SOP_TXN_WRITE, 0, &t), SOP_OK);
    assert_int_equal(sop_store_create(t, "s", NULL, &s), SOP_OK);
    assert_int_equal(sop_store_create(t, "t", NULL, &s2), SOP_OK);
    assert_int_equal(sop_txn_commit(t), SOP_OK);
    begin2(db, SOP_TXN_NOCHECK, &a, &sa, &b, &sb);
    assert_int_equal(sop_remove(sb, &e), SOP_ENOTFOUND);
    assert_int_equal(sop_store_open(b, "t", &s2), SOP_OK);
    assert_int_equal(sop_upsert(s2, &z, &v), SOP_OK);
    assert_int_equal(sop_add(sa, &e, &v), SOP_OK);
    assert_int_equal(sop_txn_commit(a), SOP_OK);
    assert_int_equal(sop_txn_commit(b), SOP_ECONFLICT);
    /* the same when the failed write is all that B did: B's update of "f"
     * gave SOP_ENOTFOUND, A adds "f" */
    sop_val f = V("f");
    begin2(db, SOP_TXN_NOCHECK, &a, &sa, &b, &sb);
    assert_int_equal(sop_update(sb, &f, &v), SOP_ENOTFOUND);
    assert_int_equal(sop_add(sa, &f, &v), SOP_OK);
    assert_int_equal(sop_txn_commit(a), SOP_OK);
    assert_int_equal(sop_txn_commit(b), SOP_ECONFLICT);
    close_clean(db, dir);
}

/* max_ms, and closing with a transaction open. */
static void test_timeout_and_busy(void **state)
{
    (void)state;
    char dir[512];
    sop_db *db = open_fresh("timeout", dir, sizeof dir);
    fill300(db);
    sop_txn *t = NULL;
    sop_store *s = NULL;
    sop_val k = V("k001"), v = V("v"), got;
    struct timespec ts = {0, 120 * 1000000L};
    /* commit after max_ms */
    assert_int_equal(sop_txn_begin(db, SOP_TXN_WRITE, 50, &t), SOP_OK);
    assert_int_equal(sop_store_open(t, "s", &s), SOP_OK);
    assert_int_equal(sop_update(s, &k, &v), SOP_OK);
    /* the database cannot close while it is open */
    assert_int_equal(sop_db_close(db), SOP_EBUSY);
    nanosleep(&ts, NULL);
    assert_int_equal(sop_txn_commit(t), SOP_ETIMEDOUT);
    /* "every call on the transaction returns SOP_ETIMEDOUT and commit fails" */
    assert_int_equal(sop_txn_begin(db, SOP_TXN_WRITE, 50, &t), SOP_OK);
    assert_int_equal(sop_store_open(t, "s", &s), SOP_OK);
    assert_int_equal(sop_update(s, &k, &v), SOP_OK);
    nanosleep(&ts, NULL);
    assert_int_equal(sop_get(s, &k, &got), SOP_ETIMEDOUT);
    assert_int_equal(sop_update(s, &k, &v), SOP_ETIMEDOUT);
    int rc = sop_txn_commit(t);
    print_message("commit after a timed-out call: %s\n", sop_err_name(rc));
    assert_int_equal(rc, SOP_ETIMEDOUT);
    /* nothing was written */
    assert_int_equal(sop_txn_begin(db, SOP_TXN_READ, 0, &t), SOP_OK);
    assert_int_equal(sop_store_open(t, "s", &s), SOP_OK);
    assert_int_equal(sop_get(s, &k, &got), SOP_OK);
    assert_int_equal(got.size, 200);
    assert_int_equal(sop_txn_commit(t), SOP_OK);
    close_clean(db, dir);
}

/* A value of several MiB round-trips, also through a reopen. */
static void test_big_value(void **state)
{
    (void)state;
    char dir[512];
    sop_db *db = open_fresh("bigvalue", dir, sizeof dir);
    size_t n = 3u * 1024 * 1024 + 17;
    uint8_t *big = malloc(n);
    assert_non_null(big);
    uint64_t st = 42;
    for (size_t i = 0; i < n; i++)
        big[i] = (uint8_t)tu_rand(&st);
    sop_txn *t = NULL;
    sop_store *s = NULL;
    sop_val k = V("big"), v = {big, n}, got;
    assert_int_equal(sop_txn_begin(db, SOP_TXN_WRITE, 0, &t), SOP_OK);
    assert_int_equal(sop_store_create(t, "s", NULL, &s), SOP_OK);
    assert_int_equal(sop_add(s, &k, &v), SOP_OK);
    assert_int_equal(sop_get(s, &k, &got), SOP_OK);
    assert_int_equal(got.size, n);
    assert_memory_equal(got.data, big, n);
    assert_int_equal(sop_txn_commit(t), SOP_OK);
    assert_int_equal(sop_db_close(db), SOP_OK);
    db = NULL;
    assert_int_equal(sop_db_open(dir, NULL, &db), SOP_OK);
    assert_int_equal(sop_txn_begin(db, SOP_TXN_READ, 0, &t), SOP_OK);
    assert_int_equal(sop_store_open(t, "s", &s), SOP_OK);
    assert_int_equal(sop_get(s, &k, &got), SOP_OK);
    assert_int_equal(got.size, n);
    assert_memory_equal(got.data, big, n);
    uint8_t part[100];
    size_t len = 0;
    assert_int_equal(sop_get_copy(s, &k, part, sizeof part, &len), SOP_OK);
    assert_int_equal(len, n);
    assert_memory_equal(part, big, sizeof part);
    assert_int_equal(sop_txn_commit(t), SOP_OK);
    free(big);
    close_clean(db, dir);
}

/* A scan whose callback writes in the same transaction: every item that
 * was there is visited once, in order, whatever the writes move. */
typedef struct wscan {
    sop_store *s;
    int seen[400];
    int last, order_ok, reverse;
} wscan;

static int writing_cb(const sop_val *k, const sop_val *v, void *ctx)
{
    (void)v;
    wscan *w = ctx;
    int i = atoi((const char *)k->data + 1);
    if (k->size != 4 || i < 0 || i >= 400)
        return -1;
    if (w->last >= 0 && (w->reverse ? i >= w->last : i <= w->last))
        w->order_ok = 0;
    w->last = i;
    w->seen[i]++;
    if (i < 10 || i >= 390)
        return 0; /* the first write lands mid-leaf, past items read without one */
    char buf[8];
    snprintf(buf, sizeof buf, "k%03d", i);
    sop_val key = {buf, 4}, big = {NULL, 900};
    static char pad[900];
    big.data = pad;
    int rc;
    if (i % 3 == 0) /* grow the item: splits nodes under the scan */
        rc = sop_update(w->s, &key, &big);
    else if (i % 3 == 1) /* delete it: merges */
        rc = sop_remove(w->s, &key);
    else /* insert keys elsewhere, before and after */
        rc = 0;
    if (!rc && i % 7 == 0) {
        char nb[16];
        snprintf(nb, sizeof nb, "k%03dz", i); /* not of the scan's shape: skipped by size */
        sop_val nk = {nb, strlen(nb)};
        rc = sop_upsert(w->s, &nk, &key);
    }
    return rc;
}

static int skip_z(const sop_val *k, const sop_val *v, void *ctx)
{
    return k->size == 5 ? 0 : writing_cb(k, v, ctx);
}

static void test_scan_with_writes(void **state)
{
    (void)state;
    /* reverse or not; the nodes under the scan written by the same
     * transaction (clones) or committed before (frozen, shared) */
    for (int variant = 0; variant < 4; variant++) {
        int reverse = variant & 1, committed = variant >> 1;
        char name[32];
        snprintf(name, sizeof name, "scanw-%d", variant);
        const char *dir = tu_tmpdir(name);
        sop_db *db = NULL;
        assert_int_equal(sop_db_open(dir, NULL, &db), SOP_OK);
        sop_txn *t;
        sop_store *st;
        assert_int_equal(sop_txn_begin(db, SOP_TXN_WRITE, 0, &t), SOP_OK);
        assert_int_equal(sop_store_create(t, "s", NULL, &st), SOP_OK);
        for (int i = 0; i < 400; i++) {
            char buf[8];
            snprintf(buf, sizeof buf, "k%03d", i);
            sop_val k = {buf, 4}, v = {buf, 4};
            assert_int_equal(sop_add(st, &k, &v), SOP_OK);
        }
        if (committed) { /* reopened: nodes are decoded from their images */
            assert_int_equal(sop_txn_commit(t), SOP_OK);
            assert_int_equal(sop_db_close(db), SOP_OK);
            assert_int_equal(sop_db_open(dir, NULL, &db), SOP_OK);
            assert_int_equal(sop_txn_begin(db, SOP_TXN_WRITE, 0, &t), SOP_OK);
            assert_int_equal(sop_store_open(t, "s", &st), SOP_OK);
        }
        wscan w = {.s = st, .last = -1, .order_ok = 1, .reverse = reverse};
        sop_range r;
        memset(&r, 0, sizeof r);
        r.reverse = reverse;
        assert_int_equal(sop_scan(st, &r, skip_z, &w), SOP_OK);
        assert_true(w.order_ok);
        for (int i = 0; i < 400; i++)
            assert_int_equal(w.seen[i], 1);
        uint64_t n = 0;
        assert_int_equal(sop_store_count(st, &n), SOP_OK);
        /* i%3 == 1 removed, i%7 == 0 inserted, for 10 <= i < 390 */
        int removed = 0, added = 0;
        for (int i = 10; i < 390; i++) {
            removed += i % 3 == 1;
            added += i % 7 == 0;
        }
        assert_int_equal(n, 400 - removed + added);
        assert_int_equal(sop_txn_commit(t), SOP_OK);
        uint64_t problems = 1;
        assert_int_equal(sop_db_check(db, NULL, NULL, &problems), SOP_OK);
        assert_int_equal(problems, 0);
        assert_int_equal(sop_db_close(db), SOP_OK);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_readonly_txn),   cmocka_unit_test(test_store_names),
        cmocka_unit_test(test_too_big),        cmocka_unit_test(test_int64_key_size),
        cmocka_unit_test(test_store_lifecycle), cmocka_unit_test(test_cursor_contract),
        cmocka_unit_test(test_conflicts),       cmocka_unit_test(test_nocheck_write_conflict),
        cmocka_unit_test(test_read_only_write_txn), cmocka_unit_test(test_dup_read_validated),
        cmocka_unit_test(test_nocheck_failed_write), cmocka_unit_test(test_timeout_and_busy),
        cmocka_unit_test(test_big_value),       cmocka_unit_test(test_model_random),
        cmocka_unit_test(test_model_pairs),     cmocka_unit_test(test_scan_with_writes),
    };
    const char *filter = getenv("SOP_TEST_FILTER"); /* e.g. "test_model_*" */
    if (filter && *filter)
        cmocka_set_test_filter(filter);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
