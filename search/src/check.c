/* check.c - sop_text_check(): a text index recomputed from its document
 * records and compared with what it stores (docs/design/search.md,
 * "Checking an index"). Reads only (after flushing what handles of the
 * index in the transaction buffered, as a query does).
 *
 * Pass 1 reads every document record (singles and blocks): its id, length
 * and distinct terms give N, the total length, and per term the number of
 * documents listing it and a fingerprint of their ids (a sum of hashes).
 * Pass 2 reads every posting (singles and blocks) and adds up the same
 * per term, and per document its postings, the sum of its plain terms'
 * frequencies (its length, by construction) and the length each posting
 * repeats. The term counters and the corpus counters are compared with
 * the recomputed figures. Terms whose postings disagree with the records
 * (count or fingerprint) are then diffed exactly: their postings are read
 * again, the records once more, and each missing or extra posting is
 * reported. A clean index costs two passes and memory per distinct term
 * and per document, not per posting. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "docs.h"
#include "err.h"
#include "mem.h"
#include "postings.h"
#include "problem.h"
#include "textidx.h"

typedef struct tdoc {
    uint32_t dl, nterms, npost;
    uint64_t tfsum; /* of its plain terms' postings */
} tdoc;

typedef struct tterm {
    uint64_t df_rec, df_post; /* documents listing it; postings of it */
    uint64_t fp_rec, fp_post; /* sums of the hashes of their ids */
    int64_t counter;          /* its document frequency counter */
    uint8_t in_store, bad;
} tterm;

typedef struct tck {
    sop_text *t;
    const char *name;
    sop_check_fn fn;
    void *ctx;
    uint64_t problems;
    tx_bag docs; /* ids (n: records seen) */
    tdoc *dv;
    size_t dcap;
    tx_bag terms;
    tterm *tv;
    size_t tcap;
    tx_bag rec_terms; /* scratch: one record's terms */
    tx_bag singles;   /* scratch: ids of the current term's single postings */
    tx_bag pairs;     /* diff: "term 0x00 id" of the bad terms' postings */
    uint64_t ndocs, total_len, nbad;
    dr_cache dc;
    pb_block blk;
    int pass; /* 1: first read of the records; 2: the diff */
} tck;

static void bad(tck *k, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void bad(tck *k, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    sop__problem(k->fn, k->ctx, "text index", k->name, fmt, ap);
    va_end(ap);
    k->problems++;
}

static uint64_t id_hash(const uint8_t *p, size_t n)
{
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < n; i++)
        h = (h ^ p[i]) * 0x100000001b3ull;
    h = (h ^ (h >> 30)) * 0xbf58476d1ce4e5b9ull;
    h = (h ^ (h >> 27)) * 0x94d049bb133111ebull;
    return h ^ (h >> 31);
}

/* Engine-level damage met by a read is a problem (the check goes on where
 * it can); anything else ends the check. */
static int soft(tck *k, int rc, const char *what)
{
    if (rc != SOP_ECORRUPT)
        return rc;
    bad(k, "%s: %s", what, sop_db_errmsg(k->t->db));
    return 0;
}

/* The index of @t in k->terms (added when new), its tterm zeroed. */
static int term_at(tck *k, const uint8_t *t, size_t len, uint32_t *ti)
{
    int rc = tx_bag_put_idx(&k->terms, (const char *)t, len, 0, ti);
    if (rc)
        return rc;
    if (*ti >= k->tcap) {
        size_t old = k->tcap;
        tterm *v = sop__grow(k->tv, &k->tcap, (size_t)*ti + 1, sizeof *v, 1024);
        if (!v)
            return -ENOMEM;
        k->tv = v;
        memset(v + old, 0, (k->tcap - old) * sizeof *v);
    }
    return 0;
}

/* ---- records -------------------------------------------------------------- */

