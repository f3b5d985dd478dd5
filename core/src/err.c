/* err.c - error codes, their text, and per-thread detailed messages. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "err.h"

const char *sop_version(int *major, int *minor, int *patch)
{
    if (major)
        *major = SOP_VERSION_MAJOR;
    if (minor)
        *minor = SOP_VERSION_MINOR;
    if (patch)
        *patch = SOP_VERSION_PATCH;
#define SOP__STR2(x) #x
#define SOP__STR(x) SOP__STR2(x)
    return SOP__STR(SOP_VERSION_MAJOR) "." SOP__STR(SOP_VERSION_MINOR) "." SOP__STR(
        SOP_VERSION_PATCH);
}

/* The system errors the library spells out (strerror() is not
 * thread-safe): XX(errno, text), one table for sop_strerror() and
 * sop_err_name(). */
#define SOP_OS_ERRORS(XX)                                                                          \
    XX(EIO, "input/output error")                                                                  \
    XX(ENOMEM, "out of memory")                                                                    \
    XX(EINVAL, "invalid argument")                                                                 \
    XX(ENOENT, "no such file or directory")                                                        \
    XX(EEXIST, "file exists")                                                                      \
    XX(EACCES, "permission denied")                                                                \
    XX(EPERM, "operation not permitted")                                                           \
    XX(ENOSPC, "no space left on device")                                                          \
    XX(EFBIG, "file too large")                                                                    \
    XX(EROFS, "read-only file system")                                                             \
    XX(EINTR, "interrupted system call")                                                           \
    XX(EAGAIN, "resource temporarily unavailable")                                                 \
    XX(ENOTDIR, "not a directory")                                                                 \
    XX(EISDIR, "is a directory")                                                                   \
    XX(ENAMETOOLONG, "file name too long")                                                         \
    XX(EMFILE, "too many open files")                                                              \
    XX(EBADF, "bad file descriptor")                                                               \
    XX(ETIMEDOUT, "timed out")                                                                     \
    XX(ENOTEMPTY, "directory not empty")

const char *sop_strerror(int err)
{
    switch (err) {
    case SOP_OK:
        return "success";
#define XX(name, value, text)                                                                      \
    case SOP_E##name:                                                                              \
        return text;
        SOP_ERRNO_MAP(XX)
#undef XX
    default:
        break;
    }
    if (err < 0 && err > -4096) {
        /* strerror() is not thread-safe; the common ones are spelled out */
        switch (-err) {
#define XX(e, text)                                                                                \
    case e:                                                                                        \
        return text;
            SOP_OS_ERRORS(XX)
#undef XX
        default: return "system error";
        }
    }
    return "unknown error";
}

const char *sop_err_name(int err)
{
    switch (err) {
    case SOP_OK:
        return "SOP_OK";
#define XX(name, value, text)                                                                      \
    case SOP_E##name:                                                                              \
        return "SOP_E" #name;
        SOP_ERRNO_MAP(XX)
#undef XX
    default:
        break;
    }
    switch (-err) {
#define XX(e, text)                                                                                \
    case e:                                                                                        \
        return #e;
        SOP_OS_ERRORS(XX)
#undef XX
    default: return "UNKNOWN";
    }
}

/* One slot per thread: the last database it failed on and the message. A
 * thread that works on two databases keeps the message of the last one;
 * sop_db_errmsg() of the other returns "". */
static _Thread_local struct {
    const sop_db *db;
    char msg[512];
} tls_err;

int sop__err(const sop_db *db, int rc, const char *fmt, ...)
{
    /* a full disk or file size limit is one condition for the caller */
    int os = rc;
    if (rc == -ENOSPC || rc == -EFBIG || rc == -EDQUOT)
        rc = SOP_EFULL;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tls_err.msg, sizeof tls_err.msg, fmt, ap);
    va_end(ap);
    if (n >= 0 && (size_t)n < sizeof tls_err.msg - 40)
        snprintf(tls_err.msg + n, sizeof tls_err.msg - (size_t)n, " (%s)", sop_err_name(os));
    tls_err.db = db;
    return rc;
}

void sop__err_clear(const sop_db *db)
{
    if (tls_err.db == db) {
        tls_err.msg[0] = 0;
        tls_err.db = NULL;
    }
}

const char *sop_db_errmsg(const sop_db *db)
{
    return tls_err.db == db ? tls_err.msg : "";
}
