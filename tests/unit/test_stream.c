/*
 * test_stream.c - streaming values (sop_stream_*) and the early write of
 * their chunks.
 *
 *  - append and read across chunk boundaries with odd sizes; seek; replace
 *    a chunk; truncate (inside a chunk, at a boundary, to 0, extending);
 *    delete; several handles on one key; bad inputs;
 *  - commit and reopen; rollback leaves no item, and after compaction the
 *    chunks it wrote no longer take space;
 *  - a transaction's memory stays bounded while it streams (counting
 *    allocator): the chunks are in the log, not in the transaction;
 *  - a process killed in the middle of a large streamed transaction leaves
 *    nothing of it after reopen;
 *  - a concurrent writer of the same value gets SOP_ECONFLICT;
 *  - a segment that compaction emptied while a transaction had chunks in
 *    it is kept once the commit made them live;
 *  - a large value (SOP_TEST_STREAM_MB, default 256) streamed in one
 *    transaction and read back by checksum, with the peak RSS of the
 *    process well under the value's size.
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
#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "sop/sop.h"
#include "testutil.h"

#if defined(__SANITIZE_ADDRESS__)
/* freed chunk buffers would sit in ASan's quarantine (256 MB by default)
 * and make the RSS figure meaningless */
const char *__asan_default_options(void) __attribute__((visibility("default"), used));
const char *__asan_default_options(void) { return "quarantine_size_mb=8"; }
#endif

#define CB 4096u /* chunk size of the small tests */

static char g_path[512];

static sop_db *open_db_opts(const char *name, const sop_db_options *o)
{
    if (name)
        snprintf(g_path, sizeof g_path, "%s", tu_tmpdir(name));
    sop_db *db;
    int rc = sop_db_open(g_path, o, &db);
    if (rc)
        fprintf(stderr, "open: %s\n", sop_db_errmsg(db));
    assert_int_equal(rc, 0);
    return db;
}

static sop_db *open_db(const char *name)
{
    sop_db_options o;
    sop_db_options_init(&o);
    o.sync = SOP_SYNC_NONE;
    return open_db_opts(name, &o);
}

static uint8_t pat(uint64_t off, unsigned seed)
{
    return (uint8_t)(off * 131u + (off >> 12) * 7u + seed);
}

static void fill(uint8_t *p, uint64_t off, size_t n, unsigned seed)
{
    for (size_t i = 0; i < n; i++)
        p[i] = pat(off + i, seed);
}

static sop_val K(const char *s) { return (sop_val){s, strlen(s)}; }

static sop_store *stream_store(sop_txn *t, const char *name, uint32_t cb)
{
    sop_store *s;
    int rc = sop_stream_store_open(t, name, cb, &s);
    if (rc == SOP_ENOTFOUND)
        rc = sop_stream_store_create(t, name, cb, &s);
    assert_int_equal(rc, 0);
    return s;
}

/* Appends @total bytes of pattern @seed in pieces of the sizes in @sizes
 * (cycled). */
static void append_pattern(sop_stream *st, uint64_t from, uint64_t total, unsigned seed,
                           const size_t *sizes, size_t nsizes)
{
    static uint8_t buf[70000];
    uint64_t off = from;
    for (size_t i = 0; off < from + total; i++) {
        size_t k = sizes[i % nsizes];
        if (k > from + total - off)
            k = (size_t)(from + total - off);
        fill(buf, off, k, seed);
        assert_int_equal(sop_stream_append(st, buf, k), 0);
        off += k;
    }
}

/* Reads the whole value from the position in pieces of @piece bytes and
 * checks it against pattern @seed from @from; returns the bytes read. */
static uint64_t read_check(sop_stream *st, uint64_t from, unsigned seed, size_t piece)
{
    static uint8_t buf[70000];
    uint64_t off = from;
    for (;;) {
        size_t got = 99;
        assert_int_equal(sop_stream_read(st, buf, piece, &got), 0);
        if (!got)
            break;
        for (size_t i = 0; i < got; i++)
            if (buf[i] != pat(off + i, seed))
                fail_msg("byte %llu: %u, expected %u", (unsigned long long)(off + i), buf[i],
                         pat(off + i, seed));
        off += got;
    }
    return off - from;
}

static void check_clean(sop_db *db)
{
    uint64_t problems = 99;
    assert_int_equal(sop_db_check(db, NULL, NULL, &problems), 0);
    assert_int_equal(problems, 0);
}

static uint64_t file_bytes(sop_db *db)
{
    sop_db_stat st;
    assert_int_equal(sop_db_stats(db, &st), 0);
    return st.file_bytes;
}

/* ------------------------------------------------------------------ */

