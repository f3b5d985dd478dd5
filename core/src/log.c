/* log.c - segment files. Format in log.h. */
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bytes.h"
#include "crc32c.h"
#include "err.h"
#include "killpoint.h"
#include "log.h"
#include "mem.h"

#define MAX_RECORD (SOP_VALUE_MAX + (1u << 20))

static void seg_path(const sop__log *l, uint32_t seg, char *buf, size_t n)
{
    snprintf(buf, n, "%s/seg-%08u", l->dir, seg);
}

void sop__rec_seal(uint8_t *rec, int type, uint64_t csn, uint32_t plen)
{
    sop__put32(rec, SOP__REC_MAGIC);
    rec[4] = (uint8_t)type;
    rec[5] = rec[6] = rec[7] = 0;
    sop__put32(rec + 8, plen);
    sop__put32(rec + 12, 0);
    sop__put64(rec + 16, csn);
    uint32_t crc = sop__crc32c(rec, SOP__REC_HDR, 0);
    crc = sop__crc32c(rec + SOP__REC_HDR, plen, crc);
    sop__put32(rec + 12, crc);
}

/* Harness mutant (SOP_TESTING builds): SOP_TEST_NO_CRC accepts records
 * whose CRC does not match; the corruption suite must catch it. */
static int no_crc_mutant(void)
{
#ifdef SOP_TESTING
    static _Atomic int v = -1;
    int x = atomic_load_explicit(&v, memory_order_relaxed);
    if (x < 0)
        atomic_store(&v, x = getenv("SOP_TEST_NO_CRC") != NULL);
    return x;
#else
    return 0;
#endif
}

int sop__rec_check(const uint8_t *rec, uint64_t len, int *type, uint64_t *csn)
{
    if (len < SOP__REC_HDR || sop__get32(rec) != SOP__REC_MAGIC)
        return SOP_ECORRUPT;
    uint32_t plen = sop__get32(rec + 8);
    if ((uint64_t)plen + SOP__REC_HDR > len || (rec[4] != SOP__REC_IMAGE && rec[4] != SOP__REC_COMMIT))
        return SOP_ECORRUPT;
    uint8_t hdr[SOP__REC_HDR];
    memcpy(hdr, rec, SOP__REC_HDR);
    sop__put32(hdr + 12, 0);
    uint32_t crc = sop__crc32c(hdr, SOP__REC_HDR, 0);
    crc = sop__crc32c(rec + SOP__REC_HDR, plen, crc);
    if (crc != sop__get32(rec + 12) && !no_crc_mutant())
        return SOP_ECORRUPT;
    *type = rec[4];
    *csn = sop__get64(rec + 16);
    return (int)plen;
}

static int ensure_slot(sop__log *l, uint32_t seg)
{
    if (seg < l->nfiles)
        return 0;
    uint64_t n = l->nfiles ? l->nfiles : 16;
    while (n <= seg)
        n *= 2;
    if (n > UINT32_MAX) /* segment 2^31 or above: never made by the engine */
        return -ENOMEM;
    sop_file **nf = sop__realloc(l->files, n * sizeof *nf);
    if (!nf)
        return -ENOMEM;
    memset(nf + l->nfiles, 0, (n - l->nfiles) * sizeof *nf);
    l->files = nf;
    l->nfiles = n;
    return 0;
}

/* The open file of @seg. Every segment present is opened by
 * sop__log_open(); a missing one was deleted by compaction (or lost). */
static int try_open(sop__log *l, uint32_t seg, const sop_db *db);
static int seg_file(sop__log *l, uint32_t seg, sop_file **out, const sop_db *db)
{
    int rc = try_open(l, seg, db);
    if (rc == -ENOENT)
        return sop__err(db, SOP_ECORRUPT, "segment %u is missing", seg);
    if (rc)
        return rc;
    *out = l->files[seg];
    return 0;
}

static int open_seg(sop__log *l, uint32_t seg, const sop_db *db)
{
    char path[4096];
    seg_path(l, seg, path, sizeof path);
    int rc = ensure_slot(l, seg);
    if (!rc)
        rc = l->vfs->open(l->vfs, path, SOP_O_RDWR, 0, &l->files[seg]);
    return rc ? sop__err(db, rc, "cannot open segment %s", path) : 0;
}

