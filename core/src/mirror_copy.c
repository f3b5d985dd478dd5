/*
 * mirror_copy.c - bringing one folder of a replicated database level with
 * the other (docs/design/replication.md, "Reinstatement").
 *
 * Segments are append-only, so a folder that stopped receiving writes
 * holds a prefix of each segment that is still right: the copy of a
 * segment starts at the lowest of
 *   - the destination's size (what it lacks),
 *   - the segment's entry in the stale table (the lowest offset written,
 *     truncated or left unsynced since the folder went stale),
 *   - its entry in the table of writes since a reinstatement began,
 *   - with a checkpoint plan, the checkpoint's position: everything before
 *     the newest checkpoint was synced in both folders, only what follows
 *     may hold writes that reached one folder and not the other (a crash
 *     between the two writes of the mirror);
 * and stops at the source's size; the destination is then cut to that
 * size. The other database files (registry, registry.dw, ckpt.*) are
 * copied whole (in a catch-up, @since_only, only those written since it
 * began or whose size differs), and the destination's database files that the source does
 * not have are removed. With @compare, only the chunks that differ are
 * written (the crash reconcile at open, where nearly everything matches).
 * The state file and LOCK are not copied (the caller writes the state).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bytes.h"
#include "crc32c.h"
#include "mem.h"
#include "mirror.h"

#define CHUNK (1u << 20)

typedef struct names {
    char **v;
    size_t n, cap;
    int rc;
} names;

static int collect(const char *name, void *arg)
{
    names *ns = arg;
    if (!sop__mstate_is_db_file(name))
        return 0;
    if (ns->n == ns->cap) {
        size_t cap = ns->cap ? ns->cap * 2 : 16;
        char **v = sop__realloc(ns->v, cap * sizeof *v);
        if (!v)
            return ns->rc = -ENOMEM;
        ns->v = v;
        ns->cap = cap;
    }
    if (!(ns->v[ns->n] = sop__strdup(name)))
        return ns->rc = -ENOMEM;
    ns->n++;
    return 0;
}

static void names_free(names *ns)
{
    for (size_t i = 0; i < ns->n; i++)
        sop__free(ns->v[i]);
    sop__free(ns->v);
}

static int has(const names *ns, const char *name)
{
    for (size_t i = 0; i < ns->n; i++)
        if (!strcmp(ns->v[i], name))
            return 1;
    return 0;
}

static uint64_t min64(uint64_t a, uint64_t b) { return a < b ? a : b; }

typedef struct copier {
    sop_vfs *b;
    const char *src, *dst;
    const sop__mplan *plan;
    unsigned mode;
    sop__mcopy_stat *st;
    const char **failed;
    uint8_t *buf, *cmp;
} copier;

static int fail_at(const copier *c, const char *folder, int rc)
{
    *c->failed = folder;
    return rc;
}
#define FAIL_SRC(x) fail_at(c, c->src, (x))
#define FAIL_DST(x) fail_at(c, c->dst, (x))

/* The first byte of segment/file @name that may differ in the destination. */
static uint64_t start_of(const copier *c, const char *name, uint64_t dsize, uint64_t ssize,
                         int created)
{
    const sop__mplan *p = c->plan;
    if (created)
        return 0;
    if (!sop__mstate_is_seg(name)) {
        /* small files are copied whole; in a catch-up only when changed */
        if (p->since_only && sop__mstate_dirty_from(p->since, name) == UINT64_MAX &&
            dsize == ssize)
            return ssize;
        return 0;
    }
    uint64_t s = dsize;
    if (p->table)
        s = min64(s, sop__mstate_dirty_from(p->table, name));
    if (p->since)
        s = min64(s, sop__mstate_dirty_from(p->since, name));
    if (p->use_ckpt) {
        uint32_t no = (uint32_t)strtoul(name + 4, NULL, 10);
        if (no > p->ckpt_seg)
            s = 0;
        else if (no == p->ckpt_seg)
            s = min64(s, p->ckpt_off);
    }
    return s;
}

static int copy_file(copier *c, const char *name)
{
    char sp[4096], dp[4096];
    if ((size_t)snprintf(sp, sizeof sp, "%s/%s", c->src, name) >= sizeof sp ||
        (size_t)snprintf(dp, sizeof dp, "%s/%s", c->dst, name) >= sizeof dp)
        return -ENAMETOOLONG;
    sop_vfs *b = c->b;
    sop_file *sf = NULL, *df = NULL;
    int created = 0, changed = 0;
    uint64_t ssize = 0, dsize = 0;
    int rc = b->open(b, sp, SOP_O_READ, 0, &sf);
    if (rc == -ENOENT)
        return 0; /* removed meanwhile (compaction): the removal pass handles it */
    if (rc)
        return FAIL_SRC(rc);
    rc = b->size(b, sf, &ssize);
    if (rc) {
        (void)FAIL_SRC(rc);
        goto out;
    }
    rc = b->open(b, dp, SOP_O_RDWR, 0, &df);
    if (rc == -ENOENT) {
        rc = b->open(b, dp, SOP_O_RDWR | SOP_O_CREATE, c->mode, &df);
        created = changed = 1;
    }
    if (!rc)
        rc = b->size(b, df, &dsize);
    if (rc) {
        (void)FAIL_DST(rc);
        goto out;
    }
    uint64_t from = start_of(c, name, dsize, ssize, created);
    if (!c->plan->compare)
        c->st->skipped += min64(from, ssize);
    for (uint64_t off = from; off < ssize;) {
        size_t n = (size_t)min64(CHUNK, ssize - off), got = 0;
        if (c->plan->go_on && (rc = c->plan->go_on(c->plan->go_arg)) != 0)
            goto out;
        rc = b->read(b, sf, c->buf, n, off, &got);
        if (rc) {
            (void)FAIL_SRC(rc);
            goto out;
        }
        if (!got)
            break; /* cut meanwhile: the size fix below and the catch-up handle it */
        int same = 0;
        if (c->plan->compare && off + got <= dsize) {
            size_t dgot = 0;
            rc = b->read(b, df, c->cmp, got, off, &dgot);
            if (rc) {
                (void)FAIL_DST(rc);
                goto out;
            }
            same = dgot == got && !memcmp(c->buf, c->cmp, got);
        }
        if (!same) {
            rc = b->write(b, df, c->buf, got, off);
            if (rc) {
                (void)FAIL_DST(rc);
                goto out;
            }
            c->st->bytes += got;
            changed = 1;
        }
        off += got;
    }
    if (dsize > ssize) {
        rc = b->truncate(b, df, ssize);
        if (rc) {
            (void)FAIL_DST(rc);
            goto out;
        }
        changed = 1;
    }
    if (changed) {
        rc = b->sync(b, df);
        if (rc) {
            (void)FAIL_DST(rc);
            goto out;
        }
        c->st->files++;
    }
out:
    if (df)
        b->close(b, df);
    b->close(b, sf);
    return rc;
}

