/* test_ec.c - erasure coding: the Reed-Solomon codec (every erasure
 * pattern up to m, detection of more) and the EC VFS layer (stripes,
 * reads from data shards, reconstruction of missing and bit-flipped
 * shards, append-only writes, truncation, listing, identity files,
 * shard files that appear after the file was opened). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ec_codec.h"
#include "ec_vfs.h"
#include "sop/sop.h"
#include "testutil.h"
#include "vfs_stack.h"

/* ------------------------------------------------------------------ */
/* Codec                                                               */
/* ------------------------------------------------------------------ */

/* Erases every subset of up to m shards (bitmask enumeration) and checks
 * that reconstruction gives back every shard, data and parity. */
static void codec_all_patterns(int k, int m, size_t len)
{
    sop__ec_codec c;
    assert_int_equal(sop__ec_codec_init(&c, k, m), 0);
    int n = k + m;
    uint8_t *orig[32], *work[32];
    uint64_t rs = tu_seed() + (uint64_t)k * 131 + (uint64_t)m;
    for (int i = 0; i < n; i++) {
        orig[i] = malloc(len);
        work[i] = malloc(len);
        for (size_t j = 0; j < len && i < k; j++)
            orig[i][j] = (uint8_t)tu_rand(&rs);
    }
    sop__ec_encode(&c, len, orig, orig + k);
    uint8_t ok[32];
    unsigned tried = 0;
    for (uint32_t mask = 1; mask < (1u << n); mask++) {
        int lost = __builtin_popcount(mask);
        for (int i = 0; i < n; i++) {
            memcpy(work[i], orig[i], len);
            ok[i] = !(mask & (1u << i));
            if (!ok[i])
                memset(work[i], 0xA5, len); /* garbage where the shard was */
        }
        int rc = sop__ec_reconstruct(&c, len, work, ok);
        if (lost > m) {
            assert_int_equal(rc, -EIO);
            for (int i = 0; i < n; i++) /* nothing changed */
                if (ok[i])
                    assert_memory_equal(work[i], orig[i], len);
            continue;
        }
        assert_int_equal(rc, 0);
        for (int i = 0; i < n; i++)
            assert_memory_equal(work[i], orig[i], len);
        tried++;
    }
    assert_true(tried > 0);
    for (int i = 0; i < n; i++) {
        free(orig[i]);
        free(work[i]);
    }
    sop__ec_codec_free(&c);
}

static void test_codec_patterns(void **st)
{
    (void)st;
    codec_all_patterns(1, 1, 100);
    codec_all_patterns(2, 1, 777);
    codec_all_patterns(4, 2, 1000);
    codec_all_patterns(3, 3, 513);
    codec_all_patterns(6, 3, 4096);
    codec_all_patterns(10, 4, 64);
}

static void test_codec_bad_geometry(void **st)
{
    (void)st;
    sop__ec_codec c;
    assert_int_equal(sop__ec_codec_init(&c, 0, 1), -EINVAL);
    assert_int_equal(sop__ec_codec_init(&c, 4, 0), -EINVAL);
    assert_int_equal(sop__ec_codec_init(&c, 200, 56), -EINVAL);
    assert_int_equal(sop__ec_codec_init(&c, 200, 55), 0);
    sop__ec_codec_free(&c);
}

/* ------------------------------------------------------------------ */
/* VFS layer                                                           */
/* ------------------------------------------------------------------ */

typedef struct ecfix {
    char db[512];
    char drv[8][512];
    const char *drives[8];
    uint32_t n, m;
    sop_vfs *v;
} ecfix;

static void fix_open(ecfix *x, const char *name, uint32_t n, uint32_t m)
{
    memset(x, 0, sizeof *x);
    const char *root = tu_tmpdir(name);
    snprintf(x->db, sizeof x->db, "%s/db", root);
    assert_int_equal(mkdir(x->db, 0700), 0);
    for (uint32_t d = 0; d < n; d++) {
        snprintf(x->drv[d], sizeof x->drv[d], "%s/drive%u", root, d);
        x->drives[d] = x->drv[d];
    }
    x->n = n;
    x->m = m;
    assert_int_equal(sop__vfs_ec_new(sop_vfs_posix(), x->db, x->drives, n, m, 0600, NULL, &x->v),
                     0);
}

