/*
 * anomalies.c - named isolation anomalies, deterministic (reliability plan
 * C6.2).
 *
 * Each test interleaves two (or more) transactions in one thread: begin T1,
 * begin T2, interleave their calls, commit in a chosen order, and asserts
 * what sop.h promises:
 *  - SOP_TXN_WRITE is serializable: every key, range and count read is
 *    validated at commit; a concurrent change to any of them makes the
 *    commit fail with SOP_ECONFLICT (lost update, write skew, phantoms,
 *    duplicate inserts all abort);
 *  - SOP_TXN_READ is a consistent snapshot as of sop_txn_begin() (no dirty,
 *    non-repeatable or skewed reads; old versions survive later splits,
 *    merges, blob rewrites, store removal and checkpoints);
 *  - SOP_TXN_NOCHECK validates its writes item by item but not its reads
 *    (lost update aborts; write skew is allowed and documented as such).
 * Controls check the harness is not vacuous: transactions that touch
 * disjoint data must both commit.
 *
 * Every test runs on a fresh database; teardown requires sop_db_check() to
 * be clean (no ids leaked by aborted or conflicting transactions).
 *
 * Stores of the fixture: "s" (x=1, z=1, alice=1, k10 k20 k30 k40, a1, z1)
 * and "t" (bob=1, w=0); values are 8-byte int64.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sop/sop.h"
#include "testutil.h"

#define ABSENT INT64_MIN

typedef struct fx {
    sop_db *db;
    const char *path;
} fx;

/* ------------------------------------------------------------------ */
/* Helpers (each asserts success)                                     */
/* ------------------------------------------------------------------ */

static void ok(sop_db *db, int rc, const char *what)
{
    if (rc != 0)
        fail_msg("%s: %s [%s]", what, sop_err_name(rc), db ? sop_db_errmsg(db) : "");
}

static sop_txn *begin(fx *f, sop_txn_mode m)
{
    sop_txn *t = NULL;
    ok(f->db, sop_txn_begin(f->db, m, 0, &t), "sop_txn_begin");
    return t;
}

static sop_store *st(fx *f, sop_txn *t, const char *name)
{
    sop_store *s = NULL;
    ok(f->db, sop_store_open(t, name, &s), name);
    return s;
}

static sop_val kv(const char *k) { return (sop_val){k, strlen(k)}; }

static void put(fx *f, sop_store *s, const char *k, int64_t v)
{
    sop_val key = kv(k), val = {&v, 8};
    ok(f->db, sop_upsert(s, &key, &val), k);
}

static void add(fx *f, sop_store *s, const char *k, int64_t v)
{
    sop_val key = kv(k), val = {&v, 8};
    ok(f->db, sop_add(s, &key, &val), k);
}

static void del(fx *f, sop_store *s, const char *k)
{
    sop_val key = kv(k);
    ok(f->db, sop_remove(s, &key), k);
}

static int64_t get(fx *f, sop_store *s, const char *k)
{
    sop_val key = kv(k), v;
    int rc = sop_get(s, &key, &v);
    if (rc == SOP_ENOTFOUND)
        return ABSENT;
    ok(f->db, rc, k);
    assert_int_equal(v.size, 8);
    int64_t x;
    memcpy(&x, v.data, 8);
    return x;
}

static uint64_t count(fx *f, sop_store *s)
{
    uint64_t n = 0;
    ok(f->db, sop_store_count(s, &n), "sop_store_count");
    return n;
}

typedef struct scan_acc {
    uint64_t n;
    int64_t sum;
} scan_acc;

static int scan_fn(const sop_val *k, const sop_val *v, void *ctx)
{
    (void)k;
    scan_acc *a = ctx;
    int64_t x = 0;
    if (v->size == 8)
        memcpy(&x, v->data, 8);
    a->n++;
    a->sum += x;
    return 0;
}

/* Items in [from, to) (NULL: open), forwards. */
static scan_acc scan(fx *f, sop_store *s, const char *from, const char *to)
{
    sop_val a = from ? kv(from) : (sop_val){0}, b = to ? kv(to) : (sop_val){0};
    sop_range r = {0};
    r.from = from ? &a : NULL;
    r.to = to ? &b : NULL;
    r.to_exclusive = 1;
    scan_acc acc = {0};
    ok(f->db, sop_scan(s, &r, scan_fn, &acc), "sop_scan");
    return acc;
}

static int commit(sop_txn *t) { return sop_txn_commit(t); }

/* Value of @k in store @name in a fresh READ transaction. */
static int64_t now(fx *f, const char *name, const char *k)
{
    sop_txn *t = begin(f, SOP_TXN_READ);
    int64_t v = get(f, st(f, t, name), k);
    sop_txn_rollback(t);
    return v;
}

static uint64_t count_now(fx *f, const char *name)
{
    sop_txn *t = begin(f, SOP_TXN_READ);
    uint64_t n = count(f, st(f, t, name));
    sop_txn_rollback(t);
    return n;
}

#define assert_conflict(rc) chk_rc_((rc), SOP_ECONFLICT, __FILE__, __LINE__)
#define assert_ok(rc) chk_rc_((rc), 0, __FILE__, __LINE__)

static void chk_rc_(int rc, int want, const char *file, int line)
{
    if (rc != want)
        fail_msg("%s:%d: got %s, expected %s", file, line, sop_err_name(rc), sop_err_name(want));
}

static const char *mode_name(sop_txn_mode m)
{
    return m == SOP_TXN_READ ? "READ" : m == SOP_TXN_WRITE ? "WRITE" : "NOCHECK";
}

/* ------------------------------------------------------------------ */
/* Fixture                                                            */
/* ------------------------------------------------------------------ */

static int g_case;