/* Pass 1: a record's length and terms, into the recomputed figures. */
static int rec_pass1(tck *k, const uint8_t *id, size_t idl, const uint8_t *rec, size_t len)
{
    char s[SOP__PRINTABLE_MAX], s2[SOP__PRINTABLE_MAX];
    uint32_t di;
    int rc = tx_bag_put_idx(&k->docs, (const char *)id, idl, 1, &di);
    if (rc)
        return rc;
    if (k->docs.terms[di].n > 1) {
        bad(k, "document '%s' has two records", sop__printable(s, id, idl));
        return 0;
    }
    if (di >= k->dcap) {
        size_t old = k->dcap;
        tdoc *v = sop__grow(k->dv, &k->dcap, (size_t)di + 1, sizeof *v, 1024);
        if (!v)
            return -ENOMEM;
        k->dv = v;
        memset(v + old, 0, (k->dcap - old) * sizeof *v);
    }
    size_t off = 0;
    uint64_t dl, n;
    if (tx_get_varint(rec, len, &off, &dl) || tx_get_varint(rec, len, &off, &n) ||
        dl > UINT32_MAX || n > len) {
        bad(k, "the record of document '%s' does not decode", sop__printable(s, id, idl));
        return 0;
    }
    k->dv[di].dl = (uint32_t)dl;
    k->ndocs++;
    k->total_len += dl;
    tx_bag_reset(&k->rec_terms);
    uint64_t h = id_hash(id, idl);
    for (uint64_t i = 0; i < n; i++) {
        uint64_t tl;
        if (tx_get_varint(rec, len, &off, &tl) || tl == 0 || tl > TX_TERM_MAX || tl > len - off) {
            bad(k, "the record of document '%s' does not decode", sop__printable(s, id, idl));
            return 0;
        }
        const uint8_t *term = rec + off;
        off += tl;
        if (memchr(term, PB_SINGLE, tl) || memchr(term, PB_BLOCK, tl)) {
            bad(k, "the record of document '%s' lists a term with a 0x00 or 0x01 byte",
                sop__printable(s, id, idl));
            continue;
        }
        uint32_t x;
        if ((rc = tx_bag_put_idx(&k->rec_terms, (const char *)term, tl, 1, &x)))
            return rc;
        if (k->rec_terms.terms[x].n > 1) {
            bad(k, "the record of document '%s' lists term '%s' twice", sop__printable(s, id, idl),
                sop__printable(s2, term, tl));
            continue;
        }
        uint32_t ti;
        if ((rc = term_at(k, term, tl, &ti)))
            return rc;
        k->tv[ti].df_rec++;
        k->tv[ti].fp_rec += h;
        k->dv[di].nterms++;
    }
    if (off != len)
        bad(k, "the record of document '%s' has %zu bytes after its terms", sop__printable(s, id, idl),
            len - off);
    return 0;
}

/* Pass 2 (the diff): the record's bad terms against their postings. */
static int rec_pass2(tck *k, const uint8_t *id, size_t idl, const uint8_t *rec, size_t len)
{
    char s[SOP__PRINTABLE_MAX], s2[SOP__PRINTABLE_MAX];
    uint8_t key[TX_PKEY_MAX];
    size_t off = 0;
    uint64_t dl, n;
    if (tx_get_varint(rec, len, &off, &dl) || tx_get_varint(rec, len, &off, &n))
        return 0;
    for (uint64_t i = 0; i < n; i++) {
        uint64_t tl;
        uint32_t ti, pi;
        if (tx_get_varint(rec, len, &off, &tl) || tl == 0 || tl > TX_TERM_MAX || tl > len - off)
            return 0;
        const uint8_t *term = rec + off;
        off += tl;
        if (!tx_bag_find(&k->terms, (const char *)term, tl, &ti) || !k->tv[ti].bad)
            continue;
        memcpy(key, term, tl);
        key[tl] = 0;
        memcpy(key + tl + 1, id, idl);
        if (tx_bag_find(&k->pairs, (const char *)key, tl + 1 + idl, &pi))
            k->pairs.terms[pi].n = 0; /* matched */
        else
            bad(k, "document '%s' lists term '%s', which has no posting of it", sop__printable(s, id, idl),
                sop__printable(s2, term, tl));
    }
    return 0;
}

