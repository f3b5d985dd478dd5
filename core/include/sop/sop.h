/*
 * sop.h - SOP for C, core layer: ACID transactions over named B-trees.
 *
 * One directory holds one database. A database holds named stores
 * (B+trees of keys and values). Everything happens inside transactions;
 * a transaction may touch any number of stores and commits atomically.
 *
 * Caveats (read these first):
 *  - A sop_db handle is thread-safe. A sop_txn, and the sop_store and
 *    sop_cursor handles obtained through it, must be used by one thread at
 *    a time.
 *  - Values returned by reads point into engine memory: read-only, valid
 *    until the next write in the same transaction or the end of the
 *    transaction, whichever comes first. Use the *_copy variants to keep
 *    them longer.
 *  - sop_txn_commit() and sop_txn_rollback() always end the transaction and
 *    free the handle, also when commit fails.
 *  - Do not use a database from both sides of a fork(): open it again in the
 *    child. Several processes (up to 120) may have one database open and
 *    commit concurrently; with a VFS that cannot map shared memory a second
 *    process gets SOP_EBUSY.
 *  - A failed write or sync while committing puts the database into a panic
 *    state: every later call returns SOP_EPANIC until the handle is closed
 *    and the database reopened (recovery runs at open). An fsync is never
 *    retried.
 *  - Do not put a database on a network file system.
 *
 * Errors: every function that can fail returns an int: 0 (SOP_OK) on
 * success, a negative errno value (-EIO, -ENOMEM, -EINVAL, ...) for system
 * and argument errors, or one of the SOP_E* codes below (a reserved range,
 * -30999 .. -30000). sop_strerror() describes any of them. New codes may be
 * added in later versions. A detailed message for the last failure of the
 * calling thread on a database is available from sop_db_errmsg().
 *
 * Isolation, per transaction mode:
 *  - SOP_TXN_WRITE: serializable. Every key, range and count the
 *    transaction read is validated at commit; if another transaction
 *    committed a change to any of them after this one began, commit fails
 *    with SOP_ECONFLICT and changes nothing (retry the transaction). Writes
 *    to the same B-tree nodes by transactions that touched different items
 *    do not conflict: the engine replays the item operations on the newer
 *    nodes.
 *  - SOP_TXN_READ: a consistent snapshot as of sop_txn_begin(); never fails
 *    with a conflict; writes are refused with SOP_EREADONLY.
 *  - SOP_TXN_NOCHECK: like WRITE, but what it read is not validated at
 *    commit (its writes still are, item by item): the fast path for
 *    read-mostly agents that tolerate a stale read.
 *
 * Durability, per sync mode:
 *  - SOP_SYNC_FULL (default): sop_txn_commit() returns only after the
 *    transaction is on stable storage (one fdatasync serves every
 *    transaction committing at the same time). It survives a process crash
 *    and a power loss.
 *  - SOP_SYNC_NONE: commit does not sync. A process crash loses nothing; a
 *    power loss or OS crash may lose the last transactions, never a part of
 *    one, and never corrupts the database. For bulk loads.
 */
#ifndef SOP_SOP_H
#define SOP_SOP_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__)
#define SOP_API __attribute__((visibility("default")))
#else
#define SOP_API
#endif

#define SOP_VERSION_MAJOR 0
#define SOP_VERSION_MINOR 1
#define SOP_VERSION_PATCH 0

/** @brief Reports the library's version (each pointer may be NULL).
 *  @return the version as a string "MAJOR.MINOR.PATCH" (static storage). */
SOP_API const char *sop_version(int *major, int *minor, int *patch);

/* ------------------------------------------------------------------ */
/* Errors                                                             */
/* ------------------------------------------------------------------ */

/* XX(name, value, description). One table generates the codes and the
 * messages of sop_strerror() / sop_err_name(). */
#define SOP_ERRNO_MAP(XX)                                                                   \
    XX(NOTFOUND, -30001, "key or object not found")                                         \
    XX(EXISTS, -30002, "key or object already exists")                                     \
    XX(CONFLICT, -30003, "transaction conflicts with a concurrent commit; retry it")         \
    XX(BUSY, -30004, "resource is locked by another transaction or process")                \
    XX(CORRUPT, -30005, "database file is corrupt")                                         \
    XX(PANIC, -30006, "database hit a fatal I/O error; close and reopen it")                 \
    XX(FULL, -30007, "disk or file size limit is full")                                     \
    XX(TXNDONE, -30008, "transaction has already ended or must be rolled back")             \
    XX(READONLY, -30009, "write attempted in a read-only transaction")                      \
    XX(VERSION, -30010, "database format version is not supported")                        \
    XX(FORMAT, -30011, "malformed input")                                                   \
    XX(TOOBIG, -30012, "key or value is too large")                                         \
    XX(NAME, -30013, "invalid store name")                                                  \
    XX(MISMATCH, -30014, "options do not match the existing object")                        \
    XX(TIMEDOUT, -30015, "transaction exceeded its maximum duration")                       \
    XX(NOCMP, -30016, "custom comparator is not registered on this database")               \
    XX(REDIS, -30017, "redis is unreachable or answered with an error")                     \
    XX(LLM, -30018, "language model server is unreachable or answered with an error")      \
    XX(INCOMPLETE, -30019, "cursor is not positioned on an item")                           \
    XX(DIM, -30020, "vector dimension does not match the store")                            \
    XX(VECTOR, -30021, "vector has a NaN or infinite component, or is zero under cosine")

enum {
    SOP_OK = 0,
#define SOP__XX(name, value, text) SOP_E##name = (value),
    SOP_ERRNO_MAP(SOP__XX)
#undef SOP__XX
};

/** @brief Describes an error code: a SOP_E* code, a negative errno, or 0.
 *  @return a static string; never NULL. Thread-safe. */
SOP_API const char *sop_strerror(int err);

/** @brief The symbolic name of an error code ("SOP_ENOTFOUND", "EIO", ...).
 *  @return a static string; never NULL. Thread-safe. */
SOP_API const char *sop_err_name(int err);

/* ------------------------------------------------------------------ */
/* Memory and I/O hooks                                               */
/* ------------------------------------------------------------------ */

/** Allocation functions. All three are called with @c ctx. */
typedef struct sop_allocator {
    void *(*malloc_fn)(size_t size, void *ctx);
    void *(*realloc_fn)(void *ptr, size_t size, void *ctx);
    void (*free_fn)(void *ptr, void *ctx);
    void *ctx;
} sop_allocator;

