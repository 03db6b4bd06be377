/* pretok.c — pre-tokenization: splitting text into words before byte-level BPE, with the regexes
 * each vocabulary was trained with (chosen by tokenizer.ggml.pre, or taken from a tokenizer.json).
 * Regexes run through PCRE2 (UTF + Unicode properties, JIT-compiled); as in the Hugging Face
 * "Split" pre-tokenizer with behaviour "Isolated", both the matches and the text between them become
 * pieces, and each regex of a list splits the pieces the previous one produced. */
#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <stdlib.h>
#include <string.h>

#include "tokenizer/tok_internal.h"

struct pretok {
    size_t n;
    pcre2_code *re[TOK_MAX_REGEX];
};

/* GPT-2's pattern (without its final "\s+", which only re-matches what the gaps give anyway). */
#define RE_GPT2 "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)"
#define RE_LLAMA3                                                                                  \
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|"   \
    "\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"
#define RE_QWEN2                                                                                   \
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|"       \
    "\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"
#define RE_TEKKEN                                                                                  \
    "[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]*[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]+|"              \
    "[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]+[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]*|\\p{N}|"        \
    " ?[^\\s\\p{L}\\p{N}]+[\\r\\n/]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"
#define RE_GPT4O                                                                                   \
    "[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]*[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]+"               \
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)?|[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]+"               \
    "[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n/]*|" \
    "\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"
/* DeepSeek LLM's letter classes: Latin, Greek, Cyrillic, Armenian, Georgian and other cased scripts. */
#define RE_DEEPSEEK_LETTERS                                                                        \
    "\\s?[A-Za-z\\x{B5}\\x{C0}-\\x{D6}\\x{D8}-\\x{F6}\\x{F8}-\\x{1BA}\\x{1BC}-\\x{1BF}\\x{1C4}-\\x{293}"         \
    "\\x{295}-\\x{2AF}\\x{370}-\\x{373}\\x{376}\\x{377}\\x{37B}-\\x{37D}\\x{37F}\\x{386}\\x{388}-\\x{38A}"      \
    "\\x{38C}\\x{38E}-\\x{3A1}\\x{3A3}-\\x{3F5}\\x{3F7}-\\x{481}\\x{48A}-\\x{52F}\\x{531}-\\x{556}"             \
    "\\x{10A0}-\\x{10C5}\\x{13A0}-\\x{13F5}\\x{13F8}-\\x{13FD}\\x{1C90}-\\x{1CBA}\\x{1CBD}-\\x{1CBF}"          \
    "\\x{1D00}-\\x{1D2B}\\x{1D6B}-\\x{1D77}\\x{1D79}-\\x{1D9A}\\x{1E00}-\\x{1F15}\\x{1F18}-\\x{1F1D}"          \
    "\\x{1F20}-\\x{1F45}\\x{1F48}-\\x{1F4D}\\x{1F50}-\\x{1F57}\\x{1F59}\\x{1F5B}\\x{1F5D}\\x{1F5F}-\\x{1F7D}"  \
    "\\x{1F80}-\\x{1FB4}\\x{1FB6}-\\x{1FBC}\\x{1FBE}\\x{1FC2}-\\x{1FC4}\\x{1FC6}-\\x{1FCC}\\x{1FD0}-\\x{1FD3}" \
    "\\x{1FD6}-\\x{1FDB}\\x{1FE0}-\\x{1FEC}\\x{1FF2}-\\x{1FF4}\\x{1FF6}-\\x{1FFC}\\x{2102}\\x{2107}"           \
    "\\x{210A}-\\x{2113}\\x{2115}\\x{2119}-\\x{211D}\\x{2124}\\x{2126}\\x{2128}\\x{212A}-\\x{212D}"           \
    "\\x{212F}-\\x{2134}\\x{2139}\\x{213C}-\\x{213F}\\x{2145}-\\x{2149}\\x{214E}\\x{2183}\\x{2184}"           \
    "\\x{2C00}-\\x{2C7B}\\x{2C7E}-\\x{2CE4}\\x{2CEB}-\\x{2CEE}\\x{2CF2}\\x{2CF3}\\x{A640}-\\x{A66D}"          \
    "\\x{A680}-\\x{A69B}\\x{A722}-\\x{A76F}\\x{A771}-\\x{A787}\\x{A78B}-\\x{A78E}\\x{AB70}-\\x{ABBF}"         \
    "\\x{FB00}-\\x{FB06}\\x{FB13}-\\x{FB17}\\x{FF21}-\\x{FF3A}\\x{FF41}-\\x{FF5A}\\x{10400}-\\x{1044F}"       \
    "\\x{104B0}-\\x{104D3}\\x{104D8}-\\x{104FB}\\x{10C80}-\\x{10CB2}\\x{10CC0}-\\x{10CF2}"                     \
    "\\x{118A0}-\\x{118DF}\\x{1E900}-\\x{1E943}]+"