static int on_record(tck *k, const uint8_t *id, size_t idl, const uint8_t *rec, size_t len)
{
    return k->pass == 1 ? rec_pass1(k, id, idl, rec, len) : rec_pass2(k, id, idl, rec, len);
}

/* The records of a block (structure reported in pass 1 only). */
static int doc_block(tck *k, const sop_val *key, const sop_val *val, uint8_t *prev,
                     size_t *prevlen)
{
    char s[SOP__PRINTABLE_MAX];
    const uint8_t *first = (const uint8_t *)key->data + 1;
    size_t firstlen = key->size - 1;
    int rc = dr_block_decode(&k->dc, val);
    if (rc == -1) {
        if (k->pass == 1)
            bad(k, "the document block at '%s' does not decode", sop__printable(s, first, firstlen));
        return 0;
    }
    if (rc)
        return rc;
    uint8_t id[SOP_TEXT_ID_MAX];
    size_t off = 0, idl = 0, rl;
    const uint8_t *rec;
    for (uint32_t i = 0; i < k->dc.n && !rc; i++) {
        if (dr_entry_next(k->dc.raw, k->dc.rawlen, &off, id, &idl, &rec, &rl)) {
            if (k->pass == 1)
                bad(k, "the document block at '%s': entry %u does not decode",
                    sop__printable(s, first, firstlen), i);
            return 0;
        }
        if (k->pass == 1) {
            if (i == 0 && tx_id_cmp(id, idl, first, firstlen) != 0)
                bad(k, "the document block at '%s' starts with another id", sop__printable(s, first, firstlen));
            if (*prevlen && tx_id_cmp(prev, *prevlen, id, idl) >= 0)
                bad(k, "document '%s' is out of order in the document blocks", sop__printable(s, id, idl));
        }
        memcpy(prev, id, idl);
        *prevlen = idl;
        rc = on_record(k, id, idl, rec, rl);
    }
    if (!rc && off != k->dc.rawlen && k->pass == 1)
        bad(k, "the document block at '%s' has bytes after its entries", sop__printable(s, first, firstlen));
    return rc;
}

/* Reads every record of the index, singles and blocks. */
static int walk_records(tck *k)
{
    sop_cursor *c;
    int rc = sop_cursor_open(k->t->doc, &c);
    if (rc)
        return rc;
    uint8_t prev[SOP_TEXT_ID_MAX];
    size_t prevlen = 0; /* the last id of the blocks so far */
    char s[SOP__PRINTABLE_MAX];
    for (rc = sop_cursor_first(c); rc == 0; rc = sop_cursor_next(c)) {
        sop_val key, val;
        if ((rc = sop_cursor_get(c, &key, &val)))
            break;
        const uint8_t *kb = key.data;
        if (key.size < 2 || key.size > 1 + SOP_TEXT_ID_MAX || kb[0] > DR_BLOCK) {
            if (k->pass == 1)
                bad(k, "a document key '%s' that is neither a record nor a block",
                    sop__printable(s, kb, key.size));
            continue;
        }
        if (kb[0] == DR_SINGLE)
            rc = on_record(k, kb + 1, key.size - 1, val.data, val.size);
        else
            rc = doc_block(k, &key, &val, prev, &prevlen);
        if (rc)
            break;
    }
    sop_cursor_close(c);
    if (rc == SOP_ENOTFOUND)
        rc = 0;
    return soft(k, rc, "reading the document records");
}

/* ---- postings ------------------------------------------------------------- */

