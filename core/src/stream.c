/*
 * stream.c - streaming values: values of any size written and read in
 * chunks inside a transaction (the sop_stream_* API; design in
 * docs/design/streaming.md).
 *
 * The value of user key K in a streaming store is the items
 *   K || chunk index (8 bytes, big-endian)  ->  chunk bytes
 * for chunks 0..n-1: every chunk holds the store's chunk_bytes except the
 * last (1..chunk_bytes). No chunk: no value. There is no header item; the
 * number of chunks is found by probing indexes (exponential, then binary
 * search: about 2 log2(n) point lookups) and kept while the transaction
 * does not write. Lookups are exact, so a longer user key whose bytes
 * start with K never mixes with K's chunks (its items are longer).
 *
 * A handle keeps one chunk buffer: the chunk being appended (the tail, not
 * yet in the tree) or the last chunk read. Complete chunks become items at
 * once, and the store (chunk_bytes != 0) writes their blobs to the log at
 * once (sop__txn_put_blob_early): the transaction keeps their location
 * only. The tail is written when the handle is used for anything but
 * append, when another handle of the transaction on the same key is used,
 * at sop_stream_close() and at commit (the sop__txn_ext flush).
 */
#include <errno.h>
#include <string.h>

#include "bytes.h"
#include "crc32c.h"
#include "internal.h"
#include "mem.h"

#define STREAM_SIZE_MAX ((uint64_t)INT64_MAX)

enum { BUF_NONE, BUF_CACHE, BUF_TAIL };

struct sop_stream {
    sop__txn_ext ext; /* first: attached to the transaction */
    sop_txn *txn;
    sop_store *store;
    uint32_t cb; /* chunk bytes */
    /* what the tree holds: valid while known && txn->gen == gen */
    int known;
    uint64_t gen;
    uint64_t n;    /* chunks */
    uint32_t last; /* bytes of chunk n - 1 */
    uint64_t pos;  /* read position */
    /* the buffer: BUF_CACHE: chunk bidx as read (valid while txn->gen ==
     * bgen); BUF_TAIL: chunk bidx being appended (blen bytes; in the tree
     * already when tail_in_tree, with its old, shorter content) */
    uint8_t *buf;
    int bmode;
    uint32_t blen;
    uint64_t bidx, bgen;
    int tail_in_tree;
    size_t klen;
    uint8_t key[]; /* the user key, then room for a chunk index */
};

static void stream_ext_free(sop__txn_ext *e);
static int stream_ext_flush(sop__txn_ext *e);

/* The item key of chunk @i. */
static sop_val chunk_key(sop_stream *st, uint64_t i)
{
    sop__put64be(st->key + st->klen, i);
    return (sop_val){st->key, st->klen + 8};
}

static uint64_t value_size(const sop_stream *st)
{
    return st->n ? (st->n - 1) * st->cb + st->last : 0;
}

static int bad_format(sop_stream *st, uint64_t i, const char *what)
{
    return sop__err(st->txn->db, SOP_EFORMAT,
                    "store %s: chunk %llu of a streamed value %s (was it written with the item "
                    "or cursor API?)", st->store->name, (unsigned long long)i, what);
}

/* Is chunk @i in the tree, and how long is it? */
static int probe(sop_stream *st, uint64_t i, int *exists, uint32_t *len)
{
    sop__bcur c = {.t = &st->store->tree};
    sop_val k = chunk_key(st, i);
    int rc = sop__bt_seek(&c, k.data, k.size, SOP__SEEK_EQ);
    *exists = 0;
    if (rc == SOP_ENOTFOUND)
        return 0;
    if (rc)
        return rc;
    const uint8_t *ik, *v;
    uint32_t iklen, vlen;
    uint8_t vf;
    sop__bt_item(&c, &ik, &iklen, &v, &vlen, &vf);
    uint64_t size = vlen;
    if (vf == SOP__V_BLOB && vlen == SOP__BLOBREF_SIZE)
        size = sop__get64(v + 8);
    if (size == 0 || size > st->cb)
        return bad_format(st, i, "has a bad length");
    *exists = 1;
    *len = (uint32_t)size;
    return 0;
}

/* Learns the number of chunks and the length of the last one, unless
 * nothing was written in the transaction since it last did. */
