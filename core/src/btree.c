/*
 * btree.c - B+tree algorithms over logical node ids (see btree.h).
 *
 * Structure first, item last. Every item operation (insert, update,
 * update_key, delete) first performs the structural changes it will need
 * (split a node that would overflow, merge or rebalance a node that would
 * underflow), each of which preserves the tree's content, then re-descends
 * and applies the item change to a leaf that has room. Each structural
 * step does all of its fallible work (get_mut, alloc, reservations) before
 * its first visible change, so that an error leaves the tree valid. Hence:
 *
 *   - an error return (-ENOMEM, or an error of a callback) means the item
 *     change was NOT applied: the tree holds the same items as before and
 *     is structurally valid (ordered, separators right, leaves at one
 *     depth, every node referenced once, nothing leaked). What may remain
 *     are size blemishes of the structural steps already done: a node
 *     under node_bytes / 4, or (only when a delete merged two nodes that
 *     fit once the deleted item is gone) a node over node_bytes by less
 *     than that item; later operations repair both;
 *   - SOP_OK means the change was applied.
 *
 * The exception to "nothing leaked": if t->drop() fails, the node it was
 * asked to drop is already unlinked from the tree; the error is returned.
 *
 * Pointers: after get_mut(id) every pointer obtained earlier for id is
 * stale, so the code re-fetches through the path (c->path[l].node is
 * updated by mut_path()) and never keeps a pointer into a node's heap
 * across an edit of that node.
 */
#include <errno.h>
#include <stdint.h>
#include <string.h>

#include "sop/sop.h"
#include "btree.h"
#include "mem.h"
#include "node.h"

#define BT_NOSPLIT 1 /* internal: structural step not possible / not useful */
#define BT_MAXN 65535u /* keys per node: the image's n is a u16 */
#define BT_NONE UINT32_MAX
#define BT_RETRIES (4 * SOP__BT_MAX_DEPTH + 16)

/* ---------------------------------------------------------------- */
/* Helpers                                                          */
/* ---------------------------------------------------------------- */

static int memcmp_cmp(const void *a, size_t al, const void *b, size_t bl)
{
    size_t m = al < bl ? al : bl;
    int c = m ? memcmp(a, b, m) : 0;
    if (c)
        return c;
    return al < bl ? -1 : al > bl;
}

static inline int kcmp(const sop__tree *t, const void *a, size_t al, const void *b, size_t bl)
{
    if (t->cmp)
        return t->cmp(t->cmp_ctx, a, al, b, bl);
    return memcmp_cmp(a, al, b, bl);
}

static inline uint32_t nbytes(const sop__tree *t)
{
    return t->node_bytes < 64 ? 64 : t->node_bytes;
}

static inline const uint8_t *nkey(const sop__node *n, uint32_t i)
{
    return n->heap + n->slot[i].koff;
}

/* encoded size of item i */
static inline uint32_t isz(const sop__node *n, uint32_t i)
{
    return n->leaf ? SOP__LEAF_ITEM_OVERHEAD + n->slot[i].klen + n->slot[i].vlen
                   : SOP__INT_ITEM_OVERHEAD + n->slot[i].klen;
}

static inline uint32_t hdr(int leaf) { return leaf ? SOP__NODE_HDR : SOP__NODE_HDR + 8; }

static int check_node(const sop__node *n)
{
    if (!n || (!n->leaf && !n->child) || (n->n && (!n->slot || !n->heap)) || n->n > n->cap)
        return SOP_ECORRUPT;
    return 0;
}

static int nget(sop__tree *t, uint64_t id, sop__node **out)
{
    sop__node *n = NULL;
    int rc = t->get(t->ctx, id, &n);
    if (rc)
        return rc;
    if (check_node(n))
        return SOP_ECORRUPT;
    *out = n;
    return 0;
}

static int nmut(sop__tree *t, uint64_t id, sop__node **out)
{
    sop__node *n = NULL;
    int rc = t->get_mut(t->ctx, id, &n);
    if (rc)
        return rc;
    if (check_node(n))
        return SOP_ECORRUPT;
    *out = n;
    return 0;
}

/* get_mut for the node at path level l; refreshes the path. */
static int mut_path(sop__bcur *c, int l)
{
    sop__node *n;
    int rc = nmut(c->t, c->path[l].node->id, &n);
    if (rc)
        return rc;
    c->path[l].node = n;
    return 0;
}

static void drop_quiet(sop__tree *t, sop__node *n)
{
    if (n)
        (void)t->drop(t->ctx, n->id);
}

static int on_path(const sop__bcur *c, uint64_t id)
{
    for (int i = 0; i < c->depth; i++)
        if (c->path[i].node->id == id)
            return 1;
    return 0;
}

/* Exchanges the contents of two private nodes; ids, versions and the
 * cache's fields stay. */
static void swap_contents(sop__node *a, sop__node *b)
{
#define SWAPF(f)                                                                                   \
    do {                                                                                           \
        __typeof__(a->f) tmp_ = a->f;                                                              \
        a->f = b->f;                                                                               \
        b->f = tmp_;                                                                               \
    } while (0)
    SWAPF(leaf);
    SWAPF(n);
    SWAPF(cap);
    SWAPF(slot);
    SWAPF(child);
    SWAPF(heap);
    SWAPF(heap_len);
    SWAPF(heap_cap);
    SWAPF(heap_dead);
    SWAPF(bytes);
    SWAPF(mem);
#undef SWAPF
}