static void fix_reopen(ecfix *x)
{
    sop__vfs_ec_free(x->v);
    assert_int_equal(
        sop__vfs_ec_new(sop_vfs_posix(), x->db, x->drives, x->n, x->m, 0600, NULL, &x->v), 0);
}

static void fill(uint8_t *p, size_t n, uint64_t seed)
{
    for (size_t i = 0; i < n; i++) {
        seed = seed * 6364136223846793005ull + 1442695040888963407ull;
        p[i] = (uint8_t)(seed >> 56);
    }
}

static sop_file *seg_open(ecfix *x, int create)
{
    char p[600];
    snprintf(p, sizeof p, "%s/seg-00000001", x->db);
    sop_file *f = NULL;
    assert_int_equal(x->v->open(x->v, p, SOP_O_RDWR | (create ? SOP_O_CREATE : 0), 0600, &f), 0);
    return f;
}

static void check_content(ecfix *x, sop_file *f, const uint8_t *want, size_t n)
{
    uint64_t size = 0;
    assert_int_equal(x->v->size(x->v, f, &size), 0);
    assert_int_equal(size, n);
    uint8_t *got = malloc(n + 10);
    size_t g = 0;
    assert_int_equal(x->v->read(x->v, f, got, n + 10, 0, &g), 0);
    assert_int_equal(g, n);
    assert_memory_equal(got, want, n);
    /* odd ranges: across stripes and shards */
    uint64_t rs = 7;
    for (int i = 0; i < 50; i++) {
        size_t off = tu_rand_below(&rs, n), len = 1 + tu_rand_below(&rs, 9000);
        if (off + len > n)
            len = n - off;
        assert_int_equal(x->v->read(x->v, f, got, len, off, &g), 0);
        assert_int_equal(g, len);
        assert_memory_equal(got, want + off, len);
    }
    free(got);
}

/* Appends of many sizes; reads of any range; the layout on disk. */
static void test_vfs_roundtrip(void **st)
{
    (void)st;
    ecfix x;
    fix_open(&x, "roundtrip", 6, 2);
    assert_int_equal(x.v->version, 3);
    assert_true(x.v->flags & SOP_VFS_APPEND_ONLY);
    assert_null(x.v->map);
    sop_file *f = seg_open(&x, 1);
    static const size_t sizes[] = {1, 3, 100, 4096, 65536, 65537, 300000, 17, 200000};
    size_t total = 0;
    for (size_t i = 0; i < sizeof sizes / sizeof *sizes; i++)
        total += sizes[i];
    uint8_t *want = malloc(total);
    fill(want, total, 42);
    size_t off = 0;
    for (size_t i = 0; i < sizeof sizes / sizeof *sizes; i++) {
        assert_int_equal(x.v->write(x.v, f, want + off, sizes[i], off), 0);
        off += sizes[i];
        /* only appends at the end */
        assert_int_equal(x.v->write(x.v, f, want, 1, 0), -EINVAL);
        assert_int_equal(x.v->write(x.v, f, want, 1, off + 1), -EINVAL);
    }
    assert_int_equal(x.v->sync(x.v, f), 0);
    check_content(&x, f, want, total);
    assert_int_equal(x.v->close(x.v, f), 0);
    /* a shard file on every drive, none in the database directory */
    char p[700];
    struct stat sb;
    for (uint32_t d = 0; d < x.n; d++) {
        snprintf(p, sizeof p, "%s/seg-00000001", x.drv[d]);
        assert_int_equal(stat(p, &sb), 0);
        snprintf(p, sizeof p, "%s/sop-ec.id", x.drv[d]);
        assert_int_equal(stat(p, &sb), 0);
    }
    snprintf(p, sizeof p, "%s/seg-00000001", x.db);
    assert_int_not_equal(stat(p, &sb), 0);
    /* a fresh layer (another process) finds every stripe */
    fix_reopen(&x);
    f = seg_open(&x, 0);
    check_content(&x, f, want, total);
    x.v->close(x.v, f);
    free(want);
    sop__vfs_ec_free(x.v);
}

static int count_name(const char *name, void *arg)
{
    if (strcmp(name, "seg-00000001") == 0)
        (*(int *)arg)++;
    else if (strcmp(name, "other") == 0)
        (*(int *)arg) += 100;
    return 0;
}