static int fx_open(void **state, sop_sync_mode sync)
{
    fx *f = calloc(1, sizeof *f);
    assert_non_null(f);
    char name[32];
    snprintf(name, sizeof name, "anom/%d", ++g_case);
    f->path = tu_tmpdir(name);
    sop_db_options o;
    sop_db_options_init(&o);
    o.sync = sync;
    int rc = sop_db_open(f->path, &o, &f->db);
    if (rc) {
        fprintf(stderr, "open %s: %s [%s]\n", f->path, sop_err_name(rc), sop_db_errmsg(f->db));
        sop_db_close(f->db);
        free(f);
        return -1;
    }
    sop_txn *t = begin(f, SOP_TXN_WRITE);
    sop_store *s, *u;
    ok(f->db, sop_store_create(t, "s", NULL, &s), "create s");
    ok(f->db, sop_store_create(t, "t", NULL, &u), "create t");
    add(f, s, "x", 1);
    add(f, s, "z", 1);
    add(f, s, "alice", 1);
    add(f, s, "k10", 10);
    add(f, s, "k20", 20);
    add(f, s, "k30", 30);
    add(f, s, "k40", 40);
    add(f, s, "a1", 0);
    add(f, s, "z1", 0);
    add(f, u, "bob", 1);
    add(f, u, "w", 0);
    ok(f->db, commit(t), "fixture commit");
    *state = f;
    return 0;
}

static int setup(void **state) { return fx_open(state, SOP_SYNC_FULL); }
static int setup_nosync(void **state) { return fx_open(state, SOP_SYNC_NONE); }

static void check_problem(const char *p, void *ctx)
{
    (void)ctx;
    fprintf(stderr, "  check: %s\n", p);
}

static int teardown(void **state)
{
    fx *f = *state;
    int bad = 0;
    uint64_t problems = 0;
    int rc = sop_db_check(f->db, check_problem, NULL, &problems);
    if (rc || problems) {
        fprintf(stderr, "sop_db_check after the test: %s, %" PRIu64 " problems\n",
                sop_err_name(rc), problems);
        bad = 1;
    }
    rc = sop_db_close(f->db);
    if (rc) {
        fprintf(stderr, "sop_db_close: %s\n", sop_err_name(rc));
        bad = 1;
    }
    free(f);
    return bad ? -1 : 0;
}

/* ------------------------------------------------------------------ */
/* Lost update                                                        */
/* ------------------------------------------------------------------ */

/* T1 and T2 both read x and write x + 1; the second commit must fail. */
static void lost_update(fx *f, sop_txn_mode m1, sop_txn_mode m2, int t1_first)
{
    sop_txn *t1 = begin(f, m1), *t2 = begin(f, m2);
    sop_store *s1 = st(f, t1, "s"), *s2 = st(f, t2, "s");
    int64_t v1 = get(f, s1, "x"), v2 = get(f, s2, "x");
    assert_int_equal(v1, 1);
    assert_int_equal(v2, 1);
    put(f, s1, "x", v1 + 1);
    put(f, s2, "x", v2 + 1);
    if (t1_first) {
        assert_ok(commit(t1));
        assert_conflict(commit(t2));
    } else {
        assert_ok(commit(t2));
        assert_conflict(commit(t1));
    }
    assert_int_equal(now(f, "s", "x"), 2);
    /* the retry sees the first increment */
    sop_txn *t3 = begin(f, m2);
    sop_store *s3 = st(f, t3, "s");
    put(f, s3, "x", get(f, s3, "x") + 1);
    assert_ok(commit(t3));
    assert_int_equal(now(f, "s", "x"), 3);
}

static void test_lost_update_write(void **state)
{
    lost_update(*state, SOP_TXN_WRITE, SOP_TXN_WRITE, 1);
}
static void test_lost_update_write_t2_first(void **state)
{
    lost_update(*state, SOP_TXN_WRITE, SOP_TXN_WRITE, 0);
}
static void test_lost_update_nocheck(void **state)
{
    lost_update(*state, SOP_TXN_NOCHECK, SOP_TXN_NOCHECK, 1);
}
static void test_lost_update_write_vs_nocheck(void **state)
{
    lost_update(*state, SOP_TXN_WRITE, SOP_TXN_NOCHECK, 1);
}
static void test_lost_update_nocheck_vs_write(void **state)
{
    lost_update(*state, SOP_TXN_WRITE, SOP_TXN_NOCHECK, 0);
}

/* A blind NOCHECK write of x (no read) after T2 changed x: writes are
 * validated item by item, so it must fail. */
static void test_nocheck_blind_write_validated(void **state)
{
    fx *f = *state;
    sop_txn *t1 = begin(f, SOP_TXN_NOCHECK), *t2 = begin(f, SOP_TXN_WRITE);
    put(f, st(f, t2, "s"), "x", 7);
    assert_ok(commit(t2));
    put(f, st(f, t1, "s"), "x", 5);
    assert_conflict(commit(t1));
    assert_int_equal(now(f, "s", "x"), 7);
}

/* Control: increments of different keys in different stores both commit. */
static void test_lost_update_control(void **state)
{
    fx *f = *state;
    sop_txn *t1 = begin(f, SOP_TXN_WRITE), *t2 = begin(f, SOP_TXN_WRITE);
    sop_store *s1 = st(f, t1, "s"), *s2 = st(f, t2, "t");
    put(f, s1, "x", get(f, s1, "x") + 1);
    put(f, s2, "bob", get(f, s2, "bob") + 1);
    assert_ok(commit(t1));
    assert_ok(commit(t2));
    assert_int_equal(now(f, "s", "x"), 2);
    assert_int_equal(now(f, "t", "bob"), 2);
}

/* ------------------------------------------------------------------ */
/* Write skew: two doctors on call, at least one must stay            */
/* ------------------------------------------------------------------ */

/* alice is in store @sa, bob in store @sb; each transaction reads both and
 * takes its own doctor off call when the other is on. */
static int write_skew(fx *f, sop_txn_mode m1, sop_txn_mode m2, const char *sa, const char *sb,
                      int t1_first, int *rc1, int *rc2)
{
    sop_txn *t1 = begin(f, m1), *t2 = begin(f, m2);
    sop_store *a1 = st(f, t1, sa), *b1 = st(f, t1, sb);
    sop_store *a2 = st(f, t2, sa), *b2 = st(f, t2, sb);
    int64_t A1 = get(f, a1, "alice"), B1 = get(f, b1, "bob");
    int64_t A2 = get(f, a2, "alice"), B2 = get(f, b2, "bob");
    assert_int_equal(A1 + B1, 2);
    assert_int_equal(A2 + B2, 2);
    put(f, a1, "alice", 0); /* T1: alice goes off call (bob is on) */
    put(f, b2, "bob", 0);   /* T2: bob goes off call (alice is on) */
    if (t1_first) {
        *rc1 = commit(t1);
        *rc2 = commit(t2);
    } else {
        *rc2 = commit(t2);
        *rc1 = commit(t1);
    }
    return (int)(now(f, sa, "alice") + now(f, sb, "bob"));
}