static void test_append_read(void **state)
{
    (void)state;
    sop_db *db = open_db("append_read");
    static const size_t wsizes[] = {1, 4095, 4097, 10000, 3, 8192, 777, 4096, 65536};
    static const size_t rsizes[] = {1, 7, 4095, 4096, 4097, 65536};
    const uint64_t total = 200003;
    sop_txn *t;
    assert_int_equal(sop_txn_begin(db, SOP_TXN_WRITE, 0, &t), 0);
    sop_store *s = stream_store(t, "blobs", CB);
    sop_stream *st;
    sop_val k = K("movie");
    assert_int_equal(sop_stream_open(s, &k, SOP_STREAM_CREATE, &st), 0);
    assert_int_equal(sop_stream_chunk_bytes(st), CB);
    append_pattern(st, 0, total, 1, wsizes, sizeof wsizes / sizeof *wsizes);
    uint64_t size = 0, chunks = 0;
    assert_int_equal(sop_stream_stat(st, &size, &chunks), 0); /* reads after writes */
    assert_int_equal(size, total);
    assert_int_equal(chunks, (total + CB - 1) / CB);
    assert_int_equal(read_check(st, 0, 1, 4097), total);
    /* more appends after a read: the partial last chunk is filled */
    append_pattern(st, total, 5000, 1, wsizes, 3);
    assert_int_equal(sop_stream_close(st), 0);
    /* a neighbour key that starts with the same bytes stays apart */
    sop_val k2 = {"movie\0\0\0\0\0\0\0\0", 13};
    assert_int_equal(sop_stream_open(s, &k2, SOP_STREAM_CREATE, &st), 0);
    append_pattern(st, 0, 9000, 2, wsizes, 4);
    assert_int_equal(sop_txn_commit(t), 0); /* flushes the open handle's tail */
    assert_int_equal(sop_db_close(db), 0);

    db = open_db(NULL);
    for (size_t r = 0; r < sizeof rsizes / sizeof *rsizes; r++) {
        assert_int_equal(sop_txn_begin(db, SOP_TXN_READ, 0, &t), 0);
        s = stream_store(t, "blobs", 0);
        assert_int_equal(sop_stream_open(s, &k, 0, &st), 0);
        assert_int_equal(read_check(st, 0, 1, rsizes[r]), total + 5000);
        assert_int_equal(sop_stream_open(s, &k2, 0, &st), 0);
        assert_int_equal(read_check(st, 0, 2, rsizes[r]), 9000);
        uint64_t count;
        assert_int_equal(sop_store_count(s, &count), 0);
        assert_int_equal(count, (total + 5000 + CB - 1) / CB + (9000 + CB - 1) / CB);
        sop_txn_rollback(t); /* frees the handles left open */
    }
    check_clean(db);
    assert_int_equal(sop_db_close(db), 0);
}

static void test_seek(void **state)
{
    (void)state;
    sop_db *db = open_db("seek");
    sop_txn *t;
    assert_int_equal(sop_txn_begin(db, SOP_TXN_WRITE, 0, &t), 0);
    sop_store *s = stream_store(t, "b", CB);
    sop_stream *st;
    sop_val k = K("k");
    static const size_t one[] = {5000};
    const uint64_t total = 10 * CB + 123;
    assert_int_equal(sop_stream_open(s, &k, SOP_STREAM_CREATE, &st), 0);
    append_pattern(st, 0, total, 3, one, 1);
    static const uint64_t offs[] = {0, 1, CB - 1, CB, CB + 1, 5 * CB, 7 * CB + 99, 10 * CB,
                                    10 * CB + 122};
    for (size_t i = 0; i < sizeof offs / sizeof *offs; i++) {
        assert_int_equal(sop_stream_seek(st, offs[i]), 0);
        uint64_t pos;
        assert_int_equal(sop_stream_tell(st, &pos), 0);
        assert_int_equal(pos, offs[i]);
        assert_int_equal(read_check(st, offs[i], 3, 1000), total - offs[i]);
    }
    assert_int_equal(sop_stream_seek(st, total), 0);
    uint8_t b[8];
    size_t got = 9;
    assert_int_equal(sop_stream_read(st, b, sizeof b, &got), 0);
    assert_int_equal(got, 0);
    assert_int_equal(sop_stream_seek(st, total + 1), -EINVAL);
    assert_non_null(strstr(sop_db_errmsg(db), "past the end"));
    assert_int_equal(sop_txn_commit(t), 0);
    assert_int_equal(sop_db_close(db), 0);
}

static void test_put_chunk(void **state)
{
    (void)state;
    sop_db *db = open_db("put_chunk");
    sop_txn *t;
    assert_int_equal(sop_txn_begin(db, SOP_TXN_WRITE, 0, &t), 0);
    sop_store *s = stream_store(t, "b", CB);
    sop_stream *st;
    sop_val k = K("k");
    static const size_t one[] = {CB};
    assert_int_equal(sop_stream_open(s, &k, SOP_STREAM_CREATE, &st), 0);
    append_pattern(st, 0, 3 * CB + 10, 4, one, 1);
    uint8_t c[CB];
    memset(c, 'x', sizeof c);
    /* replace a middle chunk: full size only */
    assert_int_equal(sop_stream_put_chunk(st, 1, c, CB), 0);
    assert_int_equal(sop_stream_put_chunk(st, 1, c, CB - 1), -EINVAL);
    /* the last chunk may change length; a new chunk needs a full last one */
    assert_int_equal(sop_stream_put_chunk(st, 4, c, 10), -EINVAL);
    assert_int_equal(sop_stream_put_chunk(st, 5, c, CB), -EINVAL);
    assert_int_equal(sop_stream_put_chunk(st, 3, c, 0), -EINVAL);
    assert_int_equal(sop_stream_put_chunk(st, 3, c, CB + 1), -EINVAL);
    assert_int_equal(sop_stream_put_chunk(st, 3, NULL, 10), -EINVAL);
    assert_int_equal(sop_stream_put_chunk(st, 3, c, CB), 0);
    assert_int_equal(sop_stream_put_chunk(st, 4, c, 7), 0);
    uint64_t size, chunks;
    assert_int_equal(sop_stream_stat(st, &size, &chunks), 0);
    assert_int_equal(size, 4 * CB + 7);
    assert_int_equal(chunks, 5);
    assert_int_equal(sop_txn_commit(t), 0);

    assert_int_equal(sop_txn_begin(db, SOP_TXN_READ, 0, &t), 0);
    s = stream_store(t, "b", CB);
    assert_int_equal(sop_stream_open(s, &k, 0, &st), 0);
    static uint8_t all[5 * CB];
    size_t got;
    assert_int_equal(sop_stream_read(st, all, sizeof all, &got), 0);
    assert_int_equal(got, 4 * CB + 7);
    for (size_t i = 0; i < got; i++) {
        int x = (i >= CB && i < 2 * CB) || i >= 3 * CB;
        if (all[i] != (x ? 'x' : pat(i, 4)))
            fail_msg("byte %zu", i);
    }
    /* a write in a READ transaction */
    assert_int_equal(sop_stream_put_chunk(st, 0, c, CB), SOP_EREADONLY);
    assert_int_equal(sop_stream_append(st, c, 1), SOP_EREADONLY);
    sop_txn_rollback(t);
    assert_int_equal(sop_db_close(db), 0);
}

