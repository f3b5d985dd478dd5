/*
 * test_space.c - space stays bounded under a long update/delete workload:
 * compaction moves live images out of mostly-dead segments and deletes
 * them, so the files stay within a bounded factor of the live data.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crc32c.h"
#include "sop/sop.h"
#include "testutil.h"

static int KEYS = 10000;
#define ROUNDS 40

static sop_db_options small_files(void)
{
    sop_db_options o;
    sop_db_options_init(&o);
    o.segment_bytes = 1u << 20;
    o.checkpoint_bytes = 2u << 20;
    o.sync = SOP_SYNC_NONE; /* durability is not what this test is about */
    return o;
}

static void fill_value(char *v, size_t n, int key, int round)
{
    for (size_t i = 0; i < n; i++)
        v[i] = (char)('a' + (key * 7 + round * 13 + (int)i) % 26);
}

static size_t value_len(int key, int round)
{
    /* some values go to their own blobs (> 1024 = 4096 / 4) */
    return (key % 10 == 0) ? 1500 + (size_t)round : 100 + (size_t)((key + round) % 50);
}

static void check_content(sop_db *db, int round, int deleted_half)
{
    sop_txn *t;
    sop_store *s;
    assert_int_equal(sop_txn_begin(db, SOP_TXN_READ, 0, &t), 0);
    assert_int_equal(sop_store_open(t, "kv", &s), 0);
    uint64_t count;
    assert_int_equal(sop_store_count(s, &count), 0);
    assert_int_equal(count, deleted_half ? KEYS / 2 : KEYS);
    for (int k = 0; k < KEYS; k++) {
        char key[16], want[4096];
        snprintf(key, sizeof key, "k%05d", k);
        sop_val kv = {key, strlen(key)}, v;
        int rc = sop_get(s, &kv, &v);
        if (deleted_half && k % 2) {
            assert_int_equal(rc, SOP_ENOTFOUND);
            continue;
        }
        assert_int_equal(rc, 0);
        size_t n = value_len(k, round);
        fill_value(want, n, k, round);
        assert_int_equal(v.size, n);
        assert_memory_equal(v.data, want, n);
    }
    sop_txn_rollback(t);
}

