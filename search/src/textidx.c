/* textidx.c - text index handles: create, open, remove; the corpus
 * counters and their pending deltas; statistics.
 *
 * Stores of index <name> (docs/design/search.md):
 *   <name>.txt.cfg   "c" -> config; "N" -> documents, "L" -> total length
 *                    (counters, sop_incr)
 *   <name>.txt.post  term 0x00 id -> varint tf, varint document length;
 *                    term 0x01 first id -> a block of postings (postings.h)
 *   <name>.txt.term  term -> document frequency (counter)
 *   <name>.txt.doc   id -> varint length, varint n, n x (varint len, term)
 * Writers keep their counter deltas in the handle (one per distinct term
 * of the transaction, not one per document) and write them with sop_incr,
 * after the buffered postings, before any read of the statistics and at
 * commit (the flush hook). */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "bytes.h"
#include "docs.h"
#include "err.h"
#include "mem.h"
#include "postings.h"
#include "textidx.h"

#define CFG_MAGIC 0x54504f53u /* "SOPT" */
#define CFG_BYTES 16
#define F_STEM 1u
#define F_STOP 2u
#define F_FOLD 4u

static const char *const PARTS[] = {"cfg", "post", "term", "doc"};

int tx_err(const sop_text *t, int rc, const char *fmt, ...)
{
    char msg[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return sop__err(t->db, rc, "text index %s: %s", t->name, msg);
}

int tx_corrupt(sop_text *t, const char *what)
{
    return sop__txn_fail(t->txn, tx_err(t, SOP_ECORRUPT, "%s", what));
}

int tx_buf(sop_text *t, size_t n)
{
    uint8_t *p = sop__grow(t->buf, &t->bufcap, n, 1, 1024);
    if (!p)
        return -ENOMEM;
    t->buf = p;
    return 0;
}

int tx_out(sop_text *t, size_t n)
{
    uint8_t *p = sop__grow(t->out, &t->outcap, n, 1, 1024);
    if (!p)
        return -ENOMEM;
    t->out = p;
    return 0;
}

void sop_text_options_init(sop_text_options *o)
{
    if (!o)
        return;
    memset(o, 0, sizeof *o);
    o->struct_size = sizeof *o;
    o->stem = 1;
    o->stopwords = 1;
    o->fold = 1;
    o->node_bytes = 16384;
}

static void store_name(char *out, const char *name, int part)
{
    snprintf(out, TX_STORE_MAX + 1, "%s.txt.%s", name, PARTS[part]);
}

static int ext_flush(sop__txn_ext *e)
{
    sop_text *t = (sop_text *)e;
    if (!t->cfg || t->cfg->dropped) /* never opened, or the index was removed */
        return 0;
    return tx_flush(t);
}

int tx_flush_txn(sop_txn *txn, const char *name)
{
    int rc = 0;
    if (sop_txn_get_mode(txn) == SOP_TXN_READ)
        return 0;
    for (sop__txn_ext *e = txn->exts; e && !rc; e = e->next)
        if (e->flush == ext_flush && !strcmp(((sop_text *)e)->name, name))
            rc = ext_flush(e);
    return rc;
}

static void ext_free(sop__txn_ext *e)
{
    sop_text *t = (sop_text *)e;
    tx_bag_free(&t->pend.terms);
    tx_bag_free(&t->bag);
    sop__free(t->pp.e);
    sop__free(t->pp.rref);
    sop__free(t->pp.rec);
    tx_bag_free(&t->pp.ids);
    pb_block_free(&t->blk);
    pb_block_free(&t->blk2);
    dr_cache_free(&t->dc);
    sop__free(t->buf);
    sop__free(t->out);
    sop__free(t);
}

static int new_handle(sop_txn *txn, const char *name, sop_text **out)
{
    *out = NULL;
    if (!txn || !name)
        return -EINVAL;
    sop_db *db = sop_txn_db(txn);
    if (!sop__valid_name(name, SOP_TEXT_NAME_MAX))
        return sop__err(db, SOP_ENAME,
                        "invalid text index name (1..%u of A-Z a-z 0-9 _ . -, not starting "
                        "with '.')",
                        SOP_TEXT_NAME_MAX);
    sop_text *t = sop__calloc(1, sizeof *t);
    if (!t)
        return -ENOMEM;
    t->txn = txn;
    t->db = db;
    strcpy(t->name, name);
    t->ext.free = ext_free;
    t->ext.flush = ext_flush;
    sop__txn_attach(txn, &t->ext);
    *out = t;
    return 0;
}

static void set_tok(sop_text *t, uint32_t flags)
{
    t->tok.stem = !!(flags & F_STEM);
    t->tok.stopwords = !!(flags & F_STOP);
    t->tok.fold = !!(flags & F_FOLD);
}

int sop_text_create(sop_txn *txn, const char *name, const sop_text_options *o,
                    sop_text **tp)
{
    if (!tp)
        return -EINVAL;
    sop_text_options def;
    if (!o) {
        sop_text_options_init(&def);
        o = &def;
    }
    sop_text *t;
    int rc = new_handle(txn, name, &t);
    if (rc)
        return rc;
    if (o->struct_size < sizeof *o || (o->node_bytes && (o->node_bytes < 2048 ||
                                                         o->node_bytes > 65536)))
        return tx_err(t, -EINVAL, "bad options (struct_size, node_bytes 0 or 2048..65536)");
    if (sop_txn_get_mode(txn) == SOP_TXN_NOCHECK)
        return tx_err(t, -EINVAL, "writes need a WRITE transaction, not NOCHECK");
    uint32_t flags = (o->stem ? F_STEM : 0) | (o->stopwords ? F_STOP : 0) | (o->fold ? F_FOLD : 0);
    uint32_t nb = o->node_bytes ? o->node_bytes : 16384;
    char sn[TX_STORE_MAX + 1];
    sop_store **st[] = {&t->cfg, &t->post, &t->term, &t->doc};
    for (int i = 0; i < 4; i++) {
        sop_store_options so;
        sop_store_options_init(&so);
        if (i == 1)
            so.node_bytes = nb;
        store_name(sn, name, i);
        rc = sop_store_create(txn, sn, &so, st[i]);
        if (rc == SOP_EEXISTS)
            return tx_err(t, rc, "exists");
        if (rc)
            return rc;
    }
    uint8_t cfg[CFG_BYTES];
    sop__put32(cfg, CFG_MAGIC);
    sop__put32(cfg + 4, TX_FORMAT);
    sop__put32(cfg + 8, flags);
    sop__put32(cfg + 12, nb);
    sop_val k = {"c", 1}, v = {cfg, sizeof cfg};
    if ((rc = sop_add(t->cfg, &k, &v)))
        return rc;
    set_tok(t, flags);
    *tp = t;
    return 0;
}

int sop_text_open(sop_txn *txn, const char *name, sop_text **tp)
{
    if (!tp)
        return -EINVAL;
    *tp = NULL;
    sop_text *t;
    int rc = new_handle(txn, name, &t);
    if (rc)
        return rc;
    char sn[TX_STORE_MAX + 1];
    sop_store **st[] = {&t->cfg, &t->post, &t->term, &t->doc};
    for (int i = 0; i < 4; i++) {
        store_name(sn, name, i);
        rc = sop_store_open(txn, sn, st[i]);
        if (rc == SOP_ENOTFOUND && i == 0)
            return tx_err(t, rc, "no text index of that name");
        if (rc == SOP_ENOTFOUND)
            return tx_err(t, SOP_ECORRUPT, "its store %s is missing", sn);
        if (rc)
            return rc;
    }
    sop_val k = {"c", 1}, v;
    rc = sop_get(t->cfg, &k, &v);
    if (rc == SOP_ENOTFOUND)
        return tx_err(t, SOP_ECORRUPT, "its config record is missing");
    if (rc)
        return rc;
    const uint8_t *p = v.data;
    if (v.size < CFG_BYTES || sop__get32(p) != CFG_MAGIC)
        return tx_err(t, SOP_ECORRUPT, "its config record is malformed");
    if (sop__get32(p + 4) != TX_FORMAT)
        return tx_err(t, SOP_EVERSION, "format %u, this library reads %u (rebuild the index)",
                      sop__get32(p + 4), TX_FORMAT);
    set_tok(t, sop__get32(p + 8));
    *tp = t;
    return 0;
}

int sop_text_remove(sop_txn *txn, const char *name)
{
    sop_text *t;
    int rc = new_handle(txn, name, &t);
    if (rc)
        return rc;
    if (sop_txn_get_mode(txn) == SOP_TXN_NOCHECK)
        return tx_err(t, -EINVAL, "writes need a WRITE transaction, not NOCHECK");
    char sn[TX_STORE_MAX + 1];
    for (int i = 0; i < 4; i++) {
        store_name(sn, name, i);
        rc = sop_store_remove(txn, sn);
        if (rc == SOP_ENOTFOUND && i == 0)
            return tx_err(t, rc, "no text index of that name");
        if (rc && rc != SOP_ENOTFOUND)
            return rc;
    }
    return 0;
}

int tx_check_write(sop_text *t)
{
    if (!t)
        return -EINVAL;
    sop_txn_mode m = sop_txn_get_mode(t->txn);
    if (m == SOP_TXN_READ)
        return tx_err(t, SOP_EREADONLY, "write in a READ transaction");
    if (m == SOP_TXN_NOCHECK)
        return tx_err(t, -EINVAL, "writes need a WRITE transaction, not NOCHECK");
    return 0;
}

int tx_flush(sop_text *t)
{
    tx_delta *p = &t->pend;
    int rc = pb_flush(t);
    if (!rc && p->terms.n) {
        uint32_t *ord = NULL;
        /* a first load (the term store is empty, and the transaction will
         * not be merged anyway): plain inserts, one descent each */
        uint64_t had = 1;
        if (t->txn->no_merge)
            rc = sop_store_count(t->term, &had);
        if (!rc)
            rc = tx_bag_order(&p->terms, &ord, NULL); /* in key order: neighbouring leaves */
        for (size_t i = 0; i < p->terms.n && !rc; i++) {
            const tx_term *x = &p->terms.terms[ord[i]];
            sop_val k = {p->terms.mem + x->off, x->len}, v = {&x->n, 8};
            if (x->n && had == 0 && x->n > 0)
                rc = sop_add(t->term, &k, &v);
            else if (x->n)
                rc = sop_incr(t->term, &k, x->n, NULL);
        }
        sop__free(ord);
        tx_bag_reset(&p->terms);
    }
    if (!rc && p->docs) {
        sop_val k = {"N", 1};
        rc = sop_incr(t->cfg, &k, p->docs, NULL);
    }
    if (!rc && p->len) {
        sop_val k = {"L", 1};
        rc = sop_incr(t->cfg, &k, p->len, NULL);
    }
    p->docs = p->len = 0;
    return rc;
}

static int counter(sop_store *s, const void *key, size_t klen, uint64_t *out)
{
    sop_val k = {key, klen}, v;
    int rc = sop_get(s, &k, &v);
    *out = 0;
    if (rc == SOP_ENOTFOUND)
        return 0;
    if (rc)
        return rc;
    int64_t x;
    if (v.size != 8)
        return SOP_ECORRUPT;
    memcpy(&x, v.data, 8);
    if (x < 0)
        return SOP_ECORRUPT;
    *out = (uint64_t)x;
    return 0;
}

int tx_corpus(sop_text *t, uint64_t *docs, uint64_t *len)
{
    int rc = tx_flush(t);
    if (!rc)
        rc = counter(t->cfg, "N", 1, docs);
    if (!rc)
        rc = counter(t->cfg, "L", 1, len);
    if (rc == SOP_ECORRUPT)
        return tx_err(t, rc, "a corpus counter is malformed");
    return rc;
}

int tx_df(sop_text *t, const char *term, size_t len, uint64_t *df)
{
    int rc = counter(t->term, term, len, df);
    if (rc == SOP_ECORRUPT)
        return tx_err(t, rc, "the document frequency of a term is malformed");
    return rc;
}

static int count_term(const sop_val *k, const sop_val *v, void *ctx)
{
    (void)k;
    (void)v;
    ++*(uint64_t *)ctx;
    return 0;
}

int sop_text_stats(sop_text *t, sop_text_stat *st)
{
    if (!t || !st)
        return -EINVAL;
    memset(st, 0, sizeof *st);
    int rc = tx_corpus(t, &st->docs, &st->total_len);
    sop_range r = {0};
    r.keys_only = 1;
    if (!rc)
        rc = sop_scan(t->term, &r, count_term, &st->terms);
    st->avgdl = st->docs ? (double)st->total_len / (double)st->docs : 0;
    return rc;
}

int sop_text_df(sop_text *t, const char *word, size_t len, uint64_t *df)
{
    if (!t || !df || (!word && len))
        return -EINVAL;
    *df = 0;
    int rc = tx_flush(t);
    if (!rc)
        rc = tx_analyze_query(t, word, len);
    if (rc)
        return rc;
    if (t->bag.n != 1)
        return tx_err(t, -EINVAL, "\"%.*s\" makes %zu terms, not one", (int)(len > 80 ? 80 : len),
                      word, t->bag.n);
    return tx_df(t, t->bag.terms[0].t, t->bag.terms[0].len, df);
}