static uint64_t committed_size(sop_db *db, const char *key)
{
    sop_txn *t;
    assert_int_equal(sop_txn_begin(db, SOP_TXN_READ, 0, &t), 0);
    sop_store *s = stream_store(t, "b", 0);
    sop_stream *st;
    sop_val k = K(key);
    uint64_t size = 0;
    int rc = sop_stream_open(s, &k, 0, &st);
    if (rc == 0)
        assert_int_equal(sop_stream_stat(st, &size, NULL), 0);
    else
        assert_int_equal(rc, SOP_ENOTFOUND);
    sop_txn_rollback(t);
    return size;
}

static void test_truncate_delete(void **state)
{
    (void)state;
    sop_db *db = open_db("truncate");
    sop_txn *t;
    assert_int_equal(sop_txn_begin(db, SOP_TXN_WRITE, 0, &t), 0);
    sop_store *s = stream_store(t, "b", CB);
    sop_stream *st;
    sop_val k = K("k");
    static const size_t sz[] = {3000};
    assert_int_equal(sop_stream_open(s, &k, SOP_STREAM_CREATE, &st), 0);
    append_pattern(st, 0, 6 * CB + 50, 5, sz, 1);
    /* inside a chunk */
    assert_int_equal(sop_stream_truncate(st, 3 * CB + 17), 0);
    uint64_t size, chunks;
    assert_int_equal(sop_stream_stat(st, &size, &chunks), 0);
    assert_int_equal(size, 3 * CB + 17);
    assert_int_equal(chunks, 4);
    assert_int_equal(sop_stream_seek(st, 0), 0);
    assert_int_equal(read_check(st, 0, 5, 999), 3 * CB + 17);
    /* at a chunk boundary */
    assert_int_equal(sop_stream_truncate(st, 2 * CB), 0);
    assert_int_equal(sop_stream_stat(st, &size, &chunks), 0);
    assert_int_equal(size, 2 * CB);
    assert_int_equal(chunks, 2);
    /* the read position was past the new end: it moved to the end */
    uint64_t pos;
    assert_int_equal(sop_stream_tell(st, &pos), 0);
    assert_int_equal(pos, 2 * CB);
    /* extend with zeros, then append after them */
    assert_int_equal(sop_stream_truncate(st, 3 * CB + 5), 0);
    uint8_t tailb[4] = {9, 8, 7, 6};
    assert_int_equal(sop_stream_append(st, tailb, 4), 0);
    assert_int_equal(sop_stream_seek(st, 2 * CB - 1), 0);
    static uint8_t buf[2 * CB];
    size_t got;
    assert_int_equal(sop_stream_read(st, buf, sizeof buf, &got), 0);
    assert_int_equal(got, CB + 5 + 4 + 1);
    assert_int_equal(buf[0], pat(2 * CB - 1, 5));
    for (size_t i = 1; i < CB + 6; i++)
        assert_int_equal(buf[i], 0);
    assert_memory_equal(buf + CB + 6, tailb, 4);
    assert_int_equal(sop_txn_commit(t), 0);
    assert_int_equal(committed_size(db, "k"), 3 * CB + 9);

    /* to 0: the key is gone; delete of an absent value */
    assert_int_equal(sop_txn_begin(db, SOP_TXN_WRITE, 0, &t), 0);
    s = stream_store(t, "b", CB);
    assert_int_equal(sop_stream_open(s, &k, 0, &st), 0);
    assert_int_equal(sop_stream_truncate(st, 0), 0);
    assert_int_equal(sop_stream_delete(st), SOP_ENOTFOUND);
    assert_int_equal(sop_stream_close(st), 0);
    assert_int_equal(sop_stream_open(s, &k, 0, &st), SOP_ENOTFOUND);
    assert_null(st);
    /* delete a whole value; another key stays */
    sop_val k2 = K("other"), k3 = K("third");
    assert_int_equal(sop_stream_open(s, &k2, SOP_STREAM_CREATE, &st), 0);
    append_pattern(st, 0, 5 * CB, 6, sz, 1);
    assert_int_equal(sop_stream_close(st), 0);
    assert_int_equal(sop_stream_open(s, &k3, SOP_STREAM_CREATE, &st), 0);
    append_pattern(st, 0, 2 * CB + 1, 7, sz, 1);
    assert_int_equal(sop_stream_delete(st), 0);
    assert_int_equal(sop_stream_stat(st, &size, &chunks), 0);
    assert_int_equal(size, 0);
    assert_int_equal(sop_stream_close(st), 0);
    assert_int_equal(sop_txn_commit(t), 0);
    assert_int_equal(committed_size(db, "k"), 0);
    assert_int_equal(committed_size(db, "third"), 0);
    assert_int_equal(committed_size(db, "other"), 5 * CB);

    /* SOP_STREAM_TRUNC replaces a value */
    assert_int_equal(sop_txn_begin(db, SOP_TXN_WRITE, 0, &t), 0);
    s = stream_store(t, "b", CB);
    assert_int_equal(sop_stream_open(s, &k2, SOP_STREAM_TRUNC, &st), 0);
    assert_int_equal(sop_stream_stat(st, &size, NULL), 0);
    assert_int_equal(size, 0);
    append_pattern(st, 0, 100, 8, sz, 1);
    assert_int_equal(sop_txn_commit(t), 0);
    assert_int_equal(committed_size(db, "other"), 100);
    check_clean(db);
    assert_int_equal(sop_db_close(db), 0);
}

