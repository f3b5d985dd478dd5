/*
 * text_sqlite.c - the SQLite FTS5 engine of the text suite.
 *
 * CREATE VIRTUAL TABLE t USING fts5(body, content='', tokenize='porter
 * unicode61'): contentless, because sop's text index does not keep the
 * texts either (it returns ids), and the stored text would otherwise be
 * most of the bytes on disk; FTS5's default detail=full is kept, as its
 * bm25() needs the term frequencies that detail=none and detail=column
 * drop. Document row r is rowid r + 1.
 *
 * Build: WAL journal, synchronous=FULL (the WAL is synced at commit, as
 * sop's SOP_SYNC_FULL commit is durable when it returns), a page cache of
 * SOP_BENCH_CACHE_MB (default 64 MiB, sop's default node cache); BEGIN,
 * one INSERT per document, COMMIT. Closing checkpoints the WAL into the
 * database file (close_s).
 *
 * Queries: SELECT rowid FROM t WHERE t MATCH ?1 ORDER BY bm25(t) LIMIT ?2
 * with the words quoted as FTS5 strings and joined by OR ("w1" OR "w2"),
 * one prepared statement on one connection, BEGIN .. COMMIT around each
 * TEXT_QUERIES_PER_TXN queries. FTS5's bm25(): k1 1.2, b 0.75, IDF
 * ln((N - n + 0.5) / (n + 0.5)) floored at 1e-6; lower is better.
 */
#include "text.h"

#include <errno.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_util.h"

struct text_index {
    sqlite3 *c;
    sqlite3_stmt *q, *begin, *commit;
    char *match;
    size_t match_cap;
};

static int exec(sqlite3 *c, const char *sql)
{
    char *msg = NULL;
    int rc = sqlite3_exec(c, sql, NULL, NULL, &msg);
    if (rc != SQLITE_OK) {
        text_set_err("sqlite '%s': %s", sql, msg ? msg : sqlite3_errstr(rc));
        sqlite3_free(msg);
        return -1;
    }
    return 0;
}

static int sq_connect(const char *dir, sqlite3 **out)
{
    char path[4200], pragma[64];
    snprintf(path, sizeof path, "%s/text.sqlite", dir);
    sqlite3 *c = NULL;
    int rc = sqlite3_open_v2(path, &c,
                             SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL);
    if (rc != SQLITE_OK) {
        text_set_err("sqlite open %s: %s", path, c ? sqlite3_errmsg(c) : sqlite3_errstr(rc));
        sqlite3_close(c);
        return -1;
    }
    snprintf(pragma, sizeof pragma, "PRAGMA cache_size=-%zu", text_cache_mb() * 1024);
    if (exec(c, "PRAGMA journal_mode=WAL") != 0 || exec(c, "PRAGMA synchronous=FULL") != 0 ||
        exec(c, pragma) != 0) {
        sqlite3_close(c);
        return -1;
    }
    *out = c;
    return 0;
}

static int sq_build(const text_corpus *corpus, const char *dir, text_build *b)
{
    sqlite3 *c;
    sqlite3_stmt *ins = NULL;
    double t0 = bench_now();
    if (sq_connect(dir, &c) != 0)
        return -1;
    if (exec(c, "BEGIN") != 0 ||
        exec(c, "CREATE VIRTUAL TABLE t USING fts5(body, content='', "
                "tokenize='porter unicode61')") != 0)
        goto fail;
    int rc = sqlite3_prepare_v2(c, "INSERT INTO t(rowid, body) VALUES(?1, ?2)", -1, &ins, NULL);
    if (rc != SQLITE_OK) {
        text_set_err("sqlite prepare insert: %s", sqlite3_errmsg(c));
        goto fail;
    }
    for (size_t i = 0; i < corpus->n; i++) {
        sqlite3_bind_int64(ins, 1, (sqlite3_int64)i + 1);
        sqlite3_bind_text(ins, 2, corpus->docs[i].text, (int)corpus->docs[i].len, SQLITE_STATIC);
        if ((rc = sqlite3_step(ins)) != SQLITE_DONE) {
            text_set_err("sqlite insert doc %zu: %s", i, sqlite3_errmsg(c));
            goto fail;
        }
        sqlite3_reset(ins);
    }
    sqlite3_finalize(ins);
    ins = NULL;
    double tc = bench_now();
    if (exec(c, "COMMIT") != 0)
        goto fail;
    double t1 = bench_now();
    rc = sqlite3_close(c);
    double t2 = bench_now();
    if (rc != SQLITE_OK) {
        text_set_err("sqlite close: %s", sqlite3_errstr(rc));
        return -1;
    }
    b->index_s = t1 - t0;
    b->commit_s = t1 - tc;
    b->close_s = t2 - t1;
    snprintf(b->desc, sizeof b->desc,
             "SQLite %s FTS5 porter unicode61, contentless, detail=full; WAL, "
             "synchronous=FULL (commit durable); cache %zu MiB",
             sqlite3_libversion(), text_cache_mb());
    return 0;
fail:
    sqlite3_finalize(ins);
    sqlite3_close(c);
    return -1;
}

