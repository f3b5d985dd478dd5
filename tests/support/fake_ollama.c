/* fake_ollama.c - a fake Ollama server on 127.0.0.1 for the RAG layer's tests.
 *
 * Test support only: built as the `fake_ollama` executable in the build
 * tree (tests/), never installed, not part of sop_testsupport. It speaks
 * the part of the Ollama HTTP API (docs/api.md of ollama/ollama) that the
 * Ollama client uses, answers deterministically, and misbehaves on demand
 * so that the client's error paths (timeouts, dropped connections, HTTP
 * errors, bad JSON, huge or inconsistent answers, cut streams, retries)
 * can be tested offline. One process, one thread, one connection at a
 * time, one request per connection: every answer has "Connection: close"
 * and the server closes the socket after it.
 *
 * Usage: fake_ollama [OPTIONS]
 *   --port P             TCP port on 127.0.0.1 only (default 0: ephemeral)
 *   --port-file FILE     after listen(), write the port and a newline to
 *                        FILE (written as FILE.tmp, then renamed: a reader
 *                        never sees a partial number)
 *   --log FILE           append one line per request, flushed at once:
 *                        "METHOD PATH n_inputs=K stream=0|1" (K: number of
 *                        /api/embed inputs, else 0; stream: 1 for a
 *                        streaming /api/chat, else 0)
 *   --mode MODE          ok (default), slow, drop, http500, malformed,
 *                        oversized, wrongdim, halfstream (below)
 *   --delay-ms N         slow: the wait before answering (default 10000)
 *   --size BYTES         oversized: the body size (default 16 MiB)
 *   --dim D              embedding dimension, 1..65536 (default 64)
 *   --reply TEXT         the chat answer (default: "fake answer to: " and
 *                        the content of the last user message)
 *   --chunk-delay-ms N   pause between streamed lines (default 0)
 *   --fail-first N       the first N requests get 503 {"error":"busy"}
 *                        (later ones get the mode's behaviour)
 *   --max-requests N     exit 0 after N requests (default: run until
 *                        SIGTERM or SIGINT, then exit 0)
 *   --read-timeout-ms N  a connection must deliver its whole request
 *                        within N ms or is closed unanswered (default 10000)
 *
 * Endpoints (unknown model names are accepted):
 *   GET  /                "Ollama is running" (text/plain)
 *   GET  /api/version     {"version":"0.0.0-fake"}
 *   GET  /api/tags        {"models":[{"name":"fake-embed:latest",...},
 *                         {"name":"fake-chat:latest",...}]}
 *   POST /api/embed       {"model":M,"input":"text"|["t1",...]} ->
 *                         {"model":M,"embeddings":[[...],...],...}: one unit
 *                         vector of D numbers (%.9g) per input, made only
 *                         from that input: each lowercased word (a run of
 *                         ASCII letters, digits and non-ASCII bytes) is
 *                         hashed (FNV-1a, then MurmurHash3's finaliser) and
 *                         adds +-1 (top bit) to bucket hash % D; then L2
 *                         normalisation. A text with no word (or whose
 *                         words cancel out) gives [1,0,0,...]
 *   POST /api/chat        {"model":M,"messages":[{"role":..,"content":..}],
 *                         "stream":true|false (absent: true)} ->
 *                         stream false: one JSON object with "message"
 *                         {"role":"assistant","content":REPLY}, "done":true;
 *                         stream true: application/x-ndjson in chunked
 *                         transfer encoding, one object per line (one write
 *                         each) with about 4 UTF-8 characters of REPLY in
 *                         message.content and "done":false, then a last
 *                         line with content "" and "done":true,
 *                         "done_reason":"stop"
 *   anything else         404 {"error":"not found"}
 * A body that is not JSON, or lacks "model", "input" (strings) or
 * "messages" (array), or has a non-boolean "stream", gets 400
 * {"error":...}; a Content-Length over 64 MiB gets 413 (before any 100
 * Continue); a chunked request body gets 411. "Expect: 100-continue" is
 * answered with "HTTP/1.1 100 Continue" before the body is read.
 *
 * Order: a request is read whole (head, then exactly Content-Length body
 * bytes) and logged; an unknown path gets 404 and a bad body 400; then
 * --fail-first; then the mode. Every request read counts (for
 * --fail-first, --max-requests and the log), whatever its answer; a
 * connection that sends no complete request within --read-timeout-ms is
 * closed and not counted. While one connection is served (a slow answer,
 * a delayed stream), the next ones wait in the listen backlog.
 *
 * Modes. These three act on every valid request, after --fail-first:
 *   slow        read the request, then wait --delay-ms before sending
 *               anything (ends early when the client hangs up)
 *   drop        read the request, then close without answering
 *   http500     500 {"error":"internal error"}
 * These change only the answers of /api/embed and /api/chat (and, for
 * malformed and halfstream, of every JSON answer with status 200):
 *   malformed   200 with the first half of the normal body only, so not
 *               valid JSON (Content-Length matches what is sent); a
 *               streaming chat gets a garbage line after its first line
 *   oversized   200 with a valid JSON body of --size bytes, sent in
 *               pieces, never held in memory: embed pads one vector with
 *               zeros, chat pads the content with 'a'; a streaming chat
 *               sends it as one NDJSON line (done:true) of --size bytes
 *               including its newline. A --size smaller than the smallest
 *               such object gives that object.
 *   wrongdim    embed: inputs 2, 4, ... (odd indexes) get D+1 numbers
 *   halfstream  a streaming chat sends two content lines, then closes
 *               without the last line or the end chunk; other answers
 *               announce the whole Content-Length and send half of it
 *
 * From a C test: fork(), execv(getenv("SOP_FAKE_OLLAMA"), {"fake_ollama",
 * "--port-file", PATH, "--mode", ..., NULL}) in the child; in the parent
 * poll every few ms (give up after some seconds, or when waitpid(pid,
 * WNOHANG) says it died) until PATH exists, read the port, use
 * http://127.0.0.1:PORT; at the end kill(pid, SIGTERM) and waitpid (exit
 * status 0; SIGTERM ends it at once, even in the middle of an answer).
 * With --max-requests N it exits 0 by itself after N requests. ctest sets
 * SOP_FAKE_OLLAMA for the tests made by sop_add_test (tests/CMakeLists.txt).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <cjson/cJSON.h>
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#define HEAD_MAX (64u * 1024u)               /* request line and headers */
#define BODY_MAX (64ull * 1024u * 1024u)     /* request body: 413 above */
#define PIECE (64u * 1024u)                  /* oversized answers: bytes per write */
#define CHUNK_CHARS 4                        /* UTF-8 characters per streamed line */
#define LINGER_MS 1000                       /* waiting for the client's close */
#define CREATED_AT "2026-01-01T00:00:00Z"

