/*
 * ec_codec.h - Reed-Solomon erasure code over GF(2^8) (isa-l): k data
 * shards and m parity shards of equal length, any k of which give back
 * the others. The encoding matrix is a Cauchy matrix below the identity
 * (gf_gen_cauchy1_matrix), so every k x k submatrix is invertible and any
 * pattern of up to m erasures decodes.
 */
#ifndef SOP_EC_CODEC_H
#define SOP_EC_CODEC_H
#include <stddef.h>
#include <stdint.h>

typedef struct sop__ec_codec {
    int k, m;
    uint8_t *matrix; /* (k + m) x k encoding matrix */
    uint8_t *tables; /* isa-l tables of the m parity rows */
} sop__ec_codec;

/* 0, -EINVAL (k < 1, m < 1, k + m > 255) or -ENOMEM. */
int sop__ec_codec_init(sop__ec_codec *c, int k, int m);
void sop__ec_codec_free(sop__ec_codec *c);

/* Computes the m parity shards of @len bytes from the k data shards. */
void sop__ec_encode(const sop__ec_codec *c, size_t len, uint8_t *const *data,
                    uint8_t *const *parity);

/* shards[0..k+m) point at @len-byte buffers (data first, then parity);
 * ok[i] says whether shard i is intact. Rewrites every shard that is not
 * (data and parity) from k intact ones. 0; -EIO when fewer than k are
 * intact (nothing changed); -ENOMEM. */
int sop__ec_reconstruct(const sop__ec_codec *c, size_t len, uint8_t *const *shards,
                        const uint8_t *ok);

#endif