static void test_space_bounded(void **state)
{
    (void)state;
    if (getenv("SOP_SPACE_KEYS"))
        KEYS = atoi(getenv("SOP_SPACE_KEYS"));
    const char *dir = tu_tmpdir("space");
    sop_db_options o = small_files();
    sop_db *db;
    assert_int_equal(sop_db_open(dir, &o, &db), 0);
    uint64_t live_max = 0, file_max = 0;
    double worst = 0;
    for (int round = 0; round < ROUNDS; round++) {
        for (int base = 0; base + 100 <= KEYS; base += 100) {
            sop_txn *t;
            sop_store *s;
            assert_int_equal(sop_txn_begin(db, SOP_TXN_WRITE, 0, &t), 0);
            int rc = sop_store_open(t, "kv", &s);
            if (rc == SOP_ENOTFOUND)
                rc = sop_store_create(t, "kv", NULL, &s);
            assert_int_equal(rc, 0);
            for (int k = base; k < base + 100; k++) {
                char key[16], val[4096];
                snprintf(key, sizeof key, "k%05d", k);
                size_t n = value_len(k, round);
                fill_value(val, n, k, round);
                sop_val kv = {key, strlen(key)}, vv = {val, n};
                assert_int_equal(sop_upsert(s, &kv, &vv), 0);
            }
            assert_int_equal(sop_txn_commit(t), 0);
        }
        sop_db_stat st;
        assert_int_equal(sop_db_stats(db, &st), 0);
        double ratio = (double)st.file_bytes / (double)st.live_bytes;
        if (round > 2 && ratio > worst)
            worst = ratio;
        if (st.live_bytes > live_max)
            live_max = st.live_bytes;
        if (st.file_bytes > file_max)
            file_max = st.file_bytes;
    }
    check_content(db, ROUNDS - 1, 0);
    /* delete half, then update the rest once more */
    sop_txn *t;
    sop_store *s;
    assert_int_equal(sop_txn_begin(db, SOP_TXN_WRITE, 0, &t), 0);
    assert_int_equal(sop_store_open(t, "kv", &s), 0);
    for (int k = 1; k < KEYS; k += 2) {
        char key[16];
        snprintf(key, sizeof key, "k%05d", k);
        sop_val kv = {key, strlen(key)};
        assert_int_equal(sop_remove(s, &kv), 0);
    }
    assert_int_equal(sop_txn_commit(t), 0);
    assert_int_equal(sop_db_checkpoint(db), 0);
    assert_int_equal(sop_db_checkpoint(db), 0);
    sop_db_stat st;
    assert_int_equal(sop_db_stats(db, &st), 0);
    fprintf(stderr, "space: live %llu bytes, files %llu bytes (%.2fx) after deleting half; worst "
                    "ratio during updates %.2fx; %llu segments\n",
            (unsigned long long)st.live_bytes, (unsigned long long)st.file_bytes,
            (double)st.file_bytes / (double)st.live_bytes, worst, (unsigned long long)st.segments);
    /* 2x live + 4 MiB slack + the open segment (1 MiB) + the registry */
    assert_true(st.file_bytes <= 2 * st.live_bytes + (6u << 20));
    /* during the updates: as above plus the dead images written between
     * checkpoints (checkpoint_bytes), plus 1 MiB since the open segment is
     * preallocated: its zeros up to segment_bytes count in file_bytes */
    assert_true(file_max <= 2 * live_max + (9u << 20));
    check_content(db, ROUNDS - 1, 1);
    uint64_t problems = 1;
    assert_int_equal(sop_db_check(db, NULL, NULL, &problems), 0);
    assert_int_equal(sop_db_close(db), 0);
    assert_int_equal(sop_db_open(dir, &o, &db), 0);
    check_content(db, ROUNDS - 1, 1);
    assert_int_equal(sop_db_check(db, NULL, NULL, &problems), 0);
    assert_int_equal(sop_db_close(db), 0);
}

/* A READ snapshot older than a compaction still reads its data: the
 * emptied segment is kept until the snapshot ends. With map_reads, the
 * segment also stays mapped until then (the snapshot's reads, and the
 * cached nodes whose bytes are in the map, would otherwise touch unmapped
 * memory), and is unmapped and deleted after. */
static void snapshot_survives_compaction(int map_reads)
{
    const char *dir = tu_tmpdir(map_reads ? "space-snap-map" : "space-snap");
    sop_db_options o = small_files();
    o.map_reads = map_reads;
    sop_db *db;
    assert_int_equal(sop_db_open(dir, &o, &db), 0);
    sop_txn *t, *r;
    sop_store *s, *rs;
    for (int round = 0; round < 12; round++) {
        assert_int_equal(sop_txn_begin(db, SOP_TXN_WRITE, 0, &t), 0);
        int rc = sop_store_open(t, "kv", &s);
        if (rc == SOP_ENOTFOUND)
            rc = sop_store_create(t, "kv", NULL, &s);
        assert_int_equal(rc, 0);
        for (int k = 0; k < KEYS; k++) {
            char key[16], val[4096];
            snprintf(key, sizeof key, "k%05d", k);
            size_t n = value_len(k, round);
            fill_value(val, n, k, round);
            sop_val kv = {key, strlen(key)}, vv = {val, n};
            assert_int_equal(sop_upsert(s, &kv, &vv), 0);
        }
        assert_int_equal(sop_txn_commit(t), 0);
        if (round == 0) {
            /* a reader of round 0 stays open through the rest */
            assert_int_equal(sop_txn_begin(db, SOP_TXN_READ, 0, &r), 0);
            assert_int_equal(sop_store_open(r, "kv", &rs), 0);
        }
    }
    assert_int_equal(sop_db_checkpoint(db), 0);
    for (int k = 0; k < KEYS; k++) {
        char key[16], want[4096];
        snprintf(key, sizeof key, "k%05d", k);
        sop_val kv = {key, strlen(key)}, v;
        assert_int_equal(sop_get(rs, &kv, &v), 0);
        size_t n = value_len(k, 0);
        fill_value(want, n, k, 0);
        assert_int_equal(v.size, n);
        assert_memory_equal(v.data, want, n);
    }
    sop_txn_rollback(r);
    assert_int_equal(sop_db_checkpoint(db), 0);
    check_content(db, 11, 0);
    assert_int_equal(sop_db_close(db), 0);
}

