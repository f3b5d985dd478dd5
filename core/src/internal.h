/*
 * internal.h - the objects behind the public handles, shared by db.c,
 * txn.c, store.c, cursor.c and check.c.
 */
#ifndef SOP_INTERNAL_H
#define SOP_INTERNAL_H
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include "arena.h"
#include "btree.h"
#include "cache.h"
#include "err.h"
#include "log.h"
#include "registry.h"
#include "segmap.h"
#include "shared.h"
#include "sop/sop.h"
#include "u64map.h"

#define SOP__CATALOG_ROOT 1 /* logical id of the catalog tree's root */
#define SOP__CATALOG_NODE_BYTES 4096

typedef struct sop__cmpreg {
    struct sop__cmpreg *next;
    char *name;
    sop_compare_fn fn;
    void *ctx;
} sop__cmpreg;

struct sop_db {
    char *path;
    sop_db_options opt;
    sop_vfs *vfs;
    sop_vfs *vfs_own[3]; /* VFS layers built from the options (vfs_stack.c) */
    int open_rc; /* non-zero: the handle is in a failed state */
    sop_file *lockf;
    sop__registry reg;
    sop__log log;
    sop__cache *cache;
    sop__segmap segmap;
    int reg_open, log_open;

    pthread_mutex_t commit_mu; /* serialises validation, append and apply */
    atomic_uint_fast64_t csn;  /* last commit applied to this process's registry */
    sop__shm *shm;             /* shared area (or shm_priv) */
    sop__shm shm_priv;
    int shm_mapped;
    int slot;                  /* this process's reader slot */
    atomic_uint_fast64_t applied_tail; /* log position followed up to */
    uint64_t replayed;         /* commit records applied by following */
    atomic_uint_fast64_t since_ckpt; /* log bytes since the last checkpoint */
    atomic_int panic;

    pthread_mutex_t mu; /* txn count, snapshots, comparators */
    int ntxn;
    uint64_t *snaps; /* snapshots of the open transactions */
    size_t nsnaps, capsnaps;
    struct sop__reap {
        uint32_t seg;
        uint64_t csn;
    } *reap; /* segments emptied by compaction, deleted when no snapshot needs them */
    size_t nreap, capreap;
    sop__cmpreg *cmps;

    int test_nosync;     /* SOP_TESTING: SOP_TEST_NO_COMMIT_SYNC harness mutant */
    int test_novalidate; /* SOP_TESTING: SOP_TEST_NO_VALIDATE harness mutant */
    atomic_uint_fast64_t st_commits, st_conflicts, st_merges, st_ckpts;
    atomic_uint_fast64_t st_redis_epochs, st_l2_hits, st_l2_misses;
    struct sop__cluster *cl; /* clustered mode (cluster.c), else NULL */
};

/* A node changed by a transaction. */
typedef struct sop__dirty {
    sop__node *node;
    uint64_t base_version; /* version it was copied from; 0 = created here */
} sop__dirty;

/* A value blob written by a transaction: kept in memory until commit, or
 * (@early, the blobs of streaming stores) appended to the log at once and
 * remembered by location only; the commit record then refers to that
 * image (docs/design/streaming.md). */
typedef struct sop__blob {
    uint64_t id;
    uint8_t *data; /* NULL when early */
    size_t len;
    int early;
    sop__handle at; /* early: where its image is (csn: of the log when written) */
} sop__blob;

/* A store's item counter as seen and changed by a transaction. */
typedef struct sop__counter {
    uint64_t id;
    uint64_t base_version; /* 0: created in this transaction */
    uint64_t base_value;
    int64_t delta;
    int loaded, read, dropped;
} sop__counter;

/* An item operation, recorded so that a commit whose nodes changed under
 * it can be replayed on the newer nodes (merge). */
#define SOP__OP_ADD 0
#define SOP__OP_ADD_IF_ABSENT 1
#define SOP__OP_UPDATE 2
#define SOP__OP_UPSERT 3
#define SOP__OP_REMOVE 4
#define SOP__OP_GET 5
#define SOP__OP_INCR 6 /* val: the 8-byte delta; commutes in a merge */

typedef struct sop__op {
    uint8_t kind;
    int rc;             /* what it returned */
    const char *store;  /* the store's name (owned by its handle) */
    uint8_t *key, *val; /* copies, in the transaction's opmem */
    size_t klen, vlen;
    uint64_t state;     /* the item before it: 0 absent, else 1 << 32 | CRC of its bytes */
} sop__op;

#define SOP__OPLOG_MAX (64u << 20) /* bytes of keys and values kept for merges */

/* An object of an upper layer (a vector store handle, ...) that lives as
 * long as its transaction: embed it as the first member and attach it with
 * sop__txn_attach(); @free runs when the transaction ends, before the
 * store handles are freed. @flush (may be NULL) runs first thing in
 * sop_txn_commit() of a writing transaction: the handle writes what it
 * kept back (a failure fails the commit, which then rolls back). */
