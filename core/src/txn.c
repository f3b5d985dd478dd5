/*
 * txn.c - transactions: snapshot reads of nodes, copy-on-write of changed
 * nodes, and the commit protocol.
 *
 * Commit (docs/design/commit.md):
 *  1. under the commit lock, validate: every node the transaction read
 *     (WRITE mode) and every node it changed or deleted still has the
 *     version it saw in the registry; otherwise SOP_ECONFLICT;
 *  2. assign the next commit sequence number (csn) and append, in one
 *     write, the new images and a commit record listing the new handles;
 *  3. apply the handles to the in-memory registry and release the lock;
 *  4. sync the segment (group commit); the commit record on stable storage
 *     is the commit point; then make the csn visible to READ snapshots.
 * A failed append or sync puts the database into a panic state.
 */
#include <errno.h>
#include <string.h>

#include "bytes.h"
#include "crc32c.h"
#include "cluster.h"
#include "internal.h"
#include "killpoint.h"
#include "mem.h"

static int push_u64(uint64_t **arr, size_t *n, size_t *cap, uint64_t v)
{
    uint64_t *a = sop__grow(*arr, cap, *n + 1, sizeof *a, 16);
    if (!a)
        return -ENOMEM;
    *arr = a;
    a[(*n)++] = v;
    return 0;
}

int sop__txn_check(sop_txn *txn, int write)
{
    if (!txn)
        return -EINVAL;
    sop_db *db = txn->db;
    if (atomic_load(&db->panic))
        return sop__err(db, SOP_EPANIC, "database is in a panic state; reopen it");
    if (sop__now_ns() > txn->deadline) {
        txn->state = SOP__TXN_FAILED;
        return sop__err(db, SOP_ETIMEDOUT, "transaction exceeded its maximum duration");
    }
    if (txn->state != SOP__TXN_ACTIVE)
        return sop__err(db, SOP_ETXNDONE, "transaction failed earlier; roll it back");
    if (write && txn->mode == SOP_TXN_READ)
        return sop__err(db, SOP_EREADONLY, "write in a READ transaction");
    return 0;
}

int sop__txn_fail(sop_txn *txn, int rc)
{
    /* errors that leave the transaction intact */
    if (rc == SOP_ENOTFOUND || rc == SOP_EEXISTS || rc == SOP_EREADONLY || rc == -EINVAL ||
        rc == SOP_ETOOBIG || rc == SOP_ENAME || rc == SOP_EINCOMPLETE || rc == SOP_ENOCMP ||
        rc == SOP_EMISMATCH)
        return rc;
    /* a READ transaction changed nothing: only time and panic end it */
    if (txn->mode != SOP_TXN_READ || rc == SOP_ETIMEDOUT || rc == SOP_EPANIC)
        txn->state = SOP__TXN_FAILED;
    return rc;
}

static void txn_free(sop_txn *t, int committed);

/* A new transaction. @locked: the caller holds commit_mu and has followed
 * the log (a merge at commit). */
static int txn_new(sop_db *db, sop_txn_mode mode, uint32_t max_ms, int locked, sop_txn **txnp)
{
    sop_txn *t = sop__calloc(1, sizeof *t);
    if (!t)
        return -ENOMEM;
    t->db = db;
    t->mode = mode;
    t->deadline = sop__now_ns() + (uint64_t)(max_ms ? max_ms : db->opt.txn_max_ms) * 1000000ull;
    /* register a provisional snapshot 0 first, so that no process deletes
     * a segment this transaction may still need while it takes its own */
    int rc = 0;
    pthread_mutex_lock(&db->mu);
    uint64_t *a = sop__grow(db->snaps, &db->capsnaps, db->nsnaps + 1, sizeof *a, 16);
    if (a)
        db->snaps = a;
    else
        rc = -ENOMEM;
    if (!rc) {
        db->snaps[db->nsnaps++] = 0;
        db->ntxn++;
        sop__publish_snap_locked(db);
    }
    pthread_mutex_unlock(&db->mu);
    if (rc) {
        sop__free(t);
        return rc;
    }
    /* learn the commits of other processes, then: writers see everything
     * applied (what they read is validated at commit, and a commit is
     * durable only after those it read from); readers what is durable */
    if (!locked)
        rc = sop__learn(db);
    if (db->cl)
        t->epoch = sop__cl_epoch(db);
    uint64_t applied = atomic_load(&db->csn), durable = atomic_load(&db->shm->durable_csn);
    t->snap = mode == SOP_TXN_READ && durable < applied ? durable : applied;
    pthread_mutex_lock(&db->mu);
    for (size_t i = 0; i < db->nsnaps; i++)
        if (db->snaps[i] == 0) {
            db->snaps[i] = t->snap;
            break;
        }
    sop__publish_snap_locked(db);
    pthread_mutex_unlock(&db->mu);
    *txnp = t;
    if (rc) {
        txn_free(t, 0);
        *txnp = NULL;
    }
    return rc;
}

int sop_txn_begin(sop_db *db, sop_txn_mode mode, uint32_t max_ms, sop_txn **txnp)
{
    if (!txnp)
        return -EINVAL;
    *txnp = NULL;
    if (!db || db->open_rc || mode > SOP_TXN_NOCHECK)
        return -EINVAL;
    if (atomic_load(&db->panic))
        return sop__err(db, SOP_EPANIC, "database is in a panic state; reopen it");
    if (mode != SOP_TXN_READ && (db->opt.flags & SOP_DB_RDONLY))
        return sop__err(db, SOP_EREADONLY, "database is open read-only");
    return txn_new(db, mode, max_ms, 0, txnp);
}

sop_txn_mode sop_txn_get_mode(const sop_txn *txn) { return txn ? txn->mode : SOP_TXN_READ; }

sop_db *sop_txn_db(const sop_txn *txn) { return txn ? txn->db : NULL; }