/** @brief Replaces the allocator used by every layer of the library.
 *  Call before opening any database (memory allocated by one allocator is
 *  freed by the same functions, so switching with objects alive is an
 *  error). @p a is copied; NULL restores malloc/realloc/free.
 *  @return SOP_OK; -EINVAL if a function pointer is NULL.
 *  Not thread-safe with respect to any other call. */
SOP_API int sop_set_allocator(const sop_allocator *a);

/** @brief Frees memory that the library returned to the caller and
 *  documented as "free with sop_free()". NULL is ignored. */
SOP_API void sop_free(void *ptr);

/** An open file of a VFS: defined by each VFS implementation. */
typedef struct sop_file sop_file;

/* Flags for sop_vfs.open */
#define SOP_O_READ 0x1    /**< open for reading only */
#define SOP_O_RDWR 0x2    /**< open for reading and writing */
#define SOP_O_CREATE 0x4  /**< create if missing */
#define SOP_O_EXCL 0x8    /**< with SOP_O_CREATE: fail with -EEXIST if present */
#define SOP_O_TRUNC 0x10  /**< truncate to 0 bytes */

/* Lock modes for sop_vfs.lock */
#define SOP_LOCK_UN 0
#define SOP_LOCK_SH 1
#define SOP_LOCK_EX 2

/* Flags of sop_vfs.flags (version >= 3) */
/** Segment files (seg-*) accept only appends at their end and truncation:
 *  a write at any other offset fails with -EINVAL. The engine then does
 *  not preallocate segments with zeros (the log's end is the file's end).
 *  Set by the erasure-coding layer, whose stripes are never rewritten. */
#define SOP_VFS_APPEND_ONLY 0x1u

/**
 * The file-system interface. Every byte the engine reads or writes, every
 * sync, create, rename and delete goes through one of these functions, so
 * tests can inject faults and simulate power loss. All functions return
 * SOP_OK or a negative errno. A VFS must be thread-safe.
 */
typedef struct sop_vfs {
    int version; /**< 3 (2: without flags; 1: without map/unmap either) */
    void *ctx;   /**< for the implementation */
    int (*open)(struct sop_vfs *vfs, const char *path, int flags, unsigned mode, sop_file **out);
    int (*close)(struct sop_vfs *vfs, sop_file *f);
    /** reads up to @p n bytes at @p off; *got < n only at end of file */
    int (*read)(struct sop_vfs *vfs, sop_file *f, void *buf, size_t n, uint64_t off, size_t *got);
    /** writes all @p n bytes at @p off (a short write is an error) */
    int (*write)(struct sop_vfs *vfs, sop_file *f, const void *buf, size_t n, uint64_t off);
    /** makes the file's data durable (fdatasync) */
    int (*sync)(struct sop_vfs *vfs, sop_file *f);
    int (*size)(struct sop_vfs *vfs, sop_file *f, uint64_t *size);
    int (*truncate)(struct sop_vfs *vfs, sop_file *f, uint64_t size);
    /** byte-range lock; @p wait = 0 returns SOP_EBUSY if held elsewhere */
    int (*lock)(struct sop_vfs *vfs, sop_file *f, uint64_t off, uint64_t len, int mode, int wait);
    int (*remove)(struct sop_vfs *vfs, const char *path);
    int (*rename)(struct sop_vfs *vfs, const char *from, const char *to);
    int (*mkdir)(struct sop_vfs *vfs, const char *path, unsigned mode);
    /** makes the directory's entries (creates, renames, removes) durable */
    int (*sync_dir)(struct sop_vfs *vfs, const char *path);
    /** calls @p fn for every entry name of @p dir except "." and ".."; a
     *  non-zero return of @p fn stops the listing and is returned */
    int (*list)(struct sop_vfs *vfs, const char *dir, int (*fn)(const char *name, void *arg),
                void *arg);
    /** Optional (NULL: a database is then opened by one process at a time).
     *  Maps @p len bytes of @p f at @p off, shared between the processes
     *  that map it (the file is extended with zeros if shorter). Used for
     *  the coordination area of the lock file, never for data. */
    int (*shm_map)(struct sop_vfs *vfs, sop_file *f, uint64_t off, size_t len, void **addr);
    int (*shm_unmap)(struct sop_vfs *vfs, void *addr, size_t len);
    /** Optional (NULL: segments are always read with read()). Maps the
     *  first @p len bytes of @p f read-only and shared, for
     *  sop_db_options.map_reads. @p len may exceed the file's size: the
     *  engine never touches the pages past the end of the file. */
    int (*map)(struct sop_vfs *vfs, sop_file *f, uint64_t len, const void **addr);
    int (*unmap)(struct sop_vfs *vfs, const void *addr, uint64_t len);
    /** Version >= 3: SOP_VFS_* flags telling the engine how the VFS
     *  behaves (0 for a plain file system). */
    unsigned flags;
} sop_vfs;

/** @brief The default VFS: POSIX files (pread/pwrite/fdatasync/fcntl locks).
 *  @return a static, thread-safe VFS. */
SOP_API sop_vfs *sop_vfs_posix(void);

/* ------------------------------------------------------------------ */
/* Database                                                           */
/* ------------------------------------------------------------------ */

typedef struct sop_db sop_db;
typedef struct sop_txn sop_txn;
typedef struct sop_store sop_store;
typedef struct sop_cursor sop_cursor;

/** A key or a value: @c size bytes at @c data. */
typedef struct sop_val {
    const void *data;
    size_t size;
} sop_val;

typedef enum sop_mode {
    SOP_STANDALONE = 0, /**< one directory, coordination inside this machine */
    SOP_CLUSTERED = 1   /**< coordination through Redis (redis_url): processes on any host */
} sop_mode;

typedef enum sop_sync_mode {
    SOP_SYNC_FULL = 0, /**< every commit is durable when acknowledged */
    SOP_SYNC_NONE = 1  /**< commits are not synced (bulk loads) */
} sop_sync_mode;

/* Flags of sop_db_options.flags */
#define SOP_DB_CREATE 0x1   /**< create the database if it does not exist (default) */
#define SOP_DB_RDONLY 0x2   /**< open read-only: write transactions are refused */