typedef struct sop__txn_ext {
    struct sop__txn_ext *next;
    void (*free)(struct sop__txn_ext *e);
    int (*flush)(struct sop__txn_ext *e);
} sop__txn_ext;

void sop__txn_attach(sop_txn *txn, sop__txn_ext *e);

#define SOP__TXN_ACTIVE 0
#define SOP__TXN_FAILED 1

struct sop_txn {
    sop_db *db;
    sop_txn_mode mode;
    int state;
    uint64_t snap;     /* sees commits with csn <= snap */
    uint64_t deadline; /* CLOCK_MONOTONIC ns */
    uint64_t gen;      /* bumped by every write (cursors re-seek) */
    sop__u64map seen;  /* id -> pinned sop__node* (also the read set) */
    sop__u64map dirty; /* id -> sop__dirty* */
    uint64_t *drops;   /* committed ids deleted by this transaction */
    size_t ndrops, capdrops;
    uint64_t *fresh; /* ids handed out to this transaction */
    size_t nfresh, capfresh;
    sop__blob *blobs;
    size_t nblobs, capblobs;
    sop__u64map blobix; /* blob id -> index in blobs + 1 */
    sop__counter *counters;
    size_t ncounters, capcounters;
    sop_store *stores;
    sop_cursor *cursors;
    uint8_t **tmp; /* blob reads returned to the caller */
    size_t ntmp, captmp;
    sop__op *ops; /* item operations, for a merge at commit */
    size_t nops, capops, opbytes;
    sop__arena opmem; /* keys and values of ops */
    int no_merge;   /* did something a merge cannot replay */
    int write_read; /* a write found nothing to change (NOCHECK validates reads) */
    uint64_t epoch; /* clustered: the cluster's epoch at begin */
    sop__txn_ext *exts; /* upper layers' handles, freed with the transaction */
};

struct sop_store {
    sop_store *next;
    sop_txn *txn;
    char *name;
    uint64_t root, counter_id;
    int unique;
    sop_key_order order;
    uint32_t node_bytes, inline_max;
    uint32_t chunk_bytes; /* streaming store: bytes per chunk; 0: an ordinary store */
    char *cmpname;
    sop_compare_fn ucmp;
    void *uctx;
    sop__tree tree;
    int dropped;
};

struct sop_cursor {
    sop_cursor *next;
    sop_store *store;
    sop__bcur bc;
    uint64_t gen;
    int positioned;
    uint8_t *ikey; /* copy of the internal key at the cursor */
    size_t iklen, ikcap;
    uint8_t ukey[8]; /* decoded fixed-size user key */
};

/* ---- txn.c ---- */
/* Checks that @txn can run a call (active, in time, not panicked). */
int sop__txn_check(sop_txn *txn, int write);
/* Fails the transaction (it can only be rolled back) and returns rc. */
int sop__txn_fail(sop_txn *txn, int rc);
void sop__txn_tree_init(sop_txn *txn, sop__tree *t, uint64_t root, uint32_t node_bytes);
int sop__txn_new_id(sop_txn *txn, uint64_t *id);
/* Stores a value blob; returns its id. */
int sop__txn_put_blob(sop_txn *txn, const void *data, size_t len, uint64_t *id);
/* Stores a value blob by appending its image to the log now (under the
 * commit lock, not synced): the transaction keeps only its location, and
 * its commit record refers to it. Returns its id. */
int sop__txn_put_blob_early(sop_txn *txn, const void *data, size_t len, uint64_t *id);
/* Reads a blob visible to the transaction (pointer valid until the next
 * write or the end of the transaction). */
int sop__txn_get_blob(sop_txn *txn, uint64_t id, size_t size, const uint8_t **data);
/* As sop__txn_get_blob(), but a blob read from the log comes in a record
 * buffer *own that the caller frees (NULL when *data points into the
 * transaction): sequential readers do not pile copies up until the end. */
int sop__txn_fetch_blob(sop_txn *txn, uint64_t id, size_t size, const uint8_t **data,
                        uint8_t **own);
int sop__txn_drop_blob(sop_txn *txn, uint64_t id);
/* Deletes committed id @id at commit. */
int sop__txn_drop_id(sop_txn *txn, uint64_t id);
sop__counter *sop__txn_counter(sop_txn *txn, uint64_t id, int create);
int sop__txn_counter_value(sop_txn *txn, sop__counter *c, uint64_t *value);
/* Loads the image of @id visible at @snap (no transaction bookkeeping). */
int sop__load_node(sop_db *db, uint64_t id, uint64_t snap, sop__node **out);
void sop__txn_free_tmp(sop_txn *txn);

/* Records an item operation for a merge at commit (see sop__op). */
void sop__txn_log_op(sop_txn *txn, sop_store *s, int kind, const sop_val *key, const sop_val *val,
                     int rc, uint64_t state);