void sop__txn_free_tmp(sop_txn *txn)
{
    for (size_t i = 0; i < txn->ntmp; i++)
        sop__free(txn->tmp[i]);
    txn->ntmp = 0;
}

void sop__txn_attach(sop_txn *txn, sop__txn_ext *e)
{
    e->next = txn->exts;
    txn->exts = e;
}

static void txn_free(sop_txn *t, int committed)
{
    sop_db *db = t->db;
    for (sop__txn_ext *e = t->exts, *n; e; e = n) {
        n = e->next;
        e->free(e);
    }
    SOP__U64MAP_FOREACH(&t->seen, i)
    sop__cache_unpin(db->cache, t->seen.vals[i]);
    sop__u64map_free(&t->seen);
    SOP__U64MAP_FOREACH(&t->dirty, i)
    {
        sop__dirty *d = t->dirty.vals[i];
        if (d->node)
            sop__node_free(d->node);
        sop__free(d);
    }
    sop__u64map_free(&t->dirty);
    if (!committed)
        for (size_t i = 0; i < t->nfresh; i++)
            sop__reg_release_id(&db->reg, t->fresh[i]);
    sop__free(t->fresh);
    sop__free(t->drops);
    for (size_t i = 0; i < t->nblobs; i++)
        sop__free(t->blobs[i].data);
    sop__free(t->blobs);
    sop__u64map_free(&t->blobix);
    sop__free(t->counters);
    for (sop_store *s = t->stores, *n; s; s = n) {
        n = s->next;
        sop__free(s->name);
        sop__free(s->cmpname);
        sop__free(s);
    }
    for (sop_cursor *c = t->cursors, *n; c; c = n) {
        n = c->next;
        sop__free(c->ikey);
        sop__free(c);
    }
    sop__txn_free_tmp(t);
    sop__free(t->tmp);
    sop__arena_free(&t->opmem);
    sop__free(t->ops);
    pthread_mutex_lock(&db->mu);
    db->ntxn--;
    for (size_t i = 0; i < db->nsnaps; i++)
        if (db->snaps[i] == t->snap) {
            db->snaps[i] = db->snaps[--db->nsnaps];
            break;
        }
    sop__publish_snap_locked(db);
    pthread_mutex_unlock(&db->mu);
    sop__free(t);
}

int sop_txn_rollback(sop_txn *txn)
{
    if (txn)
        txn_free(txn, 0);
    return 0;
}

/* ------------------------------------------------------------------ */
/* Node access                                                        */
/* ------------------------------------------------------------------ */

/* The whole image record of @id at (seg, off, len), checked (CRC, type,
 * id): in place in a segment map when there is one (*own = NULL), else
 * read into a new buffer *own that the caller frees. */
static int view_image(sop_db *db, uint32_t seg, uint64_t off, uint32_t len, uint64_t id,
                      const uint8_t **recp, uint8_t **own)
{
    *own = NULL;
    if (len < SOP__REC_HDR + SOP__IMG_HDR)
        return sop__err(db, SOP_ECORRUPT, "id %llu: bad image length %u", (unsigned long long)id, len);
    const uint8_t *rec = NULL;
    int rc = sop__seg_view(db, seg, off, len, &rec);
    if (rc == 1) {
        if (!(*own = sop__malloc(len)))
            return -ENOMEM;
        rec = *own;
        int l2 = db->cl && db->opt.redis_cache_ms;
        int type;
        uint64_t csn;
        if (l2 && sop__cl_cache_get(db, seg, off, len, *own) == 0 &&
            sop__rec_check(*own, len, &type, &csn) >= 0) {
            atomic_fetch_add(&db->st_l2_hits, 1);
            rc = 0;
        } else {
            rc = sop__log_read(&db->log, seg, off, len, *own, db);
            if (l2) {
                atomic_fetch_add(&db->st_l2_misses, 1);
                if (!rc)
                    sop__cl_cache_put(db, seg, off, *own, len);
            }
        }
    }
    if (!rc && (rec[4] != SOP__REC_IMAGE || sop__get64(rec + SOP__REC_HDR) != id))
        rc = sop__err(db, SOP_ECORRUPT, "segment %u offset %llu: not an image of id %llu", seg,
                      (unsigned long long)off, (unsigned long long)id);
    if (rc) {
        sop__free(*own);
        *own = NULL;
        return rc;
    }
    *recp = rec;
    return 0;
}

/* As view_image(), always into a new buffer *recp that the caller frees. */
static int read_image(sop_db *db, uint32_t seg, uint64_t off, uint32_t len, uint64_t id,
                      uint8_t **recp)
{
    const uint8_t *rec = NULL;
    uint8_t *own;
    int rc = view_image(db, seg, off, len, id, &rec, &own);
    if (rc)
        return rc;
    if (!own && !(own = sop__memdup(rec, len)))
        return -ENOMEM;
    *recp = own;
    return 0;
}

/* Finds the location of the image of @id visible at @snap. */
static int locate(sop_db *db, uint64_t id, uint64_t snap, sop__handle *out)
{
    sop__handle h = sop__reg_get(&db->reg, id);
    if (!h.version || !h.seg)
        return sop__err(db, SOP_ECORRUPT, "id %llu has no image", (unsigned long long)id);
    if (h.csn <= snap) {
        if (h.len & SOP__H_DELETED)
            return sop__err(db, SOP_ECORRUPT, "id %llu is deleted", (unsigned long long)id);
        *out = h;
        return 0;
    }
    /* newer than the snapshot: walk back the images from the handle's
     * location (for a deletion, that is the last image itself) */
    sop__handle p = {h.seg, sop__handle_len(&h), h.off, 0, 0};
    for (int hops = 0; hops < 1000000; hops++) {
        const uint8_t *rec = NULL;
        uint8_t *own;
        int rc = view_image(db, p.seg, p.off, p.len, id, &rec, &own);
        if (rc)
            return rc;
        const uint8_t *ih = rec + SOP__REC_HDR;
        p.csn = sop__get64(rec + 16);
        p.version = sop__get64(ih + 8);
        sop__handle prev = {sop__get32(ih + 16), sop__get32(ih + 20), sop__get64(ih + 24), 0, 0};
        sop__free(own);
        if (p.csn <= snap) {
            *out = p;
            return 0;
        }
        if (!prev.seg)
            break;
        p = prev;
    }
    return sop__err(db, SOP_ECORRUPT, "id %llu: no version visible to the snapshot",
                    (unsigned long long)id);
}