static void move_bob_to(fx *f, const char *store)
{
    if (!strcmp(store, "t"))
        return;
    sop_txn *t = begin(f, SOP_TXN_WRITE);
    del(f, st(f, t, "t"), "bob");
    add(f, st(f, t, store), "bob", 1);
    assert_ok(commit(t));
}

static void test_write_skew_two_stores(void **state)
{
    fx *f = *state;
    int rc1, rc2;
    /* alice in "s", bob in "t": the two writes touch disjoint nodes, only
     * read validation can catch it */
    int on_call = write_skew(f, SOP_TXN_WRITE, SOP_TXN_WRITE, "s", "t", 1, &rc1, &rc2);
    assert_ok(rc1);
    assert_conflict(rc2);
    assert_int_equal(on_call, 1);
}

static void test_write_skew_two_stores_t2_first(void **state)
{
    fx *f = *state;
    int rc1, rc2;
    int on_call = write_skew(f, SOP_TXN_WRITE, SOP_TXN_WRITE, "s", "t", 0, &rc1, &rc2);
    assert_ok(rc2);
    assert_conflict(rc1);
    assert_int_equal(on_call, 1);
}

static void test_write_skew_same_store(void **state)
{
    fx *f = *state;
    int rc1, rc2;
    move_bob_to(f, "s");
    int on_call = write_skew(f, SOP_TXN_WRITE, SOP_TXN_WRITE, "s", "s", 1, &rc1, &rc2);
    assert_ok(rc1);
    assert_conflict(rc2);
    assert_int_equal(on_call, 1);
}

/* T2 (NOCHECK) commits first; T1 (WRITE) read bob, which T2 changed. */
static void test_write_skew_nocheck_then_write(void **state)
{
    fx *f = *state;
    int rc1, rc2;
    int on_call = write_skew(f, SOP_TXN_WRITE, SOP_TXN_NOCHECK, "s", "t", 0, &rc1, &rc2);
    assert_ok(rc2);
    assert_conflict(rc1);
    assert_int_equal(on_call, 1);
}

/* Documented weaker guarantee: NOCHECK does not validate its reads, so two
 * NOCHECK doctors on disjoint nodes both go off call. */
static void test_write_skew_nocheck_allowed(void **state)
{
    fx *f = *state;
    int rc1, rc2;
    int on_call = write_skew(f, SOP_TXN_NOCHECK, SOP_TXN_NOCHECK, "s", "t", 1, &rc1, &rc2);
    assert_ok(rc1);
    assert_ok(rc2);
    assert_int_equal(on_call, 0);
}

/* ------------------------------------------------------------------ */
/* Phantoms                                                           */
/* ------------------------------------------------------------------ */

/* T1 reads something of "s" (@read), T2 runs @change on "s" and commits,
 * T1 writes only to store "t" and commits: must be SOP_ECONFLICT. */
typedef void (*step_fn)(fx *f, sop_store *s);

static int phantom(fx *f, step_fn read, step_fn change)
{
    sop_txn *t1 = begin(f, SOP_TXN_WRITE), *t2 = begin(f, SOP_TXN_WRITE);
    read(f, st(f, t1, "s"));
    change(f, st(f, t2, "s"));
    assert_ok(commit(t2));
    put(f, st(f, t1, "t"), "w", 1);
    return commit(t1);
}

static void rd_range(fx *f, sop_store *s)
{
    scan_acc a = scan(f, s, "k10", "k40");
    assert_int_equal(a.n, 3);
}
static void rd_empty_range(fx *f, sop_store *s)
{
    assert_int_equal(scan(f, s, "m0", "m9").n, 0);
}
static void rd_count(fx *f, sop_store *s) { assert_int_equal(count(f, s), 9); }
static void rd_missing(fx *f, sop_store *s) { assert_true(get(f, s, "k25") == ABSENT); }
static void rd_cursor(fx *f, sop_store *s)
{
    sop_cursor *c;
    sop_val k = kv("k10"), got;
    ok(f->db, sop_cursor_open(s, &c), "cursor");
    ok(f->db, sop_cursor_find(c, &k, SOP_FIND_GE), "find");
    ok(f->db, sop_cursor_next(c), "next");
    ok(f->db, sop_cursor_key(c, &got), "key");
    assert_int_equal(got.size, 3);
    assert_memory_equal(got.data, "k20", 3); /* k10 -> k20: nothing in between */
    sop_cursor_close(c);
}
static void rd_cursor_le(fx *f, sop_store *s)
{
    sop_cursor *c;
    sop_val k = kv("k29"), got;
    ok(f->db, sop_cursor_open(s, &c), "cursor");
    ok(f->db, sop_cursor_find(c, &k, SOP_FIND_LE), "find LE");
    ok(f->db, sop_cursor_key(c, &got), "key");
    assert_memory_equal(got.data, "k20", 3); /* the last key <= k29 */
    sop_cursor_close(c);
}

static void ch_insert_k25(fx *f, sop_store *s) { add(f, s, "k25", 25); }
static void ch_insert_m5(fx *f, sop_store *s) { add(f, s, "m5", 5); }
static void ch_remove_k20(fx *f, sop_store *s) { del(f, s, "k20"); }
static void ch_update_k20(fx *f, sop_store *s) { put(f, s, "k20", 21); }
static void ch_insert_zz(fx *f, sop_store *s) { add(f, s, "zz", 1); }
static void ch_update_a1(fx *f, sop_store *s) { put(f, s, "a1", 5); }
static void ch_insert_k15(fx *f, sop_store *s) { add(f, s, "k15", 15); }

