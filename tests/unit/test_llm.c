/*
 * test_llm.c - the Ollama client (sop_llm_*) against the fake server
 * (tests/support/fake_ollama.c, path in $SOP_FAKE_OLLAMA), one server per
 * scenario, over real HTTP on loopback:
 *
 *  - ok: health; a batch of texts is one /api/embed request (the server's
 *    log), vectors deterministic and of the server's dimension; chat with
 *    and without streaming (the pieces add up to the answer); a callback
 *    that stops the stream; the LLM embedder;
 *  - faults, each with its documented error and a message: nothing
 *    listening (SOP_ELLM, retried), a slow server (-ETIMEDOUT, well
 *    before the server would answer), a dropped connection and HTTP 500
 *    (SOP_ELLM after the retries: the log counts the attempts), malformed
 *    JSON (SOP_EFORMAT), an oversized body (SOP_ETOOBIG), embeddings of
 *    differing or unexpected dimensions (SOP_EDIM), a stream cut in the
 *    middle (SOP_ELLM, not retried once pieces were delivered);
 *  - transient failures (503) then success: the retries recover;
 *  - the base URL from $OLLAMA_HOST, and bad arguments.
 */
#include <errno.h>
#include <math.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "sop/agent.h"
#include "fake_server.h"
#include "testutil.h"

typedef tu_fake server;

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Starts the fake with the options after @name (NULL-terminated). */
static void start(server *s, const char *name, ...)
{
    va_list ap;
    va_start(ap, name);
    int rc = tu_fake_startv(s, name, ap);
    va_end(ap);
    assert_int_equal(rc, 0);
}

static void stop(server *s) { tu_fake_stop(s); }
static int requests(const server *s) { return tu_fake_requests(s); }

static sop_llm *client(const server *s, uint32_t timeout_ms, uint32_t retries)
{
    sop_llm_options o;
    sop_llm_options_init(&o);
    o.base_url = s->url;
    o.timeout_ms = timeout_ms;
    o.retries = retries;
    o.backoff_ms = 10;
    sop_llm *l;
    assert_int_equal(sop_llm_open(&o, &l), 0);
    return l;
}

static const char *texts[] = {"my tummy hurts", "I feel hot", "headache", "", "sore throat"};

static int collect(void *arg, const char *p, size_t n)
{
    char *buf = arg;
    size_t have = strlen(buf);
    assert_true(have + n < 256);
    memcpy(buf + have, p, n);
    buf[have + n] = 0;
    return 0;
}

static int stop_at_first(void *arg, const char *p, size_t n)
{
    (void)p;
    (void)n;
    ++*(int *)arg;
    return 42;
}

static void test_llm_ok(void **state)
{
    (void)state;
    server s;
    start(&s, "llm_ok", "--dim", "48", "--chunk-delay-ms", "1", NULL);
    sop_llm *l = client(&s, 10000, 0);
    assert_int_equal(sop_llm_health(l), 0);
    assert_int_equal(requests(&s), 1);
    uint32_t dim = 0;
    float *v = NULL, *w = NULL;
    assert_int_equal(sop_llm_embed(l, texts, 5, &dim, &v), 0);
    assert_int_equal(dim, 48);
    assert_int_equal(requests(&s), 2); /* five texts, one request */
    for (int i = 0; i < 5; i++) {
        double ss = 0;
        for (uint32_t j = 0; j < dim; j++)
            ss += (double)v[i * dim + j] * v[i * dim + j];
        assert_true(fabs(ss - 1) < 1e-4);
    }
    assert_int_equal(sop_llm_embed(l, texts, 1, &dim, &w), 0); /* dim now required: 48 */
    assert_memory_equal(v, w, dim * sizeof *v);
    sop_free(v);
    sop_free(w);

    sop_chat_msg m = {"user", "hello there, doctor"};
    sop_chat_options co;
    sop_chat_options_init(&co);
    co.system = "be brief";
    co.temperature = 0.2;
    co.max_tokens = 64;
    char *reply = NULL;
    assert_int_equal(sop_llm_chat(l, &co, &m, 1, NULL, NULL, &reply), 0);
    assert_string_equal(reply, "fake answer to: hello there, doctor");
    sop_free(reply);
    char pieces[256] = "";
    assert_int_equal(sop_llm_chat(l, NULL, &m, 1, collect, pieces, &reply), 0);
    assert_string_equal(pieces, "fake answer to: hello there, doctor");
    assert_string_equal(reply, pieces);
    sop_free(reply);
    int calls = 0;
    assert_int_equal(sop_llm_chat(l, NULL, &m, 1, stop_at_first, &calls, &reply), 42);
    assert_int_equal(calls, 1);
    assert_null(reply);

    sop_embedder *e;
    assert_int_equal(sop_embedder_llm(l, &e), 0);
    assert_string_equal(sop_embedder_name(e), "ollama:nomic-embed-text");
    assert_int_equal(sop_embedder_dim(e), 48);
    float row[2 * 48];
    assert_int_equal(sop_embedder_embed(e, texts, 2, row), 0);
    sop_embedder_free(e);
    sop_llm_close(l);
    stop(&s);
}

