/*
 * vector.h - SOP for C, vector layer: transactional IVF vector stores on the
 * core engine's B-trees.
 *
 * A vector store is a set of items (id, vector, payload) searched by
 * similarity. It lives in the same database as the key-value stores and is
 * read and written inside the same transactions: one transaction may write
 * a KV store, a vector store and a text index and commit or roll back as
 * one. Visibility and isolation are those of the transaction (see sop.h).
 *
 * Index: IVF. k-means centroids partition the vectors into nlist clusters;
 * a query ranks the centroids and scans the nprobe nearest clusters. Each
 * vector is stored under the key (cluster, distance to its centroid, id),
 * so a scan visits a cluster outwards from the query's own distance to the
 * centroid and stops where the triangle inequality proves that no closer
 * item remains. Before the first training every vector sits in one flat
 * cluster, which queries scan exhaustively; training happens by itself once
 * the store holds enough vectors (see sop_vstore_options.train_at) and
 * again, in the background of other work, with sop_vstore_optimize().
 * The layout is in docs/design/vector.md.
 *
 * Caveats:
 *  - A sop_vstore handle belongs to the transaction it was opened in: it is
 *    valid until that transaction ends, and like the transaction it must be
 *    used by one thread at a time. Do not free it.
 *  - Ids and payloads returned by reads point into the handle's memory:
 *    valid until the next call on the same handle or the end of the
 *    transaction, whichever comes first.
 *  - Vectors are float32 in host order. Under SOP_METRIC_COSINE they are
 *    normalised at ingest and returned normalised by sop_vstore_get().
 *  - The store's own B-trees are named "<name>.vec.*": do not write them
 *    through the KV API.
 *  - Writes need a SOP_TXN_WRITE transaction (-EINVAL in NOCHECK, whose
 *    reads are not validated: a write depends on the index versions it
 *    read). Queries work in every mode.
 *
 * Errors: as in sop.h (sop_strerror(), sop_db_errmsg() for the message).
 * Besides the codes listed per function, every call can return the common
 * errors of the transaction: SOP_ETXNDONE, SOP_ETIMEDOUT, SOP_ECORRUPT,
 * SOP_EPANIC, -EIO, -ENOMEM.
 */
#ifndef SOP_VECTOR_H
#define SOP_VECTOR_H

#include "sop/sop.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct sop_vstore sop_vstore;

/** Similarity of a store, fixed at creation. Scores returned by queries:
 *  cosine similarity (higher is closer), inner product (higher is closer),
 *  Euclidean distance (lower is closer). */
typedef enum sop_metric {
    SOP_METRIC_COSINE = 1, /**< vectors normalised at ingest; a zero vector is refused */
    SOP_METRIC_IP = 2,     /**< inner product of the vectors as given */
    SOP_METRIC_L2 = 3      /**< Euclidean distance */
} sop_metric;

/** Largest number of dimensions of a store. */
#define SOP_VECTOR_DIMS_MAX 8192u
/** Largest id, in bytes (ids are byte strings of 1..SOP_VECTOR_ID_MAX). */
#define SOP_VECTOR_ID_MAX 256u
/** Largest payload, in bytes. */
#define SOP_VECTOR_PAYLOAD_MAX (16u * 1024u * 1024u)
/** Largest k of a query. */
#define SOP_VECTOR_K_MAX 10000u
/** Largest nlist. */
#define SOP_VECTOR_NLIST_MAX 65536u

