/* vocab_json.c — tokenizer_from_json: builds a tokenizer from a Hugging Face tokenizer.json (BPE
 * models: byte-level like Llama 3 / Qwen / Mistral Tekken, or SentencePiece-style with byte
 * fallback like Mistral 7B), taking the pre-tokenizer regexes and normalizer from the file itself,
 * and BOS/EOS and add_bos_token from a tokenizer_config.json beside it. */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tokenizer/tok_internal.h"

#define MAX_RE TOK_MAX_REGEX

/* GPT-2's pattern, used by a ByteLevel pre-tokenizer with use_regex. */
static const char re_bytelevel[] =
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";

struct json_cfg {
    const char *path;
    const char *re[MAX_RE];
    char *owned[MAX_RE]; /* escaped String patterns */
    size_t n_re;
    bool byte_level, metaspace, prepend, nfc;
};

static int unsupported(struct err *e, const char *path, const char *what, const char *type)
{
    return err_set(e, ERR_UNSUPPORTED, "%s: %s \"%s\" is not supported", path, what, type ? type : "?");
}

static int add_re(struct json_cfg *c, const char *re, struct err *e)
{
    if (c->n_re == MAX_RE)
        return err_set(e, ERR_UNSUPPORTED, "%s: more than %d pre-tokenizer splits", c->path, MAX_RE);
    c->re[c->n_re++] = re;
    return 0;
}

/* A literal split string as a regex. */
static char *escape_literal(const char *s)
{
    size_t n = strlen(s);
    char *o = malloc(n * 2 + 1);
    if (!o)
        return NULL;
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        if (strchr("\\^$.|?*+()[]{}", s[i]))
            o[k++] = '\\';
        o[k++] = s[i];
    }
    o[k] = '\0';
    return o;
}

static int walk_pre(struct json_cfg *c, json_t *p, struct err *e)
{
    if (!p || json_is_null(p))
        return 0;
    const char *type = json_string_value(json_object_get(p, "type"));
    if (!type)
        return err_set(e, ERR_FORMAT, "%s: pre_tokenizer without a type", c->path);
    if (strcmp(type, "Sequence") == 0) {
        json_t *list = json_object_get(p, "pretokenizers");
        size_t i;
        json_t *v;
        json_array_foreach(list, i, v)
        {
            int rc = walk_pre(c, v, e);
            if (rc)
                return rc;
        }
        return 0;
    }
    if (strcmp(type, "Split") == 0) {
        const char *beh = json_string_value(json_object_get(p, "behavior"));
        if (!beh || strcmp(beh, "Isolated") != 0 || json_is_true(json_object_get(p, "invert")))
            return unsupported(e, c->path, "Split pre-tokenizer behavior", beh);
        json_t *pat = json_object_get(p, "pattern");
        const char *re = json_string_value(json_object_get(pat, "Regex"));
        if (re)
            return add_re(c, re, e);
        const char *lit = json_string_value(json_object_get(pat, "String"));
        if (!lit)
            return err_set(e, ERR_FORMAT, "%s: Split pre-tokenizer without a pattern", c->path);
        char *esc = escape_literal(lit);
        if (!esc)
            return err_set(e, ERR_NOMEM, "out of memory");
        c->owned[c->n_re] = esc;
        return add_re(c, esc, e);
    }
    if (strcmp(type, "ByteLevel") == 0) {
        c->byte_level = true;
        if (json_is_true(json_object_get(p, "add_prefix_space")))
            return unsupported(e, c->path, "ByteLevel option", "add_prefix_space");
        json_t *ur = json_object_get(p, "use_regex");
        if (!ur || json_is_true(ur))
            return add_re(c, re_bytelevel, e);
        return 0;
    }
    if (strcmp(type, "Digits") == 0)
        return add_re(c, json_is_true(json_object_get(p, "individual_digits")) ? "\\p{N}" : "\\p{N}+", e);
    if (strcmp(type, "Metaspace") == 0) {
        c->metaspace = true;
        return 0;
    }
    return unsupported(e, c->path, "pre_tokenizer type", type);
}

