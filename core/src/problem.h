/* problem.h - problem reports of the integrity checks of every layer
 * (sop_vstore_check, sop_text_check, sop_kb_check): one line per problem,
 * and a printable form of the key, id or term it is about. */
#ifndef SOP_PROBLEM_H
#define SOP_PROBLEM_H
#include <stdarg.h>
#include <stddef.h>

#include "sop/sop.h"

/* Room for the longest form: 64 bytes of 4 characters each, "...", NUL. */
#define SOP__PRINTABLE_MAX 300

/* Writes into @out the first 64 bytes of @p[0..n) with every byte outside
 * printable ASCII, and the backslash, as \xHH, then "..." when @n > 64.
 * Returns @out. */
const char *sop__printable(char out[SOP__PRINTABLE_MAX], const void *p, size_t n);

/* Hands @fn (when not NULL) the line "<kind> <name>: <message>", the
 * message formatted from @fmt and @ap and cut at 600 bytes. */
void sop__problem(sop_check_fn fn, void *ctx, const char *kind, const char *name,
                  const char *fmt, va_list ap) __attribute__((format(printf, 5, 0)));
#endif
