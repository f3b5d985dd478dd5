/* registry.c - logical id -> handle table. Format in registry.h. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "bytes.h"
#include "crc32c.h"
#include "err.h"
#include "killpoint.h"
#include "mem.h"
#include "registry.h"

#define DW_MAGIC 0x53505744u /* "DWPS" */
#define DW_HDR 32

static void block_encode(const sop__regblock *b, uint64_t bno, uint64_t ckpt, uint8_t *out)
{
    memset(out, 0, SOP__REG_BLOCK);
    sop__put32(out + 4, (uint32_t)bno);
    sop__put64(out + 8, ckpt);
    uint8_t *p = out + 16;
    for (int i = 0; i < SOP__REG_PER_BLOCK; i++, p += 32) {
        const sop__handle *h = &b->h[i];
        sop__put32(p, h->seg);
        sop__put32(p + 4, h->len);
        sop__put64(p + 8, h->off);
        sop__put64(p + 16, h->version);
        sop__put64(p + 24, h->csn);
    }
    sop__put32(out, sop__crc32c(out + 4, SOP__REG_BLOCK - 4, 0));
}

static int all_zero(const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i])
            return 0;
    return 1;
}

/* 0 ok, or SOP_ECORRUPT (*why says what) on a bad CRC or block number, or
 * a handle without a version that is not all zero (every written handle
 * has a version: next_id and the check only see those) */
static int block_decode(const uint8_t *in, uint64_t bno, sop__regblock *b, const char **why)
{
    memset(b, 0, sizeof *b);
    if (all_zero(in, SOP__REG_BLOCK))
        return 0;
    *why = "checksum mismatch";
    if (sop__get32(in) != sop__crc32c(in + 4, SOP__REG_BLOCK - 4, 0) || sop__get32(in + 4) != (uint32_t)bno)
        return SOP_ECORRUPT;
    const uint8_t *p = in + 16;
    for (int i = 0; i < SOP__REG_PER_BLOCK; i++, p += 32) {
        sop__handle *h = &b->h[i];
        h->seg = sop__get32(p);
        h->len = sop__get32(p + 4);
        h->off = sop__get64(p + 8);
        h->version = sop__get64(p + 16);
        h->csn = sop__get64(p + 24);
        if (!h->version && (h->seg || h->len || h->off || h->csn)) {
            *why = "a handle without a version";
            return SOP_ECORRUPT;
        }
    }
    return 0;
}

static int grow_blocks(sop__registry *r, uint64_t need)
{
    if (need <= r->nblocks)
        return 0;
    if (need > r->cap_blocks) {
        uint64_t cap = r->cap_blocks ? r->cap_blocks : 16;
        while (cap < need)
            cap *= 2;
        sop__regblock **nb = sop__realloc(r->blocks, cap * sizeof *nb);
        if (!nb)
            return -ENOMEM;
        r->blocks = nb;
        r->cap_blocks = cap;
    }
    while (r->nblocks < need) {
        sop__regblock *b = sop__calloc(1, sizeof *b);
        if (!b)
            return -ENOMEM;
        r->blocks[r->nblocks++] = b;
    }
    return 0;
}

/* Applies a complete, valid double-write file in place (an interrupted
 * checkpoint); ignores an incomplete one (its checkpoint never started the
 * in-place writes), and one of a checkpoint after @upto or with a block
 * image of another checkpoint than its header's: no checkpoint of this
 * database's history wrote it (checkpoint N writes the file only after
 * record N - 1 is durable, and stamps N in the header and every block),
 * and its blocks would put in the registry handles that no commit of the
 * log made. */
