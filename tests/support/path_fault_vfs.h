/* path_fault_vfs.h - a wrapper VFS for tests that fails chosen operations
 * on the files under chosen path prefixes (e.g. one drive folder of an
 * erasure-coded database), and passes everything else through, shared
 * memory included (so several handles can share a database through it).
 * Unlike fault_vfs.h it selects by path, not by the n-th call. Thread-safe
 * (the rules are read under a mutex); memory from malloc(). */
#ifndef SOP_TEST_PATH_FAULT_VFS_H
#define SOP_TEST_PATH_FAULT_VFS_H
#include <stdint.h>

#include "sop/sop.h"

#define PF_READ 0x1u
#define PF_WRITE 0x2u
#define PF_SYNC 0x4u
#define PF_CREATE 0x8u /* open with SOP_O_CREATE */

/** @brief Wraps @p base (NULL: sop_vfs_posix()). @return NULL on ENOMEM. */
sop_vfs *pf_vfs_new(sop_vfs *base);
void pf_vfs_free(sop_vfs *vfs);
/** @brief From now on, operations in @p ops on files whose path starts
 *  with @p prefix fail with @p err (a negative errno). Up to 16 rules. */
void pf_vfs_fail(sop_vfs *vfs, const char *prefix, unsigned ops, int err);
/** @brief Removes every rule. */
void pf_vfs_clear(sop_vfs *vfs);
/** @brief Operations failed so far. */
uint64_t pf_vfs_hits(sop_vfs *vfs);

#endif
