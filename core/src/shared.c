/*
 * shared.c - coordination between the processes that have one database
 * open (see shared.h for the lock file's layout).
 *
 * Every process keeps the current registry in memory. It learns the
 * commits of other processes by following the log: commit records are
 * applied in log order, each handle only when its version is not older than
 * the one held. A process follows the log under the commit lock before it
 * validates a commit (so validation sees every commit before it) and,
 * without the lock, when a transaction begins and the shared tail moved.
 */
#include <errno.h>
#include <string.h>
#include <unistd.h>

#include "bytes.h"
#include "cluster.h"
#include "internal.h"
#include "mem.h"
#include "mirror.h"

/* ---- applying commit records ----
 *
 * A record whose csn is below the csn already applied (a stale record of an
 * earlier incarnation of the log's bytes) is never applied. That check is in
 * sop__log_follow(), not here: it decides where the log ends, like a bad
 * CRC, so it must stop the reading at the first stale record, images
 * included (which this function ignores), and be cut or reported exactly
 * as a torn tail or a damaged sealed segment is. The log passes the csn of
 * each record it read as the floor for the next one.
 */

int sop__apply_rec(void *arg, int type, uint64_t csn, const uint8_t *p, uint32_t len,
                   uint32_t seg, uint64_t off)
{
    sop_db *db = arg;
    if (type != SOP__REC_COMMIT)
        return 0;
    if (len < SOP__COMMIT_HDR)
        return sop__err(db, SOP_ECORRUPT, "segment %u offset %llu: short commit record", seg,
                        (unsigned long long)off);
    uint32_t n = sop__get32(p);
    uint64_t next_id = sop__get64(p + 8), next_seq = sop__get64(p + 16);
    if ((uint64_t)n * SOP__COMMIT_ENTRY + SOP__COMMIT_HDR != len)
        return sop__err(db, SOP_ECORRUPT, "segment %u offset %llu: bad commit record", seg,
                        (unsigned long long)off);
    const uint8_t *e = p + SOP__COMMIT_HDR;
    for (uint32_t i = 0; i < n; i++, e += SOP__COMMIT_ENTRY) {
        uint64_t id = sop__get64(e);
        sop__handle h = {sop__get32(e + 8), sop__get32(e + 12), sop__get64(e + 16),
                         sop__get64(e + 24), sop__get64(e + 32)};
        if (!id || !h.version) /* every handle written has a version */
            return sop__err(db, SOP_ECORRUPT, "segment %u offset %llu: commit record with %s", seg,
                            (unsigned long long)off, id ? "a handle without a version" : "id 0");
        /* every handle a commit writes carries the commit's number (a
         * handle from the future would stay hidden from every snapshot, and
         * the next open would refuse the registry that keeps it) */
        if (h.csn != csn)
            return sop__err(db, SOP_ECORRUPT, "segment %u offset %llu: commit %llu has a handle "
                            "of id %llu stamped with commit %llu", seg, (unsigned long long)off,
                            (unsigned long long)csn, (unsigned long long)id,
                            (unsigned long long)h.csn);
        sop__handle cur = sop__reg_get(&db->reg, id);
        if (h.version >= cur.version) {
            int rc = sop__reg_set(&db->reg, id, &h);
            if (rc)
                return rc;
        }
    }
    sop__atomic_max(&db->shm->next_id, next_id);
    sop__atomic_max(&db->shm->next_seq, next_seq);
    if (csn > atomic_load(&db->csn))
        atomic_store(&db->csn, csn);
    db->replayed++;
    return 0;
}

/* ---- the shared area ---- */