static int make_dir(sop_vfs *b, const char *dir, unsigned mode)
{
    int rc = b->mkdir(b, dir, mode);
    if (rc == -EEXIST)
        return 0;
    if (rc)
        return rc;
    /* make the new folder's entry durable */
    size_t n = strlen(dir);
    while (n > 1 && dir[n - 1] == '/')
        n--;
    while (n > 0 && dir[n - 1] != '/')
        n--;
    char *parent = n ? sop__memdup(dir, n + 1) : sop__strdup(".");
    if (!parent)
        return -ENOMEM;
    if (n)
        parent[n] = 0;
    rc = b->sync_dir(b, parent);
    sop__free(parent);
    return rc;
}

int sop__mirror_copy(sop_vfs *base, const char *src, const char *dst, const sop__mplan *plan,
                     unsigned mode, sop__mcopy_stat *st, const char **failed)
{
    copier c = {base, src, dst, plan, mode, st, failed, NULL, NULL};
    names sn = {0}, dn = {0};
    *failed = NULL;
    int rc = make_dir(base, dst, 0700);
    if (rc)
        return *failed = dst, rc;
    c.buf = sop__malloc(CHUNK);
    c.cmp = plan->compare ? sop__malloc(CHUNK) : NULL;
    if (!c.buf || (plan->compare && !c.cmp)) {
        rc = -ENOMEM;
        goto out;
    }
    rc = base->list(base, src, collect, &sn);
    if (rc) {
        if (!sn.rc)
            *failed = src;
        goto out;
    }
    rc = base->list(base, dst, collect, &dn);
    if (rc) {
        if (!dn.rc)
            *failed = dst;
        goto out;
    }
    for (size_t i = 0; i < sn.n && !rc; i++)
        rc = copy_file(&c, sn.v[i]);
    for (size_t i = 0; i < dn.n && !rc; i++) {
        if (has(&sn, dn.v[i]))
            continue;
        char dp[4096];
        if ((size_t)snprintf(dp, sizeof dp, "%s/%s", dst, dn.v[i]) >= sizeof dp) {
            rc = -ENAMETOOLONG;
            break;
        }
        rc = base->remove(base, dp);
        if (rc == -ENOENT)
            rc = 0;
        else if (rc)
            *failed = dst;
        else
            st->files++;
    }
    if (!rc && (rc = base->sync_dir(base, dst)) != 0)
        *failed = dst;
out:
    names_free(&sn);
    names_free(&dn);
    sop__free(c.buf);
    sop__free(c.cmp);
    return rc;
}

/* db.c's checkpoint record: 0 u32 CRC32C of 4..63, 4 u32 magic "SOPC",
 * 8 u32 format 1, 12 u32 segment, 16 u64 offset, 24 u64 checkpoint no. */
#define CKPT_MAGIC 0x43504F53u
#define CKPT_SIZE 64

int sop__mirror_ckpt(sop_vfs *base, const char *folder, uint32_t *seg, uint64_t *off)
{
    uint64_t best = 0;
    int found = 0;
    for (int i = 0; i < 2; i++) {
        char p[4096];
        if ((size_t)snprintf(p, sizeof p, "%s/ckpt.%d", folder, i) >= sizeof p)
            return -ENAMETOOLONG;
        sop_file *f;
        int rc = base->open(base, p, SOP_O_READ, 0, &f);
        if (rc == -ENOENT)
            continue;
        if (rc)
            return rc;
        uint8_t b[CKPT_SIZE];
        size_t got = 0;
        rc = base->read(base, f, b, sizeof b, 0, &got);
        base->close(base, f);
        if (rc)
            return rc;
        if (got < CKPT_SIZE || sop__get32(b + 4) != CKPT_MAGIC || sop__get32(b + 8) != 1 ||
            sop__get32(b) != sop__crc32c(b + 4, CKPT_SIZE - 4, 0))
            continue;
        uint64_t no = sop__get64(b + 24);
        if (!found || no > best) {
            best = no;
            *seg = sop__get32(b + 12);
            *off = sop__get64(b + 16);
            found = 1;
        }
    }
    return found ? 0 : -ENOENT;
}