int sop__load_node(sop_db *db, uint64_t id, uint64_t snap, sop__node **out)
{
    sop__handle h;
    int rc = locate(db, id, snap, &h);
    if (rc)
        return rc;
    sop__node *n = sop__cache_get(db->cache, id, h.version);
    if (n) {
        *out = n;
        return 0;
    }
    const uint8_t *rec = NULL;
    uint8_t *own;
    rc = view_image(db, h.seg, h.off, sop__handle_len(&h), id, &rec, &own);
    if (rc)
        return rc;
    const uint8_t *ih = rec + SOP__REC_HDR;
    uint32_t plen = sop__get32(rec + 8);
    if (ih[32] != SOP__IMG_NODE || sop__get64(ih + 8) != h.version)
        rc = sop__err(db, SOP_ECORRUPT, "id %llu: image kind or version mismatch", (unsigned long long)id);
    else
        rc = sop__node_decode(ih + SOP__IMG_HDR, plen - SOP__IMG_HDR, id, h.version,
                              own ? 0 : h.seg, &n); /* in a map: no copy */
    sop__free(own);
    if (rc)
        return rc == SOP_ECORRUPT ? sop__err(db, rc, "node %llu: bad image", (unsigned long long)id) : rc;
    *out = sop__cache_put(db->cache, n);
    return 0;
}

static int tx_get(void *ctx, uint64_t id, sop__node **out)
{
    sop_txn *t = ctx;
    sop__dirty *d = sop__u64map_get(&t->dirty, id);
    if (d) {
        *out = d->node;
        return 0;
    }
    sop__node *n = sop__u64map_get(&t->seen, id);
    if (n) {
        *out = n;
        return 0;
    }
    int rc = sop__load_node(t->db, id, t->snap, &n);
    if (rc)
        return rc;
    rc = sop__u64map_put(&t->seen, id, n);
    if (rc) {
        sop__cache_unpin(t->db->cache, n);
        return rc;
    }
    *out = n;
    return 0;
}

static int tx_get_mut(void *ctx, uint64_t id, sop__node **out)
{
    sop_txn *t = ctx;
    sop__dirty *d = sop__u64map_get(&t->dirty, id);
    if (d) {
        *out = d->node;
        return 0;
    }
    sop__node *n;
    int rc = tx_get(ctx, id, &n);
    if (rc)
        return rc;
    d = sop__calloc(1, sizeof *d);
    if (!d)
        return -ENOMEM;
    rc = sop__node_clone(n, &d->node);
    if (!rc)
        rc = sop__u64map_put(&t->dirty, id, d);
    if (rc) {
        if (d->node)
            sop__node_free(d->node);
        sop__free(d);
        return rc;
    }
    d->base_version = n->version;
    *out = d->node;
    return 0;
}

int sop__txn_new_id(sop_txn *t, uint64_t *id)
{
    int rc = sop__reg_alloc_id(&t->db->reg, id);
    if (!rc) {
        rc = push_u64(&t->fresh, &t->nfresh, &t->capfresh, *id);
        if (rc)
            sop__reg_release_id(&t->db->reg, *id);
    }
    return rc;
}

static int tx_alloc(void *ctx, int leaf, sop__node **out)
{
    sop_txn *t = ctx;
    uint64_t id;
    int rc = sop__txn_new_id(t, &id);
    if (rc)
        return rc;
    sop__dirty *d = sop__calloc(1, sizeof *d);
    if (!d)
        return -ENOMEM;
    rc = sop__node_new(leaf, id, &d->node);
    if (!rc)
        rc = sop__u64map_put(&t->dirty, id, d);
    if (rc) {
        if (d->node)
            sop__node_free(d->node);
        sop__free(d);
        return rc;
    }
    *out = d->node;
    return 0;
}

static int is_fresh(const sop_txn *t, uint64_t id)
{
    for (size_t i = t->nfresh; i-- > 0;)
        if (t->fresh[i] == id)
            return 1;
    return 0;
}

static int tx_drop(void *ctx, uint64_t id)
{
    sop_txn *t = ctx;
    sop__dirty *d = sop__u64map_get(&t->dirty, id);
    if (d) {
        sop__node_free(d->node);
        sop__free(d);
        sop__u64map_del(&t->dirty, id);
    }
    if (is_fresh(t, id))
        return 0; /* never committed: its id goes back at the end */
    /* validate the version it had when deleted: it is in the read set */
    if (!sop__u64map_get(&t->seen, id)) {
        sop__node *n;
        int rc = tx_get(ctx, id, &n);
        if (rc)
            return rc;
    }
    return push_u64(&t->drops, &t->ndrops, &t->capdrops, id);
}

void sop__txn_tree_init(sop_txn *txn, sop__tree *t, uint64_t root, uint32_t node_bytes)
{
    memset(t, 0, sizeof *t);
    t->ctx = txn;
    t->get = tx_get;
    t->get_mut = tx_get_mut;
    t->alloc = tx_alloc;
    t->drop = tx_drop;
    t->cmp = NULL; /* bytewise */
    t->root = root;
    t->node_bytes = node_bytes;
}

/* ------------------------------------------------------------------ */
/* Blobs and counters                                                 */
/* ------------------------------------------------------------------ */

/* Room for one more blob of @t (array and index). */
static int blob_room(sop_txn *t)
{
    sop__blob *b = sop__grow(t->blobs, &t->capblobs, t->nblobs + 1, sizeof *b, 8);
    if (!b)
        return -ENOMEM;
    t->blobs = b;
    /* a put cannot fail after the id is taken: make the index grow now */
    uint64_t probe = UINT64_MAX;
    int rc = sop__u64map_put(&t->blobix, probe, (void *)1);
    if (!rc)
        sop__u64map_del(&t->blobix, probe);
    return rc;
}

