/* vfs_ec.c - the erasure-coding VFS layer: segment files (seg-*) of the
 * database directory are striped over the drive folders (format in
 * ec_vfs.h, design in docs/design/erasure-coding.md); every other path,
 * and the lock and shared-memory calls, go to the base VFS unchanged.
 *
 *  - Append-only (SOP_VFS_APPEND_ONLY): a write must start at the file's
 *    logical end and becomes whole stripes appended to every drive (one
 *    write per drive); stripes are never rewritten. A drive whose write,
 *    sync or open fails is marked failed for that file and skipped; with
 *    at most m failed the write succeeds (degraded), beyond it is -EIO.
 *  - Reads come from the data shards, each checked by its CRC; a stripe
 *    with a missing, short or corrupt shard is reconstructed from any k
 *    intact ones (and checked against the stripe's CRC); more than m bad:
 *    -EIO, nothing returned.
 *  - The index of an open file (its stripes) is brought up to date by
 *    size() and by reads past the known end: stripes appended by other
 *    processes are found by scanning headers from the physical end, and a
 *    truncation by another process is noticed because the last known
 *    stripe no longer has k matching headers (the index is rebuilt).
 *  - End detection: a stripe exists when k drives agree on its header;
 *    the last ones found by a scan must also decode (a writer may still be
 *    writing it, or died in the middle), else the file ends before them.
 *  - truncate(L) drops the stripes past L; a stripe holding L is dropped
 *    too and its first bytes re-appended (crash-safe: see the design).
 *  - A shard file that does not exist when the file is opened is opened
 *    when it appears (refresh, write): files are created one drive after
 *    another, and a follower may open one in between. Nothing is appended
 *    with fewer than k shard files (the end would be unknown); an empty
 *    file whose creator died between its shard files gets the missing
 *    ones at its first append.
 *  - A drive folder that disappears while a shard file is open keeps
 *    receiving that file's writes in the deleted inode; the folder is not
 *    recreated here (a vanished mount point must not fill its parent):
 *    files created later skip it, and sop_db_repair() rebuilds it.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bytes.h"
#include "crc32c.h"
#include "ec_vfs.h"
#include "err.h"
#include "killpoint.h"
#include "mem.h"
#include "vfs_stack.h"

#define EC(vfs) ((sop__ec_vfs *)(vfs)->ctx)

int sop__ec_is_seg(const char *name) { return strncmp(name, "seg-", 4) == 0; }

/* The base name when @path is an EC file of the database directory. */
static const char *ec_name(const sop__ec_vfs *v, const char *path)
{
    if (!path || strncmp(path, v->dir, v->dirlen) != 0 || path[v->dirlen] != '/')
        return NULL;
    const char *name = path + v->dirlen + 1;
    return sop__ec_is_seg(name) && !strchr(name, '/') ? name : NULL;
}

void sop__ec_hdr_pack(const sop__ec_vfs *v, uint8_t *h, uint32_t idx, const sop__ec_stripe *s,
                      uint32_t scrc)
{
    sop__put32(h, SOP__EC_MAGIC);
    h[4] = SOP__EC_VERSION;
    h[5] = (uint8_t)idx;
    h[6] = (uint8_t)v->k;
    h[7] = (uint8_t)v->m;
    sop__put64(h + 8, s->off);
    sop__put32(h + 16, s->len);
    sop__put32(h + 20, s->crc);
    sop__put64(h + 24, v->tag);
    sop__put32(h + 32, scrc);
    sop__put32(h + 36, sop__crc32c(h, 36, 0));
}

int sop__ec_hdr_parse(const sop__ec_vfs *v, const uint8_t *h, uint32_t idx, sop__ec_stripe *s,
                      uint32_t *scrc)
{
    if (sop__get32(h) != SOP__EC_MAGIC || h[4] != SOP__EC_VERSION || h[5] != idx ||
        h[6] != v->k || h[7] != v->m || sop__get64(h + 24) != v->tag ||
        sop__crc32c(h, 36, 0) != sop__get32(h + 36))
        return -1;
    uint32_t len = sop__get32(h + 16);
    if (!len || len > v->k * SOP__EC_SHARD_MAX)
        return -1;
    s->off = sop__get64(h + 8);
    s->len = len;
    s->crc = sop__get32(h + 20);
    *scrc = sop__get32(h + 32);
    return 0;
}

/* ------------------------------------------------------------------ */
/* Reading stripes                                                     */
/* ------------------------------------------------------------------ */

int sop__ec_read_shard(sop_file *f, uint32_t idx, const sop__ec_stripe *s, uint8_t *buf)
{
    sop__ec_vfs *v = f->v;
    if (!f->sh[idx])
        return -1;
    uint32_t sl = sop__ec_shard_len(s->len, v->k);
    size_t got = 0;
    int rc = v->base->read(v->base, f->sh[idx], buf, SOP__EC_HDR + (size_t)sl, s->phys, &got);
    sop__ec_stripe h;
    uint32_t scrc;
    if (rc || got != SOP__EC_HDR + (size_t)sl || sop__ec_hdr_parse(v, buf, idx, &h, &scrc) ||
        h.off != s->off || h.len != s->len || h.crc != s->crc ||
        sop__crc32c(buf + SOP__EC_HDR, sl, 0) != scrc) {
        atomic_fetch_add(&v->st_bad_shards, 1);
        return -1;
    }
    return 0;
}

