/*
 * fuzz_ops.c - stateful: the input is a program of operations on one
 * store of a database, run on the engine and on a reference model (an
 * array indexed by key), and any difference aborts. It finds wrong
 * answers, not only crashes.
 *
 * Feeds: byte 0 = store options (node size 1024 or 4096, small or default
 * inline_max); then per operation an opcode byte and its operands: upsert,
 * add, add-if-absent, update, remove, get, commit, rollback, scan (bounds,
 * exclusivity, direction, offset, limit, keys only), count, cursor walks
 * (find by every mode, then next/prev/skip), cursor update and remove, a
 * snapshot read beside the write transaction, checkpoint, and
 * close-and-reopen. 256 keys of varied length sharing prefixes, values of
 * 0..~5700 bytes (inline and in blobs).
 * Checks: every result (return code, value, scan sequence, count) against
 * the model; commits never fail (one writer), except with SOP_ECONFLICT
 * after a checkpoint in the transaction (compaction moved what it read:
 * a documented limit); a READ transaction sees the last committed state;
 * after reopening, the committed state is there.
 * The database (SOP_SYNC_NONE, 1 MiB segments, frequent checkpoints and
 * compaction) lives in the scratch directory and is reused across inputs;
 * each input starts with its store removed and created again, so an input
 * replays alone the same way (up to when checkpoints fall).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_util.h"
#include "sop/sop.h"

#define NKEYS 256
#define VMAX 5800

typedef struct slot {
    uint8_t present;
    uint16_t len;
    uint32_t seed;
} slot;

static sop_db *db;
static char dbdir[600];
static char keys[NKEYS][96];
static size_t klens[NKEYS];
static int order[NKEYS]; /* kids in key order */
static int rank_of[NKEYS];
static slot committed[NKEYS], cur[NKEYS];
static uint32_t seed_counter;
/* a checkpoint ran while the write transaction was open: compaction may
 * have moved images it read, and its commit may then fail with
 * SOP_ECONFLICT (docs/design/storage.md, "Known limits") */
static int ckpt_in_txn;
static uint8_t vbuf[VMAX];

static int key_cmp(int a, int b)
{
    size_t m = klens[a] < klens[b] ? klens[a] : klens[b];
    int c = memcmp(keys[a], keys[b], m);
    return c ? c : klens[a] < klens[b] ? -1 : klens[a] > klens[b];
}

static int qcmp(const void *a, const void *b) { return key_cmp(*(const int *)a, *(const int *)b); }

static void make_keys(void)
{
    static const char *const pfx[4] = {"", "a", "aaaaaaaaaaaaaaaaaaaaaaaa/", "b/"};
    for (int k = 0; k < NKEYS; k++) {
        int n = snprintf(keys[k], sizeof keys[k], "%s%02X", pfx[k & 3], k);
        int pad = (k >> 5) * 9;
        memset(keys[k] + n, 'z', (size_t)pad);
        klens[k] = (size_t)n + (size_t)pad;
        order[k] = k;
    }
    qsort(order, NKEYS, sizeof *order, qcmp);
    for (int i = 0; i < NKEYS; i++)
        rank_of[order[i]] = i;
}

static const uint8_t *gen_val(int kid, const slot *s)
{
    for (uint32_t i = 0; i < s->len; i++)
        vbuf[i] = (uint8_t)(s->seed * 131u + i * 7u + (uint32_t)kid);
    return vbuf;
}

static void same_val(const char *what, int kid, const slot *s, const sop_val *v)
{
    if (v->size != s->len || (s->len && memcmp(v->data, gen_val(kid, s), s->len) != 0))
        fz_fail("%s: key %s: a value of %zu bytes, the model has %u (seed %u)", what, keys[kid],
                v->size, s->len, s->seed);
}

static void must(const char *what, int rc, int want)
{
    if (rc != want)
        fz_fail("%s returned %d (%s), the model expects %d (%s)", what, rc, sop_err_name(rc),
                want, sop_err_name(want));
}