/** Options of sop_db_open(). Initialise with sop_db_options_init(). */
typedef struct sop_db_options {
    uint32_t struct_size;     /**< sizeof(sop_db_options), set by init */
    sop_mode mode;            /**< SOP_STANDALONE (default) */
    sop_sync_mode sync;       /**< SOP_SYNC_FULL (default) */
    uint32_t flags;           /**< SOP_DB_CREATE (default) */
    size_t cache_bytes;       /**< L1 node cache bound, default 64 MiB */
    uint32_t txn_max_ms;      /**< default maximum transaction duration, 60000 */
    uint64_t segment_bytes;   /**< size at which a segment file is closed, 64 MiB */
    uint64_t checkpoint_bytes;/**< log bytes between checkpoints, 64 MiB */
    unsigned file_mode;       /**< mode of created files, 0600 (directories 0700) */
    sop_vfs *vfs;             /**< NULL: sop_vfs_posix() */
    /** 1: read node and blob images through read-only memory maps of the
     *  segment files (sop_vfs.map) instead of read(): a cache miss costs
     *  a memcpy instead of a system call. The price, as with LMDB or
     *  SQLite's mmap_size: a media error while reading a mapped page
     *  raises SIGBUS in the process instead of returning -EIO. Default 0;
     *  ignored when the VFS has no map(). */
    int map_reads;
    /** Clustered mode (mode = SOP_CLUSTERED): the Redis server that
     *  coordinates the processes, "redis://[:password@]host[:port][/db]"
     *  or "host:port". Copied at open. Required in clustered mode. */
    const char *redis_url;
    uint32_t redis_timeout_ms; /**< bound of every Redis call, default 2000 */
    uint32_t lease_ms;         /**< clustered: lock and process leases, default 10000 */
    /** Clustered: node images are also cached in Redis (the L2 cache) for
     *  this many milliseconds; 0 (default) turns the L2 cache off. Worth it
     *  when the shared storage is slower than a Redis round trip. */
    uint32_t redis_cache_ms;
    /** Erasure coding: segment files are striped over @c ndrives drive
     *  folders as (ndrives - parity) data and @c parity parity shards.
     *  NULL/0: segments live in the database directory. Paths copied. */
    const char *const *drives;
    uint32_t ndrives;
    uint32_t parity;
    /** Replication: a second folder that holds a copy of every file of
     *  the database directory (registry, checkpoints, and the segments,
     *  which hold the catalog and the redo log; with erasure coding on,
     *  the segments go to the drives and only the rest is mirrored).
     *  Writes go to the active folder, then the passive; an I/O error on
     *  the active fails over to the passive, one on the passive marks it
     *  stale until sop_db_reinstate() (or the next open alone) brings it
     *  back by fast-forward. The state is kept in replica.state in both
     *  folders; every process that has the database open follows a
     *  change another one made before its next read or write (through
     *  shared memory, or in clustered mode through Redis: a failover that
     *  Redis cannot be told fails with the I/O error that caused it). Give
     *  the two paths in the same order at every open. map_reads is
     *  ignored. Design: docs/design/replication.md. NULL: none. Copied. */
    const char *replica_path;
} sop_db_options;

/** @brief Fills @p o with the defaults listed in sop_db_options. */
SOP_API void sop_db_options_init(sop_db_options *o);

/** @brief Opens (and by default creates) the database in directory @p path.
 *  Runs recovery: commits that were acknowledged are present, partial
 *  transactions are not.
 *  @param path  directory; copied
 *  @param opts  NULL for defaults; copied
 *  @param[out] dbp  on success the handle. On failure other than -ENOMEM,
 *              *dbp is a handle in a failed state whose sop_db_errmsg()
 *              explains the failure; close it with sop_db_close().
 *  @return SOP_OK; -EINVAL (bad options); -ENOENT (missing and no
 *          SOP_DB_CREATE); SOP_EBUSY (another process holds it exclusively);
 *          SOP_ECORRUPT; SOP_EVERSION; SOP_EFULL; -EACCES; -EIO; -ENOMEM;
 *          SOP_EMISMATCH (with replica_path: the database directory and the
 *          replica folder given in the other order than before); clustered
 *          mode: SOP_EREDIS (Redis unreachable or unsuitable, or it could
 *          not be told the replica state this opener found).
 *  Thread-safe. */
SOP_API int sop_db_open(const char *path, const sop_db_options *opts, sop_db **dbp);

/** @brief Checkpoints (when writable) and closes. All transactions of @p db
 *  must have ended. NULL is ignored.
 *  @return SOP_OK; -EIO or SOP_EFULL (the checkpoint failed and the handle
 *          is closed anyway; nothing committed is lost: recovery replays
 *          the log at the next open); SOP_EBUSY if transactions are still
 *          open (the handle is then not closed). */
SOP_API int sop_db_close(sop_db *db);

/** @brief The detailed message of the last failed call made by the calling
 *  thread on @p db or any object of it ("" if none). Owned by the library,
 *  valid until the calling thread's next call on @p db. */
SOP_API const char *sop_db_errmsg(const sop_db *db);

/** User key comparator: negative, 0 or positive as @p a sorts before, with
 *  or after @p b. Must be a strict weak order, deterministic, and
 *  thread-safe. */
typedef int (*sop_compare_fn)(const sop_val *a, const sop_val *b, void *ctx);

/** @brief Registers comparator @p name on @p db, for stores created with
 *  SOP_ORDER_CUSTOM. Register it every time the database is opened, before
 *  opening such a store. @p name is copied; @p ctx is kept.
 *  @return SOP_OK; -EINVAL (empty name or NULL fn); SOP_EEXISTS (name taken);
 *          -ENOMEM. Thread-safe. */
SOP_API int sop_db_set_comparator(sop_db *db, const char *name, sop_compare_fn fn, void *ctx);

/** Figures of sop_db_stats(). */
typedef struct sop_db_stat {
    uint64_t commits;          /**< committed write transactions since open */
    uint64_t conflicts;        /**< commits that failed with SOP_ECONFLICT */
    uint64_t merges;           /**< commits that replayed item ops on newer nodes */
    uint64_t syncs;            /**< data syncs issued by commits */
    uint64_t checkpoints;
    uint64_t file_bytes;       /**< bytes of all files of the database */
    uint64_t live_bytes;       /**< bytes of live node and value images */
    uint64_t segments;         /**< segment files */
    uint64_t nodes;            /**< live logical ids in the registry */
    uint64_t cache_bytes;      /**< bytes held by the L1 cache */
    uint64_t cache_hits, cache_misses;
    uint64_t redis_calls;      /**< clustered: round trips to Redis since open */
    uint64_t redis_epochs;     /**< clustered: times this process re-derived the
                                    cluster's state after Redis lost it */
    uint64_t l2_hits, l2_misses; /**< clustered: node images read from Redis */
} sop_db_stat;

