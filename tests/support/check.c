/* check.c - CHECK()'s failure report (check.h). */
#include "check.h"

#include <stdarg.h>
#include <stdio.h>

int tu_failed;

void tu_check_failed(const char *label, const char *file, int line, const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "%s %s:%d: ", label, file, line);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    tu_failed++;
}
