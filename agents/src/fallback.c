/* fallback.c - the streaming reader of fallback files (see fallback.h). */
#include "fallback.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <string.h>

#include "mem.h"
#include "sop/sop.h"

/* A set of ids, for duplicates (open addressing, FNV-1a). */
typedef struct idset {
    char **slot;
    size_t cap, n;
} idset;

struct fb_reader {
    FILE *f;
    uint64_t off, size;
    char *buf; /* the value being cut out */
    size_t n, cap;
    char name[128], embedder[128];
    uint32_t dim;
    int after_first; /* a record was read: the next needs a comma */
    int ended;
    uint64_t no;
    cJSON *cur;
    char *meta;
    float *vec;
    idset ids;
    char err[512];
};

static int fail(fb_reader *r, int rc, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int fail(fb_reader *r, int rc, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->err, sizeof r->err, fmt, ap);
    va_end(ap);
    return rc;
}

static uint64_t hash(const char *s)
{
    uint64_t h = 0xcbf29ce484222325ull;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 0x100000001b3ull;
    return h;
}

/* 1 when @id was there already, 0 when added, -ENOMEM. */
static int ids_add(idset *s, const char *id)
{
    if (2 * (s->n + 1) > s->cap) {
        size_t cap = s->cap ? 2 * s->cap : 1024;
        char **ns = sop__calloc(cap, sizeof *ns);
        if (!ns)
            return -ENOMEM;
        for (size_t i = 0; i < s->cap; i++)
            if (s->slot[i]) {
                size_t j = hash(s->slot[i]) & (cap - 1);
                while (ns[j])
                    j = (j + 1) & (cap - 1);
                ns[j] = s->slot[i];
            }
        sop__free(s->slot);
        s->slot = ns;
        s->cap = cap;
    }
    size_t j = hash(id) & (s->cap - 1);
    for (; s->slot[j]; j = (j + 1) & (s->cap - 1))
        if (strcmp(s->slot[j], id) == 0)
            return 1;
    if (!(s->slot[j] = sop__strdup(id)))
        return -ENOMEM;
    s->n++;
    return 0;
}

/* ---- the scanner ---------------------------------------------------- */

static int next_char(fb_reader *r)
{
    int c = getc(r->f);
    if (c != EOF)
        r->off++;
    return c;
}

static int skip_ws(fb_reader *r)
{
    int c;
    do
        c = next_char(r);
    while (c == ' ' || c == '\t' || c == '\n' || c == '\r');
    return c;
}

static int put(fb_reader *r, int c)
{
    if (r->n + 2 > FB_RECORD_MAX)
        return SOP_ETOOBIG;
    char *b = sop__grow(r->buf, &r->cap, r->n + 2, 1, 4096);
    if (!b)
        return -ENOMEM;
    r->buf = b;
    b[r->n++] = (char)c;
    b[r->n] = 0;
    return 0;
}

static int truncated(fb_reader *r)
{
    if (ferror(r->f))
        return fail(r, -EIO, "read error at byte %llu", (unsigned long long)r->off);
    if (r->no)
        return fail(r, SOP_EFORMAT, "record %llu: the file ends at byte %llu, inside the record",
                    (unsigned long long)r->no, (unsigned long long)r->off);
    return fail(r, SOP_EFORMAT, "the file ends at byte %llu, inside the header",
                (unsigned long long)r->off);
}

/* Cuts out the JSON value that starts with @c into r->buf; *end gets the
 * character after a scalar (a scalar ends at one), else 0. */
static int cut(fb_reader *r, int c, int *end)
{
    r->n = 0;
    *end = 0;
    int depth = 0, in_str = 0, esc = 0, rc = 0;
    if (c != '{' && c != '[' && c != '"') { /* number, true, false, null */
        while (c != EOF && c != ',' && c != '}' && c != ']' && c != ' ' && c != '\n' &&
               c != '\t' && c != '\r' && !(rc = put(r, c)))
            c = next_char(r);
        if (c == EOF && !rc)
            return truncated(r);
        *end = c;
        return rc;
    }
    for (;; c = next_char(r)) {
        if (c == EOF)
            return truncated(r);
        if ((rc = put(r, c)))
            return rc == SOP_ETOOBIG
                       ? fail(r, rc, "record %llu is over %u bytes", (unsigned long long)r->no,
                              FB_RECORD_MAX)
                       : rc;
        if (in_str) {
            if (esc)
                esc = 0;
            else if (c == '\\')
                esc = 1;
            else if (c == '"')
                in_str = 0;
        } else if (c == '"') {
            in_str = 1;
        } else if (c == '{' || c == '[') {
            depth++;
        } else if (c == '}' || c == ']') {
            depth--;
        }
        if (!in_str && depth == 0 && (r->n > 1 || c != '"'))
            return 0;
    }
}

static int bad(fb_reader *r, const char *what)
{
    return fail(r, SOP_EFORMAT, "byte %llu: %s", (unsigned long long)r->off, what);
}

