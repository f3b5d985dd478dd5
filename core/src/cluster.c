/*
 * cluster.c - clustered mode through Redis (see cluster.h and
 * docs/design/clustered.md).
 *
 * The commit lock is a Redis key with a random token and a lease (PX).
 * The holder writes to the log only while its own clock says the lease
 * holds with a margin (sop__cl_lease_ok, checked before every write by
 * the guard layer of the VFS), so a paused or cut-off holder whose lease
 * ran out writes nothing more, and the next holder may take over as soon
 * as Redis expires the key.
 *
 * Redis keeps no data. If it lost its state (restart: a new run id;
 * FLUSHALL: the state hash is gone) the next process that takes the lock
 * follows the log, waits one lease (any holder of the lost lock has then
 * stopped writing), syncs the log and publishes a new epoch with counters
 * re-derived from the log. Write transactions that began in an older
 * epoch fail at commit with SOP_EREDIS (ids they drew may be handed out
 * again), and every process drops the ids it held from the old epoch.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "cluster.h"
#include "internal.h"
#include "mem.h"
#include "mirror.h"
#include "redis.h"
#include "vfs_file.h"

#define SEQ_CHUNK 1024

struct sop__cluster {
    sop__redis *r;
    char k_lock[64], k_state[64], k_procs[64], k_node[64];
    char token[40];
    char proc[40];
    uint64_t lease_ns;
    int held;          /* the commit lock is taken (sop__cl_lock .. unlock) */
    uint64_t deadline; /* of its lease, CLOCK_MONOTONIC ns; 0: lost */
    int lost;          /* the lock was taken in a state Redis had lost */
    int died;          /* the previous holder did not release it (died, lease lost) */
    atomic_uint_fast64_t epoch;
    uint64_t base_id;  /* first id of the current epoch */
    char run_id[48];   /* of the server the epoch was published on */
    pthread_mutex_t mu; /* seq chunk */
    uint64_t seq_lo, seq_hi;
    pthread_t hb;
    int hb_running;
    int present;       /* this process is (or may be) in "procs" */
    pthread_mutex_t hb_mu;
    pthread_cond_t hb_cv;
    int hb_stop;
};

/* Redis error text: one buffer per call, on the caller's stack, since
 * readers, the committer and the heartbeat thread call Redis at once. */
#define ERRLEN 256

static uint64_t rand64(void)
{
    uint64_t v = 0;
    if (getrandom(&v, sizeof v, 0) != (ssize_t)sizeof v)
        v = sop__now_ns() ^ ((uint64_t)getpid() << 32);
    return v;
}

static int rerr(sop_db *db, int rc, const char *what, const char *err)
{
    return sop__err(db, rc, "%s: %s", what, err);
}

/* ---- scripts ---- */

/* Also records the holder in "state" (field holder, cleared by RELEASE)
 * and returns the previous one: set, it died or lost its lease holding
 * the lock, possibly half-way through a write. */
static const char ACQUIRE[] =
    "if not redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return false end\n"
    "local prev = redis.call('HGET', KEYS[2], 'holder')\n"
    "redis.call('HSET', KEYS[2], 'holder', ARGV[1])\n"
    "local r = redis.call('HMGET', KEYS[2], 'epoch', 'run_id', 'base_id', 'mgen')\n"
    "r[5] = prev or ''\n"
    "return r\n";

/* The replica state's generation (mirror_gen of shared.h): only raised. */
static const char MGEN[] =
    "local c = tonumber(redis.call('HGET', KEYS[1], 'mgen') or '0')\n"
    "if tonumber(ARGV[1]) > c then redis.call('HSET', KEYS[1], 'mgen', ARGV[1]) end\n"
    "return 1\n";