/* Adds @b to the blobs of @t (room made by blob_room()). */
static void blob_add(sop_txn *t, const sop__blob *b)
{
    t->blobs[t->nblobs++] = *b;
    sop__u64map_put(&t->blobix, b->id, (void *)(uintptr_t)t->nblobs);
}

/* The blob of @t with id @id, or NULL. */
static sop__blob *blob_find(sop_txn *t, uint64_t id)
{
    uintptr_t i = (uintptr_t)sop__u64map_get(&t->blobix, id);
    return i ? &t->blobs[i - 1] : NULL;
}

int sop__txn_put_blob(sop_txn *t, const void *data, size_t len, uint64_t *id)
{
    int rc = blob_room(t);
    if (rc)
        return rc;
    uint8_t *copy = sop__memdup(data, len);
    if (!copy)
        return -ENOMEM;
    rc = sop__txn_new_id(t, id);
    if (rc) {
        sop__free(copy);
        return rc;
    }
    blob_add(t, &(sop__blob){.id = *id, .data = copy, .len = len});
    return 0;
}

static int keep_tmp(sop_txn *t, uint8_t *p)
{
    uint8_t **a = sop__grow(t->tmp, &t->captmp, t->ntmp + 1, sizeof *a, 8);
    if (!a)
        return -ENOMEM;
    t->tmp = a;
    t->tmp[t->ntmp++] = p;
    return 0;
}

int sop__txn_fetch_blob(sop_txn *t, uint64_t id, size_t size, const uint8_t **data,
                        uint8_t **own)
{
    *own = NULL;
    sop_db *db = t->db;
    sop__handle h;
    int rc = 0;
    const sop__blob *b = blob_find(t, id);
    if (b && !b->early) {
        *data = b->data;
        return 0;
    }
    if (b)
        h = b->at; /* written early: not in the registry before the commit */
    else
        rc = locate(db, id, t->snap, &h);
    if (rc)
        return rc;
    uint8_t *rec = NULL;
    rc = read_image(db, h.seg, h.off, sop__handle_len(&h), id, &rec);
    if (rc)
        return rc;
    uint32_t plen = sop__get32(rec + 8);
    if (rec[SOP__REC_HDR + 32] != SOP__IMG_BLOB || plen - SOP__IMG_HDR != size) {
        sop__free(rec);
        return sop__err(db, SOP_ECORRUPT, "blob %llu: kind or size mismatch", (unsigned long long)id);
    }
    *own = rec;
    *data = rec + SOP__REC_HDR + SOP__IMG_HDR;
    return 0;
}

int sop__txn_get_blob(sop_txn *t, uint64_t id, size_t size, const uint8_t **data)
{
    uint8_t *own;
    int rc = sop__txn_fetch_blob(t, id, size, data, &own);
    if (rc || !own)
        return rc;
    rc = keep_tmp(t, own);
    if (rc)
        sop__free(own);
    return rc;
}

int sop__txn_drop_blob(sop_txn *t, uint64_t id)
{
    sop__blob *b = blob_find(t, id);
    if (!b)
        return sop__txn_drop_id(t, id);
    /* fresh id: released at the end; an early image is left unreferenced */
    size_t i = (size_t)(b - t->blobs);
    sop__free(b->data);
    sop__u64map_del(&t->blobix, id);
    t->blobs[i] = t->blobs[--t->nblobs];
    if (i < t->nblobs)
        sop__u64map_put(&t->blobix, t->blobs[i].id, (void *)(uintptr_t)(i + 1));
    return 0;
}

int sop__txn_drop_id(sop_txn *t, uint64_t id)
{
    return push_u64(&t->drops, &t->ndrops, &t->capdrops, id);
}

sop__counter *sop__txn_counter(sop_txn *t, uint64_t id, int create)
{
    for (size_t i = 0; i < t->ncounters; i++)
        if (t->counters[i].id == id)
            return &t->counters[i];
    sop__counter *a = sop__grow(t->counters, &t->capcounters, t->ncounters + 1, sizeof *a, 8);
    if (!a)
        return NULL;
    t->counters = a;
    sop__counter *c = &t->counters[t->ncounters++];
    memset(c, 0, sizeof *c);
    c->id = id;
    c->loaded = create; /* a new counter starts at 0 */
    return c;
}

/* Reads the value of a counter image (at @h). */
static int counter_image(sop_db *db, uint64_t id, const sop__handle *h, uint64_t *value)
{
    const uint8_t *rec = NULL;
    uint8_t *own;
    int rc = view_image(db, h->seg, h->off, sop__handle_len(h), id, &rec, &own);
    if (rc)
        return rc;
    if (rec[SOP__REC_HDR + 32] != SOP__IMG_COUNTER || sop__get32(rec + 8) != SOP__IMG_HDR + 8)
        rc = sop__err(db, SOP_ECORRUPT, "counter %llu: bad image", (unsigned long long)id);
    else
        *value = sop__get64(rec + SOP__REC_HDR + SOP__IMG_HDR);
    sop__free(own);
    return rc;
}

int sop__txn_counter_value(sop_txn *t, sop__counter *c, uint64_t *value)
{
    if (!c->loaded) {
        sop__handle h;
        int rc = locate(t->db, c->id, t->snap, &h);
        if (!rc)
            rc = counter_image(t->db, c->id, &h, &c->base_value);
        if (rc)
            return rc;
        c->base_version = h.version;
        c->loaded = 1;
    }
    *value = (uint64_t)((int64_t)c->base_value + c->delta);
    return 0;
}

/* ------------------------------------------------------------------ */
/* Commit                                                             */
/* ------------------------------------------------------------------ */

