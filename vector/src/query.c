/* query.c - k nearest neighbours: rank the centroids in one pass,
 * scan the nprobe best clusters outwards from the query's own distance to
 * each centroid, prune with the triangle inequality, keep a bounded heap
 * of the best k, widen the probe while fewer than k items (that pass the
 * filter) are found.
 *
 * Candidates that pass the bounds are scored in blocks of QBLOCK: the dot
 * kernel works on four vectors per pass over the query.
 *
 * The centroids are ranked with the SIMD kernel, not cblas_sgemv: for one
 * query OpenBLAS wakes its thread pool, which costs more than the whole
 * scan (measured: 657 against 3,568 queries/s).
 *
 * Pruning. An index key carries d(x, c), the item's distance to its
 * centroid. With D = d(q, c), the triangle inequality gives
 * d(q, x) >= |D - d(x, c)|, so once k items are held and the worst of them
 * is at distance r, no item of the cluster with |D - d(x, c)| > r can enter:
 * a cluster's range scan starts at D - r and stops past D + r. Under
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

/* Candidates scored at a time: the dot kernel takes four rows per pass. */
#define QBLOCK 16

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
    /* candidates waiting to be scored together (engine memory) */
    const uint8_t *bkey[QBLOCK];
    uint32_t bklen[QBLOCK];
    const float *bvec[QBLOCK];
    uint32_t nb;
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

/* Offers a scored item to the heap (through the filter); returns 1 when it
 * entered, <0 on error. */
static int offer(qstate *s, const uint8_t *key, uint32_t klen, float bad)
{
    if (!(bad < worst(s)))
        return 0;
    cand c = {bad, key + VL_IVF_HDR, klen - VL_IVF_HDR};
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

/* Scores the waiting block and offers its items. */
static int flush(qstate *s)
{
    float sc[QBLOCK];
    uint32_t n = s->nb;
    s->nb = 0;
    if (s->metric == SOP_METRIC_L2) {
        for (uint32_t i = 0; i < n; i++)
            sc[i] = sop__v_l2sq(s->x, s->bvec[i], s->d);
    } else {
        sop__v_dots_rows(s->x, s->bvec, n, s->d, sc);
        for (uint32_t i = 0; i < n; i++) /* cosine: |q - x|^2 of unit vectors */
            sc[i] = s->metric == SOP_METRIC_IP ? -sc[i] : 2.0f - 2.0f * sc[i];
    }
    for (uint32_t i = 0; i < n; i++) {
        int rc = offer(s, s->bkey[i], s->bklen[i], sc[i]);
        if (rc < 0)
            return rc;
    }
    return 0;
}

/* Queues an item for scoring; scores the block when it is full. */
static int consider(qstate *s, const sop_val *key, const sop_val *val)
{
    if (val->size != (size_t)s->d * sizeof(float))
        return vs_err(s->vs, SOP_ECORRUPT, "bad vector in the index");
    s->bkey[s->nb] = key->data;
    s->bklen[s->nb] = (uint32_t)key->size;
    s->bvec[s->nb] = val->data;
    return ++s->nb == QBLOCK ? flush(s) : 0;
}

#define SCAN_STOP 1 /* a callback's "this cluster is done" */

typedef struct cscan {
    qstate *s;
    uint32_t cid;
    float D;  /* L2: the query's distance to the centroid */
    float qc; /* IP: q.c and |q| */
    float qn;
} cscan;

/* L2 and cosine, in key order: items with D - d(x,c) > r cannot enter
 * (those before the window), and past d(x,c) - D > r nothing can. */
static int l2_item(const sop_val *key, const sop_val *val, void *ctx)
{
    cscan *cs = ctx;
    if (key->size <= VL_IVF_HDR)
        return vs_err(cs->s->vs, SOP_ECORRUPT, "bad index key");
    if (vl_ivf_cid(key->data) != cs->cid)
        return SCAN_STOP; /* the end of the cluster */
    float w = worst(cs->s);
    if (w != INFINITY) {
        float gap = vl_ivf_dist(key->data) - cs->D;
        if (gap > 0 && gap * gap > w)
            return SCAN_STOP;
        if (gap < 0 && gap * gap > w)
            return 0;
    }
    int rc = consider(cs->s, key, val);
    return rc < 0 ? rc : 0;
}

static int scan_l2(qstate *s, const vs_ver *ver, uint32_t cid, float D)
{
    cscan cs = {.s = s, .cid = cid, .D = D};
    uint8_t lo[VL_IVF_HDR];
    float w = worst(s);
    /* when k items are held already, start at the window; the callback
     * stops at the end of the cluster (cheaper than an end key) */
    vl_ivf_bound(lo, cid, w != INFINITY && D * D > w ? D - sqrtf(w) : 0);
    sop_val from = {lo, VL_IVF_HDR};
    sop_range r = {.from = &from};
    int rc = sop_scan(ver->ivf, &r, l2_item, &cs);
    if (rc == SCAN_STOP)
        rc = 0;
    return rc ? rc : flush(s);
}

/* Inner product, from the far end of the cluster inwards while the bound
 * q.c + |q| d(x,c) can beat the worst score held. */
static int ip_item(const sop_val *key, const sop_val *val, void *ctx)
{
    cscan *cs = ctx;
    if (key->size <= VL_IVF_HDR)
        return vs_err(cs->s->vs, SOP_ECORRUPT, "bad index key");
    if (vl_ivf_cid(key->data) != cs->cid)
        return SCAN_STOP; /* the start of the cluster */
    float w = worst(cs->s);
    if (w != INFINITY && -(cs->qc + cs->qn * vl_ivf_dist(key->data)) >= w)
        return SCAN_STOP;
    int rc = consider(cs->s, key, val);
    return rc < 0 ? rc : 0;
}

static int scan_ip(qstate *s, const vs_ver *ver, uint32_t cid, float qc, float qn)
{
    cscan cs = {.s = s, .cid = cid, .qc = qc, .qn = qn};
    uint8_t hi[VL_IVF_HDR];
    vl_ivf_bound(hi, cid + 1, 0);
    sop_val to = {hi, VL_IVF_HDR};
    sop_range r = {.to = &to, .to_exclusive = 1, .reverse = 1};
    int rc = sop_scan(ver->ivf, &r, ip_item, &cs);
    if (rc == SCAN_STOP)
        rc = 0;
    return rc ? rc : flush(s);
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
    if (p * 2 >= n) {
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
    if (!r || !dots || !s.heap)
        rc = -ENOMEM;
    float qn2 = sop__v_dot(s.x, s.x, d);
    if (!rc) {
        if (ver->cents) /* not cblas_sgemv: see "Query" in docs/design/vector.md */
            sop__v_dots(s.x, ver->cents->c, C, d, dots);
        else
            dots[0] = 0; /* the origin */
        for (uint32_t j = 0; j < C; j++) {
            float nj = ver->cents ? ver->cents->norms[j] : 0;
            r[j].cid = j;
            /* L2: the nearest; IP: the largest q.c; cosine: the same
             * order both ways, the centroids being unit vectors */
            r[j].key = s.metric == SOP_METRIC_L2 ? qn2 - 2 * dots[j] + nj : -dots[j];
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
            rc = scan_ip(&s, ver, cid, dots[cid], qn);
        else {
            /* computed directly: the expansion cancels badly near the centroid */
            float D2 = ver->cents ? sop__v_l2sq(s.x, ver->cents->c + (size_t)cid * d, d) : qn2;
            rc = scan_l2(&s, ver, cid, sqrtf(D2));
        }
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
    sop__free(r);
    sop__free(dots);
    sop__free(s.heap);
    return rc;
}
