/* layout.c - encodings of the vector layer's records and keys. All
 * integers of records are little-endian, floats IEEE-754 binary32 in host
 * order (the library supports little-endian hosts only); keys are
 * big-endian so that they sort bytewise. */
#include "layout.h"

#include <stdio.h>
#include <string.h>

#include "bytes.h"

_Static_assert(sizeof(float) == 4, "binary32 floats");

static const char *const kind_names[] = {"cfg", "content", "ivf", "lku", "cent"};

void vl_store_name(char *out, const char *name, int kind, uint32_t v)
{
    if (kind >= VL_IVF)
        snprintf(out, VL_STORE_MAX + 1, "%s.vec.%s.%u", name, kind_names[kind], (unsigned)v);
    else
        snprintf(out, VL_STORE_MAX + 1, "%s.vec.%s", name, kind_names[kind]);
}

static uint32_t fbits(float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}

static float bitsf(uint32_t u)
{
    float f;
    memcpy(&f, &u, 4);
    return f;
}

static void put32be(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

static uint32_t get32be(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* config: "SOPV" fmt dims metric nlist_opt train_at seed active next
 * nlist_a nlist_n uid_a uid_n node_bytes elen embedder */
size_t vl_cfg_encode(const vl_cfg *c, uint8_t *out)
{
    memcpy(out, "SOPV", 4);
    sop__put32(out + 4, VL_FORMAT);
    sop__put32(out + 8, c->dims);
    sop__put32(out + 12, c->metric);
    sop__put32(out + 16, c->nlist_opt);
    sop__put32(out + 20, c->train_at);
    sop__put64(out + 24, c->seed);
    sop__put32(out + 32, c->active);
    sop__put32(out + 36, c->next);
    sop__put32(out + 40, c->nlist_a);
    sop__put32(out + 44, c->nlist_n);
    sop__put64(out + 48, c->uid_a);
    sop__put64(out + 56, c->uid_n);
    sop__put32(out + 64, c->node_bytes);
    size_t el = strlen(c->embedder);
    out[68] = (uint8_t)el;
    memcpy(out + 69, c->embedder, el);
    return 69 + el;
}

int vl_cfg_decode(const uint8_t *p, size_t n, vl_cfg *c)
{
    if (n < 69 || memcmp(p, "SOPV", 4) != 0)
        return SOP_ECORRUPT;
    if (sop__get32(p + 4) > VL_FORMAT)
        return SOP_EVERSION;
    memset(c, 0, sizeof *c);
    c->dims = sop__get32(p + 8);
    c->metric = sop__get32(p + 12);
    c->nlist_opt = sop__get32(p + 16);
    c->train_at = sop__get32(p + 20);
    c->seed = sop__get64(p + 24);
    c->active = sop__get32(p + 32);
    c->next = sop__get32(p + 36);
    c->nlist_a = sop__get32(p + 40);
    c->nlist_n = sop__get32(p + 44);
    c->uid_a = sop__get64(p + 48);
    c->uid_n = sop__get64(p + 56);
    c->node_bytes = sop__get32(p + 64);
    size_t el = p[68];
    if (n != 69 + el || c->node_bytes < 4096 || c->node_bytes > 65536 || c->dims == 0 || c->dims > SOP_VECTOR_DIMS_MAX ||
        c->metric < SOP_METRIC_COSINE || c->metric > SOP_METRIC_L2 || c->nlist_a == 0 ||
        c->nlist_a > SOP_VECTOR_NLIST_MAX || c->nlist_n > SOP_VECTOR_NLIST_MAX ||
        (c->next && (c->next <= c->active || c->nlist_n == 0)))
        return SOP_ECORRUPT;
    memcpy(c->embedder, p + 69, el);
    c->embedder[el] = '\0';
    return 0;
}

size_t vl_progress_encode(const vl_progress *p, uint8_t *out)
{
    sop__put32(out, p->version);
    sop__put32(out + 4, (uint32_t)p->done);
    sop__put64(out + 8, p->moved);
    sop__put32(out + 16, (uint32_t)p->last_len);
    memcpy(out + 20, p->last, p->last_len);
    return 20 + p->last_len;
}

int vl_progress_decode(const uint8_t *b, size_t n, vl_progress *p)
{
    if (n < 20)
        return SOP_ECORRUPT;
    p->version = sop__get32(b);
    p->done = (int)sop__get32(b + 4);
    p->moved = sop__get64(b + 8);
    p->last_len = sop__get32(b + 16);
    if (p->last_len > SOP_VECTOR_ID_MAX || n != 20 + p->last_len || p->done > 1)
        return SOP_ECORRUPT;
    memcpy(p->last, b + 20, p->last_len);
    return 0;
}

/* content record: fmt flags nslots 0, slots (ver cid dist seq), payload */
size_t vl_rec_size(const vl_rec *r)
{
    return VL_REC_HDR + (size_t)r->nslots * VL_SLOT_BYTES + r->payload_len;
}

size_t vl_rec_encode(const vl_rec *r, uint8_t *out)
{
    out[0] = VL_FORMAT;
    out[1] = (uint8_t)(r->deleted ? 1 : 0);
    out[2] = (uint8_t)r->nslots;
    out[3] = 0;
    uint8_t *p = out + VL_REC_HDR;
    for (int i = 0; i < r->nslots; i++, p += VL_SLOT_BYTES) {
        sop__put32(p, r->slot[i].ver);
        sop__put32(p + 4, r->slot[i].cid);
        sop__put32(p + 8, fbits(r->slot[i].dist));
        sop__put64(p + 12, r->slot[i].seq);
    }
    if (r->payload_len)
        memcpy(p, r->payload, r->payload_len);
    return vl_rec_size(r);
}

int vl_rec_decode(const uint8_t *p, size_t n, vl_rec *r)
{
    if (n < VL_REC_HDR || p[0] != VL_FORMAT || p[1] > 1 || p[2] < 1 || p[2] > 2 ||
        n < VL_REC_HDR + (size_t)p[2] * VL_SLOT_BYTES)
        return SOP_ECORRUPT;
    r->deleted = p[1];
    r->nslots = p[2];
    const uint8_t *s = p + VL_REC_HDR;
    for (int i = 0; i < r->nslots; i++, s += VL_SLOT_BYTES) {
        r->slot[i].ver = sop__get32(s);
        r->slot[i].cid = sop__get32(s + 4);
        r->slot[i].dist = bitsf(sop__get32(s + 8));
        r->slot[i].seq = sop__get64(s + 12);
    }
    r->payload = s;
    r->payload_len = n - (size_t)(s - p);
    if (r->deleted && r->payload_len)
        return SOP_ECORRUPT;
    return 0;
}

vl_slot *vl_rec_slot(vl_rec *r, uint32_t ver)
{
    for (int i = 0; i < r->nslots; i++)
        if (r->slot[i].ver == ver)
            return &r->slot[i];
    return NULL;
}

size_t vl_ivf_key(uint8_t *out, uint32_t cid, float dist, const void *id, size_t id_len)
{
    vl_ivf_bound(out, cid, dist);
    memcpy(out + VL_IVF_HDR, id, id_len);
    return VL_IVF_HDR + id_len;
}

void vl_ivf_bound(uint8_t *out, uint32_t cid, float dist)
{
    if (!(dist > 0)) /* -0.0, and NaN never reaches here */
        dist = 0;
    put32be(out, cid);
    put32be(out + 4, fbits(dist));
}

uint32_t vl_ivf_cid(const uint8_t *key) { return get32be(key); }

float vl_ivf_dist(const uint8_t *key) { return bitsf(get32be(key + 4)); }

void vl_lku_key(uint8_t *out, uint64_t seq) { sop__put64be(out, seq); }

uint64_t vl_lku_seq(const uint8_t *key) { return sop__get64be(key); }

void vl_cent_key(uint8_t *out, uint32_t cid) { put32be(out, cid); }
