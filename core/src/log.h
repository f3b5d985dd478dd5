/*
 * log.h - append-only segment files: node images, value blobs, counters
 * and commit records, in one stream per database.
 *
 * Files "seg-NNNNNNNN" (N = segment number, from 1). A segment is a
 * sequence of records, each:
 *
 *   off size  field
 *   0   4     magic 0x52504F53 ("SOPR")
 *   4   1     type: 1 IMAGE, 2 COMMIT
 *   5   3     zero
 *   8   4     payload length
 *   12  4     CRC32C of the header (this field as 0) and the payload
 *   16  8     csn: commit sequence number of the transaction
 *   24  ...   payload
 *
 * IMAGE payload: u64 id, u64 version, u32 prev_seg, u32 prev_len,
 *   u64 prev_off (location of the previous image of id; 0s if none),
 *   u8 kind (1 node, 2 blob, 3 counter), 7 zero bytes, then the data.
 * COMMIT payload: u32 n, u32 zero, u64 next_id, u64 next_seq (the
 *   duplicate-key sequence), then n x { u64 id, 32-byte handle as in
 *   registry.h }.
 *
 * A transaction appends its images and then its commit record in one
 * write; the commit record is the commit point. Within the log, csns never
 * decrease (the records of one transaction share its csn).
 *
 * Preallocation: the last segment is extended ahead of the append position
 * with zeros, SOP__LOG_PREALLOC bytes at a time (never past segment_bytes,
 * or past the end of a single record larger than that), by real writes
 * rather than fallocate: an append then overwrites blocks the file already
 * has, so its fdatasync journals no size or extent change. An append that
 * itself grows the file by SOP__LOG_PREALLOC or more (a bulk commit) is not
 * preceded by zeros: its one size change per sync is already amortised,
 * and zeros first would write its bytes twice. The extension is
 * made under the commit lock and is not synced by itself; the next commit's
 * sync makes the zeros durable with its records.
 *
 * Where the log ends, in the last segment: at
 *   - the end of the file;
 *   - a record header of 24 zero bytes (or fewer zero bytes up to the end
 *     of the file): the preallocated area, the clean end;
 *   - anything else that is not a valid record (bad magic, length or CRC),
 *     or a valid record whose csn is below the csn already applied (a stale
 *     record of an earlier incarnation of the log): a torn tail, cut off
 *     under the commit lock (the preallocation is redone by a later append).
 * A process killed while writing leaves a prefix of its write, so during
 * operation an all-zero header is the end. After a power loss, zeros may
 * hide later bytes of a torn write (its first sector lost, later ones on
 * disk): recovery at open therefore truncates the last segment to the end
 * of its valid records, preallocated zeros included.
 *
 * Sealed segments (all but the last) end exactly at their file size: a full
 * segment is truncated to the end of its records and synced in full before
 * the next one is created. So reading goes on into the next segment only at
 * a segment's exact end, and in an earlier segment anything else before the
 * end of the file is SOP_ECORRUPT.
 */
#ifndef SOP_LOG_H
#define SOP_LOG_H
#include <pthread.h>
#include <stdint.h>

#include "sop/sop.h"

#define SOP__REC_MAGIC 0x52504F53u
#define SOP__REC_IMAGE 1
#define SOP__REC_COMMIT 2
#define SOP__REC_HDR 24
#define SOP__IMG_HDR 40
#define SOP__IMG_NODE 1
#define SOP__IMG_BLOB 2
#define SOP__IMG_COUNTER 3
#define SOP__COMMIT_HDR 24
#define SOP__COMMIT_ENTRY 40
/* Zeros written ahead of the append position at a time. */
#define SOP__LOG_PREALLOC (1u << 20)

/* How sop__log_follow() treats the end of the last segment. */
#define SOP__FOLLOW_READ 0    /* stop at a torn tail: another process may be writing it */
#define SOP__FOLLOW_CUT 1     /* cut a torn tail (a dead writer's): under the commit lock */
#define SOP__FOLLOW_RECOVER 2 /* also cut the preallocated zeros: at open, alone */

