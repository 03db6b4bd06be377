/* grammar.c — the JSON byte automaton and the token mask (see grammar.h).
 *
 * A parse state is a stack of frames (root, value-start, object, array, string, number, literal),
 * kept as an immutable linked list so that stepping a byte copies only the top frame. Several
 * states are live at once where the schema is ambiguous (anyOf, optional properties), so the
 * automaton is a set of stacks. A token is allowed when some state survives all of its bytes.
 *
 * The mask walks a trie of the vocabulary's token bytes depth first, stepping the state set by each
 * edge byte and pruning a subtree as soon as no state survives, so structural positions cost a few
 * hundred steps. Inside a string almost every token is allowed; there the tokens that are plain
 * string content (no quote, backslash or control byte; whole UTF-8 characters) are admitted by a
 * flat pass over their precomputed character counts, and only the rest are walked in a second trie.
 * Frames of the walk come from a scratch arena reset subtree by subtree, so masking allocates
 * nothing. */
#include "sample/grammar.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "sample/grammar_internal.h"
#include "tokenizer/tokenizer.h"

#define MAX_STATES 32
#define MAX_WS 20
#define MAX_NEST 64
#define MAX_INT_DIGITS 15
#define MAX_FRAC_DIGITS 15
#define MAX_EXP_DIGITS 2
#define SCRATCH_FRAMES (1u << 16)
#define KEEP_FRAMES (MAX_STATES * (2 * MAX_NEST + 8))

/* ---- vocabulary index ---- */

#define T_NONE UINT32_MAX

struct tnode {
    uint32_t child, sibling; /* first child, next sibling */
    int32_t token;           /* first token whose bytes end here, -1 if none */
    uint8_t byte;            /* edge label from the parent */
};

struct trie {
    struct tnode *n;
    size_t len, cap;
};

struct grammar_vocab {
    const struct tokenizer *tok;
    int32_t n_vocab;
    int32_t *same_next; /* next token with the same bytes, -1 at the end */
    struct trie all, other; /* every text token; the tokens that are not plain string content */
    int32_t *plain;         /* plain string-content tokens */
    uint32_t *plain_chars;  /* their lengths in characters */
    size_t n_plain;
    int32_t *eog;
    size_t n_eog;
    size_t max_len; /* longest token in bytes */
    char **bytes;   /* each token's bytes (NULL for tokens never generated as text) */
    uint32_t *blen;
};

static int trie_init(struct trie *t)
{
    t->cap = 1024;
    t->n = malloc(t->cap * sizeof *t->n);
    if (!t->n)
        return -1;
    t->len = 1;
    t->n[0] = (struct tnode){T_NONE, T_NONE, -1, 0};
    return 0;
}

static int trie_insert(struct trie *t, const uint8_t *s, size_t len, int32_t id, int32_t *same_next)
{
    uint32_t cur = 0;
    for (size_t i = 0; i < len; i++) {
        uint32_t c = t->n[cur].child, prev = T_NONE;
        while (c != T_NONE && t->n[c].byte < s[i]) {
            prev = c;
            c = t->n[c].sibling;
        }
        if (c == T_NONE || t->n[c].byte != s[i]) {
            if (t->len == t->cap) {
                size_t nc = t->cap * 2;
                struct tnode *p = realloc(t->n, nc * sizeof *p);
                if (!p)
                    return -1;
                t->n = p;
                t->cap = nc;
            }
            uint32_t k = (uint32_t)t->len++;
            t->n[k] = (struct tnode){T_NONE, c, -1, s[i]};
            if (prev == T_NONE)
                t->n[cur].child = k;
            else
                t->n[prev].sibling = k;
            c = k;
        }
        cur = c;
    }
    same_next[id] = t->n[cur].token;
    t->n[cur].token = id;
    return 0;
}

/* Plain string content: printable, no quote or backslash, and whole UTF-8 characters. Returns the
 * character count, or -1. */
