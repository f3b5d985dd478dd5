/* query.c - k nearest neighbours: rank the centroids with one BLAS call,
 * scan the nprobe best clusters outwards from the query's own distance to
 * each centroid, prune with the triangle inequality, keep a bounded heap
 * of the best k, widen the probe while fewer than k items (that pass the
 * filter) are found.
 *
 * Pruning. An index key carries d(x, c), the item's distance to its
 * centroid. With D = d(q, c), the triangle inequality gives
 * d(q, x) >= |D - d(x, c)|, so once k items are held and the worst of them
 * is at distance r, no item of the cluster with |D - d(x, c)| > r can enter:
 * two cursors walk away from D, nearest gap first, and stop there. Under
 * the inner product, q.x <= q.c + |q| d(x, c) (Cauchy-Schwarz), so the
 * cluster is walked from its far end inwards and stops once that bound
 * cannot beat the worst score held. */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "mem.h"
#include "vmath.h"
#include "vstore.h"

typedef struct cand {
    float bad;         /* lower is better: squared distance, or -ip */
    const uint8_t *id; /* engine memory, valid for the query */
    uint32_t id_len;
} cand;

typedef struct qstate {
    sop_vstore *vs;
    const sop_vquery *q;
    const float *x; /* the checked query */
    uint32_t d;
    int metric;
    cand *heap; /* max-heap on bad, of at most k */
    uint32_t n, k;
    uint64_t scored;
} qstate;

static void heap_push(qstate *s, cand c)
{
    cand *h = s->heap;
    if (s->n < s->k) {
        uint32_t i = s->n++;
        while (i > 0) {
            uint32_t p = (i - 1) / 2;
            if (h[p].bad >= c.bad)
                break;
            h[i] = h[p];
            i = p;
        }
        h[i] = c;
        return;
    }
    /* replace the root (the worst) and sift down */
    uint32_t i = 0;
    for (;;) {
        uint32_t l = 2 * i + 1, r = l + 1, m = i;
        float mb = c.bad;
        if (l < s->n && h[l].bad > mb) {
            m = l;
            mb = h[l].bad;
        }
        if (r < s->n && h[r].bad > mb)
            m = r;
        if (m == i)
            break;
        h[i] = h[m];
        i = m;
    }
    h[i] = c;
}

static float worst(const qstate *s) { return s->n < s->k ? INFINITY : s->heap[0].bad; }

/* Scores one item; returns 1 when it passed into the heap, <0 on error. */
static int consider(qstate *s, const sop_val *key, const sop_val *val)
{
    if (val->size != (size_t)s->d * sizeof(float))
        return vs_err(s->vs, SOP_ECORRUPT, "bad vector in the index");
    const float *v = val->data;
    float bad;
    if (s->metric == SOP_METRIC_IP)
        bad = -sop__v_dot(s->x, v, s->d);
    else if (s->metric == SOP_METRIC_COSINE)
        bad = 2.0f - 2.0f * sop__v_dot(s->x, v, s->d);
    else
        bad = sop__v_l2sq(s->x, v, s->d);
    s->scored++;
    if (!(bad < worst(s)))
        return 0;
    cand c = {bad, (const uint8_t *)key->data + VL_IVF_HDR, (uint32_t)(key->size - VL_IVF_HDR)};
    if (s->q->filter) {
        vl_rec r;
        int rc = vs_get_rec(s->vs, c.id, c.id_len, &r);
        if (rc == SOP_ENOTFOUND)
            return vs_err(s->vs, SOP_ECORRUPT, "indexed item without content");
        if (rc)
            return rc;
        sop_val idv = {c.id, c.id_len}, pv = {r.payload, r.payload_len};
        rc = s->q->filter(&idv, &pv, s->q->filter_ctx);
        if (rc <= 0)
            return rc;
    }
    heap_push(s, c);
    return 1;
}

/* Positions @c on the item of cluster @cid selected by @mode around @bound;
 * returns 1 when there is one, 0 when not, <0 on error. */
static int seek(sop_cursor *c, uint32_t cid, const uint8_t *bound, sop_find_mode mode)
{
    sop_val k = {bound, VL_IVF_HDR};
    int rc = sop_cursor_find(c, &k, mode);
    if (rc == SOP_ENOTFOUND)
        return 0;
    if (rc)
        return rc;
    sop_val key;
    if ((rc = sop_cursor_key(c, &key)))
        return rc;
    return key.size > VL_IVF_HDR && vl_ivf_cid(key.data) == cid;
}

/* Reads the item at @c if it is still in cluster @cid: 1, 0 past it. */
static int at(sop_cursor *c, uint32_t cid, sop_val *key, sop_val *val)
{
    int rc = sop_cursor_get(c, key, val);
    if (rc)
        return rc;
    if (key->size <= VL_IVF_HDR)
        return SOP_ECORRUPT;
    return vl_ivf_cid(key->data) == cid;
}

