/* postings.h - how postings are kept, written and read.
 *
 * A term's postings live in two key ranges of the postings store:
 *   term 0x00 id        -> varint tf, varint dl           (single postings)
 *   term 0x01 first_id  -> a block of up to PB_MAX postings (block postings)
 * Blocks of a term never overlap one another; single postings may fall
 * inside a block's id range. A document's posting for a term is in exactly
 * one of the two. Small transactions write singles: plain inserts of
 * distinct keys, which concurrent writers merge without conflict. Every
 * transaction buffers its postings; a flush of PB_BULK_DOCS documents or
 * more writes them into blocks, in key order (few, compact items: the bulk
 * path), a smaller one as singles.
 * Readers merge the two ranges of a term in id order. */
#ifndef SOP_SEARCH_POSTINGS_H
#define SOP_SEARCH_POSTINGS_H
#include "btree.h"
#include "textidx.h"

#define PB_SINGLE 0x00
#define PB_BLOCK 0x01
#define PB_MAX 128        /* postings per block */
#define PB_BYTES 2048     /* encoded bytes per block (soft) */
#define PB_BULK_DOCS 32   /* documents buffered at flush from which blocks are written */
#define PB_BUFFER_BYTES (128u << 20) /* buffer (8 bytes a posting, plus records) flushed past this */

/* Buffers the postings of t->bag for document @id, and its record @rec,
 * for pb_flush: records are written in id order (docs.h), postings in
 * (term, id) order. The caller checked that @id is in neither the buffer
 * nor the index. */
int pb_buffer(sop_text *t, const void *id, size_t idlen, const uint8_t *rec, size_t reclen);
/* 1 when document @id is in the buffer. */
int pb_buffered(const sop_text *t, const void *id, size_t idlen);
/* Writes the buffered postings (singles or blocks, see above). */
int pb_flush(sop_text *t);
/* Removes document @id's posting for @term (single or in a block). */
int pb_remove(sop_text *t, const char *term, size_t tlen, const void *id, size_t idlen);

void pb_block_free(pb_block *b);
/* Decodes a block value into @b: 0, -1 when malformed, -ENOMEM. The ids
 * are not checked to be in order. */
int pb_block_decode(pb_block *b, const uint8_t *v, size_t len);
/* The id of posting @i of a decoded block, and its length. */
#define PB_ID(b, i) ((b)->ids + (b)->off[i])
#define PB_IDLEN(b, i) ((size_t)((b)->off[(i) + 1] - (b)->off[i]))

/* Finds, in store @s, the block that starts at or before @key (kl bytes:
 * a prefix of @plen bytes, PB_BLOCK, an id) and the first id of the block
 * after it (both of the same prefix). @fresh: the store is empty (no
 * lookup). sp->val is valid until the next write. */
int pb_span_find(sop_store *s, const uint8_t *key, size_t kl, size_t plen, int fresh, pb_span *sp);

/* One range (singles or blocks) of a term, read in id order. */
typedef struct pb_sub {
    sop__bcur c;
    int blocks; /* 1: the block range */
    int done;
    pb_block blk; /* blocks: the current block */
    uint32_t pos;
    const uint8_t *id;
    size_t idlen;
    uint32_t tf, dl;
} pb_sub;

/* A term's postings, both ranges merged. */
typedef struct pb_iter {
    sop_text *t;
    uint8_t key[TX_PKEY_MAX]; /* term, kind byte, then an id sought */
    size_t tlen;
    pb_sub s[2];
    int done;
    const uint8_t *id; /* current posting (valid until the next move) */
    size_t idlen;
    uint32_t tf, dl;
    unsigned steps; /* for the transaction checks */
} pb_iter;

/* Positions on the term's first posting. */
int pb_iter_open(pb_iter *it, sop_text *t, const char *term, size_t tlen);
int pb_iter_next(pb_iter *it);
/* Moves to the first posting with id >= @id. */
int pb_iter_seek(pb_iter *it, const uint8_t *id, size_t idlen);
void pb_iter_close(pb_iter *it);

#endif
