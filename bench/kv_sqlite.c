/*
 * kv_sqlite.c - SQLite 3 engine of the kv suite.
 *
 * CREATE TABLE kv(k BLOB PRIMARY KEY, v BLOB) WITHOUT ROWID, WAL journal,
 * prepared statements, one connection per thread (session).
 * "sqlite": synchronous=NORMAL for batched fills (a WAL commit is not synced;
 * the WAL is synced at checkpoints), synchronous=FULL where every commit
 * must be durable (fillsync, readwrite). "sqlite-nosync": synchronous=OFF.
 * Page cache: 64 MiB per connection, the same budget as sop's default L1
 * node cache.
 */
#include "kv.h"

#include <errno.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>

#include "bench_util.h"

#define SQLITE_CACHE_PRAGMA "PRAGMA cache_size=-65536" /* KiB: 64 MiB */

struct kv_db {
    char path[4096];
    const char *sync_pragma;
    sqlite3 *keeper; /* holds the database open between sessions */
};

struct kv_sess {
    kv_db *d;
    sqlite3 *c;
    sqlite3_stmt *put, *get, *scan, *all, *begin, *begin_w, *commit, *rollback;
};

static int exec(sqlite3 *c, const char *sql)
{
    char *msg = NULL;
    int rc = sqlite3_exec(c, sql, NULL, NULL, &msg);
    if (rc != SQLITE_OK) {
        kv_set_err("sqlite '%s': %s", sql, msg ? msg : sqlite3_errstr(rc));
        sqlite3_free(msg);
        return -1;
    }
    return 0;
}

static int sq_connect(kv_db *d, sqlite3 **out)
{
    sqlite3 *c = NULL;
    int rc = sqlite3_open_v2(d->path, &c,
                             SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL);
    if (rc != SQLITE_OK) {
        kv_set_err("sqlite open %s: %s", d->path, c ? sqlite3_errmsg(c) : sqlite3_errstr(rc));
        sqlite3_close(c);
        return -1;
    }
    sqlite3_busy_timeout(c, 60000);
    if (exec(c, d->sync_pragma) != 0 || exec(c, SQLITE_CACHE_PRAGMA) != 0) {
        sqlite3_close(c);
        return -1;
    }
    *out = c;
    return 0;
}

static void sqlite_close(kv_db *d)
{
    if (!d)
        return;
    sqlite3_close(d->keeper); /* the last connection: checkpoints and removes the WAL */
    free(d);
}

static int sqlite_open(const kv_engine *e, const char *dir, kv_sync sync, uint64_t n_hint,
                       kv_db **out, char *desc, size_t desclen)
{
    (void)n_hint;
    kv_db *d = calloc(1, sizeof *d);
    if (!d) {
        kv_set_err("out of memory");
        return -1;
    }
    if (bench_mkdirs(dir) != 0) {
        kv_set_err("mkdir %s: %s", dir, strerror(errno));
        free(d);
        return -1;
    }
    snprintf(d->path, sizeof d->path, "%s/kv.sqlite", dir);
    const char *mode;
    if (e->nosync) {
        d->sync_pragma = "PRAGMA synchronous=OFF";
        mode = "OFF";
    } else if (sync == KV_SYNC_EACH) {
        d->sync_pragma = "PRAGMA synchronous=FULL";
        mode = "FULL";
    } else {
        d->sync_pragma = "PRAGMA synchronous=NORMAL";
        mode = "NORMAL";
    }
    if (sq_connect(d, &d->keeper) != 0) {
        free(d);
        return -1;
    }
    if (exec(d->keeper, "PRAGMA journal_mode=WAL") != 0 ||
        exec(d->keeper, "CREATE TABLE IF NOT EXISTS kv(k BLOB PRIMARY KEY, v BLOB) WITHOUT ROWID") !=
            0) {
        sqlite_close(d);
        return -1;
    }
    snprintf(desc, desclen, "WAL, synchronous=%s", mode);
    *out = d;
    return 0;
}

