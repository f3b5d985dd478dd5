/*
 * test_incr.c - sop_incr(): commutative counters.
 *
 *  - values, creation, removal at zero, read-your-writes, rollback;
 *  - errors: not a counter, overflow, duplicate store, NULL key; none of
 *    them fails the transaction;
 *  - two transactions interleaved on one counter both commit, and the sum
 *    is exact (the second commit re-applies its delta on the first's value);
 *  - a transaction that read the counter before incrementing it is an
 *    ordinary read-modify-write: it conflicts;
 *  - threads hammering a few counters with durable commits: every commit
 *    succeeds the first time, the sums are exact, the database checks
 *    clean after a reopen.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>
#include <pthread.h>

#include "sop/sop.h"
#include "testutil.h"

static sop_db *open_db(const char *name, int fresh)
{
    static char path[512];
    if (fresh)
        snprintf(path, sizeof path, "%s", tu_tmpdir(name));
    sop_db_options o;
    sop_db_options_init(&o);
    o.sync = SOP_SYNC_NONE;
    sop_db *db;
    assert_int_equal(sop_db_open(path, &o, &db), 0);
    return db;
}

static sop_store *store(sop_txn *t, const char *name)
{
    sop_store *s;
    int rc = sop_store_open(t, name, &s);
    if (rc == SOP_ENOTFOUND)
        rc = sop_store_create(t, name, NULL, &s);
    assert_int_equal(rc, 0);
    return s;
}

static int64_t value(sop_store *s, const char *key)
{
    sop_val k = {key, strlen(key)}, v;
    int rc = sop_get(s, &k, &v);
    if (rc == SOP_ENOTFOUND)
        return 0;
    assert_int_equal(rc, 0);
    assert_int_equal(v.size, 8);
    int64_t x;
    memcpy(&x, v.data, 8);
    return x;
}

static int64_t committed(sop_db *db, const char *key)
{
    sop_txn *t;
    assert_int_equal(sop_txn_begin(db, SOP_TXN_READ, 0, &t), 0);
    int64_t x = value(store(t, "c"), key);
    sop_txn_rollback(t);
    return x;
}

static void test_incr_basics(void **state)
{
    (void)state;
    sop_db *db = open_db("basics", 1);
    sop_txn *t;
    assert_int_equal(sop_txn_begin(db, SOP_TXN_WRITE, 0, &t), 0);
    sop_store *s = store(t, "c");
    sop_val k = {"n", 1};
    int64_t r = 99;
    assert_int_equal(sop_incr(s, &k, 5, &r), 0);
    assert_int_equal(r, 5);
    assert_int_equal(sop_incr(s, &k, -2, &r), 0);
    assert_int_equal(r, 3);
    assert_int_equal(value(s, "n"), 3);
    assert_int_equal(sop_incr(s, &k, -3, &r), 0); /* zero: removed */
    assert_int_equal(r, 0);
    uint64_t n;
    assert_int_equal(sop_store_count(s, &n), 0);
    assert_int_equal(n, 0);
    assert_int_equal(sop_incr(s, &k, 0, NULL), 0); /* stays absent */
    assert_int_equal(sop_store_count(s, &n), 0);
    assert_int_equal(n, 0);
    assert_int_equal(sop_incr(s, &k, INT64_MAX, NULL), 0);
    assert_int_equal(sop_incr(s, &k, 1, &r), -EOVERFLOW);
    assert_int_equal(value(s, "n"), INT64_MAX); /* unchanged, txn alive */
    sop_val bad = {"b", 1}, three = {"abc", 3};
    assert_int_equal(sop_add(s, &bad, &three), 0);
    assert_int_equal(sop_incr(s, &bad, 1, NULL), SOP_EFORMAT);
    assert_int_equal(sop_incr(s, NULL, 1, NULL), -EINVAL);
    sop_store_options o;
    sop_store_options_init(&o);
    o.unique = 0;
    sop_store *dup;
    assert_int_equal(sop_store_create(t, "dup", &o, &dup), 0);
    assert_int_equal(sop_incr(dup, &k, 1, NULL), -EINVAL);
    assert_int_equal(sop_incr(s, &k, INT64_MIN + 1, NULL), 0);
    assert_int_equal(sop_txn_commit(t), 0);
    assert_int_equal(committed(db, "n"), 0);

    /* rollback leaves nothing */
    assert_int_equal(sop_txn_begin(db, SOP_TXN_WRITE, 0, &t), 0);
    assert_int_equal(sop_incr(store(t, "c"), &k, 7, NULL), 0);
    sop_txn_rollback(t);
    assert_int_equal(committed(db, "n"), 0);

    /* a READ transaction cannot increment */
    assert_int_equal(sop_txn_begin(db, SOP_TXN_READ, 0, &t), 0);
    assert_int_equal(sop_incr(store(t, "c"), &k, 1, NULL), SOP_EREADONLY);
    sop_txn_rollback(t);
    assert_int_equal(sop_db_close(db), 0);
}