int sop__bt_cmp(const sop__tree *t, const void *a, size_t alen, const void *b, size_t blen)
{
    return kcmp(t, a, alen, b, blen);
}

/* Narrows [*lo, *hi) to the slots whose key may equal k, using the
 * prefixes of a decoded node (bytewise trees only): every key before *lo
 * is < k, every key from *hi on is > k. */
static void pfx_narrow(const sop__tree *t, const sop__node *n, const uint8_t *k, size_t kl,
                       uint32_t *lo, uint32_t *hi)
{
    *lo = 0;
    *hi = n->n;
    if (t->cmp || !n->pfx || !n->n)
        return;
    uint32_t cpl = n->cpl;
    if (cpl) {
        /* keys share their first cpl bytes: k is below or above them all
         * unless it shares them too */
        size_t m = kl < cpl ? kl : cpl;
        int c = memcmp(k, cpl <= sizeof n->cpre ? n->cpre : nkey(n, 0), m);
        if (c < 0 || (c == 0 && kl < cpl)) {
            *hi = 0;
            return;
        }
        if (c > 0) {
            *lo = n->n;
            return;
        }
    }
    uint64_t q = sop__key_prefix(k, (uint32_t)kl, cpl);
    const uint64_t *pf = n->pfx;
    uint32_t a = 0, b = n->n;
    while (a < b) { /* first prefix >= q */
        uint32_t mid = a + ((b - a) >> 1);
        if (pf[mid] < q)
            a = mid + 1;
        else
            b = mid;
    }
    uint32_t e = a;
    while (e < n->n && pf[e] == q) /* ties: usually none or one */
        e++;
    *lo = a;
    *hi = e;
}

/* leaf: first slot with key >= k (*eq when equal) */
static uint32_t leaf_search(const sop__tree *t, const sop__node *n, const void *k, size_t kl,
                            int *eq)
{
    uint32_t lo, hi;
    pfx_narrow(t, n, k, kl, &lo, &hi);
    *eq = 0;
    while (lo < hi) {
        uint32_t mid = lo + ((hi - lo) >> 1);
        int c = kcmp(t, nkey(n, mid), n->slot[mid].klen, k, kl);
        if (c < 0)
            lo = mid + 1;
        else if (c > 0)
            hi = mid;
        else {
            *eq = 1;
            return mid;
        }
    }
    return lo;
}

/* internal: the child to follow = number of keys <= k */
static uint32_t int_search(const sop__tree *t, const sop__node *n, const void *k, size_t kl)
{
    uint32_t lo, hi;
    pfx_narrow(t, n, k, kl, &lo, &hi);
    while (lo < hi) {
        uint32_t mid = lo + ((hi - lo) >> 1);
        int c = kcmp(t, nkey(n, mid), n->slot[mid].klen, k, kl);
        if (c < 0)
            lo = mid + 1;
        else if (c > 0)
            hi = mid;
        else
            return mid + 1;
    }
    return lo;
}

/* Root-to-leaf path for key k. The leaf entry's idx is the lower bound. */
static int descend(sop__tree *t, sop__bcur *c, const void *k, size_t kl, int *eq)
{
    c->t = t;
    c->depth = 0;
    uint64_t id = t->root;
    for (;;) {
        if (c->depth >= SOP__BT_MAX_DEPTH || on_path(c, id))
            return SOP_ECORRUPT;
        sop__node *n;
        int rc = nget(t, id, &n);
        if (rc)
            return rc;
        c->path[c->depth].node = n;
        if (n->leaf) {
            c->path[c->depth].idx = leaf_search(t, n, k, kl, eq);
            c->depth++;
            return 0;
        }
        uint32_t i = int_search(t, n, k, kl);
        c->path[c->depth].idx = i;
        c->depth++;
        id = n->child[i];
    }
}

/* ---------------------------------------------------------------- */
/* Split points                                                     */
/* ---------------------------------------------------------------- */

/* A sequence of items: node a's items, then (internal pairs) the separator
 * between a and b, then b's items; item @rep counted with size @repsz. */
typedef struct bseq {
    const sop__node *a, *b;
    uint32_t na, sepsz, n;
    uint32_t rep, repsz;
    int leaf, del; /* del: item rep is being deleted */
} bseq;

static uint32_t seq_sz(const bseq *s, uint32_t j)
{
    if (j == s->rep)
        return s->repsz;
    if (j < s->na)
        return isz(s->a, j);
    j -= s->na;
    if (!s->leaf) {
        if (j == 0)
            return s->sepsz;
        j--;
    }
    return isz(s->b, j);
}

/* Leaves: the boundary m (left gets items [0, m)) in [1, n - 1] that
 * balances the bytes best. With del, the side holding the deleted item
 * keeps another one. */