/* After a value of the top-level object: ',' (1) or '}' (0). */
static int after_value(fb_reader *r, int c)
{
    if (c == 0 || c == ' ' || c == '\n' || c == '\t' || c == '\r')
        c = skip_ws(r);
    if (c == ',')
        return 1;
    if (c == '}')
        return 0;
    return c == EOF ? truncated(r) : bad(r, "expected ',' or '}' in the top-level object");
}

/* Reads a key and its ':'; the key is left in r->buf. */
static int read_key(fb_reader *r, int c)
{
    int end, rc;
    if (c != '"')
        return c == EOF ? truncated(r) : bad(r, "expected a key");
    if ((rc = cut(r, c, &end)))
        return rc;
    cJSON *k = cJSON_ParseWithLength(r->buf, r->n);
    int ok = cJSON_IsString(k);
    if (ok) {
        size_t l = strlen(k->valuestring);
        memcpy(r->buf, k->valuestring, l + 1);
        r->n = l;
    }
    cJSON_Delete(k);
    if (!ok)
        return bad(r, "a key is not a valid string");
    c = skip_ws(r);
    return c == ':' ? 0 : c == EOF ? truncated(r) : bad(r, "expected ':' after a key");
}

static int header_value(fb_reader *r, const char *key, int *seen_format)
{
    int c = skip_ws(r), end, rc;
    if ((rc = cut(r, c, &end)))
        return rc;
    cJSON *v = cJSON_ParseWithLength(r->buf, r->n);
    if (!v)
        return bad(r, "the value of a header key is not JSON");
    rc = 0;
    if (strcmp(key, "format") == 0) {
        if (!cJSON_IsString(v) || strcmp(v->valuestring, "sop-fallback") != 0)
            rc = bad(r, "\"format\" is not \"sop-fallback\"");
        *seen_format |= 1;
    } else if (strcmp(key, "version") == 0) {
        if (!cJSON_IsNumber(v) || v->valuedouble != 1)
            rc = fail(r, SOP_EFORMAT, "version %g is not supported (1 is)",
                      cJSON_IsNumber(v) ? v->valuedouble : -1.0);
        *seen_format |= 2;
    } else if (strcmp(key, "name") == 0) {
        if (!cJSON_IsString(v))
            rc = bad(r, "\"name\" is not a string");
        else
            snprintf(r->name, sizeof r->name, "%s", v->valuestring);
    } else if (strcmp(key, "embedder") == 0) {
        const cJSON *n = cJSON_GetObjectItemCaseSensitive(v, "name");
        const cJSON *d = cJSON_GetObjectItemCaseSensitive(v, "dim");
        if (!cJSON_IsString(n) || !n->valuestring[0] || strlen(n->valuestring) >= sizeof r->embedder ||
            !cJSON_IsNumber(d) || d->valuedouble < 1 || d->valuedouble > FB_DIM_MAX ||
            d->valuedouble != (double)(uint32_t)d->valuedouble)
            rc = bad(r, "\"embedder\" must be {\"name\": string, \"dim\": 1..65536}");
        else {
            snprintf(r->embedder, sizeof r->embedder, "%s", n->valuestring);
            r->dim = (uint32_t)d->valuedouble;
        }
    }
    cJSON_Delete(v);
    if (rc)
        return rc;
    rc = after_value(r, end); /* 1: a comma, the next key follows */
    return rc == 1 ? 0 : rc == 0 ? bad(r, "the object ends without \"records\"") : rc;
}

int fb_open(const char *path, fb_reader **out)
{
    fb_reader *r = sop__calloc(1, sizeof *r);
    *out = r;
    if (!r)
        return -ENOMEM;
    if (!path || !(r->f = fopen(path, "rb")))
        return fail(r, path ? -errno : -EINVAL, "cannot open %s: %s", path ? path : "(null)",
                    strerror(errno));
    if (fseek(r->f, 0, SEEK_END) == 0) {
        long sz = ftell(r->f);
        r->size = sz > 0 ? (uint64_t)sz : 0;
        rewind(r->f);
    }
    int c = skip_ws(r), seen = 0, rc;
    if (c != '{')
        return c == EOF ? fail(r, SOP_EFORMAT, "the file is empty")
                        : bad(r, "a fallback file is one JSON object");
    for (c = skip_ws(r);; c = skip_ws(r)) {
        if ((rc = read_key(r, c)))
            return rc;
        if (strcmp(r->buf, "records") == 0)
            break;
        char key[32];
        snprintf(key, sizeof key, "%s", r->buf);
        if ((rc = header_value(r, key, &seen)))
            return rc;
    }
    if (seen != 3)
        return fail(r, SOP_EFORMAT, "\"format\": \"sop-fallback\" and \"version\": 1 must come "
                                    "before \"records\"");
    c = skip_ws(r);
    return c == '[' ? 0 : c == EOF ? truncated(r) : bad(r, "\"records\" is not an array");
}