static long plain_chars(const uint8_t *s, size_t len)
{
    long chars = 0;
    for (size_t i = 0; i < len;) {
        uint8_t b = s[i];
        size_t need;
        if (b < 0x20 || b == '"' || b == '\\')
            return -1;
        if (b < 0x80)
            need = 0;
        else if (b >= 0xC2 && b <= 0xDF)
            need = 1;
        else if (b >= 0xE0 && b <= 0xEF)
            need = 2;
        else if (b >= 0xF0 && b <= 0xF4)
            need = 3;
        else
            return -1;
        if (need) {
            if (i + need >= len)
                return -1;
            uint8_t lo = 0x80, hi = 0xBF, b1 = s[i + 1];
            if (b == 0xE0)
                lo = 0xA0;
            else if (b == 0xED)
                hi = 0x9F;
            else if (b == 0xF0)
                lo = 0x90;
            else if (b == 0xF4)
                hi = 0x8F;
            if (b1 < lo || b1 > hi)
                return -1;
            for (size_t k = 2; k <= need; k++)
                if ((s[i + k] & 0xC0) != 0x80)
                    return -1;
        }
        i += need + 1;
        chars++;
    }
    return chars;
}

void grammar_vocab_free(struct grammar_vocab *v)
{
    if (!v)
        return;
    if (v->bytes)
        for (int32_t i = 0; i < v->n_vocab; i++)
            free(v->bytes[i]);
    free(v->bytes);
    free(v->blen);
    free(v->same_next);
    free(v->all.n);
    free(v->other.n);
    free(v->plain);
    free(v->plain_chars);
    free(v->eog);
    free(v);
}

int grammar_vocab_new(const struct tokenizer *tok, struct grammar_vocab **out, struct err *e)
{
    *out = NULL;
    struct grammar_vocab *v = calloc(1, sizeof *v);
    if (!v)
        return err_set(e, ERR_NOMEM, "out of memory indexing the vocabulary for constrained output");
    v->tok = tok;
    v->n_vocab = tokenizer_n_vocab(tok);
    size_t n = (size_t)v->n_vocab;
    v->same_next = malloc(n * sizeof *v->same_next);
    v->plain = malloc(n * sizeof *v->plain);
    v->plain_chars = malloc(n * sizeof *v->plain_chars);
    v->eog = malloc(n * sizeof *v->eog);
    v->bytes = calloc(n, sizeof *v->bytes);
    v->blen = calloc(n, sizeof *v->blen);
    char buf[1024];
    if (!v->same_next || !v->plain || !v->plain_chars || !v->eog || !v->bytes || !v->blen ||
        trie_init(&v->all) || trie_init(&v->other))
        goto nomem;
    for (int32_t id = 0; id < v->n_vocab; id++) {
        v->same_next[id] = -1;
        if (tokenizer_is_eog(tok, id)) {
            v->eog[v->n_eog++] = id;
            continue;
        }
        if (tokenizer_is_special(tok, id))
            continue;
        int k = tokenizer_token_bytes(tok, id, false, buf, sizeof buf);
        if (k <= 0 || (size_t)k > sizeof buf)
            continue; /* empty, or longer than any JSON token needs: never allowed */
        v->bytes[id] = malloc((size_t)k);
        if (!v->bytes[id])
            goto nomem;
        memcpy(v->bytes[id], buf, (size_t)k);
        v->blen[id] = (uint32_t)k;
        if ((size_t)k > v->max_len)
            v->max_len = (size_t)k;
        if (trie_insert(&v->all, (const uint8_t *)buf, (size_t)k, id, v->same_next))
            goto nomem;
        long pc = plain_chars((const uint8_t *)buf, (size_t)k);
        if (pc >= 0) {
            v->plain[v->n_plain] = id;
            v->plain_chars[v->n_plain++] = (uint32_t)pc;
        }
    }
    /* Tokens with the same bytes are equally plain, so the second trie's same-bytes chains are the
     * first one's: inserting in the same order rewrites the same links. */
    for (int32_t id = 0; id < v->n_vocab; id++)
        if (v->bytes[id] && plain_chars((const uint8_t *)v->bytes[id], v->blen[id]) < 0 &&
            trie_insert(&v->other, (const uint8_t *)v->bytes[id], v->blen[id], id, v->same_next))
            goto nomem;
    *out = v;
    return 0;
nomem:
    grammar_vocab_free(v);
    return err_set(e, ERR_NOMEM, "out of memory indexing the vocabulary for constrained output");
}

/* ---- automaton ---- */

enum fkind { F_ROOT, F_VAL, F_OBJ, F_ARR, F_STR, F_NUM, F_LIT };
enum { O_OPEN, O_COMMA, O_KEY, O_COLON, O_VALUE, O_AFTER };
enum { A_OPEN, A_VALUE, A_AFTER };
enum { S_BODY, S_ESC, S_U1, S_U2, S_U3, S_U4 };
enum { N_SIGN, N_ZERO, N_INT, N_DOT, N_FRAC, N_E, N_ESIGN, N_EXP };
#define ADDL_KEY UINT32_MAX

