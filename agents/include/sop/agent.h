/*
 * agent.h - SOP for C, agents layer: a client of a language-model server
 * (Ollama's HTTP API), embedders (Ollama's, or a built-in one that needs
 * no server and no model file), and the retrieval-augmented agents built
 * on the vector store and the text index.
 *
 * The LLM client speaks Ollama's API: POST /api/embed (a batch of texts in
 * one request), POST /api/chat (streamed to a callback or not), GET
 * /api/tags (a health check). Every request has a connect timeout and a
 * total timeout, a bound on the size of the answer, and retries with
 * exponential backoff for transient failures (connection refused or
 * dropped, timeouts, HTTP 408, 429, 500, 502, 503, 504). Nothing else is
 * retried, and a streamed chat is not retried once a token reached the
 * callback.
 *
 * Errors: as in sop.h (sop_strerror()); the message of the last failure of
 * a handle is sop_llm_errmsg(). The codes:
 *  - SOP_ELLM: the server is unreachable, dropped the connection, or
 *    answered with an HTTP error (the message has the status and the
 *    server's "error" text);
 *  - -ETIMEDOUT: the connect or total timeout passed;
 *  - SOP_EFORMAT: the answer is not the JSON the API specifies;
 *  - SOP_ETOOBIG: the answer is larger than max_response_bytes;
 *  - SOP_EDIM: embeddings of the wrong or of differing dimensions;
 *  - -EINVAL: bad arguments; -ENOMEM.
 *
 * Thread safety: a handle is used by one thread at a time; different
 * handles are independent. The first sop_llm_open() initialises libcurl
 * once for the process.
 */
#ifndef SOP_AGENT_H
#define SOP_AGENT_H

#include <stddef.h>
#include <stdint.h>

#include "sop/sop.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------------ */
/* LLM client                                                         */
/* ------------------------------------------------------------------ */

/** A client of one language-model server. */
typedef struct sop_llm sop_llm;

/** The default server when neither the options nor $OLLAMA_HOST name one. */
#define SOP_LLM_DEFAULT_URL "http://127.0.0.1:11434"

/** Options of sop_llm_open(). Initialise with sop_llm_options_init(). */
typedef struct sop_llm_options {
    uint32_t struct_size;        /**< sizeof(sop_llm_options), set by init */
    const char *base_url;        /**< NULL: $OLLAMA_HOST ("host:port" or a URL),
                                      else SOP_LLM_DEFAULT_URL */
    const char *embed_model;     /**< default "nomic-embed-text" */
    const char *chat_model;      /**< default "llama3" */
    uint32_t connect_timeout_ms; /**< default 2000 */
    uint32_t timeout_ms;         /**< whole request, default 120000 */
    size_t max_response_bytes;   /**< default 64 MiB */
    uint32_t retries;            /**< extra attempts on transient errors, default 2 */
    uint32_t backoff_ms;         /**< first wait between attempts (doubles), default 200 */
} sop_llm_options;

/** @brief Fills @p o with the defaults. */
SOP_API void sop_llm_options_init(sop_llm_options *o);

/** @brief Creates a client. Nothing is sent until the first call.
 *  @param opts NULL for the defaults (strings are copied)
 *  @param[out] out free with sop_llm_close()
 *  @return SOP_OK; -EINVAL (bad options: struct_size, a base URL that is
 *          not http:// or https://, a zero timeout); -ENOMEM; SOP_ELLM
 *          (libcurl could not be initialised). */
SOP_API int sop_llm_open(const sop_llm_options *opts, sop_llm **out);

/** @brief Frees @p l (NULL is ignored). */
SOP_API void sop_llm_close(sop_llm *l);

/** @brief The message of the last failure on @p l ("" when none). Valid
 *  until the next call on @p l. */
SOP_API const char *sop_llm_errmsg(const sop_llm *l);

/** @brief The server's base URL (without a trailing slash). */
SOP_API const char *sop_llm_url(const sop_llm *l);

/** @brief Health check: GET /api/tags.
 *  @return SOP_OK when the server answers with a model list; the errors
 *          above. */
SOP_API int sop_llm_health(sop_llm *l);

/** @brief Embeds @p n texts with the embedding model, in one request.
 *  @param texts n NUL-terminated UTF-8 strings
 *  @param[in,out] dim 0: any dimension (set to the model's); else the
 *          dimension required
 *  @param[out] vecs n * *dim floats, row i the vector of texts[i]; free
 *          with sop_free()
 *  @return SOP_OK; SOP_EDIM (not *dim, or rows of different lengths, or
 *          over 65536); SOP_EFORMAT (not n rows of numbers); the errors
 *          above. */