static void test_several_handles(void **state)
{
    (void)state;
    sop_db *db = open_db("handles");
    sop_txn *t;
    assert_int_equal(sop_txn_begin(db, SOP_TXN_WRITE, 0, &t), 0);
    sop_store *s = stream_store(t, "b", CB);
    sop_stream *a, *b;
    sop_val k = K("k");
    static const size_t sz[] = {1000};
    assert_int_equal(sop_stream_open(s, &k, SOP_STREAM_CREATE, &a), 0);
    append_pattern(a, 0, 5000, 9, sz, 1); /* 904 bytes buffered in a */
    assert_int_equal(sop_stream_open(s, &k, 0, &b), 0);
    uint64_t size;
    assert_int_equal(sop_stream_stat(b, &size, NULL), 0);
    assert_int_equal(size, 5000);
    append_pattern(b, 5000, 3500, 9, sz, 1); /* b fills a's last chunk */
    assert_int_equal(read_check(a, 0, 9, 3000), 8500);
    append_pattern(a, 8500, 10, 9, sz, 1);
    assert_int_equal(sop_stream_seek(b, 8000), 0);
    assert_int_equal(read_check(b, 8000, 9, 3), 510);
    /* the store removed under the handles */
    assert_int_equal(sop_store_remove(t, "b"), 0);
    assert_int_equal(sop_stream_stat(a, &size, NULL), SOP_ENOTFOUND);
    assert_int_equal(sop_txn_commit(t), 0);
    assert_int_equal(sop_db_close(db), 0);
}

static void test_bad_inputs(void **state)
{
    (void)state;
    sop_db *db = open_db("bad");
    sop_txn *t;
    sop_store *s, *plain;
    sop_stream *st;
    assert_int_equal(sop_txn_begin(db, SOP_TXN_WRITE, 0, &t), 0);
    assert_int_equal(sop_stream_store_create(t, "tiny", 100, &s), -EINVAL);
    assert_int_equal(sop_stream_store_create(t, "huge", SOP_VALUE_MAX + 1, &s), -EINVAL);
    sop_store_options o;
    sop_store_options_init(&o);
    o.chunk_bytes = CB;
    o.order = SOP_ORDER_INT64;
    assert_int_equal(sop_store_create(t, "intchunks", &o, &s), -EINVAL);
    assert_int_equal(sop_stream_store_create(t, "b", 0, &s), 0);
    assert_int_equal(sop_store_get_options(s, &o), 0);
    assert_int_equal(o.chunk_bytes, SOP_STREAM_CHUNK_DEFAULT);
    assert_int_equal(sop_store_create(t, "plain", NULL, &plain), 0);
    assert_int_equal(sop_txn_commit(t), 0);

    assert_int_equal(sop_txn_begin(db, SOP_TXN_WRITE, 0, &t), 0);
    assert_int_equal(sop_stream_store_open(t, "b", CB, &s), SOP_EMISMATCH);
    assert_null(s);
    assert_int_equal(sop_stream_store_open(t, "plain", 0, &s), SOP_EMISMATCH);
    assert_int_equal(sop_stream_store_open(t, "nope", 0, &s), SOP_ENOTFOUND);
    assert_int_equal(sop_stream_store_open(t, "b", SOP_STREAM_CHUNK_DEFAULT, &s), 0);
    assert_int_equal(sop_store_open(t, "plain", &plain), 0);
    sop_val k = K("k"), v = K("v");
    assert_int_equal(sop_stream_open(plain, &k, SOP_STREAM_CREATE, &st), SOP_EMISMATCH);
    assert_int_equal(sop_stream_open(s, &k, 0x80, &st), -EINVAL);
    assert_int_equal(sop_stream_open(s, NULL, 0, &st), -EINVAL);
    assert_int_equal(sop_stream_open(s, &k, 0, NULL), -EINVAL);
    assert_int_equal(sop_stream_open(s, &k, 0, &st), SOP_ENOTFOUND);
    static char longkey[1001];
    memset(longkey, 'a', sizeof longkey);
    sop_val lk = {longkey, 1001};
    assert_int_equal(sop_stream_open(s, &lk, SOP_STREAM_CREATE, &st), SOP_ETOOBIG);
    lk.size = 1000;
    assert_int_equal(sop_stream_open(s, &lk, SOP_STREAM_CREATE, &st), 0);
    assert_int_equal(sop_stream_append(st, "abc", 3), 0);
    assert_int_equal(sop_stream_append(st, NULL, 3), -EINVAL);
    size_t got;
    assert_int_equal(sop_stream_read(st, NULL, 3, &got), -EINVAL);
    assert_int_equal(sop_stream_read(st, longkey, 3, NULL), -EINVAL);
    assert_int_equal(sop_stream_truncate(st, UINT64_MAX), SOP_ETOOBIG);
    assert_int_equal(sop_stream_close(st), 0);
    /* the items of a streaming store are written through sop_stream only */
    assert_int_equal(sop_add(s, &k, &v), -EINVAL);
    assert_int_equal(sop_upsert(s, &k, &v), -EINVAL);
    assert_int_equal(sop_remove(s, &k), -EINVAL);
    assert_int_equal(sop_incr(s, &k, 1, NULL), -EINVAL);
    assert_non_null(strstr(sop_db_errmsg(db), "streaming store"));
    /* ... and read like any item */
    uint8_t ik[1008];
    memcpy(ik, longkey, 1000);
    memset(ik + 1000, 0, 8);
    sop_val ikv = {ik, sizeof ik}, got_v;
    assert_int_equal(sop_get(s, &ikv, &got_v), 0);
    assert_int_equal(got_v.size, 3);
    assert_memory_equal(got_v.data, "abc", 3);
    assert_int_equal(sop_stream_close(NULL), 0);
    assert_int_equal(sop_stream_stat(NULL, NULL, NULL), -EINVAL);
    assert_int_equal(sop_txn_commit(t), 0); /* none of the above failed it */

    /* SOP_STREAM_TRUNC in a READ transaction */
    assert_int_equal(sop_txn_begin(db, SOP_TXN_READ, 0, &t), 0);
    assert_int_equal(sop_stream_store_open(t, "b", 0, &s), 0);
    lk.size = 1000;
    assert_int_equal(sop_stream_open(s, &lk, SOP_STREAM_TRUNC, &st), SOP_EREADONLY);
    sop_txn_rollback(t);
    check_clean(db);
    assert_int_equal(sop_db_close(db), 0);
}

