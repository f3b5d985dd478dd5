/* ec_admin.c - the public calls of erasure coding: sop_db_repair() (verify
 * every stripe, rebuild the shard files of bad drives) and
 * sop_db_ec_stats(). Semantics in sop.h and docs/design/erasure-coding.md. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cluster.h"
#include "crc32c.h"
#include "ec_vfs.h"
#include "err.h"
#include "internal.h"
#include "mem.h"
#include "shared.h"
#include "vfs_stack.h"

int sop_db_ec_stats(sop_db *db, sop_ec_stat *st)
{
    if (!db || !st || !db->vfs_own[1])
        return -EINVAL;
    sop__ec_vfs *v = (sop__ec_vfs *)db->vfs_own[1];
    memset(st, 0, sizeof *st);
    st->stripes_written = atomic_load(&v->st_stripes_written);
    st->degraded_stripes = atomic_load(&v->st_degraded_stripes);
    st->shard_write_errors = atomic_load(&v->st_shard_write_errors);
    st->reconstructed = atomic_load(&v->st_reconstructed);
    st->bad_shards = atomic_load(&v->st_bad_shards);
    st->unreadable = atomic_load(&v->st_unreadable);
    for (uint32_t d = 0; d < v->n; d++)
        st->drives_down += v->down[d];
    return 0;
}

typedef struct segs {
    uint32_t *a;
    size_t n, cap;
} segs;

static int add_seg(const char *name, void *arg)
{
    segs *s = arg;
    if (strncmp(name, "seg-", 4) != 0 || strlen(name) != 12 || strspn(name + 4, "0123456789") != 8)
        return 0;
    uint32_t *a = sop__grow(s->a, &s->cap, s->n + 1, sizeof *a, 32);
    if (!a)
        return -ENOMEM;
    s->a = a;
    a[s->n++] = (uint32_t)strtoul(name + 4, NULL, 10);
    return 0;
}

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

/* Whether shard file @name exists on a drive other than the rebuilt ones
 * (compaction may delete a sealed segment while it is repaired). */
static int exists_elsewhere(sop__ec_vfs *v, const char *name, const uint8_t *rebuilt)
{
    for (uint32_t d = 0; d < v->n; d++) {
        if (rebuilt[d] || v->down[d])
            continue;
        char *p = sop__ec_drive_path(v, d, name);
        sop_file *f;
        int rc = p ? v->base->open(v->base, p, SOP_O_READ, 0, &f) : -ENOMEM;
        sop__free(p);
        if (rc == 0) {
            v->base->close(v->base, f);
            return 1;
        }
        if (rc != -ENOENT)
            return 1; /* cannot tell: keep the rebuilt file */
    }
    return 0;
}

/* Writes the shard files of the drives flagged in @rebuild from the other
 * shards of every stripe, and renames them over the old ones. */
