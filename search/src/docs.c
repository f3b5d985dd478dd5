/* docs.c - document records: singles and compressed blocks (see docs.h). */
#include "docs.h"

#include <errno.h>
#include <string.h>

#include "err.h"
#include "mem.h"
#include "postings.h"

/* Raw bytes of a block before it is cut (one record may exceed it). */
#define DR_BLOCK_RAW 8192
/* Bound on a block's raw length read from disk. */
#define DR_RAW_MAX (1u << 30)
#define M_STORED 0
#define M_DEFLATE 1

static size_t dkey(uint8_t *key, int kind, const void *id, size_t idlen)
{
    key[0] = (uint8_t)kind;
    memcpy(key + 1, id, idlen);
    return 1 + idlen;
}

/* ---- entries ---------------------------------------------------------- */

/* Reads the entry at raw[*off..len): the id (into id[], which holds the
 * previous one: ids share a prefix with it) and the record. -1 when
 * malformed. */
static int ent_next(const uint8_t *raw, size_t len, size_t *off, uint8_t *id, size_t *idlen,
                    const uint8_t **rec, size_t *reclen)
{
    uint64_t rl;
    if (tx_get_id(raw, len, off, id, idlen))
        return -1;
    if (tx_get_varint(raw, len, off, &rl) || rl == 0 || rl > len - *off)
        return -1;
    *rec = raw + *off;
    *reclen = rl;
    *off += rl;
    return 0;
}

/* Appends an entry to @out (room for it checked by the caller): @prev is
 * the previous id of the block (NULL for its first). */
static size_t ent_put(uint8_t *out, const uint8_t *prev, size_t prevlen, const uint8_t *id,
                      size_t idlen, const uint8_t *rec, size_t reclen)
{
    size_t n = tx_put_id(out, prev, prevlen, id, idlen);
    n += tx_put_varint(out + n, reclen);
    memcpy(out + n, rec, reclen);
    return n + reclen;
}

#define ENT_MAX(idlen, reclen) (1 + 20 + (idlen) + 10 + (reclen))

/* ---- blocks ----------------------------------------------------------- */

int dr_block_decode(dr_cache *dc, const sop_val *v)
{
    dc->vlen = 0;
    const uint8_t *p = v->data;
    size_t off = 1;
    uint64_t rawlen, n;
    if (v->size < 1 || p[0] > M_DEFLATE || tx_get_varint(p, v->size, &off, &rawlen) ||
        tx_get_varint(p, v->size, &off, &n) || rawlen == 0 || rawlen > DR_RAW_MAX || n == 0 ||
        n > rawlen || (p[0] == M_STORED && rawlen != v->size - off))
        return -1;
    uint8_t *raw = sop__grow(dc->raw, &dc->rawcap, rawlen, 1, 16384);
    uint8_t *val = raw ? sop__grow(dc->val, &dc->vcap, v->size, 1, 8192) : NULL;
    if (raw)
        dc->raw = raw;
    if (!val)
        return -ENOMEM;
    dc->val = val;
    if (p[0] == M_STORED) {
        memcpy(raw, p + off, rawlen);
    } else {
        int rc = tx_inflate(&dc->inflate, p + off, v->size - off, raw, rawlen);
        if (rc)
            return rc;
    }
    memcpy(val, v->data, v->size);
    dc->vlen = v->size;
    dc->rawlen = rawlen;
    dc->n = (uint32_t)n;
    return 0;
}

int dr_entry_next(const uint8_t *raw, size_t len, size_t *off, uint8_t *id, size_t *idlen,
                  const uint8_t **rec, size_t *reclen)
{
    return ent_next(raw, len, off, id, idlen, rec, reclen);
}

/* Decodes block value @v into t->dc (raw entries), unless it holds that
 * value already. */
static int load_block(sop_text *t, const sop_val *v)
{
    dr_cache *dc = &t->dc;
    if (dc->vlen && dc->vlen == v->size && memcmp(dc->val, v->data, v->size) == 0)
        return 0;
    int rc = dr_block_decode(dc, v);
    return rc == -1 ? tx_corrupt(t, "a document block is malformed or does not inflate") : rc;
}

/* Writes a block of raw[0..len) (@n entries, the first id @first) under
 * key 0x01 first: an update of @old (NULL: an insert). */
