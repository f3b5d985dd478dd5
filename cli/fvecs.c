/* fvecs.c - the .fvecs reader of `sop vector load|query` (fvecs.h). */
#include <errno.h>
#include <stdint.h>
#include <string.h>
#include <sys/stat.h>

#include "cli.h"
#include "fvecs.h"
#include "sop/vector.h"

/* Opens @path and reads its dimension; checks that the size is a whole
 * number of records. */
int fvecs_open(const char *path, fvecs *v)
{
    memset(v, 0, sizeof *v);
    v->path = path;
    if (!(v->f = fopen(path, "rb")))
        return cli_error("%s: %s", path, strerror(errno));
    struct stat st;
    int32_t d = 0;
    if (fstat(fileno(v->f), &st) != 0 || fread(&d, 4, 1, v->f) != 1) {
        fclose(v->f);
        v->f = NULL;
        return cli_error("%s: empty or unreadable", path);
    }
    uint64_t rec = 4 + 4 * (uint64_t)(d > 0 ? d : 0);
    if (d <= 0 || (uint32_t)d > SOP_VECTOR_DIMS_MAX || (uint64_t)st.st_size % rec != 0) {
        fclose(v->f);
        v->f = NULL;
        return cli_error("%s: not an .fvecs file (dimension %d, %lld bytes)", path, (int)d,
                         (long long)st.st_size);
    }
    v->d = (uint32_t)d;
    v->n = (uint64_t)st.st_size / rec;
    rewind(v->f);
    return 0;
}

/* Reads up to @max vectors into @out; *got is how many. */
int fvecs_read(fvecs *v, float *out, size_t max, size_t *got)
{
    size_t i = 0;
    for (; i < max; i++) {
        int32_t d;
        if (fread(&d, 4, 1, v->f) != 1)
            break;
        if ((uint32_t)d != v->d)
            return cli_error("%s: a vector of dimension %d among %u", v->path, (int)d, v->d);
        if (fread(out + i * v->d, 4, v->d, v->f) != v->d)
            return cli_error("%s: truncated", v->path);
    }
    if (ferror(v->f))
        return cli_error("%s: %s", v->path, strerror(errno));
    *got = i;
    return 0;
}
