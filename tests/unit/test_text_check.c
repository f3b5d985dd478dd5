/*
 * test_text_check.c - sop_text_check(): clean under single adds, bulk adds
 * (postings and records in blocks), fields, replaces, upserts, deletes (of
 * singles and of block entries), empty documents, and with writes still
 * buffered in the checking transaction; and each kind of damage made on
 * purpose through the core API is reported: a single posting removed, a
 * postings block removed or garbled, a posting added, a term frequency or
 * a posting's length changed, a record removed, a document frequency, the
 * document counter or the length counter changed.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "sop/search.h"
#include "check_report.h"
#include "testutil.h"

static void assert_clean(sop_db *db) { tu_assert_clean(db, sop_text_check, "t"); }

static void assert_reports(sop_db *db, const char *what)
{
    tu_assert_reports(db, sop_text_check, "text index", "t", what);
}

static sop_db *open_db(const char *name)
{
    sop_db_options o;
    sop_db_options_init(&o);
    o.sync = SOP_SYNC_NONE;
    sop_db *db;
    assert_int_equal(sop_db_open(tu_tmpdir(name), &o, &db), 0);
    return db;
}

static const char *const words[] = {"heart", "lung",   "fever", "cough",  "pain",  "rash",
                                    "nausea", "dizzy", "chill", "wheeze", "ache",  "sore"};

static void body(int i, unsigned gen, char *out, size_t cap)
{
    uint64_t s = (uint64_t)i * 31 + gen * 1009 + 7;
    size_t n = 0;
    int words_n = 3 + (int)tu_rand_below(&s, 8);
    for (int w = 0; w < words_n; w++)
        n += (size_t)snprintf(out + n, cap - n, "%s%s", w ? " " : "",
                              words[tu_rand_below(&s, 12)]);
}

/* Adds (or upserts) documents [from, to) in one transaction; every
 * third has a field. */
static void put_docs(sop_db *db, int from, int to, unsigned gen, int upsert)
{
    sop_txn *t;
    sop_text *x;
    assert_int_equal(sop_txn_begin(db, SOP_TXN_WRITE, 0, &t), 0);
    int rc = sop_text_open(t, "t", &x);
    if (rc == SOP_ENOTFOUND)
        rc = sop_text_create(t, "t", NULL, &x);
    assert_int_equal(rc, 0);
    for (int i = from; i < to; i++) {
        char id[32], b[200], f[200];
        snprintf(id, sizeof id, "doc%04d", i);
        body(i, gen, b, sizeof b);
        body(i + 1000, gen, f, sizeof f);
        sop_text_field fl = {"title", f, strlen(f)};
        sop_text_doc d = {id, strlen(id), b, strlen(b), i % 3 ? NULL : &fl, i % 3 ? 0 : 1};
        assert_int_equal(upsert ? sop_text_upsert(x, &d) : sop_text_add(x, &d), 0);
    }
    assert_int_equal(sop_txn_commit(t), 0);
}

static void del_docs(sop_db *db, int from, int to, int step)
{
    sop_txn *t;
    sop_text *x;
    assert_int_equal(sop_txn_begin(db, SOP_TXN_WRITE, 0, &t), 0);
    assert_int_equal(sop_text_open(t, "t", &x), 0);
    for (int i = from; i < to; i += step) {
        char id[32];
        snprintf(id, sizeof id, "doc%04d", i);
        assert_int_equal(sop_text_delete(x, id, strlen(id)), 0);
    }
    assert_int_equal(sop_txn_commit(t), 0);
}

/* 10 single documents, 80 bulk-loaded (blocks), some replaced and some
 * deleted. */
static sop_db *fixture(const char *dir)
{
    sop_db *db = open_db(dir);
    put_docs(db, 0, 10, 0, 0);
    put_docs(db, 10, 90, 0, 0);
    put_docs(db, 5, 15, 1, 1);
    del_docs(db, 20, 30, 4);
    assert_clean(db);
    return db;
}

typedef struct raw {
    sop_txn *t;
    sop_store *s;
} raw;

static raw raw_open(sop_db *db, const char *store)
{
    raw r;
    assert_int_equal(sop_txn_begin(db, SOP_TXN_WRITE, 0, &r.t), 0);
    assert_int_equal(sop_store_open(r.t, store, &r.s), 0);
    return r;
}

/* The first postings item whose kind byte (after the term) is @kind and
 * whose term is plain (no ':'); copied. */