static int rebuild(sop__ec_vfs *v, sop_file *f, const uint8_t *okm, uint8_t *rebuild_d,
                   sop_repair_report *r)
{
    uint32_t n = v->n, k = v->k;
    sop_file **tmp = sop__calloc(n, sizeof *tmp);
    char **tpath = sop__calloc(n, sizeof *tpath);
    uint8_t **sh = sop__calloc(n, sizeof *sh);
    uint8_t *ok = sop__malloc(n), *hb = sop__malloc(SOP__EC_HDR + SOP__EC_SHARD_MAX);
    int rc = tmp && tpath && sh && ok && hb ? 0 : -ENOMEM;
    for (uint32_t d = 0; d < n && !rc; d++)
        if (!(sh[d] = sop__malloc(SOP__EC_SHARD_MAX)))
            rc = -ENOMEM;
    char tname[64];
    snprintf(tname, sizeof tname, ".rebuild-%s", f->name);
    for (uint32_t d = 0; d < n && !rc; d++) {
        if (!rebuild_d[d])
            continue;
        if (!(tpath[d] = sop__ec_drive_path(v, d, tname))) {
            rc = -ENOMEM;
            break;
        }
        rc = v->base->open(v->base, tpath[d], SOP_O_RDWR | SOP_O_CREATE | SOP_O_TRUNC, v->mode,
                           &tmp[d]);
        if (rc) {
            rc = 0; /* the drive cannot be written: it stays as it is */
            rebuild_d[d] = 0;
            v->down[d] = 1;
        }
    }
    for (size_t j = 0; j < f->nst && !rc; j++) {
        const sop__ec_stripe *s = &f->st[j];
        uint32_t sl = sop__ec_shard_len(s->len, k);
        int dec = sop__ec_read_stripe(f, s, sh, ok, 1);
        if (dec == -ENOMEM) {
            rc = dec;
            break;
        }
        for (uint32_t d = 0; d < n; d++) {
            if (!tmp[d])
                continue;
            if (dec) {
                /* unrecoverable: keep this drive's own shard if it is good */
                if (!okm[j * n + d] || sop__ec_read_shard(f, d, s, hb) != 0)
                    continue;
            } else {
                memcpy(hb + SOP__EC_HDR, sh[d], sl);
                sop__ec_hdr_pack(v, hb, d, s, sop__crc32c(sh[d], sl, 0));
                if (!okm[j * n + d])
                    r->shards_rebuilt++;
            }
            if (v->base->write(v->base, tmp[d], hb, SOP__EC_HDR + (size_t)sl, s->phys) != 0) {
                v->base->close(v->base, tmp[d]);
                v->base->remove(v->base, tpath[d]);
                tmp[d] = NULL;
                rebuild_d[d] = 0;
                v->down[d] = 1;
            }
        }
    }
    for (uint32_t d = 0; d < n; d++) {
        if (!tmp[d])
            continue;
        int w = rc ? rc : v->base->sync(v->base, tmp[d]);
        v->base->close(v->base, tmp[d]);
        char *dst = sop__ec_drive_path(v, d, f->name);
        if (!w)
            w = dst ? v->base->rename(v->base, tpath[d], dst) : -ENOMEM;
        if (!w)
            w = v->base->sync_dir(v->base, v->drives[d]);
        if (w) {
            v->base->remove(v->base, tpath[d]);
            if (!rc && w != -ENOMEM)
                v->down[d] = 1;
            else if (!rc)
                rc = w;
        } else {
            r->files_rebuilt++;
        }
        sop__free(dst);
    }
    for (uint32_t d = 0; d < n; d++) {
        if (sh)
            sop__free(sh[d]);
        if (tpath)
            sop__free(tpath[d]);
    }
    sop__free(tmp);
    sop__free(tpath);
    sop__free(sh);
    sop__free(ok);
    sop__free(hb);
    return rc;
}

/* Verifies one segment and rebuilds what it can. @active: the segment
 * being appended to (commit lock held by the caller). */
static int repair_seg(sop__ec_vfs *v, const char *name, int active, sop_repair_report *r)
{
    uint32_t n = v->n;
    sop_file *f;
    int rc = sop__ec_file_open(v, name, SOP_O_READ, &f);
    if (rc == -ENOENT)
        return 0; /* deleted by compaction meanwhile */
    if (rc)
        return sop__err(NULL, rc, "cannot open segment %s", name);
    pthread_mutex_lock(&f->mu);
    rc = sop__ec_refresh(f);
    if (rc == -EIO && f->damaged) {
        r->unrecoverable++; /* stripes past the index cannot be decoded */
        rc = 0;
    }
    uint8_t *okm = rc ? NULL : sop__malloc(f->nst * n + 1);
    uint8_t *need = sop__calloc(n, 1), *hb = sop__malloc(SOP__EC_HDR + SOP__EC_SHARD_MAX);
    if (!rc && (!okm || !need || !hb))
        rc = -ENOMEM;
    if (rc) {
        if (rc != -ENOMEM)
            rc = sop__err(NULL, rc, "cannot read segment %s", name);
        goto out;
    }
    r->segments++;
    for (uint32_t d = 0; d < n; d++)
        if (!f->sh[d] && !v->down[d])
            need[d] = 1; /* a missing shard file (a new or replaced drive) */
    for (size_t j = 0; j < f->nst; j++) {
        uint32_t good = 0;
        for (uint32_t d = 0; d < n; d++) {
            int x = sop__ec_read_shard(f, d, &f->st[j], hb);
            okm[j * n + d] = x == 0;
            good += x == 0;
            if (x) {
                r->bad_shards++;
                if (!v->down[d])
                    need[d] = 1;
            }
        }
        r->stripes++;
        if (good < v->k)
            r->unrecoverable++;
    }
    if (active) {
        /* a process appending to this segment holds its shard files open:
         * one that exists is not replaced under it */
        for (uint32_t d = 0; d < n; d++)
            if (need[d] && f->sh[d]) {
                need[d] = 0;
                for (size_t j = 0; j < f->nst; j++)
                    r->deferred += !okm[j * n + d];
            }
    }
    int any = 0;
    for (uint32_t d = 0; d < n; d++)
        any |= need[d];
    if (any && f->damaged)
        any = 0; /* the shards past the index may still matter: keep every file */
    if (any) {
        rc = rebuild(v, f, okm, need, r);
        if (!rc && !active && !exists_elsewhere(v, name, need)) {
            /* compaction deleted it meanwhile: do not leave a stray shard */
            for (uint32_t d = 0; d < n; d++)
                if (need[d]) {
                    char *p = sop__ec_drive_path(v, d, name);
                    if (p)
                        v->base->remove(v->base, p);
                    sop__free(p);
                }
        }
        if (rc && rc != -ENOMEM)
            rc = sop__err(NULL, rc, "cannot rebuild segment %s", name);
    }
out:
    pthread_mutex_unlock(&f->mu);
    sop__free(okm);
    sop__free(need);
    sop__free(hb);
    sop__ec_file_close(v, f);
    return rc;
}