int sop__shm_attach(sop_db *db, int *first)
{
    sop_vfs *vfs = db->vfs;
    *first = 0;
    for (int attempt = 0;; attempt++) {
        int rc = vfs->lock(vfs, db->lockf, SOP__LOCK_OPEN, 1, SOP_LOCK_EX, 0);
        if (rc == 0) {
            *first = 1;
        } else if (rc == SOP_EBUSY && vfs->shm_map) {
            rc = vfs->lock(vfs, db->lockf, SOP__LOCK_OPEN, 1, SOP_LOCK_SH, 1);
            if (rc)
                return sop__err(db, rc, "cannot lock %s/LOCK", db->path);
        } else if (rc == SOP_EBUSY) {
            return sop__err(db, SOP_EBUSY, "database %s is open in another process (this VFS "
                            "cannot share it)", db->path);
        } else {
            return sop__err(db, rc, "cannot lock %s/LOCK", db->path);
        }
        if (!vfs->shm_map) {
            db->shm = &db->shm_priv;
            memset(db->shm, 0, sizeof *db->shm);
            return 0;
        }
        void *addr;
        rc = vfs->shm_map(vfs, db->lockf, SOP__SHM_OFF, SOP__SHM_SIZE, &addr);
        if (rc)
            return sop__err(db, rc, "cannot map the shared area of %s/LOCK", db->path);
        db->shm = addr;
        db->shm_mapped = 1;
        if (*first) {
            memset(addr, 0, SOP__SHM_SIZE);
            return 0;
        }
        if (atomic_load(&db->shm->magic) == SOP__SHM_MAGIC)
            return 0;
        /* the first opener died while recovering: try to become it */
        vfs->shm_unmap(vfs, addr, SOP__SHM_SIZE);
        db->shm = NULL;
        db->shm_mapped = 0;
        vfs->lock(vfs, db->lockf, SOP__LOCK_OPEN, 1, SOP_LOCK_UN, 0);
        if (attempt > 1000)
            return sop__err(db, SOP_EBUSY, "database %s: another process keeps failing to open it",
                            db->path);
        usleep(1000);
    }
}

int sop__shm_ready(sop_db *db)
{
    /* the first opener: recovery is done; let the others in */
    atomic_store(&db->shm->magic, SOP__SHM_MAGIC);
    if (!db->shm_mapped)
        return 0;
    int rc = db->vfs->lock(db->vfs, db->lockf, SOP__LOCK_OPEN, 1, SOP_LOCK_SH, 0);
    return rc ? sop__err(db, rc, "cannot downgrade the open lock") : 0;
}

int sop__shm_claim_slot(sop_db *db)
{
    for (int i = 0; i < SOP__SHM_SLOTS; i++) {
        int rc = db->shm_mapped ? db->vfs->lock(db->vfs, db->lockf, SOP__LOCK_SLOT0 + (uint64_t)i, 1,
                                                SOP_LOCK_EX, 0)
                                : 0;
        if (rc == SOP_EBUSY)
            continue; /* another process's */
        if (rc)
            return sop__err(db, rc, "cannot lock a reader slot of %s/LOCK", db->path);
        sop__slot_shm *s = &db->shm->slot[i];
        atomic_store(&s->snap, UINT64_MAX);
        atomic_store(&s->applied_seg, db->log.cur);
        atomic_store(&s->pid, (uint64_t)getpid());
        db->slot = i;
        return 0;
    }
    return sop__err(db, SOP_EBUSY, "database %s is open in %d processes already", db->path,
                    SOP__SHM_SLOTS);
}

void sop__shm_detach(sop_db *db)
{
    if (!db->shm)
        return;
    if (db->slot >= 0) {
        atomic_store(&db->shm->slot[db->slot].pid, 0);
        atomic_store(&db->shm->slot[db->slot].snap, UINT64_MAX);
    }
    if (db->shm_mapped)
        db->vfs->shm_unmap(db->vfs, db->shm, SOP__SHM_SIZE);
    db->shm = NULL;
    db->shm_mapped = 0;
}

/* Is the owner of slot @i alive? (Its lock byte cannot be taken.) */
static int slot_alive(sop_db *db, int i)
{
    if (i == db->slot || !db->shm_mapped)
        return i == db->slot;
    int rc = db->vfs->lock(db->vfs, db->lockf, SOP__LOCK_SLOT0 + (uint64_t)i, 1, SOP_LOCK_EX, 0);
    if (rc)
        return 1; /* held (or unknown: assume alive, which only delays reclaiming space) */
    sop__slot_shm *s = &db->shm->slot[i];
    atomic_store(&s->pid, 0);
    atomic_store(&s->snap, UINT64_MAX);
    db->vfs->lock(db->vfs, db->lockf, SOP__LOCK_SLOT0 + (uint64_t)i, 1, SOP_LOCK_UN, 0);
    return 0;
}

uint64_t sop__oldest_snap(sop_db *db, uint32_t *min_seg)
{
    uint64_t m = UINT64_MAX;
    uint32_t seg = UINT32_MAX;
    for (int i = 0; i < SOP__SHM_SLOTS; i++) {
        sop__slot_shm *s = &db->shm->slot[i];
        if (!atomic_load(&s->pid) || !slot_alive(db, i))
            continue;
        uint64_t v = atomic_load(&s->snap);
        uint64_t a = atomic_load(&s->applied_seg);
        if (v < m)
            m = v;
        if (a < seg)
            seg = (uint32_t)a;
    }
    if (db->cl) {
        uint64_t osnap;
        uint32_t oseg;
        int others;
        if (sop__cl_oldest(db, &osnap, &oseg, &others) != 0) {
            osnap = 0; /* cannot tell what others read: keep everything */
            oseg = 0;
        }
        if (osnap < m)
            m = osnap;
        if (oseg < seg)
            seg = oseg;
    }
    if (min_seg)
        *min_seg = seg;
    return m;
}