static void find_posting(raw *r, int kind, uint8_t *key, size_t *kl, uint8_t *val, size_t *vl)
{
    sop_cursor *c;
    sop_val k, v;
    assert_int_equal(sop_cursor_open(r->s, &c), 0);
    for (int rc = sop_cursor_first(c); rc == 0; rc = sop_cursor_next(c)) {
        assert_int_equal(sop_cursor_get(c, &k, &v), 0);
        const uint8_t *p = k.data;
        size_t tl = 0;
        while (tl < k.size && p[tl] > 1)
            tl++;
        if (p[tl] == kind && !memchr(p, ':', tl)) {
            memcpy(key, k.data, *kl = k.size);
            memcpy(val, v.data, *vl = v.size);
            sop_cursor_close(c);
            return;
        }
    }
    fail_msg("no posting of kind %d", kind);
}

static void test_clean(void **state)
{
    (void)state;
    sop_db *db = open_db("clean");
    put_docs(db, 0, 5, 0, 0);
    assert_clean(db);
    put_docs(db, 5, 100, 0, 0); /* bulk: blocks */
    assert_clean(db);
    put_docs(db, 50, 60, 1, 1);  /* replaces inside blocks */
    put_docs(db, 90, 140, 2, 1); /* bulk, half of them replaces */
    assert_clean(db);
    del_docs(db, 0, 140, 7); /* singles and block entries */
    assert_clean(db);
    /* a document of stop words only, and one of punctuation */
    sop_txn *t;
    sop_text *x;
    assert_int_equal(sop_txn_begin(db, SOP_TXN_WRITE, 0, &t), 0);
    assert_int_equal(sop_text_open(t, "t", &x), 0);
    sop_text_doc d1 = {"stop", 4, "the and of", 10, NULL, 0};
    sop_text_doc d2 = {"punct", 5, "...", 3, NULL, 0};
    assert_int_equal(sop_text_add(x, &d1), 0);
    assert_int_equal(sop_text_add(x, &d2), 0);
    /* buffered in this transaction: written before the check reads */
    uint64_t p = 9;
    assert_int_equal(sop_text_check(t, "t", NULL, NULL, &p), 0);
    assert_int_equal(p, 0);
    assert_int_equal(sop_text_delete(x, "doc0001", 7), 0);
    assert_int_equal(sop_text_check(t, "t", NULL, NULL, &p), 0);
    assert_int_equal(sop_txn_commit(t), 0);
    assert_clean(db);
    /* bad calls */
    assert_int_equal(sop_txn_begin(db, SOP_TXN_READ, 0, &t), 0);
    assert_int_equal(sop_text_check(t, "none", NULL, NULL, &p), SOP_ENOTFOUND);
    assert_int_equal(sop_text_check(t, NULL, NULL, NULL, &p), -EINVAL);
    assert_int_equal(sop_text_check(NULL, "t", NULL, NULL, &p), -EINVAL);
    sop_txn_rollback(t);
    assert_int_equal(sop_db_close(db), 0);
}

static void test_single_removed(void **state)
{
    (void)state;
    sop_db *db = fixture("single-removed");
    raw r = raw_open(db, "t.txt.post");
    uint8_t key[600], val[600];
    size_t kl, vl;
    find_posting(&r, 0, key, &kl, val, &vl);
    sop_val k = {key, kl};
    assert_int_equal(sop_remove(r.s, &k), 0);
    assert_int_equal(sop_txn_commit(r.t), 0);
    assert_reports(db, "which has no posting of it");
    assert_int_equal(sop_db_close(db), 0);
}

static void test_block_removed(void **state)
{
    (void)state;
    sop_db *db = fixture("block-removed");
    raw r = raw_open(db, "t.txt.post");
    uint8_t key[600], val[4096];
    size_t kl, vl;
    find_posting(&r, 1, key, &kl, val, &vl);
    sop_val k = {key, kl};
    assert_int_equal(sop_remove(r.s, &k), 0);
    assert_int_equal(sop_txn_commit(r.t), 0);
    assert_reports(db, "which has no posting of it");
    assert_int_equal(sop_db_close(db), 0);
}

static void test_block_garbled(void **state)
{
    (void)state;
    sop_db *db = fixture("block-garbled");
    raw r = raw_open(db, "t.txt.post");
    uint8_t key[600], val[4096];
    size_t kl, vl;
    find_posting(&r, 1, key, &kl, val, &vl);
    val[0] = 0; /* zero postings */
    sop_val k = {key, kl}, v = {val, vl};
    assert_int_equal(sop_update(r.s, &k, &v), 0);
    assert_int_equal(sop_txn_commit(r.t), 0);
    assert_reports(db, "does not decode");
    assert_int_equal(sop_db_close(db), 0);
}

