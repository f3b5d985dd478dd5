/* postings.c - single and block postings: the write buffer, the block
 * codec, writes, removals, and the merged reader (see postings.h).
 *
 * Block value: varint n (1..PB_MAX), then n postings in id order, each
 *   a byte: shared << 4 | suffix length, when both are under 15 (shared:
 *     the bytes in common with the previous id); else 0xff, varint shared,
 *     varint suffix length;
 *   the suffix;
 *   varint dl << 1 | (tf > 1), then varint tf when tf > 1 (tf is 1 for most
 *     postings).
 * Its key is term 0x01 and the block's first id. */
#include "postings.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "docs.h"
#include "err.h"
#include "mem.h"

#define CHECK_EVERY 256

/* ---- the codec ------------------------------------------------------ */

void pb_block_free(pb_block *b)
{
    sop__free(b->ids);
    sop__free(b->off);
    sop__free(b->tf);
    sop__free(b->dl);
    memset(b, 0, sizeof *b);
}

static int blk_room(pb_block *b, uint32_t n, size_t idbytes)
{
    if (n > b->cap) {
        uint32_t cap = b->cap ? b->cap : 64;
        while (cap < n)
            cap *= 2;
        uint32_t *o = sop__realloc(b->off, (cap + 1) * sizeof *o);
        if (o)
            b->off = o;
        uint32_t *f = sop__realloc(b->tf, cap * sizeof *f);
        if (f)
            b->tf = f;
        uint32_t *d = sop__realloc(b->dl, cap * sizeof *d);
        if (d)
            b->dl = d;
        if (!o || !f || !d)
            return -ENOMEM;
        b->cap = cap;
    }
    uint8_t *p = sop__grow(b->ids, &b->idcap, idbytes, 1, 1024);
    if (!p)
        return -ENOMEM;
    b->ids = p;
    return 0;
}

/* Appends a posting to @b. */
static int blk_push(pb_block *b, const uint8_t *id, size_t idlen, uint32_t tf, uint32_t dl)
{
    size_t used = b->n ? b->off[b->n] : 0;
    int rc = blk_room(b, b->n + 1, used + idlen);
    if (rc)
        return rc;
    if (!b->n)
        b->off[0] = 0;
    memcpy(b->ids + used, id, idlen);
    b->tf[b->n] = tf;
    b->dl[b->n] = dl;
    b->off[++b->n] = (uint32_t)(used + idlen);
    return 0;
}

#define BID(b, i) PB_ID(b, i)
#define BLEN(b, i) PB_IDLEN(b, i)

/* Decodes a block value into @b. -1 when malformed. */
static int blk_decode(pb_block *b, const uint8_t *v, size_t len)
{
    size_t off = 0;
    uint64_t n;
    b->n = 0;
    if (tx_get_varint(v, len, &off, &n) || n == 0 || n > PB_MAX)
        return -1;
    uint8_t id[SOP_TEXT_ID_MAX];
    size_t prev = 0;
    for (uint64_t i = 0; i < n; i++) {
        uint64_t tf = 1, dl;
        if (tx_get_id(v, len, &off, id, &prev))
            return -1;
        if (tx_get_varint(v, len, &off, &dl) || ((dl & 1) && tx_get_varint(v, len, &off, &tf)) ||
            tf < 1 + (dl & 1) || tf > UINT32_MAX || (dl >>= 1) > UINT32_MAX)
            return -1;
        int rc = blk_push(b, id, prev, (uint32_t)tf, (uint32_t)dl);
        if (rc)
            return rc;
    }
    return off == len ? 0 : -1;
}

int pb_block_decode(pb_block *b, const uint8_t *v, size_t len) { return blk_decode(b, v, len); }

/* Encodes postings [from, to) of @b into t->buf; returns the length. */
static int blk_encode(sop_text *t, const pb_block *b, uint32_t from, uint32_t to, size_t *len)
{
    size_t need = 10;
    for (uint32_t i = from; i < to; i++)
        need += 40 + BLEN(b, i);
    int rc = tx_buf(t, need);
    if (rc)
        return rc;
    uint8_t *p = t->buf;
    size_t n = tx_put_varint(p, to - from);
    for (uint32_t i = from; i < to; i++) {
        n += tx_put_id(p + n, i > from ? BID(b, i - 1) : NULL, i > from ? BLEN(b, i - 1) : 0,
                       BID(b, i), BLEN(b, i));
        n += tx_put_varint(p + n, (uint64_t)b->dl[i] << 1 | (b->tf[i] > 1));
        if (b->tf[i] > 1)
            n += tx_put_varint(p + n, b->tf[i]);
    }
    *len = n;
    return 0;
}