static int choose_leaf(const bseq *s, uint32_t *out)
{
    if (s->n < 2)
        return BT_NOSPLIT;
    uint64_t total = 0;
    for (uint32_t j = 0; j < s->n; j++)
        total += seq_sz(s, j);
    uint64_t left = 0, bestd = UINT64_MAX;
    uint32_t best = 0;
    for (uint32_t m = 1; m < s->n; m++) {
        left += seq_sz(s, m - 1);
        if (s->del && ((s->rep < m && m < 2) || (s->rep >= m && s->n - m < 2)))
            continue;
        uint64_t d = 2 * left > total ? 2 * left - total : total - 2 * left;
        if (d < bestd) {
            bestd = d;
            best = m;
        } else if (2 * left >= total) {
            break;
        }
    }
    if (!best)
        return BT_NOSPLIT;
    *out = best;
    return 0;
}

/* Internal: the key m that moves up (left keeps keys [0, m), right gets
 * (m, n)), m in [1, n - 2]. */
static int choose_int(const bseq *s, uint32_t *out)
{
    if (s->n < 3)
        return BT_NOSPLIT;
    uint64_t total = 0;
    for (uint32_t j = 0; j < s->n; j++)
        total += seq_sz(s, j);
    uint64_t left = seq_sz(s, 0), bestd = UINT64_MAX;
    uint32_t best = 1;
    for (uint32_t m = 1; m + 1 < s->n; m++) {
        uint64_t mid = seq_sz(s, m), right = total - left - mid;
        uint64_t d = left > right ? left - right : right - left;
        if (d < bestd) {
            bestd = d;
            best = m;
        } else if (left >= right) {
            break;
        }
        left += mid;
    }
    *out = best;
    return 0;
}

/* ---------------------------------------------------------------- */
/* Structural steps (content-preserving)                            */
/* ---------------------------------------------------------------- */

/* Moves items from m on (leaf) / keys after m (internal; key m is left in
 * x for the caller to remove) into the empty node r. */
static int move_out(sop__node *x, uint32_t m, sop__node *r)
{
    if (x->leaf)
        return sop__node_move_tail(x, m, r);
    r->child[0] = x->child[m + 1];
    int rc = sop__node_move_tail(x, m + 1, r);
    if (rc)
        return rc;
    sop__node_remove(x, m); /* key m and child m + 1 (now r's child 0) */
    return 0;
}

/* Split-down of the root at m: the root's contents go to two new nodes. */
static int split_root(sop__bcur *c, uint32_t m)
{
    sop__tree *t = c->t;
    int rc = mut_path(c, 0);
    if (rc)
        return rc;
    sop__node *x = c->path[0].node, *in = NULL, *r = NULL;
    rc = t->alloc(t->ctx, 0, &in);
    if (rc)
        return rc;
    rc = t->alloc(t->ctx, x->leaf, &r);
    if (rc)
        goto fail;
    if (check_node(in) || check_node(r) || in->leaf || r->leaf != x->leaf) {
        rc = SOP_ECORRUPT;
        goto fail;
    }
    in->child[0] = 0;
    rc = sop__node_insert_internal(in, 0, nkey(x, m), x->slot[m].klen, r->id);
    if (rc)
        goto fail;
    rc = move_out(x, m, r);
    if (rc)
        goto fail;
    swap_contents(x, in); /* x: [in, sep, r]; in: the left half */
    x->child[0] = in->id;
    return 0;
fail:
    drop_quiet(t, r);
    drop_quiet(t, in);
    return rc;
}

/* Splits the node at level l (a leaf split may be steered by a virtual
 * size @repsz of item @rep). When its parent has no room for the
 * separator, splits the parent instead. Returns 0 after one split (the
 * path is then stale), BT_NOSPLIT, or an error. */
static int split_node(sop__bcur *c, int l, uint32_t rep, uint32_t repsz)
{
    sop__tree *t = c->t;
    sop__node *x = c->path[l].node;
    bseq s = {.a = x, .na = x->n, .n = x->n, .rep = rep, .repsz = repsz, .leaf = x->leaf};
    uint32_t m;
    if (x->leaf ? choose_leaf(&s, &m) : choose_int(&s, &m))
        return BT_NOSPLIT;
    uint32_t seplen = x->slot[m].klen;
    if (l == 0) {
        if (c->depth >= SOP__BT_MAX_DEPTH)
            return BT_NOSPLIT;
        return split_root(c, m);
    }
    sop__node *p = c->path[l - 1].node;
    uint32_t ci = c->path[l - 1].idx;
    if ((uint64_t)p->bytes + SOP__INT_ITEM_OVERHEAD + seplen > nbytes(t) || p->n + 1 > BT_MAXN) {
        int rc = split_node(c, l - 1, BT_NONE, 0);
        if (rc != BT_NOSPLIT)
            return rc;
        if (p->n + 1 > BT_MAXN)
            return BT_NOSPLIT;
        /* the parent cannot split (huge keys): let it grow */
    }
    if (ci > p->n || p->child[ci] != x->id)
        return SOP_ECORRUPT;
    int rc = mut_path(c, l);
    if (!rc)
        rc = mut_path(c, l - 1);
    if (rc)
        return rc;
    x = c->path[l].node;
    p = c->path[l - 1].node;
    sop__node *r = NULL;
    rc = t->alloc(t->ctx, x->leaf, &r);
    if (rc)
        return rc;
    if (check_node(r) || r->leaf != x->leaf) {
        drop_quiet(t, r);
        return SOP_ECORRUPT;
    }
    rc = sop__node_insert_internal(p, ci, nkey(x, m), seplen, r->id);
    if (rc) {
        drop_quiet(t, r);
        return rc;
    }
    rc = move_out(x, m, r);
    if (rc) {
        sop__node_remove(p, ci); /* key ci and child ci + 1 = r */
        drop_quiet(t, r);
        return rc;
    }
    return 0;
}

