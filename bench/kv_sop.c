/*
 * kv_sop.c - the SOP engine of the kv suite, through the public API only.
 *
 * One store "kv" (default options: bytewise order, unique keys, 4 KiB
 * nodes, 100-byte values inline). Writes: sop_upsert in SOP_TXN_WRITE
 * transactions, retried on SOP_ECONFLICT. Reads: SOP_TXN_READ snapshots.
 * "sop": SOP_SYNC_FULL (every commit durable); "sop-nosync": SOP_SYNC_NONE.
 * With --replica DIR (kv_sop_replica) every database is mirrored to
 * DIR/<engine>-<database> (sop_db_options.replica_path), emptied when the
 * database is new. Compiled out with -DSOP_BENCH_NO_SOP.
 */
#ifndef SOP_BENCH_NO_SOP

#include "kv.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench_util.h"

#include "sop/sop.h"

#define STORE_NAME "kv"
/* Read transactions that walk the whole store get a generous time limit. */
#define LONG_READ_MS (3600u * 1000u)

const char *kv_sop_replica;

struct kv_db {
    sop_db *db;
};

struct kv_sess {
    kv_db *d;
};

static void sop_err(sop_db *db, const char *what, int rc)
{
    const char *detail = db ? sop_db_errmsg(db) : "";
    kv_set_err("%s: %s (%s)%s%s", what, sop_strerror(rc), sop_err_name(rc), *detail ? ": " : "",
               detail);
}

static void sopk_close(kv_db *d)
{
    if (!d)
        return;
    int rc = sop_db_close(d->db);
    if (rc != SOP_OK)
        fprintf(stderr, "sop-bench: sop_db_close: %s (%s)\n", sop_strerror(rc), sop_err_name(rc));
    free(d);
}

static int sopk_open(const kv_engine *e, const char *dir, kv_sync sync, uint64_t n_hint,
                     kv_db **out, char *desc, size_t desclen)
{
    (void)sync; /* SOP_SYNC_FULL makes batched and single commits durable alike */
    (void)n_hint;
    kv_db *d = calloc(1, sizeof *d);
    if (!d) {
        kv_set_err("out of memory");
        return -1;
    }
    sop_db_options o;
    sop_db_options_init(&o);
    o.sync = e->nosync ? SOP_SYNC_NONE : SOP_SYNC_FULL;
    if (getenv("SOP_BENCH_CACHE_MB"))
        o.cache_bytes = (size_t)atol(getenv("SOP_BENCH_CACHE_MB")) << 20;
    /* reads through segment maps, as LMDB reads its pages (SIGBUS on a
     * media error); SOP_BENCH_MAP_READS=0 measures the read() path */
    o.map_reads = !getenv("SOP_BENCH_MAP_READS") || atoi(getenv("SOP_BENCH_MAP_READS")) != 0;
    char replica[4200];
    if (kv_sop_replica) {
        const char *leaf = strrchr(dir, '/');
        snprintf(replica, sizeof replica, "%s/%s-%s", kv_sop_replica, e->name,
                 leaf ? leaf + 1 : dir);
        if (access(dir, F_OK) != 0)
            bench_rmtree(replica); /* a new database: a new replica */
        if (bench_mkdirs(kv_sop_replica) != 0) {
            kv_set_err("cannot create %s", kv_sop_replica);
            free(d);
            return -1;
        }
        o.replica_path = replica;
    }
    int rc = sop_db_open(dir, &o, &d->db);
    if (rc != SOP_OK) {
        sop_err(d->db, "sop_db_open", rc);
        if (rc != -ENOMEM)
            sop_db_close(d->db);
        free(d);
        return -1;
    }
    sop_txn *t = NULL;
    sop_store *s = NULL;
    if ((rc = sop_txn_begin(d->db, SOP_TXN_WRITE, 0, &t)) != SOP_OK) {
        sop_err(d->db, "sop_txn_begin", rc);
        goto fail;
    }
    rc = sop_store_open(t, STORE_NAME, &s);
    if (rc == SOP_ENOTFOUND)
        rc = sop_store_create(t, STORE_NAME, NULL, &s);
    if (rc != SOP_OK) {
        sop_err(d->db, "sop_store_create", rc);
        sop_txn_rollback(t);
        goto fail;
    }
    if ((rc = sop_txn_commit(t)) != SOP_OK) {
        sop_err(d->db, "sop_txn_commit (create store)", rc);
        goto fail;
    }
    sop_replica_status rs;
    if (kv_sop_replica && (sop_db_replica_status(d->db, &rs) != SOP_OK || !rs.in_sync)) {
        kv_set_err("the replica folder %s is not in sync", replica);
        goto fail;
    }
    snprintf(desc, desclen, "%s, cache %zu MiB%s%s", e->nosync ? "SOP_SYNC_NONE" : "SOP_SYNC_FULL",
             o.cache_bytes >> 20, o.map_reads && !kv_sop_replica ? ", map_reads" : "",
             kv_sop_replica ? ", replica" : "");
    *out = d;
    return 0;
fail:
    sopk_close(d);
    return -1;
}