int sop__ec_read_stripe(sop_file *f, const sop__ec_stripe *s, uint8_t *const *shards, uint8_t *ok,
                        int parity)
{
    sop__ec_vfs *v = f->v;
    uint32_t n = v->n, k = v->k, sl = sop__ec_shard_len(s->len, k);
    uint8_t *buf = sop__malloc(SOP__EC_HDR + (size_t)sl);
    if (!buf)
        return -ENOMEM;
    /* the data shards first; parity is read only for a missing one */
    uint32_t good = 0, data_good = 0;
    for (uint32_t i = 0; i < n; i++) {
        ok[i] = 0;
        if (i >= k && data_good == k)
            continue; /* not read: computed below if wanted */
        if (sop__ec_read_shard(f, i, s, buf) == 0) {
            memcpy(shards[i], buf + SOP__EC_HDR, sl);
            ok[i] = 1;
            good++;
            data_good += i < k;
        }
    }
    sop__free(buf);
    if (good < k) {
        atomic_fetch_add(&v->st_unreadable, 1);
        return -EIO;
    }
    if (data_good < k || (parity && good < n)) {
        int rc = sop__ec_reconstruct(&v->codec, sl, shards, ok);
        if (rc)
            return rc;
        if (data_good < k)
            atomic_fetch_add(&v->st_reconstructed, 1);
    }
    /* the stripe's CRC over its logical bytes checks the decoding too */
    uint32_t crc = 0, left = s->len;
    for (uint32_t i = 0; i < k && left; i++) {
        uint32_t c = left < sl ? left : sl;
        crc = sop__crc32c(shards[i], c, crc);
        left -= c;
    }
    return crc == s->crc ? 0 : -EIO;
}

/* Decodes stripe @s into the file's cache (its logical bytes at c_data).
 * f->mu held. */
static int load_stripe(sop_file *f, const sop__ec_stripe *s)
{
    sop__ec_vfs *v = f->v;
    if (f->c_phys == s->phys && f->c_crc == s->crc && f->c_len == s->len)
        return 0;
    uint32_t sl = sop__ec_shard_len(s->len, v->k);
    if (!f->c_data) {
        f->c_data = sop__malloc((size_t)v->k * SOP__EC_SHARD_MAX);
        if (!f->c_data)
            return -ENOMEM;
    }
    uint8_t *par = sop__malloc((size_t)v->m * sl);
    uint8_t *ok = sop__malloc(v->n);
    uint8_t **sh = sop__malloc(v->n * sizeof *sh);
    int rc = -ENOMEM;
    if (par && ok && sh) {
        for (uint32_t i = 0; i < v->n; i++)
            sh[i] = i < v->k ? f->c_data + (size_t)i * sl : par + (size_t)(i - v->k) * sl;
        f->c_phys = UINT64_MAX;
        rc = sop__ec_read_stripe(f, s, sh, ok, 0);
        if (!rc) {
            f->c_phys = s->phys;
            f->c_crc = s->crc;
            f->c_len = s->len;
        }
    }
    sop__free(par);
    sop__free(ok);
    sop__free(sh);
    return rc;
}

/* Copies logical bytes [a, b) of stripe @s to @dst: from the cache, from
 * the one or two data shards holding them, or by decoding the stripe. */
static int read_part(sop_file *f, const sop__ec_stripe *s, uint32_t a, uint32_t b, uint8_t *dst)
{
    sop__ec_vfs *v = f->v;
    uint32_t sl = sop__ec_shard_len(s->len, v->k);
    uint32_t i0 = a / sl, i1 = (b - 1) / sl;
    int cached = f->c_phys == s->phys && f->c_crc == s->crc && f->c_len == s->len;
    if (!cached && i1 - i0 < 2 && b - a < s->len / 2) {
        uint8_t *buf = sop__malloc(SOP__EC_HDR + (size_t)sl);
        if (!buf)
            return -ENOMEM;
        int bad = 0;
        for (uint32_t i = i0; i <= i1 && !bad; i++) {
            if (sop__ec_read_shard(f, i, s, buf) != 0) {
                bad = 1;
                break;
            }
            uint32_t lo = i * sl > a ? i * sl : a, hi = (i + 1) * sl < b ? (i + 1) * sl : b;
            memcpy(dst + (lo - a), buf + SOP__EC_HDR + (lo - i * sl), hi - lo);
        }
        sop__free(buf);
        if (!bad)
            return 0;
    }
    int rc = load_stripe(f, s);
    if (rc)
        return rc;
    memcpy(dst, f->c_data + a, b - a);
    return 0;
}

/* ------------------------------------------------------------------ */
/* The index                                                           */
/* ------------------------------------------------------------------ */

