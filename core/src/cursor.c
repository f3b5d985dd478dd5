/*
 * cursor.c - public cursors and range scans over a store.
 *
 * A cursor remembers the internal key it is on. Any write in its
 * transaction may move or copy nodes, so after one (txn->gen changed) the
 * cursor seeks its key again before going on.
 */
#include <errno.h>
#include <string.h>

#include "bytes.h"
#include "internal.h"
#include "mem.h"

#define DUP SOP__DUP_SUFFIX

static int cur_check(sop_cursor *c, int write)
{
    if (!c)
        return -EINVAL;
    int rc = sop__txn_check(c->store->txn, write);
    if (rc)
        return rc;
    if (c->store->dropped)
        return sop__err(c->store->txn->db, SOP_ENOTFOUND, "store %s was removed", c->store->name);
    return 0;
}

static int fail(sop_cursor *c, int rc)
{
    if (rc == SOP_ENOTFOUND)
        c->positioned = 0;
    return rc == SOP_ENOTFOUND ? rc : sop__txn_fail(c->store->txn, rc);
}

/* Remembers internal key @k. */
static int save_key(sop_cursor *c, const uint8_t *k, uint32_t klen)
{
    if (klen > c->ikcap) {
        uint8_t *p = sop__realloc(c->ikey, klen);
        if (!p)
            return -ENOMEM;
        c->ikey = p;
        c->ikcap = klen;
    }
    memcpy(c->ikey, k, klen);
    c->iklen = klen;
    c->positioned = 1;
    c->gen = c->store->txn->gen;
    return 0;
}

/* Remembers the key under the cursor. */
static int save(sop_cursor *c)
{
    const uint8_t *k, *v;
    uint32_t klen, vlen;
    uint8_t vf;
    sop__bt_item(&c->bc, &k, &klen, &v, &vlen, &vf);
    return save_key(c, k, klen);
}

static int settle(sop_cursor *c, int rc)
{
    if (rc == 0)
        rc = save(c);
    return rc ? fail(c, rc) : 0;
}

/* Re-seeks after a write in the transaction. SOP_ENOTFOUND if the item and
 * everything after it are gone. */
static int ensure(sop_cursor *c)
{
    if (!c->positioned)
        return SOP_EINCOMPLETE;
    if (c->gen == c->store->txn->gen && c->bc.depth)
        return 0;
    c->bc.t = &c->store->tree;
    int rc = sop__bt_seek(&c->bc, c->ikey, c->iklen, SOP__SEEK_GE);
    return settle(c, rc);
}

int sop_cursor_open(sop_store *s, sop_cursor **curp)
{
    if (!curp || !s)
        return -EINVAL;
    *curp = NULL;
    int rc = sop__txn_check(s->txn, 0);
    if (rc)
        return rc;
    sop_cursor *c = sop__calloc(1, sizeof *c);
    if (!c)
        return -ENOMEM;
    s->txn->no_merge = 1; /* a merge replays point operations only */
    c->store = s;
    c->bc.t = &s->tree;
    c->next = s->txn->cursors;
    s->txn->cursors = c;
    *curp = c;
    return 0;
}

void sop_cursor_close(sop_cursor *c)
{
    if (!c)
        return;
    sop_txn *t = c->store->txn;
    for (sop_cursor **pp = &t->cursors; *pp; pp = &(*pp)->next)
        if (*pp == c) {
            *pp = c->next;
            break;
        }
    sop__free(c->ikey);
    sop__free(c);
}

/* Is the user part of the item under the cursor equal to @ek? */
static int at_key(sop_cursor *c, const uint8_t *ek, size_t eklen)
{
    const uint8_t *k, *v;
    uint32_t klen, vlen;
    uint8_t vf;
    sop__bt_item(&c->bc, &k, &klen, &v, &vlen, &vf);
    size_t ul = c->store->unique ? klen : klen - DUP;
    return sop__ukey_cmp(c->store, k, ul, ek, eklen) == 0;
}

