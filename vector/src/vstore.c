/* vstore.c - vector store handles: create, open, remove, the embedder
 * identity, count and stats; and the helpers the other parts share
 * (versions, records, checks). */
#include "vstore.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "err.h"
#include "kmeans.h"
#include "mem.h"
#include "vmath.h"

int vs_err(const sop_vstore *vs, int rc, const char *fmt, ...)
{
    char msg[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return sop__err(vs->db, rc, "vector store %s: %s", vs->name, msg);
}

int vs_rbuf(sop_vstore *vs, size_t n)
{
    uint8_t *p = sop__grow(vs->rbuf, &vs->rcap, n, 1, 1024);
    if (!p)
        return -ENOMEM;
    vs->rbuf = p;
    return 0;
}

int vs_out_room(sop_vstore *vs, size_t n)
{
    if (n <= vs->outcap)
        return 0;
    uint8_t *p = sop__grow(vs->out, &vs->outcap, n, 1, 256);
    if (!p)
        return -ENOMEM;
    vs->out = p;
    return 0;
}

uint64_t vs_train_at(const vl_cfg *c)
{
    if (c->train_at)
        return c->train_at;
    uint64_t t = 10000;
    if (c->nlist_opt && (uint64_t)c->nlist_opt * 40 > t)
        t = (uint64_t)c->nlist_opt * 40;
    return t;
}

static int open_store(sop_vstore *vs, int kind, uint32_t v, sop_store **out)
{
    char sn[VL_STORE_MAX + 1];
    vl_store_name(sn, vs->name, kind, v);
    int rc = sop_store_open(vs->txn, sn, out);
    if (rc == SOP_ENOTFOUND)
        return vs_err(vs, SOP_ECORRUPT, "its store %s is missing", sn);
    return rc;
}

static int load_cents(sop_vstore *vs, uint32_t v, uint32_t nlist, uint64_t uid, vc_cents **out)
{
    uint32_t d = vs->cfg.dims;
    vc_cents *c = vc_get(uid, nlist, d);
    if (c) {
        *out = c;
        return 0;
    }
    sop_store *s;
    int rc = open_store(vs, VL_CENT, v, &s);
    if (rc)
        return rc;
    if (!(c = vc_new(uid, nlist, d)))
        return -ENOMEM;
    sop_cursor *cur;
    if ((rc = sop_cursor_open(s, &cur))) {
        vc_discard(c);
        return rc;
    }
    uint32_t i = 0;
    for (rc = sop_cursor_first(cur); rc == 0; rc = sop_cursor_next(cur), i++) {
        sop_val k, val;
        if ((rc = sop_cursor_get(cur, &k, &val)))
            break;
        if (i >= nlist || k.size != 4 || val.size != (size_t)d * 4) {
            rc = vs_err(vs, SOP_ECORRUPT, "centroids of version %u: bad item %u", v, i);
            break;
        }
        uint8_t want[4];
        vl_cent_key(want, i);
        if (memcmp(k.data, want, 4) != 0) {
            rc = vs_err(vs, SOP_ECORRUPT, "centroids of version %u: cluster %u missing", v, i);
            break;
        }
        memcpy(c->c + (size_t)i * d, val.data, val.size);
    }
    sop_cursor_close(cur);
    if (rc == SOP_ENOTFOUND || rc == SOP_EINCOMPLETE)
        rc = i == nlist ? 0
                        : vs_err(vs, SOP_ECORRUPT, "centroids of version %u: %u of %u", v, i,
                                 nlist);
    if (rc) {
        vc_discard(c);
        return rc;
    }
    sop__v_norms_sq(c->c, nlist, d, c->norms);
    *out = vc_put(c);
    return 0;
}

int vs_load_version(sop_vstore *vs, int i, uint32_t v, uint32_t nlist, uint64_t uid)
{
    vs_ver *ver = &vs->ver[i];
    memset(ver, 0, sizeof *ver);
    ver->v = v;
    ver->nlist = nlist;
    int rc = open_store(vs, VL_IVF, v, &ver->ivf);
    if (!rc)
        rc = open_store(vs, VL_LKU, v, &ver->lku);
    if (!rc && v > 0)
        rc = load_cents(vs, v, nlist, uid, &ver->cents);
    return rc;
}

void vs_drop_version(sop_vstore *vs, int i)
{
    vc_release(vs->ver[i].cents);
    memset(&vs->ver[i], 0, sizeof vs->ver[i]);
}

static int read_cfg(sop_vstore *vs)
{
    sop_val k = {VL_KEY_CFG, 1}, v;
    int rc = sop_get(vs->s_cfg, &k, &v);
    if (rc == SOP_ENOTFOUND)
        return vs_err(vs, SOP_ECORRUPT, "config record missing");
    if (rc)
        return rc;
    rc = vl_cfg_decode(v.data, v.size, &vs->cfg);
    if (rc == SOP_EVERSION)
        return vs_err(vs, rc, "made by a newer version of the library");
    if (rc)
        return vs_err(vs, rc, "bad config record");
    return 0;
}

int vs_reload(sop_vstore *vs)
{
    for (int i = 0; i < 2; i++)
        vs_drop_version(vs, i);
    vs->nver = 0;
    int rc = read_cfg(vs);
    if (!rc)
        rc = vs_load_version(vs, 0, vs->cfg.active, vs->cfg.nlist_a, vs->cfg.uid_a);
    if (!rc)
        vs->nver = 1;
    if (!rc && vs->cfg.next) {
        rc = vs_load_version(vs, 1, vs->cfg.next, vs->cfg.nlist_n, vs->cfg.uid_n);
        if (!rc)
            vs->nver = 2;
    }
    return rc;
}

int vs_put_cfg(sop_vstore *vs)
{
    uint8_t buf[VL_CFG_MAX];
    sop_val k = {VL_KEY_CFG, 1}, v = {buf, vl_cfg_encode(&vs->cfg, buf)};
    return sop_upsert(vs->s_cfg, &k, &v);
}

static void vs_free(sop__txn_ext *e)
{
    sop_vstore *vs = (sop_vstore *)e;
    for (int i = 0; i < 2; i++)
        vc_release(vs->ver[i].cents);
    sop__free(vs->vbuf);
    sop__free(vs->rbuf);
    sop__free(vs->out);
    sop__free(vs);
}

static int new_handle(sop_txn *txn, const char *name, sop_vstore **out)
{
    *out = NULL;
    sop_db *db = sop_txn_db(txn);
    if (!txn)
        return -EINVAL;
    if (!sop__valid_name(name, VL_NAME_MAX))
        return sop__err(db, SOP_ENAME,
                        "invalid vector store name (1..%u of A-Z a-z 0-9 _ . -, not starting "
                        "with '.')",
                        VL_NAME_MAX);
    sop_vstore *vs = sop__calloc(1, sizeof *vs);
    if (!vs)
        return -ENOMEM;
    vs->txn = txn;
    vs->db = db;
    strcpy(vs->name, name);
    vs->ext.free = vs_free;
    sop__txn_attach(txn, &vs->ext);
    *out = vs;
    return 0;
}

static int finish_open(sop_vstore *vs)
{
    if (!(vs->vbuf = sop__malloc((size_t)vs->cfg.dims * sizeof(float))))
        return -ENOMEM;
    return 0;
}

int sop_vstore_create(sop_txn *txn, const char *name, const sop_vstore_options *o,
                      sop_vstore **vsp)
{
    if (!vsp || !o)
        return -EINVAL;
    sop_vstore *vs;
    int rc = new_handle(txn, name, &vs);
    *vsp = NULL;
    if (rc)
        return rc;
    if (o->struct_size < sizeof *o || o->dims == 0 || o->dims > SOP_VECTOR_DIMS_MAX ||
        o->metric < SOP_METRIC_COSINE || o->metric > SOP_METRIC_L2 ||
        o->nlist > SOP_VECTOR_NLIST_MAX ||
        (o->node_bytes && (o->node_bytes < 4096 || o->node_bytes > 65536)) ||
        (o->embedder && strlen(o->embedder) > VL_EMBED_MAX))
        return vs_err(vs, -EINVAL,
                      "bad options (dims 1..%u, metric 1..3, nlist 0..%u, node_bytes 0 or "
                      "4096..65536, embedder up to %u bytes)",
                      SOP_VECTOR_DIMS_MAX, SOP_VECTOR_NLIST_MAX, VL_EMBED_MAX);
    vl_cfg *c = &vs->cfg;
    c->dims = o->dims;
    c->metric = (uint32_t)o->metric;
    c->nlist_opt = o->nlist;
    c->train_at = o->train_at;
    c->seed = o->seed;
    c->node_bytes = o->node_bytes ? o->node_bytes : 65536;
    c->active = 0;
    c->nlist_a = 1;
    if (o->embedder)
        strcpy(c->embedder, o->embedder);

    char sn[VL_STORE_MAX + 1];
    sop_store_options so;
    sop_store_options_init(&so);
    vl_store_name(sn, name, VL_CFG, 0);
    rc = sop_store_create(txn, sn, &so, &vs->s_cfg);
    if (rc == SOP_EEXISTS)
        return vs_err(vs, rc, "exists");
    if (rc)
        return rc;
    vl_store_name(sn, name, VL_CONTENT, 0);
    if ((rc = sop_store_create(txn, sn, &so, &vs->s_content)))
        return rc;
    if ((rc = vs_create_version(vs, 0)) || (rc = vs_put_cfg(vs)) || (rc = vs_reload(vs)) ||
        (rc = finish_open(vs)))
        return rc;
    *vsp = vs;
    return 0;
}

int vs_create_version(sop_vstore *vs, uint32_t v)
{
    char sn[VL_STORE_MAX + 1];
    sop_store_options so;
    sop_store_options_init(&so);
    sop_store *s;
    so.node_bytes = vs->cfg.node_bytes;
    vl_store_name(sn, vs->name, VL_IVF, v);
    int rc = sop_store_create(vs->txn, sn, &so, &s);
    sop_store_options_init(&so);
    so.order = SOP_ORDER_BYTES;
    vl_store_name(sn, vs->name, VL_LKU, v);
    if (!rc)
        rc = sop_store_create(vs->txn, sn, &so, &s);
    if (!rc && v > 0) {
        so.node_bytes = vs->cfg.node_bytes;
        vl_store_name(sn, vs->name, VL_CENT, v);
        rc = sop_store_create(vs->txn, sn, &so, &s);
    }
    if (rc == SOP_EEXISTS)
        return vs_err(vs, SOP_ECORRUPT, "store %s exists already", sn);
    return rc;
}

int vs_remove_version(sop_vstore *vs, uint32_t v)
{
    char sn[VL_STORE_MAX + 1];
    int rc = 0;
    for (int kind = VL_IVF; kind <= VL_CENT && !rc; kind++) {
        if (kind == VL_CENT && v == 0)
            break;
        vl_store_name(sn, vs->name, kind, v);
        rc = sop_store_remove(vs->txn, sn);
        if (rc == SOP_ENOTFOUND)
            rc = 0;
    }
    return rc;
}

int sop_vstore_open(sop_txn *txn, const char *name, sop_vstore **vsp)
{
    if (!vsp)
        return -EINVAL;
    sop_vstore *vs;
    int rc = new_handle(txn, name, &vs);
    *vsp = NULL;
    if (rc)
        return rc;
    char sn[VL_STORE_MAX + 1];
    vl_store_name(sn, name, VL_CFG, 0);
    rc = sop_store_open(txn, sn, &vs->s_cfg);
    if (rc == SOP_ENOTFOUND)
        return vs_err(vs, rc, "no such vector store");
    if (rc)
        return rc;
    if ((rc = open_store(vs, VL_CONTENT, 0, &vs->s_content)) || (rc = vs_reload(vs)) ||
        (rc = finish_open(vs)))
        return rc;
    *vsp = vs;
    return 0;
}

int sop_vstore_remove(sop_txn *txn, const char *name)
{
    sop_vstore *vs;
    int rc = sop_vstore_open(txn, name, &vs);
    if (rc)
        return rc;
    for (int i = 0; i < vs->nver && !rc; i++)
        rc = vs_remove_version(vs, vs->ver[i].v);
    char sn[VL_STORE_MAX + 1];
    for (int kind = VL_CFG; kind <= VL_CONTENT && !rc; kind++) {
        vl_store_name(sn, name, kind, 0);
        rc = sop_store_remove(txn, sn);
    }
    for (int i = 0; i < 2; i++)
        vs_drop_version(vs, i);
    vs->nver = 0;
    return rc;
}

int sop_vstore_bind_embedder(sop_vstore *vs, const char *name, uint32_t dims)
{
    if (!vs || !name)
        return -EINVAL;
    size_t n = strlen(name);
    if (n == 0 || n > VL_EMBED_MAX)
        return vs_err(vs, -EINVAL, "embedder name must be 1..%u bytes", VL_EMBED_MAX);
    if (dims != vs->cfg.dims)
        return vs_err(vs, SOP_EMISMATCH, "embedder %s makes %u dimensions, the store has %u",
                      name, dims, vs->cfg.dims);
    if (vs->cfg.embedder[0]) {
        if (strcmp(vs->cfg.embedder, name) != 0)
            return vs_err(vs, SOP_EMISMATCH, "its vectors come from embedder %s, not %s",
                          vs->cfg.embedder, name);
        return 0;
    }
    strcpy(vs->cfg.embedder, name);
    int rc = vs_put_cfg(vs);
    if (rc)
        vs->cfg.embedder[0] = '\0';
    return rc;
}

int vs_check_id(sop_vstore *vs, const void *id, size_t len)
{
    if (!id || len == 0 || len > SOP_VECTOR_ID_MAX)
        return vs_err(vs, -EINVAL, "an id is 1..%u bytes", SOP_VECTOR_ID_MAX);
    return 0;
}

int vs_check_vec(sop_vstore *vs, const float *v, uint32_t dims, float *out, const char *what)
{
    if (!v)
        return vs_err(vs, -EINVAL, "%s: no vector", what);
    if (dims != vs->cfg.dims)
        return vs_err(vs, SOP_EDIM, "%s has %u dimensions, the store %u", what, dims,
                      vs->cfg.dims);
    if (!sop__v_finite(v, dims))
        return vs_err(vs, SOP_EVECTOR, "%s has a NaN or infinite component", what);
    if (out != v)
        memcpy(out, v, (size_t)dims * sizeof *out);
    if (vs->cfg.metric == SOP_METRIC_COSINE) {
        float len = sop__v_normalize(out, dims);
        if (!(len > 0) || !isfinite(len))
            return vs_err(vs, SOP_EVECTOR, "%s is zero (or too large to normalise) under cosine",
                          what);
    }
    return 0;
}

void vs_assign(const sop_vstore *vs, const vs_ver *ver, const float *x, uint32_t *cid,
               float *dist)
{
    uint32_t dims = vs->cfg.dims;
    if (!ver->cents) {
        *cid = 0;
        *dist = sqrtf(sop__v_dot(x, x, dims));
        return;
    }
    const vc_cents *c = ver->cents;
    uint32_t best = 0;
    float bd = INFINITY;
    for (uint32_t j = 0; j < c->n; j++) {
        float d = sop__v_l2sq(x, c->c + (size_t)j * dims, dims);
        if (d < bd) {
            bd = d;
            best = j;
        }
    }
    *cid = best;
    *dist = sqrtf(bd);
}

int vs_assign_batch(const sop_vstore *vs, const vs_ver *ver, const float *x, size_t n,
                    uint32_t *cid, float *dist)
{
    uint32_t d = vs->cfg.dims;
    if (!ver->cents) {
        for (size_t i = 0; i < n; i++)
            vs_assign(vs, ver, x + i * d, &cid[i], &dist[i]);
        return 0;
    }
    const vc_cents *c = ver->cents;
    return sop__kmeans_assign(x, n, d, c->c, c->norms, c->n, cid, dist);
}

int vs_get_rec(sop_vstore *vs, const void *id, size_t id_len, vl_rec *r)
{
    sop_val k = {id, id_len}, v;
    int rc = sop_get(vs->s_content, &k, &v);
    if (rc)
        return rc;
    if (vl_rec_decode(v.data, v.size, r))
        return vs_err(vs, SOP_ECORRUPT, "bad content record of id '%.*s'", (int)id_len,
                      (const char *)id);
    return 0;
}

int vs_put_rec(sop_vstore *vs, const void *id, size_t id_len, const vl_rec *r)
{
    size_t n = vl_rec_size(r);
    int rc = vs_rbuf(vs, n);
    if (rc)
        return rc;
    /* the payload may point into rbuf's old memory: never, callers pass
     * engine or caller memory */
    vl_rec_encode(r, vs->rbuf);
    sop_val k = {id, id_len}, v = {vs->rbuf, n};
    return sop_upsert(vs->s_content, &k, &v);
}

int vs_next_seq(sop_vstore *vs, const vs_ver *ver, uint64_t *seq)
{
    sop_cursor *c;
    int rc = sop_cursor_open(ver->lku, &c);
    if (rc)
        return rc;
    rc = sop_cursor_last(c);
    if (rc == SOP_ENOTFOUND || rc == SOP_EINCOMPLETE) {
        *seq = 0;
        rc = 0;
    } else if (rc == 0) {
        sop_val k;
        rc = sop_cursor_key(c, &k);
        if (!rc && k.size != 8)
            rc = vs_err(vs, SOP_ECORRUPT, "bad lookup key");
        if (!rc)
            *seq = vl_lku_seq(k.data) + 1;
    }
    sop_cursor_close(c);
    return rc;
}

int sop_vstore_count(sop_vstore *vs, uint64_t *count)
{
    if (!vs || !count)
        return -EINVAL;
    return sop_store_count(vs->ver[0].ivf, count);
}

typedef struct size_ctx {
    uint64_t *sizes;
    uint32_t cap, nlist;
    uint64_t min, max;
    uint32_t cur;
    uint64_t run;
    int any;
} size_ctx;

static void close_run(size_ctx *s)
{
    if (!s->any)
        return;
    if (s->cur < s->cap)
        s->sizes[s->cur] = s->run;
}

static int count_cluster(const sop_val *k, const sop_val *v, void *ctx)
{
    (void)v;
    size_ctx *s = ctx;
    if (k->size < VL_IVF_HDR)
        return SOP_ECORRUPT;
    uint32_t cid = vl_ivf_cid(k->data);
    if (!s->any || cid != s->cur) {
        close_run(s);
        s->any = 1;
        s->cur = cid;
        s->run = 0;
    }
    s->run++;
    return 0;
}

int sop_vstore_stats(sop_vstore *vs, sop_vstore_stat *st, uint64_t *sizes, uint32_t cap)
{
    if (!vs || !st)
        return -EINVAL;
    memset(st, 0, sizeof *st);
    st->dims = vs->cfg.dims;
    st->metric = (sop_metric)vs->cfg.metric;
    strcpy(st->embedder, vs->cfg.embedder);
    st->version = vs->cfg.active;
    st->trained = vs->cfg.active > 0;
    st->optimizing = vs->cfg.next != 0;
    st->nlist = vs->cfg.nlist_a;
    int rc = sop_store_count(vs->ver[0].ivf, &st->count);
    if (rc)
        return rc;
    uint64_t *all = sop__calloc(st->nlist, sizeof *all);
    if (!all)
        return -ENOMEM;
    size_ctx s = {.sizes = all, .cap = st->nlist};
    sop_range r = {.keys_only = 1};
    rc = sop_scan(vs->ver[0].ivf, &r, count_cluster, &s);
    if (rc == SOP_ECORRUPT)
        rc = vs_err(vs, rc, "bad index key");
    if (!rc) {
        close_run(&s);
        st->min_cluster = UINT64_MAX;
        for (uint32_t i = 0; i < st->nlist; i++) {
            if (all[i] < st->min_cluster)
                st->min_cluster = all[i];
            if (all[i] > st->max_cluster)
                st->max_cluster = all[i];
            if (sizes && i < cap)
                sizes[i] = all[i];
        }
    }
    sop__free(all);
    return rc;
}
