/*
 * fuzz_registry.c - the registry loader (sop__reg_open: block decoder and
 * the double-write repair, format in core/src/registry.h).
 *
 * Feeds: the input as packed files (fuzz_util.h): kind 0 the "registry"
 * file, kind 1 "registry.dw"; a file flagged FZ_FIX_CRC gets its
 * checksums recomputed first, so that the fuzzer reaches what lies behind
 * them. Loaded as the first opener does (repair on; a double-write file of
 * any checkpoint number qualifies). A registry.dw that claims blocks past
 * FZ_ID_LIMIT is skipped (fuzz_util.h).
 * Checks: only the documented codes; after a load, the live count and the
 * free list agree with the handles, and a checkpoint of a changed handle
 * followed by a reload gives back exactly the handles held in memory.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_util.h"
#include "registry.h"
#include "sop/sop.h"

static uint64_t chunk_next;
static int id_chunk(void *arg, uint64_t n, uint64_t *first)
{
    (void)arg;
    *first = chunk_next;
    chunk_next += n;
    return 0;
}

static int reg_open(sop__registry *r, const char *dir)
{
    int rc = sop__reg_open(r, sop_vfs_posix(), dir, 0600, 0, UINT64_MAX, NULL);
    FZ_EXPECT("sop__reg_open", rc, SOP_OK, SOP_ECORRUPT, -ENOENT, -ENOMEM, -EIO, SOP_EFULL);
    r->id_chunk = id_chunk;
    return rc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char dir[600], path[700];
    fz_path(dir, sizeof dir, "reg");
    fz_empty_dir(dir);
    fz_in in = {data, size};
    fz_file files[FZ_MAX_FILES];
    size_t nf = fz_unpack(&in, files, FZ_MAX_FILES);
    for (size_t i = 0; i < nf; i++) {
        if (files[i].kind > 1)
            continue;
        uint8_t *copy = malloc(files[i].len + 1);
        if (!copy)
            abort();
        memcpy(copy, files[i].data, files[i].len);
        if (files[i].flags & FZ_FIX_CRC)
            (files[i].kind ? fz_fix_dw : fz_fix_registry)(copy, files[i].len);
        if (files[i].kind && !fz_dw_small(copy, files[i].len)) {
            free(copy);
            return 0; /* claims a huge registry (FZ_ID_LIMIT) */
        }
        snprintf(path, sizeof path, "%s/%s", dir, files[i].kind ? "registry.dw" : "registry");
        fz_write(path, copy, files[i].len);
        free(copy);
    }

    sop__registry r;
    int rc = reg_open(&r, dir);
    if (rc) {
        sop__reg_close(&r);
        return 0;
    }
    sop__reg_rebuild_free(&r);
    uint64_t live = 0;
    for (uint64_t b = 0; b < r.nblocks; b++)
        for (int i = 0; i < SOP__REG_PER_BLOCK; i++)
            live += (b || i) && sop__handle_live(&r.blocks[b]->h[i]);
    if (live != r.live)
        fz_fail("%llu live handles, the registry counts %llu", (unsigned long long)live,
                (unsigned long long)r.live);
    if (sop__reg_free_but_live(&r))
        fz_fail("a live id is on the free list");

    /* change one handle, checkpoint, reload: the same handles come back */
    chunk_next = sop__reg_next_id(&r);
    uint64_t id;
    if (sop__reg_alloc_id(&r, &id) != 0)
        fz_fail("no id to hand out");
    sop__handle h = {1, 100, 4096, 1, 1};
    if (sop__reg_set(&r, id, &h) != 0) {
        sop__reg_close(&r);
        return 0; /* -ENOMEM */
    }
    rc = sop__reg_checkpoint(&r, 9, NULL);
    FZ_EXPECT("sop__reg_checkpoint", rc, SOP_OK, -ENOMEM, -EIO, SOP_EFULL);
    if (!rc) {
        sop__registry r2;
        rc = reg_open(&r2, dir);
        if (rc)
            fz_fail("a checkpointed registry does not load again: %d", rc);
        uint64_t top = r.next_id > r2.next_id ? r.next_id : r2.next_id;
        for (uint64_t i = 0; i < top; i++) {
            sop__handle a = sop__reg_get(&r, i), b = sop__reg_get(&r2, i);
            if (memcmp(&a, &b, sizeof a) != 0)
                fz_fail("handle %llu changed across a checkpoint", (unsigned long long)i);
        }
        sop__reg_close(&r2);
    }
    sop__reg_close(&r);
    return 0;
}