struct frame {
    const struct frame *up;
    uint8_t kind, phase, ws, u8; /* u8: continuation bytes still needed | first one's range << 2 */
    uint16_t nest;
    uint32_t node;
    uint32_t a, b;
};

struct arena {
    struct frame *f;
    size_t top, cap;
};

struct sset {
    const struct frame *s[MAX_STATES];
    int n;
};

struct level {
    uint32_t node, child;
    size_t mark;
    struct sset set;
};

struct grammar {
    const struct grammar_vocab *v;
    struct gschema sch;
    struct arena scratch, keep[2];
    int cur_keep;
    struct sset cur;
    bool ended; /* an end-of-generation token was accepted */
    /* lazy start */
    char *trigger;
    size_t trigger_len;
    bool active;
    char *tail; /* the last trigger_len - 1 bytes seen while inactive */
    size_t tail_len;
    /* mask scratch */
    uint8_t *allowed;
    struct level *levels;
};

static struct frame *fr_new(struct arena *a, const struct frame *copy)
{
    if (a->top == a->cap)
        return NULL;
    struct frame *f = &a->f[a->top++];
    *f = *copy;
    return f;
}

static void add(struct sset *out, const struct frame *f)
{
    if (f && out->n < MAX_STATES)
        out->s[out->n++] = f;
}

static bool is_ws(uint8_t b)
{
    return b == ' ' || b == '\n' || b == '\t';
}

static bool is_digit(uint8_t b)
{
    return b >= '0' && b <= '9';
}

static int hexv(uint8_t b)
{
    if (is_digit(b))
        return b - '0';
    if (b >= 'a' && b <= 'f')
        return b - 'a' + 10;
    if (b >= 'A' && b <= 'F')
        return b - 'A' + 10;
    return -1;
}

static void feed(struct grammar *g, const struct frame *f, uint8_t b, struct sset *out);

/* The parent frame, resumed after its child value completed. */
static const struct frame *advance(struct grammar *g, const struct frame *up)
{
    struct frame *p = fr_new(&g->scratch, up);
    if (!p)
        return NULL;
    p->ws = 0;
    switch (p->kind) {
    case F_ROOT:
        p->phase = 1;
        break;
    case F_OBJ:
        if (p->phase == O_VALUE && p->u8 < UINT8_MAX)
            p->u8++;
        p->phase = p->phase == O_KEY ? O_COLON : O_AFTER;
        break;
    case F_ARR:
        p->phase = A_AFTER;
        p->a++;
        break;
    default:
        break;
    }
    return p;
}

static const struct frame *push(struct grammar *g, const struct frame *up, uint8_t kind, uint8_t phase,
                                uint32_t node, uint32_t a)
{
    struct frame t = {.up = up, .kind = kind, .phase = phase, .node = node, .a = a,
                      .nest = up ? (uint16_t)(up->nest + (kind == F_OBJ || kind == F_ARR)) : 0};
    if (t.nest > MAX_NEST)
        return NULL;
    return fr_new(&g->scratch, &t);
}