/* list() shows each segment once plus the base files; remove() takes every
 * shard; other files stay in the database directory. */
static void test_vfs_list_remove(void **st)
{
    (void)st;
    ecfix x;
    fix_open(&x, "list", 3, 1);
    sop_file *f = seg_open(&x, 1);
    uint8_t b[1000];
    fill(b, sizeof b, 1);
    assert_int_equal(x.v->write(x.v, f, b, sizeof b, 0), 0);
    x.v->close(x.v, f);
    char p[600];
    snprintf(p, sizeof p, "%s/other", x.db);
    assert_int_equal(x.v->open(x.v, p, SOP_O_RDWR | SOP_O_CREATE, 0600, &f), 0);
    assert_int_equal(x.v->write(x.v, f, b, 10, 500), 0); /* any offset: not a segment */
    x.v->close(x.v, f);
    struct stat sb;
    assert_int_equal(stat(p, &sb), 0);
    int cnt = 0;
    assert_int_equal(x.v->list(x.v, x.db, count_name, &cnt), 0);
    assert_int_equal(cnt, 101);
    snprintf(p, sizeof p, "%s/seg-00000001", x.db);
    assert_int_equal(x.v->remove(x.v, p), 0);
    for (uint32_t d = 0; d < x.n; d++) {
        snprintf(p, sizeof p, "%s/seg-00000001", x.drv[d]);
        assert_int_not_equal(stat(p, &sb), 0);
    }
    snprintf(p, sizeof p, "%s/seg-00000001", x.db);
    assert_int_equal(x.v->remove(x.v, p), -ENOENT);
    sop__vfs_ec_free(x.v);
}

static void flip_bit(const char *path, uint64_t off, int bit)
{
    FILE *fp = fopen(path, "r+b");
    assert_non_null(fp);
    assert_int_equal(fseek(fp, (long)off, SEEK_SET), 0);
    int c = fgetc(fp);
    assert_true(c != EOF);
    assert_int_equal(fseek(fp, (long)off, SEEK_SET), 0);
    fputc(c ^ (1 << bit), fp);
    fclose(fp);
}

static uint64_t file_size(const char *path)
{
    struct stat sb;
    return stat(path, &sb) == 0 ? (uint64_t)sb.st_size : 0;
}

/* Single-bit flips anywhere in a shard file (header or data, of any
 * drive, data or parity) are detected and corrected on read; m flipped
 * shards of a stripe are still corrected; m + 1 give -EIO, not bad data. */
static void test_vfs_bitflips(void **st)
{
    (void)st;
    ecfix x;
    fix_open(&x, "bitflip", 6, 2);
    size_t total = 150000;
    uint8_t *want = malloc(total);
    fill(want, total, 9);
    sop_file *f = seg_open(&x, 1);
    assert_int_equal(x.v->write(x.v, f, want, total, 0), 0);
    x.v->close(x.v, f);
    char p[8][700];
    for (uint32_t d = 0; d < x.n; d++)
        snprintf(p[d], sizeof p[d], "%s/seg-00000001", x.drv[d]);
    uint64_t psize = file_size(p[0]);
    assert_true(psize > SOP__EC_HDR);
    uint64_t rs = tu_seed();
    for (int round = 0; round < 40; round++) {
        uint32_t d = (uint32_t)tu_rand_below(&rs, x.n);
        /* alternate: a header byte of the first stripe, or anywhere */
        uint64_t off = round % 2 ? tu_rand_below(&rs, SOP__EC_HDR) : tu_rand_below(&rs, psize);
        int bit = (int)tu_rand_below(&rs, 8);
        flip_bit(p[d], off, bit);
        fix_reopen(&x); /* no cache */
        f = seg_open(&x, 0);
        check_content(&x, f, want, total);
        x.v->close(x.v, f);
        sop_ec_stat es;
        (void)es;
        flip_bit(p[d], off, bit); /* restore */
    }
    /* m shards of the first stripe bad: corrected */
    flip_bit(p[0], 100, 1);
    flip_bit(p[5], 200, 2);
    fix_reopen(&x);
    f = seg_open(&x, 0);
    check_content(&x, f, want, total);
    sop__ec_vfs *ev = (sop__ec_vfs *)x.v;
    assert_true(atomic_load(&ev->st_bad_shards) >= 2);
    assert_true(atomic_load(&ev->st_reconstructed) >= 1);
    x.v->close(x.v, f);
    /* m + 1: -EIO, nothing returned */
    flip_bit(p[2], 300, 3);
    fix_reopen(&x);
    f = seg_open(&x, 0);
    uint8_t buf[100];
    size_t got = 99;
    assert_int_equal(x.v->read(x.v, f, buf, sizeof buf, 50, &got), -EIO);
    assert_int_equal(got, 0);
    /* a later stripe still reads */
    uint64_t later = 2 * 4 * SOP__EC_SHARD_MAX;
    assert_int_equal(x.v->read(x.v, f, buf, sizeof buf, later, &got), 0);
    assert_int_equal(got, sizeof buf);
    assert_memory_equal(buf, want + later, sizeof buf);
    x.v->close(x.v, f);
    free(want);
    sop__vfs_ec_free(x.v);
}