static void reset_index(sop_file *f)
{
    f->nst = 0;
    f->size = 0;
    f->pend = 0;
    f->c_phys = UINT64_MAX;
}

static int push_stripe(sop_file *f, const sop__ec_stripe *s)
{
    sop__ec_stripe *a = sop__grow(f->st, &f->cap, f->nst + 1, sizeof *a, 64);
    if (!a)
        return -ENOMEM;
    f->st = a;
    a[f->nst++] = *s;
    f->size = s->off + s->len;
    f->pend = s->phys + SOP__EC_HDR + sop__ec_shard_len(s->len, f->v->k);
    return 0;
}

/* Whether stripe @s still has k matching headers. */
static int still_there(sop_file *f, const sop__ec_stripe *s)
{
    sop__ec_vfs *v = f->v;
    uint32_t votes = 0, miss = 0;
    for (uint32_t d = 0; d < v->n && votes < v->k && miss <= v->n - v->k; d++) {
        uint8_t h[SOP__EC_HDR];
        size_t got = 0;
        sop__ec_stripe x;
        uint32_t scrc;
        if (f->sh[d] && v->base->read(v->base, f->sh[d], h, sizeof h, s->phys, &got) == 0 &&
            got == sizeof h && sop__ec_hdr_parse(v, h, d, &x, &scrc) == 0 && x.off == s->off &&
            x.len == s->len && x.crc == s->crc)
            votes++;
        else
            miss++;
    }
    return votes >= v->k;
}

/* The stripe at the physical end, if k drives agree on it. */
static int find_next(sop_file *f, sop__ec_stripe *out)
{
    sop__ec_vfs *v = f->v;
    sop__ec_stripe cand[SOP__EC_MAXN];
    uint32_t votes[SOP__EC_MAXN], nc = 0, miss = 0;
    for (uint32_t d = 0; d < v->n && miss <= v->n - v->k; d++) {
        uint8_t h[SOP__EC_HDR];
        size_t got = 0;
        sop__ec_stripe x;
        uint32_t scrc;
        if (!f->sh[d] || v->base->read(v->base, f->sh[d], h, sizeof h, f->pend, &got) != 0 ||
            got != sizeof h || sop__ec_hdr_parse(v, h, d, &x, &scrc) != 0 || x.off != f->size) {
            miss++;
            continue;
        }
        uint32_t c = 0;
        while (c < nc && (cand[c].len != x.len || cand[c].crc != x.crc))
            c++;
        if (c == nc) {
            cand[nc] = x;
            votes[nc++] = 0;
        }
        if (++votes[c] >= v->k) {
            *out = cand[c];
            out->phys = f->pend;
            return 1;
        }
    }
    return 0;
}

/* Whether segment @name has a successor on some drive: then @name is
 * sealed (it was synced in full before the next one was created). */
static int has_next(sop_file *f)
{
    sop__ec_vfs *v = f->v;
    char next[32];
    snprintf(next, sizeof next, "seg-%08lu", strtoul(f->name + 4, NULL, 10) + 1);
    for (uint32_t d = 0; d < v->n; d++) {
        char *p = sop__ec_drive_path(v, d, next);
        sop_file *x;
        int rc = p ? v->base->open(v->base, p, SOP_O_READ, 0, &x) : -ENOMEM;
        sop__free(p);
        if (rc == 0) {
            v->base->close(v->base, x);
            return 1;
        }
    }
    return 0;
}

/* After a full scan: bytes past the last stripe found are the torn tail of
 * a writer (at most k drives hold some) or, in a sealed segment, stripes
 * that cannot be decoded: then the file is damaged (-EIO), never silently
 * shorter. */
static int check_beyond(sop_file *f)
{
    sop__ec_vfs *v = f->v;
    uint32_t beyond = 0;
    for (uint32_t d = 0; d < v->n; d++) {
        uint64_t sz;
        if (f->sh[d] && v->base->size(v->base, f->sh[d], &sz) == 0 && sz > f->pend)
            beyond++;
    }
    f->damaged = beyond && has_next(f);
    return f->damaged ? -EIO : 0;
}

/* Opens the shard files this handle lacks that exist now (with @create,
 * creates them). A file is created one drive after another, and another
 * process may open it in between (it follows the log into the new
 * segment): without this it would keep the shard files of the first
 * drives only, for good: with fewer than k it sees no stripe at all (a
 * stale read, and an append there would land at physical offset 0, over
 * stripes written since), with fewer than n it writes degraded stripes.
 * A repair pass may also put back a missing shard file. Drives down or
 * failed for this file are not retried. The number opened, or -ENOMEM.
 * f->mu held. */
