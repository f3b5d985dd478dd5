/*
 * test_kb.c - knowledge bases and their loader (agents/src/kb.c, load.c):
 *
 *  - put, get, delete, count and hybrid search, with metadata back;
 *  - a batch that repeats an id keeps the last record, in all three stores;
 *  - a text without a word is kept, found by nothing, and has no vector;
 *  - another embedder is refused (SOP_EMISMATCH), at put, search and load;
 *  - bad records (-EINVAL) write nothing once rolled back;
 *  - a rollback leaves no trace; the records share the caller's transaction;
 *  - sop_kb_load of the shipped datasets: counts, the complete mark, the
 *    progress callback, a stop by it, replace;
 *  - a load that fails half-way keeps its committed batches, is marked
 *    incomplete, and a second run of the fixed file completes it;
 *  - bad files name the record in the report;
 *  - precomputed embeddings of a foreign embedder are loaded without one
 *    and searched by vector through the identity check.
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

#include "sop/agent.h"
#include "sop/sop.h"
#include "testutil.h"

static sop_db *open_db(const char *name)
{
    sop_db *db;
    assert_int_equal(sop_db_open(tu_tmpdir(name), NULL, &db), 0);
    return db;
}

static sop_embedder *builtin(void)
{
    sop_embedder *e;
    assert_int_equal(sop_embedder_builtin(0, &e), 0);
    return e;
}

static const char *data_path(const char *file)
{
    static char p[1024];
    const char *d = getenv("SOP_TEST_DATA");
    snprintf(p, sizeof p, "%s/../../datasets/%s", d ? d : "tests/data", file);
    return p;
}

static const char *write_tmp(const char *dir, const char *text)
{
    static char p[1024];
    snprintf(p, sizeof p, "%s/f.json", tu_tmpdir(dir));
    FILE *f = fopen(p, "wb");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
    return p;
}

static void test_put_get_search(void **state)
{
    (void)state;
    sop_db *db = open_db("kb/basic");
    sop_embedder *e = builtin();
    sop_txn *txn;
    sop_kb *kb;
    assert_int_equal(sop_txn_begin(db, SOP_TXN_WRITE, 0, &txn), 0);
    assert_int_equal(sop_kb_create(txn, "med", SOP_EMBEDDER_BUILTIN, 256, &kb), 0);
    sop_kb_record r[] = {
        {"flu", "Influenza: fever, chills, muscle aches and a cough.", "{\"name\":\"Flu\"}", NULL},
        {"migraine", "Migraine: a throbbing headache with nausea and light sensitivity.", NULL, NULL},
        {"sprain", "Sprained ankle: swelling and pain after twisting the joint.",
         "{\"name\":\"Sprain\"}", NULL},
        {"flu", "Influenza: high fever, shivering, aching muscles, dry cough.",
         "{\"name\":\"Influenza\"}", NULL},
        {"blank", "!!! ...", NULL, NULL},
    };
    assert_int_equal(sop_kb_put(kb, e, r, 5), 0);
    uint64_t n;
    assert_int_equal(sop_kb_count(kb, &n), 0);
    assert_int_equal(n, 4);
    sop_kb_record g;
    assert_int_equal(sop_kb_get(kb, "flu", &g), 0);
    assert_string_equal(g.id, "flu");
    assert_string_equal(g.text, r[3].text);
    assert_string_equal(g.metadata, "{\"name\":\"Influenza\"}");
    assert_int_equal(sop_kb_get(kb, "migraine", &g), 0);
    assert_null(g.metadata);
    assert_int_equal(sop_kb_get(kb, "blank", &g), 0);
    assert_int_equal(sop_kb_get(kb, "nope", &g), SOP_ENOTFOUND);

    sop_kb_hit h[10];
    uint32_t nh;
    assert_int_equal(sop_kb_search(kb, e, "shivering and a cough", 10, h, &nh), 0);
    assert_true(nh >= 1);
    assert_string_equal(h[0].id, "flu");
    assert_string_equal(h[0].metadata, "{\"name\":\"Influenza\"}");
    assert_true(h[0].text_rank == 1 && h[0].vec_rank == 1);
    assert_true(h[0].similarity > 0.1 && h[0].similarity <= 1.0001);
    for (uint32_t i = 0; i < nh; i++)
        assert_string_not_equal(h[i].id, "blank");
    /* words only */
    assert_int_equal(sop_kb_search(kb, NULL, "twisting", 3, h, &nh), 0);
    assert_int_equal(nh, 1);
    assert_string_equal(h[0].id, "sprain");
    assert_true(h[0].vec_rank == 0 && h[0].similarity == 0);
    /* a query without a word finds nothing and is not an error */
    assert_int_equal(sop_kb_search(kb, e, "?!", 3, h, &nh), 0);
    assert_int_equal(nh, 0);

    /* another embedder is refused */
    sop_embedder *e64;
    assert_int_equal(sop_embedder_builtin(64, &e64), 0);
    assert_int_equal(sop_kb_search(kb, e64, "cough", 3, h, &nh), SOP_EMISMATCH);
    assert_int_equal(sop_kb_put(kb, e64, r, 1), SOP_EMISMATCH);
    assert_int_equal(sop_kb_put(kb, NULL, r, 1), SOP_EMISMATCH); /* needs an embedder */
    sop_embedder_free(e64);
    /* bad records */
    sop_kb_record bad[] = {{"", "x", NULL, NULL}, {"a", "", NULL, NULL},
                           {"a", "x", "[1,2]", NULL}, {"a", "x", "{\"a\":", NULL},
                           {NULL, "x", NULL, NULL}};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        assert_int_equal(sop_kb_put(kb, e, &bad[i], 1), -EINVAL);
    float nan[256] = {0};
    nan[3] = NAN;
    sop_kb_record bv = {"nanvec", "text", NULL, nan};
    assert_int_equal(sop_kb_put(kb, NULL, &bv, 1), SOP_EVECTOR);
    assert_int_equal(sop_txn_rollback(txn), 0);

    /* nothing of the rolled-back transaction remains */
    assert_int_equal(sop_txn_begin(db, SOP_TXN_READ, 0, &txn), 0);
    assert_int_equal(sop_kb_open(txn, "med", &kb), SOP_ENOTFOUND);
    sop_txn_rollback(txn);

    /* committed, then deleted in a later transaction */
    assert_int_equal(sop_txn_begin(db, SOP_TXN_WRITE, 0, &txn), 0);
    assert_int_equal(sop_kb_create(txn, "med", SOP_EMBEDDER_BUILTIN, 256, &kb), 0);
    sop_kb *kb2;
    assert_int_equal(sop_kb_create(txn, "med", SOP_EMBEDDER_BUILTIN, 256, &kb2), SOP_EEXISTS);
    assert_null(kb2);
    assert_int_equal(sop_kb_put(kb, e, r, 4), 0);
    assert_int_equal(sop_txn_commit(txn), 0);
    assert_int_equal(sop_txn_begin(db, SOP_TXN_WRITE, 0, &txn), 0);
    assert_int_equal(sop_kb_open(txn, "med", &kb), 0);
    const char *en;
    uint32_t ed;
    sop_kb_embedder(kb, &en, &ed);
    assert_string_equal(en, SOP_EMBEDDER_BUILTIN);
    assert_int_equal(ed, 256);
    assert_int_equal(sop_kb_delete(kb, "flu"), 0);
    assert_int_equal(sop_kb_delete(kb, "flu"), SOP_ENOTFOUND);
    assert_int_equal(sop_kb_search(kb, e, "fever chills cough influenza", 10, h, &nh), 0);
    for (uint32_t i = 0; i < nh; i++)
        assert_string_not_equal(h[i].id, "flu");
    assert_int_equal(sop_kb_count(kb, &n), 0);
    assert_int_equal(n, 2);
    assert_int_equal(sop_txn_commit(txn), 0);
    assert_int_equal(sop_txn_begin(db, SOP_TXN_WRITE, 0, &txn), 0);
    assert_int_equal(sop_kb_remove(txn, "med"), 0);
    assert_int_equal(sop_kb_remove(txn, "med"), SOP_ENOTFOUND);
    assert_int_equal(sop_kb_open(txn, "med", &kb), SOP_ENOTFOUND);
    assert_int_equal(sop_kb_open(txn, "bad name!", &kb), SOP_ENAME);
    assert_int_equal(sop_txn_commit(txn), 0);
    sop_embedder_free(e);
    assert_int_equal(sop_db_close(db), 0);
}

