/*
 * fuzz_node.c - the B-tree node image decoder (sop__node_decode, format in
 * core/src/node.h).
 *
 * Feeds: the input as one node image, decoded as a copy and in place (as
 * a segment map is).
 * Checks: only SOP_ECORRUPT or -ENOMEM for a bad image; for a good one,
 * every slot lies inside the image, encode(decode(x)) == x, a clone
 * encodes to the same bytes, edits of the clone (insert, set value,
 * remove, compact) keep its encoded size exact and decode back, and on a
 * one-node tree a search finds what a linear scan finds when the keys are
 * in order (the prefix accelerator), and is memory-safe when they are not.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "btree.h"
#include "fuzz_util.h"
#include "node.h"
#include "sop/sop.h"

static int bytes_cmp(const uint8_t *a, uint32_t al, const uint8_t *b, uint32_t bl)
{
    uint32_t m = al < bl ? al : bl;
    int c = m ? memcmp(a, b, m) : 0;
    return c ? c : al < bl ? -1 : al > bl;
}

static sop__node *the_node;
static int one_get(void *ctx, uint64_t id, sop__node **out)
{
    (void)ctx;
    if (id != the_node->id)
        return SOP_ECORRUPT; /* children are not there */
    *out = the_node;
    return 0;
}

/* Searches of a one-node tree (the root's children are missing). */
static void check_search(sop__node *n, const uint8_t *probe, uint32_t plen)
{
    the_node = n;
    sop__tree t = {.get = one_get, .root = n->id, .node_bytes = 4096};
    sop__bcur c;
    memset(&c, 0, sizeof c);
    c.t = &t;
    int rc = sop__bt_seek(&c, probe, plen, SOP__SEEK_GE);
    if (!n->leaf) {
        FZ_EXPECT("seek in an internal root", rc, SOP_ECORRUPT);
        return;
    }
    FZ_EXPECT("seek", rc, SOP_OK, SOP_ENOTFOUND);
    int sorted = 1;
    for (uint32_t i = 1; i < n->n && sorted; i++) {
        uint32_t al, bl;
        const uint8_t *a = sop__node_key(n, i - 1, &al), *b = sop__node_key(n, i, &bl);
        sorted = bytes_cmp(a, al, b, bl) < 0;
    }
    if (!sorted)
        return; /* a corrupt order: only memory safety is expected */
    uint32_t want = 0, kl;
    while (want < n->n) {
        const uint8_t *k = sop__node_key(n, want, &kl);
        if (bytes_cmp(k, kl, probe, plen) >= 0)
            break;
        want++;
    }
    if ((want == n->n) != (rc == SOP_ENOTFOUND))
        fz_fail("seek GE: rc %d, linear scan found slot %u of %u", rc, want, n->n);
    if (rc == 0 && c.path[c.depth - 1].idx != want)
        fz_fail("seek GE: slot %u, linear scan %u", c.path[c.depth - 1].idx, want);
    for (uint32_t i = 0; i < n->n; i++) {
        const uint8_t *k = sop__node_key(n, i, &kl);
        memset(&c, 0, sizeof c);
        c.t = &t;
        if (sop__bt_seek(&c, k, kl, SOP__SEEK_EQ) != 0 || c.path[c.depth - 1].idx != i)
            fz_fail("seek EQ of key %u failed", i);
    }
}

static void check_edits(const sop__node *n, const uint8_t *extra, size_t elen)
{
    sop__node *c;
    int rc = sop__node_clone(n, &c);
    FZ_EXPECT("clone", rc, SOP_OK, -ENOMEM);
    if (rc)
        return;
    uint8_t *buf = malloc(c->bytes);
    if (!buf)
        abort();
    sop__node_encode(c, buf);
    uint8_t *orig = malloc(n->bytes);
    if (!orig)
        abort();
    sop__node_encode(n, orig);
    if (c->bytes != n->bytes || memcmp(buf, orig, n->bytes) != 0)
        fz_fail("a clone encodes differently");
    free(orig);
    free(buf);
    uint32_t klen = elen > 40 ? 40 : (uint32_t)elen;
    if (c->leaf) {
        rc = sop__node_insert_leaf(c, c->n, extra, klen, extra, (uint32_t)elen, SOP__V_INLINE);
        if (!rc && c->n > 1)
            rc = sop__node_set_val(c, 0, extra, klen, SOP__V_INLINE);
    } else {
        rc = sop__node_insert_internal(c, c->n, extra, klen, 12345);
    }
    FZ_EXPECT("edit", rc, SOP_OK, -ENOMEM);
    while (c->n > 1)
        sop__node_remove(c, c->n / 2);
    rc = sop__node_compact(c);
    FZ_EXPECT("compact", rc, SOP_OK, -ENOMEM);
    buf = malloc(c->bytes);
    if (!buf)
        abort();
    sop__node_encode(c, buf);
    sop__node *d;
    rc = sop__node_decode(buf, c->bytes, c->id, 1, 0, &d);
    if (rc == SOP_ECORRUPT)
        fz_fail("an edited node's image does not decode");
    if (!rc) {
        if (d->n != c->n || d->bytes != c->bytes)
            fz_fail("an edited node decodes to %u keys, %u bytes (was %u, %u)", d->n, d->bytes,
                    c->n, c->bytes);
        sop__node_free(d);
    }
    free(buf);
    sop__node_free(c);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    for (uint32_t mapseg = 0; mapseg <= 1; mapseg++) {
        sop__node *n;
        int rc = sop__node_decode(data, size, 42, 7, mapseg, &n);
        FZ_EXPECT("sop__node_decode", rc, SOP_OK, SOP_ECORRUPT, -ENOMEM);
        if (rc)
            return 0;
        if (n->bytes != size || n->heap_len != size)
            fz_fail("decoded %zu bytes as a node of %u", size, n->bytes);
        for (uint32_t i = 0; i < n->n; i++) {
            const sop__slot *s = &n->slot[i];
            if ((uint64_t)s->koff + s->klen > size || (n->leaf && (uint64_t)s->voff + s->vlen > size))
                fz_fail("slot %u outside the image", i);
            uint32_t kl, vl;
            const uint8_t *k = sop__node_key(n, i, &kl);
            volatile uint8_t sink = kl ? k[kl - 1] : 0;
            if (n->leaf) {
                const uint8_t *v = sop__node_val(n, i, &vl);
                sink ^= vl ? v[vl - 1] : 0;
                (void)sop__val_state(v, vl, s->vflags);
            }
            (void)sink;
        }
        uint8_t *buf = malloc(size ? size : 1);
        if (!buf)
            abort();
        sop__node_encode(n, buf);
        if (memcmp(buf, data, size) != 0)
            fz_fail("encode(decode(image)) differs from the image");
        free(buf);
        if (!mapseg) {
            size_t half = size / 2;
            check_search(n, data + half, (uint32_t)(size - half > 64 ? 64 : size - half));
            check_edits(n, data, size < 200 ? size : 200);
        }
        sop__node_free(n);
    }
    return 0;
}