/* The commit's records, built in a buffer of at most CB_CHUNK bytes (or
 * one record) that is written to the log whenever it is full: a large
 * commit does not need its whole size in fresh memory. Images written
 * before the commit record are harmless if the commit fails: no commit
 * record refers to them (as with a torn write). */
#define CB_CHUNK (4u << 20)
typedef struct cbuf {
    uint8_t *p;
    size_t len, cap;
    uint64_t at; /* the log offset of p[0] */
    sop_db *db;
    int io_failed; /* a write failed: the log is unusable */
} cbuf;

/* Writes out what the buffer holds. */
static int cb_write(cbuf *b)
{
    int rc = b->len ? sop__log_write(&b->db->log, b->p, b->len, b->at, b->db) : 0;
    if (rc) {
        b->io_failed = 1;
        return rc;
    }
    b->at += b->len;
    b->len = 0;
    return 0;
}

/* Room for @n more bytes (writing out the buffer when it is full). */
static int cb_reserve(cbuf *b, size_t n)
{
    if (b->len + n <= b->cap)
        return 0;
    int rc = cb_write(b);
    if (rc || n <= b->cap)
        return rc;
    size_t want = n > CB_CHUNK ? n : CB_CHUNK;
    uint8_t *p = sop__realloc(b->p, want);
    if (!p)
        return -ENOMEM;
    b->p = p;
    b->cap = want;
    return 0;
}

static int validate(sop_txn *t)
{
    sop_db *db = t->db;
    if (db->test_novalidate)
        return 0; /* harness mutant: the concurrency suites must catch it */
    /* NOCHECK: what it read is not validated, except where a write found
     * nothing to change (its result depended on the read) */
    if (t->mode == SOP_TXN_WRITE || t->write_read) {
        SOP__U64MAP_FOREACH(&t->seen, i)
        {
            const sop__node *n = t->seen.vals[i];
            sop__handle h = sop__reg_get(&db->reg, t->seen.keys[i]);
            if (h.version != n->version)
                return sop__err(db, SOP_ECONFLICT, "node %llu changed since it was read",
                                (unsigned long long)t->seen.keys[i]);
        }
    }
    SOP__U64MAP_FOREACH(&t->dirty, i)
    {
        const sop__dirty *d = t->dirty.vals[i];
        if (!d->base_version)
            continue;
        sop__handle h = sop__reg_get(&db->reg, t->dirty.keys[i]);
        if (h.version != d->base_version)
            return sop__err(db, SOP_ECONFLICT, "node %llu changed by a concurrent commit",
                            (unsigned long long)t->dirty.keys[i]);
    }
    for (size_t i = 0; i < t->ndrops; i++) {
        const sop__node *n = sop__u64map_get(&t->seen, t->drops[i]);
        sop__handle h = sop__reg_get(&db->reg, t->drops[i]);
        if (n && h.version != n->version)
            return sop__err(db, SOP_ECONFLICT, "node %llu changed by a concurrent commit",
                            (unsigned long long)t->drops[i]);
        if (!sop__handle_live(&h))
            return sop__err(db, SOP_ECONFLICT, "id %llu deleted by a concurrent commit",
                            (unsigned long long)t->drops[i]);
    }
    for (size_t i = 0; i < t->ncounters; i++) {
        const sop__counter *c = &t->counters[i];
        if (c->read && t->mode == SOP_TXN_WRITE && c->base_version &&
            sop__reg_get(&db->reg, c->id).version != c->base_version)
            return sop__err(db, SOP_ECONFLICT, "item count changed since it was read");
    }
    return 0;
}

typedef struct entry {
    uint64_t id;
    sop__handle h;
} entry;

/* Appends an IMAGE record and returns its handle (version = cur + 1). */
static int add_image(cbuf *b, uint32_t seg, uint64_t csn, uint64_t id,
                     const sop__handle *cur, int kind, const void *data, size_t len,
                     void (*fill)(const void *src, uint8_t *dst), sop__handle *out)
{
    size_t rlen = SOP__REC_HDR + SOP__IMG_HDR + len;
    if (rlen > UINT32_MAX / 2)
        return SOP_ETOOBIG;
    int rc = cb_reserve(b, rlen);
    if (rc)
        return rc;
    uint8_t *r = b->p + b->len;
    uint8_t *ih = r + SOP__REC_HDR;
    memset(ih, 0, SOP__IMG_HDR);
    sop__put64(ih, id);
    sop__put64(ih + 8, cur->version + 1);
    if (cur->seg) { /* the previous image, for older snapshots */
        sop__put32(ih + 16, cur->seg);
        sop__put32(ih + 20, sop__handle_len(cur));
        sop__put64(ih + 24, cur->off);
    }
    ih[32] = (uint8_t)kind;
    if (fill)
        fill(data, ih + SOP__IMG_HDR);
    else if (len)
        memcpy(ih + SOP__IMG_HDR, data, len);
    sop__rec_seal(r, SOP__REC_IMAGE, csn, (uint32_t)(SOP__IMG_HDR + len));
    out->seg = seg;
    out->off = b->at + b->len;
    out->len = (uint32_t)rlen;
    out->version = cur->version + 1;
    out->csn = csn;
    b->len += rlen;
    return 0;
}

static void fill_node(const void *src, uint8_t *dst) { sop__node_encode(src, dst); }

/* The early write (streaming stores, docs/design/streaming.md): the blob's
 * image is appended now, under the commit lock like any append, and not
 * synced (the commit's sync covers it: fdatasync of the same segment, or
 * the full sync that sealed an earlier one). Its record carries the csn
 * of the log's end, so the log's csns still never decrease; the commit
 * record gives the handle its own csn. Until the commit, nothing refers
 * to the image: a rollback, a failed commit or a crash leaves dead bytes
 * that recovery ignores and compaction reclaims. Its segment cannot be
 * deleted meanwhile: only compaction deletes segments, after relocating
 * their live images, and only once no open snapshot predates the
 * relocation; this transaction's snapshot does (the segment was sealed,
 * hence relocated, after the transaction began). A segment that became
 * live again through such a commit is kept (sop__reap_locked). */
