/* textidx.h - the text index handle and what its parts share
 * (textidx.c: create/open/remove, counters, stats; analyze.c: documents
 * and queries to terms; write.c: add/replace/delete; query.c: BM25 top-k;
 * hybrid.c: rank fusion). The layout is in docs/design/search.md. */
#ifndef SOP_SEARCH_TEXTIDX_H
#define SOP_SEARCH_TEXTIDX_H
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "internal.h"
#include "sop/search.h"
#include "tokenizer.h"

/* Longest stored term: a field name, ':' and a term. */
#define TX_TERM_MAX (SOP_TEXT_FIELD_NAME_MAX + 1 + SOP__TERM_MAX)
/* Longest postings key: term, 0, id. */
#define TX_PKEY_MAX (TX_TERM_MAX + 1 + SOP_TEXT_ID_MAX)
/* Store names: "<name>.txt.<part>". */
#define TX_STORE_MAX (SOP_TEXT_NAME_MAX + 9)
#define TX_FORMAT 2 /* 2: document records in singles and blocks (docs.h) */

/* A term and a count (term frequency in a document, or in a query). */
typedef struct tx_term {
    const char *t; /* in the bag's memory (set by tx_bag_sort), not NUL-terminated */
    size_t off;    /* of the bytes in the bag's memory */
    uint32_t len;
    uint32_t slot; /* its slot in the hash table (a reset clears only those) */
    int64_t n;
} tx_term;

/* A slot of a bag's hash table (analyze.c). */
typedef struct tx_slot {
    uint32_t idx1, tag;
    uint64_t head;
} tx_slot;

/* Distinct terms with counts (analyze.c). */
typedef struct tx_bag {
    char *mem; /* term bytes */
    size_t used, cap;
    tx_term *terms; /* in insertion order; sorted by tx_bag_sort */
    size_t n, capterms;
    tx_slot *slots;  /* hash table */
    size_t nslots;
    uint64_t tokens; /* plain (unqualified) tokens seen: the length */
    int sealed;      /* sorted since the last reset */
} tx_bag;

void tx_bag_reset(tx_bag *b);
void tx_bag_free(tx_bag *b);
/* Counts one occurrence of @t (@len bytes). */
int tx_bag_put(tx_bag *b, const char *t, size_t len, int64_t count);
/* The same, and *idx gets the term's index in b->terms (until a sort). */
int tx_bag_put_idx(tx_bag *b, const char *t, size_t len, int64_t count, uint32_t *idx);
/* 1 when @t is in the bag (before tx_bag_sort). */
int tx_bag_has(const tx_bag *b, const char *t, size_t len);
/* 1 and *idx (the term's index in b->terms) when @t is in the bag (before
 * tx_bag_sort), else 0. */
int tx_bag_find(const tx_bag *b, const char *t, size_t len, uint32_t *idx);
/* Sets the terms' pointers (after the last put), in insertion order. */
void tx_bag_seal(tx_bag *b);
/* Sorts the terms in key order (bytes, shorter first); sets the pointers. */
void tx_bag_sort(tx_bag *b);

/* Pending counter deltas of a transaction: term -> delta. */
typedef struct tx_delta {
    tx_bag terms; /* n: the change of the term's document frequency */
    int64_t docs, len;
} tx_delta;

/* A buffered document record: bytes at off in tx_ppend.rec. */
typedef struct tx_rref {
    size_t off, len;
    uint32_t dl; /* the document's length */
} tx_rref;

typedef struct tx_ppend {
    uint64_t *e; /* postings: term, document and tf packed (postings.c) */
    size_t n, cape;
    tx_bag ids;     /* the documents buffered, in order */
    tx_rref *rref;  /* per document of ids: its record */
    size_t caprref;
    uint8_t *rec;   /* the records' bytes */
    size_t rused, rcap;
} tx_ppend;

/* A decoded block. */
typedef struct pb_block {
    uint8_t *ids;  /* the ids, back to back */
    size_t idcap;
    uint32_t *off; /* n + 1 offsets into ids */
    uint32_t *tf, *dl;
    uint32_t n, cap;
} pb_block;