/* Begins a value of schema node `node` with byte b, as the child of up. */
static void start(struct grammar *g, const struct frame *up, uint32_t node, uint8_t b, struct sset *out)
{
    const struct gnode *n = &g->sch.nodes[node];
    switch (n->kind) {
    case G_ANYOF:
        for (uint32_t i = 0; i < n->n; i++)
            start(g, up, g->sch.alts[n->off + i], b, out);
        return;
    case G_ANY:
        if (b == '{')
            start(g, up, GN_ANY_OBJ, b, out);
        else if (b == '[')
            start(g, up, GN_ANY_ARR, b, out);
        else if (b == '"')
            start(g, up, GN_STR, b, out);
        else if (b == '-' || is_digit(b))
            start(g, up, GN_NUM, b, out);
        else if (b == 't')
            start(g, up, GN_TRUE, b, out);
        else if (b == 'f')
            start(g, up, GN_FALSE, b, out);
        else if (b == 'n')
            start(g, up, GN_NULL, b, out);
        return;
    case G_OBJECT:
        if (b == '{')
            add(out, push(g, up, F_OBJ, O_OPEN, node, 0));
        return;
    case G_ARRAY:
        if (b == '[')
            add(out, push(g, up, F_ARR, A_OPEN, node, 0));
        return;
    case G_STRING:
        if (b == '"')
            add(out, push(g, up, F_STR, S_BODY, node, 0));
        return;
    case G_NUMBER:
    case G_INTEGER:
        if (b == '-')
            add(out, push(g, up, F_NUM, N_SIGN, node, 0));
        else if (b == '0')
            add(out, push(g, up, F_NUM, N_ZERO, node, 1));
        else if (is_digit(b))
            add(out, push(g, up, F_NUM, N_INT, node, 1));
        return;
    case G_LIT: {
        const struct glit *l = &g->sch.lits[n->child];
        if ((uint8_t)l->s[0] != b)
            return;
        if (l->len == 1)
            add(out, advance(g, up));
        else
            add(out, push(g, up, F_LIT, 0, node, 1));
        return;
    }
    default:
        return;
    }
}

/* Whitespace between tokens is one space, or a newline followed by up to MAX_WS spaces or tabs
 * (indentation): enough for compact and pretty-printed JSON, and no room to stall in blank lines.
 * The frame's ws is 0 before any, 1 after a space, 2 + n after a newline and n spaces/tabs. */
static const struct frame *with_ws(struct grammar *g, const struct frame *f, uint8_t b)
{
    uint8_t ws;
    if (f->ws == 0 && b == ' ')
        ws = 1;
    else if (f->ws == 0 && b == '\n')
        ws = 2;
    else if (f->ws >= 2 && f->ws < 2 + MAX_WS && (b == ' ' || b == '\t'))
        ws = (uint8_t)(f->ws + 1);
    else
        return NULL;
    struct frame *c = fr_new(&g->scratch, f);
    if (c)
        c->ws = ws;
    return c;
}

/* For objects the frame's u8 counts the properties so far (saturating). */
static bool obj_can_close(const struct grammar *g, const struct frame *f)
{
    const struct gnode *n = &g->sch.nodes[f->node];
    return (int64_t)f->a > (int64_t)n->last_required && f->u8 >= n->min;
}

static bool obj_has_room(const struct grammar *g, const struct frame *f)
{
    const struct gnode *n = &g->sch.nodes[f->node];
    return f->u8 < n->max && (f->a < n->n || n->child != G_NO_NODE);
}

/* After the opening quote of a key: one state per property that may come next. */
static void obj_keys(struct grammar *g, const struct frame *f, struct sset *out)
{
    const struct gnode *n = &g->sch.nodes[f->node];
    for (uint32_t j = f->a; j < n->n; j++) {
        struct frame t = *f;
        t.phase = O_KEY;
        t.ws = 0;
        t.a = j + 1;
        t.b = j;
        const struct frame *o = fr_new(&g->scratch, &t);
        if (o) {
            struct frame k = {.up = o, .kind = F_LIT, .node = g->sch.props[n->off + j].key_lit,
                              .nest = o->nest, .a = 0, .b = 1};
            add(out, fr_new(&g->scratch, &k));
        }
        if (g->sch.props[n->off + j].required)
            return; /* a required property cannot be skipped */
    }
    if (n->child != G_NO_NODE && (int64_t)f->a > (int64_t)n->last_required) {
        struct frame t = *f;
        t.phase = O_KEY;
        t.ws = 0;
        t.a = n->n;
        t.b = ADDL_KEY;
        const struct frame *o = fr_new(&g->scratch, &t);
        if (o)
            add(out, push(g, o, F_STR, S_BODY, n->key, 0));
    }
}

