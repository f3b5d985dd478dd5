/* train.c - training and migration: a uniform sample drawn through the
 * lookup tree, k-means, the centroids of the next version, and the move of
 * every item into it in batches; then the flip to the new version. The
 * automatic first training runs all of it in the caller's transaction
 * (vs_train_inline); sop_vstore_optimize() runs each step in its own
 * transactions so that other work goes on (optimize.c). */
#include "train.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "kmeans.h"
#include "mem.h"
#include "rng.h"
#include "vmath.h"

#define VS_TRAIN_ITERS 10

/* ---- sampling ---------------------------------------------------------- */

typedef struct sample {
    float *x;
    size_t n, cap;
    uint32_t d;
} sample;

static int sample_add(sample *s, const float *v)
{
    float *p = sop__grow(s->x, &s->cap, s->n + 1, (size_t)s->d * sizeof(float), 1024);
    if (!p)
        return -ENOMEM;
    s->x = p;
    memcpy(s->x + s->n * s->d, v, (size_t)s->d * sizeof(float));
    s->n++;
    return 0;
}

static int take_all(const sop_val *k, const sop_val *v, void *ctx)
{
    (void)k;
    sample *s = ctx;
    if (v->size != (size_t)s->d * sizeof(float))
        return SOP_ECORRUPT;
    return sample_add(s, v->data);
}

/* Reads the vector of lookup entry (@seq, @id) of version @ver into @s
 * when the entry is live (not a tombstone). */
static int take_entry(sop_vstore *vs, const vs_ver *ver, uint64_t seq, const sop_val *id,
                      sample *s)
{
    uint8_t idb[SOP_VECTOR_ID_MAX];
    if (id->size == 0 || id->size > sizeof idb)
        return vs_err(vs, SOP_ECORRUPT, "bad lookup entry %llu", (unsigned long long)seq);
    size_t idl = id->size;
    memcpy(idb, id->data, idl);
    vl_rec r;
    int rc = vs_get_rec(vs, idb, idl, &r);
    if (rc == SOP_ENOTFOUND)
        return 0; /* reaped */
    if (rc)
        return rc;
    vl_slot *sl = vl_rec_slot(&r, ver->v);
    if (r.deleted || !sl || sl->seq != seq)
        return 0; /* a tombstone */
    uint8_t key[VS_KEY_MAX];
    sop_val ik = {key, vl_ivf_key(key, sl->cid, sl->dist, idb, idl)}, v;
    rc = sop_get(ver->ivf, &ik, &v);
    if (rc == SOP_ENOTFOUND || (!rc && v.size != (size_t)s->d * sizeof(float)))
        return vs_err(vs, SOP_ECORRUPT, "vector of lookup entry %llu missing",
                      (unsigned long long)seq);
    return rc ? rc : sample_add(s, v.data);
}

/* Selection sampling over the lookup tree in sequence order: entry i of
 * the `left` remaining is taken with probability need / left, which takes
 * exactly `need` entries, uniformly, in one sequential pass. */
typedef struct select_ctx {
    sop_vstore *vs;
    const vs_ver *ver;
    sample *s;
    uint64_t need, left, rng;
} select_ctx;

static int select_entry(const sop_val *k, const sop_val *v, void *ctx)
{
    select_ctx *c = ctx;
    if (c->need == 0 || c->left == 0)
        return 1; /* done */
    uint64_t pick = sop__rng_below(&c->rng, c->left) < c->need;
    c->left--;
    if (!pick)
        return 0;
    c->need--;
    if (k->size != 8)
        return vs_err(c->vs, SOP_ECORRUPT, "bad lookup key");
    return take_entry(c->vs, c->ver, vl_lku_seq(k->data), v, c->s);
}

int vs_sample(sop_vstore *vs, const vs_ver *ver, size_t max, uint64_t seed, float **out,
              size_t *n)
{
    sample s = {.d = vs->cfg.dims};
    uint64_t live = 0, total = 0;
    int rc = sop_store_count(ver->ivf, &live);
    if (!rc)
        rc = sop_store_count(ver->lku, &total);
    if (rc)
        return rc;
    if (live <= max) {
        sop_range r = {0};
        rc = sop_scan(ver->ivf, &r, take_all, &s);
        if (rc == SOP_ECORRUPT)
            rc = vs_err(vs, rc, "bad vector in version %u", ver->v);
    } else {
        /* entries of deleted items are skipped: draw as many more as they
         * are likely to be */
        uint64_t want = (uint64_t)((double)max * (double)total / (double)live) + 16;
        select_ctx c = {vs, ver, &s, want < total ? want : total, total, seed};
        sop_range r = {0};
        rc = sop_scan(ver->lku, &r, select_entry, &c);
        if (rc == 1)
            rc = 0;
    }
    if (rc) {
        sop__free(s.x);
        return rc;
    }
    *out = s.x;
    *n = s.n;
    return 0;
}

