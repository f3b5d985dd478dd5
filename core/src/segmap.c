/*
 * segmap.c - see segmap.h.
 *
 * Only bytes known to lie inside the file are read through a map (a page
 * past the end of a file raises SIGBUS): in the segment being appended to,
 * those before the log's end as this process has followed it; in an
 * earlier segment, which is never written again, those before its size.
 * A record that references anything else (a damaged handle) goes through
 * sop__log_read(), which reports it. A segment is mapped once, in full
 * (the one being appended to with the room it may grow into), and stays
 * mapped until compaction deletes it: no reader can reference it then.
 * Cached nodes decoded from a map use the image in it as their heap, so
 * the cache forgets them before the map goes (they are unpinned: no
 * snapshot reads the segment any more). The cache is freed before the
 * maps at close.
 */
#include <errno.h>
#include <string.h>

#include "internal.h"
#include "mem.h"
#include "segmap.h"

void sop__segmap_init(sop__segmap *m, int on)
{
    memset(m, 0, sizeof *m);
    pthread_mutex_init(&m->mu, NULL);
    m->on = on;
}

void sop__segmap_close(sop__segmap *m, sop_db *db)
{
    for (uint32_t i = 0; i < m->n; i++)
        if (m->e[i].addr)
            db->vfs->unmap(db->vfs, m->e[i].addr, m->e[i].len);
    sop__free(m->e);
    pthread_mutex_destroy(&m->mu);
    memset(m, 0, sizeof *m);
}

void sop__segmap_drop(sop__segmap *m, sop_db *db, uint32_t seg)
{
    pthread_mutex_lock(&m->mu);
    if (seg < m->n && m->e[seg].addr) {
        sop__cache_drop_seg(db->cache, seg); /* nodes whose heap is in the map */
        db->vfs->unmap(db->vfs, m->e[seg].addr, m->e[seg].len);
        memset(&m->e[seg], 0, sizeof m->e[seg]);
    }
    pthread_mutex_unlock(&m->mu);
}

/* The mapped record at (seg, off, len), or NULL when it must be read. */
static const uint8_t *mapped(sop_db *db, uint32_t seg, uint64_t off, uint32_t len)
{
    sop__segmap *m = &db->segmap;
    sop__log *l = &db->log;
    pthread_mutex_lock(&l->mu);
    uint32_t cur = l->cur;
    uint64_t end = l->end;
    sop_file *f = seg < l->nfiles ? l->files[seg] : NULL;
    uint64_t span = l->seg_bytes;
    pthread_mutex_unlock(&l->mu);
    if (!f || seg > cur || off + len < off)
        return NULL; /* not opened yet (sop__log_read() opens it), or unknown */
    const uint8_t *p = NULL;
    pthread_mutex_lock(&m->mu);
    if (seg >= m->n) {
        struct sop__segmap_ent *e = sop__grow(m->e, &m->cap, (size_t)seg + 1, sizeof *e, 16);
        if (!e)
            goto out;
        memset(e + m->n, 0, ((size_t)seg + 1 - m->n) * sizeof *e);
        m->e = e;
        m->n = (size_t)seg + 1;
    }
    struct sop__segmap_ent *e = &m->e[seg];
    uint64_t limit = end;
    if (seg < cur) {
        if (!e->sealed && db->vfs->size(db->vfs, f, &e->sealed) != 0)
            e->sealed = 0;
        limit = e->sealed;
    }
    if (off + len > limit)
        goto out;
    if (!e->addr) {
        uint64_t want = seg < cur ? e->sealed : (span > end ? span : end);
        if (db->vfs->map(db->vfs, f, want, (const void **)&e->addr) != 0) {
            e->addr = NULL;
            goto out;
        }
        e->len = want;
    }
    if (off + len <= e->len)
        p = e->addr + off;
out:
    pthread_mutex_unlock(&m->mu);
    return p;
}

int sop__seg_view(sop_db *db, uint32_t seg, uint64_t off, uint32_t len, const uint8_t **rec)
{
    const uint8_t *p = db->segmap.on ? mapped(db, seg, off, len) : NULL;
    if (!p)
        return 1;
    int type;
    uint64_t csn;
    if (sop__rec_check(p, len, &type, &csn) < 0)
        return sop__err(db, SOP_ECORRUPT, "segment %u offset %llu: bad record (checksum mismatch)",
                        seg, (unsigned long long)off);
    *rec = p;
    return 0;
}
