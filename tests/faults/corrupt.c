/*
 * corrupt.c - corruption detection (reliability plan C5).
 *
 * Fixture A: a closed database with five stores at node_bytes 1024 (a
 * three-level tree of 1500 items, int64 keys, duplicate keys, values in
 * blobs, and 1.2 MB of large blobs so that the log has two segments),
 * with dead images (updates and removals) and a last session whose
 * checkpoint wrote only some registry blocks to registry.dw. The test
 * parses the registry and the segments itself (formats in core/src/
 * registry.h and log.h) to know which byte ranges are live image records.
 *
 * Each trial copies the fixture, damages the copy, and a forked child opens
 * it with the real VFS and reads everything: sop_db_check(), a cursor scan
 * of every store compared item by item with the fixture's content, and a
 * sop_get() of every key. Damage kinds and what must happen:
 *   flip-live   one bit inside a live image record (header or payload):
 *               detected (SOP_ECORRUPT from open, check, scan or get, with a
 *               non-empty message);
 *   flip-any    one bit anywhere in a segment: inside a live record as
 *               above; inside a dead record (old image, commit record
 *               before the checkpoint) nothing reads it: the database must
 *               be intact and clean (counted as "dead");
 *   zero-sector a 512-byte sector of a segment zeroed: as flip-any;
 *   truncate    a segment cut strictly inside one of its records: open
 *               succeeds; if a live record lost bytes, detected; otherwise
 *               intact. (The engine's behaviour, asserted: open does not
 *               fail; the cut is found by check/reads.)
 *   reg-flip    one bit in a registry block that is not all zeros: if the
 *               last checkpoint's registry.dw holds that block, open
 *               repairs it (the file must be restored byte for byte and the
 *               database intact: "repaired"); otherwise open must fail with
 *               SOP_ECORRUPT;
 *   ckpt        garbage in one of ckpt.0/ckpt.1 (random bytes, a bit flip,
 *               zeros, or cut short): open falls back to the other one and
 *               the database is intact;
 *   ckpt-both   both damaged: replay from the first segment, intact;
 *   dw          registry.dw damaged (bit flip, garbage, cut short): it is
 *               ignored, the registry is unchanged and the database intact.
 * Fixture B: fixture A plus six synced commits after its last checkpoint
 * (copied while open), whose content signature after each commit is known.
 *   tail-trunc  the last segment cut inside the records after the
 *               checkpoint offset;
 *   tail-flip   one bit flipped in one of those records:
 *               recovery cuts the log at the damage (it cannot tell it from
 *               a torn tail): open succeeds, check is clean and the content
 *               is exactly the state after some prefix of the commits
 *               (never a mix), or SOP_ECORRUPT is reported. The number of
 *               synced commits lost this way is reported (a limitation of
 *               the log format, not counted as bad unless --strict-tail).
 * In every trial: no crash, no sanitizer report, no hang (the child runs
 * under an alarm), no read that returns SOP_OK with wrong data, and no
 * error code other than SOP_ECORRUPT (sop_db_check() must report problems
 * as SOP_ECORRUPT, with at least one problem line).
 *
 * Prints per kind the outcome counts, then
 * "corrupt: <injected> injected, <detected> detected, <crashes> crashes"
 * (injected = all trials, detected = trials in which SOP_ECORRUPT was
 * reported) and exits 1 on any crash, undetected live-data damage, false
 * alarm or wrong result. Options: --scale F (trials x F), --strict-tail,
 * --verbose; SOP_TEST_SEED=<n> replays a run (the seed is printed).
 */
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "sop/sop.h"
#include "testutil.h"

#define CHILD_ALARM_S 60
#define MAX_REPORTS 20
#define SEG_BYTES (1u << 20)
#define TAIL_COMMITS 6

static int g_verbose;
static int g_strict_tail; /* --strict-tail: losing a synced commit silently is bad */
static uint64_t g_reports;

static void fatal(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void fatal(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "corrupt: FATAL: ");
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    exit(2);
}

/* ------------------------------------------------------------------ */
/* Files                                                              */
/* ------------------------------------------------------------------ */

/* Replaces directory @dst by a byte copy of the regular files of @src. */
static void copy_dir(const char *src, const char *dst)
{
    if (tu_copydir(src, dst))
        fatal("cannot copy %s to %s", src, dst);
}

/* Reads a whole file; *len its size. Fatal when missing. */
static uint8_t *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        fatal("cannot open %s: %s", path, strerror(errno));
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *p = malloc((size_t)n + 1);
    if (!p || fread(p, 1, (size_t)n, f) != (size_t)n)
        fatal("cannot read %s", path);
    fclose(f);
    *len = (size_t)n;
    return p;
}

static void spew(const char *path, const void *p, size_t len)
{
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(p, 1, len, f) != len || fclose(f))
        fatal("cannot write %s", path);
}

static uint32_t get32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static uint64_t get64(const uint8_t *p) { return get32(p) | (uint64_t)get32(p + 4) << 32; }

/* ------------------------------------------------------------------ */
/* The on-disk layout as the test sees it                              */
/* ------------------------------------------------------------------ */

#define REC_HDR 24
#define REC_MAGIC 0x52504F53u
#define REG_BLOCK 4096
#define REG_PER_BLOCK 127
#define H_DELETED 0x80000000u
#define DW_HDR 32

typedef struct rec {
    uint32_t seg;
    uint64_t off, len;
    int type, live;
    uint64_t csn;
} rec;

typedef struct layout {
    uint32_t nseg, first;   /* segments first .. first + nseg - 1 */
    uint64_t segsize[64];
    uint64_t recend[64];    /* where the records end (the last segment has zeros after) */
    rec *recs;
    size_t nrecs;
    uint64_t nblocks;
    int blk_used[64]; /* registry block is not all zeros */
    int blk_in_dw[64];
    uint32_t ckpt_seg; /* newest valid checkpoint */
    uint64_t ckpt_off;
    uint64_t live_recs, live_bytes;
} layout;

static void seg_path(const char *dir, uint32_t seg, char *buf, size_t n)
{
    snprintf(buf, n, "%s/seg-%08u", dir, seg);
}

static int is_zero(const uint8_t *p, uint64_t n)
{
    for (uint64_t i = 0; i < n; i++)
        if (p[i])
            return 0;
    return 1;
}