static void sqlite_sess_close(kv_sess *s)
{
    if (!s)
        return;
    sqlite3_stmt *all[] = {s->put, s->get, s->scan, s->all, s->begin, s->begin_w, s->commit, s->rollback};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        sqlite3_finalize(all[i]);
    sqlite3_close(s->c);
    free(s);
}

static int sqlite_sess_open(kv_db *d, kv_sess **out)
{
    kv_sess *s = calloc(1, sizeof *s);
    if (!s) {
        kv_set_err("out of memory");
        return -1;
    }
    s->d = d;
    if (sq_connect(d, &s->c) != 0) {
        free(s);
        return -1;
    }
    struct {
        sqlite3_stmt **st;
        const char *sql;
    } stmts[] = {
        {&s->put, "INSERT OR REPLACE INTO kv(k, v) VALUES (?1, ?2)"},
        {&s->get, "SELECT v FROM kv WHERE k = ?1"},
        {&s->scan, "SELECT k, v FROM kv WHERE k >= ?1 ORDER BY k LIMIT ?2"},
        {&s->all, "SELECT k, v FROM kv ORDER BY k"},
        {&s->begin, "BEGIN"},
        {&s->begin_w, "BEGIN IMMEDIATE"},
        {&s->commit, "COMMIT"},
        {&s->rollback, "ROLLBACK"},
    };
    for (size_t i = 0; i < sizeof stmts / sizeof stmts[0]; i++) {
        if (sqlite3_prepare_v3(s->c, stmts[i].sql, -1, SQLITE_PREPARE_PERSISTENT, stmts[i].st,
                               NULL) != SQLITE_OK) {
            kv_set_err("sqlite prepare '%s': %s", stmts[i].sql, sqlite3_errmsg(s->c));
            sqlite_sess_close(s);
            return -1;
        }
    }
    *out = s;
    return 0;
}

/* Runs a statement without results (BEGIN/COMMIT/ROLLBACK). */
static int run(kv_sess *s, sqlite3_stmt *st)
{
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    if (rc != SQLITE_DONE) {
        kv_set_err("sqlite '%s': %s", sqlite3_sql(st), sqlite3_errmsg(s->c));
        return rc;
    }
    return 0;
}

static int sqlite_put(kv_sess *s, const uint32_t *ids, size_t n, uint32_t gen, kv_stat *st)
{
    int rc;
    /* busy_timeout makes BEGIN IMMEDIATE wait for the other writer; a
     * SQLITE_BUSY that still comes out is retried like a conflict. */
    while ((rc = run(s, s->begin_w)) == SQLITE_BUSY)
        st->retries++;
    if (rc != 0)
        return -1;
    unsigned char kb[KV_KEY_LEN];
    for (size_t i = 0; i < n; i++) {
        kv_key(ids[i], kb);
        sqlite3_bind_blob(s->put, 1, kb, KV_KEY_LEN, SQLITE_STATIC);
        sqlite3_bind_blob(s->put, 2, kv_val(ids[i], gen), KV_VAL_LEN, SQLITE_STATIC);
        rc = sqlite3_step(s->put);
        sqlite3_reset(s->put);
        if (rc != SQLITE_DONE) {
            kv_set_err("sqlite insert: %s", sqlite3_errmsg(s->c));
            run(s, s->rollback);
            return -1;
        }
    }
    while ((rc = run(s, s->commit)) == SQLITE_BUSY)
        st->retries++;
    if (rc != 0) {
        run(s, s->rollback);
        return -1;
    }
    return 0;
}

