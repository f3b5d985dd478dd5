/* path_fault_vfs.c - failing operations by path prefix (see
 * path_fault_vfs.h). */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "path_fault_vfs.h"

struct sop_file {
    sop_file *b;
    char *path;
};

typedef struct rule {
    char *prefix;
    unsigned ops;
    int err;
} rule;

typedef struct pf {
    sop_vfs vfs;
    sop_vfs *base;
    pthread_mutex_t mu;
    rule r[16];
    int nr;
    uint64_t hits;
} pf;

#define PF(v) ((pf *)(v)->ctx)

static int hit(pf *p, const char *path, unsigned op)
{
    int err = 0;
    pthread_mutex_lock(&p->mu);
    for (int i = 0; i < p->nr && !err; i++)
        if ((p->r[i].ops & op) && strncmp(path, p->r[i].prefix, strlen(p->r[i].prefix)) == 0)
            err = p->r[i].err;
    if (err)
        p->hits++;
    pthread_mutex_unlock(&p->mu);
    return err;
}

static int pf_open(sop_vfs *v, const char *path, int flags, unsigned mode, sop_file **out)
{
    pf *p = PF(v);
    int rc = (flags & SOP_O_CREATE) ? hit(p, path, PF_CREATE) : 0;
    if (rc)
        return rc;
    sop_file *f = calloc(1, sizeof *f);
    if (!f || !(f->path = strdup(path))) {
        free(f);
        return -ENOMEM;
    }
    rc = p->base->open(p->base, path, flags, mode, &f->b);
    if (rc) {
        free(f->path);
        free(f);
        return rc;
    }
    *out = f;
    return 0;
}

static int pf_close(sop_vfs *v, sop_file *f)
{
    int rc = PF(v)->base->close(PF(v)->base, f->b);
    free(f->path);
    free(f);
    return rc;
}

static int pf_read(sop_vfs *v, sop_file *f, void *buf, size_t n, uint64_t off, size_t *got)
{
    int rc = hit(PF(v), f->path, PF_READ);
    if (rc) {
        if (got)
            *got = 0;
        return rc;
    }
    return PF(v)->base->read(PF(v)->base, f->b, buf, n, off, got);
}

static int pf_write(sop_vfs *v, sop_file *f, const void *buf, size_t n, uint64_t off)
{
    int rc = hit(PF(v), f->path, PF_WRITE);
    return rc ? rc : PF(v)->base->write(PF(v)->base, f->b, buf, n, off);
}

static int pf_sync(sop_vfs *v, sop_file *f)
{
    int rc = hit(PF(v), f->path, PF_SYNC);
    return rc ? rc : PF(v)->base->sync(PF(v)->base, f->b);
}

static int pf_size(sop_vfs *v, sop_file *f, uint64_t *size)
{
    return PF(v)->base->size(PF(v)->base, f->b, size);
}

static int pf_truncate(sop_vfs *v, sop_file *f, uint64_t size)
{
    int rc = hit(PF(v), f->path, PF_WRITE);
    return rc ? rc : PF(v)->base->truncate(PF(v)->base, f->b, size);
}

static int pf_lock(sop_vfs *v, sop_file *f, uint64_t off, uint64_t len, int mode, int wait)
{
    return PF(v)->base->lock(PF(v)->base, f->b, off, len, mode, wait);
}

static int pf_remove(sop_vfs *v, const char *path) { return PF(v)->base->remove(PF(v)->base, path); }

static int pf_rename(sop_vfs *v, const char *a, const char *b)
{
    return PF(v)->base->rename(PF(v)->base, a, b);
}

static int pf_mkdir(sop_vfs *v, const char *path, unsigned mode)
{
    return PF(v)->base->mkdir(PF(v)->base, path, mode);
}

static int pf_sync_dir(sop_vfs *v, const char *path)
{
    return PF(v)->base->sync_dir(PF(v)->base, path);
}

static int pf_list(sop_vfs *v, const char *dir, int (*fn)(const char *, void *), void *arg)
{
    return PF(v)->base->list(PF(v)->base, dir, fn, arg);
}

static int pf_shm_map(sop_vfs *v, sop_file *f, uint64_t off, size_t len, void **addr)
{
    return PF(v)->base->shm_map(PF(v)->base, f->b, off, len, addr);
}

static int pf_shm_unmap(sop_vfs *v, void *addr, size_t len)
{
    return PF(v)->base->shm_unmap(PF(v)->base, addr, len);
}

sop_vfs *pf_vfs_new(sop_vfs *base)
{
    pf *p = calloc(1, sizeof *p);
    if (!p)
        return NULL;
    p->base = base ? base : sop_vfs_posix();
    pthread_mutex_init(&p->mu, NULL);
    p->vfs = (sop_vfs){.version = 1,
                       .ctx = p,
                       .open = pf_open,
                       .close = pf_close,
                       .read = pf_read,
                       .write = pf_write,
                       .sync = pf_sync,
                       .size = pf_size,
                       .truncate = pf_truncate,
                       .lock = pf_lock,
                       .remove = pf_remove,
                       .rename = pf_rename,
                       .mkdir = pf_mkdir,
                       .sync_dir = pf_sync_dir,
                       .list = pf_list,
                       .shm_map = p->base->shm_map ? pf_shm_map : NULL,
                       .shm_unmap = p->base->shm_map ? pf_shm_unmap : NULL};
    return &p->vfs;
}

void pf_vfs_free(sop_vfs *v)
{
    if (!v)
        return;
    pf_vfs_clear(v);
    pthread_mutex_destroy(&PF(v)->mu);
    free(PF(v));
}

void pf_vfs_fail(sop_vfs *v, const char *prefix, unsigned ops, int err)
{
    pf *p = PF(v);
    pthread_mutex_lock(&p->mu);
    if (p->nr < 16) {
        p->r[p->nr].prefix = strdup(prefix);
        p->r[p->nr].ops = ops;
        p->r[p->nr].err = err;
        if (p->r[p->nr].prefix)
            p->nr++;
    }
    pthread_mutex_unlock(&p->mu);
}

void pf_vfs_clear(sop_vfs *v)
{
    pf *p = PF(v);
    pthread_mutex_lock(&p->mu);
    for (int i = 0; i < p->nr; i++)
        free(p->r[i].prefix);
    p->nr = 0;
    pthread_mutex_unlock(&p->mu);
}

uint64_t pf_vfs_hits(sop_vfs *v)
{
    pf *p = PF(v);
    pthread_mutex_lock(&p->mu);
    uint64_t h = p->hits;
    pthread_mutex_unlock(&p->mu);
    return h;
}