static int learn(sop_stream *st)
{
    if (st->known && st->gen == st->txn->gen)
        return 0;
    int ex;
    uint32_t len = 0, lo_len;
    int rc = probe(st, 0, &ex, &lo_len);
    if (rc)
        return rc;
    uint64_t n = 0;
    if (ex) {
        /* lo exists, hi does not */
        uint64_t lo = 0, hi = 1;
        for (;;) {
            if ((rc = probe(st, hi, &ex, &len)) != 0)
                return rc;
            if (!ex)
                break;
            lo = hi;
            lo_len = len;
            if (hi >= (1ull << 62))
                return bad_format(st, hi, "is past any possible value");
            hi *= 2;
        }
        while (hi - lo > 1) {
            uint64_t mid = lo + (hi - lo) / 2;
            if ((rc = probe(st, mid, &ex, &len)) != 0)
                return rc;
            if (ex) {
                lo = mid;
                lo_len = len;
            } else {
                hi = mid;
            }
        }
        n = lo + 1;
        if (n > 1 && (rc = probe(st, n - 2, &ex, &len)) == 0 && (!ex || len != st->cb))
            rc = bad_format(st, n - 2, ex ? "is not full" : "is missing");
        if (rc)
            return rc;
    }
    st->n = n;
    st->last = n ? lo_len : 0;
    st->known = 1;
    st->gen = st->txn->gen;
    return 0;
}

static int need_buf(sop_stream *st)
{
    if (!st->buf && !(st->buf = sop__malloc(st->cb)))
        return -ENOMEM;
    return 0;
}

/* Reads chunk @i (learned: i < n) into the buffer. */
static int load(sop_stream *st, uint64_t i)
{
    int rc = need_buf(st);
    if (rc)
        return rc;
    sop__bcur c = {.t = &st->store->tree};
    sop_val k = chunk_key(st, i);
    rc = sop__bt_seek(&c, k.data, k.size, SOP__SEEK_EQ);
    if (rc == SOP_ENOTFOUND)
        return bad_format(st, i, "is missing");
    if (rc)
        return rc;
    const uint8_t *ik, *v;
    uint32_t iklen, vlen;
    uint8_t vf;
    sop__bt_item(&c, &ik, &iklen, &v, &vlen, &vf);
    uint64_t want = i + 1 < st->n ? st->cb : st->last, size = vlen;
    if (vf == SOP__V_BLOB && vlen == SOP__BLOBREF_SIZE)
        size = sop__get64(v + 8);
    if (size != want)
        return bad_format(st, i, "has a bad length");
    st->bmode = BUF_NONE;
    if (vf == SOP__V_INLINE) {
        memcpy(st->buf, v, vlen);
    } else if (vf == SOP__V_BLOB && vlen == SOP__BLOBREF_SIZE) {
        uint64_t id = sop__get64(v);
        uint32_t crc = sop__get32(v + 16);
        const uint8_t *data;
        uint8_t *own;
        rc = sop__txn_fetch_blob(st->txn, id, size, &data, &own);
        if (rc)
            return rc;
        if (sop__crc32c(data, size, 0) != crc)
            rc = sop__err(st->txn->db, SOP_ECORRUPT, "store %s: blob %llu: checksum mismatch",
                          st->store->name, (unsigned long long)id);
        else
            memcpy(st->buf, data, size);
        sop__free(own);
        if (rc)
            return rc;
    } else {
        return sop__err(st->txn->db, SOP_ECORRUPT, "store %s: bad value reference",
                        st->store->name);
    }
    st->bmode = BUF_CACHE;
    st->bidx = i;
    st->blen = (uint32_t)size;
    st->bgen = st->txn->gen;
    return 0;
}

/* Writes chunk @i (@exists: replaces it) and keeps n and last up to date. */
static int write_chunk(sop_stream *st, uint64_t i, const void *data, uint32_t len, int exists)
{
    sop_txn *t = st->txn;
    sop_val k = chunk_key(st, i), v = {data, len};
    uint64_t state;
    t->no_merge = 1; /* not replayable: a conflict is final */
    int rc = sop__item_op(st->store, exists ? SOP__OP_UPDATE : SOP__OP_ADD, &k, &v, NULL, &state);
    t->gen++;
    if (rc == SOP_ENOTFOUND || rc == SOP_EEXISTS)
        rc = bad_format(st, i, exists ? "vanished" : "appeared");
    if (rc)
        return rc;
    if (i >= st->n) {
        st->n = i + 1;
        st->last = len;
    } else if (i + 1 == st->n) {
        st->last = len;
    }
    st->gen = t->gen;
    return 0;
}

/* Removes the last chunk. */
static int remove_last(sop_stream *st)
{
    sop_txn *t = st->txn;
    sop_val k = chunk_key(st, st->n - 1);
    uint64_t state;
    t->no_merge = 1;
    int rc = sop__item_op(st->store, SOP__OP_REMOVE, &k, NULL, NULL, &state);
    t->gen++;
    if (rc == SOP_ENOTFOUND)
        rc = bad_format(st, st->n - 1, "vanished");
    if (rc)
        return rc;
    st->n--;
    st->last = st->n ? st->cb : 0;
    st->gen = t->gen;
    return 0;
}

