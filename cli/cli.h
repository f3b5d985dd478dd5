/*
 * cli.h - shared declarations of the `sop` command-line tool.
 *
 * Adding a command: write `int cmd_x(const cli_command *self, int argc,
 * char **argv)` in a cli/cmd_<group>.c file, declare it (or the group's
 * table) below, and add one row to the top-level table in cli/main.c. A
 * command group (like `kv`) is a row whose `sub` points to its own
 * NULL-terminated table; dispatch and `--help` handle the nesting.
 *
 * Conventions: exit status 0 on success, 1 on an error (message on stderr
 * "sop: <command>: <what>: <detail>"), 2 on a usage error. Handlers return
 * the exit status.
 */
#ifndef SOP_CLI_H
#define SOP_CLI_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

#include "sop/sop.h"

#if defined(__GNUC__)
#define CLI_PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#define CLI_PRINTF(a, b)
#endif

enum { CLI_EXIT_OK = 0, CLI_EXIT_ERR = 1, CLI_EXIT_USAGE = 2 };

typedef struct cli_command cli_command;

/** A handler: argv[0] is the command's own name, argv[1..] its arguments.
 *  Returns the exit status. */
typedef int (*cli_handler)(const cli_command *self, int argc, char **argv);

struct cli_command {
    const char *name;         /**< NULL ends a table */
    cli_handler run;          /**< NULL for a group */
    const char *summary;      /**< one line for the command list */
    const char *usage;        /**< full help: "Usage: ..." and options */
    const cli_command *sub;   /**< a group's subcommands, or NULL */
};

/* Command tables and handlers of each group. */
extern const cli_command cli_kv_commands[];
extern const cli_command cli_vector_commands[];
extern const cli_command cli_search_commands[];
extern const cli_command cli_stream_commands[];
int cmd_stats(const cli_command *self, int argc, char **argv);
int cmd_check(const cli_command *self, int argc, char **argv);
int cmd_repair(const cli_command *self, int argc, char **argv);
/* Knowledge bases and agents (cmd_agent.c): handlers and their help. */
int cmd_load(const cli_command *self, int argc, char **argv);
int cmd_ask(const cli_command *self, int argc, char **argv);
int cmd_chat(const cli_command *self, int argc, char **argv);
extern const char cli_load_usage[];
extern const char cli_ask_usage[];
extern const char cli_chat_usage[];

/* ------------------------------------------------------------------ */
/* Global state                                                       */
/* ------------------------------------------------------------------ */

typedef struct cli_globals {
    sop_sync_mode sync;  /**< --sync none|full */
    uint64_t busy_wait_ms; /**< --busy-wait: retry an open that got SOP_EBUSY */
    const char *redis;   /**< --redis URL: clustered mode */
    const char *drives[256]; /**< --drives DIR,DIR,...: erasure-coded segments */
    uint32_t ndrives;
    uint32_t parity;     /**< --parity M */
    const char *replica; /**< --replica DIR: replicated metadata */
    char cmd[128];       /**< the command path for messages ("kv put") */
    const char *prog;    /**< "sop" */
} cli_globals;

extern cli_globals cli_g;

/* ------------------------------------------------------------------ */
/* Argument parsing                                                   */
/* ------------------------------------------------------------------ */

/** An option a command accepts. The parser sets @c value: NULL when the
 *  option is absent, its argument when it takes one, "1" for a flag. */
typedef struct cli_opt {
    const char *name;  /**< long name without "--"; NULL ends the array */
    char short_name;   /**< 0 for none */
    int has_arg;
    const char *value;
} cli_opt;

#define CLI_PARSE_HELP (-1)

/** Parses argv[1..argc-1]: options of @p opts (plus the global --sync and
 *  --help/-h, accepted anywhere), "--" ends options, an argument starting
 *  with "-" and a digit or just "-" is positional. Positional arguments are
 *  stored in @p pos (room for argc entries) and counted in *npos.
 *  @return 0; CLI_PARSE_HELP (help printed: exit 0); CLI_EXIT_USAGE
 *          (message printed). */
