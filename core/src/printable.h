/* printable.h - a printable form of a key, id or term for problem reports
 * (the integrity checks of every layer). */
#ifndef SOP_PRINTABLE_H
#define SOP_PRINTABLE_H
#include <stddef.h>

/* Room for the longest form: 64 bytes of 4 characters each, "...", NUL. */
#define SOP__PRINTABLE_MAX 300

/* Writes into @out the first 64 bytes of @p[0..n) with every byte outside
 * printable ASCII, and the backslash, as \xHH, then "..." when @n > 64.
 * Returns @out. */
const char *sop__printable(char out[SOP__PRINTABLE_MAX], const void *p, size_t n);
#endif