/* Writes the pending tail into the tree. */
static int flush_tail(sop_stream *st)
{
    if (st->bmode != BUF_TAIL)
        return 0;
    if (!st->blen || st->store->dropped) {
        st->bmode = BUF_NONE;
        return 0;
    }
    int rc = write_chunk(st, st->bidx, st->buf, st->blen, st->tail_in_tree);
    if (rc)
        return rc;
    st->bmode = BUF_CACHE; /* the buffer now holds that chunk as stored */
    st->bgen = st->txn->gen;
    return 0;
}

static int same_key(const sop_stream *a, const sop_stream *b)
{
    return a->store == b->store && a->klen == b->klen && !memcmp(a->key, b->key, a->klen);
}

/* Writes the tails of the other handles on this key, so that this one
 * sees what they appended. */
static int flush_others(sop_stream *st)
{
    for (sop__txn_ext *e = st->txn->exts; e; e = e->next) {
        if (e->free != stream_ext_free || e == &st->ext)
            continue;
        sop_stream *o = (sop_stream *)e;
        if (o->bmode == BUF_TAIL && same_key(o, st)) {
            int rc = flush_tail(o);
            if (rc)
                return rc;
        }
    }
    return 0;
}

/* Before anything but an append: every tail on this key is in the tree,
 * and n / last are known. */
static int settle(sop_stream *st)
{
    int rc = flush_others(st);
    if (!rc)
        rc = flush_tail(st);
    if (!rc)
        rc = learn(st);
    return rc;
}

static int check(sop_stream *st, int write)
{
    if (!st)
        return -EINVAL;
    int rc = sop__txn_check(st->txn, write);
    if (rc)
        return rc;
    if (st->store->dropped)
        return sop__err(st->txn->db, SOP_ENOTFOUND, "store %s was removed", st->store->name);
    return 0;
}

/* Reports @rc of an engine call: the transaction fails unless nothing
 * changed (sop__txn_fail decides). */
static int failed(sop_stream *st, int rc)
{
    return rc ? sop__txn_fail(st->txn, rc) : 0;
}

static void stream_ext_free(sop__txn_ext *e)
{
    sop_stream *st = (sop_stream *)e;
    sop__free(st->buf);
    sop__free(st);
}

static int stream_ext_flush(sop__txn_ext *e)
{
    return flush_tail((sop_stream *)e);
}

/* ------------------------------------------------------------------ */
/* Stores                                                             */
/* ------------------------------------------------------------------ */

int sop_stream_store_create(sop_txn *txn, const char *name, uint32_t chunk_bytes,
                            sop_store **storep)
{
    sop_store_options o;
    sop_store_options_init(&o);
    o.chunk_bytes = chunk_bytes ? chunk_bytes : SOP_STREAM_CHUNK_DEFAULT;
    return sop_store_create(txn, name, &o, storep);
}

int sop_stream_store_open(sop_txn *txn, const char *name, uint32_t chunk_bytes,
                          sop_store **storep)
{
    if (!storep)
        return -EINVAL;
    sop_store *s;
    int rc = sop_store_open(txn, name, &s);
    *storep = NULL;
    if (rc)
        return rc;
    if (!s->chunk_bytes)
        return sop__err(txn->db, SOP_EMISMATCH, "store %s is not a streaming store", name);
    if (chunk_bytes && chunk_bytes != s->chunk_bytes)
        return sop__err(txn->db, SOP_EMISMATCH, "store %s has chunks of %u bytes, not %u", name,
                        s->chunk_bytes, chunk_bytes);
    *storep = s;
    return 0;
}

/* ------------------------------------------------------------------ */
/* Handles                                                            */
/* ------------------------------------------------------------------ */

