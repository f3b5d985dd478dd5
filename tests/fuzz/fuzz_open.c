/*
 * fuzz_open.c - opening a database made of arbitrary files (the dbsqlfuzz
 * idea): recovery, the integrity check and reads on whatever open accepts.
 *
 * Feeds: byte 0 = options (bit 0 read-only, bit 1 map_reads, bit 2 also
 * write, bit 3 NOCHECK for the write); then packed files (fuzz_util.h) of
 * a database directory: kind 0 "registry", 1 "registry.dw", 2 "ckpt.0",
 * 3 "ckpt.1", 4..7 "seg-00000001".."seg-00000004". A file flagged
 * FZ_FIX_CRC gets its checksums recomputed (so the fuzzer reaches what the
 * CRCs guard). Seeds: small valid databases (gen_corpus.c). Files that
 * claim ids past FZ_ID_LIMIT are skipped (fuzz_util.h).
 * Checks: sop_db_open, sop_db_check, every store's full scan (both ways),
 * its count, and a write return only documented codes, and nothing
 * crashes or leaks; when the check found no problem, no read finds damage,
 * and a committed write survives close and reopen, and the database still
 * checks clean.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_util.h"
#include "sop/sop.h"

#define OPT_RDONLY 0x1
#define OPT_MAP 0x2
#define OPT_WRITE 0x4
#define OPT_NOCHECK 0x8

static const char *const names[] = {"registry", "registry.dw", "ckpt.0", "ckpt.1",
                                    "seg-00000001", "seg-00000002", "seg-00000003",
                                    "seg-00000004"};
static void (*const fixes[])(uint8_t *, size_t) = {fz_fix_registry, fz_fix_dw, fz_fix_ckpt,
                                                    fz_fix_ckpt, fz_fix_segment, fz_fix_segment,
                                                    fz_fix_segment, fz_fix_segment};
static int any_registry(const uint8_t *p, size_t n)
{
    (void)p;
    (void)n;
    return 1; /* as large as the input: small */
}
static int (*const smalls[])(const uint8_t *, size_t) = {
    any_registry,     fz_dw_small,      fz_ckpt_small,    fz_ckpt_small,
    fz_segment_small, fz_segment_small, fz_segment_small, fz_segment_small};

#define COMMON SOP_ECORRUPT, SOP_EPANIC, -EIO, -ENOMEM /* errors of every read */

static int open_db(const char *dir, int opts, sop_db **db)
{
    sop_db_options o;
    sop_db_options_init(&o);
    o.sync = SOP_SYNC_NONE;
    o.cache_bytes = 256u << 10;
    o.flags = opts & OPT_RDONLY ? SOP_DB_RDONLY : SOP_DB_CREATE;
    o.map_reads = !!(opts & OPT_MAP);
    int rc = sop_db_open(dir, &o, db);
    fz_note("open: %s %s", sop_err_name(rc), sop_db_errmsg(*db));
    FZ_EXPECT("sop_db_open", rc, SOP_OK, -ENOENT, SOP_EBUSY, SOP_ECORRUPT, SOP_EVERSION,
              SOP_EFULL, -EIO, -ENOMEM);
    if (rc) {
        sop_db_close(*db);
        *db = NULL;
    }
    return rc;
}

typedef struct names_seen {
    char name[16][SOP_STORE_NAME_MAX + 1];
    int n;
} names_seen;

static int on_name(const char *name, void *ctx)
{
    names_seen *s = ctx;
    size_t len = strlen(name);
    if (len == 0 || len > SOP_STORE_NAME_MAX)
        fz_fail("a store name of %zu bytes", len);
    if (s->n < 16)
        memcpy(s->name[s->n++], name, len + 1);
    return 0;
}

static int on_item(const sop_val *k, const sop_val *v, void *ctx)
{
    uint64_t *n = ctx;
    volatile uint8_t sink = 0;
    if (k->size)
        sink ^= ((const uint8_t *)k->data)[k->size - 1];
    if (v->size)
        sink ^= ((const uint8_t *)v->data)[v->size - 1];
    (void)sink;
    return ++*n > 100000; /* a bound on the work of one input */
}

/* After a clean check no read may find damage. */
static void clean_reads(int clean, int rc, const char *what, const char *store, sop_db *db)
{
    if (clean && rc == SOP_ECORRUPT)
        fz_fail("sop_db_check found no problem, but %s of store %s: %s", what, store,
                sop_db_errmsg(db));
}

/* Reads every store: a forward scan with values, a reverse one of keys.
 * @clean: sop_db_check() found no problem. */
static void read_all(sop_db *db, int clean)
{
    sop_txn *t;
    int rc = sop_txn_begin(db, SOP_TXN_READ, 0, &t);
    FZ_EXPECT("sop_txn_begin", rc, SOP_OK, SOP_EPANIC, -ENOMEM);
    if (rc)
        return;
    names_seen seen = {.n = 0};
    rc = sop_store_list(t, on_name, &seen);
    FZ_EXPECT("sop_store_list", rc, SOP_OK, COMMON, SOP_ETXNDONE);
    for (int i = 0; i < seen.n; i++) {
        sop_store *s;
        rc = sop_store_open(t, seen.name[i], &s);
        FZ_EXPECT("sop_store_open", rc, SOP_OK, COMMON, SOP_ENOTFOUND, SOP_ENAME, SOP_ENOCMP,
                  SOP_ETXNDONE);
        if (rc)
            continue;
        uint64_t n = 0, count;
        sop_range r = {.keys_only = 0};
        rc = sop_scan(s, &r, on_item, &n);
        FZ_EXPECT("sop_scan", rc, SOP_OK, 1, COMMON, SOP_ETXNDONE);
        clean_reads(clean, rc, "a scan", seen.name[i], db);
        fz_note("store %s: %s, %llu items", seen.name[i], sop_err_name(rc), (unsigned long long)n);
        r.reverse = r.keys_only = 1;
        n = 0;
        rc = sop_scan(s, &r, on_item, &n);
        FZ_EXPECT("sop_scan (reverse)", rc, SOP_OK, 1, COMMON, SOP_ETXNDONE);
        clean_reads(clean, rc, "a reverse scan", seen.name[i], db);
        rc = sop_store_count(s, &count);
        FZ_EXPECT("sop_store_count", rc, SOP_OK, COMMON, SOP_ETXNDONE);
        clean_reads(clean, rc, "the count", seen.name[i], db);
    }
    sop_txn_rollback(t);
}