SOP_API int sop_llm_embed(sop_llm *l, const char *const *texts, size_t n, uint32_t *dim,
                          float **vecs);

/** A message of a chat. */
typedef struct sop_chat_msg {
    const char *role;    /**< "system", "user" or "assistant" */
    const char *content; /**< UTF-8 */
} sop_chat_msg;

/** Options of sop_llm_chat(). Initialise with sop_chat_options_init(). */
typedef struct sop_chat_options {
    uint32_t struct_size; /**< sizeof(sop_chat_options), set by init */
    const char *system;   /**< NULL, or a system prompt sent first */
    double temperature;   /**< < 0 (default): the model's */
    int32_t max_tokens;   /**< <= 0 (default): the model's (num_predict) */
} sop_chat_options;

/** @brief Fills @p o with the defaults. */
SOP_API void sop_chat_options_init(sop_chat_options *o);

/** Receives a streamed piece of the answer (@p len bytes, not
 *  NUL-terminated, whole UTF-8 characters as the server sent them).
 *  Nonzero stops the request: sop_llm_chat() then returns that value. */
typedef int (*sop_token_fn)(void *arg, const char *piece, size_t len);

/** @brief Sends a chat to the chat model and returns its answer.
 *  @param opts NULL for the defaults
 *  @param msgs n >= 1 messages, the last normally the user's
 *  @param fn NULL: one answer (stream false); else the answer is streamed
 *          and each piece passed to @p fn as it arrives
 *  @param[out] reply NULL, or the whole answer, NUL-terminated; free with
 *          sop_free()
 *  @return SOP_OK; what @p fn returned; SOP_EFORMAT (no message content, a
 *          malformed stream line, a stream that ends without "done"); the
 *          errors above. */
SOP_API int sop_llm_chat(sop_llm *l, const sop_chat_options *opts, const sop_chat_msg *msgs,
                         size_t n, sop_token_fn fn, void *arg, char **reply);

/* ------------------------------------------------------------------ */
/* Embedders                                                          */
/* ------------------------------------------------------------------ */

/** Something that turns texts into vectors: the built-in embedder or an
 *  LLM server's model. Its identity (name and dimension) is recorded by
 *  the knowledge bases it fills, which refuse vectors of another. */
typedef struct sop_embedder sop_embedder;

/** Name of the built-in embedder (with its dimension it is the identity). */
#define SOP_EMBEDDER_BUILTIN "sop-hash-v1"
/** Default dimension of the built-in embedder. */
#define SOP_EMBEDDER_BUILTIN_DIM 256u

/** @brief The built-in embedder: deterministic, offline, no model file.
 *  Words are folded and stemmed as in the text index, mapped through a
 *  table of colloquial synonyms ("tummy" -> "abdomen", ...), and hashed
 *  with their bigrams and character trigrams into @p dim signed buckets,
 *  weighted, then the vector is L2-normalised (docs/design/agents.md).
 *  @param dim 0 for SOP_EMBEDDER_BUILTIN_DIM, else 16..4096
 *  @param[out] out free with sop_embedder_free(); thread-safe
 *  @return SOP_OK; -EINVAL; -ENOMEM. */
SOP_API int sop_embedder_builtin(uint32_t dim, sop_embedder **out);

/** @brief An embedder that calls @p l's embedding model. It asks the
 *  server once for the dimension (an embedding of "dimension probe").
 *  @param l must outlive the embedder; the embedder is used by one thread
 *          at a time, like @p l
 *  @return SOP_OK; the errors of sop_llm_embed(). */
SOP_API int sop_embedder_llm(sop_llm *l, sop_embedder **out);

/** @brief Frees @p e (NULL is ignored). */
SOP_API void sop_embedder_free(sop_embedder *e);

/** @brief The identity: "sop-hash-v1", or "ollama:<model>". */
SOP_API const char *sop_embedder_name(const sop_embedder *e);

/** @brief The dimension of the vectors. */
SOP_API uint32_t sop_embedder_dim(const sop_embedder *e);

/** @brief Embeds @p n texts into @p out (n * dim floats, each row of unit
 *  length, or all zeros for a text without a word).
 *  @return SOP_OK; -EINVAL; -ENOMEM; for an LLM embedder, the errors of
 *          sop_llm_embed(). */