static int reopen_absent(sop_file *f, int create)
{
    sop__ec_vfs *v = f->v;
    int got = 0;
    for (uint32_t d = 0; d < v->n; d++) {
        if (f->sh[d] || f->failed[d])
            continue;
        char *p = sop__ec_drive_path(v, d, f->name);
        if (!p)
            return -ENOMEM;
        int rc = v->base->open(v->base, p, f->oflags | (create ? SOP_O_CREATE : 0), v->mode,
                               &f->sh[d]);
        sop__free(p);
        if (rc == 0) {
            got++;
            continue;
        }
        f->sh[d] = NULL;
        if (rc == -ENOMEM)
            return rc;
        if (rc != -ENOENT)
            f->failed[d] = 1; /* it exists but cannot be opened: a failed drive */
    }
    if (got)
        f->rescan = 1; /* the index is rebuilt with their votes */
    return got;
}

/* sop__ec_refresh() without looking for new shard files. */
static int scan(sop_file *f)
{
    int full = !f->scanned || f->rescan;
    f->rescan = 0;
    if (f->scanned && f->nst && !still_there(f, &f->st[f->nst - 1]))
        full = 1; /* another process truncated the file: rebuild the index */
    if (full)
        reset_index(f);
    size_t from = f->nst;
    sop__ec_stripe s;
    while (find_next(f, &s)) {
        int rc = push_stripe(f, &s);
        if (rc)
            return rc;
    }
    /* the last stripes found must decode: a writer may be in the middle of
     * them (or died there); the file then ends before them */
    while (f->nst > from) {
        int rc = load_stripe(f, &f->st[f->nst - 1]);
        if (rc == 0)
            break;
        if (rc != -EIO)
            return rc;
        f->nst--;
        f->size = f->st[f->nst].off;
        f->pend = f->st[f->nst].phys;
    }
    f->scanned = 1;
    return full ? check_beyond(f) : f->damaged ? -EIO : 0;
}

int sop__ec_refresh(sop_file *f)
{
    int rc = reopen_absent(f, 0);
    return rc < 0 ? rc : scan(f);
}

/* Index of the stripe holding logical offset @off (< f->size). */
static size_t find_stripe(const sop_file *f, uint64_t off)
{
    size_t lo = 0, hi = f->nst;
    while (hi - lo > 1) {
        size_t mid = lo + (hi - lo) / 2;
        if (f->st[mid].off <= off)
            lo = mid;
        else
            hi = mid;
    }
    return lo;
}

/* ------------------------------------------------------------------ */
/* Appending                                                           */
/* ------------------------------------------------------------------ */

static uint32_t usable(const sop_file *f)
{
    uint32_t u = 0;
    for (uint32_t d = 0; d < f->v->n; d++)
        u += f->sh[d] && !f->failed[d];
    return u;
}

static void fail_drive(sop_file *f, uint32_t d)
{
    if (!f->failed[d]) {
        f->failed[d] = 1;
        atomic_fetch_add(&f->v->st_shard_write_errors, 1);
    }
}

/* Appends @n bytes as stripes at the end. f->mu held. */
static int append(sop_file *f, const uint8_t *buf, size_t n)
{
    sop__ec_vfs *v = f->v;
    uint32_t k = v->k, m = v->m;
    /* with fewer than k shard files the index cannot know the file's end:
     * nothing is written (not even to the drives at hand) */
    if (usable(f) < k)
        return -EIO;
    size_t smax = (size_t)k * SOP__EC_SHARD_MAX;
    size_t ns = (n + smax - 1) / smax;
    uint32_t last_len = (uint32_t)(n - (ns - 1) * smax);
    uint32_t last_sl = sop__ec_shard_len(last_len, k);
    size_t phys_total = (ns - 1) * (SOP__EC_HDR + SOP__EC_SHARD_MAX) + SOP__EC_HDR + last_sl;
    size_t par_total = ((ns - 1) * SOP__EC_SHARD_MAX + last_sl) * m;
    sop__ec_stripe *st = sop__malloc(ns * sizeof *st);
    uint8_t *par = sop__malloc(par_total);
    uint8_t *pad = sop__calloc(k, last_sl);
    uint8_t *out = sop__malloc(phys_total);
    int rc = -ENOMEM;
    if (!st || !par || !pad || !out)
        goto done;
    memcpy(pad, buf + (ns - 1) * smax, last_len);
    /* stripes and their parity */
    uint64_t phys = f->pend;
    for (size_t j = 0; j < ns; j++) {
        uint32_t len = j + 1 < ns ? (uint32_t)smax : last_len;
        uint32_t sl = sop__ec_shard_len(len, k);
        const uint8_t *src = j + 1 < ns ? buf + j * smax : pad;
        st[j] = (sop__ec_stripe){f->size + j * smax, phys, len, sop__crc32c(src, len, 0)};
        uint8_t *dp[SOP__EC_MAXN], *pp[SOP__EC_MAXN];
        for (uint32_t i = 0; i < k; i++)
            dp[i] = (uint8_t *)src + (size_t)i * sl;
        for (uint32_t i = 0; i < m; i++)
            pp[i] = par + (j * SOP__EC_SHARD_MAX) * m + (size_t)i * sl;
        sop__ec_encode(&v->codec, sl, dp, pp);
        phys += SOP__EC_HDR + sl;
    }
    /* one write per drive: its shard of every stripe, with headers */
    uint32_t wrote = 0;
    for (uint32_t d = 0; d < v->n; d++) {
        if (!f->sh[d] || f->failed[d])
            continue;
        uint8_t *p = out;
        for (size_t j = 0; j < ns; j++) {
            uint32_t sl = sop__ec_shard_len(st[j].len, k);
            const uint8_t *src = j + 1 < ns ? buf + j * smax : pad;
            const uint8_t *shard = d < k ? src + (size_t)d * sl
                                         : par + (j * SOP__EC_SHARD_MAX) * m + (size_t)(d - k) * sl;
            memcpy(p + SOP__EC_HDR, shard, sl);
            sop__ec_hdr_pack(v, p, d, &st[j], sop__crc32c(shard, sl, 0));
            p += SOP__EC_HDR + sl;
        }
        if (v->base->write(v->base, f->sh[d], out, phys_total, f->pend) != 0)
            fail_drive(f, d);
        else
            wrote++;
        SOP_KILL_POINT("ec:shard");
    }
    if (wrote < k) {
        /* fewer than k shards: the stripes do not exist (readers and the
         * next open end the file before them) */
        rc = -EIO;
        goto done;
    }
    atomic_fetch_add(&v->st_stripes_written, ns);
    if (wrote < v->n)
        atomic_fetch_add(&v->st_degraded_stripes, ns);
    rc = 0;
    for (size_t j = 0; j < ns && !rc; j++)
        rc = push_stripe(f, &st[j]);
done:
    sop__free(st);
    sop__free(par);
    sop__free(pad);
    sop__free(out);
    return rc;
}

