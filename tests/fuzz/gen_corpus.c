/*
 * gen_corpus.c - writes the seed corpora of the fuzz targets
 * (tests/fuzz/corpus/<target>/): small valid databases made here through
 * the public API (packed as fuzz_open's input), their registry files,
 * segments and node images, and small valid inputs of the text formats.
 * Deterministic; run it again when a format changes:
 *
 *   build/asan/tests/fuzz/fuzz_gen_corpus tests/fuzz/corpus
 *
 * Segment files are cut at the end of their records (the preallocated
 * zeros dropped, as recovery does) to keep the corpora small.
 */
#include <dirent.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "bytes.h"
#include "fuzz_util.h"
#include "log.h"
#include "sop/sop.h"

static const char *out_root;
static int nfiles;

typedef struct buf {
    uint8_t *p;
    size_t n;
} buf;

static void add(buf *b, const void *p, size_t n)
{
    b->p = realloc(b->p, b->n + n + 1);
    if (!b->p)
        abort();
    memcpy(b->p + b->n, p, n);
    b->n += n;
}

static void add_u8(buf *b, uint8_t v) { add(b, &v, 1); }

static void emit(const char *target, const char *name, const void *p, size_t n)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", out_root, target);
    mkdir(path, 0755);
    snprintf(path, sizeof path, "%s/%s/%s", out_root, target, name);
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(p, 1, n, f) != n || fclose(f) != 0) {
        perror(path);
        exit(1);
    }
    nfiles++;
}

static void emit_str(const char *target, const char *name, const char *s)
{
    emit(target, name, s, strlen(s));
}

/* A file of @dir, whole (segments cut at the end of their records). */
static buf slurp(const char *dir, const char *name)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    buf b = {NULL, 0};
    FILE *f = fopen(path, "rb");
    if (!f)
        return b;
    uint8_t chunk[65536];
    size_t got;
    while ((got = fread(chunk, 1, sizeof chunk, f)) > 0)
        add(&b, chunk, got);
    fclose(f);
    if (strncmp(name, "seg-", 4) == 0) {
        size_t off = 0;
        while (b.n - off >= SOP__REC_HDR && sop__get32(b.p + off) == SOP__REC_MAGIC &&
               sop__get32(b.p + off + 8) <= b.n - off - SOP__REC_HDR)
            off += SOP__REC_HDR + sop__get32(b.p + off + 8);
        b.n = off;
    }
    return b;
}

static void pack(buf *out, uint8_t kind, const buf *file)
{
    add_u8(out, kind);
    add_u8(out, FZ_FIX_CRC);
    uint8_t len[4];
    sop__put32(len, (uint32_t)file->n);
    add(out, len, 4);
    add(out, file->p, file->n);
}

static void die_rc(const char *what, int rc, sop_db *db)
{
    if (rc) {
        fprintf(stderr, "%s: %s: %s\n", what, sop_strerror(rc), db ? sop_db_errmsg(db) : "");
        exit(1);
    }
}

/* Writes @n items into store @name (values of i * 37 % 300 bytes, those
 * over 64 in blobs), and deletes every seventh. */
static void fill(sop_db *db, const char *name, uint32_t node_bytes, int n)
{
    sop_txn *t;
    sop_store *s;
    die_rc("begin", sop_txn_begin(db, SOP_TXN_WRITE, 0, &t), db);
    sop_store_options o;
    sop_store_options_init(&o);
    o.node_bytes = node_bytes;
    o.inline_max = 64;
    die_rc("create", sop_store_create(t, name, &o, &s), db);
    static uint8_t val[300];
    for (int i = 0; i < n; i++) {
        char k[32];
        int kl = snprintf(k, sizeof k, "key-%05d", i * 7919 % 100000);
        memset(val, 'a' + i % 26, sizeof val);
        sop_val key = {k, (size_t)kl}, v = {val, (size_t)(i * 37 % 300)};
        die_rc("upsert", sop_upsert(s, &key, &v), db);
    }
    die_rc("commit", sop_txn_commit(t), db);
    die_rc("begin", sop_txn_begin(db, SOP_TXN_WRITE, 0, &t), db);
    die_rc("open", sop_store_open(t, name, &s), db);
    for (int i = 0; i < n; i += 7) {
        char k[32];
        int kl = snprintf(k, sizeof k, "key-%05d", i * 7919 % 100000);
        sop_val key = {k, (size_t)kl};
        die_rc("remove", sop_remove(s, &key), db);
    }
    die_rc("commit", sop_txn_commit(t), db);
}