/** @brief Reads database-wide figures into @p st.
 *  @return SOP_OK; -EINVAL. Thread-safe. */
SOP_API int sop_db_stats(sop_db *db, sop_db_stat *st);

/** @brief Forces a checkpoint: syncs the registry and lets the log be
 *  trimmed, then compacts segments whose live fraction fell low.
 *  @return SOP_OK; SOP_EPANIC; SOP_EREADONLY; SOP_EFULL; -EIO; -ENOMEM.
 *  A failure puts the database into the panic state (nothing committed is
 *  lost: recovery replays the log at the next open). */
SOP_API int sop_db_checkpoint(sop_db *db);

/** Replication status of sop_db_replica_status(). */
typedef struct sop_replica_status {
    int configured;       /**< 0: no replica folder (the rest is zero) */
    int active;           /**< folder served: 0 the database directory, 1 the replica */
    int in_sync;          /**< 1: the other folder has every write */
    uint64_t generation;  /**< of the persisted state (replica.state) */
    uint64_t failovers;   /**< failovers and folders marked stale by this handle */
    uint64_t reinstated_bytes; /**< bytes copied by this handle's last reinstatement */
    uint64_t reinstated_files; /**< files it wrote, created or removed */
    uint64_t skipped_bytes;    /**< segment bytes it knew identical and did not copy */
} sop_replica_status;

/** @brief Reports which folder serves @p db and whether the other is in
 *  sync (a snapshot: another thread may fail over right after).
 *  @param[out] st  filled; all zero when @p db has no replica folder
 *  @return SOP_OK; -EINVAL (NULL argument or a handle in a failed state).
 *  Thread-safe. */
SOP_API int sop_db_replica_status(sop_db *db, sop_replica_status *st);

/** @brief Brings the stale folder back in sync while the database stays
 *  open and in use: copies what it missed from the active folder (the
 *  missing tail of each segment, the small files whole), then, holding
 *  the commit lock so that no commit lands in between, copies what
 *  changed meanwhile, syncs it and marks it in sync; from then on every
 *  write goes to both folders again. A database opened alone (the first
 *  opener; in clustered mode an opener that finds no other live process
 *  in Redis) with a stale but reachable replica is reinstated at open
 *  already. The state persisted in the folders is re-read first, not this
 *  handle's view of it. Nothing to do (the folders are in sync) is SOP_OK.
 *  @return SOP_OK; -EINVAL (NULL, failed handle, or no replica folder);
 *          SOP_EPANIC; SOP_EBUSY (another process has the database open,
 *          in clustered mode: another live process is registered in
 *          Redis; it would not know that the folder is back; reinstate
 *          when alone, or let the next open do it); clustered mode:
 *          SOP_EREDIS (Redis unreachable: who is open cannot be told);
 *          SOP_EREADONLY; -EIO, -ENOSPC and the other errors of the stale
 *          folder's file system
 *          (the folder stays stale, the database is unaffected; details
 *          in sop_db_errmsg()); an error of the active folder is handled
 *          as by any write (failover, else the panic state); -ENOMEM.
 *  Thread-safe; runs concurrently with transactions (commits wait only
 *  for the final catch-up). */
SOP_API int sop_db_reinstate(sop_db *db);

/** Callback of sop_db_check() for each problem found. */
typedef void (*sop_check_fn)(const char *problem, void *ctx);

/** @brief Full integrity check: every node image's CRC, key order inside
 *  and across nodes, child links, item counts, registry entries against
 *  segment contents (every live id reachable, its image of that id and
 *  version), and space accounting (no two live images share bytes, every
 *  image inside its segment, no id on the free list live). Runs in its own
 *  READ transaction. @p fn (may be NULL) receives a line per problem.
 *  @param[out] problems number of problems found (may be NULL)
 *  @return SOP_OK when clean; SOP_ECORRUPT when problems were found;
 *          SOP_EPANIC; -EIO; -ENOMEM. */
SOP_API int sop_db_check(sop_db *db, sop_check_fn fn, void *ctx, uint64_t *problems);

/** What sop_db_repair() found and did. */
typedef struct sop_repair_report {
    uint64_t segments;       /**< segment files verified */
    uint64_t stripes;        /**< stripes verified (every shard of each read) */
    uint64_t bad_shards;     /**< shards found missing, short or corrupt */
    uint64_t shards_rebuilt; /**< of those, shards written back from the others */
    uint64_t files_rebuilt;  /**< shard files replaced (written beside, renamed over) */
    uint64_t unrecoverable;  /**< stripes with more than @c parity bad shards: data lost */
    uint64_t deferred;       /**< bad shards of the segment being appended to, whose shard
                                  file exists: left for a later pass (see below) */
    uint32_t drives_unusable;/**< drive folders that could not be created or written */
    char message[256];       /**< on failure, why ("" on success) */
} sop_repair_report;

/** @brief Verifies every stripe of every segment of an erasure-coded
 *  database (every shard's header and CRC) and rebuilds the shard files of
 *  missing, corrupt or replaced drives from the other drives: each is
 *  written beside the old one, synced, and renamed over it, so no reader
 *  ever sees a half-written shard file. A missing drive folder is created
 *  (with its identity file) first.
 *
 *  Runs while other processes (or handles of this process) have the
 *  database open and commit. When none has it open, the pass holds it
 *  closed (openers wait) and repairs every segment alike. Otherwise
 *  sealed segments, which are immutable, are repaired without locks. The segment being appended to is repaired
 *  under the database's commit lock (commits wait meanwhile), and only
 *  where its shard file is missing on a drive; bad shards in a shard file
 *  that exists there are counted in @c deferred and repaired by a pass
 *  after the segment is sealed (a process appending to it would keep
 *  writing into the replaced file). A process that had a shard file open
 *  when its drive folder was deleted keeps appending to the deleted file
 *  until it moves to the next segment: those stripes lack that shard (they
 *  still decode) until the next pass. Segments created during the pass
 *  are verified by the next one.
 *
 *  Clustered (@c mode SOP_CLUSTERED in @p opts): the pass opens a handle
 *  of its own, which joins the cluster through Redis; "the commit lock" is
 *  then the Redis lease, and the pass has the database to itself when,
 *  under that lease, Redis lists no other live process (openers wait for
 *  the lease). Then the segment being appended to and any made during the
 *  pass are repaired whole and the new drives marked as the database's;
 *  otherwise the segment being appended to is repaired as above.
 *  @param path  the database directory
 *  @param opts  the options the database is opened with: @c drives,
 *               @c ndrives, @c parity (required), @c vfs, @c file_mode;
 *               clustered: @c mode, @c redis_url and the other Redis options
 *  @param[out] out  the report (may be NULL); its @c message says why on
 *               failure
 *  @return SOP_OK (also when stripes were unrecoverable: see
 *          @c unrecoverable); -EINVAL (no drives in @p opts, bad
 *          geometry); -ENOENT (@p path is not a database, or was never
 *          opened with erasure coding); SOP_EMISMATCH (drives in the wrong
 *          order, from another database, or another k/m); -EIO (more than
 *          @c parity drive folders unusable, or an I/O error of the
 *          database directory); SOP_EFULL; -ENOMEM; clustered: SOP_EREDIS
 *          (Redis unreachable, or the lease lost during the pass),
 *          SOP_EBUSY (the lease not obtained), and what sop_db_open()
 *          returns.
 *  Thread-safe; any number of processes may have the database open. */