/* How a pass keeps the segment being appended to still: the database's
 * commit lock. Standalone, that is a byte of the LOCK file, and a pass that
 * can take the open lock exclusively has the database to itself. Clustered,
 * the commit lock is a Redis lease and processes on other hosts hold no
 * lock here: the pass joins the cluster with a handle of its own, and has
 * the database to itself only when, under the lease, Redis lists no other
 * live process. */
typedef struct pass {
    sop_vfs *base;
    sop_file *lockf;
    sop_db *cdb; /* clustered: the pass's handle */
} pass;

static int lock_active(pass *p, const char *path)
{
    if (p->cdb) {
        int rc = sop__commit_lock(p->cdb);
        return rc ? sop__err(NULL, rc, "%s", sop_db_errmsg(p->cdb)) : 0;
    }
    /* no recovery running (it holds the open lock exclusively), no append
     * or cut (the commit lock) while the last segment is read */
    int rc = p->base->lock(p->base, p->lockf, SOP__LOCK_OPEN, 1, SOP_LOCK_SH, 1);
    if (!rc) {
        rc = p->base->lock(p->base, p->lockf, SOP__LOCK_COMMIT, 1, SOP_LOCK_EX, 1);
        if (rc)
            p->base->lock(p->base, p->lockf, SOP__LOCK_OPEN, 1, SOP_LOCK_UN, 0);
    }
    return rc ? sop__err(NULL, rc, "cannot lock %s", path) : 0;
}

static void unlock_active(pass *p)
{
    if (p->cdb) {
        sop__commit_unlock(p->cdb);
        return;
    }
    p->base->lock(p->base, p->lockf, SOP__LOCK_COMMIT, 1, SOP_LOCK_UN, 0);
    p->base->lock(p->base, p->lockf, SOP__LOCK_OPEN, 1, SOP_LOCK_UN, 0);
}

static int list_segs(sop_vfs *vfs, const char *path, segs *s)
{
    s->n = 0;
    int rc = vfs->list(vfs, path, add_seg, s);
    if (!rc && s->n)
        qsort(s->a, s->n, sizeof *s->a, cmp_u32);
    return rc;
}

static int repair_no(sop__ec_vfs *v, uint32_t no, int active, sop_repair_report *r)
{
    char name[16];
    snprintf(name, sizeof name, "seg-%08u", no);
    return repair_seg(v, name, active, r);
}

static void confirm_drives(sop__ec_vfs *v)
{
    for (uint32_t d = 0; d < v->n; d++)
        if (v->fresh[d] && !v->down[d] && sop__ec_write_ident(v, d) != 0)
            v->down[d] = 1;
}

/* The end of a pass that did not have the database to itself: under the
 * commit lock, the segment being appended to (@last, the last one listed;
 * none when @have_last is 0). Clustered, when Redis lists no other live
 * process (and openers wait for the lock), nobody appends: that segment
 * and any made since the listing are repaired whole, and the new drives
 * confirmed, as a pass that had the database to itself would. A new drive
 * is one of this database's once every segment has its shards there: not
 * while another process may still append to a shard file it held when the
 * folder was deleted, or make segments without the drive. */
