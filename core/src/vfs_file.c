/* vfs_file.c - whole-file helpers over any sop_vfs (see vfs_file.h). */
#include "vfs_file.h"

int sop__vfs_read_head(sop_vfs *vfs, const char *path, void *buf, size_t cap, size_t *got)
{
    sop_file *f;
    *got = 0;
    int rc = vfs->open(vfs, path, SOP_O_READ, 0, &f);
    if (rc)
        return rc;
    rc = vfs->read(vfs, f, buf, cap, 0, got);
    vfs->close(vfs, f);
    return rc;
}