static void feed_str(struct grammar *g, const struct frame *f, uint8_t b, struct sset *out)
{
    const struct gnode *n = &g->sch.nodes[f->node];
    struct frame t = *f;
    switch (f->phase) {
    case S_BODY: {
        unsigned need = f->u8 & 3, range = f->u8 >> 2;
        if (need) {
            static const uint8_t lo[5] = {0x80, 0xA0, 0x80, 0x90, 0x80};
            static const uint8_t hi[5] = {0xBF, 0xBF, 0x9F, 0xBF, 0x8F};
            if (b < lo[range] || b > hi[range])
                return;
            t.u8 = (uint8_t)(need - 1);
            add(out, fr_new(&g->scratch, &t));
            return;
        }
        if (b == '"') {
            if (f->a >= n->min)
                add(out, advance(g, f->up));
            return;
        }
        if (b < 0x20 || f->a >= n->max)
            return;
        t.a++;
        if (b == '\\') {
            t.phase = S_ESC;
        } else if (b >= 0x80) {
            if (b >= 0xC2 && b <= 0xDF)
                t.u8 = 1;
            else if (b == 0xE0)
                t.u8 = 2 | 1 << 2;
            else if (b == 0xED)
                t.u8 = 2 | 2 << 2;
            else if (b >= 0xE1 && b <= 0xEF)
                t.u8 = 2;
            else if (b == 0xF0)
                t.u8 = 3 | 3 << 2;
            else if (b == 0xF4)
                t.u8 = 3 | 4 << 2;
            else if (b >= 0xF1 && b <= 0xF3)
                t.u8 = 3;
            else
                return;
        }
        add(out, fr_new(&g->scratch, &t));
        return;
    }
    case S_ESC:
        if (b == 'u') {
            t.phase = S_U1;
            t.b = 0;
        } else if (strchr("\"\\/bfnrt", b) && b) {
            t.phase = S_BODY;
        } else {
            return;
        }
        add(out, fr_new(&g->scratch, &t));
        return;
    default: { /* S_U1..S_U4 */
        int h = hexv(b);
        if (h < 0)
            return;
        t.b = t.b * 16 + (uint32_t)h;
        /* No surrogates (a lone one is not valid text) and no NUL: readers reject both. */
        if (f->phase == S_U2 && t.b >= 0xD8 && t.b <= 0xDF)
            return;
        if (f->phase == S_U4) {
            if (t.b == 0)
                return;
            t.phase = S_BODY;
        } else {
            t.phase++;
        }
        add(out, fr_new(&g->scratch, &t));
        return;
    }
    }
}

static void feed_num(struct grammar *g, const struct frame *f, uint8_t b, struct sset *out)
{
    bool integer = g->sch.nodes[f->node].kind == G_INTEGER;
    struct frame t = *f;
    int next = -1;
    switch (f->phase) {
    case N_SIGN:
        if (b == '0')
            next = N_ZERO, t.a = 1;
        else if (is_digit(b))
            next = N_INT, t.a = 1;
        break;
    case N_ZERO:
    case N_INT:
        if (f->phase == N_INT && is_digit(b) && f->a < MAX_INT_DIGITS)
            next = N_INT, t.a++;
        else if (!integer && b == '.')
            next = N_DOT;
        else if (!integer && (b == 'e' || b == 'E'))
            next = N_E;
        break;
    case N_DOT:
        if (is_digit(b))
            next = N_FRAC, t.a = 1;
        break;
    case N_FRAC:
        if (is_digit(b) && f->a < MAX_FRAC_DIGITS)
            next = N_FRAC, t.a++;
        else if (b == 'e' || b == 'E')
            next = N_E;
        break;
    case N_E:
        if (b == '+' || b == '-')
            next = N_ESIGN;
        else if (is_digit(b))
            next = N_EXP, t.a = 1;
        break;
    case N_ESIGN:
        if (is_digit(b))
            next = N_EXP, t.a = 1;
        break;
    case N_EXP:
        if (is_digit(b) && f->a < MAX_EXP_DIGITS)
            next = N_EXP, t.a++;
        break;
    }
    if (next >= 0) {
        t.phase = (uint8_t)next;
        add(out, fr_new(&g->scratch, &t));
        return;
    }
    /* The byte ends the number: hand it to the enclosing value. */
    if (f->phase == N_ZERO || f->phase == N_INT || f->phase == N_FRAC || f->phase == N_EXP) {
        const struct frame *p = advance(g, f->up);
        if (p)
            feed(g, p, b, out);
    }
}

