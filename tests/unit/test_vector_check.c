/*
 * test_vector_check.c - sop_vstore_check(): clean under upserts, deletes,
 * revivals, the automatic training, optimize (also stopped half-way, with
 * writes during the migration, and resumed), in every metric; and each
 * kind of damage made on purpose through the core API (an index entry
 * removed, added, moved to another cluster, its distance changed; a
 * content record, a lookup entry, the progress record, a next-version
 * slot removed; a centroid changed; a store left over) is reported.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sop/sop.h"
#include "sop/vector.h"
#include "check_report.h"
#include "testutil.h"

#define D 8
#define N 300

/* ---- problems reported -------------------------------------------------- */

/* The checks of store "v". */
static void assert_clean(sop_db *db) { tu_assert_clean(db, sop_vstore_check, "v"); }

static void assert_reports(sop_db *db, const char *what)
{
    tu_assert_reports(db, sop_vstore_check, "vector store", "v", what);
}

/* ---- data ---------------------------------------------------------------- */

static void vec_of(size_t i, unsigned gen, float *v)
{
    uint64_t s = i * 7919 + gen * 104729 + 1;
    int cluster = (int)(i % 5);
    for (int j = 0; j < D; j++)
        v[j] = (float)cluster * 4.0f * (j == cluster ? 1.0f : 0.0f) +
               (float)tu_rand_below(&s, 1000) / 1000.0f;
}

static sop_db *open_db(const char *dir)
{
    sop_db_options o;
    sop_db_options_init(&o);
    o.sync = SOP_SYNC_NONE;
    sop_db *db;
    assert_int_equal(sop_db_open(tu_tmpdir(dir), &o, &db), 0);
    return db;
}

/* Upserts items [from, to) (generation @gen) and deletes every @del_every-th
 * of them (0: none), in one transaction. */
static void write_items(sop_db *db, const char *name, size_t from, size_t to, unsigned gen,
                        size_t del_every)
{
    sop_txn *t;
    sop_vstore *vs;
    assert_int_equal(sop_txn_begin(db, SOP_TXN_WRITE, 0, &t), 0);
    assert_int_equal(sop_vstore_open(t, name, &vs), 0);
    for (size_t i = from; i < to; i++) {
        char id[32];
        float v[D];
        snprintf(id, sizeof id, "id%04zu", i);
        vec_of(i, gen, v);
        sop_vitem it = {id, strlen(id), v, D, id, strlen(id)};
        assert_int_equal(sop_vstore_upsert(vs, &it), 0);
    }
    for (size_t i = from; del_every && i < to; i += del_every) {
        char id[32];
        snprintf(id, sizeof id, "id%04zu", i);
        int rc = sop_vstore_delete(vs, id, strlen(id));
        assert_true(rc == 0 || rc == SOP_ENOTFOUND);
    }
    assert_int_equal(sop_txn_commit(t), 0);
}

static void create(sop_db *db, const char *name, sop_metric metric, uint32_t train_at)
{
    sop_txn *t;
    sop_vstore *vs;
    sop_vstore_options o;
    sop_vstore_options_init(&o);
    o.dims = D;
    o.metric = metric;
    o.nlist = 8;
    o.train_at = train_at;
    o.node_bytes = 4096;
    assert_int_equal(sop_txn_begin(db, SOP_TXN_WRITE, 0, &t), 0);
    assert_int_equal(sop_vstore_create(t, name, &o, &vs), 0);
    assert_int_equal(sop_txn_commit(t), 0);
}

static sop_vstore_stat stats(sop_db *db, const char *name)
{
    sop_txn *t;
    sop_vstore *vs;
    sop_vstore_stat st;
    assert_int_equal(sop_txn_begin(db, SOP_TXN_READ, 0, &t), 0);
    assert_int_equal(sop_vstore_open(t, name, &vs), 0);
    assert_int_equal(sop_vstore_stats(vs, &st, NULL, 0), 0);
    sop_txn_rollback(t);
    return st;
}

static int stop_after(uint64_t done, uint64_t total, void *ctx)
{
    (void)done;
    (void)total;
    int *left = ctx;
    return --*left <= 0 ? 42 : 0;
}

/* Optimizes store "v" in batches of @batch; with @stop, stops it (42)
 * after two batches. */
static int optimize(sop_db *db, uint32_t batch, int stop)
{
    sop_voptimize_options oo;
    sop_voptimize_options_init(&oo);
    oo.batch = batch;
    int left = 2;
    if (stop) {
        oo.progress = stop_after;
        oo.progress_ctx = &left;
    }
    return sop_vstore_optimize(db, "v", &oo);
}

/* A trained store (version 1, N items, some deleted and some revived)
 * and, with @migrating, an optimize stopped after two batches. */