/* ------------------------------------------------------------------ options */

enum fo_mode {
    M_OK, M_SLOW, M_DROP, M_HTTP500, M_MALFORMED, M_OVERSIZED, M_WRONGDIM, M_HALFSTREAM
};
static const char *const mode_names[] = {"ok",        "slow",      "drop",     "http500",
                                         "malformed", "oversized", "wrongdim", "halfstream"};

typedef struct fo_opts {
    unsigned port;
    const char *port_file, *log_path, *reply;
    enum fo_mode mode;
    unsigned long long delay_ms, size, chunk_delay_ms, read_timeout_ms, fail_first, max_requests;
    unsigned dim;
} fo_opts;

static void usage(FILE *f)
{
    fputs("Usage: fake_ollama [--port P] [--port-file FILE] [--log FILE]\n"
          "         [--mode ok|slow|drop|http500|malformed|oversized|wrongdim|halfstream]\n"
          "         [--delay-ms N] [--size BYTES] [--dim D] [--reply TEXT]\n"
          "         [--chunk-delay-ms N] [--fail-first N] [--max-requests N]\n"
          "         [--read-timeout-ms N]\n"
          "A fake Ollama server on 127.0.0.1 for tests; see the top of fake_ollama.c.\n",
          f);
}

/* Parses a decimal number in [lo, hi]; 0 on success, -1 after a message. */
static int parse_num(const char *name, const char *s, unsigned long long lo, unsigned long long hi,
                     unsigned long long *out)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (s[0] < '0' || s[0] > '9' || *end || errno || v < lo || v > hi) {
        fprintf(stderr, "fake_ollama: --%s: expected a number in [%llu, %llu], got '%s'\n", name,
                lo, hi, s);
        return -1;
    }
    *out = v;
    return 0;
}

static int parse_mode(const char *s, enum fo_mode *out)
{
    for (size_t i = 0; i < sizeof mode_names / sizeof mode_names[0]; i++) {
        if (strcmp(s, mode_names[i]) == 0) {
            *out = (enum fo_mode)i;
            return 0;
        }
    }
    fprintf(stderr, "fake_ollama: unknown --mode '%s'\n", s);
    return -1;
}

/* Fills @o from argv. Returns -1 to go on, else the exit status (0 for
 * --help, 2 for a usage error). */
static int parse_args(int argc, char **argv, fo_opts *o)
{
    enum { O_PORT = 256, O_PORT_FILE, O_LOG, O_MODE, O_DELAY, O_SIZE, O_DIM, O_REPLY, O_CHUNK_DELAY,
           O_FAIL_FIRST, O_MAX_REQ, O_READ_TIMEOUT, O_HELP };
    static const struct option longopts[] = {
        {"port", required_argument, NULL, O_PORT},
        {"port-file", required_argument, NULL, O_PORT_FILE},
        {"log", required_argument, NULL, O_LOG},
        {"mode", required_argument, NULL, O_MODE},
        {"delay-ms", required_argument, NULL, O_DELAY},
        {"size", required_argument, NULL, O_SIZE},
        {"dim", required_argument, NULL, O_DIM},
        {"reply", required_argument, NULL, O_REPLY},
        {"chunk-delay-ms", required_argument, NULL, O_CHUNK_DELAY},
        {"fail-first", required_argument, NULL, O_FAIL_FIRST},
        {"max-requests", required_argument, NULL, O_MAX_REQ},
        {"read-timeout-ms", required_argument, NULL, O_READ_TIMEOUT},
        {"help", no_argument, NULL, O_HELP},
        {NULL, 0, NULL, 0}};
    const unsigned long long big = 1ull << 40, day_ms = 86400000ull;
    unsigned long long v = 0;
    *o = (fo_opts){.mode = M_OK, .delay_ms = 10000, .size = 16u << 20, .dim = 64,
                   .read_timeout_ms = 10000};
    int c, bad = 0, idx = 0;
    while (!bad && (c = getopt_long(argc, argv, "", longopts, &idx)) != -1) {
        const char *nm = c >= O_PORT ? longopts[idx].name : "";
        switch (c) {
        case O_PORT: bad = parse_num(nm, optarg, 0, 65535, &v); o->port = (unsigned)v; break;
        case O_PORT_FILE: o->port_file = optarg; break;
        case O_LOG: o->log_path = optarg; break;
        case O_MODE: bad = parse_mode(optarg, &o->mode); break;
        case O_DELAY: bad = parse_num(nm, optarg, 0, day_ms, &o->delay_ms); break;
        case O_SIZE: bad = parse_num(nm, optarg, 0, big, &o->size); break;
        case O_DIM: bad = parse_num(nm, optarg, 1, 65536, &v); o->dim = (unsigned)v; break;
        case O_REPLY: o->reply = optarg; break;
        case O_CHUNK_DELAY: bad = parse_num(nm, optarg, 0, day_ms, &o->chunk_delay_ms); break;
        case O_FAIL_FIRST: bad = parse_num(nm, optarg, 0, big, &o->fail_first); break;
        case O_MAX_REQ: bad = parse_num(nm, optarg, 0, big, &o->max_requests); break;
        case O_READ_TIMEOUT: bad = parse_num(nm, optarg, 1, day_ms, &o->read_timeout_ms); break;
        case O_HELP: usage(stdout); return 0;
        default: bad = 1; break;
        }
    }
    if (!bad && optind < argc) {
        fprintf(stderr, "fake_ollama: unexpected argument '%s'\n", argv[optind]);
        bad = 1;
    }
    if (bad) {
        usage(stderr);
        return 2;
    }
    return -1;
}