static void test_phantom_insert_in_range(void **state)
{
    assert_conflict(phantom(*state, rd_range, ch_insert_k25));
}
static void test_phantom_insert_in_empty_range(void **state)
{
    assert_conflict(phantom(*state, rd_empty_range, ch_insert_m5));
}
static void test_phantom_remove_in_range(void **state)
{
    assert_conflict(phantom(*state, rd_range, ch_remove_k20));
}
static void test_phantom_update_in_range(void **state)
{
    assert_conflict(phantom(*state, rd_range, ch_update_k20));
}
static void test_phantom_count(void **state)
{
    assert_conflict(phantom(*state, rd_count, ch_insert_zz));
}
static void test_phantom_missing_key(void **state)
{
    assert_conflict(phantom(*state, rd_missing, ch_insert_k25));
}
static void test_phantom_cursor_next(void **state)
{
    assert_conflict(phantom(*state, rd_cursor, ch_insert_k15));
}
static void test_phantom_cursor_le(void **state)
{
    assert_conflict(phantom(*state, rd_cursor_le, ch_insert_k25));
}

/* Controls: a count is not changed by an update; a change in another store
 * does not touch what T1 read. */
static void test_count_control(void **state)
{
    assert_ok(phantom(*state, rd_count, ch_update_a1));
}

static void test_phantom_control(void **state)
{
    fx *f = *state;
    sop_txn *t0 = begin(f, SOP_TXN_WRITE);
    sop_store *u;
    ok(f->db, sop_store_create(t0, "u", NULL, &u), "create u");
    assert_ok(commit(t0));
    sop_txn *t1 = begin(f, SOP_TXN_WRITE), *t2 = begin(f, SOP_TXN_WRITE);
    rd_range(f, st(f, t1, "s"));
    add(f, st(f, t2, "u"), "k25", 25);
    assert_ok(commit(t2));
    put(f, st(f, t1, "t"), "w", 1);
    assert_ok(commit(t1));
}

/* Boundary sweep over a store of many leaves: for every position, a range
 * that ends (or starts) right there, a limited scan, and a missing-key
 * lookup, each against an insert (or removal) that changes its result. */
#define SW_N 400

static void sw_key(int i, char out[16]) { snprintf(out, 16, "k%05d", i); }

static int sw_scan_fn(const sop_val *k, const sop_val *v, void *ctx)
{
    (void)k;
    (void)v;
    (*(uint64_t *)ctx)++;
    return 0;
}

static void test_phantom_sweep(void **state)
{
    fx *f = *state;
    sop_store_options o;
    sop_store_options_init(&o);
    o.node_bytes = 1024;
    sop_txn *t0 = begin(f, SOP_TXN_WRITE);
    sop_store *p;
    ok(f->db, sop_store_create(t0, "p", &o, &p), "create p");
    uint8_t big[40];
    memset(big, 0xab, sizeof big);
    for (int i = 0; i < SW_N; i++) {
        char k[16];
        sw_key(i * 10, k);
        sop_val key = kv(k), val = {big, sizeof big};
        ok(f->db, sop_add(p, &key, &val), "fill");
    }
    assert_ok(commit(t0));

    int missed = 0, cases = 0;
    for (int j = 4; j < SW_N; j++) {
        for (int variant = 0; variant < 5; variant++) {
            char from[16], to[16], ins[16];
            sop_val fk, tk;
            sop_range r = {0};
            uint64_t expect = 0, n = 0;
            int removal = 0;
            switch (variant) {
            case 0: /* [k(j-3), k(j)) ; insert just below k(j) */
                sw_key((j - 3) * 10, from), sw_key(j * 10, to), sw_key(j * 10 - 1, ins);
                r.to_exclusive = 1;
                expect = 3;
                break;
            case 1: /* (k(j-3), k(j)] ; insert just above k(j-3) */
                sw_key((j - 3) * 10, from), sw_key(j * 10, to), sw_key((j - 3) * 10 + 1, ins);
                r.from_exclusive = 1;
                expect = 3;
                break;
            case 2: /* reverse [k(j-3), k(j)] ; insert just above k(j-3) */
                sw_key((j - 3) * 10, from), sw_key(j * 10, to), sw_key((j - 3) * 10 + 1, ins);
                r.reverse = 1;
                expect = 4;
                break;
            case 3: /* from k(j-3), limit 3 ; insert before the 3rd item */
                sw_key((j - 3) * 10, from), sw_key(SW_N * 10, to), sw_key((j - 1) * 10 - 1, ins);
                r.limit = 3;
                expect = 3;
                break;
            default: /* [k(j-1), k(j)) ; remove k(j-1) */
                sw_key((j - 1) * 10, from), sw_key(j * 10, to), sw_key((j - 1) * 10, ins);
                r.to_exclusive = 1;
                expect = 1;
                removal = 1;
                break;
            }
            fk = kv(from);
            tk = kv(to);
            r.from = &fk;
            r.to = &tk;
            sop_txn *t1 = begin(f, SOP_TXN_WRITE), *t2 = begin(f, SOP_TXN_WRITE);
            ok(f->db, sop_scan(st(f, t1, "p"), &r, sw_scan_fn, &n), "sweep scan");
            if (n != expect)
                fail_msg("case %d/%d: scan found %" PRIu64 " items, expected %" PRIu64, j,
                         variant, n, expect);
            sop_store *p2 = st(f, t2, "p");
            sop_val ik = kv(ins), iv = {big, sizeof big};
            if (removal)
                ok(f->db, sop_remove(p2, &ik), "sweep remove");
            else
                ok(f->db, sop_add(p2, &ik, &iv), "sweep insert");
            assert_ok(commit(t2));
            put(f, st(f, t1, "t"), "w", j);
            int rc = commit(t1);
            cases++;
            if (rc != SOP_ECONFLICT) {
                missed++;
                fprintf(stderr, "sweep: scan case %d variant %d: %s (expected SOP_ECONFLICT)\n", j,
                        variant, sop_err_name(rc));
            }
            /* restore */
            sop_txn *t3 = begin(f, SOP_TXN_WRITE);
            sop_store *p3 = st(f, t3, "p");
            if (removal)
                ok(f->db, sop_add(p3, &ik, &iv), "restore");
            else
                ok(f->db, sop_remove(p3, &ik), "restore");
            assert_ok(commit(t3));
        }
        /* a lookup of a missing key, then that key is inserted */
        char miss[16];
        sw_key(j * 10 + 5, miss);
        sop_txn *t1 = begin(f, SOP_TXN_WRITE), *t2 = begin(f, SOP_TXN_WRITE);
        sop_val mk = kv(miss), mv = {big, sizeof big}, got;
        assert_int_equal(sop_get(st(f, t1, "p"), &mk, &got), SOP_ENOTFOUND);
        ok(f->db, sop_add(st(f, t2, "p"), &mk, &mv), "insert missing");
        assert_ok(commit(t2));
        put(f, st(f, t1, "t"), "w", j);
        int rc = commit(t1);
        cases++;
        if (rc != SOP_ECONFLICT) {
            missed++;
            fprintf(stderr, "sweep: missing key %s: %s (expected SOP_ECONFLICT)\n", miss,
                    sop_err_name(rc));
        }
        sop_txn *t3 = begin(f, SOP_TXN_WRITE);
        ok(f->db, sop_remove(st(f, t3, "p"), &mk), "restore");
        assert_ok(commit(t3));
    }
    if (missed)
        fail_msg("phantom sweep: %d of %d cases committed", missed, cases);
    assert_int_equal(count_now(f, "p"), SW_N);
}

