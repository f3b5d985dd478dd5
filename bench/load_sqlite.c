/*
 * load_sqlite.c - the SQLite FTS5 engine of the load suite: the words as
 * (id, text) rows of an FTS5 table, the text half of the peers' job.
 *
 * CREATE VIRTUAL TABLE t USING fts5(id UNINDEXED, body, tokenize='porter
 * unicode61'): the table keeps the id and the text, as sop's record store
 * does (the text suite's table is contentless because its sop side keeps no
 * text). Settings as in the text suite (text_sqlite.c): WAL journal,
 * synchronous=FULL (the commit is durable), a page cache of
 * SOP_BENCH_CACHE_MB (default 64 MiB); BEGIN, the CREATE, one INSERT per
 * word, COMMIT: one transaction. Timed: from opening the new file to
 * sqlite3_close() (which checkpoints the WAL into the database file).
 * Bytes on disk: the directory after the close.
 *
 * Check (untimed): count(*) is n, and a MATCH on a word finds its row.
 */
#include "load.h"

#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_util.h"

static size_t cache_mb(void)
{
    const char *e = getenv("SOP_BENCH_CACHE_MB");
    return e && atol(e) > 0 ? (size_t)atol(e) : 64;
}

static int exec(sqlite3 *c, const char *sql)
{
    char *msg = NULL;
    int rc = sqlite3_exec(c, sql, NULL, NULL, &msg);
    if (rc != SQLITE_OK) {
        load_set_err("sqlite '%s': %s", sql, msg ? msg : sqlite3_errstr(rc));
        sqlite3_free(msg);
        return -1;
    }
    return 0;
}

static int sq_connect(const char *dir, sqlite3 **out)
{
    char path[4200], pragma[64];
    snprintf(path, sizeof path, "%s/load.sqlite", dir);
    sqlite3 *c = NULL;
    int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX;
    int rc = sqlite3_open_v2(path, &c, flags, NULL);
    if (rc != SQLITE_OK) {
        load_set_err("sqlite open %s: %s", path, c ? sqlite3_errmsg(c) : sqlite3_errstr(rc));
        sqlite3_close(c);
        return -1;
    }
    snprintf(pragma, sizeof pragma, "PRAGMA cache_size=-%zu", cache_mb() * 1024);
    if (exec(c, "PRAGMA journal_mode=WAL") != 0 || exec(c, "PRAGMA synchronous=FULL") != 0 ||
        exec(c, pragma) != 0) {
        sqlite3_close(c);
        return -1;
    }
    *out = c;
    return 0;
}

static int insert_all(sqlite3 *c, const load_set *s)
{
    sqlite3_stmt *ins = NULL;
    if (sqlite3_prepare_v2(c, "INSERT INTO t(id, body) VALUES(?1, ?2)", -1, &ins, NULL) !=
        SQLITE_OK) {
        load_set_err("sqlite prepare insert: %s", sqlite3_errmsg(c));
        return -1;
    }
    for (size_t i = 0; i < s->n; i++) {
        sqlite3_bind_text(ins, 1, s->words[i], -1, SQLITE_STATIC);
        sqlite3_bind_text(ins, 2, s->words[i], -1, SQLITE_STATIC);
        int rc = sqlite3_step(ins);
        sqlite3_reset(ins);
        if (rc != SQLITE_DONE) {
            load_set_err("sqlite insert of word %zu: %s", i + 1, sqlite3_errmsg(c));
            sqlite3_finalize(ins);
            return -1;
        }
    }
    sqlite3_finalize(ins);
    return 0;
}

static int sq_run(load_ctx *ctx, const char *dir, load_result *r)
{
    sqlite3 *c;
    double t0 = bench_now();
    if (sq_connect(dir, &c) != 0)
        return -1;
    if (exec(c, "BEGIN") != 0 ||
        exec(c, "CREATE VIRTUAL TABLE t USING fts5(id UNINDEXED, body, "
                "tokenize='porter unicode61')") != 0 ||
        insert_all(c, ctx->set) != 0) {
        sqlite3_close(c);
        return -1;
    }
    double t1 = bench_now();
    if (exec(c, "COMMIT") != 0) {
        sqlite3_close(c);
        return -1;
    }
    double t2 = bench_now();
    int rc = sqlite3_close(c);
    double t3 = bench_now();
    if (rc != SQLITE_OK) {
        load_set_err("sqlite close: %s", sqlite3_errstr(rc));
        return -1;
    }
    r->secs = t3 - t0;
    r->items = ctx->set->n;
    r->bytes = bench_du(dir);
    snprintf(r->parts, sizeof r->parts, "insert %.2f s, commit %.2f s, close %.2f s", t1 - t0,
             t2 - t1, t3 - t2);
    snprintf(r->desc, sizeof r->desc,
             "SQLite %s FTS5(id UNINDEXED, body) porter unicode61; one transaction, WAL, "
             "synchronous=FULL (commit durable); cache %zu MiB",
             sqlite3_libversion(), cache_mb());
    return 0;
}

/* The single integer of @p sql (a count), or -1. */
static long long scalar(sqlite3 *c, const char *sql, const char *arg)
{
    sqlite3_stmt *st = NULL;
    long long v = -1;
    if (sqlite3_prepare_v2(c, sql, -1, &st, NULL) != SQLITE_OK) {
        load_set_err("sqlite prepare '%s': %s", sql, sqlite3_errmsg(c));
        return -1;
    }
    if (arg)
        sqlite3_bind_text(st, 1, arg, -1, SQLITE_STATIC);
    if (sqlite3_step(st) == SQLITE_ROW)
        v = sqlite3_column_int64(st, 0);
    else
        load_set_err("sqlite '%s': %s", sql, sqlite3_errmsg(c));
    sqlite3_finalize(st);
    return v;
}

static int sq_verify(load_ctx *ctx, const char *dir, load_result *r)
{
    sqlite3 *c;
    if (sq_connect(dir, &c) != 0)
        return -1;
    /* the probe word as an FTS5 string ("" doubles a quote) */
    const char *w = load_probe_word(ctx->set);
    char q[600];
    size_t o = 0;
    q[o++] = '"';
    for (; *w && o + 4 < sizeof q; w++) {
        if (*w == '"')
            q[o++] = '"';
        q[o++] = *w;
    }
    q[o++] = '"';
    q[o] = '\0';
    long long n = scalar(c, "SELECT count(*) FROM t", NULL);
    long long hit = n < 0 ? -1
                          : scalar(c, "SELECT count(*) FROM t WHERE t MATCH ?1 AND id = body", q);
    sqlite3_close(c);
    if (n < 0 || hit < 0)
        return -1;
    snprintf(r->check, sizeof r->check, "%lld rows; MATCH %s: %lld", n, q, hit);
    if ((unsigned long long)n != ctx->set->n || hit < 1) {
        load_set_err("check failed: %s", r->check);
        return -1;
    }
    return 0;
}

const load_engine load_engine_sqlite = {.name = "sqlite", .need = LOAD_NEED_WORDS,
                                        .run = sq_run, .verify = sq_verify};