static void test_snapshot_survives_compaction(void **state)
{
    (void)state;
    snapshot_survives_compaction(0);
    snapshot_survives_compaction(1);
}

static void collect(const char *problem, void *ctx)
{
    int *shared = ctx;
    if (strstr(problem, "share bytes"))
        (*shared)++;
}

/* sop_db_check's space accounting: two live handles pointing at the same
 * bytes (a double allocation) are reported. The registry file is edited by
 * hand (format in core/src/registry.h): the handle of one live id is copied
 * over another's, with the block's CRC recomputed. */
static void test_check_finds_shared_bytes(void **state)
{
    (void)state;
    const char *dir = tu_tmpdir("space-check");
    sop_db *db;
    sop_txn *t;
    sop_store *s;
    assert_int_equal(sop_db_open(dir, NULL, &db), 0);
    assert_int_equal(sop_txn_begin(db, SOP_TXN_WRITE, 0, &t), 0);
    assert_int_equal(sop_store_create(t, "a", NULL, &s), 0);
    assert_int_equal(sop_store_create(t, "b", NULL, &s), 0);
    assert_int_equal(sop_txn_commit(t), 0);
    assert_int_equal(sop_db_close(db), 0); /* checkpoints: the registry file is current */

    char path[1024];
    snprintf(path, sizeof path, "%s/registry", dir);
    FILE *f = fopen(path, "r+b");
    assert_non_null(f);
    unsigned char blk[4096];
    assert_int_equal(fread(blk, 1, sizeof blk, f), sizeof blk);
    /* ids 1.. are in slots at 16 + 32 * id: copy the location (seg, len,
     * off) of the first live id after the catalog root onto the next one */
    int src = -1, dst = -1;
    for (int id = 2; id < 127 && dst < 0; id++) {
        unsigned char *h = blk + 16 + 32 * id;
        uint32_t seg = (uint32_t)(h[0] | h[1] << 8 | h[2] << 16 | (uint32_t)h[3] << 24);
        if (!seg)
            continue;
        if (src < 0)
            src = id;
        else
            dst = id;
    }
    assert_true(src > 0 && dst > 0);
    memcpy(blk + 16 + 32 * dst, blk + 16 + 32 * src, 16);
    uint32_t crc = sop__crc32c(blk + 4, sizeof blk - 4, 0);
    for (int i = 0; i < 4; i++)
        blk[i] = (unsigned char)(crc >> (8 * i));
    assert_int_equal(fseek(f, 0, SEEK_SET), 0);
    assert_int_equal(fwrite(blk, 1, sizeof blk, f), sizeof blk);
    assert_int_equal(fclose(f), 0);
    /* the double-write copy of the last checkpoint would restore the block */
    snprintf(path, sizeof path, "%s/registry.dw", dir);
    f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fclose(f), 0);

    assert_int_equal(sop_db_open(dir, NULL, &db), 0);
    int shared = 0;
    uint64_t problems = 0;
    assert_int_equal(sop_db_check(db, collect, &shared, &problems), SOP_ECORRUPT);
    assert_true(problems > 0);
    assert_int_equal(shared, 1);
    assert_int_equal(sop_db_close(db), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_space_bounded),
        cmocka_unit_test(test_snapshot_survives_compaction),
        cmocka_unit_test(test_check_finds_shared_bytes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