static void test_llm_unreachable(void **state)
{
    (void)state;
    server s = {.pid = 0};
    snprintf(s.url, sizeof s.url, "http://127.0.0.1:1"); /* nothing listens on port 1 */
    sop_llm *l = client(&s, 2000, 2);
    double t0 = now();
    assert_int_equal(sop_llm_health(l), SOP_ELLM);
    assert_true(now() - t0 < 10);
    assert_non_null(strstr(sop_llm_errmsg(l), "127.0.0.1:1"));
    uint32_t dim = 0;
    float *v = (float *)1;
    assert_int_equal(sop_llm_embed(l, texts, 2, &dim, &v), SOP_ELLM);
    assert_null(v);
    sop_llm_close(l);
}

static void test_llm_slow(void **state)
{
    (void)state;
    server s;
    start(&s, "llm_slow", "--mode", "slow", "--delay-ms", "8000", NULL);
    sop_llm *l = client(&s, 400, 2);
    double t0 = now();
    assert_int_equal(sop_llm_health(l), -ETIMEDOUT); /* not retried: the budget is spent */
    assert_true(now() - t0 < 4);
    assert_int_equal(requests(&s), 1);
    sop_chat_msg m = {"user", "hi"};
    char pieces[256] = "";
    t0 = now();
    assert_int_equal(sop_llm_chat(l, NULL, &m, 1, collect, pieces, NULL), -ETIMEDOUT);
    assert_true(now() - t0 < 4);
    sop_llm_close(l);
    stop(&s);
}

static void test_llm_drop_and_500(void **state)
{
    (void)state;
    const char *modes[] = {"drop", "http500"};
    for (int i = 0; i < 2; i++) {
        server s;
        start(&s, modes[i], "--mode", modes[i], NULL);
        sop_llm *l = client(&s, 5000, 2);
        uint32_t dim = 0;
        float *v = NULL;
        assert_int_equal(sop_llm_embed(l, texts, 3, &dim, &v), SOP_ELLM);
        assert_int_equal(requests(&s), 3); /* one try and two retries */
        if (i == 1) {
            assert_non_null(strstr(sop_llm_errmsg(l), "HTTP 500"));
            assert_non_null(strstr(sop_llm_errmsg(l), "internal error"));
        }
        sop_llm_close(l);
        stop(&s);
    }
}

static void test_llm_fail_first_recovers(void **state)
{
    (void)state;
    server s;
    start(&s, "llm_busy", "--fail-first", "2", NULL);
    sop_llm *l = client(&s, 5000, 2);
    sop_chat_msg m = {"user", "hi"};
    char *reply = NULL;
    assert_int_equal(sop_llm_chat(l, NULL, &m, 1, NULL, NULL, &reply), 0);
    assert_string_equal(reply, "fake answer to: hi");
    sop_free(reply);
    assert_int_equal(requests(&s), 3);
    sop_llm_close(l);
    stop(&s);
}

static void test_llm_malformed(void **state)
{
    (void)state;
    server s;
    start(&s, "llm_malformed", "--mode", "malformed", NULL);
    sop_llm *l = client(&s, 5000, 0);
    uint32_t dim = 0;
    float *v = NULL;
    assert_int_equal(sop_llm_embed(l, texts, 2, &dim, &v), SOP_EFORMAT);
    assert_int_equal(sop_llm_health(l), SOP_EFORMAT);
    sop_chat_msg m = {"user", "hi"};
    char *reply = NULL;
    assert_int_equal(sop_llm_chat(l, NULL, &m, 1, NULL, NULL, &reply), SOP_EFORMAT);
    char pieces[256] = "";
    assert_int_equal(sop_llm_chat(l, NULL, &m, 1, collect, pieces, &reply), SOP_EFORMAT);
    assert_null(reply);
    sop_llm_close(l);
    stop(&s);
}

static void test_llm_oversized(void **state)
{
    (void)state;
    server s;
    start(&s, "llm_big", "--mode", "oversized", "--size", "4000000", NULL);
    sop_llm_options o;
    sop_llm_options_init(&o);
    o.base_url = s.url;
    o.max_response_bytes = 1 << 20;
    o.retries = 0;
    sop_llm *l;
    assert_int_equal(sop_llm_open(&o, &l), 0);
    uint32_t dim = 0;
    float *v = NULL;
    assert_int_equal(sop_llm_embed(l, texts, 1, &dim, &v), SOP_ETOOBIG);
    sop_chat_msg m = {"user", "hi"};
    char *reply = NULL;
    assert_int_equal(sop_llm_chat(l, NULL, &m, 1, NULL, NULL, &reply), SOP_ETOOBIG);
    char pieces[256] = "";
    assert_int_equal(sop_llm_chat(l, NULL, &m, 1, collect, pieces, &reply), SOP_ETOOBIG);
    sop_llm_close(l);
    stop(&s);
}