/* Shard files missing on up to m drives: every byte reads back. More than
 * m missing on a sealed segment: -EIO rather than a shorter file. */
static void test_vfs_missing_shards(void **st)
{
    (void)st;
    ecfix x;
    fix_open(&x, "missing", 5, 2);
    size_t total = 100000;
    uint8_t *want = malloc(total);
    fill(want, total, 3);
    sop_file *f = seg_open(&x, 1);
    assert_int_equal(x.v->write(x.v, f, want, total, 0), 0);
    x.v->close(x.v, f);
    char p[700];
    for (uint32_t d = 0; d < 2; d++) {
        snprintf(p, sizeof p, "%s/seg-00000001", x.drv[d * 3]);
        assert_int_equal(unlink(p), 0);
    }
    fix_reopen(&x);
    f = seg_open(&x, 0);
    check_content(&x, f, want, total);
    x.v->close(x.v, f);
    /* a third one, and a successor segment (so this one is sealed) */
    snprintf(p, sizeof p, "%s/seg-00000001", x.drv[1]);
    assert_int_equal(truncate(p, 30000), 0);
    snprintf(p, sizeof p, "%s/seg-00000002", x.db);
    sop_file *g;
    assert_int_equal(x.v->open(x.v, p, SOP_O_RDWR | SOP_O_CREATE, 0600, &g), 0);
    x.v->close(x.v, g);
    fix_reopen(&x);
    f = seg_open(&x, 0);
    uint64_t size;
    assert_int_equal(x.v->size(x.v, f, &size), -EIO);
    /* the first stripe (before the damage) still reads; past it, -EIO */
    uint8_t buf[100];
    size_t got = 0;
    assert_int_equal(x.v->read(x.v, f, buf, sizeof buf, 1000, &got), 0);
    assert_int_equal(got, sizeof buf);
    assert_memory_equal(buf, want + 1000, sizeof buf);
    assert_int_equal(x.v->read(x.v, f, buf, sizeof buf, 60000, &got), -EIO);
    x.v->close(x.v, f);
    fix_reopen(&x);
    f = seg_open(&x, 0);
    assert_int_equal(x.v->read(x.v, f, buf, sizeof buf, 1000, &got), 0); /* first call */
    assert_memory_equal(buf, want + 1000, sizeof buf);
    x.v->close(x.v, f);
    free(want);
    sop__vfs_ec_free(x.v);
}

/* truncate(): to a stripe boundary and inside a stripe (its first bytes
 * come back as a new stripe); appends continue after it; another layer
 * instance (process) notices the truncation. */