static int walk_norm(struct json_cfg *c, json_t *n, struct err *e)
{
    if (!n || json_is_null(n))
        return 0;
    const char *type = json_string_value(json_object_get(n, "type"));
    if (!type)
        return err_set(e, ERR_FORMAT, "%s: normalizer without a type", c->path);
    if (strcmp(type, "Sequence") == 0) {
        size_t i;
        json_t *v;
        json_array_foreach(json_object_get(n, "normalizers"), i, v)
        {
            int rc = walk_norm(c, v, e);
            if (rc)
                return rc;
        }
        return 0;
    }
    if (strcmp(type, "NFC") == 0) {
        c->nfc = true;
        return 0;
    }
    if (strcmp(type, "Prepend") == 0) {
        const char *s = json_string_value(json_object_get(n, "prepend"));
        if (!s || strcmp(s, "\xe2\x96\x81") != 0)
            return unsupported(e, c->path, "Prepend normalizer text", s);
        c->prepend = true;
        return 0;
    }
    if (strcmp(type, "Replace") == 0) {
        const char *from = json_string_value(json_object_get(json_object_get(n, "pattern"), "String"));
        const char *to = json_string_value(json_object_get(n, "content"));
        if (from && to && strcmp(from, " ") == 0 && strcmp(to, "\xe2\x96\x81") == 0)
            return 0; /* SentencePiece's space escaping, which the SPM encoder does itself */
        return unsupported(e, c->path, "Replace normalizer", from);
    }
    return unsupported(e, c->path, "normalizer type", type);
}

/* A token given as "text" or {"content": "text"}. */
static const char *token_text(json_t *v)
{
    if (json_is_string(v))
        return json_string_value(v);
    return json_string_value(json_object_get(v, "content"));
}

/* Reads the tokenizer_config.json beside path, if there is one. */
static int read_config(struct tokenizer *t, const char *path, struct err *e)
{
    const char *slash = strrchr(path, '/');
    size_t dl = slash ? (size_t)(slash - path + 1) : 0;
    char *cfg = malloc(dl + sizeof "tokenizer_config.json");
    if (!cfg)
        return err_set(e, ERR_NOMEM, "out of memory");
    memcpy(cfg, path, dl);
    strcpy(cfg + dl, "tokenizer_config.json");
    if (access(cfg, F_OK) != 0) {
        free(cfg);
        return 0; /* optional */
    }
    json_error_t je;
    /* INT_AS_REAL: configs carry model_max_length values like 1e30 written as integers. */
    json_t *root = json_load_file(cfg, JSON_DECODE_INT_AS_REAL, &je);
    if (!root) {
        int rc = err_set(e, ERR_FORMAT, "%s: not valid JSON (line %d: %s)", cfg, je.line, je.text);
        free(cfg);
        return rc;
    }
    free(cfg);
    const char *s;
    json_t *v;
    if ((v = json_object_get(root, "bos_token")) && (s = token_text(v)))
        t->bos = tok_lookup(t, s, strlen(s));
    else if (v && json_is_null(v))
        t->bos = -1;
    if ((v = json_object_get(root, "eos_token")) && (s = token_text(v)))
        t->eos = tok_lookup(t, s, strlen(s));
    if ((v = json_object_get(root, "pad_token")) && (s = token_text(v)))
        t->pad = tok_lookup(t, s, strlen(s));
    if ((v = json_object_get(root, "unk_token")) && (s = token_text(v)))
        t->unk = tok_lookup(t, s, strlen(s));
    if (json_is_boolean(v = json_object_get(root, "add_bos_token")))
        t->add_bos = json_is_true(v);
    if (json_is_boolean(v = json_object_get(root, "add_eos_token")))
        t->add_eos = json_is_true(v);
    json_decref(root);
    return 0;
}