/* ------------------------------------------------------------------ */
/* Duplicate inserts and store races                                  */
/* ------------------------------------------------------------------ */

static void test_duplicate_insert(void **state)
{
    fx *f = *state;
    for (int v = 0; v < 2; v++) {
        const char *k = v ? "dup2" : "dup1";
        sop_txn *t1 = begin(f, SOP_TXN_WRITE), *t2 = begin(f, v ? SOP_TXN_NOCHECK : SOP_TXN_WRITE);
        sop_store *s1 = st(f, t1, "s"), *s2 = st(f, t2, "s");
        int64_t one = 1, two = 2;
        sop_val key = kv(k), v1 = {&one, 8}, v2 = {&two, 8};
        ok(f->db, v ? sop_add_if_absent(s1, &key, &v1) : sop_add(s1, &key, &v1), "add T1");
        ok(f->db, v ? sop_add_if_absent(s2, &key, &v2) : sop_add(s2, &key, &v2), "add T2");
        assert_ok(commit(t1));
        assert_conflict(commit(t2));
        assert_int_equal(now(f, "s", k), 1);
    }
    sop_txn *t = begin(f, SOP_TXN_READ);
    sop_store *s = st(f, t, "s");
    scan_acc a = scan(f, s, "dup", "dupz");
    assert_int_equal(a.n, 2);
    assert_int_equal(count(f, s), 11);
    sop_txn_rollback(t);
}

static int list_fn(const char *name, void *ctx)
{
    if (!strcmp(name, "n"))
        (*(int *)ctx)++;
    return 0;
}

static void test_store_create_race(void **state)
{
    fx *f = *state;
    sop_txn *t1 = begin(f, SOP_TXN_WRITE), *t2 = begin(f, SOP_TXN_WRITE);
    sop_store *n1, *n2;
    ok(f->db, sop_store_create(t1, "n", NULL, &n1), "create n in T1");
    ok(f->db, sop_store_create(t2, "n", NULL, &n2), "create n in T2");
    add(f, n1, "from", 1);
    add(f, n2, "from", 2);
    assert_ok(commit(t1));
    assert_conflict(commit(t2));
    int seen = 0;
    sop_txn *t = begin(f, SOP_TXN_READ);
    ok(f->db, sop_store_list(t, list_fn, &seen), "list");
    sop_txn_rollback(t);
    assert_int_equal(seen, 1);
    assert_int_equal(now(f, "n", "from"), 1);
}

/* T1 writes into "t" while T2 removes "t": whoever commits second fails or
 * the outcome is serial; nothing leaks (teardown checks). */
static void test_store_remove_vs_write(void **state)
{
    fx *f = *state;
    sop_txn *t1 = begin(f, SOP_TXN_WRITE), *t2 = begin(f, SOP_TXN_WRITE);
    put(f, st(f, t1, "t"), "w", 5);
    ok(f->db, sop_store_remove(t2, "t"), "remove t");
    assert_ok(commit(t2));
    assert_conflict(commit(t1));
    sop_txn *t = begin(f, SOP_TXN_READ);
    sop_store *s;
    assert_int_equal(sop_store_open(t, "t", &s), SOP_ENOTFOUND);
    sop_txn_rollback(t);
}

static void test_store_write_vs_remove(void **state)
{
    fx *f = *state;
    sop_txn *t1 = begin(f, SOP_TXN_WRITE), *t2 = begin(f, SOP_TXN_WRITE);
    put(f, st(f, t1, "t"), "w", 5);
    ok(f->db, sop_store_remove(t2, "t"), "remove t");
    assert_ok(commit(t1));
    int rc = commit(t2);
    sop_txn *t = begin(f, SOP_TXN_READ);
    sop_store *s;
    int orc = sop_store_open(t, "t", &s);
    if (rc == 0) {
        assert_int_equal(orc, SOP_ENOTFOUND); /* serial: write, then removal */
    } else {
        assert_conflict(rc);
        ok(f->db, orc, "store t survives");
        assert_int_equal(get(f, s, "w"), 5);
    }
    sop_txn_rollback(t);
}

/* ------------------------------------------------------------------ */
/* Snapshots: dirty reads, aborted reads, non-repeatable reads, skew  */
/* ------------------------------------------------------------------ */

/* T2 never sees T1's uncommitted writes, in any mode, before or after T1
 * commits (T2's snapshot predates the commit). */
static void test_dirty_read(void **state)
{
    fx *f = *state;
    for (int m = 0; m < 3; m++) {
        sop_txn_mode mode = (sop_txn_mode)m;
        int64_t x0 = now(f, "s", "x");
        sop_txn *t1 = begin(f, SOP_TXN_WRITE);
        sop_store *s1 = st(f, t1, "s");
        put(f, s1, "x", x0 + 100);
        add(f, s1, "dirty", 1);
        del(f, s1, "z");
        /* T1 sees its own writes */
        assert_int_equal(get(f, s1, "x"), x0 + 100);
        assert_int_equal(get(f, s1, "dirty"), 1);
        assert_true(get(f, s1, "z") == ABSENT);
        assert_int_equal(count(f, s1), 9);

        sop_txn *t2 = begin(f, mode);
        sop_store *s2 = st(f, t2, "s");
        for (int phase = 0; phase < 2; phase++) {
            if (get(f, s2, "x") != x0 || get(f, s2, "dirty") != ABSENT || get(f, s2, "z") != 1)
                fail_msg("%s transaction saw T1's %s write", mode_name(mode),
                         phase ? "committed (after its snapshot)" : "uncommitted");
            assert_int_equal(count(f, s2), 9);
            assert_int_equal(scan(f, s2, NULL, NULL).n, 9);
            if (phase == 0)
                assert_ok(commit(t1));
        }
        sop_txn_rollback(t2);
        assert_int_equal(now(f, "s", "dirty"), 1);
        /* undo for the next mode */
        sop_txn *t3 = begin(f, SOP_TXN_WRITE);
        sop_store *s3 = st(f, t3, "s");
        del(f, s3, "dirty");
        add(f, s3, "z", 1);
        assert_ok(commit(t3));
    }
}

