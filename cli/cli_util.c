/*
 * cli_util.c - argument parsing, messages, database opening, key
 * conversion, line input, progress bars and output escaping shared by
 * every command of `sop`.
 */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"

cli_globals cli_g;

/* A progress bar is drawn on stderr's last line, without its newline. */
static int progress_open;

/* ------------------------------------------------------------------ */
/* Messages                                                           */
/* ------------------------------------------------------------------ */

static void print_prefix(void)
{
    cli_progress_end();
    fprintf(stderr, "%s: ", cli_g.prog ? cli_g.prog : "sop");
    if (cli_g.cmd[0]) {
        fprintf(stderr, "%s: ", cli_g.cmd);
    }
}

int cli_usage(const char *fmt, ...)
{
    va_list ap;
    print_prefix();
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\nTry '%s%s%s --help'.\n", cli_g.prog ? cli_g.prog : "sop",
            cli_g.cmd[0] ? " " : "", cli_g.cmd);
    return CLI_EXIT_USAGE;
}

int cli_error(const char *fmt, ...)
{
    va_list ap;
    print_prefix();
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    return CLI_EXIT_ERR;
}

int cli_fail(sop_db *db, int rc, const char *fmt, ...)
{
    const char *msg = db ? sop_db_errmsg(db) : NULL;
    print_prefix();
    fputs(sop_strerror(rc), stderr);
    if (msg && *msg) {
        fprintf(stderr, ": %s", msg);
    } else if (fmt) {
        va_list ap;
        fputs(": ", stderr);
        va_start(ap, fmt);
        vfprintf(stderr, fmt, ap);
        va_end(ap);
    }
    fputc('\n', stderr);
    return CLI_EXIT_ERR;
}

int cli_fail_at(sop_db *db, int rc, const char *fmt, ...)
{
    const char *msg = db ? sop_db_errmsg(db) : NULL;
    va_list ap;
    print_prefix();
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, ": %s", sop_strerror(rc));
    if (msg && *msg) {
        fprintf(stderr, ": %s", msg);
    }
    fputc('\n', stderr);
    return CLI_EXIT_ERR;
}

int cli_flush_stdout(void)
{
    errno = 0;
    if (fflush(stdout) == 0 && !ferror(stdout)) {
        return CLI_EXIT_OK;
    }
    if (errno != EPIPE) {
        cli_error("error writing the output: %s", strerror(errno ? errno : EIO));
    }
    return CLI_EXIT_ERR;
}

/* ------------------------------------------------------------------ */
/* Help and options                                                   */
/* ------------------------------------------------------------------ */

void cli_print_help(FILE *f, const cli_command *cmd)
{
    fputs(cmd->usage, f);
    if (!cmd->sub) {
        return;
    }
    int is_root = strcmp(cmd->name, "sop") == 0;
    fprintf(f, "\n%s:\n", is_root ? "Commands" : "Subcommands");
    for (const cli_command *c = cmd->sub; c->name; c++) {
        fprintf(f, "  %-10s %s\n", c->name, c->summary);
    }
    if (is_root) {
        fprintf(f, "\nRun 'sop COMMAND --help' for the options of a command.\n");
    } else {
        fprintf(f, "\nRun 'sop %s SUBCOMMAND --help' for the options of a subcommand.\n",
                cmd->name);
    }
}

