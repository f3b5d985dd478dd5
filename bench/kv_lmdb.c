/*
 * kv_lmdb.c - LMDB 0.9 engine of the kv suite.
 *
 * "lmdb": default flags, i.e. durable: every commit fdatasyncs the data
 * file and the meta page. "lmdb-nosync": MDB_NOSYNC. Plain mdb_put (no
 * MDB_APPEND, which only LMDB has) so every engine does the same work.
 */
#include "kv.h"

#include <errno.h>
#include <lmdb.h>
#include <stdio.h>
#include <stdlib.h>

#include "bench_util.h"

struct kv_db {
    MDB_env *env;
    MDB_dbi dbi;
};

struct kv_sess {
    kv_db *d;
};

static void lmdb_close(kv_db *d)
{
    if (!d)
        return;
    mdb_env_close(d->env);
    free(d);
}

static int lmdb_open(const kv_engine *e, const char *dir, kv_sync sync, uint64_t n_hint,
                     kv_db **out, char *desc, size_t desclen)
{
    (void)sync; /* LMDB default is durable for both batched and single commits */
    kv_db *d = calloc(1, sizeof *d);
    if (!d) {
        kv_set_err("out of memory");
        return -1;
    }
    int rc;
    if (bench_mkdirs(dir) != 0) {
        kv_set_err("mkdir %s: %s", dir, strerror(errno));
        free(d);
        return -1;
    }
    if ((rc = mdb_env_create(&d->env)) != 0)
        goto fail;
    /* Map size: room for several copies of the data (it is only address
     * space; the file grows as pages are written). */
    size_t map = (size_t)1 << 30;
    size_t want = (size_t)n_hint * 1024u;
    if (want > map)
        map = want;
    if ((rc = mdb_env_set_mapsize(d->env, map)) != 0)
        goto fail;
    if ((rc = mdb_env_set_maxreaders(d->env, 256)) != 0)
        goto fail;
    if ((rc = mdb_env_open(d->env, dir, e->nosync ? MDB_NOSYNC : 0, 0644)) != 0)
        goto fail;
    MDB_txn *txn;
    if ((rc = mdb_txn_begin(d->env, NULL, 0, &txn)) != 0)
        goto fail;
    if ((rc = mdb_dbi_open(txn, NULL, 0, &d->dbi)) != 0) {
        mdb_txn_abort(txn);
        goto fail;
    }
    if ((rc = mdb_txn_commit(txn)) != 0)
        goto fail;
    snprintf(desc, desclen, "%s",
             e->nosync ? "MDB_NOSYNC" : "default (fdatasync per commit)");
    *out = d;
    return 0;
fail:
    kv_set_err("lmdb open %s: %s", dir, mdb_strerror(rc));
    if (d->env)
        mdb_env_close(d->env);
    free(d);
    return -1;
}

static int lmdb_sess_open(kv_db *d, kv_sess **out)
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

static void lmdb_sess_close(kv_sess *s)
{
    free(s);
}

static int lmdb_put(kv_sess *s, const uint32_t *ids, size_t n, uint32_t gen, kv_stat *st)
{
    (void)st;
    MDB_txn *txn;
    int rc = mdb_txn_begin(s->d->env, NULL, 0, &txn);
    if (rc != 0) {
        kv_set_err("mdb_txn_begin: %s", mdb_strerror(rc));
        return -1;
    }
    unsigned char kb[KV_KEY_LEN];
    for (size_t i = 0; i < n; i++) {
        kv_key(ids[i], kb);
        MDB_val k = {KV_KEY_LEN, kb};
        MDB_val v = {KV_VAL_LEN, (void *)kv_val(ids[i], gen)};
        if ((rc = mdb_put(txn, s->d->dbi, &k, &v, 0)) != 0) {
            mdb_txn_abort(txn);
            kv_set_err("mdb_put: %s", mdb_strerror(rc));
            return -1;
        }
    }
    if ((rc = mdb_txn_commit(txn)) != 0) {
        kv_set_err("mdb_txn_commit: %s", mdb_strerror(rc));
        return -1;
    }
    return 0;
}