/* ----------------------------------------------------------- small helpers */

static void die_oom(void)
{
    fputs("fake_ollama: out of memory\n", stderr);
    abort();
}

static void *xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p)
        die_oom();
    return p;
}

/* A growing byte string, always NUL-terminated once anything was added. */
typedef struct sbuf {
    char *p;
    size_t len, cap;
} sbuf;

static void sb_add(sbuf *b, const void *s, size_t n)
{
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + n + 1)
            cap *= 2;
        char *p = realloc(b->p, cap);
        if (!p)
            die_oom();
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

static void sb_puts(sbuf *b, const char *s) { sb_add(b, s, strlen(s)); }

__attribute__((format(printf, 2, 3))) static void sb_printf(sbuf *b, const char *fmt, ...)
{
    char tmp[256];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof tmp) { /* only short formats are used */
        fputs("fake_ollama: internal error: long format\n", stderr);
        abort();
    }
    sb_add(b, tmp, (size_t)n);
}

/* @s as a JSON string literal with its quotes (malloc'd). */
static char *json_quote(const char *s)
{
    cJSON *str = cJSON_CreateString(s);
    char *q = str ? cJSON_PrintUnformatted(str) : NULL;
    cJSON_Delete(str);
    if (!q)
        die_oom();
    return q;
}

/* @obj printed unformatted, with a newline if @nl (malloc'd); frees @obj. */
static char *json_take(cJSON *obj, int nl, size_t *len)
{
    char *s = obj ? cJSON_PrintUnformatted(obj) : NULL;
    cJSON_Delete(obj);
    if (!s)
        die_oom();
    size_t n = strlen(s);
    if (nl) {
        char *t = realloc(s, n + 2);
        if (!t)
            die_oom();
        s = t;
        s[n++] = '\n';
        s[n] = '\0';
    }
    *len = n;
    return s;
}

static void now(struct timespec *t) { clock_gettime(CLOCK_MONOTONIC, t); }

/* Milliseconds from now until @deadline (0 when it has passed). */
static int ms_left(const struct timespec *deadline)
{
    struct timespec t;
    now(&t);
    long long ms = (long long)(deadline->tv_sec - t.tv_sec) * 1000 +
                   (deadline->tv_nsec - t.tv_nsec) / 1000000;
    return ms <= 0 ? 0 : ms > 86400000 ? 86400000 : (int)ms;
}

static void deadline_in(struct timespec *d, unsigned long long ms)
{
    now(d);
    d->tv_sec += (time_t)(ms / 1000);
    d->tv_nsec += (long)(ms % 1000) * 1000000L;
    if (d->tv_nsec >= 1000000000L) {
        d->tv_sec++;
        d->tv_nsec -= 1000000000L;
    }
}

static void sleep_ms(unsigned long long ms)
{
    struct timespec t = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};
    while (nanosleep(&t, &t) != 0 && errno == EINTR) {
    }
}

/* Waits @ms, or less if the peer of @fd hangs up first. */
static void wait_unless_hangup(int fd, unsigned long long ms)
{
    struct timespec d;
    deadline_in(&d, ms);
    for (;;) {
        int left = ms_left(&d);
        if (left == 0)
            return;
        struct pollfd p = {.fd = fd, .events = POLLRDHUP};
        int r = poll(&p, 1, left);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0 || (r > 0 && (p.revents & (POLLRDHUP | POLLHUP | POLLERR)))) {
            return;
        }
        if (r > 0) { /* stray bytes, not a hang-up: just sleep the rest */
            sleep_ms((unsigned long long)ms_left(&d));
            return;
        }
    }
}

/* ------------------------------------------------------------------ output */

