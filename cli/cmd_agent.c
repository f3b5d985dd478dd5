/*
 * cmd_agent.c - `sop load`, `sop ask` and `sop chat`: knowledge bases and
 * the agents (sop/agent.h) from the shell. `load` fills a knowledge base
 * from a fallback file (docs/fallback-format.md); `ask` and `chat` open an
 * agent from its JSON configuration and answer questions, streaming the
 * answer as it is made.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "sop/agent.h"

#ifndef SOP_DATASETS_DIR
#define SOP_DATASETS_DIR "datasets"
#endif
/* The configuration used when neither --config nor $SOP_AGENT_CONFIG
 * names one: this path under the current directory when it exists, else
 * the one of the source tree the tool was built from. */
#define CONFIG_LOCAL "datasets/agents/pipeline.json"
#define CONFIG_BUILTIN SOP_DATASETS_DIR "/agents/pipeline.json"

/* What a token callback returns to stop an answer because stdout is
 * closed (a pipe whose reader went away). */
#define STOP_STDOUT_CLOSED 0x5eed

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* ------------------------------------------------------------------ */
/* progress of a load (sop load, and the rebuilds of ask and chat)    */
/* ------------------------------------------------------------------ */

typedef struct load_bar {
    const char *what; /* "loading", "rebuilding" */
    double start;
} load_bar;

/* sop_kb_load_options.progress: "WHAT [####   ]  45% N records, R records/s". */
static int load_progress(const sop_kb_progress *p, void *ctx)
{
    load_bar *b = ctx;
    double dt = now_s() - b->start;
    char detail[96];
    snprintf(detail, sizeof detail, "%" PRIu64 " records, %.0f records/s", p->records,
             dt > 0 ? (double)p->records / dt : 0.0);
    cli_progress(b->what, p->bytes, p->size, detail);
    return 0;
}

/* ------------------------------------------------------------------ */
/* load                                                               */
/* ------------------------------------------------------------------ */

/* Fails early, before a database is created, when @path cannot be read. */
static int check_readable(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return cli_error("%s: %s", path, strerror(errno));
    fclose(f);
    return 0;
}

static int load_failed(const char *path, int rc, const sop_kb_load_report *rep, int named)
{
    const char *msg = rep->error[0] ? rep->error : sop_strerror(rc);
    size_t plen = strlen(path);
    if (strncmp(msg, path, plen) == 0 && msg[plen] == ' ')
        cli_error("%s%s", msg, rc == -EINVAL && !named ? " with --name NAME" : "");
    else
        cli_error("%s: %s", path, msg);
    if (rep->records)
        fprintf(stderr,
                "sop: %s: records 1..%" PRIu64 " were committed into knowledge base %s before "
                "the error; running the command again once the file is fixed completes the "
                "load\n",
                cli_g.cmd, rep->records, rep->name);
    return CLI_EXIT_ERR;
}

enum { LD_NAME, LD_BATCH, LD_REPLACE, LD_NOPTS };

int cmd_load(const cli_command *self, int argc, char **argv)
{
    cli_opt opts[] = {
        [LD_NAME] = {"name", 0, 1, NULL},
        [LD_BATCH] = {"batch", 0, 1, NULL},
        [LD_REPLACE] = {"replace", 0, 0, NULL},
        [LD_NOPTS] = {NULL, 0, 0, NULL},
    };
    char *pos[CLI_POS_MAX];
    int npos, rc = cli_args(self, argc, argv, opts, pos, &npos, 2, 2, "DB FILE.json");
    if (rc != CLI_CONTINUE)
        return rc;
    uint64_t batch = SOP_KB_LOAD_BATCH;
    if ((rc = cli_opt_u64(&opts[LD_BATCH], 1, UINT32_MAX, &batch)))
        return rc;
    const char *name = opts[LD_NAME].value;
    if (name && (!*name || strlen(name) > SOP_KB_NAME_MAX))
        return cli_usage("--name must have 1..%u characters", SOP_KB_NAME_MAX);
    if ((rc = check_readable(pos[1])))
        return rc;
    sop_db *db;
    if ((rc = cli_open_db(pos[0], CLI_OPEN_CREATE, &db)))
        return rc;
    load_bar bar = {"loading", now_s()};
    sop_kb_load_options o;
    sop_kb_load_options_init(&o);
    o.name = name;
    o.batch = (uint32_t)batch;
    o.replace = opts[LD_REPLACE].value != NULL;
    o.progress = cli_progress_on() ? load_progress : NULL;
    o.progress_ctx = &bar;
    sop_kb_load_report rep;
    int r = sop_kb_load(db, pos[1], &o, &rep);
    cli_progress_end();
    if (r) {
        rc = load_failed(pos[1], r, &rep, name != NULL);
    } else {
        printf("loaded %" PRIu64 " records into knowledge base %s (%" PRIu64
               " embedded) in %.2f s\n",
               rep.records, rep.name, rep.embedded, now_s() - bar.start);
    }
    rc = cli_close_db(db, rc);
    return rc ? rc : cli_flush_stdout();
}