static int progress_calls;
static int on_progress(const sop_kb_progress *p, void *ctx)
{
    progress_calls++;
    assert_true(p->bytes <= p->size && p->size > 0);
    return ctx && p->records >= 100 ? 77 : 0;
}

static int complete(sop_db *db, const char *name)
{
    sop_txn *txn;
    assert_int_equal(sop_txn_begin(db, SOP_TXN_READ, 0, &txn), 0);
    int c = sop_kb_complete(txn, name);
    sop_txn_rollback(txn);
    return c;
}

static uint64_t count(sop_db *db, const char *name)
{
    sop_txn *txn;
    sop_kb *kb;
    uint64_t n = 0;
    assert_int_equal(sop_txn_begin(db, SOP_TXN_READ, 0, &txn), 0);
    assert_int_equal(sop_kb_open(txn, name, &kb), 0);
    assert_int_equal(sop_kb_count(kb, &n), 0);
    sop_txn_rollback(txn);
    return n;
}

static void test_load_datasets(void **state)
{
    (void)state;
    sop_db *db = open_db("kb/load");
    sop_kb_load_options o;
    sop_kb_load_options_init(&o);
    o.batch = 100;
    o.progress = on_progress;
    sop_kb_load_report rep;
    progress_calls = 0;
    assert_int_equal(sop_kb_load(db, data_path("nurse.json"), &o, &rep), 0);
    assert_string_equal(rep.name, "nurse");
    assert_int_equal(rep.records, 485);
    assert_int_equal(rep.embedded, 485);
    assert_int_equal(rep.batches, 5);
    assert_int_equal(progress_calls, 5);
    assert_string_equal(rep.error, "");
    assert_int_equal(count(db, "nurse"), 485);
    assert_int_equal(complete(db, "nurse"), 1);
    /* a re-run is an upsert: the same records */
    assert_int_equal(sop_kb_load(db, data_path("nurse.json"), &o, &rep), 0);
    assert_int_equal(count(db, "nurse"), 485);

    /* a stop by the progress callback keeps the committed batches */
    o.progress_ctx = (void *)1;
    o.name = "doc2";
    assert_int_equal(sop_kb_load(db, data_path("doctor.json"), &o, &rep), 77);
    assert_int_equal(rep.records, 100);
    o.progress_ctx = NULL;
    assert_int_equal(complete(db, "doc2"), 0);
    assert_int_equal(sop_kb_load(db, data_path("doctor.json"), &o, &rep), 0);
    assert_int_equal(count(db, "doc2"), 112);
    assert_int_equal(complete(db, "doc2"), 1);

    /* search the loaded doctor base */
    sop_embedder *e = builtin();
    sop_txn *txn;
    sop_kb *kb;
    sop_kb_hit h[5];
    uint32_t nh;
    assert_int_equal(sop_txn_begin(db, SOP_TXN_READ, 0, &txn), 0);
    assert_int_equal(sop_kb_open(txn, "doc2", &kb), 0);
    assert_int_equal(sop_kb_search(kb, e, "diarrhoea vomiting abdominal cramps fever", 5, h, &nh), 0);
    assert_int_equal(nh, 5);
    int found = 0;
    for (uint32_t i = 0; i < 3; i++)
        found |= !strcmp(h[i].id, "gastroenteritis") || !strcmp(h[i].id, "food_poisoning");
    assert_true(found);
    assert_non_null(strstr(h[0].metadata, "\"symptoms\""));
    sop_txn_rollback(txn);

    /* replace: a rebuild into a base of another embedder */
    sop_embedder *e64;
    assert_int_equal(sop_embedder_builtin(64, &e64), 0);
    o.embedder = e64;
    assert_int_equal(sop_kb_load(db, data_path("doctor.json"), &o, &rep), SOP_EMISMATCH);
    assert_non_null(strstr(rep.error, "sop-hash-v1"));
    o.replace = 1;
    assert_int_equal(sop_kb_load(db, data_path("doctor.json"), &o, &rep), 0);
    assert_int_equal(count(db, "doc2"), 112);
    assert_int_equal(sop_txn_begin(db, SOP_TXN_READ, 0, &txn), 0);
    assert_int_equal(sop_kb_open(txn, "doc2", &kb), 0);
    uint32_t dim;
    sop_kb_embedder(kb, NULL, &dim);
    assert_int_equal(dim, 64);
    sop_txn_rollback(txn);
    sop_embedder_free(e64);
    sop_embedder_free(e);
    assert_int_equal(sop_db_close(db), 0);
}

