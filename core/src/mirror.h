/*
 * mirror.h - replicated database directory, active/passive over two
 * folders (design: docs/design/replication.md). Internal to the mirror
 * layer: vfs_mirror.c (the stacking VFS and its failover), mirror_state.c
 * (the replica.state file), mirror_copy.c (reinstatement and the crash
 * reconcile), mirror_api.c (sop_db_reinstate, sop_db_replica_status).
 *
 * Folder 0 is the database directory, folder 1 the replica folder.
 */
#ifndef SOP_MIRROR_H
#define SOP_MIRROR_H
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include "sop/sop.h"

#define SOP__MSTATE_NAME "replica.state"
#define SOP__MSTATE_DIRTY 64 /* segments tracked while the passive is stale */
#define SOP__MSTATE_NAMELEN 24

/* Where a stale folder's copy of a segment may differ from the active's:
 * from byte @from on (everything before it is identical). */
typedef struct sop__mdirty {
    char name[SOP__MSTATE_NAMELEN];
    uint64_t from;
} sop__mdirty;

/* The replication state, as persisted in replica.state. */
typedef struct sop__mstate {
    uint64_t gen;   /* bumped by every persisted change */
    int active;     /* 0 or 1 */
    int insync;     /* the other folder has every write */
    int full;       /* stale, and the dirty table overflowed or is unknown:
                       reinstatement copies every segment whole */
    uint32_t ndirty;
    sop__mdirty dirty[SOP__MSTATE_DIRTY];
} sop__mstate;

/* ---- mirror_state.c ---- */
/* Reads the replica.state of @folder (folder number @idx): SOP_OK (*st
 * filled), -ENOENT (no state file or no folder), SOP_ECORRUPT (no valid
 * copy), SOP_EMISMATCH (the copy was written for the other folder: the
 * paths were swapped), or another negative errno (unreadable). */
int sop__mstate_read(sop_vfs *base, const char *folder, int idx, sop__mstate *st);
/* Writes @st into @folder's replica.state (slot gen & 1) and syncs it; a
 * missing file is created with both slots (and the folder synced). */
int sop__mstate_write(sop_vfs *base, const char *folder, int idx, const sop__mstate *st,
                      unsigned mode);
/* Lowers (or adds) the dirty start of segment @name to @from. Returns 1 when
 * the table changed. */
int sop__mstate_note(sop__mstate *st, const char *name, uint64_t from);
/* The dirty start recorded for @name (UINT64_MAX: none; 0 when full). */
uint64_t sop__mstate_dirty_from(const sop__mstate *st, const char *name);
/* 1 for the names of segment files ("seg-" + 8 digits). */
int sop__mstate_is_seg(const char *name);
/* 1 for the files a reinstatement copies: segments, registry,
 * registry.dw, ckpt.0, ckpt.1. */
int sop__mstate_is_db_file(const char *name);

/* ---- mirror_copy.c ---- */
/* Where to start copying each segment (whole small files always). */
typedef struct sop__mplan {
    int compare;              /* read the destination, write only what differs */
    const sop__mstate *table; /* stale table (NULL: none) */
    const sop__mstate *since; /* writes since phase 1 began (NULL: none) */
    int since_only;           /* catch-up: small files only when in @since */
    int use_ckpt;             /* segments before the checkpoint are identical */
    uint32_t ckpt_seg;
    uint64_t ckpt_off;
    int (*go_on)(void *);     /* NULL, or asked before each chunk: non-zero stops */
    void *go_arg;
} sop__mplan;

typedef struct sop__mcopy_stat {
    uint64_t bytes;   /* bytes written to the destination */
    uint64_t files;   /* files written, created or removed */
    uint64_t skipped; /* bytes of segments known identical and not copied */
} sop__mcopy_stat;

/* Makes the database files of folder @dst equal to those of @src, as the
 * plan says (see mirror_copy.c). *failed gets the folder (0/1) whose
 * operation failed. The destination's files are synced, then the folder. */
int sop__mirror_copy(sop_vfs *base, const char *src, const char *dst, const sop__mplan *plan,
                     unsigned mode, sop__mcopy_stat *st, const char **failed);
/* The newest valid checkpoint record of @folder (db.c's format): its
 * segment and offset. SOP_OK, -ENOENT (none valid), or an I/O error. */
int sop__mirror_ckpt(sop_vfs *base, const char *folder, uint32_t *seg, uint64_t *off);

/* ---- vfs_mirror.c (for mirror_api.c) ---- */
typedef struct sop__mirror sop__mirror;
sop__mirror *sop__mirror_of(sop_vfs *vfs);
/* Reinstates the stale folder: phase 1 copies while the database is in
 * use; @lock/@unlock (with @arg) are called around phase 2 (the final
 * catch-up, which also blocks every I/O of the layer). SOP_OK when the
 * folders are (now) in sync. */
int sop__mirror_reinstate(sop__mirror *m, int (*lock)(void *), void (*unlock)(void *), void *arg);
void sop__mirror_status(sop__mirror *m, sop_replica_status *st);
/* Several processes (replication.md "Several processes"). @pub points at
 * the state generation published to every process that has the database
 * open (the shared area; in clustered mode a private copy that cluster.c
 * raises from Redis). Before each call the layer compares it with the
 * last one it acted on and, when it is newer, adopts the persisted state
 * first. @tell (NULL: none needed, the memory is shared) makes a new
 * generation known to the other processes; the layer calls it after every
 * state change it persists, and after a failover it serves nothing (-EIO)
 * until @tell succeeded. A failover this layer made while reading the
 * state at open is told now: its error is returned. NULL @pub detaches. */
int sop__mirror_share(sop__mirror *m, atomic_uint_fast64_t *pub, int (*tell)(void *, uint64_t),
                      void *arg);
/* Re-reads the persisted state (under the state lock), adopts it when it
 * is newer, and returns the generation this process now follows. */
uint64_t sop__mirror_reread(sop__mirror *m);
/* The pass the engine's first opener triggers with its exclusive open lock
 * (crash reconcile of an in-sync passive, or reinstatement of a stale
 * one), for openers that coordinate otherwise (clustered mode: the commit
 * lease, no other live process); it runs once per layer. With
 * @reconcile_only, the crash reconcile alone, every time (a writer died
 * holding the commit lock while others have the database open). @go_on
 * (may be NULL) is asked before each MiB copied or compared: non-zero
 * stops the pass (the lease that keeps others out is lost). */
void sop__mirror_open_pass(sop__mirror *m, int reconcile_only, int (*go_on)(void *), void *arg);

/* ---- mirror_api.c (for db.c, shared.c, cluster.c) ---- */
/* Connects the layer of @db (if it has a replica folder) to the other
 * processes: db->shm->mirror_gen, and in clustered mode Redis. */
int sop__db_mirror_attach(sop_db *db);
void sop__db_mirror_detach(sop_db *db);
/* sop__mirror_reread() of @db's layer; 0 without a replica folder. */
uint64_t sop__db_mirror_reread(sop_db *db);
/* sop__mirror_open_pass() of @db's layer, if any, under the commit lock
 * (in clustered mode the pass stops if the lease is lost). */
void sop__db_mirror_open_pass(sop_db *db, int reconcile_only);
/* Details of the last setup or reinstatement failure of the calling
 * thread ("" if none). */
const char *sop__mirror_why(void);

#endif
