/*
 * test_kb_check.c - sop_kb_check(): clean after puts (with metadata, a
 * text without a word, repeated ids), deletes, replaces, a load of the
 * shipped doctor dataset and precomputed foreign embeddings; and each
 * disagreement made on purpose is reported: a record removed, a record's
 * text changed, a record's vector or text document deleted, a document or
 * vector without record, a garbled configuration, a missing index, and
 * damage inside an index (reported by its own check, through this one).
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

#include "sop/agent.h"
#include "sop/search.h"
#include "sop/vector.h"
#include "check_report.h"
#include "testutil.h"

static void assert_clean(sop_db *db, const char *name) { tu_assert_clean(db, sop_kb_check, name); }

static void assert_reports(sop_db *db, const char *what)
{
    tu_assert_reports(db, sop_kb_check, NULL, "med", what); /* its indexes' lines too */
}

static sop_embedder *g_emb;

static sop_db *open_db(const char *name)
{
    sop_db_options o;
    sop_db_options_init(&o);
    o.sync = SOP_SYNC_NONE;
    sop_db *db;
    assert_int_equal(sop_db_open(tu_tmpdir(name), &o, &db), 0);
    return db;
}

static const char *const texts[] = {
    "Influenza: fever, chills, muscle aches and a cough.",
    "Migraine: a throbbing headache with nausea and light sensitivity.",
    "Sprained ankle: swelling and pain after twisting the joint.",
    "Appendicitis: pain that starts around the navel and moves to the lower right abdomen.",
    "Asthma: wheezing, shortness of breath and chest tightness.",
    "Chickenpox: an itchy rash of blisters, fever and tiredness.",
    "the and of", /* no word: no vector */
};

/* Puts records r0..r(n-1) (text i % 7, every other one with metadata) in
 * one transaction, creating the base when needed. */
static void put(sop_db *db, int from, int to, int shift)
{
    sop_txn *t;
    sop_kb *kb;
    assert_int_equal(sop_txn_begin(db, SOP_TXN_WRITE, 0, &t), 0);
    int rc = sop_kb_open(t, "med", &kb);
    if (rc == SOP_ENOTFOUND)
        rc = sop_kb_create(t, "med", sop_embedder_name(g_emb), sop_embedder_dim(g_emb), &kb);
    assert_int_equal(rc, 0);
    for (int i = from; i < to; i++) {
        char id[32];
        snprintf(id, sizeof id, "r%03d", i);
        sop_kb_record r = {id, texts[(i + shift) % 7], i % 2 ? "{\"n\":1}" : NULL, NULL};
        assert_int_equal(sop_kb_put(kb, g_emb, &r, 1), 0);
    }
    assert_int_equal(sop_txn_commit(t), 0);
}

static sop_db *fixture(const char *dir)
{
    sop_db *db = open_db(dir);
    put(db, 0, 40, 0);
    assert_clean(db, "med");
    return db;
}

static sop_txn *wbegin(sop_db *db)
{
    sop_txn *t;
    assert_int_equal(sop_txn_begin(db, SOP_TXN_WRITE, 0, &t), 0);
    return t;
}