static int on_posting(tck *k, const uint8_t *term, size_t tl, const uint8_t *id, size_t idl,
                      uint32_t tf, uint32_t dl)
{
    char s[SOP__PRINTABLE_MAX], s2[SOP__PRINTABLE_MAX];
    uint32_t ti, di;
    int rc = term_at(k, term, tl, &ti);
    if (rc)
        return rc;
    k->tv[ti].df_post++;
    k->tv[ti].fp_post += id_hash(id, idl);
    if (!tx_bag_find(&k->docs, (const char *)id, idl, &di)) {
        bad(k, "posting of term '%s' for document '%s', which has no record", sop__printable(s, term, tl),
            sop__printable(s2, id, idl));
        return 0;
    }
    tdoc *d = &k->dv[di];
    if (dl != d->dl)
        bad(k, "the posting of term '%s' for document '%s' says length %u, the record %u",
            sop__printable(s, term, tl), sop__printable(s2, id, idl), dl, d->dl);
    else if (tf > d->dl)
        bad(k, "the posting of term '%s' for document '%s' has frequency %u, above its length %u",
            sop__printable(s, term, tl), sop__printable(s2, id, idl), tf, d->dl);
    d->npost++;
    if (!memchr(term, ':', tl))
        d->tfsum += tf;
    return 0;
}

/* The postings of one block of term @term. */
static int post_block(tck *k, const uint8_t *term, size_t tl, const uint8_t *first,
                      size_t firstlen, const sop_val *val, uint8_t *prev, size_t *prevlen)
{
    char s[SOP__PRINTABLE_MAX], s2[SOP__PRINTABLE_MAX];
    pb_block *b = &k->blk;
    int rc = pb_block_decode(b, val->data, val->size);
    if (rc == -1) {
        bad(k, "the postings block of term '%s' at '%s' does not decode", sop__printable(s, term, tl),
            sop__printable(s2, first, firstlen));
        return 0;
    }
    if (rc)
        return rc;
    if (tx_id_cmp(PB_ID(b, 0), PB_IDLEN(b, 0), first, firstlen) != 0)
        bad(k, "the postings block of term '%s' at '%s' starts with another id", sop__printable(s, term, tl),
            sop__printable(s2, first, firstlen));
    for (uint32_t i = 0; i < b->n && !rc; i++) {
        const uint8_t *id = PB_ID(b, i);
        size_t idl = PB_IDLEN(b, i);
        if (*prevlen && tx_id_cmp(prev, *prevlen, id, idl) >= 0) {
            bad(k, "the postings blocks of term '%s' overlap or are out of order at '%s'",
                sop__printable(s, term, tl), sop__printable(s2, id, idl));
            continue;
        }
        memcpy(prev, id, idl);
        *prevlen = idl;
        if (tx_bag_has(&k->singles, (const char *)id, idl)) {
            bad(k, "document '%s' has two postings of term '%s' (single and in a block)",
                sop__printable(s, id, idl), sop__printable(s2, term, tl));
            continue;
        }
        rc = on_posting(k, term, tl, id, idl, b->tf[i], b->dl[i]);
    }
    return rc;
}

/* The term of a postings key (before its 0x00 or 0x01): its length, or 0. */
static size_t key_term(const uint8_t *key, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (key[i] == PB_SINGLE || key[i] == PB_BLOCK)
            return i <= TX_TERM_MAX && n - i - 1 >= 1 && n - i - 1 <= SOP_TEXT_ID_MAX ? i : 0;
    return 0;
}

static int single_value(const sop_val *val, uint32_t *tf, uint32_t *dl)
{
    size_t off = 0;
    uint64_t a, b;
    if (tx_get_varint(val->data, val->size, &off, &a) ||
        tx_get_varint(val->data, val->size, &off, &b) || off != val->size || a == 0 ||
        a > UINT32_MAX || b > UINT32_MAX)
        return -1;
    *tf = (uint32_t)a;
    *dl = (uint32_t)b;
    return 0;
}