static sop_db *fixture(const char *dir, int migrating)
{
    sop_db *db = open_db(dir);
    create(db, "v", SOP_METRIC_L2, 100);
    write_items(db, "v", 0, N, 0, 0);
    write_items(db, "v", 0, N / 2, 1, 7);
    write_items(db, "v", 0, 40, 2, 0); /* revives some */
    assert_int_equal(stats(db, "v").version, 1);
    assert_clean(db);
    if (migrating) {
        assert_int_equal(optimize(db, 40, 1), 42);
        assert_int_equal(stats(db, "v").optimizing, 1);
        assert_clean(db);
    }
    return db;
}

/* ---- damage, through raw access to the store's B-trees ------------------- */

/* A fixture being damaged: a WRITE transaction with one B-tree open. */
typedef struct raw {
    sop_db *db;
    sop_txn *t;
    sop_store *s;
} raw;

/* A fixture (see fixture()) in @dir, and its B-tree @store (NULL: none)
 * open in a WRITE transaction, to damage. */
static raw damage(const char *dir, int migrating, const char *store)
{
    raw r = {fixture(dir, migrating), NULL, NULL};
    assert_int_equal(sop_txn_begin(r.db, SOP_TXN_WRITE, 0, &r.t), 0);
    if (store)
        assert_int_equal(sop_store_open(r.t, store, &r.s), 0);
    return r;
}

/* Commits the damage; the check must then report @what and, unless NULL,
 * @what2. Closes the database. */
static void assert_damage_reported(raw *r, const char *what, const char *what2)
{
    assert_int_equal(sop_txn_commit(r->t), 0);
    assert_reports(r->db, what);
    if (what2)
        assert_reports(r->db, what2);
    assert_int_equal(sop_db_close(r->db), 0);
}

/* The @nth item of the store (copied). */
static void raw_nth(raw *r, int nth, uint8_t *key, size_t *kl, uint8_t *val, size_t *vl)
{
    sop_cursor *c;
    sop_val k, v;
    assert_int_equal(sop_cursor_open(r->s, &c), 0);
    assert_int_equal(sop_cursor_first(c), 0);
    if (nth)
        assert_int_equal(sop_cursor_skip(c, nth), 0);
    assert_int_equal(sop_cursor_get(c, &k, &v), 0);
    memcpy(key, k.data, *kl = k.size);
    if (val)
        memcpy(val, v.data, *vl = v.size);
    sop_cursor_close(c);
}

/* An index entry's key: its cluster and its distance's bits (32 bits
 * each, big-endian), then the item's id. The version 1 slot of the item's
 * content record holds the same two, little-endian, at 4 and 8. */
#define AT_CLUSTER 0
#define AT_DISTANCE 4