static void parse_layout(const char *dir, layout *L)
{
    memset(L, 0, sizeof *L);
    char path[4096];
    /* segments */
    for (uint32_t s = 1; s < 64; s++) {
        seg_path(dir, s, path, sizeof path);
        struct stat st;
        if (stat(path, &st))
            continue;
        if (!L->first)
            L->first = s;
        L->nseg = s - L->first + 1;
        L->segsize[s] = (uint64_t)st.st_size;
        size_t len;
        uint8_t *p = slurp(path, &len);
        uint64_t off = 0;
        while (off < len) {
            if (is_zero(p + off, len - off < REC_HDR ? len - off : REC_HDR))
                break; /* the preallocated end */
            if (off + REC_HDR > len || get32(p + off) != REC_MAGIC)
                fatal("%s: no record at %" PRIu64, path, off);
            uint64_t rl = REC_HDR + (uint64_t)get32(p + off + 8);
            if (off + rl > len)
                fatal("%s: record at %" PRIu64 " overruns", path, off);
            L->recs = realloc(L->recs, (L->nrecs + 1) * sizeof *L->recs);
            L->recs[L->nrecs++] = (rec){s, off, rl, p[off + 4], 0, get64(p + off + 16)};
            off += rl;
        }
        if (!is_zero(p + off, len - off))
            fatal("%s: %zu bytes, records end at %" PRIu64 ", then not only zeros", path, len, off);
        L->recend[s] = off;
        free(p);
    }
    /* sealed segments end at their records; only the last is preallocated */
    for (uint32_t s = L->first; s + 1 < L->first + L->nseg; s++)
        if (L->segsize[s] && L->recend[s] != L->segsize[s])
            fatal("segment %u: %" PRIu64 " bytes, records end at %" PRIu64, s, L->segsize[s],
                  L->recend[s]);
    /* registry: live handles */
    snprintf(path, sizeof path, "%s/registry", dir);
    size_t rlen;
    uint8_t *r = slurp(path, &rlen);
    L->nblocks = rlen / REG_BLOCK;
    if (L->nblocks > 64)
        fatal("registry too large for the test");
    for (uint64_t b = 0; b < L->nblocks; b++) {
        const uint8_t *blk = r + b * REG_BLOCK;
        for (size_t i = 0; i < REG_BLOCK && !L->blk_used[b]; i++)
            L->blk_used[b] = blk[i] != 0;
        for (int i = 0; i < REG_PER_BLOCK; i++) {
            const uint8_t *h = blk + 16 + i * 32;
            uint32_t seg = get32(h), len = get32(h + 4);
            uint64_t off = get64(h + 8);
            if (!seg || (len & H_DELETED))
                continue;
            size_t j = 0;
            while (j < L->nrecs && !(L->recs[j].seg == seg && L->recs[j].off == off))
                j++;
            if (j == L->nrecs || L->recs[j].len != len || L->recs[j].type != 1)
                fatal("registry handle %" PRIu64 " does not match a record",
                      b * REG_PER_BLOCK + (uint64_t)i);
            L->recs[j].live = 1;
            L->live_recs++;
            L->live_bytes += len;
        }
    }
    free(r);
    /* the double-write file: which blocks it holds */
    snprintf(path, sizeof path, "%s/registry.dw", dir);
    size_t dlen;
    uint8_t *d = slurp(path, &dlen);
    if (dlen >= DW_HDR) {
        uint32_t count = get32(d + 16);
        for (uint32_t i = 0; i < count && DW_HDR + (i + 1) * (size_t)REG_BLOCK <= dlen; i++) {
            uint32_t bno = get32(d + DW_HDR + (size_t)i * REG_BLOCK + 4);
            if (bno < 64)
                L->blk_in_dw[bno] = 1;
        }
    }
    free(d);
    /* newest checkpoint record (no CRC check: the fixture is intact) */
    uint64_t best = 0;
    for (int slot = 0; slot < 2; slot++) {
        snprintf(path, sizeof path, "%s/ckpt.%d", dir, slot);
        size_t clen;
        uint8_t *c = slurp(path, &clen);
        if (clen >= 64 && get64(c + 24) > best) {
            best = get64(c + 24);
            L->ckpt_seg = get32(c + 12);
            L->ckpt_off = get64(c + 16);
        }
        free(c);
    }
}

/* A random segment that exists (compaction may leave gaps). */
static uint32_t pick_seg(const layout *L, uint64_t *rs)
{
    for (;;) {
        uint32_t s = L->first + (uint32_t)tu_rand_below(rs, L->nseg);
        if (L->segsize[s])
            return s;
    }
}

/* Is any byte of [off, off + len) of segment @seg inside a live record? */
static int live_overlap(const layout *L, uint32_t seg, uint64_t off, uint64_t len)
{
    for (size_t i = 0; i < L->nrecs; i++) {
        const rec *r = &L->recs[i];
        if (r->live && r->seg == seg && r->off < off + len && off < r->off + r->len)
            return 1;
    }
    return 0;
}

/* ------------------------------------------------------------------ */
/* Content                                                            */
/* ------------------------------------------------------------------ */

static void mkval(uint8_t *buf, size_t len, uint64_t tag)
{
    uint64_t s = tag * 0x9e3779b97f4a7c15ull + 7;
    for (size_t i = 0; i < len; i += 8) {
        uint64_t x = tu_rand(&s);
        for (size_t j = 0; j < 8 && i + j < len; j++)
            buf[i + j] = (uint8_t)(x >> (8 * j)) | 1; /* never a zero byte */
    }
}

static uint8_t g_vbuf[200000];

static int upsert(sop_store *s, const void *k, size_t kl, size_t vl, uint64_t tag)
{
    mkval(g_vbuf, vl, tag);
    sop_val key = {k, kl}, val = {g_vbuf, vl};
    return sop_upsert(s, &key, &val);
}

static int add(sop_store *s, const void *k, size_t kl, size_t vl, uint64_t tag)
{
    mkval(g_vbuf, vl, tag);
    sop_val key = {k, kl}, val = {g_vbuf, vl};
    return sop_add(s, &key, &val);
}

static int rm(sop_store *s, const void *k, size_t kl)
{
    sop_val key = {k, kl};
    return sop_remove(s, &key);
}

#define NSTORES 5
static const char *const store_name[NSTORES] = {"big", "blobs", "dups", "ints", "kv"};

static void kv_key(char *buf, size_t n, int i) { snprintf(buf, n, "key-%08d-%08x", i, (unsigned)i * 2654435761u); }