/* G1a: writes of a rolled-back transaction and of a transaction whose
 * commit failed are never seen. */
static void test_aborted_read(void **state)
{
    fx *f = *state;
    sop_txn *t1 = begin(f, SOP_TXN_WRITE);
    put(f, st(f, t1, "s"), "x", 99);
    add(f, st(f, t1, "s"), "ghost", 1);
    sop_txn_rollback(t1);
    assert_int_equal(now(f, "s", "x"), 1);
    assert_true(now(f, "s", "ghost") == ABSENT);

    sop_txn *t2 = begin(f, SOP_TXN_WRITE), *t0 = begin(f, SOP_TXN_WRITE);
    sop_store *s2 = st(f, t2, "s");
    put(f, s2, "x", get(f, s2, "x") + 97);
    add(f, s2, "ghost", 2);
    put(f, st(f, t0, "s"), "x", 3);
    assert_ok(commit(t0));
    assert_conflict(commit(t2));
    assert_int_equal(now(f, "s", "x"), 3);
    assert_true(now(f, "s", "ghost") == ABSENT);
    assert_int_equal(count_now(f, "s"), 9);
}

/* A transaction re-reads x after a concurrent commit changed it: same value
 * through every read path. */
static void nonrepeatable(fx *f, sop_txn_mode mode)
{
    sop_txn *r = begin(f, mode);
    sop_store *s = st(f, r, "s");
    assert_int_equal(get(f, s, "x"), 1);
    sop_txn *w = begin(f, SOP_TXN_WRITE);
    put(f, st(f, w, "s"), "x", 2);
    assert_ok(commit(w));
    assert_int_equal(get(f, s, "x"), 1);
    int64_t c = 0;
    size_t len = 0;
    sop_val key = kv("x");
    ok(f->db, sop_get_copy(s, &key, &c, 8, &len), "get_copy");
    assert_int_equal(c, 1);
    sop_cursor *cur;
    sop_val v;
    ok(f->db, sop_cursor_open(s, &cur), "cursor");
    ok(f->db, sop_cursor_find(cur, &key, SOP_FIND_EXACT), "find");
    ok(f->db, sop_cursor_get(cur, NULL, &v), "cursor get");
    memcpy(&c, v.data, 8);
    assert_int_equal(c, 1);
    sop_cursor_close(cur);
    assert_int_equal(scan(f, s, "x", "x\x01").sum, 1);
    sop_txn_rollback(r);
    assert_int_equal(now(f, "s", "x"), 2);
}

static void test_nonrepeatable_read_read(void **state) { nonrepeatable(*state, SOP_TXN_READ); }
static void test_nonrepeatable_read_write(void **state) { nonrepeatable(*state, SOP_TXN_WRITE); }
static void test_nonrepeatable_read_nocheck(void **state)
{
    nonrepeatable(*state, SOP_TXN_NOCHECK);
}

/* Read skew: x (in "s") + bob (in "t") = 2; T2 moves 1 from x to bob
 * between T1's two reads; T1 must still see a sum of 2. A WRITE T1 that
 * then writes must fail. */
static void read_skew(fx *f, sop_txn_mode mode)
{
    /* T1's write goes to a store T2 does not touch */
    sop_txn *t0 = begin(f, SOP_TXN_WRITE);
    sop_store *u;
    ok(f->db, sop_store_create(t0, "u", NULL, &u), "create u");
    assert_ok(commit(t0));
    sop_txn *r = begin(f, mode);
    int64_t x = get(f, st(f, r, "s"), "x");
    sop_txn *w = begin(f, SOP_TXN_WRITE);
    sop_store *ws = st(f, w, "s"), *wt = st(f, w, "t");
    put(f, ws, "x", get(f, ws, "x") - 1);
    put(f, wt, "bob", get(f, wt, "bob") + 1);
    assert_ok(commit(w));
    int64_t b = get(f, st(f, r, "t"), "bob");
    if (x + b != 2)
        fail_msg("%s transaction saw x=%" PRId64 " bob=%" PRId64 ": read skew", mode_name(mode), x,
                 b);
    if (mode == SOP_TXN_READ) {
        assert_ok(commit(r));
        return;
    }
    put(f, st(f, r, "u"), "sum", x + b);
    if (mode == SOP_TXN_WRITE)
        assert_conflict(commit(r));
    else
        assert_ok(commit(r)); /* NOCHECK: reads are not validated */
}

static void test_read_skew_read(void **state) { read_skew(*state, SOP_TXN_READ); }
static void test_read_skew_write(void **state) { read_skew(*state, SOP_TXN_WRITE); }
static void test_read_skew_nocheck(void **state) { read_skew(*state, SOP_TXN_NOCHECK); }

/* sop.h: under WRITE "every key ... the transaction read is validated at
 * commit; if another transaction committed a change to any of them after
 * this one began, commit fails with SOP_ECONFLICT" - also when the
 * transaction wrote nothing (a read-only check of a lease, a version). */
static void test_write_readonly_validated(void **state)
{
    fx *f = *state;
    sop_txn *r = begin(f, SOP_TXN_WRITE);
    assert_int_equal(get(f, st(f, r, "s"), "x"), 1);
    sop_txn *w = begin(f, SOP_TXN_WRITE);
    put(f, st(f, w, "s"), "x", 2);
    assert_ok(commit(w));
    int rc = commit(r);
    if (rc != SOP_ECONFLICT)
        fail_msg("a WRITE transaction that read x, which a later commit changed, committed with "
                 "%s (sop.h: every key read is validated at commit)",
                 sop_err_name(rc));
}