const char *fb_name(const fb_reader *r) { return r->name; }
const char *fb_embedder(const fb_reader *r, uint32_t *dim)
{
    *dim = r->dim;
    return r->embedder;
}
uint64_t fb_offset(const fb_reader *r) { return r->off; }
uint64_t fb_size(const fb_reader *r) { return r->size; }
const char *fb_error(const fb_reader *r) { return r ? r->err : "out of memory"; }

static void drop_current(fb_reader *r)
{
    cJSON_Delete(r->cur);
    r->cur = NULL;
    cJSON_free(r->meta);
    r->meta = NULL;
}

/* The rest of the top-level object after "records" (keys ignored). */
static int finish(fb_reader *r)
{
    int c = skip_ws(r), end, rc;
    while ((rc = after_value(r, c)) == 1) {
        if ((rc = read_key(r, skip_ws(r))) || (rc = cut(r, skip_ws(r), &end)))
            return rc;
        c = end;
    }
    if (rc)
        return rc;
    if (skip_ws(r) != EOF)
        return bad(r, "data after the top-level object");
    r->ended = 1;
    return 1;
}

static int rec_fail(fb_reader *r, const char *id, const char *what)
{
    return fail(r, SOP_EFORMAT, "record %llu%s%.100s%s: %s", (unsigned long long)r->no,
                id ? " (id \"" : "", id ? id : "", id ? "\")" : "", what);
}

int fb_next(fb_reader *r, fb_record *rec)
{
    drop_current(r);
    if (r->ended)
        return 1;
    int c = skip_ws(r), end, rc;
    if (c == ']')
        return finish(r);
    if (r->after_first) {
        if (c != ',')
            return c == EOF ? truncated(r) : bad(r, "expected ',' or ']' between records");
        c = skip_ws(r);
    }
    r->no++;
    r->after_first = 1;
    if (c != '{')
        return c == EOF ? truncated(r) : rec_fail(r, NULL, "not a JSON object");
    if ((rc = cut(r, c, &end)))
        return rc;
    if (!(r->cur = cJSON_ParseWithLength(r->buf, r->n)))
        return rec_fail(r, NULL, "malformed JSON");
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(r->cur, "id");
    const cJSON *text = cJSON_GetObjectItemCaseSensitive(r->cur, "text");
    const cJSON *meta = cJSON_GetObjectItemCaseSensitive(r->cur, "metadata");
    const cJSON *emb = cJSON_GetObjectItemCaseSensitive(r->cur, "embedding");
    if (!cJSON_IsString(id))
        return rec_fail(r, NULL, id ? "\"id\" is not a string" : "no \"id\"");
    const char *ids = id->valuestring;
    if (!ids[0] || strlen(ids) > FB_ID_MAX)
        return rec_fail(r, NULL, "\"id\" must be 1..256 bytes");
    if (!cJSON_IsString(text))
        return rec_fail(r, ids, text ? "\"text\" is not a string" : "no \"text\"");
    if (!text->valuestring[0])
        return rec_fail(r, ids, "\"text\" is empty");
    if (meta && !cJSON_IsObject(meta))
        return rec_fail(r, ids, "\"metadata\" is not an object");
    rec->embedding = NULL;
    if (emb) {
        if (!r->dim)
            return rec_fail(r, ids, "an \"embedding\" but no \"embedder\" in the header");
        if (!cJSON_IsArray(emb))
            return rec_fail(r, ids, "\"embedding\" is not an array");
        int m = cJSON_GetArraySize(emb);
        if ((uint32_t)m != r->dim) {
            char msg[96];
            snprintf(msg, sizeof msg, "\"embedding\" has %d numbers, the embedder's dimension is %u",
                     m, r->dim);
            return rec_fail(r, ids, msg);
        }
        if (!r->vec && !(r->vec = sop__malloc(r->dim * sizeof *r->vec)))
            return -ENOMEM;
        const cJSON *x;
        float *o = r->vec;
        cJSON_ArrayForEach(x, emb)
        {
            if (!cJSON_IsNumber(x) || !isfinite(x->valuedouble))
                return rec_fail(r, ids, "\"embedding\" holds something other than a finite number");
            *o++ = (float)x->valuedouble;
        }
        rec->embedding = r->vec;
    }
    if ((rc = ids_add(&r->ids, ids)) != 0)
        return rc == 1 ? rec_fail(r, ids, "duplicate id") : rc;
    if (meta && !(r->meta = cJSON_PrintUnformatted(meta)))
        return -ENOMEM;
    rec->no = r->no;
    rec->id = ids;
    rec->text = text->valuestring;
    rec->metadata = r->meta;
    return 0;
}

void fb_close(fb_reader *r)
{
    if (!r)
        return;
    drop_current(r);
    if (r->f)
        fclose(r->f);
    for (size_t i = 0; i < r->ids.cap; i++)
        sop__free(r->ids.slot[i]);
    sop__free(r->ids.slot);
    sop__free(r->buf);
    sop__free(r->vec);
    sop__free(r);
}
