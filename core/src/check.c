/*
 * check.c - sop_db_check(): a full structural check of a database.
 *
 * In one READ snapshot: every store of the catalog is walked from its root;
 * each node's image is read and its CRC verified (by the segment reader),
 * keys are in order inside each node and within the bounds set by the
 * parent's separators, all leaves are at one depth, every value blob
 * reference resolves to a blob image of the right size and checksum, and
 * the store's item counter equals the items found. Then every live registry handle must
 * have been reached (no leaked ids) and point at a valid image record of
 * that id and version; no two live images may share bytes, each must lie
 * inside its segment, and no id on the free list may be live.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bytes.h"
#include "internal.h"
#include "mem.h"

typedef struct chk {
    sop_txn *txn;
    sop_db *db;
    sop_check_fn fn;
    void *ctx;
    uint64_t problems;
    sop__u64map reached;
    int leaf_depth;
    uint64_t items;
    const char *store;
} chk;

static void problem(chk *k, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void problem(chk *k, const char *fmt, ...)
{
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    k->problems++;
    if (k->fn)
        k->fn(buf, k->ctx);
}

static int reach(chk *k, uint64_t id)
{
    if (sop__u64map_get(&k->reached, id)) {
        problem(k, "store %s: id %llu is referenced twice", k->store, (unsigned long long)id);
        return 0;
    }
    return sop__u64map_put(&k->reached, id, (void *)1);
}

static int walk(chk *k, sop__tree *t, uint64_t id, int depth, const uint8_t *lo, uint32_t lolen,
                const uint8_t *hi, uint32_t hilen)
{
    if (depth > SOP__BT_MAX_DEPTH) {
        problem(k, "store %s: tree deeper than %d", k->store, SOP__BT_MAX_DEPTH);
        return 0;
    }
    int rc = reach(k, id);
    if (rc)
        return rc;
    sop__node *n;
    rc = t->get(t->ctx, id, &n);
    if (rc == SOP_ECORRUPT) {
        problem(k, "store %s: node %llu: %s", k->store, (unsigned long long)id, sop_db_errmsg(k->db));
        return 0;
    }
    if (rc)
        return rc;
    const uint8_t *prev = NULL;
    uint32_t prevlen = 0;
    for (uint32_t i = 0; i < n->n; i++) {
        uint32_t kl;
        const uint8_t *key = sop__node_key(n, i, &kl);
        if (prev && sop__bt_cmp(t, prev, prevlen, key, kl) >= 0)
            problem(k, "store %s: node %llu: keys %u and %u out of order", k->store,
                    (unsigned long long)id, i - 1, i);
        if (lo && sop__bt_cmp(t, key, kl, lo, lolen) < 0)
            problem(k, "store %s: node %llu: key %u below its separator", k->store,
                    (unsigned long long)id, i);
        if (hi && sop__bt_cmp(t, key, kl, hi, hilen) >= 0)
            problem(k, "store %s: node %llu: key %u not below its separator", k->store,
                    (unsigned long long)id, i);
        prev = key;
        prevlen = kl;
    }
    if (n->leaf) {
        if (k->leaf_depth < 0)
            k->leaf_depth = depth;
        else if (k->leaf_depth != depth)
            problem(k, "store %s: leaf %llu at depth %d, others at %d", k->store,
                    (unsigned long long)id, depth, k->leaf_depth);
        k->items += n->n;
        for (uint32_t i = 0; i < n->n; i++) {
            if (n->slot[i].vflags != SOP__V_BLOB)
                continue;
            uint32_t vl;
            const uint8_t *v = sop__node_val(n, i, &vl);
            if (vl != SOP__BLOBREF_SIZE) {
                problem(k, "store %s: node %llu: bad blob reference", k->store, (unsigned long long)id);
                continue;
            }
            uint64_t bid = sop__get64(v), size = sop__get64(v + 8);
            rc = reach(k, bid);
            if (rc)
                return rc;
            const uint8_t *data;
            rc = sop__txn_get_blob(k->txn, bid, size, &data);
            int crc_ok = !rc && sop__blobref_crc_ok(v, data);
            sop__txn_free_tmp(k->txn);
            if (rc == SOP_ECORRUPT)
                problem(k, "store %s: blob %llu: %s", k->store, (unsigned long long)bid,
                        sop_db_errmsg(k->db));
            else if (rc)
                return rc;
            else if (!crc_ok)
                problem(k, "store %s: blob %llu: checksum mismatch", k->store,
                        (unsigned long long)bid);
        }
        return 0;
    }
    if (!n->child || n->n == 0) {
        problem(k, "store %s: internal node %llu has no keys", k->store, (unsigned long long)id);
        return 0;
    }
    for (uint32_t i = 0; i <= n->n; i++) {
        uint32_t l1 = 0, l2 = 0;
        const uint8_t *a = i ? sop__node_key(n, i - 1, &l1) : lo;
        const uint8_t *b = i < n->n ? sop__node_key(n, i, &l2) : hi;
        if (!i)
            l1 = lolen;
        if (i == n->n)
            l2 = hilen;
        rc = walk(k, t, n->child[i], depth + 1, a, l1, b, l2);
        if (rc)
            return rc;
    }
    return 0;
}

static int check_store(const char *name, void *arg)
{
    chk *k = arg;
    sop_store *s;
    k->store = name;
    if (!sop__valid_name(name, SOP_STORE_NAME_MAX)) { /* no store was created so */
        problem(k, "catalog: an entry whose key is not a valid store name");
        return 0;
    }
    int rc = sop_store_open(k->txn, name, &s);
    if (rc == SOP_ECORRUPT || rc == SOP_ENOCMP) {
        problem(k, "store %s: %s", name, sop_db_errmsg(k->db));
        return 0;
    }
    if (rc == SOP_ENOTFOUND) { /* listed by the walk, missed by the search */
        problem(k, "catalog: store %s is listed, but a lookup of its name does not find it",
                name);
        return 0;
    }
    if (rc)
        return rc;
    k->leaf_depth = -1;
    k->items = 0;
    rc = walk(k, &s->tree, s->root, 0, NULL, 0, NULL, 0);
    if (rc)
        return rc;
    rc = reach(k, s->counter_id);
    if (rc)
        return rc;
    uint64_t count;
    rc = sop_store_count(s, &count);
    if (rc == SOP_ECORRUPT) {
        problem(k, "store %s: item counter: %s", name, sop_db_errmsg(k->db));
        return 0;
    }
    if (rc)
        return rc;
    if (count != k->items)
        problem(k, "store %s: counter says %llu items, the tree has %llu", name,
                (unsigned long long)count, (unsigned long long)k->items);
    return 0;
}