static int build_step(sop_db *db, int step)
{
    sop_txn *txn;
    int rc = sop_txn_begin(db, SOP_TXN_WRITE, 0, &txn);
    if (rc)
        return rc;
    sop_store *st[NSTORES] = {0};
    sop_store_options so;
    sop_store_options_init(&so);
    so.node_bytes = 1024;
    for (int i = 0; !rc && i < NSTORES; i++) {
        if (step == 0) {
            sop_store_options o = so;
            if (!strcmp(store_name[i], "ints"))
                o.order = SOP_ORDER_INT64;
            if (!strcmp(store_name[i], "dups"))
                o.unique = 0;
            rc = sop_store_create(txn, store_name[i], &o, &st[i]);
        } else {
            rc = sop_store_open(txn, store_name[i], &st[i]);
        }
    }
    sop_store *big = st[0], *blobs = st[1], *dups = st[2], *ints = st[3], *kv = st[4];
    char key[64];
    switch (step) {
    case 0:
        for (int i = 0; !rc && i < 1500; i++) {
            kv_key(key, sizeof key, i);
            rc = upsert(kv, key, strlen(key), 20 + (size_t)(i * 7 % 41), (uint64_t)i);
        }
        for (int i = 0; !rc && i < 40; i++) {
            snprintf(key, sizeof key, "blob-%03d", i);
            size_t vl = i % 5 == 4 ? 100 : 300 + (size_t)(i * 397 % 4700);
            rc = upsert(blobs, key, strlen(key), vl, 100000u + (uint64_t)i);
        }
        for (int64_t i = 0; !rc && i < 400; i++) {
            int64_t k = i * 1009 - 200000;
            rc = upsert(ints, &k, sizeof k, 16, 200000u + (uint64_t)i);
        }
        for (int i = 0; !rc && i < 150; i++) {
            snprintf(key, sizeof key, "dup-%02d", i % 30);
            rc = add(dups, key, strlen(key), 10, 300000u + (uint64_t)i);
        }
        break;
    case 1:
        for (int i = 0; !rc && i < 12; i++) {
            snprintf(key, sizeof key, "big-%02d", i);
            rc = upsert(big, key, strlen(key), 100000, 400000u + (uint64_t)i);
        }
        break;
    case 2: /* dead images: updates and removals */
        for (int i = 0; !rc && i < 1500; i += 10) {
            kv_key(key, sizeof key, i);
            rc = upsert(kv, key, strlen(key), 33, 500000u + (uint64_t)i);
        }
        for (int i = 5; !rc && i < 1500; i += 30) {
            kv_key(key, sizeof key, i);
            rc = rm(kv, key, strlen(key));
        }
        for (int i = 0; !rc && i < 5; i++) {
            snprintf(key, sizeof key, "blob-%03d", i * 7);
            rc = upsert(blobs, key, strlen(key), 777 + (size_t)i, 600000u + (uint64_t)i);
        }
        for (int i = 0; !rc && i < 3; i++) {
            snprintf(key, sizeof key, "blob-%03d", 2 + i * 11);
            rc = rm(blobs, key, strlen(key));
        }
        if (!rc)
            rc = rm(big, "big-03", 6);
        for (int64_t i = 0; !rc && i < 400; i += 9) {
            int64_t k = i * 1009 - 200000;
            rc = upsert(ints, &k, sizeof k, 16, 700000u + (uint64_t)i);
        }
        break;
    case 3: /* the last session: one small commit (registry.dw of its checkpoint) */
        kv_key(key, sizeof key, 777);
        rc = upsert(kv, key, strlen(key), 44, 800000);
        break;
    default: /* fixture B: commits after the checkpoint */
        for (int i = 0; !rc && i < 8; i++) {
            kv_key(key, sizeof key, step * 100 + i);
            rc = upsert(kv, key, strlen(key), 50, 900000u + (uint64_t)(step * 100 + i));
        }
        snprintf(key, sizeof key, "blob-t%02d", step);
        if (!rc)
            rc = upsert(blobs, key, strlen(key), 2000, 950000u + (uint64_t)step);
        break;
    }
    if (rc) {
        sop_txn_rollback(txn);
        return rc;
    }
    return sop_txn_commit(txn);
}

/* The expected content (taken from the fixture after it passed
 * sop_db_check()). */
typedef struct item {
    uint8_t *k, *v;
    size_t kl, vl;
} item;
typedef struct gstore {
    item *items;
    size_t n;
} gstore;
static gstore g_gold[NSTORES];

static void fnv(uint64_t *h, const void *p, size_t n)
{
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++) {
        *h ^= b[i];
        *h *= 0x100000001b3ull;
    }
}

/* Signature of every store (name, items, count); 0 on success. */
static int db_sig(sop_db *db, uint64_t *out)
{
    uint64_t h = 0xcbf29ce484222325ull;
    int rc = 0;
    for (int i = 0; !rc && i < NSTORES; i++) {
        sop_txn *txn;
        rc = sop_txn_begin(db, SOP_TXN_READ, 0, &txn);
        if (rc)
            break;
        sop_store *s;
        sop_cursor *c = NULL;
        uint64_t count = 0, items = 0;
        rc = sop_store_open(txn, store_name[i], &s);
        if (!rc)
            rc = sop_store_count(s, &count);
        if (!rc)
            rc = sop_cursor_open(s, &c);
        if (!rc)
            rc = sop_cursor_first(c);
        while (!rc) {
            sop_val k, v;
            rc = sop_cursor_get(c, &k, &v);
            if (rc)
                break;
            fnv(&h, &k.size, sizeof k.size);
            fnv(&h, k.data, k.size);
            fnv(&h, &v.size, sizeof v.size);
            fnv(&h, v.data, v.size);
            items++;
            rc = sop_cursor_next(c);
        }
        if (rc == SOP_ENOTFOUND)
            rc = 0;
        if (!rc && count != items)
            rc = SOP_ECORRUPT;
        fnv(&h, &items, sizeof items);
        sop_txn_rollback(txn);
    }
    *out = h;
    return rc;
}

