/*
 * ec_vfs.h - the erasure-coding layer's formats and objects, shared by the
 * VFS (vfs_ec.c) and the public EC calls (ec_admin.c: repair, stats).
 * Design and reasons: docs/design/erasure-coding.md.
 *
 * A segment file seg-NNNNNNNN (an "EC file") is stored as one shard file
 * of the same name in each of the n = k + m drive folders. Its bytes are
 * appended as stripes; a stripe is the same byte range of every shard
 * file (so it sits at one physical offset on every drive):
 *
 *   off size  field (little endian)
 *   0   4     magic 0x45504F53 ("SOPE")
 *   4   1     format version (1)
 *   5   1     shard index i (0..k-1 data, k..n-1 parity) = drive index
 *   6   1     k
 *   7   1     m
 *   8   8     logical offset of the stripe's first byte in the file
 *   16  4     logical length L of the stripe (1 .. k * SOP__EC_SHARD_MAX)
 *   20  4     CRC32C of the stripe's L logical bytes (the same on every
 *             shard: it names the stripe, and checks a reconstruction)
 *   24  8     database tag (the first 8 bytes of the database id)
 *   32  4     CRC32C of this shard's S bytes
 *   36  4     CRC32C of bytes 0..35
 *   40  S     the shard: S = ceil(L / k); data shard i holds logical bytes
 *             [i*S, (i+1)*S) of the stripe, zero-padded past L; parity
 *             shards are Reed-Solomon (ec_codec.h) over the data shards
 *
 * Stripes follow each other without gaps: the next one starts at physical
 * offset + 40 + S and at logical offset + L. A stripe exists when at least
 * k drives hold a valid header for it that agree on (offset, L, data CRC);
 * the file's logical size is the end of its last existing stripe whose
 * data decodes (see the end detection in vfs_ec.c).
 *
 * Identity file "sop-ec.id" (64 bytes) in each drive folder, and a copy
 * named "ec.id" in the database directory (drive index 255):
 *   0 4 magic 0x44504F53 ("SOPD"), 4 4 version 1, 8 16 database id,
 *   24 1 drive index, 25 1 k, 26 1 m, 27..59 zero, 60 4 CRC32C of 0..59.
 */
#ifndef SOP_EC_VFS_H
#define SOP_EC_VFS_H
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include "ec_codec.h"
#include "sop/sop.h"

#define SOP__EC_MAGIC 0x45504F53u
#define SOP__EC_VERSION 1
#define SOP__EC_HDR 40
/* Bound of one shard of a stripe: a 4 KiB read verifies at most two
 * shard pieces of this size. */
#define SOP__EC_SHARD_MAX (16u << 10)
#define SOP__EC_ID_MAGIC 0x44504F53u
#define SOP__EC_ID_BYTES 64
#define SOP__EC_ID_NAME "sop-ec.id"
#define SOP__EC_DBID_NAME "ec.id"
#define SOP__EC_MAXN 255

/* One stripe of an EC file, as the index keeps it. */
typedef struct sop__ec_stripe {
    uint64_t off;  /* logical offset */
    uint64_t phys; /* physical offset (the same on every drive) */
    uint32_t len;  /* logical length */
    uint32_t crc;  /* CRC32C of its logical bytes */
} sop__ec_stripe;

static inline uint32_t sop__ec_shard_len(uint32_t len, uint32_t k) { return (len + k - 1) / k; }

typedef struct sop__ec_vfs {
    sop_vfs vfs; /* first: the table the engine calls */
    sop_vfs *base;
    char *dir;
    size_t dirlen;
    char **drives;
    uint32_t n, k, m;
    unsigned mode;
    sop__ec_codec codec;
    pthread_mutex_t mu; /* the identity */
    int have_id;
    uint8_t id[16];
    uint64_t tag;
    uint8_t down[SOP__EC_MAXN];  /* folder missing or unwritable at open */
    uint8_t fresh[SOP__EC_MAXN]; /* no identity file: new or replaced, not yet repaired */
    atomic_uint_fast64_t st_stripes_written, st_degraded_stripes, st_shard_write_errors,
        st_reconstructed, st_bad_shards, st_unreadable;
} sop__ec_vfs;