static void open_db(void)
{
    sop_db_options o;
    sop_db_options_init(&o);
    o.sync = SOP_SYNC_NONE;
    o.cache_bytes = 256u << 10;
    o.segment_bytes = 1u << 20;
    o.checkpoint_bytes = 256u << 10;
    int rc = sop_db_open(dbdir, &o, &db);
    if (rc)
        fz_fail("cannot open %s: %s", dbdir, sop_db_errmsg(db));
}

static sop_txn *begin(sop_txn_mode mode, sop_store **s)
{
    if (mode != SOP_TXN_READ)
        ckpt_in_txn = 0;
    sop_txn *t;
    must("sop_txn_begin", sop_txn_begin(db, mode, 0, &t), SOP_OK);
    must("sop_store_open", sop_store_open(t, "s", s), SOP_OK);
    return t;
}

/* Expected items of a scan, in order: kids into @out; returns the count. */
static int model_scan(const slot *m, int from, int to, const sop_range *r, int *out)
{
    int n = 0, lo = from < 0 ? 0 : rank_of[from], hi = to < 0 ? NKEYS - 1 : rank_of[to];
    if (from >= 0 && r->from_exclusive)
        lo++;
    if (to >= 0 && r->to_exclusive)
        hi--;
    for (int i = lo; i <= hi; i++)
        if (m[order[i]].present)
            out[n++] = order[i];
    if (r->reverse)
        for (int i = 0; i < n / 2; i++) {
            int x = out[i];
            out[i] = out[n - 1 - i];
            out[n - 1 - i] = x;
        }
    int off = r->offset < (uint64_t)n ? (int)r->offset : n;
    memmove(out, out + off, (size_t)(n - off) * sizeof *out);
    n -= off;
    if (r->limit && (uint64_t)n > r->limit)
        n = (int)r->limit;
    return n;
}

typedef struct scan_ctx {
    const slot *m;
    const int *want;
    int n, at, keys_only;
} scan_ctx;

static int kid_of(const sop_val *k)
{
    for (int i = 0; i < NKEYS; i++)
        if (k->size == klens[i] && memcmp(k->data, keys[i], klens[i]) == 0)
            return i;
    fz_fail("a key the model never wrote: %.*s", (int)k->size, (const char *)k->data);
}

static int on_item(const sop_val *k, const sop_val *v, void *ctx)
{
    scan_ctx *c = ctx;
    int kid = kid_of(k);
    if (c->at >= c->n || c->want[c->at] != kid)
        fz_fail("scan item %d is %s, the model has %s", c->at, keys[kid],
                c->at < c->n ? keys[c->want[c->at]] : "(end)");
    if (!c->keys_only)
        same_val("scan", kid, &c->m[kid], v);
    c->at++;
    return 0;
}

static void scan(sop_store *s, const slot *m, fz_in *in)
{
    uint8_t f = fz_u8(in);
    int from = fz_u8(in), to = fz_u8(in);
    if (f & 1)
        from = -1;
    if (f & 2)
        to = -1;
    sop_val fk = {from >= 0 ? keys[from] : NULL, from >= 0 ? klens[from] : 0};
    sop_val tk = {to >= 0 ? keys[to] : NULL, to >= 0 ? klens[to] : 0};
    sop_range r = {.from = from >= 0 ? &fk : NULL, .to = to >= 0 ? &tk : NULL,
                   .from_exclusive = (f >> 2) & 1, .to_exclusive = (f >> 3) & 1,
                   .reverse = (f >> 4) & 1, .keys_only = (f >> 5) & 1,
                   .offset = f >> 6, .limit = fz_u8(in) % 8};
    int want[NKEYS];
    scan_ctx c = {m, want, model_scan(m, from, to, &r, want), 0, r.keys_only};
    must("sop_scan", sop_scan(s, &r, on_item, &c), SOP_OK);
    if (c.at != c.n)
        fz_fail("a scan gave %d items, the model %d", c.at, c.n);
}

/* The model's item at rank @r moving by @dir from it (inclusive when
 * @incl): a kid, or -1. */