SOP_API int sop_embedder_embed(sop_embedder *e, const char *const *texts, size_t n, float *out);

/* ------------------------------------------------------------------ */
/* Knowledge bases                                                    */
/* ------------------------------------------------------------------ */

/** A knowledge base: records of text and JSON metadata, searchable by
 *  meaning and by words. It is three stores of one database, all written
 *  in the caller's transaction (so a knowledge base, other stores and an
 *  agent's memory change together or not at all):
 *  - "<name>.kb": id -> text and metadata (the records);
 *  - "<name>.kb.vec": the vector store of the records' embeddings (cosine),
 *    which records the embedder identity and refuses another;
 *  - "<name>.kb.txt": the BM25 index of the records' text.
 *  A handle lives as long as its transaction and is used by one thread at
 *  a time. Strings it returns point into its memory, valid until the next
 *  call on it. */
typedef struct sop_kb sop_kb;

/** Longest name of a knowledge base (store-name characters
 *  [A-Za-z0-9_.-], not starting with '.'). */
#define SOP_KB_NAME_MAX 120u
/** Longest record id, in bytes. */
#define SOP_KB_ID_MAX 256u

/** @brief Creates knowledge base @p name in @p txn for vectors of the
 *  embedder named @p embedder with @p dim dimensions.
 *  @param[out] out valid until @p txn ends
 *  @return SOP_OK; SOP_EEXISTS; SOP_ENAME; -EINVAL (NULL, empty embedder
 *          name, dim 0 or above 8192); SOP_EREADONLY; common errors. */
SOP_API int sop_kb_create(sop_txn *txn, const char *name, const char *embedder, uint32_t dim,
                          sop_kb **out);

/** @brief Opens knowledge base @p name in @p txn.
 *  @return SOP_OK; SOP_ENOTFOUND (no such base, or one of its stores is
 *          missing); SOP_ENAME; common errors. */
SOP_API int sop_kb_open(sop_txn *txn, const char *name, sop_kb **out);

/** @brief Removes knowledge base @p name (its three stores) in @p txn.
 *  @return SOP_OK; SOP_ENOTFOUND (none of its stores exists); SOP_ENAME;
 *          SOP_EREADONLY; common errors. */
SOP_API int sop_kb_remove(sop_txn *txn, const char *name);

/** @brief The embedder identity recorded by @p kb.
 *  @param[out] name NULL, or the name (handle memory)
 *  @param[out] dim NULL, or the dimension */
SOP_API void sop_kb_embedder(const sop_kb *kb, const char **name, uint32_t *dim);

/** A record of a knowledge base. */
typedef struct sop_kb_record {
    const char *id;       /**< 1..SOP_KB_ID_MAX bytes, NUL-terminated */
    const char *text;     /**< UTF-8, non-empty: embedded and indexed */
    const char *metadata; /**< NULL, or a JSON object (stored as given) */
    /** NULL: the embedder computes it from the text; else the vector
     *  (dimension of the base), made by the base's embedder */
    const float *embedding;
} sop_kb_record;

/** @brief Adds @p n records, or replaces the records with their ids.
 *  Texts without an embedding are embedded in one call of @p e (one
 *  request for an LLM embedder). A record whose vector is all zeros (a
 *  text without a word) is kept and indexed for words, but has no vector.
 *  @param e NULL when every record has an embedding; else an embedder of
 *          the base's identity
 *  @return SOP_OK; SOP_EMISMATCH (@p e is not the base's embedder, or no
 *          embedder for a record without embedding); -EINVAL (NULL, an
 *          empty or overlong id, an empty text, metadata that is not a
 *          JSON object); SOP_EVECTOR (NaN or infinite component);
 *          SOP_ETOOBIG; the embedder's errors; SOP_EREADONLY; common
 *          errors. On failure roll the transaction back (records before
 *          the failing one may be written). */
SOP_API int sop_kb_put(sop_kb *kb, sop_embedder *e, const sop_kb_record *recs, size_t n);

/** @brief Reads record @p id.
 *  @param[out] out its id, text and metadata (handle memory; embedding
 *          NULL)
 *  @return SOP_OK; SOP_ENOTFOUND; -EINVAL; SOP_ECORRUPT (a record that
 *          does not decode); common errors. */