/* Before the first append to a file without stripes that lacks shard
 * files (its creator died between them, or a drive folder was missing
 * then): creates the missing ones, so that the file is written on every
 * drive it can be (and at all when fewer than k were made). Only when
 * every shard file present is empty: then nothing can be written over.
 * Appends are made under the engine's commit lock, as the creation was:
 * no creation is in progress. f->mu held. */
static int complete_creation(sop_file *f)
{
    sop__ec_vfs *v = f->v;
    uint8_t had[SOP__EC_MAXN];
    uint32_t absent = 0;
    for (uint32_t d = 0; d < v->n; d++) {
        had[d] = f->sh[d] != NULL;
        uint64_t sz;
        if (f->sh[d] && (v->base->size(v->base, f->sh[d], &sz) != 0 || sz != 0))
            return 0; /* bytes of some stripe: not a file being created */
        absent += !f->sh[d] && !f->failed[d];
    }
    if (!absent)
        return 0;
    int rc = reopen_absent(f, 1);
    if (rc <= 0)
        return rc;
    f->rescan = 0; /* they are empty: the (empty) index stands */
    /* their names must last as long as the stripes written to them */
    for (uint32_t d = 0; d < v->n; d++)
        if (!had[d] && f->sh[d] && v->base->sync_dir(v->base, v->drives[d]) != 0)
            fail_drive(f, d);
    return 0;
}

/* ------------------------------------------------------------------ */
/* The VFS table                                                       */
/* ------------------------------------------------------------------ */

static sop_file *wrap(sop_file *b)
{
    sop_file *f = sop__calloc(1, sizeof *f);
    if (f)
        f->base = b;
    return f;
}

int sop__ec_file_open(sop__ec_vfs *v, const char *name, int flags, sop_file **out)
{
    *out = NULL;
    sop_file *f = sop__calloc(1, sizeof *f);
    if (!f)
        return -ENOMEM;
    f->ec = 1;
    f->v = v;
    f->c_phys = UINT64_MAX;
    pthread_mutex_init(&f->mu, NULL);
    f->name = sop__strdup(name);
    f->sh = sop__calloc(v->n, sizeof *f->sh);
    f->failed = sop__calloc(v->n, 1);
    f->oflags = flags & (SOP_O_READ | SOP_O_RDWR);
    if (!f->name || !f->sh || !f->failed) {
        sop__ec_file_close(v, f);
        return -ENOMEM;
    }
    uint32_t opened = 0, missing = 0;
    int err = 0;
    for (uint32_t d = 0; d < v->n; d++) {
        if (v->down[d]) {
            f->failed[d] = 1;
            continue;
        }
        char *p = sop__ec_drive_path(v, d, name);
        if (!p) {
            sop__ec_file_close(v, f);
            return -ENOMEM;
        }
        int rc = v->base->open(v->base, p, flags, v->mode, &f->sh[d]);
        sop__free(p);
        if (rc == 0)
            opened++;
        else if (rc == -ENOENT)
            missing++;
        else if (!err)
            err = rc;
        if (rc) {
            f->sh[d] = NULL;
            /* a shard file that does not exist may be about to (another
             * process is creating the file) or come back (repair): it is
             * opened when it appears; one that cannot be opened is failed */
            f->failed[d] = rc != -ENOENT;
        }
        if (rc == -EEXIST) {
            sop__ec_file_close(v, f);
            return rc;
        }
    }
    if (!opened || ((flags & SOP_O_CREATE) && opened < v->k)) {
        sop__ec_file_close(v, f);
        return !opened && !err ? -ENOENT : err ? err : -EIO;
    }
    *out = f;
    return 0;
}