/* ---- the write buffer ------------------------------------------------ */

int pb_buffered(const sop_text *t, const void *id, size_t idlen)
{
    return tx_bag_has(&t->pp.ids, id, idlen);
}

/* A buffered posting in 64 bits: the term's index (in t->pend.terms), the
 * document's (in pp->ids), and tf, 20 + 20 + 24 bits; the flush replaces
 * the indices by ranks, packed as tightly as their counts allow. */
#define PE_TF_BITS 24
#define PE(term, doc, tf) ((uint64_t)(term) << 44 | (uint64_t)(doc) << 24 | (uint64_t)(tf))
#define PE_TERM(e) ((uint32_t)((e) >> 44))
#define PE_DOC(e) ((uint32_t)((e) >> 24) & (TX_BAG_ORDER_MAX - 1))
#define PE_TF(e) ((uint32_t)(e) & ((1u << PE_TF_BITS) - 1))

int pb_buffer(sop_text *t, const void *id, size_t idlen, const uint8_t *rec, size_t reclen)
{
    tx_ppend *pp = &t->pp;
    const tx_bag *b = &t->bag;
    int rc = 0;
    /* indices must fit their 20 bits: write everything first if they would not */
    if (pp->ids.n + 1 >= TX_BAG_ORDER_MAX || t->pend.terms.n + b->n >= TX_BAG_ORDER_MAX)
        rc = tx_flush(t);
    uint32_t d;
    if (!rc)
        rc = tx_bag_put_idx(&pp->ids, id, idlen, 1, &d);
    if (rc)
        return rc;
    /* each grown array is kept at once: a later failure must not lose it
     * (sop__grow may have moved it and freed the old one) */
    uint64_t *e = sop__grow(pp->e, &pp->cape, pp->n + b->n + 1, sizeof *e, 1024);
    if (!e)
        return -ENOMEM;
    pp->e = e;
    tx_rref *r = sop__grow(pp->rref, &pp->caprref, (size_t)d + 1, sizeof *r, 1024);
    if (!r)
        return -ENOMEM;
    pp->rref = r;
    uint8_t *m = sop__grow(pp->rec, &pp->rcap, pp->rused + reclen + 1, 1, 65536);
    if (!m)
        return -ENOMEM;
    pp->rec = m;
    r[d] = (tx_rref){pp->rused, reclen, (uint32_t)b->tokens};
    memcpy(m + pp->rused, rec, reclen);
    pp->rused += reclen;
    for (size_t i = 0; i < b->n && !rc; i++) { /* the posting (its +1 of df: at the flush) */
        uint32_t ti;
        rc = tx_bag_put_idx(&t->pend.terms, b->terms[i].t, b->terms[i].len, 0, &ti);
        e[pp->n++] = PE(ti, d, b->terms[i].n); /* tf < 2^23: documents are <= 16 MiB */
    }
    if (pp->ids.n == PB_BULK_DOCS) /* a bulk load: its writes will not be merged */
        t->txn->no_merge = 1;         /* at commit, so the engine need not log them */
    if (!rc && pp->n * sizeof *e + pp->rused > PB_BUFFER_BYTES)
        rc = pb_flush(t);
    return rc;
}

/* The flush's view of the buffer: terms and ids by rank; a posting is
 * then term rank << tshift | id rank << PE_TF_BITS | tf. The documents are
 * copied in rank order (ids back to back, and a small record each), so
 * that the postings of a term, in id order, read them from a few cache
 * lines instead of three scattered ones each. */
typedef struct fdoc {
    uint32_t off; /* of the id in flushv.idmem */
    uint16_t len;
    uint32_t dl;
} fdoc;