#define RE_CJK "[\\x{4E00}-\\x{9FA5}\\x{800}-\\x{4E00}\\x{AC00}-\\x{D7FF}]+"

struct pre_def {
    const char *names; /* '|'-separated tokenizer.ggml.pre values */
    bool ignore_merges;
    bool nfc;
    const char *re[TOK_MAX_REGEX];
};

static const struct pre_def pre_defs[] = {
    {"llama3|llama-v3|llama-bpe|falcon3|falcon-h1|pixtral|midm-2.0|lfm2", true, false, {RE_LLAMA3}},
    {"dbrx|smaug-bpe|chatglm-bpe", false, false, {RE_LLAMA3}},
    {"deepseek-llm", false, false,
     {"[\\r\\n]", RE_DEEPSEEK_LETTERS, "\\s?[!-/:-~\\x{FF01}-\\x{FF0F}\\x{FF1A}-\\x{FF5E}\\x{2018}-\\x{201F}\\x{3000}-\\x{3002}]+",
      "\\s+$", RE_CJK, "\\p{N}+"}},
    {"deepseek-coder", false, false, {"[\\r\\n]", "\\s?\\p{L}+", "\\s?\\p{P}+", RE_CJK, "\\p{N}"}},
    {"deepseek-v3|hunyuan-dense", false, false,
     {"\\p{N}{1,3}", "[\\x{4E00}-\\x{9FA5}\\x{3040}-\\x{309F}\\x{30A0}-\\x{30FF}]+",
      "[!\"#$%&'()*+,\\-./:;<=>?@\\[\\\\\\]^_`{|}~][A-Za-z]+|[^\\r\\n\\p{L}\\p{P}\\p{S}]?[\\p{L}\\p{M}]+| "
      "?[\\p{P}\\p{S}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"}},
    {"falcon", false, false, {"[\\p{P}\\$\\+<=>\\^~\\|`]+", RE_GPT2, "[0-9][0-9][0-9]"}},
    {"starcoder|refact|command-r|smollm|codeshell|exaone|minerva-7b", false, false, {"\\p{N}", RE_GPT2}},
    {"gpt-2|mpt|olmo|jais|trillion|granite-docling", false, false, {RE_GPT2}},
    /* Qwen's tokenizer.json normalizes to NFC before splitting. */
    {"qwen2|deepseek-r1-qwen|megrez", false, true, {RE_QWEN2}},
    {"stablelm2|hunyuan|grok-2", false, false, {RE_QWEN2}},
    {"poro-chat|bloom|gpt3-finnish", false, false, {" ?[^(\\s|.,!?\\x{2026}\\x{3002}\\x{FF0C}\\x{3001}\\x{964}\\x{6D4}\\x{60C})]+"}},
    {"viking", false, false, {" ?[^(\\s|.,!?\\x{2026}\\x{3002}\\x{FF0C}\\x{3001}\\x{964}\\x{6D4}\\x{60C})]+", "\\p{N}"}},
    {"tekken", true, false, {RE_TEKKEN}},
    {"gpt-4o|llama4|minimax-m2", true, false, {RE_GPT4O}},
    {"default", false, false, {"[\\p{P}\\$\\+<=>\\^~\\|]+", RE_GPT2, "\\p{N}+", "[0-9][0-9][0-9]"}},
};

static bool name_in(const char *names, const char *name)
{
    size_t n = strlen(name);
    for (const char *p = names; *p;) {
        const char *bar = strchr(p, '|');
        size_t len = bar ? (size_t)(bar - p) : strlen(p);
        if (len == n && memcmp(p, name, n) == 0)
            return true;
        if (!bar)
            break;
        p = bar + 1;
    }
    return false;
}

void pretok_free(struct pretok *p)
{
    if (!p)
        return;
    for (size_t i = 0; i < p->n; i++)
        pcre2_code_free(p->re[i]);
    free(p);
}

int pretok_from_regexes(struct tokenizer *t, const char *const *regexes, size_t n, struct err *e)
{
    if (n > TOK_MAX_REGEX)
        return err_set(e, ERR_UNSUPPORTED, "pre-tokenizer has %zu regexes; at most %d are supported", n,
                       TOK_MAX_REGEX);
    struct pretok *p = calloc(1, sizeof *p);
    if (!p)
        return err_set(e, ERR_NOMEM, "out of memory compiling the pre-tokenizer");
    for (size_t i = 0; i < n; i++) {
        int code;
        PCRE2_SIZE at;
        /* MATCH_INVALID_UTF: text that is not valid UTF-8 still splits (invalid bytes never
         * match, so they end up in gaps of their own) instead of being undefined behaviour. */
        pcre2_code *re = pcre2_compile((PCRE2_SPTR)regexes[i], PCRE2_ZERO_TERMINATED,
                                       PCRE2_UTF | PCRE2_UCP | PCRE2_MATCH_INVALID_UTF, &code, &at, NULL);
        if (!re) {
            PCRE2_UCHAR msg[256];
            pcre2_get_error_message(code, msg, sizeof msg);
            pretok_free(p);
            return err_set(e, ERR_FORMAT, "pre-tokenizer regex %zu does not compile at offset %zu: %s (%s)",
                           i, (size_t)at, (const char *)msg, regexes[i]);
        }
        pcre2_jit_compile(re, PCRE2_JIT_COMPLETE); /* falls back to the interpreter if JIT is absent */
        p->re[p->n++] = re;
    }
    pretok_free(t->pre);
    t->pre = p;
    return 0;
}