static void load_gold(sop_db *db)
{
    for (int i = 0; i < NSTORES; i++) {
        sop_txn *txn;
        sop_store *s;
        sop_cursor *c;
        if (sop_txn_begin(db, SOP_TXN_READ, 0, &txn) || sop_store_open(txn, store_name[i], &s) ||
            sop_cursor_open(s, &c))
            fatal("gold: open %s", store_name[i]);
        int rc = sop_cursor_first(c);
        while (!rc) {
            sop_val k, v;
            if (sop_cursor_get(c, &k, &v))
                fatal("gold: get");
            gstore *g = &g_gold[i];
            g->items = realloc(g->items, (g->n + 1) * sizeof *g->items);
            item *it = &g->items[g->n++];
            it->kl = k.size;
            it->vl = v.size;
            it->k = malloc(k.size + 1);
            it->v = malloc(v.size + 1);
            memcpy(it->k, k.data, k.size);
            memcpy(it->v, v.data, v.size);
            rc = sop_cursor_next(c);
        }
        if (rc != SOP_ENOTFOUND)
            fatal("gold: scan %s: %s", store_name[i], sop_err_name(rc));
        sop_txn_rollback(txn);
    }
}

/* ------------------------------------------------------------------ */
/* The child: open and read everything                                */
/* ------------------------------------------------------------------ */

typedef struct result {
    int done;
    int open_rc, check_rc;
    uint64_t problems, check_lines, check_empty_lines;
    int corrupt_seen;  /* SOP_ECORRUPT from any call */
    int msg_empty;     /* a SOP_ECORRUPT with an empty sop_db_errmsg() */
    int other_rc;      /* first code that is neither OK, NOTFOUND nor ECORRUPT */
    char other_where[64];
    uint64_t wrong;    /* reads that returned SOP_OK with wrong data (or wrong count) */
    char wrong_where[96];
    int sig_rc;
    uint64_t sig;
    char first_msg[160];
} result;

static void note_rc(result *r, sop_db *db, int rc, const char *where)
{
    if (rc == SOP_OK || rc == SOP_ENOTFOUND)
        return;
    if (rc == SOP_ECORRUPT) {
        if (!r->corrupt_seen)
            snprintf(r->first_msg, sizeof r->first_msg, "%s: %s", where, sop_db_errmsg(db));
        r->corrupt_seen = 1;
        if (!*sop_db_errmsg(db))
            r->msg_empty = 1;
        return;
    }
    if (!r->other_rc) {
        r->other_rc = rc;
        snprintf(r->other_where, sizeof r->other_where, "%s", where);
    }
}

static void note_wrong(result *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void note_wrong(result *r, const char *fmt, ...)
{
    if (!r->wrong) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(r->wrong_where, sizeof r->wrong_where, fmt, ap);
        va_end(ap);
    }
    r->wrong++;
}

static void check_cb(const char *problem, void *ctx)
{
    result *r = ctx;
    r->check_lines++;
    if (!problem || !*problem)
        r->check_empty_lines++;
}

static int item_eq(const item *it, const sop_val *k, const sop_val *v)
{
    return it->kl == k->size && !memcmp(it->k, k->data, k->size) && (!v ||
           (it->vl == v->size && !memcmp(it->v, v->data, v->size)));
}

/* Scans store @i and compares with the expected items. */
static void scan_store(sop_db *db, int i, result *r)
{
    const gstore *g = &g_gold[i];
    sop_txn *txn;
    int rc = sop_txn_begin(db, SOP_TXN_READ, 0, &txn);
    if (rc) {
        note_rc(r, db, rc, "begin");
        return;
    }
    sop_store *s;
    sop_cursor *c = NULL;
    uint64_t count = 0;
    size_t n = 0;
    rc = sop_store_open(txn, store_name[i], &s);
    if (rc) {
        note_rc(r, db, rc == SOP_ENOTFOUND ? SOP_ECORRUPT : rc, "store_open");
        if (rc == SOP_ENOTFOUND)
            note_wrong(r, "store %s not found", store_name[i]);
        goto out;
    }
    rc = sop_store_count(s, &count);
    note_rc(r, db, rc, "count");
    int count_ok = rc == 0;
    rc = sop_cursor_open(s, &c);
    if (!rc)
        rc = sop_cursor_first(c);
    while (!rc) {
        sop_val k, v;
        rc = sop_cursor_get(c, &k, &v);
        if (rc)
            break;
        if (n >= g->n || !item_eq(&g->items[n], &k, &v))
            note_wrong(r, "store %s item %zu differs", store_name[i], n);
        n++;
        rc = sop_cursor_next(c);
    }
    if (rc == SOP_ENOTFOUND) {
        if (n != g->n)
            note_wrong(r, "store %s: %zu items, expected %zu", store_name[i], n, g->n);
        if (count_ok && count != g->n)
            note_wrong(r, "store %s: count %" PRIu64 ", expected %zu", store_name[i], count, g->n);
    } else {
        note_rc(r, db, rc, "scan");
    }
out:
    sop_txn_rollback(txn);
}

/* sop_get() of every key of store @i (the first item of duplicates). */
static void get_store(sop_db *db, int i, result *r)
{
    const gstore *g = &g_gold[i];
    sop_txn *txn = NULL;
    sop_store *s = NULL;
    for (size_t j = 0; j < g->n; j++) {
        if (j && g->items[j].kl == g->items[j - 1].kl &&
            !memcmp(g->items[j].k, g->items[j - 1].k, g->items[j].kl))
            continue; /* a later duplicate */
        if (!txn) {
            int rc = sop_txn_begin(db, SOP_TXN_READ, 0, &txn);
            if (!rc)
                rc = sop_store_open(txn, store_name[i], &s);
            if (rc) {
                note_rc(r, db, rc == SOP_ENOTFOUND ? SOP_ECORRUPT : rc, "get: store_open");
                sop_txn_rollback(txn);
                return;
            }
        }
        sop_val k = {g->items[j].k, g->items[j].kl}, v;
        int rc = sop_get(s, &k, &v);
        if (rc == 0) {
            if (!item_eq(&g->items[j], &k, &v))
                note_wrong(r, "get %s item %zu: wrong value", store_name[i], j);
        } else if (rc == SOP_ENOTFOUND) {
            note_wrong(r, "get %s item %zu: not found", store_name[i], j);
        } else {
            note_rc(r, db, rc, "get");
            sop_txn_rollback(txn); /* the transaction failed: go on in a new one */
            txn = NULL;
        }
    }
    sop_txn_rollback(txn);
}