static const char RELEASE[] =
    "if redis.call('HGET', KEYS[2], 'epoch') == ARGV[2] then\n"
    "  for i = 3, #ARGV, 2 do\n"
    "    local c = tonumber(redis.call('HGET', KEYS[2], ARGV[i]) or '0')\n"
    "    if tonumber(ARGV[i+1]) > c then redis.call('HSET', KEYS[2], ARGV[i], ARGV[i+1]) end\n"
    "  end\n"
    "end\n"
    "if KEYS[1] ~= '' and redis.call('HGET', KEYS[2], 'holder') == ARGV[1] then\n"
    "  redis.call('HDEL', KEYS[2], 'holder') end\n"
    "if KEYS[1] ~= '' and redis.call('GET', KEYS[1]) == ARGV[1] then\n"
    "  redis.call('DEL', KEYS[1]) return 1 end\n"
    "return 0\n";

static const char RENEW[] =
    "if redis.call('GET', KEYS[1]) == ARGV[1] then\n"
    "  return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end\n"
    "return 0\n";

static const char ALLOC[] =
    "if redis.call('HGET', KEYS[1], 'epoch') ~= ARGV[1] then return false end\n"
    "return redis.call('HINCRBY', KEYS[1], ARGV[2], ARGV[3])\n";

static const char INIT[] =
    "local m = tonumber(redis.call('HGET', KEYS[1], 'mgen') or '0')\n"
    "if tonumber(ARGV[6]) > m then m = tonumber(ARGV[6]) end\n"
    "redis.call('DEL', KEYS[1])\n"
    "redis.call('HSET', KEYS[1], 'epoch', ARGV[1], 'run_id', ARGV[2], 'base_id', ARGV[3],\n"
    "           'next_id', ARGV[3], 'csn', ARGV[4], 'durable', ARGV[4], 'next_seq', ARGV[5],\n"
    "           'mgen', string.format('%d', m))\n"
    "return 1\n";

static const char HEARTBEAT[] =
    "local t = redis.call('TIME')\n"
    "local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\n"
    "redis.call('HSET', KEYS[1], ARGV[1], ARGV[2] .. ' ' .. string.format('%d', now + tonumber(ARGV[3])))\n"
    "return 1\n";

static const char OLDEST[] =
    "local t = redis.call('TIME')\n"
    "local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\n"
    "local all = redis.call('HGETALL', KEYS[1])\n"
    "local live, snap, seg = 0, -1, -1\n"
    "for i = 1, #all, 2 do\n"
    "  local s, g, e = string.match(all[i+1], '^(%d+) (%d+) (%d+)$')\n"
    "  if e == nil or tonumber(e) < now then redis.call('HDEL', KEYS[1], all[i])\n"
    "  elseif all[i] ~= ARGV[1] then\n"
    "    live = live + 1\n"
    "    s = tonumber(s) g = tonumber(g)\n"
    "    if snap < 0 or s < snap then snap = s end\n"
    "    if seg < 0 or g < seg then seg = g end\n"
    "  end\n"
    "end\n"
    "return {live, string.format('%d', snap), string.format('%d', seg)}\n";

static int eval(sop__cluster *c, char *err, sop__rval **out, const char *script, int nkeys, const char **keys,
                int nargs, const char **args)
{
    const char *argv[24];
    size_t lens[24];
    char nk[8];
    snprintf(nk, sizeof nk, "%d", nkeys);
    int n = 0;
    argv[n++] = "EVAL";
    argv[n++] = script;
    argv[n++] = nk;
    for (int i = 0; i < nkeys; i++)
        argv[n++] = keys[i];
    for (int i = 0; i < nargs && n < 24; i++)
        argv[n++] = args[i];
    for (int i = 0; i < n; i++)
        lens[i] = strlen(argv[i]);
    return sop__redis_call(c->r, n, argv, lens, out, err, ERRLEN);
}

static uint64_t rval_u64(const sop__rval *v)
{
    if (v->type == SOP__R_INT)
        return (uint64_t)v->i;
    if (v->type == SOP__R_STR)
        return strtoull(v->s, NULL, 10);
    return 0;
}