static void test_clean(void **state)
{
    (void)state;
    sop_db *db = fixture("clean");
    put(db, 10, 60, 3); /* replaces and new ones, in one batch each */
    assert_clean(db, "med");
    sop_txn *t = wbegin(db);
    sop_kb *kb;
    assert_int_equal(sop_kb_open(t, "med", &kb), 0);
    for (int i = 0; i < 60; i += 5) {
        char id[32];
        snprintf(id, sizeof id, "r%03d", i);
        assert_int_equal(sop_kb_delete(kb, id), 0);
    }
    /* a batch repeating an id keeps its last record */
    sop_kb_record rr[] = {{"dup", texts[0], NULL, NULL}, {"dup", texts[4], NULL, NULL}};
    assert_int_equal(sop_kb_put(kb, g_emb, rr, 2), 0);
    uint64_t p = 7;
    assert_int_equal(sop_kb_check(t, "med", NULL, NULL, &p), 0); /* with buffered text */
    assert_int_equal(p, 0);
    assert_int_equal(sop_txn_commit(t), 0);
    assert_clean(db, "med");
    /* a loaded dataset */
    const char *d = getenv("SOP_TEST_DATA");
    char path[1024];
    snprintf(path, sizeof path, "%s/../../datasets/doctor.json", d ? d : "tests/data");
    sop_kb_load_options o;
    sop_kb_load_options_init(&o);
    o.name = "doctor";
    o.batch = 50;
    assert_int_equal(sop_kb_load(db, path, &o, NULL), 0);
    assert_clean(db, "doctor");
    /* not there, bad names */
    t = wbegin(db);
    assert_int_equal(sop_kb_check(t, "none", NULL, NULL, &p), SOP_ENOTFOUND);
    assert_int_equal(sop_kb_check(t, "", NULL, NULL, &p), -EINVAL);
    assert_int_equal(sop_kb_check(t, "a/b", NULL, NULL, &p), SOP_ENAME);
    assert_int_equal(sop_kb_check(NULL, "med", NULL, NULL, &p), -EINVAL);
    sop_txn_rollback(t);
    assert_int_equal(sop_db_close(db), 0);
}

/* Vectors of a foreign embedder: a missing vector cannot be told from a
 * zero one, the rest is checked. */
static void test_foreign(void **state)
{
    (void)state;
    sop_db *db = open_db("foreign");
    sop_txn *t = wbegin(db);
    sop_kb *kb;
    assert_int_equal(sop_kb_create(t, "glove", "glove-3", 3, &kb), 0);
    float v1[3] = {1, 0, 0}, v2[3] = {0.9f, 0.1f, 0}, v0[3] = {0, 0, 0};
    sop_kb_record r[] = {{"cat", "cat", NULL, v1}, {"dog", "dog", NULL, v2},
                         {"none", "none", NULL, v0}};
    assert_int_equal(sop_kb_put(kb, NULL, r, 3), 0);
    assert_int_equal(sop_txn_commit(t), 0);
    assert_clean(db, "glove");
    assert_int_equal(sop_db_close(db), 0);
}

static void test_record_removed(void **state)
{
    (void)state;
    sop_db *db = fixture("record-removed");
    sop_txn *t = wbegin(db);
    sop_store *s;
    assert_int_equal(sop_store_open(t, "med.kb", &s), 0);
    sop_val k = {"r005", 4};
    assert_int_equal(sop_remove(s, &k), 0);
    assert_int_equal(sop_txn_commit(t), 0);
    assert_reports(db, "its text index holds document 'r005', which is not a record");
    assert_reports(db, "its vector store holds 'r005', which is not a record");
    assert_reports(db, "40 documents");
    assert_int_equal(sop_db_close(db), 0);
}

/* A record's text changed behind the indexes' back. */
static void test_text_changed(void **state)
{
    (void)state;
    sop_db *db = fixture("text-changed");
    sop_txn *t = wbegin(db);
    sop_store *s;
    assert_int_equal(sop_store_open(t, "med.kb", &s), 0);
    const char *nt = "Gout: a sudden painful swollen big toe.";
    uint8_t buf[200];
    size_t tl = strlen(nt);
    buf[0] = (uint8_t)tl, buf[1] = buf[2] = buf[3] = 0;
    memcpy(buf + 4, nt, tl);
    sop_val k = {"r002", 4}, v = {buf, 4 + tl};
    assert_int_equal(sop_update(s, &k, &v), 0);
    assert_int_equal(sop_txn_commit(t), 0);
    assert_reports(db, "document 'r002' has no posting of term 'gout' of its text");
    assert_reports(db, "its text does not hold");
    assert_int_equal(sop_db_close(db), 0);
}

static void test_vector_deleted(void **state)
{
    (void)state;
    sop_db *db = fixture("vector-deleted");
    sop_txn *t = wbegin(db);
    sop_vstore *vs;
    assert_int_equal(sop_vstore_open(t, "med.kb.vec", &vs), 0);
    assert_int_equal(sop_vstore_delete(vs, "r003", 4), 0);
    assert_int_equal(sop_txn_commit(t), 0);
    assert_reports(db, "record 'r003' has no vector, though its text embeds to a non-zero one");
    assert_int_equal(sop_db_close(db), 0);
}