static const char *const db_files[8] = {"registry", "registry.dw", "ckpt.0", "ckpt.1",
                                        "seg-00000001", "seg-00000002", "seg-00000003",
                                        "seg-00000004"};

/* Seeds of the engine's targets from the files in @dir. */
static void emit_db(const char *dir, const char *name, int node_seeds, int rdonly_too)
{
    buf files[8];
    for (int i = 0; i < 8; i++)
        files[i] = slurp(dir, db_files[i]);
    char nm[128];
    for (int opts = 0; opts < 3; opts++) { /* plain, plain + a write, read-only */
        if (opts == 2 && !rdonly_too)
            break;
        buf o = {NULL, 0};
        add_u8(&o, (uint8_t)(opts == 1 ? 0x4 : opts == 2 ? 0x1 : 0));
        for (int i = 0; i < 8; i++)
            if (files[i].p)
                pack(&o, (uint8_t)i, &files[i]);
        snprintf(nm, sizeof nm, "%s-%d", name, opts);
        emit("open", nm, o.p, o.n);
        free(o.p);
    }
    buf r = {NULL, 0};
    pack(&r, 0, &files[0]);
    if (files[1].n)
        pack(&r, 1, &files[1]);
    emit("registry", name, r.p, r.n);
    free(r.p);
    buf l = {NULL, 0};
    add_u8(&l, 2); /* recover, from csn 0 */
    for (int i = 4; i < 8; i++)
        if (files[i].p)
            pack(&l, (uint8_t)(i - 4), &files[i]);
    emit("log", name, l.p, l.n);
    free(l.p);
    /* node images: the payloads of the node IMAGE records, the largest
     * of distinct sizes first (the smallest is an empty leaf) */
    const buf *seg = &files[4];
    size_t last = SIZE_MAX;
    for (int k = 0; k < node_seeds; k++) {
        size_t best = 0, best_off = 0;
        for (size_t off = 0; seg->p && off < seg->n;) {
            uint32_t plen = sop__get32(seg->p + off + 8);
            const uint8_t *pl = seg->p + off + SOP__REC_HDR;
            if (seg->p[off + 4] == SOP__REC_IMAGE && plen > SOP__IMG_HDR &&
                pl[32] == SOP__IMG_NODE && plen - SOP__IMG_HDR < last &&
                plen - SOP__IMG_HDR > best) {
                best = plen - SOP__IMG_HDR;
                best_off = off;
            }
            off += SOP__REC_HDR + plen;
        }
        if (!best)
            break;
        snprintf(nm, sizeof nm, "%s-node%d", name, k);
        emit("node", nm, seg->p + best_off + SOP__REC_HDR + SOP__IMG_HDR, best);
        last = best;
    }
    for (size_t off = 0; seg->p && off < seg->n;) { /* and the first internal node */
        uint32_t plen = sop__get32(seg->p + off + 8);
        const uint8_t *pl = seg->p + off + SOP__REC_HDR;
        if (seg->p[off + 4] == SOP__REC_IMAGE && plen > SOP__IMG_HDR && pl[32] == SOP__IMG_NODE &&
            pl[SOP__IMG_HDR] == 2) {
            snprintf(nm, sizeof nm, "%s-internal", name);
            emit("node", nm, pl + SOP__IMG_HDR, plen - SOP__IMG_HDR);
            break;
        }
        off += SOP__REC_HDR + plen;
    }
    for (int i = 0; i < 8; i++)
        free(files[i].p);
}

static void copy_dir(const char *from, const char *to)
{
    fz_empty_dir(to);
    for (int i = 0; i < 8; i++) {
        buf b = slurp(from, db_files[i]);
        if (b.p) {
            char p[1024];
            snprintf(p, sizeof p, "%s/%s", to, db_files[i]);
            fz_write(p, b.p, b.n);
            free(b.p);
        }
    }
}