/* A TemplateProcessing post-processor that starts with a special token means BOS is added. */
static void read_post(struct tokenizer *t, json_t *post)
{
    const char *type = json_string_value(json_object_get(post, "type"));
    if (!type)
        return;
    if (strcmp(type, "Sequence") == 0) {
        size_t i;
        json_t *v;
        json_array_foreach(json_object_get(post, "processors"), i, v) read_post(t, v);
        return;
    }
    if (strcmp(type, "TemplateProcessing") != 0)
        return;
    json_t *single = json_object_get(post, "single");
    json_t *first = json_array_get(single, 0);
    json_t *last = json_array_get(single, json_array_size(single) - 1);
    const char *id;
    if ((id = json_string_value(json_object_get(json_object_get(first, "SpecialToken"), "id")))) {
        t->bos = tok_lookup(t, id, strlen(id));
        t->add_bos = t->bos >= 0;
    }
    if (json_array_size(single) > 1 &&
        (id = json_string_value(json_object_get(json_object_get(last, "SpecialToken"), "id")))) {
        t->eos = tok_lookup(t, id, strlen(id));
        t->add_eos = t->eos >= 0;
    }
}

static bool is_byte_token(const char *s)
{
    return strlen(s) == 6 && s[0] == '<' && s[1] == '0' && s[2] == 'x' && s[5] == '>' &&
           strchr("0123456789ABCDEF", s[3]) && strchr("0123456789ABCDEF", s[4]);
}