static int finish(pass *p, sop__ec_vfs *v, int have_last, uint32_t last, sop_repair_report *r)
{
    int rc = lock_active(p, v->dir);
    if (rc)
        return rc;
    int others = 1;
    if (p->cdb) {
        uint64_t snap;
        uint32_t seg;
        rc = sop__cl_oldest(p->cdb, &snap, &seg, &others);
        if (rc)
            rc = sop__err(NULL, rc, "%s", sop_db_errmsg(p->cdb));
    }
    if (!rc && others && have_last) {
        rc = repair_no(v, last, 1, r);
    } else if (!rc && !others) {
        segs s = {0};
        rc = list_segs(&v->vfs, v->dir, &s);
        for (size_t i = 0; i < s.n && !rc; i++)
            if (!have_last || s.a[i] >= last)
                rc = sop__cl_lease_ok(p->cdb) ? sop__err(NULL, SOP_EREDIS, "%s",
                                                         sop_db_errmsg(p->cdb))
                                              : repair_no(v, s.a[i], 0, r);
        sop__free(s.a);
        if (!rc && !sop__cl_lease_ok(p->cdb))
            confirm_drives(v);
    }
    unlock_active(p);
    return rc;
}

static int repair(const char *path, const sop_db_options *o, sop_repair_report *r)
{
    if (!path || !*path || !o || o->struct_size < sizeof(sop_db_options) || !o->drives ||
        o->ndrives < 2 || !o->parity || o->parity >= o->ndrives || o->ndrives > SOP__EC_MAXN)
        return sop__err(NULL, -EINVAL,
                        "repair needs the database's drives (2 to 255) and 1 <= parity < drives");
    pass p = {.base = o->vfs ? o->vfs : sop_vfs_posix()};
    sop_vfs *base = p.base;
    size_t pl = strlen(path);
    char *lp = sop__malloc(pl + 6);
    if (!lp)
        return -ENOMEM;
    memcpy(lp, path, pl);
    memcpy(lp + pl, "/LOCK", 6);
    int rc = base->open(base, lp, SOP_O_RDWR, 0, &p.lockf);
    sop__free(lp);
    if (rc)
        return sop__err(NULL, rc, "%s is not a database (cannot open its LOCK file)", path);
    sop_vfs *vfs = NULL;
    rc = sop__vfs_ec_new(base, path, o->drives, o->ndrives, o->parity, o->file_mode, NULL, &vfs);
    sop__ec_vfs *v = (sop__ec_vfs *)vfs;
    if (!rc && !v->have_id)
        rc = sop__err(NULL, -ENOENT, "%s was never opened with erasure coding (no %s)", path,
                      SOP__EC_DBID_NAME);
    if (!rc && o->mode == SOP_CLUSTERED) {
        rc = sop_db_open(path, o, &p.cdb);
        if (rc)
            rc = sop__err(NULL, rc, "%s", sop_db_errmsg(p.cdb));
    }
    /* standalone and no process has the database open: hold it closed for
     * the whole pass (openers wait), and the last segment is repaired like
     * the others */
    int alone = !rc && !p.cdb && base->lock(base, p.lockf, SOP__LOCK_OPEN, 1, SOP_LOCK_EX, 0) == 0;
    segs s = {0};
    if (!rc)
        rc = list_segs(vfs, path, &s);
    /* the last segment listed is the one being appended to, unless the
     * pass has the database to itself: finish() does it under the lock */
    size_t sealed = alone || !s.n ? s.n : s.n - 1;
    for (size_t i = 0; i < sealed && !rc; i++)
        rc = repair_no(v, s.a[i], 0, r);
    if (!rc && alone)
        confirm_drives(v);
    else if (!rc)
        rc = finish(&p, v, s.n > 0, s.n ? s.a[s.n - 1] : 0, r);
    if (alone)
        base->lock(base, p.lockf, SOP__LOCK_OPEN, 1, SOP_LOCK_UN, 0);
    if (v)
        for (uint32_t d = 0; d < v->n; d++)
            r->drives_unusable += v->down[d];
    sop__free(s.a);
    if (vfs)
        sop__vfs_ec_free(vfs);
    sop_db_close(p.cdb);
    base->close(base, p.lockf);
    return rc;
}

int sop_db_repair(const char *path, const sop_db_options *opts, sop_repair_report *out)
{
    sop_repair_report local;
    sop_repair_report *r = out ? out : &local;
    memset(r, 0, sizeof *r);
    sop__err_clear(NULL);
    int rc = repair(path, opts, r);
    if (rc) {
        const char *m = sop_db_errmsg(NULL);
        snprintf(r->message, sizeof r->message, "%s",
                 *m ? m : sop_strerror(rc));
    }
    sop__err_clear(NULL);
    return rc;
}
