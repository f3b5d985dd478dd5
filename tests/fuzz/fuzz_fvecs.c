/*
 * fuzz_fvecs.c - the .fvecs reader of `sop vector load|query`
 * (cli/fvecs.c).
 *
 * Feeds: the input as an .fvecs file, read in batches of 1 to 8 vectors
 * (the batch size from the file's last byte).
 * Checks: nothing crashes or reads past a buffer; open and read return 0
 * or 1 (an error message); no more vectors come out than the file's size
 * promised, each of the file's dimension, with the file's bytes.
 */
#include <stdlib.h>
#include <stdio.h>
#include <string.h>

#include "fuzz_util.h"
#include "fvecs.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char path[600];
    fz_path(path, sizeof path, "in.fvecs");
    fz_write(path, data, size);
    fvecs v;
    int rc = fvecs_open(path, &v);
    if (rc != 0 && rc != 1)
        fz_fail("fvecs_open returned %d", rc);
    if (rc)
        return 0;
    size_t batch = 1 + (size ? data[size - 1] % 8 : 0);
    float *out = malloc(batch * v.d * sizeof *out);
    if (!out)
        abort();
    uint64_t total = 0;
    for (;;) {
        size_t got = 0;
        rc = fvecs_read(&v, out, batch, &got);
        if (rc != 0 && rc != 1)
            fz_fail("fvecs_read returned %d", rc);
        if (rc || got == 0)
            break;
        if (got > batch)
            fz_fail("fvecs_read: %zu vectors in a batch of %zu", got, batch);
        for (size_t i = 0; i < got; i++) {
            size_t at = (size_t)(total + i) * (4 + 4 * (size_t)v.d) + 4;
            if (memcmp(out + i * v.d, data + at, 4 * (size_t)v.d) != 0)
                fz_fail("vector %llu differs from the file", (unsigned long long)(total + i));
        }
        total += got;
        if (total > v.n)
            fz_fail("%llu vectors read from a file of %llu", (unsigned long long)total,
                    (unsigned long long)v.n);
    }
    if (!rc && total != v.n)
        fz_fail("%llu vectors read without error from a file of %llu", (unsigned long long)total,
                (unsigned long long)v.n);
    free(out);
    fclose(v.f);
    return 0;
}
