/* vfs_mirror.c - the database directory mirrored to a replica folder (not built yet). */
#include <errno.h>

#include "vfs_stack.h"

int sop__vfs_mirror_new(sop_vfs *base, const char *dir, const char *replica, unsigned mode,
                        sop_vfs **out)
{
    *out = NULL;
    return -ENOTSUP;
}

void sop__vfs_mirror_free(sop_vfs *vfs) {}