static void child_run(const char *dir, int sig_only, result *r)
{
    sop_db_options o;
    sop_db_options_init(&o);
    o.segment_bytes = SEG_BYTES;
    sop_db *db;
    int rc = sop_db_open(dir, &o, &db);
    r->open_rc = rc;
    if (rc) {
        note_rc(r, db, rc, "open");
        sop_db_close(db);
        return;
    }
    rc = sop_db_check(db, check_cb, r, &r->problems);
    r->check_rc = rc;
    note_rc(r, db, rc, "check");
    if (rc == SOP_ECORRUPT && (!r->problems || !r->check_lines || r->check_empty_lines))
        r->msg_empty = 1;
    if (sig_only) {
        r->sig_rc = db_sig(db, &r->sig);
        note_rc(r, db, r->sig_rc, "sig");
    } else {
        for (int i = 0; i < NSTORES; i++) {
            scan_store(db, i, r);
            get_store(db, i, r);
        }
    }
    rc = sop_db_close(db);
    note_rc(r, db, rc, "close");
}

/* Runs the reader in a child; returns 0, or 1 when it crashed or hung. */
static int run_child(const char *dir, int sig_only, result *r)
{
    int fd[2];
    if (pipe(fd))
        fatal("pipe");
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0)
        fatal("fork");
    if (pid == 0) {
        close(fd[0]);
        alarm(CHILD_ALARM_S);
        result res;
        memset(&res, 0, sizeof res);
        child_run(dir, sig_only, &res);
        res.done = 1;
        if (write(fd[1], &res, sizeof res) != (ssize_t)sizeof res)
            _exit(5);
        _exit(0);
    }
    close(fd[1]);
    memset(r, 0, sizeof *r);
    size_t got = 0;
    while (got < sizeof *r) {
        ssize_t n = read(fd[0], (char *)r + got, sizeof *r - got);
        if (n <= 0)
            break;
        got += (size_t)n;
    }
    close(fd[0]);
    int st;
    if (waitpid(pid, &st, 0) != pid)
        fatal("waitpid");
    if (got != sizeof *r || !r->done || !WIFEXITED(st) || WEXITSTATUS(st) != 0) {
        if (WIFSIGNALED(st))
            fprintf(stderr, "corrupt: child killed by signal %d%s\n", WTERMSIG(st),
                    WTERMSIG(st) == SIGALRM ? " (hang)" : "");
        else
            fprintf(stderr, "corrupt: child exited with status %d\n",
                    WIFEXITED(st) ? WEXITSTATUS(st) : -1);
        return 1;
    }
    return 0;
}

/* ------------------------------------------------------------------ */
/* Damage                                                             */
/* ------------------------------------------------------------------ */

enum {
    K_FLIP_LIVE, K_FLIP_ANY, K_ZERO, K_TRUNC, K_REG, K_REGTRUNC, K_CKPT, K_CKPT2, K_DW, K_TTRUNC,
    K_TFLIP, NK
};
static const char *const kind_name[NK] = {"flip-live", "flip-any",  "zero-sector", "truncate",
                                           "reg-flip",  "reg-trunc", "ckpt",        "ckpt-both",
                                           "dw",        "tail-trunc", "tail-flip"};
static const int kind_trials[NK] = {200, 160, 80, 60, 60, 20, 40, 8, 30, 30, 50};

/* What must happen: detection; intact (and no alarm); repaired from
 * registry.dw; a prefix of the commits; intact or detected. */
enum { E_DETECT, E_INTACT, E_REPAIR, E_PREFIX, E_ANY };

typedef struct stats {
    uint64_t trials, must, detected_must, detected, repaired, intact, dead, prefix, lost_commits,
        crashes, bad;
} stats;
static stats g_st[NK];

typedef struct damage {
    int expect;
    int reg_block; /* K_REG: the block flipped (for the restore check) */
    char what[160];
} damage;

static void flip_file_bit(const char *path, uint64_t off, int bit)
{
    FILE *f = fopen(path, "r+b");
    if (!f)
        fatal("open %s", path);
    if (fseek(f, (long)off, SEEK_SET))
        fatal("seek");
    int c = fgetc(f);
    if (c == EOF)
        fatal("flip past the end of %s", path);
    fseek(f, (long)off, SEEK_SET);
    fputc(c ^ (1 << bit), f);
    if (fclose(f))
        fatal("close %s", path);
}

static void truncate_file(const char *path, uint64_t size)
{
    if (truncate(path, (off_t)size))
        fatal("truncate %s: %s", path, strerror(errno));
}