int cli_parse(const cli_command *self, int argc, char **argv, cli_opt *opts, char **pos,
              int *npos);

/** Room for the positional arguments of cli_args(); a command given more
 *  arguments than this is a usage error. */
#define CLI_POS_MAX 32
/** What cli_args() returns when the command is to go on. */
#define CLI_CONTINUE (-1)

/** cli_parse() with the checks every command repeats: at most CLI_POS_MAX
 *  arguments, of which @p min to @p max positional ones (@p expected names
 *  them in the usage error: "DB STORE FILE"). @p pos has room for
 *  CLI_POS_MAX entries.
 *  @return CLI_CONTINUE to go on; else the exit status to return at once
 *          (0 after --help, 2 after a usage error). */
int cli_args(const cli_command *self, int argc, char **argv, cli_opt *opts, char **pos,
             int *npos, int min, int max, const char *expected);

/** Reads the value of option @p o, when given, as an integer in
 *  [@p min, @p max] into *v (left alone when the option is absent).
 *  @return 0; CLI_EXIT_USAGE after printing "--name must be min..max". */
int cli_opt_u64(const cli_opt *o, uint64_t min, uint64_t max, uint64_t *v);

/** Applies a global option (name without "--") with its @p value.
 *  @return 1 when @p name is global and was applied; 0 when @p name is not
 *  a global option; -1 on a bad value (usage error printed). */
int cli_global_option(const char *name, const char *value);

/** Prints the help of @p cmd (and its subcommands) to @p f. */
void cli_print_help(FILE *f, const cli_command *cmd);

/** Runs the row of @p table named argv[0] with argv[0..argc-1] (a group
 *  dispatches on to its subcommands). @return the exit status. */
int cli_dispatch(const cli_command *table, int argc, char **argv);

/** Prints "sop: <cmd>: <message>" and a hint to stderr; returns 2. */
int cli_usage(const char *fmt, ...) CLI_PRINTF(1, 2);

/** Prints "sop: <cmd>: <message>" to stderr; returns 1. */
int cli_error(const char *fmt, ...) CLI_PRINTF(1, 2);

/** Prints "sop: <cmd>: <sop_strerror(rc)>: <sop_db_errmsg(db)>" (or the
 *  formatted detail when the engine gave no message); returns 1. */
int cli_fail(sop_db *db, int rc, const char *fmt, ...) CLI_PRINTF(3, 4);

/** Prints "sop: <cmd>: <context>: <sop_strerror(rc)>[: <sop_db_errmsg(db)>]"
 *  (the context formatted from @p fmt, always shown); returns 1. */
int cli_fail_at(sop_db *db, int rc, const char *fmt, ...) CLI_PRINTF(3, 4);

/** Parses a non-negative decimal integer. @return 0 or -1. */
int cli_parse_u64(const char *s, uint64_t *out);

/* ------------------------------------------------------------------ */
/* Database helpers                                                   */
/* ------------------------------------------------------------------ */

#define CLI_OPEN_CREATE 0x1  /**< create the database if missing */
#define CLI_OPEN_RDONLY 0x2  /**< read-only */

/** Database options from the global options (--sync, --redis, --drives,
 *  --parity, --replica). */
void cli_db_options(sop_db_options *o);

/** Opens the database at @p path with the global options. On failure
 *  prints the error and returns 1 (*dbp is NULL). */
int cli_open_db(const char *path, int flags, sop_db **dbp);

/** Closes @p db; prints an error and returns 1 if closing failed, else
 *  returns @p status. */
int cli_close_db(sop_db *db, int status);

/** One attempt of a write: does its work in @p txn, prints its own errors
 *  and returns 0 or an exit status (the transaction is then rolled back). */
typedef int (*cli_write_step)(sop_db *db, sop_txn *txn, void *arg);

#define CLI_WRITE_ATTEMPTS 8 /**< attempts of a write that keeps conflicting */

/** Runs @p step in a write transaction of @p db (@p max_ms: its time limit,
 *  0 the engine's default) and commits; on SOP_ECONFLICT at commit runs it
 *  again in a new transaction, CLI_WRITE_ATTEMPTS times in all.
 *  @return 0 or an exit status (errors printed). */