static void feed(struct grammar *g, const struct frame *f, uint8_t b, struct sset *out)
{
    switch (f->kind) {
    case F_ROOT:
        if (f->phase == 1 && is_ws(b))
            add(out, with_ws(g, f, b));
        return;
    case F_VAL:
        if (is_ws(b))
            add(out, with_ws(g, f, b));
        else
            start(g, f->up, f->node, b, out);
        return;
    case F_OBJ: {
        const struct gnode *n = &g->sch.nodes[f->node];
        if (is_ws(b) && f->phase != O_KEY && f->phase != O_VALUE) {
            add(out, with_ws(g, f, b));
            return;
        }
        struct frame t = *f;
        t.ws = 0;
        switch (f->phase) {
        case O_OPEN:
            if (b == '}' && obj_can_close(g, f))
                add(out, advance(g, f->up));
            else if (b == '"' && obj_has_room(g, f))
                obj_keys(g, f, out);
            return;
        case O_COMMA:
            if (b == '"')
                obj_keys(g, f, out);
            return;
        case O_COLON:
            if (b == ':') {
                t.phase = O_VALUE;
                const struct frame *o = fr_new(&g->scratch, &t);
                uint32_t vn = f->b == ADDL_KEY ? n->child : g->sch.props[n->off + f->b].node;
                if (o)
                    add(out, push(g, o, F_VAL, 0, vn, 0));
            }
            return;
        case O_AFTER:
            if (b == ',' && obj_has_room(g, f)) {
                t.phase = O_COMMA;
                add(out, fr_new(&g->scratch, &t));
            } else if (b == '}' && obj_can_close(g, f)) {
                add(out, advance(g, f->up));
            }
            return;
        default:
            return;
        }
    }
    case F_ARR: {
        const struct gnode *n = &g->sch.nodes[f->node];
        if (is_ws(b)) {
            add(out, with_ws(g, f, b));
            return;
        }
        struct frame t = *f;
        t.ws = 0;
        if (f->phase == A_OPEN || f->phase == A_AFTER) {
            if (b == ']' && f->a >= n->min) {
                add(out, advance(g, f->up));
            } else if (f->phase == A_AFTER && b == ',' && f->a < n->max) {
                t.phase = A_VALUE;
                const struct frame *o = fr_new(&g->scratch, &t);
                if (o)
                    add(out, push(g, o, F_VAL, 0, n->child, 0));
            } else if (f->phase == A_OPEN && f->a < n->max) {
                t.phase = A_VALUE;
                const struct frame *o = fr_new(&g->scratch, &t);
                if (o)
                    start(g, o, n->child, b, out);
            }
        }
        return;
    }
    case F_STR:
        feed_str(g, f, b, out);
        return;
    case F_NUM:
        feed_num(g, f, b, out);
        return;
    case F_LIT: {
        /* node: literal index for keys (b = 1) or a G_LIT schema node (b = 0) */
        const struct glit *l = f->b ? &g->sch.lits[f->node] : &g->sch.lits[g->sch.nodes[f->node].child];
        if ((uint8_t)l->s[f->a] != b)
            return;
        if (f->a + 1 == l->len) {
            add(out, advance(g, f->up));
        } else {
            struct frame t = *f;
            t.a++;
            add(out, fr_new(&g->scratch, &t));
        }
        return;
    }
    }
}

static bool state_done(const struct frame *f)
{
    if (f->kind == F_ROOT)
        return f->phase == 1;
    if (f->kind == F_NUM && f->up && f->up->kind == F_ROOT)
        return f->phase == N_ZERO || f->phase == N_INT || f->phase == N_FRAC || f->phase == N_EXP;
    return false;
}

bool grammar_done(const struct grammar *g)
{
    if (g->ended)
        return true;
    if (!g->active)
        return false;
    for (int i = 0; i < g->cur.n; i++)
        if (state_done(g->cur.s[i]))
            return true;
    return false;
}

/* ---- state sets between tokens ---- */

static bool same_chain(const struct frame *a, const struct frame *b)
{
    for (; a && b; a = a->up, b = b->up)
        if (a->kind != b->kind || a->phase != b->phase || a->ws != b->ws || a->u8 != b->u8 ||
            a->node != b->node || a->a != b->a || a->b != b->b)
            return false;
    return !a && !b;
}

static const struct frame *copy_chain(struct arena *dst, const struct frame *f)
{
    if (!f)
        return NULL;
    const struct frame *up = NULL;
    if (f->up) {
        up = copy_chain(dst, f->up);
        if (!up)
            return NULL;
    }
    struct frame *c = fr_new(dst, f);
    if (c)
        c->up = up;
    return c;
}