/** Options of sop_vstore_create(). Initialise with sop_vstore_options_init(). */
typedef struct sop_vstore_options {
    uint32_t struct_size; /**< sizeof(sop_vstore_options), set by init */
    uint32_t dims;        /**< dimensions, 1..SOP_VECTOR_DIMS_MAX (required) */
    sop_metric metric;    /**< SOP_METRIC_COSINE (default) */
    /** identity of the embedder that makes the vectors, e.g.
     *  "ollama/nomic-embed-text" (copied; NULL or "": none yet, recorded
     *  later by sop_vstore_bind_embedder()) */
    const char *embedder;
    /** clusters of the first training: 0 (default) chooses from the number
     *  of vectors then, by the rule of sop_vector_nlist_for(); else
     *  1..SOP_VECTOR_NLIST_MAX */
    uint32_t nlist;
    /** vectors at which the first training happens by itself, inside the
     *  upsert that reaches it: 0 (default) means max(10,000, 40 x nlist)
     *  with a given nlist, 10,000 otherwise; UINT32_MAX never (train with
     *  sop_vstore_optimize()) */
    uint32_t train_at;
    uint64_t seed; /**< seed of training and sampling (default 42): same data, same seed, same index */
    /** node size of the index trees, 4096..65536 (0: 65536). Large nodes
     *  make queries fast (a cluster spans few leaves, contiguous in
     *  memory); small ones make single writes cheaper (a durable upsert
     *  logs its whole leaf) and conflict less with concurrent writers */
    uint32_t node_bytes;
} sop_vstore_options;

/** @brief Fills @p o with the defaults (dims 0: must be set). */
SOP_API void sop_vstore_options_init(sop_vstore_options *o);

/** @brief The nlist chosen for @p n vectors when none is given: the power
 *  of two nearest to 2 x sqrt(n), at least 1 and at most 65,536
 *  (n = 10,000: 256; n = 340,000: 1,024; n = 1,000,000: 2,048). */
SOP_API uint32_t sop_vector_nlist_for(uint64_t n);

/** @brief Creates vector store @p name in @p txn (rolled back with it).
 *  @param name 1..150 bytes of [A-Za-z0-9_.-], not starting with '.'
 *  @param[out] vsp handle valid until @p txn ends
 *  @return SOP_OK; SOP_EEXISTS; SOP_ENAME; -EINVAL (dims 0 or too large,
 *          unknown metric, nlist too large, node_bytes out of range,
 *          embedder longer than 255 bytes); SOP_EREADONLY; common errors. */
SOP_API int sop_vstore_create(sop_txn *txn, const char *name, const sop_vstore_options *opts,
                              sop_vstore **vsp);

/** @brief Opens vector store @p name in @p txn.
 *  @return SOP_OK; SOP_ENOTFOUND (no vector store of that name); SOP_ENAME;
 *          SOP_EVERSION (made by a newer version of the library); common
 *          errors. */
SOP_API int sop_vstore_open(sop_txn *txn, const char *name, sop_vstore **vsp);

/** @brief Removes vector store @p name and everything in it, in @p txn.
 *  @return SOP_OK; SOP_ENOTFOUND; SOP_ENAME; SOP_EREADONLY; common errors. */
SOP_API int sop_vstore_remove(sop_txn *txn, const char *name);

/** @brief Records the embedder identity (name and dimensions) when none is
 *  recorded yet; checks it otherwise. Call it with the embedder that made
 *  the vectors you are about to write or query with.
 *  @return SOP_OK (recorded, or the same); SOP_EMISMATCH (another name, or
 *          @p dims is not the store's; the message names both); -EINVAL
 *          (empty or overlong name); SOP_EREADONLY (recording in a READ
 *          transaction); common errors. */
SOP_API int sop_vstore_bind_embedder(sop_vstore *vs, const char *name, uint32_t dims);

/** One item to write. */
typedef struct sop_vitem {
    const void *id;      /**< 1..SOP_VECTOR_ID_MAX bytes */
    size_t id_len;
    const float *vec;    /**< @c dims floats, finite */
    uint32_t dims;       /**< length of @c vec: must be the store's */
    const void *payload; /**< any bytes (JSON by convention), or NULL */
    size_t payload_len;  /**< 0..SOP_VECTOR_PAYLOAD_MAX */
} sop_vitem;

/** @brief Adds the item, or replaces the vector and payload of the item
 *  with that id. May run the first training (see train_at) inside @p vs's
 *  transaction.
 *  @return SOP_OK; SOP_EDIM (item dims is not the store's); SOP_EVECTOR
 *          (NaN or infinite component; zero vector under cosine); -EINVAL
 *          (NULL arguments, empty or overlong id, NOCHECK transaction);
 *          SOP_ETOOBIG (payload);
 *          SOP_EREADONLY; common errors. Nothing is written when it
 *          fails. */
