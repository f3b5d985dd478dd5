/*
 * db.c - opening, recovering, checkpointing and closing a database.
 *
 * Files of a database directory:
 *   LOCK          byte-range locks between processes
 *   registry      logical id -> handle blocks (registry.h)
 *   registry.dw   double-write copy of the blocks of the last checkpoint
 *   ckpt.0/ckpt.1 checkpoint records, written alternately (below)
 *   seg-NNNNNNNN  append-only segments of images and commits (log.h)
 *
 * Checkpoint record (64 bytes, little-endian):
 *   0 u32 CRC32C of bytes 4..63   4 u32 magic "SOPC"   8 u32 format (1)
 *   12 u32 segment   16 u64 offset (replay starts here)   24 u64 ckpt no
 *   32 u64 csn       40 u64 next id   48 u64 next duplicate sequence
 *   56..63 zero
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bytes.h"
#include "crc32c.h"
#include "cluster.h"
#include "internal.h"
#include "vfs_file.h"
#include "vfs_stack.h"
#include "killpoint.h"
#include "mem.h"
#include "mirror.h"

#define CKPT_MAGIC 0x43504F53u
#define CKPT_FORMAT 1
#define CKPT_SIZE 64

uint64_t sop__now_ns(void)
{
    /* for deadlines, checked on every call: the coarse clock (a few ms of
     * resolution) costs a few nanoseconds */
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

void sop_db_options_init(sop_db_options *o)
{
    memset(o, 0, sizeof *o);
    o->struct_size = sizeof *o;
    o->mode = SOP_STANDALONE;
    o->sync = SOP_SYNC_FULL;
    o->flags = SOP_DB_CREATE;
    o->cache_bytes = 64u << 20;
    o->txn_max_ms = 60000;
    o->segment_bytes = 64u << 20;
    o->checkpoint_bytes = 64u << 20;
    o->file_mode = 0600;
    o->vfs = NULL;
}

static char *path_join(const char *dir, const char *name)
{
    size_t n = strlen(dir) + strlen(name) + 2;
    char *p = sop__malloc(n);
    if (p)
        snprintf(p, n, "%s/%s", dir, name);
    return p;
}

/* Makes the entry of a newly created directory durable. */
static int sync_parent(sop_db *db, const char *path)
{
    size_t n = strlen(path);
    while (n > 1 && path[n - 1] == '/')
        n--;
    while (n > 0 && path[n - 1] != '/')
        n--;
    char *parent = n ? sop__memdup(path, n + 1) : sop__strdup(".");
    if (!parent)
        return -ENOMEM;
    if (n)
        parent[n] = 0;
    int rc = db->vfs->sync_dir(db->vfs, parent);
    if (rc)
        rc = sop__err(db, rc, "cannot sync directory %s", parent);
    sop__free(parent);
    return rc;
}

typedef struct ckpt {
    uint32_t seg;
    uint64_t off, no, csn, next_id, next_seq;
} ckpt;

static int read_ckpt(sop_db *db, int slot, ckpt *c)
{
    char name[16];
    snprintf(name, sizeof name, "ckpt.%d", slot);
    char *path = path_join(db->path, name);
    if (!path)
        return -ENOMEM;
    uint8_t b[CKPT_SIZE];
    size_t got = 0;
    int rc = sop__vfs_read_head(db->vfs, path, b, sizeof b, &got);
    sop__free(path);
    if (rc)
        return rc;
    if (got < CKPT_SIZE || sop__get32(b + 4) != CKPT_MAGIC ||
        sop__get32(b) != sop__crc32c(b + 4, CKPT_SIZE - 4, 0))
        return SOP_ECORRUPT;
    if (sop__get32(b + 8) != CKPT_FORMAT)
        return SOP_EVERSION;
    c->seg = sop__get32(b + 12);
    c->off = sop__get64(b + 16);
    c->no = sop__get64(b + 24);
    c->csn = sop__get64(b + 32);
    c->next_id = sop__get64(b + 40);
    c->next_seq = sop__get64(b + 48);
    return 0;
}