/* Moves a state set out of the scratch arena into the other keep arena, merging duplicates. */
static void keep_set(struct grammar *g, const struct sset *in)
{
    int k = 1 - g->cur_keep;
    struct arena *dst = &g->keep[k];
    dst->top = 0;
    struct sset out = {.n = 0};
    for (int i = 0; i < in->n; i++) {
        bool dup = false;
        for (int j = 0; j < i && !dup; j++)
            dup = same_chain(in->s[i], in->s[j]);
        if (!dup)
            add(&out, copy_chain(dst, in->s[i]));
    }
    g->cur = out;
    g->cur_keep = k;
    g->scratch.top = 0;
}

static void step_set(struct grammar *g, const struct sset *in, uint8_t b, struct sset *out)
{
    out->n = 0;
    for (int i = 0; i < in->n; i++)
        feed(g, in->s[i], b, out);
}

void grammar_reset(struct grammar *g)
{
    g->scratch.top = 0;
    g->keep[0].top = g->keep[1].top = 0;
    g->cur_keep = 0;
    g->ended = false;
    g->active = g->trigger == NULL;
    g->tail_len = 0;
    struct frame root = {.kind = F_ROOT};
    struct frame *r = fr_new(&g->keep[0], &root);
    struct frame val = {.up = r, .kind = F_VAL, .node = g->sch.root};
    g->cur.n = 0;
    add(&g->cur, fr_new(&g->keep[0], &val));
}

void grammar_free(struct grammar *g)
{
    if (!g)
        return;
    gschema_free(&g->sch);
    free(g->scratch.f);
    free(g->keep[0].f);
    free(g->keep[1].f);
    free(g->allowed);
    free(g->levels);
    free(g->trigger);
    free(g->tail);
    free(g);
}

int grammar_new_json(const struct grammar_vocab *v, const json_t *schema, struct grammar **out,
                     struct err *e)
{
    *out = NULL;
    struct grammar *g = calloc(1, sizeof *g);
    if (!g)
        return err_set(e, ERR_NOMEM, "out of memory creating a grammar");
    g->v = v;
    int rc = gschema_compile(&g->sch, schema, e);
    if (rc) {
        free(g);
        return rc;
    }
    g->scratch.cap = SCRATCH_FRAMES;
    g->scratch.f = malloc(SCRATCH_FRAMES * sizeof(struct frame));
    g->keep[0].cap = g->keep[1].cap = KEEP_FRAMES;
    g->keep[0].f = malloc(KEEP_FRAMES * sizeof(struct frame));
    g->keep[1].f = malloc(KEEP_FRAMES * sizeof(struct frame));
    g->allowed = malloc((size_t)v->n_vocab);
    g->levels = malloc((v->max_len + 2) * sizeof *g->levels);
    if (!g->scratch.f || !g->keep[0].f || !g->keep[1].f || !g->allowed || !g->levels) {
        grammar_free(g);
        return err_set(e, ERR_NOMEM, "out of memory creating a grammar");
    }
    grammar_reset(g);
    *out = g;
    return 0;
}

int grammar_set_trigger(struct grammar *g, const char *trigger, struct err *e)
{
    free(g->trigger);
    free(g->tail);
    g->trigger = g->tail = NULL;
    g->trigger_len = trigger ? strlen(trigger) : 0;
    if (g->trigger_len) {
        g->trigger = malloc(g->trigger_len + 1);
        g->tail = malloc(g->trigger_len * 2 + g->v->max_len + 1);
        if (!g->trigger || !g->tail)
            return err_set(e, ERR_NOMEM, "out of memory setting the grammar trigger");
        memcpy(g->trigger, trigger, g->trigger_len + 1);
    }
    grammar_reset(g);
    return 0;
}

/* ---- masking ---- */

static void allow_chain(struct grammar *g, int32_t tok)
{
    for (; tok >= 0; tok = g->v->same_next[tok])
        g->allowed[tok] = 1;
}

static void walk(struct grammar *g, const struct trie *t)
{
    struct level *lv = g->levels;
    int d = 0;
    lv[0].node = 0;
    lv[0].child = t->n[0].child;
    lv[0].mark = g->scratch.top;
    lv[0].set = g->cur;
    while (d >= 0) {
        struct level *L = &lv[d];
        if (L->child == T_NONE) {
            g->scratch.top = L->mark;
            d--;
            continue;
        }
        uint32_t ch = L->child;
        L->child = t->n[ch].sibling;
        size_t mark = g->scratch.top;
        struct level *N = &lv[d + 1];
        step_set(g, &L->set, t->n[ch].byte, &N->set);
        if (N->set.n == 0) {
            g->scratch.top = mark;
            continue;
        }
        allow_chain(g, t->n[ch].token);
        if (t->n[ch].child != T_NONE) {
            N->node = ch;
            N->child = t->n[ch].child;
            N->mark = mark;
            d++;
        } else {
            g->scratch.top = mark;
        }
    }
    g->scratch.top = 0;
}

