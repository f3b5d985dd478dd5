/* replay.c - runs a fuzz target's LLVMFuzzerTestOneInput on every file of
 * the directories (or on the files) given, in name order, once each: the
 * seed corpus and the crashers kept in tests/fuzz/regress/, as a ctest of
 * the ordinary build (no libFuzzer needed). A missing directory is
 * skipped; no input at all is a failure (a wrong path). The empty input
 * runs first, as libFuzzer runs it. A crash or sanitizer report fails
 * the test, naming the input on stderr just before. */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fuzz_util.h"

/* ASan's defaults here (the environment's ASAN_OPTIONS come on top): an
 * allocation over 2 GiB is an error, as libFuzzer's -malloc_limit_mb makes
 * it while fuzzing, so that a crasher of that kind fails its replay too. */
const char *__asan_default_options(void) __attribute__((visibility("default")));
const char *__asan_default_options(void) { return "max_allocation_size_mb=2048"; }

static int run_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        perror(path);
        return -1;
    }
    size_t cap = 1 << 16, n = 0;
    uint8_t *buf = malloc(cap);
    size_t got;
    while (buf && (got = fread(buf + n, 1, cap - n, f)) > 0) {
        n += got;
        if (n == cap) {
            uint8_t *nb = realloc(buf, cap *= 2);
            if (!nb)
                free(buf);
            buf = nb;
        }
    }
    fclose(f);
    if (!buf) {
        fprintf(stderr, "%s: out of memory\n", path);
        return -1;
    }
    fprintf(stderr, "replay %s (%zu bytes)\n", path, n);
    /* an exact-size copy, so that ASan sees a read past the input */
    uint8_t *in = malloc(n ? n : 1);
    if (!in) {
        free(buf);
        return -1;
    }
    memcpy(in, buf, n);
    free(buf);
    LLVMFuzzerTestOneInput(in, n);
    free(in);
    return 0;
}

int main(int argc, char **argv)
{
    static const uint8_t none[1];
    LLVMFuzzerTestOneInput(none, 0);
    size_t runs = 0;
    int bad = 0;
    for (int a = 1; a < argc; a++) {
        struct stat st;
        if (stat(argv[a], &st) != 0)
            continue;
        if (!S_ISDIR(st.st_mode)) {
            bad |= run_file(argv[a]);
            runs++;
            continue;
        }
        struct dirent **ents;
        int n = scandir(argv[a], &ents, NULL, alphasort);
        for (int i = 0; i < n; i++) {
            char path[4096];
            snprintf(path, sizeof path, "%s/%s", argv[a], ents[i]->d_name);
            if (ents[i]->d_name[0] != '.' && stat(path, &st) == 0 && S_ISREG(st.st_mode)) {
                bad |= run_file(path);
                runs++;
            }
            free(ents[i]);
        }
        free(ents);
    }
    printf("replayed %zu inputs\n", runs);
    return runs == 0 || bad ? 1 : 0;
}