static int best_ckpt(sop_db *db, ckpt *out, int *found);

/* Caller holds commit_mu. Makes everything appended durable, writes the
 * registry (double write), then the checkpoint record. */
static int ckpt_write(sop_db *db)
{
    sop__log *l = &db->log;
    int rc = sop__log_sync(l, l->cur, l->end, db);
    if (rc)
        goto fail;
    if (db->cl) {
        /* other hosts checkpoint too, and no shared memory says so: the
         * files do (read under the commit lock, no checkpoint is running) */
        ckpt cur = {0};
        int found = 0;
        rc = best_ckpt(db, &cur, &found);
        if (rc)
            goto fail;
        if (found && cur.no > atomic_load(&db->shm->ckpt_no)) {
            atomic_store(&db->shm->ckpt_no, cur.no);
            atomic_store(&db->shm->ckpt_seg, cur.seg);
        }
    }
    uint64_t no = atomic_load(&db->shm->ckpt_no) + 1;
    rc = sop__reg_checkpoint(&db->reg, no, db);
    if (rc)
        goto fail;
    SOP_KILL_POINT("checkpoint:before_ckpt");
    uint8_t b[CKPT_SIZE] = {0};
    sop__put32(b + 4, CKPT_MAGIC);
    sop__put32(b + 8, CKPT_FORMAT);
    sop__put32(b + 12, l->cur);
    sop__put64(b + 16, l->end);
    sop__put64(b + 24, no);
    sop__put64(b + 32, atomic_load(&db->csn));
    sop__put64(b + 40, atomic_load(&db->shm->next_id));
    sop__put64(b + 48, atomic_load(&db->shm->next_seq));
    sop__put32(b, sop__crc32c(b + 4, CKPT_SIZE - 4, 0));
    char name[16];
    snprintf(name, sizeof name, "ckpt.%d", (int)(no & 1));
    char *path = path_join(db->path, name);
    if (!path)
        return -ENOMEM;
    sop_file *f;
    rc = db->vfs->open(db->vfs, path, SOP_O_RDWR | SOP_O_CREATE, db->opt.file_mode, &f);
    if (!rc) {
        rc = db->vfs->write(db->vfs, f, b, sizeof b, 0);
        if (!rc)
            rc = db->vfs->sync(db->vfs, f);
        db->vfs->close(db->vfs, f);
    }
    if (rc)
        rc = sop__err(db, rc, "cannot write checkpoint %s", path);
    sop__free(path);
    if (rc)
        goto fail;
    atomic_store(&db->shm->ckpt_no, no);
    atomic_store(&db->shm->ckpt_seg, l->cur);
    sop__atomic_max(&db->shm->durable_csn, atomic_load(&db->csn)); /* all synced */
    if (db->cl) /* the others too: commits recovered here were never published durable */
        sop__cl_durable(db, atomic_load(&db->csn));
    atomic_store(&db->since_ckpt, 0);
    atomic_fetch_add(&db->st_ckpts, 1);
    return 0;
fail:
    /* the log or the registry may now be ahead of what is durable */
    atomic_store(&db->panic, 1);
    return rc;
}

/* A checkpoint, then reclaiming space: emptied segments are deleted and,
 * when the files grew past twice the live data, segments are compacted
 * (and checkpointed again, so that they can go). */
int sop__db_checkpoint_locked(sop_db *db)
{
    int rc = ckpt_write(db);
    if (!rc)
        rc = sop__reap_locked(db);
    int moved = 0;
    if (!rc)
        rc = sop__compact_locked(db, &moved);
    if (!rc && moved && !(rc = ckpt_write(db)))
        rc = sop__reap_locked(db);
    return rc;
}