static int model_step(const slot *m, int r, int dir, int incl)
{
    for (int i = incl ? r : r + dir; i >= 0 && i < NKEYS; i += dir)
        if (m[order[i]].present)
            return order[i];
    return -1;
}

static void at_cursor(sop_cursor *c, int want, const slot *m)
{
    sop_val k, v;
    must("sop_cursor_get", sop_cursor_get(c, &k, &v), SOP_OK);
    int kid = kid_of(&k);
    if (kid != want)
        fz_fail("the cursor is on %s, the model on %s", keys[kid], keys[want]);
    same_val("cursor", kid, &m[kid], &v);
}

static void cursor_walk(sop_store *s, slot *m, fz_in *in, int edit)
{
    int kid = fz_u8(in), mode = fz_u8(in) % 6, steps = fz_u8(in);
    sop_cursor *c;
    must("sop_cursor_open", sop_cursor_open(s, &c), SOP_OK);
    sop_val key = {keys[kid], klens[kid]};
    int r = rank_of[kid], at;
    switch (mode) {
    case SOP_FIND_EXACT:
    case SOP_FIND_LAST: at = m[kid].present ? kid : -1; break;
    case SOP_FIND_GE: at = model_step(m, r, 1, 1); break;
    case SOP_FIND_GT: at = model_step(m, r, 1, 0); break;
    case SOP_FIND_LE: at = model_step(m, r, -1, 1); break;
    default: at = model_step(m, r, -1, 0); break;
    }
    must("sop_cursor_find", sop_cursor_find(c, &key, (sop_find_mode)mode),
         at < 0 ? SOP_ENOTFOUND : SOP_OK);
    for (int i = 0; at >= 0 && i < (steps & 7); i++) {
        at_cursor(c, at, m);
        if (edit && (steps >> 3) & 1) { /* remove, moving to the next */
            m[at].present = 0;
            at = model_step(m, rank_of[at], 1, 0);
            must("sop_cursor_remove", sop_cursor_remove(c), at < 0 ? SOP_ENOTFOUND : SOP_OK);
        } else if (edit) {
            slot ns = {1, (uint16_t)(fz_u8(in) * 20), ++seed_counter};
            sop_val v = {gen_val(at, &ns), ns.len};
            must("sop_cursor_update", sop_cursor_update(c, &v), SOP_OK);
            m[at] = ns;
        } else {
            int dir = (steps >> (3 + i % 5)) & 1 ? 1 : -1;
            at = model_step(m, rank_of[at], dir, 0);
            must(dir > 0 ? "sop_cursor_next" : "sop_cursor_prev",
                 dir > 0 ? sop_cursor_next(c) : sop_cursor_prev(c), at < 0 ? SOP_ENOTFOUND : SOP_OK);
        }
    }
    sop_cursor_close(c);
}

static void check_all(sop_store *s, const slot *m)
{
    int want[NKEYS];
    sop_range r = {.from = NULL};
    scan_ctx c = {m, want, model_scan(m, -1, -1, &r, want), 0, 0};
    must("sop_scan (all)", sop_scan(s, &r, on_item, &c), SOP_OK);
    if (c.at != c.n)
        fz_fail("a full scan gave %d items, the model %d", c.at, c.n);
    uint64_t count;
    must("sop_store_count", sop_store_count(s, &count), SOP_OK);
    if (count != (uint64_t)c.n)
        fz_fail("count %llu, the model %d", (unsigned long long)count, c.n);
}

/* A READ transaction sees the committed state. */
static void check_committed(void)
{
    sop_store *s;
    sop_txn *t = begin(SOP_TXN_READ, &s);
    check_all(s, committed);
    sop_txn_rollback(t);
}

/* Commits the write transaction: the model's state becomes the committed
 * one, or (a conflict after a checkpoint) is dropped. */
static void commit(sop_txn *t)
{
    int rc = sop_txn_commit(t);
    if (rc == SOP_ECONFLICT && ckpt_in_txn) {
        fz_note("a conflict after a checkpoint: rolled back");
        memcpy(cur, committed, sizeof cur);
        return;
    }
    must("sop_txn_commit", rc, SOP_OK);
    memcpy(committed, cur, sizeof cur);
}