static int create_seg(sop__log *l, uint32_t seg, const sop_db *db)
{
    char path[4096];
    seg_path(l, seg, path, sizeof path);
    int rc = ensure_slot(l, seg);
    if (rc)
        return rc;
    rc = l->vfs->open(l->vfs, path, SOP_O_RDWR | SOP_O_CREATE | SOP_O_TRUNC, l->mode, &l->files[seg]);
    if (!rc)
        rc = l->vfs->sync_dir(l->vfs, l->dir);
    if (rc)
        return sop__err(db, rc, "cannot create segment %s", path);
    return 0;
}

struct seg_scan {
    uint32_t first, last;
    uint32_t *nums;
    size_t n, cap;
    int rc;
};

static int scan_name(const char *name, void *arg)
{
    struct seg_scan *s = arg;
    if (strncmp(name, "seg-", 4) != 0 || strlen(name) != 12 || strspn(name + 4, "0123456789") != 8)
        return 0;
    uint32_t n = (uint32_t)strtoul(name + 4, NULL, 10);
    if (!n)
        return 0;
    uint32_t *a = sop__grow(s->nums, &s->cap, s->n + 1, sizeof *a, 64);
    if (!a)
        return s->rc = -ENOMEM;
    s->nums = a;
    a[s->n++] = n;
    if (!s->first || n < s->first)
        s->first = n;
    if (n > s->last)
        s->last = n;
    return 0;
}

int sop__log_open(sop__log *l, sop_vfs *vfs, const char *dir, unsigned mode, uint64_t seg_bytes,
                  const sop_db *db)
{
    memset(l, 0, sizeof *l);
    l->vfs = vfs;
    l->mode = mode;
    l->seg_bytes = seg_bytes;
    pthread_mutex_init(&l->mu, NULL);
    pthread_cond_init(&l->cv, NULL);
    l->dir = sop__strdup(dir);
    if (!l->dir)
        return -ENOMEM;
    struct seg_scan s = {0};
    int rc = vfs->list(vfs, dir, scan_name, &s);
    if (rc) {
        sop__free(s.nums);
        return rc == -ENOMEM ? rc : sop__err(db, rc, "cannot list %s", dir);
    }
    for (size_t i = 0; i < s.n && !rc; i++)
        rc = open_seg(l, s.nums[i], db);
    sop__free(s.nums);
    if (rc)
        return rc;
    if (!s.last) {
        rc = create_seg(l, 1, db);
        if (rc)
            return rc;
        s.first = s.last = 1;
    }
    l->first = s.first;
    l->last = s.last;
    l->cur = s.last;
    l->durable_seg = l->cur;
    return 0;
}

void sop__log_close(sop__log *l)
{
    for (uint32_t i = 0; i < l->nfiles; i++)
        if (l->files[i])
            l->vfs->close(l->vfs, l->files[i]);
    sop__free(l->files);
    sop__free(l->dir);
    pthread_cond_destroy(&l->cv);
    pthread_mutex_destroy(&l->mu);
    memset(l, 0, sizeof *l);
}

int sop__log_read(sop__log *l, uint32_t seg, uint64_t off, uint32_t len, uint8_t *buf,
                  const sop_db *db)
{
    if (off > (uint64_t)INT64_MAX - len) /* a damaged location: no file reaches there */
        return sop__err(db, SOP_ECORRUPT, "segment %u: a record at offset %llu, past the end "
                        "of any file", seg, (unsigned long long)off);
    sop_file *f = NULL;
    pthread_mutex_lock(&l->mu);
    int rc = seg_file(l, seg, &f, db);
    pthread_mutex_unlock(&l->mu);
    if (rc)
        return rc;
    size_t got;
    rc = l->vfs->read(l->vfs, f, buf, len, off, &got);
    if (rc)
        return sop__err(db, rc, "cannot read segment %u at %llu", seg, (unsigned long long)off);
    int type;
    uint64_t csn;
    if (got < len) {
        uint64_t size = 0;
        if (l->vfs->size(l->vfs, f, &size) == 0 && size < off + len)
            return sop__err(db, SOP_ECORRUPT, "segment %u ends at %llu, before the record at %llu",
                            seg, (unsigned long long)size, (unsigned long long)off);
        return sop__err(db, -EIO, "segment %u: short read at %llu", seg, (unsigned long long)off);
    }
    if (sop__rec_check(buf, len, &type, &csn) < 0)
        return sop__err(db, SOP_ECORRUPT, "segment %u offset %llu: bad record (checksum mismatch)",
                        seg, (unsigned long long)off);
    return 0;
}

