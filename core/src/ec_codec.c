/* ec_codec.c - Reed-Solomon encode and reconstruct with isa-l (see
 * ec_codec.h). */
#include <errno.h>
#include <isa-l/erasure_code.h>
#include <string.h>

#include "ec_codec.h"
#include "mem.h"

int sop__ec_codec_init(sop__ec_codec *c, int k, int m)
{
    memset(c, 0, sizeof *c);
    if (k < 1 || m < 1 || k + m > 255)
        return -EINVAL;
    c->k = k;
    c->m = m;
    c->matrix = sop__malloc((size_t)(k + m) * (size_t)k);
    c->tables = sop__malloc((size_t)32 * (size_t)k * (size_t)m);
    if (!c->matrix || !c->tables) {
        sop__ec_codec_free(c);
        return -ENOMEM;
    }
    gf_gen_cauchy1_matrix(c->matrix, k + m, k);
    ec_init_tables(k, m, c->matrix + (size_t)k * (size_t)k, c->tables);
    return 0;
}

void sop__ec_codec_free(sop__ec_codec *c)
{
    sop__free(c->matrix);
    sop__free(c->tables);
    memset(c, 0, sizeof *c);
}

void sop__ec_encode(const sop__ec_codec *c, size_t len, uint8_t *const *data,
                    uint8_t *const *parity)
{
    if (len)
        ec_encode_data((int)len, c->k, c->m, c->tables, (unsigned char **)data,
                       (unsigned char **)parity);
}

int sop__ec_reconstruct(const sop__ec_codec *c, size_t len, uint8_t *const *shards,
                        const uint8_t *ok)
{
    int k = c->k, n = c->k + c->m;
    int src[255], lost[255], nsrc = 0, nlost = 0;
    for (int i = 0; i < n; i++) {
        if (ok[i] && nsrc < k)
            src[nsrc++] = i;
        else if (!ok[i])
            lost[nlost++] = i;
    }
    if (nsrc < k)
        return -EIO;
    if (!nlost || !len)
        return 0;
    size_t kk = (size_t)k * (size_t)k;
    uint8_t *sub = sop__malloc(kk), *inv = sop__malloc(kk);
    uint8_t *dec = sop__malloc((size_t)nlost * (size_t)k);
    uint8_t *tbl = sop__malloc((size_t)32 * (size_t)k * (size_t)nlost);
    int rc = -ENOMEM;
    if (!sub || !inv || !dec || !tbl)
        goto out;
    /* the rows of the k intact shards; its inverse maps them back to data */
    for (int r = 0; r < k; r++)
        memcpy(sub + (size_t)r * k, c->matrix + (size_t)src[r] * k, (size_t)k);
    if (gf_invert_matrix(sub, inv, k) != 0) {
        rc = -EIO; /* cannot happen with a Cauchy matrix */
        goto out;
    }
    /* a lost shard = its encoding row x inverse, applied to the intact ones */
    for (int l = 0; l < nlost; l++) {
        const uint8_t *row = c->matrix + (size_t)lost[l] * k;
        for (int j = 0; j < k; j++) {
            uint8_t s = 0;
            for (int t = 0; t < k; t++)
                s ^= gf_mul(row[t], inv[(size_t)t * k + j]);
            dec[(size_t)l * k + j] = s;
        }
    }
    unsigned char *in[255], *outp[255];
    for (int r = 0; r < k; r++)
        in[r] = shards[src[r]];
    for (int l = 0; l < nlost; l++)
        outp[l] = shards[lost[l]];
    ec_init_tables(k, nlost, dec, tbl);
    ec_encode_data((int)len, k, nlost, tbl, in, outp);
    rc = 0;
out:
    sop__free(sub);
    sop__free(inv);
    sop__free(dec);
    sop__free(tbl);
    return rc;
}
