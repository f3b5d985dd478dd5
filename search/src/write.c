/* write.c - adding, replacing and deleting documents.
 *
 * A document is its record (id -> length and distinct terms), one posting
 * per distinct term (term 0x00 id -> tf, length), and its share of the
 * counters (+1 document frequency per term, +1 document, +length). A
 * replace or a delete reads the old record and takes back exactly what it
 * added, so nothing is ever counted twice. */
#include <errno.h>
#include <string.h>

#include "docs.h"
#include "err.h"
#include "mem.h"
#include "postings.h"
#include "textidx.h"

/* Encodes t->bag (its terms in any order) as a document record into t->buf. */
static int encode_record(sop_text *t, size_t *len)
{
    const tx_bag *b = &t->bag;
    size_t need = 20;
    for (size_t i = 0; i < b->n; i++)
        need += 10 + b->terms[i].len;
    int rc = tx_buf(t, need);
    if (rc)
        return rc;
    size_t n = tx_put_varint(t->buf, b->tokens);
    n += tx_put_varint(t->buf + n, b->n);
    for (size_t i = 0; i < b->n; i++) {
        n += tx_put_varint(t->buf + n, b->terms[i].len);
        memcpy(t->buf + n, b->terms[i].t, b->terms[i].len);
        n += b->terms[i].len;
    }
    *len = n;
    return 0;
}

/* Buffers the postings of t->bag for document @id, and its record, and
 * counts them. */
static int add_postings(sop_text *t, const void *id, size_t idlen, const uint8_t *rec,
                        size_t reclen)
{
    int rc = pb_buffer(t, id, idlen, rec, reclen);
    if (!rc) {
        t->pend.docs++;
        t->pend.len += (int64_t)t->bag.tokens;
    }
    return rc ? sop__txn_fail(t->txn, rc) : 0;
}

/* Takes back what the document with record @rec added (postings and
 * counters); the record itself stays. */
static int drop_postings(sop_text *t, const void *id, size_t idlen, const uint8_t *rec, size_t len)
{
    size_t off = 0;
    uint64_t dl, n;
    if (tx_get_varint(rec, len, &off, &dl) || tx_get_varint(rec, len, &off, &n))
        return tx_corrupt(t, "a document record is malformed");
    int rc = 0;
    for (uint64_t i = 0; i < n && !rc; i++) {
        uint64_t tl;
        if (tx_get_varint(rec, len, &off, &tl) || tl == 0 || tl > TX_TERM_MAX || tl > len - off)
            return tx_corrupt(t, "a document record is malformed");
        const char *term = (const char *)rec + off;
        off += tl;
        rc = pb_remove(t, term, tl, id, idlen);
        if (rc == SOP_ENOTFOUND)
            return tx_corrupt(t, "a posting of a document is missing");
        if (!rc)
            rc = tx_bag_put(&t->pend.terms, term, tl, -1);
    }
    if (rc)
        return sop__txn_fail(t->txn, rc);
    t->pend.docs--;
    t->pend.len -= (int64_t)dl;
    return 0;
}

/* Reads the record of @id into t->out. SOP_ENOTFOUND when absent. */
static int old_record(sop_text *t, const void *id, size_t idlen, size_t *len)
{
    int rc = pb_buffered(t, id, idlen) ? pb_flush(t) : 0; /* added in this transaction */
    return rc ? rc : dr_get(t, id, idlen, len);
}

enum { PUT_ADD, PUT_REPLACE, PUT_UPSERT };

static int put(sop_text *t, const sop_text_doc *d, int how)
{
    int rc = tx_check_write(t);
    if (!rc)
        rc = tx_analyze_doc(t, d);
    if (rc)
        return rc;
    size_t rlen, olen = 0;
    if (how == PUT_ADD) { /* only whether it exists */
        rc = pb_buffered(t, d->id, d->id_len) ? 0 : dr_get(t, d->id, d->id_len, &olen);
        if (rc == 0)
            return tx_err(t, SOP_EEXISTS, "a document has that id (replace it instead)");
    } else {
        rc = old_record(t, d->id, d->id_len, &olen);
    }
    if (rc == SOP_ENOTFOUND) { /* new */
        if (how == PUT_REPLACE)
            return tx_err(t, rc, "no document has that id");
        rc = 0;
    } else if (rc == 0) { /* the old version goes first (it uses t->buf) */
        if (!(rc = drop_postings(t, d->id, d->id_len, t->out, olen)))
            rc = dr_remove(t, d->id, d->id_len);
    }
    if (!rc && !(rc = encode_record(t, &rlen)))
        rc = add_postings(t, d->id, d->id_len, t->buf, rlen);
    return rc;
}

int sop_text_add(sop_text *t, const sop_text_doc *doc) { return put(t, doc, PUT_ADD); }
int sop_text_replace(sop_text *t, const sop_text_doc *doc) { return put(t, doc, PUT_REPLACE); }
int sop_text_upsert(sop_text *t, const sop_text_doc *doc) { return put(t, doc, PUT_UPSERT); }

static int check_id(sop_text *t, const void *id, size_t idlen)
{
    if (!id || idlen == 0 || idlen > SOP_TEXT_ID_MAX)
        return tx_err(t, -EINVAL, "document id must be 1..%u bytes", SOP_TEXT_ID_MAX);
    return 0;
}

int sop_text_delete(sop_text *t, const void *id, size_t idlen)
{
    int rc = tx_check_write(t);
    if (!rc)
        rc = check_id(t, id, idlen);
    size_t olen;
    if (!rc)
        rc = old_record(t, id, idlen, &olen);
    if (rc == SOP_ENOTFOUND)
        return tx_err(t, rc, "no document has that id");
    if (!rc)
        rc = drop_postings(t, id, idlen, t->out, olen);
    if (!rc)
        rc = dr_remove(t, id, idlen);
    return rc;
}

int sop_text_doc_len(sop_text *t, const void *id, size_t idlen, uint32_t *len)
{
    if (!t || !len)
        return -EINVAL;
    int rc = check_id(t, id, idlen);
    if (!rc && pb_buffered(t, id, idlen))
        rc = pb_flush(t);
    size_t rlen = 0;
    if (!rc)
        rc = dr_get(t, id, idlen, &rlen);
    if (rc == SOP_ENOTFOUND)
        return tx_err(t, rc, "no document has that id");
    if (rc)
        return rc;
    size_t off = 0;
    uint64_t dl;
    if (tx_get_varint(t->out, rlen, &off, &dl) || dl > UINT32_MAX)
        return tx_err(t, SOP_ECORRUPT, "a document record is malformed");
    *len = (uint32_t)dl;
    return 0;
}