int sop__txn_put_blob_early(sop_txn *t, const void *data, size_t len, uint64_t *id)
{
    sop_db *db = t->db;
    size_t rlen = SOP__REC_HDR + SOP__IMG_HDR + len;
    if (rlen > UINT32_MAX / 2)
        return SOP_ETOOBIG;
    int rc = blob_room(t);
    if (rc)
        return rc;
    cbuf b = {.p = sop__malloc(rlen), .cap = rlen, .db = db};
    if (!b.p)
        return -ENOMEM;
    rc = sop__txn_new_id(t, id); /* fresh: no other transaction writes its handle */
    if (rc) {
        sop__free(b.p);
        return rc;
    }
    sop__handle h = {0};
    rc = sop__commit_lock(db);
    if (rc) {
        sop__free(b.p);
        return rc;
    }
    if (atomic_load(&db->panic)) {
        rc = sop__err(db, SOP_EPANIC, "database is in a panic state; reopen it");
        goto unlock;
    }
    sop__handle cur = sop__reg_get(&db->reg, *id);
    uint32_t seg;
    uint64_t off;
    rc = sop__log_reserve(&db->log, rlen, &seg, &off, db);
    if (!rc) {
        b.at = off;
        rc = add_image(&b, seg, atomic_load(&db->csn), *id, &cur, SOP__IMG_BLOB, data, len, NULL,
                       &h);
    }
    if (!rc)
        rc = cb_write(&b);
    if (rc) {
        atomic_store(&db->panic, 1);
        if (rc != SOP_EPANIC)
            sop__err(db, rc, "writing a value chunk failed: %s; the database must be reopened",
                     sop_strerror(rc));
        rc = rc == SOP_EFULL ? SOP_EFULL : SOP_EPANIC;
        goto unlock;
    }
    atomic_fetch_add(&db->since_ckpt, rlen);
unlock:
    sop__commit_unlock(db);
    sop__free(b.p);
    if (rc)
        return rc;
    SOP_KILL_POINT("txn:early_blob");
    blob_add(t, &(sop__blob){.id = *id, .len = len, .early = 1, .at = h});
    return 0;
}

static int push_entry(entry **arr, size_t *n, size_t *cap, uint64_t id, const sop__handle *h)
{
    entry *a = sop__grow(*arr, cap, *n + 1, sizeof *a, 64);
    if (!a)
        return -ENOMEM;
    *arr = a;
    a[(*n)++] = (entry){id, *h};
    return 0;
}

static int counter_pending(const sop__counter *c)
{
    return !c->dropped && (!c->base_version || c->delta != 0) && c->loaded;
}

/* Builds images + commit record into @b (which writes full chunks to the
 * log, from b->at on); the caller writes what is left. Caller holds
 * commit_mu. */
static int build(sop_txn *t, uint64_t csn, uint32_t seg, cbuf *b, entry **ents, size_t *nents)
{
    sop_db *db = t->db;
    size_t cap = 0;
    int rc;
    SOP__U64MAP_FOREACH(&t->dirty, i)
    {
        sop__dirty *d = t->dirty.vals[i];
        sop__handle cur = sop__reg_get(&db->reg, t->dirty.keys[i]), nh;
        rc = add_image(b, seg, csn, t->dirty.keys[i], &cur, SOP__IMG_NODE, d->node,
                       d->node->bytes, fill_node, &nh);
        if (!rc)
            rc = push_entry(ents, nents, &cap, t->dirty.keys[i], &nh);
        if (rc)
            return rc;
    }
    for (size_t i = 0; i < t->nblobs; i++) {
        sop__handle cur = sop__reg_get(&db->reg, t->blobs[i].id), nh;
        if (t->blobs[i].early) { /* its image is in the log already */
            nh = t->blobs[i].at;
            nh.csn = csn;
            rc = cur.version + 1 == nh.version ? 0
                 : sop__err(db, SOP_ECORRUPT, "blob %llu: its handle changed since it was written",
                            (unsigned long long)t->blobs[i].id);
        } else {
            rc = add_image(b, seg, csn, t->blobs[i].id, &cur, SOP__IMG_BLOB, t->blobs[i].data,
                           t->blobs[i].len, NULL, &nh);
        }
        if (!rc)
            rc = push_entry(ents, nents, &cap, t->blobs[i].id, &nh);
        if (rc)
            return rc;
    }
    for (size_t i = 0; i < t->ncounters; i++) {
        sop__counter *c = &t->counters[i];
        if (!counter_pending(c))
            continue;
        sop__handle cur = sop__reg_get(&db->reg, c->id), nh;
        uint64_t value = 0;
        if (c->base_version) {
            if (cur.version == c->base_version)
                value = c->base_value;
            else if ((rc = counter_image(db, c->id, &cur, &value)) != 0)
                return rc;
        }
        uint8_t v[8];
        sop__put64(v, (uint64_t)((int64_t)value + c->delta));
        rc = add_image(b, seg, csn, c->id, &cur, SOP__IMG_COUNTER, v, 8, NULL, &nh);
        if (!rc)
            rc = push_entry(ents, nents, &cap, c->id, &nh);
        if (rc)
            return rc;
    }
    for (size_t i = 0; i < t->ndrops; i++) {
        sop__handle h = sop__reg_get(&db->reg, t->drops[i]);
        h.len |= SOP__H_DELETED;
        h.version++;
        h.csn = csn;
        rc = push_entry(ents, nents, &cap, t->drops[i], &h);
        if (rc)
            return rc;
    }
    size_t clen = SOP__REC_HDR + SOP__COMMIT_HDR + *nents * SOP__COMMIT_ENTRY;
    rc = cb_reserve(b, clen);
    if (rc)
        return rc;
    uint8_t *r = b->p + b->len, *p = r + SOP__REC_HDR;
    memset(p, 0, SOP__COMMIT_HDR);
    sop__put32(p, (uint32_t)*nents);
    sop__put64(p + 8, atomic_load(&db->shm->next_id));
    sop__put64(p + 16, atomic_load(&db->shm->next_seq));
    p += SOP__COMMIT_HDR;
    for (size_t i = 0; i < *nents; i++, p += SOP__COMMIT_ENTRY) {
        const entry *e = &(*ents)[i];
        sop__put64(p, e->id);
        sop__put32(p + 8, e->h.seg);
        sop__put32(p + 12, e->h.len);
        sop__put64(p + 16, e->h.off);
        sop__put64(p + 24, e->h.version);
        sop__put64(p + 32, e->h.csn);
    }
    sop__rec_seal(r, SOP__REC_COMMIT, csn, (uint32_t)(clen - SOP__REC_HDR));
    b->len += clen;
    return 0;
}