int sop_cursor_find(sop_cursor *c, const sop_val *key, sop_find_mode mode)
{
    int rc = cur_check(c, 0);
    if (rc)
        return rc;
    sop_store *s = c->store;
    uint8_t ik[SOP__IKEY_MAX];
    size_t n;
    rc = sop__key_encode(s, key, ik, &n);
    if (rc)
        return rc;
    if (mode > SOP_FIND_LAST)
        return sop__err(s->txn->db, -EINVAL, "invalid find mode %d", (int)mode);
    c->bc.t = &s->tree;
    c->positioned = 0;
    if (s->unique) {
        static const int map[] = {SOP__SEEK_EQ, SOP__SEEK_GE, SOP__SEEK_GT,
                                  SOP__SEEK_LE, SOP__SEEK_LT, SOP__SEEK_EQ};
        return settle(c, sop__bt_seek(&c->bc, ik, n, map[mode]));
    }
    int low = mode == SOP_FIND_EXACT || mode == SOP_FIND_GE || mode == SOP_FIND_LT;
    memset(ik + n, low ? 0x00 : 0xFF, DUP);
    static const int dmap[] = {SOP__SEEK_GE, SOP__SEEK_GE, SOP__SEEK_GT,
                               SOP__SEEK_LE, SOP__SEEK_LT, SOP__SEEK_LE};
    rc = sop__bt_seek(&c->bc, ik, n + DUP, dmap[mode]);
    if (!rc && (mode == SOP_FIND_EXACT || mode == SOP_FIND_LAST) && !at_key(c, ik, n)) {
        c->bc.depth = 0;
        rc = SOP_ENOTFOUND;
    }
    return settle(c, rc);
}

int sop_cursor_first(sop_cursor *c)
{
    int rc = cur_check(c, 0);
    if (rc)
        return rc;
    c->bc.t = &c->store->tree;
    return settle(c, sop__bt_first(&c->bc));
}

int sop_cursor_last(sop_cursor *c)
{
    int rc = cur_check(c, 0);
    if (rc)
        return rc;
    c->bc.t = &c->store->tree;
    return settle(c, sop__bt_last(&c->bc));
}

static int step(sop_cursor *c, int fwd)
{
    int rc = cur_check(c, 0);
    if (rc)
        return rc;
    if (!c->positioned)
        return SOP_EINCOMPLETE;
    if (c->gen != c->store->txn->gen || !c->bc.depth) {
        /* after a write: the neighbour of the saved key, found afresh */
        c->bc.t = &c->store->tree;
        return settle(c, sop__bt_seek(&c->bc, c->ikey, c->iklen, fwd ? SOP__SEEK_GT : SOP__SEEK_LT));
    }
    return settle(c, fwd ? sop__bt_next(&c->bc) : sop__bt_prev(&c->bc));
}

int sop_cursor_next(sop_cursor *c) { return step(c, 1); }
int sop_cursor_prev(sop_cursor *c) { return step(c, 0); }

int sop_cursor_skip(sop_cursor *c, int64_t n)
{
    int rc = 0;
    for (; n > 0 && !rc; n--)
        rc = sop_cursor_next(c);
    for (; n < 0 && !rc; n++)
        rc = sop_cursor_prev(c);
    return rc;
}

int sop_cursor_key(sop_cursor *c, sop_val *key)
{
    int rc = cur_check(c, 0);
    if (rc)
        return rc;
    if (!key)
        return -EINVAL;
    rc = ensure(c);
    if (rc)
        return rc == SOP_EINCOMPLETE ? rc : fail(c, rc);
    const uint8_t *k, *v;
    uint32_t klen, vlen;
    uint8_t vf;
    sop__bt_item(&c->bc, &k, &klen, &v, &vlen, &vf);
    sop__key_decode(c->store, k, klen, c->ukey, key);
    return 0;
}

int sop_cursor_get(sop_cursor *c, sop_val *key, sop_val *val)
{
    int rc = cur_check(c, 0);
    if (rc)
        return rc;
    rc = ensure(c);
    if (rc)
        return rc == SOP_EINCOMPLETE ? rc : fail(c, rc);
    const uint8_t *k, *v;
    uint32_t klen, vlen;
    uint8_t vf;
    sop__bt_item(&c->bc, &k, &klen, &v, &vlen, &vf);
    if (key)
        sop__key_decode(c->store, k, klen, c->ukey, key);
    if (val)
        rc = sop__value_get(c->store, v, vlen, vf, val);
    return rc ? fail(c, rc) : 0;
}