/* A rollback leaves no item, and once compacted, no space. */
static void test_rollback_reclaims(void **state)
{
    (void)state;
    sop_db_options o;
    sop_db_options_init(&o);
    o.sync = SOP_SYNC_NONE;
    o.segment_bytes = 1u << 20;
    o.checkpoint_bytes = 1u << 20;
    sop_db *db = open_db_opts("rollback", &o);
    sop_txn *t;
    sop_store *s;
    assert_int_equal(sop_txn_begin(db, SOP_TXN_WRITE, 0, &t), 0);
    assert_int_equal(sop_stream_store_create(t, "b", 64u << 10, &s), 0);
    assert_int_equal(sop_txn_commit(t), 0);
    uint64_t before = file_bytes(db);

    assert_int_equal(sop_txn_begin(db, SOP_TXN_WRITE, 0, &t), 0);
    s = stream_store(t, "b", 0);
    sop_stream *st;
    sop_val k = K("big");
    static const size_t sz[] = {50000};
    assert_int_equal(sop_stream_open(s, &k, SOP_STREAM_CREATE, &st), 0);
    append_pattern(st, 0, 12u << 20, 11, sz, 1);
    /* the chunks are in the log already, not in the transaction */
    uint64_t during = file_bytes(db);
    if (during < (12u << 20))
        fail_msg("files hold %llu bytes during the transaction, %llu before",
                 (unsigned long long)during, (unsigned long long)before);
    assert_int_equal(sop_txn_rollback(t), 0);
    assert_int_equal(committed_size(db, "big"), 0);
    assert_int_equal(sop_txn_begin(db, SOP_TXN_READ, 0, &t), 0);
    uint64_t count;
    assert_int_equal(sop_store_count(stream_store(t, "b", 0), &count), 0);
    assert_int_equal(count, 0);
    sop_txn_rollback(t);
    check_clean(db);

    /* compaction reclaims the dead chunks */
    for (int i = 0; i < 3; i++) {
        assert_int_equal(sop_txn_begin(db, SOP_TXN_WRITE, 0, &t), 0);
        s = stream_store(t, "b", 0);
        sop_val k2 = K("small");
        assert_int_equal(sop_stream_open(s, &k2, SOP_STREAM_CREATE | SOP_STREAM_TRUNC, &st), 0);
        append_pattern(st, 0, 100, 12, sz, 1);
        assert_int_equal(sop_txn_commit(t), 0);
        assert_int_equal(sop_db_checkpoint(db), 0);
    }
    uint64_t after = file_bytes(db);
    if (after > before + (3u << 20))
        fail_msg("files hold %llu bytes after compaction, %llu before the rollback",
                 (unsigned long long)after, (unsigned long long)before);
    check_clean(db);
    assert_int_equal(sop_db_close(db), 0);
}

/* ---- memory: a counting allocator ---- */

static size_t g_live, g_peak;

static void *cnt_malloc(size_t n, void *ctx)
{
    (void)ctx;
    size_t *p = malloc(n + 16);
    if (!p)
        return NULL;
    *p = n;
    g_live += n;
    if (g_live > g_peak)
        g_peak = g_live;
    return (char *)p + 16;
}

static void cnt_free(void *q, void *ctx)
{
    (void)ctx;
    if (!q)
        return;
    size_t *p = (size_t *)((char *)q - 16);
    g_live -= *p;
    free(p);
}

static void *cnt_realloc(void *q, size_t n, void *ctx)
{
    if (!q)
        return cnt_malloc(n, ctx);
    size_t *p = (size_t *)((char *)q - 16);
    size_t old = *p;
    size_t *np = realloc(p, n + 16);
    if (!np)
        return NULL;
    *np = n;
    g_live = g_live - old + n;
    if (g_live > g_peak)
        g_peak = g_live;
    return (char *)np + 16;
}

/* 48 MiB streamed in one transaction: the library never holds more than a
 * few chunks (1 MiB each) and its caches at a time. */
static void test_memory_bounded(void **state)
{
    (void)state;
    sop_allocator a = {cnt_malloc, cnt_realloc, cnt_free, NULL};
    assert_int_equal(sop_set_allocator(&a), 0);
    g_live = g_peak = 0;
    sop_db *db = open_db("memory");
    sop_txn *t;
    sop_store *s;
    assert_int_equal(sop_txn_begin(db, SOP_TXN_WRITE, 0, &t), 0);
    assert_int_equal(sop_stream_store_create(t, "b", 0, &s), 0);
    sop_stream *st;
    sop_val k = K("big");
    assert_int_equal(sop_stream_open(s, &k, SOP_STREAM_CREATE, &st), 0);
    static const size_t sz[] = {65536};
    size_t base = g_live;
    append_pattern(st, 0, 48u << 20, 13, sz, 1);
    assert_int_equal(sop_stream_close(st), 0);
    assert_int_equal(sop_txn_commit(t), 0);
    size_t write_peak = g_peak - base;
    g_peak = g_live;
    base = g_live;
    assert_int_equal(sop_txn_begin(db, SOP_TXN_READ, 0, &t), 0);
    s = stream_store(t, "b", 0);
    assert_int_equal(sop_stream_open(s, &k, 0, &st), 0);
    assert_int_equal(read_check(st, 0, 13, 65536), 48u << 20);
    sop_txn_rollback(t);
    size_t read_peak = g_peak - base;
    assert_int_equal(sop_db_close(db), 0);
    assert_int_equal(sop_set_allocator(NULL), 0);
    fprintf(stderr, "48 MiB streamed: library peak %zu KiB writing, %zu KiB reading\n",
            write_peak >> 10, read_peak >> 10);
    assert_true(write_peak < (8u << 20));
    assert_true(read_peak < (8u << 20));
}

