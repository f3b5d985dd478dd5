/* fvecs.h - the .fvecs reader of `sop vector load|query` (fvecs.c): per
 * vector an int32 dimension d, then d float32, little-endian; every vector
 * of a file has the same d. */
#ifndef SOP_CLI_FVECS_H
#define SOP_CLI_FVECS_H
#include <stdint.h>
#include <stdio.h>
#include <stddef.h>


typedef struct fvecs {
    FILE *f;
    uint32_t d;
    uint64_t n;
    const char *path;
} fvecs;

/* Opens @path and reads its dimension (1..SOP_VECTOR_DIMS_MAX); checks
 * that the size is a whole number of records. 0, or 1 after printing why
 * (cli_error). On success close v->f with fclose(). */
int fvecs_open(const char *path, fvecs *v);
/* Reads up to @max vectors into @out (room for max * v->d floats); *got is
 * how many (0 at the end). 0, or 1 after printing why (a vector of another
 * dimension, a truncated file, a read error). */
int fvecs_read(fvecs *v, float *out, size_t max, size_t *got);

#endif
