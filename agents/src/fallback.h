/* fallback.h - reading a fallback JSON file (docs/fallback-format.md) one
 * record at a time: the memory of the largest record, never of the file.
 *
 * A small scanner walks the top-level object (strings, escapes and nesting
 * depth only), reading the file 64 KiB at a time; each header value and
 * each element of "records" is cut out whole and parsed with cJSON, except
 * the usual record ({"id", "text", "embedding"} without escapes or other
 * keys), which a fast path reads to the same result (fallback.c). */
#ifndef SOP_AGENTS_FALLBACK_H
#define SOP_AGENTS_FALLBACK_H
#include <stdint.h>
#include <stdio.h>

/* Bounds on what a file may hold (checked before use). */
#define FB_RECORD_MAX (64u << 20) /* bytes of one record's JSON */
#define FB_ID_MAX 256u
#define FB_DIM_MAX 65536u

typedef struct fb_reader fb_reader;

/* A record: valid until the next fb_next() or fb_close(). */
typedef struct fb_record {
    uint64_t no; /* 1-based */
    const char *id, *text;
    char *metadata; /* compact JSON of the metadata object, or NULL */
    const float *embedding; /* NULL, or dim() numbers */
} fb_record;

/* Opens @path and reads the header up to "records". 0, -errno (the file),
 * SOP_EFORMAT (not a fallback file), -ENOMEM; fb_error() says why. On
 * failure *out is still set (for the message); close it. */
int fb_open(const char *path, fb_reader **out);
/* The header's fields ("" / 0 when absent). */
const char *fb_name(const fb_reader *r);
const char *fb_embedder(const fb_reader *r, uint32_t *dim);
/* The next record: 0 (rec set), 1 (no more), SOP_EFORMAT (malformed
 * JSON, a missing or mistyped field, an empty text, an id over 256 bytes,
 * a duplicate id, an embedding of the wrong length or with a non-number,
 * an embedding without an embedder header, a truncated file), SOP_ETOOBIG
 * (a record over FB_RECORD_MAX), -EIO, -ENOMEM. Errors name the record
 * (number, and id when known) and the byte offset in fb_error(). */
int fb_next(fb_reader *r, fb_record *rec);
/* Bytes read so far, and the file's size (for a progress bar). */
uint64_t fb_offset(const fb_reader *r);
uint64_t fb_size(const fb_reader *r);
const char *fb_error(const fb_reader *r);
void fb_close(fb_reader *r);

#endif
