/* store.h — the model store: named models as Ollama-compatible manifests over content-addressed blobs.
 *
 * Layout (the same as Ollama's, so HEARTH_MODELS=~/.ollama/models works):
 *   <root>/manifests/<host>/<namespace>/<model>/<tag>   Docker v2 manifest JSON, one file per tag
 *   <root>/blobs/sha256-<64 hex>                        layer and config blobs, named by their sha256
 * Every file is written atomically (temporary file, fsync, rename), so a crash never leaves a
 * half-written manifest or a blob whose name does not match its contents.
 *
 * Names follow Ollama's grammar [host/][namespace/]model[:tag] with defaults registry.ollama.ai,
 * library and latest; lookups are case-insensitive; names that could escape the store are rejected.
 *
 * Functions that can fail return 0 or a negative ERR_* and fill the caller's struct err. A missing
 * model is ERR_NOTFOUND with the message "model '<name>' not found". */
#ifndef HEARTH_STORE_STORE_H
#define HEARTH_STORE_STORE_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/err.h"

/* ---- names ---- */

#define STORE_DEFAULT_HOST "registry.ollama.ai"
#define STORE_DEFAULT_NAMESPACE "library"
#define STORE_DEFAULT_TAG "latest"
#define STORE_HOST_MAX 350
#define STORE_PART_MAX 80

struct store_name {
    char host[STORE_HOST_MAX + 1];
    char ns[STORE_PART_MAX + 1];
    char model[STORE_PART_MAX + 1];
    char tag[STORE_PART_MAX + 1];
};

/* Parses "[scheme://][host/][namespace/]model[:tag]", filling defaults. ERR_INVALID naming the bad
 * part for anything outside the grammar (empty parts, "..", NUL, bad characters, over-long parts). */
int store_name_parse(const char *s, struct store_name *out, struct err *e);
/* Shortest display form, as `ollama list` prints it: "llama3:latest", "user/m:tag", "host/ns/m:tag". */
void store_name_display(const struct store_name *n, char *buf, size_t cap);
/* Full form "host/namespace/model:tag". */
void store_name_full(const struct store_name *n, char *buf, size_t cap);
/* Case-insensitive equality of all four parts. */
bool store_name_equal(const struct store_name *a, const struct store_name *b);

/* ---- the store ---- */

struct store;

/* Opens (creating directories as needed) the store at root; root NULL means $HEARTH_MODELS, else
 * ~/.hearth/models. */
int store_open(const char *root, struct store **out, struct err *e);
void store_close(struct store *s);
const char *store_root(const struct store *s);

/* Everything a runner or the HTTP server needs about one model. Strings are malloc'd and owned by
 * the struct; absent layers are NULL (params_json and messages_json are never NULL). */
struct store_model {
    char *name;          /* display form of the stored (canonical-case) name, e.g. "llama3:latest" */
    struct store_name parsed;
    char *model_path;    /* the GGUF weights blob; NULL if the manifest has no model layer */
    char *model_digest;  /* "sha256:<hex>" of the weights blob */
    char *template_text; /* template layer */
    char *system;        /* system layer */
    char *params_json;   /* params layer, a JSON object ("{}" when absent) */
    char *messages_json; /* messages layer, a JSON array ("[]" when absent) */
    char *license;       /* license layers joined by "\n\n" */
    char *config_json;   /* config blob (Docker image config + Ollama's model fields), or NULL */
    char *manifest_json; /* the manifest bytes */
    char *parent;        /* the model FROM which it was created ("from" of its model layer), or NULL */
    /* from the config blob (NULL when absent): */
    char *format;             /* "gguf" */
    char *family;             /* "llama" */
    char *parameter_size;     /* "8.0B" */
    char *quantization_level; /* "Q4_K_M" */
    char digest[65];          /* sha256 hex of the manifest file bytes (Ollama's list digest) */
    uint64_t size;            /* sum of the layer and config sizes */
    int64_t modified_ns;      /* manifest mtime, nanoseconds since the epoch */
};

/* Looks name up (case-insensitively) and reads its manifest, config and text layers. */
int store_resolve(struct store *s, const char *name, struct store_model *out, struct err *e);
void store_model_free(struct store_model *m);

/* Turns what a user typed into a GGUF path: an existing file path is returned as is, otherwise it
 * is resolved as a model name in the default store. *path is malloc'd. */
int store_gguf_path(const char *name_or_path, char **path, struct err *e);

/* All models, sorted by modification time, newest first (as `ollama list` shows them). */
struct store_entry {
    char *name; /* display form */
    struct store_name parsed;
    char digest[65];
    uint64_t size;
    int64_t modified_ns;
    char *family;             /* may be NULL */
    char *parameter_size;     /* may be NULL */
    char *quantization_level; /* may be NULL */
};
int store_list(struct store *s, struct store_entry **out, size_t *n, struct err *e);
void store_list_free(struct store_entry *entries, size_t n);