SOP_API int sop_db_repair(const char *path, const sop_db_options *opts, sop_repair_report *out);

/** Erasure-coding figures of an open database (sop_db_ec_stats()),
 *  counted since it was opened by this handle. */
typedef struct sop_ec_stat {
    uint64_t stripes_written;    /**< stripes appended */
    uint64_t degraded_stripes;   /**< of those, written with at most @c parity shards missing */
    uint64_t shard_write_errors; /**< drives marked failed for a file (open, write or sync) */
    uint64_t reconstructed;      /**< stripes read by reconstruction from parity */
    uint64_t bad_shards;         /**< shards found missing, short or corrupt when read */
    uint64_t unreadable;         /**< stripes with more than @c parity bad shards */
    uint32_t drives_down;        /**< drive folders unusable since open */
} sop_ec_stat;

/** @brief Reads the erasure-coding figures of @p db into @p st.
 *  @return SOP_OK; -EINVAL (NULL arguments, or @p db does not use erasure
 *          coding). Thread-safe. */
SOP_API int sop_db_ec_stats(sop_db *db, sop_ec_stat *st);

/* ------------------------------------------------------------------ */
/* Transactions                                                       */
/* ------------------------------------------------------------------ */

typedef enum sop_txn_mode {
    SOP_TXN_READ = 0,   /**< snapshot reads, no writes */
    SOP_TXN_WRITE = 1,  /**< serializable reads and writes */
    SOP_TXN_NOCHECK = 2 /**< writes; reads are not validated */
} sop_txn_mode;

/** @brief Begins a transaction.
 *  @param max_ms maximum duration in milliseconds (0: the database
 *         default). Past it every call on the transaction returns
 *         SOP_ETIMEDOUT and commit fails.
 *  @return SOP_OK; -EINVAL; SOP_EREADONLY (write mode on a read-only
 *          database); SOP_EPANIC; -ENOMEM. Thread-safe on @p db. */
SOP_API int sop_txn_begin(sop_db *db, sop_txn_mode mode, uint32_t max_ms, sop_txn **txnp);

/** @brief Commits and frees @p txn (also on failure). A READ transaction
 *  just ends.
 *  @return SOP_OK (durable under SOP_SYNC_FULL); SOP_ECONFLICT (nothing
 *          was written: retry); SOP_ETIMEDOUT; SOP_ETXNDONE (an earlier
 *          call of the transaction failed in a way that forces a
 *          rollback); SOP_EPANIC (I/O failed during commit: reopen the
 *          database; whether this transaction is durable is decided by
 *          recovery, it is all or nothing); SOP_EFULL; -EIO; -ENOMEM. */
SOP_API int sop_txn_commit(sop_txn *txn);

/** @brief Discards every change of @p txn and frees it. NULL is ignored.
 *  @return SOP_OK. */
SOP_API int sop_txn_rollback(sop_txn *txn);

/** @brief The mode @p txn was begun with. */
SOP_API sop_txn_mode sop_txn_get_mode(const sop_txn *txn);

/** @brief The database @p txn belongs to (for sop_db_errmsg()). */
SOP_API sop_db *sop_txn_db(const sop_txn *txn);

/* ------------------------------------------------------------------ */
/* Stores                                                             */
/* ------------------------------------------------------------------ */

/** Key orders. INT64, UINT64 and DOUBLE keys are exactly 8 bytes in host
 *  byte order; DOUBLE keys must not be NaN; STRING keys are valid UTF-8
 *  without NUL bytes, ordered by code point. */
typedef enum sop_key_order {
    SOP_ORDER_BYTES = 0, /**< memcmp, shorter prefix first */
    SOP_ORDER_INT64 = 1,
    SOP_ORDER_UINT64 = 2,
    SOP_ORDER_DOUBLE = 3,
    SOP_ORDER_STRING = 4,
    SOP_ORDER_CUSTOM = 5 /**< comparator registered with sop_db_set_comparator() */
} sop_key_order;

/** Options of sop_store_create(). Initialise with sop_store_options_init(). */
typedef struct sop_store_options {
    uint32_t struct_size;       /**< sizeof(sop_store_options), set by init */
    int unique;                 /**< 1 (default): one item per key; 0: duplicates */
    sop_key_order order;        /**< SOP_ORDER_BYTES (default) */
    const char *comparator;     /**< name, for SOP_ORDER_CUSTOM; copied */
    uint32_t node_bytes;        /**< target node image size, 4096 (1024..65536) */
    uint32_t inline_max;        /**< values larger than this go to their own
                                     blob; default node_bytes / 4 */
    /** Non-zero: a streaming store whose values are written and read in
     *  chunks of this many bytes through sop_stream_* (SOP_STREAM_CHUNK_MIN
     *  .. SOP_VALUE_MAX; unique keys, SOP_ORDER_BYTES). 0 (default): an
     *  ordinary store. See "Streaming values". */
    uint32_t chunk_bytes;
} sop_store_options;

/** @brief Fills @p o with the defaults. */
SOP_API void sop_store_options_init(sop_store_options *o);

/* Store names: 1..200 bytes of [A-Za-z0-9_.-], not starting with '.'. */
#define SOP_STORE_NAME_MAX 200
/** Largest key: a quarter of the store's node_bytes minus 16. */
#define SOP_VALUE_MAX (64u * 1024u * 1024u) /**< largest value: 64 MiB */

