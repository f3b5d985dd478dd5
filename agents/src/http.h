/* http.h - the HTTP requests the LLM client makes, behind one call (
 * http_curl.c implements it with libcurl; nothing else sees libcurl). */
#ifndef SOP_AGENTS_HTTP_H
#define SOP_AGENTS_HTTP_H
#include <stddef.h>
#include <stdint.h>

/* Receives the response body as it arrives; nonzero aborts the request
 * and is returned by http_do(). */
typedef int (*http_data_fn)(void *arg, const char *p, size_t n);

typedef struct http_req {
    const char *url;
    const char *body; /* NULL: GET; else POST of body_len bytes of JSON */
    size_t body_len;
    uint32_t connect_timeout_ms, timeout_ms;
    http_data_fn on_data;
    void *arg;
} http_req;

/* Initialises the HTTP library once per process: 0 or SOP_ELLM. */
int http_init(void);

/* Performs @r. 0 with *status the HTTP status (any), or: SOP_ELLM (no
 * connection, dropped connection, bad URL: @err says which), -ETIMEDOUT,
 * -ENOMEM, or what on_data returned. @err gets a message (errcap bytes). */
int http_do(const http_req *r, long *status, char *err, size_t errcap);

#endif
