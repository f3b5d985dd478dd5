/*
 * fuzz_ollama.c - the Ollama reply parser (agents/src/llm.c): answers of
 * /api/chat (whole, and streamed as JSON lines in arbitrary chunks),
 * /api/embed and /api/tags. The HTTP layer (agents/src/http.h) is
 * replaced here: http_do() hands the input's body to the client in
 * chunks, as libcurl would, without a network.
 *
 * Feeds: byte 0 = the call (0 chat, 1 chat streamed, 2 embed, 3 health)
 * and how the transfer ends (bits 2-3: completely, dropped, timed out);
 * byte 1 the HTTP status; byte 2 the chunk size (1..256); byte 3 the
 * number of texts to embed (1..4) and (bit 7) a small response limit;
 * the rest is the response body.
 * Checks: only the documented codes, with a message; a chat answer is the
 * body's message.content (cJSON's reading of it); a streamed answer is the
 * pieces handed to the callback, end to end; embeddings are n rows of
 * finite numbers equal to cJSON's reading of the body.
 */
#include <errno.h>
#include <stdio.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "fuzz_util.h"
#include "http.h"
#include "sop/agent.h"

static struct {
    const uint8_t *body;
    size_t len, chunk;
    long status;
    int end; /* 0 complete, 1 dropped connection, 2 timeout */
} fake;

int http_init(void) { return 0; }

int http_do(const http_req *r, long *status, char *err, size_t errcap)
{
    *status = 0;
    for (size_t at = 0; at < fake.len;) {
        size_t n = fake.len - at < fake.chunk ? fake.len - at : fake.chunk;
        int rc = r->on_data(r->arg, (const char *)fake.body + at, n);
        if (rc)
            return rc;
        at += n;
    }
    *status = fake.status;
    if (fake.end == 1) {
        snprintf(err, errcap, "connection dropped (fuzz)");
        return SOP_ELLM;
    }
    if (fake.end == 2) {
        snprintf(err, errcap, "timed out (fuzz)");
        return -ETIMEDOUT;
    }
    return 0;
}

typedef struct pieces {
    char *p;
    size_t n;
} pieces;

static int on_piece(void *arg, const char *piece, size_t len)
{
    pieces *s = arg;
    if (len == 0)
        fz_fail("an empty piece");
    char *q = realloc(s->p, s->n + len + 1);
    if (!q)
        abort();
    memcpy(q + s->n, piece, len);
    s->n += len;
    q[s->n] = 0;
    s->p = q;
    return 0;
}

static void chat(sop_llm *l, int stream)
{
    sop_chat_msg m = {"user", "hello"};
    pieces s = {NULL, 0};
    char *reply = NULL;
    int rc = sop_llm_chat(l, NULL, &m, 1, stream ? on_piece : NULL, &s, &reply);
    FZ_EXPECT("sop_llm_chat", rc, SOP_OK, SOP_ELLM, -ETIMEDOUT, SOP_EFORMAT, SOP_ETOOBIG, -ENOMEM);
    if (rc && rc != -ENOMEM && !*sop_llm_errmsg(l))
        fz_fail("sop_llm_chat: %d without a message", rc);
    if (rc) {
        if (reply)
            fz_fail("a reply after an error");
        free(s.p);
        return;
    }
    if (!reply)
        fz_fail("no reply");
    if (stream && strcmp(reply, s.p ? s.p : "") != 0)
        fz_fail("the streamed pieces differ from the reply");
    if (!stream) {
        cJSON *j = cJSON_ParseWithLength((const char *)fake.body, fake.len);
        const cJSON *c = cJSON_GetObjectItemCaseSensitive(
            cJSON_GetObjectItemCaseSensitive(j, "message"), "content");
        if (!cJSON_IsString(c) || strcmp(c->valuestring, reply) != 0)
            fz_fail("the reply is not the body's message content");
        cJSON_Delete(j);
    }
    sop_free(reply);
    free(s.p);
}

static void embed(sop_llm *l, size_t n)
{
    const char *texts[4] = {"a", "b", "c", "d"};
    uint32_t dim = 0;
    float *v = NULL;
    int rc = sop_llm_embed(l, texts, n, &dim, &v);
    FZ_EXPECT("sop_llm_embed", rc, SOP_OK, SOP_ELLM, -ETIMEDOUT, SOP_EFORMAT, SOP_ETOOBIG,
              SOP_EDIM, -ENOMEM);
    if (rc && rc != -ENOMEM && !*sop_llm_errmsg(l))
        fz_fail("sop_llm_embed: %d without a message", rc);
    if (rc)
        return;
    if (dim == 0 || dim > 65536 || !v)
        fz_fail("dimension %u", dim);
    cJSON *j = cJSON_ParseWithLength((const char *)fake.body, fake.len);
    const cJSON *row = cJSON_GetObjectItemCaseSensitive(j, "embeddings");
    row = row ? row->child : NULL;
    for (size_t i = 0; i < n; i++, row = row ? row->next : NULL) {
        const cJSON *x = row ? row->child : NULL;
        for (uint32_t k = 0; k < dim; k++, x = x ? x->next : NULL) {
            float f = v[i * dim + k];
            if (!isfinite(f) || !x || (float)x->valuedouble != f)
                fz_fail("embedding %zu[%u] = %g is not the body's", i, k, f);
        }
    }
    cJSON_Delete(j);
    sop_free(v);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const long statuses[8] = {200, 200, 200, 200, 404, 500, 503, 429};
    fz_in in = {data, size};
    uint8_t b0 = fz_u8(&in), b1 = fz_u8(&in), b2 = fz_u8(&in), b3 = fz_u8(&in);
    fake.status = statuses[b1 % 8];
    fake.chunk = 1 + (size_t)b2;
    fake.end = (b0 >> 2) % 3;
    fake.body = in.p;
    fake.len = in.n;
    sop_llm_options o;
    sop_llm_options_init(&o);
    o.base_url = "http://fuzz.invalid:1";
    o.retries = 0; /* no backoff sleeps */
    o.max_response_bytes = b3 & 0x80 ? 256 : 1u << 20;
    sop_llm *l;
    if (sop_llm_open(&o, &l) != 0)
        fz_fail("sop_llm_open failed");
    switch (b0 % 4) {
    case 0: chat(l, 0); break;
    case 1: chat(l, 1); break;
    case 2: embed(l, 1 + (b3 & 3)); break;
    default: {
        int rc = sop_llm_health(l);
        FZ_EXPECT("sop_llm_health", rc, SOP_OK, SOP_ELLM, -ETIMEDOUT, SOP_EFORMAT, SOP_ETOOBIG,
                  -ENOMEM);
    }
    }
    sop_llm_close(l);
    return 0;
}