typedef struct flushv {
    tx_bag *terms;
    uint32_t *tord;
    fdoc *docs; /* by rank */
    uint8_t *idmem;
    unsigned tshift;
} flushv;

static const fdoc *ent_doc(const flushv *f, uint64_t e)
{
    return &f->docs[(e >> PE_TF_BITS) & ((1ull << (f->tshift - PE_TF_BITS)) - 1)];
}

static const uint8_t *ent_id(const flushv *f, uint64_t e, size_t *len)
{
    const fdoc *d = ent_doc(f, e);
    *len = d->len;
    return f->idmem + d->off;
}

static uint32_t ent_dl(const flushv *f, uint64_t e) { return ent_doc(f, e)->dl; }

static const char *ent_term(const flushv *f, uint64_t e, size_t *len)
{
    const tx_term *x = &f->terms->terms[f->tord[e >> f->tshift]];
    *len = x->len;
    return f->terms->mem + x->off;
}

static size_t make_key(uint8_t *key, const char *term, size_t tlen, int kind, const void *id,
                       size_t idlen)
{
    memcpy(key, term, tlen);
    key[tlen] = (uint8_t)kind;
    memcpy(key + tlen + 1, id, idlen);
    return tlen + 1 + idlen;
}

/* The key under @c. */
static const uint8_t *cur_key(const sop__bcur *c, uint32_t *klen)
{
    const uint8_t *k, *v;
    uint32_t vlen;
    uint8_t vf;
    sop__bt_item(c, &k, klen, &v, &vlen, &vf);
    return k;
}

/* Is the item under @c a block of the prefix key[0..plen]? */
static int at_block(const sop__bcur *c, const uint8_t *key, size_t plen)
{
    uint32_t klen;
    const uint8_t *k = cur_key(c, &klen);
    return klen > plen + 1 && memcmp(k, key, plen) == 0 && k[plen] == PB_BLOCK;
}

/* The value under @c of store @s (it may be a blob). */
static int cur_value(const sop__bcur *c, sop_store *s, sop_val *val)
{
    const uint8_t *k, *v;
    uint32_t klen, vlen;
    uint8_t vf;
    sop__bt_item(c, &k, &klen, &v, &vlen, &vf);
    return sop__value_get(s, v, vlen, vf, val);
}

int pb_span_find(sop_store *s, const uint8_t *key, size_t kl, size_t plen, int fresh, pb_span *sp)
{
    sop__bcur c = {.t = &s->tree};
    sp->found = sp->has_limit = 0;
    int rc = fresh ? SOP_ENOTFOUND : sop__bt_seek(&c, key, kl, SOP__SEEK_LE);
    if (rc == 0 && at_block(&c, key, plen)) {
        uint32_t klen;
        const uint8_t *k = cur_key(&c, &klen);
        memcpy(sp->bkey, k, klen);
        sp->bkl = klen;
        if ((rc = cur_value(&c, s, &sp->val)))
            return rc;
        sp->found = 1;
    } else if (rc && rc != SOP_ENOTFOUND) {
        return rc;
    }
    if (fresh)
        return 0;
    /* the item after the one at or before the key */
    rc = c.depth && rc == 0 ? sop__bt_next(&c) : sop__bt_seek(&c, key, kl, SOP__SEEK_GT);
    if (rc == 0 && at_block(&c, key, plen)) {
        uint32_t klen;
        const uint8_t *k = cur_key(&c, &klen);
        sp->limlen = klen - plen - 1;
        memcpy(sp->limit, k + plen + 1, sp->limlen);
        sp->has_limit = 1;
    }
    return rc == SOP_ENOTFOUND ? 0 : rc;
}

/* Reads the block under @c into @b. */
static int read_block(sop_text *t, const sop__bcur *c, pb_block *b)
{
    sop_val val;
    int rc = cur_value(c, t->post, &val);
    if (rc)
        return rc;
    rc = blk_decode(b, val.data, val.size);
    return rc < 0 ? tx_corrupt(t, "a postings block is malformed") : rc;
}

/* Decodes the block a span found into @b (empty when none). */
static int span_block(sop_text *t, const pb_span *sp, pb_block *b)
{
    b->n = 0;
    int rc = sp->found ? blk_decode(b, sp->val.data, sp->val.size) : 0;
    return rc < 0 ? tx_corrupt(t, "a postings block is malformed") : rc;
}