/* The 32-bit word at @at of the key of index entry @nth. */
static uint32_t entry_word(raw *r, int nth, int at)
{
    uint8_t key[300];
    size_t kl;
    raw_nth(r, nth, key, &kl, NULL, NULL);
    const uint8_t *p = key + at;
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* Moves index entry @nth to the key whose word at @at is @word, and
 * writes @word in the version 1 slot of the item's content record too,
 * so that the two agree. */
static void move_entry(raw *r, int nth, int at, uint32_t word)
{
    uint8_t key[300], val[D * 4];
    size_t kl, vl;
    raw_nth(r, nth, key, &kl, val, &vl);
    sop_val k = {key, kl};
    assert_int_equal(sop_remove(r->s, &k), 0);
    for (int i = 0; i < 4; i++)
        key[at + i] = (uint8_t)(word >> (24 - 8 * i));
    sop_val nk = {key, kl}, v = {val, vl};
    assert_int_equal(sop_add(r->s, &nk, &v), 0);
    sop_store *content;
    assert_int_equal(sop_store_open(r->t, "v.vec.content", &content), 0);
    sop_val id = {key + 8, kl - 8}, rec;
    assert_int_equal(sop_get(content, &id, &rec), 0);
    uint8_t buf[512];
    memcpy(buf, rec.data, rec.size);
    sop_val nv = {buf, rec.size};
    int found = 0;
    for (int s = 0; s < buf[2]; s++) {
        uint8_t *slot = buf + 4 + 20 * s;
        if (slot[0] == 1) { /* version 1 */
            for (int i = 0; i < 4; i++)
                slot[4 + at + i] = (uint8_t)(word >> (8 * i));
            found = 1;
        }
    }
    assert_true(found);
    assert_int_equal(sop_update(content, &id, &nv), 0);
}

/* ---- tests ----------------------------------------------------------------- */

static void test_clean_lifecycle(void **state)
{
    (void)state;
    static const sop_metric metrics[] = {SOP_METRIC_L2, SOP_METRIC_COSINE, SOP_METRIC_IP};
    for (int m = 0; m < 3; m++) {
        char dir[32];
        snprintf(dir, sizeof dir, "clean%d", m);
        sop_db *db = open_db(dir);
        create(db, "v", metrics[m], 120);
        assert_clean(db); /* empty */
        write_items(db, "v", 0, 100, 0, 0);
        assert_clean(db); /* flat */
        write_items(db, "v", 100, N, 0, 5);
        assert_int_equal(stats(db, "v").version, 1); /* trained by itself */
        assert_clean(db);
        write_items(db, "v", 50, 150, 1, 3); /* updates, deletes */
        write_items(db, "v", 0, 30, 2, 0);   /* revives tombstones */
        assert_clean(db);
        /* an optimize stopped half-way, writes during the migration */
        assert_int_equal(optimize(db, 50, 1), 42);
        assert_clean(db);
        write_items(db, "v", 0, 60, 3, 4);
        write_items(db, "v", 250, 320, 3, 9);
        assert_clean(db);
        assert_int_equal(optimize(db, 50, 0), 0);
        sop_vstore_stat st = stats(db, "v");
        assert_int_equal(st.version, 2);
        assert_int_equal(st.optimizing, 0);
        assert_clean(db);
        /* and once more, in one batch */
        assert_int_equal(optimize(db, UINT32_MAX, 0), 0);
        assert_int_equal(stats(db, "v").version, 3);
        assert_clean(db);
        /* in a WRITE transaction, after writes of its own */
        sop_txn *t;
        sop_vstore *vs;
        float v[D];
        vec_of(999, 9, v);
        sop_vitem it = {"new", 3, v, D, NULL, 0};
        assert_int_equal(sop_txn_begin(db, SOP_TXN_WRITE, 0, &t), 0);
        assert_int_equal(sop_vstore_open(t, "v", &vs), 0);
        assert_int_equal(sop_vstore_upsert(vs, &it), 0);
        assert_int_equal(sop_vstore_delete(vs, "id0001", 6), 0);
        uint64_t p = 9;
        assert_int_equal(sop_vstore_check(t, "v", NULL, NULL, &p), 0);
        assert_int_equal(p, 0);
        sop_txn_rollback(t);
        assert_int_equal(sop_db_close(db), 0);
    }
}

static void test_bad_calls(void **state)
{
    (void)state;
    sop_db *db = open_db("badcalls");
    sop_txn *t;
    uint64_t p = 5;
    assert_int_equal(sop_txn_begin(db, SOP_TXN_READ, 0, &t), 0);
    assert_int_equal(sop_vstore_check(NULL, "v", NULL, NULL, &p), -EINVAL);
    assert_int_equal(p, 0);
    assert_int_equal(sop_vstore_check(t, NULL, NULL, NULL, NULL), -EINVAL);
    assert_int_equal(sop_vstore_check(t, "nope", NULL, NULL, &p), SOP_ENOTFOUND);
    assert_int_equal(sop_vstore_check(t, "../x", NULL, NULL, &p), SOP_ENAME);
    sop_txn_rollback(t);
    assert_int_equal(sop_db_close(db), 0);
}

/* An index entry removed: its item has no entry, and the count is off. */
static void test_entry_removed(void **state)
{
    (void)state;
    raw r = damage("d-removed", 0, "v.vec.ivf.1");
    uint8_t key[300];
    size_t kl;
    raw_nth(&r, 17, key, &kl, NULL, NULL);
    sop_val k = {key, kl};
    assert_int_equal(sop_remove(r.s, &k), 0);
    assert_damage_reported(&r, "has no index entry in version 1", "sop_vstore_count() says");
}

/* A second entry of an item, at another distance. */
static void test_entry_twice(void **state)
{
    (void)state;
    raw r = damage("d-twice", 0, "v.vec.ivf.1");
    uint8_t key[300], val[D * 4];
    size_t kl, vl;
    raw_nth(&r, 5, key, &kl, val, &vl);
    key[4] ^= 0x01; /* the distance's bits */
    sop_val k = {key, kl}, v = {val, vl};
    assert_int_equal(sop_add(r.s, &k, &v), 0);
    assert_damage_reported(&r, "its record says", "the distance in its key");
}

/* An entry moved to another cluster, its record changed to agree: only the
 * recomputed assignment can tell. */
static void test_wrong_cluster(void **state)
{
    (void)state;
    raw r = damage("d-cluster", 0, "v.vec.ivf.1");
    move_entry(&r, 3, AT_CLUSTER, (entry_word(&r, 3, AT_CLUSTER) + 3) % 8);
    assert_damage_reported(&r, "is nearer", NULL);
}

/* The distance of an entry and of its record changed alike. */
static void test_wrong_distance(void **state)
{
    (void)state;
    raw r = damage("d-dist", 0, "v.vec.ivf.1");
    uint32_t bits = entry_word(&r, 9, AT_DISTANCE);
    float dist;
    memcpy(&dist, &bits, 4);
    dist = dist * 1.5f + 0.5f;
    memcpy(&bits, &dist, 4);
    move_entry(&r, 9, AT_DISTANCE, bits);
    assert_damage_reported(&r, "the distance in its key", NULL);
}

/* A content record removed: its entry has no content, the count is off. */
static void test_content_removed(void **state)
{
    (void)state;
    raw r = damage("d-content", 0, "v.vec.content");
    sop_val k = {"id0100", 6};
    assert_int_equal(sop_remove(r.s, &k), 0);
    assert_damage_reported(&r, "index entry of id 'id0100' in version 1 has no content record",
                           NULL);
}

/* A lookup entry removed, another one renamed. */
static void test_lookup(void **state)
{
    (void)state;
    raw r = damage("d-lookup", 0, "v.vec.lku.1");
    uint8_t key[300];
    size_t kl;
    raw_nth(&r, 11, key, &kl, NULL, NULL);
    sop_val k = {key, kl};
    assert_int_equal(sop_remove(r.s, &k), 0);
    raw_nth(&r, 20, key, &kl, NULL, NULL);
    sop_val k2 = {key, kl}, v = {"someone", 7};
    assert_int_equal(sop_update(r.s, &k2, &v), 0);
    assert_damage_reported(&r, "is missing", "names 'someone'");
}

/* A stored centroid changed (the one in use stays in the process cache). */
static void test_centroid(void **state)
{
    (void)state;
    raw r = damage("d-cent", 0, "v.vec.cent.1");
    uint8_t key[8], val[D * 4];
    size_t kl, vl;
    raw_nth(&r, 2, key, &kl, val, &vl);
    float f[D];
    memcpy(f, val, sizeof f);
    for (int j = 0; j < D; j++)
        f[j] += 50.0f;
    sop_val k = {key, kl}, v = {f, sizeof f};
    assert_int_equal(sop_update(r.s, &k, &v), 0);
    assert_damage_reported(&r, "differ from the stored ones", "the distance in its key");
}

/* A store of a version that is not live. */
static void test_leftover_store(void **state)
{
    (void)state;
    raw r = damage("d-leftover", 0, NULL);
    sop_store *s;
    assert_int_equal(sop_store_create(r.t, "v.vec.lku.0", NULL, &s), 0);
    assert_damage_reported(&r, "store v.vec.lku.0 belongs to no live index version", NULL);
}

/* During a migration: the progress record removed; a next-version slot
 * and entry removed from an item the migration has passed. */
static void test_migration_progress(void **state)
{
    (void)state;
    raw r = damage("d-progress", 1, "v.vec.cfg");
    sop_val k = {"p", 1};
    assert_int_equal(sop_remove(r.s, &k), 0);
    assert_damage_reported(&r, "has no progress record", NULL);
}

static void test_migration_slot(void **state)
{
    (void)state;
    /* id0003 is among the first 80 ids: moved; drop its version 2 place */
    raw r = damage("d-slot", 1, "v.vec.content");
    sop_val id = {"id0003", 6}, rec;
    assert_int_equal(sop_get(r.s, &id, &rec), 0);
    uint8_t buf[512];
    memcpy(buf, rec.data, rec.size);
    size_t rl = rec.size;
    assert_int_equal(buf[2], 2);
    uint8_t *s2 = buf + 4 + 20, *s1 = buf + 4;
    if (s1[0] == 2) { /* keep the version 1 slot first */
        uint8_t tmp[20];
        memcpy(tmp, s1, 20), memcpy(s1, s2, 20), memcpy(s2, tmp, 20);
    }
    assert_int_equal(s2[0], 2);
    memmove(s2, s2 + 20, rl - (size_t)(s2 + 20 - buf));
    buf[2] = 1;
    sop_val nv = {buf, rl - 20};
    assert_int_equal(sop_update(r.s, &id, &nv), 0);
    assert_damage_reported(&r,
                           "id 'id0003' is not in version 2 although the migration has passed it",
                           "index entry of id 'id0003' in version 2, where its record does not");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_clean_lifecycle),  cmocka_unit_test(test_bad_calls),
        cmocka_unit_test(test_entry_removed),    cmocka_unit_test(test_entry_twice),
        cmocka_unit_test(test_wrong_cluster),    cmocka_unit_test(test_wrong_distance),
        cmocka_unit_test(test_content_removed),  cmocka_unit_test(test_lookup),
        cmocka_unit_test(test_centroid),         cmocka_unit_test(test_leftover_store),
        cmocka_unit_test(test_migration_progress), cmocka_unit_test(test_migration_slot),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