void sop__log_seek(sop__log *l, uint32_t seg, uint64_t off)
{
    pthread_mutex_lock(&l->mu);
    l->cur = seg;
    l->end = off;
    l->alloc = 0; /* unknown: the next append checks the file size */
    l->durable_seg = seg;
    l->durable_end = off;
    pthread_mutex_unlock(&l->mu);
}

/* Opens segment @seg if it exists: 0, -ENOENT, or an error. The slot in
 * files[] (indexed by segment number) is made only for a segment that
 * exists: a damaged handle or checkpoint naming segment 4 billion costs
 * an open that fails, not the memory of 4 billion slots. */
static int try_open(sop__log *l, uint32_t seg, const sop_db *db)
{
    if (seg < l->nfiles && l->files[seg])
        return 0;
    char path[4096];
    seg_path(l, seg, path, sizeof path);
    sop_file *f = NULL;
    int rc = l->vfs->open(l->vfs, path, SOP_O_RDWR, 0, &f);
    if (!rc && (rc = ensure_slot(l, seg)) != 0)
        l->vfs->close(l->vfs, f);
    if (!rc)
        l->files[seg] = f;
    if (rc && rc != -ENOENT)
        rc = sop__err(db, rc, "cannot open segment %s", path);
    return rc;
}

/* Reading one segment. */
typedef struct reader {
    sop__log *l;
    sop_file *f;
    uint32_t seg;
    uint64_t size; /* of the file, as last seen */
    uint8_t *buf;  /* the record read */
    size_t cap;
} reader;

/* Why reading a segment stopped. */
#define STOP_EOF 1  /* the end of the file */
#define STOP_ZERO 2 /* a header of zero bytes: the preallocated area */
#define STOP_BAD 3  /* not a valid record, or a stale one */

/* Reads @n bytes at @off: 0, STOP_EOF when the file turned out shorter
 * (without the commit lock another process may cut it meanwhile: a rotation
 * seals a segment at its records' end, a cut drops a torn tail; r->size is
 * then the new size), or an error. */
static int read_at(reader *r, uint64_t off, void *dst, size_t n, const sop_db *db)
{
    sop_vfs *vfs = r->l->vfs;
    size_t got = 0;
    int rc = vfs->read(vfs, r->f, dst, n, off, &got);
    if (rc)
        return sop__err(db, rc, "cannot read segment %u at %llu", r->seg, (unsigned long long)off);
    if (got == n)
        return 0;
    uint64_t size;
    rc = vfs->size(vfs, r->f, &size);
    if (rc)
        return sop__err(db, rc, "cannot stat segment %u", r->seg);
    if (size >= off + n) /* short of what the size promises */
        return sop__err(db, -EIO, "segment %u: short read at %llu", r->seg,
                        (unsigned long long)off);
    r->size = size;
    return STOP_EOF;
}

static int all_zero(const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i])
            return 0;
    return 1;
}

/* Reads the record at @off into r->buf: 0 when it is valid and its csn is
 * not below @floor (*type, *csn, *plen set), a STOP_* where reading stops,
 * or an error. */
static int read_rec(reader *r, uint64_t off, uint64_t floor, int *type, uint64_t *csn,
                    uint32_t *plen, const sop_db *db)
{
    uint8_t hdr[SOP__REC_HDR];
    if (off >= r->size)
        return STOP_EOF;
    size_t n = r->size - off < SOP__REC_HDR ? (size_t)(r->size - off) : SOP__REC_HDR;
    int rc = read_at(r, off, hdr, n, db);
    if (rc)
        return rc;
    if (all_zero(hdr, n))
        return STOP_ZERO;
    if (n < SOP__REC_HDR)
        return STOP_BAD;
    *plen = sop__get32(hdr + 8);
    if (sop__get32(hdr) != SOP__REC_MAGIC || *plen > MAX_RECORD ||
        off + SOP__REC_HDR + *plen > r->size)
        return STOP_BAD;
    size_t need = SOP__REC_HDR + (size_t)*plen;
    uint8_t *nb = sop__grow(r->buf, &r->cap, need, 1, need);
    if (!nb)
        return -ENOMEM;
    r->buf = nb;
    rc = read_at(r, off, r->buf, need, db);
    if (rc)
        return rc == STOP_EOF ? STOP_BAD : rc; /* cut inside the record */
    if (sop__rec_check(r->buf, need, type, csn) < 0)
        return STOP_BAD;
    /* csns never decrease along the log: a lower one is a leftover of an
     * earlier incarnation of these bytes, never a commit to apply */
    return *csn < floor ? STOP_BAD : 0;
}