typedef struct extent {
    uint32_t seg, len;
    uint64_t off, id;
} extent;

static int extent_cmp(const void *a, const void *b)
{
    const extent *x = a, *y = b;
    if (x->seg != y->seg)
        return x->seg < y->seg ? -1 : 1;
    return x->off < y->off ? -1 : x->off > y->off;
}

/* Space accounting: no two live images share bytes of a segment, every
 * image lies inside its segment, and no id on the free list is live. */
static int check_space(chk *k)
{
    sop_db *db = k->db;
    size_t n = 0, cap = 0;
    extent *ex = NULL;
    for (uint64_t id = 1, end = sop__reg_next_id(&db->reg); id < end; id++) {
        sop__handle h = sop__reg_get(&db->reg, id);
        if (!sop__handle_live(&h))
            continue;
        extent *a = sop__grow(ex, &cap, n + 1, sizeof *a, 1024);
        if (!a) {
            sop__free(ex);
            return -ENOMEM;
        }
        ex = a;
        ex[n++] = (extent){h.seg, sop__handle_len(&h), h.off, id};
    }
    qsort(ex, n, sizeof *ex, extent_cmp);
    uint64_t size = 0; /* of the segment of ex[i] */
    for (size_t i = 0; i < n; i++) {
        /* the file size, preallocated zeros included (the append position
         * would not do: a follow running in another thread has applied
         * handles before it moves the position past them); an image lying
         * in the zeros fails the CRC check of sop_db_check() instead */
        if (i == 0 || ex[i].seg != ex[i - 1].seg)
            sop__log_seg_size(&db->log, ex[i].seg, &size);
        if (i > 0 && ex[i].seg == ex[i - 1].seg && ex[i].off < ex[i - 1].off + ex[i - 1].len)
            problem(k, "ids %llu and %llu share bytes of segment %u", (unsigned long long)ex[i - 1].id,
                    (unsigned long long)ex[i].id, ex[i].seg);
        if (size && ex[i].off + ex[i].len > size)
            problem(k, "id %llu: image past the end of segment %u", (unsigned long long)ex[i].id,
                    ex[i].seg);
    }
    sop__free(ex);
    uint64_t bad = sop__reg_free_but_live(&db->reg);
    if (bad)
        problem(k, "%llu ids on the free list are live", (unsigned long long)bad);
    return 0;
}

int sop_db_check(sop_db *db, sop_check_fn fn, void *ctx, uint64_t *problems)
{
    if (!db || db->open_rc)
        return -EINVAL;
    chk k = {.db = db, .fn = fn, .ctx = ctx, .leaf_depth = -1};
    int rc = sop_txn_begin(db, SOP_TXN_READ, UINT32_MAX / 2, &k.txn);
    if (rc)
        return rc;
    sop__tree cat;
    sop__catalog_tree(k.txn, &cat);
    k.store = "(catalog)";
    rc = walk(&k, &cat, SOP__CATALOG_ROOT, 0, NULL, 0, NULL, 0);
    if (!rc)
        rc = sop__store_list_all(k.txn, check_store, &k);
    if (!rc) {
        /* every live handle reached, and its image valid */
        uint64_t snap = k.txn->snap;
        for (uint64_t id = 1, end = sop__reg_next_id(&db->reg); id < end; id++) {
            sop__handle h = sop__reg_get(&db->reg, id);
            if (!sop__handle_live(&h) || h.csn > snap)
                continue;
            if (!sop__u64map_get(&k.reached, id))
                problem(&k, "id %llu is live in the registry but unreachable", (unsigned long long)id);
            uint32_t len = sop__handle_len(&h);
            uint8_t *rec = len >= SOP__REC_HDR + SOP__IMG_HDR ? sop__malloc(len) : NULL;
            if (!rec) {
                if (len < SOP__REC_HDR + SOP__IMG_HDR)
                    problem(&k, "id %llu: bad image length %u", (unsigned long long)id, len);
                else
                    rc = -ENOMEM;
                continue;
            }
            int r = sop__log_read(&db->log, h.seg, h.off, len, rec, db);
            if (r == SOP_ECORRUPT)
                problem(&k, "id %llu: %s", (unsigned long long)id, sop_db_errmsg(db));
            else if (r)
                rc = r;
            else if (rec[4] != SOP__REC_IMAGE || sop__get64(rec + SOP__REC_HDR) != id ||
                     sop__get64(rec + SOP__REC_HDR + 8) != h.version)
                problem(&k, "id %llu: image record does not match the registry", (unsigned long long)id);
            sop__free(rec);
            if (rc)
                break;
        }
    }
    if (!rc)
        rc = check_space(&k);
    sop__u64map_free(&k.reached);
    sop_txn_rollback(k.txn);
    if (problems)
        *problems = k.problems;
    if (rc)
        return rc;
    return k.problems ? SOP_ECORRUPT : 0;
}
