/* fallback.c - the streaming reader of fallback files (see fallback.h). */
#include "fallback.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <float.h>
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

/* Doubles from this magnitude up round to an infinite float: FLT_MAX plus
 * half its last unit. */
#define FLT_ROUNDS_TO_INF ((double)FLT_MAX * (1.0 + 0x1p-24))

/* Bytes read from the file at a time. */
#define FB_INBUF (64u << 10)

struct fb_reader {
    FILE *f;
    unsigned char *in; /* input buffer: in[ipos..ilen) not yet consumed */
    size_t ipos, ilen;
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

/* Refills the input buffer: 0 at the end of the file (or on a read
 * error: ferror() tells). */
static int refill(fb_reader *r)
{
    r->ipos = 0;
    r->ilen = fread(r->in, 1, FB_INBUF, r->f);
    return r->ilen > 0;
}

static int next_char(fb_reader *r)
{
    if (r->ipos == r->ilen && !refill(r))
        return EOF;
    r->off++;
    return r->in[r->ipos++];
}

static int skip_ws(fb_reader *r)
{
    int c;
    do
        c = next_char(r);
    while (c == ' ' || c == '\t' || c == '\n' || c == '\r');
    return c;
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

/* Appends @len bytes of the value being cut out to r->buf. */
static int append(fb_reader *r, const unsigned char *p, size_t len)
{
    if (r->n + len + 1 > FB_RECORD_MAX)
        return SOP_ETOOBIG;
    char *b = sop__grow(r->buf, &r->cap, r->n + len + 1, 1, 4096);
    if (!b)
        return -ENOMEM;
    r->buf = b;
    memcpy(b + r->n, p, len);
    r->n += len;
    b[r->n] = 0;
    return 0;
}

/* The state of a cut through an object, an array or a string. */
typedef struct cut_state {
    int depth, in_str, esc;
} cut_state;

/* Scans the input buffer from in[ipos] for the end of the value; returns
 * the bytes that belong to it, and sets *done when its last byte is
 * among them. */
static size_t scan(fb_reader *r, cut_state *st, int *done)
{
    const unsigned char *p = r->in + r->ipos, *q = p, *end = r->in + r->ilen;
    int depth = st->depth, in_str = st->in_str, esc = st->esc;
    *done = 0;
    for (; q < end; q++) {
        unsigned char ch = *q;
        if (in_str) {
            if (esc)
                esc = 0;
            else if (ch == '\\')
                esc = 1;
            else if (ch == '"') {
                in_str = 0;
                if (depth == 0) /* a string value */
                    break;
            }
        } else if (ch == '"') {
            in_str = 1;
        } else if (ch == '{' || ch == '[') {
            depth++;
        } else if ((ch == '}' || ch == ']') && --depth == 0) {
            break;
        }
    }
    if (q < end) {
        q++;
        *done = 1;
    }
    st->depth = depth, st->in_str = in_str, st->esc = esc;
    return (size_t)(q - p);
}

/* Cuts out the rest of an object, array or string whose first byte @c was
 * read: scanned a buffer at a time, copied in spans. */
static int cut_nested(fb_reader *r, int c)
{
    cut_state st = {.depth = c != '"', .in_str = c == '"'};
    unsigned char first = (unsigned char)c;
    int rc = append(r, &first, 1), done = 0;
    while (!rc && !done) {
        if (r->ipos == r->ilen && !refill(r))
            return truncated(r);
        size_t len = scan(r, &st, &done);
        rc = append(r, r->in + r->ipos, len);
        r->ipos += len;
        r->off += len;
    }
    if (rc == SOP_ETOOBIG)
        return fail(r, rc, "record %llu is over %u bytes", (unsigned long long)r->no,
                    FB_RECORD_MAX);
    return rc;
}

/* Cuts out the JSON value that starts with @c into r->buf; *end gets the
 * character after a scalar (a scalar ends at one), else 0. */
static int cut(fb_reader *r, int c, int *end)
{
    r->n = 0;
    *end = 0;
    int rc = 0;
    if (c == '{' || c == '[' || c == '"')
        return cut_nested(r, c);
    /* number, true, false, null */
    while (c != EOF && c != ',' && c != '}' && c != ']' && c != ' ' && c != '\n' && c != '\t' &&
           c != '\r') {
        unsigned char ch = (unsigned char)c;
        if ((rc = append(r, &ch, 1)))
            break;
        c = next_char(r);
    }
    if (c == EOF && !rc)
        return truncated(r);
    *end = c;
    return rc;
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
    if (!(r->in = sop__malloc(FB_INBUF)))
        return fail(r, -ENOMEM, "out of memory");
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

/* ---- the fast path of a record ---------------------------------------
 * The usual record, {"id": "...", "text": "...", "embedding": [numbers]}
 * (keys in any order, "embedding" optional), is read here without cJSON:
 * strings without escapes or control characters, numbers that convert
 * exactly (below). Anything else, valid or not (escapes, "metadata", other
 * keys, a repeated key, a number out of that range, a wrong count, any
 * error), is left to the general path, which parses the record with cJSON
 * and reports what is wrong: the fast path never decides an error, so both
 * accept and refuse the same records, with the same messages. */

typedef struct span {
    size_t at, len; /* in r->buf */
} span;

static const char *skip_sp(const char *p)
{
    while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')
        p++;
    return p;
}

/* A string without escapes or control characters (r->buf ends with a NUL,
 * which stops the scan): its span; NULL for any other value. */
static const char *fast_str(const char *base, const char *p, span *sp)
{
    if (*p != '"')
        return NULL;
    const char *b = ++p;
    while ((unsigned char)*p >= 0x20 && *p != '"' && *p != '\\')
        p++;
    if (*p != '"')
        return NULL;
    sp->at = (size_t)(b - base);
    sp->len = (size_t)(p - b);
    return p + 1;
}

static int digit(char c) { return c >= '0' && c <= '9'; }

/* A JSON number -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)? whose decimal
 * significand m has at most 19 digits and m <= 2^53, and whose exponent e
 * is within +-22: then m and 10^|e| are exact doubles and one IEEE
 * multiplication or division gives the correctly rounded value, the double
 * strtod() (what cJSON calls) returns. NULL otherwise. */
static const char *fast_num(const char *p, double *out)
{
    static const double p10[] = {1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,
                                   1e8,  1e9,  1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
                                   1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22};
    int neg = *p == '-', digits = 0, exp10 = 0;
    uint64_t m = 0;
    p += neg;
    if (*p == '0') {
        if (digit(*++p))
            return NULL;
    } else if (digit(*p)) {
        for (; digit(*p); p++, digits++) {
            if (digits == 19)
                return NULL;
            m = m * 10 + (uint64_t)(*p - '0');
        }
    } else {
        return NULL;
    }
    if (*p == '.') {
        if (!digit(*++p))
            return NULL;
        for (; digit(*p); p++, exp10--) {
            if (digits == 19)
                return NULL;
            m = m * 10 + (uint64_t)(*p - '0');
            digits += m != 0; /* leading zeros do not count */
        }
    }
    if (*p == 'e' || *p == 'E') {
        int eneg = *++p == '-', e = 0;
        p += *p == '-' || *p == '+';
        if (!digit(*p))
            return NULL;
        for (; digit(*p); p++)
            if (e < 1000)
                e = e * 10 + (*p - '0');
        exp10 += eneg ? -e : e;
    }
    if (m > (UINT64_C(1) << 53) || exp10 < -22 || exp10 > 22)
        return NULL;
    double v = exp10 < 0 ? (double)m / p10[-exp10] : (double)m * p10[exp10];
    *out = neg ? -v : v;
    return p;
}

/* The embedding: exactly r->dim numbers of the fast kind, into r->vec. */
static const char *fast_vec(fb_reader *r, const char *p)
{
    if (!r->dim || *p != '[')
        return NULL;
    if (!r->vec && !(r->vec = sop__malloc(r->dim * sizeof *r->vec)))
        return NULL; /* the general path reports it */
    p = skip_sp(p + 1);
    for (uint32_t i = 0;; p = skip_sp(p + 1)) {
        double v;
        if (i == r->dim || !(p = fast_num(p, &v)))
            return NULL;
        r->vec[i++] = (float)v; /* |v| < 2^53 * 1e22: finite as a float */
        p = skip_sp(p);
        if (*p == ']')
            return i == r->dim ? p + 1 : NULL;
        if (*p != ',')
            return NULL;
    }
}

enum { F_ID = 1, F_TEXT = 2, F_EMB = 4 };

static int key_of(const char *base, const span *k)
{
    const char *s = base + k->at;
    if (k->len == 2 && !memcmp(s, "id", 2))
        return F_ID;
    if (k->len == 4 && !memcmp(s, "text", 4))
        return F_TEXT;
    if (k->len == 9 && !memcmp(s, "embedding", 9))
        return F_EMB;
    return 0;
}

/* The record in r->buf by the fast path: 1 (id, text and *seen set, the
 * embedding in r->vec when F_EMB), or 0 (the general path takes it). */
static int fast_record(fb_reader *r, span *id, span *text, int *seen)
{
    const char *base = r->buf, *p = skip_sp(base + 1);
    *seen = 0;
    for (;; p = skip_sp(p + 1)) {
        span k;
        int f;
        if (!(p = fast_str(base, p, &k)) || !(f = key_of(base, &k)) || (*seen & f))
            return 0;
        p = skip_sp(p);
        if (*p != ':')
            return 0;
        p = skip_sp(p + 1);
        *seen |= f;
        p = f == F_EMB ? fast_vec(r, p) : fast_str(base, p, f == F_ID ? id : text);
        if (!p)
            return 0;
        p = skip_sp(p);
        if (*p == '}')
            break;
        if (*p != ',')
            return 0;
    }
    /* the object ends the value that was cut out */
    return p + 1 == base + r->n && (*seen & F_ID) && (*seen & F_TEXT) && id->len &&
           id->len <= FB_ID_MAX && text->len;
}

/* ---- the general path of a record ---- */

/* Parses r->buf with cJSON (kept in r->cur) and checks it: 0 with *id,
 * *text set (and the embedding in r->vec when *emb), or an error. */
static int slow_record(fb_reader *r, const char **id, const char **text, int *emb)
{
    if (!(r->cur = cJSON_ParseWithLength(r->buf, r->n)))
        return rec_fail(r, NULL, "malformed JSON");
    const cJSON *idj = cJSON_GetObjectItemCaseSensitive(r->cur, "id");
    const cJSON *tj = cJSON_GetObjectItemCaseSensitive(r->cur, "text");
    const cJSON *meta = cJSON_GetObjectItemCaseSensitive(r->cur, "metadata");
    const cJSON *ej = cJSON_GetObjectItemCaseSensitive(r->cur, "embedding");
    if (!cJSON_IsString(idj))
        return rec_fail(r, NULL, idj ? "\"id\" is not a string" : "no \"id\"");
    const char *ids = idj->valuestring;
    if (!ids[0] || strlen(ids) > FB_ID_MAX)
        return rec_fail(r, NULL, "\"id\" must be 1..256 bytes");
    if (!cJSON_IsString(tj))
        return rec_fail(r, ids, tj ? "\"text\" is not a string" : "no \"text\"");
    if (!tj->valuestring[0])
        return rec_fail(r, ids, "\"text\" is empty");
    if (meta && !cJSON_IsObject(meta))
        return rec_fail(r, ids, "\"metadata\" is not an object");
    *emb = ej != NULL;
    if (ej) {
        if (!r->dim)
            return rec_fail(r, ids, "an \"embedding\" but no \"embedder\" in the header");
        if (!cJSON_IsArray(ej))
            return rec_fail(r, ids, "\"embedding\" is not an array");
        int m = cJSON_GetArraySize(ej);
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
        cJSON_ArrayForEach(x, ej)
        {
            /* finite once rounded to a float (a wider double is undefined to convert) */
            if (!cJSON_IsNumber(x) || !(fabs(x->valuedouble) < FLT_ROUNDS_TO_INF))
                return rec_fail(r, ids,
                                "\"embedding\" holds something other than a finite number "
                                "in the range of a float");
            *o++ = (float)x->valuedouble;
        }
    }
    if (meta && !(r->meta = cJSON_PrintUnformatted(meta)))
        return -ENOMEM;
    *id = ids;
    *text = tj->valuestring;
    return 0;
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
    const char *id = NULL, *text = NULL;
    span ids, texts;
    int seen = 0, emb = 0;
    if (fast_record(r, &ids, &texts, &seen)) {
        r->buf[ids.at + ids.len] = 0; /* the closing quotes */
        r->buf[texts.at + texts.len] = 0;
        id = r->buf + ids.at;
        text = r->buf + texts.at;
        emb = (seen & F_EMB) != 0;
    } else if ((rc = slow_record(r, &id, &text, &emb))) {
        return rc;
    }
    if ((rc = ids_add(&r->ids, id)) != 0)
        return rc == 1 ? rec_fail(r, id, "duplicate id") : rc;
    rec->no = r->no;
    rec->id = id;
    rec->text = text;
    rec->metadata = r->meta;
    rec->embedding = emb ? r->vec : NULL;
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
    sop__free(r->in);
    sop__free(r->vec);
    sop__free(r);
}
