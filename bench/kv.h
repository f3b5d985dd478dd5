/*
 * kv.h - the key-value suite of sop-bench: the interface every engine
 * (sop, LMDB, SQLite) implements, and the data every engine is given.
 *
 * Data (db_bench shape): key i is the 16 ASCII digits of i, zero-padded
 * ("0000000000000042"), so byte order is numeric order; the value of key i
 * in generation g is 100 bytes taken from a 1 MiB buffer of seeded random
 * bytes at an offset derived from (i, g). Everything derives from --seed.
 */
#ifndef SOP_BENCH_KV_H
#define SOP_BENCH_KV_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define KV_KEY_LEN 16
#define KV_VAL_LEN 100
#define KV_VALBUF_LEN (1u << 20)

/** What a workload asks of the engine's sync mode. Engines whose variant is
 *  "nosync" ignore it and never sync. */
typedef enum kv_sync {
    KV_SYNC_BATCH = 0, /**< batched fills: sop FULL, LMDB default, SQLite NORMAL */
    KV_SYNC_EACH = 1   /**< every commit durable: sop FULL, LMDB default, SQLite FULL */
} kv_sync;

/** Counters an engine fills while reading; the driver checks them. */
typedef struct kv_stat {
    uint64_t found;   /**< point reads that found their key */
    uint64_t missing; /**< point reads that did not */
    uint64_t bad;     /**< wrong value / key order / length */
    uint64_t items;   /**< items visited by scans */
    uint64_t retries; /**< write transactions retried (conflict / busy) */
    uint64_t sum;     /**< checksum so that reads are not optimised away */
} kv_stat;

typedef struct kv_db kv_db;     /* engine-specific database handle */
typedef struct kv_sess kv_sess; /* engine-specific per-thread session */

/** One engine. Functions return 0 or -1; on -1 kv_err() says why. */
typedef struct kv_engine {
    const char *name; /**< "sop", "lmdb-nosync", ... */
    const char *peer_of; /**< for "-nosync" variants: the durable sibling */
    int nosync;       /**< 1: never syncs (matched with the other nosync variants) */
    /** Opens (creating) the database in directory @p dir; writes a short
     *  description of the sync mode in effect into @p desc. */
    int (*open)(const struct kv_engine *e, const char *dir, kv_sync sync, uint64_t n_hint,
                kv_db **out, char *desc, size_t desclen);
    void (*close)(kv_db *db);
    /** A session is used by one thread. */
    int (*sess_open)(kv_db *db, kv_sess **out);
    void (*sess_close)(kv_sess *s);
    /** Upserts keys @p ids (values of generation @p gen) in one write
     *  transaction (retried on conflict). */
    int (*put)(kv_sess *s, const uint32_t *ids, size_t n, uint32_t gen, kv_stat *st);
    /** Point reads of @p ids in one read transaction. @p verify: compare the
     *  value with generation 0 (else only its length is checked). */
    int (*get)(kv_sess *s, const uint32_t *ids, size_t n, int verify, kv_stat *st);
    /** In one read transaction, for each id: seek to the first key >= it
     *  and read up to @p len items in order. */
    int (*scan)(kv_sess *s, const uint32_t *ids, size_t n, size_t len, kv_stat *st);
    /** Reads every item in key order in one read transaction. */
    int (*read_all)(kv_sess *s, kv_stat *st);
} kv_engine;

/* ---- data, shared by the engines ---- */

extern unsigned char kv_valbuf[KV_VALBUF_LEN + KV_VAL_LEN];

void kv_data_init(uint64_t seed);

static inline void kv_key(uint32_t id, unsigned char out[KV_KEY_LEN])
{
    for (int i = KV_KEY_LEN - 1; i >= 0; i--) {
        out[i] = (unsigned char)('0' + id % 10);
        id /= 10;
    }
}

static inline const unsigned char *kv_val(uint32_t id, uint32_t gen)
{
    uint32_t off = (id * 2654435761u + gen * 40503u) & (KV_VALBUF_LEN - 1);
    return kv_valbuf + off;
}

/** Checks a value read for key @p id; returns 1 if it is good. */
static inline int kv_check_val(uint32_t id, int verify, const void *v, size_t len)
{
    if (len != KV_VAL_LEN)
        return 0;
    return !verify || memcmp(v, kv_val(id, 0), KV_VAL_LEN) == 0;
}

/** Parses the 16-digit key back to its id; returns -1 if malformed. */
int64_t kv_key_id(const void *k, size_t len);

/* ---- errors: a per-thread message ---- */
void kv_set_err(const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 1, 2)))
#endif
    ;
const char *kv_err(void);

/* ---- the engines ---- */
extern const kv_engine kv_engine_lmdb;
extern const kv_engine kv_engine_lmdb_nosync;
extern const kv_engine kv_engine_sqlite;
extern const kv_engine kv_engine_sqlite_nosync;
#ifndef SOP_BENCH_NO_SOP
extern const kv_engine kv_engine_sop;
extern const kv_engine kv_engine_sop_nosync;
/** --replica DIR: the sop engines open each database with a replica
 *  folder, DIR/<engine>-<database> (NULL: none). */
extern const char *kv_sop_replica;
#endif

/** The kv subcommand. */
int bench_kv_main(int argc, char **argv);

#endif /* SOP_BENCH_KV_H */