static void test_incr_interleaved(void **state)
{
    (void)state;
    sop_db *db = open_db("interleaved", 1);
    sop_txn *t;
    assert_int_equal(sop_txn_begin(db, SOP_TXN_WRITE, 0, &t), 0);
    store(t, "c");
    assert_int_equal(sop_txn_commit(t), 0);
    sop_val k = {"n", 1}, other = {"x", 1}, one = {"1", 1};
    for (int mode = 0; mode < 2; mode++) {
        sop_txn_mode m = mode ? SOP_TXN_NOCHECK : SOP_TXN_WRITE;
        int64_t before = committed(db, "n");
        sop_txn *a, *b;
        assert_int_equal(sop_txn_begin(db, m, 0, &a), 0);
        assert_int_equal(sop_txn_begin(db, m, 0, &b), 0);
        assert_int_equal(sop_incr(store(a, "c"), &k, 10, NULL), 0);
        assert_int_equal(sop_incr(store(b, "c"), &k, 100, NULL), 0);
        assert_int_equal(sop_upsert(store(b, "c"), &other, &one), 0);
        assert_int_equal(sop_txn_commit(a), 0);
        assert_int_equal(sop_txn_commit(b), 0); /* merged, not a conflict */
        assert_int_equal(committed(db, "n"), before + 110);
    }
    /* read, then increment: a read-modify-write, validated as such */
    sop_txn *a, *b;
    assert_int_equal(sop_txn_begin(db, SOP_TXN_WRITE, 0, &a), 0);
    assert_int_equal(sop_txn_begin(db, SOP_TXN_WRITE, 0, &b), 0);
    int64_t seen = value(store(a, "c"), "n");
    assert_int_equal(sop_incr(store(a, "c"), &k, 1, NULL), 0);
    assert_int_equal(sop_incr(store(b, "c"), &k, 1, NULL), 0);
    assert_int_equal(sop_txn_commit(b), 0);
    assert_int_equal(sop_txn_commit(a), SOP_ECONFLICT);
    assert_int_equal(committed(db, "n"), seen + 1);
    sop_db_stat st;
    assert_int_equal(sop_db_stats(db, &st), 0);
    assert_true(st.merges >= 2);
    assert_int_equal(sop_db_close(db), 0);
}

#define THREADS 4
#define ROUNDS 300

static struct {
    sop_db *db;
    int failures;
    pthread_mutex_t mu;
} g = {.mu = PTHREAD_MUTEX_INITIALIZER};

static void *hammer(void *arg)
{
    int id = (int)(intptr_t)arg;
    uint64_t rs = tu_seed() * 31u + (uint64_t)id;
    for (int i = 0; i < ROUNDS; i++) {
        sop_txn *t;
        int rc = sop_txn_begin(g.db, SOP_TXN_WRITE, 0, &t);
        sop_store *s = NULL;
        if (!rc)
            rc = sop_store_open(t, "c", &s);
        char own[16];
        snprintf(own, sizeof own, "own%d.%d", id, i);
        sop_val total = {"total", 5}, pick = {"k0", 2}, mine = {own, strlen(own)};
        char kb[2] = {'k', (char)('0' + tu_rand_below(&rs, 3))};
        pick.data = kb;
        sop_val one = {"1", 1};
        if (!rc)
            rc = sop_incr(s, &total, 1, NULL);
        if (!rc)
            rc = sop_incr(s, &pick, 2, NULL);
        if (!rc)
            rc = sop_add(s, &mine, &one); /* a plain write of its own */
        if (!rc)
            rc = sop_txn_commit(t);
        else
            sop_txn_rollback(t);
        if (rc) {
            pthread_mutex_lock(&g.mu);
            g.failures++;
            fprintf(stderr, "thread %d round %d: %s\n", id, i, sop_strerror(rc));
            pthread_mutex_unlock(&g.mu);
        }
    }
    return NULL;
}

static void test_incr_threads(void **state)
{
    (void)state;
    g.db = open_db("threads", 1);
    sop_txn *t;
    assert_int_equal(sop_txn_begin(g.db, SOP_TXN_WRITE, 0, &t), 0);
    store(t, "c");
    assert_int_equal(sop_txn_commit(t), 0);
    pthread_t th[THREADS];
    for (int i = 0; i < THREADS; i++)
        assert_int_equal(pthread_create(&th[i], NULL, hammer, (void *)(intptr_t)i), 0);
    for (int i = 0; i < THREADS; i++)
        pthread_join(th[i], NULL);
    assert_int_equal(g.failures, 0); /* no conflict, no retry */
    assert_int_equal(committed(g.db, "total"), THREADS * ROUNDS);
    int64_t picks = committed(g.db, "k0") + committed(g.db, "k1") + committed(g.db, "k2");
    assert_int_equal(picks, 2 * THREADS * ROUNDS);
    assert_int_equal(sop_db_close(g.db), 0);
    g.db = open_db("threads", 0);
    assert_int_equal(committed(g.db, "total"), THREADS * ROUNDS);
    uint64_t problems = 1;
    assert_int_equal(sop_db_check(g.db, NULL, NULL, &problems), 0);
    assert_int_equal(problems, 0);
    assert_int_equal(sop_db_close(g.db), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_incr_basics),
        cmocka_unit_test(test_incr_interleaved),
        cmocka_unit_test(test_incr_threads),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
