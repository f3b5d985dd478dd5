/* fault_vfs.h - a fault-injecting wrapper VFS for tests (test support only).
 *
 * Modelled on SQLite's crash VFS (src/test6.c) and RocksDB's
 * FaultInjectionTestFS. It wraps a base VFS (normally sop_vfs_posix()),
 * passes every call through, and offers three things:
 *
 * 1. Operation counting. Every call of the VFS counts as one operation of
 *    one kind (FAULT_OP_*); fault_vfs_ops() returns how many calls matching
 *    a mask were made since fault_vfs_new() (or fault_vfs_reset_ops()).
 *
 * 2. Error injection. fault_vfs_fail_nth(vfs, mask, n, err, persistent):
 *    counting from the moment of arming, the n-th call matching @mask
 *    fails with @err (e.g. -EIO, -ENOSPC, -EINTR) without doing anything;
 *    if @persistent, every later matching call fails too. A failed close()
 *    still releases the handle. err == FAULT_ERR_SHORT injects a short
 *    write (the first half of the bytes, rounded down, is written, then
 *    -EIO) on FAULT_OP_WRITE, and a short read (the first half of the bytes
 *    is returned with SOP_OK, as if the file ended there) on FAULT_OP_READ;
 *    other kinds fail with -EIO. A failed sync leaves the file's data
 *    unsynced for the power-loss model below.
 *
 * 3. Power loss. The wrapper always tracks what would be lost in a power
 *    failure:
 *     - per file (identified by its normalised absolute path, and followed
 *       across renames): every write and truncate since the file's last
 *       successful sync(), with the pre-image (old bytes, old size) needed
 *       to undo it, and the file size at that sync (SOP_O_TRUNC at open is
 *       tracked as a truncate but counted as the open). A sync through any
 *       handle of the file makes all of them durable.
 *     - per directory: every entry created (open with SOP_O_CREATE that
 *       created the file, mkdir), renamed (both directories) or removed
 *       since the last successful sync_dir() of that directory. A rename
 *       becomes durable when both directories have been synced.
 *    fault_vfs_powerloss_arm(vfs, n, seed) counts the operations in
 *    FAULT_OP_POWERLOSS (write, sync, sync_dir, rename, remove, truncate)
 *    from the moment of arming; the n-th one is NOT performed: power is cut
 *    instead. fault_vfs_crash_now(vfs, seed) cuts power at once. Cutting
 *    power means, with a PRNG seeded by @seed:
 *     a) for every tracked file, its synced image (content and size at the
 *        last sync) is restored, then every unsynced operation is replayed
 *        in order, each independently chosen to be
 *          - KEPT:    written as it was;
 *          - DROPPED: not written (so a file extended since its last sync
 *                     keeps its synced size unless a later write survived);
 *          - TORN:    a random split point at a 512-byte-aligned file offset
 *                     strictly inside the written range: bytes before it are
 *                     new, bytes after it are old. A write inside one 512-byte
 *                     sector is atomic: TORN then becomes KEPT or DROPPED;
 *          - GARBAGE: the written range holds random bytes.
 *        A truncate is only KEPT or DROPPED. The choices are equally likely.
 *        Bytes not written since the last sync are never changed: the
 *        damage stays inside the written ranges (no damage to synced data).
 *     b) then every directory operation that is not durable is undone, the
 *        newest first: created files and directories are deleted (a
 *        directory with everything under it), renames are reversed (a
 *        target the rename replaced comes back with its synced content),
 *        removed files come back with their synced content (saved in memory
 *        at remove time), removed directories come back empty. This is
 *        RocksDB's DeleteFilesCreatedAfterLastDirSync, made deterministic
 *        (all of them are undone, for every seed).
 *     c) the process calls _exit(FAULT_VFS_CRASH_EXIT) (77) without running
 *        atexit handlers or flushing stdio.
 *    So run the workload in a fork()ed child and check in the parent
 *    (waitpid: WIFEXITED and WEXITSTATUS == FAULT_VFS_CRASH_EXIT), reopening
 *    with the real VFS.
 *
 * Limitations: only paths are known (not inodes), so two different paths to
 * one file (hard links, symlinks) are two files; writes through a handle of
 * a file that was removed while open are not tracked for undo; a removed
 * file's synced content is kept in memory until its directory is synced.
 * The tracked pre-images and data are kept in memory until the next sync,
 * so a workload that writes a lot without syncing uses as much memory.
 *
 * shm_map/shm_unmap (optional) are passed through when the base VFS has
 * them: not counted, not injectable, not tracked (coordination memory,
 * never data).
 *
 * Thread-safe: one mutex serialises every call (including the base call),
 * except a blocking lock (wait != 0), which waits outside the mutex.
 * The wrapper's own memory comes from malloc(), not from the library's
 * allocator, so allocation-failure tests of the engine are not disturbed.
 */