/* ---- the database id ---- */

static int read_id(sop_db *db, const char *path, char id[33])
{
    for (int tries = 0; tries < 200; tries++) {
        char buf[40] = {0};
        size_t got = 0;
        int rc = sop__vfs_read_head(db->vfs, path, buf, 33, &got);
        if (rc)
            return rc;
        if (got == 33 && buf[32] == '\n' && strspn(buf, "0123456789abcdef") == 32) {
            memcpy(id, buf, 32);
            id[32] = 0;
            return 0;
        }
        usleep(5000); /* another process is writing it */
    }
    return SOP_ECORRUPT;
}

/* cluster.id: 128 random bits in hex, written once by whoever comes first. */
static int db_id(sop_db *db, char id[33])
{
    size_t n = strlen(db->path) + 16;
    char *path = sop__malloc(n);
    if (!path)
        return -ENOMEM;
    snprintf(path, n, "%s/cluster.id", db->path);
    sop_file *f;
    int rc = db->vfs->open(db->vfs, path, SOP_O_RDWR | SOP_O_CREATE | SOP_O_EXCL,
                           db->opt.file_mode, &f);
    if (rc == 0) {
        char buf[34];
        snprintf(buf, sizeof buf, "%016" PRIx64 "%016" PRIx64 "\n", rand64(), rand64());
        rc = db->vfs->write(db->vfs, f, buf, 33, 0);
        if (!rc)
            rc = db->vfs->sync(db->vfs, f);
        db->vfs->close(db->vfs, f);
        if (!rc)
            rc = db->vfs->sync_dir(db->vfs, db->path);
        if (rc)
            rc = sop__err(db, rc, "cannot write %s", path);
        else
            memcpy(id, buf, 32), id[32] = 0;
    } else if (rc == -EEXIST) {
        rc = read_id(db, path, id);
        if (rc)
            rc = sop__err(db, rc, "cannot read the cluster id in %s", path);
    } else {
        rc = sop__err(db, rc, "cannot create %s", path);
    }
    sop__free(path);
    return rc;
}

/* ---- open / close ---- */

/* Lock keys must never be evicted: refuse a server that evicts keys. */
static int check_eviction(sop_db *db)
{
    char err[ERRLEN];
    sop__cluster *c = db->cl;
    sop__rval *v;
    int rc = sop__redis_callv(c->r, &v, err, sizeof err, 3, "CONFIG", "GET", "maxmemory*");
    if (rc == SOP_EREDIS && !strstr(err, "cannot reach") && !strstr(err, "no answer"))
        return 0; /* CONFIG renamed or forbidden: cannot tell; documented */
    if (rc)
        return sop__err(db, rc, "%s", err);
    uint64_t maxmem = 0;
    const char *policy = "noeviction";
    for (size_t i = 0; v->type == SOP__R_ARR && i + 1 < v->n; i += 2) {
        if (v->a[i].type != SOP__R_STR || v->a[i + 1].type != SOP__R_STR)
            continue;
        if (!strcmp(v->a[i].s, "maxmemory"))
            maxmem = strtoull(v->a[i + 1].s, NULL, 10);
        else if (!strcmp(v->a[i].s, "maxmemory-policy"))
            policy = v->a[i + 1].s;
    }
    rc = 0;
    if (maxmem && strcmp(policy, "noeviction") != 0)
        rc = sop__err(db, SOP_EREDIS,
                      "Redis at %s may evict keys (maxmemory %" PRIu64 ", maxmemory-policy %s); "
                      "the commit lock must never be evicted: set maxmemory-policy noeviction",
                      sop__redis_addr(c->r), maxmem, policy);
    sop__rval_free(v);
    return rc;
}

