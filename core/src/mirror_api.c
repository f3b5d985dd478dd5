/* mirror_api.c - the public calls of replication: sop_db_reinstate() and
 * sop_db_replica_status() (docs/design/replication.md), and what connects
 * the layer to the other processes (shared memory, or Redis in clustered
 * mode). The work is in vfs_mirror.c; this file adds the engine's locks
 * around it. */
#include <errno.h>
#include <string.h>

#include "cluster.h"
#include "internal.h"
#include "mirror.h"

static sop__mirror *layer(sop_db *db) { return db->vfs_own[0] ? sop__mirror_of(db->vfs_own[0]) : NULL; }

int sop_db_replica_status(sop_db *db, sop_replica_status *st)
{
    if (!db || !st || db->open_rc)
        return -EINVAL;
    memset(st, 0, sizeof *st);
    if (layer(db))
        sop__mirror_status(layer(db), st);
    return 0;
}

/* ---- several processes ---- */

static int tell_redis(void *arg, uint64_t gen) { return sop__cl_mgen(arg, gen); }

int sop__db_mirror_attach(sop_db *db)
{
    sop__mirror *m = layer(db);
    if (!m)
        return 0;
    int rc = sop__mirror_share(m, &db->shm->mirror_gen, db->cl ? tell_redis : NULL, db);
    return rc ? sop__err(db, rc, "cannot open %s with its replica folder: %s", db->path,
                         sop__mirror_why())
              : 0;
}

void sop__db_mirror_detach(sop_db *db)
{
    if (layer(db))
        sop__mirror_share(layer(db), NULL, NULL, NULL);
}

uint64_t sop__db_mirror_reread(sop_db *db) { return layer(db) ? sop__mirror_reread(layer(db)) : 0; }

static int lease_ok(void *arg) { return sop__cl_lease_ok(arg); } /* renews it */

void sop__db_mirror_open_pass(sop_db *db, int reconcile_only)
{
    if (layer(db))
        sop__mirror_open_pass(layer(db), reconcile_only, db->cl ? lease_ok : NULL, db);
}

/* ---- reinstatement ---- */

/* Clustered mode: Redis says who else has the database open (shared
 * memory and the open lock say it for the processes of one host). */
static int others_open(sop_db *db)
{
    uint64_t snap;
    uint32_t seg;
    int others = 0;
    int rc = sop__cl_oldest(db, &snap, &seg, &others);
    if (rc)
        return rc;
    return others ? sop__err(db, SOP_EBUSY, "database %s is open in %d other process%s of the "
                             "cluster: reinstate when it is open in one only, or let the next "
                             "open do it", db->path, others, others > 1 ? "es" : "")
                  : 0;
}

static int commit_lock(void *arg)
{
    sop_db *db = arg;
    int rc = sop__commit_lock(db);
    if (!rc && db->cl && (rc = others_open(db)) != 0)
        sop__commit_unlock(db); /* a process opened since the first look */
    return rc;
}

static void commit_unlock(void *arg) { sop__commit_unlock(arg); }

int sop_db_reinstate(sop_db *db)
{
    if (!db || db->open_rc)
        return -EINVAL;
    if (!layer(db))
        return sop__err(db, -EINVAL, "database %s has no replica folder", db->path);
    if (atomic_load(&db->panic))
        return sop__err(db, SOP_EPANIC, "database is in a panic state; reopen it");
    if (db->opt.flags & SOP_DB_RDONLY)
        return sop__err(db, SOP_EREADONLY, "database is open read-only");
    /* Other processes would go on writing to the active folder alone: only
     * when this process is the only one. Standalone: its open lock can be
     * made exclusive, which also keeps others from opening meanwhile.
     * Clustered: Redis lists no other live process, checked again under
     * the commit lock before the final catch-up (an opener loads under
     * that lock and registers before releasing it). */
    int rc;
    if (db->cl) {
        if ((rc = others_open(db)) != 0)
            return rc;
    } else if (db->shm_mapped) {
        rc = db->vfs->lock(db->vfs, db->lockf, SOP__LOCK_OPEN, 1, SOP_LOCK_EX, 0);
        if (rc == SOP_EBUSY)
            return sop__err(db, SOP_EBUSY, "database %s is open in other processes: reinstate "
                            "when it is open in one only, or let the next open do it", db->path);
        if (rc)
            return sop__err(db, rc, "cannot lock %s/LOCK", db->path);
    }
    sop__err_clear(db);
    rc = sop__mirror_reinstate(layer(db), commit_lock, commit_unlock, db);
    if (db->shm_mapped)
        db->vfs->lock(db->vfs, db->lockf, SOP__LOCK_OPEN, 1, SOP_LOCK_SH, 0);
    if (rc == SOP_EBUSY && *sop_db_errmsg(db))
        return rc; /* others_open() said why */
    if (rc)
        return sop__err(db, rc, "cannot reinstate the replica folder: %s", sop__mirror_why());
    return 0;
}
