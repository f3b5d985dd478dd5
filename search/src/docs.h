/* docs.h - document records: what each document added, so that a replace
 * or a delete takes back exactly that.
 *
 * A record (write.c) is varint length, varint n, n x (varint length,
 * term): the document's length and distinct terms. Records live in the
 * store N.txt.doc in two forms, like postings (postings.h):
 *   0x00 id        -> the record                         (single)
 *   0x01 first_id  -> a block of records, from first_id on (block)
 * Blocks never overlap; a document's record is in exactly one form. A
 * small transaction writes singles (plain inserts that concurrent writers
 * merge); a bulk flush (PB_BULK_DOCS documents or more) merges its records
 * into the blocks: a few thousand compressed items instead of one per
 * document.
 *
 * Block value: a byte, the method (0: stored, 1: raw deflate, isa-l level
 * 1), varint raw length, varint n, then the raw bytes (deflated for method
 * 1): n entries in id order, each the id as in postings blocks (a byte
 * shared << 4 | suffix length, or 0xff and two varints; the suffix), varint
 * record length, the record. */
#ifndef SOP_SEARCH_DOCS_H
#define SOP_SEARCH_DOCS_H
#include "textidx.h"

#define DR_SINGLE 0x00
#define DR_BLOCK 0x01

/* A record to write. */
typedef struct dr_rec {
    const uint8_t *id;
    size_t idlen;
    const uint8_t *rec;
    size_t reclen;
} dr_rec;

/* Copies the record of @id into t->out (*len bytes). SOP_ENOTFOUND. */
int dr_get(sop_text *t, const void *id, size_t idlen, size_t *len);
/* Removes the record of @id. SOP_ENOTFOUND. */
int dr_remove(sop_text *t, const void *id, size_t idlen);
/* Writes the records r[0..n) of new documents, in id order: singles or
 * blocks (see above). */
int dr_write(sop_text *t, const dr_rec *r, size_t n);
void dr_cache_free(dr_cache *dc);
/* Decodes block value @v into @dc (its raw entries, dc->n of them): 0,
 * -1 when malformed or it does not inflate, -ENOMEM. */
int dr_block_decode(dr_cache *dc, const sop_val *v);
/* Reads the entry at raw[*off..len): its id into id[] (SOP_TEXT_ID_MAX
 * bytes, holding the previous id: *idlen bytes, 0 for the first) and its
 * record (pointing into @raw). -1 when malformed. */
int dr_entry_next(const uint8_t *raw, size_t len, size_t *off, uint8_t *id, size_t *idlen,
                  const uint8_t **rec, size_t *reclen);

#endif