/* Truncates the last segment at @off (and syncs, so that what is cut
 * cannot come back). */
static int cut_at(reader *r, uint64_t off, const char *what, const sop_db *db)
{
    sop_vfs *vfs = r->l->vfs;
    int rc = vfs->truncate(vfs, r->f, off);
    if (!rc)
        rc = vfs->sync(vfs, r->f);
    if (rc)
        return sop__err(db, rc, "cannot cut the %s of segment %u", what, r->seg);
    r->size = off;
    r->l->alloc = off;
    return 0;
}

int sop__log_follow(sop__log *l, uint32_t last, int mode, uint64_t csn, sop__log_fn fn, void *arg,
                    const sop_db *db)
{
    reader r = {.l = l};
    int rc = 0;
    uint32_t seg = l->cur;
    uint64_t off = l->end;
    for (;;) {
        pthread_mutex_lock(&l->mu);
        rc = try_open(l, seg, db);
        pthread_mutex_unlock(&l->mu);
        if (rc == -ENOENT && seg < last) {
            seg++; /* deleted by compaction (replay from the oldest segment) */
            off = 0;
            continue;
        }
        if (rc == -ENOENT)
            rc = sop__err(db, SOP_ECORRUPT, "segment %u is missing", seg);
        if (rc)
            break;
        r.f = l->files[seg];
        r.seg = seg;
        rc = l->vfs->size(l->vfs, r.f, &r.size);
        if (rc)
            break;
        int stop;
        for (;;) {
            int type;
            uint32_t plen;
            uint64_t rcsn;
            stop = read_rec(&r, off, csn, &type, &rcsn, &plen, db);
            if (stop)
                break;
            rc = fn(arg, type, rcsn, r.buf + SOP__REC_HDR, plen, seg, off);
            if (rc)
                goto out;
            csn = rcsn;
            off += SOP__REC_HDR + (uint64_t)plen;
        }
        if (stop < 0) {
            rc = stop;
            break;
        }
        if (stop == STOP_EOF && off == r.size) {
            /* a segment ending exactly at its records: sealed, or the last
             * one not yet preallocated; go on into the next when there is one */
            pthread_mutex_lock(&l->mu);
            int nx = try_open(l, seg + 1, db);
            pthread_mutex_unlock(&l->mu);
            if (nx == 0) {
                seg++;
                off = 0;
                continue;
            }
            if (nx != -ENOENT)
                rc = nx;
            else if (seg < last) /* segments are numbered without gaps */
                rc = sop__err(db, SOP_ECORRUPT, "segment %u is missing (segment %u exists)",
                              seg + 1, last);
            break;
        }
        if (seg < last) { /* sealed segments end at their last record */
            rc = sop__err(db, SOP_ECORRUPT, "segment %u: bad record at offset %llu", seg,
                          (unsigned long long)off);
            break;
        }
        if (stop == STOP_ZERO) { /* the clean end */
            if (mode == SOP__FOLLOW_RECOVER && off < r.size)
                rc = cut_at(&r, off, "preallocated end", db);
            break;
        }
        if (mode != SOP__FOLLOW_READ && off < r.size) /* the torn tail of a writer that died */
            rc = cut_at(&r, off, "torn tail", db);
        break;
    }
out:
    pthread_mutex_lock(&l->mu);
    if (seg != l->cur) {
        /* segments before @seg were synced in full before @seg was created */
        l->durable_seg = seg;
        l->durable_end = 0;
        l->alloc = 0; /* unknown: the next append checks the file size */
    }
    l->cur = seg;
    l->end = off;
    if (seg > l->last)
        l->last = seg;
    pthread_mutex_unlock(&l->mu);
    sop__free(r.buf);
    return rc;
}