static void engine_seeds(void)
{
    char dir[700], crash[700];
    fz_path(dir, sizeof dir, "gen");
    fz_path(crash, sizeof crash, "gen-crashed");
    sop_db *db;

    fz_empty_dir(dir); /* an empty database */
    die_rc("open", sop_db_open(dir, NULL, &db), db);
    die_rc("close", sop_db_close(db), db);
    emit_db(dir, "empty", 1, 1);

    fz_empty_dir(dir); /* one store, blobs, deletions; closed cleanly */
    die_rc("open", sop_db_open(dir, NULL, &db), db);
    fill(db, "fruit", 4096, 30);
    die_rc("close", sop_db_close(db), db);
    emit_db(dir, "small", 3, 0);

    fz_empty_dir(dir); /* two stores of small nodes; then killed (a log to replay) */
    die_rc("open", sop_db_open(dir, NULL, &db), db);
    fill(db, "a", 1024, 40);
    die_rc("checkpoint", sop_db_checkpoint(db), db);
    fill(db, "b", 1024, 15);
    copy_dir(dir, crash); /* the files as a SIGKILL would leave them */
    die_rc("close", sop_db_close(db), db);
    emit_db(dir, "twostores", 4, 0);
    emit_db(crash, "crashed", 2, 1);
}

static void text_seeds(void)
{
    emit_str("fallback", "minimal", "{\"format\":\"sop-fallback\",\"version\":1,\"records\":[]}");
    emit_str("fallback", "records",
             "{\n  \"format\": \"sop-fallback\",\n  \"version\": 1,\n  \"name\": \"nurse\",\n"
             "  \"description\": \"x\",\n  \"records\": [\n"
             "    {\"id\": \"p001\", \"text\": \"I feel hot\", \"metadata\": {\"phrase\": \"I feel hot\", "
             "\"terms\": [\"fever\"]}},\n"
             "    {\"id\": \"p002\", \"text\": \"my tummy hurts\"},\n"
             "    {\"id\": \"p\\u00e9\", \"text\": \"esc\\\"aped\\n\"}\n  ],\n  \"later\": [1, {\"a\": null}]\n}\n");
    emit_str("fallback", "embeddings",
             "{\"format\":\"sop-fallback\",\"version\":1,\"embedder\":{\"name\":\"sop-hash-v1\",\"dim\":3},"
             "\"records\":[{\"id\":\"a\",\"text\":\"alpha\",\"embedding\":[0.5,-1.25e-3,3]},"
             "{\"embedding\":[1E2, 0.0000001, -0],\"text\":\"beta\",\"id\":\"b\"},"
             "{\"id\":\"c\",\"text\":\"gamma\",\"embedding\":[123456789012345678901234,1e-40,2.5e+22]}]}");

    static const struct {
        const char *name;
        uint8_t hdr[4];
        const char *body;
    } ol[] = {
        {"chat", {0, 0, 255, 0}, "{\"model\":\"llama3\",\"message\":{\"role\":\"assistant\",\"content\":\"Hello there\"},\"done\":true}"},
        {"chat-stream", {1, 0, 7, 0},
         "{\"message\":{\"role\":\"assistant\",\"content\":\"Hel\"},\"done\":false}\n"
         "{\"message\":{\"content\":\"lo \\u00e9\"},\"done\":false}\r\n\n"
         "{\"message\":{\"content\":\"\"},\"done\":true}\n"},
        {"chat-stream-nonl", {1, 0, 3, 0}, "{\"message\":{\"content\":\"x\"},\"done\":true}"},
        {"chat-error", {0, 5, 255, 0}, "{\"error\":\"model not found\"}"},
        {"stream-error", {1, 0, 16, 0}, "{\"error\":\"out of memory\"}\n"},
        {"embed", {2, 0, 11, 1}, "{\"model\":\"m\",\"embeddings\":[[0.1,-0.2,3e2],[1,2,3]]}"},
        {"embed-dropped", {6, 0, 11, 0}, "{\"embeddings\":[[0.5,0.25]]}"},
        {"tags", {3, 0, 255, 0}, "{\"models\":[{\"name\":\"llama3:latest\"}]}"},
        {"small-limit", {0, 0, 255, 0x80}, "{\"message\":{\"content\":\"a long answer that goes on and on\"}}"},
    };
    for (size_t i = 0; i < sizeof ol / sizeof *ol; i++) {
        buf b = {NULL, 0};
        add(&b, ol[i].hdr, 4);
        add(&b, ol[i].body, strlen(ol[i].body));
        emit("ollama", ol[i].name, b.p, b.n);
        free(b.p);
    }

    emit_str("tokenizer", "english", "\x07The quick brown foxes were running over 42 lazy dogs, "
                                     "didn't they? Relational conditional hopefulness.");
    emit_str("tokenizer", "latin1", "\x07\xc3\x89t\xc3\xa9 \xc3\x9f\xc3\xa6\xc3\xbe na\xc3\xafve "
                                    "CAF\xc3\x89 \xc3\x97 \xc3\xb7");
    emit_str("tokenizer", "cjk", "\x01\xe4\xb8\xad\xe6\x96\x87\xe3\x80\x82\xe6\x97\xa5\xe6\x9c\xac "
                                 "\xef\xbc\x81 \xe2\x80\x94 \xef\xbb\xbf x");
    emit_str("tokenizer", "invalid", "\x07\x80\xc0\xaf abc\xed\xa0\x80 def\xf4\x90\x80\x80 g\xe2\x82");
    emit_str("tokenizer", "long", "\x03supercalifragilisticexpialidocioussupercalifragilisticexpialidocious"
                                  "supercalifragilistic and the it of");
    emit_str("tokenizer", "word", "\x00" "relational");

    static const float v[3][4] = {{1, 2, 3, 4}, {-0.5f, 0, 1e30f, 2}, {0, 0, 0, 1}};
    buf fv = {NULL, 0};
    for (int i = 0; i < 3; i++) {
        uint8_t d[4];
        sop__put32(d, 4);
        add(&fv, d, 4);
        add(&fv, v[i], sizeof v[i]);
    }
    emit("fvecs", "three-by-4", fv.p, fv.n);
    free(fv.p);
    emit("fvecs", "one-by-1", "\x01\x00\x00\x00\x00\x00\x80\x3f", 8);

    emit_str("jsonl", "corpus",
             "{\"id\":\"d1\",\"text\":\"alpha beta gamma\"}\n"
             "\xef\xbb\xbf{\"id\": \"d2\", \"text\": \"beta\", \"fields\": {\"title\": \"Beta\", \"body_2\": \"b\"}}\r\n"
             "   \n"
             "{\"id\":\"d3\",\"fields\":{\"title\":\"only fields\"}}\n"
             "{\"id\":\"\\u00e9\\n\",\"text\":\"x\",\"extra\":[1,2,{}]}");
    emit_str("jsonl", "errors",
             "[1,2]\n{\"id\":5}\n{\"id\":\"x\"}\n{\"id\":\"x\",\"text\":1}\n{\"id\":\"x\",\"fields\":{\"Bad\":\"v\"}}\n"
             "{\"id\":\"x\",\"fields\":{\"a\":\"1\",\"a\":\"2\"}}\n{\"id\":\"x\",\"text\":\"t\"\n");
}

