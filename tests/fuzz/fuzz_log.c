/*
 * fuzz_log.c - the log record decoder: recovery's reading of the segments
 * (sop__log_follow, sop__rec_check; format in core/src/log.h), with every
 * record applied as recovery applies it (sop__apply_rec into a registry)
 * and every node image decoded.
 *
 * Feeds: byte 0 picks the follow mode (read, cut, recover) and the csn
 * already applied; then packed files (fuzz_util.h), kind k being segment
 * k % 4 + 1, flagged FZ_FIX_CRC to have their record checksums
 * recomputed. Segments that claim ids past FZ_ID_LIMIT are skipped
 * (fuzz_util.h).
 * Checks: only the documented codes; following the same log a second time
 * from the start reads the same records to the same end and cuts nothing
 * more (recovery is idempotent).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bytes.h"
#include "fuzz_util.h"
#include "internal.h"
#include "sop/sop.h"

typedef struct tally {
    sop_db *db;
    uint64_t records, last_csn;
} tally;

static int on_rec(void *arg, int type, uint64_t csn, const uint8_t *p, uint32_t len, uint32_t seg,
                  uint64_t off)
{
    tally *t = arg;
    t->records++;
    t->last_csn = csn;
    if (type == SOP__REC_IMAGE && len >= SOP__IMG_HDR && p[32] == SOP__IMG_NODE) {
        sop__node *n;
        int rc = sop__node_decode(p + SOP__IMG_HDR, len - SOP__IMG_HDR, sop__get64(p),
                                  sop__get64(p + 8), 0, &n);
        FZ_EXPECT("sop__node_decode", rc, SOP_OK, SOP_ECORRUPT, -ENOMEM);
        if (!rc)
            sop__node_free(n);
    }
    int rc = sop__apply_rec(t->db, type, csn, p, len, seg, off);
    FZ_EXPECT("sop__apply_rec", rc, SOP_OK, SOP_ECORRUPT, -ENOMEM);
    return rc;
}

static int follow(sop_db *db, int mode, uint64_t csn, tally *t)
{
    memset(t, 0, sizeof *t);
    t->db = db;
    sop__log_seek(&db->log, db->log.first, 0);
    int rc = sop__log_follow(&db->log, db->log.last, mode, csn, on_rec, t, db);
    FZ_EXPECT("sop__log_follow", rc, SOP_OK, SOP_ECORRUPT, -ENOMEM, -EIO, SOP_EFULL);
    return rc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char dir[600], path[700];
    fz_path(dir, sizeof dir, "log");
    fz_empty_dir(dir);
    fz_in in = {data, size};
    uint8_t b0 = fz_u8(&in);
    int mode = b0 % 3;
    uint64_t csn = b0 >> 2;
    fz_file files[FZ_MAX_FILES];
    size_t nf = fz_unpack(&in, files, FZ_MAX_FILES);
    for (size_t i = 0; i < nf; i++) {
        uint8_t *copy = malloc(files[i].len + 1);
        if (!copy)
            abort();
        memcpy(copy, files[i].data, files[i].len);
        if (files[i].flags & FZ_FIX_CRC)
            fz_fix_segment(copy, files[i].len);
        if (!fz_segment_small(copy, files[i].len)) {
            free(copy);
            return 0; /* claims ids past FZ_ID_LIMIT (fuzz_util.h) */
        }
        snprintf(path, sizeof path, "%s/seg-%08u", dir, files[i].kind % 4 + 1);
        fz_write(path, copy, files[i].len);
        free(copy);
    }

    sop_db *db = calloc(1, sizeof *db);
    if (!db)
        abort();
    db->shm = &db->shm_priv;
    sop_vfs *vfs = sop_vfs_posix();
    int rc = sop__reg_open(&db->reg, vfs, dir, 0600, 1, 0, db);
    FZ_EXPECT("sop__reg_open", rc, SOP_OK, -ENOMEM);
    if (!rc) {
        rc = sop__log_open(&db->log, vfs, dir, 0600, 1u << 20, db);
        FZ_EXPECT("sop__log_open", rc, SOP_OK, -ENOMEM, -EIO);
        tally t1, t2;
        if (!rc && follow(db, mode, csn, &t1) == 0) {
            uint32_t seg = db->log.cur;
            uint64_t end = db->log.end, size1 = 0, size2 = 0;
            sop__log_seg_size(&db->log, seg, &size1);
            atomic_store(&db->csn, 0);
            if (follow(db, mode, csn, &t2) != 0)
                fz_fail("the second follow failed");
            sop__log_seg_size(&db->log, seg, &size2);
            if (t1.records != t2.records || t1.last_csn != t2.last_csn || db->log.cur != seg ||
                db->log.end != end || size1 != size2)
                fz_fail("following again: %llu records to %u:%llu (%llu bytes), then %llu to "
                        "%u:%llu (%llu bytes)",
                        (unsigned long long)t1.records, seg, (unsigned long long)end,
                        (unsigned long long)size1, (unsigned long long)t2.records, db->log.cur,
                        (unsigned long long)db->log.end, (unsigned long long)size2);
        }
        sop__log_close(&db->log);
    }
    sop__reg_close(&db->reg);
    free(db);
    return 0;
}