static int create_files(sop_db *db)
{
    static const char *names[] = {"registry", "registry.dw", "ckpt.0", "ckpt.1"};
    for (size_t i = 0; i < sizeof names / sizeof *names; i++) {
        char *p = path_join(db->path, names[i]);
        if (!p)
            return -ENOMEM;
        sop_file *f;
        int rc = db->vfs->open(db->vfs, p, SOP_O_RDWR | SOP_O_CREATE, db->opt.file_mode, &f);
        if (rc) {
            rc = sop__err(db, rc, "cannot create %s", p);
            sop__free(p);
            return rc;
        }
        db->vfs->close(db->vfs, f);
        sop__free(p);
    }
    int rc = db->vfs->sync_dir(db->vfs, db->path);
    return rc ? sop__err(db, rc, "cannot sync directory %s", db->path) : 0;
}

/* Creates the catalog's root when recovery did not find it. */
static int create_catalog(sop_db *db)
{
    sop_txn *txn;
    int rc = sop_txn_begin(db, SOP_TXN_WRITE, 0, &txn);
    if (rc)
        return rc;
    sop__tree t;
    uint64_t root = 0;
    rc = sop__catalog_tree(txn, &t);
    if (!rc)
        rc = sop__bt_create(&t, &root);
    if (!rc && root != SOP__CATALOG_ROOT)
        rc = sop__err(db, SOP_ECORRUPT, "catalog root got id %llu", (unsigned long long)root);
    if (rc) {
        sop_txn_rollback(txn);
        return rc;
    }
    return sop_txn_commit(txn);
}

/* The newest valid checkpoint record, or NULL (*none* valid). */
static int best_ckpt(sop_db *db, ckpt *out, int *found)
{
    ckpt c[2];
    int v0 = read_ckpt(db, 0, &c[0]), v1 = read_ckpt(db, 1, &c[1]);
    if (v0 == SOP_EVERSION || v1 == SOP_EVERSION)
        return sop__err(db, SOP_EVERSION, "database %s has an unsupported format version", db->path);
    *found = 0;
    if (!v0) {
        *out = c[0];
        *found = 1;
    }
    if (!v1 && (!*found || c[1].no > out->no)) {
        *out = c[1];
        *found = 1;
    }
    return 0;
}

/* Loads the registry and the log, and replays the commits after the last
 * checkpoint. Called by the first opener (alone: @first, which also repairs
 * an interrupted checkpoint and cuts a torn tail) or under the commit lock. */