/* Removes a manifest, its now-empty directories, and every blob no other manifest references. */
int store_delete(struct store *s, const char *name, struct err *e);
/* Copies the manifest only (blobs are shared). Replaces an existing destination. */
int store_copy(struct store *s, const char *src, const char *dst, struct err *e);
/* Deletes blobs no manifest references (and stale temporary files). Returns the count or ERR_*. */
int store_prune(struct store *s, struct err *e);

/* ---- blobs ---- */

/* Checks "sha256:<hex>" or "sha256-<hex>" (64 hex digits); writes the 64 lowercase hex to hex. */
int store_digest_parse(const char *digest, char hex[65], struct err *e);
/* Path of a blob (whether or not it exists); malloc'd. */
int store_blob_path(struct store *s, const char *digest, char **path, struct err *e);
bool store_blob_exists(struct store *s, const char *digest);
/* Copies a file into the store, hashing it on the way; out_digest gets "sha256:<hex>". */
int store_blob_import_file(struct store *s, const char *path, char out_digest[72], struct err *e);
int store_blob_import_mem(struct store *s, const void *data, size_t size, char out_digest[72],
                          struct err *e);

/* Streaming upload (POST /api/blobs/:digest): bytes go to a temporary file in blobs/ while being
 * hashed; finish verifies against expected ("sha256:<hex>") and renames into place, or fails with
 * ERR_INVALID "digest mismatch, expected ..., got ..." and removes the data. */
struct store_blob_writer;
int store_blob_writer_open(struct store *s, struct store_blob_writer **out, struct err *e);
int store_blob_writer_write(struct store_blob_writer *w, const void *data, size_t size, struct err *e);
int store_blob_writer_finish(struct store_blob_writer *w, const char *expected, char out_digest[72],
                             struct err *e);
void store_blob_writer_abort(struct store_blob_writer *w);

/* sha256 of a whole file as 64 lowercase hex digits. */
int store_sha256_file(const char *path, char hex[65], struct err *e);

/* ---- create ---- */

/* Progress of create and quantize: status lines ("parsing GGUF", "writing manifest", "success")
 * with total == 0, or byte/tensor progress with done <= total. */
typedef void (*store_progress_fn)(void *ctx, const char *status, uint64_t done, uint64_t total);

/* What a model is made from: a Modelfile's contents, or the fields of POST /api/create. */
struct store_create_req {
    const char *from;           /* a store name or a GGUF path (relative to base_dir) */
    const char *from_digest;    /* or: "sha256:<hex>" of a GGUF blob already in the store */
    const char *base_dir;       /* directory relative paths are resolved against; NULL = cwd */
    const char *template_text;  /* NULL keeps the parent's */
    const char *system;         /* NULL keeps the parent's */
    const char *params_json;    /* JSON object merged over the parent's params; NULL for none */
    const char *messages_json;  /* JSON array replacing the parent's messages; NULL keeps them */
    const char *const *licenses; /* replaces the parent's licenses when n_licenses > 0 */
    size_t n_licenses;
    const char *quantize;       /* target type ("Q4_K_M", ...) or NULL */
    int n_threads;              /* for quantization; <= 0: physical cores */
    store_progress_fn progress; /* may be NULL */
    void *progress_ctx;
};

/* Builds the blobs and writes the manifest of name; the previous manifest of the same name has its
 * now-unreferenced blobs removed. */
int store_create(struct store *s, const char *name, const struct store_create_req *req, struct err *e);

/* ---- Modelfile ---- */

struct modelfile_message {
    char *role; /* system, user or assistant */
    char *content;
};

struct modelfile {
    char *from;
    char *template_text;
    char *system;
    char *params_json; /* JSON object of the PARAMETER lines (type-checked, stop accumulated); NULL if none */
    char **licenses;
    size_t n_licenses;
    struct modelfile_message *messages;
    size_t n_messages;
    char *messages_json; /* the messages as a JSON array; NULL if none */
};

/* Parses a Modelfile. Errors name the line: "(line 3): unknown parameter 'foo'". ADAPTER and other
 * unsupported instructions are ERR_UNSUPPORTED. Deprecated parameters are skipped with a warning
 * written to warn (if non-NULL, one per line). */
int modelfile_parse(const char *text, struct modelfile *out, char *warn, size_t warn_cap, struct err *e);
void modelfile_free(struct modelfile *mf);
/* Fills a create request from a parsed Modelfile (pointers into mf; mf must outlive req). */
void modelfile_to_req(const struct modelfile *mf, struct store_create_req *req);

