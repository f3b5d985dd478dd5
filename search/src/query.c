/* query.c - BM25 top-k over the postings, document at a time with
 * MaxScore pruning.
 *
 * Each query term has a cursor on its postings (both forms, merged in id
 * order: postings.h), walked on the B-tree itself: a step is a slot in a
 * leaf or in a decoded block, not a lookup. A term's score in a document is at most w (k1 + 1), where w is
 * its weight (IDF times its count in the query). With the terms sorted by
 * that bound, the lowest ones whose bounds sum to less than the current
 * k-th best score are "non-essential": a document that holds none of the
 * other terms cannot enter the top k, so only the essential terms' cursors
 * pick candidates, and the non-essential ones are sought to a candidate
 * only while its score can still reach the k-th best. */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "mem.h"
#include "postings.h"
#include "textidx.h"

typedef struct piter {
    pb_iter p;
    double w, ub;
} piter;

/* A result kept in the heap; ids live in a slab, SOP_TEXT_ID_MAX each. */
typedef struct hent {
    double score;
    uint32_t slot;
    uint16_t idlen;
} hent;

typedef struct heap {
    hent *e;
    uint8_t *ids;
    uint32_t n, k;
} heap;

/* a worse than b: lower score, or the same score and a larger id */
static int worse(const heap *h, const hent *a, const hent *b)
{
    if (a->score != b->score)
        return a->score < b->score;
    return tx_id_cmp(h->ids + (size_t)a->slot * SOP_TEXT_ID_MAX, a->idlen,
                  h->ids + (size_t)b->slot * SOP_TEXT_ID_MAX, b->idlen) > 0;
}

static void sift_down(heap *h, uint32_t i)
{
    for (;;) {
        uint32_t l = 2 * i + 1, r = l + 1, m = i;
        if (l < h->n && worse(h, &h->e[l], &h->e[m]))
            m = l;
        if (r < h->n && worse(h, &h->e[r], &h->e[m]))
            m = r;
        if (m == i)
            return;
        hent x = h->e[i];
        h->e[i] = h->e[m];
        h->e[m] = x;
        i = m;
    }
}

static void sift_up(heap *h, uint32_t i)
{
    while (i) {
        uint32_t p = (i - 1) / 2;
        if (!worse(h, &h->e[i], &h->e[p]))
            return;
        hent x = h->e[i];
        h->e[i] = h->e[p];
        h->e[p] = x;
        i = p;
    }
}

/* Offers a document; returns 1 when it entered. */
static int offer(heap *h, double score, const uint8_t *id, size_t idlen)
{
    hent cand = {score, 0, (uint16_t)idlen};
    if (h->n == h->k) {
        const hent *w = &h->e[0];
        if (score < w->score)
            return 0;
        if (score == w->score &&
            tx_id_cmp(id, idlen, h->ids + (size_t)w->slot * SOP_TEXT_ID_MAX, w->idlen) >= 0)
            return 0;
        cand.slot = w->slot;
        memcpy(h->ids + (size_t)cand.slot * SOP_TEXT_ID_MAX, id, idlen);
        h->e[0] = cand;
        sift_down(h, 0);
        return 1;
    }
    cand.slot = h->n;
    memcpy(h->ids + (size_t)cand.slot * SOP_TEXT_ID_MAX, id, idlen);
    h->e[h->n++] = cand;
    sift_up(h, h->n - 1);
    return 1;
}

static int by_ub(const void *pa, const void *pb)
{
    const piter *a = *(piter *const *)pa, *b = *(piter *const *)pb;
    return (a->ub > b->ub) - (a->ub < b->ub);
}

typedef struct params {
    double k1, A, B; /* K(dl) = A + B dl */
} params;

static inline double bm25(const params *pr, const piter *p)
{
    double tf = p->p.tf;
    return p->w * tf * (pr->k1 + 1) / (tf + pr->A + pr->B * p->p.dl);
}

/* The document-at-a-time loop over @m cursors sorted by bound. */
static int run(piter **it, size_t m, const params *pr, heap *h)
{
    double cum[64]; /* cum[i]: sum of the bounds of it[0..i] */
    for (size_t i = 0; i < m; i++)
        cum[i] = it[i]->ub + (i ? cum[i - 1] : 0);
    size_t ne = 0; /* it[0..ne) are non-essential */
    double theta = -1;
    uint8_t cur[SOP_TEXT_ID_MAX];
    int rc = 0;
    while (!rc) {
        /* the candidate: the smallest id among the essential cursors */
        const pb_iter *best = NULL;
        for (size_t i = ne; i < m; i++) {
            const pb_iter *p = &it[i]->p;
            if (!p->done && (!best || tx_id_cmp(p->id, p->idlen, best->id, best->idlen) < 0))
                best = p;
        }
        if (!best)
            break;
        size_t clen = best->idlen;
        memcpy(cur, best->id, clen);
        double score = 0;
        for (size_t i = ne; i < m && !rc; i++) {
            pb_iter *p = &it[i]->p;
            if (!p->done && tx_id_cmp(p->id, p->idlen, cur, clen) == 0) {
                score += bm25(pr, it[i]);
                rc = pb_iter_next(p);
            }
        }
        for (size_t j = ne; j-- > 0 && !rc;) {
            if (h->n == h->k && score + cum[j] < theta)
                break;
            pb_iter *p = &it[j]->p;
            if ((rc = pb_iter_seek(p, cur, clen)) == 0 && !p->done &&
                tx_id_cmp(p->id, p->idlen, cur, clen) == 0)
                score += bm25(pr, it[j]);
        }
        if (rc)
            break;
        if (offer(h, score, cur, clen) && h->n == h->k) {
            theta = h->e[0].score;
            while (ne < m && cum[ne] < theta)
                ne++;
        }
    }
    return rc;
}