int32_t grammar_apply(struct grammar *g, float *logits)
{
    const struct grammar_vocab *v = g->v;
    if (!g->active)
        return v->n_vocab;
    memset(g->allowed, 0, (size_t)v->n_vocab);
    if (!g->ended) {
        /* Inside plain string content every state is a string body between characters: plain
         * tokens need only their length checked. */
        bool in_str = g->cur.n > 0;
        uint32_t room = 0;
        for (int i = 0; i < g->cur.n && in_str; i++) {
            const struct frame *f = g->cur.s[i];
            in_str = f->kind == F_STR && f->phase == S_BODY && (f->u8 & 3) == 0;
            if (in_str) {
                uint32_t max = g->sch.nodes[f->node].max;
                uint32_t r = max - f->a;
                if (r > room)
                    room = r;
            }
        }
        if (in_str) {
            for (size_t i = 0; i < v->n_plain; i++)
                if (v->plain_chars[i] <= room)
                    g->allowed[v->plain[i]] = 1;
            walk(g, &v->other);
        } else {
            walk(g, &v->all);
        }
    }
    if (grammar_done(g))
        for (size_t i = 0; i < v->n_eog; i++)
            g->allowed[v->eog[i]] = 1;
    int32_t n = 0;
    for (int32_t i = 0; i < v->n_vocab; i++) {
        if (g->allowed[i])
            n++;
        else
            logits[i] = -INFINITY;
    }
    return n;
}

/* Feeds bytes to the automaton; on success the new state set is kept. */
static int feed_bytes(struct grammar *g, const uint8_t *s, size_t len)
{
    struct sset a = g->cur, b;
    for (size_t i = 0; i < len; i++) {
        step_set(g, &a, s[i], &b);
        if (b.n == 0) {
            g->scratch.top = 0;
            return -1;
        }
        a = b;
    }
    keep_set(g, &a);
    return 0;
}

int grammar_accept(struct grammar *g, int32_t token, struct err *e)
{
    const struct grammar_vocab *v = g->v;
    if (token < 0 || token >= v->n_vocab)
        return err_set(e, ERR_INVALID, "grammar: token %d is outside the vocabulary", (int)token);
    bool eog = tokenizer_is_eog(v->tok, token);
    if (!g->active) {
        if (eog || !v->bytes[token])
            return 0;
        /* Look for the trigger across token boundaries, then feed what follows it. */
        size_t tl = g->trigger_len;
        memcpy(g->tail + g->tail_len, v->bytes[token], v->blen[token]);
        size_t n = g->tail_len + v->blen[token];
        for (size_t i = 0; i + tl <= n; i++) {
            if (memcmp(g->tail + i, g->trigger, tl) == 0) {
                g->active = true;
                size_t rest = n - i - tl;
                /* Whitespace between the reasoning and the value is not part of the value. */
                size_t k = i + tl;
                while (k < n && is_ws((uint8_t)g->tail[k]))
                    k++, rest--;
                if (rest && feed_bytes(g, (const uint8_t *)g->tail + k, rest))
                    return err_set(e, ERR_INVALID,
                                   "grammar: the text after \"%s\" does not start a valid value",
                                   g->trigger);
                return 0;
            }
        }
        size_t keep = n < tl ? n : tl - 1;
        memmove(g->tail, g->tail + n - keep, keep);
        g->tail_len = keep;
        return 0;
    }
    if (g->ended)
        return err_set(e, ERR_INVALID, "grammar: token %d after the end of generation", (int)token);
    if (eog) {
        if (!grammar_done(g))
            return err_set(e, ERR_INVALID,
                           "grammar: end of generation before the JSON value is complete");
        g->ended = true;
        return 0;
    }
    if (!v->bytes[token] || feed_bytes(g, (const uint8_t *)v->bytes[token], v->blen[token]))
        return err_set(e, ERR_INVALID, "grammar: token %d does not continue the JSON value here",
                       (int)token);
    return 0;
}