int sop__ec_file_close(sop__ec_vfs *v, sop_file *f)
{
    int rc = 0;
    for (uint32_t d = 0; f->sh && d < v->n; d++)
        if (f->sh[d]) {
            int r = v->base->close(v->base, f->sh[d]);
            if (r && !rc)
                rc = r;
        }
    pthread_mutex_destroy(&f->mu);
    sop__free(f->sh);
    sop__free(f->failed);
    sop__free(f->name);
    sop__free(f->st);
    sop__free(f->c_data);
    sop__free(f);
    return rc;
}

static int ec_open(sop_vfs *vfs, const char *path, int flags, unsigned mode, sop_file **out)
{
    sop__ec_vfs *v = EC(vfs);
    if (!out)
        return -EINVAL;
    *out = NULL;
    const char *name = ec_name(v, path);
    if (name) {
        int rc = sop__ec_setup(v, NULL);
        return rc ? rc : sop__ec_file_open(v, name, flags, out);
    }
    sop_file *b;
    int rc = v->base->open(v->base, path, flags, mode, &b);
    if (rc)
        return rc;
    if (!(*out = wrap(b))) {
        v->base->close(v->base, b);
        return -ENOMEM;
    }
    return 0;
}

static int ec_close(sop_vfs *vfs, sop_file *f)
{
    sop__ec_vfs *v = EC(vfs);
    if (!f)
        return 0;
    if (f->ec)
        return sop__ec_file_close(v, f);
    int rc = v->base->close(v->base, f->base);
    sop__free(f);
    return rc;
}

static int ec_read(sop_vfs *vfs, sop_file *f, void *buf, size_t n, uint64_t off, size_t *got)
{
    sop__ec_vfs *v = EC(vfs);
    if (!f->ec)
        return v->base->read(v->base, f->base, buf, n, off, got);
    size_t done = 0;
    int rc = 0;
    pthread_mutex_lock(&f->mu);
    if (!f->scanned || off + n > f->size)
        rc = sop__ec_refresh(f);
    if (rc == -EIO && f->damaged && off + n <= f->size)
        rc = 0; /* the stripes before the damage read as usual */
    while (!rc && done < n && off + done < f->size) {
        uint64_t pos = off + done;
        sop__ec_stripe s = f->st[find_stripe(f, pos)];
        uint32_t a = (uint32_t)(pos - s.off);
        uint32_t b = n - done < (size_t)(s.len - a) ? a + (uint32_t)(n - done) : s.len;
        rc = read_part(f, &s, a, b, (uint8_t *)buf + done);
        if (!rc)
            done += b - a;
    }
    pthread_mutex_unlock(&f->mu);
    if (got)
        *got = rc ? 0 : done;
    return rc;
}

static int ec_write(sop_vfs *vfs, sop_file *f, const void *buf, size_t n, uint64_t off)
{
    sop__ec_vfs *v = EC(vfs);
    if (!f->ec)
        return v->base->write(v->base, f->base, buf, n, off);
    pthread_mutex_lock(&f->mu);
    /* the shard files that appeared since are written too (and their
     * stripes counted before the end is trusted) */
    int rc = reopen_absent(f, 0);
    if (rc > 0)
        rc = 0;
    if (!rc && (!f->scanned || f->rescan || off != f->size))
        rc = scan(f);
    if (!rc && off != f->size)
        rc = -EINVAL; /* append-only */
    if (!rc && n && !f->nst)
        rc = complete_creation(f);
    if (!rc && n)
        rc = append(f, buf, n);
    pthread_mutex_unlock(&f->mu);
    return rc;
}

typedef struct sync_job {
    sop_vfs *base;
    sop_file *f;
    int rc;
} sync_job;

static void *sync_one(void *arg)
{
    sync_job *j = arg;
    j->rc = j->base->sync(j->base, j->f);
    return NULL;
}

/* Syncs every drive's shard file at once, one thread per drive: on one
 * file system the journal commits concurrent syncs together, on separate
 * disks they overlap (measured: sop-bench ec fillsync). */
static int ec_sync(sop_vfs *vfs, sop_file *f)
{
    sop__ec_vfs *v = EC(vfs);
    if (!f->ec)
        return v->base->sync(v->base, f->base);
    pthread_mutex_lock(&f->mu);
    sync_job jobs[SOP__EC_MAXN];
    pthread_t th[SOP__EC_MAXN];
    uint8_t started[SOP__EC_MAXN] = {0};
    for (uint32_t d = 0; d < v->n; d++) {
        jobs[d] = (sync_job){v->base, f->sh[d], 0};
        if (f->sh[d] && !f->failed[d] && d + 1 < v->n)
            started[d] = pthread_create(&th[d], NULL, sync_one, &jobs[d]) == 0;
    }
    for (uint32_t d = 0; d < v->n; d++) {
        if (!f->sh[d] || f->failed[d])
            continue;
        if (started[d])
            pthread_join(th[d], NULL);
        else
            sync_one(&jobs[d]);
        if (jobs[d].rc)
            fail_drive(f, d);
    }
    int rc = usable(f) < v->k ? -EIO : 0;
    pthread_mutex_unlock(&f->mu);
    return rc;
}

