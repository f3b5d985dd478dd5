/* deflate.c - one-shot raw deflate and inflate of a buffer (isa-l igzip),
 * for the document blocks (docs.c). isa-l stays in this file. */
#include <errno.h>
#include <string.h>
#include <isa-l/igzip_lib.h>

#include "mem.h"
#include "textidx.h"

int tx_deflate(void **state, const uint8_t *in, size_t len, uint8_t *out, size_t cap,
               size_t *outlen)
{
    if (len > UINT32_MAX || cap > UINT32_MAX)
        return 1;
    if (!*state && !(*state = sop__malloc(ISAL_DEF_LVL1_SMALL)))
        return -ENOMEM;
    /* isal_deflate_stateless_init() leaves most of the internal state
     * alone, and isa-l reads some of it (valgrind: "depends on
     * uninitialised value"): start from zeroes */
    struct isal_zstream z;
    memset(&z, 0, sizeof z);
    isal_deflate_stateless_init(&z);
    z.level = 1;
    z.level_buf = *state;
    z.level_buf_size = ISAL_DEF_LVL1_SMALL;
    z.next_in = (uint8_t *)in;
    z.avail_in = (uint32_t)len;
    z.next_out = out;
    z.avail_out = (uint32_t)cap;
    int rc = isal_deflate_stateless(&z);
    if (rc != COMP_OK)
        return 1; /* does not fit (or a parameter isa-l refused): store it raw */
    *outlen = z.total_out;
    return 0;
}

int tx_inflate(void **state, const uint8_t *in, size_t len, uint8_t *out, size_t outlen)
{
    if (len > UINT32_MAX || outlen > UINT32_MAX)
        return -1;
    if (!*state && !(*state = sop__malloc(sizeof(struct inflate_state))))
        return -ENOMEM;
    struct inflate_state *s = *state;
    isal_inflate_init(s);
    s->next_in = (uint8_t *)in;
    s->avail_in = (uint32_t)len;
    s->next_out = out;
    s->avail_out = (uint32_t)outlen;
    int rc = isal_inflate_stateless(s);
    if ((rc != ISAL_DECOMP_OK && rc != ISAL_END_INPUT) || s->total_out != outlen || s->avail_in)
        return -1;
    return 0;
}