static int sync_cur_locked(sop__log *l, const sop_db *db)
{
    /* mu held, no sync in flight */
    int rc = l->vfs->sync(l->vfs, l->files[l->cur]);
    l->syncs++;
    if (rc) {
        l->failed = 1;
        return sop__err(db, rc, "cannot sync segment %u", l->cur);
    }
    l->durable_seg = l->cur;
    l->durable_end = l->end;
    return 0;
}

/* Seals the current segment and starts the next one. mu held. */
static int rotate_locked(sop__log *l, const sop_db *db)
{
    while (l->syncing)
        pthread_cond_wait(&l->cv, &l->mu);
    /* a sealed segment ends at its last record (no preallocated zeros), so
     * that readers go on into the next one exactly there */
    int rc = l->vfs->truncate(l->vfs, l->files[l->cur], l->end);
    if (rc)
        rc = sop__err(db, rc == -ENOSPC ? SOP_EFULL : rc, "cannot seal segment %u", l->cur);
    if (!rc)
        rc = sync_cur_locked(l, db);
    if (!rc)
        rc = create_seg(l, l->cur + 1, db);
    if (!rc) {
        l->cur++;
        if (l->cur > l->last)
            l->last = l->cur;
        l->end = 0;
        l->alloc = 0;
        l->durable_seg = l->cur;
        l->durable_end = 0;
    }
    pthread_cond_broadcast(&l->cv);
    return rc;
}

/* Zeros written at a time while preallocating (the last piece may be
 * shorter). Never written to; not const so that it lives in .bss instead of
 * adding 256 KiB of .rodata to the library. */
static uint8_t zeros[256u << 10];

/* Makes segment @seg (file @f) at least @need bytes long: when it is not
 * already, it is extended with zeros up to the next multiple of
 * SOP__LOG_PREALLOC (at most to segment_bytes, or to @need when one record
 * is larger). Commit lock held, mu not. */
static int extend(sop__log *l, sop_file *f, uint32_t seg, uint64_t off, uint64_t need,
                  const sop_db *db)
{
    /* an append-only VFS (erasure coding) takes no zeros: each append
     * grows the file itself, and the end of the file is the end of the log */
    if (l->vfs->version >= 3 && (l->vfs->flags & SOP_VFS_APPEND_ONLY))
        return 0;
    /* other processes may have extended the file since we last looked */
    uint64_t size;
    int rc = l->vfs->size(l->vfs, f, &size);
    if (rc)
        return sop__err(db, rc, "cannot stat segment %u", seg);
    if (size < need && size >= off && need - size >= SOP__LOG_PREALLOC) {
        /* a large append (a bulk commit): its own write grows the file by a
         * chunk or more, so one size change per sync is already amortised,
         * and zeros first would write its bytes twice */
    } else if (size < need) {
        uint64_t target = (need + SOP__LOG_PREALLOC - 1) / SOP__LOG_PREALLOC * SOP__LOG_PREALLOC;
        uint64_t cap = need > l->seg_bytes ? need : l->seg_bytes;
        if (target > cap)
            target = cap;
        /* not synced: the next commit's sync persists the zeros with its
         * records. Until then a power loss may drop, tear or garble them,
         * but only after the last record, where recovery cuts the file */
        while (size < target) {
            uint64_t n = target - size < sizeof zeros ? target - size : sizeof zeros;
            rc = l->vfs->write(l->vfs, f, zeros, n, size);
            if (rc)
                break;
            size += n;
            SOP_KILL_POINT("log:extend");
        }
        if (rc)
            return sop__err(db, rc == -ENOSPC || rc == -EFBIG ? SOP_EFULL : rc,
                            "cannot preallocate segment %u at %llu", seg, (unsigned long long)size);
    }
    l->alloc = size;
    return 0;
}

int sop__log_reserve(sop__log *l, uint64_t len, uint32_t *seg, uint64_t *off, const sop_db *db)
{
    int rc = 0;
    pthread_mutex_lock(&l->mu);
    if (l->failed)
        rc = SOP_EPANIC;
    else if (l->end > 0 && l->end + len > l->seg_bytes)
        rc = rotate_locked(l, db);
    *seg = l->cur;
    *off = l->end;
    sop_file *f = l->files[l->cur];
    pthread_mutex_unlock(&l->mu);
    /* zeros are written without mu: readers of this process go on */
    if (!rc && *off + len > l->alloc)
        rc = extend(l, f, *seg, *off, *off + len, db);
    if (rc && rc != SOP_EPANIC) {
        pthread_mutex_lock(&l->mu);
        l->failed = 1; /* the file may have changed: nothing more is appended */
        pthread_mutex_unlock(&l->mu);
    }
    return rc;
}