/* Damages the copy in @dir; fills @d. */
static void apply_damage(int kind, const layout *L, const char *dir, uint64_t *rs, damage *d)
{
    char path[4096];
    memset(d, 0, sizeof *d);
    switch (kind) {
    case K_FLIP_LIVE: {
        size_t nlive = (size_t)L->live_recs, pick = (size_t)tu_rand_below(rs, nlive), j = 0;
        const rec *r = NULL;
        for (size_t i = 0; i < L->nrecs; i++)
            if (L->recs[i].live && j++ == pick) {
                r = &L->recs[i];
                break;
            }
        /* a third of the flips hit the record and image headers */
        uint64_t span = tu_rand_below(rs, 3) == 0 ? (r->len < 64 ? r->len : 64) : r->len;
        uint64_t off = r->off + tu_rand_below(rs, span);
        int bit = (int)tu_rand_below(rs, 8);
        seg_path(dir, r->seg, path, sizeof path);
        flip_file_bit(path, off, bit);
        d->expect = E_DETECT;
        snprintf(d->what, sizeof d->what, "seg %u byte %" PRIu64 " bit %d (live record at %" PRIu64
                 ", %" PRIu64 " bytes)", r->seg, off, bit, r->off, r->len);
        return;
    }
    case K_FLIP_ANY: {
        uint64_t total = 0;
        for (uint32_t s = L->first; s < L->first + L->nseg; s++)
            total += L->segsize[s];
        uint64_t pos = tu_rand_below(rs, total);
        uint32_t s = L->first;
        while (pos >= L->segsize[s])
            pos -= L->segsize[s++];
        int bit = (int)tu_rand_below(rs, 8);
        seg_path(dir, s, path, sizeof path);
        flip_file_bit(path, pos, bit);
        d->expect = live_overlap(L, s, pos, 1) ? E_DETECT : E_INTACT;
        snprintf(d->what, sizeof d->what, "seg %u byte %" PRIu64 " bit %d (%s)", s, pos, bit,
                 d->expect == E_DETECT ? "live" : "dead");
        return;
    }
    case K_ZERO: {
        for (;;) {
            uint32_t s = pick_seg(L, rs);
            uint64_t nsec = (L->segsize[s] + 511) / 512;
            uint64_t off = tu_rand_below(rs, nsec) * 512;
            uint64_t len = L->segsize[s] - off < 512 ? L->segsize[s] - off : 512;
            seg_path(dir, s, path, sizeof path);
            size_t flen;
            uint8_t *p = slurp(path, &flen);
            int changed = 0, live = 0;
            for (uint64_t i = off; i < off + len; i++)
                if (p[i]) {
                    changed = 1;
                    live |= live_overlap(L, s, i, 1);
                }
            if (!changed) {
                free(p);
                continue;
            }
            memset(p + off, 0, len);
            spew(path, p, flen);
            free(p);
            d->expect = live ? E_DETECT : E_INTACT;
            snprintf(d->what, sizeof d->what, "seg %u sector at %" PRIu64 " zeroed (%s)", s, off,
                     live ? "live" : "dead");
            return;
        }
    }
    case K_TRUNC: {
        uint32_t s = pick_seg(L, rs);
        size_t n = 0;
        for (size_t i = 0; i < L->nrecs; i++)
            n += L->recs[i].seg == s;
        size_t pick = (size_t)tu_rand_below(rs, n), j = 0;
        const rec *r = NULL;
        for (size_t i = 0; i < L->nrecs; i++)
            if (L->recs[i].seg == s && j++ == pick) {
                r = &L->recs[i];
                break;
            }
        uint64_t cut = r->off + 1 + tu_rand_below(rs, r->len - 1);
        seg_path(dir, s, path, sizeof path);
        truncate_file(path, cut);
        int live = live_overlap(L, s, cut, UINT64_MAX / 2);
        /* only dead records cut: nothing reads them; reporting the short
         * segment would be fine too */
        d->expect = live ? E_DETECT : E_ANY;
        snprintf(d->what, sizeof d->what, "seg %u (%s) cut at %" PRIu64 " of %" PRIu64 " (%s)", s,
                 s == L->first + L->nseg - 1 ? "last" : "not last", cut, L->segsize[s],
                 live ? "live bytes cut" : "dead bytes only");
        return;
    }
    case K_REG: {
        int used[64], nu = 0;
        for (uint64_t b = 0; b < L->nblocks; b++)
            if (L->blk_used[b])
                used[nu++] = (int)b;
        int b = used[tu_rand_below(rs, (uint64_t)nu)];
        uint64_t off = (uint64_t)b * REG_BLOCK + tu_rand_below(rs, REG_BLOCK);
        int bit = (int)tu_rand_below(rs, 8);
        snprintf(path, sizeof path, "%s/registry", dir);
        flip_file_bit(path, off, bit);
        d->expect = L->blk_in_dw[b] ? E_REPAIR : E_DETECT;
        d->reg_block = b;
        snprintf(d->what, sizeof d->what, "registry block %d byte %" PRIu64 " bit %d (%s)", b,
                 off % REG_BLOCK, bit, L->blk_in_dw[b] ? "in registry.dw" : "not in registry.dw");
        return;
    }
    case K_REGTRUNC: {
        /* cut inside the used blocks: every handle of the lost part is
         * gone; repaired when registry.dw holds every lost block */
        uint64_t size = L->nblocks * REG_BLOCK;
        uint64_t cut = tu_rand_below(rs, size);
        snprintf(path, sizeof path, "%s/registry", dir);
        truncate_file(path, cut);
        int all_dw = 1;
        for (uint64_t b = cut / REG_BLOCK; b < L->nblocks; b++)
            if (L->blk_used[b] && !L->blk_in_dw[b])
                all_dw = 0;
        d->expect = all_dw ? E_REPAIR : E_DETECT;
        snprintf(d->what, sizeof d->what, "registry cut at %" PRIu64 " of %" PRIu64 " (%s)", cut,
                 size, all_dw ? "lost blocks all in registry.dw" : "lost blocks not in registry.dw");
        return;
    }
    case K_CKPT:
    case K_CKPT2:
    case K_DW: {
        int nfiles = kind == K_CKPT2 ? 2 : 1;
        int slot = (int)tu_rand_below(rs, 2);
        size_t dl = 0;
        for (int k = 0; k < nfiles; k++, slot ^= 1) {
            if (kind == K_DW)
                snprintf(path, sizeof path, "%s/registry.dw", dir);
            else
                snprintf(path, sizeof path, "%s/ckpt.%d", dir, slot);
            size_t len;
            uint8_t *p = slurp(path, &len);
            int mode = (int)tu_rand_below(rs, 4);
            const char *mname = "";
            if (!len)
                fatal("%s is empty", path);
            if (mode == 0) { /* random garbage over a random range */
                uint64_t a = tu_rand_below(rs, len), b = a + 1 + tu_rand_below(rs, len - a);
                for (uint64_t i = a; i < b; i++)
                    p[i] = (uint8_t)tu_rand(rs);
                mname = "garbage";
            } else if (mode == 1) {
                p[tu_rand_below(rs, len)] ^= (uint8_t)(1u << tu_rand_below(rs, 8));
                mname = "bit flip";
            } else if (mode == 2) {
                memset(p, 0, len);
                mname = "zeroed";
            } else {
                len = tu_rand_below(rs, len);
                mname = "cut short";
            }
            spew(path, p, len);
            free(p);
            dl += (size_t)snprintf(d->what + dl, sizeof d->what - dl, "%s%s: %s",
                                   k ? ", " : "", kind == K_DW ? "registry.dw" : (slot ? "ckpt.1" : "ckpt.0"),
                                   mname);
        }
        d->expect = E_INTACT;
        return;
    }
    case K_TTRUNC:
    case K_TFLIP: {
        uint32_t s = L->first + L->nseg - 1;
        if (L->ckpt_seg != s || L->ckpt_off >= L->recend[s])
            fatal("fixture B has no tail after its checkpoint");
        /* inside the records (not in the preallocated zeros after them) */
        uint64_t off = L->ckpt_off + tu_rand_below(rs, L->recend[s] - L->ckpt_off);
        seg_path(dir, s, path, sizeof path);
        if (kind == K_TTRUNC) {
            truncate_file(path, off);
            snprintf(d->what, sizeof d->what, "last seg cut at %" PRIu64 " (checkpoint at %" PRIu64
                     ", records end at %" PRIu64 ")", off, L->ckpt_off, L->recend[s]);
        } else {
            int bit = (int)tu_rand_below(rs, 8);
            flip_file_bit(path, off, bit);
            snprintf(d->what, sizeof d->what, "last seg byte %" PRIu64 " bit %d (checkpoint at %"
                     PRIu64 ")", off, bit, L->ckpt_off);
        }
        d->expect = E_PREFIX;
        return;
    }
    }
}

