/* train.h - training, migration and the version flip (train.c). */
#ifndef SOP_VEC_TRAIN_H
#define SOP_VEC_TRAIN_H
#include "vstore.h"

/* A uniform sample of about @max vectors of version @ver (all of them when
 * there are no more), drawn through its lookup tree. *out: n x dims floats
 * (sop__free). */
int vs_sample(sop_vstore *vs, const vs_ver *ver, size_t max, uint64_t seed, float **out,
              size_t *n);
/* Trains the centroids of the next version on a sample of the active one:
 * @nlist 0 = the store's rule, @sample_max 0 = 256 x nlist. *out is not
 * cached yet (vc_discard() it when not passed to vs_begin_next()). */
int vs_train_next(sop_vstore *vs, uint32_t nlist, size_t sample_max, vc_cents **out);
/* Creates the next version with centroids @c (consumed), records it in the
 * config with an empty progress record, and reloads the handle. */
int vs_begin_next(sop_vstore *vs, vc_cents *c);
/* Reads the progress record of the running migration. */
int vs_get_progress(sop_vstore *vs, vl_progress *p);
/* Moves up to @max items after p->last into the next version (reaping
 * tombstones) and records the progress. */
int vs_migrate_batch(sop_vstore *vs, size_t max, vl_progress *p);
/* Makes the next version the active one and removes the old one. */
int vs_flip(sop_vstore *vs);

#endif
