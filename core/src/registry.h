/*
 * registry.h - logical id -> handle (location, version, commit number).
 *
 * File "registry": blocks of 4096 bytes. Block b holds the handles of ids
 * [b * 127, (b + 1) * 127); id 0 is never used.
 *
 *   off  size  field
 *   0    4     CRC32C of bytes 4..4095
 *   4    4     block number
 *   8    8     checkpoint number that wrote the block
 *   16   4064  127 handles of 32 bytes:
 *                u32 seg   segment number of the current image (0: never written)
 *                u32 len   image record length; bit 31 = DELETED
 *                u64 off   offset of the image record in the segment
 *                u64 version  bumped by every new image or deletion; never reset
 *                u64 csn   commit sequence number of that version
 *   4080 16    zero
 *
 * The file is written only by checkpoints, through a double-write file
 * ("registry.dw": header + block images, synced before the in-place
 * writes), so a torn block write is always repairable. Between checkpoints
 * the current handles live in memory and in the redo records of the log.
 */
#ifndef SOP_REGISTRY_H
#define SOP_REGISTRY_H
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include "sop/sop.h"

#define SOP__REG_BLOCK 4096
#define SOP__REG_PER_BLOCK 127
#define SOP__H_DELETED 0x80000000u

typedef struct sop__handle {
    uint32_t seg;
    uint32_t len; /* | SOP__H_DELETED */
    uint64_t off;
    uint64_t version;
    uint64_t csn;
} sop__handle;

static inline int sop__handle_live(const sop__handle *h)
{
    return h->seg != 0 && !(h->len & SOP__H_DELETED);
}
static inline uint32_t sop__handle_len(const sop__handle *h) { return h->len & ~SOP__H_DELETED; }

typedef struct sop__regblock {
    sop__handle h[SOP__REG_PER_BLOCK];
    uint8_t dirty;
} sop__regblock;

typedef struct sop__registry {
    sop_vfs *vfs;
    sop_file *file;
    char *path, *dw_path;
    pthread_mutex_t mu;
    sop__regblock **blocks;
    uint64_t nblocks, cap_blocks;
    uint64_t next_id;  /* above every id with a handle */
    /* hands out @n fresh ids from the counter the processes share */
    int (*id_chunk)(void *arg, uint64_t n, uint64_t *first);
    void *id_arg;
    uint64_t chunk_lo, chunk_hi;     /* ids taken from it, not handed out yet */
    uint64_t *free_ids; /* reusable ids */
    size_t nfree, cap_free;
    uint64_t live;     /* live handles */
    /* the newest csn of a handle loaded from the file, and its id:
     * recovery checks that the log reaches it (db.c load) */
    uint64_t file_csn, file_csn_id;
} sop__registry;

/* Loads the registry. @repair_upto (first opener; 0: none) is the
 * checkpoint number that may have been interrupted: the newest valid
 * checkpoint record's plus one (1 when there is none). A complete
 * double-write file of that checkpoint or an earlier one is applied in
 * place first (it holds the latest images of its blocks); one that claims
 * a later checkpoint, or whose block images are not all of the checkpoint
 * its header names, was not written in this history of the database and
 * is ignored, like a torn one. Sets file_csn. */
int sop__reg_open(sop__registry *r, sop_vfs *vfs, const char *dir, unsigned mode, int create,
                  uint64_t repair_upto, const sop_db *db);
void sop__reg_close(sop__registry *r);
/* Handle of @id (all-zero if never written). Thread-safe. */
sop__handle sop__reg_get(sop__registry *r, uint64_t id);
/* Sets handle @id (caller serialises commits). -ENOMEM. */
int sop__reg_set(sop__registry *r, uint64_t id, const sop__handle *h);
/* Above every id that has a handle. */
uint64_t sop__reg_next_id(sop__registry *r);
/* Hands out an unused id: a reused one, or the next of a chunk taken
 * through id_chunk (shared by the processes). */
int sop__reg_alloc_id(sop__registry *r, uint64_t *id);
/* Clustered: the cluster's id counter was re-derived from @base. Drops
 * the chunk held and the reusable ids at or above @base (another process
 * may be handed them now). */
void sop__reg_epoch_reset(sop__registry *r, uint64_t base);
/* Gives back an id that was handed out but never committed, or whose
 * deletion committed. */
void sop__reg_release_id(sop__registry *r, uint64_t id);
/* How many ids on the free list have a live handle (sop_db_check: 0). */
uint64_t sop__reg_free_but_live(sop__registry *r);
/* Rebuilds the free-id list from the handles (after recovery). */
int sop__reg_rebuild_free(sop__registry *r);
/* Writes dirty blocks durably (double write, then in place). */
int sop__reg_checkpoint(sop__registry *r, uint64_t ckpt_no, const sop_db *db);

#endif