static int put_block(sop_text *t, const uint8_t *raw, size_t len, uint32_t n, const uint8_t *first,
                     size_t firstlen, const sop_val *old)
{
    int rc = tx_buf(t, len + 32);
    if (rc)
        return rc;
    uint8_t *p = t->buf;
    size_t h = 1, zl;
    h += tx_put_varint(p + h, len);
    h += tx_put_varint(p + h, n);
    rc = len >= 64 ? tx_deflate(&t->dc.deflate, raw, len, p + h, len - len / 8, &zl) : 1;
    if (rc < 0)
        return rc;
    p[0] = rc ? M_STORED : M_DEFLATE;
    if (rc) {
        memcpy(p + h, raw, len);
        zl = len;
    }
    sop_val v = {p, h + zl};
    if (old)
        return sop_update(t->doc, old, &v);
    uint8_t key[1 + SOP_TEXT_ID_MAX];
    sop_val k = {key, dkey(key, DR_BLOCK, first, firstlen)};
    rc = sop_add(t->doc, &k, &v);
    return rc == SOP_EEXISTS ? tx_corrupt(t, "two document blocks start at one id") : rc;
}

/* Finds the block that would hold @id into t->span (and its entries into
 * t->dc when there is one). */
static int find_block(sop_text *t, const void *id, size_t idlen, int fresh)
{
    uint8_t key[1 + SOP_TEXT_ID_MAX];
    int rc = pb_span_find(t->doc, key, dkey(key, DR_BLOCK, id, idlen), 0, fresh, &t->span);
    return !rc && t->span.found ? load_block(t, &t->span.val) : rc;
}

/* ---- lookups ---------------------------------------------------------- */

int dr_get(sop_text *t, const void *id, size_t idlen, size_t *len)
{
    uint8_t key[1 + SOP_TEXT_ID_MAX];
    sop_val k = {key, dkey(key, DR_SINGLE, id, idlen)}, v;
    int rc = sop_get(t->doc, &k, &v);
    const uint8_t *rec = v.data;
    size_t reclen = v.size;
    if (rc == SOP_ENOTFOUND) {
        if ((rc = find_block(t, id, idlen, 0)) || !t->span.found)
            return rc ? rc : SOP_ENOTFOUND;
        const dr_cache *dc = &t->dc;
        uint8_t eid[SOP_TEXT_ID_MAX];
        size_t off = 0, elen = 0;
        rc = SOP_ENOTFOUND;
        for (uint32_t i = 0; i < dc->n; i++) {
            if (ent_next(dc->raw, dc->rawlen, &off, eid, &elen, &rec, &reclen))
                return tx_corrupt(t, "a document block is malformed");
            int c = tx_id_cmp(eid, elen, id, idlen);
            if (c >= 0) {
                rc = c ? SOP_ENOTFOUND : 0;
                break;
            }
        }
    }
    if (rc)
        return rc;
    if ((rc = tx_out(t, reclen)))
        return rc;
    memcpy(t->out, rec, reclen); /* a copy: writes move node memory */
    *len = reclen;
    return 0;
}

/* ---- writes ----------------------------------------------------------- */

/* Blocks being written: entries are pushed in id order and cut into blocks
 * of about DR_BLOCK_RAW raw bytes. */
typedef struct mbuf {
    uint8_t *p;
    size_t used, cap;
    uint32_t n;
    uint8_t first[SOP_TEXT_ID_MAX], prev[SOP_TEXT_ID_MAX];
    size_t flen, plen;
    int keep_old; /* the first block written keeps the old block's key */
} mbuf;

static int mb_cut(sop_text *t, mbuf *mb)
{
    if (!mb->n)
        return 0;
    sop_val old = {t->span.bkey, t->span.bkl};
    int rc = put_block(t, mb->p, mb->used, mb->n, mb->first, mb->flen,
                       mb->keep_old ? &old : NULL);
    mb->keep_old = 0;
    mb->used = 0;
    mb->n = 0;
    return rc;
}

static int mb_push(sop_text *t, mbuf *mb, const uint8_t *id, size_t idlen, const uint8_t *rec,
                   size_t reclen)
{
    if (mb->n && mb->used >= DR_BLOCK_RAW) {
        int rc = mb_cut(t, mb);
        if (rc)
            return rc;
    }
    uint8_t *p = sop__grow(mb->p, &mb->cap, mb->used + ENT_MAX(idlen, reclen), 1, 2 * DR_BLOCK_RAW);
    if (!p)
        return -ENOMEM;
    mb->p = p;
    mb->used += ent_put(p + mb->used, mb->n ? mb->prev : NULL, mb->plen, id, idlen, rec, reclen);
    if (!mb->n)
        memcpy(mb->first, id, mb->flen = idlen);
    memcpy(mb->prev, id, mb->plen = idlen);
    mb->n++;
    return 0;
}

