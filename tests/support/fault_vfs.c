/* fault_vfs.c - fault-injecting wrapper VFS for tests. See fault_vfs.h for
 * the error and damage model.
 *
 * Memory: this file uses malloc() directly on purpose (not mem.h): the
 * wrapper must keep working while a test makes the library's allocator fail,
 * and its bookkeeping must not show up in the engine's allocation counts.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fault_vfs.h"

#define FV_MAGIC 0x66617576u /* "fauv" */
#define FV_SECTOR 512u
#define FV_NKINDS 14

/* ------------------------------------------------------------------ */
/* Bookkeeping types                                                  */
/* ------------------------------------------------------------------ */

enum { REC_WRITE, REC_TRUNC };

/* One unsynced operation on a file. Undo: truncate to old_size, then put
 * pre[0..pre_len) back at off. */
typedef struct rec {
    struct rec *prev, *next;
    int kind;
    uint64_t off;        /* WRITE: offset; TRUNC: the new size */
    uint64_t len;        /* WRITE: bytes written */
    unsigned char *data; /* WRITE: the bytes written */
    uint64_t old_size;   /* file size before the operation */
    unsigned char *pre;  /* old bytes at [off, off + pre_len) */
    uint64_t pre_len;
} rec;

/* A file, known by its current normalised path (NULL once unlinked). */
typedef struct fnode {
    struct fnode *next; /* creation order (deterministic damage) */
    char *path;
    int refs;             /* open handles */
    uint64_t synced_size; /* size at the last sync */
    rec *head, *tail;     /* unsynced operations, oldest first */
} fnode;

enum { DOP_CREATE, DOP_MKDIR, DOP_REMOVE, DOP_RMDIR, DOP_RENAME };

/* A directory operation that is not durable yet. */
typedef struct dop {
    struct dop *prev, *next; /* chronological */
    int kind;
    char *path;  /* CREATE/MKDIR/REMOVE/RMDIR: the entry; RENAME: from */
    char *path2; /* RENAME: to */
    char *dir1;  /* parent of path */
    char *dir2;  /* RENAME: parent of path2 (NULL when the same) */
    int need1, need2;
    int saved;            /* REMOVE / RENAME: an old file to bring back */
    int saved_is_dir;     /* ... which was a directory */
    unsigned char *bytes; /* ... its synced content */
    uint64_t nbytes;
} dop;

typedef struct fvfs {
    sop_vfs vfs; /* first: a sop_vfs * is a fvfs * */
    unsigned magic;
    sop_vfs *base;
    pthread_mutex_t mu;
    uint64_t ops[FV_NKINDS];
    /* error injection */
    int fail_armed;
    unsigned fail_mask;
    uint64_t fail_n, fail_seen, fail_hits;
    int fail_err, fail_persistent;
    /* power loss */
    int pl_armed;
    uint64_t pl_n, pl_count, pl_seed;
    fnode *nodes, *nodes_tail;
    dop *dhead, *dtail;
    struct fvfs *next_live;
} fvfs;

/* Every live fault VFS, so that a process that _exits in a power cut still
 * references its memory (no "definitely lost" reports from valgrind). */
static pthread_mutex_t g_live_mu = PTHREAD_MUTEX_INITIALIZER;
static fvfs *g_live;

struct sop_file {
    sop_file *base; /* the base VFS's handle (its own struct sop_file) */
    fnode *node;
    int flags;
};

/* ------------------------------------------------------------------ */
/* Helpers                                                            */
/* ------------------------------------------------------------------ */

static void *xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p) {
        fprintf(stderr, "fault_vfs: out of memory\n");
        abort();
    }
    return p;
}

static void *xcalloc(size_t n)
{
    void *p = xmalloc(n);
    memset(p, 0, n ? n : 1);
    return p;
}

static char *xstrdup(const char *s)
{
    size_t n = strlen(s) + 1;
    char *p = xmalloc(n);
    memcpy(p, s, n);
    return p;
}

static void *xmemdup(const void *p, size_t n)
{
    void *q = xmalloc(n);
    if (n)
        memcpy(q, p, n);
    return q;
}