int cli_global_option(const char *name, const char *value)
{
    if (strcmp(name, "sync") == 0) {
        if (!value) {
            cli_usage("option '--sync' needs a value (none or full)");
            return -1;
        }
        if (strcmp(value, "none") == 0) {
            cli_g.sync = SOP_SYNC_NONE;
        } else if (strcmp(value, "full") == 0) {
            cli_g.sync = SOP_SYNC_FULL;
        } else {
            cli_usage("bad value '%s' for '--sync' (none or full)", value);
            return -1;
        }
        return 1;
    }
    if (strcmp(name, "redis") == 0 || strcmp(name, "replica") == 0) {
        if (!value || !*value) {
            cli_usage("option '--%s' needs a value", name);
            return -1;
        }
        *(name[0] == 'r' && name[2] == 'd' ? &cli_g.redis : &cli_g.replica) = value;
        return 1;
    }
    if (strcmp(name, "drives") == 0) {
        static char buf[8192];
        if (!value || !*value || strlen(value) >= sizeof buf) {
            cli_usage("option '--drives' needs a comma-separated list of folders");
            return -1;
        }
        memcpy(buf, value, strlen(value) + 1);
        cli_g.ndrives = 0;
        for (char *p = buf, *c; p; p = c) {
            c = strchr(p, ',');
            if (c)
                *c++ = 0;
            if (!*p || cli_g.ndrives == 255) {
                cli_usage("bad value '%s' for '--drives' (2 to 255 folders, comma-separated)",
                          value);
                return -1;
            }
            cli_g.drives[cli_g.ndrives++] = p;
        }
        return 1;
    }
    if (strcmp(name, "parity") == 0) {
        uint64_t m = 0;
        if (!value || cli_parse_u64(value, &m) != 0 || m < 1 || m > 254) {
            cli_usage("bad value '%s' for '--parity' (1 to 254)", value ? value : "");
            return -1;
        }
        cli_g.parity = (uint32_t)m;
        return 1;
    }
    if (strcmp(name, "busy-wait") == 0) {
        uint64_t ms = 0;
        if (!value || cli_parse_u64(value, &ms) != 0 || ms > 86400000) {
            cli_usage("bad value '%s' for '--busy-wait' (milliseconds, 0 to 86400000)",
                      value ? value : "");
            return -1;
        }
        cli_g.busy_wait_ms = ms;
        return 1;
    }
    return 0;
}

static int is_positional(const char *a)
{
    return a[0] != '-' || a[1] == '\0' || (a[1] >= '0' && a[1] <= '9') || a[1] == '.';
}

int cli_parse(const cli_command *self, int argc, char **argv, cli_opt *opts, char **pos,
              int *npos)
{
    int n = 0;
    int opts_done = 0;
    for (cli_opt *o = opts; o && o->name; o++) {
        o->value = NULL;
    }
    for (int i = 1; i < argc; i++) {
        char *a = argv[i];
        if (opts_done || is_positional(a)) {
            pos[n++] = a;
            continue;
        }
        if (strcmp(a, "--") == 0) {
            opts_done = 1;
            continue;
        }
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            cli_print_help(stdout, self);
            int rc = cli_flush_stdout();
            return rc ? rc : CLI_PARSE_HELP;
        }
        cli_opt *found = NULL;
        const char *inline_val = NULL;
        char name_buf[64];
        if (a[1] == '-') {
            const char *eq = strchr(a + 2, '=');
            size_t nlen = eq ? (size_t)(eq - (a + 2)) : strlen(a + 2);
            if (nlen == 0 || nlen >= sizeof name_buf) {
                return cli_usage("unknown option '%s'", a);
            }
            memcpy(name_buf, a + 2, nlen);
            name_buf[nlen] = '\0';
            inline_val = eq ? eq + 1 : NULL;
            for (cli_opt *o = opts; o && o->name; o++) {
                if (strcmp(o->name, name_buf) == 0) {
                    found = o;
                    break;
                }
            }
            if (!found) {
                const char *gval = inline_val ? inline_val : (i + 1 < argc ? argv[i + 1] : NULL);
                int g = cli_global_option(name_buf, gval);
                if (g < 0) {
                    return CLI_EXIT_USAGE;
                }
                if (g > 0) {
                    if (!inline_val) {
                        i++;
                    }
                    continue;
                }
                return cli_usage("unknown option '%s'", a);
            }
        } else {
            if (a[2] != '\0') {
                return cli_usage("unknown option '%s'", a);
            }
            for (cli_opt *o = opts; o && o->name; o++) {
                if (o->short_name && o->short_name == a[1]) {
                    found = o;
                    break;
                }
            }
            if (!found) {
                return cli_usage("unknown option '%s'", a);
            }
        }
        if (found->has_arg) {
            if (inline_val) {
                found->value = inline_val;
            } else if (i + 1 < argc) {
                found->value = argv[++i];
            } else {
                return cli_usage("option '%s' needs a value", a);
            }
        } else {
            if (inline_val) {
                return cli_usage("option '--%s' takes no value", found->name);
            }
            found->value = "1";
        }
    }
    *npos = n;
    return 0;
}