static int load(sop_db *db, int first)
{
    int create = (db->opt.flags & SOP_DB_CREATE) && !(db->opt.flags & SOP_DB_RDONLY);
    ckpt best = {0};
    int found = 0;
    int rc = best_ckpt(db, &best, &found);
    if (rc)
        return rc;
    /* the first opener repairs what the checkpoint after the newest
     * record may have torn (none before: the first checkpoint) */
    uint64_t repair_upto = first ? (found ? best.no : 0) + 1 : 0;
    rc = sop__reg_open(&db->reg, db->vfs, db->path, db->opt.file_mode, create, repair_upto, db);
    db->reg_open = 1;
    if (rc)
        return rc;
    db->reg.id_chunk = sop__id_chunk;
    db->reg.id_arg = db;
    rc = sop__log_open(&db->log, db->vfs, db->path, db->opt.file_mode, db->opt.segment_bytes, db);
    db->log_open = 1;
    if (rc)
        return rc;
    rc = sop__cache_new(db->opt.cache_bytes, &db->cache);
    if (rc)
        return rc;
    if (found) {
        atomic_store(&db->csn, best.csn);
        sop__atomic_max(&db->shm->next_id, best.next_id);
        sop__atomic_max(&db->shm->next_seq, best.next_seq);
        if (first) {
            atomic_store(&db->shm->ckpt_no, best.no);
            atomic_store(&db->shm->ckpt_seg, best.seg);
        }
        uint64_t size = 0; /* records (and, in the last segment, zeros) */
        rc = sop__log_seg_size(&db->log, best.seg, &size);
        if (rc)
            return sop__err(db, rc, "cannot stat segment %u", best.seg);
        if (size < best.off)
            return sop__err(db, SOP_ECORRUPT, "segment %u is %llu bytes, shorter than the %llu "
                            "its checkpoint covers", best.seg, (unsigned long long)size,
                            (unsigned long long)best.off);
        sop__log_seek(&db->log, best.seg, best.off);
    } else {
        sop__log_seek(&db->log, db->log.first, 0);
    }
    /* the first opener is alone: it also cuts the preallocated zeros, which
     * after a power loss may hide stale bytes of a torn write */
    rc = sop__log_follow(&db->log, db->log.last, first ? SOP__FOLLOW_RECOVER : SOP__FOLLOW_CUT,
                         atomic_load(&db->csn), sop__apply_rec, db, db);
    if (rc)
        return rc;
    /* Every handle in the registry file was written by a checkpoint after
     * the log was synced up to its commit, and replay goes on from the
     * newest checkpoint record to the end of the log: it reaches every
     * such commit. A handle newer than the last commit replayed was not
     * made by this log (a registry or double-write file of another
     * database, or a log cut or lost before the checkpoint's position):
     * it would be hidden from every snapshot until new commits reused its
     * commit number, and then appear, so the files are refused now. */
    if (first && db->reg.file_csn > atomic_load(&db->csn))
        return sop__err(db, SOP_ECORRUPT, "registry: id %llu has commit %llu, but the log ends "
                        "at commit %llu", (unsigned long long)db->reg.file_csn_id,
                        (unsigned long long)db->reg.file_csn,
                        (unsigned long long)atomic_load(&db->csn));
    sop__atomic_max(&db->shm->next_id, db->reg.next_id);
    db->applied_tail = sop__tail_pack(db->log.cur, db->log.end);
    return 0;
}

static int recover(sop_db *db)
{
    int rc = load(db, 1);
    if (rc)
        return rc;
    SOP_KILL_POINT("open:after_replay");
    rc = sop__reg_rebuild_free(&db->reg);
    if (rc)
        return rc;
    sop__shm *m = db->shm;
    atomic_store(&m->csn, atomic_load(&db->csn));
    atomic_store(&m->durable_csn, atomic_load(&db->csn));
    atomic_store(&m->tail, db->applied_tail);
    if (!atomic_load(&m->next_id))
        atomic_store(&m->next_id, 1);
    return 0;
}

/* A process joining others: loads under the commit lock (no checkpoint
 * is writing the registry meanwhile). */
static int join(sop_db *db)
{
    int rc = 0;
    if (db->shm_mapped) {
        rc = db->vfs->lock(db->vfs, db->lockf, SOP__LOCK_COMMIT, 1, SOP_LOCK_EX, 1);
        if (rc)
            return sop__err(db, rc, "cannot take the commit lock");
    }
    rc = load(db, 0);
    if (db->shm_mapped)
        db->vfs->lock(db->vfs, db->lockf, SOP__LOCK_COMMIT, 1, SOP_LOCK_UN, 0);
    return rc;
}

/* After loading: creates the catalog of a new database and checkpoints
 * what recovery replayed. */