static int step(sop_cursor *c, int fwd)
{
    int rc = fwd ? sop_cursor_next(c) : sop_cursor_prev(c);
    return rc == SOP_ENOTFOUND ? 0 : rc ? rc : 1;
}

/* L2 and cosine: outwards from D, nearest gap first. */
static int scan_l2(qstate *s, sop_cursor *fc, sop_cursor *bc, uint32_t cid, float D)
{
    uint8_t bound[VL_IVF_HDR];
    vl_ivf_bound(bound, cid, D);
    int fon = seek(fc, cid, bound, SOP_FIND_GE);
    if (fon < 0)
        return fon;
    int bon = seek(bc, cid, bound, SOP_FIND_LT);
    if (bon < 0)
        return bon;
    sop_val fk, fv, bk, bv;
    if (fon > 0 && (fon = at(fc, cid, &fk, &fv)) < 0)
        return fon;
    if (bon > 0 && (bon = at(bc, cid, &bk, &bv)) < 0)
        return bon;
    while (fon > 0 || bon > 0) {
        float fg = fon > 0 ? vl_ivf_dist(fk.data) - D : INFINITY;
        float bg = bon > 0 ? D - vl_ivf_dist(bk.data) : INFINITY;
        int fwd = fg <= bg;
        float gap = fwd ? fg : bg;
        float w = worst(s);
        if (w != INFINITY && gap > 0 && gap * gap > w)
            break; /* every item left is farther than the worst held */
        int rc = fwd ? consider(s, &fk, &fv) : consider(s, &bk, &bv);
        if (rc < 0)
            return rc;
        sop_cursor *c = fwd ? fc : bc;
        int on = step(c, fwd);
        if (on > 0)
            on = fwd ? at(c, cid, &fk, &fv) : at(c, cid, &bk, &bv);
        if (on < 0)
            return on;
        if (fwd)
            fon = on;
        else
            bon = on;
    }
    return 0;
}

/* Inner product: from the far end inwards while the bound can win. */
static int scan_ip(qstate *s, sop_cursor *c, uint32_t cid, float qc, float qn)
{
    uint8_t bound[VL_IVF_HDR];
    vl_ivf_bound(bound, cid + 1, 0);
    int on = seek(c, cid, bound, SOP_FIND_LT); /* the last item of the cluster */
    sop_val k, v;
    if (on > 0)
        on = at(c, cid, &k, &v);
    while (on > 0) {
        float w = worst(s);
        if (w != INFINITY && -(qc + qn * vl_ivf_dist(k.data)) >= w)
            break;
        int rc = consider(s, &k, &v);
        if (rc < 0)
            return rc;
        on = step(c, 0);
        if (on > 0)
            on = at(c, cid, &k, &v);
    }
    return on < 0 ? on : 0;
}

static int cmp_cand(const void *a, const void *b)
{
    float x = ((const cand *)a)->bad, y = ((const cand *)b)->bad;
    return x < y ? -1 : x > y;
}

typedef struct rank {
    float key; /* lower first */
    uint32_t cid;
} rank;

static int cmp_rank(const void *a, const void *b)
{
    const rank *x = a, *y = b;
    if (x->key != y->key)
        return x->key < y->key ? -1 : 1;
    return x->cid < y->cid ? -1 : x->cid > y->cid;
}

/* Moves the @p best entries of @r (by key) to its front, sorted. */
static void select_best(rank *r, uint32_t n, uint32_t p)
{
    if (p >= n || p * 8 >= n) {
        qsort(r, n, sizeof *r, cmp_rank);
        return;
    }
    /* a max-heap of the p best seen so far, at the front */
    for (uint32_t i = 0; i < n; i++) {
        rank x = r[i];
        uint32_t j;
        if (i < p) {
            j = i;
            while (j > 0 && cmp_rank(&r[(j - 1) / 2], &x) < 0) {
                r[j] = r[(j - 1) / 2];
                j = (j - 1) / 2;
            }
            r[j] = x;
            continue;
        }
        if (cmp_rank(&x, &r[0]) >= 0)
            continue;
        r[i] = r[0];
        j = 0;
        for (;;) {
            uint32_t l = 2 * j + 1, m = j;
            if (l < p && cmp_rank(&r[l], &x) > 0)
                m = l;
            if (l + 1 < p && cmp_rank(&r[l + 1], m == j ? &x : &r[m]) > 0)
                m = l + 1;
            if (m == j)
                break;
            r[j] = r[m];
            j = m;
        }
        r[j] = x;
    }
    qsort(r, p, sizeof *r, cmp_rank);
}