/* Writes postings e[0..m) of one term into its blocks. @fresh: the
 * postings store was empty when the flush began, so the term has no block
 * to merge with (no lookups). */
static int write_blocks(sop_text *t, const flushv *f, const uint64_t *e, size_t m, int fresh)
{
    size_t tlen, eil;
    const char *term = ent_term(f, e[0], &tlen);
    uint8_t key[TX_PKEY_MAX];
    pb_block *b = &t->blk;
    int rc = 0;
    for (size_t i = 0; i < m && !rc;) {
        const uint8_t *id = ent_id(f, e[i], &eil);
        size_t kl = make_key(key, term, tlen, PB_BLOCK, id, eil);
        pb_span *sp = &t->span;
        rc = pb_span_find(t->post, key, kl, tlen, fresh, sp);
        if (!rc)
            rc = span_block(t, sp, b);
        if (rc)
            break;
        /* the new postings that belong before the next block, merged in */
        size_t j = i;
        for (; j < m; j++) {
            const uint8_t *jid = ent_id(f, e[j], &eil);
            if (sp->has_limit && tx_id_cmp(jid, eil, sp->limit, sp->limlen) >= 0)
                break;
        }
        pb_block *mg = &t->blk2;
        mg->n = 0;
        uint32_t a = 0;
        for (size_t x = i; x < j && !rc; x++) {
            size_t xl;
            const uint8_t *xid = ent_id(f, e[x], &xl);
            while (a < b->n && !rc && tx_id_cmp(BID(b, a), BLEN(b, a), xid, xl) < 0) {
                rc = blk_push(mg, BID(b, a), BLEN(b, a), b->tf[a], b->dl[a]);
                a++;
            }
            if (!rc && a < b->n && tx_id_cmp(BID(b, a), BLEN(b, a), xid, xl) == 0)
                return tx_corrupt(t, "a new posting is already in a block");
            if (!rc)
                rc = blk_push(mg, xid, xl, PE_TF(e[x]), ent_dl(f, e[x]));
        }
        for (; a < b->n && !rc; a++)
            rc = blk_push(mg, BID(b, a), BLEN(b, a), b->tf[a], b->dl[a]);
        /* cut into blocks; the first keeps the old block's key */
        for (uint32_t from = 0; from < mg->n && !rc;) {
            uint32_t to = from + 1;
            size_t bytes = BLEN(mg, from) + 8;
            for (; to < mg->n && to - from < PB_MAX && bytes < PB_BYTES; to++)
                bytes += BLEN(mg, to) / 2 + 6;
            size_t vl;
            if ((rc = blk_encode(t, mg, from, to, &vl)))
                break;
            sop_val v = {t->buf, vl};
            if (from == 0 && sp->found) {
                sop_val k = {sp->bkey, sp->bkl};
                rc = sop_update(t->post, &k, &v);
            } else {
                sop_val k = {key, make_key(key, term, tlen, PB_BLOCK, BID(mg, from),
                                           BLEN(mg, from))};
                rc = sop_add(t->post, &k, &v);
                if (rc == SOP_EEXISTS)
                    return tx_corrupt(t, "two postings blocks start at one id");
            }
            from = to;
        }
        i = j;
    }
    return rc;
}