int sop_stream_open(sop_store *s, const sop_val *key, unsigned flags, sop_stream **streamp)
{
    if (!streamp)
        return -EINVAL;
    *streamp = NULL;
    if (!s || !key || (!key->data && key->size))
        return -EINVAL;
    sop_db *db = s->txn->db;
    if (flags & ~(unsigned)(SOP_STREAM_CREATE | SOP_STREAM_TRUNC))
        return sop__err(db, -EINVAL, "unknown sop_stream_open flags 0x%x", flags);
    int rc = sop__txn_check(s->txn, (flags & SOP_STREAM_TRUNC) != 0);
    if (rc)
        return rc;
    if (s->dropped)
        return sop__err(db, SOP_ENOTFOUND, "store %s was removed", s->name);
    if (!s->chunk_bytes)
        return sop__err(db, SOP_EMISMATCH, "store %s is not a streaming store", s->name);
    uint32_t kmax = s->node_bytes / 4 - 16;
    if (kmax > SOP__KEY_MAX)
        kmax = SOP__KEY_MAX;
    if (key->size > kmax - 8)
        return sop__err(db, SOP_ETOOBIG, "key of %zu bytes exceeds the maximum %u of streaming "
                        "store %s", key->size, kmax - 8, s->name);
    sop_stream *st = sop__calloc(1, sizeof *st + key->size + 8);
    if (!st)
        return -ENOMEM;
    st->txn = s->txn;
    st->store = s;
    st->cb = s->chunk_bytes;
    st->klen = key->size;
    if (key->size)
        memcpy(st->key, key->data, key->size);
    st->ext.free = stream_ext_free;
    st->ext.flush = stream_ext_flush;
    sop__txn_attach(s->txn, &st->ext);
    /* its reads are point lookups that no logged item operation covers: a
     * merge could not revalidate them (nor replay its writes) */
    s->txn->no_merge = 1;
    rc = settle(st);
    if (!rc && !st->n && !(flags & SOP_STREAM_CREATE))
        rc = sop__err(db, SOP_ENOTFOUND, "no value at this key in store %s", s->name);
    while (!rc && (flags & SOP_STREAM_TRUNC) && st->n)
        rc = remove_last(st);
    if (rc) {
        int r = failed(st, rc);
        sop_stream_close(st);
        return r;
    }
    *streamp = st;
    return 0;
}

int sop_stream_close(sop_stream *st)
{
    if (!st)
        return 0;
    int rc = 0;
    if (st->bmode == BUF_TAIL && st->blen && (rc = check(st, 1)) == 0)
        rc = failed(st, flush_tail(st));
    for (sop__txn_ext **p = &st->txn->exts; *p; p = &(*p)->next)
        if (*p == &st->ext) {
            *p = st->ext.next;
            break;
        }
    stream_ext_free(&st->ext);
    return rc;
}

uint32_t sop_stream_chunk_bytes(const sop_stream *st) { return st ? st->cb : 0; }

int sop_stream_append(sop_stream *st, const void *data, size_t len)
{
    int rc = check(st, 1);
    if (rc)
        return rc;
    if (!data && len)
        return sop__err(st->txn->db, -EINVAL, "NULL data");
    if (!len)
        return 0;
    if (st->bmode != BUF_TAIL) {
        if ((rc = flush_others(st)) != 0 || (rc = learn(st)) != 0)
            return failed(st, rc);
        if (len > STREAM_SIZE_MAX - value_size(st))
            return sop__err(st->txn->db, SOP_ETOOBIG, "a streamed value is at most %llu bytes",
                            (unsigned long long)STREAM_SIZE_MAX);
        if (st->n && st->last < st->cb) { /* go on filling the last chunk */
            if ((rc = load(st, st->n - 1)) != 0)
                return failed(st, rc);
            st->tail_in_tree = 1;
        } else {
            if ((rc = need_buf(st)) != 0)
                return rc;
            st->bidx = st->n;
            st->blen = 0;
            st->tail_in_tree = 0;
        }
        st->bmode = BUF_TAIL;
    } else if (len > STREAM_SIZE_MAX - (st->bidx * st->cb + st->blen)) {
        return sop__err(st->txn->db, SOP_ETOOBIG, "a streamed value is at most %llu bytes",
                        (unsigned long long)STREAM_SIZE_MAX);
    }
    const uint8_t *p = data;
    while (len) {
        size_t k = st->cb - st->blen;
        if (k > len)
            k = len;
        memcpy(st->buf + st->blen, p, k);
        st->blen += (uint32_t)k;
        p += k;
        len -= k;
        if (st->blen == st->cb) {
            rc = write_chunk(st, st->bidx, st->buf, st->cb, st->tail_in_tree);
            if (rc) {
                st->bmode = BUF_NONE;
                return failed(st, rc);
            }
            st->bidx++;
            st->blen = 0;
            st->tail_in_tree = 0;
        }
    }
    return 0;
}