/* Sends all of @p; 0, or -1 when the client is gone. */
static int send_all(int fd, const void *p, size_t n)
{
    const char *c = p;
    while (n > 0) {
        ssize_t w = send(fd, c, n, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        c += w;
        n -= (size_t)w;
    }
    return 0;
}

static const char *reason(int code)
{
    switch (code) {
    case 200: return "OK";
    case 400: return "Bad Request";
    case 404: return "Not Found";
    case 411: return "Length Required";
    case 413: return "Payload Too Large";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 503: return "Service Unavailable";
    default: return "Unknown";
    }
}

/* Status line and headers; @clen < 0 means chunked transfer encoding. */
static int send_head(int fd, int code, const char *ctype, long long clen)
{
    sbuf b = {0};
    sb_printf(&b, "HTTP/1.1 %d %s\r\nContent-Type: %s\r\n", code, reason(code), ctype);
    if (clen < 0)
        sb_puts(&b, "Transfer-Encoding: chunked\r\n");
    else
        sb_printf(&b, "Content-Length: %lld\r\n", clen);
    sb_puts(&b, "Connection: close\r\n\r\n");
    int r = send_all(fd, b.p, b.len);
    free(b.p);
    return r;
}

/* A body writer: plain, or one HTTP chunk per write when chunked. */
typedef struct out {
    int fd, chunked;
} out;

static int out_write(const out *o, const void *p, size_t n)
{
    if (!o->chunked)
        return send_all(o->fd, p, n);
    if (n == 0)
        return 0;
    sbuf b = {0};
    sb_printf(&b, "%zx\r\n", n);
    sb_add(&b, p, n);
    sb_add(&b, "\r\n", 2);
    int r = send_all(o->fd, b.p, b.len);
    free(b.p);
    return r;
}

static int out_end(const out *o) { return o->chunked ? send_all(o->fd, "0\r\n\r\n", 5) : 0; }

/* @n bytes made of copies of @unit (whose length divides @n), in pieces. */
static int out_fill(const out *o, const char *unit, unsigned long long n)
{
    size_t ul = strlen(unit);
    char *piece = xmalloc(PIECE);
    for (size_t i = 0; i + ul <= PIECE; i += ul)
        memcpy(piece + i, unit, ul);
    size_t full = PIECE / ul * ul;
    int r = 0;
    while (r == 0 && n > 0) {
        size_t k = n < full ? (size_t)n : full;
        r = out_write(o, piece, k);
        n -= k;
    }
    free(piece);
    return r;
}

static int send_json(int fd, int code, const char *body, size_t len)
{
    if (send_head(fd, code, "application/json; charset=utf-8", (long long)len) < 0)
        return -1;
    return send_all(fd, body, len);
}

static int send_error(int fd, int code, const char *msg)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "error", msg);
    size_t len;
    char *s = json_take(o, 0, &len);
    int r = send_json(fd, code, s, len);
    free(s);
    return r;
}

/* A 200 JSON answer as the mode wants it: whole, first half only
 * (malformed), or whole length announced and half sent (halfstream). */
static int send_ok_json(const fo_opts *o, int fd, const char *body, size_t len)
{
    if (o->mode == M_MALFORMED)
        return send_json(fd, 200, body, len / 2);
    if (o->mode == M_HALFSTREAM) {
        if (send_head(fd, 200, "application/json; charset=utf-8", (long long)len) < 0)
            return -1;
        return send_all(fd, body, len / 2);
    }
    return send_json(fd, 200, body, len);
}

/* ---------------------------------------------------------- request input */

typedef struct fo_req {
    char method[16], path[2048];
    char *buf;        /* bytes read so far: head, then possibly body bytes */
    size_t len, head_len;
    unsigned long long content_length;
    int expect_continue, chunked;
    char *body;       /* content_length bytes and a NUL */
    size_t body_len;
} fo_req;

/* Reads some bytes before @deadline: >0 bytes, 0 end of stream, -1 error
 * or timeout. */
static ssize_t recv_some(int fd, void *p, size_t n, const struct timespec *deadline)
{
    for (;;) {
        struct pollfd pf = {.fd = fd, .events = POLLIN};
        int left = ms_left(deadline);
        int r = left > 0 ? poll(&pf, 1, left) : 0;
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return -1;
        ssize_t k = recv(fd, p, n, 0);
        if (k < 0 && errno == EINTR)
            continue;
        return k;
    }
}

/* Reads until the blank line that ends the headers. 0, 431, or -1 (the
 * client sent nothing complete in time). */
static int read_head(int fd, fo_req *r, const struct timespec *deadline)
{
    r->buf = xmalloc(HEAD_MAX + 1);
    for (;;) {
        char *end = r->len >= 4 ? memmem(r->buf, r->len, "\r\n\r\n", 4) : NULL;
        if (end) {
            r->head_len = (size_t)(end - r->buf) + 4;
            return 0;
        }
        if (r->len == HEAD_MAX)
            return 431;
        ssize_t k = recv_some(fd, r->buf + r->len, HEAD_MAX - r->len, deadline);
        if (k <= 0)
            return -1;
        r->len += (size_t)k;
    }
}

/* One header line "Name: value" (not NUL-terminated, @n bytes). */
static int parse_header(fo_req *r, const char *line, size_t n)
{
    const char *colon = memchr(line, ':', n);
    if (!colon)
        return 400;
    size_t nl = (size_t)(colon - line);
    const char *v = colon + 1, *e = line + n;
    while (v < e && (*v == ' ' || *v == '\t'))
        v++;
    while (e > v && (e[-1] == ' ' || e[-1] == '\t'))
        e--;
    size_t vl = (size_t)(e - v);
    if (nl == 14 && strncasecmp(line, "Content-Length", 14) == 0) {
        unsigned long long x = 0;
        if (vl == 0 || vl > 15)
            return 400;
        for (size_t i = 0; i < vl; i++) {
            if (v[i] < '0' || v[i] > '9')
                return 400;
            x = x * 10 + (unsigned)(v[i] - '0');
        }
        r->content_length = x;
    } else if (nl == 6 && strncasecmp(line, "Expect", 6) == 0) {
        r->expect_continue = vl == 12 && strncasecmp(v, "100-continue", 12) == 0;
    } else if (nl == 17 && strncasecmp(line, "Transfer-Encoding", 17) == 0) {
        r->chunked = memmem(v, vl, "chunked", 7) != NULL;
    }
    return 0;
}