int sop_vstore_query(sop_vstore *vs, const sop_vquery *q, sop_vhit *hits, uint32_t *nhits)
{
    if (!vs)
        return -EINVAL;
    if (nhits)
        *nhits = 0;
    if (!q || !hits || !nhits || q->struct_size < sizeof *q)
        return vs_err(vs, -EINVAL, "query: NULL argument or uninitialised sop_vquery");
    if (q->k == 0 || q->k > SOP_VECTOR_K_MAX)
        return vs_err(vs, -EINVAL, "query: k is %u (1..%u)", q->k, SOP_VECTOR_K_MAX);
    uint32_t d = vs->cfg.dims;
    int rc = vs_check_vec(vs, q->vec, q->dims, vs->vbuf, "the query");
    if (rc)
        return rc;
    const vs_ver *ver = &vs->ver[0];
    uint32_t C = ver->nlist;
    qstate s = {.vs = vs, .q = q, .x = vs->vbuf, .d = d, .metric = (int)vs->cfg.metric, .k = q->k};
    rank *r = sop__malloc((size_t)C * sizeof *r);
    float *dots = sop__malloc((size_t)C * sizeof *dots);
    s.heap = sop__malloc((size_t)q->k * sizeof *s.heap);
    sop_cursor *fc = NULL, *bc = NULL;
    if (!r || !dots || !s.heap)
        rc = -ENOMEM;
    if (!rc)
        rc = sop_cursor_open(ver->ivf, &fc);
    if (!rc && s.metric != SOP_METRIC_IP)
        rc = sop_cursor_open(ver->ivf, &bc);
    float qn2 = sop__v_dot(s.x, s.x, d);
    if (!rc) {
        if (ver->cents)
            sop__v_gemv(ver->cents->c, C, d, s.x, dots);
        else
            dots[0] = 0; /* the origin */
        for (uint32_t j = 0; j < C; j++) {
            float nj = ver->cents ? ver->cents->norms[j] : 0;
            r[j].cid = j;
            r[j].key = s.metric == SOP_METRIC_IP ? -dots[j] : qn2 - 2 * dots[j] + nj;
        }
    }
    uint32_t nprobe = q->nprobe ? q->nprobe : (C / 32 ? C / 32 : 1);
    if (nprobe > C)
        nprobe = C;
    if (!rc)
        select_best(r, C, nprobe);
    uint32_t sorted = nprobe;
    float qn = sqrtf(qn2);
    for (uint32_t i = 0; i < C && !rc; i++) {
        if (i >= nprobe && s.n >= s.k)
            break; /* widen only while fewer than k were found */
        if (i == sorted) {
            qsort(r + i, C - i, sizeof *r, cmp_rank);
            sorted = C;
        }
        uint32_t cid = r[i].cid;
        if (s.metric == SOP_METRIC_IP)
            rc = scan_ip(&s, fc, cid, dots[cid], qn);
        else
            rc = scan_l2(&s, fc, bc, cid, sqrtf(r[i].key > 0 ? r[i].key : 0));
    }
    /* results, best first */
    size_t bytes = 0;
    if (!rc) {
        qsort(s.heap, s.n, sizeof *s.heap, cmp_cand);
        for (uint32_t i = 0; i < s.n; i++)
            bytes += s.heap[i].id_len;
        rc = vs_out_room(vs, bytes);
    }
    size_t off = 0;
    for (uint32_t i = 0; i < s.n && !rc; i++) {
        cand *c = &s.heap[i];
        memcpy(vs->out + off, c->id, c->id_len);
        hits[i].id.data = (const void *)(uintptr_t)off; /* rebased below */
        hits[i].id.size = c->id_len;
        off += c->id_len;
        hits[i].payload.data = NULL;
        hits[i].payload.size = 0;
        hits[i].score = s.metric == SOP_METRIC_IP       ? -c->bad
                        : s.metric == SOP_METRIC_COSINE ? 1.0f - c->bad / 2
                                                        : sqrtf(c->bad > 0 ? c->bad : 0);
    }
    if (!rc && q->with_payload) {
        /* payload sizes first, then one buffer */
        size_t total = off;
        for (uint32_t i = 0; i < s.n && !rc; i++) {
            vl_rec rec;
            rc = vs_get_rec(vs, s.heap[i].id, s.heap[i].id_len, &rec);
            if (!rc) {
                hits[i].payload.data = (const void *)(uintptr_t)total;
                hits[i].payload.size = rec.payload_len;
                total += rec.payload_len;
            }
        }
        if (!rc)
            rc = vs_out_room(vs, total);
        for (uint32_t i = 0; i < s.n && !rc; i++) {
            vl_rec rec;
            rc = vs_get_rec(vs, s.heap[i].id, s.heap[i].id_len, &rec);
            if (!rc)
                memcpy(vs->out + (uintptr_t)hits[i].payload.data, rec.payload, rec.payload_len);
        }
        for (uint32_t i = 0; i < s.n && !rc; i++)
            hits[i].payload.data = vs->out + (uintptr_t)hits[i].payload.data;
    }
    for (uint32_t i = 0; i < s.n && !rc; i++)
        hits[i].id.data = vs->out + (uintptr_t)hits[i].id.data;
    if (!rc)
        *nhits = s.n;
    if (rc == SOP_ECORRUPT && !*sop_db_errmsg(vs->db))
        vs_err(vs, rc, "bad index key");
    sop_cursor_close(fc);
    sop_cursor_close(bc);
    sop__free(r);
    sop__free(dots);
    sop__free(s.heap);
    return rc;
}