/** @brief Creates store @p name in @p txn (rolled back with it).
 *  @param opts NULL for defaults
 *  @param[out] storep handle valid until @p txn ends (do not free)
 *  @return SOP_OK; SOP_EEXISTS; SOP_ENAME; -EINVAL (bad options);
 *          SOP_ENOCMP; SOP_EREADONLY; SOP_ETXNDONE; SOP_ETIMEDOUT;
 *          SOP_ECORRUPT; SOP_EPANIC; -EIO; -ENOMEM. */
SOP_API int sop_store_create(sop_txn *txn, const char *name, const sop_store_options *opts,
                             sop_store **storep);

/** @brief Opens existing store @p name in @p txn.
 *  @param[out] storep handle valid until @p txn ends (do not free)
 *  @return SOP_OK; SOP_ENOTFOUND; SOP_ENAME; SOP_ENOCMP (its custom
 *          comparator is not registered); SOP_ETXNDONE; SOP_ETIMEDOUT;
 *          SOP_ECORRUPT; SOP_EPANIC; -EIO; -ENOMEM. */
SOP_API int sop_store_open(sop_txn *txn, const char *name, sop_store **storep);

/** @brief Removes store @p name and all its items in @p txn. Handles of it
 *  obtained in @p txn become invalid.
 *  @return SOP_OK; SOP_ENOTFOUND; SOP_ENAME; SOP_EREADONLY; SOP_ETXNDONE;
 *          SOP_ETIMEDOUT; SOP_ECORRUPT; SOP_EPANIC; -EIO; -ENOMEM. */
SOP_API int sop_store_remove(sop_txn *txn, const char *name);

/** @brief Calls @p fn with the name of every store visible to @p txn, in
 *  name order; a non-zero return of @p fn stops and is returned.
 *  @return SOP_OK; what @p fn returned; SOP_ETXNDONE; SOP_ECORRUPT; -EIO. */
SOP_API int sop_store_list(sop_txn *txn, int (*fn)(const char *name, void *ctx), void *ctx);

/** @brief Number of items of @p store as seen by its transaction.
 *  @return SOP_OK; SOP_ETXNDONE; SOP_ETIMEDOUT. */
SOP_API int sop_store_count(sop_store *store, uint64_t *count);

/** @brief Reads the options @p store was created with into @p o (the
 *  comparator pointer stays valid while the store handle is). */
SOP_API int sop_store_get_options(sop_store *store, sop_store_options *o);

/* ------------------------------------------------------------------ */
/* Items                                                              */
/* ------------------------------------------------------------------ */
/* Common errors of every call below: SOP_ETXNDONE (transaction ended or
 * failed), SOP_ETIMEDOUT, SOP_EREADONLY (write in a READ transaction),
 * SOP_ETOOBIG (key or value too large), -EINVAL (NULL arguments, key of the
 * wrong size or invalid for the store's order), SOP_ECORRUPT, SOP_EPANIC,
 * -EIO, -ENOMEM. Keys and values passed in are copied. */

/** @brief Adds an item. In a unique store, fails with SOP_EEXISTS when the
 *  key is present; in a duplicate store, always adds (after the existing
 *  items with that key). */
SOP_API int sop_add(sop_store *s, const sop_val *key, const sop_val *val);

/** @brief Adds the item only when no item has that key.
 *  @return SOP_OK (added); SOP_EEXISTS (present, nothing changed). */
SOP_API int sop_add_if_absent(sop_store *s, const sop_val *key, const sop_val *val);

/** @brief Replaces the value of the (first) item with @p key.
 *  @return SOP_OK; SOP_ENOTFOUND. */
SOP_API int sop_update(sop_store *s, const sop_val *key, const sop_val *val);

/** @brief Updates the (first) item with @p key, or adds it when absent. */
SOP_API int sop_upsert(sop_store *s, const sop_val *key, const sop_val *val);

/** @brief Removes the (first) item with @p key.
 *  @return SOP_OK; SOP_ENOTFOUND. */
SOP_API int sop_remove(sop_store *s, const sop_val *key);

/** @brief Reads the value of the (first) item with @p key.
 *  @param[out] val points into engine memory (see Caveats)
 *  @return SOP_OK; SOP_ENOTFOUND. */
SOP_API int sop_get(sop_store *s, const sop_val *key, sop_val *val);

/** @brief Like sop_get() but copies up to @p cap bytes into @p buf.
 *  @param[out] len the full size of the value (may exceed @p cap)
 *  @return SOP_OK; SOP_ENOTFOUND. */
SOP_API int sop_get_copy(sop_store *s, const sop_val *key, void *buf, size_t cap, size_t *len);

/** @brief Adds @p delta to the counter at @p key: a signed 64-bit integer
 *  stored as an 8-byte value in host byte order. An absent key counts as 0
 *  and is created; a counter that reaches 0 is removed. Increments commute:
 *  when concurrent transactions increment the same counter, all of them
 *  commit (at commit the increment is applied on top of the value the
 *  others committed) instead of failing with SOP_ECONFLICT, as long as the
 *  transaction did nothing else that conflicts. Reading the counter in the
 *  same transaction (sop_get, a scan) makes it an ordinary read again.
 *  Unique stores only.
 *  @param[out] result (may be NULL) the value after the increment as this
 *         transaction sees it
 *  @return SOP_OK; SOP_EFORMAT (the item's value is not 8 bytes);
 *          -EOVERFLOW (the sum leaves the int64 range: nothing changes);
 *          -EINVAL (a store with duplicates); common errors. */
SOP_API int sop_incr(sop_store *s, const sop_val *key, int64_t delta, int64_t *result);

/* ------------------------------------------------------------------ */
/* Cursors                                                            */
/* ------------------------------------------------------------------ */

typedef enum sop_find_mode {
    SOP_FIND_EXACT = 0, /**< an item with the key (the first of duplicates) */
    SOP_FIND_GE = 1,    /**< the first item with key >= the key (lower bound) */
    SOP_FIND_GT = 2,    /**< the first item with key > the key */
    SOP_FIND_LE = 3,    /**< the last item with key <= the key */
    SOP_FIND_LT = 4,    /**< the last item with key < the key */
    SOP_FIND_LAST = 5   /**< an item with the key (the last of duplicates) */
} sop_find_mode;

/** @brief Opens a cursor on @p s. It is not positioned until a find or a
 *  first/last call. Closed by sop_cursor_close() or at the end of the
 *  transaction.
 *  @return SOP_OK; SOP_ETXNDONE; -ENOMEM. */