/* The snapshot is taken at begin, not at the first read. */
static void test_snapshot_at_begin(void **state)
{
    fx *f = *state;
    for (int m = 0; m < 3; m++) {
        sop_txn_mode mode = (sop_txn_mode)m;
        int64_t x0 = now(f, "s", "x");
        sop_txn *r = begin(f, mode);
        sop_txn *w = begin(f, SOP_TXN_WRITE);
        put(f, st(f, w, "s"), "x", x0 + 1);
        assert_ok(commit(w));
        int64_t got = get(f, st(f, r, "s"), "x");
        if (got != x0)
            fail_msg("%s transaction begun before a commit read its value (%" PRId64
                     " instead of %" PRId64 ")",
                     mode_name(mode), got, x0);
        sop_txn_rollback(r);
    }
}

/* Stores created or removed after a snapshot began. */
static void test_snapshot_stores(void **state)
{
    fx *f = *state;
    sop_txn *r = begin(f, SOP_TXN_READ);
    sop_txn *w = begin(f, SOP_TXN_WRITE);
    sop_store *u;
    ok(f->db, sop_store_remove(w, "t"), "remove t");
    ok(f->db, sop_store_create(w, "u", NULL, &u), "create u");
    add(f, u, "new", 1);
    assert_ok(commit(w));
    assert_int_equal(get(f, st(f, r, "t"), "bob"), 1);
    sop_store *s;
    assert_int_equal(sop_store_open(r, "u", &s), SOP_ENOTFOUND);
    sop_txn_rollback(r);
    sop_txn *r2 = begin(f, SOP_TXN_READ);
    assert_int_equal(sop_store_open(r2, "t", &s), SOP_ENOTFOUND);
    assert_int_equal(get(f, st(f, r2, "u"), "new"), 1);
    sop_txn_rollback(r2);
}

/* A long READ snapshot survives many later commits that split and merge
 * nodes, rewrite value blobs, reuse freed ids, and checkpoints; a second
 * snapshot taken half way sees exactly its own state. */
#define LS_KEYS 600
#define LS_VLEN 100 /* > inline_max 64: a blob each */

typedef struct model {
    uint32_t gen[LS_KEYS]; /* 0: absent */
} model;

static void ls_key(int i, char out[16]) { snprintf(out, 16, "q%04d", i); }

static void ls_val(int i, uint32_t gen, uint8_t v[LS_VLEN])
{
    memcpy(v, &gen, 4);
    for (int b = 4; b < LS_VLEN; b++)
        v[b] = (uint8_t)(i * 7 + (int)gen * 13 + b);
}

typedef struct ls_scan {
    const model *m;
    int next; /* expected key index cursor */
    int bad;
    uint64_t n;
} ls_scan;

static int ls_next_present(const model *m, int from)
{
    while (from < LS_KEYS && !m->gen[from])
        from++;
    return from;
}

static int ls_fn(const sop_val *k, const sop_val *v, void *ctx)
{
    ls_scan *s = ctx;
    int i = ls_next_present(s->m, s->next);
    char want[16];
    uint8_t wv[LS_VLEN];
    s->n++;
    if (i >= LS_KEYS) {
        s->bad++;
        return 0;
    }
    ls_key(i, want);
    ls_val(i, s->m->gen[i], wv);
    if (k->size != 5 || memcmp(k->data, want, 5) || v->size != LS_VLEN ||
        memcmp(v->data, wv, LS_VLEN))
        s->bad++;
    s->next = i + 1;
    return 0;
}

static void ls_verify(fx *f, sop_txn *r, const model *m, const char *who)
{
    sop_store *s = st(f, r, "q");
    ls_scan sc = {m, 0, 0, 0};
    sop_range all = {0};
    ok(f->db, sop_scan(s, &all, ls_fn, &sc), "scan q");
    uint64_t present = 0;
    for (int i = 0; i < LS_KEYS; i++)
        present += m->gen[i] != 0;
    if (sc.bad || sc.n != present || count(f, s) != present)
        fail_msg("%s: snapshot differs from its state: %d wrong items, %" PRIu64
                 " scanned, %" PRIu64 " expected, count %" PRIu64,
                 who, sc.bad, sc.n, present, count(f, s));
    for (int i = 0; i < LS_KEYS; i += 7) {
        char k[16];
        ls_key(i, k);
        sop_val key = kv(k), v;
        int rc = sop_get(s, &key, &v);
        uint8_t wv[LS_VLEN];
        if (!m->gen[i]) {
            if (rc != SOP_ENOTFOUND)
                fail_msg("%s: %s should be absent: %s", who, k, sop_err_name(rc));
            continue;
        }
        ok(f->db, rc, k);
        ls_val(i, m->gen[i], wv);
        if (v.size != LS_VLEN || memcmp(v.data, wv, LS_VLEN))
            fail_msg("%s: %s has a value of another version", who, k);
    }
}