static void test_llm_dimensions(void **state)
{
    (void)state;
    server s;
    start(&s, "llm_dim", "--mode", "wrongdim", NULL);
    sop_llm *l = client(&s, 5000, 0);
    uint32_t dim = 0;
    float *v = NULL;
    assert_int_equal(sop_llm_embed(l, texts, 2, &dim, &v), SOP_EDIM);
    assert_null(v);
    sop_llm_close(l);
    stop(&s);
    start(&s, "llm_dim2", NULL);
    l = client(&s, 5000, 0);
    dim = 32; /* the server's is 64 */
    assert_int_equal(sop_llm_embed(l, texts, 1, &dim, &v), SOP_EDIM);
    sop_llm_close(l);
    stop(&s);
}

static void test_llm_halfstream(void **state)
{
    (void)state;
    server s;
    start(&s, "llm_half", "--mode", "halfstream", NULL);
    sop_llm *l = client(&s, 5000, 2);
    sop_chat_msg m = {"user", "a fairly long question for a long answer"};
    char pieces[256] = "", *reply = NULL;
    assert_int_equal(sop_llm_chat(l, NULL, &m, 1, collect, pieces, &reply), SOP_ELLM);
    assert_true(strlen(pieces) > 0);
    assert_int_equal(requests(&s), 1); /* pieces reached the caller: no retry */
    assert_null(reply);
    sop_llm_close(l);
    stop(&s);
}

static void test_llm_url_and_args(void **state)
{
    (void)state;
    sop_llm *l;
    sop_llm_options o;
    sop_llm_options_init(&o);
    setenv("OLLAMA_HOST", "10.1.2.3", 1);
    assert_int_equal(sop_llm_open(NULL, &l), 0);
    assert_string_equal(sop_llm_url(l), "http://10.1.2.3:11434");
    sop_llm_close(l);
    setenv("OLLAMA_HOST", "example.org:8080/", 1);
    assert_int_equal(sop_llm_open(NULL, &l), 0);
    assert_string_equal(sop_llm_url(l), "http://example.org:8080");
    sop_llm_close(l);
    setenv("OLLAMA_HOST", "https://llm.example.org", 1);
    assert_int_equal(sop_llm_open(NULL, &l), 0);
    assert_string_equal(sop_llm_url(l), "https://llm.example.org");
    sop_llm_close(l);
    unsetenv("OLLAMA_HOST");
    assert_int_equal(sop_llm_open(NULL, &l), 0);
    assert_string_equal(sop_llm_url(l), SOP_LLM_DEFAULT_URL);
    sop_llm_close(l);
    o.base_url = "ftp://x";
    assert_int_equal(sop_llm_open(&o, &l), -EINVAL);
    o.base_url = NULL;
    o.timeout_ms = 0;
    assert_int_equal(sop_llm_open(&o, &l), -EINVAL);
    assert_int_equal(sop_llm_open(NULL, NULL), -EINVAL);
    assert_int_equal(sop_llm_open(NULL, &l), 0);
    uint32_t dim = 0;
    float *v;
    const char *bad[] = {"x", NULL};
    assert_int_equal(sop_llm_embed(l, bad, 2, &dim, &v), -EINVAL);
    assert_int_equal(sop_llm_embed(l, NULL, 0, &dim, &v), 0);
    assert_int_equal(sop_llm_chat(l, NULL, NULL, 0, NULL, NULL, NULL), -EINVAL);
    sop_chat_msg m = {NULL, "x"};
    assert_int_equal(sop_llm_chat(l, NULL, &m, 1, NULL, NULL, NULL), -EINVAL);
    assert_int_equal(sop_llm_health(NULL), -EINVAL);
    sop_llm_close(l);
    sop_llm_close(NULL);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_llm_ok),
        cmocka_unit_test(test_llm_unreachable),
        cmocka_unit_test(test_llm_slow),
        cmocka_unit_test(test_llm_drop_and_500),
        cmocka_unit_test(test_llm_fail_first_recovers),
        cmocka_unit_test(test_llm_malformed),
        cmocka_unit_test(test_llm_oversized),
        cmocka_unit_test(test_llm_dimensions),
        cmocka_unit_test(test_llm_halfstream),
        cmocka_unit_test(test_llm_url_and_args),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