static int lmdb_get(kv_sess *s, const uint32_t *ids, size_t n, int verify, kv_stat *st)
{
    MDB_txn *txn;
    int rc = mdb_txn_begin(s->d->env, NULL, MDB_RDONLY, &txn);
    if (rc != 0) {
        kv_set_err("mdb_txn_begin: %s", mdb_strerror(rc));
        return -1;
    }
    unsigned char kb[KV_KEY_LEN];
    for (size_t i = 0; i < n; i++) {
        kv_key(ids[i], kb);
        MDB_val k = {KV_KEY_LEN, kb}, v;
        rc = mdb_get(txn, s->d->dbi, &k, &v);
        if (rc == MDB_NOTFOUND) {
            st->missing++;
            continue;
        }
        if (rc != 0) {
            mdb_txn_abort(txn);
            kv_set_err("mdb_get: %s", mdb_strerror(rc));
            return -1;
        }
        st->found++;
        st->bad += !kv_check_val(ids[i], verify, v.mv_data, v.mv_size);
        st->sum += ((const unsigned char *)v.mv_data)[0];
    }
    mdb_txn_abort(txn);
    return 0;
}

static int lmdb_scan(kv_sess *s, const uint32_t *ids, size_t n, size_t len, kv_stat *st)
{
    MDB_txn *txn;
    MDB_cursor *c;
    int rc = mdb_txn_begin(s->d->env, NULL, MDB_RDONLY, &txn);
    if (rc != 0) {
        kv_set_err("mdb_txn_begin: %s", mdb_strerror(rc));
        return -1;
    }
    if ((rc = mdb_cursor_open(txn, s->d->dbi, &c)) != 0) {
        mdb_txn_abort(txn);
        kv_set_err("mdb_cursor_open: %s", mdb_strerror(rc));
        return -1;
    }
    unsigned char kb[KV_KEY_LEN];
    for (size_t i = 0; i < n; i++) {
        kv_key(ids[i], kb);
        MDB_val k = {KV_KEY_LEN, kb}, v;
        rc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE);
        if (rc == 0 && (k.mv_size != KV_KEY_LEN || memcmp(k.mv_data, kb, KV_KEY_LEN) != 0))
            st->bad++; /* every id exists: the seek must land on it */
        for (size_t j = 0; j < len && rc == 0; j++) {
            st->items++;
            st->bad += v.mv_size != KV_VAL_LEN;
            st->sum += ((const unsigned char *)v.mv_data)[0];
            if (j + 1 < len)
                rc = mdb_cursor_get(c, &k, &v, MDB_NEXT);
        }
        if (rc != 0 && rc != MDB_NOTFOUND) {
            mdb_cursor_close(c);
            mdb_txn_abort(txn);
            kv_set_err("mdb_cursor_get: %s", mdb_strerror(rc));
            return -1;
        }
    }
    mdb_cursor_close(c);
    mdb_txn_abort(txn);
    return 0;
}

static int lmdb_read_all(kv_sess *s, kv_stat *st)
{
    MDB_txn *txn;
    MDB_cursor *c;
    int rc = mdb_txn_begin(s->d->env, NULL, MDB_RDONLY, &txn);
    if (rc != 0) {
        kv_set_err("mdb_txn_begin: %s", mdb_strerror(rc));
        return -1;
    }
    if ((rc = mdb_cursor_open(txn, s->d->dbi, &c)) != 0) {
        mdb_txn_abort(txn);
        kv_set_err("mdb_cursor_open: %s", mdb_strerror(rc));
        return -1;
    }
    MDB_val k, v;
    int64_t prev = -1;
    for (rc = mdb_cursor_get(c, &k, &v, MDB_FIRST); rc == 0;
         rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
        int64_t id = kv_key_id(k.mv_data, k.mv_size);
        st->bad += id <= prev || v.mv_size != KV_VAL_LEN;
        prev = id;
        st->items++;
        st->sum += ((const unsigned char *)v.mv_data)[0];
    }
    mdb_cursor_close(c);
    mdb_txn_abort(txn);
    if (rc != MDB_NOTFOUND) {
        kv_set_err("mdb_cursor_get: %s", mdb_strerror(rc));
        return -1;
    }
    return 0;
}

#define LMDB_OPS                                                                         \
    .open = lmdb_open, .close = lmdb_close, .sess_open = lmdb_sess_open,                   \
    .sess_close = lmdb_sess_close, .put = lmdb_put, .get = lmdb_get, .scan = lmdb_scan,   \
    .read_all = lmdb_read_all

const kv_engine kv_engine_lmdb = {.name = "lmdb", .nosync = 0, LMDB_OPS};
const kv_engine kv_engine_lmdb_nosync = {.name = "lmdb-nosync", .peer_of = "lmdb", .nosync = 1,
                                         LMDB_OPS};