static int apply_dw(sop__registry *r, uint64_t upto, const sop_db *db)
{
    sop_file *f;
    int rc = r->vfs->open(r->vfs, r->dw_path, SOP_O_RDWR, 0, &f);
    if (rc == -ENOENT)
        return 0;
    if (rc)
        return sop__err(db, rc, "cannot open %s", r->dw_path);
    uint8_t hdr[DW_HDR];
    uint8_t *img = NULL;
    size_t got;
    rc = r->vfs->read(r->vfs, f, hdr, DW_HDR, 0, &got);
    if (rc) {
        rc = sop__err(db, rc, "cannot read %s", r->dw_path);
        goto done;
    }
    if (got < DW_HDR || sop__get32(hdr + 4) != DW_MAGIC ||
        sop__get32(hdr) != sop__crc32c(hdr + 4, DW_HDR - 4, 0))
        goto done; /* torn or empty: ignore */
    uint64_t no = sop__get64(hdr + 8);
    if (!no || no > upto)
        goto done; /* not of this history: ignore */
    uint32_t count = sop__get32(hdr + 16);
    img = sop__malloc(SOP__REG_BLOCK);
    if (!img) {
        rc = -ENOMEM;
        goto done;
    }
    /* first pass: all images must be valid */
    for (uint32_t i = 0; i < count; i++) {
        rc = r->vfs->read(r->vfs, f, img, SOP__REG_BLOCK, DW_HDR + (uint64_t)i * SOP__REG_BLOCK, &got);
        if (rc) {
            rc = sop__err(db, rc, "cannot read %s", r->dw_path);
            goto done;
        }
        if (got < SOP__REG_BLOCK || sop__get32(img) != sop__crc32c(img + 4, SOP__REG_BLOCK - 4, 0))
            goto done; /* incomplete: its checkpoint never wrote in place */
        if (sop__get64(img + 8) != no)
            goto done; /* not what checkpoint @no wrote: ignore */
    }
    for (uint32_t i = 0; i < count; i++) {
        rc = r->vfs->read(r->vfs, f, img, SOP__REG_BLOCK, DW_HDR + (uint64_t)i * SOP__REG_BLOCK, &got);
        if (!rc && got < SOP__REG_BLOCK)
            rc = -EIO;
        if (rc) {
            rc = sop__err(db, rc, "cannot read %s", r->dw_path);
            goto done;
        }
        uint64_t bno = sop__get32(img + 4);
        rc = r->vfs->write(r->vfs, r->file, img, SOP__REG_BLOCK, bno * SOP__REG_BLOCK);
        if (rc) {
            rc = sop__err(db, rc, "cannot restore registry block %llu", (unsigned long long)bno);
            goto done;
        }
    }
    rc = r->vfs->sync(r->vfs, r->file);
    if (rc)
        rc = sop__err(db, rc, "cannot sync %s", r->path);
done:
    sop__free(img);
    r->vfs->close(r->vfs, f);
    return rc;
}

static char *join(const char *dir, const char *name)
{
    size_t n = strlen(dir) + strlen(name) + 2;
    char *p = sop__malloc(n);
    if (p)
        snprintf(p, n, "%s/%s", dir, name);
    return p;
}

int sop__reg_open(sop__registry *r, sop_vfs *vfs, const char *dir, unsigned mode, int create,
                  uint64_t repair_upto, const sop_db *db)
{
    memset(r, 0, sizeof *r);
    r->vfs = vfs;
    r->next_id = 1;
    pthread_mutex_init(&r->mu, NULL);
    r->path = join(dir, "registry");
    r->dw_path = join(dir, "registry.dw");
    if (!r->path || !r->dw_path)
        return -ENOMEM;
    int rc = vfs->open(vfs, r->path, SOP_O_RDWR | (create ? SOP_O_CREATE : 0), mode, &r->file);
    if (rc)
        return sop__err(db, rc, "cannot open %s", r->path);
    if (repair_upto && (rc = apply_dw(r, repair_upto, db)) != 0)
        return rc;
    uint64_t size;
    rc = vfs->size(vfs, r->file, &size);
    if (rc)
        return sop__err(db, rc, "cannot stat %s", r->path);
    uint64_t n = size / SOP__REG_BLOCK;
    uint8_t *buf = sop__malloc(SOP__REG_BLOCK);
    if (!buf)
        return -ENOMEM;
    rc = grow_blocks(r, n);
    for (uint64_t b = 0; !rc && b < n; b++) {
        size_t got;
        rc = vfs->read(vfs, r->file, buf, SOP__REG_BLOCK, b * SOP__REG_BLOCK, &got);
        if (!rc && got < SOP__REG_BLOCK)
            rc = -EIO;
        if (rc) {
            rc = sop__err(db, rc, "cannot read registry block %llu", (unsigned long long)b);
            break;
        }
        const char *why = "";
        rc = block_decode(buf, b, r->blocks[b], &why);
        if (rc)
            rc = sop__err(db, rc, "registry block %llu: %s", (unsigned long long)b, why);
        for (int i = 0; !rc && i < SOP__REG_PER_BLOCK; i++) {
            const sop__handle *h = &r->blocks[b]->h[i];
            uint64_t id = b * SOP__REG_PER_BLOCK + (uint64_t)i;
            if (h->version && id + 1 > r->next_id)
                r->next_id = id + 1;
            if (h->version && h->csn > r->file_csn) {
                r->file_csn = h->csn;
                r->file_csn_id = id;
            }
        }
    }
    sop__free(buf);
    return rc;
}