int cli_args(const cli_command *self, int argc, char **argv, cli_opt *opts, char **pos,
             int *npos, int min, int max, const char *expected)
{
    *npos = 0;
    if (argc > CLI_POS_MAX) {
        return cli_usage("too many arguments: expected %s", expected);
    }
    int rc = cli_parse(self, argc, argv, opts, pos, npos);
    if (rc == CLI_PARSE_HELP) {
        return CLI_EXIT_OK;
    }
    if (rc != 0) {
        return rc;
    }
    if (*npos < min) {
        return cli_usage("missing arguments: expected %s", expected);
    }
    if (*npos > max) {
        return cli_usage("too many arguments: expected %s", expected);
    }
    return CLI_CONTINUE;
}

int cli_opt_u64(const cli_opt *o, uint64_t min, uint64_t max, uint64_t *v)
{
    if (!o->value) {
        return 0;
    }
    uint64_t x = 0;
    if (cli_parse_u64(o->value, &x) != 0 || x < min || x > max) {
        return cli_usage("%s%s must be %" PRIu64 "..%" PRIu64 ", not '%s'",
                         o->name[1] ? "--" : "-", o->name, min, max, o->value);
    }
    *v = x;
    return 0;
}

int cli_parse_u64(const char *s, uint64_t *out)
{
    if (!s || *s < '0' || *s > '9') {
        return -1;
    }
    errno = 0;
    char *end = NULL;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || !end || *end != '\0') {
        return -1;
    }
    *out = (uint64_t)v;
    return 0;
}

/* ------------------------------------------------------------------ */
/* Input and progress                                                 */
/* ------------------------------------------------------------------ */

ssize_t cli_getline(FILE *f, char **buf, size_t *cap)
{
    ssize_t n = getline(buf, cap, f);
    if (n < 0) {
        return -1;
    }
    if (n > 0 && (*buf)[n - 1] == '\n') {
        (*buf)[--n] = '\0';
    }
    if (n > 0 && (*buf)[n - 1] == '\r') {
        (*buf)[--n] = '\0';
    }
    return n;
}

char *cli_read_line(FILE *f, size_t *len)
{
    char *line = NULL;
    size_t cap = 0;
    ssize_t n = cli_getline(f, &line, &cap);
    if (n < 0) {
        free(line);
        return NULL;
    }
    *len = (size_t)n;
    return line;
}

int cli_progress_on(void)
{
    static int on = -1;
    if (on < 0) {
        on = isatty(STDERR_FILENO) ? 1 : 0;
    }
    return on;
}

void cli_progress(const char *what, uint64_t done, uint64_t total, const char *detail)
{
    if (!cli_progress_on() || total == 0) {
        return;
    }
    if (done > total) {
        done = total;
    }
    int width = 30, fill = (int)(done * (uint64_t)width / total);
    fprintf(stderr, "\r%-10s [%.*s%*s] %3d%% ", what, fill, "##############################",
            width - fill, "", (int)(done * 100 / total));
    if (detail) {
        fputs(detail, stderr);
    } else {
        fprintf(stderr, "%" PRIu64 "/%" PRIu64, done, total);
    }
    fputs("\033[K", stderr); /* clear what a longer earlier line left */
    progress_open = done < total;
    if (!progress_open) {
        fputc('\n', stderr);
    }
    fflush(stderr);
}

void cli_progress_end(void)
{
    if (progress_open) {
        fputc('\n', stderr);
        fflush(stderr);
        progress_open = 0;
    }
}

/* ------------------------------------------------------------------ */
/* Database                                                           */
/* ------------------------------------------------------------------ */

void cli_db_options(sop_db_options *o)
{
    sop_db_options_init(o);
    o->sync = cli_g.sync;
    if (cli_g.redis) {
        o->mode = SOP_CLUSTERED;
        o->redis_url = cli_g.redis;
    }
    if (cli_g.ndrives || cli_g.parity) {
        o->drives = cli_g.drives;
        o->ndrives = cli_g.ndrives;
        o->parity = cli_g.parity ? cli_g.parity : 1;
    }
    o->replica_path = cli_g.replica;
}