int dr_remove(sop_text *t, const void *id, size_t idlen)
{
    uint8_t key[1 + SOP_TEXT_ID_MAX];
    sop_val k = {key, dkey(key, DR_SINGLE, id, idlen)};
    int rc = sop_remove(t->doc, &k);
    if (rc != SOP_ENOTFOUND)
        return rc;
    if ((rc = find_block(t, id, idlen, 0)) || !t->span.found)
        return rc ? rc : SOP_ENOTFOUND;
    /* the block again, without the entry (the writes leave t->dc alone) */
    const dr_cache *dc = &t->dc;
    uint8_t eid[SOP_TEXT_ID_MAX];
    size_t off = 0, elen = 0, reclen;
    const uint8_t *rec;
    int found = 0;
    mbuf mb = {.keep_old = 1};
    for (uint32_t i = 0; i < dc->n && !rc; i++) {
        if (ent_next(dc->raw, dc->rawlen, &off, eid, &elen, &rec, &reclen)) {
            rc = tx_corrupt(t, "a document block is malformed");
        } else if (tx_id_cmp(eid, elen, id, idlen) != 0) {
            rc = mb_push(t, &mb, eid, elen, rec, reclen);
        } else {
            found = 1;
            t->txn->no_merge = 1; /* a block is read and rewritten */
            if (i == 0) { /* the block's key changes */
                sop_val bk = {t->span.bkey, t->span.bkl};
                rc = sop_remove(t->doc, &bk);
                mb.keep_old = 0;
            }
        }
    }
    if (!rc && !found)
        rc = SOP_ENOTFOUND;
    if (!rc)
        rc = mb_cut(t, &mb);
    sop__free(mb.p);
    return rc;
}

/* Writes r[0..n) (in id order) into blocks: per run of records that
 * belong before the next block, merged with the block at or before the
 * run's first id and cut again. */
static int write_blocks(sop_text *t, const dr_rec *r, size_t n)
{
    uint64_t had = 1;
    int rc = sop_store_count(t->doc, &had);
    mbuf mb = {0};
    t->txn->no_merge = 1; /* blocks are read, merged and rewritten */
    for (size_t i = 0; i < n && !rc;) {
        if ((rc = find_block(t, r[i].id, r[i].idlen, had == 0)))
            break;
        const pb_span *sp = &t->span;
        size_t j = i + 1;
        while (j < n && !(sp->has_limit &&
                          tx_id_cmp(r[j].id, r[j].idlen, sp->limit, sp->limlen) >= 0))
            j++;
        const dr_cache *dc = &t->dc; /* the old entries (the writes leave it alone) */
        uint32_t on = sp->found ? dc->n : 0, oi = 0;
        uint8_t eid[SOP_TEXT_ID_MAX];
        size_t off = 0, elen = 0, reclen = 0;
        const uint8_t *rec = NULL;
        int have = 0; /* an old entry is in eid, rec */
        mb.keep_old = sp->found;
        for (size_t x = i; !rc;) {
            if (!have && oi < on) {
                if (ent_next(dc->raw, dc->rawlen, &off, eid, &elen, &rec, &reclen)) {
                    rc = tx_corrupt(t, "a document block is malformed");
                    break;
                }
                oi++;
                have = 1;
            }
            if (!have && x == j)
                break;
            int c = !have ? 1 : x == j ? -1 : tx_id_cmp(eid, elen, r[x].id, r[x].idlen);
            if (c == 0) {
                rc = tx_corrupt(t, "the record of a new document exists");
            } else if (c < 0) {
                rc = mb_push(t, &mb, eid, elen, rec, reclen);
                have = 0;
            } else {
                rc = mb_push(t, &mb, r[x].id, r[x].idlen, r[x].rec, r[x].reclen);
                x++;
            }
        }
        if (!rc)
            rc = mb_cut(t, &mb);
        i = j;
    }
    sop__free(mb.p);
    return rc;
}

int dr_write(sop_text *t, const dr_rec *r, size_t n)
{
    if (n >= PB_BULK_DOCS)
        return write_blocks(t, r, n);
    uint8_t key[1 + SOP_TEXT_ID_MAX];
    int rc = 0;
    for (size_t i = 0; i < n && !rc; i++) {
        sop_val k = {key, dkey(key, DR_SINGLE, r[i].id, r[i].idlen)}, v = {r[i].rec, r[i].reclen};
        rc = sop_add(t->doc, &k, &v);
        if (rc == SOP_EEXISTS)
            rc = tx_corrupt(t, "the record of a new document exists");
    }
    return rc;
}

void dr_cache_free(dr_cache *dc)
{
    sop__free(dc->val);
    sop__free(dc->raw);
    sop__free(dc->inflate);
    sop__free(dc->deflate);
    memset(dc, 0, sizeof *dc);
}
