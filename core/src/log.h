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
 * write; the commit record is the commit point. Records after the last
 * valid commit record of the last segment are a torn tail and are cut off
 * at open. A segment is synced in full before the next one is created.
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
    uint32_t durable_seg;
    uint64_t durable_end;
    int syncing;
    int failed; /* a sync failed: nothing more is durable */
    uint64_t syncs;
} sop__log;

/* Opens the log (creating segment 1 when there is none). */
int sop__log_open(sop__log *l, sop_vfs *vfs, const char *dir, unsigned mode, uint64_t seg_bytes,
                  const sop_db *db);
void sop__log_close(sop__log *l);

typedef int (*sop__log_fn)(void *arg, int type, uint64_t csn, const uint8_t *payload, uint32_t len,
                           uint32_t seg, uint64_t off);
/* Sets the position where reading (and appending) continues. */
void sop__log_seek(sop__log *l, uint32_t seg, uint64_t off);
/* Reads the records after the position, calling fn for each valid one
 * (fn returns 0 to go on), into the following segments too, and moves the
 * position past them. Segments missing below @last were deleted by
 * compaction. At an invalid record in a segment before @last: SOP_ECORRUPT.
 * At one in the last segment: with @cut the file is cut there (the torn
 * tail of a writer that died: only under the commit lock), without, the
 * reading stops there (another process may be writing it). */
int sop__log_follow(sop__log *l, uint32_t last, int cut, sop__log_fn fn, void *arg,
                    const sop_db *db);

/* Where the next append of @len bytes goes (rotating to a new segment when
 * the current one is full). Caller serialises appends (commit lock). */
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
/* Size of segment @seg (0 when absent). */
int sop__log_seg_size(sop__log *l, uint32_t seg, uint64_t *size);
/* Number of segment files present. */
uint32_t sop__log_nsegs(sop__log *l);
/* Deletes segment @seg (never the current one) and syncs the directory. */
int sop__log_remove_seg(sop__log *l, uint32_t seg, const sop_db *db);
/* Total size of all segment files. */
uint64_t sop__log_bytes(sop__log *l);

#endif
