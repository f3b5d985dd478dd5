/* ec_drive.c - the drive folders of the erasure-coding layer: created when
 * missing, and checked against their identity files (format in ec_vfs.h)
 * so that drives given in the wrong order, with another k/m, or from
 * another database are refused with SOP_EMISMATCH. A folder without an
 * identity file is a new (or replaced) drive: it gets one. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "bytes.h"
#include "crc32c.h"
#include "ec_vfs.h"
#include "err.h"
#include "mem.h"
#include "vfs_file.h"

#define NO_DRIVE 255 /* drive index of the database directory's copy */

static char *join(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    char *p = sop__malloc(la + lb + 2);
    if (p) {
        memcpy(p, a, la);
        p[la] = '/';
        memcpy(p + la + 1, b, lb + 1);
    }
    return p;
}

char *sop__ec_drive_path(const sop__ec_vfs *v, uint32_t d, const char *name)
{
    return join(v->drives[d], name);
}

typedef struct ident {
    uint8_t id[16];
    uint32_t idx, k, m;
} ident;

static void id_pack(uint8_t *b, const uint8_t id[16], uint32_t idx, uint32_t k, uint32_t m)
{
    memset(b, 0, SOP__EC_ID_BYTES);
    sop__put32(b, SOP__EC_ID_MAGIC);
    sop__put32(b + 4, 1);
    memcpy(b + 8, id, 16);
    b[24] = (uint8_t)idx;
    b[25] = (uint8_t)k;
    b[26] = (uint8_t)m;
    sop__put32(b + 60, sop__crc32c(b, 60, 0));
}

/* 0 (read into *out), -ENOENT (no file), SOP_ECORRUPT (short or bad: a
 * torn creation), or an I/O error. */
static int id_read(sop__ec_vfs *v, const char *dir, const char *name, ident *out)
{
    char *p = join(dir, name);
    if (!p)
        return -ENOMEM;
    uint8_t b[SOP__EC_ID_BYTES];
    size_t got = 0;
    int rc = sop__vfs_read_head(v->base, p, b, sizeof b, &got);
    sop__free(p);
    if (rc)
        return rc;
    if (got != sizeof b || sop__get32(b) != SOP__EC_ID_MAGIC || sop__get32(b + 4) != 1 ||
        sop__crc32c(b, 60, 0) != sop__get32(b + 60))
        return SOP_ECORRUPT;
    memcpy(out->id, b + 8, 16);
    out->idx = b[24];
    out->k = b[25];
    out->m = b[26];
    return 0;
}

/* Writes an identity file whole: a temporary file, synced, renamed over
 * the name, directory synced. Two processes writing the same identity at
 * once write the same bytes. */
static int id_write(sop__ec_vfs *v, const char *dir, const char *name, uint32_t idx)
{
    char tmpname[64];
    snprintf(tmpname, sizeof tmpname, ".%s.%ld.tmp", name, (long)getpid());
    char *tmp = join(dir, tmpname), *dst = join(dir, name);
    int rc = -ENOMEM;
    if (!tmp || !dst)
        goto out;
    uint8_t b[SOP__EC_ID_BYTES];
    id_pack(b, v->id, idx, v->k, v->m);
    sop_file *f;
    rc = v->base->open(v->base, tmp, SOP_O_RDWR | SOP_O_CREATE | SOP_O_TRUNC, v->mode, &f);
    if (rc)
        goto out;
    rc = v->base->write(v->base, f, b, sizeof b, 0);
    if (!rc)
        rc = v->base->sync(v->base, f);
    v->base->close(v->base, f);
    if (!rc)
        rc = v->base->rename(v->base, tmp, dst);
    if (rc)
        v->base->remove(v->base, tmp);
    else
        rc = v->base->sync_dir(v->base, dir);
out:
    sop__free(tmp);
    sop__free(dst);
    return rc;
}