static int sopk_sess_open(kv_db *d, kv_sess **out)
{
    kv_sess *s = calloc(1, sizeof *s);
    if (!s) {
        kv_set_err("out of memory");
        return -1;
    }
    s->d = d;
    *out = s;
    return 0;
}

static void sopk_sess_close(kv_sess *s)
{
    free(s);
}

/* Begins a transaction and opens the store in it. */
static int begin(kv_sess *s, sop_txn_mode mode, uint32_t max_ms, sop_txn **t, sop_store **st)
{
    int rc = sop_txn_begin(s->d->db, mode, max_ms, t);
    if (rc != SOP_OK) {
        sop_err(s->d->db, "sop_txn_begin", rc);
        return -1;
    }
    rc = sop_store_open(*t, STORE_NAME, st);
    if (rc != SOP_OK) {
        sop_err(s->d->db, "sop_store_open", rc);
        sop_txn_rollback(*t);
        return -1;
    }
    return 0;
}

static int sopk_put(kv_sess *s, const uint32_t *ids, size_t n, uint32_t gen, kv_stat *stat)
{
    unsigned char kb[KV_KEY_LEN];
    for (;;) {
        sop_txn *t;
        sop_store *st;
        if (begin(s, SOP_TXN_WRITE, 0, &t, &st) != 0)
            return -1;
        for (size_t i = 0; i < n; i++) {
            kv_key(ids[i], kb);
            sop_val k = {kb, KV_KEY_LEN}, v = {kv_val(ids[i], gen), KV_VAL_LEN};
            int rc = sop_upsert(st, &k, &v);
            if (rc != SOP_OK) {
                sop_err(s->d->db, "sop_upsert", rc);
                sop_txn_rollback(t);
                return -1;
            }
        }
        int rc = sop_txn_commit(t);
        if (rc == SOP_OK)
            return 0;
        if (rc != SOP_ECONFLICT) {
            sop_err(s->d->db, "sop_txn_commit", rc);
            return -1;
        }
        stat->retries++;
    }
}

static int sopk_get(kv_sess *s, const uint32_t *ids, size_t n, int verify, kv_stat *stat)
{
    sop_txn *t;
    sop_store *st;
    if (begin(s, SOP_TXN_READ, 0, &t, &st) != 0)
        return -1;
    unsigned char kb[KV_KEY_LEN];
    for (size_t i = 0; i < n; i++) {
        kv_key(ids[i], kb);
        sop_val k = {kb, KV_KEY_LEN}, v;
        int rc = sop_get(st, &k, &v);
        if (rc == SOP_ENOTFOUND) {
            stat->missing++;
            continue;
        }
        if (rc != SOP_OK) {
            sop_err(s->d->db, "sop_get", rc);
            sop_txn_rollback(t);
            return -1;
        }
        stat->found++;
        stat->bad += !kv_check_val(ids[i], verify, v.data, v.size);
        stat->sum += v.size ? ((const unsigned char *)v.data)[0] : 0;
    }
    sop_txn_rollback(t);
    return 0;
}