/* db->mu held: publishes the oldest snapshot of this process's txns. */
void sop__publish_snap_locked(sop_db *db)
{
    uint64_t m = UINT64_MAX;
    for (size_t i = 0; i < db->nsnaps; i++)
        if (db->snaps[i] < m)
            m = db->snaps[i];
    atomic_store(&db->shm->slot[db->slot].snap, m);
}

/* ---- following the log ---- */

int sop__follow(sop_db *db, int locked)
{
    /* commit_mu held */
    uint64_t tail = atomic_load(&db->shm->tail);
    if (!locked && !db->cl && tail == db->applied_tail)
        return 0;
    sop__log *l = &db->log;
    int rc = sop__log_follow(l, l->cur, locked ? SOP__FOLLOW_CUT : SOP__FOLLOW_READ,
                             atomic_load(&db->csn), sop__apply_rec, db, db);
    db->applied_tail = sop__tail_pack(l->cur, l->end);
    atomic_store(&db->shm->slot[db->slot].applied_seg, l->cur);
    return rc;
}

int sop__commit_lock(sop_db *db)
{
    pthread_mutex_lock(&db->commit_mu);
    int rc = 0;
    if (db->cl) {
        rc = sop__cl_lock(db);
        if (rc) {
            pthread_mutex_unlock(&db->commit_mu);
            return rc;
        }
    } else if (db->shm_mapped) {
        rc = db->vfs->lock(db->vfs, db->lockf, SOP__LOCK_COMMIT, 1, SOP_LOCK_EX, 1);
        if (rc) {
            pthread_mutex_unlock(&db->commit_mu);
            return sop__err(db, rc, "cannot take the commit lock");
        }
    }
    /* a writer that died holding the lock may have left a write in one
     * folder of the replica only: level them before the log is followed
     * (replication.md, "Crash reconcile") */
    if (db->cl && sop__cl_holder_died(db))
        sop__db_mirror_open_pass(db, 1);
    rc = sop__follow(db, 1);
    if (!rc && db->cl)
        rc = sop__cl_locked(db);
    if (rc)
        sop__commit_unlock(db);
    return rc;
}

void sop__commit_unlock(sop_db *db)
{
    sop__log *l = &db->log;
    uint64_t tail = sop__tail_pack(l->cur, l->end);
    db->applied_tail = tail;
    atomic_store(&db->shm->tail, tail);
    atomic_store(&db->shm->slot[db->slot].applied_seg, l->cur);
    if (db->cl)
        sop__cl_unlock(db);
    else if (db->shm_mapped)
        db->vfs->lock(db->vfs, db->lockf, SOP__LOCK_COMMIT, 1, SOP_LOCK_UN, 0);
    pthread_mutex_unlock(&db->commit_mu);
}

int sop__learn(sop_db *db)
{
    if (db->cl) {
        uint64_t csn = 0, durable = 0;
        /* Redis down: the log alone still tells what was committed, so
         * reads go on (what is durable is then what this process knows) */
        int down = sop__cl_peek(db, &csn, &durable) != 0;
        if (!down)
            sop__atomic_max(&db->shm->durable_csn, durable);
        else
            sop__db_mirror_reread(db); /* a failover Redis could not tell */
        if (!down && csn <= atomic_load(&db->csn))
            return 0;
    } else if (atomic_load(&db->shm->tail) == atomic_load(&db->applied_tail)) {
        return 0;
    }
    pthread_mutex_lock(&db->commit_mu);
    int rc = sop__follow(db, 0);
    pthread_mutex_unlock(&db->commit_mu);
    return rc;
}

int sop__id_chunk(void *arg, uint64_t n, uint64_t *first)
{
    sop_db *db = arg;
    if (db->cl)
        return sop__cl_ids(db, n, first);
    *first = atomic_fetch_add(&db->shm->next_id, n);
    return 0;
}

int sop__next_seq(sop_db *db, uint64_t *seq)
{
    if (db->cl)
        return sop__cl_seq(db, seq);
    *seq = atomic_fetch_add(&db->shm->next_seq, 1);
    return 0;
}