static void reset_store(uint8_t opts)
{
    sop_txn *t;
    must("sop_txn_begin", sop_txn_begin(db, SOP_TXN_WRITE, 0, &t), SOP_OK);
    int rc = sop_store_remove(t, "s");
    if (rc != SOP_OK && rc != SOP_ENOTFOUND)
        fz_fail("sop_store_remove: %d", rc);
    sop_store_options o;
    sop_store_options_init(&o);
    o.node_bytes = opts & 1 ? 4096 : 1024;
    if (opts & 2)
        o.inline_max = 16;
    sop_store *s;
    must("sop_store_create", sop_store_create(t, "s", &o, &s), SOP_OK);
    must("sop_txn_commit", sop_txn_commit(t), SOP_OK);
    memset(committed, 0, sizeof committed);
    memset(cur, 0, sizeof cur);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!db) {
        make_keys();
        fz_path(dbdir, sizeof dbdir, "ops");
        fz_empty_dir(dbdir);
        open_db();
    }
    fz_in in = {data, size};
    reset_store(fz_u8(&in));
    sop_store *s;
    sop_txn *t = begin(SOP_TXN_WRITE, &s);
    for (int ops = 0; in.n && ops < 400; ops++) {
        uint8_t op = fz_u8(&in) % 16;
        int kid = op <= 7 || op == 15 ? fz_u8(&in) : 0;
        sop_val key = {keys[kid], klens[kid]};
        slot *m = &cur[kid];
        if (op <= 4) { /* writes of a value */
            uint8_t b = fz_u8(&in);
            slot ns = {1, (uint16_t)(b < 80 ? b : b < 160 ? (b - 80) * 8 : (b - 160) * 60),
                       ++seed_counter};
            sop_val v = {gen_val(kid, &ns), ns.len};
            switch (op) {
            case 0:
            case 1:
                must("sop_upsert", sop_upsert(s, &key, &v), SOP_OK);
                *m = ns;
                break;
            case 2:
                must("sop_add", sop_add(s, &key, &v), m->present ? SOP_EEXISTS : SOP_OK);
                if (!m->present)
                    *m = ns;
                break;
            case 3:
                must("sop_add_if_absent", sop_add_if_absent(s, &key, &v),
                     m->present ? SOP_EEXISTS : SOP_OK);
                if (!m->present)
                    *m = ns;
                break;
            default:
                must("sop_update", sop_update(s, &key, &v), m->present ? SOP_OK : SOP_ENOTFOUND);
                if (m->present)
                    *m = ns;
            }
            continue;
        }
        switch (op) {
        case 5:
        case 6:
            must("sop_remove", sop_remove(s, &key), m->present ? SOP_OK : SOP_ENOTFOUND);
            m->present = 0;
            break;
        case 7: {
            sop_val v;
            int rc = sop_get(s, &key, &v);
            must("sop_get", rc, m->present ? SOP_OK : SOP_ENOTFOUND);
            if (!rc)
                same_val("sop_get", kid, m, &v);
            break;
        }
        case 8:
            commit(t);
            t = begin(SOP_TXN_WRITE, &s);
            break;
        case 9:
            sop_txn_rollback(t);
            memcpy(cur, committed, sizeof cur);
            t = begin(SOP_TXN_WRITE, &s);
            break;
        case 10:
            scan(s, cur, &in);
            break;
        case 11:
            check_all(s, cur);
            break;
        case 12:
            cursor_walk(s, cur, &in, 0);
            break;
        case 13:
            cursor_walk(s, cur, &in, 1);
            break;
        case 14:
            check_committed();
            break;
        default:
            if (kid & 3) {
                must("sop_db_checkpoint", sop_db_checkpoint(db), SOP_OK);
                ckpt_in_txn = 1;
                break;
            }
            commit(t);
            must("sop_db_close", sop_db_close(db), SOP_OK);
            open_db();
            check_committed();
            t = begin(SOP_TXN_WRITE, &s);
        }
    }
    commit(t);
    check_committed();
    return 0;
}