int sop__cl_open(sop_db *db)
{
    char err[ERRLEN];
    if (!db->opt.redis_url || !*db->opt.redis_url)
        return sop__err(db, -EINVAL, "clustered mode needs a Redis address (redis_url)");
    sop__cluster *c = sop__calloc(1, sizeof *c);
    if (!c)
        return -ENOMEM;
    db->cl = c;
    pthread_mutex_init(&c->mu, NULL);
    pthread_mutex_init(&c->hb_mu, NULL);
    pthread_cond_init(&c->hb_cv, NULL);
    uint32_t lease = db->opt.lease_ms ? db->opt.lease_ms : 10000;
    if (lease < 100)
        lease = 100;
    c->lease_ns = (uint64_t)lease * 1000000u;
    int rc = sop__redis_new(db->opt.redis_url, db->opt.redis_timeout_ms, &c->r, err,
                            sizeof err);
    if (rc)
        return rerr(db, rc, "clustered mode", err);
    char id[33];
    rc = db_id(db, id);
    if (rc)
        return rc;
    snprintf(c->k_lock, sizeof c->k_lock, "sop:%s:lock", id);
    snprintf(c->k_state, sizeof c->k_state, "sop:%s:state", id);
    snprintf(c->k_procs, sizeof c->k_procs, "sop:%s:procs", id);
    snprintf(c->k_node, sizeof c->k_node, "sop:%s:n:", id);
    snprintf(c->proc, sizeof c->proc, "%016" PRIx64 "-%d", rand64(), (int)getpid());
    return check_eviction(db);
}

static void *heartbeat(void *arg);

int sop__cl_start(sop_db *db)
{
    sop__cluster *c = db->cl;
    c->hb_stop = 0;
    if (pthread_create(&c->hb, NULL, heartbeat, db) != 0)
        return sop__err(db, -EAGAIN, "cannot start the clustered-mode heartbeat thread");
    c->hb_running = 1;
    return 0;
}

void sop__cl_close(sop_db *db)
{
    char err[ERRLEN];
    sop__cluster *c = db->cl;
    if (!c)
        return;
    if (c->hb_running) {
        pthread_mutex_lock(&c->hb_mu);
        c->hb_stop = 1;
        pthread_cond_signal(&c->hb_cv);
        pthread_mutex_unlock(&c->hb_mu);
        pthread_join(c->hb, NULL);
    }
    if (c->present) {
        sop__rval *v;
        if (sop__redis_callv(c->r, &v, err, sizeof err, 3, "HDEL", c->k_procs, c->proc) == 0)
            sop__rval_free(v);
    }
    sop__redis_free(c->r);
    pthread_mutex_destroy(&c->mu);
    pthread_mutex_destroy(&c->hb_mu);
    pthread_cond_destroy(&c->hb_cv);
    sop__free(c);
    db->cl = NULL;
}

/* ---- this process's presence: what it may still read ---- */

static int publish_presence(sop_db *db)
{
    char err[ERRLEN];
    sop__cluster *c = db->cl;
    c->present = 1;
    /* a lower bound of every snapshot this process has or will take until
     * the next heartbeat: its oldest open one, or what it has applied */
    uint64_t snap = atomic_load(&db->csn), durable = atomic_load(&db->shm->durable_csn);
    if (durable < snap)
        snap = durable; /* a READ transaction's snapshot is the durable csn */
    pthread_mutex_lock(&db->mu);
    for (size_t i = 0; i < db->nsnaps; i++)
        if (db->snaps[i] && db->snaps[i] < snap)
            snap = db->snaps[i];
    pthread_mutex_unlock(&db->mu);
    uint64_t seg = atomic_load(&db->shm->slot[0].applied_seg);
    char val[64], ttl[24];
    snprintf(val, sizeof val, "%" PRIu64 " %" PRIu64, snap, seg);
    snprintf(ttl, sizeof ttl, "%" PRIu64, c->lease_ns / 1000000u);
    const char *keys[] = {c->k_procs};
    const char *args[] = {c->proc, val, ttl};
    sop__rval *v;
    int rc = eval(c, err, &v, HEARTBEAT, 1, keys, 3, args);
    if (rc)
        return rerr(db, rc, "cannot register this process with the cluster", err);
    sop__rval_free(v);
    return 0;
}