/* Operation programs for fuzz_ops, from a fixed PRNG. */
static void ops_seeds(void)
{
    uint64_t s = 12345;
    for (int i = 0; i < 6; i++) {
        uint8_t p[600];
        size_t n = 200 + (size_t)i * 80;
        for (size_t k = 0; k < n; k++) {
            s = s * 6364136223846793005ull + 1442695040888963407ull;
            p[k] = (uint8_t)(s >> 56);
        }
        p[0] = (uint8_t)i; /* store options */
        char nm[32];
        snprintf(nm, sizeof nm, "prog-%d", i);
        emit("ops", nm, p, n);
    }
    /* fill, commit, scan, reopen, check */
    static const uint8_t fill[] = {1, 0, 1, 10, 0, 2, 200, 0, 3, 250, 0, 4, 5, 8, 10, 0, 0, 9, 0,
                                   12, 3, 1, 0xff, 15, 0, 11, 13, 1, 0, 0x0f, 5, 2, 7, 1, 14};
    emit("ops", "fill-reopen", fill, sizeof fill);
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s CORPUS_DIR   (tests/fuzz/corpus)\n", argv[0]);
        return 2;
    }
    out_root = argv[1];
    mkdir(out_root, 0755);
    engine_seeds();
    text_seeds();
    ops_seeds();
    printf("gen_corpus: %d files in %s\n", nfiles, out_root);
    return 0;
}