static int ec_size(sop_vfs *vfs, sop_file *f, uint64_t *size)
{
    sop__ec_vfs *v = EC(vfs);
    if (!f->ec)
        return v->base->size(v->base, f->base, size);
    pthread_mutex_lock(&f->mu);
    int rc = sop__ec_refresh(f);
    *size = f->size;
    pthread_mutex_unlock(&f->mu);
    return rc;
}

static int ec_truncate(sop_vfs *vfs, sop_file *f, uint64_t len)
{
    sop__ec_vfs *v = EC(vfs);
    if (!f->ec)
        return v->base->truncate(v->base, f->base, len);
    pthread_mutex_lock(&f->mu);
    int rc = sop__ec_refresh(f);
    uint8_t *keep = NULL;
    uint32_t nkeep = 0;
    if (!rc && len > f->size)
        rc = -EINVAL; /* segments never grow by truncation */
    if (rc || len == f->size)
        goto out;
    if (usable(f) < v->k) {
        rc = -EIO; /* it could not be re-appended: cut nothing */
        goto out;
    }
    size_t j = find_stripe(f, len);
    sop__ec_stripe s = f->st[j];
    nkeep = (uint32_t)(len - s.off);
    if (nkeep) {
        /* the stripe holding @len goes too; its first bytes come back as a
         * new stripe in its place */
        rc = load_stripe(f, &s);
        if (!rc && !(keep = sop__memdup(f->c_data, nkeep)))
            rc = -ENOMEM;
        if (rc)
            goto out;
    }
    for (uint32_t d = 0; d < v->n; d++)
        if (f->sh[d] && v->base->truncate(v->base, f->sh[d], s.phys) != 0)
            fail_drive(f, d);
    f->nst = j;
    f->size = s.off;
    f->pend = s.phys;
    f->c_phys = UINT64_MAX;
    if (usable(f) < v->k)
        rc = -EIO;
    else if (nkeep)
        rc = append(f, keep, nkeep);
out:
    sop__free(keep);
    pthread_mutex_unlock(&f->mu);
    return rc;
}

static int ec_lock(sop_vfs *vfs, sop_file *f, uint64_t off, uint64_t len, int mode, int wait)
{
    sop__ec_vfs *v = EC(vfs);
    if (f->ec)
        return -EINVAL; /* locks live in LOCK, never in a segment */
    return v->base->lock(v->base, f->base, off, len, mode, wait);
}

static int ec_remove(sop_vfs *vfs, const char *path)
{
    sop__ec_vfs *v = EC(vfs);
    const char *name = ec_name(v, path);
    if (!name)
        return v->base->remove(v->base, path);
    int removed = 0, err = 0;
    for (uint32_t d = 0; d < v->n; d++) {
        char *p = sop__ec_drive_path(v, d, name);
        if (!p)
            return -ENOMEM;
        int rc = v->base->remove(v->base, p);
        sop__free(p);
        if (rc == 0)
            removed++;
        else if (rc != -ENOENT && !v->down[d] && !err)
            err = rc;
    }
    return removed ? 0 : err ? err : -ENOENT;
}

static int ec_rename(sop_vfs *vfs, const char *from, const char *to)
{
    sop__ec_vfs *v = EC(vfs);
    const char *a = ec_name(v, from), *b = ec_name(v, to);
    if (!a && !b)
        return v->base->rename(v->base, from, to);
    if (!a || !b)
        return -EXDEV;
    int moved = 0, err = 0;
    for (uint32_t d = 0; d < v->n; d++) {
        char *pa = sop__ec_drive_path(v, d, a), *pb = sop__ec_drive_path(v, d, b);
        int rc = pa && pb ? v->base->rename(v->base, pa, pb) : -ENOMEM;
        sop__free(pa);
        sop__free(pb);
        if (rc == 0)
            moved++;
        else if (rc != -ENOENT && !v->down[d] && !err)
            err = rc;
    }
    return moved ? 0 : err ? err : -ENOENT;
}

static int ec_mkdir(sop_vfs *vfs, const char *path, unsigned mode)
{
    return EC(vfs)->base->mkdir(EC(vfs)->base, path, mode);
}

static int ec_sync_dir(sop_vfs *vfs, const char *path)
{
    sop__ec_vfs *v = EC(vfs);
    int rc = v->base->sync_dir(v->base, path);
    if (rc || strcmp(path, v->dir) != 0)
        return rc;
    uint32_t bad = 0;
    for (uint32_t d = 0; d < v->n; d++)
        if (v->down[d] || v->base->sync_dir(v->base, v->drives[d]) != 0)
            bad++;
    return bad > v->m ? -EIO : 0;
}

typedef struct names {
    char **a;
    size_t n, cap;
    int segs_only;
} names;