static int walk_postings(tck *k)
{
    sop_cursor *c;
    int rc = sop_cursor_open(k->t->post, &c);
    if (rc)
        return rc;
    uint8_t cur[TX_TERM_MAX], prev[SOP_TEXT_ID_MAX];
    size_t curlen = 0, prevlen = 0;
    char s[SOP__PRINTABLE_MAX], s2[SOP__PRINTABLE_MAX];
    for (rc = sop_cursor_first(c); rc == 0; rc = sop_cursor_next(c)) {
        sop_val key, val;
        if ((rc = sop_cursor_get(c, &key, &val)))
            break;
        const uint8_t *kb = key.data;
        size_t tl = key_term(kb, key.size);
        if (!tl) {
            bad(k, "a postings key '%s' without a term and an id", sop__printable(s, kb, key.size));
            continue;
        }
        if (tl != curlen || memcmp(kb, cur, tl) != 0) { /* the next term */
            memcpy(cur, kb, tl);
            curlen = tl;
            prevlen = 0;
            tx_bag_reset(&k->singles);
        }
        const uint8_t *id = kb + tl + 1;
        size_t idl = key.size - tl - 1;
        if (kb[tl] == PB_SINGLE) {
            uint32_t tf, dl, x;
            if (single_value(&val, &tf, &dl)) {
                bad(k, "the posting of term '%s' for document '%s' does not decode",
                    sop__printable(s, kb, tl), sop__printable(s2, id, idl));
                continue;
            }
            if ((rc = tx_bag_put_idx(&k->singles, (const char *)id, idl, 0, &x)) ||
                (rc = on_posting(k, kb, tl, id, idl, tf, dl)))
                break;
        } else if ((rc = post_block(k, kb, tl, id, idl, &val, prev, &prevlen))) {
            break;
        }
    }
    sop_cursor_close(c);
    if (rc == SOP_ENOTFOUND)
        rc = 0;
    return soft(k, rc, "reading the postings");
}

/* The diff: the postings of the bad terms, into k->pairs. */
static int bad_term_postings(tck *k, const uint8_t *term, size_t tl)
{
    sop_cursor *c;
    int rc = sop_cursor_open(k->t->post, &c);
    if (rc)
        return rc;
    uint8_t key[TX_PKEY_MAX];
    sop_val from = {term, tl};
    for (rc = sop_cursor_find(c, &from, SOP_FIND_GE); rc == 0; rc = sop_cursor_next(c)) {
        sop_val kv, val;
        if ((rc = sop_cursor_get(c, &kv, &val)))
            break;
        const uint8_t *kb = kv.data;
        if (key_term(kb, kv.size) != tl || memcmp(kb, term, tl) != 0)
            break;
        const uint8_t *id = kb + tl + 1;
        size_t idl = kv.size - tl - 1;
        memcpy(key, term, tl);
        key[tl] = 0;
        uint32_t x;
        if (kb[tl] == PB_SINGLE) {
            memcpy(key + tl + 1, id, idl);
            rc = tx_bag_put_idx(&k->pairs, (const char *)key, tl + 1 + idl, 1, &x);
        } else if (pb_block_decode(&k->blk, val.data, val.size) == 0) {
            for (uint32_t i = 0; i < k->blk.n && !rc; i++) {
                memcpy(key + tl + 1, PB_ID(&k->blk, i), PB_IDLEN(&k->blk, i));
                rc = tx_bag_put_idx(&k->pairs, (const char *)key, tl + 1 + PB_IDLEN(&k->blk, i),
                                    1, &x);
            }
        }
        if (rc)
            break;
    }
    sop_cursor_close(c);
    if (rc == SOP_ENOTFOUND)
        rc = 0;
    return soft(k, rc, "reading the postings");
}