SOP_API int sop_kb_get(sop_kb *kb, const char *id, sop_kb_record *out);

/** @brief Deletes record @p id from the three stores.
 *  @return SOP_OK; SOP_ENOTFOUND; -EINVAL; SOP_EREADONLY; common errors. */
SOP_API int sop_kb_delete(sop_kb *kb, const char *id);

/** @brief The number of records.
 *  @return SOP_OK; common errors. */
SOP_API int sop_kb_count(sop_kb *kb, uint64_t *count);

/** @brief Checks knowledge base @p name: runs sop_vstore_check() on its
 *  vector store and sop_text_check() on its text index, then checks that
 *  the three stores agree: every record decodes (text, metadata that is a
 *  JSON object) and is a document of the text index whose length, terms
 *  and term frequencies are those of the record's text (re-analysed with
 *  the index's tokenizer; when sop_text_check() found the index clean);
 *  every record has a vector unless its vector was all zeros (known for
 *  the built-in embedder, whose vectors the check recomputes; with another
 *  embedder a missing vector is not reported); the text index and the
 *  vector store hold no other id; the configuration record decodes and
 *  names the vector store's embedder; the record count equals the text
 *  index's document count. Each problem is reported through @p fn (one
 *  line, starting "knowledge base NAME: ", or that of the index check).
 *  Reads only (but flushes what handles of the base's text index buffered
 *  in a WRITE @p txn, as a query does), in @p txn, any mode.
 *  @param fn NULL, or receives each problem (valid during the call)
 *  @param[out] problems the number of problems found (may be NULL)
 *  @return SOP_OK (clean); SOP_ECORRUPT (problems were found, a missing
 *          store of the three among them); SOP_ENOTFOUND (none of its
 *          three stores exists); SOP_ENAME; -EINVAL (NULL or empty
 *          arguments); SOP_EVERSION (an index of a newer format); -ENOMEM;
 *          common errors (an I/O error ends the check: *problems then
 *          counts those found before it).
 *  Thread safety: that of @p txn. */
SOP_API int sop_kb_check(sop_txn *txn, const char *name, sop_check_fn fn, void *ctx,
                         uint64_t *problems);

/** A result of sop_kb_search(). Strings are handle memory. */
typedef struct sop_kb_hit {
    const char *id, *text;
    const char *metadata;  /**< the JSON object, or NULL */
    double score;          /**< reciprocal rank fusion score, higher is better */
    double similarity;     /**< cosine of the query and record vectors (0 when either has none) */
    uint32_t text_rank;    /**< 1-based rank by BM25, 0 if absent */
    uint32_t vec_rank;     /**< 1-based rank by similarity, 0 if absent */
} sop_kb_hit;

/** @brief Hybrid search: BM25 on the text index and similarity on the
 *  vectors (@p query embedded by @p e), fused by reciprocal rank fusion
 *  (sop_text_hybrid(), default constants), best first.
 *  @param e NULL for words only; else an embedder of the base's identity
 *  @param k 1..1000
 *  @param hits room for @p k results
 *  @return SOP_OK (*nhits may be 0); SOP_EMISMATCH; -EINVAL; the
 *          embedder's errors; common errors. */
SOP_API int sop_kb_search(sop_kb *kb, sop_embedder *e, const char *query, uint32_t k,
                          sop_kb_hit *hits, uint32_t *nhits);

/** Progress of sop_kb_load(). */
typedef struct sop_kb_progress {
    uint64_t records;     /**< records committed so far */
    uint64_t bytes, size; /**< bytes of the file read so far, and its size */
} sop_kb_progress;

/** Default records per transaction of sop_kb_load(). */
#define SOP_KB_LOAD_BATCH 20000u
/** Bytes of records (text, metadata, vectors) that end a batch early. */
#define SOP_KB_LOAD_BATCH_BYTES (64u << 20)

