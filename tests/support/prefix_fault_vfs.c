/* prefix_fault_vfs.c - fails the calls on paths under chosen prefixes
 * (see prefix_fault_vfs.h). */
#include "prefix_fault_vfs.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

struct sop_file; /* the base's */

typedef struct pf_file {
    sop_file *f;
    char *path;
} pf_file;

typedef struct pf_slot {
    char prefix[1024];
    unsigned mask;
    uint64_t skip;
    int err;
    atomic_uint_fast64_t seen, failed;
} pf_slot;

typedef struct pf {
    sop_vfs vfs;
    sop_vfs *base;
    pthread_mutex_t mu;
    pf_slot slot[PFX_SLOTS];
    char count_prefix[1024];
    atomic_uint_fast64_t bytes;
} pf;

static pf *P(sop_vfs *v) { return v->ctx; }

/* 0 or the injected error */
static int check(pf *p, const char *path, unsigned kind)
{
    int rc = 0;
    pthread_mutex_lock(&p->mu);
    for (int i = 0; i < PFX_SLOTS && !rc; i++) {
        pf_slot *s = &p->slot[i];
        if (!s->mask || !(s->mask & kind) || !path ||
            strncmp(path, s->prefix, strlen(s->prefix)) != 0)
            continue;
        if (atomic_fetch_add(&s->seen, 1) >= s->skip) {
            atomic_fetch_add(&s->failed, 1);
            rc = s->err;
        }
    }
    pthread_mutex_unlock(&p->mu);
    return rc;
}

static int pf_open(sop_vfs *v, const char *path, int flags, unsigned mode, sop_file **out)
{
    pf *p = P(v);
    int rc = check(p, path, PF_OPEN | ((flags & SOP_O_CREATE) ? PF_CREATE : 0));
    if (rc)
        return rc;
    pf_file *f = calloc(1, sizeof *f);
    if (!f || !(f->path = strdup(path))) {
        free(f);
        return -ENOMEM;
    }
    rc = p->base->open(p->base, path, flags, mode, &f->f);
    if (rc) {
        free(f->path);
        free(f);
        return rc;
    }
    *out = (sop_file *)f;
    return 0;
}

static int pf_close(sop_vfs *v, sop_file *sf)
{
    pf_file *f = (pf_file *)sf;
    int rc = P(v)->base->close(P(v)->base, f->f);
    free(f->path);
    free(f);
    return rc;
}

static int pf_read(sop_vfs *v, sop_file *sf, void *buf, size_t n, uint64_t off, size_t *got)
{
    pf_file *f = (pf_file *)sf;
    int rc = check(P(v), f->path, PF_READ);
    if (rc) {
        if (got)
            *got = 0;
        return rc;
    }
    return P(v)->base->read(P(v)->base, f->f, buf, n, off, got);
}

static int pf_write(sop_vfs *v, sop_file *sf, const void *buf, size_t n, uint64_t off)
{
    pf *p = P(v);
    pf_file *f = (pf_file *)sf;
    int rc = check(p, f->path, PF_WRITE);
    if (!rc)
        rc = p->base->write(p->base, f->f, buf, n, off);
    if (!rc) {
        pthread_mutex_lock(&p->mu);
        int counted = p->count_prefix[0] &&
                      !strncmp(f->path, p->count_prefix, strlen(p->count_prefix));
        pthread_mutex_unlock(&p->mu);
        if (counted)
            atomic_fetch_add(&p->bytes, n);
    }
    return rc;
}

static int pf_sync(sop_vfs *v, sop_file *sf)
{
    pf_file *f = (pf_file *)sf;
    int rc = check(P(v), f->path, PF_SYNC);
    return rc ? rc : P(v)->base->sync(P(v)->base, f->f);
}

static int pf_size(sop_vfs *v, sop_file *sf, uint64_t *size)
{
    pf_file *f = (pf_file *)sf;
    int rc = check(P(v), f->path, PF_SIZE);
    return rc ? rc : P(v)->base->size(P(v)->base, f->f, size);
}

static int pf_truncate(sop_vfs *v, sop_file *sf, uint64_t size)
{
    pf_file *f = (pf_file *)sf;
    int rc = check(P(v), f->path, PF_TRUNC);
    return rc ? rc : P(v)->base->truncate(P(v)->base, f->f, size);
}

static int pf_lock(sop_vfs *v, sop_file *sf, uint64_t off, uint64_t len, int mode, int wait)
{
    return P(v)->base->lock(P(v)->base, ((pf_file *)sf)->f, off, len, mode, wait);
}