int sop__cl_register(sop_db *db) { return publish_presence(db); }

static void *heartbeat(void *arg)
{
    sop_db *db = arg;
    sop__cluster *c = db->cl;
    pthread_mutex_lock(&c->hb_mu);
    while (!c->hb_stop) {
        pthread_mutex_unlock(&c->hb_mu);
        publish_presence(db);
        pthread_mutex_lock(&c->hb_mu);
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        uint64_t ns = (uint64_t)ts.tv_nsec + c->lease_ns / 4;
        ts.tv_sec += (time_t)(ns / 1000000000u);
        ts.tv_nsec = (long)(ns % 1000000000u);
        if (!c->hb_stop)
            pthread_cond_timedwait(&c->hb_cv, &c->hb_mu, &ts);
    }
    pthread_mutex_unlock(&c->hb_mu);
    return NULL;
}

int sop__cl_oldest(sop_db *db, uint64_t *snap, uint32_t *seg, int *others)
{
    char err[ERRLEN];
    sop__cluster *c = db->cl;
    const char *keys[] = {c->k_procs};
    const char *args[] = {c->proc};
    sop__rval *v;
    *snap = UINT64_MAX;
    *seg = UINT32_MAX;
    *others = 0;
    int rc = eval(c, err, &v, OLDEST, 1, keys, 1, args);
    if (rc)
        return rerr(db, rc, "cannot list the processes of the cluster", err);
    if (v->type == SOP__R_ARR && v->n == 3) {
        *others = (int)rval_u64(&v->a[0]);
        if (*others) {
            *snap = rval_u64(&v->a[1]);
            uint64_t g = rval_u64(&v->a[2]);
            *seg = g > UINT32_MAX ? UINT32_MAX : (uint32_t)g;
        }
    }
    sop__rval_free(v);
    return 0;
}

/* ---- the commit lock ---- */

/* Redis lost its state, the lock with it: whoever held the lost lock
 * stops writing when its lease is over (sop__cl_lease_ok). Wait that out,
 * renewing ours, before touching the log. */
static int wait_out(sop_db *db)
{
    sop__cluster *c = db->cl;
    uint64_t until = sop__now_ns() + c->lease_ns + c->lease_ns / 4;
    while (sop__now_ns() < until) {
        int rc = sop__cl_lease_ok(db);
        if (rc)
            return rc;
        usleep(20000);
    }
    return 0;
}