void sop__reg_close(sop__registry *r)
{
    if (r->file)
        r->vfs->close(r->vfs, r->file);
    for (uint64_t b = 0; b < r->nblocks; b++)
        sop__free(r->blocks[b]);
    sop__free(r->blocks);
    sop__free(r->free_ids);
    sop__free(r->path);
    sop__free(r->dw_path);
    pthread_mutex_destroy(&r->mu);
    memset(r, 0, sizeof *r);
}

sop__handle sop__reg_get(sop__registry *r, uint64_t id)
{
    sop__handle h = {0};
    pthread_mutex_lock(&r->mu);
    uint64_t b = id / SOP__REG_PER_BLOCK;
    if (b < r->nblocks)
        h = r->blocks[b]->h[id % SOP__REG_PER_BLOCK];
    pthread_mutex_unlock(&r->mu);
    return h;
}

int sop__reg_set(sop__registry *r, uint64_t id, const sop__handle *h)
{
    pthread_mutex_lock(&r->mu);
    uint64_t b = id / SOP__REG_PER_BLOCK;
    int rc = grow_blocks(r, b + 1);
    if (!rc) {
        sop__handle *cur = &r->blocks[b]->h[id % SOP__REG_PER_BLOCK];
        r->live += (uint64_t)sop__handle_live(h) - (uint64_t)sop__handle_live(cur);
        *cur = *h;
        r->blocks[b]->dirty = 1;
        if (id >= r->next_id)
            r->next_id = id + 1;
    }
    pthread_mutex_unlock(&r->mu);
    return rc;
}

uint64_t sop__reg_next_id(sop__registry *r)
{
    pthread_mutex_lock(&r->mu);
    uint64_t n = r->next_id;
    pthread_mutex_unlock(&r->mu);
    return n;
}

int sop__reg_alloc_id(sop__registry *r, uint64_t *id)
{
    pthread_mutex_lock(&r->mu);
    if (r->nfree) {
        *id = r->free_ids[--r->nfree];
    } else {
        if (r->chunk_lo == r->chunk_hi) {
            uint64_t first;
            int rc = r->id_chunk(r->id_arg, 64, &first);
            if (rc) {
                pthread_mutex_unlock(&r->mu);
                return rc;
            }
            r->chunk_lo = first;
            r->chunk_hi = first + 64;
        }
        *id = r->chunk_lo++;
    }
    pthread_mutex_unlock(&r->mu);
    return 0;
}

void sop__reg_epoch_reset(sop__registry *r, uint64_t base)
{
    pthread_mutex_lock(&r->mu);
    r->chunk_lo = r->chunk_hi = 0;
    size_t n = 0;
    for (size_t i = 0; i < r->nfree; i++)
        if (r->free_ids[i] < base)
            r->free_ids[n++] = r->free_ids[i];
    r->nfree = n;
    pthread_mutex_unlock(&r->mu);
}

static void push_free_locked(sop__registry *r, uint64_t id)
{
    uint64_t *nf = sop__grow(r->free_ids, &r->cap_free, r->nfree + 1, sizeof *nf, 256);
    if (!nf)
        return; /* the id leaks until the next open rebuilds the list */
    r->free_ids = nf;
    nf[r->nfree++] = id;
}

