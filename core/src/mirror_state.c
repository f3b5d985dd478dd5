/*
 * mirror_state.c - the replica.state file of a replicated database
 * (docs/design/replication.md).
 *
 * The file is 8 KiB: two 4 KiB slots written alternately (slot gen & 1),
 * like ckpt.0/ckpt.1, so a torn write of one leaves the previous state in
 * the other. A slot (little-endian):
 *   0 u32 CRC32C of bytes 4..4095     4 u32 magic "SOPR"   8 u32 format (1)
 *   12 u32 active folder (0 database directory, 1 replica)
 *   16 u64 generation   24 u32 flags (1 in sync, 2 full copy needed)
 *   28 u32 self: the folder this copy was written into (detects swapped paths)
 *   32 u32 entries   36 u32 zero
 *   40 entries of 32 bytes: segment name (24 bytes, NUL padded), u64 dirty from
 * The copy with the highest valid generation is the file's state.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "bytes.h"
#include "crc32c.h"
#include "mem.h"
#include "mirror.h"

#define MS_MAGIC 0x52504F53u
#define MS_FORMAT 1
#define MS_SLOT 4096
#define MS_HDR 40
#define MS_ENTRY 32
#define MS_INSYNC 1u
#define MS_FULL 2u

_Static_assert(MS_HDR + SOP__MSTATE_DIRTY * MS_ENTRY <= MS_SLOT, "state slot too small");

static int state_path(const char *folder, char *buf, size_t cap)
{
    int n = snprintf(buf, cap, "%s/%s", folder, SOP__MSTATE_NAME);
    return n < 0 || (size_t)n >= cap ? -ENAMETOOLONG : 0;
}

int sop__mstate_is_seg(const char *name)
{
    return strncmp(name, "seg-", 4) == 0 && strlen(name) == 12 &&
           strspn(name + 4, "0123456789") == 8;
}

int sop__mstate_is_db_file(const char *name)
{
    return sop__mstate_is_seg(name) || !strcmp(name, "registry") ||
           !strcmp(name, "registry.dw") || !strcmp(name, "ckpt.0") || !strcmp(name, "ckpt.1");
}

static void encode(const sop__mstate *st, int self, uint8_t *b)
{
    memset(b, 0, MS_SLOT);
    sop__put32(b + 4, MS_MAGIC);
    sop__put32(b + 8, MS_FORMAT);
    sop__put32(b + 12, (uint32_t)st->active);
    sop__put64(b + 16, st->gen);
    sop__put32(b + 24, (st->insync ? MS_INSYNC : 0) | (st->full ? MS_FULL : 0));
    sop__put32(b + 28, (uint32_t)self);
    sop__put32(b + 32, st->ndirty);
    for (uint32_t i = 0; i < st->ndirty; i++) {
        uint8_t *e = b + MS_HDR + (size_t)i * MS_ENTRY;
        memcpy(e, st->dirty[i].name, SOP__MSTATE_NAMELEN);
        sop__put64(e + SOP__MSTATE_NAMELEN, st->dirty[i].from);
    }
    sop__put32(b, sop__crc32c(b + 4, MS_SLOT - 4, 0));
}

/* 0: valid (*st, *self filled); -1: not a valid slot */
static int decode(const uint8_t *b, sop__mstate *st, int *self)
{
    if (sop__get32(b + 4) != MS_MAGIC || sop__get32(b) != sop__crc32c(b + 4, MS_SLOT - 4, 0) ||
        sop__get32(b + 8) != MS_FORMAT)
        return -1;
    uint32_t active = sop__get32(b + 12), flags = sop__get32(b + 24), n = sop__get32(b + 32);
    uint32_t s = sop__get32(b + 28);
    if (active > 1 || s > 1 || n > SOP__MSTATE_DIRTY)
        return -1;
    memset(st, 0, sizeof *st);
    st->active = (int)active;
    st->gen = sop__get64(b + 16);
    st->insync = !!(flags & MS_INSYNC);
    st->full = !!(flags & MS_FULL);
    st->ndirty = n;
    for (uint32_t i = 0; i < n; i++) {
        const uint8_t *e = b + MS_HDR + (size_t)i * MS_ENTRY;
        memcpy(st->dirty[i].name, e, SOP__MSTATE_NAMELEN);
        st->dirty[i].name[SOP__MSTATE_NAMELEN - 1] = 0;
        st->dirty[i].from = sop__get64(e + SOP__MSTATE_NAMELEN);
    }
    *self = (int)s;
    return 0;
}