/** Options of sop_kb_load(). Initialise with sop_kb_load_options_init(). */
typedef struct sop_kb_load_options {
    uint32_t struct_size; /**< sizeof(sop_kb_load_options), set by init */
    const char *name;     /**< the base; NULL: the file's "name" */
    /** NULL: the built-in embedder when the file names none or names
     *  SOP_EMBEDDER_BUILTIN (at the file's dimension); else an embedder of
     *  the file's identity, used for records without an embedding */
    sop_embedder *embedder;
    /** records per transaction, default SOP_KB_LOAD_BATCH. A batch also
     *  ends when its records reach SOP_KB_LOAD_BATCH_BYTES of text,
     *  metadata and vectors. Large batches write much less: each commit
     *  rewrites every vector-index leaf its records touch (at 200,000
     *  GloVe records, batches of 1,000 wrote 7.3 GB, of 20,000 0.56 GB) */
    uint32_t batch;
    int replace;          /**< 1: remove the base first (a rebuild) */
    /** NULL, or called after each committed batch; non-zero stops the
     *  load with that value (the committed batches stay) */
    int (*progress)(const sop_kb_progress *p, void *ctx);
    void *progress_ctx;
} sop_kb_load_options;

/** @brief Fills @p o with the defaults. */
SOP_API void sop_kb_load_options_init(sop_kb_load_options *o);

/** What sop_kb_load() did. */
typedef struct sop_kb_load_report {
    char name[SOP_KB_NAME_MAX + 1]; /**< the base loaded */
    uint64_t records;     /**< records committed */
    uint64_t embedded;    /**< of which the embedder computed the vector */
    uint64_t batches;     /**< transactions committed */
    uint64_t bytes;       /**< bytes of the file read */
    uint64_t error_record; /**< 1-based number of the record that failed (0: none or not a record) */
    char error[512];      /**< "" on success, else what failed and where */
} sop_kb_load_report;

/** @brief Loads fallback file @p path (docs/fallback-format.md) into a
 *  knowledge base of @p db, streaming it (the memory of a batch, not of
 *  the file), in transactions of @p o->batch records. Records are
 *  upserted, so a load that failed half-way keeps the batches before the
 *  failure and a second run completes it. A load that reaches the end
 *  marks the base complete (sop_kb_complete()).
 *  @param o NULL for the defaults
 *  @param[out] report NULL, or what was done, and the error message
 *  @return SOP_OK; -errno (the file); SOP_EFORMAT (not a fallback file, a
 *          malformed record: the report names it); SOP_ETOOBIG;
 *          SOP_EMISMATCH (the base, the file and the embedder disagree on
 *          the embedder identity); -EINVAL (no name in the options or the
 *          file); SOP_ENAME; what progress returned; the embedder's
 *          errors; common errors. Thread-safe on @p db. */
SOP_API int sop_kb_load(sop_db *db, const char *path, const sop_kb_load_options *o,
                        sop_kb_load_report *report);

/** @brief Whether a load of knowledge base @p name reached the end of its
 *  file (the mark sop_kb_load() writes in its last transaction).
 *  @return 1 complete; 0 incomplete or absent; a negative error. */
SOP_API int sop_kb_complete(sop_txn *txn, const char *name);

/* ------------------------------------------------------------------ */
/* Agents                                                             */
/* ------------------------------------------------------------------ */

/** An agent made from a JSON configuration (docs/agents.md): a nurse that
 *  rewrites a colloquial complaint into clinical terms, a doctor that
 *  retrieves conditions from its knowledge base and answers, or a pipeline
 *  of both (nurse, then doctor). It owns its database and its LLM client.
 *  Used by one thread at a time. */
typedef struct sop_agent sop_agent;

/** Whether an agent uses a language model. */
typedef enum sop_llm_use {
    SOP_LLM_AUTO = 0,    /**< when the server answers a health check at open */
    SOP_LLM_OFF = 1,     /**< never: offline answers */
    SOP_LLM_REQUIRED = 2 /**< always: sop_agent_open() fails when it does not answer */
} sop_llm_use;

/** Options of sop_agent_open(). Initialise with sop_agent_options_init(). */
typedef struct sop_agent_options {
    uint32_t struct_size; /**< sizeof(sop_agent_options), set by init */
    sop_llm_use llm;      /**< SOP_LLM_AUTO (default) */
    /** NULL: the configuration's "ollama_url", else $OLLAMA_HOST, else
     *  SOP_LLM_DEFAULT_URL */
    const char *ollama_url;
    uint32_t timeout_ms;  /**< a whole LLM request (0: the client's default) */
    /** 1 (default): check the database's integrity at open
     *  (sop_db_check()), and rebuild it from the fallback files when it
     *  fails; 0: skip the check */
    int check;
    /** NULL, or receives one line for each thing the user should know
     *  ("rebuilding knowledge base doctor from datasets/doctor.json: ...") */
    void (*notice)(const char *msg, void *ctx);
    void *notice_ctx;
    /** NULL, or the progress of rebuild loads (see sop_kb_load_options) */
    int (*progress)(const sop_kb_progress *p, void *ctx);
    void *progress_ctx;
} sop_agent_options;

