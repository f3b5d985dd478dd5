/*
 * test_registry.c - the registry's double-write repair at open and what
 * recovery accepts of the registry file (formats in core/src/registry.h
 * and db.c; protocol in docs/design/storage.md, "Checkpoints and
 * recovery").
 *
 *   - a crash in the first checkpoint of a new database (no checkpoint
 *     record yet, a registry block torn, registry.dw complete) is repaired;
 *   - the same with registry.dw stamped with a later checkpoint than the
 *     one that can have been interrupted, or with a block image of another
 *     checkpoint than its header's: the file is not applied (the registry
 *     is left as it was), and the torn block is SOP_ECORRUPT;
 *   - a registry.dw of another database in a new directory (the fuzz_open
 *     finding): ignored, the database starts empty and stays clean;
 *   - a registry whose handles are newer than the log (no checkpoint
 *     record, no segment): SOP_ECORRUPT at the first open, not a database
 *     whose check is clean until new commits reach those commit numbers.
 *
 * The files are changed by hand while the database is closed.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bytes.h"
#include "crc32c.h"
#include "registry.h"
#include "sop/sop.h"
#include "testutil.h"

#define DW_HDR 32 /* registry.c */

/* ------------------------------------------------------------------ */
/* Files                                                              */
/* ------------------------------------------------------------------ */

static void file_path(const char *dir, const char *name, char *buf, size_t n)
{
    int w = snprintf(buf, n, "%s/%s", dir, name);
    assert_true(w > 0 && (size_t)w < n);
}