/* ------------------------------------------------------------------ */
/* opening an agent (ask, chat)                                       */
/* ------------------------------------------------------------------ */

enum { AG_CONFIG, AG_OLLAMA, AG_OFFLINE, AG_JSON, AG_NOPTS };

/* The configuration file: --config, $SOP_AGENT_CONFIG, CONFIG_LOCAL when
 * it exists, CONFIG_BUILTIN. */
static const char *config_path(const cli_opt *opts)
{
    if (opts[AG_CONFIG].value)
        return opts[AG_CONFIG].value;
    const char *env = getenv("SOP_AGENT_CONFIG");
    if (env && *env)
        return env;
    if (access(CONFIG_LOCAL, R_OK) == 0)
        return CONFIG_LOCAL;
    return CONFIG_BUILTIN;
}

/* sop_agent_options.notice: a line on stderr (rebuilds and the like). */
static void agent_notice(const char *msg, void *ctx)
{
    (void)ctx;
    cli_progress_end();
    fprintf(stderr, "sop: %s: %s\n", cli_g.cmd, msg);
    fflush(stderr);
}

/* Checks the LLM options of @opts; a --ollama "host:port" (as in
 * $OLLAMA_HOST) becomes "http://host:port" in @url_buf. @return 0 or
 * CLI_EXIT_USAGE. */
static int check_llm_opts(cli_opt *opts, char *url_buf, size_t cap)
{
    if (opts[AG_OLLAMA].value && opts[AG_OFFLINE].value)
        return cli_usage("--ollama and --offline exclude each other");
    const char *url = opts[AG_OLLAMA].value;
    if (!url)
        return 0;
    if (!*url)
        return cli_usage("--ollama needs a URL (http://host:port) or host:port");
    if (strstr(url, "://")) {
        if (strncmp(url, "http://", 7) != 0 && strncmp(url, "https://", 8) != 0)
            return cli_usage("--ollama must be an http:// or https:// URL, not '%s'", url);
        return 0;
    }
    if ((size_t)snprintf(url_buf, cap, "http://%s", url) >= cap)
        return cli_usage("--ollama: a URL of over %zu bytes", cap - 8);
    opts[AG_OLLAMA].value = url_buf;
    return 0;
}

/* Opens the agent of the configuration chosen by @opts on database
 * @db_path. On failure prints why and returns 1 (*out NULL). */
static int open_agent(const char *db_path, const cli_opt *opts, load_bar *bar, sop_agent **out)
{
    *out = NULL;
    if (!*db_path)
        return cli_usage("empty database path");
    const char *config = config_path(opts);
    sop_agent_options o;
    sop_agent_options_init(&o);
    if (opts[AG_OFFLINE].value) {
        o.llm = SOP_LLM_OFF;
    } else if (opts[AG_OLLAMA].value) {
        o.llm = SOP_LLM_REQUIRED;
        o.ollama_url = opts[AG_OLLAMA].value;
    }
    o.notice = agent_notice;
    bar->what = "rebuilding";
    bar->start = now_s();
    o.progress = cli_progress_on() ? load_progress : NULL;
    o.progress_ctx = bar;
    sop_agent *a = NULL;
    int r = sop_agent_open(db_path, config, &o, &a);
    cli_progress_end();
    if (r) {
        const char *msg = a ? sop_agent_errmsg(a) : "";
        cli_error("opening the agent of %s on %s: %s%s%s", config, db_path, sop_strerror(r),
                  *msg ? ": " : "", msg);
        if (r == SOP_ELLM || r == -ETIMEDOUT)
            fprintf(stderr, "sop: %s: hint: start the server, or answer without it: --offline\n",
                    cli_g.cmd);
        sop_agent_close(a);
        return CLI_EXIT_ERR;
    }
    *out = a;
    return 0;
}

