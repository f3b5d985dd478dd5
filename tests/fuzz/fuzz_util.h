/* fuzz_util.h - helpers of the fuzz targets (tests/fuzz/fuzz_*.c): a
 * scratch directory per process, files written from an input, a reader of
 * input bytes, several files packed in one input, CRC fix-ups that let
 * mutated engine files past their checksums, and the check that a return
 * code is one the called function documents (anything else aborts). */
#ifndef SOP_FUZZ_UTIL_H
#define SOP_FUZZ_UTIL_H
#include <stddef.h>
#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* <base>/sopfuzz-<pid>/<name> in @buf, <base> being $SOP_FUZZ_TMP, else
 * /dev/shm when writable, else /tmp. The per-process directory is made on
 * the first call and removed at exit. */
void fz_path(char *buf, size_t cap, const char *name);
/* Makes directory @path exist and be empty. */
void fz_empty_dir(const char *path);
/* Writes @n bytes to file @path (created or truncated). */
void fz_write(const char *path, const void *data, size_t n);

/* Input bytes read front to back; past the end every read gives zeros. */
typedef struct fz_in {
    const uint8_t *p;
    size_t n;
} fz_in;
uint8_t fz_u8(fz_in *in);
uint32_t fz_u32(fz_in *in);
/* Up to @max bytes (fewer when the input ends): a pointer into it. */
const uint8_t *fz_take(fz_in *in, size_t max, size_t *got);

/* Several files in one input: entries of
 *   u8 kind, u8 flags, u32 length (little-endian; clamped to what is left),
 *   then the bytes.
 * Unpacked by fz_unpack() into at most FZ_MAX_FILES entries. */
#define FZ_MAX_FILES 8
#define FZ_FIX_CRC 0x1 /* flags: recompute the file's checksums (fz_fix_*) */
typedef struct fz_file {
    uint8_t kind, flags;
    const uint8_t *data;
    size_t len;
} fz_file;
size_t fz_unpack(fz_in *in, fz_file *files, size_t max);

/* CRC fix-ups, in place, of engine files (formats: core/src/registry.h,
 * log.h, db.c). A registry: every block not all zero. A registry.dw: its
 * header and every block. A checkpoint record. A segment: each record
 * from the start while its magic and length fit. */
void fz_fix_registry(uint8_t *p, size_t n);
void fz_fix_dw(uint8_t *p, size_t n);
void fz_fix_ckpt(uint8_t *p, size_t n);
void fz_fix_segment(uint8_t *p, size_t n);

/* The registry is a table indexed by id (docs/design/storage.md: ids are
 * dense), so a database that claims an id of 2^40 makes open allocate
 * memory for 2^40 ids, as a database that large would: out of memory,
 * not a decoding bug. The targets skip files that claim ids (or next ids)
 * above FZ_ID_LIMIT: 0 when a file does, else 1. A segment: the commit
 * records among its records from the start; registry.dw: its block
 * numbers; a checkpoint record: its next id. */
#define FZ_ID_LIMIT (1u << 20)
int fz_segment_small(const uint8_t *p, size_t n);
int fz_dw_small(const uint8_t *p, size_t n);
int fz_ckpt_small(const uint8_t *p, size_t n);

/* Aborts, naming @what and the code, unless @rc is one of @ok[0..n). */
void fz_expect_in(const char *what, int rc, const int *ok, size_t n);
#define FZ_EXPECT(what, rc, ...)                                                         \
    fz_expect_in((what), (rc), (const int[]){__VA_ARGS__},                                 \
                 sizeof((const int[]){__VA_ARGS__}) / sizeof(int))
/* Prints a line to stderr when $SOP_FUZZ_VERBOSE is set (what a replayed
 * input did). */
void fz_note(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Aborts with a message (a wrong answer). */
void fz_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

#endif
