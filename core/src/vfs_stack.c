/* vfs_stack.c - builds the VFS layers of a database from its options (see
 * vfs_stack.h for the order of the layers). */
#include <errno.h>

#include "internal.h"
#include "mirror.h"
#include "vfs_stack.h"

int sop__vfs_stack_open(sop_db *db)
{
    const sop_db_options *o = &db->opt;
    sop_vfs *v = o->vfs ? o->vfs : sop_vfs_posix();
    int rc;
    if (o->replica_path) {
        if (!*o->replica_path)
            return sop__err(db, -EINVAL, "empty replica path");
        rc = sop__vfs_mirror_new(v, db->path, o->replica_path, o->file_mode, &db->vfs_own[0]);
        if (rc)
            return sop__err(db, rc, "cannot set up the replica folder %s: %s", o->replica_path,
                            *sop__mirror_why() ? sop__mirror_why() : sop_strerror(rc));
        v = db->vfs_own[0];
    }
    if (o->ndrives || o->drives || o->parity) {
        if (!o->drives || o->ndrives < 2 || !o->parity || o->parity >= o->ndrives ||
            o->ndrives > 255)
            return sop__err(db, -EINVAL,
                            "erasure coding needs 2 to 255 drives and 1 <= parity < drives "
                            "(got %u drives, parity %u)",
                            o->ndrives, o->parity);
        rc = sop__vfs_ec_new(v, db->path, o->drives, o->ndrives, o->parity, o->file_mode,
                             &db->vfs_own[1]);
        if (rc)
            return sop__err(db, rc, "cannot set up erasure coding over %u drives", o->ndrives);
        v = db->vfs_own[1];
    }
    db->vfs = v;
    return 0;
}

void sop__vfs_stack_close(sop_db *db)
{
    if (db->vfs_own[1])
        sop__vfs_ec_free(db->vfs_own[1]);
    if (db->vfs_own[0])
        sop__vfs_mirror_free(db->vfs_own[0]);
    db->vfs_own[0] = db->vfs_own[1] = NULL;
}
