/*
 * search.h - SOP for C, text layer: transactional BM25 text indexes on the
 * core engine's B-trees, and hybrid search with a vector store.
 *
 * A text index maps documents (an id, a text, optional named fields) to
 * their terms and answers ranked queries with BM25. It lives in the same
 * database as the key-value and vector stores and is read and written in
 * the same transactions: one transaction may write a KV store, a vector
 * store and a text index and commit or roll back as one. Visibility and
 * isolation are those of the transaction (see sop.h).
 *
 * Concurrency: writers adding or deleting different documents in
 * concurrent transactions do not conflict, although they all change the
 * corpus statistics and the document frequencies of the terms they share:
 * those are commutative counters (sop_incr()), applied at commit on top of
 * whatever other transactions committed meanwhile. The statistics stay
 * exact. The layout is in docs/design/search.md.
 *
 * Text: UTF-8. A byte that does not start a valid UTF-8 sequence is a
 * separator (invalid input never fails). Terms are runs of letters and
 * digits, case-folded (ASCII and Latin-1, diacritics of Latin-1 letters
 * removed), without the 33 English stop words of Lucene, stemmed with
 * Porter's algorithm, cut at 64 bytes; numbers are kept. Each of the
 * three steps can be turned off when the index is created.
 *
 * Scoring: BM25 with k1 and b (default 1.2 and 0.75) and the IDF of SQLite
 * FTS5, ln((N - n + 0.5) / (n + 0.5)) floored at 1e-6, where N is the
 * number of documents and n the number of documents holding the term. A
 * term that appears q times in the query counts q times (as in FTS5).
 * Queries are OR queries: a document matches when it holds any term.
 * A query word written "name:word" matches @c word only in the field
 * @c name of the documents.
 *
 * Caveats:
 *  - A sop_text handle belongs to the transaction it was opened in: valid
 *    until that transaction ends, used by one thread at a time. Do not
 *    free it.
 *  - Ids returned by queries point into the handle's memory: valid until
 *    the next call on the same handle or the end of the transaction.
 *  - The index's own B-trees are named "<name>.txt.*": do not write them
 *    through the KV API.
 *  - Writes need a SOP_TXN_WRITE transaction (-EINVAL in NOCHECK, whose
 *    reads are not validated). Queries work in every mode.
 *
 * Errors: as in sop.h (sop_strerror(), sop_db_errmsg() for the message).
 * Besides the codes listed per function, every call can return the common
 * errors of the transaction: SOP_ETXNDONE, SOP_ETIMEDOUT, SOP_ECORRUPT,
 * SOP_EPANIC, -EIO, -ENOMEM.
 */
#ifndef SOP_SEARCH_H
#define SOP_SEARCH_H

#include "sop/sop.h"
#include "sop/vector.h"