SOP_API int sop_vstore_upsert(sop_vstore *vs, const sop_vitem *item);

/** @brief Upserts @p n items: the same as one sop_vstore_upsert() each, in
 *  order, but faster (one pass over the centroids with BLAS, writes in key
 *  order). An id that repeats keeps its last item.
 *  @return as sop_vstore_upsert(); on failure the transaction must be
 *          rolled back (items before the failing one may be written). */
SOP_API int sop_vstore_upsert_batch(sop_vstore *vs, const sop_vitem *items, size_t n);

/** @brief Reads an item.
 *  @param vec NULL, or room for dims floats (the stored vector)
 *  @param payload NULL, or receives the payload (handle memory)
 *  @return SOP_OK; SOP_ENOTFOUND; -EINVAL; common errors. */
SOP_API int sop_vstore_get(sop_vstore *vs, const void *id, size_t id_len, float *vec,
                           sop_val *payload);

/** @brief Deletes an item.
 *  @return SOP_OK; SOP_ENOTFOUND; -EINVAL (also in a NOCHECK transaction);
 *          SOP_EREADONLY; common errors. */
SOP_API int sop_vstore_delete(sop_vstore *vs, const void *id, size_t id_len);

/** @brief Number of items (deleted ones are not counted).
 *  @return SOP_OK; common errors. */
SOP_API int sop_vstore_count(sop_vstore *vs, uint64_t *count);

/** Filter of a query: returns 1 to keep the item, 0 to skip it, a negative
 *  code to stop the query with that code. Called with the item's id and
 *  payload (valid during the call), only for items that would enter the
 *  current top k. */
typedef int (*sop_vfilter_fn)(const sop_val *id, const sop_val *payload, void *ctx);

/** A query. Initialise with sop_vquery_init(). */
typedef struct sop_vquery {
    uint32_t struct_size; /**< sizeof(sop_vquery), set by init */
    const float *vec;     /**< @c dims floats, finite (non-zero under cosine) */
    uint32_t dims;        /**< length of @c vec: must be the store's */
    uint32_t k;           /**< results wanted, 1..SOP_VECTOR_K_MAX (default 10) */
    /** clusters scanned: 0 (default) = max(1, nlist / 32); values above
     *  nlist are clamped to nlist (exhaustive) */
    uint32_t nprobe;
    /** NULL, or a filter: the probe widens, cluster after cluster, until k
     *  items pass or every cluster has been scanned */
    sop_vfilter_fn filter;
    void *filter_ctx;
    int with_payload; /**< 1: fill sop_vhit.payload */
} sop_vquery;

/** @brief Fills @p q with the defaults. */
SOP_API void sop_vquery_init(sop_vquery *q);

/** A result of a query. id and payload point into handle memory. */
typedef struct sop_vhit {
    sop_val id;
    sop_val payload; /**< {NULL, 0} unless with_payload */
    float score;     /**< see sop_metric */
} sop_vhit;

/** @brief Finds the k items closest to q->vec, best first.
 *  @param hits room for q->k results
 *  @param[out] nhits results written (fewer than k only when the store, or
 *         the items passing the filter, are fewer)
 *  @return SOP_OK; SOP_EDIM; SOP_EVECTOR (NaN, infinite or zero query); -EINVAL (k
 *          0 or above SOP_VECTOR_K_MAX, NULL arguments); what the filter
 *          returned when negative; common errors. */
SOP_API int sop_vstore_query(sop_vstore *vs, const sop_vquery *q, sop_vhit *hits, uint32_t *nhits);

/** State of a vector store. */
typedef struct sop_vstore_stat {
    uint32_t dims;
    sop_metric metric;
    char embedder[256];  /**< "" when none is recorded */
    uint32_t version;    /**< index version: 0 untrained, +1 per training */
    int trained;         /**< 0: one flat cluster */
    int optimizing;      /**< 1: a next version is being built */
    uint32_t nlist;      /**< clusters of the active version (1 when untrained) */
    uint64_t count;      /**< items */
    uint64_t min_cluster, max_cluster; /**< sizes of the smallest and largest cluster */
} sop_vstore_stat;