int pb_flush(sop_text *t)
{
    tx_ppend *pp = &t->pp;
    if (!pp->n && !pp->ids.n)
        return 0;
    flushv f = {&t->pend.terms, NULL, NULL, NULL, PE_TF_BITS};
    uint32_t *dord = NULL;
    unsigned tbits = 1, dbits = 1;
    while ((1ull << dbits) < pp->ids.n)
        dbits++;
    while ((1ull << tbits) < f.terms->n)
        tbits++;
    f.tshift = PE_TF_BITS + dbits;
    uint32_t *trank = NULL, *drank = NULL;
    int rc = tx_bag_order(f.terms, &f.tord, &trank);
    if (!rc)
        rc = tx_bag_order(&pp->ids, &dord, &drank);
    if (!rc && (!(f.docs = sop__malloc((pp->ids.n + 1) * sizeof *f.docs)) ||
                !(f.idmem = sop__malloc(pp->ids.used + 1))))
        rc = -ENOMEM;
    for (size_t r = 0, off = 0; r < pp->ids.n && !rc; r++) {
        const tx_term *x = &pp->ids.terms[dord[r]];
        memcpy(f.idmem + off, pp->ids.mem + x->off, x->len);
        f.docs[r] = (fdoc){(uint32_t)off, (uint16_t)x->len, pp->rref[dord[r]].dl};
        off += x->len;
    }
    for (size_t i = 0; i < pp->n && !rc; i++) {
        uint64_t e = pp->e[i];
        pp->e[i] = (uint64_t)trank[PE_TERM(e)] << f.tshift |
                   (uint64_t)drank[PE_DOC(e)] << PE_TF_BITS | PE_TF(e);
    }
    if (!rc)
        rc = tx_radix_sort64(pp->e, pp->n, PE_TF_BITS, f.tshift + tbits);
    for (size_t i = 0; i < pp->n && !rc;) { /* +1 document frequency per posting */
        size_t j = i + 1;
        while (j < pp->n && pp->e[j] >> f.tshift == pp->e[i] >> f.tshift)
            j++;
        f.terms->terms[f.tord[pp->e[i] >> f.tshift]].n += (int64_t)(j - i);
        i = j;
    }
    dr_rec *recs = rc ? NULL : sop__malloc((pp->ids.n + 1) * sizeof *recs);
    if (!rc && !recs)
        rc = -ENOMEM;
    for (size_t r = 0; r < pp->ids.n && !rc; r++) { /* the records, in id order */
        const tx_rref *x = &pp->rref[dord[r]];
        recs[r] = (dr_rec){f.idmem + f.docs[r].off, f.docs[r].len, pp->rec + x->off, x->len};
    }
    if (!rc)
        rc = dr_write(t, recs, pp->ids.n);
    sop__free(recs);
    if (!rc && pp->ids.n < PB_BULK_DOCS) {
        uint8_t key[TX_PKEY_MAX], val[20];
        for (size_t i = 0; i < pp->n && !rc; i++) {
            size_t tl, il;
            const char *term = ent_term(&f, pp->e[i], &tl);
            const uint8_t *id = ent_id(&f, pp->e[i], &il);
            size_t vl = tx_put_varint(val, PE_TF(pp->e[i]));
            vl += tx_put_varint(val + vl, ent_dl(&f, pp->e[i]));
            sop_val k = {key, make_key(key, term, tl, PB_SINGLE, id, il)}, v = {val, vl};
            rc = sop_add(t->post, &k, &v);
            if (rc == SOP_EEXISTS)
                rc = tx_corrupt(t, "a posting of a new document exists");
        }
    } else if (!rc) {
        t->txn->no_merge = 1; /* blocks are read, merged and rewritten */
        uint64_t had = 1;
        rc = sop_store_count(t->post, &had);
        for (size_t i = 0; i < pp->n && !rc;) {
            size_t j = i + 1;
            while (j < pp->n && pp->e[j] >> f.tshift == pp->e[i] >> f.tshift)
                j++;
            rc = write_blocks(t, &f, pp->e + i, j - i, had == 0);
            i = j;
        }
    }
    sop__free(f.tord);
    sop__free(f.docs);
    sop__free(f.idmem);
    sop__free(dord);
    sop__free(trank);
    sop__free(drank);
    pp->n = 0;
    pp->rused = 0;
    tx_bag_reset(&pp->ids);
    return rc ? sop__txn_fail(t->txn, rc) : 0;
}