SOP_API int sop_cursor_open(sop_store *s, sop_cursor **curp);

/** @brief Closes @p c (NULL is ignored). */
SOP_API void sop_cursor_close(sop_cursor *c);

/** @brief Positions on the item selected by @p mode and @p key.
 *  @return SOP_OK; SOP_ENOTFOUND (no such item; the cursor is then
 *          unpositioned); common errors. */
SOP_API int sop_cursor_find(sop_cursor *c, const sop_val *key, sop_find_mode mode);

/** @brief Positions on the first / last item.
 *  @return SOP_OK; SOP_ENOTFOUND (empty store). */
SOP_API int sop_cursor_first(sop_cursor *c);
SOP_API int sop_cursor_last(sop_cursor *c);

/** @brief Moves to the next / previous item in key order.
 *  @return SOP_OK; SOP_ENOTFOUND (moved past the end: unpositioned);
 *          SOP_EINCOMPLETE (not positioned). */
SOP_API int sop_cursor_next(sop_cursor *c);
SOP_API int sop_cursor_prev(sop_cursor *c);

/** @brief Moves @p n items forward (n > 0) or backward (n < 0): paging.
 *  @return SOP_OK; SOP_ENOTFOUND (ran off the end); SOP_EINCOMPLETE. */
SOP_API int sop_cursor_skip(sop_cursor *c, int64_t n);

/** @brief Reads the key at the cursor without loading a value stored in its
 *  own blob (keys-only scans).
 *  @return SOP_OK; SOP_EINCOMPLETE. */
SOP_API int sop_cursor_key(sop_cursor *c, sop_val *key);

/** @brief Reads the key and the value at the cursor (either may be NULL;
 *  a NULL @p val does not load a value stored in its own blob).
 *  @return SOP_OK; SOP_EINCOMPLETE; common errors. */
SOP_API int sop_cursor_get(sop_cursor *c, sop_val *key, sop_val *val);

/** @brief Replaces the value at the cursor; the cursor stays.
 *  @return SOP_OK; SOP_EINCOMPLETE; common errors. */
SOP_API int sop_cursor_update(sop_cursor *c, const sop_val *val);

/** @brief Replaces the key at the cursor with one that compares equal to it
 *  under the store's order but has other bytes (metadata-carrying keys).
 *  @return SOP_OK; -EINVAL (does not compare equal); SOP_EINCOMPLETE. */
SOP_API int sop_cursor_update_key(sop_cursor *c, const sop_val *key);

/** @brief Removes the item at the cursor and moves to the item after it.
 *  @return SOP_OK; SOP_ENOTFOUND (removed the last item: unpositioned);
 *          SOP_EINCOMPLETE; common errors. */
SOP_API int sop_cursor_remove(sop_cursor *c);

/** A range for sop_scan(). NULL bounds are open. */
typedef struct sop_range {
    const sop_val *from;  /**< lower bound (NULL: from the first item) */
    const sop_val *to;    /**< upper bound (NULL: to the last item) */
    int from_exclusive;   /**< 1: skip items equal to @c from */
    int to_exclusive;     /**< 1: stop before items equal to @c to */
    int reverse;          /**< 1: from @c to down to @c from */
    uint64_t offset;      /**< items skipped first (paging) */
    uint64_t limit;       /**< at most this many items (0: no limit) */
    int keys_only;        /**< 1: values are not loaded (val is {NULL,0}) */
} sop_range;

/** Callback of sop_scan(); non-zero stops the scan and is returned. Key and
 *  value are valid during the call. */
typedef int (*sop_scan_fn)(const sop_val *key, const sop_val *val, void *ctx);

/** @brief Calls @p fn for each item of @p r, in order (or reverse order).
 *  @return SOP_OK; what @p fn returned; common errors. */
SOP_API int sop_scan(sop_store *s, const sop_range *r, sop_scan_fn fn, void *ctx);

/* ------------------------------------------------------------------ */
/* Streaming values                                                   */
/* ------------------------------------------------------------------ */
/*
 * A streaming store holds values of any size (up to 2^63 - 1 bytes),
 * written and read in chunks, so that neither the caller nor the engine
 * ever holds a whole value in memory: a handle buffers at most one chunk,
 * and every complete chunk is appended to the database's log at once (the
 * transaction keeps only where it is). Design: docs/design/streaming.md.
 *
 * Layout: the value of key K is the items (K followed by the chunk index
 * as 8 big-endian bytes) -> chunk bytes, for chunks 0..n-1, each of the
 * store's chunk_bytes except the last (1..chunk_bytes bytes). A value of 0
 * bytes has no chunks: the key is then absent. Those items can be read
 * with sop_get(), cursors and sop_scan(); sop_add(), sop_update(),
 * sop_upsert(), sop_remove() and sop_incr() on a streaming store return
 * -EINVAL. Do not change them with sop_cursor_update() or
 * sop_cursor_remove(): a value whose chunks do not follow the layout reads
 * as SOP_EFORMAT.
 *
 * Transactions: every call works inside the store's transaction. Its
 * commit makes all the changes of all its handles visible at once (a
 * handle's buffered bytes are written first); a rollback, a failed commit
 * or a crash leaves nothing visible, and the chunks already written become
 * dead log space that compaction reclaims. A WRITE transaction that read
 * or wrote a value conflicts (SOP_ECONFLICT at commit) with a concurrent
 * commit that changed a B-tree node it read or changed; writes of
 * streamed values are never merged (see "Isolation" at the top), so two
 * transactions streaming different keys whose chunk items share a leaf
 * conflict too: retry. SOP_TXN_READ transactions read a snapshot.
 *
 * Memory: a handle holds one chunk (chunk_bytes) and the key; the
 * transaction holds about 150 bytes per chunk it wrote (the B-tree items
 * and the chunk's location) until it ends. A transaction's maximum
 * duration (sop_txn_begin()'s max_ms) bounds a long stream: give it room.
 *
 * Several handles: any number of handles may be open on one key in one
 * transaction, each with its own read position. Before any call on a
 * handle, the bytes that the other handles of the same transaction
 * buffered for that key are written, so every handle sees everything the
 * others did (reads after writes in the same transaction see the writes).
 * Appends always go to the current end of the value.
 *
 * Common errors of the sop_stream_* calls below: -EINVAL (NULL handle or
 * arguments), SOP_ETXNDONE (the transaction ended badly earlier: roll it
 * back), SOP_ETIMEDOUT, SOP_EREADONLY (a write in a READ transaction),
 * SOP_ENOTFOUND (the store was removed in this transaction), SOP_EFORMAT
 * (the chunk items of the value do not follow the layout), SOP_ECORRUPT,
 * SOP_EPANIC, SOP_EFULL (writing a chunk), -EIO, -ENOMEM. A failed write
 * other than a bad argument fails the transaction (roll it back).
 *
 * Thread safety: as every object of a transaction, one thread at a time.
 * A handle lives until sop_stream_close() or the end of its transaction,
 * whichever comes first: do not close it after the transaction ended.
 */