void sop__reg_release_id(sop__registry *r, uint64_t id)
{
    pthread_mutex_lock(&r->mu);
    push_free_locked(r, id);
    pthread_mutex_unlock(&r->mu);
}

uint64_t sop__reg_free_but_live(sop__registry *r)
{
    uint64_t bad = 0;
    pthread_mutex_lock(&r->mu);
    for (size_t i = 0; i < r->nfree; i++) {
        uint64_t id = r->free_ids[i], b = id / SOP__REG_PER_BLOCK;
        if (b < r->nblocks && sop__handle_live(&r->blocks[b]->h[id % SOP__REG_PER_BLOCK]))
            bad++;
    }
    pthread_mutex_unlock(&r->mu);
    return bad;
}

int sop__reg_rebuild_free(sop__registry *r)
{
    pthread_mutex_lock(&r->mu);
    r->nfree = 0;
    r->live = 0;
    for (uint64_t id = r->next_id; id-- > 1;) {
        uint64_t b = id / SOP__REG_PER_BLOCK;
        const sop__handle *h = b < r->nblocks ? &r->blocks[b]->h[id % SOP__REG_PER_BLOCK] : NULL;
        if (h && sop__handle_live(h))
            r->live++;
        else
            push_free_locked(r, id);
    }
    pthread_mutex_unlock(&r->mu);
    return 0;
}

int sop__reg_checkpoint(sop__registry *r, uint64_t ckpt_no, const sop_db *db)
{
    /* the caller holds the commit lock: no concurrent sop__reg_set */
    uint64_t ndirty = 0;
    for (uint64_t b = 0; b < r->nblocks; b++)
        ndirty += r->blocks[b]->dirty;
    if (!ndirty)
        return 0;
    size_t len = DW_HDR + (size_t)ndirty * SOP__REG_BLOCK;
    uint8_t *buf = sop__calloc(1, len);
    if (!buf)
        return -ENOMEM;
    uint8_t *p = buf + DW_HDR;
    for (uint64_t b = 0; b < r->nblocks; b++)
        if (r->blocks[b]->dirty) {
            pthread_mutex_lock(&r->mu);
            block_encode(r->blocks[b], b, ckpt_no, p);
            pthread_mutex_unlock(&r->mu);
            p += SOP__REG_BLOCK;
        }
    sop__put32(buf + 4, DW_MAGIC);
    sop__put64(buf + 8, ckpt_no);
    sop__put32(buf + 16, (uint32_t)ndirty);
    sop__put32(buf, sop__crc32c(buf + 4, DW_HDR - 4, 0));

    sop_file *dw = NULL;
    int rc = r->vfs->open(r->vfs, r->dw_path, SOP_O_RDWR | SOP_O_CREATE | SOP_O_TRUNC, 0600, &dw);
    if (rc) {
        rc = sop__err(db, rc, "cannot create %s", r->dw_path);
        goto out;
    }
    rc = r->vfs->write(r->vfs, dw, buf, len, 0);
    if (!rc)
        rc = r->vfs->sync(r->vfs, dw);
    if (rc) {
        rc = sop__err(db, rc, "cannot write %s", r->dw_path);
        goto out;
    }
    SOP_KILL_POINT("checkpoint:after_dw");
    p = buf + DW_HDR;
    for (uint64_t i = 0; i < ndirty; i++, p += SOP__REG_BLOCK) {
        uint64_t bno = sop__get32(p + 4);
        rc = r->vfs->write(r->vfs, r->file, p, SOP__REG_BLOCK, bno * SOP__REG_BLOCK);
        if (rc) {
            rc = sop__err(db, rc, "cannot write registry block %llu", (unsigned long long)bno);
            goto out;
        }
        if (i == ndirty / 2)
            SOP_KILL_POINT("checkpoint:mid_registry");
    }
    rc = r->vfs->sync(r->vfs, r->file);
    if (rc) {
        rc = sop__err(db, rc, "cannot sync %s", r->path);
        goto out;
    }
    for (uint64_t b = 0; b < r->nblocks; b++)
        r->blocks[b]->dirty = 0;
out:
    if (dw)
        r->vfs->close(r->vfs, dw);
    sop__free(buf);
    return rc;
}