static void test_snapshot_long(void **state)
{
    fx *f = *state;
    static model m0, m1, cur;
    memset(&cur, 0, sizeof cur);
    uint64_t rng = tu_seed();
    sop_store_options o;
    sop_store_options_init(&o);
    o.node_bytes = 1024;
    o.inline_max = 64;
    sop_txn *t = begin(f, SOP_TXN_WRITE);
    sop_store *q;
    ok(f->db, sop_store_create(t, "q", &o, &q), "create q");
    for (int i = 0; i < LS_KEYS; i += 2) {
        char k[16];
        uint8_t v[LS_VLEN];
        cur.gen[i] = 1;
        ls_key(i, k);
        ls_val(i, 1, v);
        sop_val key = kv(k), val = {v, LS_VLEN};
        ok(f->db, sop_add(q, &key, &val), "fill q");
    }
    assert_ok(commit(t));
    m0 = cur;
    sop_txn *r0 = begin(f, SOP_TXN_READ), *r1 = NULL;
    ls_verify(f, r0, &m0, "fresh snapshot");
    for (int c = 0; c < 60; c++) {
        t = begin(f, SOP_TXN_WRITE);
        q = st(f, t, "q");
        for (int op = 0; op < 25; op++) {
            /* phases: 0-19 grow, 20-39 churn, 40-59 shrink (merges) */
            int i = (int)tu_rand_below(&rng, LS_KEYS);
            char k[16];
            uint8_t v[LS_VLEN];
            ls_key(i, k);
            sop_val key = kv(k), val = {v, LS_VLEN};
            int shrink = c >= 40 || (c >= 20 && (op & 1));
            if (cur.gen[i] && shrink) {
                ok(f->db, sop_remove(q, &key), "remove q");
                cur.gen[i] = 0;
            } else if (!shrink || cur.gen[i]) {
                uint32_t g = cur.gen[i] + 1;
                ls_val(i, g, v);
                ok(f->db, sop_upsert(q, &key, &val), "upsert q");
                cur.gen[i] = g;
            }
        }
        assert_ok(commit(t));
        if (c % 10 == 9)
            ok(f->db, sop_db_checkpoint(f->db), "checkpoint");
        if (c == 29) {
            m1 = cur;
            r1 = begin(f, SOP_TXN_READ);
        }
        if (c % 20 == 0)
            ls_verify(f, r0, &m0, "old snapshot, during the commits");
    }
    ls_verify(f, r0, &m0, "old snapshot");
    ls_verify(f, r1, &m1, "middle snapshot");
    sop_txn_rollback(r0);
    sop_txn_rollback(r1);
    sop_txn *r2 = begin(f, SOP_TXN_READ);
    ls_verify(f, r2, &cur, "new snapshot");
    sop_txn_rollback(r2);
}

/* ------------------------------------------------------------------ */
/* Precision: disjoint writers both commit                            */
/* ------------------------------------------------------------------ */

static void test_disjoint_leaves_commit(void **state)
{
    fx *f = *state;
    sop_store_options o;
    sop_store_options_init(&o);
    o.node_bytes = 1024;
    sop_txn *t = begin(f, SOP_TXN_WRITE);
    sop_store *p;
    ok(f->db, sop_store_create(t, "p", &o, &p), "create p");
    uint8_t big[40] = {0};
    for (int i = 0; i < 200; i++) {
        char k[16];
        sw_key(i * 10, k);
        sop_val key = kv(k), val = {big, sizeof big};
        ok(f->db, sop_add(p, &key, &val), "fill");
    }
    assert_ok(commit(t));
    /* updates of the first and last keys (different leaves) */
    sop_txn *t1 = begin(f, SOP_TXN_WRITE), *t2 = begin(f, SOP_TXN_WRITE);
    put(f, st(f, t1, "p"), "k00000", 1);
    put(f, st(f, t2, "p"), "k01990", 2);
    assert_ok(commit(t1));
    assert_ok(commit(t2));
    /* inserts into different leaves: both commit, the counts merge */
    t1 = begin(f, SOP_TXN_WRITE);
    t2 = begin(f, SOP_TXN_WRITE);
    add(f, st(f, t1, "p"), "k00001", 1);
    add(f, st(f, t2, "p"), "k01991", 2);
    assert_ok(commit(t1));
    assert_ok(commit(t2));
    sop_txn *r = begin(f, SOP_TXN_READ);
    p = st(f, r, "p");
    assert_int_equal(count(f, p), 202);
    assert_int_equal(scan(f, p, NULL, NULL).n, 202);
    sop_txn_rollback(r);
}

/* sop.h: "Writes to the same B-tree nodes by transactions that touched
 * different items do not conflict". storage.md lists the item-level merge
 * as not built yet, so a conflict here is reported as skipped. */
static void test_same_leaf_different_items(void **state)
{
    fx *f = *state;
    sop_txn *t1 = begin(f, SOP_TXN_WRITE), *t2 = begin(f, SOP_TXN_WRITE);
    put(f, st(f, t1, "s"), "k10", 11);
    put(f, st(f, t2, "s"), "k40", 41);
    assert_ok(commit(t1));
    int rc = commit(t2);
    if (rc == SOP_ECONFLICT) {
        fprintf(stderr, "same_leaf_different_items: SOP_ECONFLICT - the item-level merge "
                        "promised by sop.h is not built yet (storage.md)\n");
        skip();
    }
    assert_ok(rc);
    assert_int_equal(now(f, "s", "k10"), 11);
    assert_int_equal(now(f, "s", "k40"), 41);
}

int main(void)
{
    tu_seed();
    const struct CMUnitTest tests[] = {
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
        T(test_lost_update_write),
        T(test_lost_update_write_t2_first),
        T(test_lost_update_nocheck),
        T(test_lost_update_write_vs_nocheck),
        T(test_lost_update_nocheck_vs_write),
        T(test_nocheck_blind_write_validated),
        T(test_lost_update_control),
        T(test_write_skew_two_stores),
        T(test_write_skew_two_stores_t2_first),
        T(test_write_skew_same_store),
        T(test_write_skew_nocheck_then_write),
        T(test_write_skew_nocheck_allowed),
        T(test_phantom_insert_in_range),
        T(test_phantom_insert_in_empty_range),
        T(test_phantom_remove_in_range),
        T(test_phantom_update_in_range),
        T(test_phantom_count),
        T(test_phantom_missing_key),
        T(test_phantom_cursor_next),
        T(test_phantom_cursor_le),
        T(test_count_control),
        T(test_phantom_control),
        cmocka_unit_test_setup_teardown(test_phantom_sweep, setup_nosync, teardown),
        T(test_duplicate_insert),
        T(test_store_create_race),
        T(test_store_remove_vs_write),
        T(test_store_write_vs_remove),
        T(test_dirty_read),
        T(test_aborted_read),
        T(test_nonrepeatable_read_read),
        T(test_nonrepeatable_read_write),
        T(test_nonrepeatable_read_nocheck),
        T(test_read_skew_read),
        T(test_read_skew_write),
        T(test_read_skew_nocheck),
        T(test_write_readonly_validated),
        T(test_snapshot_at_begin),
        T(test_snapshot_stores),
        T(test_snapshot_long),
        T(test_disjoint_leaves_commit),
        T(test_same_leaf_different_items),
#undef T
    };
    return cmocka_run_group_tests_name("anomalies", tests, NULL, NULL);
}
