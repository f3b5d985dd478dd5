/*
 * vfs_mirror.c - the database directory mirrored to a replica folder,
 * active/passive, as a stacking VFS (docs/design/replication.md).
 *
 * Folder 0 is the database directory, folder 1 the replica folder; a path
 * under the database directory names the same relative path in both.
 *  - Every write, truncate, sync, create, remove, rename, mkdir and
 *    sync_dir goes to the active folder, then to the passive one when it
 *    is in sync; reads, size and list go to the active one only.
 *  - An error of the failover class (io_class()) on the active folder while
 *    the passive is in sync: the passive becomes active, the call is
 *    retried there and succeeds. Any error on the passive: it is marked
 *    stale and the call succeeds. Both: the error is returned.
 *  - While the passive is stale, the first write below the recorded start
 *    of each segment is preceded by a durable update of the stale table in
 *    replica.state (write-ahead), so a later reinstatement copies only
 *    from there (mirror_copy.c).
 *  - I/O holds a read lock of @rw; state changes take it for writing (and,
 *    across processes, byte 8 of LOCK) and persist replica.state
 *    (mirror_state.c) before the call returns.
 *  - LOCK lives in one folder only (the database directory, or the replica
 *    folder when the database directory cannot be reached at open): it
 *    holds no data. When the engine takes its open lock exclusively (the
 *    first opener, alone, before recovery), the layer reconciles an in-sync
 *    passive with the active from the last checkpoint on (writes that
 *    reached one folder before a crash), or reinstates a stale one.
 *  - map() is not offered: after a failover a mapping of the old folder's
 *    file would keep being read.
 */
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mem.h"
#include "mirror.h"
#include "shared.h"
#include "vfs_stack.h"

#define K_DATA 0 /* a file of the database directory, in both folders */
#define K_LOCK 1 /* LOCK: one folder */
#define K_OUT 2  /* not under the database directory: passed through */

#define XLOCK_BYTE 8 /* byte of LOCK serialising state changes between processes */
#define NO_OFF UINT64_MAX

struct sop_file {
    sop_file *f[2];
    int kind, flags;
    char *rel;        /* path under the directory, from its '/' */
    const char *name; /* last component of rel */
    atomic_uint_fast64_t unsynced; /* lowest offset written since the last sync */
    int reopened;     /* its passive handle was opened by the running reinstatement */
    struct sop_file *next, *prev;
};

struct sop__mirror {
    sop_vfs vfs;
    sop_vfs *base;
    char *dir[2];
    size_t len0;
    unsigned mode;
    pthread_rwlock_t rw;
    sop__mstate st;  /* under rw */
    int pending;     /* st not persisted yet (the folders do not exist yet) */
    int lockdir;     /* folder of LOCK */
    int open_done;   /* the exclusive-open reconcile ran */
    sop_file *xlock; /* own handle of LOCK for XLOCK_BYTE */
    pthread_mutex_t fmu;
    sop_file *files; /* open K_DATA files */
    pthread_mutex_t cmu;
    atomic_int catching; /* a reinstatement is running: record writes in since */
    sop__mstate since;
    atomic_int reinstating;
    atomic_uint_fast64_t failovers;
    sop__mcopy_stat last;
    /* several processes (sop__mirror_share) */
    _Atomic(atomic_uint_fast64_t *) pub; /* generation published to all of them */
    int (*tell)(void *, uint64_t);        /* and how to publish one (NULL: shared memory) */
    void *tell_arg;
    atomic_uint_fast64_t pub_seen; /* the highest published generation acted on */
    atomic_uint_fast64_t untold;   /* a failover of this process not told yet (0: none) */
    atomic_int broken;             /* a failover that could not be persisted */
};

/* ---- messages ---- */

static _Thread_local char g_why[512];

const char *sop__mirror_why(void) { return g_why; }