static int diff_bad_terms(tck *k)
{
    int rc = 0;
    for (size_t i = 0; i < k->terms.n && !rc; i++)
        if (k->tv[i].bad)
            rc = bad_term_postings(k, (const uint8_t *)k->terms.mem + k->terms.terms[i].off,
                                   k->terms.terms[i].len);
    k->pass = 2;
    if (!rc)
        rc = walk_records(k);
    char s[SOP__PRINTABLE_MAX], s2[SOP__PRINTABLE_MAX];
    uint32_t di;
    for (size_t i = 0; i < k->pairs.n && !rc; i++) {
        const tx_term *p = &k->pairs.terms[i];
        if (p->n <= 0)
            continue; /* a document lists it */
        const uint8_t *key = (const uint8_t *)k->pairs.mem + p->off;
        const uint8_t *z = memchr(key, 0, p->len);
        size_t tl = (size_t)(z - key);
        if (tx_bag_find(&k->docs, (const char *)z + 1, p->len - tl - 1, &di)) /* else reported */
            bad(k, "the posting of term '%s' for document '%s': the document does not list the "
                "term",
                sop__printable(s, key, tl), sop__printable(s2, z + 1, p->len - tl - 1));
    }
    return rc;
}

/* ---- counters ----------------------------------------------------------- */

static int counter_value(const sop_val *v, int64_t *x)
{
    if (v->size != 8)
        return -1;
    memcpy(x, v->data, 8);
    return *x > 0 ? 0 : -1;
}

static int walk_term_counters(tck *k)
{
    sop_cursor *c;
    int rc = sop_cursor_open(k->t->term, &c);
    if (rc)
        return rc;
    char s[SOP__PRINTABLE_MAX];
    for (rc = sop_cursor_first(c); rc == 0; rc = sop_cursor_next(c)) {
        sop_val key, val;
        int64_t x;
        uint32_t ti;
        if ((rc = sop_cursor_get(c, &key, &val)))
            break;
        if (counter_value(&val, &x)) {
            bad(k, "the document frequency counter of term '%s' is malformed (%zu bytes, or not "
                "above 0)",
                sop__printable(s, key.data, key.size), val.size);
            continue;
        }
        if (!tx_bag_find(&k->terms, key.data, key.size, &ti)) {
            bad(k, "term '%s' has a document frequency counter (%lld) but no document and no "
                "posting",
                sop__printable(s, key.data, key.size), (long long)x);
            continue;
        }
        k->tv[ti].counter = x;
        k->tv[ti].in_store = 1;
    }
    sop_cursor_close(c);
    if (rc == SOP_ENOTFOUND)
        rc = 0;
    return soft(k, rc, "reading the term counters");
}

static int check_corpus(tck *k)
{
    sop_cursor *c;
    int rc = sop_cursor_open(k->t->cfg, &c);
    if (rc)
        return rc;
    int64_t n = 0, l = 0;
    char s[SOP__PRINTABLE_MAX];
    for (rc = sop_cursor_first(c); rc == 0; rc = sop_cursor_next(c)) {
        sop_val key, val;
        if ((rc = sop_cursor_get(c, &key, &val)))
            break;
        char ch = key.size == 1 ? ((const char *)key.data)[0] : 0;
        if (ch == 'c')
            continue; /* decoded by sop_text_open() */
        if (ch == 'N' || ch == 'L') {
            if (counter_value(&val, ch == 'N' ? &n : &l))
                bad(k, "the counter %c is malformed", ch);
            continue;
        }
        bad(k, "unknown key '%s' in its config store", sop__printable(s, key.data, key.size));
    }
    sop_cursor_close(c);
    if (rc == SOP_ENOTFOUND)
        rc = 0;
    if ((rc = soft(k, rc, "reading the corpus counters")))
        return rc;
    if ((uint64_t)n != k->ndocs)
        bad(k, "the document counter says %lld, there are %llu document records", (long long)n,
            (unsigned long long)k->ndocs);
    if ((uint64_t)l != k->total_len)
        bad(k, "the length counter says %lld, the documents' lengths sum to %llu", (long long)l,
            (unsigned long long)k->total_len);
    return 0;
}