int sop_stream_read(sop_stream *st, void *buf, size_t cap, size_t *got)
{
    int rc = check(st, 0);
    if (rc)
        return rc;
    if (!got || (!buf && cap))
        return sop__err(st->txn->db, -EINVAL, "NULL buffer");
    *got = 0;
    if ((rc = settle(st)) != 0)
        return failed(st, rc);
    uint64_t size = value_size(st);
    uint8_t *out = buf;
    while (*got < cap && st->pos < size) {
        uint64_t i = st->pos / st->cb;
        uint32_t off = (uint32_t)(st->pos % st->cb);
        if (!(st->bmode == BUF_CACHE && st->bidx == i && st->bgen == st->txn->gen) &&
            (rc = load(st, i)) != 0)
            return failed(st, rc);
        size_t k = st->blen - off;
        if (k > cap - *got)
            k = cap - *got;
        memcpy(out + *got, st->buf + off, k);
        *got += k;
        st->pos += k;
    }
    return 0;
}

int sop_stream_seek(sop_stream *st, uint64_t offset)
{
    int rc = check(st, 0);
    if (rc)
        return rc;
    if ((rc = settle(st)) != 0)
        return failed(st, rc);
    if (offset > value_size(st))
        return sop__err(st->txn->db, -EINVAL, "offset %llu is past the end of the value (%llu "
                        "bytes)", (unsigned long long)offset, (unsigned long long)value_size(st));
    st->pos = offset;
    return 0;
}

int sop_stream_tell(sop_stream *st, uint64_t *offset)
{
    if (!st || !offset)
        return -EINVAL;
    *offset = st->pos;
    return 0;
}

int sop_stream_stat(sop_stream *st, uint64_t *size, uint64_t *chunks)
{
    int rc = check(st, 0);
    if (rc)
        return rc;
    if ((rc = settle(st)) != 0)
        return failed(st, rc);
    if (size)
        *size = value_size(st);
    if (chunks)
        *chunks = st->n;
    return 0;
}

int sop_stream_put_chunk(sop_stream *st, uint64_t index, const void *data, size_t len)
{
    int rc = check(st, 1);
    if (rc)
        return rc;
    sop_db *db = st->txn->db;
    if (!data || !len || len > st->cb)
        return sop__err(db, -EINVAL, "a chunk of store %s is 1..%u bytes, got %zu%s",
                        st->store->name, st->cb, len, data ? "" : " at NULL");
    if ((rc = settle(st)) != 0)
        return failed(st, rc);
    if (index > st->n)
        return sop__err(db, -EINVAL, "chunk %llu is past the end (the value has %llu chunks)",
                        (unsigned long long)index, (unsigned long long)st->n);
    if (index + 1 < st->n && len != st->cb)
        return sop__err(db, -EINVAL, "chunk %llu is not the last: it must be %u bytes",
                        (unsigned long long)index, st->cb);
    if (index == st->n && st->n && st->last != st->cb)
        return sop__err(db, -EINVAL, "the last chunk (%llu) is not full: append, or replace it "
                        "with a full one first", (unsigned long long)(st->n - 1));
    return failed(st, write_chunk(st, index, data, (uint32_t)len, index < st->n));
}

int sop_stream_truncate(sop_stream *st, uint64_t size)
{
    static const uint8_t zeros[4096];
    int rc = check(st, 1);
    if (rc)
        return rc;
    if (size > STREAM_SIZE_MAX)
        return sop__err(st->txn->db, SOP_ETOOBIG, "a streamed value is at most %llu bytes",
                        (unsigned long long)STREAM_SIZE_MAX);
    if ((rc = settle(st)) != 0)
        return failed(st, rc);
    uint64_t cur = value_size(st);
    if (size > cur) { /* extend with zeros, a chunk at a time */
        for (uint64_t left = size - cur; left && !rc;) {
            size_t k = left < sizeof zeros ? (size_t)left : sizeof zeros;
            rc = sop_stream_append(st, zeros, k);
            left -= k;
        }
        return rc ? rc : failed(st, flush_tail(st));
    }
    uint64_t nn = size ? (size - 1) / st->cb + 1 : 0;
    uint32_t nl = nn ? (uint32_t)(size - (nn - 1) * st->cb) : 0;
    while (!rc && st->n > nn)
        rc = remove_last(st);
    if (!rc && nn && nl < st->last && (rc = load(st, nn - 1)) == 0)
        rc = write_chunk(st, nn - 1, st->buf, nl, 1);
    if (!rc && st->pos > size)
        st->pos = size;
    return failed(st, rc);
}

int sop_stream_delete(sop_stream *st)
{
    int rc = check(st, 1);
    if (rc)
        return rc;
    if ((rc = settle(st)) != 0)
        return failed(st, rc);
    if (!st->n)
        return sop__err(st->txn->db, SOP_ENOTFOUND, "no value at this key in store %s",
                        st->store->name);
    while (!rc && st->n)
        rc = remove_last(st);
    st->pos = 0;
    return failed(st, rc);
}