static int why(int rc, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int why(int rc, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(g_why, sizeof g_why, fmt, ap);
    va_end(ap);
    return rc;
}

/* The errors that mean "this folder's storage is failing": fail over. The
 * others (-ENOENT, -EEXIST, -EINVAL, -EACCES, -ENOMEM, -EFBIG, ...) are the
 * same in both folders, or not the storage's fault, and are returned. */
static int io_class(int rc)
{
    switch (-rc) {
    case EIO: case ENOSPC: case EDQUOT: case EROFS: case ENODEV: case ENXIO: case ESTALE:
    case ETIMEDOUT: case ENOTCONN:
#ifdef ENOMEDIUM
    case ENOMEDIUM:
#endif
#ifdef EREMOTEIO
    case EREMOTEIO:
#endif
        return 1;
    default:
        return 0;
    }
}

static sop__mirror *M(sop_vfs *v) { return v->ctx; }

sop__mirror *sop__mirror_of(sop_vfs *vfs) { return vfs ? vfs->ctx : NULL; }

/* ---- paths ---- */

/* The part of @path under the database directory ("" or "/..."), or NULL. */
static const char *under(sop__mirror *m, const char *path)
{
    if (!path || strncmp(path, m->dir[0], m->len0) != 0)
        return NULL;
    const char *r = path + m->len0;
    if (*r != 0 && *r != '/')
        return NULL;
    while (*r == '/' && r[1] == '/')
        r++;
    return r[0] == '/' && r[1] == 0 ? r + 1 : r; /* "dir/" is the directory itself */
}

static int join(sop__mirror *m, int i, const char *rel, char *buf, size_t cap)
{
    int n = snprintf(buf, cap, "%s%s", m->dir[i], rel);
    return n < 0 || (size_t)n >= cap ? -ENAMETOOLONG : 0;
}

static const char *leaf(const char *rel)
{
    const char *s = strrchr(rel, '/');
    return s ? s + 1 : rel;
}

/* ---- state changes ---- */

static int persist_one(sop__mirror *m, int i, const sop__mstate *st)
{
    return sop__mstate_write(m->base, m->dir[i], i, st, m->mode);
}

/* Writes @st to the active folder (required), then the other (required
 * when in sync, else best effort: a stale folder learns it is stale). */
static int persist(sop__mirror *m, const sop__mstate *st, int *passive_rc)
{
    int rc = persist_one(m, st->active, st);
    if (rc)
        return rc;
    int prc = persist_one(m, 1 - st->active, st);
    if (passive_rc)
        *passive_rc = st->insync ? prc : 0;
    return 0;
}

static void xlock(sop__mirror *m, int mode)
{
    if (!m->xlock && mode != SOP_LOCK_UN) {
        char p[4096];
        if (join(m, m->lockdir, "/LOCK", p, sizeof p) ||
            m->base->open(m->base, p, SOP_O_RDWR, 0, &m->xlock))
            m->xlock = NULL; /* no LOCK yet: alone */
    }
    if (m->xlock)
        m->base->lock(m->base, m->xlock, XLOCK_BYTE, 1, mode, 1);
}

/* Makes generation @gen (persisted) known to the other processes: 0, or
 * the error of the tell callback (clustered mode: Redis). */
static int publish(sop__mirror *m, uint64_t gen)
{
    atomic_uint_fast64_t *pub = atomic_load(&m->pub);
    if (!pub)
        return 0;
    if (m->tell) {
        int rc = m->tell(m->tell_arg, gen);
        if (rc)
            return rc;
    }
    sop__atomic_max(pub, gen);
    sop__atomic_max(&m->pub_seen, gen);
    return 0;
}

/* Adds to a stale table what the folder going stale may lack besides the
 * failed call (@mf from @off): every open segment's unsynced range.
 * Returns 1 when the table changed. */
static int table_from_open_files(sop__mirror *m, sop__mstate *st, sop_file *mf, uint64_t off)
{
    int changed = 0;
    pthread_mutex_lock(&m->fmu);
    for (sop_file *f = m->files; f; f = f->next) {
        uint64_t u = atomic_load(&f->unsynced);
        if (u != NO_OFF && sop__mstate_is_seg(f->name))
            changed |= sop__mstate_note(st, f->name, u);
    }
    pthread_mutex_unlock(&m->fmu);
    if (mf && off != NO_OFF && sop__mstate_is_seg(mf->name))
        changed |= sop__mstate_note(st, mf->name, off);
    return changed;
}

/* wrlock held: opens the handle of folder @p for every open file that has
 * none (@mark: remember which, for open_passive_undo). 0 or the first
 * error. */
static int open_passive(sop__mirror *m, int p, int mark)
{
    int rc = 0;
    pthread_mutex_lock(&m->fmu);
    for (sop_file *f = m->files; f && !rc; f = f->next) {
        if (f->f[p])
            continue;
        char path[4096];
        rc = join(m, p, f->rel, path, sizeof path);
        if (!rc)
            rc = m->base->open(m->base, path, f->flags & (SOP_O_READ | SOP_O_RDWR), 0, &f->f[p]);
        if (rc) {
            f->f[p] = NULL;
            why(rc, "cannot open %s", path);
        } else {
            f->reopened = mark;
        }
    }
    pthread_mutex_unlock(&m->fmu);
    return rc;
}

/* wrlock held, XLOCK_BYTE held: adopts a newer state another process
 * persisted (it failed over, marked a folder stale, or reinstated one). */
static void refresh(sop__mirror *m)
{
    int was = m->st.insync;
    uint64_t gen = m->st.gen;
    for (int i = 0; i < 2; i++) {
        sop__mstate s;
        if (sop__mstate_read(m->base, m->dir[i], i, &s) == 0 && s.gen > m->st.gen)
            m->st = s;
    }
    if (m->st.gen == gen)
        return;
    if (was && !m->st.insync) {
        /* what this process wrote to the folder now stale without syncing
         * it yet may never reach its disk: into the table first, as at a
         * failover of its own */
        sop__mstate n = m->st;
        if (table_from_open_files(m, &n, NULL, NO_OFF)) {
            n.gen++;
            if (persist(m, &n, NULL) == 0) {
                m->st = n;
                publish(m, n.gen);
            }
        }
    } else if (!was && m->st.insync) {
        /* reinstated by another: the files opened meanwhile get their
         * handle there (one that cannot be opened marks it stale again at
         * its first write) */
        open_passive(m, 1 - m->st.active, 0);
    }
}

static void begin_change(sop__mirror *m)
{
    pthread_rwlock_wrlock(&m->rw);
    xlock(m, SOP_LOCK_EX);
    refresh(m);
}

static void end_change(sop__mirror *m)
{
    xlock(m, SOP_LOCK_UN);
    pthread_rwlock_unlock(&m->rw);
}

/* Folder @x failed a call that changes or reads data while it was active.
 * Returns 0 when the call may be retried (another folder is active now),
 * else non-zero (no folder left: the caller returns its error). */
static int fail_active(sop__mirror *m, int x, sop_file *mf, uint64_t off)
{
    int rc = 0;
    begin_change(m);
    if (m->st.active != x) {
        /* someone failed over already */
    } else if (!m->st.insync) {
        rc = -1;
    } else {
        sop__mstate n = m->st;
        n.active = 1 - x;
        n.insync = 0;
        n.full = 0;
        n.ndirty = 0;
        n.gen++;
        table_from_open_files(m, &n, mf, off);
        m->st = n;
        atomic_fetch_add(&m->failovers, 1);
        if (persist(m, &n, NULL)) {
            /* unrecorded, the other processes cannot learn it: serving
             * from it would split the folders between them */
            atomic_store(&m->broken, 1);
            rc = -1;
        } else if (publish(m, n.gen)) {
            /* nothing goes to the new active alone before the others know
             * (catch_up() tells them again at the next call) */
            atomic_store(&m->untold, n.gen);
            rc = -1;
        }
    }
    end_change(m);
    return rc;
}

/* Folder @x failed a call as the passive one. Returns 0 (the call
 * succeeded: the folder is stale now), 1 (the call must be retried: @x
 * became active meanwhile), or a negative error (the state could not be
 * recorded in the active folder either). */
static int fail_passive(sop__mirror *m, int x, sop_file *mf, uint64_t off)
{
    int rc = 0;
    begin_change(m);
    if (m->st.active == x) {
        rc = 1;
    } else if (m->st.insync) {
        sop__mstate n = m->st;
        n.insync = 0;
        n.full = 0;
        n.ndirty = 0;
        n.gen++;
        table_from_open_files(m, &n, mf, off);
        m->st = n;
        atomic_fetch_add(&m->failovers, 1);
        rc = persist(m, &n, NULL);
        if (!rc)
            publish(m, n.gen); /* best effort: the others' writes to both are harmless */
    }
    end_change(m);
    return rc;
}

/* While the passive is stale: records durably that segment @name may
 * differ from @from on, before the write that makes it so. */
static int note_stale(sop__mirror *m, const char *name, uint64_t from, uint64_t seen_gen)
{
    int rc = 0;
    begin_change(m);
    if (m->st.gen == seen_gen && !m->st.insync) {
        sop__mstate n = m->st;
        if (sop__mstate_note(&n, name, from)) {
            n.gen++;
            rc = persist(m, &n, NULL);
            if (!rc) {
                m->st = n;
                publish(m, n.gen);
            }
        }
    }
    end_change(m);
    return rc;
}

/* Before every call on the database's files: adopts the state another
 * process published (it failed over, or marked a folder stale), so that
 * nothing is read from a folder that stopped receiving writes; refuses to
 * serve while a failover of this process is not known to the others. One
 * atomic load when nothing changed. */
static int catch_up(sop__mirror *m)
{
    atomic_uint_fast64_t *pub = atomic_load(&m->pub);
    if (!pub)
        return 0;
    if (atomic_load(&m->broken))
        return -EIO;
    if (atomic_load(&m->untold)) {
        pthread_rwlock_wrlock(&m->rw);
        uint64_t g = atomic_load(&m->untold);
        int rc = g ? publish(m, g) : 0;
        if (!rc)
            atomic_store(&m->untold, 0);
        pthread_rwlock_unlock(&m->rw);
        if (rc)
            return -EIO; /* as the failover's own call: the folder is failing */
    }
    uint64_t g = atomic_load(pub);
    if (g <= atomic_load(&m->pub_seen))
        return 0;
    begin_change(m);
    end_change(m);
    sop__atomic_max(&m->pub_seen, g);
    return 0;
}

static void note_since(sop__mirror *m, const char *name, uint64_t from)
{
    if (!atomic_load(&m->catching))
        return;
    pthread_mutex_lock(&m->cmu);
    if (atomic_load(&m->catching))
        sop__mstate_note(&m->since, name, sop__mstate_is_seg(name) ? from : 0);
    pthread_mutex_unlock(&m->cmu);
}

/* ---- file operations ---- */

enum { OP_READ, OP_WRITE, OP_SYNC, OP_SIZE, OP_TRUNC };

static int base_op(sop__mirror *m, sop_file *f, int op, void *buf, size_t n, uint64_t off,
                   size_t *got, uint64_t *size)
{
    sop_vfs *b = m->base;
    if (!f)
        return -EIO;
    switch (op) {
    case OP_READ: return b->read(b, f, buf, n, off, got);
    case OP_WRITE: return b->write(b, f, buf, n, off);
    case OP_SYNC: return b->sync(b, f);
    case OP_SIZE: return b->size(b, f, size);
    default: return b->truncate(b, f, off);
    }
}

static void min_store(atomic_uint_fast64_t *a, uint64_t v)
{
    uint_fast64_t cur = atomic_load(a);
    while (v < cur && !atomic_compare_exchange_weak(a, &cur, v))
        ;
}

static int file_op(sop__mirror *m, sop_file *mf, int op, void *buf, size_t n, uint64_t off,
                   size_t *got, uint64_t *size)
{
    if (mf->kind != K_DATA)
        return base_op(m, mf->f[mf->kind == K_LOCK ? m->lockdir : 0], op, buf, n, off, got, size);
    int crc = catch_up(m);
    if (crc)
        return crc;
    int changes = op == OP_WRITE || op == OP_TRUNC;
    for (int tries = 0;; tries++) {
        pthread_rwlock_rdlock(&m->rw);
        int a = m->st.active, p = 1 - a, insync = m->st.insync;
        uint64_t gen = m->st.gen, from = off;
        if (op == OP_TRUNC && (!insync || atomic_load(&m->catching))) {
            uint64_t cur = 0;
            if (base_op(m, mf->f[a], OP_SIZE, NULL, 0, 0, NULL, &cur) == 0 && cur < from)
                from = cur; /* an extension changes bytes from the old end on */
        }
        if (changes && !insync && sop__mstate_is_seg(mf->name) &&
            sop__mstate_dirty_from(&m->st, mf->name) > from) {
            pthread_rwlock_unlock(&m->rw);
            int rc = note_stale(m, mf->name, from, gen);
            if (rc)
                return rc;
            continue;
        }
        if (changes)
            note_since(m, mf->name, from);
        uint64_t was = op == OP_SYNC ? atomic_exchange(&mf->unsynced, NO_OFF) : NO_OFF;
        int rc = base_op(m, mf->f[a], op, buf, n, off, got, size);
        if (rc) {
            pthread_rwlock_unlock(&m->rw);
            min_store(&mf->unsynced, was);
            if (io_class(rc) && tries < 4 && fail_active(m, a, mf, changes ? from : NO_OFF) == 0)
                continue;
            return rc;
        }
        if (insync && (changes || op == OP_SYNC)) {
            int prc = base_op(m, mf->f[p], op, buf, n, off, NULL, NULL);
            if (prc) {
                pthread_rwlock_unlock(&m->rw);
                min_store(&mf->unsynced, was);
                rc = fail_passive(m, p, mf, op == OP_SYNC ? was : from);
                if (rc == 1 && tries < 4)
                    continue;
                return rc == 1 ? prc : rc;
            }
        }
        if (op == OP_WRITE)
            min_store(&mf->unsynced, off);
        pthread_rwlock_unlock(&m->rw);
        return 0;
    }
}

static int mv_read(sop_vfs *v, sop_file *f, void *buf, size_t n, uint64_t off, size_t *got)
{
    return file_op(M(v), f, OP_READ, buf, n, off, got, NULL);
}
static int mv_write(sop_vfs *v, sop_file *f, const void *buf, size_t n, uint64_t off)
{
    return file_op(M(v), f, OP_WRITE, (void *)(uintptr_t)buf, n, off, NULL, NULL);
}
static int mv_sync(sop_vfs *v, sop_file *f) { return file_op(M(v), f, OP_SYNC, NULL, 0, 0, NULL, NULL); }
static int mv_size(sop_vfs *v, sop_file *f, uint64_t *size)
{
    return file_op(M(v), f, OP_SIZE, NULL, 0, 0, NULL, size);
}
static int mv_truncate(sop_vfs *v, sop_file *f, uint64_t size)
{
    return file_op(M(v), f, OP_TRUNC, NULL, 0, size, NULL, NULL);
}

/* ---- open and close ---- */

static sop_file *mfile_new(int kind, int flags, const char *rel)
{
    sop_file *mf = sop__calloc(1, sizeof *mf);
    if (!mf)
        return NULL;
    mf->rel = sop__strdup(rel ? rel : "");
    if (!mf->rel) {
        sop__free(mf);
        return NULL;
    }
    mf->name = leaf(mf->rel);
    mf->kind = kind;
    mf->flags = flags;
    atomic_init(&mf->unsynced, NO_OFF);
    return mf;
}

static void mfile_free(sop_file *mf)
{
    sop__free(mf->rel);
    sop__free(mf);
}

static void link_file(sop__mirror *m, sop_file *mf)
{
    pthread_mutex_lock(&m->fmu);
    mf->next = m->files;
    if (m->files)
        m->files->prev = mf;
    m->files = mf;
    pthread_mutex_unlock(&m->fmu);
}

static void unlink_file(sop__mirror *m, sop_file *mf)
{
    pthread_mutex_lock(&m->fmu);
    if (mf->prev)
        mf->prev->next = mf->next;
    else if (m->files == mf)
        m->files = mf->next;
    if (mf->next)
        mf->next->prev = mf->prev;
    mf->next = mf->prev = NULL;
    pthread_mutex_unlock(&m->fmu);
}

static int persist_pending(sop__mirror *m)
{
    int rc = 0;
    pthread_rwlock_wrlock(&m->rw);
    if (m->pending) {
        int prc = 0;
        rc = persist(m, &m->st, &prc);
        if (!rc && prc) { /* the replica cannot take it: stale from the start */
            m->st.insync = 0;
            m->st.full = 1;
            m->st.gen++;
            rc = persist(m, &m->st, NULL);
        }
        if (!rc)
            m->pending = 0;
    }
    pthread_rwlock_unlock(&m->rw);
    return rc;
}

static int open_lock(sop__mirror *m, const char *rel, int flags, unsigned mode, sop_file *mf)
{
    char p[2][4096];
    if (join(m, 0, rel, p[0], sizeof p[0]) || join(m, 1, rel, p[1], sizeof p[1]))
        return -ENAMETOOLONG;
    int rc = persist_pending(m);
    if (rc)
        return rc;
    int first = 0;
    rc = m->base->open(m->base, p[0], flags, mode, &mf->f[0]);
    if (rc && io_class(rc)) {
        first = 1; /* the database directory cannot be reached: LOCK of the replica */
        rc = m->base->open(m->base, p[1], flags, mode, &mf->f[1]);
    }
    if (rc)
        return rc;
    m->lockdir = first;
    if (flags & SOP_O_CREATE) { /* each folder is a complete database directory */
        sop_file *o;
        if (m->base->open(m->base, p[1 - first], SOP_O_RDWR | SOP_O_CREATE, mode, &o) == 0)
            m->base->close(m->base, o);
    }
    return 0;
}

static int mv_open(sop_vfs *v, const char *path, int flags, unsigned mode, sop_file **out)
{
    sop__mirror *m = M(v);
    if (!path || !out)
        return -EINVAL;
    *out = NULL;
    const char *rel = under(m, path);
    int kind = !rel ? K_OUT : !strcmp(rel, "/LOCK") ? K_LOCK : K_DATA;
    sop_file *mf = mfile_new(kind, flags, rel);
    if (!mf)
        return -ENOMEM;
    int rc = 0;
    if (kind == K_OUT) {
        rc = m->base->open(m->base, path, flags, mode, &mf->f[0]);
    } else if (kind == K_LOCK) {
        rc = open_lock(m, rel, flags, mode, mf);
    } else {
        char p[2][4096];
        if (join(m, 0, rel, p[0], sizeof p[0]) || join(m, 1, rel, p[1], sizeof p[1]))
            rc = -ENAMETOOLONG;
        int makes = (flags & (SOP_O_CREATE | SOP_O_TRUNC)) != 0;
        if (!rc)
            rc = catch_up(m);
        for (int tries = 0; !rc; tries++) {
            pthread_rwlock_rdlock(&m->rw);
            int a = m->st.active, pa = 1 - a, insync = m->st.insync;
            uint64_t gen = m->st.gen;
            if (makes && !insync && sop__mstate_is_seg(mf->name) &&
                sop__mstate_dirty_from(&m->st, mf->name) > 0) {
                pthread_rwlock_unlock(&m->rw);
                rc = note_stale(m, mf->name, 0, gen);
                continue;
            }
            if (makes)
                note_since(m, mf->name, 0);
            rc = m->base->open(m->base, p[a], flags, mode, &mf->f[a]);
            if (rc) {
                pthread_rwlock_unlock(&m->rw);
                if (io_class(rc) && tries < 4 && fail_active(m, a, NULL, NO_OFF) == 0) {
                    rc = 0;
                    continue;
                }
                break;
            }
            if (insync) {
                int prc = m->base->open(m->base, p[pa], flags, mode, &mf->f[pa]);
                if (prc) {
                    mf->f[pa] = NULL;
                    pthread_rwlock_unlock(&m->rw);
                    int r = fail_passive(m, pa, mf, makes ? 0 : NO_OFF);
                    if (r == 0)
                        break; /* served by the active alone */
                    m->base->close(m->base, mf->f[a]);
                    mf->f[a] = NULL;
                    if (r == 1 && tries < 4)
                        continue;
                    rc = r == 1 ? prc : r;
                    break;
                }
            }
            pthread_rwlock_unlock(&m->rw);
            break;
        }
        if (!rc)
            link_file(m, mf);
    }
    if (rc) {
        mfile_free(mf);
        return rc;
    }
    *out = mf;
    return 0;
}

static int mv_close(sop_vfs *v, sop_file *mf)
{
    sop__mirror *m = M(v);
    if (!mf)
        return 0;
    if (mf->kind == K_DATA)
        unlink_file(m, mf);
    int rc = 0;
    pthread_rwlock_rdlock(&m->rw);
    int a = mf->kind == K_LOCK ? m->lockdir : mf->kind == K_OUT ? 0 : m->st.active;
    pthread_rwlock_unlock(&m->rw);
    for (int i = 0; i < 2; i++)
        if (mf->f[i]) {
            int r = m->base->close(m->base, mf->f[i]);
            if (i == a)
                rc = r;
        }
    mfile_free(mf);
    return rc;
}

/* ---- directory operations ---- */

enum { DOP_REMOVE, DOP_RENAME, DOP_MKDIR, DOP_SYNCDIR };

static int base_dop(sop__mirror *m, int op, const char *p, const char *q, unsigned mode)
{
    sop_vfs *b = m->base;
    switch (op) {
    case DOP_REMOVE: return b->remove(b, p);
    case DOP_RENAME: return b->rename(b, p, q);
    case DOP_MKDIR: return b->mkdir(b, p, mode);
    default: return b->sync_dir(b, p);
    }
}

static int dir_op(sop__mirror *m, int op, const char *rel, const char *rel2, unsigned mode)
{
    char p[2][4096], q[2][4096];
    for (int i = 0; i < 2; i++)
        if (join(m, i, rel, p[i], sizeof p[i]) ||
            (rel2 && join(m, i, rel2, q[i], sizeof q[i])))
            return -ENAMETOOLONG;
    const char *target = leaf(rel2 ? rel2 : rel);
    int crc = catch_up(m);
    if (crc)
        return crc;
    for (int tries = 0;; tries++) {
        pthread_rwlock_rdlock(&m->rw);
        int a = m->st.active, pa = 1 - a, insync = m->st.insync;
        uint64_t gen = m->st.gen;
        if (op == DOP_RENAME && !insync && sop__mstate_is_seg(target) &&
            sop__mstate_dirty_from(&m->st, target) > 0) {
            pthread_rwlock_unlock(&m->rw);
            int rc = note_stale(m, target, 0, gen);
            if (rc)
                return rc;
            continue;
        }
        if (op == DOP_RENAME)
            note_since(m, target, 0);
        int rc = base_dop(m, op, p[a], q[a], mode);
        if (rc) {
            pthread_rwlock_unlock(&m->rw);
            if (io_class(rc) && tries < 4 && fail_active(m, a, NULL, NO_OFF) == 0)
                continue;
            return rc;
        }
        if (insync) {
            int prc = base_dop(m, op, p[pa], q[pa], mode);
            /* already done there (a retry, or a folder created by hand): fine */
            if (prc && !(op == DOP_REMOVE && prc == -ENOENT) && !(op == DOP_MKDIR && prc == -EEXIST)) {
                pthread_rwlock_unlock(&m->rw);
                int r = fail_passive(m, pa, NULL, NO_OFF);
                if (r == 1 && tries < 4 && op != DOP_RENAME && op != DOP_REMOVE)
                    continue;
                return r == 1 ? prc : r;
            }
        }
        pthread_rwlock_unlock(&m->rw);
        return 0;
    }
}

static int mv_remove(sop_vfs *v, const char *path)
{
    sop__mirror *m = M(v);
    const char *rel = under(m, path);
    return rel ? dir_op(m, DOP_REMOVE, rel, NULL, 0) : m->base->remove(m->base, path);
}

static int mv_rename(sop_vfs *v, const char *from, const char *to)
{
    sop__mirror *m = M(v);
    const char *r1 = under(m, from), *r2 = under(m, to);
    if (!r1 && !r2)
        return m->base->rename(m->base, from, to);
    if (!r1 || !r2)
        return -EXDEV;
    return dir_op(m, DOP_RENAME, r1, r2, 0);
}

static int mv_mkdir(sop_vfs *v, const char *path, unsigned mode)
{
    sop__mirror *m = M(v);
    const char *rel = under(m, path);
    if (!rel)
        return m->base->mkdir(m->base, path, mode);
    if (*rel)
        return dir_op(m, DOP_MKDIR, rel, NULL, mode);
    /* the database directory itself: both folders; the engine syncs the
     * database directory's parent, this layer the replica's */
    int rc = m->base->mkdir(m->base, m->dir[0], mode);
    int r1 = m->base->mkdir(m->base, m->dir[1], mode);
    pthread_rwlock_rdlock(&m->rw);
    int fresh = m->pending && m->st.insync; /* a new database */
    pthread_rwlock_unlock(&m->rw);
    if (fresh && r1 && r1 != -EEXIST) {
        /* a new database never starts without its replica: a wrong path
         * would otherwise go unnoticed (an existing database whose replica
         * folder is gone goes on with it stale, as on any failure) */
        if (rc == 0)
            m->base->remove(m->base, m->dir[0]);
        return r1;
    }
    if (r1 == 0) {
        char parent[4096];
        snprintf(parent, sizeof parent, "%s", m->dir[1]);
        char *s = strrchr(parent, '/');
        if (s && s != parent)
            *s = 0;
        else if (s)
            s[1] = 0;
        else
            snprintf(parent, sizeof parent, ".");
        m->base->sync_dir(m->base, parent);
    }
    if (rc == 0 || rc == -EEXIST) {
        int prc = persist_pending(m);
        if (prc)
            return prc;
    }
    return rc;
}

static int mv_sync_dir(sop_vfs *v, const char *path)
{
    sop__mirror *m = M(v);
    const char *rel = under(m, path);
    return rel ? dir_op(m, DOP_SYNCDIR, rel, NULL, 0) : m->base->sync_dir(m->base, path);
}

static int mv_list(sop_vfs *v, const char *dir, int (*fn)(const char *name, void *arg), void *arg)
{
    sop__mirror *m = M(v);
    const char *rel = under(m, dir);
    if (!rel)
        return m->base->list(m->base, dir, fn, arg);
    char p[2][4096];
    if (join(m, 0, rel, p[0], sizeof p[0]) || join(m, 1, rel, p[1], sizeof p[1]))
        return -ENAMETOOLONG;
    int crc = catch_up(m);
    if (crc)
        return crc;
    for (int tries = 0;; tries++) {
        pthread_rwlock_rdlock(&m->rw);
        int a = m->st.active;
        pthread_rwlock_unlock(&m->rw);
        int rc = m->base->list(m->base, p[a], fn, arg);
        /* only a failure to list (not the callback's code) fails over: the
         * callback of this engine never returns an errno of this class */
        if (rc && io_class(rc) && tries < 4 && fail_active(m, a, NULL, NO_OFF) == 0)
            continue;
        return rc;
    }
}

/* ---- locks and shared memory ---- */

static void at_exclusive_open(sop__mirror *m, int reconcile_only, int (*go_on)(void *),
                              void *arg);

static int mv_lock(sop_vfs *v, sop_file *mf, uint64_t off, uint64_t len, int mode, int wait)
{
    sop__mirror *m = M(v);
    pthread_rwlock_rdlock(&m->rw);
    sop_file *f = mf->f[mf->kind == K_LOCK ? m->lockdir : mf->kind == K_OUT ? 0 : m->st.active];
    pthread_rwlock_unlock(&m->rw);
    int rc = m->base->lock(m->base, f, off, len, mode, wait);
    if (rc || mf->kind != K_LOCK || off != SOP__LOCK_OPEN || len != 1 || m->open_done)
        return rc;
    if (mode == SOP_LOCK_EX) {
        /* the engine's first opener, alone, before recovery (shared.h) */
        m->open_done = 1;
        at_exclusive_open(m, 0, NULL, NULL);
    } else if (mode == SOP_LOCK_SH) {
        /* joining processes that have it open: the first opener may have
         * reconciled or reinstated since this layer read the state */
        m->open_done = 1;
        begin_change(m);
        end_change(m);
    }
    return rc;
}

static int mv_shm_map(sop_vfs *v, sop_file *mf, uint64_t off, size_t len, void **addr)
{
    sop__mirror *m = M(v);
    if (mf->kind == K_DATA)
        return -ENOTSUP;
    return m->base->shm_map(m->base, mf->f[mf->kind == K_LOCK ? m->lockdir : 0], off, len, addr);
}

static int mv_shm_unmap(sop_vfs *v, void *addr, size_t len)
{
    return M(v)->base->shm_unmap(M(v)->base, addr, len);
}

/* ---- reconcile and reinstatement ---- */

typedef struct ckpt_note {
    sop__mstate *n;
    uint32_t seg;
    uint64_t off;
} ckpt_note;

static int note_seg(const char *name, void *arg)
{
    ckpt_note *c = arg;
    if (!sop__mstate_is_seg(name))
        return 0;
    uint32_t no = (uint32_t)strtoul(name + 4, NULL, 10);
    if (no >= c->seg)
        sop__mstate_note(c->n, name, no == c->seg ? c->off : 0);
    return 0;
}

/* A stale table that covers what may differ between the folders after the
 * newest checkpoint of the active one (everything before it was synced in
 * both): its segment from the checkpoint's offset, later ones whole.
 * Segments created later are noted when they are created. */
static void table_from_ckpt(sop__mirror *m, sop__mstate *n)
{
    ckpt_note c = {n, 0, 0};
    n->ndirty = 0;
    n->full = 0;
    if (sop__mirror_ckpt(m->base, m->dir[n->active], &c.seg, &c.off) != 0 ||
        m->base->list(m->base, m->dir[n->active], note_seg, &c) != 0)
        n->full = 1;
}

/* The first opener, alone (or, with @reconcile_only, a process that
 * recovered a dead writer's log under the commit lock while others may be
 * open): reconciles an in-sync passive, reinstates a stale one. */
static void at_exclusive_open(sop__mirror *m, int reconcile_only, int (*go_on)(void *),
                              void *arg)
{
    begin_change(m); /* the state another process left since this layer read it */
    if (reconcile_only && !m->st.insync) {
        end_change(m);
        return;
    }
    int a = m->st.active, p = 1 - a;
    const char *failed = NULL;
    sop__mcopy_stat cs = {0};
    if (m->st.insync) {
        /* writes a crash let reach one folder only lie after the newest
         * checkpoint: compare from there, copy what differs */
        sop__mplan plan = {.compare = 1, .use_ckpt = 1, .go_on = go_on, .go_arg = arg};
        if (sop__mirror_ckpt(m->base, m->dir[a], &plan.ckpt_seg, &plan.ckpt_off) != 0)
            plan.ckpt_seg = 0, plan.ckpt_off = 0;
        int rc = sop__mirror_copy(m->base, m->dir[a], m->dir[p], &plan, m->mode, &cs, &failed);
        if (rc && failed == m->dir[p]) {
            sop__mstate n = m->st;
            n.insync = 0;
            n.gen++;
            table_from_ckpt(m, &n);
            if (persist(m, &n, NULL) == 0) {
                m->st = n;
                publish(m, n.gen);
            }
            atomic_fetch_add(&m->failovers, 1);
        }
        /* a failing active folder shows in the engine's own reads next */
    } else {
        sop__mplan plan = {.table = &m->st, .go_on = go_on, .go_arg = arg};
        int rc = sop__mirror_copy(m->base, m->dir[a], m->dir[p], &plan, m->mode, &cs, &failed);
        if (!rc) {
            sop__mstate n = m->st;
            n.insync = 1;
            n.full = 0;
            n.ndirty = 0;
            n.gen++;
            int prc = 0;
            if (persist(m, &n, &prc) == 0 && !prc) {
                m->st = n;
                publish(m, n.gen);
            } else if (prc) { /* keep it stale, with the same table */
                m->st.gen += 2;
                if (persist(m, &m->st, NULL) == 0)
                    publish(m, m->st.gen);
            }
            m->last = cs;
        }
    }
    end_change(m);
}

void sop__mirror_open_pass(sop__mirror *m, int reconcile_only, int (*go_on)(void *), void *arg)
{
    if (!reconcile_only) {
        if (m->open_done)
            return;
        m->open_done = 1;
    }
    at_exclusive_open(m, reconcile_only, go_on, arg);
}

uint64_t sop__mirror_reread(sop__mirror *m)
{
    atomic_uint_fast64_t *pub = atomic_load(&m->pub);
    uint64_t g = pub ? atomic_load(pub) : 0;
    begin_change(m);
    uint64_t gen = m->st.gen;
    end_change(m);
    sop__atomic_max(&m->pub_seen, g);
    return gen;
}

int sop__mirror_share(sop__mirror *m, atomic_uint_fast64_t *pub, int (*tell)(void *, uint64_t),
                      void *arg)
{
    pthread_rwlock_wrlock(&m->rw);
    int rc = 0;
    if (!pub) {
        atomic_store(&m->pub, NULL);
        m->tell = NULL;
        m->tell_arg = NULL;
    } else {
        m->tell = tell;
        m->tell_arg = arg;
        atomic_store(&m->pub, pub);
        /* what this opener found (a failover made at open included); a
         * newer generation already published is adopted at the first call */
        rc = publish(m, m->st.gen);
        if (rc) {
            atomic_store(&m->pub, NULL);
            why(rc, "cannot publish the replica state's generation %llu",
                (unsigned long long)m->st.gen);
        }
    }
    pthread_rwlock_unlock(&m->rw);
    return rc;
}

int sop__mirror_reinstate(sop__mirror *m, int (*lock)(void *), void (*unlock)(void *), void *arg)
{
    if (atomic_exchange(&m->reinstating, 1))
        return why(SOP_EBUSY, "a reinstatement is already running");
    int rc = catch_up(m);
    if (rc) {
        atomic_store(&m->reinstating, 0);
        return why(rc, "a failover of this process is not known to the others");
    }
    begin_change(m); /* the persisted state, not this process's view of it */
    int a = m->st.active, p = 1 - a;
    sop__mstate table = m->st;
    int insync = m->st.insync;
    if (!insync) {
        pthread_mutex_lock(&m->cmu);
        memset(&m->since, 0, sizeof m->since);
        atomic_store(&m->catching, 1);
        pthread_mutex_unlock(&m->cmu);
    }
    end_change(m);
    if (insync) {
        atomic_store(&m->reinstating, 0);
        return 0;
    }
    /* phase 1: while the database is in use */
    const char *failed = NULL;
    sop__mcopy_stat cs = {0};
    sop__mplan plan1 = {.table = &table};
    rc = sop__mirror_copy(m->base, m->dir[a], m->dir[p], &plan1, m->mode, &cs, &failed);
    if (rc) {
        why(rc, "cannot copy to %s", failed ? failed : "the stale folder");
        goto out;
    }
    /* phase 2: no commit, no I/O of this layer until it is done */
    rc = lock(arg);
    if (rc) {
        why(rc, "cannot take the commit lock");
        goto out;
    }
    pthread_rwlock_wrlock(&m->rw);
    xlock(m, SOP_LOCK_EX);
    refresh(m);
    if (m->st.active != a || m->st.insync) {
        rc = why(-EIO, "the folders changed roles during the reinstatement");
    } else {
        pthread_mutex_lock(&m->cmu);
        sop__mstate since = m->since;
        pthread_mutex_unlock(&m->cmu);
        sop__mplan plan2 = {.since = &since, .since_only = 1};
        if (since.full)
            plan2 = (sop__mplan){.table = &since};
        rc = sop__mirror_copy(m->base, m->dir[a], m->dir[p], &plan2, m->mode, &cs, &failed);
        if (rc)
            why(rc, "cannot copy to %s", failed ? failed : "the stale folder");
    }
    /* the open files get their handle in the folder that is back */
    if (!rc)
        rc = open_passive(m, p, 1);
    if (!rc) {
        sop__mstate n = m->st;
        n.insync = 1;
        n.full = 0;
        n.ndirty = 0;
        n.gen++;
        int prc = 0;
        rc = persist(m, &n, &prc);
        if (!rc && prc) {
            rc = why(prc, "cannot write the state of %s", m->dir[p]);
            m->st.gen += 2; /* still stale: say so again, above the in-sync copy */
            if (persist(m, &m->st, NULL) == 0)
                publish(m, m->st.gen);
        } else if (rc) {
            why(rc, "cannot write the state of %s", m->dir[a]);
        } else {
            m->st = n;
            publish(m, n.gen); /* best effort: no other process is open */
        }
    }
    xlock(m, SOP_LOCK_UN);
    pthread_mutex_lock(&m->fmu);
    for (sop_file *f = m->files; f; f = f->next) {
        if (rc && f->reopened) { /* the folder stays stale: its handles are not used */
            m->base->close(m->base, f->f[p]);
            f->f[p] = NULL;
        }
        f->reopened = 0;
    }
    pthread_mutex_unlock(&m->fmu);
    if (!rc)
        m->last = cs;
    pthread_rwlock_unlock(&m->rw);
    unlock(arg);
out:
    pthread_mutex_lock(&m->cmu);
    atomic_store(&m->catching, 0);
    pthread_mutex_unlock(&m->cmu);
    atomic_store(&m->reinstating, 0);
    return rc;
}

void sop__mirror_status(sop__mirror *m, sop_replica_status *st)
{
    memset(st, 0, sizeof *st);
    catch_up(m);
    pthread_rwlock_rdlock(&m->rw);
    st->configured = 1;
    st->active = m->st.active;
    st->in_sync = m->st.insync;
    st->generation = m->st.gen;
    st->reinstated_bytes = m->last.bytes;
    st->reinstated_files = m->last.files;
    st->skipped_bytes = m->last.skipped;
    pthread_rwlock_unlock(&m->rw);
    st->failovers = atomic_load(&m->failovers);
}

/* ---- which folder is active: the state at open ---- */

static int has_database(sop__mirror *m, int i)
{
    char p[4096];
    sop_file *f;
    if (join(m, i, "/ckpt.0", p, sizeof p) || m->base->open(m->base, p, SOP_O_READ, 0, &f))
        return 0;
    m->base->close(m->base, f);
    return 1;
}

static int same_state(const sop__mstate *x, const sop__mstate *y)
{
    if (x->gen != y->gen || x->active != y->active || x->insync != y->insync ||
        x->full != y->full || x->ndirty != y->ndirty)
        return 0;
    for (uint32_t i = 0; i < x->ndirty; i++)
        if (strcmp(x->dirty[i].name, y->dirty[i].name) || x->dirty[i].from != y->dirty[i].from)
            return 0;
    return 1;
}

static int load_state(sop__mirror *m)
{
    sop__mstate s[2];
    int r[2], valid[2], absent[2];
    memset(s, 0, sizeof s);
    for (int i = 0; i < 2; i++) {
        r[i] = sop__mstate_read(m->base, m->dir[i], i, &s[i]);
        if (r[i] == SOP_EMISMATCH)
            return why(SOP_EMISMATCH, "%s/%s was written for the other folder: give the "
                       "database directory and the replica folder in the same order as before",
                       m->dir[i], SOP__MSTATE_NAME);
        valid[i] = r[i] == 0;
        absent[i] = r[i] == -ENOENT;
    }
    sop__mstate st;
    memset(&st, 0, sizeof st);
    int changed = 0;
    if (valid[0] && valid[1]) {
        if (s[0].gen == s[1].gen && !same_state(&s[0], &s[1]))
            return why(SOP_ECORRUPT, "the replica states of %s and %s disagree at generation %llu",
                       m->dir[0], m->dir[1], (unsigned long long)s[0].gen);
        st = s[0].gen >= s[1].gen ? s[0] : s[1];
        changed = s[0].gen != s[1].gen; /* the other missed the last state write */
    } else if (valid[0] || valid[1]) {
        int k = valid[0] ? 0 : 1, j = 1 - k;
        st = s[k];
        if (st.active == k) {
            if (st.insync) { /* the passive lost its state: emptied, replaced or failing */
                st.insync = 0;
                st.full = 1;
                st.ndirty = 0;
                changed = 1;
            }
        } else if (st.insync) {
            /* the active folder is gone or unreachable, this one was in sync */
            st.active = k;
            st.insync = 0;
            if (absent[j]) {
                st.full = 1;
                st.ndirty = 0;
            } else {
                table_from_ckpt(m, &st);
            }
            changed = 1;
            atomic_fetch_add(&m->failovers, 1);
        } else {
            return why(-EIO, "%s is stale and the active folder %s %s", m->dir[k], m->dir[j],
                       absent[j] ? "has lost its files" : "cannot be read");
        }
    } else {
        for (int i = 0; i < 2; i++)
            if (!absent[i])
                return why(r[i] == SOP_ECORRUPT ? SOP_ECORRUPT : r[i],
                           "cannot read %s/%s (%s)", m->dir[i], SOP__MSTATE_NAME,
                           sop_strerror(r[i]));
        int h0 = has_database(m, 0), h1 = has_database(m, 1);
        if (!h0 && !h1) { /* a new database: its replica folder must be possible */
            char parent[4096];
            snprintf(parent, sizeof parent, "%s", m->dir[1]);
            char *slash = strrchr(parent, '/');
            if (slash)
                slash[slash == parent] = 0;
            sop_file *pf;
            int prc = m->base->open(m->base, slash ? parent : ".", SOP_O_READ, 0, &pf);
            if (prc)
                return why(prc, "the replica folder %s cannot be created: %s: %s", m->dir[1],
                           slash ? parent : ".", sop_strerror(prc));
            m->base->close(m->base, pf);
        }
        st.active = h0 || !h1 ? 0 : 1;
        st.insync = !h0 && !h1; /* a new database: both empty */
        st.full = !st.insync;
        changed = 1;
    }
    m->st = st;
    if (!changed)
        return 0;
    m->st.gen = (s[0].gen > s[1].gen ? s[0].gen : s[1].gen) + 1;
    m->pending = 1;
    /* the folders may not exist yet (a new database): persisted at mkdir or
     * at the opening of LOCK then */
    char p[4096];
    sop_file *f;
    if (!join(m, m->st.active, "", p, sizeof p) &&
        m->base->open(m->base, p, SOP_O_READ, 0, &f) == 0) {
        m->base->close(m->base, f);
        int rc = persist_pending(m);
        if (rc)
            return why(rc, "cannot write %s/%s", m->dir[m->st.active], SOP__MSTATE_NAME);
    }
    return 0;
}

/* ---- the layer ---- */

void sop__vfs_mirror_free(sop_vfs *vfs)
{
    if (!vfs)
        return;
    sop__mirror *m = M(vfs);
    if (m->xlock)
        m->base->close(m->base, m->xlock);
    pthread_rwlock_destroy(&m->rw);
    pthread_mutex_destroy(&m->fmu);
    pthread_mutex_destroy(&m->cmu);
    sop__free(m->dir[0]);
    sop__free(m->dir[1]);
    sop__free(m);
}

static char *trimmed(const char *s)
{
    size_t n = strlen(s);
    while (n > 1 && s[n - 1] == '/')
        n--;
    char *d = sop__memdup(s, n + 1);
    if (d)
        d[n] = 0;
    return d;
}

int sop__vfs_mirror_new(sop_vfs *base, const char *dir, const char *replica, unsigned mode,
                        sop_vfs **out)
{
    *out = NULL;
    g_why[0] = 0;
    if (!base || !dir || !*dir || !replica || !*replica)
        return -EINVAL;
    sop__mirror *m = sop__calloc(1, sizeof *m);
    if (!m)
        return -ENOMEM;
    m->base = base;
    m->mode = mode ? mode : 0600;
    m->dir[0] = trimmed(dir);
    m->dir[1] = trimmed(replica);
    pthread_rwlock_init(&m->rw, NULL);
    pthread_mutex_init(&m->fmu, NULL);
    pthread_mutex_init(&m->cmu, NULL);
    if (!m->dir[0] || !m->dir[1]) {
        sop__vfs_mirror_free(&m->vfs);
        return -ENOMEM;
    }
    m->len0 = strlen(m->dir[0]);
    m->vfs = (sop_vfs){
        .version = 2,
        .ctx = m,
        .open = mv_open,
        .close = mv_close,
        .read = mv_read,
        .write = mv_write,
        .sync = mv_sync,
        .size = mv_size,
        .truncate = mv_truncate,
        .lock = mv_lock,
        .remove = mv_remove,
        .rename = mv_rename,
        .mkdir = mv_mkdir,
        .sync_dir = mv_sync_dir,
        .list = mv_list,
        .shm_map = base->shm_map ? mv_shm_map : NULL,
        .shm_unmap = base->shm_map ? mv_shm_unmap : NULL,
        .map = NULL, /* see the header */
        .unmap = NULL,
    };
    if (!strcmp(m->dir[0], m->dir[1])) {
        sop__vfs_mirror_free(&m->vfs);
        return why(-EINVAL, "the replica folder is the database directory");
    }
    int rc = load_state(m);
    if (rc) {
        sop__vfs_mirror_free(&m->vfs);
        return rc;
    }
    *out = &m->vfs;
    return 0;
}