/* The root is internal with no key: its only child's contents move up. */
static int collapse_root(sop__bcur *c)
{
    sop__tree *t = c->t;
    for (int i = 0; i < SOP__BT_MAX_DEPTH; i++) {
        sop__node *root;
        int rc = nget(t, t->root, &root);
        if (rc)
            return rc;
        if (root->leaf || root->n > 0)
            return 0;
        uint64_t cid = root->child[0];
        if (cid == t->root)
            return SOP_ECORRUPT;
        rc = nmut(t, t->root, &root);
        if (rc)
            return rc;
        sop__node *ch;
        rc = nmut(t, cid, &ch);
        if (rc)
            return rc;
        swap_contents(root, ch);
        rc = t->drop(t->ctx, cid);
        if (rc)
            return rc;
    }
    return SOP_ECORRUPT;
}

static int rebalance(sop__bcur *c, int l, uint32_t rep, uint32_t repsz, int del);

/* After the parent at level pl lost or changed a key: collapse the root
 * or fix an underfull parent. */
static int fix_parent(sop__bcur *c, int pl)
{
    sop__node *p = c->path[pl].node;
    if (pl == 0)
        return p->n == 0 ? collapse_root(c) : 0;
    if (p->bytes < nbytes(c->t) / 4) {
        int rc = rebalance(c, pl, BT_NONE, 0, 0);
        return rc == BT_NOSPLIT ? 0 : rc;
    }
    return 0;
}

/* Merges R (right) into L (left); sepidx is their separator in P. */
static int do_merge(sop__bcur *c, int l, uint64_t sid, int xleft, uint32_t sepidx)
{
    sop__tree *t = c->t;
    sop__node *s;
    int rc = mut_path(c, l);
    if (!rc)
        rc = nmut(t, sid, &s);
    if (!rc)
        rc = mut_path(c, l - 1);
    if (rc)
        return rc;
    sop__node *x = c->path[l].node, *p = c->path[l - 1].node;
    sop__node *L = xleft ? x : s, *R = xleft ? s : x;
    uint32_t seplen = p->slot[sepidx].klen;
    size_t need = (size_t)(R->heap_len - R->heap_dead) + (L->leaf ? 0 : seplen);
    rc = sop__node_reserve(L, R->n + (L->leaf ? 0 : 1), need);
    if (rc)
        return rc;
    /* infallible from here */
    if (!L->leaf)
        (void)sop__node_insert_internal(L, L->n, nkey(p, sepidx), seplen, R->child[0]);
    (void)sop__node_move_tail(R, 0, L);
    uint64_t rid = R->id;
    sop__node_remove(p, sepidx); /* key sepidx and child sepidx + 1 = R */
    c->path[l].node = L;         /* the path must not keep the dropped node */
    rc = t->drop(t->ctx, rid);
    if (rc)
        return rc;
    return fix_parent(c, l - 1);
}

/* Moves items between siblings so that the boundary becomes m (in the
 * sequence L, [sep], R). */