static int finish_open(sop_db *db)
{
    sop__handle root = sop__reg_get(&db->reg, SOP__CATALOG_ROOT);
    int fresh = !sop__handle_live(&root);
    int rc = 0;
    if (fresh) {
        if (db->opt.flags & SOP_DB_RDONLY)
            return sop__err(db, SOP_ECORRUPT, "database %s has no catalog", db->path);
        rc = create_catalog(db);
        if (rc && db->cl) {
            /* clustered: another process may have created it since this
             * one loaded (nothing holds others out during an open) */
            sop__learn(db);
            sop__handle r2 = sop__reg_get(&db->reg, SOP__CATALOG_ROOT);
            if (sop__handle_live(&r2)) {
                sop__err_clear(db);
                rc = 0;
            }
        }
        if (rc)
            return rc;
    }
    if (!(db->opt.flags & SOP_DB_RDONLY) && (db->replayed || fresh)) {
        rc = sop__commit_lock(db);
        if (!rc) {
            rc = sop__db_checkpoint_locked(db);
            sop__commit_unlock(db);
        }
    }
    return rc;
}

/* Clustered mode: no lock file locks and no shared memory; Redis
 * coordinates (cluster.c). Loads under the cluster's commit lock; when no
 * other live process is registered, recovers as a first opener would (and
 * the replica layer reconciles or reinstates its folders, as it does when
 * a standalone first opener takes the open lock exclusively). Registers
 * itself before releasing the lock, so that the next lock holder (an
 * opener, sop_db_reinstate) sees it. */
static int open_clustered(sop_db *db, int create)
{
    db->shm = &db->shm_priv;
    memset(db->shm, 0, sizeof *db->shm);
    db->slot = 0;
    int rc = sop__cl_open(db);
    if (!rc)
        rc = sop__db_mirror_attach(db);
    if (rc)
        return rc;
    pthread_mutex_lock(&db->commit_mu);
    rc = sop__cl_lock(db);
    if (rc) {
        pthread_mutex_unlock(&db->commit_mu);
        return rc;
    }
    uint64_t snap;
    uint32_t seg;
    int others = 0;
    rc = sop__cl_oldest(db, &snap, &seg, &others);
    if (!rc && !others)
        sop__db_mirror_open_pass(db, 0);
    else if (!rc && sop__cl_holder_died(db))
        sop__db_mirror_open_pass(db, 1);
    else if (!rc)
        sop__db_mirror_reread(db);
    if (!rc && create)
        rc = create_files(db);
    if (!rc)
        rc = load(db, others == 0);
    if (!rc) {
        sop__shm *m = db->shm;
        atomic_store(&m->csn, atomic_load(&db->csn));
        atomic_store(&m->tail, db->applied_tail);
        if (!atomic_load(&m->next_id))
            atomic_store(&m->next_id, 1);
        atomic_store(&m->slot[0].pid, (uint64_t)getpid());
        atomic_store(&m->slot[0].snap, UINT64_MAX);
        atomic_store(&m->slot[0].applied_seg, db->log.cur);
        rc = sop__cl_locked(db); /* publishes a new epoch if Redis had none */
    }
    uint64_t csn, durable;
    if (!rc && !(rc = sop__cl_peek(db, &csn, &durable)))
        sop__atomic_max(&db->shm->durable_csn, durable);
    if (!rc)
        rc = sop__cl_register(db);
    sop__cl_unlock(db);
    pthread_mutex_unlock(&db->commit_mu);
    if (!rc)
        rc = finish_open(db);
    if (!rc)
        rc = sop__cl_start(db);
    return rc;
}