/* ------------------------------------------------------------------ */
/* printing answers                                                   */
/* ------------------------------------------------------------------ */

typedef struct stream {
    size_t bytes;   /* written so far */
    char last;      /* the last byte written */
} stream;

/* sop_token_fn: a piece of the answer to stdout, at once. */
static int write_token(void *arg, const char *piece, size_t len)
{
    stream *s = arg;
    if (!len)
        return 0;
    if (fwrite(piece, 1, len, stdout) != len || fflush(stdout) != 0)
        return STOP_STDOUT_CLOSED;
    s->bytes += len;
    s->last = piece[len - 1];
    return 0;
}

/* "a, b, c" of @n strings. */
static void print_list(const char *const *v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        printf("%s%s", i ? ", " : "", v[i]);
}

/* The clinical terms and the conditions of @ans, after its answer: a
 * block with the evidence of each condition, or (@compact, for chat) two
 * lines. */
static void print_details(const sop_answer *ans, int compact)
{
    if (ans->nterms) {
        fputs("clinical terms: ", stdout);
        print_list(ans->terms, ans->nterms);
        fputc('\n', stdout);
    }
    if (!ans->nconditions)
        return;
    fputs(compact ? "conditions: " : "conditions:\n", stdout);
    for (size_t i = 0; i < ans->nconditions; i++) {
        const sop_condition *c = &ans->conditions[i];
        const char *name = c->name && *c->name ? c->name : c->id;
        if (compact) {
            printf("%s%s %.2f", i ? ", " : "", name, c->score);
            continue;
        }
        printf("  %zu. %s", i + 1, name);
        if (c->category && *c->category)
            printf(" (%s)", c->category);
        printf("  score %.2f\n", c->score);
        if (c->nevidence) {
            fputs("     evidence: ", stdout);
            print_list(c->evidence, c->nevidence);
            fputc('\n', stdout);
        }
    }
    if (compact)
        fputc('\n', stdout);
}

enum { OUT_TEXT, OUT_CHAT, OUT_JSON };

/* Asks @a @question and prints the answer (streamed), then its details
 * (@out OUT_TEXT, OUT_CHAT); or one JSON object (OUT_JSON). @return the
 * exit status. */
static int ask_one(sop_agent *a, const char *question, int out)
{
    stream s = {0, 0};
    sop_answer *ans = NULL;
    int json = out == OUT_JSON;
    int r = sop_agent_ask(a, NULL, question, json ? NULL : write_token, &s, &ans);
    if (r == STOP_STDOUT_CLOSED) {
        sop_answer_free(ans);
        return cli_flush_stdout();
    }
    if (r) {
        if (s.bytes)
            fputc('\n', stdout);
        const char *msg = sop_agent_errmsg(a);
        sop_answer_free(ans);
        return cli_error("asking the agent: %s%s%s", sop_strerror(r), *msg ? ": " : "", msg);
    }
    if (json) {
        char *j = sop_answer_json(ans);
        if (!j) {
            sop_answer_free(ans);
            return cli_fail(NULL, -ENOMEM, "writing the answer as JSON");
        }
        printf("%s\n", j);
        sop_free(j);
    } else {
        if (!s.bytes && ans->answer) /* an agent that did not stream */
            write_token(&s, ans->answer, strlen(ans->answer));
        if (s.bytes && s.last != '\n')
            fputc('\n', stdout);
        if (out == OUT_TEXT && (ans->nterms || ans->nconditions))
            fputc('\n', stdout);
        print_details(ans, out == OUT_CHAT);
    }
    sop_answer_free(ans);
    return cli_flush_stdout();
}

/* ------------------------------------------------------------------ */
/* ask                                                                */
/* ------------------------------------------------------------------ */

