/*
 * test_log.c - the log's preallocation and where the log ends (format in
 * core/src/log.h): the last segment is extended with zeros ahead of the
 * append position in chunks, a commit inside the preallocated area is one
 * write (no metadata change, no probe for a next segment), sealed segments
 * end exactly at their records, and recovery at open keeps exactly the
 * committed data whatever follows the records: zeros, garbage, a valid
 * record beyond zeros (a torn write of an earlier incarnation) or a valid
 * record whose csn is older than what was applied.
 *
 * The segment files are inspected and damaged by hand while the database
 * is closed.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "bytes.h"
#include "fault_vfs.h"
#include "log.h"
#include "sop/sop.h"
#include "testutil.h"

#define CHUNK SOP__LOG_PREALLOC
#define SEG_MIN (1u << 20) /* the smallest segment_bytes the engine accepts */

/* ------------------------------------------------------------------ */
/* Files                                                              */
/* ------------------------------------------------------------------ */

static void seg_path(const char *dir, uint32_t seg, char *buf, size_t n)
{
    /* the result is checked: a truncated path would be a test bug */
    int w = snprintf(buf, n, "%s/seg-%08u", dir, seg);
    assert_true(w > 0 && (size_t)w < n);
}

/* Size of segment @seg, or 0 when it does not exist. */
static uint64_t seg_size(const char *dir, uint32_t seg)
{
    char path[1024];
    seg_path(dir, seg, path, sizeof path);
    struct stat st;
    return stat(path, &st) ? 0 : (uint64_t)st.st_size;
}