/* ------------------------------------------------------------------ */
/* Trials                                                             */
/* ------------------------------------------------------------------ */

static const char *g_fixA, *g_fixB, *g_trial;
static layout g_LA, g_LB;
static uint64_t g_prefix_sig[TAIL_COMMITS + 1];
static uint8_t *g_registry;
static size_t g_registry_len;

/* Failed trials by (kind, reason, other code), with the first example. */
typedef struct tally {
    int kind, other_rc;
    const char *why;
    uint64_t n;
    char example[1024];
} tally;
#define MAX_TALLY 64
static tally g_tally[MAX_TALLY];
static int g_ntally;

static void report(int kind, const damage *d, const result *r, const char *why)
{
    char msg[1024];
    snprintf(msg, sizeof msg,
             "[%s: %s]: %s%s%s (open %s, check %s with %" PRIu64 " problems, ECORRUPT %s%s%s%s%s)",
             kind_name[kind], d->what, why, r->wrong ? ": " : "", r->wrong ? r->wrong_where : "",
             sop_err_name(r->open_rc), sop_err_name(r->check_rc), r->problems,
             r->corrupt_seen ? "seen" : "not seen", r->other_rc ? ", other " : "",
             r->other_rc ? sop_err_name(r->other_rc) : "", r->other_rc ? " at " : "",
             r->other_rc ? r->other_where : "");
    if (++g_reports <= MAX_REPORTS)
        fprintf(stderr, "corrupt: BAD %s\n", msg);
    int i = 0;
    while (i < g_ntally && !(g_tally[i].kind == kind && g_tally[i].why == why &&
                             g_tally[i].other_rc == r->other_rc))
        i++;
    if (i == g_ntally && g_ntally < MAX_TALLY) {
        g_tally[i] = (tally){kind, r->other_rc, why, 0, ""};
        snprintf(g_tally[i].example, sizeof g_tally[i].example, "%s", msg);
        g_ntally++;
    }
    if (i < g_ntally)
        g_tally[i].n++;
}

static const char *const WHY_WRONG = "a read returned SOP_OK with wrong data";
static const char *const WHY_OTHER = "a call returned a code other than SOP_ECORRUPT";
static const char *const WHY_MSG = "SOP_ECORRUPT without a message (or check without problem lines)";
static const char *const WHY_UNDETECTED = "live-data damage not detected";
static const char *const WHY_ALARM = "false alarm: the damage is harmless by design";
static const char *const WHY_NOREPAIR = "registry not restored from registry.dw";
static const char *const WHY_PREFIX_ERR = "recovery of the tail failed with a code other than SOP_ECORRUPT";
static const char *const WHY_MIX = "content is not the state after any prefix of the commits";
static const char *const WHY_LOST = "synced commits lost without an error (--strict-tail)";

static void trial(int kind, uint64_t *rs)
{
    stats *st = &g_st[kind];
    int tail = kind == K_TTRUNC || kind == K_TFLIP;
    copy_dir(tail ? g_fixB : g_fixA, g_trial);
    damage d;
    apply_damage(kind, tail ? &g_LB : &g_LA, g_trial, rs, &d);
    result r;
    st->trials++;
    if (run_child(g_trial, tail, &r)) {
        st->crashes++;
        st->bad++;
        fprintf(stderr, "corrupt: CRASH [%s: %s]\n", kind_name[kind], d.what);
        return;
    }
    if (r.corrupt_seen)
        st->detected++;
    if (d.expect == E_DETECT) {
        st->must++;
        st->detected_must += (uint64_t)r.corrupt_seen;
    }
    const char *why = NULL;
    if (r.wrong)
        why = WHY_WRONG;
    else if (r.other_rc)
        why = WHY_OTHER;
    else if (r.msg_empty)
        why = WHY_MSG;
    else
        switch (d.expect) {
        case E_DETECT:
            if (!r.corrupt_seen)
                why = WHY_UNDETECTED;
            break;
        case E_ANY:
            if (r.corrupt_seen)
                break;
            /* fall through */
        case E_INTACT:
        case E_REPAIR:
            if (r.corrupt_seen || r.open_rc || r.check_rc)
                why = WHY_ALARM;
            else if (d.expect == E_REPAIR) {
                char path[4096];
                snprintf(path, sizeof path, "%s/registry", g_trial);
                size_t len;
                uint8_t *p = slurp(path, &len);
                if (len != g_registry_len || memcmp(p, g_registry, len))
                    why = WHY_NOREPAIR;
                else
                    st->repaired++;
                free(p);
            } else if (kind == K_FLIP_ANY || kind == K_ZERO || kind == K_TRUNC) {
                st->dead++;
            } else {
                st->intact++;
            }
            break;
        case E_PREFIX:
            if (r.corrupt_seen)
                break; /* reported: fine */
            if (r.open_rc || r.check_rc || r.sig_rc) {
                why = WHY_PREFIX_ERR;
                break;
            }
            why = WHY_MIX;
            for (int k = TAIL_COMMITS; k >= 0; k--)
                if (r.sig == g_prefix_sig[k]) {
                    why = g_strict_tail && k < TAIL_COMMITS ? WHY_LOST : NULL;
                    st->prefix++;
                    st->lost_commits += (uint64_t)(TAIL_COMMITS - k);
                    if (g_verbose)
                        fprintf(stderr, "corrupt: [%s: %s]: %d of %d synced commits kept\n",
                                kind_name[kind], d.what, k, TAIL_COMMITS);
                    break;
                }
            break;
        }
    if (why) {
        st->bad++;
        report(kind, &d, &r, why);
    } else if (g_verbose) {
        fprintf(stderr, "corrupt: ok [%s: %s]: open %s, check %s, %s\n", kind_name[kind], d.what,
                sop_err_name(r.open_rc), sop_err_name(r.check_rc),
                r.corrupt_seen ? r.first_msg : "no error");
    }
}

/* ------------------------------------------------------------------ */
/* Fixtures                                                           */
/* ------------------------------------------------------------------ */