int sop__cl_lock(sop_db *db)
{
    char err[ERRLEN];
    sop__cluster *c = db->cl;
    snprintf(c->token, sizeof c->token, "%016" PRIx64 "%016" PRIx64, rand64(), rand64());
    char px[24];
    snprintf(px, sizeof px, "%" PRIu64, c->lease_ns / 1000000u);
    const char *keys[] = {c->k_lock, c->k_state};
    const char *args[] = {c->token, px};
    uint64_t start = sop__now_ns(), wait = 3 * c->lease_ns;
    useconds_t pause = 100;
    for (;;) {
        uint64_t t0 = sop__now_ns();
        sop__rval *v;
        int rc = eval(c, err, &v, ACQUIRE, 2, keys, 2, args);
        if (rc)
            return rerr(db, rc, "cannot take the commit lock", err);
        if (v->type == SOP__R_ARR && v->n == 5) {
            c->deadline = t0 + c->lease_ns;
            c->died = v->a[4].type == SOP__R_STR && v->a[4].len > 0;
            /* a failover published before the last commit this process is
             * about to follow: adopted before the log is read */
            sop__atomic_max(&db->shm->mirror_gen, rval_u64(&v->a[3]));
            char run_id[48];
            sop__redis_run_id(c->r, run_id);
            uint64_t epoch = v->a[0].type == SOP__R_STR ? rval_u64(&v->a[0]) : 0;
            c->lost = !epoch || v->a[1].type != SOP__R_STR || strcmp(v->a[1].s, run_id) != 0;
            if (!c->lost && epoch != atomic_load(&c->epoch)) {
                /* another process published a new epoch: ids held from the
                 * old one may be handed out again */
                c->base_id = rval_u64(&v->a[2]);
                sop__reg_epoch_reset(&db->reg, c->base_id);
                pthread_mutex_lock(&c->mu);
                c->seq_lo = c->seq_hi = 0;
                pthread_mutex_unlock(&c->mu);
                atomic_store(&c->epoch, epoch);
            }
            c->died |= c->lost; /* whoever held the lost lock may have died too */
            sop__rval_free(v);
            c->held = 1;
            return c->lost ? wait_out(db) : 0;
        }
        sop__rval_free(v);
        if (sop__now_ns() - start > wait)
            return sop__err(db, SOP_EBUSY, "the commit lock of the cluster has been held by "
                            "another process for %" PRIu64 " ms", (sop__now_ns() - start) / 1000000u);
        usleep(pause);
        if (pause < 5000)
            pause *= 2;
    }
}

int sop__cl_lease_ok(sop_db *db)
{
    char err[ERRLEN];
    sop__cluster *c = db->cl;
    if (!c || !c->held)
        return 0;
    if (!c->deadline)
        return sop__err(db, SOP_EREDIS, "the commit lock's lease was lost; nothing more is "
                        "written until it is released");
    uint64_t now = sop__now_ns(), margin = c->lease_ns / 4;
    if (now + margin < c->deadline && c->deadline - now > c->lease_ns / 2)
        return 0;
    if (now + margin >= c->deadline)
        goto lost; /* too late to renew safely */
    char px[24];
    snprintf(px, sizeof px, "%" PRIu64, c->lease_ns / 1000000u);
    const char *keys[] = {c->k_lock};
    const char *args[] = {c->token, px};
    sop__rval *v;
    uint64_t t0 = sop__now_ns();
    int rc = eval(c, err, &v, RENEW, 1, keys, 2, args);
    if (!rc) {
        int ok = v->type == SOP__R_INT && v->i == 1;
        sop__rval_free(v);
        if (ok) {
            c->deadline = t0 + c->lease_ns;
            return 0;
        }
    }
lost:
    c->deadline = 0;
    return sop__err(db, SOP_EREDIS, "the commit lock's lease ran out (%" PRIu64 " ms) before "
                    "the commit could write; nothing more is written", c->lease_ns / 1000000u);
}

static int publish_epoch(sop_db *db)
{
    char err[ERRLEN];
    sop__cluster *c = db->cl;
    int rc = sop__cl_lease_ok(db);
    if (rc)
        return rc;
    sop__log *l = &db->log;
    rc = sop__log_sync(l, l->cur, l->end, db);
    if (rc)
        return rc;
    uint64_t csn = atomic_load(&db->csn);
    sop__atomic_max(&db->shm->durable_csn, csn);
    uint64_t epoch = rand64() | 1;
    uint64_t base = atomic_load(&db->shm->next_id);
    if (base < sop__reg_next_id(&db->reg))
        base = sop__reg_next_id(&db->reg);
    /* Redis may have lost the replica state's generation too: the files
     * say it (INIT keeps a higher one a failover published meanwhile) */
    uint64_t mgen = sop__db_mirror_reread(db);
    char run_id[48], e[24], b[24], cs[24], sq[24], mg[24];
    sop__redis_run_id(c->r, run_id);
    snprintf(e, sizeof e, "%" PRIu64, epoch);
    snprintf(b, sizeof b, "%" PRIu64, base);
    snprintf(cs, sizeof cs, "%" PRIu64, csn);
    snprintf(sq, sizeof sq, "%" PRIu64, atomic_load(&db->shm->next_seq));
    snprintf(mg, sizeof mg, "%" PRIu64, mgen);
    const char *keys[] = {c->k_state};
    const char *args[] = {e, run_id, b, cs, sq, mg};
    sop__rval *v;
    rc = eval(c, err, &v, INIT, 1, keys, 6, args);
    if (rc)
        return rerr(db, rc, "cannot publish the cluster's state", err);
    sop__rval_free(v);
    sop__reg_epoch_reset(&db->reg, base);
    pthread_mutex_lock(&c->mu);
    c->seq_lo = c->seq_hi = 0;
    pthread_mutex_unlock(&c->mu);
    atomic_store(&db->shm->next_id, base);
    c->base_id = base;
    atomic_store(&c->epoch, epoch);
    c->lost = 0;
    atomic_fetch_add(&db->st_redis_epochs, 1);
    return 0;
}