/* ---- the next version ---------------------------------------------------- */

int vs_train_next(sop_vstore *vs, uint32_t nlist, size_t sample_max, vc_cents **out)
{
    uint32_t d = vs->cfg.dims;
    const vs_ver *a = &vs->ver[0];
    uint64_t live;
    int rc = sop_store_count(a->ivf, &live);
    if (rc)
        return rc;
    if (!nlist)
        nlist = vs->cfg.nlist_opt ? vs->cfg.nlist_opt : sop_vector_nlist_for(live);
    if (!sample_max)
        sample_max = (size_t)nlist * 256;
    float *x = NULL;
    size_t n = 0;
    uint32_t v = vs->cfg.active + 1;
    if ((rc = vs_sample(vs, a, sample_max, vs->cfg.seed ^ (0x5eedull * v), &x, &n)))
        return rc;
    if (n == 0) {
        sop__free(x);
        return vs_err(vs, -EINVAL, "nothing to train on: the store is empty");
    }
    if (nlist > n)
        nlist = (uint32_t)n;
    vc_cents *c = vc_new(vc_new_uid(), nlist, d);
    if (!c) {
        sop__free(x);
        return -ENOMEM;
    }
    /* 10 Lloyd iterations, as FAISS trains its IVF quantizers: the
     * recall of the index no longer moves after that (GloVe 100-d) */
    sop__kmeans_opts ko = {.k = nlist,
                           .seed = vs->cfg.seed + v,
                           .max_iter = VS_TRAIN_ITERS,
                           .spherical = vs->cfg.metric == SOP_METRIC_COSINE};
    rc = sop__kmeans(x, n, d, &ko, c->c);
    sop__free(x);
    if (rc) {
        vc_discard(c);
        return rc;
    }
    sop__v_norms_sq(c->c, nlist, d, c->norms);
    *out = c;
    return 0;
}

/* The writes of vs_begin_next(); @c stays the caller's. */
static int write_next(sop_vstore *vs, const vc_cents *c)
{
    uint32_t v = vs->cfg.active + 1;
    int rc = vs_create_version(vs, v);
    if (rc)
        return rc;
    char sn[VL_STORE_MAX + 1];
    sop_store *cs;
    vl_store_name(sn, vs->name, VL_CENT, v);
    if ((rc = sop_store_open(vs->txn, sn, &cs)))
        return rc;
    for (uint32_t j = 0; j < c->n && !rc; j++) {
        uint8_t key[4];
        vl_cent_key(key, j);
        sop_val k = {key, 4}, val = {c->c + (size_t)j * c->dims, (size_t)c->dims * sizeof(float)};
        rc = sop_add(cs, &k, &val);
    }
    if (rc)
        return rc;
    vs->cfg.next = v;
    vs->cfg.nlist_n = c->n;
    vs->cfg.uid_n = c->uid;
    vl_progress p = {.version = v};
    uint8_t pb[VL_PROGRESS_MAX];
    sop_val pk = {VL_KEY_PROGRESS, 1}, pv = {pb, vl_progress_encode(&p, pb)};
    if ((rc = vs_put_cfg(vs)) || (rc = sop_upsert(vs->s_cfg, &pk, &pv)))
        return rc;
    return 0;
}

int vs_begin_next(sop_vstore *vs, vc_cents *c)
{
    int rc = write_next(vs, c);
    if (rc) {
        vc_discard(c);
        return rc;
    }
    vc_release(vc_put(c)); /* cached: the reload finds it */
    return vs_reload(vs);
}

int vs_get_progress(sop_vstore *vs, vl_progress *p)
{
    sop_val k = {VL_KEY_PROGRESS, 1}, v;
    int rc = sop_get(vs->s_cfg, &k, &v);
    if (rc == SOP_ENOTFOUND)
        return vs_err(vs, SOP_ECORRUPT, "migration to version %u has no progress record",
                      vs->cfg.next);
    if (!rc && (vl_progress_decode(v.data, v.size, p) || p->version != vs->cfg.next))
        rc = vs_err(vs, SOP_ECORRUPT, "bad progress record");
    return rc;
}