int tokenizer_from_json(const char *path, struct tokenizer **out, struct err *e)
{
    *out = NULL;
    json_error_t je;
    json_t *root = json_load_file(path, 0, &je);
    if (!root)
        return err_set(e, ERR_FORMAT, "%s: not valid JSON (line %d: %s)", path, je.line, je.text);
    struct json_cfg c = {.path = path};
    struct tokenizer *t = NULL;
    int rc = 0;
    json_t *model = json_object_get(root, "model");
    const char *mtype = json_string_value(json_object_get(model, "type"));
    json_t *vocab = json_object_get(model, "vocab");
    json_t *merges = json_object_get(model, "merges");
    json_t *added = json_object_get(root, "added_tokens");
    if (!mtype || strcmp(mtype, "BPE") != 0) {
        rc = unsupported(e, path, "tokenizer model type", mtype);
        goto done;
    }
    if (!json_is_object(vocab) || !json_is_array(merges)) {
        rc = err_set(e, ERR_FORMAT, "%s: model.vocab must be an object and model.merges an array", path);
        goto done;
    }
    if ((rc = walk_pre(&c, json_object_get(root, "pre_tokenizer"), e)) ||
        (rc = walk_norm(&c, json_object_get(root, "normalizer"), e)))
        goto done;
    json_t *dec = json_object_get(root, "decoder");
    const char *dtype = json_string_value(json_object_get(dec, "type"));
    if (dtype && strcmp(dtype, "ByteLevel") == 0)
        c.byte_level = true;
    bool spm = !c.byte_level;

    /* The vocabulary size covers both the model's vocab and the added tokens. */
    json_int_t max_id = -1;
    const char *key;
    json_t *v;
    json_object_foreach(vocab, key, v)
    {
        if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) >= (1 << 24)) {
            rc = err_set(e, ERR_FORMAT, "%s: model.vocab[\"%s\"] is not a token id", path, key);
            goto done;
        }
        if (json_integer_value(v) > max_id)
            max_id = json_integer_value(v);
    }
    size_t i;
    json_array_foreach(added, i, v)
    {
        json_int_t id = json_integer_value(json_object_get(v, "id"));
        if (!json_is_integer(json_object_get(v, "id")) || id < 0 || id >= (1 << 24) ||
            !json_is_string(json_object_get(v, "content"))) {
            rc = err_set(e, ERR_FORMAT, "%s: added_tokens[%zu] needs an id and a content", path, i);
            goto done;
        }
        if (id > max_id)
            max_id = id;
    }
    if (max_id < 0) {
        rc = err_set(e, ERR_FORMAT, "%s: the vocabulary is empty", path);
        goto done;
    }
    int32_t n = (int32_t)max_id + 1;
    rc = tok_new(n, spm ? TOK_KIND_SPM : TOK_KIND_BPE, &t, e);
    if (rc)
        goto done;
    memset(t->type, TOK_UNUSED, (size_t)n); /* ids nobody names stay unused */
    json_object_foreach(vocab, key, v)
    {
        int32_t id = (int32_t)json_integer_value(v);
        uint8_t ty = spm && is_byte_token(key) ? TOK_BYTE : TOK_NORMAL;
        rc = tok_set(t, id, key, strlen(key), 0.0f, ty, e);
        if (rc)
            goto done;
    }
    json_array_foreach(added, i, v)
    {
        int32_t id = (int32_t)json_integer_value(json_object_get(v, "id"));
        const char *content = json_string_value(json_object_get(v, "content"));
        uint8_t ty = json_is_true(json_object_get(v, "special")) ? TOK_CONTROL : TOK_USER;
        if (spm && is_byte_token(content))
            ty = TOK_BYTE;
        rc = tok_set(t, id, content, strlen(content), 0.0f, ty, e);
        if (rc)
            goto done;
        if (json_is_true(json_object_get(v, "lstrip")))
            t->attr[id] |= TOK_ATTR_LSTRIP;
        if (json_is_true(json_object_get(v, "rstrip")))
            t->attr[id] |= TOK_ATTR_RSTRIP;
    }
    rc = tok_index(t, e);
    if (rc)
        goto done;
    const char *unk = json_string_value(json_object_get(model, "unk_token"));
    if (unk && (t->unk = tok_lookup(t, unk, strlen(unk))) >= 0)
        t->type[t->unk] = TOK_UNKNOWN;

    json_array_foreach(merges, i, v)
    {
        const char *a, *b;
        size_t na, nb;
        if (json_is_string(v)) {
            a = json_string_value(v);
            size_t len = json_string_length(v);
            const char *sp = len > 1 ? memchr(a + 1, ' ', len - 1) : NULL;
            if (!sp) {
                rc = err_set(e, ERR_FORMAT, "%s: model.merges[%zu] has no space separating its two parts", path, i);
                goto done;
            }
            na = (size_t)(sp - a);
            b = sp + 1;
            nb = len - na - 1;
        } else if (json_is_array(v) && json_array_size(v) == 2 && json_is_string(json_array_get(v, 0)) &&
                   json_is_string(json_array_get(v, 1))) {
            a = json_string_value(json_array_get(v, 0));
            na = json_string_length(json_array_get(v, 0));
            b = json_string_value(json_array_get(v, 1));
            nb = json_string_length(json_array_get(v, 1));
        } else {
            rc = err_set(e, ERR_FORMAT, "%s: model.merges[%zu] is neither \"a b\" nor [\"a\", \"b\"]", path, i);
            goto done;
        }
        rc = tok_add_merge(t, a, na, b, nb, (uint32_t)i, e);
        if (rc)
            goto done;
    }

    if (spm) {
        t->spm_merges = true;
        t->add_space_prefix = c.prepend || c.metaspace;
    } else {
        rc = pretok_from_regexes(t, c.re, c.n_re, e);
        if (rc) {
            err_prefix(e, "%s", path);
            goto done;
        }
        t->ignore_merges = json_is_true(json_object_get(model, "ignore_merges"));
    }
    t->nfc = c.nfc;
    read_post(t, json_object_get(root, "post_processor"));
    rc = read_config(t, path, e);
    if (rc)
        goto done;
    rc = tok_finish(t, e);
done:
    for (size_t k = 0; k < MAX_RE; k++)
        free(c.owned[k]);
    json_decref(root);
    if (rc) {
        tokenizer_free(t);
        return rc;
    }
    *out = t;
    return 0;
}