int pretok_from_name(struct tokenizer *t, const char *name, struct err *e)
{
    if (!name || !*name)
        name = "default";
    for (size_t i = 0; i < sizeof pre_defs / sizeof pre_defs[0]; i++) {
        const struct pre_def *d = &pre_defs[i];
        if (!name_in(d->names, name))
            continue;
        size_t n = 0;
        while (n < TOK_MAX_REGEX && d->re[n])
            n++;
        t->ignore_merges = d->ignore_merges;
        t->nfc = d->nfc;
        return pretok_from_regexes(t, d->re, n, e);
    }
    return err_set(e, ERR_UNSUPPORTED, "tokenizer.ggml.pre \"%s\" is not a pre-tokenizer hearth knows", name);
}

static int push_span(struct tok_span **v, size_t *n, size_t *cap, size_t off, size_t len)
{
    if (*n == *cap) {
        size_t c = *cap ? *cap * 2 : 64;
        struct tok_span *nv = realloc(*v, c * sizeof *nv);
        if (!nv)
            return ERR_NOMEM;
        *v = nv;
        *cap = c;
    }
    (*v)[(*n)++] = (struct tok_span){off, len};
    return 0;
}

int pretok_split(const struct tokenizer *t, struct tok_scratch *s, const char *text, size_t len,
                 struct tok_span **spans, size_t *n_out, struct err *e)
{
    size_t n = 0;
    if (push_span(&s->spans, &n, &s->spans_cap, 0, len))
        return err_set(e, ERR_NOMEM, "out of memory pre-tokenizing");
    if (!t->pre || len == 0) {
        *spans = s->spans;
        *n_out = len ? 1 : 0;
        return 0;
    }
    if (!s->match_data) {
        s->match_data = pcre2_match_data_create(4, NULL);
        if (!s->match_data)
            return err_set(e, ERR_NOMEM, "out of memory pre-tokenizing");
    }
    pcre2_match_data *md = s->match_data;
    for (size_t r = 0; r < t->pre->n; r++) {
        const pcre2_code *re = t->pre->re[r];
        size_t m = 0;
        for (size_t i = 0; i < n; i++) {
            struct tok_span piece = s->spans[i];
            PCRE2_SPTR subj = (PCRE2_SPTR)(text + piece.off);
            size_t start = 0, prev = 0;
            while (start < piece.len) {
                int rc = pcre2_match(re, subj, piece.len, start, 0, md, NULL);
                if (rc < 0) {
                    if (rc == PCRE2_ERROR_NOMATCH)
                        break;
                    return err_set(e, ERR_INVALID, "pre-tokenizer regex %zu failed with PCRE2 error %d", r, rc);
                }
                PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
                size_t ms = ov[0], me = ov[1];
                if (me == ms) {
                    /* An empty match splits nothing; step over one character. */
                    start = ms + 1;
                    while (start < piece.len && ((unsigned char)subj[start] & 0xC0) == 0x80)
                        start++;
                    continue;
                }
                if (ms > prev && push_span(&s->spans2, &m, &s->spans2_cap, piece.off + prev, ms - prev))
                    return err_set(e, ERR_NOMEM, "out of memory pre-tokenizing");
                if (push_span(&s->spans2, &m, &s->spans2_cap, piece.off + ms, me - ms))
                    return err_set(e, ERR_NOMEM, "out of memory pre-tokenizing");
                prev = start = me;
            }
            if (prev < piece.len && push_span(&s->spans2, &m, &s->spans2_cap, piece.off + prev, piece.len - prev))
                return err_set(e, ERR_NOMEM, "out of memory pre-tokenizing");
        }
        struct tok_span *tmp = s->spans;
        size_t tcap = s->spans_cap;
        s->spans = s->spans2;
        s->spans_cap = s->spans2_cap;
        s->spans2 = tmp;
        s->spans2_cap = tcap;
        n = m;
    }
    *spans = s->spans;
    *n_out = n;
    return 0;
}

void tok_scratch_free(struct tok_scratch *s)
{
    free(s->spans);
    free(s->spans2);
    free(s->buf);
    free(s->sym);
    free(s->heap);
    if (s->match_data)
        pcre2_match_data_free(s->match_data);
    memset(s, 0, sizeof *s);
}