/* An open EC file (or, with ec = 0, a file of the base VFS). */
struct sop_file {
    int ec;
    sop_file *base;           /* ec = 0 */
    sop__ec_vfs *v;
    char *name;               /* base name: seg-NNNNNNNN */
    sop_file **sh;            /* [n] shard files, NULL when absent (reopened when one
                               * appears: sop__ec_refresh) or failed */
    uint8_t *failed;          /* [n] drive down, or a write, sync or open failed: not
                               * written, nor reopened, any more */
    int oflags;               /* SOP_O_READ or SOP_O_RDWR: how shard files are (re)opened */
    int rescan;               /* a shard file was opened since the last scan */
    pthread_mutex_t mu;       /* the index and the cache */
    sop__ec_stripe *st;
    size_t nst, cap;
    uint64_t size;            /* logical size: end of the last stripe */
    uint64_t pend;            /* physical end of the last stripe */
    int scanned;
    int damaged;              /* sealed, with undecodable stripes past the last one */
    uint64_t c_phys;          /* the cached decoded stripe (UINT64_MAX: none) */
    uint32_t c_crc, c_len;
    uint8_t *c_data;
};

/* Packs a stripe header for shard @idx; @scrc is the shard's CRC. */
void sop__ec_hdr_pack(const sop__ec_vfs *v, uint8_t *h, uint32_t idx, const sop__ec_stripe *s,
                      uint32_t scrc);
/* 0 when @h is a valid header of this database and geometry for shard
 * @idx (*s gets off, len, crc; *scrc the shard CRC), -1 otherwise. */
int sop__ec_hdr_parse(const sop__ec_vfs *v, const uint8_t *h, uint32_t idx, sop__ec_stripe *s,
                      uint32_t *scrc);

/* Opens an EC file by base name (creating it with SOP_O_CREATE: then at
 * least k shard files must open). Shard files that do not exist stay NULL
 * and are opened as soon as they appear (sop__ec_refresh, writes):
 * another process may be creating the file one drive after another.
 * -ENOENT when no drive has it. */
int sop__ec_file_open(sop__ec_vfs *v, const char *name, int flags, sop_file **out);
int sop__ec_file_close(sop__ec_vfs *v, sop_file *f);
/* Opens the shard files that appeared since the file was opened, then
 * brings the index up to date (stripes other processes appended, a
 * truncation another process made; rebuilt from the start when a shard
 * file was opened). f->mu held. -EIO when the file is damaged: sealed, and
 * bytes past its last decodable stripe (the index then holds the stripes
 * before them). */
int sop__ec_refresh(sop_file *f);
/* Reads shard @idx of stripe @s (header and S bytes) into @buf (40 + S
 * bytes): 0 when it is valid and belongs to @s, -1 when it is missing or
 * bad, or a negative errno for ENOMEM. */
int sop__ec_read_shard(sop_file *f, uint32_t idx, const sop__ec_stripe *s, uint8_t *buf);
/* Reads stripe @s into @shards (n buffers of S bytes; the header is not
 * kept): the data shards, and parity only to replace a bad one; the data
 * shards that were bad are reconstructed, and with @parity every shard.
 * ok[i] says which were read intact. 0, -EIO (fewer than k intact, or the
 * result does not match the stripe's CRC), -ENOMEM. */
int sop__ec_read_stripe(sop_file *f, const sop__ec_stripe *s, uint8_t *const *shards, uint8_t *ok,
                        int parity);
/* Path of @name in drive folder @d (free with sop__free). */
char *sop__ec_drive_path(const sop__ec_vfs *v, uint32_t d, const char *name);
/* Makes sure the database id is known (creating it for a new database:
 * call it with the database's open lock held), writing the identity file
 * of every drive that has none. 0, SOP_EMISMATCH, or an I/O error. */
int sop__ec_setup(sop__ec_vfs *v, const sop_db *db);
/* Creates missing drive folders and checks the identity files (at
 * sop__vfs_ec_new): 0, SOP_EMISMATCH, -EIO (more than m unusable). */
int sop__ec_drives_open(sop__ec_vfs *v, const sop_db *db);
/* Writes drive @d's identity file (repair, once the drive is filled). */
int sop__ec_write_ident(sop__ec_vfs *v, uint32_t d);
/* Whether @name is an EC file name (seg-*) */
int sop__ec_is_seg(const char *name);

#endif
