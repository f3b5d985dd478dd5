/* vstore.h - the vector store handle and the helpers its parts share
 * (vstore.c: open/create/remove/stats; write.c: upserts and deletes;
 * query.c; train.c: training, migration, optimize). */
#ifndef SOP_VEC_VSTORE_H
#define SOP_VEC_VSTORE_H
#include <stddef.h>
#include <stdint.h>

#include "centcache.h"
#include "internal.h"
#include "layout.h"
#include "sop/vector.h"

/* One index version as seen by a handle. */
typedef struct vs_ver {
    uint32_t v, nlist;
    sop_store *ivf, *lku;
    vc_cents *cents; /* NULL for version 0: one cluster at the origin */
} vs_ver;

struct sop_vstore {
    sop__txn_ext ext; /* first: freed with the transaction */
    sop_txn *txn;
    sop_db *db;
    char name[VL_NAME_MAX + 1];
    vl_cfg cfg;
    sop_store *s_cfg, *s_content;
    vs_ver ver[2]; /* [0] the active version, [1] the next one (cfg.next) */
    int nver;
    float *vbuf;    /* dims floats: an item's vector after checks */
    uint8_t *rbuf;  /* record and key scratch */
    size_t rcap;
    uint8_t *out;   /* what reads return (ids, payloads) */
    size_t outcap;
};

#define VS_KEY_MAX (VL_IVF_HDR + SOP_VECTOR_ID_MAX)

/* Records the message and returns @rc. */
int vs_err(const sop_vstore *vs, int rc, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* Room for @n bytes in vs->rbuf. */
int vs_rbuf(sop_vstore *vs, size_t n);

/* Room for @n bytes in vs->out. */
int vs_out_room(sop_vstore *vs, size_t n);

/* Opens the stores of version @v as vs->ver[@i] and loads its centroids
 * (through the process cache). */
int vs_load_version(sop_vstore *vs, int i, uint32_t v, uint32_t nlist, uint64_t uid);
/* Releases what vs->ver[@i] holds. */
void vs_drop_version(sop_vstore *vs, int i);
/* Re-reads the config and the versions (after a training in this
 * transaction changed them). */
int vs_reload(sop_vstore *vs);
/* Writes vs->cfg. */
int vs_put_cfg(sop_vstore *vs);

/* Checks an input vector (dims, finite, non-zero under cosine) and copies
 * it into @out (normalised under cosine). */
int vs_check_vec(sop_vstore *vs, const float *v, uint32_t dims, float *out, const char *what);
/* Checks an id. */
int vs_check_id(sop_vstore *vs, const void *id, size_t len);

/* The cluster of @x in version @ver (the nearest centroid) and the
 * Euclidean distance to it. */
void vs_assign(const sop_vstore *vs, const vs_ver *ver, const float *x, uint32_t *cid,
               float *dist);
/* The same for @n vectors at once (BLAS). */
int vs_assign_batch(const sop_vstore *vs, const vs_ver *ver, const float *x, size_t n,
                    uint32_t *cid, float *dist);

/* Reads the content record of @id: 0 (decoded into @r, payload pointing
 * into engine memory), SOP_ENOTFOUND, or an error. */
int vs_get_rec(sop_vstore *vs, const void *id, size_t id_len, vl_rec *r);
/* Writes the content record of @id. */
int vs_put_rec(sop_vstore *vs, const void *id, size_t id_len, const vl_rec *r);

/* The next free sequence number of @ver's lookup tree. */
int vs_next_seq(sop_vstore *vs, const vs_ver *ver, uint64_t *seq);

/* The training threshold of the store (items written). */
uint64_t vs_train_at(const vl_cfg *c);

/* Trains version active + 1 and migrates every item into it, all inside
 * vs's transaction, then switches to it (the automatic first training). */
int vs_train_inline(sop_vstore *vs);

/* Creates the stores of version @v (index, lookup, centroids if v > 0). */
int vs_create_version(sop_vstore *vs, uint32_t v);
/* Removes them (those that exist). */
int vs_remove_version(sop_vstore *vs, uint32_t v);

#endif