/* The request line and the headers: 0, or an HTTP error status. */
static int parse_head(fo_req *r)
{
    const char *p = r->buf, *end = r->buf + r->head_len - 2;
    const char *eol = memmem(p, (size_t)(end - p), "\r\n", 2);
    if (!eol)
        return 400;
    const char *sp1 = memchr(p, ' ', (size_t)(eol - p));
    const char *sp2 = sp1 ? memchr(sp1 + 1, ' ', (size_t)(eol - sp1 - 1)) : NULL;
    if (!sp2 || sp1 == p || (size_t)(sp1 - p) >= sizeof r->method || sp2 == sp1 + 1 ||
        (size_t)(sp2 - sp1 - 1) >= sizeof r->path || eol - sp2 - 1 != 8 ||
        strncmp(sp2 + 1, "HTTP/1.", 7) != 0)
        return 400;
    memcpy(r->method, p, (size_t)(sp1 - p));
    memcpy(r->path, sp1 + 1, (size_t)(sp2 - sp1 - 1));
    for (p = eol + 2; p < end; p = eol + 2) {
        eol = memmem(p, (size_t)(end - p), "\r\n", 2);
        int st = eol ? parse_header(r, p, (size_t)(eol - p)) : 400;
        if (st)
            return st;
    }
    return 0;
}

/* Reads the body (sending 100 Continue first if asked): 0, or -1. */
static int read_body(int fd, fo_req *r, const struct timespec *deadline)
{
    size_t cl = (size_t)r->content_length, have = r->len - r->head_len;
    if (have > cl)
        have = cl; /* pipelined bytes after the body are ignored */
    r->body = xmalloc(cl + 1);
    memcpy(r->body, r->buf + r->head_len, have);
    if (have < cl && r->expect_continue &&
        send_all(fd, "HTTP/1.1 100 Continue\r\n\r\n", 25) < 0)
        return -1;
    while (have < cl) {
        ssize_t k = recv_some(fd, r->body + have, cl - have, deadline);
        if (k <= 0)
            return -1;
        have += (size_t)k;
    }
    r->body[cl] = '\0';
    r->body_len = cl;
    return 0;
}

/* Reads one request: 0 with the body read, an HTTP error status to
 * answer (the request line was read), or -1 for nothing to answer. */
static int read_request(const fo_opts *o, int fd, fo_req *r)
{
    struct timespec deadline;
    deadline_in(&deadline, o->read_timeout_ms);
    int st = read_head(fd, r, &deadline);
    if (st == 0)
        st = parse_head(r);
    if (st != 0)
        return st;
    if (r->chunked)
        return 411;
    if (r->content_length > BODY_MAX)
        return 413;
    return read_body(fd, r, &deadline);
}

static void free_request(fo_req *r)
{
    free(r->buf);
    free(r->body);
}

/* ------------------------------------------------------------ the answers */

enum route { R_NONE, R_ROOT, R_VERSION, R_TAGS, R_EMBED, R_CHAT };

static enum route route_of(const fo_req *r)
{
    size_t n = strcspn(r->path, "?");
    int get = strcmp(r->method, "GET") == 0, post = strcmp(r->method, "POST") == 0;
#define IS(p) (n == strlen(p) && strncmp(r->path, p, n) == 0)
    if (get && IS("/"))
        return R_ROOT;
    if (get && IS("/api/version"))
        return R_VERSION;
    if (get && IS("/api/tags"))
        return R_TAGS;
    if (post && IS("/api/embed"))
        return R_EMBED;
    if (post && IS("/api/chat"))
        return R_CHAT;
#undef IS
    return R_NONE;
}

/* Number of inputs of an /api/embed body (0 when not one). */
static int embed_inputs(const cJSON *body)
{
    const cJSON *in = cJSON_GetObjectItemCaseSensitive(body, "input");
    return cJSON_IsString(in) ? 1 : cJSON_IsArray(in) ? cJSON_GetArraySize(in) : 0;
}

/* "stream" of an /api/chat body: 1 (also when absent), 0, or -1 when it
 * is not a boolean. */
static int chat_stream(const cJSON *body)
{
    const cJSON *s = cJSON_GetObjectItemCaseSensitive(body, "stream");
    return !s ? 1 : cJSON_IsBool(s) ? cJSON_IsTrue(s) : -1;
}

/* Why the body of @rt is unacceptable, or NULL. */
static const char *invalid_body(enum route rt, const cJSON *body)
{
    if (rt != R_EMBED && rt != R_CHAT)
        return NULL;
    if (!cJSON_IsObject(body))
        return "invalid JSON body";
    if (!cJSON_IsString(cJSON_GetObjectItemCaseSensitive(body, "model")))
        return "model is required";
    if (rt == R_CHAT) {
        if (!cJSON_IsArray(cJSON_GetObjectItemCaseSensitive(body, "messages")))
            return "messages must be an array";
        return chat_stream(body) < 0 ? "stream must be a boolean" : NULL;
    }
    const cJSON *in = cJSON_GetObjectItemCaseSensitive(body, "input"), *e;
    if (cJSON_IsString(in))
        return NULL;
    if (!cJSON_IsArray(in))
        return "input must be a string or an array of strings";
    cJSON_ArrayForEach(e, in) {
        if (!cJSON_IsString(e))
            return "input must be a string or an array of strings";
    }
    return NULL;
}

static int send_tags(const fo_opts *o, int fd)
{
    static const char *const names[] = {"fake-embed:latest", "fake-chat:latest"};
    cJSON *root = cJSON_CreateObject(), *models = cJSON_AddArrayToObject(root, "models");
    for (size_t i = 0; i < 2; i++) {
        cJSON *m = cJSON_CreateObject();
        cJSON_AddStringToObject(m, "name", names[i]);
        cJSON_AddStringToObject(m, "model", names[i]);
        cJSON_AddStringToObject(m, "modified_at", CREATED_AT);
        cJSON_AddNumberToObject(m, "size", 1);
        cJSON_AddItemToArray(models, m);
    }
    size_t len;
    char *s = json_take(root, 0, &len);
    int r = send_ok_json(o, fd, s, len);
    free(s);
    return r;
}