static void on_problem(const char *problem, void *ctx)
{
    (void)ctx;
    fz_note("  %s", problem);
}

static uint64_t check(sop_db *db)
{
    uint64_t problems = 0;
    int rc = sop_db_check(db, on_problem, NULL, &problems);
    FZ_EXPECT("sop_db_check", rc, SOP_OK, COMMON);
    fz_note("check: %s, %llu problems", sop_err_name(rc), (unsigned long long)problems);
    if (rc == SOP_OK && problems)
        fz_fail("sop_db_check: %llu problems but SOP_OK", (unsigned long long)problems);
    return rc == SOP_OK ? 0 : problems ? problems : 1;
}

static const sop_val key = {"fuzz-key", 8}, val = {"fuzz-value", 10};

/* Writes one item; 1 when it committed. */
static int write_one(sop_db *db, int opts)
{
    sop_txn *t;
    int rc = sop_txn_begin(db, opts & OPT_NOCHECK ? SOP_TXN_NOCHECK : SOP_TXN_WRITE, 0, &t);
    FZ_EXPECT("sop_txn_begin (write)", rc, SOP_OK, SOP_EPANIC, -ENOMEM);
    if (rc)
        return 0;
    sop_store *s;
    rc = sop_store_open(t, "fz", &s);
    FZ_EXPECT("sop_store_open", rc, SOP_OK, COMMON, SOP_ENOTFOUND, SOP_ENOCMP, SOP_ETXNDONE);
    if (rc == SOP_ENOTFOUND) {
        rc = sop_store_create(t, "fz", NULL, &s);
        FZ_EXPECT("sop_store_create", rc, SOP_OK, COMMON, SOP_EEXISTS, SOP_ETXNDONE);
    }
    if (!rc) {
        rc = sop_upsert(s, &key, &val);
        FZ_EXPECT("sop_upsert", rc, SOP_OK, COMMON, SOP_ETXNDONE, -EINVAL, SOP_ETOOBIG);
    }
    if (rc) {
        sop_txn_rollback(t);
        return 0;
    }
    rc = sop_txn_commit(t);
    FZ_EXPECT("sop_txn_commit", rc, SOP_OK, SOP_ECONFLICT, SOP_EPANIC, SOP_EFULL, -EIO, -ENOMEM,
              SOP_ECORRUPT);
    fz_note("write: %s", sop_err_name(rc));
    return rc == SOP_OK;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char dir[600], path[700];
    fz_path(dir, sizeof dir, "db");
    fz_empty_dir(dir);
    fz_in in = {data, size};
    int opts = fz_u8(&in);
    fz_file files[FZ_MAX_FILES];
    size_t nf = fz_unpack(&in, files, FZ_MAX_FILES);
    for (size_t i = 0; i < nf; i++) {
        int kind = files[i].kind % 8;
        uint8_t *copy = malloc(files[i].len + 1);
        if (!copy)
            abort();
        memcpy(copy, files[i].data, files[i].len);
        if (files[i].flags & FZ_FIX_CRC)
            fixes[kind](copy, files[i].len);
        if (!smalls[kind](copy, files[i].len)) {
            free(copy);
            return 0; /* claims ids past FZ_ID_LIMIT (fuzz_util.h) */
        }
        snprintf(path, sizeof path, "%s/%s", dir, names[kind]);
        fz_write(path, copy, files[i].len);
        free(copy);
    }
    snprintf(path, sizeof path, "%s/LOCK", dir);
    fz_write(path, "", 0);

    sop_db *db;
    if (open_db(dir, opts, &db))
        return 0;
    uint64_t problems = check(db);
    read_all(db, problems == 0);
    int wrote = !(opts & OPT_RDONLY) && (opts & OPT_WRITE) && write_one(db, opts);
    int rc = sop_db_close(db);
    FZ_EXPECT("sop_db_close", rc, SOP_OK, SOP_EFULL, -EIO);
    if (!wrote || problems || rc)
        return 0;
    /* a clean database stays clean, and keeps what was committed */
    if (open_db(dir, 0, &db))
        fz_fail("a clean database, written and closed, does not open again");
    if (check(db))
        fz_fail("a clean database, written and closed, has problems");
    sop_txn *t;
    sop_store *s;
    sop_val v;
    if (sop_txn_begin(db, SOP_TXN_READ, 0, &t) || sop_store_open(t, "fz", &s) ||
        sop_get(s, &key, &v) || v.size != val.size || memcmp(v.data, val.data, v.size))
        fz_fail("a committed item is missing after reopening");
    sop_txn_rollback(t);
    sop_db_close(db);
    return 0;
}