int sop__cl_locked(sop_db *db) { return db->cl->lost ? publish_epoch(db) : 0; }

int sop__cl_holder_died(sop_db *db) { return db->cl && db->cl->held && db->cl->died; }

static void u64s(char *buf, uint64_t v) { snprintf(buf, 24, "%" PRIu64, v); }

void sop__cl_unlock(sop_db *db)
{
    char err[ERRLEN];
    sop__cluster *c = db->cl;
    char e[24], cs[24], ni[24], ns[24];
    u64s(e, atomic_load(&c->epoch));
    u64s(cs, atomic_load(&db->csn));
    u64s(ni, atomic_load(&db->shm->next_id));
    u64s(ns, atomic_load(&db->shm->next_seq));
    const char *keys[] = {c->held && c->deadline ? c->k_lock : "", c->k_state};
    const char *args[] = {c->token, e, "csn", cs, "next_id", ni, "next_seq", ns};
    sop__rval *v;
    /* a failure leaves the lock to expire: nothing is half done, since
     * everything this process wrote is in the log */
    if (eval(c, err, &v, RELEASE, 2, keys, 8, args) == 0)
        sop__rval_free(v);
    c->held = 0;
    c->deadline = 0;
}

/* ---- between commits ---- */

int sop__cl_peek(sop_db *db, uint64_t *csn, uint64_t *durable)
{
    char err[ERRLEN];
    sop__cluster *c = db->cl;
    sop__rval *v;
    int rc = sop__redis_callv(c->r, &v, err, sizeof err, 6, "HMGET", c->k_state, "csn",
                              "durable", "epoch", "mgen");
    if (rc)
        return rerr(db, rc, "cannot read the cluster's state", err);
    *csn = *durable = 0;
    if (v->type == SOP__R_ARR && v->n == 4) {
        *csn = rval_u64(&v->a[0]);
        *durable = rval_u64(&v->a[1]);
        /* read with csn: a commit learned here was made after every
         * failover published before it, and the mirror layer adopts those
         * before the log is read */
        sop__atomic_max(&db->shm->mirror_gen, rval_u64(&v->a[3]));
    }
    sop__rval_free(v);
    return 0;
}

uint64_t sop__cl_epoch(sop_db *db) { return atomic_load(&db->cl->epoch); }

int sop__cl_mgen(sop_db *db, uint64_t gen)
{
    char err[ERRLEN], g[24];
    sop__cluster *c = db->cl;
    if (!c)
        return 0;
    u64s(g, gen);
    const char *keys[] = {c->k_state};
    const char *args[] = {g};
    sop__rval *v;
    int rc = eval(c, err, &v, MGEN, 1, keys, 1, args);
    if (rc)
        return rerr(db, rc, "cannot publish the replica state to the cluster", err);
    sop__rval_free(v);
    return 0;
}

