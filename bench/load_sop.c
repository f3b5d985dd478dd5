/*
 * load_sop.c - the sop engine of the load suite: sop_kb_load() of the
 * fallback file into a fresh database, through the public API only
 * (sop/sop.h, sop/agent.h; sop/vector.h for the check).
 *
 * Timed: sop_db_open() of an empty directory (library defaults:
 * SOP_SYNC_FULL, every batch's commit durable; node cache 64 MiB, or
 * SOP_BENCH_CACHE_MB), sop_kb_load() with default options except the batch
 * (records per transaction, --batch), which reads and parses the JSON,
 * writes the records, the vectors (the store trains its IVF index by
 * itself when it reaches its threshold) and the BM25 index, and
 * sop_db_close() (a checkpoint). Bytes on disk: the database directory
 * after the close.
 *
 * Check (untimed): reopened, the base is complete and holds every record,
 * its vector store every vector, and a word search finds a word.
 */
#ifndef SOP_BENCH_NO_SOP

#include "load.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_util.h"
#include "sop/agent.h"
#include "sop/sop.h"
#include "sop/vector.h"

static void sop_err(sop_db *db, const char *what, int rc)
{
    const char *detail = db ? sop_db_errmsg(db) : "";
    load_set_err("%s: %s (%s)%s%s", what, sop_strerror(rc), sop_err_name(rc),
                 *detail ? ": " : "", detail);
}

static size_t cache_mb(void)
{
    const char *e = getenv("SOP_BENCH_CACHE_MB");
    return e && atol(e) > 0 ? (size_t)atol(e) : 0;
}

static int open_db(const char *dir, sop_db **db)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/db", dir);
    sop_db_options o;
    sop_db_options_init(&o);
    if (cache_mb())
        o.cache_bytes = cache_mb() << 20;
    int rc = sop_db_open(path, &o, db);
    if (rc != SOP_OK) {
        sop_err(*db, "sop_db_open", rc);
        if (rc != -ENOMEM)
            sop_db_close(*db);
        *db = NULL;
        return -1;
    }
    return 0;
}

static int ld_run(load_ctx *c, const char *dir, load_result *r)
{
    sop_db *db;
    sop_kb_load_options o;
    sop_kb_load_report rep;
    sop_kb_load_options_init(&o);
    o.batch = c->batch;
    double t0 = bench_now();
    if (open_db(dir, &db) != 0)
        return -1;
    double t1 = bench_now();
    int rc = sop_kb_load(db, c->json, &o, &rep);
    double t2 = bench_now();
    if (rc != SOP_OK) {
        load_set_err("sop_kb_load %s: %s (%s): %s", c->json, sop_strerror(rc), sop_err_name(rc),
                     rep.error);
        sop_db_close(db);
        return -1;
    }
    if ((rc = sop_db_close(db)) != SOP_OK) {
        load_set_err("sop_db_close: %s (%s)", sop_strerror(rc), sop_err_name(rc));
        return -1;
    }
    double t3 = bench_now();
    char path[4200];
    snprintf(path, sizeof path, "%s/db", dir);
    r->secs = t3 - t0;
    r->items = rep.records;
    r->bytes = bench_du(path);
    snprintf(r->parts, sizeof r->parts, "open %.2f s, sop_kb_load %.2f s, close %.2f s",
             t1 - t0, t2 - t1, t3 - t2);
    snprintf(r->desc, sizeof r->desc,
             "sop_kb_load, batch %u (%llu transactions), durable commits (SOP_SYNC_FULL), "
             "node cache %zu MiB",
             c->batch, (unsigned long long)rep.batches, cache_mb() ? cache_mb() : 64);
    return 0;
}

/* Counts and index state of the loaded base, in a read transaction; the
 * probe word is among the top 10 of a word search (its stemmed variants
 * tie with it). */
static int check_base(sop_db *db, load_ctx *c, load_result *r)
{
    sop_txn *t;
    int rc = sop_txn_begin(db, SOP_TXN_READ, 0, &t);
    if (rc != SOP_OK) {
        sop_err(db, "sop_txn_begin", rc);
        return -1;
    }
    sop_kb *kb;
    sop_vstore *vs;
    sop_vstore_stat st;
    uint64_t count = 0;
    sop_kb_hit hits[10];
    uint32_t nhits = 0;
    const char *w = load_probe_word(c->set);
    int complete = sop_kb_complete(t, LOAD_KB_NAME);
    if ((rc = sop_kb_open(t, LOAD_KB_NAME, &kb)) || (rc = sop_kb_count(kb, &count)) ||
        (rc = sop_vstore_open(t, LOAD_KB_NAME ".kb.vec", &vs)) ||
        (rc = sop_vstore_stats(vs, &st, NULL, 0)) ||
        (rc = sop_kb_search(kb, NULL, w, 10, hits, &nhits))) {
        sop_err(db, "reading the base back", rc);
        sop_txn_rollback(t);
        return -1;
    }
    r->nlist = st.trained ? st.nlist : 0;
    int found = 0;
    for (uint32_t i = 0; i < nhits; i++)
        found |= strcmp(hits[i].id, w) == 0;
    snprintf(r->check, sizeof r->check,
             "%llu records, %llu vectors, complete %d; IVF %s, nlist %u; search '%.40s': "
             "%u hits, %s",
             (unsigned long long)count, (unsigned long long)st.count, complete,
             st.trained ? "trained" : "untrained", st.nlist, w, nhits,
             found ? "found" : "NOT FOUND");
    sop_txn_rollback(t);
    if (complete != 1 || count != c->set->n || st.count != c->set->n || !found) {
        load_set_err("check failed: %s", r->check);
        return -1;
    }
    return 0;
}

static int ld_verify(load_ctx *c, const char *dir, load_result *r)
{
    sop_db *db;
    if (open_db(dir, &db) != 0)
        return -1;
    int rc = check_base(db, c, r);
    sop_db_close(db);
    return rc;
}

const load_engine load_engine_sop = {.name = "sop", .need = LOAD_NEED_WORDS, .run = ld_run,
                                     .verify = ld_verify};

#endif /* SOP_BENCH_NO_SOP */