static uint8_t *slurp(const char *dir, uint32_t seg, size_t *len)
{
    char path[1024];
    seg_path(dir, seg, path, sizeof path);
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

static void write_at(const char *dir, uint32_t seg, uint64_t off, const void *p, size_t n)
{
    char path[1024];
    seg_path(dir, seg, path, sizeof path);
    FILE *f = fopen(path, "r+b");
    assert_non_null(f);
    assert_int_equal(fseek(f, (long)off, SEEK_SET), 0);
    assert_int_equal(fwrite(p, 1, n, f), n);
    assert_int_equal(fclose(f), 0);
}

/* Where the records of segment @seg end. Every record up to there must be
 * valid and everything after it zeros (the preallocated area). */
static uint64_t recs_end(const char *dir, uint32_t seg)
{
    size_t len;
    uint8_t *p = slurp(dir, seg, &len);
    uint64_t off = 0;
    while (off + SOP__REC_HDR <= len) {
        int type;
        uint64_t csn;
        int plen = sop__rec_check(p + off, len - off, &type, &csn);
        if (plen < 0)
            break;
        off += SOP__REC_HDR + (uint64_t)plen;
    }
    for (uint64_t i = off; i < len; i++)
        if (p[i]) {
            fail_msg("segment %u: byte %llu after the records (which end at %llu) is not zero",
                     seg, (unsigned long long)i, (unsigned long long)off);
        }
    free(p);
    return off;
}

static int seg_exists(const char *dir, uint32_t seg)
{
    char path[1024];
    seg_path(dir, seg, path, sizeof path);
    struct stat st;
    return stat(path, &st) == 0;
}

/* The highest segment number present (compaction may delete lower ones). */
static uint32_t last_seg(const char *dir)
{
    uint32_t last = 0;
    for (uint32_t s = 1; s < 1000; s++)
        if (seg_exists(dir, s))
            last = s;
    assert_true(last > 0);
    return last;
}

/* ------------------------------------------------------------------ */
/* Data                                                               */
/* ------------------------------------------------------------------ */

static sop_db *open_db(const char *dir, uint64_t seg_bytes, sop_vfs *vfs)
{
    sop_db_options o;
    sop_db_options_init(&o);
    if (seg_bytes)
        o.segment_bytes = seg_bytes;
    o.vfs = vfs;
    sop_db *db = NULL;
    int rc = sop_db_open(dir, &o, &db);
    if (rc)
        fail_msg("open %s: %s: %s", dir, sop_err_name(rc), db ? sop_db_errmsg(db) : "");
    return db;
}

/* One durable transaction: @key = @val in store @store (created if need be). */
static void put(sop_db *db, const char *store, const char *key, const void *val, size_t n)
{
    sop_txn *t;
    sop_store *s;
    assert_int_equal(sop_txn_begin(db, SOP_TXN_WRITE, 0, &t), 0);
    int rc = sop_store_open(t, store, &s);
    if (rc == SOP_ENOTFOUND)
        rc = sop_store_create(t, store, NULL, &s);
    assert_int_equal(rc, 0);
    sop_val k = {key, strlen(key)}, v = {val, n};
    assert_int_equal(sop_upsert(s, &k, &v), 0);
    rc = sop_txn_commit(t);
    if (rc)
        fail_msg("commit %s/%s: %s: %s", store, key, sop_err_name(rc), sop_db_errmsg(db));
}

static void put_str(sop_db *db, const char *store, const char *key, const char *val)
{
    put(db, store, key, val, strlen(val));
}

/* Asserts @store/@key holds @val (NULL: absent). */
static void expect(sop_db *db, const char *store, const char *key, const char *val)
{
    sop_txn *t;
    sop_store *s;
    assert_int_equal(sop_txn_begin(db, SOP_TXN_READ, 0, &t), 0);
    assert_int_equal(sop_store_open(t, store, &s), 0);
    sop_val k = {key, strlen(key)}, v;
    int rc = sop_get(s, &k, &v);
    if (!val) {
        assert_int_equal(rc, SOP_ENOTFOUND);
    } else {
        assert_int_equal(rc, 0);
        assert_int_equal(v.size, strlen(val));
        assert_memory_equal(v.data, val, v.size);
    }
    sop_txn_rollback(t);
}

/* Value i of the bulk tests: 3000 bytes derived from i. */
#define BULK 3000
static void bulk_val(int i, char *v)
{
    for (int j = 0; j < BULK; j++)
        v[j] = (char)('a' + (i * 7 + j) % 26);
}

static void bulk_put(sop_db *db, int i)
{
    char key[32], v[BULK];
    snprintf(key, sizeof key, "b%06d", i);
    bulk_val(i, v);
    put(db, "bulk", key, v, BULK);
}

/* Every bulk value 0..n-1 present and exact, the count n, check clean. */
static void bulk_verify(sop_db *db, int n)
{
    sop_txn *t;
    sop_store *s;
    assert_int_equal(sop_txn_begin(db, SOP_TXN_READ, 0, &t), 0);
    assert_int_equal(sop_store_open(t, "bulk", &s), 0);
    for (int i = 0; i < n; i++) {
        char key[32], want[BULK];
        snprintf(key, sizeof key, "b%06d", i);
        bulk_val(i, want);
        sop_val k = {key, strlen(key)}, v;
        assert_int_equal(sop_get(s, &k, &v), 0);
        assert_int_equal(v.size, BULK);
        assert_memory_equal(v.data, want, BULK);
    }
    uint64_t count = 0;
    assert_int_equal(sop_store_count(s, &count), 0);
    assert_int_equal(count, (uint64_t)n);
    sop_txn_rollback(t);
    uint64_t problems = 1;
    assert_int_equal(sop_db_check(db, NULL, NULL, &problems), 0);
    assert_int_equal(problems, 0);
}

/* ------------------------------------------------------------------ */
/* Preallocation                                                      */
/* ------------------------------------------------------------------ */

/* The last segment grows ahead of the records in chunks of zeros; a commit
 * inside the preallocated area is one write and one sync, and probes for
 * no next segment. */
static void test_extends_in_chunks(void **state)
{
    (void)state;
    const char *dir = tu_tmpdir("log-chunks");
    sop_vfs *vfs = fault_vfs_new(NULL);
    assert_non_null(vfs);
    sop_db *db = open_db(dir, 0, vfs);
    put_str(db, "kv", "a", "1");
    uint64_t end = recs_end(dir, 1), size = seg_size(dir, 1);
    assert_true(size > end);
    assert_int_equal(size % CHUNK, 0);

    fault_vfs_reset_ops(vfs);
    put_str(db, "kv", "b", "2");
    assert_int_equal(fault_vfs_ops(vfs, FAULT_OP_WRITE), 1);
    assert_int_equal(fault_vfs_ops(vfs, FAULT_OP_SYNC), 1);
    assert_int_equal(fault_vfs_ops(vfs, FAULT_OP_OPEN | FAULT_OP_OPEN_CREATE), 0);
    assert_int_equal(fault_vfs_ops(vfs, FAULT_OP_TRUNCATE), 0);
    assert_int_equal(seg_size(dir, 1), size);

    /* past the first chunk: the file grows by whole chunks, always ahead */
    int extended = 0;
    for (int i = 0; recs_end(dir, 1) < 2 * (uint64_t)CHUNK + CHUNK / 2; i++) {
        uint64_t before = seg_size(dir, 1);
        fault_vfs_reset_ops(vfs);
        bulk_put(db, i);
        uint64_t after = seg_size(dir, 1), e = recs_end(dir, 1);
        assert_int_equal(after % CHUNK, 0);
        assert_true(after >= e && after - e <= CHUNK);
        if (after != before) {
            extended++;
            assert_true(fault_vfs_ops(vfs, FAULT_OP_WRITE) > 1); /* zeros, then the records */
        } else {
            assert_int_equal(fault_vfs_ops(vfs, FAULT_OP_WRITE), 1);
        }
    }
    assert_int_equal(extended, 2);
    assert_int_equal(sop_db_close(db), 0);
    fault_vfs_free(vfs);
}

/* A commit that grows the file by a chunk or more by itself is written
 * once, without zeros over its own range first, and leaves the file at its
 * end; the next small commit preallocates again. */
static void test_bulk_append_no_zeros(void **state)
{
    (void)state;
    const char *dir = tu_tmpdir("log-bulk");
    sop_vfs *vfs = fault_vfs_new(NULL);
    assert_non_null(vfs);
    sop_db *db = open_db(dir, 0, vfs);
    put_str(db, "kv", "a", "1");
    size_t big = 5 * (size_t)CHUNK / 2; /* past the preallocated chunk by more than a chunk */
    char *v = malloc(big);
    assert_non_null(v);
    memset(v, 'x', big);
    fault_vfs_reset_ops(vfs);
    put(db, "big", "k", v, big);
    assert_int_equal(fault_vfs_ops(vfs, FAULT_OP_WRITE), 1);
    assert_int_equal(seg_size(dir, 1), recs_end(dir, 1));
    put_str(db, "kv", "b", "2");
    assert_true(seg_size(dir, 1) > recs_end(dir, 1));
    assert_int_equal(seg_size(dir, 1) % CHUNK, 0);
    assert_int_equal(sop_db_close(db), 0);
    db = open_db(dir, 0, NULL);
    expect(db, "kv", "b", "2");
    sop_txn *t;
    sop_store *s;
    assert_int_equal(sop_txn_begin(db, SOP_TXN_READ, 0, &t), 0);
    assert_int_equal(sop_store_open(t, "big", &s), 0);
    sop_val k = {"k", 1}, got;
    assert_int_equal(sop_get(s, &k, &got), 0);
    assert_int_equal(got.size, big);
    assert_memory_equal(got.data, v, big);
    sop_txn_rollback(t);
    assert_int_equal(sop_db_close(db), 0);
    free(v);
    fault_vfs_free(vfs);
}

/* ------------------------------------------------------------------ */
/* Reopening                                                          */
/* ------------------------------------------------------------------ */

/* A database with some committed data, closed (its last segment holds
 * preallocated zeros after the records). */
static void make_db(const char *dir)
{
    sop_db *db = open_db(dir, 0, NULL);
    for (int i = 0; i < 20; i++)
        bulk_put(db, i);
    put_str(db, "kv", "k", "v0");
    assert_int_equal(sop_db_close(db), 0);
    assert_true(seg_size(dir, 1) > recs_end(dir, 1));
}

/* Opening cuts the preallocated zeros off (recovery keeps nothing after
 * the last valid record); commits go on, preallocating again. */
static void test_reopen_clean(void **state)
{
    (void)state;
    const char *dir = tu_tmpdir("log-reopen");
    make_db(dir);
    uint64_t end = recs_end(dir, 1);
    sop_db *db = open_db(dir, 0, NULL);
    assert_int_equal(seg_size(dir, 1), end);
    bulk_verify(db, 20);
    expect(db, "kv", "k", "v0");
    bulk_put(db, 20);
    assert_true(seg_size(dir, 1) > recs_end(dir, 1));
    assert_int_equal(sop_db_close(db), 0);
    db = open_db(dir, 0, NULL);
    bulk_verify(db, 21);
    assert_int_equal(sop_db_close(db), 0);
}

/* Non-zero garbage right after the records (a torn append): cut, nothing
 * lost, and later commits are not confused by it. */
static void test_torn_tail_garbage(void **state)
{
    (void)state;
    const char *dir = tu_tmpdir("log-garbage");
    make_db(dir);
    uint64_t end = recs_end(dir, 1);
    /* a record header that starts right but whose body never arrived, then
     * random bytes */
    uint8_t junk[700];
    uint64_t rs = 12345;
    for (size_t i = 0; i < sizeof junk; i++)
        junk[i] = (uint8_t)tu_rand(&rs);
    junk[0] = 0x53, junk[1] = 0x4F, junk[2] = 0x50, junk[3] = 0x52; /* "SOPR" */
    write_at(dir, 1, end, junk, sizeof junk);

    sop_db *db = open_db(dir, 0, NULL);
    assert_int_equal(seg_size(dir, 1), end);
    bulk_verify(db, 20);
    expect(db, "kv", "k", "v0");
    put_str(db, "kv", "k", "v1");
    bulk_put(db, 20);
    assert_int_equal(sop_db_close(db), 0);
    db = open_db(dir, 0, NULL);
    bulk_verify(db, 21);
    expect(db, "kv", "k", "v1");
    assert_int_equal(sop_db_close(db), 0);
}

/* The bytes of the records [from, to) of segment 1. */
static uint8_t *copy_recs(const char *dir, uint64_t from, uint64_t to)
{
    size_t len;
    uint8_t *p = slurp(dir, 1, &len);
    assert_true(from < to && to <= len);
    uint8_t *r = malloc(to - from);
    assert_non_null(r);
    memcpy(r, p + from, to - from);
    free(p);
    return r;
}

/* Zeros after the records, then a valid record: what a power loss can leave
 * of two unsynced commits whose first one's pages were lost and whose
 * second one's survived. Recovery must cut it, or the next commit (of the
 * same length and csn as the lost one) would end right before it and make
 * it part of the log. */
static void test_zeros_then_valid_record(void **state)
{
    (void)state;
    const char *base = tu_tmpdir("log-zeros");
    char dir[1024], other[1024];
    snprintf(dir, sizeof dir, "%s/db", base);
    snprintf(other, sizeof other, "%s/other", base);
    make_db(dir);
    uint64_t end = recs_end(dir, 1);
    assert_int_equal(tu_copydir(dir, other), 0);

    /* the earlier incarnation: "k" = "new", then "lost" = "yes" */
    sop_db *db = open_db(other, 0, NULL);
    put_str(db, "kv", "k", "new");
    uint64_t len_new = recs_end(other, 1) - end;
    put_str(db, "kv", "lost", "yes");
    uint64_t end2 = recs_end(other, 1);
    assert_int_equal(sop_db_close(db), 0);
    uint8_t *lost = copy_recs(other, end + len_new, end2);
    write_at(dir, 1, end + len_new, lost, end2 - end - len_new);
    free(lost);

    db = open_db(dir, 0, NULL);
    expect(db, "kv", "k", "v0");
    expect(db, "kv", "lost", NULL);
    put_str(db, "kv", "k", "new"); /* the same commit again: same length */
    assert_int_equal(sop_db_close(db), 0);
    db = open_db(dir, 0, NULL);
    expect(db, "kv", "k", "new");
    expect(db, "kv", "lost", NULL);
    assert_int_equal(seg_size(dir, 1), end + len_new); /* the stale bytes are gone */
    bulk_verify(db, 20);
    assert_int_equal(sop_db_close(db), 0);
}

/* Moves the transaction in @p (images, then its commit record) by @delta
 * bytes: the commit record's handles point at the images' new place. */
static void move_txn(uint8_t *p, size_t n, uint64_t delta)
{
    for (size_t off = 0; off < n;) {
        int type;
        uint64_t csn;
        int plen = sop__rec_check(p + off, n - off, &type, &csn);
        assert_true(plen >= 0);
        if (type == SOP__REC_COMMIT) {
            uint8_t *pl = p + off + SOP__REC_HDR;
            uint32_t cnt = sop__get32(pl);
            for (uint32_t i = 0; i < cnt; i++) {
                uint8_t *h = pl + SOP__COMMIT_HDR + (size_t)i * SOP__COMMIT_ENTRY + 8;
                sop__put64(h + 8, sop__get64(h + 8) + delta);
            }
            sop__rec_seal(p + off, type, csn, (uint32_t)plen);
        }
        off += SOP__REC_HDR + (size_t)plen;
    }
}

/* A valid transaction right after the records whose csn is older than the
 * csn already applied (a leftover of an earlier incarnation, at the place
 * it was written) is the end of the log, never applied: applying it would
 * bring back a version of "k" that was never committed in this history. */
static void test_stale_csn_not_applied(void **state)
{
    (void)state;
    const char *base = tu_tmpdir("log-stale");
    char dir[1024], other[1024];
    snprintf(dir, sizeof dir, "%s/db", base);
    snprintf(other, sizeof other, "%s/other", base);
    make_db(dir);
    uint64_t end = recs_end(dir, 1);
    assert_int_equal(tu_copydir(dir, other), 0);

    /* the earlier incarnation: "k" = "stale" with the next csn */
    sop_db *db = open_db(other, 0, NULL);
    put_str(db, "kv", "k", "stale");
    uint64_t end_other = recs_end(other, 1);
    assert_int_equal(sop_db_close(db), 0);
    uint8_t *stale = copy_recs(other, end, end_other);

    /* this history: "k" = "new" (the same csn and versions), then a commit
     * to another store, so the stale images are not older than the
     * registry's and would win if the record were applied */
    db = open_db(dir, 0, NULL);
    put_str(db, "kv", "k", "new");
    put_str(db, "other", "x", "1");
    assert_int_equal(sop_db_close(db), 0);
    uint64_t end2 = recs_end(dir, 1);
    move_txn(stale, end_other - end, end2 - end);
    write_at(dir, 1, end2, stale, end_other - end);
    free(stale);

    db = open_db(dir, 0, NULL);
    expect(db, "kv", "k", "new");
    expect(db, "other", "x", "1");
    assert_int_equal(seg_size(dir, 1), end2); /* cut there, like a torn tail */
    bulk_verify(db, 20);
    put_str(db, "kv", "k", "newer");
    assert_int_equal(sop_db_close(db), 0);
    db = open_db(dir, 0, NULL);
    expect(db, "kv", "k", "newer");
    assert_int_equal(sop_db_close(db), 0);
}

/* Reseals every record of @p[0..n) whose payload @edit changed (the
 * damage a checksum over the record cannot see). */
static void reseal_all(uint8_t *p, size_t n, int (*edit)(int type, uint8_t *pl, uint32_t plen))
{
    for (size_t off = 0; off + SOP__REC_HDR <= n;) {
        int type;
        uint64_t csn;
        int plen = sop__rec_check(p + off, n - off, &type, &csn);
        if (plen < 0)
            break;
        if (edit(type, p + off + SOP__REC_HDR, (uint32_t)plen))
            sop__rec_seal(p + off, type, csn, (uint32_t)plen);
        off += SOP__REC_HDR + (size_t)plen;
    }
}

/* the first handle of a commit record: stamped with a later commit */
static int stamp_future(int type, uint8_t *pl, uint32_t plen)
{
    if (type != SOP__REC_COMMIT || plen < SOP__COMMIT_HDR + SOP__COMMIT_ENTRY)
        return 0;
    uint8_t *csn = pl + SOP__COMMIT_HDR + 32;
    sop__put64(csn, sop__get64(csn) + 1000);
    return 1;
}

/* Regression (fuzz_open): a commit record, valid but for a handle stamped
 * with another commit than its own, was applied; the handle stayed hidden
 * from every snapshot, and the next checkpoint wrote it to the registry,
 * which every later open refused. Such a record is refused at open. */
static void test_commit_handle_other_csn(void **state)
{
    (void)state;
    const char *base = tu_tmpdir("log-handle-csn");
    char dir[1024], next[1024], ctl[1024];
    snprintf(dir, sizeof dir, "%s/db", base);
    snprintf(next, sizeof next, "%s/next", base);
    snprintf(ctl, sizeof ctl, "%s/ctl", base);
    make_db(dir);
    uint64_t end = recs_end(dir, 1);
    assert_int_equal(tu_copydir(dir, next), 0);

    /* the next commit, "k" = "new", as the log would have it */
    sop_db *db = open_db(next, 0, NULL);
    put_str(db, "kv", "k", "new");
    uint64_t end2 = recs_end(next, 1);
    assert_int_equal(sop_db_close(db), 0);
    uint8_t *recs = copy_recs(next, end, end2);
    write_at(dir, 1, end, recs, end2 - end);
    assert_int_equal(tu_copydir(dir, ctl), 0);
    db = open_db(ctl, 0, NULL); /* as it is, the commit is replayed */
    expect(db, "kv", "k", "new");
    assert_int_equal(sop_db_close(db), 0);

    reseal_all(recs, end2 - end, stamp_future);
    write_at(dir, 1, end, recs, end2 - end);
    free(recs);
    sop_db_options o;
    sop_db_options_init(&o);
    db = NULL;
    assert_int_equal(sop_db_open(dir, &o, &db), SOP_ECORRUPT);
    assert_non_null(strstr(sop_db_errmsg(db), "stamped with commit"));
    sop_db_close(db);
}

#define BLOB_BYTES 20000
static uint8_t g_blob[BLOB_BYTES];

/* one byte of the blob image holding g_blob changed */
static int edit_blob(int type, uint8_t *pl, uint32_t plen)
{
    if (type != SOP__REC_IMAGE || plen != SOP__IMG_HDR + BLOB_BYTES ||
        memcmp(pl + SOP__IMG_HDR, g_blob, BLOB_BYTES) != 0)
        return 0;
    pl[SOP__IMG_HDR + BLOB_BYTES / 2] ^= 0x20;
    return 1;
}

static void count_problem(const char *problem, void *ctx)
{
    (void)problem;
    ++*(int *)ctx;
}

/* Regression (fuzz_open): a blob image changed and resealed (its record's
 * checksum right, its content not the one its reference's checksum names)
 * made reads fail with SOP_ECORRUPT while sop_db_check() found nothing. */
static void test_check_verifies_blob_checksum(void **state)
{
    (void)state;
    const char *dir = tu_tmpdir("log-blob-crc");
    for (int i = 0; i < BLOB_BYTES; i++)
        g_blob[i] = (uint8_t)('A' + i % 23);
    sop_db *db = open_db(dir, 0, NULL);
    put(db, "kv", "blob", g_blob, BLOB_BYTES);
    put_str(db, "kv", "k", "v");
    assert_int_equal(sop_db_close(db), 0);

    size_t len;
    uint8_t *p = slurp(dir, 1, &len);
    uint8_t *copy = malloc(len);
    assert_non_null(copy);
    memcpy(copy, p, len);
    reseal_all(p, len, edit_blob);
    assert_memory_not_equal(p, copy, len); /* the blob image was found */
    write_at(dir, 1, 0, p, len);
    free(p);
    free(copy);

    db = open_db(dir, 0, NULL);
    int problems = 0;
    uint64_t n = 0;
    assert_int_equal(sop_db_check(db, count_problem, &problems, &n), SOP_ECORRUPT);
    assert_int_equal(n, 1);
    assert_int_equal(problems, 1);
    sop_txn *t;
    sop_store *s;
    assert_int_equal(sop_txn_begin(db, SOP_TXN_READ, 0, &t), 0);
    assert_int_equal(sop_store_open(t, "kv", &s), 0);
    sop_val k = {"blob", 4}, v;
    assert_int_equal(sop_get(s, &k, &v), SOP_ECORRUPT);
    sop_txn_rollback(t);
    expect(db, "kv", "k", "v");
    assert_int_equal(sop_db_close(db), 0);
}

/* ------------------------------------------------------------------ */
/* Rotation                                                           */
/* ------------------------------------------------------------------ */

/* Every segment but the last ends exactly at its records; the last is
 * never preallocated past segment_bytes. */
static void check_sealed(const char *dir)
{
    uint32_t last = last_seg(dir);
    for (uint32_t s = 1; s < last; s++)
        if (seg_exists(dir, s))
            assert_int_equal(recs_end(dir, s), seg_size(dir, s));
    uint64_t size = seg_size(dir, last);
    assert_true(size >= recs_end(dir, last));
    assert_true(size <= SEG_MIN);
}

static void test_rotation_seals_exactly(void **state)
{
    (void)state;
    const char *dir = tu_tmpdir("log-rotate");
    sop_db *db = open_db(dir, SEG_MIN, NULL);
    int n = 0;
    while (last_seg(dir) < 4) {
        bulk_put(db, n++);
        check_sealed(dir);
    }
    bulk_verify(db, n);
    assert_int_equal(sop_db_close(db), 0);
    check_sealed(dir);
    db = open_db(dir, SEG_MIN, NULL);
    bulk_verify(db, n);
    assert_int_equal(seg_size(dir, last_seg(dir)), recs_end(dir, last_seg(dir)));
    check_sealed(dir);
    assert_int_equal(sop_db_close(db), 0);
}

/* Two handles on one database (as two processes): each appends where the
 * other's preallocation and rotations left the log, and each sees every
 * commit of the other. */
static void test_two_handles(void **state)
{
    (void)state;
    const char *dir = tu_tmpdir("log-two");
    sop_db *a = open_db(dir, SEG_MIN, NULL);
    sop_db *b = open_db(dir, SEG_MIN, NULL);
    int n = 0;
    while (last_seg(dir) < 3) {
        bulk_put(n % 3 ? a : b, n);
        n++;
        check_sealed(dir);
    }
    bulk_verify(a, n);
    bulk_verify(b, n);
    assert_int_equal(sop_db_close(a), 0);
    bulk_put(b, n++);
    assert_int_equal(sop_db_close(b), 0);
    a = open_db(dir, SEG_MIN, NULL);
    bulk_verify(a, n);
    assert_int_equal(sop_db_close(a), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_extends_in_chunks),
        cmocka_unit_test(test_bulk_append_no_zeros),
        cmocka_unit_test(test_reopen_clean),
        cmocka_unit_test(test_torn_tail_garbage),
        cmocka_unit_test(test_zeros_then_valid_record),
        cmocka_unit_test(test_stale_csn_not_applied),
        cmocka_unit_test(test_commit_handle_other_csn),
        cmocka_unit_test(test_check_verifies_blob_checksum),
        cmocka_unit_test(test_rotation_seals_exactly),
        cmocka_unit_test(test_two_handles),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