int cmd_ask(const cli_command *self, int argc, char **argv)
{
    cli_opt opts[] = {
        [AG_CONFIG] = {"config", 0, 1, NULL},  [AG_OLLAMA] = {"ollama", 0, 1, NULL},
        [AG_OFFLINE] = {"offline", 0, 0, NULL}, [AG_JSON] = {"json", 0, 0, NULL},
        [AG_NOPTS] = {NULL, 0, 0, NULL},
    };
    char *pos[CLI_POS_MAX];
    int npos, rc = cli_args(self, argc, argv, opts, pos, &npos, 2, 2, "DB \"QUESTION\"");
    if (rc != CLI_CONTINUE)
        return rc;
    char url[1024];
    if ((rc = check_llm_opts(opts, url, sizeof url)))
        return rc;
    if (!*pos[1])
        return cli_usage("an empty question");
    load_bar bar;
    sop_agent *a;
    if ((rc = open_agent(pos[0], opts, &bar, &a)))
        return rc;
    rc = ask_one(a, pos[1], opts[AG_JSON].value ? OUT_JSON : OUT_TEXT);
    sop_agent_close(a);
    return rc;
}

/* ------------------------------------------------------------------ */
/* chat                                                               */
/* ------------------------------------------------------------------ */

static const char chat_help[] =
    "Type a question and press Enter; the answer is streamed as it is made.\n"
    "  /help   this help\n"
    "  /quit   end the chat (so do an empty line and end of input)\n";