/* ---- the check ---------------------------------------------------------- */

static int run(tck *k)
{
    char s[SOP__PRINTABLE_MAX];
    k->pass = 1;
    int rc = tx_flush_txn(k->t->txn, k->t->name);
    if (!rc)
        rc = walk_records(k);
    if (!rc)
        rc = walk_postings(k);
    if (!rc)
        rc = walk_term_counters(k);
    for (size_t i = 0; i < k->terms.n && !rc; i++) {
        tterm *x = &k->tv[i];
        const uint8_t *term = (const uint8_t *)k->terms.mem + k->terms.terms[i].off;
        size_t tl = k->terms.terms[i].len;
        if ((uint64_t)(x->in_store ? x->counter : 0) != x->df_rec && (x->df_rec || x->in_store))
            bad(k, "term '%s': its document frequency counter says %lld, %llu documents list it",
                sop__printable(s, term, tl), (long long)(x->in_store ? x->counter : 0),
                (unsigned long long)x->df_rec);
        if (x->df_rec != x->df_post || x->fp_rec != x->fp_post) {
            x->bad = 1;
            k->nbad++;
        }
    }
    for (size_t i = 0; i < k->docs.n && !rc; i++) {
        const tdoc *d = &k->dv[i];
        if (k->docs.terms[i].n != 1 || d->npost != d->nterms || d->tfsum == d->dl)
            continue; /* reported otherwise, or sound */
        bad(k, "the term frequencies of document '%s' sum to %llu, its length is %u",
            sop__printable(s, k->docs.mem + k->docs.terms[i].off, k->docs.terms[i].len),
            (unsigned long long)d->tfsum, d->dl);
    }
    if (!rc)
        rc = check_corpus(k);
    if (!rc && k->nbad)
        rc = diff_bad_terms(k);
    return rc;
}

int sop_text_check(sop_txn *txn, const char *name, sop_check_fn fn, void *ctx,
                   uint64_t *problems)
{
    if (problems)
        *problems = 0;
    if (!txn || !name)
        return -EINVAL;
    tck k = {.name = name, .fn = fn, .ctx = ctx};
    int rc = sop_text_open(txn, name, &k.t);
    if (rc == SOP_ECORRUPT) {
        bad(&k, "%s", sop_db_errmsg(sop_txn_db(txn)));
    } else if (!rc) {
        rc = run(&k);
        tx_bag_free(&k.docs);
        tx_bag_free(&k.terms);
        tx_bag_free(&k.rec_terms);
        tx_bag_free(&k.singles);
        tx_bag_free(&k.pairs);
        sop__free(k.dv);
        sop__free(k.tv);
        dr_cache_free(&k.dc);
        pb_block_free(&k.blk);
    }
    if (problems)
        *problems = k.problems;
    if (rc && !(k.problems && (rc == SOP_ECORRUPT || rc == SOP_ETXNDONE)))
        return rc;
    if (k.problems)
        return sop__err(sop_txn_db(txn), SOP_ECORRUPT, "text index %s: %llu problems", name,
                        (unsigned long long)k.problems);
    return SOP_OK;
}

/* ---- for knowledge bases (textidx.h) -------------------------------------- */

