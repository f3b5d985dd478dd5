/* vfs_stack.c - builds the VFS layers of a database from its options (see
 * vfs_stack.h for the order of the layers). */
#include <errno.h>

#include "cluster.h"
#include "internal.h"
#include "mem.h"
#include "mirror.h"
#include "vfs_stack.h"

/* ---- the lease guard (clustered mode) ----
 *
 * Every change to a file of the database is made under the commit lock.
 * In clustered mode that lock is a Redis lease: the guard refuses a write,
 * truncate, rename or remove once this process's lease is no longer
 * certain (sop__cl_lease_ok), so a holder that was paused or cut off from
 * Redis past its lease cannot write over the next holder's commits. */

typedef struct guard {
    sop_vfs v;
    sop_vfs *base;
    sop_db *db;
} guard;

#define G(vfs) ((guard *)(vfs)->ctx)

static int g_open(sop_vfs *vfs, const char *path, int flags, unsigned mode, sop_file **out)
{
    return G(vfs)->base->open(G(vfs)->base, path, flags, mode, out);
}
static int g_close(sop_vfs *vfs, sop_file *f) { return G(vfs)->base->close(G(vfs)->base, f); }
static int g_read(sop_vfs *vfs, sop_file *f, void *buf, size_t n, uint64_t off, size_t *got)
{
    return G(vfs)->base->read(G(vfs)->base, f, buf, n, off, got);
}
static int g_write(sop_vfs *vfs, sop_file *f, const void *buf, size_t n, uint64_t off)
{
    int rc = sop__cl_lease_ok(G(vfs)->db);
    return rc ? rc : G(vfs)->base->write(G(vfs)->base, f, buf, n, off);
}
static int g_sync(sop_vfs *vfs, sop_file *f) { return G(vfs)->base->sync(G(vfs)->base, f); }
static int g_size(sop_vfs *vfs, sop_file *f, uint64_t *size)
{
    return G(vfs)->base->size(G(vfs)->base, f, size);
}
static int g_truncate(sop_vfs *vfs, sop_file *f, uint64_t size)
{
    int rc = sop__cl_lease_ok(G(vfs)->db);
    return rc ? rc : G(vfs)->base->truncate(G(vfs)->base, f, size);
}
static int g_lock(sop_vfs *vfs, sop_file *f, uint64_t off, uint64_t len, int mode, int wait)
{
    return G(vfs)->base->lock(G(vfs)->base, f, off, len, mode, wait);
}
static int g_remove(sop_vfs *vfs, const char *path)
{
    int rc = sop__cl_lease_ok(G(vfs)->db);
    return rc ? rc : G(vfs)->base->remove(G(vfs)->base, path);
}
static int g_rename(sop_vfs *vfs, const char *from, const char *to)
{
    int rc = sop__cl_lease_ok(G(vfs)->db);
    return rc ? rc : G(vfs)->base->rename(G(vfs)->base, from, to);
}
static int g_mkdir(sop_vfs *vfs, const char *path, unsigned mode)
{
    return G(vfs)->base->mkdir(G(vfs)->base, path, mode);
}
static int g_sync_dir(sop_vfs *vfs, const char *path)
{
    return G(vfs)->base->sync_dir(G(vfs)->base, path);
}
static int g_list(sop_vfs *vfs, const char *dir, int (*fn)(const char *, void *), void *arg)
{
    return G(vfs)->base->list(G(vfs)->base, dir, fn, arg);
}
static int g_map(sop_vfs *vfs, sop_file *f, uint64_t len, const void **addr)
{
    return G(vfs)->base->map(G(vfs)->base, f, len, addr);
}
static int g_unmap(sop_vfs *vfs, const void *addr, uint64_t len)
{
    return G(vfs)->base->unmap(G(vfs)->base, addr, len);
}

static int guard_new(sop_db *db, sop_vfs *base, sop_vfs **out)
{
    guard *g = sop__calloc(1, sizeof *g);
    if (!g)
        return -ENOMEM;
    g->base = base;
    g->db = db;
    g->v = *base; /* version and anything newer than this file */
    g->v.ctx = g;
    g->v.open = g_open;
    g->v.close = g_close;
    g->v.read = g_read;
    g->v.write = g_write;
    g->v.sync = g_sync;
    g->v.size = g_size;
    g->v.truncate = g_truncate;
    g->v.lock = g_lock;
    g->v.remove = g_remove;
    g->v.rename = g_rename;
    g->v.mkdir = g_mkdir;
    g->v.sync_dir = g_sync_dir;
    g->v.list = g_list;
    g->v.shm_map = NULL; /* clustered mode shares no memory */
    g->v.shm_unmap = NULL;
    g->v.map = base->version >= 2 && base->map ? g_map : NULL;
    g->v.unmap = base->version >= 2 && base->unmap ? g_unmap : NULL;
    *out = &g->v;
    return 0;
}

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
        sop__err_clear(db);
        rc = sop__vfs_ec_new(v, db->path, o->drives, o->ndrives, o->parity, o->file_mode, db,
                             &db->vfs_own[1]);
        if (rc && !*sop_db_errmsg(db))
            return sop__err(db, rc, "cannot set up erasure coding over %u drives", o->ndrives);
        if (rc)
            return rc; /* the layer said why */
        v = db->vfs_own[1];
    }
    if (o->mode == SOP_CLUSTERED) {
        rc = guard_new(db, v, &db->vfs_own[2]);
        if (rc)
            return rc;
        v = db->vfs_own[2];
    }
    db->vfs = v;
    return 0;
}

void sop__vfs_stack_close(sop_db *db)
{
    sop__free(db->vfs_own[2] ? db->vfs_own[2]->ctx : NULL);
    db->vfs_own[2] = NULL;
    if (db->vfs_own[1])
        sop__vfs_ec_free(db->vfs_own[1]);
    if (db->vfs_own[0])
        sop__vfs_mirror_free(db->vfs_own[0]);
    db->vfs_own[0] = db->vfs_own[1] = NULL;
}
