/* tokenizer.h — text to token ids and back, for every vocabulary hearth runs.
 *
 * Three kinds: SPM-style (tokenizer.ggml.model = "llama": scores, byte fallback, leading space),
 * byte-level BPE ("gpt2": merges plus the pre-tokenizer named by tokenizer.ggml.pre) and WordPiece
 * ("bert", for embedding models). A vocabulary
 * comes from GGUF metadata or from a Hugging Face tokenizer.json. */
#ifndef HEARTH_TOKENIZER_TOKENIZER_H
#define HEARTH_TOKENIZER_TOKENIZER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/err.h"

struct gguf_file;
struct tokenizer;

/* Builds a tokenizer from a GGUF's tokenizer.ggml.* metadata. */
int tokenizer_from_gguf(const struct gguf_file *f, struct tokenizer **out, struct err *e);
/* Builds one from a Hugging Face tokenizer.json; a tokenizer_config.json beside it, when present,
 * supplies BOS/EOS and add_bos_token. */
int tokenizer_from_json(const char *path, struct tokenizer **out, struct err *e);
void tokenizer_free(struct tokenizer *t);

int32_t tokenizer_n_vocab(const struct tokenizer *t);
int32_t tokenizer_bos(const struct tokenizer *t); /* -1 if none */
int32_t tokenizer_eos(const struct tokenizer *t); /* -1 if none */
bool tokenizer_add_bos(const struct tokenizer *t);
bool tokenizer_add_eos(const struct tokenizer *t);
/* True for every token that ends generation (EOS, EOT, EOM, <|im_end|>, ...). */
bool tokenizer_is_eog(const struct tokenizer *t, int32_t id);
/* True for control/special tokens (not normal text). */
bool tokenizer_is_special(const struct tokenizer *t, int32_t id);
/* The token's vocabulary string as stored ("▁the", "Ġthe", "<0x0A>"); NULL if id is out of range. */
const char *tokenizer_token_str(const struct tokenizer *t, int32_t id);
/* Finds a token by its vocabulary string; -1 if absent. */
int32_t tokenizer_find(const struct tokenizer *t, const char *str);

/* Encodes len bytes of text. add_special: add BOS/EOS as the vocabulary's metadata asks.
 * parse_special: text like "<|im_start|>" becomes that special token (else it is plain text).
 * *ids is malloc'd (free it); *n_ids its length. Invalid UTF-8 is encoded byte by byte. */
int tokenizer_encode(const struct tokenizer *t, const char *text, size_t len, bool add_special,
                     bool parse_special, int32_t **ids, size_t *n_ids, struct err *e);

/* The bytes a token stands for ("▁the" -> " the", "<0x0A>" -> "\n", "Ġ" -> " "). Special tokens
 * give their text only when render_special. Returns the byte count (which may exceed cap: then
 * nothing beyond cap was written), or a negative ERR_* for an id out of range. */
int tokenizer_token_bytes(const struct tokenizer *t, int32_t id, bool render_special, char *buf,
                          size_t cap);

/* Decodes ids to a malloc'd NUL-terminated string (SPM: the leading space of the first piece is
 * dropped, as SentencePiece does). */
int tokenizer_decode(const struct tokenizer *t, const int32_t *ids, size_t n, bool render_special,
                     char **out, struct err *e);

/* Incremental detokenizer for streaming: emits only complete UTF-8 characters, holding back the
 * bytes of a character split across tokens. */
struct detok {
    const struct tokenizer *tok;
    bool render_special;
    bool at_start; /* SPM: drop the leading space of the first piece */
    size_t n_pending;
    char pending[8];
};
void detok_init(struct detok *d, const struct tokenizer *t, bool render_special);
/* Appends the text of id to out (capacity cap, at least 64 + longest token); returns bytes written. */
size_t detok_push(struct detok *d, int32_t id, char *out, size_t cap);
/* Emits whatever is pending at the end of the stream (incomplete characters become U+FFFD). */
size_t detok_flush(struct detok *d, char *out, size_t cap);

#endif