int sop_cursor_update(sop_cursor *c, const sop_val *val)
{
    int rc = cur_check(c, 1);
    if (rc)
        return rc;
    rc = ensure(c);
    if (rc)
        return rc == SOP_EINCOMPLETE ? rc : fail(c, rc);
    sop_store *s = c->store;
    const uint8_t *k, *v;
    uint32_t klen, vlen;
    uint8_t vf;
    sop__bt_item(&c->bc, &k, &klen, &v, &vlen, &vf);
    if (sop__bt_cmp(&c->store->tree, k, klen, c->ikey, c->iklen) != 0)
        return SOP_EINCOMPLETE; /* the item was removed */
    rc = sop__store_replace(s, c->ikey, c->iklen, val, NULL);
    if (rc)
        return fail(c, rc);
    s->txn->gen++;
    return 0;
}

int sop_cursor_update_key(sop_cursor *c, const sop_val *key)
{
    int rc = cur_check(c, 1);
    if (rc)
        return rc;
    rc = ensure(c);
    if (rc)
        return rc == SOP_EINCOMPLETE ? rc : fail(c, rc);
    sop_store *s = c->store;
    uint8_t nk[SOP__IKEY_MAX];
    size_t n;
    rc = sop__key_encode(s, key, nk, &n);
    if (rc)
        return rc;
    if (!s->unique) {
        memcpy(nk + n, c->ikey + c->iklen - DUP, DUP);
        n += DUP;
    }
    if (sop__bt_cmp(&s->tree, nk, n, c->ikey, c->iklen) != 0)
        return sop__err(s->txn->db, -EINVAL, "the new key does not compare equal to the current key");
    rc = sop__bt_update_key(&s->tree, c->ikey, c->iklen, nk, n);
    if (rc)
        return fail(c, rc);
    if (n > c->ikcap) {
        uint8_t *p = sop__realloc(c->ikey, n);
        if (!p)
            return fail(c, -ENOMEM);
        c->ikey = p;
        c->ikcap = n;
    }
    memcpy(c->ikey, nk, n);
    c->iklen = n;
    s->txn->gen++;
    return 0;
}

int sop_cursor_remove(sop_cursor *c)
{
    int rc = cur_check(c, 1);
    if (rc)
        return rc;
    rc = ensure(c);
    if (rc)
        return rc == SOP_EINCOMPLETE ? rc : fail(c, rc);
    sop_store *s = c->store;
    sop__oldval old = {0};
    rc = sop__bt_delete(&s->tree, c->ikey, c->iklen, &old);
    if (!rc && old.vflags == SOP__V_BLOB)
        rc = sop__txn_drop_blob(s->txn, sop__get64(old.ref));
    if (!rc) {
        sop__counter *cnt = sop__txn_counter(s->txn, s->counter_id, 0);
        uint64_t v;
        rc = !cnt ? -ENOMEM : sop__txn_counter_value(s->txn, cnt, &v);
        if (!rc)
            cnt->delta--;
    }
    if (rc)
        return fail(c, rc);
    s->txn->gen++;
    /* move to the item after the removed one */
    c->bc.t = &s->tree;
    return settle(c, sop__bt_seek(&c->bc, c->ikey, c->iklen, SOP__SEEK_GT));
}

/* ---- scans ---- */

static int past_end(sop_cursor *c, const uint8_t *ek, size_t eklen, int reverse, int exclusive)
{
    const uint8_t *k, *v;
    uint32_t klen, vlen;
    uint8_t vf;
    sop__bt_item(&c->bc, &k, &klen, &v, &vlen, &vf);
    size_t ul = c->store->unique ? klen : klen - DUP;
    int cmp = sop__ukey_cmp(c->store, k, ul, ek, eklen);
    if (reverse)
        return exclusive ? cmp <= 0 : cmp < 0;
    return exclusive ? cmp >= 0 : cmp > 0;
}