int cli_write_txn(sop_db *db, uint32_t max_ms, cli_write_step step, void *arg);

/* ------------------------------------------------------------------ */
/* Keys and output                                                    */
/* ------------------------------------------------------------------ */

const char *cli_order_name(sop_key_order order);
/** @return 0 and *order, or -1 for an unknown name. */
int cli_order_parse(const char *s, sop_key_order *order);

/** A key or value argument converted to bytes. */
typedef struct cli_bytes {
    sop_val v;
    unsigned char num[8];
    char *buf; /**< owned, or NULL */
} cli_bytes;

/** Converts command-line text @p s to a key of a store ordered by @p order:
 *  decimal for INT64/UINT64, a number for DOUBLE, bytes otherwise
 *  (decoding \\xNN escapes when @p escapes). Prints a usage error naming
 *  @p what on malformed input. @return 0 or CLI_EXIT_USAGE. */
int cli_key_from_arg(sop_key_order order, const char *s, int escapes, const char *what,
                     cli_bytes *out);
/** Converts @p s to bytes (decoding escapes when @p escapes). */
int cli_bytes_from_arg(const char *s, int escapes, const char *what, cli_bytes *out);
void cli_bytes_free(cli_bytes *b);

/** Decodes the escapes printed by cli_write_escaped (\\\\, \\t, \\n, \\r,
 *  \\0, \\xNN). @return 0; -1 on a malformed escape. *out is malloc'ed. */
int cli_unescape(const char *s, char **out, size_t *n);

/** Writes bytes for a text line: printable ASCII and valid UTF-8 as is;
 *  backslash, tab, newline, CR as \\\\ \\t \\n \\r; other bytes as \\xNN. */
void cli_write_escaped(FILE *f, const void *p, size_t n);

/** Writes a JSON string literal of valid UTF-8 @p p (control characters
 *  escaped). */
void cli_write_json_string(FILE *f, const void *p, size_t n);

/** @return 1 when @p p is valid UTF-8. */
int cli_utf8_valid(const void *p, size_t n);

/** Writes a JSON member "name":<value> for bytes: a string when valid
 *  UTF-8, else "<name>_hex":"<hex digits>". */
void cli_write_json_bytes(FILE *f, const char *name, const void *p, size_t n);

/** Writes a key for text output (number for numeric orders). */
void cli_write_key_text(FILE *f, sop_key_order order, const sop_val *k);
/** Writes a JSON member "key":... for a key (number for numeric orders). */
void cli_write_key_json(FILE *f, sop_key_order order, const sop_val *k);

/* ------------------------------------------------------------------ */
/* Input and progress                                                 */
/* ------------------------------------------------------------------ */

/** Reads the next line of @p f, of any length, into *buf (a getline()
 *  buffer of *cap bytes, grown as needed and reused from call to call;
 *  free it at the end) and strips its "\n" or "\r\n".
 *  @return the line's length (it may hold NUL bytes), or -1 at the end of
 *          the file or on a read error (tell them apart with ferror()). */
ssize_t cli_getline(FILE *f, char **buf, size_t *cap);

/** The next line of @p f without its line end, in a malloc'ed buffer; NULL
 *  at the end of the file. */
char *cli_read_line(FILE *f, size_t *len);

/** @return 1 when progress bars are drawn: stderr is a terminal. */
int cli_progress_on(void);

/** When stderr is a terminal, redraws "WHAT [#####     ]  45% DETAIL" on
 *  its last line, DETAIL being @p detail or "done/total"; ends the line
 *  once @p done reaches @p total. Nothing when @p total is 0. Callers of
 *  many small steps throttle it. */
void cli_progress(const char *what, uint64_t done, uint64_t total, const char *detail);

/** Ends the line of a progress bar left unfinished (before other output
 *  to stderr; the message functions above call it). */
void cli_progress_end(void);

/** Flushes stdout. @return 0, or 1 after printing an error (a closed pipe
 *  is reported silently). */
int cli_flush_stdout(void);

#endif /* SOP_CLI_H */