static int put_progress(sop_vstore *vs, const vl_progress *p)
{
    uint8_t pb[VL_PROGRESS_MAX];
    sop_val pk = {VL_KEY_PROGRESS, 1}, pv = {pb, vl_progress_encode(p, pb)};
    return sop_upsert(vs->s_cfg, &pk, &pv);
}

/* ---- migration ---------------------------------------------------------- */

/* An index key to write, for sorting: the order of vl_ivf_key's bytes. */
typedef struct sorted_key {
    uint32_t cid;
    float dist;
    const uint8_t *id;
    size_t id_len;
    uint32_t j; /* its vector */
} sorted_key;

static int cmp_sorted_key(const void *pa, const void *pb)
{
    const sorted_key *a = pa, *b = pb;
    if (a->cid != b->cid)
        return a->cid < b->cid ? -1 : 1;
    if (a->dist != b->dist) /* non-negative: float order is bit order */
        return a->dist < b->dist ? -1 : 1;
    size_t n = a->id_len < b->id_len ? a->id_len : b->id_len;
    int c = memcmp(a->id, b->id, n);
    return c ? c : (a->id_len > b->id_len) - (a->id_len < b->id_len);
}

/* One item read from the content store: its id and record bytes, copied
 * (the writes of the batch invalidate engine memory). */
typedef struct mitem {
    size_t off, id_len, rec_len;
} mitem;

int vs_migrate_batch(sop_vstore *vs, size_t max, vl_progress *p)
{
    uint32_t d = vs->cfg.dims;
    const vs_ver *a = &vs->ver[0], *nx = &vs->ver[1];
    if (vs->nver != 2)
        return vs_err(vs, -EINVAL, "no migration running");
    mitem *items = NULL;
    uint8_t *buf = NULL;
    size_t blen = 0, bcap = 0, n = 0, icap = 0;
    float *x = NULL, *dist = NULL;
    uint32_t *cid = NULL, *pos = NULL;
    sop_cursor *c;
    int rc = sop_cursor_open(vs->s_content, &c);
    if (rc)
        return rc;
    if (p->last_len) {
        sop_val k = {p->last, p->last_len};
        rc = sop_cursor_find(c, &k, SOP_FIND_GT);
    } else {
        rc = sop_cursor_first(c);
    }
    int end = 0;
    while (!rc && n < max) {
        sop_val k, v;
        if ((rc = sop_cursor_get(c, &k, &v)))
            break;
        uint8_t *nb = sop__grow(buf, &bcap, blen + k.size + v.size, 1, 1 << 16);
        if (nb)
            buf = nb;
        mitem *ni = nb ? sop__grow(items, &icap, n + 1, sizeof *items, 1024) : NULL;
        if (!ni) {
            rc = -ENOMEM;
            break;
        }
        items = ni;
        items[n] = (mitem){blen, k.size, v.size};
        memcpy(buf + blen, k.data, k.size);
        memcpy(buf + blen + k.size, v.data, v.size);
        blen += k.size + v.size;
        n++;
        rc = sop_cursor_next(c);
    }
    if (rc == SOP_ENOTFOUND || rc == SOP_EINCOMPLETE) {
        end = 1;
        rc = 0;
    }
    sop_cursor_close(c);

    /* vectors of the items that need a place in the next version */
    size_t m = 0;
    if (!rc && n) {
        x = sop__malloc(n * d * sizeof(float));
        dist = sop__malloc(n * sizeof(float));
        cid = sop__malloc(n * sizeof(uint32_t));
        pos = sop__malloc(n * sizeof(uint32_t));
        if (!x || !dist || !cid || !pos)
            rc = -ENOMEM;
    }
    for (size_t i = 0; i < n && !rc; i++) {
        const uint8_t *id = buf + items[i].off;
        vl_rec r;
        if (vl_rec_decode(id + items[i].id_len, items[i].rec_len, &r)) {
            rc = vs_err(vs, SOP_ECORRUPT, "bad content record");
            break;
        }
        if (r.deleted) { /* reap the tombstone */
            sop_val k = {id, items[i].id_len};
            rc = sop_remove(vs->s_content, &k);
            continue;
        }
        if (vl_rec_slot(&r, nx->v))
            continue; /* written since the migration began */
        vl_slot *s = vl_rec_slot(&r, a->v);
        if (!s) {
            rc = vs_err(vs, SOP_ECORRUPT, "id '%.*s' has no place in version %u",
                        (int)items[i].id_len, (const char *)id, a->v);
            break;
        }
        uint8_t key[VS_KEY_MAX];
        sop_val k = {key, vl_ivf_key(key, s->cid, s->dist, id, items[i].id_len)}, v;
        rc = sop_get(a->ivf, &k, &v);
        if (rc == SOP_ENOTFOUND || (!rc && v.size != (size_t)d * sizeof(float)))
            rc = vs_err(vs, SOP_ECORRUPT, "vector of id '%.*s' missing", (int)items[i].id_len,
                        (const char *)id);
        if (rc)
            break;
        memcpy(x + m * d, v.data, v.size);
        pos[m++] = (uint32_t)i;
    }
    if (!rc && m)
        rc = vs_assign_batch(vs, nx, x, m, cid, dist);
    uint64_t seq = 0;
    if (!rc && m)
        rc = vs_next_seq(vs, nx, &seq);
    /* lookup entries and records in id order (the order read) */
    for (size_t j = 0; j < m && !rc; j++) {
        const mitem *it = &items[pos[j]];
        const uint8_t *id = buf + it->off;
        vl_rec r;
        vl_rec_decode(id + it->id_len, it->rec_len, &r);
        vl_slot ns = {.ver = nx->v, .cid = cid[j], .dist = dist[j], .seq = seq + j};
        uint8_t lk[8];
        vl_lku_key(lk, ns.seq);
        sop_val lkv = {lk, 8}, idv = {id, it->id_len};
        if ((rc = sop_upsert(nx->lku, &lkv, &idv)))
            break;
        /* keep the active slot, add the next one */
        vl_rec w = r;
        w.nslots = 0;
        w.slot[w.nslots++] = *vl_rec_slot(&r, a->v);
        w.slot[w.nslots++] = ns;
        rc = vs_put_rec(vs, id, it->id_len, &w);
    }
    /* index keys in key order: appends within each cluster's leaves, one
     * leaf after the other, instead of jumps between clusters */
    sorted_key *sk = NULL;
    if (!rc && m && !(sk = sop__malloc(m * sizeof *sk)))
        rc = -ENOMEM;
    for (size_t j = 0; j < m && !rc; j++) {
        const mitem *it = &items[pos[j]];
        sk[j] = (sorted_key){cid[j], dist[j], buf + it->off, it->id_len, (uint32_t)j};
    }
    if (!rc && m)
        qsort(sk, m, sizeof *sk, cmp_sorted_key);
    for (size_t i = 0; i < m && !rc; i++) {
        uint8_t key[VS_KEY_MAX];
        sop_val k = {key, vl_ivf_key(key, sk[i].cid, sk[i].dist, sk[i].id, sk[i].id_len)};
        sop_val v = {x + (size_t)sk[i].j * d, (size_t)d * sizeof(float)};
        rc = sop_upsert(nx->ivf, &k, &v);
    }
    sop__free(sk);
    if (!rc) {
        if (n) {
            const mitem *last = &items[n - 1];
            memcpy(p->last, buf + last->off, last->id_len);
            p->last_len = last->id_len;
        }
        p->moved += m;
        p->done = end;
        rc = put_progress(vs, p);
    }
    sop__free(items);
    sop__free(buf);
    sop__free(x);
    sop__free(dist);
    sop__free(cid);
    sop__free(pos);
    return rc;
}