/** @brief Reads the state of @p vs; with @p sizes, also the size of each
 *  cluster (up to @p cap of them, in cluster order). Counting the clusters
 *  reads every key of the index (keys only).
 *  @return SOP_OK; common errors. */
SOP_API int sop_vstore_stats(sop_vstore *vs, sop_vstore_stat *st, uint64_t *sizes, uint32_t cap);

/** Options of sop_vstore_optimize(). Initialise with sop_voptimize_options_init(). */
typedef struct sop_voptimize_options {
    uint32_t struct_size;
    uint32_t nlist;        /**< 0 (default): sop_vector_nlist_for(count) */
    uint32_t sample_max;   /**< training sample, default 256 x nlist (at most every item) */
    /** items migrated per transaction, default 5,000. Larger batches
     *  build faster (each B-tree leaf is written once per batch) but hold
     *  the batch's nodes in memory and conflict more with other writers;
     *  UINT32_MAX migrates everything in one transaction (bulk loads) */
    uint32_t batch;
    /** called after each batch with items migrated so far and in all; a
     *  non-zero return stops (the work done stays, a later call resumes) */
    int (*progress)(uint64_t done, uint64_t total, void *ctx);
    void *progress_ctx;
} sop_voptimize_options;

/** @brief Fills @p o with the defaults. */
SOP_API void sop_voptimize_options_init(sop_voptimize_options *o);

/** @brief Builds the next index version of @p name and switches to it:
 *  trains centroids on a uniform sample drawn through the store's lookup
 *  tree, migrates the items in batches of their own transactions while
 *  other transactions go on reading and writing (writes made meanwhile
 *  reach both versions), then flips the active version in one transaction
 *  and drops the old one and the tombstones. Runs its own transactions:
 *  call it outside any transaction of this thread on the store. After a
 *  crash or a stop, the next call resumes where the last committed batch
 *  ended. An empty store is left as it is.
 *  @return SOP_OK; SOP_ENOTFOUND; SOP_ENAME; SOP_EBUSY (another optimize of
 *          the store is running); what progress returned; SOP_ECONFLICT
 *          (a batch kept conflicting with other writers: call again);
 *          common errors. Thread-safe on @p db. */
SOP_API int sop_vstore_optimize(sop_db *db, const char *name, const sop_voptimize_options *o);

/** @brief Checks vector store @p name against its own records, and
 *  reports every problem found through @p fn (one line each, starting
 *  "vector store NAME: "): an index entry whose cluster is not the
 *  nearest centroid of its stored vector or whose distance is not its
 *  distance to that centroid (both recomputed), that has no live content
 *  record, or that is not where its record places it; an item of the
 *  content store missing from the active index version, or placed in it
 *  twice; during a migration (sop_vstore_optimize() running or
 *  interrupted), an item the progress record has passed that is not in
 *  the next version, or one placed there without its entry; a lookup
 *  entry missing or naming another item; counts (sop_vstore_count(), the
 *  next version's index, the lookup trees, the items moved) that disagree
 *  with the records; config, progress and centroid records that do not
 *  decode, or centroids in use that differ from the stored ones; stores
 *  left over from a dead index version. Reads only, in @p txn (any mode),
 *  and sees what @p txn sees. Reads every item of the store once, and
 *  recomputes each item's nearest centroid (nlist x dims per item, in
 *  blocks with BLAS).
 *  @param fn NULL, or receives each problem (valid during the call)
 *  @param[out] problems the number of problems found (may be NULL)
 *  @return SOP_OK (clean); SOP_ECORRUPT (problems were found, also when
 *          the store does not open because of them); SOP_ENOTFOUND (no
 *          vector store of that name); SOP_ENAME; SOP_EVERSION; -EINVAL
 *          (NULL @p txn or @p name); common errors (an I/O error ends the
 *          check: *problems then counts those found before it).
 *  Thread safety: that of @p txn. */
SOP_API int sop_vstore_check(sop_txn *txn, const char *name, sop_check_fn fn, void *ctx,
                             uint64_t *problems);

#ifdef __cplusplus
}
#endif
#endif /* SOP_VECTOR_H */
