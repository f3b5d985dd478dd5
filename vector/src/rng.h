/* rng.h - the vector layer's deterministic random numbers (splitmix64):
 * the same seed gives the same training and the same samples everywhere. */
#ifndef SOP_VEC_RNG_H
#define SOP_VEC_RNG_H
#include <stdint.h>

static inline uint64_t sop__rng_next(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* uniform in [0, n), n > 0 (Lemire's multiply-shift, without the rejection
 * step: the bias is below 2^-32 for the sizes used here) */
static inline uint64_t sop__rng_below(uint64_t *s, uint64_t n)
{
    return (uint64_t)(((unsigned __int128)sop__rng_next(s) * n) >> 64);
}

/* uniform in [0, 1) */
static inline double sop__rng_unit(uint64_t *s)
{
    return (double)(sop__rng_next(s) >> 11) * (1.0 / 9007199254740992.0);
}

#endif