/* Sorts a[0..n) by bits [lo, hi) (LSD radix). */
int tx_radix_sort64(uint64_t *a, size_t n, unsigned lo, unsigned hi);
/* *ord: the indices of @b's terms in key order; *rank (if @rank is not
 * NULL): the inverse. Free both with sop__free. -EINVAL when the bag holds
 * TX_BAG_ORDER_MAX terms or more. */
#define TX_BAG_ORDER_MAX (1u << 20)
int tx_bag_order(const tx_bag *b, uint32_t **ord, uint32_t **rank);

/* A block found by pb_span_find (postings.c). */
typedef struct pb_span {
    int found; /* a block starts at or before the key */
    uint8_t bkey[TX_PKEY_MAX]; /* its key */
    size_t bkl;
    sop_val val; /* its value */
    int has_limit; /* a block follows it */
    uint8_t limit[SOP_TEXT_ID_MAX]; /* the first id of that block */
    size_t limlen;
} pb_span;

/* The last document block decoded (docs.c): reused while the stored value
 * is byte for byte the same. */
typedef struct dr_cache {
    uint8_t *val; /* the stored value */
    size_t vlen, vcap;
    uint8_t *raw; /* its entries, inflated */
    size_t rawlen, rawcap;
    uint32_t n;
    void *inflate, *deflate; /* isa-l's states (deflate.c) */
} dr_cache;

struct sop_text {
    sop__txn_ext ext; /* first: freed with the transaction */
    sop_txn *txn;
    sop_db *db;
    char name[SOP_TEXT_NAME_MAX + 1];
    sop__tok_opts tok;
    sop_store *cfg, *post, *term, *doc;
    tx_delta pend;  /* counter deltas not yet written (flushed before reads) */
    tx_ppend pp;    /* postings not yet written (postings.c) */
    pb_block blk, blk2; /* scratch of postings.c */
    pb_span span;       /* scratch of postings.c and docs.c */
    dr_cache dc;        /* docs.c */
    tx_bag bag;     /* scratch: a document's or a query's terms */
    uint8_t *buf;   /* scratch: records, keys */
    size_t bufcap;
    uint8_t *out;   /* what queries return (ids) */
    size_t outcap;
};

