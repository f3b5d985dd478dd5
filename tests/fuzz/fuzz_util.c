/* fuzz_util.c - helpers of the fuzz targets (see fuzz_util.h). */
#include "fuzz_util.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bytes.h"
#include "crc32c.h"
#include "log.h"
#include "registry.h"
#include "sop/sop.h"

static char scratch[512];

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)ftw;
    if (flag == FTW_DP)
        rmdir(path);
    else
        unlink(path);
    return 0;
}

static void rm_tree(const char *path) { nftw(path, rm_one, 16, FTW_DEPTH | FTW_PHYS); }

static void scratch_remove(void)
{
    if (scratch[0])
        rm_tree(scratch);
}

void fz_path(char *buf, size_t cap, const char *name)
{
    if (!scratch[0]) {
        const char *base = getenv("SOP_FUZZ_TMP");
        if (base && *base)
            mkdir(base, 0700); /* one level, as ctest gives it */
        else
            base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
        snprintf(scratch, sizeof scratch, "%s/sopfuzz-%ld", base, (long)getpid());
        rm_tree(scratch);
        if (mkdir(scratch, 0700) != 0)
            fz_fail("cannot create %s: %s", scratch, strerror(errno));
        atexit(scratch_remove);
    }
    if ((size_t)snprintf(buf, cap, "%s/%s", scratch, name) >= cap)
        fz_fail("path too long: %s/%s", scratch, name);
}

void fz_empty_dir(const char *path)
{
    rm_tree(path);
    if (mkdir(path, 0700) != 0)
        fz_fail("cannot create %s: %s", path, strerror(errno));
}

void fz_write(const char *path, const void *data, size_t n)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0)
        fz_fail("cannot create %s: %s", path, strerror(errno));
    const uint8_t *p = data;
    while (n) {
        ssize_t w = write(fd, p, n);
        if (w <= 0)
            fz_fail("cannot write %s: %s", path, strerror(errno));
        p += w;
        n -= (size_t)w;
    }
    close(fd);
}

uint8_t fz_u8(fz_in *in)
{
    if (!in->n)
        return 0;
    in->n--;
    return *in->p++;
}

uint32_t fz_u32(fz_in *in)
{
    uint32_t v = 0;
    for (int i = 0; i < 4; i++)
        v |= (uint32_t)fz_u8(in) << (8 * i);
    return v;
}

const uint8_t *fz_take(fz_in *in, size_t max, size_t *got)
{
    const uint8_t *p = in->p;
    *got = max < in->n ? max : in->n;
    in->p += *got;
    in->n -= *got;
    return p;
}

size_t fz_unpack(fz_in *in, fz_file *files, size_t max)
{
    size_t k = 0;
    while (k < max && in->n >= 2) {
        files[k].kind = fz_u8(in);
        files[k].flags = fz_u8(in);
        uint32_t len = fz_u32(in);
        files[k].data = fz_take(in, len, &files[k].len);
        k++;
    }
    return k;
}

void fz_fix_registry(uint8_t *p, size_t n)
{
    for (size_t off = 0; off + SOP__REG_BLOCK <= n; off += SOP__REG_BLOCK) {
        uint8_t *b = p + off;
        size_t i = 0;
        while (i < SOP__REG_BLOCK && !b[i])
            i++;
        if (i < SOP__REG_BLOCK)
            sop__put32(b, sop__crc32c(b + 4, SOP__REG_BLOCK - 4, 0));
    }
}

#define DW_HDR 32 /* registry.c */
void fz_fix_dw(uint8_t *p, size_t n)
{
    if (n < DW_HDR)
        return;
    sop__put32(p, sop__crc32c(p + 4, DW_HDR - 4, 0));
    for (size_t off = DW_HDR; off + SOP__REG_BLOCK <= n; off += SOP__REG_BLOCK)
        sop__put32(p + off, sop__crc32c(p + off + 4, SOP__REG_BLOCK - 4, 0));
}

#define CKPT_SIZE 64 /* db.c */
void fz_fix_ckpt(uint8_t *p, size_t n)
{
    if (n >= CKPT_SIZE)
        sop__put32(p, sop__crc32c(p + 4, CKPT_SIZE - 4, 0));
}

void fz_fix_segment(uint8_t *p, size_t n)
{
    size_t off = 0;
    while (n - off >= SOP__REC_HDR && sop__get32(p + off) == SOP__REC_MAGIC) {
        uint32_t plen = sop__get32(p + off + 8);
        if (plen > n - off - SOP__REC_HDR)
            break;
        sop__put32(p + off + 12, 0);
        uint32_t crc = sop__crc32c(p + off, SOP__REC_HDR, 0);
        crc = sop__crc32c(p + off + SOP__REC_HDR, plen, crc);
        sop__put32(p + off + 12, crc);
        off += SOP__REC_HDR + (size_t)plen;
    }
}

int fz_segment_small(const uint8_t *p, size_t n)
{
    size_t off = 0;
    while (n - off >= SOP__REC_HDR && sop__get32(p + off) == SOP__REC_MAGIC) {
        uint32_t plen = sop__get32(p + off + 8);
        if (plen > n - off - SOP__REC_HDR)
            break;
        const uint8_t *c = p + off + SOP__REC_HDR;
        if (p[off + 4] == SOP__REC_COMMIT && plen >= SOP__COMMIT_HDR) {
            if (sop__get64(c + 8) > FZ_ID_LIMIT)
                return 0;
            for (size_t e = SOP__COMMIT_HDR; e + 8 <= plen; e += SOP__COMMIT_ENTRY)
                if (sop__get64(c + e) > FZ_ID_LIMIT)
                    return 0;
        }
        off += SOP__REC_HDR + (size_t)plen;
    }
    return 1;
}

int fz_dw_small(const uint8_t *p, size_t n)
{
    for (size_t off = DW_HDR; off + SOP__REG_BLOCK <= n; off += SOP__REG_BLOCK)
        if (sop__get32(p + off + 4) > FZ_ID_LIMIT / SOP__REG_PER_BLOCK)
            return 0;
    return 1;
}

int fz_ckpt_small(const uint8_t *p, size_t n)
{
    return n < CKPT_SIZE || sop__get64(p + 40) <= FZ_ID_LIMIT;
}

void fz_expect_in(const char *what, int rc, const int *ok, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (rc == ok[i])
            return;
    fz_fail("%s returned %d (%s: %s), not a documented code", what, rc, sop_err_name(rc),
            sop_strerror(rc));
}

void fz_note(const char *fmt, ...)
{
    static int on = -1;
    if (on < 0)
        on = getenv("SOP_FUZZ_VERBOSE") != NULL;
    if (!on)
        return;
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

/* The sanitizers' summary line goes to their report file, which libFuzzer
 * keeps open when -close_fd_mask closes stderr: the reason of a failure
 * reaches the log either way. Weak: absent from a build without them. */
void __sanitizer_report_error_summary(const char *summary) __attribute__((weak));

void fz_fail(const char *fmt, ...)
{
    char msg[1024] = "fuzz: ";
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg + 6, sizeof msg - 6, fmt, ap);
    va_end(ap);
    fprintf(stderr, "%s\n", msg);
    if (__sanitizer_report_error_summary)
        __sanitizer_report_error_summary(msg);
    abort();
}