int pb_remove(sop_text *t, const char *term, size_t tlen, const void *id, size_t idlen)
{
    uint8_t key[TX_PKEY_MAX];
    sop_val k = {key, make_key(key, term, tlen, PB_SINGLE, id, idlen)};
    int rc = sop_remove(t->post, &k);
    if (rc != SOP_ENOTFOUND)
        return rc;
    /* in a block */
    t->txn->no_merge = 1;
    size_t kl = make_key(key, term, tlen, PB_BLOCK, id, idlen);
    pb_span *sp = &t->span;
    pb_block *b = &t->blk;
    if (!(rc = pb_span_find(t->post, key, kl, tlen, 0, sp)) && !sp->found)
        return tx_corrupt(t, "a posting of a document is missing");
    if (!rc)
        rc = span_block(t, sp, b);
    if (rc)
        return rc;
    uint32_t at = 0;
    while (at < b->n && tx_id_cmp(BID(b, at), BLEN(b, at), id, idlen) != 0)
        at++;
    if (at == b->n)
        return tx_corrupt(t, "a posting of a document is missing");
    pb_block *rest = &t->blk2;
    rest->n = 0;
    for (uint32_t i = 0; i < b->n && !rc; i++)
        if (i != at)
            rc = blk_push(rest, BID(b, i), BLEN(b, i), b->tf[i], b->dl[i]);
    sop_val bk = {sp->bkey, sp->bkl};
    if (rc)
        return rc;
    if (rest->n == 0 || at == 0) /* the key changes, or the block goes */
        rc = sop_remove(t->post, &bk);
    size_t vl;
    if (!rc && rest->n && !(rc = blk_encode(t, rest, 0, rest->n, &vl))) {
        sop_val v = {t->buf, vl};
        if (at == 0) {
            sop_val nk = {key, make_key(key, term, tlen, PB_BLOCK, BID(rest, 0), BLEN(rest, 0))};
            rc = sop_add(t->post, &nk, &v);
        } else {
            rc = sop_update(t->post, &bk, &v);
        }
    }
    return rc;
}

/* ---- the reader ------------------------------------------------------- */

/* Loads the posting under the sub's cursor (after a B-tree move that
 * returned @rc). */
static int sub_load(pb_iter *it, pb_sub *s, int rc)
{
    if (rc == SOP_ENOTFOUND) {
        s->done = 1;
        return 0;
    }
    if (rc)
        return rc;
    const uint8_t *k, *v;
    uint32_t klen, vlen;
    uint8_t vf;
    sop__bt_item(&s->c, &k, &klen, &v, &vlen, &vf);
    size_t tl = it->tlen;
    if (klen <= tl + 1 || memcmp(k, it->key, tl) != 0 || k[tl] != (s->blocks ? PB_BLOCK : PB_SINGLE)) {
        s->done = 1;
        return 0;
    }
    if (++it->steps % CHECK_EVERY == 0 && (rc = sop__txn_check(it->t->txn, 0)))
        return rc;
    if (s->blocks) {
        if ((rc = read_block(it->t, &s->c, &s->blk)))
            return rc;
        s->pos = 0;
        s->id = BID(&s->blk, 0);
        s->idlen = BLEN(&s->blk, 0);
        s->tf = s->blk.tf[0];
        s->dl = s->blk.dl[0];
        return 0;
    }
    size_t off = 0;
    uint64_t tf, dl;
    if (vf != 0 || tx_get_varint(v, vlen, &off, &tf) || tx_get_varint(v, vlen, &off, &dl) ||
        tf == 0 || tf > UINT32_MAX || dl > UINT32_MAX)
        return tx_corrupt(it->t, "a posting is malformed");
    s->id = k + tl + 1;
    s->idlen = klen - tl - 1;
    s->tf = (uint32_t)tf;
    s->dl = (uint32_t)dl;
    return 0;
}

static void sub_at(pb_sub *s, uint32_t pos)
{
    s->pos = pos;
    s->id = BID(&s->blk, pos);
    s->idlen = BLEN(&s->blk, pos);
    s->tf = s->blk.tf[pos];
    s->dl = s->blk.dl[pos];
}

static int sub_next(pb_iter *it, pb_sub *s)
{
    if (s->blocks && s->pos + 1 < s->blk.n) {
        sub_at(s, s->pos + 1);
        return 0;
    }
    return sub_load(it, s, sop__bt_next(&s->c));
}

