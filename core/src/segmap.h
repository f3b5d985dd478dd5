/*
 * segmap.h - reads of whole records through read-only memory maps of the
 * segment files (sop_db_options.map_reads), with read() as the fallback.
 */
#ifndef SOP_SEGMAP_H
#define SOP_SEGMAP_H
#include <pthread.h>
#include <stdint.h>

typedef struct sop_db sop_db;

typedef struct sop__segmap {
    pthread_mutex_t mu;
    struct sop__segmap_ent {
        const uint8_t *addr; /* NULL: not mapped */
        uint64_t len;        /* bytes mapped */
        uint64_t sealed;     /* size of the segment once it is no longer appended to; 0: unknown */
    } *e;                    /* indexed by segment number */
    size_t n, cap;
    int on;
} sop__segmap;

void sop__segmap_init(sop__segmap *m, int on);
/* Unmaps everything. */
void sop__segmap_close(sop__segmap *m, sop_db *db);
/* Forgets segment @seg (before its file is deleted). */
void sop__segmap_drop(sop__segmap *m, sop_db *db, uint32_t seg);
/* The whole record at (seg, off, len) in place, its framing and CRC
 * checked as sop__log_read() checks them: 0 and *rec (valid until the
 * segment is deleted, which no open snapshot allows), 1 when the bytes are
 * not known to be mapped and inside the file (read them with
 * sop__log_read()), or SOP_ECORRUPT. */
int sop__seg_view(sop_db *db, uint32_t seg, uint64_t off, uint32_t len, const uint8_t **rec);

#endif
