/*
 * cluster.h - clustered mode: the coordination that shared.c does through
 * the lock file and shared memory for the processes of one machine, done
 * through Redis for processes anywhere (each its own host as far as the
 * engine knows). Design and failure cases: docs/design/clustered.md.
 *
 * Redis keys, all under "sop:<database id>:" (the id is the file
 * cluster.id of the database directory, so two databases can share one
 * Redis and one database can be mounted at different paths):
 *   lock   the commit lock: SET token NX PX lease, released by a
 *          compare-and-delete script; never given a TTL-less value
 *   state  hash: epoch, run_id, base_id, csn, durable, next_id, next_seq,
 *          mgen (the replica state's generation, docs/design/replication.md),
 *          holder (the token of the lock's holder until it releases it)
 *   procs  hash: process id -> "snapshot segment expiry_ms"
 *   n:<seg>:<off>     image records (the L2 cache), with a TTL
 * Redis holds no data: everything in "state" is derived from the log and
 * is re-derived (a new epoch) when Redis lost it (restart, FLUSHALL).
 */
#ifndef SOP_CLUSTER_H
#define SOP_CLUSTER_H
#include <stdint.h>

#include "sop/sop.h"

typedef struct sop__cluster sop__cluster;

/* Connects and names the keys (db->path set, LOCK open). */
int sop__cl_open(sop_db *db);
/* Stops the heartbeat, removes this process from "procs", disconnects. */
void sop__cl_close(sop_db *db);
/* After the database is loaded: registers this process and starts its
 * heartbeat thread. */
int sop__cl_start(sop_db *db);
/* Registers this process in "procs" now (the heartbeat thread keeps it
 * there): an opener does it under the commit lock, so that whoever takes
 * the lock next sees it. */
int sop__cl_register(sop_db *db);
/* Takes the commit lock (commit_mu held). SOP_EBUSY after waiting
 * 3 leases; SOP_EREDIS. */
int sop__cl_lock(sop_db *db);
/* Whether the lock just taken was left by a holder that never released it
 * (it died or lost its lease, maybe between two writes of one call). */
int sop__cl_holder_died(sop_db *db);
/* After following the log under the lock: when Redis lost its state,
 * waits out every earlier lease and publishes a new epoch. */
int sop__cl_locked(sop_db *db);
/* Publishes what this process knows and releases the lock. */
void sop__cl_unlock(sop_db *db);
/* Whether the lock is held with enough lease left to write; renews it
 * when half of it is gone. SOP_EREDIS (the lease is lost: write nothing). */
int sop__cl_lease_ok(sop_db *db);
/* Learns the last commit and the durable one (transaction begin). */
int sop__cl_peek(sop_db *db, uint64_t *csn, uint64_t *durable);
/* Raises the replica state's generation published in "state" (field
 * mgen; sop__cl_lock and sop__cl_peek raise db->shm->mirror_gen from it).
 * SOP_EREDIS. */
int sop__cl_mgen(sop_db *db, uint64_t gen);
/* The current epoch (a transaction records it at begin). */
uint64_t sop__cl_epoch(sop_db *db);
/* Publishes that commits up to @csn are durable. */
void sop__cl_durable(sop_db *db, uint64_t csn);
/* @n fresh ids / duplicate-key sequence numbers. SOP_EREDIS. */
int sop__cl_ids(sop_db *db, uint64_t n, uint64_t *first);
int sop__cl_seq(sop_db *db, uint64_t *seq);
/* The oldest snapshot and segment any other live process may still read;
 * *others: how many live processes were found. */
int sop__cl_oldest(sop_db *db, uint64_t *snap, uint32_t *seg, int *others);
/* L2 cache of image records, keyed by their location in the log (never
 * reused: segment numbers only grow, and bytes are rewritten only past the
 * end of the valid records), so a cached record is never a stale version;
 * its CRC and id are checked as a read from the segment's are.
 * get: 0 with @len bytes in @buf when Redis has them. */
int sop__cl_cache_get(sop_db *db, uint32_t seg, uint64_t off, uint32_t len, uint8_t *buf);
void sop__cl_cache_put(sop_db *db, uint32_t seg, uint64_t off, const uint8_t *rec, uint32_t len);
/* Round trips to Redis so far. */
uint64_t sop__cl_calls(sop_db *db);

#endif