/* A posting of a document that does not list the term. */
static void test_posting_added(void **state)
{
    (void)state;
    sop_db *db = fixture("posting-added");
    raw r = raw_open(db, "t.txt.post");
    uint8_t key[64], val[8];
    size_t kl = 0;
    memcpy(key, "zebra", 5);
    key[5] = 0;
    memcpy(key + 6, "doc0003", 7);
    kl = 13;
    val[0] = 1;
    val[1] = 5;
    sop_val k = {key, kl}, v = {val, 2};
    assert_int_equal(sop_add(r.s, &k, &v), 0);
    assert_int_equal(sop_txn_commit(r.t), 0);
    assert_reports(db, "the posting of term 'zebra' for document 'doc0003': the document does "
                       "not list the term");
    assert_int_equal(sop_db_close(db), 0);
}

static void test_tf_changed(void **state)
{
    (void)state;
    sop_db *db = fixture("tf-changed");
    raw r = raw_open(db, "t.txt.post");
    uint8_t key[600], val[600];
    size_t kl, vl;
    find_posting(&r, 0, key, &kl, val, &vl);
    assert_true(val[0] < 0x7f);
    val[0]++; /* tf + 1 */
    sop_val k = {key, kl}, v = {val, vl};
    assert_int_equal(sop_update(r.s, &k, &v), 0);
    assert_int_equal(sop_txn_commit(r.t), 0);
    assert_reports(db, "sum to");
    assert_int_equal(sop_db_close(db), 0);
}

static void test_dl_changed(void **state)
{
    (void)state;
    sop_db *db = fixture("dl-changed");
    raw r = raw_open(db, "t.txt.post");
    uint8_t key[600], val[600];
    size_t kl, vl;
    find_posting(&r, 0, key, &kl, val, &vl);
    assert_int_equal(vl, 2);
    val[1]++; /* the length + 1 */
    sop_val k = {key, kl}, v = {val, vl};
    assert_int_equal(sop_update(r.s, &k, &v), 0);
    assert_int_equal(sop_txn_commit(r.t), 0);
    assert_reports(db, "says length");
    assert_int_equal(sop_db_close(db), 0);
}

static void test_record_removed(void **state)
{
    (void)state;
    sop_db *db = fixture("record-removed");
    raw r = raw_open(db, "t.txt.doc");
    uint8_t key[16] = {0};
    memcpy(key + 1, "doc0002", 7);
    sop_val k = {key, 8};
    assert_int_equal(sop_remove(r.s, &k), 0);
    assert_int_equal(sop_txn_commit(r.t), 0);
    assert_reports(db, "for document 'doc0002', which has no record");
    assert_reports(db, "the document counter says");
    assert_int_equal(sop_db_close(db), 0);
}

static void test_counters(void **state)
{
    (void)state;
    static const char *const what[] = {"its document frequency counter says",
                                       "the document counter says", "the length counter says"};
    for (int i = 0; i < 3; i++) {
        char dir[32];
        snprintf(dir, sizeof dir, "counter%d", i);
        sop_db *db = fixture(dir);
        raw r = raw_open(db, i ? "t.txt.cfg" : "t.txt.term");
        sop_val k = {i == 1 ? "N" : "L", 1};
        uint8_t term[64];
        if (i == 0) { /* the first term */
            sop_cursor *c;
            sop_val tk;
            assert_int_equal(sop_cursor_open(r.s, &c), 0);
            assert_int_equal(sop_cursor_first(c), 0);
            assert_int_equal(sop_cursor_key(c, &tk), 0);
            memcpy(term, tk.data, tk.size);
            k = (sop_val){term, tk.size};
            sop_cursor_close(c);
        }
        assert_int_equal(sop_incr(r.s, &k, 1, NULL), 0);
        assert_int_equal(sop_txn_commit(r.t), 0);
        assert_reports(db, what[i]);
        assert_int_equal(sop_db_close(db), 0);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_clean),          cmocka_unit_test(test_single_removed),
        cmocka_unit_test(test_block_removed),  cmocka_unit_test(test_block_garbled),
        cmocka_unit_test(test_posting_added),  cmocka_unit_test(test_tf_changed),
        cmocka_unit_test(test_dl_changed),     cmocka_unit_test(test_record_removed),
        cmocka_unit_test(test_counters),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