int cli_open_db(const char *path, int flags, sop_db **dbp)
{
    sop_db_options o;
    cli_db_options(&o);
    o.flags = 0;
    if (flags & CLI_OPEN_CREATE) {
        o.flags |= SOP_DB_CREATE;
    }
    if (flags & CLI_OPEN_RDONLY) {
        o.flags |= SOP_DB_RDONLY;
    }
    sop_db *db = NULL;
    *dbp = NULL;
    if (!path || !*path) {
        return cli_usage("empty database path");
    }
    /* Another process may hold the database for a moment (another sop
     * command): retry for up to --busy-wait milliseconds. */
    uint64_t waited_us = 0, step_us = 1000;
    int rc;
    for (;;) {
        rc = sop_db_open(path, &o, &db);
        if (rc != SOP_EBUSY || waited_us >= cli_g.busy_wait_ms * 1000) {
            break;
        }
        if (db) {
            sop_db_close(db);
            db = NULL;
        }
        struct timespec ts = {(time_t)(step_us / 1000000), (long)(step_us % 1000000) * 1000};
        nanosleep(&ts, NULL);
        waited_us += step_us;
        step_us = step_us * 2 > 100000 ? 100000 : step_us * 2;
    }
    if (rc != SOP_OK) {
        cli_fail(db, rc, "cannot open the database '%s'", path);
        if (db) {
            sop_db_close(db);
        }
        return CLI_EXIT_ERR;
    }
    *dbp = db;
    return CLI_EXIT_OK;
}

int cli_close_db(sop_db *db, int status)
{
    if (!db) {
        return status;
    }
    int rc = sop_db_close(db);
    if (rc != SOP_OK) {
        cli_fail(NULL, rc, "closing the database");
        return status ? status : CLI_EXIT_ERR;
    }
    return status;
}

int cli_write_txn(sop_db *db, uint32_t max_ms, cli_write_step step, void *arg)
{
    for (int attempt = 1;; attempt++) {
        sop_txn *txn = NULL;
        int r = sop_txn_begin(db, SOP_TXN_WRITE, max_ms, &txn);
        if (r != SOP_OK)
            return cli_fail_at(db, r, "beginning a transaction");
        int rc = step(db, txn, arg);
        if (rc != 0) {
            sop_txn_rollback(txn);
            return rc;
        }
        r = sop_txn_commit(txn);
        if (r == SOP_ECONFLICT && attempt < CLI_WRITE_ATTEMPTS)
            continue;
        return r != SOP_OK ? cli_fail_at(db, r, "committing") : 0;
    }
}

/* ------------------------------------------------------------------ */
/* Keys                                                               */
/* ------------------------------------------------------------------ */

static const char *const order_names[] = {"bytes", "int64", "uint64", "double", "string", "custom"};

const char *cli_order_name(sop_key_order order)
{
    if ((unsigned)order < sizeof order_names / sizeof order_names[0]) {
        return order_names[order];
    }
    return "unknown";
}

int cli_order_parse(const char *s, sop_key_order *order)
{
    for (unsigned i = 0; i < sizeof order_names / sizeof order_names[0]; i++) {
        if (strcmp(s, order_names[i]) == 0 && i != SOP_ORDER_CUSTOM) {
            *order = (sop_key_order)i;
            return 0;
        }
    }
    return -1;
}

void cli_bytes_free(cli_bytes *b)
{
    free(b->buf);
    b->buf = NULL;
    b->v.data = NULL;
    b->v.size = 0;
}

static int hexval(int c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }
    if (c >= 'A' && c <= 'F') {
        return c - 'A' + 10;
    }
    return -1;
}