static int send_version(const fo_opts *o, int fd)
{
    static const char body[] = "{\"version\":\"0.0.0-fake\"}";
    return send_ok_json(o, fd, body, sizeof body - 1);
}

static int send_root(int fd)
{
    static const char body[] = "Ollama is running";
    if (send_head(fd, 200, "text/plain; charset=utf-8", (long long)sizeof body - 1) < 0)
        return -1;
    return send_all(fd, body, sizeof body - 1);
}

static uint64_t fnv1a_step(uint64_t h, unsigned char c) { return (h ^ c) * 0x100000001b3ull; }

/* MurmurHash3's 64-bit finaliser: spreads every bit of @h over all bits. */
static uint64_t fmix64(uint64_t h)
{
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdull;
    h ^= h >> 33;
    h *= 0xc4ceb9fe1a85ec53ull;
    return h ^ (h >> 33);
}

static int is_word_byte(unsigned char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c >= 0x80;
}

/* The fake embedding of @text into @v[0..dim): see the top of the file. */
static void embed_text(const char *text, unsigned dim, double *v)
{
    const unsigned char *p = (const unsigned char *)text;
    memset(v, 0, dim * sizeof *v);
    while (*p) {
        uint64_t h = 0xcbf29ce484222325ull;
        size_t n = 0;
        for (; *p && is_word_byte(*p); p++, n++)
            h = fnv1a_step(h, (unsigned char)(*p >= 'A' && *p <= 'Z' ? *p + 32 : *p));
        if (n > 0) {
            h = fmix64(h); /* FNV-1a's low bits alone collide too often */
            v[h % dim] += (h >> 63) ? -1.0 : 1.0;
        }
        for (; *p && !is_word_byte(*p); p++) {
        }
    }
    double ss = 0;
    for (unsigned i = 0; i < dim; i++)
        ss += v[i] * v[i];
    if (ss == 0) {
        v[0] = 1.0;
        return;
    }
    double inv = 1.0 / sqrt(ss);
    for (unsigned i = 0; i < dim; i++)
        v[i] *= inv;
}

static void add_vector(sbuf *b, const char *text, unsigned dim)
{
    double *v = xmalloc(dim * sizeof *v);
    embed_text(text, dim, v);
    sb_puts(b, "[");
    for (unsigned i = 0; i < dim; i++)
        sb_printf(b, i ? ",%.9g" : "%.9g", v[i]);
    sb_puts(b, "]");
    free(v);
}

/* The oversized embed answer: one vector padded with zeros to --size. */
static int send_embed_oversized(const fo_opts *o, int fd, const char *qmodel)
{
    sbuf pre = {0};
    sb_printf(&pre, "{\"model\":");
    sb_puts(&pre, qmodel);
    sb_puts(&pre, ",\"embeddings\":[[");
    unsigned long long fixed = pre.len + 4, fill = o->size > fixed ? o->size - fixed : 0;
    const char *suffix = fill % 2 ? "10]]}" : "0]]}"; /* fill is made of "0," */
    fill -= fill % 2;
    out w = {fd, 0};
    int r = send_head(fd, 200, "application/json; charset=utf-8",
                      (long long)(pre.len + fill + strlen(suffix)));
    if (r == 0)
        r = out_write(&w, pre.p, pre.len);
    if (r == 0)
        r = out_fill(&w, "0,", fill);
    if (r == 0)
        r = out_write(&w, suffix, strlen(suffix));
    free(pre.p);
    return r;
}

static int send_embed(const fo_opts *o, int fd, const cJSON *body)
{
    const cJSON *in = cJSON_GetObjectItemCaseSensitive(body, "input"), *e;
    char *qmodel = json_quote(cJSON_GetObjectItemCaseSensitive(body, "model")->valuestring);
    int r;
    if (o->mode == M_OVERSIZED) {
        r = send_embed_oversized(o, fd, qmodel);
    } else {
        sbuf b = {0};
        sb_puts(&b, "{\"model\":");
        sb_puts(&b, qmodel);
        sb_puts(&b, ",\"embeddings\":[");
        unsigned i = 0;
        if (cJSON_IsString(in)) {
            add_vector(&b, in->valuestring, o->dim);
            i = 1;
        } else {
            cJSON_ArrayForEach(e, in) {
                if (i)
                    sb_puts(&b, ",");
                add_vector(&b, e->valuestring, o->dim + (o->mode == M_WRONGDIM && i % 2 == 1));
                i++;
            }
        }
        sb_printf(&b, "],\"total_duration\":1000,\"load_duration\":0,\"prompt_eval_count\":%u}", i);
        r = send_ok_json(o, fd, b.p, b.len);
        free(b.p);
    }
    free(qmodel);
    return r;
}

/* The chat answer (malloc'd): --reply, or "fake answer to: " and the
 * content of the last user message. */
static char *chat_reply(const fo_opts *o, const cJSON *body)
{
    if (o->reply) {
        char *s = strdup(o->reply);
        if (!s)
            die_oom();
        return s;
    }
    const char *last = "";
    const cJSON *m;
    cJSON_ArrayForEach(m, cJSON_GetObjectItemCaseSensitive(body, "messages")) {
        const cJSON *role = cJSON_GetObjectItemCaseSensitive(m, "role");
        const cJSON *content = cJSON_GetObjectItemCaseSensitive(m, "content");
        if (cJSON_IsString(role) && strcmp(role->valuestring, "user") == 0 &&
            cJSON_IsString(content))
            last = content->valuestring;
    }
    sbuf b = {0};
    sb_puts(&b, "fake answer to: ");
    sb_puts(&b, last);
    return b.p;
}