/* ---- store.c ---- */
/* Runs an item operation (SOP__OP_*) without checks or logging; *state
 * gets the state of the item it found (see sop__op). */
int sop__item_op(sop_store *s, int kind, const sop_val *key, const sop_val *val, sop_val *out,
                 uint64_t *state);
int sop__catalog_tree(sop_txn *txn, sop__tree *t);
int sop__store_cmp(void *ctx, const void *a, size_t alen, const void *b, size_t blen);
int sop__bytes_cmp(void *ctx, const void *a, size_t alen, const void *b, size_t blen);
/* 1 when @name is 1..@max bytes of [A-Za-z0-9_.-] not starting with '.'
 * (the rule of store names, also used by the upper layers' names). */
int sop__valid_name(const char *name, size_t max);
/* sop_store_list() that hands a catalog entry whose key is not a valid
 * store name to @fn as "" instead of failing (for sop_db_check). */
int sop__store_list_all(sop_txn *txn, int (*fn)(const char *name, void *ctx), void *ctx);
int sop__ukey_cmp(const sop_store *s, const void *a, size_t alen, const void *b, size_t blen);
#define SOP__DUP_SUFFIX 8
#define SOP__IKEY_MAX (SOP__KEY_MAX + SOP__DUP_SUFFIX)
/* Encodes a user key into the internal form (dup suffix not included). */
int sop__key_encode(const sop_store *s, const sop_val *key, uint8_t *out, size_t *olen);
/* Decodes an internal key to the user's form (pointer into c->ukey or the
 * key itself). */
void sop__key_decode(sop_store *s, const uint8_t *ik, uint32_t iklen, uint8_t *buf, sop_val *out);
/* The stored form of a value: inline, or a new blob of the transaction
 * (then *data points into @ref). */
int sop__value_prepare(sop_store *s, const sop_val *val, uint8_t ref[SOP__BLOBREF_SIZE],
                       const void **data, size_t *len, uint8_t *vflags);
/* Replaces the value of internal key @ik (blob bookkeeping included);
 * *state (may be NULL) gets the old value's sop__val_state(). */
int sop__store_replace(sop_store *s, const uint8_t *ik, size_t n, const sop_val *val,
                       uint64_t *state);
int sop__value_get(sop_store *s, const uint8_t *v, uint32_t vlen, uint8_t vflags, sop_val *out);
/* 1 when @data, the blob that reference @ref (SOP__BLOBREF_SIZE bytes)
 * points to, has the checksum the reference records. */
int sop__blobref_crc_ok(const uint8_t *ref, const uint8_t *data);
int sop__store_decode_entry(const uint8_t *v, uint32_t vlen, sop_store *s);

/* ---- compact.c ---- */
/* Moves the live images out of segments whose live fraction fell under a
 * half (when the files are over twice the live data); commit_mu held. Sets
 * *moved when it relocated anything. */
int sop__compact_locked(sop_db *db, int *moved);
/* Deletes emptied segments that neither replay nor any snapshot needs. */
int sop__reap_locked(sop_db *db);

/* ---- shared.c ---- */
/* Applies a commit record to the in-memory registry (a sop__log_fn). */
int sop__apply_rec(void *arg, int type, uint64_t csn, const uint8_t *p, uint32_t len,
                   uint32_t seg, uint64_t off);
/* Takes the open lock and maps the shared area; *first when this process
 * is the only one and must recover. */
int sop__shm_attach(sop_db *db, int *first);
/* The first opener has recovered: publishes the area, downgrades its lock. */
int sop__shm_ready(sop_db *db);
int sop__shm_claim_slot(sop_db *db);
void sop__shm_detach(sop_db *db);
/* Oldest snapshot of any open transaction of any process (UINT64_MAX when
 * none), and the oldest segment a live process has not followed past. */
uint64_t sop__oldest_snap(sop_db *db, uint32_t *min_seg);
void sop__publish_snap_locked(sop_db *db);
/* Applies the commits other processes appended (commit_mu held; @locked:
 * the commit file lock is held too, and a torn tail is cut). */
int sop__follow(sop_db *db, int locked);
/* commit_mu + the commit lock (a file lock, or Redis in clustered mode),
 * then follows the log. */
int sop__commit_lock(sop_db *db);
/* At transaction begin: learns the commits of other processes (clustered:
 * from Redis, or from the log alone when Redis cannot be reached). */
int sop__learn(sop_db *db);
/* Fresh ids for the registry (its id_chunk) and duplicate-key sequence
 * numbers: a shared counter, or Redis in clustered mode. */
int sop__id_chunk(void *db, uint64_t n, uint64_t *first);
int sop__next_seq(sop_db *db, uint64_t *seq);
/* Publishes the log's tail and releases both locks. */
void sop__commit_unlock(sop_db *db);

/* ---- db.c ---- */
int sop__db_checkpoint_locked(sop_db *db);
uint64_t sop__now_ns(void);

#endif
