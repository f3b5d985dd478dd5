/*
 * vfs_stack.h - the VFS layers a database builds from its options:
 * replicated metadata (vfs_mirror.c) under erasure-coded segments
 * (vfs_ec.c), over the application's VFS (or POSIX).
 *
 *   top:    EC      seg-* files striped over the drive folders; every
 *                   other file passed down
 *   middle: mirror  every file of the database directory written to it
 *                   and to the replica folder (active/passive)
 *   bottom: base    opts.vfs or sop_vfs_posix()
 */
#ifndef SOP_VFS_STACK_H
#define SOP_VFS_STACK_H
#include "sop/sop.h"

struct sop_db;

/* Builds db->vfs from db->opt (db->path set). On error the message is set. */
int sop__vfs_stack_open(struct sop_db *db);
/* Frees the layers built by sop__vfs_stack_open (db->vfs is then unusable). */
void sop__vfs_stack_close(struct sop_db *db);

/* Layer constructors. Each returns SOP_OK or a negative error and, on
 * success, a VFS in *out to be freed with the matching _free. @dir is the
 * database directory: paths under it are the ones the layer handles. */
int sop__vfs_mirror_new(sop_vfs *base, const char *dir, const char *replica, unsigned mode,
                        sop_vfs **out);
void sop__vfs_mirror_free(sop_vfs *vfs);
/* @db (may be NULL) receives the detailed message of a failure. */
int sop__vfs_ec_new(sop_vfs *base, const char *dir, const char *const *drives, uint32_t ndrives,
                    uint32_t parity, unsigned mode, const struct sop_db *db, sop_vfs **out);
void sop__vfs_ec_free(sop_vfs *vfs);

#endif
