/* problem.c - see problem.h. */
#include "problem.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>

const char *sop__printable(char out[SOP__PRINTABLE_MAX], const void *p, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    const uint8_t *s = p;
    size_t o = 0;
    for (size_t i = 0; i < n && i < 64; i++) {
        if (s[i] >= 0x20 && s[i] < 0x7f && s[i] != '\\') {
            out[o++] = (char)s[i];
        } else {
            out[o++] = '\\';
            out[o++] = 'x';
            out[o++] = hex[s[i] >> 4];
            out[o++] = hex[s[i] & 15];
        }
    }
    if (n > 64) {
        memcpy(out + o, "...", 3);
        o += 3;
    }
    out[o] = '\0';
    return out;
}

void sop__problem(sop_check_fn fn, void *ctx, const char *kind, const char *name,
                  const char *fmt, va_list ap)
{
    char msg[600], line[1024];
    if (!fn)
        return;
    vsnprintf(msg, sizeof msg, fmt, ap);
    snprintf(line, sizeof line, "%s %s: %s", kind, name, msg);
    fn(line, ctx);
}
