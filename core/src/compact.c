/*
 * compact.c - space reclamation.
 *
 * Images are never overwritten, so every update leaves a dead image behind.
 * When the segment files exceed twice the live data (plus 4 MiB of slack),
 * the segments below half live are emptied: their live images are copied to
 * the end of the log as a relocation commit (same bytes, version + 1, the
 * previous image recorded as usual). An emptied segment is deleted once
 * (1) a checkpoint's replay starts after it and (2) no open transaction has
 * a snapshot older than the relocation (such a snapshot may still walk back
 * into it). So the files stay within about twice the live data, plus the
 * current segment and what open snapshots pin.
 *
 * Early-written images (streaming values) are not live until their
 * transaction commits, so a segment holding them may be emptied while the
 * transaction runs: it is not deleted then (the transaction's snapshot
 * predates the relocation), and it is kept when the commit made it live
 * again (seg_has_live()).
 */
#include <errno.h>
#include <string.h>

#include "bytes.h"
#include "internal.h"
#include "mem.h"

#define SLACK (4u << 20)
#define BATCH (8u << 20)    /* bytes relocated per commit */
#define BUDGET (64u << 20)  /* bytes relocated per call */

/* Does a live handle point into segment @seg? An emptied segment can
 * become live again: an image a transaction appended early (a chunk of a
 * streaming value, docs/design/streaming.md) lies where the log ended when
 * it was written, and becomes live at its commit, maybe after compaction
 * relocated the rest of that segment. Registry read under commit_mu, after
 * following the log: every commit is in it. */
static int seg_has_live(sop_db *db, uint32_t seg)
{
    sop__registry *r = &db->reg;
    int found = 0;
    pthread_mutex_lock(&r->mu);
    for (uint64_t b = 0; b < r->nblocks && !found; b++)
        for (int i = 0; i < SOP__REG_PER_BLOCK; i++) {
            const sop__handle *h = &r->blocks[b]->h[i];
            if (sop__handle_live(h) && h->seg == seg) {
                found = 1;
                break;
            }
        }
    pthread_mutex_unlock(&r->mu);
    return found;
}

int sop__reap_locked(sop_db *db)
{
    if (!db->nreap)
        return 0;
    uint32_t min_seg;
    uint64_t oldest = sop__oldest_snap(db, &min_seg);
    uint32_t ckseg = (uint32_t)atomic_load(&db->shm->ckpt_seg);
    size_t keep = 0;
    int rc = 0;
    for (size_t i = 0; i < db->nreap; i++) {
        struct sop__reap r = db->reap[i];
        /* replay never starts before ckpt_seg, every process has followed
         * the log past it, and no snapshot predates the relocation */
        if (!rc && r.seg < ckseg && r.seg < min_seg && oldest >= r.csn) {
            if (seg_has_live(db, r.seg))
                continue; /* live again: no longer empty, compacted like any other */
            sop__segmap_drop(&db->segmap, db, r.seg);
            rc = sop__log_remove_seg(&db->log, r.seg, db);
        } else {
            db->reap[keep++] = r;
        }
    }
    db->nreap = keep;
    return rc;
}

static int push_reap(sop_db *db, uint32_t seg, uint64_t csn)
{
    for (size_t i = 0; i < db->nreap; i++)
        if (db->reap[i].seg == seg) {
            db->reap[i].csn = csn;
            return 0;
        }
    struct sop__reap *a = sop__grow(db->reap, &db->capreap, db->nreap + 1, sizeof *a, 16);
    if (!a)
        return -ENOMEM;
    db->reap = a;
    a[db->nreap++] = (struct sop__reap){seg, csn};
    return 0;
}

typedef struct idlist {
    uint64_t *id;
    sop__handle *h;
    size_t n, cap;
} idlist;

/* The live handles that point into segment @seg. */
static int live_in(sop_db *db, uint32_t seg, idlist *out)
{
    sop__registry *r = &db->reg;
    int rc = 0;
    out->n = 0;
    pthread_mutex_lock(&r->mu);
    for (uint64_t b = 0; b < r->nblocks && !rc; b++)
        for (int i = 0; i < SOP__REG_PER_BLOCK; i++) {
            const sop__handle *h = &r->blocks[b]->h[i];
            if (!sop__handle_live(h) || h->seg != seg)
                continue;
            if (out->n == out->cap) {
                size_t c = out->cap ? out->cap * 2 : 256;
                uint64_t *a = sop__realloc(out->id, c * sizeof *a);
                sop__handle *hh = a ? sop__realloc(out->h, c * sizeof *hh) : NULL;
                if (a)
                    out->id = a;
                if (!a || !hh) {
                    rc = -ENOMEM;
                    break;
                }
                out->h = hh;
                out->cap = c;
            }
            out->id[out->n] = b * SOP__REG_PER_BLOCK + (uint64_t)i;
            out->h[out->n++] = *h;
        }
    pthread_mutex_unlock(&r->mu);
    return rc;
}