static int hent_best_first(const void *pa, const void *pb, void *ctx)
{
    const heap *h = ctx;
    const hent *a = pa, *b = pb;
    return worse(h, a, b) ? 1 : worse(h, b, a) ? -1 : 0;
}

/* A tiny insertion sort (k results; qsort has no context argument). */
static void sort_results(heap *h)
{
    for (uint32_t i = 1; i < h->n; i++) {
        hent x = h->e[i];
        uint32_t j = i;
        while (j > 0 && hent_best_first(&h->e[j - 1], &x, h) > 0) {
            h->e[j] = h->e[j - 1];
            j--;
        }
        h->e[j] = x;
    }
}

int tx_search(sop_text *t, const sop_text_query *qu, sop_text_hit *hits, uint32_t *nhits)
{
    *nhits = 0;
    uint64_t N, L;
    int rc = tx_corpus(t, &N, &L);
    if (!rc)
        rc = tx_analyze_query(t, qu->text, qu->len);
    if (rc || N == 0 || t->bag.n == 0)
        return rc;
    size_t m = 0, nt = t->bag.n < 64 ? t->bag.n : 64;
    piter *pool = sop__calloc(nt, sizeof *pool);
    piter **it = sop__calloc(nt, sizeof *it);
    heap h = {sop__calloc(qu->k, sizeof(hent)), sop__malloc((size_t)qu->k * SOP_TEXT_ID_MAX), 0,
              qu->k};
    if (!pool || !it || !h.e || !h.ids) {
        rc = -ENOMEM;
        goto out;
    }
    t->txn->no_merge = 1; /* range reads: a merge at commit cannot replay them */
    /* the 64 heaviest terms at most: a longer query gets the rest dropped */
    for (size_t i = 0; i < t->bag.n && !rc; i++) {
        const tx_term *x = &t->bag.terms[i];
        uint64_t df;
        if ((rc = tx_df(t, x->t, x->len, &df)) || df == 0)
            continue;
        double idf = log(((double)N - (double)df + 0.5) / ((double)df + 0.5));
        if (idf <= 0)
            idf = 1e-6;
        double w = idf * (double)x->n;
        size_t at = m;
        if (m == nt) { /* full: replace the lightest if this one is heavier */
            at = 0;
            for (size_t j = 1; j < m; j++)
                if (pool[j].w < pool[at].w)
                    at = j;
            if (pool[at].w >= w)
                continue;
            pb_iter_close(&pool[at].p);
        } else {
            m++;
        }
        memset(&pool[at], 0, sizeof pool[at]);
        pool[at].w = w;
        pool[at].ub = w * (qu->k1 + 1);
        if ((rc = pb_iter_open(&pool[at].p, t, x->t, x->len)) == 0)
            it[at] = &pool[at];
    }
    if (rc)
        goto out;
    qsort(it, m, sizeof *it, by_ub);
    double avgdl = L ? (double)L / (double)N : 1;
    params pr = {qu->k1, qu->k1 * (1 - qu->b), qu->k1 * qu->b / avgdl};
    if ((rc = run(it, m, &pr, &h)))
        goto out;
    sort_results(&h);
    size_t total = 0;
    for (uint32_t i = 0; i < h.n; i++)
        total += h.e[i].idlen;
    if ((rc = tx_out(t, total ? total : 1)))
        goto out;
    size_t off = 0;
    for (uint32_t i = 0; i < h.n; i++) {
        memcpy(t->out + off, h.ids + (size_t)h.e[i].slot * SOP_TEXT_ID_MAX, h.e[i].idlen);
        hits[i].id = (sop_val){t->out + off, h.e[i].idlen};
        hits[i].score = h.e[i].score;
        off += h.e[i].idlen;
    }
    *nhits = h.n;
out:
    for (size_t i = 0; pool && i < m; i++)
        pb_iter_close(&pool[i].p);
    sop__free(pool);
    sop__free(it);
    sop__free(h.e);
    sop__free(h.ids);
    if (rc && rc != -EINVAL && rc != -ENOMEM)
        rc = sop__txn_fail(t->txn, rc);
    return rc;
}

void sop_text_query_init(sop_text_query *q)
{
    if (!q)
        return;
    memset(q, 0, sizeof *q);
    q->struct_size = sizeof *q;
    q->k = 10;
    q->k1 = 1.2;
    q->b = 0.75;
}

int sop_text_search(sop_text *t, const sop_text_query *q, sop_text_hit *hits, uint32_t *nhits)
{
    if (!t || !q || !hits || !nhits)
        return -EINVAL;
    *nhits = 0;
    int rc = sop__txn_check(t->txn, 0);
    if (rc)
        return rc;
    if (q->struct_size < sizeof *q || q->k == 0 || q->k > SOP_TEXT_K_MAX || !(q->k1 >= 0) ||
        !(q->b >= 0 && q->b <= 1) || (!q->text && q->len) || q->len > SOP_TEXT_DOC_MAX)
        return tx_err(t, -EINVAL, "bad query (k 1..%u, k1 >= 0, b in [0, 1], text up to %u "
                      "bytes)", SOP_TEXT_K_MAX, SOP_TEXT_DOC_MAX);
    return tx_search(t, q, hits, nhits);
}