/* A process killed in the middle of a streamed transaction leaves nothing
 * of it. */
static void test_kill_mid_stream(void **state)
{
    (void)state;
    sop_db_options o;
    sop_db_options_init(&o);
    o.segment_bytes = 1u << 20; /* the chunks span several segments */
    sop_db *db = open_db_opts("kill", &o);
    sop_txn *t;
    sop_store *s;
    assert_int_equal(sop_txn_begin(db, SOP_TXN_WRITE, 0, &t), 0);
    assert_int_equal(sop_stream_store_create(t, "b", 64u << 10, &s), 0);
    sop_stream *st;
    sop_val k = K("kept"), kb = K("big");
    static const size_t sz[] = {30000};
    assert_int_equal(sop_stream_open(s, &k, SOP_STREAM_CREATE, &st), 0);
    append_pattern(st, 0, 300000, 14, sz, 1);
    assert_int_equal(sop_txn_commit(t), 0);
    assert_int_equal(sop_db_close(db), 0);

    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        sop_db *cdb;
        if (sop_db_open(g_path, &o, &cdb) || sop_txn_begin(cdb, SOP_TXN_WRITE, 0, &t) ||
            sop_stream_store_open(t, "b", 0, &s) ||
            sop_stream_open(s, &kb, SOP_STREAM_CREATE, &st))
            _exit(3);
        static uint8_t buf[30000];
        for (uint64_t off = 0; off < (6u << 20); off += sizeof buf) {
            fill(buf, off, sizeof buf, 15);
            if (sop_stream_append(st, buf, sizeof buf))
                _exit(4);
        }
        raise(SIGKILL); /* mid-transaction: no commit, no rollback, no close */
        _exit(5);
    }
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);

    db = open_db_opts(NULL, &o);
    assert_true(file_bytes(db) > (6u << 20)); /* its chunks were written */
    assert_int_equal(committed_size(db, "big"), 0);
    assert_int_equal(sop_txn_begin(db, SOP_TXN_READ, 0, &t), 0);
    s = stream_store(t, "b", 0);
    uint64_t count;
    assert_int_equal(sop_store_count(s, &count), 0);
    assert_int_equal(count, (300000 + (64u << 10) - 1) / (64u << 10));
    assert_int_equal(sop_stream_open(s, &k, 0, &st), 0);
    assert_int_equal(read_check(st, 0, 14, 12345), 300000);
    sop_txn_rollback(t);
    check_clean(db);
    /* and the database goes on: a new value streams and commits */
    assert_int_equal(sop_txn_begin(db, SOP_TXN_WRITE, 0, &t), 0);
    s = stream_store(t, "b", 0);
    assert_int_equal(sop_stream_open(s, &kb, SOP_STREAM_CREATE, &st), 0);
    append_pattern(st, 0, 200000, 16, sz, 1);
    assert_int_equal(sop_txn_commit(t), 0);
    assert_int_equal(committed_size(db, "big"), 200000);
    check_clean(db);
    assert_int_equal(sop_db_close(db), 0);
}

static void test_conflict(void **state)
{
    (void)state;
    sop_db *db = open_db("conflict");
    sop_txn *t, *a, *b;
    sop_store *s, *sa, *sb;
    sop_stream *st, *ha, *hb;
    sop_val k = K("k");
    static const size_t sz[] = {3000};
    assert_int_equal(sop_txn_begin(db, SOP_TXN_WRITE, 0, &t), 0);
    assert_int_equal(sop_stream_store_create(t, "b", CB, &s), 0);
    assert_int_equal(sop_stream_open(s, &k, SOP_STREAM_CREATE, &st), 0);
    append_pattern(st, 0, 3 * CB, 17, sz, 1);
    assert_int_equal(sop_txn_commit(t), 0);

    /* two writers of one value: the second to commit conflicts */
    assert_int_equal(sop_txn_begin(db, SOP_TXN_WRITE, 0, &a), 0);
    assert_int_equal(sop_txn_begin(db, SOP_TXN_WRITE, 0, &b), 0);
    sa = stream_store(a, "b", 0);
    sb = stream_store(b, "b", 0);
    assert_int_equal(sop_stream_open(sa, &k, 0, &ha), 0);
    assert_int_equal(sop_stream_open(sb, &k, 0, &hb), 0);
    append_pattern(ha, 3 * CB, 5000, 17, sz, 1);
    append_pattern(hb, 3 * CB, 7000, 18, sz, 1);
    assert_int_equal(sop_txn_commit(a), 0);
    assert_int_equal(sop_txn_commit(b), SOP_ECONFLICT);
    assert_int_equal(committed_size(db, "k"), 3 * CB + 5000);

    /* a reader-writer: a read the value, b replaced a chunk, a commits */
    assert_int_equal(sop_txn_begin(db, SOP_TXN_WRITE, 0, &a), 0);
    assert_int_equal(sop_txn_begin(db, SOP_TXN_WRITE, 0, &b), 0);
    sa = stream_store(a, "b", 0);
    sb = stream_store(b, "b", 0);
    assert_int_equal(sop_stream_open(sa, &k, 0, &ha), 0);
    assert_int_equal(read_check(ha, 0, 17, 5000), 3 * CB + 5000);
    sop_val other = K("other");
    assert_int_equal(sop_stream_open(sa, &other, SOP_STREAM_CREATE, &st), 0);
    assert_int_equal(sop_stream_append(st, "x", 1), 0);
    uint8_t c[CB];
    memset(c, 1, sizeof c);
    assert_int_equal(sop_stream_open(sb, &k, 0, &hb), 0);
    assert_int_equal(sop_stream_put_chunk(hb, 1, c, CB), 0);
    assert_int_equal(sop_txn_commit(b), 0);
    assert_int_equal(sop_txn_commit(a), SOP_ECONFLICT);
    assert_int_equal(committed_size(db, "other"), 0);

    /* a read the value and wrote an item elsewhere: the merge, which
     * replays item operations only, must not wave its read through */
    assert_int_equal(sop_txn_begin(db, SOP_TXN_WRITE, 0, &t), 0);
    sop_store *p;
    assert_int_equal(sop_store_create(t, "p", NULL, &p), 0);
    sop_val pk = K("a"), pv = K("1");
    assert_int_equal(sop_upsert(p, &pk, &pv), 0);
    assert_int_equal(sop_txn_commit(t), 0);
    assert_int_equal(sop_txn_begin(db, SOP_TXN_WRITE, 0, &a), 0);
    assert_int_equal(sop_txn_begin(db, SOP_TXN_WRITE, 0, &b), 0);
    sa = stream_store(a, "b", 0);
    sb = stream_store(b, "b", 0);
    assert_int_equal(sop_stream_open(sa, &k, 0, &ha), 0);
    uint64_t size;
    assert_int_equal(sop_stream_stat(ha, &size, NULL), 0);
    assert_int_equal(sop_store_open(a, "p", &p), 0);
    assert_int_equal(sop_upsert(p, &pk, &pv), 0);
    assert_int_equal(sop_stream_open(sb, &k, 0, &hb), 0);
    assert_int_equal(sop_stream_truncate(hb, 10), 0);
    assert_int_equal(sop_store_open(b, "p", &p), 0);
    sop_val pk2 = K("b");
    assert_int_equal(sop_upsert(p, &pk2, &pv), 0); /* the same leaf of p */
    assert_int_equal(sop_txn_commit(b), 0);
    assert_int_equal(sop_txn_commit(a), SOP_ECONFLICT);
    check_clean(db);
    assert_int_equal(sop_db_close(db), 0);
}