/* Copies images [from, to) of @ids to the log in one relocation commit. */
static int relocate(sop_db *db, const idlist *ids, size_t from, size_t to, uint64_t *csn_out)
{
    uint64_t total = SOP__REC_HDR + SOP__COMMIT_HDR + (to - from) * SOP__COMMIT_ENTRY;
    for (size_t i = from; i < to; i++)
        total += sop__handle_len(&ids->h[i]);
    uint8_t *buf = sop__malloc(total);
    if (!buf)
        return -ENOMEM;
    uint64_t csn = atomic_load(&db->csn) + 1, off;
    uint32_t seg;
    int rc = sop__log_reserve(&db->log, total, &seg, &off, db);
    if (rc)
        goto out;
    uint8_t *p = buf;
    uint8_t *ents = buf + total - (to - from) * SOP__COMMIT_ENTRY;
    for (size_t i = from; i < to; i++) {
        const sop__handle *h = &ids->h[i];
        uint32_t len = sop__handle_len(h);
        rc = sop__log_read(&db->log, h->seg, h->off, len, p, db);
        if (rc)
            goto out;
        uint8_t *ih = p + SOP__REC_HDR;
        if (p[4] != SOP__REC_IMAGE || sop__get64(ih) != ids->id[i]) {
            rc = sop__err(db, SOP_ECORRUPT, "segment %u offset %llu: not an image of id %llu",
                          h->seg, (unsigned long long)h->off, (unsigned long long)ids->id[i]);
            goto out;
        }
        sop__put64(ih + 8, h->version + 1);
        sop__put32(ih + 16, h->seg);
        sop__put32(ih + 20, len);
        sop__put64(ih + 24, h->off);
        sop__rec_seal(p, SOP__REC_IMAGE, csn, len - SOP__REC_HDR);
        uint8_t *e = ents + (i - from) * SOP__COMMIT_ENTRY;
        sop__put64(e, ids->id[i]);
        sop__put32(e + 8, seg);
        sop__put32(e + 12, len);
        sop__put64(e + 16, off + (uint64_t)(p - buf));
        sop__put64(e + 24, h->version + 1);
        sop__put64(e + 32, csn);
        p += len;
    }
    uint8_t *c = p;
    memset(c + SOP__REC_HDR, 0, SOP__COMMIT_HDR);
    sop__put32(c + SOP__REC_HDR, (uint32_t)(to - from));
    sop__put64(c + SOP__REC_HDR + 8, atomic_load(&db->shm->next_id));
    sop__put64(c + SOP__REC_HDR + 16, atomic_load(&db->shm->next_seq));
    sop__rec_seal(c, SOP__REC_COMMIT, csn, (uint32_t)(SOP__COMMIT_HDR + (to - from) * SOP__COMMIT_ENTRY));
    rc = sop__log_write(&db->log, buf, total, off, db);
    if (rc) {
        atomic_store(&db->panic, 1);
        goto out;
    }
    for (size_t i = from; i < to && !rc; i++) {
        const uint8_t *e = ents + (i - from) * SOP__COMMIT_ENTRY;
        sop__handle nh = {seg, sop__get32(e + 12), sop__get64(e + 16), sop__get64(e + 24), csn};
        rc = sop__reg_set(&db->reg, ids->id[i], &nh);
    }
    if (rc) {
        atomic_store(&db->panic, 1);
        goto out;
    }
    atomic_store(&db->csn, csn);
    atomic_fetch_add(&db->since_ckpt, total);
    atomic_store(&db->shm->csn, csn);
    /* the same content: visible at once (the checkpoint that follows syncs it) */
    sop__atomic_max(&db->shm->durable_csn, csn);
    *csn_out = csn;
out:
    sop__free(buf);
    return rc;
}

int sop__compact_locked(sop_db *db, int *moved)
{
    *moved = 0;
    sop__log *l = &db->log;
    uint32_t cur = l->cur;
    if (cur < 2)
        return 0;
    uint64_t *live = sop__calloc(cur, sizeof *live), *size = sop__calloc(cur, sizeof *size);
    idlist ids = {0};
    int rc = 0;
    if (!live || !size) {
        rc = -ENOMEM;
        goto out;
    }
    uint64_t total_live = 0, total_size = 0;
    for (uint32_t s = 1; s < cur && !rc; s++) /* sealed: the file ends at the records */
        rc = sop__log_seg_size(l, s, &size[s]);
    if (rc)
        goto out;
    pthread_mutex_lock(&db->reg.mu);
    for (uint64_t b = 0; b < db->reg.nblocks; b++)
        for (int i = 0; i < SOP__REG_PER_BLOCK; i++) {
            const sop__handle *h = &db->reg.blocks[b]->h[i];
            if (sop__handle_live(h) && h->seg < cur)
                live[h->seg] += sop__handle_len(h);
        }
    pthread_mutex_unlock(&db->reg.mu);
    for (uint32_t s = 1; s < cur; s++) {
        total_live += live[s];
        total_size += size[s];
    }
    if (total_size <= 2 * total_live + SLACK)
        goto out;
    uint64_t copied = 0;
    for (uint32_t s = 1; s < cur && copied < BUDGET; s++) {
        if (!size[s] || live[s] * 2 >= size[s])
            continue;
        rc = live_in(db, s, &ids);
        if (rc)
            goto out;
        uint64_t csn = atomic_load(&db->csn);
        for (size_t i = 0; i < ids.n;) {
            size_t j = i;
            uint64_t bytes = 0;
            while (j < ids.n && (j == i || bytes + sop__handle_len(&ids.h[j]) <= BATCH))
                bytes += sop__handle_len(&ids.h[j++]);
            rc = relocate(db, &ids, i, j, &csn);
            if (rc)
                goto out;
            copied += bytes;
            i = j;
        }
        rc = push_reap(db, s, csn);
        if (rc)
            goto out;
        *moved = 1;
    }
out:
    sop__free(live);
    sop__free(size);
    sop__free(ids.id);
    sop__free(ids.h);
    return rc;
}
