/* llm.c - the Ollama client of agent.h: requests as JSON (cJSON), answers
 * bounded and parsed, retries with backoff, errors with a message. */
#include <cjson/cJSON.h>
#include <errno.h>
#include <float.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "http.h"
#include "llm.h"
#include "mem.h"

/* Doubles from this magnitude up round to an infinite float (as in
 * fallback.c): FLT_MAX plus half its last unit. */
#define FLT_ROUNDS_TO_INF ((double)FLT_MAX * (1.0 + 0x1p-24))

struct sop_llm {
    char *url, *embed_model, *chat_model;
    uint32_t connect_ms, timeout_ms, retries, backoff_ms;
    size_t max_bytes;
    char err[512];
};

void sop_llm_options_init(sop_llm_options *o)
{
    if (!o)
        return;
    memset(o, 0, sizeof *o);
    o->struct_size = sizeof *o;
    o->connect_timeout_ms = 2000;
    o->timeout_ms = 120000;
    o->max_response_bytes = 64u << 20;
    o->retries = 2;
    o->backoff_ms = 200;
}

void sop_chat_options_init(sop_chat_options *o)
{
    if (!o)
        return;
    memset(o, 0, sizeof *o);
    o->struct_size = sizeof *o;
    o->temperature = -1;
}

static int fail(sop_llm *l, int rc, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int fail(sop_llm *l, int rc, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(l->err, sizeof l->err, fmt, ap);
    va_end(ap);
    return rc;
}

/* The base URL from @u or $OLLAMA_HOST ("host", "host:port" or a URL),
 * without a trailing slash; NULL when it is not http(s). */
static char *base_url(const char *u)
{
    if (!u || !*u)
        u = getenv("OLLAMA_HOST");
    if (!u || !*u)
        u = SOP_LLM_DEFAULT_URL;
    const char *scheme = strstr(u, "://") ? "" : "http://";
    if (*scheme == 0 && strncmp(u, "http://", 7) != 0 && strncmp(u, "https://", 8) != 0)
        return NULL;
    const char *host = *scheme ? u : strstr(u, "://") + 3;
    /* a bare host gets Ollama's port (an IPv6 literal is written [..]:port) */
    const char *port = strrchr(host, ']') ? strchr(strrchr(host, ']'), ':') : strchr(host, ':');
    int add_port = *scheme && !port;
    size_t n = strlen(u);
    while (n && u[n - 1] == '/')
        n--;
    if (n == 0)
        return NULL;
    char *s = sop__malloc(strlen(scheme) + n + 7);
    if (s)
        sprintf(s, "%s%.*s%s", scheme, (int)n, u, add_port ? ":11434" : "");
    return s;
}

int sop_llm_open(const sop_llm_options *o, sop_llm **out)
{
    sop_llm_options d;
    if (!out)
        return -EINVAL;
    *out = NULL;
    if (!o) {
        sop_llm_options_init(&d);
        o = &d;
    }
    if (o->struct_size < sizeof *o || !o->connect_timeout_ms || !o->timeout_ms ||
        !o->max_response_bytes)
        return -EINVAL;
    if (http_init())
        return SOP_ELLM;
    sop_llm *l = sop__calloc(1, sizeof *l);
    if (!l)
        return -ENOMEM;
    l->url = base_url(o->base_url);
    l->embed_model = sop__strdup(o->embed_model ? o->embed_model : "nomic-embed-text");
    l->chat_model = sop__strdup(o->chat_model ? o->chat_model : "llama3");
    l->connect_ms = o->connect_timeout_ms;
    l->timeout_ms = o->timeout_ms;
    l->retries = o->retries;
    l->backoff_ms = o->backoff_ms;
    l->max_bytes = o->max_response_bytes;
    int rc = !l->embed_model || !l->chat_model ? -ENOMEM : !l->url ? -EINVAL : 0;
    if (rc) {
        sop_llm_close(l);
        return rc;
    }
    *out = l;
    return 0;
}

void sop_llm_close(sop_llm *l)
{
    if (!l)
        return;
    sop__free(l->url);
    sop__free(l->embed_model);
    sop__free(l->chat_model);
    sop__free(l);
}

const char *sop_llm_errmsg(const sop_llm *l) { return l ? l->err : ""; }
const char *sop_llm_url(const sop_llm *l) { return l ? l->url : ""; }
const char *llm_embed_model(const sop_llm *l) { return l->embed_model; }

/* ---- requests --------------------------------------------------------- */

/* A growing buffer bounded by max. */
typedef struct rbuf {
    char *p;
    size_t n, cap, max;
} rbuf;

static int rb_add(rbuf *b, const char *p, size_t n)
{
    if (n > b->max - b->n)
        return SOP_ETOOBIG;
    char *q = sop__grow(b->p, &b->cap, b->n + n + 1, 1, 4096);
    if (!q)
        return -ENOMEM;
    b->p = q;
    memcpy(q + b->n, p, n);
    b->n += n;
    q[b->n] = 0;
    return 0;
}

/* Receives a body: the whole (bounded), or a stream of JSON lines. */
typedef struct rcv {
    sop_llm *l;
    rbuf body;      /* not streaming: the body; streaming: the current line */
    rbuf reply;     /* streaming: the answer so far */
    size_t total;   /* bytes received */
    int stream, done, delivered;
    sop_token_fn fn;
    void *arg;
} recv_t;

static int on_line(recv_t *r, const char *line, size_t n)
{
    while (n && (line[n - 1] == '\r' || line[n - 1] == ' '))
        n--;
    if (!n)
        return 0;
    sop_llm *l = r->l;
    if (r->done)
        return fail(l, SOP_EFORMAT, "chat stream: data after \"done\"");
    cJSON *j = cJSON_ParseWithLength(line, n);
    if (!j)
        return fail(l, SOP_EFORMAT, "chat stream: a line is not JSON: %.60s", line);
    int rc = 0;
    const cJSON *e = cJSON_GetObjectItemCaseSensitive(j, "error");
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(j, "message");
    const cJSON *c = cJSON_GetObjectItemCaseSensitive(m, "content");
    if (cJSON_IsString(e)) {
        rc = fail(l, SOP_ELLM, "%s: the server's error: %.300s", l->url, e->valuestring);
    } else if (!cJSON_IsString(c)) {
        rc = fail(l, SOP_EFORMAT, "chat stream: a line has no message content");
    } else {
        size_t cl = strlen(c->valuestring);
        if (!(rc = rb_add(&r->reply, c->valuestring, cl)) && cl && r->fn) {
            r->delivered = 1;
            rc = r->fn(r->arg, c->valuestring, cl);
        }
        if (rc == SOP_ETOOBIG)
            fail(l, rc, "chat stream: the answer is over %zu bytes", r->reply.max);
        r->done = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(j, "done"));
    }
    cJSON_Delete(j);
    return rc;
}

