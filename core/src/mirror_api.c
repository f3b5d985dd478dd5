/* mirror_api.c - the public calls of replication: sop_db_reinstate() and
 * sop_db_replica_status() (docs/design/replication.md). The work is in
 * vfs_mirror.c; this file adds the engine's locks around it. */
#include <errno.h>
#include <string.h>

#include "internal.h"
#include "mirror.h"

int sop_db_replica_status(sop_db *db, sop_replica_status *st)
{
    if (!db || !st || db->open_rc)
        return -EINVAL;
    memset(st, 0, sizeof *st);
    if (db->vfs_own[0])
        sop__mirror_status(sop__mirror_of(db->vfs_own[0]), st);
    return 0;
}

static int commit_lock(void *arg) { return sop__commit_lock(arg); }
static void commit_unlock(void *arg) { sop__commit_unlock(arg); }

int sop_db_reinstate(sop_db *db)
{
    if (!db || db->open_rc)
        return -EINVAL;
    if (!db->vfs_own[0])
        return sop__err(db, -EINVAL, "database %s has no replica folder", db->path);
    if (atomic_load(&db->panic))
        return sop__err(db, SOP_EPANIC, "database is in a panic state; reopen it");
    if (db->opt.flags & SOP_DB_RDONLY)
        return sop__err(db, SOP_EREADONLY, "database is open read-only");
    /* Other processes would go on writing to the active folder alone: only
     * when this process is the only one (its open lock can be made
     * exclusive, which also keeps others from opening meanwhile). */
    int rc;
    if (db->shm_mapped) {
        rc = db->vfs->lock(db->vfs, db->lockf, SOP__LOCK_OPEN, 1, SOP_LOCK_EX, 0);
        if (rc == SOP_EBUSY)
            return sop__err(db, SOP_EBUSY, "database %s is open in other processes: reinstate "
                            "when it is open in one only, or let the next open do it", db->path);
        if (rc)
            return sop__err(db, rc, "cannot lock %s/LOCK", db->path);
    }
    rc = sop__mirror_reinstate(sop__mirror_of(db->vfs_own[0]), commit_lock, commit_unlock, db);
    if (db->shm_mapped)
        db->vfs->lock(db->vfs, db->lockf, SOP__LOCK_OPEN, 1, SOP_LOCK_SH, 0);
    if (rc)
        return sop__err(db, rc, "cannot reinstate the replica folder: %s", sop__mirror_why());
    return 0;
}