void sop__cl_durable(sop_db *db, uint64_t csn)
{
    char err[ERRLEN];
    sop__cluster *c = db->cl;
    char e[24], cs[24];
    u64s(e, atomic_load(&c->epoch));
    u64s(cs, csn);
    const char *keys[] = {"", c->k_state};
    const char *args[] = {"", e, "durable", cs};
    sop__rval *v;
    if (eval(c, err, &v, RELEASE, 2, keys, 4, args) == 0)
        sop__rval_free(v);
}

static int alloc(sop_db *db, const char *field, uint64_t n, uint64_t *last)
{
    char err[ERRLEN];
    sop__cluster *c = db->cl;
    char e[24], num[24];
    u64s(e, atomic_load(&c->epoch));
    u64s(num, n);
    const char *keys[] = {c->k_state};
    const char *args[] = {e, field, num};
    sop__rval *v;
    int rc = eval(c, err, &v, ALLOC, 1, keys, 3, args);
    if (rc)
        return rerr(db, rc, "cannot draw ids from the cluster", err);
    int ok = v->type == SOP__R_INT;
    *last = ok ? (uint64_t)v->i : 0;
    sop__rval_free(v);
    if (!ok)
        return sop__err(db, SOP_EREDIS, "Redis lost the cluster's state (restart or flush) during "
                        "the transaction; retry it");
    return 0;
}

int sop__cl_ids(sop_db *db, uint64_t n, uint64_t *first)
{
    uint64_t last;
    int rc = alloc(db, "next_id", n, &last);
    if (rc)
        return rc;
    *first = last - n;
    sop__atomic_max(&db->shm->next_id, last);
    return 0;
}

int sop__cl_seq(sop_db *db, uint64_t *seq)
{
    sop__cluster *c = db->cl;
    pthread_mutex_lock(&c->mu);
    int rc = 0;
    if (c->seq_lo == c->seq_hi) {
        uint64_t last;
        rc = alloc(db, "next_seq", SEQ_CHUNK, &last);
        if (!rc) {
            c->seq_lo = last - SEQ_CHUNK;
            c->seq_hi = last;
            sop__atomic_max(&db->shm->next_seq, last);
        }
    }
    if (!rc)
        *seq = c->seq_lo++;
    pthread_mutex_unlock(&c->mu);
    return rc;
}

/* ---- the L2 cache of node images ---- */

int sop__cl_cache_get(sop_db *db, uint32_t seg, uint64_t off, uint32_t len, uint8_t *buf)
{
    sop__cluster *c = db->cl;
    char key[96];
    snprintf(key, sizeof key, "%s%u:%" PRIu64, c->k_node, seg, off);
    sop__rval *v;
    char err[ERRLEN];
    if (sop__redis_callv(c->r, &v, err, sizeof err, 2, "GET", key))
        return SOP_ENOTFOUND; /* Redis down: read the segment */
    int rc = SOP_ENOTFOUND;
    if (v->type == SOP__R_STR && v->len == len) {
        memcpy(buf, v->s, len);
        rc = 0;
    }
    sop__rval_free(v);
    return rc;
}

void sop__cl_cache_put(sop_db *db, uint32_t seg, uint64_t off, const uint8_t *rec, uint32_t len)
{
    sop__cluster *c = db->cl;
    char key[96], px[24];
    snprintf(key, sizeof key, "%s%u:%" PRIu64, c->k_node, seg, off);
    u64s(px, db->opt.redis_cache_ms);
    const char *argv[] = {"SET", key, (const char *)rec, "PX", px};
    size_t lens[] = {3, strlen(key), len, 2, strlen(px)};
    sop__rval *v;
    char err[ERRLEN];
    if (sop__redis_call(c->r, 5, argv, lens, &v, err, sizeof err) == 0)
        sop__rval_free(v);
}

uint64_t sop__cl_calls(sop_db *db) { return db->cl ? sop__redis_calls(db->cl->r) : 0; }