int tx_check_doc(sop_text *t, const sop_text_doc *d, void (*fn)(const char *msg, void *ctx),
                 void *ctx, uint64_t *problems)
{
    char s[SOP__PRINTABLE_MAX], s2[SOP__PRINTABLE_MAX], msg[700];
    int rc = tx_analyze_doc(t, d);
    size_t rlen;
    if (!rc)
        rc = dr_get(t, d->id, d->id_len, &rlen);
    if (rc)
        return rc;
    sop__printable(s, d->id, d->id_len);
    uint8_t *rec = sop__malloc(rlen ? rlen : 1);
    if (!rec)
        return -ENOMEM;
    memcpy(rec, t->out, rlen);
    const tx_bag *b = &t->bag;
    size_t off = 0, listed = 0;
    uint64_t dl, n;
#define REPORT(...)                                                                                \
    do {                                                                                           \
        snprintf(msg, sizeof msg, __VA_ARGS__);                                                    \
        ++*problems;                                                                               \
        if (fn)                                                                                    \
            fn(msg, ctx);                                                                          \
    } while (0)
    if (tx_get_varint(rec, rlen, &off, &dl) || tx_get_varint(rec, rlen, &off, &n)) {
        REPORT("the record of document '%s' does not decode", s);
        n = 0;
    } else if (dl != b->tokens) {
        REPORT("document '%s' has length %llu, its text %llu terms", s, (unsigned long long)dl,
               (unsigned long long)b->tokens);
    }
    for (uint64_t i = 0; i < n; i++) { /* the record's terms are the text's */
        uint64_t tl;
        uint32_t x;
        if (tx_get_varint(rec, rlen, &off, &tl) || tl > rlen - off)
            break;
        if (tx_bag_find(b, (const char *)rec + off, tl, &x))
            listed++;
        else
            REPORT("the record of document '%s' lists term '%s', which its text does not hold", s,
                   sop__printable(s2, rec + off, tl));
        off += tl;
    }
    sop__free(rec);
    pb_iter it;
    memset(&it, 0, sizeof it); /* pb_iter_close() leaves it so */
    for (size_t i = 0; i < b->n && !rc; i++) { /* each term's posting */
        const tx_term *x = &b->terms[i];
        if ((rc = pb_iter_open(&it, t, x->t, x->len)) ||
            (rc = pb_iter_seek(&it, d->id, d->id_len))) {
            pb_iter_close(&it);
            break;
        }
        if (it.done || tx_id_cmp(it.id, it.idlen, d->id, d->id_len) != 0)
            REPORT("document '%s' has no posting of term '%s' of its text", s,
                   sop__printable(s2, x->t, x->len));
        else if ((int64_t)it.tf != x->n)
            REPORT("the posting of term '%s' for document '%s' has frequency %u, its text %lld",
                   sop__printable(s2, x->t, x->len), s, it.tf, (long long)x->n);
        pb_iter_close(&it);
    }
    if (!rc && listed != b->n)
        REPORT("the record of document '%s' lists %zu of the %zu terms of its text", s, listed,
               b->n);
#undef REPORT
    return rc;
}

int tx_doc_ids(sop_text *t, int (*fn)(const uint8_t *id, size_t len, void *ctx), void *ctx)
{
    sop_cursor *c;
    int rc = sop_cursor_open(t->doc, &c);
    if (rc)
        return rc;
    dr_cache dc = {0};
    for (rc = sop_cursor_first(c); rc == 0; rc = sop_cursor_next(c)) {
        sop_val key, val;
        if ((rc = sop_cursor_get(c, &key, &val)))
            break;
        const uint8_t *kb = key.data;
        if (key.size < 2 || kb[0] > DR_BLOCK)
            continue;
        if (kb[0] == DR_SINGLE) {
            if ((rc = fn(kb + 1, key.size - 1, ctx)))
                break;
            continue;
        }
        if ((rc = dr_block_decode(&dc, &val)) == -1) {
            rc = 0;
            continue;
        }
        uint8_t id[SOP_TEXT_ID_MAX];
        size_t off = 0, idl = 0, rl;
        const uint8_t *rec;
        for (uint32_t i = 0; i < dc.n && !rc; i++)
            rc = dr_entry_next(dc.raw, dc.rawlen, &off, id, &idl, &rec, &rl) ? 0
                                                                               : fn(id, idl, ctx);
        if (rc)
            break;
    }
    sop_cursor_close(c);
    dr_cache_free(&dc);
    return rc == SOP_ENOTFOUND ? 0 : rc;
}
