/* http_curl.c - http.h with libcurl (easy interface, one handle per
 * request: the client makes few, large requests). */
#include <curl/curl.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "http.h"
#include "sop/sop.h"

static pthread_once_t once = PTHREAD_ONCE_INIT;
static CURLcode init_rc = CURLE_FAILED_INIT;

static void init_once(void) { init_rc = curl_global_init(CURL_GLOBAL_DEFAULT); }

int http_init(void)
{
    pthread_once(&once, init_once);
    return init_rc == CURLE_OK ? 0 : SOP_ELLM;
}

typedef struct sink {
    const http_req *r;
    int rc; /* what on_data returned */
} sink;

static size_t on_write(char *p, size_t size, size_t n, void *arg)
{
    sink *s = arg;
    size_t len = size * n;
    if (s->r->on_data && (s->rc = s->r->on_data(s->r->arg, p, len)) != 0)
        return len == 0 ? 1 : 0; /* anything but len aborts the transfer */
    return len;
}

int http_do(const http_req *r, long *status, char *err, size_t errcap)
{
    int rc = http_init();
    if (rc) {
        snprintf(err, errcap, "libcurl could not be initialised");
        return rc;
    }
    CURL *c = curl_easy_init();
    if (!c) {
        snprintf(err, errcap, "out of memory (curl handle)");
        return -ENOMEM;
    }
    char cerr[CURL_ERROR_SIZE] = "";
    struct curl_slist *hdr = NULL;
    sink s = {r, 0};
    curl_easy_setopt(c, CURLOPT_URL, r->url);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L); /* threads: no SIGALRM for timeouts */
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, (long)r->connect_timeout_ms);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, (long)r->timeout_ms);
    curl_easy_setopt(c, CURLOPT_NOPROXY, "localhost,127.0.0.1,::1");
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_write);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &s);
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, cerr);
    if (r->body) {
        hdr = curl_slist_append(hdr, "Content-Type: application/json");
        if (hdr)
            hdr = curl_slist_append(hdr, "Expect:"); /* no 100-continue round trip */
        if (!hdr) {
            curl_easy_cleanup(c);
            snprintf(err, errcap, "out of memory (headers)");
            return -ENOMEM;
        }
        curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdr);
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, r->body);
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)r->body_len);
    }
    CURLcode cc = curl_easy_perform(c);
    *status = 0;
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, status);
    if (cc == CURLE_OK) {
        rc = 0;
    } else if (cc == CURLE_WRITE_ERROR && s.rc) {
        rc = s.rc;
    } else if (cc == CURLE_OPERATION_TIMEDOUT) {
        rc = -ETIMEDOUT;
        snprintf(err, errcap, "%s: timed out (%s)", r->url, cerr[0] ? cerr : curl_easy_strerror(cc));
    } else if (cc == CURLE_OUT_OF_MEMORY) {
        rc = -ENOMEM;
        snprintf(err, errcap, "out of memory (libcurl)");
    } else {
        rc = SOP_ELLM;
        snprintf(err, errcap, "%s: %s", r->url, cerr[0] ? cerr : curl_easy_strerror(cc));
    }
    curl_slist_free_all(hdr);
    curl_easy_cleanup(c);
    return rc;
}