static void test_document_deleted(void **state)
{
    (void)state;
    sop_db *db = fixture("document-deleted");
    sop_txn *t = wbegin(db);
    sop_text *x;
    assert_int_equal(sop_text_open(t, "med.kb.txt", &x), 0);
    assert_int_equal(sop_text_delete(x, "r004", 4), 0);
    sop_text_doc d = {"stray", 5, "a stray document", 16, NULL, 0};
    assert_int_equal(sop_text_add(x, &d), 0);
    assert_int_equal(sop_txn_commit(t), 0);
    assert_reports(db, "record 'r004' is not a document of its text index");
    assert_reports(db, "its text index holds document 'stray', which is not a record");
    assert_int_equal(sop_db_close(db), 0);
}

static void test_vector_added(void **state)
{
    (void)state;
    sop_db *db = fixture("vector-added");
    sop_txn *t = wbegin(db);
    sop_vstore *vs;
    assert_int_equal(sop_vstore_open(t, "med.kb.vec", &vs), 0);
    uint32_t dim = sop_embedder_dim(g_emb);
    float *v = calloc(dim, sizeof *v);
    v[0] = 1;
    sop_vitem it = {"ghost", 5, v, dim, NULL, 0};
    assert_int_equal(sop_vstore_upsert(vs, &it), 0);
    free(v);
    assert_int_equal(sop_txn_commit(t), 0);
    assert_reports(db, "its vector store holds 'ghost', which is not a record");
    assert_int_equal(sop_db_close(db), 0);
}

static void test_config(void **state)
{
    (void)state;
    sop_db *db = fixture("config");
    sop_txn *t = wbegin(db);
    sop_store *s;
    assert_int_equal(sop_store_open(t, "med.kb", &s), 0);
    sop_val k = {"\0config", 7}, v = {"{\"embedder\":1}", 14};
    assert_int_equal(sop_update(s, &k, &v), 0);
    assert_int_equal(sop_txn_commit(t), 0);
    assert_reports(db, "its configuration record does not decode");
    assert_int_equal(sop_db_close(db), 0);
}

static void test_index_missing(void **state)
{
    (void)state;
    sop_db *db = fixture("index-missing");
    sop_txn *t = wbegin(db);
    assert_int_equal(sop_text_remove(t, "med.kb.txt"), 0);
    assert_int_equal(sop_txn_commit(t), 0);
    assert_reports(db, "its text index med.kb.txt is missing");
    assert_int_equal(sop_db_close(db), 0);
}

/* Damage inside an index: its own check reports it, through this one. */
static void test_index_damaged(void **state)
{
    (void)state;
    sop_db *db = fixture("index-damaged");
    sop_txn *t = wbegin(db);
    sop_store *s;
    assert_int_equal(sop_store_open(t, "med.kb.txt.txt.cfg", &s), 0);
    sop_val k = {"N", 1};
    assert_int_equal(sop_incr(s, &k, 3, NULL), 0);
    assert_int_equal(sop_store_open(t, "med.kb.vec.vec.content", &s), 0);
    sop_val k2 = {"r007", 4};
    assert_int_equal(sop_remove(s, &k2), 0);
    assert_int_equal(sop_txn_commit(t), 0);
    assert_reports(db, "text index med.kb.txt: the document counter says 43");
    assert_reports(db, "vector store med.kb.vec: index entry of id 'r007'");
    assert_int_equal(sop_db_close(db), 0);
}

static int setup(void **state)
{
    (void)state;
    return sop_embedder_builtin(64, &g_emb);
}

static int teardown(void **state)
{
    (void)state;
    sop_embedder_free(g_emb);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_clean),           cmocka_unit_test(test_foreign),
        cmocka_unit_test(test_record_removed),  cmocka_unit_test(test_text_changed),
        cmocka_unit_test(test_vector_deleted),  cmocka_unit_test(test_document_deleted),
        cmocka_unit_test(test_vector_added),    cmocka_unit_test(test_config),
        cmocka_unit_test(test_index_missing),   cmocka_unit_test(test_index_damaged),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