int cli_unescape(const char *s, char **out, size_t *n)
{
    size_t len = strlen(s);
    char *buf = malloc(len + 1);
    size_t k = 0;
    if (!buf) {
        return -1;
    }
    for (size_t i = 0; i < len; i++) {
        if (s[i] != '\\') {
            buf[k++] = s[i];
            continue;
        }
        if (++i >= len) {
            free(buf);
            return -1;
        }
        switch (s[i]) {
        case '\\': buf[k++] = '\\'; break;
        case 't': buf[k++] = '\t'; break;
        case 'n': buf[k++] = '\n'; break;
        case 'r': buf[k++] = '\r'; break;
        case '0': buf[k++] = '\0'; break;
        case 'x': {
            int h = i + 2 < len ? hexval((unsigned char)s[i + 1]) : -1;
            int l = i + 2 < len ? hexval((unsigned char)s[i + 2]) : -1;
            if (h < 0 || l < 0) {
                free(buf);
                return -1;
            }
            buf[k++] = (char)(h * 16 + l);
            i += 2;
            break;
        }
        default:
            free(buf);
            return -1;
        }
    }
    buf[k] = '\0';
    *out = buf;
    *n = k;
    return 0;
}

int cli_bytes_from_arg(const char *s, int escapes, const char *what, cli_bytes *out)
{
    memset(out, 0, sizeof *out);
    if (!escapes) {
        out->v.data = s;
        out->v.size = strlen(s);
        return 0;
    }
    size_t n = 0;
    if (cli_unescape(s, &out->buf, &n) != 0) {
        return cli_usage("bad escape in %s '%s' (use \\\\, \\t, \\n, \\r, \\0 or \\xNN)", what, s);
    }
    out->v.data = out->buf;
    out->v.size = n;
    return 0;
}

int cli_key_from_arg(sop_key_order order, const char *s, int escapes, const char *what,
                     cli_bytes *out)
{
    memset(out, 0, sizeof *out);
    char *end = NULL;
    errno = 0;
    switch (order) {
    case SOP_ORDER_INT64: {
        long long v = strtoll(s, &end, 10);
        if (!*s || errno || *end) {
            return cli_usage("%s '%s' is not a 64-bit integer (the store's keys are int64)", what,
                             s);
        }
        int64_t x = (int64_t)v;
        memcpy(out->num, &x, 8);
        break;
    }
    case SOP_ORDER_UINT64: {
        unsigned long long v = 0;
        const char *p = s;
        while (*p == ' ' || *p == '\t') {
            p++;
        }
        if (*p != '-') {
            v = strtoull(s, &end, 10);
        }
        if (!*s || *p == '-' || errno || !end || *end) {
            return cli_usage("%s '%s' is not an unsigned 64-bit integer (the store's keys are "
                             "uint64)",
                             what, s);
        }
        uint64_t x = (uint64_t)v;
        memcpy(out->num, &x, 8);
        break;
    }
    case SOP_ORDER_DOUBLE: {
        double v = strtod(s, &end);
        if (!*s || *end || isnan(v) || (errno == ERANGE && isinf(v))) {
            return cli_usage("%s '%s' is not a number (the store's keys are double)", what, s);
        }
        memcpy(out->num, &v, 8);
        break;
    }
    default:
        return cli_bytes_from_arg(s, escapes, what, out);
    }
    out->v.data = out->num;
    out->v.size = 8;
    return 0;
}

/* ------------------------------------------------------------------ */
/* Output                                                             */
/* ------------------------------------------------------------------ */

/* Length of the valid UTF-8 sequence at p (1..4), or 0; *cp gets the code
 * point. */
static size_t utf8_seq(const unsigned char *p, size_t n, uint32_t *cp)
{
    unsigned char c = p[0];
    size_t len;
    uint32_t v, min;
    if (c < 0x80) {
        *cp = c;
        return 1;
    } else if (c >= 0xC2 && c <= 0xDF) {
        len = 2, v = c & 0x1F, min = 0x80;
    } else if (c >= 0xE0 && c <= 0xEF) {
        len = 3, v = c & 0x0F, min = 0x800;
    } else if (c >= 0xF0 && c <= 0xF4) {
        len = 4, v = c & 0x07, min = 0x10000;
    } else {
        return 0;
    }
    if (n < len) {
        return 0;
    }
    for (size_t i = 1; i < len; i++) {
        if ((p[i] & 0xC0) != 0x80) {
            return 0;
        }
        v = (v << 6) | (p[i] & 0x3F);
    }
    if (v < min || v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF)) {
        return 0;
    }
    *cp = v;
    return len;
}