static sop_db *open_real(const char *dir)
{
    sop_db_options o;
    sop_db_options_init(&o);
    o.segment_bytes = SEG_BYTES;
    sop_db *db;
    int rc = sop_db_open(dir, &o, &db);
    if (rc)
        fatal("open %s: %s (%s)", dir, sop_err_name(rc), sop_db_errmsg(db));
    return db;
}

static void build_fixtures(void)
{
    sop_db *db = open_real(g_fixA);
    for (int step = 0; step < 3; step++) {
        int rc = build_step(db, step);
        if (rc)
            fatal("fixture step %d: %s (%s)", step, sop_err_name(rc), sop_db_errmsg(db));
    }
    if (sop_db_close(db))
        fatal("close");
    db = open_real(g_fixA);
    int rc = build_step(db, 3);
    if (rc)
        fatal("fixture step 3: %s", sop_err_name(rc));
    if (sop_db_close(db))
        fatal("close");

    /* the fixture is clean; its content becomes the expectation */
    db = open_real(g_fixA);
    uint64_t problems;
    rc = sop_db_check(db, NULL, NULL, &problems);
    if (rc)
        fatal("fixture check: %s, %" PRIu64 " problems", sop_err_name(rc), problems);
    load_gold(db);
    if (db_sig(db, &g_prefix_sig[0]))
        fatal("sig");
    if (sop_db_close(db))
        fatal("close");
    /* opening a clean database must not change it: rebuild A from scratch
     * is not needed, but the layout is parsed after that open */
    parse_layout(g_fixA, &g_LA);
    char path[4096];
    snprintf(path, sizeof path, "%s/registry", g_fixA);
    g_registry = slurp(path, &g_registry_len);

    /* fixture B: synced commits after the checkpoint, copied while open */
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s", tu_tmpdir("fixB-src"));
    copy_dir(g_fixA, tmp);
    db = open_real(tmp);
    for (int k = 1; k <= TAIL_COMMITS; k++) {
        rc = build_step(db, 10 + k);
        if (!rc)
            rc = db_sig(db, &g_prefix_sig[k]);
        if (rc)
            fatal("fixture B commit %d: %s", k, sop_err_name(rc));
    }
    copy_dir(tmp, g_fixB);
    sop_db_close(db);
    parse_layout(g_fixB, &g_LB);

    uint64_t nb = 0, ndw = 0;
    for (uint64_t b = 0; b < g_LA.nblocks; b++) {
        nb += (uint64_t)g_LA.blk_used[b];
        ndw += (uint64_t)g_LA.blk_in_dw[b];
    }
    uint64_t depth_items = g_gold[4].n;
    printf("corrupt: fixture: %u segments, %zu records (%" PRIu64 " live, %" PRIu64
           " live bytes), %" PRIu64 " registry blocks (%" PRIu64 " in registry.dw), kv %" PRIu64
           " items\n",
           g_LA.nseg, g_LA.nrecs, g_LA.live_recs, g_LA.live_bytes, nb, ndw, depth_items);
    if (g_LA.nseg < 2 || nb < 2 || ndw < 1 || ndw >= nb || g_LA.live_recs == g_LA.nrecs)
        fatal("the fixture is not as designed (segments, registry blocks, dead records)");

    /* sanity: the untouched copies read back intact */
    result r;
    copy_dir(g_fixA, g_trial);
    if (run_child(g_trial, 0, &r) || r.corrupt_seen || r.other_rc || r.wrong || r.open_rc ||
        r.check_rc)
        fatal("the undamaged fixture A does not read back intact");
    copy_dir(g_fixB, g_trial);
    if (run_child(g_trial, 1, &r) || r.open_rc || r.check_rc || r.sig_rc ||
        r.sig != g_prefix_sig[TAIL_COMMITS])
        fatal("the undamaged fixture B does not recover all its commits");
}

int main(int argc, char **argv)
{
    double scale = 1.0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--scale") && i + 1 < argc)
            scale = atof(argv[++i]);
        else if (!strcmp(argv[i], "--verbose"))
            g_verbose = 1;
        else if (!strcmp(argv[i], "--strict-tail"))
            g_strict_tail = 1;
        else {
            fprintf(stderr, "usage: corrupt [--scale F] [--strict-tail] [--verbose]\n");
            return 2;
        }
    }
    signal(SIGPIPE, SIG_IGN);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    unsigned seed = tu_seed();
    g_fixA = tu_tmpdir("fixA");
    g_fixB = tu_tmpdir("fixB");
    g_trial = tu_tmpdir("trial");
    build_fixtures();

    uint64_t rs = seed;
    for (int k = 0; k < NK; k++) {
        int n = (int)(kind_trials[k] * scale + 0.5);
        if (n < 1)
            n = 1;
        for (int i = 0; i < n; i++)
            trial(k, &rs);
    }

    uint64_t injected = 0, detected = 0, crashes = 0, bad = 0, must = 0, must_det = 0;
    for (int k = 0; k < NK; k++) {
        const stats *s = &g_st[k];
        printf("corrupt: %-11s %4" PRIu64 " trials: %4" PRIu64 " detected", kind_name[k], s->trials,
               s->detected);
        if (s->must)
            printf(" (live damage %" PRIu64 "/%" PRIu64 ")", s->detected_must, s->must);
        if (s->dead)
            printf(", %" PRIu64 " dead-only undetected (ok)", s->dead);
        if (s->repaired)
            printf(", %" PRIu64 " repaired from registry.dw", s->repaired);
        if (s->intact)
            printf(", %" PRIu64 " intact", s->intact);
        if (s->prefix)
            printf(", %" PRIu64 " recovered a prefix (%" PRIu64 " synced commits lost in all)",
                   s->prefix, s->lost_commits);
        printf(", %" PRIu64 " crashes, %" PRIu64 " bad\n", s->crashes, s->bad);
        injected += s->trials;
        detected += s->detected;
        crashes += s->crashes;
        bad += s->bad;
        must += s->must;
        must_det += s->detected_must;
    }
    for (int i = 0; i < g_ntally; i++)
        printf("corrupt: failed %4" PRIu64 "x, e.g. %s\n", g_tally[i].n, g_tally[i].example);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double secs = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    printf("corrupt: live-data damage detected %" PRIu64 "/%" PRIu64 ", %" PRIu64
           " bad (seed %u, %.1f s)\n",
           must_det, must, bad, seed, secs);
    printf("corrupt: %" PRIu64 " injected, %" PRIu64 " detected, %" PRIu64 " crashes\n", injected,
           detected, crashes);
    return (bad || crashes) ? 1 : 0;
}