static int do_redistribute(sop__bcur *c, int l, uint64_t sid, int xleft, uint32_t sepidx,
                           uint32_t m)
{
    sop__tree *t = c->t;
    sop__node *s;
    int rc = mut_path(c, l);
    if (!rc)
        rc = nmut(t, sid, &s);
    if (!rc)
        rc = mut_path(c, l - 1);
    if (rc)
        return rc;
    sop__node *x = c->path[l].node, *p = c->path[l - 1].node;
    sop__node *L = xleft ? x : s, *R = xleft ? s : x;
    int leaf = L->leaf;
    uint32_t oldlen = p->slot[sepidx].klen;
    sop__node *tmp;
    rc = sop__node_new(leaf, R->id, &tmp);
    if (rc)
        return rc;
    size_t rlive = (size_t)(R->heap_len - R->heap_dead);
    if (m < L->n) {
        /* left -> right: L's items [m, n) (internal: keys after m, plus the
         * old separator) go in front of R's; L key m is the new separator */
        uint32_t first = leaf ? m : m + 1, cnt = L->n - first;
        size_t hb = rlive + (leaf ? 0 : oldlen);
        for (uint32_t j = first; j < L->n; j++)
            hb += L->slot[j].klen + (leaf ? L->slot[j].vlen : 0);
        uint32_t newlen = L->slot[m].klen;
        rc = sop__node_reserve(tmp, cnt + R->n + (leaf ? 0 : 1), hb);
        if (!rc)
            rc = sop__node_reserve(p, 0, newlen);
        if (rc) {
            sop__node_free(tmp);
            return rc;
        }
        if (leaf) {
            for (uint32_t j = first; j < L->n; j++) {
                const sop__slot *sl = &L->slot[j];
                (void)sop__node_insert_leaf(tmp, tmp->n, L->heap + sl->koff, sl->klen,
                                            L->heap + sl->voff, sl->vlen, sl->vflags);
            }
        } else {
            tmp->child[0] = L->child[first];
            for (uint32_t j = first; j < L->n; j++)
                (void)sop__node_insert_internal(tmp, tmp->n, nkey(L, j), L->slot[j].klen,
                                                L->child[j + 1]);
            (void)sop__node_insert_internal(tmp, tmp->n, nkey(p, sepidx), oldlen, R->child[0]);
        }
        (void)sop__node_move_tail(R, 0, tmp);
        (void)sop__node_set_key(p, sepidx, nkey(L, m), newlen);
        for (uint32_t j = L->n; j > m; j--)
            sop__node_remove(L, j - 1); /* internal: key j-1, child j */
    } else {
        /* right -> left: R's first k items (internal: the old separator and
         * R's first k keys) go to L's end; the next R key is the separator */
        uint32_t k = leaf ? m - L->n : m - L->n - 1;
        size_t hl = leaf ? 0 : oldlen, hr = 0;
        for (uint32_t j = 0; j < R->n; j++) {
            size_t b = R->slot[j].klen + (leaf ? R->slot[j].vlen : 0);
            if (j < k)
                hl += b;
            else if (leaf || j > k)
                hr += b;
        }
        uint32_t newlen = R->slot[k].klen;
        rc = sop__node_reserve(L, k + (leaf ? 0 : 1), hl);
        if (!rc)
            rc = sop__node_reserve(tmp, R->n - k, hr);
        if (!rc)
            rc = sop__node_reserve(p, 0, newlen);
        if (rc) {
            sop__node_free(tmp);
            return rc;
        }
        if (leaf) {
            for (uint32_t j = 0; j < k; j++) {
                const sop__slot *sl = &R->slot[j];
                (void)sop__node_insert_leaf(L, L->n, R->heap + sl->koff, sl->klen,
                                            R->heap + sl->voff, sl->vlen, sl->vflags);
            }
            (void)sop__node_set_key(p, sepidx, nkey(R, k), newlen);
            (void)sop__node_move_tail(R, k, tmp);
        } else {
            (void)sop__node_insert_internal(L, L->n, nkey(p, sepidx), oldlen, R->child[0]);
            for (uint32_t j = 0; j < k; j++)
                (void)sop__node_insert_internal(L, L->n, nkey(R, j), R->slot[j].klen,
                                                R->child[j + 1]);
            (void)sop__node_set_key(p, sepidx, nkey(R, k), newlen);
            tmp->child[0] = R->child[k + 1];
            (void)sop__node_move_tail(R, k + 1, tmp);
        }
    }
    swap_contents(R, tmp);
    sop__node_free(tmp); /* R's old buffers */
    return fix_parent(c, l - 1);
}

/* The node at level l > 0 is (or, after the item change described by
 * rep/repsz/del, will be) under node_bytes / 4: merge it with a sibling or
 * move items between them. Returns 0 after a structural change (path
 * stale), BT_NOSPLIT if nothing useful can be done, or an error. */
static int rebalance(sop__bcur *c, int l, uint32_t rep, uint32_t repsz, int del)
{
    sop__tree *t = c->t;
    sop__node *x = c->path[l].node, *p = c->path[l - 1].node;
    uint32_t ci = c->path[l - 1].idx, nb = nbytes(t);
    if (ci > p->n || p->child[ci] != x->id)
        return SOP_ECORRUPT;
    if (p->n == 0) {
        /* x is an only child: fix the parent first */
        if (l - 1 == 0)
            return collapse_root(c);
        return rebalance(c, l - 1, BT_NONE, 0, 0);
    }
    int xleft = ci == 0;
    uint32_t sepidx = xleft ? ci : ci - 1;
    uint64_t sid = p->child[xleft ? ci + 1 : ci - 1];
    if (on_path(c, sid))
        return SOP_ECORRUPT;
    sop__node *s;
    int rc = nget(t, sid, &s);
    if (rc)
        return rc;
    if (s->leaf != x->leaf)
        return SOP_ECORRUPT;
    const sop__node *L = xleft ? x : s, *R = xleft ? s : x;
    int leaf = x->leaf;
    uint32_t seplen = p->slot[sepidx].klen;
    bseq q = {.a = L, .b = R, .na = L->n, .sepsz = SOP__INT_ITEM_OVERHEAD + seplen,
              .n = L->n + R->n + (leaf ? 0 : 1), .rep = BT_NONE, .leaf = leaf, .del = del};
    int64_t delta = 0;
    if (rep != BT_NONE) {
        q.rep = xleft ? rep : L->n + (leaf ? 0 : 1) + rep;
        q.repsz = repsz;
        delta = (int64_t)repsz - isz(x, rep);
    }
    int64_t merged = (int64_t)L->bytes + R->bytes - hdr(leaf) +
                     (leaf ? 0 : (int64_t)SOP__INT_ITEM_OVERHEAD + seplen);
    if (merged + delta <= (int64_t)nb && q.n - (del ? 1 : 0) <= BT_MAXN)
        return do_merge(c, l, sid, xleft, sepidx);
    uint32_t m;
    if (leaf ? choose_leaf(&q, &m) : choose_int(&q, &m))
        return BT_NOSPLIT;
    if (m == L->n)
        return BT_NOSPLIT; /* already as balanced as it gets */
    /* the parent's separator changes: it must have room for the new one */
    uint32_t newlen;
    if (m < L->n)
        newlen = L->slot[m].klen;
    else
        newlen = R->slot[leaf ? m - L->n : m - L->n - 1].klen;
    if ((uint64_t)p->bytes - seplen + newlen > nb) {
        rc = split_node(c, l - 1, BT_NONE, 0);
        return rc; /* 0: retry; BT_NOSPLIT: leave it */
    }
    return do_redistribute(c, l, sid, xleft, sepidx, m);
}