/* Records the message and returns @rc. */
int tx_err(const sop_text *t, int rc, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* Fails the transaction with SOP_ECORRUPT and the message @what. */
int tx_corrupt(sop_text *t, const char *what);
/* Byte order of ids and terms: memcmp, then the shorter first. */
static inline int tx_id_cmp(const uint8_t *a, size_t al, const uint8_t *b, size_t bl)
{
    int c = memcmp(a, b, al < bl ? al : bl);
    return c ? c : (al > bl) - (al < bl);
}
/* Room for @n bytes in t->buf / t->out. */
int tx_buf(sop_text *t, size_t n);
int tx_out(sop_text *t, size_t n);
/* Writes the pending counter deltas (before any read of the statistics,
 * and at commit). */
int tx_flush(sop_text *t);
/* Flushes the handles of index @name in @txn (a WRITE transaction):
 * what they buffered reaches the stores, as before a query. */
int tx_flush_txn(sop_txn *txn, const char *name);
/* The corpus counters: documents and total length. */
int tx_corpus(sop_text *t, uint64_t *docs, uint64_t *len);
/* The document frequency of a stored term. */
int tx_df(sop_text *t, const char *term, size_t len, uint64_t *df);
/* Checks @t for a write (WRITE transaction). */
int tx_check_write(sop_text *t);

/* Analyzes @doc into t->bag (plain and field-qualified terms; bag.tokens
 * is the document's length). -EINVAL/SOP_ETOOBIG for bad documents. */
int tx_analyze_doc(sop_text *t, const sop_text_doc *doc);
/* Analyzes a query into t->bag (terms with their counts in the query). */
int tx_analyze_query(sop_text *t, const char *q, size_t len);

/* check.c, for sop_kb_check(): compares document @d (its text, as a
 * knowledge base keeps it) with what the index holds for its id: its
 * length, its terms and each term's frequency, recomputed from the text.
 * Each difference goes to @fn (NULL: none) and is counted in *problems.
 * 0, SOP_ENOTFOUND (no document has that id), or an error. Run it on an
 * index sop_text_check() found clean (a damaged one may fail the
 * transaction). */
int tx_check_doc(sop_text *t, const sop_text_doc *d, void (*fn)(const char *msg, void *ctx),
                 void *ctx, uint64_t *problems);
/* Calls @fn with the id of every document record (singles and blocks;
 * what does not decode is skipped); a non-zero return stops and is
 * returned. */
int tx_doc_ids(sop_text *t, int (*fn)(const uint8_t *id, size_t len, void *ctx), void *ctx);

/* BM25 top-k (query.c); ids point into t->out. */
int tx_search(sop_text *t, const sop_text_query *q, sop_text_hit *hits, uint32_t *nhits);

/* Raw deflate (level 1) of in[0..len) into out[0..cap) (deflate.c): 0
 * and *outlen, 1 when it does not fit (store the bytes as they are),
 * -ENOMEM. *state is allocated on first use; free it with sop__free. */
int tx_deflate(void **state, const uint8_t *in, size_t len, uint8_t *out, size_t cap,
               size_t *outlen);
/* Inflates in[0..len) into exactly @outlen bytes at @out; *state as for
 * tx_deflate. -1 when the input is not that, -ENOMEM. */
int tx_inflate(void **state, const uint8_t *in, size_t len, uint8_t *out, size_t outlen);

/* Varints (LEB128). */
static inline size_t tx_put_varint(uint8_t *p, uint64_t v)
{
    size_t n = 0;
    while (v >= 0x80) {
        p[n++] = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    p[n++] = (uint8_t)v;
    return n;
}

/* Reads a varint from p[*off..end); -1 when truncated or too long. */
static inline int tx_get_varint(const uint8_t *p, size_t end, size_t *off, uint64_t *v)
{
    uint64_t x = 0;
    for (unsigned shift = 0; shift < 64 && *off < end; shift += 7) {
        uint8_t c = p[(*off)++];
        x |= (uint64_t)(c & 0x7f) << shift;
        if (!(c & 0x80)) {
            *v = x;
            return 0;
        }
    }
    return -1;
}

/* Ids in blocks (of postings and of records), prefix-compressed: a byte
 * shared << 4 | suffix length when both are under 15, else 0xff and the
 * two as varints; then the suffix. shared counts the bytes in common with
 * the previous id of the block (@prev NULL: none). Room: 21 + idlen. */
static inline size_t tx_put_id(uint8_t *out, const uint8_t *prev, size_t prevlen,
                               const uint8_t *id, size_t idlen)
{
    size_t shared = 0, n = 0;
    while (prev && shared < idlen && shared < prevlen && id[shared] == prev[shared])
        shared++;
    if (shared < 15 && idlen - shared < 15) {
        out[n++] = (uint8_t)(shared << 4 | (idlen - shared));
    } else {
        out[n++] = 0xff;
        n += tx_put_varint(out + n, shared);
        n += tx_put_varint(out + n, idlen - shared);
    }
    memcpy(out + n, id + shared, idlen - shared);
    return n + idlen - shared;
}

/* Reads an id from p[*off..end) into id[] (SOP_TEXT_ID_MAX bytes), which
 * holds the previous one (*idlen bytes, 0 for the first); -1 when
 * malformed. */
static inline int tx_get_id(const uint8_t *p, size_t end, size_t *off, uint8_t *id, size_t *idlen)
{
    uint64_t shared, sl;
    if (*off >= end)
        return -1;
    uint8_t h = p[(*off)++];
    if (h != 0xff) {
        shared = h >> 4;
        sl = h & 15;
    } else if (tx_get_varint(p, end, off, &shared) || tx_get_varint(p, end, off, &sl)) {
        return -1;
    }
    if (shared > *idlen || shared + sl == 0 || shared + sl > SOP_TEXT_ID_MAX || sl > end - *off)
        return -1;
    memcpy(id + shared, p + *off, sl);
    *off += sl;
    *idlen = shared + sl;
    return 0;
}

#endif