static uint8_t *slurp(const char *dir, const char *name, size_t *len)
{
    char path[512];
    file_path(dir, name, path, sizeof path);
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *p = malloc((size_t)n + 1);
    assert_non_null(p);
    assert_int_equal(fread(p, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    *len = (size_t)n;
    return p;
}

static void spew(const char *dir, const char *name, const void *p, size_t n)
{
    char path[512];
    file_path(dir, name, path, sizeof path);
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(p, 1, n, f), n);
    assert_int_equal(fclose(f), 0);
}

/* Restamps registry.dw with checkpoint @hdr_no in its header and @blk_no
 * in every block image, checksums recomputed. */
static void restamp_dw(const char *dir, uint64_t hdr_no, uint64_t blk_no)
{
    size_t len;
    uint8_t *p = slurp(dir, "registry.dw", &len);
    assert_true(len >= DW_HDR + SOP__REG_BLOCK);
    sop__put64(p + 8, hdr_no);
    sop__put32(p, sop__crc32c(p + 4, DW_HDR - 4, 0));
    for (size_t off = DW_HDR; off + SOP__REG_BLOCK <= len; off += SOP__REG_BLOCK) {
        sop__put64(p + off + 8, blk_no);
        sop__put32(p + off, sop__crc32c(p + off + 4, SOP__REG_BLOCK - 4, 0));
    }
    spew(dir, "registry.dw", p, len);
    free(p);
}

/* ------------------------------------------------------------------ */
/* Databases                                                          */
/* ------------------------------------------------------------------ */

static int open_db(const char *dir, sop_db **db)
{
    sop_db_options o;
    sop_db_options_init(&o);
    o.sync = SOP_SYNC_NONE;
    int rc = sop_db_open(dir, &o, db);
    if (rc) {
        sop_db_close(*db);
        *db = NULL;
    }
    return rc;
}

static void check_clean(sop_db *db)
{
    uint64_t problems = 1;
    assert_int_equal(sop_db_check(db, NULL, NULL, &problems), SOP_OK);
    assert_int_equal(problems, 0);
}

static void put(sop_db *db, const char *key, const char *val)
{
    sop_txn *t;
    sop_store *s;
    assert_int_equal(sop_txn_begin(db, SOP_TXN_WRITE, 0, &t), SOP_OK);
    int rc = sop_store_open(t, "s", &s);
    if (rc == SOP_ENOTFOUND)
        rc = sop_store_create(t, "s", NULL, &s);
    assert_int_equal(rc, SOP_OK);
    sop_val k = {key, strlen(key)}, v = {val, strlen(val)};
    assert_int_equal(sop_upsert(s, &k, &v), SOP_OK);
    assert_int_equal(sop_txn_commit(t), SOP_OK);
}

static void expect(sop_db *db, const char *key, const char *val)
{
    sop_txn *t;
    sop_store *s;
    sop_val v;
    assert_int_equal(sop_txn_begin(db, SOP_TXN_READ, 0, &t), SOP_OK);
    assert_int_equal(sop_store_open(t, "s", &s), SOP_OK);
    sop_val k = {key, strlen(key)};
    assert_int_equal(sop_get(s, &k, &v), SOP_OK);
    assert_int_equal(v.size, strlen(val));
    assert_memory_equal(v.data, val, v.size);
    sop_txn_rollback(t);
}

/* A new database opened and closed once: its only checkpoint (no. 1, in
 * ckpt.1) wrote registry block 0, which registry.dw holds. Then the state
 * a crash in that checkpoint between the in-place write and the record
 * leaves: no checkpoint record, block 0 torn (its second half garbage).
 * Returns the registry as the checkpoint wrote it (@len bytes). */
static uint8_t *first_ckpt_torn(const char *dir, size_t *len)
{
    sop_db *db;
    assert_int_equal(open_db(dir, &db), SOP_OK);
    assert_int_equal(sop_db_close(db), SOP_OK);
    size_t n;
    uint8_t *dw = slurp(dir, "registry.dw", &n);
    assert_true(n == DW_HDR + SOP__REG_BLOCK);
    assert_int_equal(sop__get64(dw + 8), 1);
    free(dw);
    spew(dir, "ckpt.1", "", 0);
    uint8_t *reg = slurp(dir, "registry", len);
    assert_true(*len >= SOP__REG_BLOCK);
    uint8_t *torn = malloc(*len);
    assert_non_null(torn);
    memcpy(torn, reg, *len);
    for (size_t i = SOP__REG_BLOCK / 2; i < SOP__REG_BLOCK; i++)
        torn[i] = (uint8_t)(i * 37 + 11);
    spew(dir, "registry", torn, *len);
    free(torn);
    return reg;
}

/* ------------------------------------------------------------------ */
/* Tests                                                              */
/* ------------------------------------------------------------------ */

static void test_first_checkpoint_repaired(void **state)
{
    (void)state;
    const char *dir = tu_tmpdir("reg-first");
    size_t len;
    uint8_t *reg = first_ckpt_torn(dir, &len);
    sop_db *db;
    assert_int_equal(open_db(dir, &db), SOP_OK);
    size_t len2;
    uint8_t *after = slurp(dir, "registry", &len2);
    assert_int_equal(len2, len);
    assert_memory_equal(after, reg, len); /* restored */
    free(after);
    check_clean(db);
    put(db, "k", "v");
    assert_int_equal(sop_db_close(db), SOP_OK);
    assert_int_equal(open_db(dir, &db), SOP_OK);
    check_clean(db);
    expect(db, "k", "v");
    assert_int_equal(sop_db_close(db), SOP_OK);
    free(reg);
}

static void test_dw_of_later_checkpoint_ignored(void **state)
{
    (void)state;
    /* header and blocks of checkpoint 2, when 1 is the one that can have
     * been interrupted; then header 1 with blocks of checkpoint 2 */
    static const uint64_t stamps[][2] = {{2, 2}, {1, 2}};
    for (size_t i = 0; i < sizeof stamps / sizeof *stamps; i++) {
        char name[32];
        snprintf(name, sizeof name, "reg-later-%zu", i);
        const char *dir = tu_tmpdir(name);
        size_t len, len2;
        uint8_t *reg = first_ckpt_torn(dir, &len);
        restamp_dw(dir, stamps[i][0], stamps[i][1]);
        uint8_t *torn = slurp(dir, "registry", &len);
        sop_db *db;
        assert_int_equal(open_db(dir, &db), SOP_ECORRUPT);
        uint8_t *after = slurp(dir, "registry", &len2);
        assert_int_equal(len2, len);
        assert_memory_equal(after, torn, len); /* not written */
        free(after);
        free(torn);
        free(reg);
    }
}

static void test_foreign_dw_in_new_directory(void **state)
{
    (void)state;
    /* a database with data whose last checkpoint is not the first */
    const char *src = tu_tmpdir("reg-foreign-src");
    sop_db *db;
    assert_int_equal(open_db(src, &db), SOP_OK);
    put(db, "a", "1");
    assert_int_equal(sop_db_checkpoint(db), SOP_OK);
    put(db, "b", "2");
    assert_int_equal(sop_db_close(db), SOP_OK);
    size_t len;
    uint8_t *dw = slurp(src, "registry.dw", &len);
    assert_true(sop__get64(dw + 8) > 1);

    /* its registry.dw alone, next to an empty registry */
    const char *dir = tu_tmpdir("reg-foreign");
    spew(dir, "registry", "", 0);
    spew(dir, "registry.dw", dw, len);
    spew(dir, "LOCK", "", 0);
    free(dw);
    assert_int_equal(open_db(dir, &db), SOP_OK);
    check_clean(db);
    put(db, "k", "v");
    assert_int_equal(sop_db_close(db), SOP_OK);
    assert_int_equal(open_db(dir, &db), SOP_OK);
    check_clean(db);
    expect(db, "k", "v");
    assert_int_equal(sop_db_close(db), SOP_OK);
}

static void test_registry_newer_than_log(void **state)
{
    (void)state;
    const char *src = tu_tmpdir("reg-newer-src");
    sop_db *db;
    assert_int_equal(open_db(src, &db), SOP_OK);
    put(db, "a", "1");
    put(db, "b", "2");
    assert_int_equal(sop_db_close(db), SOP_OK);
    size_t len;
    uint8_t *reg = slurp(src, "registry", &len);

    /* its registry without the log and the checkpoint records */
    const char *dir = tu_tmpdir("reg-newer");
    spew(dir, "registry", reg, len);
    spew(dir, "LOCK", "", 0);
    free(reg);
    assert_int_equal(open_db(dir, &db), SOP_ECORRUPT);
    /* and it stays refused */
    assert_int_equal(open_db(dir, &db), SOP_ECORRUPT);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_first_checkpoint_repaired),
        cmocka_unit_test(test_dw_of_later_checkpoint_ignored),
        cmocka_unit_test(test_foreign_dw_in_new_directory),
        cmocka_unit_test(test_registry_newer_than_log),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