static int sub_seek(pb_iter *it, pb_sub *s, const uint8_t *id, size_t idlen)
{
    if (s->done || tx_id_cmp(s->id, s->idlen, id, idlen) >= 0)
        return 0;
    pb_block *b = &s->blk;
    if (s->blocks && tx_id_cmp(BID(b, b->n - 1), BLEN(b, b->n - 1), id, idlen) >= 0) {
        uint32_t lo = s->pos + 1, hi = b->n - 1; /* the first >= id, in this block */
        while (lo < hi) {
            uint32_t mid = lo + (hi - lo) / 2;
            if (tx_id_cmp(BID(b, mid), BLEN(b, mid), id, idlen) < 0)
                lo = mid + 1;
            else
                hi = mid;
        }
        sub_at(s, lo);
        return 0;
    }
    if (!s->blocks) /* a few steps in the leaf before a descent */
        for (int i = 0; i < 4; i++) {
            int rc = sub_next(it, s);
            if (rc || s->done || tx_id_cmp(s->id, s->idlen, id, idlen) >= 0)
                return rc;
        }
    it->key[it->tlen] = (uint8_t)(s->blocks ? PB_BLOCK : PB_SINGLE);
    memcpy(it->key + it->tlen + 1, id, idlen);
    size_t kl = it->tlen + 1 + idlen;
    if (!s->blocks)
        return sub_load(it, s, sop__bt_seek(&s->c, it->key, kl, SOP__SEEK_GE));
    /* the block starting at or before id holds it unless it ends before */
    int rc = sop__bt_seek(&s->c, it->key, kl, SOP__SEEK_LE);
    if (rc == 0 && at_block(&s->c, it->key, it->tlen)) {
        if ((rc = sub_load(it, s, 0)) || s->done)
            return rc;
        if (tx_id_cmp(BID(b, b->n - 1), BLEN(b, b->n - 1), id, idlen) >= 0)
            return sub_seek(it, s, id, idlen);
        return sub_load(it, s, sop__bt_next(&s->c)); /* it ends before: the next block */
    }
    if (rc && rc != SOP_ENOTFOUND)
        return rc;
    /* no block starts at or before id: the term's first block (after its
     * singles, which the LE seek may have landed on) starts after it */
    return sub_load(it, s, sop__bt_seek(&s->c, it->key, it->tlen + 1, SOP__SEEK_GE));
}

/* The current posting: the smaller id of the two ranges. */
static void pick(pb_iter *it)
{
    pb_sub *a = &it->s[0], *b = &it->s[1], *m;
    if (a->done && b->done) {
        it->done = 1;
        return;
    }
    m = a->done ? b : b->done ? a : tx_id_cmp(a->id, a->idlen, b->id, b->idlen) <= 0 ? a : b;
    it->id = m->id;
    it->idlen = m->idlen;
    it->tf = m->tf;
    it->dl = m->dl;
}

int pb_iter_open(pb_iter *it, sop_text *t, const char *term, size_t tlen)
{
    it->t = t;
    it->tlen = tlen;
    it->done = 0;
    memcpy(it->key, term, tlen);
    int rc = 0;
    for (int i = 0; i < 2 && !rc; i++) {
        pb_sub *s = &it->s[i];
        s->blocks = i;
        s->done = 0;
        s->c = (sop__bcur){.t = &t->post->tree};
        it->key[tlen] = (uint8_t)(i ? PB_BLOCK : PB_SINGLE);
        rc = sub_load(it, s, sop__bt_seek(&s->c, it->key, tlen + 1, SOP__SEEK_GE));
    }
    if (!rc)
        pick(it);
    return rc;
}

static int same(const pb_sub *s, const pb_iter *it)
{
    return !s->done && s->id == it->id;
}

int pb_iter_next(pb_iter *it)
{
    int rc = 0;
    for (int i = 0; i < 2 && !rc; i++)
        if (same(&it->s[i], it)) {
            rc = sub_next(it, &it->s[i]);
            break;
        }
    if (!rc)
        pick(it);
    return rc;
}

int pb_iter_seek(pb_iter *it, const uint8_t *id, size_t idlen)
{
    if (it->done || tx_id_cmp(it->id, it->idlen, id, idlen) >= 0)
        return 0;
    int rc = 0;
    for (int i = 0; i < 2 && !rc; i++)
        rc = sub_seek(it, &it->s[i], id, idlen);
    if (!rc)
        pick(it);
    return rc;
}

void pb_iter_close(pb_iter *it) { pb_block_free(&it->s[1].blk); }
