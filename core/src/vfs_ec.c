/* vfs_ec.c - erasure-coded segment files (not built yet). */
#include <errno.h>

#include "vfs_stack.h"

int sop__vfs_ec_new(sop_vfs *base, const char *dir, const char *const *drives, uint32_t ndrives,
                    uint32_t parity, unsigned mode, sop_vfs **out)
{
    *out = NULL;
    return -ENOTSUP;
}

void sop__vfs_ec_free(sop_vfs *vfs) {}