static int do_open(sop_db *db, const char *path, const sop_db_options *opts)
{
    if (opts) {
        if (opts->struct_size < sizeof(sop_db_options) || opts->sync > SOP_SYNC_NONE ||
            opts->mode > SOP_CLUSTERED)
            return sop__err(db, -EINVAL, "invalid options");
        db->opt = *opts;
    } else {
        sop_db_options_init(&db->opt);
    }
    if (!path || !*path)
        return sop__err(db, -EINVAL, "empty database path");
    if (!db->opt.file_mode)
        db->opt.file_mode = 0600;
    if (db->opt.segment_bytes < (1u << 20))
        db->opt.segment_bytes = 1u << 20;
    if (!db->opt.txn_max_ms)
        db->opt.txn_max_ms = 60000;
    db->path = sop__strdup(path);
    if (!db->path)
        return -ENOMEM;
    int rc = sop__vfs_stack_open(db);
    if (rc)
        return rc;
    sop__segmap_init(&db->segmap, db->opt.map_reads && db->vfs->version >= 2 && db->vfs->map &&
                                      db->vfs->unmap);
#ifdef SOP_TESTING
    db->test_nosync = getenv("SOP_TEST_NO_COMMIT_SYNC") != NULL;
    db->test_novalidate = getenv("SOP_TEST_NO_VALIDATE") != NULL;
#endif
    int create = (db->opt.flags & SOP_DB_CREATE) && !(db->opt.flags & SOP_DB_RDONLY);
    if (create) {
        rc = db->vfs->mkdir(db->vfs, path, 0700);
        if (rc && rc != -EEXIST)
            return sop__err(db, rc, "cannot create directory %s", path);
        if (rc == 0 && (rc = sync_parent(db, path)) != 0)
            return rc;
        rc = 0;
    }
    char *lp = path_join(path, "LOCK");
    if (!lp)
        return -ENOMEM;
    rc = db->vfs->open(db->vfs, lp, SOP_O_RDWR | (create ? SOP_O_CREATE : 0), db->opt.file_mode,
                       &db->lockf);
    sop__free(lp);
    if (rc == -ENOENT)
        return sop__err(db, -ENOENT, "%s is not a database (no LOCK file)", path);
    if (rc)
        return sop__err(db, rc, "cannot open the lock file of %s", path);
    if (db->opt.mode == SOP_CLUSTERED)
        return open_clustered(db, create);
    int first;
    rc = sop__shm_attach(db, &first);
    if (!rc)
        rc = sop__db_mirror_attach(db);
    if (rc)
        return rc;
    if (create && first) {
        rc = create_files(db);
        if (rc)
            return rc;
    }
    rc = first ? recover(db) : join(db);
    if (rc)
        return rc;
    rc = sop__shm_claim_slot(db);
    if (rc)
        return rc;
    if (first) {
        rc = finish_open(db);
        if (!rc)
            rc = sop__shm_ready(db);
    }
    return rc;
}

int sop_db_open(const char *path, const sop_db_options *opts, sop_db **dbp)
{
    if (!dbp)
        return -EINVAL;
    *dbp = NULL;
    sop_db *db = sop__calloc(1, sizeof *db);
    if (!db)
        return -ENOMEM;
    pthread_mutex_init(&db->commit_mu, NULL);
    pthread_mutex_init(&db->mu, NULL);
    db->slot = -1;
    int rc = do_open(db, path, opts);
    if (rc) {
        if (!*sop_db_errmsg(db))
            sop__err(db, rc, "cannot open database %s", path ? path : "(null)");
        db->open_rc = rc;
    } else {
        sop__err_clear(db);
    }
    *dbp = db;
    return rc;
}

int sop_db_close(sop_db *db)
{
    if (!db)
        return 0;
    int rc = 0;
    pthread_mutex_lock(&db->mu);
    int busy = db->ntxn;
    pthread_mutex_unlock(&db->mu);
    if (busy)
        return sop__err(db, SOP_EBUSY, "%d transactions are still open", busy);
    if (!db->open_rc && !atomic_load(&db->panic) && !(db->opt.flags & SOP_DB_RDONLY) &&
        atomic_load(&db->since_ckpt) && (rc = sop__commit_lock(db)) == 0) {
        rc = sop__db_checkpoint_locked(db);
        sop__commit_unlock(db);
    }
    sop__db_mirror_detach(db);
    sop__cl_close(db);
    sop__shm_detach(db);
    if (db->cache)
        sop__cache_free(db->cache);
    sop__segmap_close(&db->segmap, db);
    if (db->log_open)
        sop__log_close(&db->log);
    if (db->reg_open)
        sop__reg_close(&db->reg);
    if (db->lockf)
        db->vfs->close(db->vfs, db->lockf);
    sop__vfs_stack_close(db);
    for (sop__cmpreg *c = db->cmps, *n; c; c = n) {
        n = c->next;
        sop__free(c->name);
        sop__free(c);
    }
    sop__free(db->snaps);
    sop__free(db->reap);
    sop__err_clear(db);
    pthread_mutex_destroy(&db->commit_mu);
    pthread_mutex_destroy(&db->mu);
    sop__free(db->path);
    sop__free(db);
    return rc;
}

