/* crc32c.h - CRC32C (Castagnoli), hardware-accelerated by isa-l. */
#ifndef SOP_CRC32C_H
#define SOP_CRC32C_H
#include <stddef.h>
#include <stdint.h>
uint32_t sop__crc32c(const void *buf, size_t len, uint32_t crc);
#endif