static void new_id(uint8_t id[16])
{
    if (getrandom(id, 16, 0) == 16)
        return;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    uint64_t x = ((uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec) ^ ((uint64_t)getpid() << 32);
    for (int i = 0; i < 2; i++) { /* splitmix64 */
        uint64_t z = (x += 0x9E3779B97F4A7C15ull);
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
        sop__put64(id + 8 * i, z ^ (z >> 31));
    }
}

static int has_seg(const char *name, void *arg)
{
    (void)arg;
    return sop__ec_is_seg(name) ? 1 : 0;
}

static void set_id(sop__ec_vfs *v, const uint8_t id[16])
{
    memcpy(v->id, id, 16);
    v->tag = sop__get64(id);
    v->have_id = 1;
}

/* Checks every drive folder (creating it when missing) and the database
 * directory's copy of the id; with @create, makes a new id when there is
 * none anywhere. v->mu held. */
static int check(sop__ec_vfs *v, const sop_db *db, int create)
{
    ident ids[SOP__EC_MAXN];
    int first = -1;
    for (uint32_t d = 0; d < v->n; d++) {
        if (v->down[d])
            continue;
        int rc = v->base->mkdir(v->base, v->drives[d], 0700);
        if (rc && rc != -EEXIST) {
            v->down[d] = 1; /* an unusable folder is a failed drive */
            continue;
        }
        rc = id_read(v, v->drives[d], SOP__EC_ID_NAME, &ids[d]);
        v->fresh[d] = rc == -ENOENT || rc == SOP_ECORRUPT;
        if (v->fresh[d])
            continue; /* a new or replaced drive (or its identity's creation was torn) */
        if (rc == -ENOMEM)
            return rc;
        if (rc) {
            v->down[d] = 1;
            continue;
        }
        if (ids[d].k != v->k || ids[d].m != v->m)
            return sop__err(db, SOP_EMISMATCH,
                            "drive folder %s holds shards of a %u+%u erasure code; the options "
                            "give %u data + %u parity drives",
                            v->drives[d], ids[d].k, ids[d].m, v->k, v->m);
        if (ids[d].idx != d)
            return sop__err(db, SOP_EMISMATCH,
                            "drive folder %s is drive %u of this database but is given as drive "
                            "%u: the drives are in the wrong order",
                            v->drives[d], ids[d].idx, d);
        if (first >= 0 && memcmp(ids[d].id, ids[first].id, 16) != 0)
            return sop__err(db, SOP_EMISMATCH,
                            "drive folders %s and %s belong to different databases",
                            v->drives[first], v->drives[d]);
        if (first < 0)
            first = (int)d;
    }
    ident dbid;
    int made = 0;
    int rc = id_read(v, v->dir, SOP__EC_DBID_NAME, &dbid);
    if (rc == 0) {
        if (dbid.k != v->k || dbid.m != v->m)
            return sop__err(db, SOP_EMISMATCH,
                            "database %s uses a %u+%u erasure code; the options give %u data + %u "
                            "parity drives",
                            v->dir, dbid.k, dbid.m, v->k, v->m);
        if (first >= 0 && memcmp(ids[first].id, dbid.id, 16) != 0)
            return sop__err(db, SOP_EMISMATCH, "drive folder %s belongs to another database",
                            v->drives[first]);
        set_id(v, dbid.id);
    } else if (rc == -ENOENT || rc == -ENOTDIR) {
        if (first >= 0)
            return sop__err(db, SOP_EMISMATCH,
                            "drive folder %s holds shards of another database (%s has no %s)",
                            v->drives[first], v->dir, SOP__EC_DBID_NAME);
        if (!create)
            return 0; /* a new database: the id is made at its first segment */
        /* a database made without erasure coding cannot be read through it */
        rc = v->base->list(v->base, v->dir, has_seg, NULL);
        if (rc == 1)
            return sop__err(db, SOP_EMISMATCH,
                            "database %s has segments of its own: it was created without "
                            "erasure coding",
                            v->dir);
        if (rc)
            return sop__err(db, rc, "cannot list %s", v->dir);
        uint8_t id[16];
        new_id(id);
        set_id(v, id);
        /* the database's copy first: drives with an id the directory lacks
         * would be another database's */
        rc = id_write(v, v->dir, SOP__EC_DBID_NAME, NO_DRIVE);
        if (rc) {
            v->have_id = 0;
            return sop__err(db, rc, "cannot write %s/%s", v->dir, SOP__EC_DBID_NAME);
        }
        made = 1;
    } else {
        return sop__err(db, rc, "cannot read %s/%s", v->dir, SOP__EC_DBID_NAME);
    }
    /* a new database's drives get their identity now; a new drive of an
     * existing database only once sop_db_repair() has filled it */
    if (!made)
        return 0;
    for (uint32_t d = 0; d < v->n; d++)
        if (!v->down[d] && v->fresh[d]) {
            if (sop__ec_write_ident(v, d) != 0)
                v->down[d] = 1;
            else
                v->fresh[d] = 0;
        }
    return 0;
}

int sop__ec_write_ident(sop__ec_vfs *v, uint32_t d)
{
    return id_write(v, v->drives[d], SOP__EC_ID_NAME, d);
}

static int count_down(const sop__ec_vfs *v, const sop_db *db)
{
    uint32_t down = 0, fresh = 0, last = 0;
    for (uint32_t d = 0; d < v->n; d++) {
        if (v->down[d]) {
            down++;
            last = d;
        } else if (v->have_id && v->fresh[d]) {
            fresh++; /* an existing database's drive that holds none of its shards yet */
        }
    }
    if (down > v->m)
        return sop__err(db, -EIO,
                        "only %u of %u drive folders are usable (%s is not), %u are needed",
                        v->n - down, v->n, v->drives[last], v->k);
    if (down + fresh > v->m)
        return sop__err(db, -EIO,
                        "only %u of %u drive folders hold this database's shards (%u unusable, "
                        "%u new or replaced), %u are needed",
                        v->n - down - fresh, v->n, down, fresh, v->k);
    return 0;
}

int sop__ec_drives_open(sop__ec_vfs *v, const sop_db *db)
{
    pthread_mutex_lock(&v->mu);
    int rc = check(v, db, 0);
    pthread_mutex_unlock(&v->mu);
    return rc ? rc : count_down(v, db);
}

int sop__ec_setup(sop__ec_vfs *v, const sop_db *db)
{
    pthread_mutex_lock(&v->mu);
    int rc = v->have_id ? 0 : check(v, db, 1);
    pthread_mutex_unlock(&v->mu);
    return rc;
}