static void test_vfs_truncate(void **st)
{
    (void)st;
    ecfix x;
    fix_open(&x, "truncate", 4, 1);
    size_t total = 200000;
    uint8_t *want = malloc(total);
    fill(want, total, 5);
    sop_file *f = seg_open(&x, 1);
    assert_int_equal(x.v->write(x.v, f, want, 100000, 0), 0);
    assert_int_equal(x.v->write(x.v, f, want + 100000, 50000, 100000), 0);
    /* a second instance reads everything */
    sop_vfs *v2;
    assert_int_equal(
        sop__vfs_ec_new(sop_vfs_posix(), x.db, x.drives, x.n, x.m, 0600, NULL, &v2), 0);
    char p[600];
    snprintf(p, sizeof p, "%s/seg-00000001", x.db);
    sop_file *f2;
    assert_int_equal(v2->open(v2, p, SOP_O_RDWR, 0, &f2), 0);
    uint64_t size;
    assert_int_equal(v2->size(v2, f2, &size), 0);
    assert_int_equal(size, 150000);
    assert_int_equal(x.v->truncate(x.v, f, 200000), -EINVAL);
    assert_int_equal(x.v->truncate(x.v, f, 100000), 0); /* a stripe boundary */
    assert_int_equal(x.v->size(x.v, f, &size), 0);
    assert_int_equal(size, 100000);
    assert_int_equal(x.v->truncate(x.v, f, 77777), 0); /* inside a stripe */
    assert_int_equal(x.v->size(x.v, f, &size), 0);
    assert_int_equal(size, 77777);
    /* different bytes after the cut */
    fill(want + 77777, total - 77777, 6);
    assert_int_equal(x.v->write(x.v, f, want + 77777, total - 77777, 77777), 0);
    check_content(&x, f, want, total);
    /* the other instance sees the new content */
    uint8_t *got = malloc(total);
    size_t g;
    assert_int_equal(v2->size(v2, f2, &size), 0);
    assert_int_equal(size, total);
    assert_int_equal(v2->read(v2, f2, got, total, 0, &g), 0);
    assert_int_equal(g, total);
    assert_memory_equal(got, want, total);
    assert_int_equal(x.v->truncate(x.v, f, 0), 0);
    assert_int_equal(v2->size(v2, f2, &size), 0);
    assert_int_equal(size, 0);
    v2->close(v2, f2);
    sop__vfs_ec_free(v2);
    x.v->close(x.v, f);
    free(got);
    free(want);
    sop__vfs_ec_free(x.v);
}

/* A torn append (a writer killed after some drives): fewer than k shards
 * of the last stripe make it absent; the next append goes in its place. */
static void test_vfs_torn_tail(void **st)
{
    (void)st;
    ecfix x;
    fix_open(&x, "torn", 6, 2);
    size_t total = 90000;
    uint8_t *want = malloc(total);
    fill(want, total, 11);
    sop_file *f = seg_open(&x, 1);
    assert_int_equal(x.v->write(x.v, f, want, 50000, 0), 0);
    x.v->close(x.v, f);
    char p[8][700];
    uint64_t before[8];
    for (uint32_t d = 0; d < x.n; d++) {
        snprintf(p[d], sizeof p[d], "%s/seg-00000001", x.drv[d]);
        before[d] = file_size(p[d]);
    }
    f = seg_open(&x, 0);
    assert_int_equal(x.v->write(x.v, f, want + 50000, 40000, 50000), 0);
    x.v->close(x.v, f);
    /* keep the new stripe on k - 1 = 3 drives, half of it on a fourth */
    for (uint32_t d = 3; d < x.n; d++)
        assert_int_equal(truncate(p[d], (off_t)(d == 3 ? before[d] + 5000 : before[d])), 0);
    fix_reopen(&x);
    f = seg_open(&x, 0);
    check_content(&x, f, want, 50000);
    fill(want + 50000, 40000, 12);
    assert_int_equal(x.v->write(x.v, f, want + 50000, 40000, 50000), 0);
    x.v->close(x.v, f);
    fix_reopen(&x);
    f = seg_open(&x, 0);
    check_content(&x, f, want, total);
    /* k headers but a torn payload on one of them: still absent */
    x.v->close(x.v, f);
    free(want);
    sop__vfs_ec_free(x.v);
}

/* Identity files: drives in the wrong order, another k/m, or another
 * database's drives are refused with SOP_EMISMATCH; a replaced (empty)
 * drive folder is accepted and gets an identity. */