static int add_name(const char *name, void *arg)
{
    names *s = arg;
    if (s->segs_only && !sop__ec_is_seg(name))
        return 0;
    char **a = sop__grow(s->a, &s->cap, s->n + 1, sizeof *a, 32);
    if (!a)
        return -ENOMEM;
    s->a = a;
    if (!(a[s->n] = sop__strdup(name)))
        return -ENOMEM;
    s->n++;
    return 0;
}

static int cmp_name(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int ec_list(sop_vfs *vfs, const char *dir, int (*fn)(const char *name, void *arg), void *arg)
{
    sop__ec_vfs *v = EC(vfs);
    if (!dir || strcmp(dir, v->dir) != 0)
        return v->base->list(v->base, dir, fn, arg);
    int rc = sop__ec_setup(v, NULL);
    if (rc)
        return rc;
    names s = {0};
    rc = v->base->list(v->base, dir, add_name, &s);
    s.segs_only = 1;
    for (uint32_t d = 0; d < v->n && !rc; d++)
        if (!v->down[d]) {
            int r = v->base->list(v->base, v->drives[d], add_name, &s);
            if (r == -ENOMEM)
                rc = r; /* a drive that cannot be listed has no files to add */
        }
    if (!rc && s.n)
        qsort(s.a, s.n, sizeof *s.a, cmp_name);
    for (size_t i = 0; i < s.n; i++)
        if (!rc && (i == 0 || strcmp(s.a[i], s.a[i - 1]) != 0))
            rc = fn(s.a[i], arg);
    for (size_t i = 0; i < s.n; i++)
        sop__free(s.a[i]);
    sop__free(s.a);
    return rc;
}

static int ec_shm_map(sop_vfs *vfs, sop_file *f, uint64_t off, size_t len, void **addr)
{
    sop__ec_vfs *v = EC(vfs);
    return f->ec ? -EINVAL : v->base->shm_map(v->base, f->base, off, len, addr);
}

static int ec_shm_unmap(sop_vfs *vfs, void *addr, size_t len)
{
    return EC(vfs)->base->shm_unmap(EC(vfs)->base, addr, len);
}

int sop__vfs_ec_new(sop_vfs *base, const char *dir, const char *const *drives, uint32_t ndrives,
                    uint32_t parity, unsigned mode, const struct sop_db *db, sop_vfs **out)
{
    *out = NULL;
    if (!base || !dir || !drives || ndrives < 2 || !parity || parity >= ndrives ||
        ndrives > SOP__EC_MAXN)
        return -EINVAL;
    sop__ec_vfs *v = sop__calloc(1, sizeof *v);
    if (!v)
        return -ENOMEM;
    pthread_mutex_init(&v->mu, NULL);
    v->base = base;
    v->n = ndrives;
    v->m = parity;
    v->k = ndrives - parity;
    v->mode = mode ? mode : 0600;
    v->dir = sop__strdup(dir);
    v->drives = sop__calloc(ndrives, sizeof *v->drives);
    int rc = v->dir && v->drives ? 0 : -ENOMEM;
    for (uint32_t d = 0; !rc && d < ndrives; d++) {
        if (!drives[d] || !*drives[d])
            rc = sop__err(db, -EINVAL, "drive folder %u has an empty path", d);
        else if (!(v->drives[d] = sop__strdup(drives[d])))
            rc = -ENOMEM;
    }
    if (!rc) {
        v->dirlen = strlen(v->dir);
        while (v->dirlen > 1 && v->dir[v->dirlen - 1] == '/')
            v->dir[--v->dirlen] = 0;
        rc = sop__ec_codec_init(&v->codec, (int)v->k, (int)v->m);
    }
    if (!rc)
        rc = sop__ec_drives_open(v, db);
    if (rc) {
        sop__vfs_ec_free(&v->vfs);
        return rc;
    }
    v->vfs = (sop_vfs){
        .version = 3,
        .ctx = v,
        .open = ec_open,
        .close = ec_close,
        .read = ec_read,
        .write = ec_write,
        .sync = ec_sync,
        .size = ec_size,
        .truncate = ec_truncate,
        .lock = ec_lock,
        .remove = ec_remove,
        .rename = ec_rename,
        .mkdir = ec_mkdir,
        .sync_dir = ec_sync_dir,
        .list = ec_list,
        .shm_map = base->shm_map ? ec_shm_map : NULL,
        .shm_unmap = base->shm_map ? ec_shm_unmap : NULL,
        .map = NULL, /* no mapped reads: shards are checked and decoded */
        .unmap = NULL,
        .flags = SOP_VFS_APPEND_ONLY,
    };
    *out = &v->vfs;
    return 0;
}

void sop__vfs_ec_free(sop_vfs *vfs)
{
    if (!vfs)
        return;
    sop__ec_vfs *v = (sop__ec_vfs *)vfs;
    for (uint32_t d = 0; v->drives && d < v->n; d++)
        sop__free(v->drives[d]);
    sop__free(v->drives);
    sop__free(v->dir);
    sop__ec_codec_free(&v->codec);
    pthread_mutex_destroy(&v->mu);
    sop__free(v);
}