int sop__log_write(sop__log *l, const void *buf, uint64_t len, uint64_t off, const sop_db *db)
{
    sop_file *f = l->files[l->cur];
    int rc = l->vfs->write(l->vfs, f, buf, len, off);
    pthread_mutex_lock(&l->mu);
    if (rc) {
        l->failed = 1;
        rc = sop__err(db, rc == -ENOSPC || rc == -EFBIG ? SOP_EFULL : rc,
                      "cannot append %llu bytes to segment %u", (unsigned long long)len, l->cur);
    } else if (off + len > l->end) {
        l->end = off + len;
    }
    pthread_mutex_unlock(&l->mu);
    return rc;
}

int sop__log_sync(sop__log *l, uint32_t seg, uint64_t end, const sop_db *db)
{
    int rc = 0;
    pthread_mutex_lock(&l->mu);
    for (;;) {
        if (l->failed) {
            rc = SOP_EPANIC;
            break;
        }
        if (seg < l->durable_seg || (seg == l->durable_seg && end <= l->durable_end))
            break;
        if (l->syncing) {
            pthread_cond_wait(&l->cv, &l->mu);
            continue;
        }
        /* become the leader: sync everything appended so far */
        l->syncing = 1;
        uint32_t tseg = l->cur;
        uint64_t tend = l->end;
        sop_file *f = l->files[tseg];
        pthread_mutex_unlock(&l->mu);
        int src = l->vfs->sync(l->vfs, f);
        pthread_mutex_lock(&l->mu);
        l->syncs++;
        l->syncing = 0;
        if (src) {
            l->failed = 1;
            rc = sop__err(db, src, "cannot sync segment %u", tseg);
            pthread_cond_broadcast(&l->cv);
            break;
        }
        if (tseg > l->durable_seg || (tseg == l->durable_seg && tend > l->durable_end)) {
            l->durable_seg = tseg;
            l->durable_end = tend;
        }
        pthread_cond_broadcast(&l->cv);
    }
    pthread_mutex_unlock(&l->mu);
    return rc;
}

uint64_t sop__log_bytes(sop__log *l)
{
    uint64_t total = 0;
    pthread_mutex_lock(&l->mu);
    for (uint32_t s = 0; s < l->nfiles; s++) {
        uint64_t sz = 0;
        if (l->files[s] && l->vfs->size(l->vfs, l->files[s], &sz) == 0)
            total += sz;
    }
    pthread_mutex_unlock(&l->mu);
    return total;
}

int sop__log_seg_size(sop__log *l, uint32_t seg, uint64_t *size)
{
    *size = 0;
    pthread_mutex_lock(&l->mu);
    int rc = seg < l->nfiles && l->files[seg] ? l->vfs->size(l->vfs, l->files[seg], size) : 0;
    pthread_mutex_unlock(&l->mu);
    return rc;
}

uint32_t sop__log_nsegs(sop__log *l)
{
    uint32_t n = 0;
    pthread_mutex_lock(&l->mu);
    for (uint32_t s = 0; s < l->nfiles; s++)
        n += l->files[s] != NULL;
    pthread_mutex_unlock(&l->mu);
    return n;
}

int sop__log_remove_seg(sop__log *l, uint32_t seg, const sop_db *db)
{
    char path[4096];
    seg_path(l, seg, path, sizeof path);
    pthread_mutex_lock(&l->mu);
    int rc = 0;
    if (seg < l->nfiles && l->files[seg] && seg != l->cur) {
        l->vfs->close(l->vfs, l->files[seg]);
        l->files[seg] = NULL;
        rc = l->vfs->remove(l->vfs, path);
        if (rc == -ENOENT)
            rc = 0; /* another process deleted it */
        if (!rc)
            rc = l->vfs->sync_dir(l->vfs, l->dir);
        if (rc)
            rc = sop__err(db, rc, "cannot remove segment %s", path);
    }
    pthread_mutex_unlock(&l->mu);
    return rc;
}