static int pf_remove(sop_vfs *v, const char *path)
{
    int rc = check(P(v), path, PF_DIR);
    return rc ? rc : P(v)->base->remove(P(v)->base, path);
}

static int pf_rename(sop_vfs *v, const char *from, const char *to)
{
    int rc = check(P(v), from, PF_DIR);
    return rc ? rc : P(v)->base->rename(P(v)->base, from, to);
}

static int pf_mkdir(sop_vfs *v, const char *path, unsigned mode)
{
    int rc = check(P(v), path, PF_DIR);
    return rc ? rc : P(v)->base->mkdir(P(v)->base, path, mode);
}

static int pf_sync_dir(sop_vfs *v, const char *path)
{
    int rc = check(P(v), path, PF_DIR);
    return rc ? rc : P(v)->base->sync_dir(P(v)->base, path);
}

static int pf_list(sop_vfs *v, const char *dir, int (*fn)(const char *, void *), void *arg)
{
    int rc = check(P(v), dir, PF_DIR);
    return rc ? rc : P(v)->base->list(P(v)->base, dir, fn, arg);
}

static int pf_shm_map(sop_vfs *v, sop_file *sf, uint64_t off, size_t len, void **addr)
{
    return P(v)->base->shm_map(P(v)->base, ((pf_file *)sf)->f, off, len, addr);
}

static int pf_shm_unmap(sop_vfs *v, void *addr, size_t len)
{
    return P(v)->base->shm_unmap(P(v)->base, addr, len);
}

sop_vfs *pfx_vfs_new(sop_vfs *base)
{
    pf *p = calloc(1, sizeof *p);
    if (!p)
        return NULL;
    p->base = base ? base : sop_vfs_posix();
    pthread_mutex_init(&p->mu, NULL);
    p->vfs = (sop_vfs){.version = 1, .ctx = p, .open = pf_open, .close = pf_close,
                       .read = pf_read, .write = pf_write, .sync = pf_sync, .size = pf_size,
                       .truncate = pf_truncate, .lock = pf_lock, .remove = pf_remove,
                       .rename = pf_rename, .mkdir = pf_mkdir, .sync_dir = pf_sync_dir,
                       .list = pf_list,
                       .shm_map = p->base->shm_map ? pf_shm_map : NULL,
                       .shm_unmap = p->base->shm_map ? pf_shm_unmap : NULL};
    return &p->vfs;
}

void pfx_vfs_free(sop_vfs *vfs)
{
    if (!vfs)
        return;
    pthread_mutex_destroy(&P(vfs)->mu);
    free(P(vfs));
}

void pfx_vfs_arm(sop_vfs *vfs, int slot, const char *prefix, unsigned mask, uint64_t skip, int err)
{
    pf *p = P(vfs);
    if (slot < 0 || slot >= PFX_SLOTS)
        abort(); /* a test bug */
    pthread_mutex_lock(&p->mu);
    pf_slot *s = &p->slot[slot];
    strncpy(s->prefix, prefix, sizeof s->prefix - 1);
    s->mask = mask;
    s->skip = skip;
    s->err = err;
    atomic_store(&s->seen, 0);
    atomic_store(&s->failed, 0);
    pthread_mutex_unlock(&p->mu);
}

void pfx_vfs_disarm(sop_vfs *vfs)
{
    pf *p = P(vfs);
    pthread_mutex_lock(&p->mu);
    for (int i = 0; i < PFX_SLOTS; i++)
        p->slot[i].mask = 0;
    pthread_mutex_unlock(&p->mu);
}

uint64_t pfx_vfs_failed(sop_vfs *vfs, int slot)
{
    return slot >= 0 && slot < PFX_SLOTS ? atomic_load(&P(vfs)->slot[slot].failed) : 0;
}

uint64_t pfx_vfs_failed_all(sop_vfs *vfs)
{
    uint64_t n = 0;
    for (int i = 0; i < PFX_SLOTS; i++)
        n += atomic_load(&P(vfs)->slot[i].failed);
    return n;
}

uint64_t pfx_vfs_bytes(sop_vfs *vfs) { return atomic_load(&P(vfs)->bytes); }

void pfx_vfs_count_bytes(sop_vfs *vfs, const char *prefix)
{
    pf *p = P(vfs);
    pthread_mutex_lock(&p->mu);
    strncpy(p->count_prefix, prefix, sizeof p->count_prefix - 1);
    atomic_store(&p->bytes, 0);
    pthread_mutex_unlock(&p->mu);
}