int sop__mstate_read(sop_vfs *base, const char *folder, int idx, sop__mstate *st)
{
    char path[4096];
    int rc = state_path(folder, path, sizeof path);
    if (rc)
        return rc;
    sop_file *f;
    rc = base->open(base, path, SOP_O_READ, 0, &f);
    if (rc)
        return rc; /* -ENOENT: no state file (or no folder) */
    uint8_t *b = sop__malloc(2 * MS_SLOT);
    if (!b) {
        base->close(base, f);
        return -ENOMEM;
    }
    size_t got = 0;
    rc = base->read(base, f, b, 2 * MS_SLOT, 0, &got);
    base->close(base, f);
    int found = 0, self = 0;
    for (int slot = 0; !rc && slot < 2; slot++) {
        sop__mstate s;
        int me;
        if ((size_t)(slot + 1) * MS_SLOT > got || decode(b + (size_t)slot * MS_SLOT, &s, &me))
            continue;
        if (!found || s.gen > st->gen) {
            *st = s;
            self = me;
            found = 1;
        }
    }
    sop__free(b);
    if (rc)
        return rc;
    if (!found)
        return SOP_ECORRUPT;
    return self == idx ? 0 : SOP_EMISMATCH; /* written for the other folder: paths swapped */
}

int sop__mstate_write(sop_vfs *base, const char *folder, int idx, const sop__mstate *st,
                      unsigned mode)
{
    char path[4096];
    int rc = state_path(folder, path, sizeof path);
    if (rc)
        return rc;
    sop_file *f;
    int created = 0;
    rc = base->open(base, path, SOP_O_RDWR, 0, &f);
    if (rc == -ENOENT) {
        rc = base->open(base, path, SOP_O_RDWR | SOP_O_CREATE, mode, &f);
        created = 1;
    }
    if (rc)
        return rc;
    uint8_t *b = sop__malloc(MS_SLOT);
    if (!b) {
        base->close(base, f);
        return -ENOMEM;
    }
    encode(st, idx, b);
    if (created) /* both slots exist from the start: later writes never extend the file */
        rc = base->write(base, f, b, MS_SLOT, (uint64_t)((st->gen + 1) & 1) * MS_SLOT);
    if (!rc)
        rc = base->write(base, f, b, MS_SLOT, (uint64_t)(st->gen & 1) * MS_SLOT);
    if (!rc)
        rc = base->sync(base, f);
    int crc = base->close(base, f);
    sop__free(b);
    if (!rc)
        rc = crc;
    if (!rc && created)
        rc = base->sync_dir(base, folder);
    return rc;
}

int sop__mstate_note(sop__mstate *st, const char *name, uint64_t from)
{
    if (st->full)
        return 0;
    for (uint32_t i = 0; i < st->ndirty; i++)
        if (!strcmp(st->dirty[i].name, name)) {
            if (st->dirty[i].from <= from)
                return 0;
            st->dirty[i].from = from;
            return 1;
        }
    if (strlen(name) >= SOP__MSTATE_NAMELEN || st->ndirty == SOP__MSTATE_DIRTY) {
        st->full = 1; /* cannot track: copy every segment whole */
        st->ndirty = 0;
        return 1;
    }
    memset(st->dirty[st->ndirty].name, 0, SOP__MSTATE_NAMELEN);
    memcpy(st->dirty[st->ndirty].name, name, strlen(name));
    st->dirty[st->ndirty].from = from;
    st->ndirty++;
    return 1;
}

uint64_t sop__mstate_dirty_from(const sop__mstate *st, const char *name)
{
    if (st->full)
        return 0;
    for (uint32_t i = 0; i < st->ndirty; i++)
        if (!strcmp(st->dirty[i].name, name))
            return st->dirty[i].from;
    return UINT64_MAX;
}