static uint64_t commit_size(sop_txn *t)
{
    uint64_t total = 0, n = 0;
    SOP__U64MAP_FOREACH(&t->dirty, i)
    {
        total += SOP__REC_HDR + SOP__IMG_HDR + ((sop__dirty *)t->dirty.vals[i])->node->bytes;
        n++;
    }
    for (size_t i = 0; i < t->nblobs; i++, n++)
        if (!t->blobs[i].early)
            total += SOP__REC_HDR + SOP__IMG_HDR + t->blobs[i].len;
    for (size_t i = 0; i < t->ncounters; i++)
        if (counter_pending(&t->counters[i])) {
            total += SOP__REC_HDR + SOP__IMG_HDR + 8;
            n++;
        }
    n += t->ndrops;
    return total + SOP__REC_HDR + SOP__COMMIT_HDR + n * SOP__COMMIT_ENTRY;
}

/* After a commit: ids handed out to the transaction but not used go back. */
static void release_unused(sop_txn *t, const entry *ents, size_t n)
{
    sop__u64map used = {0};
    for (size_t i = 0; i < n; i++)
        if (sop__u64map_put(&used, ents[i].id, (void *)1)) {
            sop__u64map_free(&used);
            return; /* out of memory: unused ids stay unused until reopen */
        }
    for (size_t i = 0; i < t->nfresh; i++)
        if (!sop__u64map_get(&used, t->fresh[i]))
            sop__reg_release_id(&t->db->reg, t->fresh[i]);
    sop__u64map_free(&used);
}

void sop__txn_log_op(sop_txn *t, sop_store *s, int kind, const sop_val *key, const sop_val *val,
                     int rc, uint64_t state)
{
    if (kind != SOP__OP_GET && rc != 0)
        t->write_read = 1;
    if (t->no_merge || t->mode == SOP_TXN_READ)
        return;
    size_t kl = key ? key->size : 0, vl = val ? val->size : 0;
    if (t->opbytes + kl + vl > SOP__OPLOG_MAX)
        goto give_up;
    sop__op *a = sop__grow(t->ops, &t->capops, t->nops + 1, sizeof *a, 32);
    if (!a)
        goto give_up;
    t->ops = a;
    uint8_t *mem = sop__arena_alloc(&t->opmem, kl + vl);
    if (!mem)
        goto give_up;
    if (kl)
        memcpy(mem, key->data, kl);
    if (vl)
        memcpy(mem + kl, val->data, vl);
    sop__op *op = &t->ops[t->nops++];
    op->kind = (uint8_t)kind;
    op->rc = rc;
    op->store = s->name;
    op->key = mem;
    op->val = mem + kl;
    op->klen = kl;
    op->vlen = vl;
    op->state = state;
    if (kind != SOP__OP_GET && rc != 0)
        t->write_read = 1;
    t->opbytes += kl + vl;
    return;
give_up:
    t->no_merge = 1; /* a conflict will then fail the commit */
}

/* The merge of a transaction whose nodes changed under it: its item
 * operations are run again, in order, on the current nodes (commit lock
 * held). It succeeds only when every operation finds its item as it found
 * it the first time and gives the same result (WRITE: reads and writes;
 * NOCHECK: writes only): then no concurrent commit touched an item of
 * this transaction, and the new transaction equals the old one run after
 * them. SOP_ECONFLICT otherwise. */
static int merge(sop_txn *t, sop_txn **out)
{
    sop_txn *r;
    int rc = txn_new(t->db, t->mode, UINT32_MAX / 2, 1, &r);
    if (rc)
        return rc;
    r->no_merge = 1;
    for (size_t i = 0; i < t->nops && !rc; i++) {
        const sop__op *op = &t->ops[i];
        if (op->kind == SOP__OP_GET && t->mode != SOP_TXN_WRITE)
            continue;
        sop_store *s;
        rc = sop_store_open(r, op->store, &s);
        if (rc == SOP_ENOTFOUND)
            rc = SOP_ECONFLICT; /* removed meanwhile */
        if (rc)
            break;
        sop_val k = {op->key, op->klen}, v = {op->val, op->vlen}, got = {NULL, 0};
        uint64_t state;
        int orc = sop__item_op(s, op->kind, &k, &v, &got, &state);
        if (orc != op->rc && orc != 0 && orc != SOP_EEXISTS && orc != SOP_ENOTFOUND)
            rc = orc; /* an error */
        else if (op->kind == SOP__OP_INCR)
            rc = orc ? SOP_ECONFLICT : 0; /* commutes: applied to the newer value */
        else if (orc != op->rc || state != op->state)
            rc = SOP_ECONFLICT;
    }
    if (rc) {
        txn_free(r, 0);
        return rc == SOP_ECONFLICT ? sop__err(t->db, rc, "an item this transaction read or wrote "
                                              "was changed by a concurrent commit") : rc;
    }
    *out = r;
    return 0;
}

/* Validation under the commit lock; on a node conflict, the merge. *w is
 * then the transaction to write (t, or its replay). */
