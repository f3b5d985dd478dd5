/*
 * text.h - the text suite of sop-bench: the data every engine is given
 * (Cranfield for quality, the GCIDE dictionary for speed) and the
 * interface every engine (sop, SQLite FTS5, Xapian) implements.
 *
 * Included by the C++ shim (text_xapian.cpp): keep it C that C++ also
 * accepts.
 */
#ifndef SOP_BENCH_TEXT_H
#define SOP_BENCH_TEXT_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/** A document: its text is a slice of the corpus's buffer. Engines index
 *  it under its row number (the index in text_corpus.docs): sop as the
 *  decimal id "<row>", SQLite as rowid row + 1, Xapian as docid row + 1. */
typedef struct text_doc {
    const char *text;
    size_t len;
    uint32_t ext; /**< the collection's own number (Cranfield .I; GCIDE block) */
} text_doc;

typedef struct text_corpus {
    const char *name; /**< "cranfield", "gcide" */
    size_t n;
    text_doc *docs;
    char *buf;        /**< owns the texts */
    uint64_t bytes;   /**< sum of the texts' lengths */
} text_corpus;

/** Queries: each one a NUL-terminated string of words (ASCII letters and
 *  digits, or UTF-8 bytes >= 0x80) separated by single spaces; an engine
 *  turns it into its own OR query of those words. */
typedef struct text_queries {
    size_t n;
    char **q;
    char *buf; /**< owns the strings */
} text_queries;

/** What an engine reports about the index it built. */
typedef struct text_build {
    double index_s;  /**< create + add every document + durable commit, one transaction */
    double commit_s; /**< of index_s: the commit alone */
    double close_s;  /**< closing the index after the commit */
    uint64_t bytes;  /**< the closed index's directory on disk (du) */
    char desc[300];  /**< what was built, its durability and cache */
} text_build;

typedef struct text_index text_index; /* engine-specific */

/** One engine. Functions return 0 or -1; on -1 text_err() says why. */
typedef struct text_engine {
    const char *name; /**< "sop", "sqlite", "xapian" */
    /** Creates an index in directory @p dir (exists, empty) and adds every
     *  document of @p c in ONE write transaction committed durably, then
     *  closes it. Fills b->index_s (create .. commit returned), b->commit_s, b->close_s
     *  and b->desc; the caller measures b->bytes. */
    int (*build)(const text_corpus *c, const char *dir, text_build *b);
    /** Opens the index built in @p dir for queries. */
    int (*open)(const char *dir, size_t ndocs, text_index **out);
    /** Runs queries [q0, q0 + nq) of @p qs, one query per call on one
     *  thread, in read transactions of up to TEXT_QUERIES_PER_TXN queries,
     *  and writes the @p k best rows per query, best first, into @p out
     *  (-1 where fewer were found). */
    int (*search)(text_index *ix, const text_queries *qs, size_t q0, size_t nq, uint32_t k,
                  int32_t *out);
    void (*close)(text_index *ix);
} text_engine;

/** Queries per read transaction (the same for every engine). */
#define TEXT_QUERIES_PER_TXN 1000

/** The Lucene English stop words (those of sop's tokenizer, search.h). */
int text_is_stopword(const char *w, size_t len);

/* ---- data (text_data.c); every loader dies on error ---- */

/** Cranfield (SMART format) in @p dir: cran.all.1400 as documents (title
 *  and text, see text_data.c), cran.qry as queries (their words, in file
 *  order), cranqrel as judgments: @p rel gets, per query, the sorted .I
 *  numbers of its relevant documents (codes 1-4) and @p nrel their count. */
void text_cranfield_load(const char *dir, int fields, text_corpus *c, text_queries *q,
                         uint32_t ***rel, uint32_t **nrel);
/** Which Cranfield fields are indexed. */
#define TEXT_CRAN_W 1  /**< .W only */
#define TEXT_CRAN_TW 2 /**< .T and .W */

/** The GCIDE dictionary (dictd files @p index_path, @p dict_path: a
 *  dictzip file read through `gzip -dc`): one document per distinct
 *  definition block, in dictionary order; at most @p n (0: all). */
void text_gcide_load(const char *index_path, const char *dict_path, size_t n, text_corpus *c);

/** A corpus of JSON lines, one object per line whose "text" member (a
 *  string) is the document's text (other members ignored); the first @p n
 *  lines (0: all). */
void text_jsonl_load(const char *path, size_t n, text_corpus *c);

/** @p nq queries of 1-3 words sampled from random documents of @p c with
 *  seed @p seed: words of ASCII letters, lower-cased, at least 3 letters,
 *  not stop words. */
void text_sample_queries(const text_corpus *c, size_t nq, uint64_t seed, text_queries *q);

void text_corpus_free(text_corpus *c);
void text_queries_free(text_queries *q);

/* ---- errors: a per-process message (the engines run in children) ---- */
void text_set_err(const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 1, 2)))
#endif
    ;
const char *text_err(void);

/** The node / page cache given to sop and SQLite: SOP_BENCH_CACHE_MB
 *  (default 64, sop's default cache). */
size_t text_cache_mb(void);

/* ---- the engines ---- */
extern const text_engine text_engine_sqlite;
#ifdef SOP_BENCH_HAVE_XAPIAN
extern const text_engine text_engine_xapian;
#endif
#if defined(SOP_BENCH_TEXT_SOP) && !defined(SOP_BENCH_NO_SOP)
extern const text_engine text_engine_sop;
#endif

/** The text subcommand. */
int bench_text_main(int argc, char **argv);

#ifdef __cplusplus
}
#endif
#endif /* SOP_BENCH_TEXT_H */