#ifdef __cplusplus
extern "C" {
#endif

/** A text index opened in a transaction. */
typedef struct sop_text sop_text;

/** Longest index name, in bytes (names follow the rule of store names). */
#define SOP_TEXT_NAME_MAX 150u
/** Largest document id, in bytes (ids are byte strings of 1..this). */
#define SOP_TEXT_ID_MAX 256u
/** Largest document: the bytes of its text and all its fields together. */
#define SOP_TEXT_DOC_MAX (16u * 1024u * 1024u)
/** Most named fields of a document. */
#define SOP_TEXT_FIELDS_MAX 64u
/** Longest field name: 1..32 bytes of [a-z0-9_]. */
#define SOP_TEXT_FIELD_NAME_MAX 32u
/** Most results of one query. */
#define SOP_TEXT_K_MAX 10000u

/** Options of sop_text_create(). Initialise with sop_text_options_init().
 *  They are recorded in the index and used by every later writer and
 *  query. */
typedef struct sop_text_options {
    uint32_t struct_size; /**< sizeof(sop_text_options), set by init */
    int stem;             /**< 1 (default): Porter stemming; 0: off */
    int stopwords;        /**< 1 (default): drop English stop words */
    int fold;             /**< 1 (default): case and diacritics folding */
    uint32_t node_bytes;  /**< node size of the postings B-tree, 2048..65536
                               (0: the default, 16384); -EINVAL outside */
} sop_text_options;

/** @brief Fills @p o with the defaults. */
SOP_API void sop_text_options_init(sop_text_options *o);

/** @brief Creates text index @p name in @p txn (rolled back with it).
 *  @param opts NULL for defaults
 *  @param[out] tp handle valid until @p txn ends
 *  @return SOP_OK; SOP_EEXISTS; SOP_ENAME; -EINVAL (bad options, NULL
 *          arguments, NOCHECK transaction); SOP_EREADONLY; common errors. */
SOP_API int sop_text_create(sop_txn *txn, const char *name, const sop_text_options *opts,
                            sop_text **tp);

/** @brief Opens existing text index @p name in @p txn.
 *  @param[out] tp handle valid until @p txn ends
 *  @return SOP_OK; SOP_ENOTFOUND (no text index of that name); SOP_ENAME;
 *          SOP_EVERSION (made by a newer version of the library); common
 *          errors. */
SOP_API int sop_text_open(sop_txn *txn, const char *name, sop_text **tp);

/** @brief Removes text index @p name and all its documents in @p txn.
 *  Handles of it opened in @p txn must not be used afterwards.
 *  @return SOP_OK; SOP_ENOTFOUND; SOP_ENAME; SOP_EREADONLY; -EINVAL
 *          (NOCHECK transaction); common errors. */
SOP_API int sop_text_remove(sop_txn *txn, const char *name);

/** A named field of a document: indexed like the text, and also under
 *  "name:word" so that a query can address the field alone. */
typedef struct sop_text_field {
    const char *name; /**< 1..SOP_TEXT_FIELD_NAME_MAX bytes of [a-z0-9_], NUL-terminated */
    const char *text; /**< UTF-8 (may be NULL when len is 0) */
    size_t len;
} sop_text_field;

/** A document to write. */
typedef struct sop_text_doc {
    const void *id; /**< 1..SOP_TEXT_ID_MAX bytes */
    size_t id_len;
    const char *text; /**< UTF-8 (may be NULL when text_len is 0) */
    size_t text_len;
    const sop_text_field *fields; /**< NULL, or nfields fields */
    size_t nfields;               /**< 0..SOP_TEXT_FIELDS_MAX, names distinct */
} sop_text_doc;

/** @brief Adds document @p doc. Its length is the number of terms of its
 *  text and fields; a document whose text holds no term (only stop words
 *  or punctuation, say) is indexed with length 0 and matches no query.
 *  @return SOP_OK; SOP_EEXISTS (a document has that id: nothing changes;
 *          use sop_text_replace()); SOP_ETOOBIG (text and fields over
 *          SOP_TEXT_DOC_MAX bytes); -EINVAL (NULL arguments, empty or
 *          overlong id, empty document: no byte of text in the text and
 *          the fields, bad or repeated field name, too many fields, NOCHECK
 *          transaction); SOP_EREADONLY; common errors. Nothing is written
 *          when it fails. */
SOP_API int sop_text_add(sop_text *t, const sop_text_doc *doc);

/** @brief Replaces the document with the id of @p doc: afterwards the
 *  index and its statistics are exactly as if the old one had never been
 *  added.
 *  @return as sop_text_add(), with SOP_ENOTFOUND (no document has that id)
 *          instead of SOP_EEXISTS. */
SOP_API int sop_text_replace(sop_text *t, const sop_text_doc *doc);

/** @brief Adds @p doc, or replaces the document with its id.
 *  @return as sop_text_add() without SOP_EEXISTS. */
SOP_API int sop_text_upsert(sop_text *t, const sop_text_doc *doc);

/** @brief Deletes the document with id @p id: its postings, and its share
 *  of every statistic.
 *  @return SOP_OK; SOP_ENOTFOUND; -EINVAL (NULL, empty or overlong id,
 *          NOCHECK transaction); SOP_EREADONLY; common errors. */
SOP_API int sop_text_delete(sop_text *t, const void *id, size_t id_len);

/** @brief The length (in terms) of document @p id.
 *  @return SOP_OK; SOP_ENOTFOUND; -EINVAL; common errors. */
SOP_API int sop_text_doc_len(sop_text *t, const void *id, size_t id_len, uint32_t *len);

/** Figures of sop_text_stats(). */
typedef struct sop_text_stat {
    uint64_t docs;      /**< N: documents */
    uint64_t total_len; /**< sum of the documents' lengths */
    uint64_t terms;     /**< distinct terms (field-qualified ones included) */
    double avgdl;       /**< total_len / docs (0 when empty) */
} sop_text_stat;

/** @brief Reads the index's statistics (counting the terms reads every key
 *  of the term tree).
 *  @return SOP_OK; -EINVAL; common errors. */
SOP_API int sop_text_stats(sop_text *t, sop_text_stat *st);

/** @brief The number of documents holding the term that @p word becomes
 *  under the index's tokenizer ("Running" -> "run"; "title:Running" ->
 *  the term in field title).
 *  @return SOP_OK (*df may be 0); -EINVAL (NULL, or @p word yields no term
 *          or more than one); common errors. */
SOP_API int sop_text_df(sop_text *t, const char *word, size_t len, uint64_t *df);

/** @brief Checks text index @p name: recomputes from its document
 *  records (each document's length and distinct terms) the postings (term
 *  to documents), the document frequency of every term, the number of
 *  documents and the sum of their lengths, and compares them with what
 *  the index stores: every missing or extra posting (single or in a
 *  block), a posting whose document length is not its document's, term
 *  frequencies of a document's plain terms that do not sum to its length
 *  (the records keep no text: frequencies are checked against the length;
 *  sop_kb_check() also recomputes them from a knowledge base's texts), a
 *  document frequency or corpus counter that is off, a document with two
 *  records or two postings of one term; and the structure: keys, records,
 *  postings and blocks that do not decode, blocks that overlap or do not
 *  start at their key's id, unknown config keys. Each problem is reported
 *  through @p fn (one line, starting "text index NAME: "). Runs in @p txn
 *  (any mode) and sees what it sees; in a WRITE transaction, what handles
 *  of the index buffered is written first (as before a query). Reads the
 *  index twice (more where it finds differences); memory grows with the
 *  distinct terms and the documents, not with the postings.
 *  @param fn NULL, or receives each problem (valid during the call)
 *  @param[out] problems the number of problems found (may be NULL)
 *  @return SOP_OK (clean); SOP_ECORRUPT (problems were found, also when
 *          the index does not open because of them); SOP_ENOTFOUND (no
 *          text index of that name); SOP_ENAME; SOP_EVERSION; -EINVAL
 *          (NULL @p txn or @p name); common errors (an I/O error ends the
 *          check: *problems then counts those found before it).
 *  Thread safety: that of @p txn. */
SOP_API int sop_text_check(sop_txn *txn, const char *name, sop_check_fn fn, void *ctx,
                           uint64_t *problems);

/** A query. Initialise with sop_text_query_init(). */
typedef struct sop_text_query {
    uint32_t struct_size; /**< sizeof(sop_text_query), set by init */
    const char *text;     /**< UTF-8 query (OR of its terms) */
    size_t len;
    uint32_t k;           /**< results wanted, 1..SOP_TEXT_K_MAX (default 10) */
    double k1;            /**< BM25 k1 >= 0 (default 1.2) */
    double b;             /**< BM25 b in [0, 1] (default 0.75) */
} sop_text_query;

/** @brief Fills @p q with the defaults. */
SOP_API void sop_text_query_init(sop_text_query *q);

/** A result. @c id points into handle memory. */
typedef struct sop_text_hit {
    sop_val id;
    double score; /**< BM25, higher is better */
} sop_text_hit;

/** @brief Finds the k documents with the highest BM25 score for q->text,
 *  best first; equal scores in id order. Documents that match no term are
 *  never returned, so there may be fewer than k results (none for a query
 *  without terms).
 *  @param hits room for q->k results
 *  @param[out] nhits results written
 *  @return SOP_OK; -EINVAL (NULL arguments, k 0 or above SOP_TEXT_K_MAX,
 *          k1 < 0, b outside [0, 1], query over SOP_TEXT_DOC_MAX bytes);
 *          common errors. */
SOP_API int sop_text_search(sop_text *t, const sop_text_query *q, sop_text_hit *hits,
                            uint32_t *nhits);

/** A hybrid query: BM25 on a text index and similarity on a vector store,
 *  fused by reciprocal rank fusion. Initialise with sop_hybrid_query_init(). */
typedef struct sop_hybrid_query {
    uint32_t struct_size; /**< sizeof(sop_hybrid_query), set by init */
    const char *text;     /**< the text query (NULL or len 0: vector only) */
    size_t len;
    const float *vec;     /**< the query vector (NULL: text only) */
    uint32_t dims;
    uint32_t k;           /**< results wanted, 1..SOP_TEXT_K_MAX (default 10) */
    /** results taken from each list before fusing, k..SOP_TEXT_K_MAX
     *  (0, the default: max(k, 50)) */
    uint32_t depth;
    double rrf_k;         /**< the RRF constant > 0 (default 60) */
    double text_weight;   /**< >= 0 (default 1) */
    double vec_weight;    /**< >= 0 (default 1) */
    double k1, b;         /**< BM25 parameters (default 1.2, 0.75) */
    uint32_t nprobe;      /**< vector probes (0: the store's default) */
} sop_hybrid_query;

/** @brief Fills @p q with the defaults. */
SOP_API void sop_hybrid_query_init(sop_hybrid_query *q);

/** A hybrid result. @c id points into the text handle's memory. */
typedef struct sop_hybrid_hit {
    sop_val id;
    double score;       /**< sum over the lists of weight / (rrf_k + rank) */
    uint32_t text_rank; /**< 1-based rank in the BM25 list, 0 if absent */
    uint32_t vec_rank;  /**< 1-based rank in the vector list, 0 if absent */
} sop_hybrid_hit;

/** @brief Runs q->text on @p t and q->vec on @p vs (each list depth long)
 *  and fuses them: a document at rank r of a list gains weight / (rrf_k +
 *  r). Ids are matched byte for byte, so index documents under the ids of
 *  their vectors. Best first; equal scores in id order. @p t and @p vs
 *  must belong to the same transaction.
 *  @param vs NULL when q->vec is NULL
 *  @param hits room for q->k results
 *  @return SOP_OK; -EINVAL (bad parameters, handles of two transactions,
 *          neither a text nor a vector); SOP_EDIM; SOP_EVECTOR; common
 *          errors. */
SOP_API int sop_text_hybrid(sop_text *t, sop_vstore *vs, const sop_hybrid_query *q,
                            sop_hybrid_hit *hits, uint32_t *nhits);

#ifdef __cplusplus
}
#endif
#endif /* SOP_SEARCH_H */