/* ---------------------------------------------------------------- */
/* Public: modifications                                            */
/* ---------------------------------------------------------------- */

int sop__bt_create(sop__tree *t, uint64_t *root)
{
    sop__node *n;
    int rc = t->alloc(t->ctx, 1, &n);
    if (rc)
        return rc;
    if (check_node(n) || !n->leaf)
        return SOP_ECORRUPT;
    t->root = n->id;
    *root = n->id;
    return 0;
}

static int check_key(const sop__tree *t, size_t klen)
{
    if (klen > SOP__KEY_MAX || klen > nbytes(t) / 4)
        return SOP_ETOOBIG;
    return 0;
}

static int check_val(size_t vlen, uint8_t vflags)
{
    if (vflags > SOP__V_BLOB || (vflags == SOP__V_BLOB && vlen != SOP__BLOBREF_SIZE))
        return -EINVAL;
    if (vlen > UINT32_MAX / 4)
        return SOP_ETOOBIG;
    return 0;
}

/* The leaf of @c will get a new item of encoded size @newsz before slot
 * @idx (insert), or its item @idx will get size @newsz (del: be removed).
 * Performs one structural step if an internal node on the path is
 * underfull or the leaf would overflow or underflow. Returns 0 after such
 * a step (the path is then stale), BT_NOSPLIT if none is needed or
 * possible, or an error. */
static int prepare_leaf(sop__bcur *c, int insert, uint32_t idx, uint32_t newsz, int del)
{
    int l = c->depth - 1;
    sop__node *x = c->path[l].node;
    uint32_t nb = nbytes(c->t);
    /* first repair the internal nodes on the path, top-down: a cascade
     * that had to split a grandparent first, or an earlier failure, may
     * have left one under node_bytes / 4 (or the root without a key) */
    if (l > 0 && c->path[0].node->n == 0)
        return collapse_root(c);
    for (int i = 1; i < l; i++) {
        if (c->path[i].node->bytes < nb / 4) {
            int rc = rebalance(c, i, BT_NONE, 0, 0);
            if (rc != BT_NOSPLIT)
                return rc;
        }
    }
    if (insert) {
        if ((uint64_t)x->bytes + newsz <= nb && x->n + 1 <= BT_MAXN)
            return BT_NOSPLIT;
        if (x->n < 2)
            return BT_NOSPLIT;
        /* the new item goes left iff idx <= m: count it with item idx - 1 */
        uint32_t rep = idx ? idx - 1 : 0;
        return split_node(c, l, rep, isz(x, rep) + newsz);
    }
    int64_t after = (int64_t)x->bytes - isz(x, idx) + newsz;
    if (!del && after > (int64_t)nb)
        return split_node(c, l, idx, newsz);
    if (l > 0 && after < (int64_t)(nb / 4))
        return rebalance(c, l, idx, newsz, del);
    return BT_NOSPLIT;
}

int sop__bt_insert(sop__tree *t, const void *key, size_t klen, const void *val, size_t vlen,
                   uint8_t vflags)
{
    int rc = check_key(t, klen);
    if (!rc)
        rc = check_val(vlen, vflags);
    if (rc)
        return rc;
    uint32_t itemsz = SOP__LEAF_ITEM_OVERHEAD + (uint32_t)klen + (uint32_t)vlen;
    sop__bcur c;
    for (int iter = 0;; iter++) {
        int eq;
        rc = descend(t, &c, key, klen, &eq);
        if (rc)
            return rc;
        if (eq)
            return SOP_EEXISTS;
        uint32_t idx = c.path[c.depth - 1].idx;
        if (iter < BT_RETRIES) {
            rc = prepare_leaf(&c, 1, idx, itemsz, 0);
            if (rc == 0)
                continue;
            if (rc != BT_NOSPLIT)
                return rc;
        }
        rc = mut_path(&c, c.depth - 1);
        if (rc)
            return rc;
        return sop__node_insert_leaf(c.path[c.depth - 1].node, idx, key, (uint32_t)klen, val,
                                     (uint32_t)vlen, vflags);
    }
}

static void save_old(const sop__node *n, uint32_t i, sop__oldval *old)
{
    memset(old, 0, sizeof(*old));
    old->vflags = n->slot[i].vflags;
    old->state = sop__val_state(n->heap + n->slot[i].voff, n->slot[i].vlen, n->slot[i].vflags);
    if (old->vflags == SOP__V_BLOB && n->slot[i].vlen == SOP__BLOBREF_SIZE)
        memcpy(old->ref, n->heap + n->slot[i].voff, SOP__BLOBREF_SIZE);
}