#define SOP_STREAM_CHUNK_DEFAULT (1u << 20) /**< chunk size when 0 is given: 1 MiB */
#define SOP_STREAM_CHUNK_MIN 4096u          /**< smallest chunk size */

/** A handle on the streamed value of one key (opaque). */
typedef struct sop_stream sop_stream;

/* Flags of sop_stream_open() */
#define SOP_STREAM_CREATE 0x1 /**< an absent key opens as an empty value */
#define SOP_STREAM_TRUNC 0x2  /**< delete the value first (write transactions) */

/** @brief Creates streaming store @p name in @p txn (rolled back with it):
 *  sop_store_create() with unique keys, SOP_ORDER_BYTES and
 *  sop_store_options.chunk_bytes = @p chunk_bytes (0: SOP_STREAM_CHUNK_DEFAULT;
 *  else SOP_STREAM_CHUNK_MIN..SOP_VALUE_MAX). The chunk size is fixed
 *  for the life of the store.
 *  @param[out] storep handle valid until @p txn ends (do not free)
 *  @return SOP_OK; -EINVAL (chunk size out of range); the errors of
 *          sop_store_create(). */
SOP_API int sop_stream_store_create(sop_txn *txn, const char *name, uint32_t chunk_bytes,
                                    sop_store **storep);

/** @brief Opens existing streaming store @p name in @p txn.
 *  @param chunk_bytes 0: any chunk size; else the size the caller expects
 *  @param[out] storep handle valid until @p txn ends (do not free); NULL
 *         on failure
 *  @return SOP_OK; SOP_EMISMATCH (not a streaming store, or its chunks
 *          are not @p chunk_bytes); the errors of sop_store_open(). */
SOP_API int sop_stream_store_open(sop_txn *txn, const char *name, uint32_t chunk_bytes,
                                  sop_store **storep);

/** @brief Opens a handle on the value of @p key in streaming store @p s,
 *  positioned at offset 0. The key is copied.
 *  @param key at most (store key limit - 8) bytes: 1000 with the default
 *         node size; may be empty
 *  @param flags SOP_STREAM_CREATE, SOP_STREAM_TRUNC (or 0: the value must
 *         exist)
 *  @param[out] streamp the handle (NULL on failure); freed by
 *         sop_stream_close() or at the end of the transaction
 *  @return SOP_OK; SOP_ENOTFOUND (no value, without SOP_STREAM_CREATE);
 *          SOP_EMISMATCH (@p s is not a streaming store); SOP_ETOOBIG (key
 *          too long); -EINVAL (unknown flags); SOP_EREADONLY
 *          (SOP_STREAM_TRUNC in a READ transaction); common errors. */
SOP_API int sop_stream_open(sop_store *s, const sop_val *key, unsigned flags,
                            sop_stream **streamp);

/** @brief Appends @p len bytes at the end of the value (whatever the read
 *  position). Bytes are buffered up to a whole chunk; each complete chunk
 *  is written to the log at once.
 *  @return SOP_OK; SOP_ETOOBIG (the value would pass 2^63 - 1 bytes:
 *          nothing appended); common errors. */
SOP_API int sop_stream_append(sop_stream *st, const void *data, size_t len);

/** @brief Reads up to @p cap bytes from the read position into @p buf and
 *  advances it.
 *  @param[out] got bytes read: less than @p cap only at the end of the
 *         value (0 there)
 *  @return SOP_OK; common errors. */
SOP_API int sop_stream_read(sop_stream *st, void *buf, size_t cap, size_t *got);

/** @brief Moves the read position to byte @p offset (chunk i starts at
 *  i * sop_stream_chunk_bytes()).
 *  @return SOP_OK; -EINVAL (past the end of the value); common errors. */
SOP_API int sop_stream_seek(sop_stream *st, uint64_t offset);

/** @brief The read position. @return SOP_OK; -EINVAL. */
SOP_API int sop_stream_tell(sop_stream *st, uint64_t *offset);

/** @brief The value's size in bytes and number of chunks (either pointer
 *  may be NULL). @return SOP_OK; common errors. */
SOP_API int sop_stream_stat(sop_stream *st, uint64_t *size, uint64_t *chunks);

/** @brief The chunk size of the handle's store (0 for NULL). */
SOP_API uint32_t sop_stream_chunk_bytes(const sop_stream *st);

/** @brief Replaces chunk @p index with @p len bytes, or adds it when
 *  @p index is the number of chunks. Every chunk but the last holds
 *  exactly the chunk size, so: a chunk before the last takes exactly
 *  chunk_bytes; the last takes 1..chunk_bytes (the value's size changes
 *  accordingly); a new chunk needs a full last chunk before it.
 *  @return SOP_OK; -EINVAL (@p len 0 or above the chunk size, a length
 *          that breaks the layout, @p index past the number of chunks:
 *          nothing changed); common errors. */
SOP_API int sop_stream_put_chunk(sop_stream *st, uint64_t index, const void *data, size_t len);

/** @brief Sets the value's size to @p size bytes: drops the bytes after it
 *  (0 deletes the value), or appends zero bytes up to it. A read position
 *  past the new end moves to the end.
 *  @return SOP_OK; SOP_ETOOBIG (above 2^63 - 1); common errors. */
SOP_API int sop_stream_truncate(sop_stream *st, uint64_t size);

/** @brief Deletes the whole value (all its chunks); the handle stays open
 *  on the now absent key, at offset 0.
 *  @return SOP_OK; SOP_ENOTFOUND (no value); common errors. */
SOP_API int sop_stream_delete(sop_stream *st);

/** @brief Writes the handle's buffered bytes and frees it. NULL is
 *  ignored. The handle is freed also on failure.
 *  @return SOP_OK; common errors (of writing the buffered bytes: the
 *          transaction then fails). */
SOP_API int sop_stream_close(sop_stream *st);

#ifdef __cplusplus
}
#endif
#endif /* SOP_SOP_H */