static int on_data(void *arg, const char *p, size_t n)
{
    recv_t *r = arg;
    if (n > r->body.max - r->total)
        return fail(r->l, SOP_ETOOBIG, "%s: the answer is over %zu bytes", r->l->url, r->body.max);
    r->total += n;
    if (!r->stream)
        return rb_add(&r->body, p, n);
    while (n) { /* lines: the part before a newline completes the current one */
        const char *nl = memchr(p, '\n', n);
        size_t k = nl ? (size_t)(nl - p) : n;
        int rc = rb_add(&r->body, p, k);
        if (!rc && nl) {
            rc = on_line(r, r->body.p, r->body.n);
            r->body.n = 0;
            k++;
        }
        if (rc)
            return rc;
        p += k;
        n -= k;
    }
    return 0;
}

static int transient_status(long s)
{
    return s == 408 || s == 429 || s == 500 || s == 502 || s == 503 || s == 504;
}

static void sleep_ms(uint32_t ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

/* The "error" text of a JSON error body, or the body's start. */
static void http_error(sop_llm *l, long status, const rbuf *b)
{
    cJSON *j = b->n ? cJSON_ParseWithLength(b->p, b->n) : NULL;
    const cJSON *e = cJSON_GetObjectItemCaseSensitive(j, "error");
    if (cJSON_IsString(e))
        fail(l, SOP_ELLM, "%s: HTTP %ld: %.300s", l->url, status, e->valuestring);
    else
        fail(l, SOP_ELLM, "%s: HTTP %ld%s%.200s", l->url, status, b->n ? ": " : "",
             b->n ? b->p : "");
    cJSON_Delete(j);
}

/* Sends @body (NULL: GET) to @path with retries; on success r->body holds
 * the answer (not streaming) and the status was 200. */
static int call(sop_llm *l, const char *path, const char *body, recv_t *r)
{
    size_t ul = strlen(l->url) + strlen(path) + 1;
    char *url = sop__malloc(ul);
    if (!url)
        return -ENOMEM;
    snprintf(url, ul, "%s%s", l->url, path);
    http_req q = {url, body, body ? strlen(body) : 0, l->connect_ms, l->timeout_ms, on_data, r};
    int rc;
    for (uint32_t attempt = 0;; attempt++) {
        long status = 0;
        r->body.n = r->reply.n = r->total = 0;
        r->done = 0;
        l->err[0] = 0;
        rc = http_do(&q, &status, l->err, sizeof l->err);
        if (rc == 0 && status != 200) {
            if (r->stream && r->body.n == 0 && r->total == 0) /* nothing came */
                fail(l, SOP_ELLM, "%s: HTTP %ld", l->url, status);
            else
                http_error(l, status, &r->body);
            rc = SOP_ELLM;
        } else if (rc == SOP_ELLM && status && status != 200 && !l->err[0]) {
            http_error(l, status, &r->body);
        }
        int transient = (rc == SOP_ELLM && (status == 0 || transient_status(status))) &&
                        !r->delivered;
        if (!transient || attempt >= l->retries)
            break;
        sleep_ms(l->backoff_ms << (attempt < 10 ? attempt : 10));
    }
    if (rc == 0 && r->stream && r->body.n) /* a last line without its newline */
        rc = on_line(r, r->body.p, r->body.n);
    if (rc == 0 && r->stream && !r->done)
        rc = fail(l, SOP_EFORMAT, "%s: the chat stream ended without \"done\"", url);
    sop__free(url);
    return rc;
}

static void recv_free(recv_t *r)
{
    sop__free(r->body.p);
    sop__free(r->reply.p);
}

/* Parses r->body as JSON. */
static int parse_body(sop_llm *l, const recv_t *r, const char *what, cJSON **out)
{
    *out = cJSON_ParseWithLength(r->body.p ? r->body.p : "", r->body.n);
    return *out ? 0 : fail(l, SOP_EFORMAT, "%s: the %s answer is not JSON", l->url, what);
}

/* ---- the calls ---------------------------------------------------------- */

int sop_llm_health(sop_llm *l)
{
    if (!l)
        return -EINVAL;
    recv_t r = {.l = l, .body = {.max = l->max_bytes}, .reply = {.max = l->max_bytes}};
    cJSON *j = NULL;
    int rc = call(l, "/api/tags", NULL, &r);
    if (!rc)
        rc = parse_body(l, &r, "/api/tags", &j);
    if (!rc && !cJSON_IsArray(cJSON_GetObjectItemCaseSensitive(j, "models")))
        rc = fail(l, SOP_EFORMAT, "%s: /api/tags has no model list", l->url);
    cJSON_Delete(j);
    recv_free(&r);
    return rc;
}

int sop_llm_embed(sop_llm *l, const char *const *texts, size_t n, uint32_t *dim, float **vecs)
{
    if (!l || !dim || !vecs || (n && !texts))
        return -EINVAL;
    *vecs = NULL;
    if (n == 0)
        return 0;
    cJSON *q = cJSON_CreateObject(), *in = cJSON_AddArrayToObject(q, "input");
    int rc = q && in && cJSON_AddStringToObject(q, "model", l->embed_model) ? 0 : -ENOMEM;
    for (size_t i = 0; i < n && !rc; i++) {
        cJSON *s = texts[i] ? cJSON_CreateString(texts[i]) : NULL;
        if (!texts[i])
            rc = -EINVAL;
        else if (!s || !cJSON_AddItemToArray(in, s))
            rc = -ENOMEM;
    }
    char *body = rc ? NULL : cJSON_PrintUnformatted(q);
    cJSON_Delete(q);
    if (!rc && !body)
        rc = -ENOMEM;
    recv_t r = {.l = l, .body = {.max = l->max_bytes}, .reply = {.max = l->max_bytes}};
    cJSON *j = NULL;
    if (!rc)
        rc = call(l, "/api/embed", body, &r);
    cJSON_free(body);
    if (!rc)
        rc = parse_body(l, &r, "/api/embed", &j);
    const cJSON *rows = cJSON_GetObjectItemCaseSensitive(j, "embeddings");
    if (!rc && (!cJSON_IsArray(rows) || (size_t)cJSON_GetArraySize(rows) != n))
        rc = fail(l, SOP_EFORMAT, "/api/embed: %zu texts, the answer has not %zu embeddings", n, n);
    uint32_t d = 0;
    const cJSON *row;
    float *v = NULL;
    size_t i = 0;
    if (!rc)
        cJSON_ArrayForEach(row, rows)
        {
            int m = cJSON_IsArray(row) ? cJSON_GetArraySize(row) : -1;
            if (m < 0) {
                rc = fail(l, SOP_EFORMAT, "/api/embed: embedding %zu is not an array", i);
                break;
            }
            if (i == 0) {
                d = (uint32_t)m;
                if (m == 0 || m > 65536 || (*dim && d != *dim)) {
                    rc = fail(l, SOP_EDIM, "/api/embed: dimension %d, %u expected", m, *dim);
                    break;
                }
                if (!(v = sop__malloc(n * d * sizeof *v))) {
                    rc = -ENOMEM;
                    break;
                }
            } else if ((uint32_t)m != d) {
                rc = fail(l, SOP_EDIM, "/api/embed: embedding %zu has %d numbers, the first %u", i,
                          m, d);
                break;
            }
            const cJSON *x;
            float *o = v + i * d;
            cJSON_ArrayForEach(x, row)
            {
                /* finite once rounded to a float (a wider double is undefined to convert) */
                if (!cJSON_IsNumber(x) || !(fabs(x->valuedouble) < FLT_ROUNDS_TO_INF)) {
                    rc = fail(l, SOP_EFORMAT, "/api/embed: embedding %zu has a non-number or a "
                              "number out of the range of a float", i);
                    break;
                }
                *o++ = (float)x->valuedouble;
            }
            if (rc)
                break;
            i++;
        }
    cJSON_Delete(j);
    recv_free(&r);
    if (rc) {
        sop__free(v);
        return rc;
    }
    *dim = d;
    *vecs = v;
    return 0;
}

static int add_msg(cJSON *arr, const char *role, const char *content)
{
    cJSON *m = cJSON_CreateObject();
    if (!m || !cJSON_AddItemToArray(arr, m))
        return -ENOMEM;
    return cJSON_AddStringToObject(m, "role", role) && cJSON_AddStringToObject(m, "content", content)
               ? 0
               : -ENOMEM;
}

int sop_llm_chat(sop_llm *l, const sop_chat_options *o, const sop_chat_msg *msgs, size_t n,
                 sop_token_fn fn, void *arg, char **reply)
{
    sop_chat_options d;
    if (reply)
        *reply = NULL;
    if (!o) {
        sop_chat_options_init(&d);
        o = &d;
    }
    if (!l || !msgs || n == 0 || o->struct_size < sizeof *o)
        return -EINVAL;
    for (size_t i = 0; i < n; i++)
        if (!msgs[i].role || !msgs[i].content)
            return -EINVAL;
    cJSON *q = cJSON_CreateObject(), *arr = cJSON_AddArrayToObject(q, "messages");
    int rc = q && arr && cJSON_AddStringToObject(q, "model", l->chat_model) &&
                     cJSON_AddBoolToObject(q, "stream", fn != NULL)
                 ? 0
                 : -ENOMEM;
    if (!rc && o->system)
        rc = add_msg(arr, "system", o->system);
    for (size_t i = 0; i < n && !rc; i++)
        rc = add_msg(arr, msgs[i].role, msgs[i].content);
    if (!rc && (o->temperature >= 0 || o->max_tokens > 0)) {
        cJSON *op = cJSON_AddObjectToObject(q, "options");
        if (!op || (o->temperature >= 0 && !cJSON_AddNumberToObject(op, "temperature", o->temperature)) ||
            (o->max_tokens > 0 && !cJSON_AddNumberToObject(op, "num_predict", o->max_tokens)))
            rc = -ENOMEM;
    }
    char *body = rc ? NULL : cJSON_PrintUnformatted(q);
    cJSON_Delete(q);
    if (!rc && !body)
        rc = -ENOMEM;
    recv_t r = {.l = l, .body = {.max = l->max_bytes}, .reply = {.max = l->max_bytes},
                .stream = fn != NULL, .fn = fn, .arg = arg};
    if (!rc)
        rc = call(l, "/api/chat", body, &r);
    cJSON_free(body);
    cJSON *j = NULL;
    if (!rc && !fn) {
        const cJSON *c = NULL;
        if (!(rc = parse_body(l, &r, "/api/chat", &j)) &&
            !cJSON_IsString(c = cJSON_GetObjectItemCaseSensitive(
                                cJSON_GetObjectItemCaseSensitive(j, "message"), "content")))
            rc = fail(l, SOP_EFORMAT, "/api/chat: the answer has no message content");
        r.reply.n = 0;
        if (!rc)
            rc = rb_add(&r.reply, c->valuestring, strlen(c->valuestring));
    }
    cJSON_Delete(j);
    if (!rc && reply) {
        if (!r.reply.p && rb_add(&r.reply, "", 0))
            rc = -ENOMEM;
        *reply = r.reply.p;
        r.reply.p = NULL;
    }
    recv_free(&r);
    return rc;
}