int vs_flip(sop_vstore *vs)
{
    uint32_t old = vs->cfg.active;
    vs->cfg.active = vs->cfg.next;
    vs->cfg.nlist_a = vs->cfg.nlist_n;
    vs->cfg.uid_a = vs->cfg.uid_n;
    vs->cfg.next = 0;
    vs->cfg.nlist_n = 0;
    vs->cfg.uid_n = 0;
    sop_val pk = {VL_KEY_PROGRESS, 1};
    int rc = vs_put_cfg(vs);
    if (!rc)
        rc = sop_remove(vs->s_cfg, &pk);
    for (int i = 0; i < 2; i++)
        vs_drop_version(vs, i);
    vs->nver = 0;
    if (!rc)
        rc = vs_remove_version(vs, old);
    if (!rc)
        rc = vs_reload(vs);
    return rc;
}

int vs_train_inline(sop_vstore *vs)
{
    vc_cents *c = NULL;
    int rc = vs_train_next(vs, 0, 0, &c);
    if (!rc)
        rc = vs_begin_next(vs, c);
    else
        vc_discard(c);
    vl_progress p;
    if (!rc)
        rc = vs_get_progress(vs, &p);
    while (!rc && !p.done)
        rc = vs_migrate_batch(vs, 4096, &p);
    if (!rc)
        rc = vs_flip(vs);
    return rc;
}
