/* layout.h - what a vector store keeps in its B-trees: store names, the
 * config record, content records, and the keys of the index and the lookup
 * tree (docs/design/vector.md). Encoding and decoding only, no I/O. */
#ifndef SOP_VEC_LAYOUT_H
#define SOP_VEC_LAYOUT_H
#include <stddef.h>
#include <stdint.h>

#include "sop/vector.h"

#define VL_NAME_MAX 150u   /* a vector store's own name */
#define VL_STORE_MAX 200u  /* with the suffix (SOP_STORE_NAME_MAX) */
#define VL_FORMAT 1u       /* config and content format */
#define VL_EMBED_MAX 255u

/* Store kinds: "<name>.vec.cfg", "<name>.vec.content", and per index
 * version v "<name>.vec.ivf.<v>", "<name>.vec.lku.<v>", "<name>.vec.cent.<v>"
 * (no centroid store for version 0, the flat one). */
enum { VL_CFG, VL_CONTENT, VL_IVF, VL_LKU, VL_CENT };
/* Writes the name of store @kind of vector store @name (version @v) into
 * @out (VL_STORE_MAX + 1 bytes). */
void vl_store_name(char *out, const char *name, int kind, uint32_t v);

/* Keys of the config store. */
#define VL_KEY_CFG "c"
#define VL_KEY_PROGRESS "p"

/* The config record: the store's identity, and the index versions. Version
 * 0 is the flat index (one cluster centred on the origin); a training
 * makes version v + 1 while v is active. */
typedef struct vl_cfg {
    uint32_t dims;
    uint32_t metric;   /* sop_metric */
    uint32_t nlist_opt; /* as created (0: by rule) */
    uint32_t train_at;  /* as created (0: by rule) */
    uint64_t seed;
    uint32_t active;   /* active version */
    uint32_t next;     /* version being built, 0: none */
    uint32_t nlist_a, nlist_n; /* clusters of active and next */
    uint64_t uid_a, uid_n;     /* identities of their centroid sets (cache keys) */
    uint32_t node_bytes;       /* node size of the index trees */
    char embedder[VL_EMBED_MAX + 1];
} vl_cfg;

#define VL_CFG_MAX (72 + VL_EMBED_MAX)
size_t vl_cfg_encode(const vl_cfg *c, uint8_t *out);
/* 0, SOP_EVERSION (newer format), SOP_ECORRUPT */
int vl_cfg_decode(const uint8_t *p, size_t n, vl_cfg *c);

/* Progress of a migration, under VL_KEY_PROGRESS: the last content id
 * migrated (empty: none yet) and whether every item has been. */
typedef struct vl_progress {
    uint32_t version; /* the version being built */
    int done;
    uint64_t moved;
    size_t last_len;
    uint8_t last[SOP_VECTOR_ID_MAX];
} vl_progress;
#define VL_PROGRESS_MAX (24 + SOP_VECTOR_ID_MAX)
size_t vl_progress_encode(const vl_progress *p, uint8_t *out);
int vl_progress_decode(const uint8_t *b, size_t n, vl_progress *p);

/* Where an item is in one index version: its cluster, its distance to the
 * centroid, and its entry in that version's lookup tree. */
typedef struct vl_slot {
    uint32_t ver, cid;
    float dist;
    uint64_t seq;
} vl_slot;

/* A content record (value of the content store, key = id): the payload,
 * the item's place in the active version and, while a migration runs, in
 * the next one. A deleted item keeps a record (a tombstone: no payload,
 * its slots keep their lookup entries) until a migration reaps it. */
typedef struct vl_rec {
    int deleted;
    int nslots;
    vl_slot slot[2];
    const uint8_t *payload;
    size_t payload_len;
} vl_rec;

#define VL_REC_HDR 4u
#define VL_SLOT_BYTES 20u
size_t vl_rec_size(const vl_rec *r);
size_t vl_rec_encode(const vl_rec *r, uint8_t *out); /* vl_rec_size bytes */
/* payload points into @p. 0 or SOP_ECORRUPT. */
int vl_rec_decode(const uint8_t *p, size_t n, vl_rec *r);
/* the slot of version @ver, or NULL */
vl_slot *vl_rec_slot(vl_rec *r, uint32_t ver);

/* Index keys: cluster id (big-endian), distance (its float bits,
 * big-endian: the order of non-negative floats), id. */
#define VL_IVF_HDR 8u
size_t vl_ivf_key(uint8_t *out, uint32_t cid, float dist, const void *id, size_t id_len);
uint32_t vl_ivf_cid(const uint8_t *key);
float vl_ivf_dist(const uint8_t *key);
/* the smallest key of cluster @cid with distance >= @dist (no id) */
void vl_ivf_bound(uint8_t *out, uint32_t cid, float dist);

/* Lookup keys: the sequence number, big-endian. */
void vl_lku_key(uint8_t *out, uint64_t seq);
uint64_t vl_lku_seq(const uint8_t *key);

/* Centroid keys: the cluster id, big-endian. */
void vl_cent_key(uint8_t *out, uint32_t cid);

#endif