/* Finds @key and prepares its leaf for the item's new key / value length
 * (SIZE_MAX: unchanged; del: the item goes). On success c is positioned
 * on the item with a mutable leaf. */
static int locate_for_change(sop__tree *t, sop__bcur *c, const void *key, size_t klen,
                             size_t newklen, size_t newvlen, int del)
{
    for (int iter = 0;; iter++) {
        int eq;
        int rc = descend(t, c, key, klen, &eq);
        if (rc)
            return rc;
        if (!eq)
            return SOP_ENOTFOUND;
        int l = c->depth - 1;
        sop__node *x = c->path[l].node;
        uint32_t idx = c->path[l].idx;
        if (iter < BT_RETRIES) {
            uint32_t newsz = 0;
            if (!del) {
                uint64_t k = newklen == SIZE_MAX ? x->slot[idx].klen : newklen;
                uint64_t v = newvlen == SIZE_MAX ? x->slot[idx].vlen : newvlen;
                newsz = (uint32_t)(SOP__LEAF_ITEM_OVERHEAD + k + v);
            }
            rc = prepare_leaf(c, 0, idx, newsz, del);
            if (rc == 0)
                continue;
            if (rc != BT_NOSPLIT)
                return rc;
        }
        return mut_path(c, l);
    }
}

int sop__bt_update(sop__tree *t, const void *key, size_t klen, const void *val, size_t vlen,
                   uint8_t vflags, sop__oldval *old)
{
    int rc = check_val(vlen, vflags);
    if (rc)
        return rc;
    if (klen > SOP__KEY_MAX)
        return SOP_ENOTFOUND;
    sop__bcur c;
    rc = locate_for_change(t, &c, key, klen, SIZE_MAX, vlen, 0);
    if (rc)
        return rc;
    sop__node *x = c.path[c.depth - 1].node;
    uint32_t idx = c.path[c.depth - 1].idx;
    sop__oldval o;
    save_old(x, idx, &o);
    rc = sop__node_set_val(x, idx, val, (uint32_t)vlen, vflags);
    if (!rc && old)
        *old = o;
    return rc;
}

int sop__bt_update_key(sop__tree *t, const void *key, size_t klen, const void *nkey_,
                       size_t nklen)
{
    int rc = check_key(t, nklen);
    if (rc)
        return rc;
    if (klen > SOP__KEY_MAX)
        return SOP_ENOTFOUND;
    if (kcmp(t, key, klen, nkey_, nklen) != 0)
        return -EINVAL;
    sop__bcur c;
    rc = locate_for_change(t, &c, key, klen, nklen, SIZE_MAX, 0);
    if (rc)
        return rc;
    return sop__node_set_key(c.path[c.depth - 1].node, c.path[c.depth - 1].idx, nkey_,
                             (uint32_t)nklen);
}

int sop__bt_delete(sop__tree *t, const void *key, size_t klen, sop__oldval *old)
{
    if (klen > SOP__KEY_MAX)
        return SOP_ENOTFOUND;
    sop__bcur c;
    int rc = locate_for_change(t, &c, key, klen, SIZE_MAX, SIZE_MAX, 1);
    if (rc)
        return rc;
    sop__node *x = c.path[c.depth - 1].node;
    uint32_t idx = c.path[c.depth - 1].idx;
    if (old)
        save_old(x, idx, old);
    sop__node_remove(x, idx);
    return 0;
}

/* ---------------------------------------------------------------- */
/* Cursor                                                           */
/* ---------------------------------------------------------------- */

/* Descends from node @id (pushed at c->depth) along the leftmost (dir > 0)
 * or rightmost (dir < 0) children to a leaf. */
static int descend_edge(sop__bcur *c, uint64_t id, int dir)
{
    for (;;) {
        if (c->depth >= SOP__BT_MAX_DEPTH)
            return SOP_ECORRUPT;
        sop__node *n;
        int rc = nget(c->t, id, &n);
        if (rc)
            return rc;
        c->path[c->depth].node = n;
        if (n->leaf) {
            c->path[c->depth].idx = dir > 0 ? 0 : (n->n ? n->n - 1 : 0);
            c->depth++;
            return 0;
        }
        uint32_t i = dir > 0 ? 0 : n->n;
        c->path[c->depth].idx = i;
        c->depth++;
        id = n->child[i];
    }
}

/* Moves to the first (dir > 0) or last item of the next / previous
 * non-empty leaf. */
static int step_leaf(sop__bcur *c, int dir)
{
    for (;;) {
        int l = c->depth - 2;
        while (l >= 0 &&
               (dir > 0 ? c->path[l].idx >= c->path[l].node->n : c->path[l].idx == 0))
            l--;
        if (l < 0) {
            c->depth = 0;
            return SOP_ENOTFOUND;
        }
        if (dir > 0)
            c->path[l].idx++;
        else
            c->path[l].idx--;
        c->depth = l + 1;
        int rc = descend_edge(c, c->path[l].node->child[c->path[l].idx], dir);
        if (rc) {
            c->depth = 0;
            return rc;
        }
        if (c->path[c->depth - 1].node->n > 0)
            return 0;
    }
}