static void test_vfs_identity(void **st)
{
    (void)st;
    ecfix x;
    fix_open(&x, "ident", 4, 1);
    sop_file *f = seg_open(&x, 1); /* the database id is made at the first segment */
    uint8_t b[100] = {1};
    assert_int_equal(x.v->write(x.v, f, b, sizeof b, 0), 0);
    x.v->close(x.v, f);
    sop__vfs_ec_free(x.v);
    sop_vfs *v;
    const char *swapped[4] = {x.drv[0], x.drv[2], x.drv[1], x.drv[3]};
    assert_int_equal(sop__vfs_ec_new(sop_vfs_posix(), x.db, swapped, 4, 1, 0600, NULL, &v),
                     SOP_EMISMATCH);
    assert_int_equal(sop__vfs_ec_new(sop_vfs_posix(), x.db, x.drives, 4, 2, 0600, NULL, &v),
                     SOP_EMISMATCH);
    /* another database's drive */
    ecfix y;
    fix_open(&y, "ident2", 4, 1);
    f = seg_open(&y, 1);
    y.v->close(y.v, f);
    const char *mixed[4] = {x.drv[0], x.drv[1], y.drv[2], x.drv[3]};
    assert_int_equal(sop__vfs_ec_new(sop_vfs_posix(), x.db, mixed, 4, 1, 0600, NULL, &v),
                     SOP_EMISMATCH);
    /* all of another database's drives */
    assert_int_equal(sop__vfs_ec_new(sop_vfs_posix(), x.db, y.drives, 4, 1, 0600, NULL, &v),
                     SOP_EMISMATCH);
    sop__vfs_ec_free(y.v);
    /* a replaced drive: an empty folder (or none at all); it gets its
     * identity from repair, not at open */
    tu_rmtree(x.drv[1]);
    assert_int_equal(sop__vfs_ec_new(sop_vfs_posix(), x.db, x.drives, 4, 1, 0600, NULL, &v), 0);
    assert_true(((sop__ec_vfs *)v)->fresh[1]);
    char p[700];
    snprintf(p, sizeof p, "%s/sop-ec.id", x.drv[1]);
    struct stat sb;
    assert_int_not_equal(stat(p, &sb), 0);
    snprintf(p, sizeof p, "%s/sop-ec.id", x.drv[0]);
    assert_true(file_size(p) == SOP__EC_ID_BYTES);
    snprintf(p, sizeof p, "%s/seg-00000001", x.db);
    assert_int_equal(v->open(v, p, SOP_O_RDWR, 0, &f), 0);
    uint8_t got[100];
    size_t g;
    assert_int_equal(v->read(v, f, got, sizeof got, 0, &g), 0);
    assert_int_equal(g, sizeof got);
    assert_memory_equal(got, b, sizeof b);
    v->close(v, f);
    sop__vfs_ec_free(v);
    /* a second one missing too: more than m drives without shards */
    sop_vfs *v2;
    tu_rmtree(x.drv[2]);
    assert_int_equal(sop__vfs_ec_new(sop_vfs_posix(), x.db, x.drives, 4, 1, 0600, NULL, &v2),
                     -EIO);
}

static void touch(const char *path)
{
    FILE *fp = fopen(path, "wb");
    assert_non_null(fp);
    fclose(fp);
}

/* Shard files that appear after the file was opened (another process was
 * creating it, one drive after another): they are opened and counted by
 * the next size() and write(), so the stripes written there are seen and
 * appends reach every drive. A file with stripes but fewer than k shard
 * files takes no append (its end is unknown: nothing is written over); an
 * empty one gets the shard files it lacks (its creator died between
 * them). */