/** @brief Fills @p o with the defaults. */
SOP_API void sop_agent_options_init(sop_agent_options *o);

/** @brief Opens the agent of configuration file @p config on the database
 *  directory @p db_path (created when missing). Each knowledge base of the
 *  agent (and of its stages) that is missing or incompletely loaded is
 *  loaded from the fallback file of the configuration's "data". When the
 *  database cannot be opened as a database, or fails its integrity check,
 *  it is moved aside to "<db_path>.damaged-<time>" and rebuilt from the
 *  fallback files; each rebuild is reported through the notice callback.
 *  @param o NULL for the defaults
 *  @param[out] out the agent; on failure too (but for -ENOMEM and -EINVAL),
 *          a handle whose sop_agent_errmsg() says why: close it
 *  @return SOP_OK; SOP_EFORMAT (the configuration: the message names the
 *          key); -errno (a file); SOP_ELLM, -ETIMEDOUT (SOP_LLM_REQUIRED
 *          and the server does not answer); the errors of sop_db_open()
 *          and sop_kb_load(); -EINVAL; -ENOMEM. */
SOP_API int sop_agent_open(const char *db_path, const char *config, const sop_agent_options *o,
                           sop_agent **out);

/** @brief Closes @p a and its database (NULL is ignored). */
SOP_API void sop_agent_close(sop_agent *a);

/** @brief The message of the last failure on @p a ("" when none). */
SOP_API const char *sop_agent_errmsg(const sop_agent *a);

/** @brief The agent's "id" from its configuration. */
SOP_API const char *sop_agent_id(const sop_agent *a);

/** @brief 1 when the agent's answers come from the language model, 0 when
 *  they are made offline. */
SOP_API int sop_agent_online(const sop_agent *a);

/** @brief The agent's database, for the caller's own transactions (owned
 *  by the agent). */
SOP_API sop_db *sop_agent_db(sop_agent *a);

/** A condition of an answer. */
typedef struct sop_condition {
    const char *id, *name, *category;
    double score;                /**< higher is better, in [0, 1] */
    const char *const *evidence; /**< the condition's symptoms that matched */
    size_t nevidence;
    const char *seek_care;       /**< when to see a doctor ("" when unknown) */
} sop_condition;

/** What sop_agent_ask() returns. Free with sop_answer_free(). */
typedef struct sop_answer {
    const char *query;           /**< the question */
    const char *const *terms;    /**< clinical terms (the nurse's) */
    size_t nterms;
    const sop_condition *conditions; /**< best first (the doctor's) */
    size_t nconditions;
    const char *answer;          /**< the text of the answer */
    int online;                  /**< 1: the answer came from the model */
} sop_answer;

/** @brief Asks @p a a question. A nurse fills terms; a doctor fills
 *  conditions and the answer; a pipeline both. Retrieval, and the turn
 *  kept in the agent's memory (store "<id>.memory"), happen in @p txn.
 *  @param txn NULL: the agent runs its own WRITE transaction (retried on
 *          SOP_ECONFLICT); else a WRITE transaction of sop_agent_db(),
 *          which the caller commits (the model is called inside it: give
 *          it a long enough max_ms)
 *  @param fn NULL, or receives the answer as it is made (streamed from
 *          the model, or the offline answer in one piece)
 *  @param[out] out the answer; free with sop_answer_free()
 *  @return SOP_OK; -EINVAL (NULL, an empty question or one over 64 KiB);
 *          what @p fn returned; the errors of sop_llm_chat() (the message
 *          in sop_agent_errmsg()); common errors. */
SOP_API int sop_agent_ask(sop_agent *a, sop_txn *txn, const char *question, sop_token_fn fn,
                          void *arg, sop_answer **out);

/** @brief The answer as one JSON object: {"query", "clinical_terms",
 *  "conditions": [{"id", "name", "category", "score", "evidence",
 *  "seek_care"}], "answer", "online"}, compact, without a newline.
 *  @return a string to free with sop_free(), or NULL (no memory). */
SOP_API char *sop_answer_json(const sop_answer *ans);

/** @brief Frees @p ans (NULL is ignored). */
SOP_API void sop_answer_free(sop_answer *ans);

#ifdef __cplusplus
}
#endif

#endif
