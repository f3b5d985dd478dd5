/* vfs_file.h - whole-file helpers over any sop_vfs. */
#ifndef SOP_VFS_FILE_H
#define SOP_VFS_FILE_H
#include <stddef.h>

#include "sop/sop.h"

/* Reads up to @cap bytes from the start of the file at @path into @buf;
 * *got: how many (fewer at end of file). SOP_OK, or the open/read error
 * (-ENOENT when there is no file). */
int sop__vfs_read_head(sop_vfs *vfs, const char *path, void *buf, size_t cap, size_t *got);

#endif