static int sqlite_get(kv_sess *s, const uint32_t *ids, size_t n, int verify, kv_stat *st)
{
    if (run(s, s->begin) != 0)
        return -1;
    unsigned char kb[KV_KEY_LEN];
    for (size_t i = 0; i < n; i++) {
        kv_key(ids[i], kb);
        sqlite3_bind_blob(s->get, 1, kb, KV_KEY_LEN, SQLITE_STATIC);
        int rc = sqlite3_step(s->get);
        if (rc == SQLITE_ROW) {
            const void *v = sqlite3_column_blob(s->get, 0);
            size_t vlen = (size_t)sqlite3_column_bytes(s->get, 0);
            st->found++;
            st->bad += !kv_check_val(ids[i], verify, v, vlen);
            st->sum += vlen ? ((const unsigned char *)v)[0] : 0;
        } else if (rc == SQLITE_DONE) {
            st->missing++;
        } else {
            kv_set_err("sqlite select: %s", sqlite3_errmsg(s->c));
            sqlite3_reset(s->get);
            run(s, s->rollback);
            return -1;
        }
        sqlite3_reset(s->get);
    }
    return run(s, s->commit) == 0 ? 0 : -1;
}

static int sqlite_scan(kv_sess *s, const uint32_t *ids, size_t n, size_t len, kv_stat *st)
{
    if (run(s, s->begin) != 0)
        return -1;
    unsigned char kb[KV_KEY_LEN];
    for (size_t i = 0; i < n; i++) {
        kv_key(ids[i], kb);
        sqlite3_bind_blob(s->scan, 1, kb, KV_KEY_LEN, SQLITE_STATIC);
        sqlite3_bind_int64(s->scan, 2, (sqlite3_int64)len);
        int rc, first = 1;
        while ((rc = sqlite3_step(s->scan)) == SQLITE_ROW) {
            if (first) {
                const void *k = sqlite3_column_blob(s->scan, 0);
                st->bad += sqlite3_column_bytes(s->scan, 0) != KV_KEY_LEN ||
                           memcmp(k, kb, KV_KEY_LEN) != 0;
                first = 0;
            }
            const unsigned char *v = sqlite3_column_blob(s->scan, 1);
            int vlen = sqlite3_column_bytes(s->scan, 1);
            st->items++;
            st->bad += vlen != KV_VAL_LEN;
            st->sum += vlen ? v[0] : 0;
        }
        sqlite3_reset(s->scan);
        if (rc != SQLITE_DONE) {
            kv_set_err("sqlite scan: %s", sqlite3_errmsg(s->c));
            run(s, s->rollback);
            return -1;
        }
    }
    return run(s, s->commit) == 0 ? 0 : -1;
}

static int sqlite_read_all(kv_sess *s, kv_stat *st)
{
    if (run(s, s->begin) != 0)
        return -1;
    int rc;
    int64_t prev = -1;
    while ((rc = sqlite3_step(s->all)) == SQLITE_ROW) {
        int64_t id = kv_key_id(sqlite3_column_blob(s->all, 0),
                               (size_t)sqlite3_column_bytes(s->all, 0));
        const unsigned char *v = sqlite3_column_blob(s->all, 1);
        int vlen = sqlite3_column_bytes(s->all, 1);
        st->bad += id <= prev || vlen != KV_VAL_LEN;
        prev = id;
        st->items++;
        st->sum += vlen ? v[0] : 0;
    }
    sqlite3_reset(s->all);
    if (rc != SQLITE_DONE) {
        kv_set_err("sqlite scan all: %s", sqlite3_errmsg(s->c));
        run(s, s->rollback);
        return -1;
    }
    return run(s, s->commit) == 0 ? 0 : -1;
}

#define SQLITE_OPS                                                                            \
    .open = sqlite_open, .close = sqlite_close, .sess_open = sqlite_sess_open,                  \
    .sess_close = sqlite_sess_close, .put = sqlite_put, .get = sqlite_get, .scan = sqlite_scan, \
    .read_all = sqlite_read_all

const kv_engine kv_engine_sqlite = {.name = "sqlite", .nosync = 0, SQLITE_OPS};
const kv_engine kv_engine_sqlite_nosync = {.name = "sqlite-nosync", .peer_of = "sqlite",
                                           .nosync = 1, SQLITE_OPS};