/* @s without leading and trailing blanks (in place). */
static char *trim(char *s, size_t *len)
{
    size_t n = *len;
    while (n && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\r'))
        s[--n] = '\0';
    while (*s == ' ' || *s == '\t')
        s++, n--;
    *len = n;
    return s;
}

int cmd_chat(const cli_command *self, int argc, char **argv)
{
    cli_opt opts[] = {
        [AG_CONFIG] = {"config", 0, 1, NULL},  [AG_OLLAMA] = {"ollama", 0, 1, NULL},
        [AG_OFFLINE] = {"offline", 0, 0, NULL}, [AG_JSON] = {NULL, 0, 0, NULL},
    };
    char *pos[CLI_POS_MAX];
    int npos, rc = cli_args(self, argc, argv, opts, pos, &npos, 1, 1, "DB");
    if (rc != CLI_CONTINUE)
        return rc;
    char url[1024];
    if ((rc = check_llm_opts(opts, url, sizeof url)))
        return rc;
    load_bar bar;
    sop_agent *a;
    if ((rc = open_agent(pos[0], opts, &bar, &a)))
        return rc;
    int tty = isatty(STDIN_FILENO);
    if (tty)
        printf("Chat with agent %s (%s). /help for help, an empty line ends.\n", sop_agent_id(a),
               sop_agent_online(a) ? "language model" : "offline answers");
    char *buf = NULL;
    size_t cap = 0;
    int status = 0, turns = 0;
    uint64_t line = 0;
    for (;;) {
        if (tty) {
            fputs("you> ", stdout);
            fflush(stdout);
        }
        errno = 0;
        ssize_t n = cli_getline(stdin, &buf, &cap);
        if (n < 0) {
            if (ferror(stdin))
                status = cli_error("reading stdin: %s", strerror(errno ? errno : EIO));
            else if (tty)
                fputc('\n', stdout);
            break;
        }
        line++;
        size_t len = (size_t)n;
        char *q = trim(buf, &len);
        if (len == 0 || strcmp(q, "/quit") == 0)
            break;
        if (strcmp(q, "/help") == 0) {
            fputs(chat_help, stdout);
            continue;
        }
        if (q[0] == '/' && !strchr(q, ' ')) {
            fprintf(stdout, "unknown command %s (/help lists them)\n", q);
            continue;
        }
        if (strlen(q) != len) {
            status = cli_error("stdin: line %" PRIu64 ": a NUL byte in the question", line);
            continue;
        }
        if (!tty) /* piped input: a transcript, turns apart */
            printf("%syou> %s\n", turns ? "\n" : "", q);
        turns++;
        int r = ask_one(a, q, OUT_CHAT);
        if (r)
            status = r;
        if (tty)
            fputc('\n', stdout); /* a blank line before the next prompt */
        if (ferror(stdout))
            break;
    }
    free(buf);
    sop_agent_close(a);
    int f = cli_flush_stdout();
    return status ? status : f;
}

/* ------------------------------------------------------------------ */
/* the commands                                                       */
/* ------------------------------------------------------------------ */

#define AGENT_OPTIONS_HELP                                                                         \
    "  --config FILE  the agent's configuration; default: $SOP_AGENT_CONFIG,\n"                 \
    "                 else ./" CONFIG_LOCAL " when it exists,\n"                               \
    "                 else " CONFIG_BUILTIN "\n"                                                \
    "  --ollama URL   use the Ollama server at URL (or host:port), and fail\n"                 \
    "                 when it does not answer. Default: the configuration's\n"                 \
    "                 \"ollama_url\", else $OLLAMA_HOST, else\n"                               \
    "                 " SOP_LLM_DEFAULT_URL ", used when it answers (offline\n"                \
    "                 answers otherwise)\n"                                                    \
    "  --offline      never use a language model: answers are made from the\n"                 \
    "                 knowledge bases alone\n"

#define AGENT_OPEN_HELP                                                                            \
    "DB is the agent's database directory, created when missing. Knowledge\n"                   \
    "bases that are missing or were loaded only in part are loaded from the\n"                  \
    "configuration's fallback files; a database that cannot be opened or fails\n"               \
    "its integrity check is moved aside (DB.damaged-<time>) and rebuilt. Each\n"                \
    "rebuild is reported on stderr.\n"

const char cli_load_usage[] =
    "Usage: sop load DB FILE.json [--name NAME] [--batch N] [--replace]\n"
    "\n"
    "Loads fallback file FILE.json (docs/fallback-format.md) into a knowledge\n"
    "base of DB (created when missing): its records, their embeddings\n"
    "(computed with the built-in embedder when the file has none) and a BM25\n"
    "index of their text. Records are upserted, N per transaction: after an\n"
    "error (the message names the record) the batches before it stay loaded,\n"
    "and running the command again once the file is fixed completes the load.\n"
    "\n"
    "Prints \"loaded N records into knowledge base NAME (E embedded) in X s\".\n"
    "A progress bar goes to stderr when it is a terminal.\n"
    "\n"
    "Options:\n"
    "  --name NAME    the knowledge base (default: the file's \"name\")\n"
    "  --batch N      records per transaction (default 20000; a batch also ends\n"
    "                 at 64 MiB of records)\n"
    "  --replace      remove the knowledge base first (a rebuild)\n";

const char cli_ask_usage[] =
    "Usage: sop ask DB \"QUESTION\" [--json] [--config FILE] [--ollama URL]\n"
    "               [--offline]\n"
    "\n"
    "Opens the agent of a configuration (by default the nurse-then-doctor\n"
    "pipeline) and asks it QUESTION. Prints the answer as it is made, then\n"
    "the clinical terms the question was rewritten into and the conditions\n"
    "retrieved, best first, with their scores and the symptoms that matched\n"
    "(evidence). The answers are illustrations, not medical advice.\n"
    "\n" AGENT_OPEN_HELP "\n"
    "Options:\n"
    "  --json         print one JSON object instead: {\"query\",\n"
    "                 \"clinical_terms\", \"conditions\": [{\"id\", \"name\",\n"
    "                 \"category\", \"score\", \"evidence\", \"seek_care\"}],\n"
    "                 \"answer\", \"online\"}\n" AGENT_OPTIONS_HELP;

const char cli_chat_usage[] =
    "Usage: sop chat DB [--config FILE] [--ollama URL] [--offline]\n"
    "\n"
    "Opens an agent as `sop ask` does, then answers each line of stdin (a\n"
    "terminal, with the prompt \"you> \", or a pipe), streaming the answers.\n"
    "An empty line, the end of the input or /quit ends the chat; /help\n"
    "shows the commands. The agent keeps the turns in its database.\n"
    "\n" AGENT_OPEN_HELP "\n"
    "Options:\n" AGENT_OPTIONS_HELP;