/* The chunks of an open transaction sit in a segment that compaction
 * empties meanwhile (its other images relocated): the segment is not
 * deleted while the transaction runs, nor after its commit made the
 * chunks live. */
static void test_compaction_keeps_early_chunks(void **state)
{
    (void)state;
    sop_db_options o;
    sop_db_options_init(&o);
    o.sync = SOP_SYNC_NONE;
    o.segment_bytes = 1u << 20;
    o.checkpoint_bytes = 1u << 20;
    sop_db *db = open_db_opts("compaction", &o);
    sop_txn *t, *w;
    sop_store *s, *kv;
    /* segment 1: mostly live data that is never changed, and the stores'
     * roots, so that the transaction's reads are never relocated */
    assert_int_equal(sop_txn_begin(db, SOP_TXN_WRITE, 0, &t), 0);
    assert_int_equal(sop_stream_store_create(t, "b", 64u << 10, &s), 0);
    assert_int_equal(sop_store_create(t, "kv", NULL, &kv), 0);
    assert_int_equal(sop_store_create(t, "keep", NULL, &kv), 0);
    static uint8_t big[100000];
    memset(big, 'k', sizeof big);
    for (int i = 0; i < 8; i++) {
        char key[8];
        snprintf(key, sizeof key, "%d", i);
        sop_val kk = K(key), vv = {big, sizeof big};
        assert_int_equal(sop_add(kv, &kk, &vv), 0);
    }
    assert_int_equal(sop_txn_commit(t), 0);

    assert_int_equal(sop_txn_begin(db, SOP_TXN_WRITE, 0, &t), 0);
    s = stream_store(t, "b", 0);
    sop_stream *st;
    sop_val k = K("v");
    static const size_t sz[] = {40000};
    assert_int_equal(sop_stream_open(s, &k, SOP_STREAM_CREATE, &st), 0);
    append_pattern(st, 0, 4 * (64u << 10), 19, sz, 1);
    /* other commits fill segments with images that die at once */
    sop_db_stat ds0, ds;
    assert_int_equal(sop_db_stats(db, &ds0), 0);
    for (int i = 0; i < 120; i++) {
        assert_int_equal(sop_txn_begin(db, SOP_TXN_WRITE, 0, &w), 0);
        assert_int_equal(sop_store_open(w, "kv", &kv), 0);
        sop_val kk = K("x"), vv = {big, sizeof big};
        big[0] = (uint8_t)i;
        assert_int_equal(sop_upsert(kv, &kk, &vv), 0);
        assert_int_equal(sop_txn_commit(w), 0);
    }
    assert_int_equal(sop_db_stats(db, &ds), 0);
    assert_true(ds.checkpoints > ds0.checkpoints);
    append_pattern(st, 4 * (64u << 10), 1000, 19, sz, 1);
    assert_int_equal(sop_txn_commit(t), 0);
    /* more garbage and checkpoints: emptied segments are deleted now */
    for (int i = 0; i < 120; i++) {
        assert_int_equal(sop_txn_begin(db, SOP_TXN_WRITE, 0, &w), 0);
        assert_int_equal(sop_store_open(w, "kv", &kv), 0);
        sop_val kk = K("x"), vv = {big, sizeof big};
        big[0] = (uint8_t)i;
        assert_int_equal(sop_upsert(kv, &kk, &vv), 0);
        assert_int_equal(sop_txn_commit(w), 0);
    }
    assert_int_equal(sop_db_checkpoint(db), 0);
    assert_int_equal(sop_db_checkpoint(db), 0);
    assert_int_equal(sop_db_stats(db, &ds), 0);
    assert_true(ds.segments < 12); /* compaction did delete segments */
    check_clean(db);
    assert_int_equal(sop_txn_begin(db, SOP_TXN_READ, 0, &t), 0);
    s = stream_store(t, "b", 0);
    assert_int_equal(sop_stream_open(s, &k, 0, &st), 0);
    assert_int_equal(read_check(st, 0, 19, 50000), 4 * (64u << 10) + 1000);
    sop_txn_rollback(t);
    assert_int_equal(sop_db_close(db), 0);
    db = open_db_opts(NULL, &o);
    assert_int_equal(committed_size(db, "v"), 4 * (64u << 10) + 1000);
    check_clean(db);
    assert_int_equal(sop_db_close(db), 0);
}