static void test_vfs_late_shards(void **st)
{
    (void)st;
    ecfix x;
    fix_open(&x, "late", 4, 2);
    sop_file *f = seg_open(&x, 1); /* the database id */
    x.v->close(x.v, f);
    char sp[4][700], lp[600];
    for (uint32_t d = 0; d < 4; d++)
        snprintf(sp[d], sizeof sp[d], "%s/seg-00000002", x.drv[d]);
    snprintf(lp, sizeof lp, "%s/seg-00000002", x.db);
    size_t total = 150000;
    uint8_t *want = malloc(total), *got = malloc(total);
    fill(want, total, 21);
    /* another instance opens the file while only drive 0's shard exists */
    touch(sp[0]);
    sop_vfs *v2;
    assert_int_equal(
        sop__vfs_ec_new(sop_vfs_posix(), x.db, x.drives, x.n, x.m, 0600, NULL, &v2), 0);
    sop_file *b;
    assert_int_equal(v2->open(v2, lp, SOP_O_RDWR, 0, &b), 0);
    uint64_t size = 1;
    assert_int_equal(v2->size(v2, b, &size), 0);
    assert_int_equal(size, 0);
    /* the creator makes the others and appends */
    for (uint32_t d = 1; d < 4; d++)
        touch(sp[d]);
    sop_file *a;
    assert_int_equal(x.v->open(x.v, lp, SOP_O_RDWR, 0, &a), 0);
    assert_int_equal(x.v->write(x.v, a, want, 100000, 0), 0);
    /* the early handle sees it all, and appends to every drive */
    size_t g = 0;
    assert_int_equal(v2->size(v2, b, &size), 0);
    assert_int_equal(size, 100000);
    assert_int_equal(v2->read(v2, b, got, 100000, 0, &g), 0);
    assert_int_equal(g, 100000);
    assert_memory_equal(got, want, 100000);
    assert_int_equal(v2->write(v2, b, want + 100000, total - 100000, 100000), 0);
    for (uint32_t d = 1; d < 4; d++)
        assert_int_equal(file_size(sp[d]), file_size(sp[0]));
    check_content(&x, a, want, total);
    x.v->close(x.v, a);
    v2->close(v2, b);
    /* more than m shard files gone (this last segment is not sealed: its
     * stripes cannot be seen): an append is refused, drive 0's untouched */
    for (uint32_t d = 1; d < 4; d++)
        assert_int_equal(unlink(sp[d]), 0);
    uint64_t before = file_size(sp[0]);
    uint8_t head[64], head2[64];
    FILE *fp = fopen(sp[0], "rb");
    assert_non_null(fp);
    assert_int_equal(fread(head, 1, sizeof head, fp), sizeof head);
    fclose(fp);
    assert_int_equal(v2->open(v2, lp, SOP_O_RDWR, 0, &b), 0);
    assert_int_equal(v2->size(v2, b, &size), 0);
    assert_int_equal(size, 0);
    assert_int_equal(v2->write(v2, b, want, 1000, 0), -EIO);
    v2->close(v2, b);
    assert_int_equal(file_size(sp[0]), before);
    fp = fopen(sp[0], "rb");
    assert_non_null(fp);
    assert_int_equal(fread(head2, 1, sizeof head2, fp), sizeof head2);
    fclose(fp);
    assert_memory_equal(head, head2, sizeof head);
    /* an empty file with drive 0's shard file only: completed at the first
     * append (drive 3's folder is gone: skipped, degraded) */
    char s3[4][700], l3[600];
    for (uint32_t d = 0; d < 4; d++)
        snprintf(s3[d], sizeof s3[d], "%s/seg-00000003", x.drv[d]);
    snprintf(l3, sizeof l3, "%s/seg-00000003", x.db);
    touch(s3[0]);
    tu_rmtree(x.drv[3]);
    assert_int_equal(v2->open(v2, l3, SOP_O_RDWR, 0, &b), 0);
    assert_int_equal(v2->write(v2, b, want, 50000, 0), 0);
    v2->close(v2, b);
    for (uint32_t d = 1; d < 3; d++)
        assert_int_equal(file_size(s3[d]), file_size(s3[0]));
    assert_true(file_size(s3[0]) > 0);
    assert_int_equal(access(x.drv[3], F_OK), -1); /* not recreated */
    assert_int_equal(x.v->open(x.v, l3, SOP_O_RDWR, 0, &a), 0);
    check_content(&x, a, want, 50000);
    x.v->close(x.v, a);
    sop__vfs_ec_free(v2);
    free(want);
    free(got);
    sop__vfs_ec_free(x.v);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_codec_patterns),
        cmocka_unit_test(test_codec_bad_geometry),
        cmocka_unit_test(test_vfs_roundtrip),
        cmocka_unit_test(test_vfs_list_remove),
        cmocka_unit_test(test_vfs_bitflips),
        cmocka_unit_test(test_vfs_missing_shards),
        cmocka_unit_test(test_vfs_truncate),
        cmocka_unit_test(test_vfs_torn_tail),
        cmocka_unit_test(test_vfs_identity),
        cmocka_unit_test(test_vfs_late_shards),
    };
    tu_seed();
    return cmocka_run_group_tests(tests, NULL, NULL);
}