static void sq_close(text_index *ix)
{
    if (!ix)
        return;
    sqlite3_finalize(ix->q);
    sqlite3_finalize(ix->begin);
    sqlite3_finalize(ix->commit);
    sqlite3_close(ix->c);
    free(ix->match);
    free(ix);
}

static int prepare(text_index *ix, const char *sql, sqlite3_stmt **st)
{
    if (sqlite3_prepare_v2(ix->c, sql, -1, st, NULL) != SQLITE_OK) {
        text_set_err("sqlite prepare '%s': %s", sql, sqlite3_errmsg(ix->c));
        return -1;
    }
    return 0;
}

static int sq_open(const char *dir, size_t ndocs, text_index **out)
{
    (void)ndocs;
    text_index *ix = calloc(1, sizeof *ix);
    if (!ix) {
        text_set_err("out of memory");
        return -1;
    }
    if (sq_connect(dir, &ix->c) != 0) {
        free(ix);
        return -1;
    }
    if (prepare(ix, "SELECT rowid FROM t WHERE t MATCH ?1 ORDER BY bm25(t) LIMIT ?2", &ix->q) ||
        prepare(ix, "BEGIN", &ix->begin) || prepare(ix, "COMMIT", &ix->commit)) {
        sq_close(ix);
        return -1;
    }
    *out = ix;
    return 0;
}

/* "w1 w2 w3" -> "\"w1\" OR \"w2\" OR \"w3\"" (a '"' inside a word doubled). */
static const char *match_of(text_index *ix, const char *q)
{
    size_t need = strlen(q) * 6 + 8;
    if (need > ix->match_cap) {
        free(ix->match);
        ix->match = malloc(need);
        ix->match_cap = ix->match ? need : 0;
        if (!ix->match)
            return NULL;
    }
    char *m = ix->match;
    size_t o = 0;
    for (const char *p = q; *p;) {
        while (*p == ' ')
            p++;
        if (!*p)
            break;
        if (o)
            memcpy(m + o, " OR ", 4), o += 4;
        m[o++] = '"';
        for (; *p && *p != ' '; p++) {
            if (*p == '"')
                m[o++] = '"';
            m[o++] = *p;
        }
        m[o++] = '"';
    }
    m[o] = '\0';
    return m;
}

static int step_done(text_index *ix, sqlite3_stmt *st, const char *what)
{
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    if (rc != SQLITE_DONE) {
        text_set_err("sqlite %s: %s", what, sqlite3_errmsg(ix->c));
        return -1;
    }
    return 0;
}

static int sq_search(text_index *ix, const text_queries *qs, size_t q0, size_t nq, uint32_t k,
                     int32_t *out)
{
    for (size_t b0 = 0; b0 < nq; b0 += TEXT_QUERIES_PER_TXN) {
        size_t cnt = nq - b0 < TEXT_QUERIES_PER_TXN ? nq - b0 : TEXT_QUERIES_PER_TXN;
        if (step_done(ix, ix->begin, "BEGIN") != 0)
            return -1;
        for (size_t q = b0; q < b0 + cnt; q++) {
            int32_t *o = out + q * k;
            uint32_t n = 0;
            const char *m = match_of(ix, qs->q[q0 + q]);
            if (!m) {
                text_set_err("out of memory");
                return -1;
            }
            if (*m) {
                sqlite3_bind_text(ix->q, 1, m, -1, SQLITE_STATIC);
                sqlite3_bind_int(ix->q, 2, (int)k);
                int rc;
                while ((rc = sqlite3_step(ix->q)) == SQLITE_ROW && n < k)
                    o[n++] = (int32_t)(sqlite3_column_int64(ix->q, 0) - 1);
                sqlite3_reset(ix->q);
                if (rc != SQLITE_DONE && rc != SQLITE_ROW) {
                    text_set_err("sqlite query '%s': %s", m, sqlite3_errmsg(ix->c));
                    step_done(ix, ix->commit, "COMMIT");
                    return -1;
                }
            }
            for (; n < k; n++)
                o[n] = -1;
        }
        if (step_done(ix, ix->commit, "COMMIT") != 0)
            return -1;
    }
    return 0;
}

const text_engine text_engine_sqlite = {.name = "sqlite", .build = sq_build, .open = sq_open,
                                        .search = sq_search, .close = sq_close};