/* Type-checks one PARAMETER name/value against Ollama's options and adds it to a JSON
 * object text (params_json is realloc'd). Exposed for the REPL's /set parameter. */
int modelfile_add_param(char **params_json, const char *name, const char *value, struct err *e);

/* Renders a stored model as a Modelfile (what `show --modelfile` prints); malloc'd. */
char *store_model_modelfile(const struct store_model *m);
/* Renders params_json as `show --parameters` prints it (name in a 30-column field, then the value). */
char *store_params_text(const char *params_json);

/* ---- quantize ---- */

/* Quantization mixes llama.cpp offers (file types). */
enum store_ftype {
    STORE_FT_F32,
    STORE_FT_F16,
    STORE_FT_BF16,
    STORE_FT_Q8_0,
    STORE_FT_Q4_0,
    STORE_FT_Q4_1,
    STORE_FT_Q5_0,
    STORE_FT_Q5_1,
    STORE_FT_Q4_K_S,
    STORE_FT_Q4_K_M,
    STORE_FT_Q5_K_S,
    STORE_FT_Q5_K_M,
    STORE_FT_Q6_K,
};

/* Parses "q4_k_m", "Q8_0", ... ; ERR_INVALID listing the supported names otherwise. */
int store_ftype_parse(const char *name, enum store_ftype *out, struct err *e);
const char *store_ftype_name(enum store_ftype ft);
/* llama.cpp's general.file_type number of a mix. */
uint32_t store_ftype_llama(enum store_ftype ft);

/* Rewrites in (a GGUF with F32/F16/BF16 weights) as out with the mix's per-tensor types, on
 * n_threads threads (<= 0: physical cores). Metadata is copied; general.file_type is updated. */
int store_quantize_file(const char *in, const char *out, enum store_ftype ft, int n_threads,
                        store_progress_fn progress, void *progress_ctx, struct err *e);

/* ---- import: Hugging Face and MLX safetensors checkpoints (import.c) ---- */

struct store_import_opts {
    const char *quantize;       /* a store_ftype name, or NULL: F32/F16/BF16 kept, MLX to the nearest type */
    int n_threads;              /* for --quantize; <= 0: physical cores */
    store_progress_fn progress; /* may be NULL */
    void *progress_ctx;
};

/* Converts a checkpoint directory (config.json; model.safetensors or model.safetensors.index.json
 * with its shards; tokenizer.json; tokenizer_config.json) of a LlamaForCausalLM, MistralForCausalLM,
 * Qwen2ForCausalLM or Qwen3ForCausalLM into the GGUF file out (written atomically). MLX checkpoints
 * (config.json "quantization": {group_size, bits}, U32-packed weights with .scales and .biases) are
 * dequantized and re-quantized: 8 bits to Q8_0, 4 bits to Q4_1 (group size 32) or Q4_K (rows that
 * are a multiple of 256; Q4_1 otherwise). Errors name the file and the tensor or field. */
int store_import_dir(const char *dir, const char *out, const struct store_import_opts *o, struct err *e);

/* ---- registry: pull and push (registry HTTP API v2, as Ollama's registry speaks it) ---- */

/* Progress of pull/push, shaped like Ollama's progress objects: status ("pulling manifest",
 * "pulling <12 hex>", "verifying sha256 digest", "writing manifest", "pushing <12 hex>",
 * "pushing manifest", "success", ...), and for layer transfers the layer's digest with total and
 * completed bytes (digest NULL and total 0 otherwise). Called from the calling thread. */
typedef void (*store_xfer_fn)(void *ctx, const char *status, const char *digest, uint64_t total,
                              uint64_t completed);

struct store_xfer_opts {
    bool insecure;          /* allow plain http to the registry (and http:// names) */
    store_xfer_fn progress; /* may be NULL */
    void *progress_ctx;
    /* May be NULL. Once it reads true (set by the progress callback, another thread or a signal
     * handler) the transfer stops within about 0.1 s (curl's progress callback and the download
     * loop look at it) and store_pull/store_push fail with ERR_IO "... cancelled". A cancelled
     * pull keeps its partial download and part records, so the next pull resumes it. */
    const atomic_bool *cancel;
};

/* Downloads name's manifest and every blob the store lacks (parallel ranged parts, resumable: see
 * registry.c), verifies each blob's sha256, then writes the manifest exactly as served. A missing
 * model is ERR_NOTFOUND "pull model manifest: file does not exist". o->cancel stops it (see above). */
int store_pull(struct store *s, const char *name, const struct store_xfer_opts *o, struct err *e);
/* Uploads a stored model's blobs the registry lacks, then its manifest. */
int store_push(struct store *s, const char *name, const struct store_xfer_opts *o, struct err *e);

#endif