#ifndef SOP_TEST_FAULT_VFS_H
#define SOP_TEST_FAULT_VFS_H

#include <stdint.h>

#include "sop/sop.h"

#ifdef __cplusplus
extern "C" {
#endif

/** Exit status of a process whose power was cut by the fault VFS. */
#define FAULT_VFS_CRASH_EXIT 77

/** For fault_vfs_fail_nth(): a short write (or short read) instead of an
 *  error code. */
#define FAULT_ERR_SHORT 1

/* Operation kinds (bit masks). */
#define FAULT_OP_OPEN 0x0001u        /**< open without SOP_O_CREATE */
#define FAULT_OP_OPEN_CREATE 0x0002u /**< open with SOP_O_CREATE */
#define FAULT_OP_CLOSE 0x0004u
#define FAULT_OP_READ 0x0008u
#define FAULT_OP_WRITE 0x0010u
#define FAULT_OP_SYNC 0x0020u
#define FAULT_OP_SIZE 0x0040u
#define FAULT_OP_TRUNCATE 0x0080u
#define FAULT_OP_LOCK 0x0100u
#define FAULT_OP_REMOVE 0x0200u
#define FAULT_OP_RENAME 0x0400u
#define FAULT_OP_MKDIR 0x0800u
#define FAULT_OP_SYNCDIR 0x1000u
#define FAULT_OP_LIST 0x2000u
#define FAULT_OP_ALL 0x3fffu
/** The operations that change durable state, counted by power-loss mode. */
#define FAULT_OP_POWERLOSS                                                                     \
    (FAULT_OP_WRITE | FAULT_OP_SYNC | FAULT_OP_SYNCDIR | FAULT_OP_RENAME | FAULT_OP_REMOVE |   \
     FAULT_OP_TRUNCATE)

/** @brief Creates a fault VFS wrapping @p base (NULL: sop_vfs_posix()).
 *  Nothing is armed. @return the VFS, or NULL when out of memory. */
sop_vfs *fault_vfs_new(sop_vfs *base);

/** @brief Frees a fault VFS. Close every file opened through it first. */
void fault_vfs_free(sop_vfs *vfs);

/** @brief Calls made so far (since creation or the last
 *  fault_vfs_reset_ops()) whose kind is in @p mask. */
uint64_t fault_vfs_ops(sop_vfs *vfs, unsigned mask);

/** @brief Sets every counter of fault_vfs_ops() to 0. */
void fault_vfs_reset_ops(sop_vfs *vfs);

/** @brief Arms error injection: the @p n-th call (1-based, counted from
 *  now) whose kind is in @p op_mask fails with @p err (a negative errno,
 *  or FAULT_ERR_SHORT); with @p persistent, every later matching call
 *  fails too. Replaces an earlier arming and clears fault_vfs_triggered(). */
void fault_vfs_fail_nth(sop_vfs *vfs, unsigned op_mask, uint64_t n, int err, int persistent);

/** @brief Number of failures injected since the last fault_vfs_fail_nth()
 *  (0: the armed fault was not reached). */
uint64_t fault_vfs_triggered(sop_vfs *vfs);

/** @brief Disarms error injection and power-loss mode. */
void fault_vfs_disarm(sop_vfs *vfs);

/** @brief Arms power-loss mode: the @p n-th (1-based, counted from now)
 *  call in FAULT_OP_POWERLOSS is not performed; power is cut instead with
 *  damage chosen by @p seed, and the process _exits with
 *  FAULT_VFS_CRASH_EXIT. n == 0 disarms. */
void fault_vfs_powerloss_arm(sop_vfs *vfs, uint64_t n, uint64_t seed);

/** @brief Calls in FAULT_OP_POWERLOSS counted since
 *  fault_vfs_powerloss_arm() (whether or not it is still armed). */
uint64_t fault_vfs_powerloss_ops(sop_vfs *vfs);

/** @brief Cuts power now (see the damage model above) and _exits with
 *  FAULT_VFS_CRASH_EXIT. */
void fault_vfs_crash_now(sop_vfs *vfs, uint64_t seed) __attribute__((noreturn));

#ifdef __cplusplus
}
#endif
#endif
