/* crc32c.c - wraps isa-l's crc32_iscsi (note its argument order). */
#include <isa-l/crc.h>

#include "crc32c.h"

uint32_t sop__crc32c(const void *buf, size_t len, uint32_t crc)
{
    /* isa-l takes an int length: feed large buffers in pieces */
    const unsigned char *p = buf;
    while (len) {
        size_t n = len > (1u << 30) ? (1u << 30) : len;
        crc = crc32_iscsi((unsigned char *)p, (int)n, crc);
        p += n;
        len -= n;
    }
    return crc;
}