static int edge(sop__bcur *c, int dir)
{
    c->depth = 0;
    int rc = descend_edge(c, c->t->root, dir);
    if (rc) {
        c->depth = 0;
        return rc;
    }
    if (c->path[c->depth - 1].node->n > 0)
        return 0;
    if (c->depth == 1) {
        c->depth = 0;
        return SOP_ENOTFOUND;
    }
    return step_leaf(c, dir);
}

int sop__bt_first(sop__bcur *c) { return edge(c, 1); }
int sop__bt_last(sop__bcur *c) { return edge(c, -1); }

int sop__bt_next(sop__bcur *c)
{
    if (c->depth <= 0)
        return SOP_ENOTFOUND;
    sop__node *leaf = c->path[c->depth - 1].node;
    uint32_t *idx = &c->path[c->depth - 1].idx;
    if (*idx + 1 < leaf->n) {
        (*idx)++;
        return 0;
    }
    return step_leaf(c, 1);
}

int sop__bt_prev(sop__bcur *c)
{
    if (c->depth <= 0)
        return SOP_ENOTFOUND;
    uint32_t *idx = &c->path[c->depth - 1].idx;
    if (*idx > 0 && *idx <= c->path[c->depth - 1].node->n) {
        (*idx)--;
        return 0;
    }
    return step_leaf(c, -1);
}

int sop__bt_seek(sop__bcur *c, const void *key, size_t klen, int mode)
{
    int eq;
    int rc = descend(c->t, c, key, klen, &eq);
    if (rc) {
        c->depth = 0;
        return rc;
    }
    sop__node *leaf = c->path[c->depth - 1].node;
    uint32_t *idx = &c->path[c->depth - 1].idx;
    switch (mode) {
    case SOP__SEEK_EQ:
        if (eq)
            return 0;
        break;
    case SOP__SEEK_GE:
        if (*idx < leaf->n)
            return 0;
        return step_leaf(c, 1);
    case SOP__SEEK_GT:
        if (eq)
            (*idx)++;
        if (*idx < leaf->n)
            return 0;
        return step_leaf(c, 1);
    case SOP__SEEK_LE:
        if (eq)
            return 0;
        /* fallthrough */
    case SOP__SEEK_LT:
        if (*idx > 0) {
            (*idx)--;
            return 0;
        }
        return step_leaf(c, -1);
    default:
        c->depth = 0;
        return -EINVAL;
    }
    c->depth = 0;
    return SOP_ENOTFOUND;
}

void sop__bt_item(const sop__bcur *c, const uint8_t **key, uint32_t *klen, const uint8_t **val,
                  uint32_t *vlen, uint8_t *vflags)
{
    const sop__node *n = c->path[c->depth - 1].node;
    uint32_t i = c->path[c->depth - 1].idx;
    if (key)
        *key = n->heap + n->slot[i].koff;
    if (klen)
        *klen = n->slot[i].klen;
    if (val)
        *val = n->heap + n->slot[i].voff;
    if (vlen)
        *vlen = n->slot[i].vlen;
    if (vflags)
        *vflags = n->slot[i].vflags;
}

void sop__bt_prefetch(const sop__bcur *c, int ahead)
{
    const sop__node *n = c->path[c->depth - 1].node;
    int64_t i = (int64_t)c->path[c->depth - 1].idx + ahead;
    if (i < 0 || i >= (int64_t)n->n)
        return;
    const uint8_t *k = n->heap + n->slot[i].koff, *v = n->heap + n->slot[i].voff;
    __builtin_prefetch(k);
    uint32_t vlen = n->slot[i].vlen < 1024 ? n->slot[i].vlen : 1024;
    for (uint32_t off = 0; off < vlen; off += 64)
        __builtin_prefetch(v + off);
}

/* ---------------------------------------------------------------- */
/* Walk                                                             */
/* ---------------------------------------------------------------- */

struct walk {
    sop__tree *t;
    int (*fn)(void *arg, const sop__node *n, int level);
    void *arg;
    int leaf_level; /* -1 until the first leaf */
};

static int walk_rec(struct walk *w, uint64_t id, int level)
{
    if (level >= SOP__BT_MAX_DEPTH)
        return SOP_ECORRUPT;
    sop__node *n;
    int rc = nget(w->t, id, &n);
    if (rc)
        return rc;
    if (n->leaf ? (w->leaf_level >= 0 && level != w->leaf_level)
                : (w->leaf_level >= 0 && level >= w->leaf_level))
        return SOP_ECORRUPT; /* leaves at different depths */
    if (n->leaf)
        w->leaf_level = level;
    rc = w->fn(w->arg, n, level);
    if (rc || n->leaf)
        return rc;
    for (uint32_t i = 0; i <= n->n; i++) {
        if (n->child[i] == id)
            return SOP_ECORRUPT;
        rc = walk_rec(w, n->child[i], level + 1);
        if (rc)
            return rc;
    }
    return 0;
}

int sop__bt_walk(sop__tree *t, int (*fn)(void *arg, const sop__node *n, int level), void *arg)
{
    struct walk w = {t, fn, arg, -1};
    return walk_rec(&w, t->root, 0);
}