typedef struct sop__log {
    sop_vfs *vfs;
    char *dir;
    unsigned mode;
    uint64_t seg_bytes;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    sop_file **files; /* files[seg], opened lazily; files[cur] is the append file */
    uint32_t nfiles;
    uint32_t first; /* oldest segment present */
    uint32_t cur;   /* segment appended to */
    uint32_t last;  /* highest segment known to exist */
    uint64_t end;   /* append offset in cur */
    uint64_t alloc; /* cur is known to have this many bytes (records, then zeros);
                     * may be stale (another process cut a torn tail: appends
                     * then extend the file themselves until the next
                     * extension), and the file size is checked before the
                     * cache is trusted to be large enough. Touched only with
                     * commit_mu held (or alone, at open) */
    uint32_t durable_seg;
    uint64_t durable_end;
    int syncing;
    int failed; /* a sync failed: nothing more is durable */
    uint64_t syncs;
} sop__log;

/* Opens the log (creating segment 1 when there is none). The position
 * where reading starts is set by sop__log_seek(). */
int sop__log_open(sop__log *l, sop_vfs *vfs, const char *dir, unsigned mode, uint64_t seg_bytes,
                  const sop_db *db);
void sop__log_close(sop__log *l);

typedef int (*sop__log_fn)(void *arg, int type, uint64_t csn, const uint8_t *payload, uint32_t len,
                           uint32_t seg, uint64_t off);
/* Sets the position where reading (and appending) continues. */
void sop__log_seek(sop__log *l, uint32_t seg, uint64_t off);
/* Reads the records after the position, calling fn for each valid one
 * (fn returns 0 to go on), into the following segments too (from a segment
 * that ends exactly at its file size), and moves the position past them.
 * @csn is the csn already applied: a record below it is stale and read as
 * invalid. Segments missing below @last were deleted by compaction. At an
 * invalid record in a segment before @last: SOP_ECORRUPT. At the end of the
 * last segment (see the format above), by @mode (SOP__FOLLOW_*): READ stops
 * there, CUT also truncates a torn tail there, RECOVER also truncates the
 * preallocated zeros. */
int sop__log_follow(sop__log *l, uint32_t last, int mode, uint64_t csn, sop__log_fn fn, void *arg,
                    const sop_db *db);

/* Where the next append of @len bytes goes (rotating to a new segment when
 * the current one is full, extending the current one with zeros when it is
 * not preallocated that far). Caller serialises appends (commit lock). */
int sop__log_reserve(sop__log *l, uint64_t len, uint32_t *seg, uint64_t *off, const sop_db *db);
/* Writes bytes reserved by sop__log_reserve(). */
int sop__log_write(sop__log *l, const void *buf, uint64_t len, uint64_t off, const sop_db *db);
/* Returns when everything up to (seg, end) is durable (group commit: one
 * sync serves every waiting transaction). */
int sop__log_sync(sop__log *l, uint32_t seg, uint64_t end, const sop_db *db);
/* Reads a whole record at (seg, off, len), checking framing and CRC. */
int sop__log_read(sop__log *l, uint32_t seg, uint64_t off, uint32_t len, uint8_t *buf,
                  const sop_db *db);
/* Validates a record in memory; returns its payload length or SOP_ECORRUPT. */
int sop__rec_check(const uint8_t *rec, uint64_t len, int *type, uint64_t *csn);
/* Fills a record header (after the payload is in place). */
void sop__rec_seal(uint8_t *rec, int type, uint64_t csn, uint32_t plen);
/* File size of segment @seg (0 when absent): the end of its records for a
 * sealed segment, records plus preallocated zeros for the current one. */
int sop__log_seg_size(sop__log *l, uint32_t seg, uint64_t *size);
/* Number of segment files present. */
uint32_t sop__log_nsegs(sop__log *l);
/* Deletes segment @seg (never the current one) and syncs the directory. */
int sop__log_remove_seg(sop__log *l, uint32_t seg, const sop_db *db);
/* Total size of all segment files (preallocated zeros included). */
uint64_t sop__log_bytes(sop__log *l);

#endif