int cli_utf8_valid(const void *p, size_t n)
{
    const unsigned char *s = p;
    size_t i = 0;
    uint32_t cp;
    while (i < n) {
        size_t l = utf8_seq(s + i, n - i, &cp);
        if (!l) {
            return 0;
        }
        i += l;
    }
    return 1;
}

void cli_write_escaped(FILE *f, const void *p, size_t n)
{
    const unsigned char *s = p;
    size_t i = 0;
    while (i < n) {
        unsigned char c = s[i];
        uint32_t cp;
        if (c == '\\') {
            fputs("\\\\", f);
        } else if (c == '\t') {
            fputs("\\t", f);
        } else if (c == '\n') {
            fputs("\\n", f);
        } else if (c == '\r') {
            fputs("\\r", f);
        } else if (c >= 0x20 && c < 0x7F) {
            fputc(c, f);
        } else if (c >= 0x80) {
            size_t l = utf8_seq(s + i, n - i, &cp);
            if (l && cp >= 0xA0) {
                fwrite(s + i, 1, l, f);
                i += l;
                continue;
            }
            fprintf(f, "\\x%02x", c);
        } else {
            fprintf(f, "\\x%02x", c);
        }
        i++;
    }
}

void cli_write_json_string(FILE *f, const void *p, size_t n)
{
    const unsigned char *s = p;
    fputc('"', f);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = s[i];
        switch (c) {
        case '"': fputs("\\\"", f); break;
        case '\\': fputs("\\\\", f); break;
        case '\b': fputs("\\b", f); break;
        case '\f': fputs("\\f", f); break;
        case '\n': fputs("\\n", f); break;
        case '\r': fputs("\\r", f); break;
        case '\t': fputs("\\t", f); break;
        default:
            if (c < 0x20 || c == 0x7F) {
                fprintf(f, "\\u%04x", c);
            } else {
                fputc(c, f);
            }
        }
    }
    fputc('"', f);
}

void cli_write_json_bytes(FILE *f, const char *name, const void *p, size_t n)
{
    if (n == 0 || cli_utf8_valid(p, n)) {
        fprintf(f, "\"%s\":", name);
        cli_write_json_string(f, n ? p : "", n);
        return;
    }
    const unsigned char *s = p;
    fprintf(f, "\"%s_hex\":\"", name);
    for (size_t i = 0; i < n; i++) {
        fprintf(f, "%02x", s[i]);
    }
    fputc('"', f);
}

static int key_number(sop_key_order order, const sop_val *k, char *buf, size_t cap)
{
    if (k->size != 8 || !k->data) {
        return 0;
    }
    switch (order) {
    case SOP_ORDER_INT64: {
        int64_t v;
        memcpy(&v, k->data, 8);
        snprintf(buf, cap, "%lld", (long long)v);
        return 1;
    }
    case SOP_ORDER_UINT64: {
        uint64_t v;
        memcpy(&v, k->data, 8);
        snprintf(buf, cap, "%llu", (unsigned long long)v);
        return 1;
    }
    case SOP_ORDER_DOUBLE: {
        double v;
        memcpy(&v, k->data, 8);
        snprintf(buf, cap, "%.17g", v);
        return isfinite(v) ? 1 : 2;
    }
    default:
        return 0;
    }
}

void cli_write_key_text(FILE *f, sop_key_order order, const sop_val *k)
{
    char num[48];
    if (key_number(order, k, num, sizeof num)) {
        fputs(num, f);
    } else {
        cli_write_escaped(f, k->data, k->size);
    }
}

void cli_write_key_json(FILE *f, sop_key_order order, const sop_val *k)
{
    char num[48];
    int r = key_number(order, k, num, sizeof num);
    if (r == 1) {
        fprintf(f, "\"key\":%s", num);
    } else if (r == 2) {
        fprintf(f, "\"key\":\"%s\"", num);
    } else {
        cli_write_json_bytes(f, "key", k->data, k->size);
    }
}