static void test_load_failures(void **state)
{
    (void)state;
    sop_db *db = open_db("kb/fail");
    sop_kb_load_options o;
    sop_kb_load_options_init(&o);
    o.batch = 2;
    sop_kb_load_report rep;
    const char *head = "{\"format\":\"sop-fallback\",\"version\":1,\"name\":\"t\",\"records\":[";
    char text[4096];
    /* record 4 is a duplicate of record 1: batches 1 (records 1-2) stay */
    snprintf(text, sizeof text,
             "%s{\"id\":\"a\",\"text\":\"alpha\"},{\"id\":\"b\",\"text\":\"beta\"},"
             "{\"id\":\"c\",\"text\":\"gamma\"},{\"id\":\"a\",\"text\":\"again\"}]}",
             head);
    assert_int_equal(sop_kb_load(db, write_tmp("kb/f1", text), &o, &rep), SOP_EFORMAT);
    assert_int_equal(rep.records, 2);
    assert_int_equal(rep.error_record, 4);
    assert_non_null(strstr(rep.error, "record 4"));
    assert_non_null(strstr(rep.error, "\"a\""));
    assert_int_equal(count(db, "t"), 2);
    assert_int_equal(complete(db, "t"), 0);
    /* the fixed file completes the base */
    snprintf(text, sizeof text,
             "%s{\"id\":\"a\",\"text\":\"alpha\"},{\"id\":\"b\",\"text\":\"beta\"},"
             "{\"id\":\"c\",\"text\":\"gamma\"},{\"id\":\"d\",\"text\":\"delta\"}]}",
             head);
    assert_int_equal(sop_kb_load(db, write_tmp("kb/f2", text), &o, &rep), 0);
    assert_int_equal(count(db, "t"), 4);
    assert_int_equal(complete(db, "t"), 1);

    /* wrong types, a truncated file, malformed JSON: named */
    struct {
        const char *body, *want;
        int rc;
    } cases[] = {
        {"{\"id\":\"x\",\"text\":5}]}", "record 1", SOP_EFORMAT},
        {"{\"id\":\"x\",\"text\":\"ok\"},{\"id\":\"y\",\"text\":\"o", "record 2", SOP_EFORMAT},
        {"{\"id\":\"x\",\"text\":\"ok\"},{\"id\":\"y\" \"text\":\"o\"}]}", "record 2", SOP_EFORMAT},
        {"{\"id\":\"x\",\"text\":\"ok\",\"metadata\":[1]}]}", "record 1", SOP_EFORMAT},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        snprintf(text, sizeof text, "%s%s", head, cases[i].body);
        o.name = "u";
        int rc = sop_kb_load(db, write_tmp("kb/f3", text), &o, &rep);
        assert_int_equal(rc, cases[i].rc);
        if (!strstr(rep.error, cases[i].want))
            fail_msg("case %zu: \"%s\" does not name %s", i, rep.error, cases[i].want);
    }
    o.name = NULL;
    /* no name anywhere */
    assert_int_equal(sop_kb_load(db,
                                 write_tmp("kb/f4", "{\"format\":\"sop-fallback\",\"version\":1,"
                                                    "\"records\":[]}"),
                                 &o, &rep),
                     -EINVAL);
    /* a missing file */
    assert_int_equal(sop_kb_load(db, "/nonexistent/x.json", &o, &rep), -ENOENT);
    assert_true(rep.error[0] != 0);

    /* precomputed vectors of a foreign embedder: loaded without one;
     * records without a vector need one */
    snprintf(text, sizeof text,
             "{\"format\":\"sop-fallback\",\"version\":1,\"name\":\"g\","
             "\"embedder\":{\"name\":\"glove-3d\",\"dim\":3},\"records\":["
             "{\"id\":\"cat\",\"text\":\"cat\",\"embedding\":[1,0,0]},"
             "{\"id\":\"dog\",\"text\":\"dog\",\"embedding\":[0.9,0.1,0]},"
             "{\"id\":\"car\",\"text\":\"car\",\"embedding\":[0,0,1]}]}");
    assert_int_equal(sop_kb_load(db, write_tmp("kb/f5", text), &o, &rep), 0);
    assert_int_equal(rep.embedded, 0);
    assert_int_equal(count(db, "g"), 3);
    snprintf(text, sizeof text,
             "{\"format\":\"sop-fallback\",\"version\":1,\"name\":\"g2\","
             "\"embedder\":{\"name\":\"glove-3d\",\"dim\":3},\"records\":["
             "{\"id\":\"cat\",\"text\":\"cat\",\"embedding\":[1,0,0]},"
             "{\"id\":\"dog\",\"text\":\"dog\"}]}");
    assert_int_equal(sop_kb_load(db, write_tmp("kb/f6", text), &o, &rep), SOP_EMISMATCH);
    assert_int_equal(rep.error_record, 2);
    assert_non_null(strstr(rep.error, "glove-3d"));
    /* the builtin embedder cannot pose as glove */
    sop_embedder *e = builtin();
    o.embedder = e;
    assert_int_equal(sop_kb_load(db, write_tmp("kb/f5", text), &o, &rep), SOP_EMISMATCH);
    assert_non_null(strstr(rep.error, "glove-3d"));
    /* a text query on "g" with the builtin embedder is refused, words work */
    sop_txn *txn;
    sop_kb *kb;
    sop_kb_hit h[3];
    uint32_t nh;
    assert_int_equal(sop_txn_begin(db, SOP_TXN_READ, 0, &txn), 0);
    assert_int_equal(sop_kb_open(txn, "g", &kb), 0);
    assert_int_equal(sop_kb_search(kb, e, "cat", 3, h, &nh), SOP_EMISMATCH);
    assert_int_equal(sop_kb_search(kb, NULL, "dog", 3, h, &nh), 0);
    assert_int_equal(nh, 1);
    assert_string_equal(h[0].id, "dog");
    sop_txn_rollback(txn);
    sop_embedder_free(e);
    assert_int_equal(sop_db_close(db), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_put_get_search),
        cmocka_unit_test(test_load_datasets),
        cmocka_unit_test(test_load_failures),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
