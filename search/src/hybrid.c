/* hybrid.c - reciprocal rank fusion of a BM25 list and a vector list.
 *
 * Each list is taken @depth long; a document at rank r (from 1) of a list
 * gains weight / (rrf_k + r); the fused list is sorted by that sum, ties
 * in id order. Documents are matched by id, byte for byte. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "mem.h"
#include "textidx.h"
#include "vstore.h"

typedef struct fused {
    const uint8_t *id; /* in the text handle's memory or a copy */
    size_t idlen;
    double score;
    uint32_t trank, vrank;
} fused;

static int by_id(const void *pa, const void *pb)
{
    const fused *a = pa, *b = pb;
    return tx_id_cmp(a->id, a->idlen, b->id, b->idlen);
}

static int best_first(const void *pa, const void *pb)
{
    const fused *a = pa, *b = pb;
    if (a->score != b->score)
        return a->score < b->score ? 1 : -1;
    return by_id(a, b);
}

void sop_hybrid_query_init(sop_hybrid_query *q)
{
    if (!q)
        return;
    memset(q, 0, sizeof *q);
    q->struct_size = sizeof *q;
    q->k = 10;
    q->rrf_k = 60;
    q->text_weight = 1;
    q->vec_weight = 1;
    q->k1 = 1.2;
    q->b = 0.75;
}

int sop_text_hybrid(sop_text *t, sop_vstore *vs, const sop_hybrid_query *q, sop_hybrid_hit *hits,
                    uint32_t *nhits)
{
    if (!t || !q || !hits || !nhits)
        return -EINVAL;
    *nhits = 0;
    int rc = sop__txn_check(t->txn, 0);
    if (rc)
        return rc;
    uint32_t depth = q->depth ? q->depth : (q->k > 50 ? q->k : 50);
    int has_text = q->text && q->len, has_vec = q->vec != NULL;
    if (q->struct_size < sizeof *q || q->k == 0 || q->k > SOP_TEXT_K_MAX || depth < q->k ||
        depth > SOP_TEXT_K_MAX || !(q->rrf_k > 0) || !(q->text_weight >= 0) ||
        !(q->vec_weight >= 0) || (!q->text && q->len) || (!has_text && !has_vec) ||
        (has_vec && !vs) || (vs && vs->txn != t->txn))
        return tx_err(t, -EINVAL, "bad hybrid query (k 1..%u, depth k..%u, rrf_k > 0, weights "
                      ">= 0, a text or a vector, both handles of one transaction)",
                      SOP_TEXT_K_MAX, SOP_TEXT_K_MAX);
    fused *f = sop__calloc(2 * (size_t)depth, sizeof *f);
    sop_text_hit *th = sop__calloc(depth, sizeof *th);
    sop_vhit *vh = sop__calloc(depth, sizeof *vh);
    uint8_t *vids = NULL;
    uint32_t nt = 0, nv = 0;
    size_t n = 0;
    if (!f || !th || !vh) {
        rc = -ENOMEM;
        goto out;
    }
    if (has_text) {
        sop_text_query tq;
        sop_text_query_init(&tq);
        tq.text = q->text;
        tq.len = q->len;
        tq.k = depth;
        tq.k1 = q->k1;
        tq.b = q->b;
        if ((rc = sop_text_search(t, &tq, th, &nt)))
            goto out;
    }
    if (has_vec) {
        sop_vquery vq;
        sop_vquery_init(&vq);
        vq.vec = q->vec;
        vq.dims = q->dims;
        vq.k = depth;
        vq.nprobe = q->nprobe;
        if ((rc = sop_vstore_query(vs, &vq, vh, &nv)))
            goto out;
        size_t total = 0;
        for (uint32_t i = 0; i < nv; i++)
            total += vh[i].id.size;
        if (!(vids = sop__malloc(total ? total : 1))) {
            rc = -ENOMEM;
            goto out;
        }
        total = 0; /* copies: the vector handle's memory is not ours */
        for (uint32_t i = 0; i < nv; i++) {
            memcpy(vids + total, vh[i].id.data, vh[i].id.size);
            vh[i].id.data = vids + total;
            total += vh[i].id.size;
        }
    }
    for (uint32_t i = 0; i < nt; i++)
        f[n++] = (fused){th[i].id.data, th[i].id.size, q->text_weight / (q->rrf_k + i + 1), i + 1, 0};
    for (uint32_t i = 0; i < nv; i++)
        f[n++] = (fused){vh[i].id.data, vh[i].id.size, q->vec_weight / (q->rrf_k + i + 1), 0, i + 1};
    qsort(f, n, sizeof *f, by_id);
    size_t u = 0; /* each id once, its contributions summed */
    for (size_t i = 0; i < n; i++) {
        if (u && by_id(&f[u - 1], &f[i]) == 0) {
            f[u - 1].score += f[i].score;
            f[u - 1].trank |= f[i].trank;
            f[u - 1].vrank |= f[i].vrank;
        } else {
            f[u++] = f[i];
        }
    }
    qsort(f, u, sizeof *f, best_first);
    if (u > q->k)
        u = q->k;
    size_t total = 0;
    for (size_t i = 0; i < u; i++)
        total += f[i].idlen;
    /* the ids move into t->out, which may hold the text ids: stage them */
    uint8_t *stage = sop__malloc(total ? total : 1);
    if (!stage) {
        rc = -ENOMEM;
        goto out;
    }
    size_t off = 0;
    for (size_t i = 0; i < u; i++) {
        memcpy(stage + off, f[i].id, f[i].idlen);
        off += f[i].idlen;
    }
    if (!(rc = tx_out(t, total ? total : 1))) {
        memcpy(t->out, stage, total);
        off = 0;
        for (size_t i = 0; i < u; i++) {
            hits[i] = (sop_hybrid_hit){{t->out + off, f[i].idlen}, f[i].score, f[i].trank,
                                       f[i].vrank};
            off += f[i].idlen;
        }
        *nhits = (uint32_t)u;
    }
    sop__free(stage);
out:
    sop__free(f);
    sop__free(th);
    sop__free(vh);
    sop__free(vids);
    return rc;
}