static int sopk_scan(kv_sess *s, const uint32_t *ids, size_t n, size_t len, kv_stat *stat)
{
    sop_txn *t;
    sop_store *st;
    sop_cursor *c;
    if (begin(s, SOP_TXN_READ, LONG_READ_MS, &t, &st) != 0)
        return -1;
    int rc = sop_cursor_open(st, &c);
    if (rc != SOP_OK) {
        sop_err(s->d->db, "sop_cursor_open", rc);
        sop_txn_rollback(t);
        return -1;
    }
    unsigned char kb[KV_KEY_LEN];
    for (size_t i = 0; i < n; i++) {
        kv_key(ids[i], kb);
        sop_val k = {kb, KV_KEY_LEN}, v;
        rc = sop_cursor_find(c, &k, SOP_FIND_GE);
        for (size_t j = 0; j < len && rc == SOP_OK; j++) {
            rc = sop_cursor_get(c, &k, &v);
            if (rc != SOP_OK)
                break;
            if (j == 0)
                stat->bad += k.size != KV_KEY_LEN || memcmp(k.data, kb, KV_KEY_LEN) != 0;
            stat->items++;
            stat->bad += v.size != KV_VAL_LEN;
            stat->sum += v.size ? ((const unsigned char *)v.data)[0] : 0;
            if (j + 1 < len)
                rc = sop_cursor_next(c);
        }
        if (rc != SOP_OK && rc != SOP_ENOTFOUND) {
            sop_err(s->d->db, "sop cursor scan", rc);
            sop_cursor_close(c);
            sop_txn_rollback(t);
            return -1;
        }
    }
    sop_cursor_close(c);
    sop_txn_rollback(t);
    return 0;
}

static int sopk_read_all(kv_sess *s, kv_stat *stat)
{
    sop_txn *t;
    sop_store *st;
    sop_cursor *c;
    if (begin(s, SOP_TXN_READ, LONG_READ_MS, &t, &st) != 0)
        return -1;
    int rc = sop_cursor_open(st, &c);
    if (rc != SOP_OK) {
        sop_err(s->d->db, "sop_cursor_open", rc);
        sop_txn_rollback(t);
        return -1;
    }
    int64_t prev = -1;
    for (rc = sop_cursor_first(c); rc == SOP_OK; rc = sop_cursor_next(c)) {
        sop_val k, v;
        if ((rc = sop_cursor_get(c, &k, &v)) != SOP_OK)
            break;
        int64_t id = kv_key_id(k.data, k.size);
        stat->bad += id <= prev || v.size != KV_VAL_LEN;
        prev = id;
        stat->items++;
        stat->sum += v.size ? ((const unsigned char *)v.data)[0] : 0;
    }
    sop_cursor_close(c);
    sop_txn_rollback(t);
    if (rc != SOP_ENOTFOUND) {
        sop_err(s->d->db, "sop cursor walk", rc);
        return -1;
    }
    return 0;
}

#define SOP_OPS                                                                               \
    .open = sopk_open, .close = sopk_close, .sess_open = sopk_sess_open,                        \
    .sess_close = sopk_sess_close, .put = sopk_put, .get = sopk_get, .scan = sopk_scan,         \
    .read_all = sopk_read_all

const kv_engine kv_engine_sop = {.name = "sop", .nosync = 0, SOP_OPS};
const kv_engine kv_engine_sop_nosync = {.name = "sop-nosync", .peer_of = "sop", .nosync = 1,
                                        SOP_OPS};

#else
/* ISO C forbids an empty translation unit. */
typedef int kv_sop_compiled_out;
#endif /* SOP_BENCH_NO_SOP */