/* Items between two checks of the transaction (deadline, panic) in a
 * scan: the checks read the clock. */
#define SCAN_CHECK_EVERY 64
/* How far ahead a scan prefetches items (slots of the same leaf). */
#define SCAN_PREFETCH 2

/* sop_scan walks the B-tree cursor itself instead of going through
 * sop_cursor_next/get per item (each re-checks the transaction and copies
 * the key): the callback sees the item in the node. A callback that writes
 * in the transaction moves nodes: the scan then seeks past the last key it
 * saw, as a cursor does. */
int sop_scan(sop_store *s, const sop_range *r, sop_scan_fn fn, void *ctx)
{
    if (!s || !fn)
        return -EINVAL;
    sop_range all = {0};
    if (!r)
        r = &all;
    sop_cursor *c;
    int rc = sop_cursor_open(s, &c);
    if (rc)
        return rc;
    const sop_val *start = r->reverse ? r->to : r->from;
    const sop_val *end = r->reverse ? r->from : r->to;
    int start_ex = r->reverse ? r->to_exclusive : r->from_exclusive;
    int end_ex = r->reverse ? r->from_exclusive : r->to_exclusive;
    uint8_t ek[SOP__IKEY_MAX];
    size_t eklen = 0;
    if (end && (rc = sop__key_encode(s, end, ek, &eklen)) != 0)
        goto out;
    if (start)
        rc = sop_cursor_find(c, start, r->reverse ? (start_ex ? SOP_FIND_LT : SOP_FIND_LE)
                                                  : (start_ex ? SOP_FIND_GT : SOP_FIND_GE));
    else
        rc = r->reverse ? sop_cursor_last(c) : sop_cursor_first(c);
    uint64_t skipped = 0, sent = 0;
    unsigned since_check = 0;
    sop_txn *txn = s->txn;
    while (rc == 0) {
        if (end && past_end(c, ek, eklen, r->reverse, end_ex))
            break;
        if (++since_check == SCAN_CHECK_EVERY) {
            since_check = 0;
            if ((rc = sop__txn_check(txn, 0)))
                break;
        }
        if (skipped < r->offset) {
            skipped++;
        } else {
            const uint8_t *k, *v;
            uint32_t klen, vlen;
            uint8_t vf;
            sop__bt_item(&c->bc, &k, &klen, &v, &vlen, &vf);
            if (!r->keys_only)
                sop__bt_prefetch(&c->bc, r->reverse ? -SCAN_PREFETCH : SCAN_PREFETCH);
            sop_val key, val = {NULL, 0};
            sop__key_decode(s, k, klen, c->ukey, &key);
            if (!r->keys_only && (rc = sop__value_get(s, v, vlen, vf, &val)) != 0)
                break;
            /* the key, to go on from should the callback write: a frozen
             * node stays as it is (writes edit clones) and pinned until the
             * transaction ends, so its key is copied only if needed */
            int frozen = c->bc.path[c->bc.depth - 1].node->frozen;
            if (!frozen && (rc = save(c)) != 0)
                break;
            uint64_t gen = txn->gen;
            rc = fn(&key, &val, ctx);
            if (rc)
                goto out;
            if (r->limit && ++sent >= r->limit)
                break;
            if (txn->gen != gen) {
                /* the callback wrote: find the neighbour of the item afresh */
                if (frozen && (rc = save_key(c, k, klen)) != 0)
                    break;
                c->bc.t = &s->tree;
                rc = settle(c, sop__bt_seek(&c->bc, c->ikey, c->iklen,
                                            r->reverse ? SOP__SEEK_LT : SOP__SEEK_GT));
                continue;
            }
        }
        rc = r->reverse ? sop__bt_prev(&c->bc) : sop__bt_next(&c->bc);
    }
    if (rc == SOP_ENOTFOUND)
        rc = 0;
    else if (rc)
        rc = fail(c, rc);
out:
    sop_cursor_close(c);
    return rc;
}