/* ---- a large value, with the peak RSS ---- */

static uint32_t crc_step(uint32_t c, const uint8_t *p, size_t n)
{
    /* bitwise CRC-32C: only a checksum to compare, speed is irrelevant here
     * next to the I/O for the sizes the CI runs */
    c = ~c;
    for (size_t i = 0; i < n; i++) {
        c ^= p[i];
        for (int k = 0; k < 8; k++)
            c = (c >> 1) ^ (0x82F63B78u & (0u - (c & 1)));
    }
    return ~c;
}

/* The peak RSS of this process's memory, in KiB: VmHWM (its own since the
 * exec, while ru_maxrss keeps the peak of what a fork copied before the
 * exec), else ru_maxrss. */
static long max_rss_kb(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long kb = -1;
    while (f && fgets(line, sizeof line, f))
        if (!strncmp(line, "VmHWM:", 6))
            kb = strtol(line + 6, NULL, 10);
    if (f)
        fclose(f);
    if (kb < 0) {
        struct rusage ru;
        getrusage(RUSAGE_SELF, &ru);
        kb = ru.ru_maxrss;
    }
    return kb;
}

/* Streams @mb MiB into directory @dir in one transaction and reads it back
 * (run in a fresh process: the peak RSS is its own). Returns an exit
 * status: 0 when the value came back whole and the peak RSS stayed far
 * below its size. */
static int rss_child(const char *dir, uint64_t mb)
{
    sop_db_options o;
    sop_db_options_init(&o);
    o.sync = SOP_SYNC_NONE;
    sop_db *db;
    sop_txn *t;
    sop_store *s;
    sop_stream *st;
    sop_val k = K("big");
    static uint8_t buf[1u << 16];
    uint64_t total = mb << 20;
    uint32_t cw = 0, cr = 0;
    long start = max_rss_kb();
    if (sop_db_open(dir, &o, &db) || sop_txn_begin(db, SOP_TXN_WRITE, 3600000, &t) ||
        sop_stream_store_create(t, "b", 0, &s) || sop_stream_open(s, &k, SOP_STREAM_CREATE, &st))
        return 3;
    for (uint64_t off = 0; off < total; off += sizeof buf) {
        for (size_t i = 0; i < sizeof buf; i += 8) {
            uint64_t x = (off + i) * 0x9E3779B97F4A7C15ull;
            memcpy(buf + i, &x, 8);
        }
        cw = crc_step(cw, buf, 4096); /* a sample of each piece */
        if (sop_stream_append(st, buf, sizeof buf))
            return 4;
    }
    if (sop_txn_commit(t) || sop_txn_begin(db, SOP_TXN_READ, 3600000, &t) ||
        sop_stream_store_open(t, "b", 0, &s) || sop_stream_open(s, &k, 0, &st))
        return 5;
    uint64_t got_total = 0;
    for (;;) {
        size_t got;
        if (sop_stream_read(st, buf, sizeof buf, &got))
            return 6;
        if (!got)
            break;
        for (size_t i = 0; i < got; i += 8) {
            uint64_t x = (got_total + i) * 0x9E3779B97F4A7C15ull;
            if (memcmp(buf + i, &x, 8))
                return 7;
        }
        cr = crc_step(cr, buf, got < 4096 ? got : 4096);
        got_total += got;
    }
    sop_txn_rollback(t);
    if (got_total != total || cr != cw || sop_db_close(db))
        return 8;
    long rss = max_rss_kb();
    fprintf(stderr, "%llu MiB streamed in and out: peak RSS %ld KiB (%ld KiB at start)\n",
            (unsigned long long)mb, rss, start);
    /* far below the value's size (ASan's shadow and allocator add some) */
    return (uint64_t)(rss - start) < (mb << 10) / 4 && rss - start < 100 * 1024 ? 0 : 9;
}

static const char *g_self;

static void test_large_value_rss(void **state)
{
    (void)state;
    const char *e = getenv("SOP_TEST_STREAM_MB");
    const char *mb = e && *e ? e : "256";
    if (!strcmp(mb, "0"))
        skip();
    const char *dir = tu_tmpdir("large");
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        execl(g_self, g_self, "--rss-child", dir, mb, (char *)NULL);
        _exit(127);
    }
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    tu_rmtree(dir);
}

int main(int argc, char **argv)
{
    if (argc == 4 && !strcmp(argv[1], "--rss-child"))
        return rss_child(argv[2], strtoull(argv[3], NULL, 10));
    g_self = "/proc/self/exe";
    (void)argv;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_append_read),
        cmocka_unit_test(test_seek),
        cmocka_unit_test(test_put_chunk),
        cmocka_unit_test(test_truncate_delete),
        cmocka_unit_test(test_several_handles),
        cmocka_unit_test(test_bad_inputs),
        cmocka_unit_test(test_rollback_reclaims),
        cmocka_unit_test(test_memory_bounded),
        cmocka_unit_test(test_kill_mid_stream),
        cmocka_unit_test(test_conflict),
        cmocka_unit_test(test_compaction_keeps_early_chunks),
        cmocka_unit_test(test_large_value_rss),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