int sop_db_set_comparator(sop_db *db, const char *name, sop_compare_fn fn, void *ctx)
{
    if (!db || !name || !*name || !fn)
        return -EINVAL;
    int rc = 0;
    pthread_mutex_lock(&db->mu);
    for (sop__cmpreg *c = db->cmps; c; c = c->next)
        if (!strcmp(c->name, name))
            rc = SOP_EEXISTS;
    if (!rc) {
        sop__cmpreg *c = sop__calloc(1, sizeof *c);
        char *nm = sop__strdup(name);
        if (!c || !nm) {
            sop__free(c);
            sop__free(nm);
            rc = -ENOMEM;
        } else {
            c->name = nm;
            c->fn = fn;
            c->ctx = ctx;
            c->next = db->cmps;
            db->cmps = c;
        }
    }
    pthread_mutex_unlock(&db->mu);
    return rc == SOP_EEXISTS ? sop__err(db, rc, "comparator %s is already registered", name) : rc;
}

int sop_db_stats(sop_db *db, sop_db_stat *st)
{
    if (!db || !st || db->open_rc)
        return -EINVAL;
    memset(st, 0, sizeof *st);
    st->commits = atomic_load(&db->st_commits);
    st->conflicts = atomic_load(&db->st_conflicts);
    st->merges = atomic_load(&db->st_merges);
    st->checkpoints = atomic_load(&db->st_ckpts);
    st->redis_calls = sop__cl_calls(db);
    st->redis_epochs = atomic_load(&db->st_redis_epochs);
    st->l2_hits = atomic_load(&db->st_l2_hits);
    st->l2_misses = atomic_load(&db->st_l2_misses);
    pthread_mutex_lock(&db->log.mu);
    st->syncs = db->log.syncs;
    pthread_mutex_unlock(&db->log.mu);
    st->segments = sop__log_nsegs(&db->log);
    uint64_t live_bytes = 0;
    pthread_mutex_lock(&db->reg.mu);
    st->nodes = db->reg.live;
    for (uint64_t b = 0; b < db->reg.nblocks; b++)
        for (int i = 0; i < SOP__REG_PER_BLOCK; i++)
            if (sop__handle_live(&db->reg.blocks[b]->h[i]))
                live_bytes += sop__handle_len(&db->reg.blocks[b]->h[i]);
    st->file_bytes = db->reg.nblocks * SOP__REG_BLOCK;
    pthread_mutex_unlock(&db->reg.mu);
    st->live_bytes = live_bytes;
    st->file_bytes += sop__log_bytes(&db->log);
    sop__cache_stat cs;
    sop__cache_stats(db->cache, &cs);
    st->cache_bytes = cs.bytes;
    st->cache_hits = cs.hits;
    st->cache_misses = cs.misses;
    return 0;
}

int sop_db_checkpoint(sop_db *db)
{
    if (!db || db->open_rc)
        return -EINVAL;
    if (atomic_load(&db->panic))
        return sop__err(db, SOP_EPANIC, "database is in a panic state; reopen it");
    if (db->opt.flags & SOP_DB_RDONLY)
        return sop__err(db, SOP_EREADONLY, "database is open read-only");
    int rc = sop__commit_lock(db);
    if (rc)
        return rc;
    rc = sop__db_checkpoint_locked(db);
    sop__commit_unlock(db);
    return rc;
}
