/* prefix_fault_vfs.h - a wrapper VFS that fails the calls on paths under
 * chosen prefixes (test support only): one folder of a mirrored database
 * while the other stays healthy, some drive folders of an erasure-coded
 * database. Unlike fault_vfs.h it selects by path, not by the n-th call.
 *
 * Every call is passed to the base VFS (shared memory and locks included,
 * so several handles can share a database through it) unless a rule
 * matches: a rule (a slot) has a prefix, a mask of call kinds, a skip
 * count and an error. A call whose kind is in the mask and whose path (for
 * file calls: the path the file was opened with) starts with the prefix
 * is counted, and from the (skip+1)-th such call on every one fails with
 * the error without being performed (persistent, as a failed disk). The
 * first matching rule that fails decides. Thread-safe (a mutex and
 * atomics); memory from malloc(). */
#ifndef SOP_TEST_PREFIX_FAULT_VFS_H
#define SOP_TEST_PREFIX_FAULT_VFS_H

#include <stdint.h>

#include "sop/sop.h"

#define PF_OPEN 0x01u   /**< open (any flags) */
#define PF_READ 0x02u
#define PF_WRITE 0x04u
#define PF_SYNC 0x08u
#define PF_TRUNC 0x10u
#define PF_SIZE 0x20u
#define PF_DIR 0x40u    /**< remove, rename, mkdir, sync_dir, list */
#define PF_CREATE 0x80u /**< open with SOP_O_CREATE only */
#define PF_ALL 0xffu

#define PFX_SLOTS 16

/** @brief A wrapper of @p base (NULL: sop_vfs_posix()); NULL when out of memory. */
sop_vfs *pfx_vfs_new(sop_vfs *base);
/** @brief Frees it (every file closed first). NULL is ignored. */
void pfx_vfs_free(sop_vfs *vfs);
/** @brief Arms rule @p slot (0 .. PFX_SLOTS-1; replaces what it held, and
 *  restarts its counts): after @p skip matching calls, every call of a
 *  kind in @p mask on a path starting with @p prefix fails with @p err
 *  (a negative errno). */
void pfx_vfs_arm(sop_vfs *vfs, int slot, const char *prefix, unsigned mask, uint64_t skip, int err);
/** @brief Disarms every slot (their counts of failed calls remain). */
void pfx_vfs_disarm(sop_vfs *vfs);
/** @brief Calls failed by @p slot since it was armed. */
uint64_t pfx_vfs_failed(sop_vfs *vfs, int slot);
/** @brief Calls failed by every slot together since each was armed. */
uint64_t pfx_vfs_failed_all(sop_vfs *vfs);
/** @brief Counts from now the bytes written successfully to paths under
 *  @p prefix (one prefix at a time: the last given). */
void pfx_vfs_count_bytes(sop_vfs *vfs, const char *prefix);
/** @brief Bytes counted since pfx_vfs_count_bytes(). */
uint64_t pfx_vfs_bytes(sop_vfs *vfs);

#endif