/* One chat object with @clen bytes of @content, "done":@done and, when
 * done, "done_reason":"stop"; a newline after it when @nl. Returns its
 * text (malloc'd). */
static char *chat_object(const char *model, const char *content, size_t clen, int done, int nl,
                         size_t *len)
{
    char *c = xmalloc(clen + 1);
    memcpy(c, content, clen);
    c[clen] = '\0';
    cJSON *o = cJSON_CreateObject(), *msg = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "model", model);
    cJSON_AddStringToObject(o, "created_at", CREATED_AT);
    cJSON_AddStringToObject(msg, "role", "assistant");
    cJSON_AddStringToObject(msg, "content", c);
    cJSON_AddItemToObject(o, "message", msg);
    cJSON_AddBoolToObject(o, "done", done);
    if (done)
        cJSON_AddStringToObject(o, "done_reason", "stop");
    free(c);
    return json_take(o, nl, len);
}

/* Bytes of the first @chars UTF-8 characters of @s (at most @n bytes). */
static size_t utf8_prefix(const char *s, size_t n, int chars)
{
    size_t i = 0;
    while (i < n && chars-- > 0) {
        i++;
        while (i < n && ((unsigned char)s[i] & 0xC0) == 0x80)
            i++;
    }
    return i;
}

/* The oversized chat answer: content padded with 'a' to --size bytes;
 * one NDJSON line (with its newline) when streaming. */
static int send_chat_oversized(const fo_opts *o, int fd, const char *model, int stream)
{
    size_t len;
    char *whole = chat_object(model, "", 0, 1, stream, &len);
    char *split = strstr(whole, "\"content\":\"\"") + 11; /* between the quotes */
    unsigned long long fill = o->size > len ? o->size - len : 0;
    out w = {fd, stream};
    int r = send_head(fd, 200, stream ? "application/x-ndjson" : "application/json; charset=utf-8",
                      stream ? -1 : (long long)(len + fill));
    if (r == 0)
        r = out_write(&w, whole, (size_t)(split - whole));
    if (r == 0)
        r = out_fill(&w, "a", fill);
    if (r == 0)
        r = out_write(&w, split, len - (size_t)(split - whole));
    if (r == 0)
        r = out_end(&w);
    free(whole);
    return r;
}

/* Sends one streamed line (as one chunk), after --chunk-delay-ms unless
 * it is the first. */
static int stream_line(const fo_opts *o, const out *w, const char *line, size_t len, int first)
{
    if (!first && o->chunk_delay_ms)
        sleep_ms(o->chunk_delay_ms);
    return out_write(w, line, len);
}

static int send_chat_stream(const fo_opts *o, int fd, const char *model, const char *reply)
{
    static const char garbage[] = "this is not json {\"done\":\n";
    out w = {fd, 1};
    size_t n = strlen(reply), pos = 0, len;
    int lines = 0, r = send_head(fd, 200, "application/x-ndjson", -1);
    while (r == 0 && pos < n) {
        size_t k = utf8_prefix(reply + pos, n - pos, CHUNK_CHARS);
        char *line = chat_object(model, reply + pos, k, 0, 1, &len);
        r = stream_line(o, &w, line, len, lines++ == 0);
        free(line);
        pos += k;
        if (r == 0 && o->mode == M_MALFORMED && lines == 1)
            r = stream_line(o, &w, garbage, sizeof garbage - 1, 0);
        if (o->mode == M_HALFSTREAM && lines == 2)
            return -1; /* close now: no last line, no end chunk */
    }
    if (o->mode == M_HALFSTREAM)
        return -1;
    if (r == 0 && o->mode == M_MALFORMED && lines == 0)
        r = stream_line(o, &w, garbage, sizeof garbage - 1, 1);
    if (r == 0) {
        char *line = chat_object(model, "", 0, 1, 1, &len);
        r = stream_line(o, &w, line, len, lines == 0);
        free(line);
    }
    return r == 0 ? out_end(&w) : r;
}

static int send_chat(const fo_opts *o, int fd, const cJSON *body)
{
    const char *model = cJSON_GetObjectItemCaseSensitive(body, "model")->valuestring;
    int stream = chat_stream(body), r;
    if (o->mode == M_OVERSIZED)
        return send_chat_oversized(o, fd, model, stream);
    char *reply = chat_reply(o, body);
    if (stream) {
        r = send_chat_stream(o, fd, model, reply);
    } else {
        size_t len;
        char *s = chat_object(model, reply, strlen(reply), 1, 0, &len);
        r = send_ok_json(o, fd, s, len);
        free(s);
    }
    free(reply);
    return r;
}

/* Answers a request that was read whole; @idx counts earlier requests. */
static void answer(const fo_opts *o, int fd, const fo_req *r, const cJSON *body,
                   unsigned long long idx)
{
    enum route rt = route_of(r);
    const char *why = invalid_body(rt, body);
    if (rt == R_NONE) {
        send_error(fd, 404, "not found");
        return;
    }
    if (why) {
        send_error(fd, 400, why);
        return;
    }
    if (idx < o->fail_first) {
        send_error(fd, 503, "busy");
        return;
    }
    if (o->mode == M_DROP)
        return;
    if (o->mode == M_SLOW)
        wait_unless_hangup(fd, o->delay_ms);
    if (o->mode == M_HTTP500) {
        send_error(fd, 500, "internal error");
        return;
    }
    switch (rt) {
    case R_ROOT: send_root(fd); break;
    case R_VERSION: send_version(o, fd); break;
    case R_TAGS: send_tags(o, fd); break;
    case R_EMBED: send_embed(o, fd, body); break;
    case R_CHAT: send_chat(o, fd, body); break;
    case R_NONE: break;
    }
}

