/*
 * shared.h - what the processes that have one database open share.
 *
 * The file LOCK holds byte-range locks and, from offset 4096, a shared
 * memory area (sop_vfs.shm_map) of this layout. With a VFS that cannot map
 * shared memory the area is private and the database is opened by one
 * process at a time.
 *
 * Locks (bytes of LOCK):
 *   0        open: exclusive while the first opener recovers, then shared
 *            by every process that has the database open
 *   1        commit: exclusive while a process catches up with the log,
 *            validates, appends and applies a commit, or checkpoints
 *   16 + i   reader slot i: held exclusively by the process owning it, so
 *            a dead owner's slot is found free
 *
 * Every field is only ever increased (atomic max or fetch-add), except
 * tail, cur ckpt fields (written under the commit lock) and the slots.
 *
 * mirror_gen: the generation of the replica state (replica.state, see
 * docs/design/replication.md "Several processes") that a process raised
 * when it failed over or marked a folder stale, before serving any call
 * from the new state; every process compares it with what it adopted last
 * before each call of the mirror layer. In clustered mode the area is
 * private and cluster.c raises this field from Redis instead.
 */
#ifndef SOP_SHARED_H
#define SOP_SHARED_H
#include <stdatomic.h>
#include <stdint.h>

#define SOP__SHM_OFF 4096
#define SOP__SHM_MAGIC 0x3153484d504f53ull /* "SOPMHS1" */
#define SOP__SHM_SLOTS 120
#define SOP__LOCK_OPEN 0
#define SOP__LOCK_COMMIT 1
#define SOP__LOCK_SLOT0 16

typedef struct sop__slot_shm {
    atomic_uint_fast64_t pid;  /* 0: free */
    atomic_uint_fast64_t snap; /* oldest snapshot of the owner's open transactions */
    atomic_uint_fast64_t applied_seg; /* segment up to which the owner followed the log */
} sop__slot_shm;

typedef struct sop__shm {
    atomic_uint_fast64_t magic;
    atomic_uint_fast64_t tail;        /* end of the log: segment << 40 | offset */
    atomic_uint_fast64_t csn;         /* last commit appended */
    atomic_uint_fast64_t durable_csn; /* last commit known durable */
    atomic_uint_fast64_t next_id;     /* ids are handed out in chunks from here */
    atomic_uint_fast64_t next_seq;    /* duplicate-key sequence */
    atomic_uint_fast64_t ckpt_no;     /* last checkpoint */
    atomic_uint_fast64_t ckpt_seg;    /* where its replay starts */
    sop__slot_shm slot[SOP__SHM_SLOTS];
    atomic_uint_fast64_t mirror_gen;  /* replica state generation published */
} sop__shm;

#define SOP__SHM_SIZE 4096
_Static_assert(sizeof(sop__shm) <= SOP__SHM_SIZE, "shared area too large");

static inline uint64_t sop__tail_pack(uint32_t seg, uint64_t off) { return ((uint64_t)seg << 40) | off; }
static inline void sop__atomic_max(atomic_uint_fast64_t *a, uint64_t v)
{
    uint_fast64_t cur = atomic_load(a);
    while (cur < v && !atomic_compare_exchange_weak(a, &cur, v))
        ;
}

#endif