static uint64_t splitmix64(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static fvfs *FV(sop_vfs *v)
{
    fvfs *fv = (fvfs *)v;
    if (!fv || fv->magic != FV_MAGIC) {
        fprintf(stderr, "fault_vfs: not a fault VFS\n");
        abort();
    }
    return fv;
}

static int kind_index(unsigned kind)
{
    int i = 0;
    while (!(kind & 1u)) {
        kind >>= 1;
        i++;
    }
    return i;
}

/* Absolute path with "//", "." and ".." resolved lexically. */
static char *norm_path(const char *p)
{
    char *full;
    if (p[0] == '/') {
        full = xstrdup(p);
    } else {
        char cwd[4096];
        if (!getcwd(cwd, sizeof cwd))
            strcpy(cwd, "/");
        size_t a = strlen(cwd), b = strlen(p);
        full = xmalloc(a + b + 2);
        memcpy(full, cwd, a);
        full[a] = '/';
        memcpy(full + a + 1, p, b + 1);
    }
    size_t n = strlen(full);
    char *out = xmalloc(n + 2);
    size_t o = 0;
    const char *s = full;
    while (*s) {
        while (*s == '/')
            s++;
        if (!*s)
            break;
        const char *e = s;
        while (*e && *e != '/')
            e++;
        size_t len = (size_t)(e - s);
        if (len == 1 && s[0] == '.') {
            /* skip */
        } else if (len == 2 && s[0] == '.' && s[1] == '.') {
            while (o > 0 && out[o - 1] != '/')
                o--;
            if (o > 0)
                o--; /* drop the '/' too */
        } else {
            out[o++] = '/';
            memcpy(out + o, s, len);
            o += len;
        }
        s = e;
    }
    if (o == 0)
        out[o++] = '/';
    out[o] = 0;
    free(full);
    return out;
}

/* The directory holding normalised path @p. */
static char *parent_of(const char *p)
{
    const char *slash = strrchr(p, '/');
    size_t n = (size_t)(slash - p);
    if (n == 0)
        return xstrdup("/");
    char *d = xmalloc(n + 1);
    memcpy(d, p, n);
    d[n] = 0;
    return d;
}

/* ------------------------------------------------------------------ */
/* Counting, injection, power cut                                     */
/* ------------------------------------------------------------------ */

static _Noreturn void power_cut(fvfs *fv, uint64_t seed);

/* Counts a call of @kind; cuts power if this is the armed power-loss op;
 * returns the error to inject (0: none). Called with the mutex held. */
static int on_op(fvfs *fv, unsigned kind)
{
    fv->ops[kind_index(kind)]++;
    if (kind & FAULT_OP_POWERLOSS) {
        fv->pl_count++;
        if (fv->pl_armed && fv->pl_count == fv->pl_n)
            power_cut(fv, fv->pl_seed);
    }
    if (!fv->fail_armed || !(kind & fv->fail_mask))
        return 0;
    fv->fail_seen++;
    if (fv->fail_seen == fv->fail_n || (fv->fail_persistent && fv->fail_seen > fv->fail_n)) {
        fv->fail_hits++;
        if (fv->fail_err == FAULT_ERR_SHORT && !(kind & (FAULT_OP_WRITE | FAULT_OP_READ)))
            return -EIO;
        return fv->fail_err;
    }
    return 0;
}

static fnode *find_node(fvfs *fv, const char *path)
{
    for (fnode *n = fv->nodes; n; n = n->next)
        if (n->path && strcmp(n->path, path) == 0)
            return n;
    return NULL;
}

static void free_recs(fnode *n)
{
    rec *r = n->head;
    while (r) {
        rec *nx = r->next;
        free(r->data);
        free(r->pre);
        free(r);
        r = nx;
    }
    n->head = n->tail = NULL;
}

/* Frees @n if nothing refers to it any more. */
static void maybe_free_node(fvfs *fv, fnode *n)
{
    if (n->refs > 0 || (n->path && n->head))
        return;
    fnode **pp = &fv->nodes, *prev = NULL;
    while (*pp && *pp != n) {
        prev = *pp;
        pp = &(*pp)->next;
    }
    if (!*pp)
        return;
    *pp = n->next;
    if (fv->nodes_tail == n)
        fv->nodes_tail = prev;
    free_recs(n);
    free(n->path);
    free(n);
}

static void unlink_node(fvfs *fv, fnode *n)
{
    free(n->path);
    n->path = NULL;
    free_recs(n);
    maybe_free_node(fv, n);
}

static void add_rec(fnode *n, rec *r)
{
    r->next = NULL;
    r->prev = n->tail;
    if (n->tail)
        n->tail->next = r;
    else
        n->head = r;
    n->tail = r;
}

static dop *add_dop(fvfs *fv, int kind, const char *path, const char *path2)
{
    dop *d = xcalloc(sizeof *d);
    d->kind = kind;
    d->path = xstrdup(path);
    d->dir1 = parent_of(path);
    d->need1 = 1;
    if (path2) {
        d->path2 = xstrdup(path2);
        char *p2 = parent_of(path2);
        if (strcmp(p2, d->dir1) != 0) {
            d->dir2 = p2;
            d->need2 = 1;
        } else {
            free(p2);
        }
    }
    d->prev = fv->dtail;
    if (fv->dtail)
        fv->dtail->next = d;
    else
        fv->dhead = d;
    fv->dtail = d;
    return d;
}

static void free_dop(fvfs *fv, dop *d)
{
    if (d->prev)
        d->prev->next = d->next;
    else
        fv->dhead = d->next;
    if (d->next)
        d->next->prev = d->prev;
    else
        fv->dtail = d->prev;
    free(d->path);
    free(d->path2);
    free(d->dir1);
    free(d->dir2);
    free(d->bytes);
    free(d);
}

/* Reads the synced image of the file at @path (its content with every
 * unsynced operation undone). Returns 0, or a negative errno (-ENOENT). */
static int synced_image(fvfs *fv, const char *path, unsigned char **out, uint64_t *len,
                        int *is_dir)
{
    sop_vfs *b = fv->base;
    sop_file *f;
    *out = NULL;
    *len = 0;
    *is_dir = 0;
    int rc = b->open(b, path, SOP_O_READ, 0, &f);
    if (rc)
        return rc;
    uint64_t sz = 0;
    rc = b->size(b, f, &sz);
    unsigned char *buf = NULL;
    size_t got = 0;
    if (rc == 0) {
        buf = xmalloc((size_t)sz);
        rc = b->read(b, f, buf, (size_t)sz, 0, &got);
        if (rc == -EISDIR) {
            *is_dir = 1;
            rc = 0;
            got = 0;
        }
    }
    b->close(b, f);
    if (rc) {
        free(buf);
        return rc;
    }
    uint64_t n = got;
    fnode *node = *is_dir ? NULL : find_node(fv, path);
    if (node) {
        for (rec *r = node->tail; r; r = r->prev) {
            if (r->old_size != n) {
                unsigned char *nb = xmalloc((size_t)r->old_size);
                size_t keep = (size_t)(n < r->old_size ? n : r->old_size);
                memcpy(nb, buf, keep);
                memset(nb + keep, 0, (size_t)r->old_size - keep);
                free(buf);
                buf = nb;
                n = r->old_size;
            }
            if (r->pre_len)
                memcpy(buf + r->off, r->pre, (size_t)r->pre_len);
        }
    }
    *out = buf;
    *len = n;
    return 0;
}

static int write_whole_file(sop_vfs *b, const char *path, const unsigned char *bytes, uint64_t n)
{
    sop_file *f;
    int rc = b->open(b, path, SOP_O_RDWR | SOP_O_CREATE | SOP_O_TRUNC, 0600, &f);
    if (rc)
        return rc;
    rc = b->write(b, f, bytes, (size_t)n, 0);
    b->close(b, f);
    return rc;
}

typedef struct name_list {
    char **v;
    size_t n, cap;
} name_list;

static int collect_name(const char *name, void *arg)
{
    name_list *l = arg;
    if (l->n == l->cap) {
        l->cap = l->cap ? l->cap * 2 : 16;
        char **nv = realloc(l->v, l->cap * sizeof *nv);
        if (!nv) {
            fprintf(stderr, "fault_vfs: out of memory\n");
            abort();
        }
        l->v = nv;
    }
    l->v[l->n++] = xstrdup(name);
    return 0;
}

static void free_names(name_list *l)
{
    for (size_t i = 0; i < l->n; i++)
        free(l->v[i]);
    free(l->v);
    l->v = NULL;
    l->n = l->cap = 0;
}

/* Removes @path and, for a directory, everything under it. */
static void rmtree_base(sop_vfs *b, const char *path)
{
    if (b->remove(b, path) == 0)
        return;
    name_list l = {0};
    if (b->list(b, path, collect_name, &l) == 0) {
        for (size_t i = 0; i < l.n; i++) {
            size_t n = strlen(path) + strlen(l.v[i]) + 2;
            char *c = xmalloc(n);
            snprintf(c, n, "%s/%s", path, l.v[i]);
            rmtree_base(b, c);
            free(c);
        }
    }
    free_names(&l);
    b->remove(b, path);
}

/* Damages the unsynced operations of one file (see fault_vfs.h). */
static void damage_file(fvfs *fv, fnode *node, uint64_t *rng)
{
    sop_vfs *b = fv->base;
    sop_file *f;
    if (b->open(b, node->path, SOP_O_RDWR, 0, &f) != 0)
        return;
    /* back to the synced image, newest first */
    for (rec *r = node->tail; r; r = r->prev) {
        b->truncate(b, f, r->old_size);
        if (r->pre_len)
            b->write(b, f, r->pre, (size_t)r->pre_len, r->off);
    }
    b->truncate(b, f, node->synced_size);
    /* replay, each operation kept, dropped, torn or garbage */
    for (rec *r = node->head; r; r = r->next) {
        uint64_t x = splitmix64(rng);
        if (r->kind == REC_TRUNC) {
            if (x % 2 == 0)
                b->truncate(b, f, r->off);
            continue;
        }
        switch (x % 4) {
        case 0: /* kept */
            b->write(b, f, r->data, (size_t)r->len, r->off);
            break;
        case 1: /* dropped */
            break;
        case 2: { /* torn at an interior sector boundary */
            uint64_t first = (r->off / FV_SECTOR + 1) * FV_SECTOR;
            uint64_t last = ((r->off + r->len - 1) / FV_SECTOR) * FV_SECTOR;
            uint64_t y = splitmix64(rng);
            if (r->len == 0 || first > last) {
                if (y % 2 == 0) /* one sector: atomic */
                    b->write(b, f, r->data, (size_t)r->len, r->off);
            } else {
                uint64_t split = first + FV_SECTOR * (y % ((last - first) / FV_SECTOR + 1));
                b->write(b, f, r->data, (size_t)(split - r->off), r->off);
            }
            break;
        }
        default: { /* garbage */
            unsigned char *g = xmalloc((size_t)r->len);
            uint64_t v = 0;
            for (uint64_t i = 0; i < r->len; i++) {
                if (i % 8 == 0)
                    v = splitmix64(rng);
                g[i] = (unsigned char)(v >> (8 * (i % 8)));
            }
            b->write(b, f, g, (size_t)r->len, r->off);
            free(g);
            break;
        }
        }
    }
    b->close(b, f);
}

static void undo_dop(fvfs *fv, dop *d)
{
    sop_vfs *b = fv->base;
    switch (d->kind) {
    case DOP_CREATE:
        b->remove(b, d->path);
        break;
    case DOP_MKDIR:
        rmtree_base(b, d->path);
        break;
    case DOP_REMOVE:
        if (d->saved)
            write_whole_file(b, d->path, d->bytes, d->nbytes);
        break;
    case DOP_RMDIR:
        b->mkdir(b, d->path, 0700);
        break;
    case DOP_RENAME:
        b->rename(b, d->path2, d->path);
        if (d->saved) {
            if (d->saved_is_dir)
                b->mkdir(b, d->path2, 0700);
            else
                write_whole_file(b, d->path2, d->bytes, d->nbytes);
        }
        break;
    }
}

static _Noreturn void power_cut(fvfs *fv, uint64_t seed)
{
    uint64_t rng = seed ^ 0x5deece66dull;
    for (fnode *n = fv->nodes; n; n = n->next)
        if (n->path && n->head)
            damage_file(fv, n, &rng);
    for (dop *d = fv->dtail; d; d = d->prev)
        undo_dop(fv, d);
    _exit(FAULT_VFS_CRASH_EXIT);
}

/* ------------------------------------------------------------------ */
/* Tracked mutations (mutex held)                                     */
/* ------------------------------------------------------------------ */

static int tracked_write(fvfs *fv, sop_file *fh, const void *buf, size_t n, uint64_t off)
{
    sop_vfs *b = fv->base;
    fnode *node = fh->node;
    rec *r = NULL;
    if (n > 0 && node->path) {
        uint64_t old = 0;
        int rc = b->size(b, fh->base, &old);
        if (rc)
            return rc;
        r = xcalloc(sizeof *r);
        r->kind = REC_WRITE;
        r->off = off;
        r->len = n;
        r->old_size = old;
        r->pre_len = off < old ? (old - off < n ? old - off : n) : 0;
        if (r->pre_len) {
            r->pre = xmalloc((size_t)r->pre_len);
            size_t got = 0;
            rc = b->read(b, fh->base, r->pre, (size_t)r->pre_len, off, &got);
            if (rc == 0 && got != r->pre_len)
                rc = -EIO;
            if (rc) {
                free(r->pre);
                free(r);
                return rc;
            }
        }
        r->data = xmemdup(buf, n);
    }
    int rc = b->write(b, fh->base, buf, n, off);
    if (r)
        add_rec(node, r); /* also on failure: part of it may be on disk */
    return rc;
}

static int tracked_truncate(fvfs *fv, sop_file *fh, uint64_t size)
{
    sop_vfs *b = fv->base;
    fnode *node = fh->node;
    rec *r = NULL;
    if (node->path) {
        uint64_t old = 0;
        int rc = b->size(b, fh->base, &old);
        if (rc)
            return rc;
        r = xcalloc(sizeof *r);
        r->kind = REC_TRUNC;
        r->off = size;
        r->old_size = old;
        if (size < old) {
            r->pre_len = old - size;
            r->pre = xmalloc((size_t)r->pre_len);
            size_t got = 0;
            rc = b->read(b, fh->base, r->pre, (size_t)r->pre_len, size, &got);
            if (rc == 0 && got != r->pre_len)
                rc = -EIO;
            if (rc) {
                free(r->pre);
                free(r);
                return rc;
            }
        }
    }
    int rc = b->truncate(b, fh->base, size);
    if (r)
        add_rec(node, r);
    return rc;
}

/* ------------------------------------------------------------------ */
/* The VFS                                                            */
/* ------------------------------------------------------------------ */

static int fv_open(sop_vfs *v, const char *path, int flags, unsigned mode, sop_file **out)
{
    fvfs *fv = (fvfs *)v;
    sop_vfs *b = fv->base;
    if (!path || !out)
        return -EINVAL;
    *out = NULL;
    if ((flags & SOP_O_TRUNC) && !(flags & SOP_O_RDWR))
        return -EINVAL;
    pthread_mutex_lock(&fv->mu);
    int rc = on_op(fv, (flags & SOP_O_CREATE) ? FAULT_OP_OPEN_CREATE : FAULT_OP_OPEN);
    if (rc) {
        pthread_mutex_unlock(&fv->mu);
        return rc;
    }
    int bflags = flags & ~(SOP_O_CREATE | SOP_O_EXCL | SOP_O_TRUNC);
    sop_file *bf = NULL;
    int created = 0;
    if (!(flags & SOP_O_CREATE)) {
        rc = b->open(b, path, bflags, mode, &bf);
    } else {
        /* find out whether this open creates the file */
        for (int tries = 0; tries < 8; tries++) {
            if (!(flags & SOP_O_EXCL)) {
                rc = b->open(b, path, bflags, mode, &bf);
                if (rc != -ENOENT)
                    break;
            }
            rc = b->open(b, path, bflags | SOP_O_CREATE | SOP_O_EXCL, mode, &bf);
            if (rc == 0)
                created = 1;
            if (rc != -EEXIST || (flags & SOP_O_EXCL))
                break;
        }
    }
    if (rc) {
        pthread_mutex_unlock(&fv->mu);
        return rc;
    }
    char *np = norm_path(path);
    fnode *node = find_node(fv, np);
    if (node && created) { /* stale: replaced behind our back */
        unlink_node(fv, node);
        node = NULL;
    }
    if (!node) {
        uint64_t sz = 0;
        if (!created && (rc = b->size(b, bf, &sz)) != 0) {
            b->close(b, bf);
            free(np);
            pthread_mutex_unlock(&fv->mu);
            return rc;
        }
        node = xcalloc(sizeof *node);
        node->path = xstrdup(np);
        node->synced_size = sz;
        if (fv->nodes_tail)
            fv->nodes_tail->next = node;
        else
            fv->nodes = node;
        fv->nodes_tail = node;
    }
    node->refs++;
    if (created)
        add_dop(fv, DOP_CREATE, np, NULL);
    free(np);
    sop_file *fh = xcalloc(sizeof *fh);
    fh->base = bf;
    fh->node = node;
    fh->flags = flags;
    if ((flags & SOP_O_TRUNC) && !created) {
        rc = tracked_truncate(fv, fh, 0);
        if (rc) {
            b->close(b, bf);
            node->refs--;
            maybe_free_node(fv, node);
            free(fh);
            pthread_mutex_unlock(&fv->mu);
            return rc;
        }
    }
    *out = fh;
    pthread_mutex_unlock(&fv->mu);
    return 0;
}

static int fv_close(sop_vfs *v, sop_file *fh)
{
    fvfs *fv = (fvfs *)v;
    if (!fh)
        return 0;
    pthread_mutex_lock(&fv->mu);
    int inj = on_op(fv, FAULT_OP_CLOSE);
    int rc = fv->base->close(fv->base, fh->base);
    fh->node->refs--;
    maybe_free_node(fv, fh->node);
    free(fh);
    pthread_mutex_unlock(&fv->mu);
    return inj ? inj : rc;
}

static int fv_read(sop_vfs *v, sop_file *fh, void *buf, size_t n, uint64_t off, size_t *got)
{
    fvfs *fv = (fvfs *)v;
    if (got)
        *got = 0;
    if (!fh)
        return -EINVAL;
    pthread_mutex_lock(&fv->mu);
    int rc = on_op(fv, FAULT_OP_READ);
    if (rc == FAULT_ERR_SHORT)
        rc = fv->base->read(fv->base, fh->base, buf, n / 2, off, got);
    else if (rc == 0)
        rc = fv->base->read(fv->base, fh->base, buf, n, off, got);
    pthread_mutex_unlock(&fv->mu);
    return rc;
}

static int fv_write(sop_vfs *v, sop_file *fh, const void *buf, size_t n, uint64_t off)
{
    fvfs *fv = (fvfs *)v;
    if (!fh || (!buf && n))
        return -EINVAL;
    pthread_mutex_lock(&fv->mu);
    int rc = on_op(fv, FAULT_OP_WRITE);
    if (rc == FAULT_ERR_SHORT) {
        rc = tracked_write(fv, fh, buf, n / 2, off);
        if (rc == 0)
            rc = -EIO;
    } else if (rc == 0) {
        rc = tracked_write(fv, fh, buf, n, off);
    }
    pthread_mutex_unlock(&fv->mu);
    return rc;
}

static int fv_sync(sop_vfs *v, sop_file *fh)
{
    fvfs *fv = (fvfs *)v;
    if (!fh)
        return -EINVAL;
    pthread_mutex_lock(&fv->mu);
    int rc = on_op(fv, FAULT_OP_SYNC);
    if (rc == 0)
        rc = fv->base->sync(fv->base, fh->base);
    if (rc == 0) {
        fnode *node = fh->node;
        uint64_t sz = 0;
        if (fv->base->size(fv->base, fh->base, &sz) == 0) {
            free_recs(node);
            node->synced_size = sz;
        }
    }
    pthread_mutex_unlock(&fv->mu);
    return rc;
}

static int fv_size(sop_vfs *v, sop_file *fh, uint64_t *size)
{
    fvfs *fv = (fvfs *)v;
    if (!fh)
        return -EINVAL;
    pthread_mutex_lock(&fv->mu);
    int rc = on_op(fv, FAULT_OP_SIZE);
    if (rc == 0)
        rc = fv->base->size(fv->base, fh->base, size);
    pthread_mutex_unlock(&fv->mu);
    return rc;
}

static int fv_truncate(sop_vfs *v, sop_file *fh, uint64_t size)
{
    fvfs *fv = (fvfs *)v;
    if (!fh)
        return -EINVAL;
    pthread_mutex_lock(&fv->mu);
    int rc = on_op(fv, FAULT_OP_TRUNCATE);
    if (rc == 0)
        rc = tracked_truncate(fv, fh, size);
    pthread_mutex_unlock(&fv->mu);
    return rc;
}

static int fv_lock(sop_vfs *v, sop_file *fh, uint64_t off, uint64_t len, int mode, int wait)
{
    fvfs *fv = (fvfs *)v;
    if (!fh)
        return -EINVAL;
    pthread_mutex_lock(&fv->mu);
    int rc = on_op(fv, FAULT_OP_LOCK);
    pthread_mutex_unlock(&fv->mu);
    if (rc)
        return rc;
    /* outside the mutex: a blocking lock must not stop the holder's
     * unlock from getting through */
    return fv->base->lock(fv->base, fh->base, off, len, mode, wait);
}

static int fv_remove(sop_vfs *v, const char *path)
{
    fvfs *fv = (fvfs *)v;
    if (!path)
        return -EINVAL;
    pthread_mutex_lock(&fv->mu);
    int rc = on_op(fv, FAULT_OP_REMOVE);
    if (rc) {
        pthread_mutex_unlock(&fv->mu);
        return rc;
    }
    char *np = norm_path(path);
    unsigned char *bytes = NULL;
    uint64_t nbytes = 0;
    int is_dir = 0;
    int have = synced_image(fv, np, &bytes, &nbytes, &is_dir) == 0;
    rc = fv->base->remove(fv->base, path);
    if (rc == 0) {
        dop *d = add_dop(fv, is_dir ? DOP_RMDIR : DOP_REMOVE, np, NULL);
        if (have && !is_dir) {
            d->saved = 1;
            d->bytes = bytes;
            d->nbytes = nbytes;
            bytes = NULL;
        }
        fnode *node = find_node(fv, np);
        if (node)
            unlink_node(fv, node);
    }
    free(bytes);
    free(np);
    pthread_mutex_unlock(&fv->mu);
    return rc;
}

static int fv_rename(sop_vfs *v, const char *from, const char *to)
{
    fvfs *fv = (fvfs *)v;
    if (!from || !to)
        return -EINVAL;
    pthread_mutex_lock(&fv->mu);
    int rc = on_op(fv, FAULT_OP_RENAME);
    if (rc) {
        pthread_mutex_unlock(&fv->mu);
        return rc;
    }
    char *nf = norm_path(from), *nt = norm_path(to);
    if (strcmp(nf, nt) == 0) {
        rc = fv->base->rename(fv->base, from, to);
        free(nf);
        free(nt);
        pthread_mutex_unlock(&fv->mu);
        return rc;
    }
    unsigned char *bytes = NULL;
    uint64_t nbytes = 0;
    int is_dir = 0;
    int have = synced_image(fv, nt, &bytes, &nbytes, &is_dir) == 0;
    rc = fv->base->rename(fv->base, from, to);
    if (rc == 0) {
        dop *d = add_dop(fv, DOP_RENAME, nf, nt);
        if (have) {
            d->saved = 1;
            d->saved_is_dir = is_dir;
            d->bytes = bytes;
            d->nbytes = nbytes;
            bytes = NULL;
        }
        fnode *old = find_node(fv, nt);
        if (old)
            unlink_node(fv, old);
        size_t lf = strlen(nf), lt = strlen(nt);
        for (fnode *n = fv->nodes; n; n = n->next) {
            if (!n->path || strncmp(n->path, nf, lf) != 0 ||
                (n->path[lf] != 0 && n->path[lf] != '/'))
                continue;
            size_t rest = strlen(n->path + lf);
            char *np = xmalloc(lt + rest + 1);
            memcpy(np, nt, lt);
            memcpy(np + lt, n->path + lf, rest + 1);
            free(n->path);
            n->path = np;
        }
    }
    free(bytes);
    free(nf);
    free(nt);
    pthread_mutex_unlock(&fv->mu);
    return rc;
}

static int fv_mkdir(sop_vfs *v, const char *path, unsigned mode)
{
    fvfs *fv = (fvfs *)v;
    if (!path)
        return -EINVAL;
    pthread_mutex_lock(&fv->mu);
    int rc = on_op(fv, FAULT_OP_MKDIR);
    if (rc == 0)
        rc = fv->base->mkdir(fv->base, path, mode);
    if (rc == 0) {
        char *np = norm_path(path);
        add_dop(fv, DOP_MKDIR, np, NULL);
        free(np);
    }
    pthread_mutex_unlock(&fv->mu);
    return rc;
}

static int fv_sync_dir(sop_vfs *v, const char *path)
{
    fvfs *fv = (fvfs *)v;
    if (!path)
        return -EINVAL;
    pthread_mutex_lock(&fv->mu);
    int rc = on_op(fv, FAULT_OP_SYNCDIR);
    if (rc == 0)
        rc = fv->base->sync_dir(fv->base, path);
    if (rc == 0) {
        char *np = norm_path(path);
        dop *d = fv->dhead;
        while (d) {
            dop *nx = d->next;
            if (d->need1 && strcmp(d->dir1, np) == 0)
                d->need1 = 0;
            if (d->need2 && strcmp(d->dir2, np) == 0)
                d->need2 = 0;
            if (!d->need1 && !d->need2)
                free_dop(fv, d);
            d = nx;
        }
        free(np);
    }
    pthread_mutex_unlock(&fv->mu);
    return rc;
}

static int fv_list(sop_vfs *v, const char *dir, int (*fn)(const char *name, void *arg),
                   void *arg)
{
    fvfs *fv = (fvfs *)v;
    if (!dir || !fn)
        return -EINVAL;
    pthread_mutex_lock(&fv->mu);
    int rc = on_op(fv, FAULT_OP_LIST);
    name_list l = {0};
    if (rc == 0)
        rc = fv->base->list(fv->base, dir, collect_name, &l);
    pthread_mutex_unlock(&fv->mu);
    /* the callback runs without the mutex: it may use the VFS */
    for (size_t i = 0; i < l.n && rc == 0; i++)
        rc = fn(l.v[i], arg);
    free_names(&l);
    return rc;
}

/* shm_map/shm_unmap: passed through (not counted, not injectable, not
 * tracked: the mapped area is coordination state, never data). Set only
 * when the base VFS has them. */
static int fv_shm_map(sop_vfs *v, sop_file *fh, uint64_t off, size_t len, void **addr)
{
    fvfs *fv = (fvfs *)v;
    if (!fh)
        return -EINVAL;
    return fv->base->shm_map(fv->base, fh->base, off, len, addr);
}

static int fv_shm_unmap(sop_vfs *v, void *addr, size_t len)
{
    fvfs *fv = (fvfs *)v;
    return fv->base->shm_unmap(fv->base, addr, len);
}

/* ------------------------------------------------------------------ */
/* Public API                                                         */
/* ------------------------------------------------------------------ */

sop_vfs *fault_vfs_new(sop_vfs *base)
{
    fvfs *fv = calloc(1, sizeof *fv);
    if (!fv)
        return NULL;
    fv->magic = FV_MAGIC;
    fv->base = base ? base : sop_vfs_posix();
    if (pthread_mutex_init(&fv->mu, NULL) != 0) {
        free(fv);
        return NULL;
    }
    fv->vfs.version = 1;
    fv->vfs.ctx = fv;
    fv->vfs.open = fv_open;
    fv->vfs.close = fv_close;
    fv->vfs.read = fv_read;
    fv->vfs.write = fv_write;
    fv->vfs.sync = fv_sync;
    fv->vfs.size = fv_size;
    fv->vfs.truncate = fv_truncate;
    fv->vfs.lock = fv_lock;
    fv->vfs.remove = fv_remove;
    fv->vfs.rename = fv_rename;
    fv->vfs.mkdir = fv_mkdir;
    fv->vfs.sync_dir = fv_sync_dir;
    fv->vfs.list = fv_list;
    if (fv->base->shm_map && fv->base->shm_unmap) {
        fv->vfs.shm_map = fv_shm_map;
        fv->vfs.shm_unmap = fv_shm_unmap;
    }
    pthread_mutex_lock(&g_live_mu);
    fv->next_live = g_live;
    g_live = fv;
    pthread_mutex_unlock(&g_live_mu);
    return &fv->vfs;
}

void fault_vfs_free(sop_vfs *vfs)
{
    if (!vfs)
        return;
    fvfs *fv = FV(vfs);
    pthread_mutex_lock(&g_live_mu);
    for (fvfs **pp = &g_live; *pp; pp = &(*pp)->next_live) {
        if (*pp == fv) {
            *pp = fv->next_live;
            break;
        }
    }
    pthread_mutex_unlock(&g_live_mu);
    fnode *n = fv->nodes;
    while (n) {
        fnode *nx = n->next;
        free_recs(n);
        free(n->path);
        free(n);
        n = nx;
    }
    while (fv->dhead)
        free_dop(fv, fv->dhead);
    pthread_mutex_destroy(&fv->mu);
    fv->magic = 0;
    free(fv);
}

uint64_t fault_vfs_ops(sop_vfs *vfs, unsigned mask)
{
    fvfs *fv = FV(vfs);
    uint64_t total = 0;
    pthread_mutex_lock(&fv->mu);
    for (int i = 0; i < FV_NKINDS; i++)
        if (mask & (1u << i))
            total += fv->ops[i];
    pthread_mutex_unlock(&fv->mu);
    return total;
}

void fault_vfs_reset_ops(sop_vfs *vfs)
{
    fvfs *fv = FV(vfs);
    pthread_mutex_lock(&fv->mu);
    memset(fv->ops, 0, sizeof fv->ops);
    pthread_mutex_unlock(&fv->mu);
}

void fault_vfs_fail_nth(sop_vfs *vfs, unsigned op_mask, uint64_t n, int err, int persistent)
{
    fvfs *fv = FV(vfs);
    pthread_mutex_lock(&fv->mu);
    fv->fail_armed = n > 0 && op_mask != 0 && err != 0;
    fv->fail_mask = op_mask;
    fv->fail_n = n;
    fv->fail_err = err;
    fv->fail_persistent = persistent;
    fv->fail_seen = 0;
    fv->fail_hits = 0;
    pthread_mutex_unlock(&fv->mu);
}

uint64_t fault_vfs_triggered(sop_vfs *vfs)
{
    fvfs *fv = FV(vfs);
    pthread_mutex_lock(&fv->mu);
    uint64_t h = fv->fail_hits;
    pthread_mutex_unlock(&fv->mu);
    return h;
}

void fault_vfs_disarm(sop_vfs *vfs)
{
    fvfs *fv = FV(vfs);
    pthread_mutex_lock(&fv->mu);
    fv->fail_armed = 0;
    fv->pl_armed = 0;
    pthread_mutex_unlock(&fv->mu);
}

void fault_vfs_powerloss_arm(sop_vfs *vfs, uint64_t n, uint64_t seed)
{
    fvfs *fv = FV(vfs);
    pthread_mutex_lock(&fv->mu);
    fv->pl_armed = n > 0;
    fv->pl_n = n;
    fv->pl_seed = seed;
    fv->pl_count = 0;
    pthread_mutex_unlock(&fv->mu);
}

uint64_t fault_vfs_powerloss_ops(sop_vfs *vfs)
{
    fvfs *fv = FV(vfs);
    pthread_mutex_lock(&fv->mu);
    uint64_t c = fv->pl_count;
    pthread_mutex_unlock(&fv->mu);
    return c;
}

void fault_vfs_crash_now(sop_vfs *vfs, uint64_t seed)
{
    fvfs *fv = FV(vfs);
    pthread_mutex_lock(&fv->mu);
    power_cut(fv, seed);
}