/* --------------------------------------------------------------- the server */

typedef struct fo_server {
    const fo_opts *o;
    int lfd;
    FILE *log;
    unsigned long long served; /* requests read so far */
} fo_server;

static void log_request(fo_server *s, const fo_req *r, const cJSON *body)
{
    if (!s->log)
        return;
    enum route rt = route_of(r);
    int k = rt == R_EMBED ? embed_inputs(body) : 0;
    int stream = rt == R_CHAT && cJSON_IsObject(body) && chat_stream(body) == 1;
    fprintf(s->log, "%s %s n_inputs=%d stream=%d\n", r->method[0] ? r->method : "-",
            r->path[0] ? r->path : "-", k, stream);
    fflush(s->log);
}

/* Ends a connection without losing what was sent: half-close, then read
 * until the client closes (at most LINGER_MS), so that unread request
 * bytes do not turn the close into a reset. */
static void finish_connection(int fd)
{
    struct timespec d;
    char junk[4096];
    shutdown(fd, SHUT_WR);
    deadline_in(&d, LINGER_MS);
    while (recv_some(fd, junk, sizeof junk, &d) > 0) {
    }
    close(fd);
}

/* Reads, logs and answers the one request of connection @fd, closes it.
 * Reads wait at most --read-timeout-ms in all (poll with a deadline, which
 * unlike SO_RCVTIMEO also bounds a client that trickles bytes); a send
 * blocked that long (a client that stopped reading) fails. */
static void serve_connection(fo_server *s, int fd)
{
    fo_req r = {0};
    int one = 1;
    struct timeval tv = {(time_t)(s->o->read_timeout_ms / 1000),
                         (suseconds_t)(s->o->read_timeout_ms % 1000 * 1000)};
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    int st = read_request(s->o, fd, &r);
    if (st >= 0) {
        cJSON *body = st == 0 && r.body_len ? cJSON_ParseWithLength(r.body, r.body_len) : NULL;
        log_request(s, &r, body);
        if (st > 0)
            send_error(fd, st, st == 411   ? "chunked request bodies are not supported"
                               : st == 413 ? "request body too large"
                               : st == 431 ? "request headers too large"
                                           : "bad request");
        else
            answer(s->o, fd, &r, body, s->served);
        cJSON_Delete(body);
        s->served++;
        finish_connection(fd);
    } else {
        fprintf(stderr, "fake_ollama: a connection sent no complete request\n");
        close(fd);
    }
    free_request(&r);
}

static int listen_loopback(unsigned port, unsigned *bound)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), one = 1;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t al = sizeof a;
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0 ||
        bind(fd, (struct sockaddr *)&a, sizeof a) < 0 || listen(fd, 64) < 0 ||
        getsockname(fd, (struct sockaddr *)&a, &al) < 0) {
        perror("fake_ollama: listen on 127.0.0.1");
        if (fd >= 0)
            close(fd);
        return -1;
    }
    *bound = ntohs(a.sin_port);
    return fd;
}

static int write_port_file(const char *path, unsigned port)
{
    sbuf tmp = {0};
    sb_puts(&tmp, path);
    sb_puts(&tmp, ".tmp");
    FILE *f = fopen(tmp.p, "w");
    int ok = f && fprintf(f, "%u\n", port) > 0;
    ok = f && fclose(f) == 0 && ok && rename(tmp.p, path) == 0;
    if (!ok)
        fprintf(stderr, "fake_ollama: cannot write %s: %s\n", path, strerror(errno));
    free(tmp.p);
    return ok ? 0 : -1;
}

/* Accepts and serves connections one at a time until --max-requests. */
static int serve(fo_server *s)
{
    while (!s->o->max_requests || s->served < s->o->max_requests) {
        int fd = accept4(s->lfd, NULL, NULL, SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED || errno == EPROTO)
                continue;
            perror("fake_ollama: accept");
            return 1;
        }
        serve_connection(s, fd);
    }
    return 0;
}

/* SIGTERM and SIGINT end the server at once with status 0 (the log is
 * flushed after every line; nothing else needs saving). */
static void on_stop(int sig)
{
    (void)sig;
    _exit(0);
}

static void install_signals(void)
{
    struct sigaction sa = {0};
    sa.sa_handler = on_stop;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sa.sa_handler = SIG_IGN;
    sigaction(SIGPIPE, &sa, NULL);
}

int main(int argc, char **argv)
{
    fo_opts o;
    int rc = parse_args(argc, argv, &o);
    if (rc >= 0)
        return rc;
    install_signals();
    fo_server s = {.o = &o, .lfd = -1};
    unsigned port = 0;
    if (o.log_path && !(s.log = fopen(o.log_path, "a"))) {
        fprintf(stderr, "fake_ollama: cannot open %s: %s\n", o.log_path, strerror(errno));
        return 1;
    }
    s.lfd = listen_loopback(o.port, &port);
    rc = s.lfd < 0 || (o.port_file && write_port_file(o.port_file, port) < 0);
    if (rc == 0) {
        fprintf(stderr, "fake_ollama: listening on 127.0.0.1:%u, mode %s\n", port,
                mode_names[o.mode]);
        rc = serve(&s);
    }
    if (s.lfd >= 0)
        close(s.lfd);
    if (s.log)
        fclose(s.log);
    return rc;
}