static int validate_or_merge(sop_txn *t, sop_txn **w)
{
    sop_db *db = t->db;
    *w = t;
    int rc = validate(t);
    if (rc == SOP_ECONFLICT && !t->no_merge) {
        rc = merge(t, w);
        if (!rc && !(rc = validate(*w)))
            atomic_fetch_add(&db->st_merges, 1);
    }
    if (rc == SOP_ECONFLICT)
        atomic_fetch_add(&db->st_conflicts, 1);
    return rc;
}

int sop_txn_commit(sop_txn *t)
{
    if (!t)
        return -EINVAL;
    sop_db *db = t->db;
    int rc = sop__txn_check(t, 0);
    for (sop__txn_ext *e = t->exts; e && !rc && t->mode != SOP_TXN_READ; e = e->next)
        if (e->flush && (rc = e->flush(e)) != 0)
            rc = sop__txn_fail(t, rc);
    if (rc) {
        txn_free(t, 0);
        return rc;
    }
    int pending_counters = 0;
    for (size_t i = 0; i < t->ncounters; i++)
        pending_counters |= counter_pending(&t->counters[i]);
    if (t->mode == SOP_TXN_READ ||
        (!t->dirty.n && !t->ndrops && !t->nblobs && !pending_counters)) {
        /* nothing to write; what a WRITE transaction read (and what a
         * NOCHECK write that changed nothing found) is still validated */
        if ((t->mode == SOP_TXN_WRITE || t->write_read) && (t->seen.n || t->ncounters) &&
            !(rc = sop__commit_lock(db))) {
            sop_txn *w = t;
            rc = validate_or_merge(t, &w);
            sop__commit_unlock(db);
            if (w != t)
                txn_free(w, 0);
        }
        txn_free(t, 0);
        return rc;
    }
    cbuf b = {0};
    entry *ents = NULL;
    size_t nents = 0;
    uint32_t seg = 0;
    uint64_t off = 0, csn = 0, total;
    sop_txn *w = t; /* what gets written: t, or its merge */

    rc = sop__commit_lock(db); /* also learns other processes' commits */
    if (rc) {
        txn_free(t, 0);
        return rc;
    }
    if (atomic_load(&db->panic)) {
        rc = sop__err(db, SOP_EPANIC, "database is in a panic state; reopen it");
        goto unlock;
    }
    if (db->cl && t->epoch != sop__cl_epoch(db)) {
        rc = sop__err(db, SOP_EREDIS, "Redis lost the cluster's state (restart or flush) while "
                      "the transaction ran; nothing was written: retry it");
        goto unlock;
    }
    rc = validate_or_merge(t, &w);
    if (rc)
        goto unlock;
    if (db->cl && (rc = sop__cl_lease_ok(db)) != 0)
        goto unlock; /* nothing written yet */
    total = commit_size(w);
    csn = atomic_load(&db->csn) + 1;
    rc = sop__log_reserve(&db->log, total, &seg, &off, db);
    if (rc)
        goto panic;
    b.at = off;
    b.db = db;
    rc = build(w, csn, seg, &b, &ents, &nents);
    if (rc && b.io_failed)
        goto panic;
    if (rc)
        goto unlock; /* no commit record written */
    SOP_KILL_POINT("commit:before_append");
    rc = cb_write(&b);
    if (rc)
        goto panic;
    if (b.at != off + total) {
        rc = sop__err(db, SOP_ECORRUPT, "commit wrote %llu bytes, %llu expected",
                      (unsigned long long)(b.at - off), (unsigned long long)total);
        goto panic;
    }
    SOP_KILL_POINT("commit:after_append");
    for (size_t i = 0; i < nents; i++) {
        rc = sop__reg_set(&db->reg, ents[i].id, &ents[i].h);
        if (rc)
            goto panic;
    }
    for (size_t i = 0; i < w->ndrops; i++)
        sop__reg_release_id(&db->reg, w->drops[i]);
    release_unused(w, ents, nents);
    w->nfresh = 0;
    SOP__U64MAP_FOREACH(&w->dirty, i)
    {
        sop__dirty *d = w->dirty.vals[i];
        d->node->version = sop__reg_get(&db->reg, w->dirty.keys[i]).version;
        sop__cache_unpin(db->cache, sop__cache_put(db->cache, d->node));
        d->node = NULL;
    }
    atomic_store(&db->csn, csn);
    atomic_store(&db->shm->csn, csn);
    atomic_fetch_add(&db->since_ckpt, total);
    SOP_KILL_POINT("commit:after_apply");
    sop__commit_unlock(db);

    if (db->opt.sync == SOP_SYNC_FULL && !db->test_nosync) {
        rc = sop__log_sync(&db->log, seg, off + total, db);
        if (rc) {
            atomic_store(&db->panic, 1);
            goto out;
        }
        SOP_KILL_POINT("commit:after_sync");
    }
    /* publish: every csn up to ours is applied, and durable when syncing */
    sop__atomic_max(&db->shm->durable_csn, csn);
    if (db->cl)
        sop__cl_durable(db, csn);
    atomic_fetch_add(&db->st_commits, 1);
    if (atomic_load(&db->since_ckpt) >= db->opt.checkpoint_bytes && sop__commit_lock(db) == 0) {
        if (atomic_load(&db->since_ckpt) >= db->opt.checkpoint_bytes && !atomic_load(&db->panic))
            sop__db_checkpoint_locked(db); /* a failure panics the db; this commit stands */
        sop__commit_unlock(db);
    }
    rc = 0;
    goto out;
panic:
    atomic_store(&db->panic, 1);
    if (rc != SOP_EPANIC)
        sop__err(db, rc, "commit failed: %s; the database must be reopened", sop_strerror(rc));
    rc = rc == SOP_EFULL ? SOP_EFULL : SOP_EPANIC;
unlock:
    sop__commit_unlock(db);
out:
    sop__free(b.p);
    sop__free(ents);
    if (w != t)
        txn_free(w, rc == 0);
    txn_free(t, rc == 0 && w == t);
    return rc;
}
