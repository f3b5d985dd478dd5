/*
 * load.h - the load suite of sop-bench: a bulk load of GloVe words with
 * their 100-d vectors (the word is the text), as a fallback JSON file into
 * a sop knowledge base (record store + vector store + BM25 index), against
 * the same data added to FAISS (IndexIVFFlat) and inserted into SQLite
 * FTS5, one after the other.
 *
 * load_data.c reads the words and vectors and writes the fallback file;
 * load_sop.c, load_faiss.c and load_sqlite.c are the engines; load.c runs
 * them, each in its own forked child, and reports.
 */
#ifndef SOP_BENCH_LOAD_H
#define SOP_BENCH_LOAD_H

#include <stddef.h>
#include <stdint.h>

/* ---- the data ---- */

/** Words with their vectors: the first rows of glove-100-base.{fvecs,words}
 *  (frequency order), a word repeated later skipped (GloVe has none). */
typedef struct load_set {
    size_t n;       /**< items: unique words */
    size_t dups;    /**< rows skipped as repeated words */
    uint32_t dims;
    char **words;   /**< n NUL-terminated UTF-8 words (into one buffer) */
    float *vecs;    /**< n x dims as in the .fvecs (not normalised), or NULL */
    uint64_t hash;  /**< FNV-1a of the bytes read (names the fallback file) */
    char *wordbuf;
} load_set;

/** Reads the first @p rows rows (0: all) of the data in @p dir; the vectors
 *  only when @p with_vecs. Dies on error. */
void load_set_read(load_set *s, const char *dir, size_t rows, int with_vecs);
void load_set_free(load_set *s);

/** A word for the engines' checks: the first of 4 or more ASCII letters
 *  that is not a common stop word (one token everywhere), else the first. */
const char *load_probe_word(const load_set *s);

/** The fallback file of @p s in @p dir: its path in @p path (named after n
 *  and the data's hash), written once (untimed) when missing. Returns its
 *  size in bytes. Dies on error. */
uint64_t load_fallback_ensure(const load_set *s, const char *dir, char *path, size_t cap);

/** The fallback file's names: its knowledge base, and its embedder. */
#define LOAD_KB_NAME "glove"
#define LOAD_EMBEDDER "glove-6b-100d"

/* ---- the engines ---- */

enum { LOAD_NEED_WORDS = 1, LOAD_NEED_VECS = 2 };

/** What an engine is given. The data is read in the engine's child before
 *  the clock starts (what it needs only). */
typedef struct load_ctx {
    load_set *set;     /**< the words (and vectors when the engine needs them) */
    const char *json;  /**< the fallback file (sop) */
    uint32_t batch;    /**< sop: records per transaction */
    uint32_t nlist;    /**< faiss: IVF lists */
} load_ctx;

/** What an engine reports. */
typedef struct load_result {
    double secs;      /**< the timed part: empty directory to closed files */
    uint64_t items;   /**< items loaded */
    uint64_t bytes;   /**< bytes on disk after close (du of its directory) */
    uint64_t written; /**< bytes the timed part passed to write calls (wchar of
                           /proc/self/io; 0 where there is none) */
    uint32_t nlist;   /**< IVF lists of the vector index built (0: none or unknown) */
    char parts[160];  /**< where the time went, e.g. "train 3.10 s, add 0.52 s" */
    char desc[240];   /**< what was built, with which settings */
    char check[160];  /**< what verify() found */
} load_result;

/** One engine. Functions return 0 or -1; on -1 load_err() says why. */
typedef struct load_engine {
    const char *name;
    int need; /**< LOAD_NEED_* */
    /** Loads ctx's data into directory @p dir (created, empty), timing
     *  itself; fills secs, items, bytes, parts, desc. */
    int (*run)(load_ctx *ctx, const char *dir, load_result *r);
    /** Reopens what run() wrote and checks it (untimed, after the peak
     *  RSS is read); NULL when there is nothing to check. */
    int (*verify)(load_ctx *ctx, const char *dir, load_result *r);
} load_engine;

void load_set_err(const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 1, 2)))
#endif
    ;
const char *load_err(void);

#ifndef SOP_BENCH_NO_SOP
extern const load_engine load_engine_sop;
#endif
#ifdef SOP_BENCH_HAVE_FAISS
extern const load_engine load_engine_faiss;
#endif
extern const load_engine load_engine_sqlite;

/** The load subcommand. */
int bench_load_main(int argc, char **argv);

#endif /* SOP_BENCH_LOAD_H */
