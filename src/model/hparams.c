/* hparams.c — a model's hyper-parameters from GGUF metadata ("<arch>.block_count", ...), with the
 * defaults llama.cpp applies when a key is absent, and the per-architecture flags the one forward
 * pass switches on (QKV bias, q/k norm, RoPE pairing). */
#include <stdio.h>
#include <string.h>

#include "gguf/gguf.h"
#include "model/model.h"

struct arch_desc {
    const char *name;
    enum arch arch;
    bool rope_neox, qkv_bias, qk_norm;
};

static const struct arch_desc arches[] = {
    {"llama", ARCH_LLAMA, false, false, false},
    {"qwen2", ARCH_QWEN2, true, true, false},
    {"qwen3", ARCH_QWEN3, true, false, true},
    {"bert", ARCH_BERT, false, true, false},
};

/* Reads "<arch>.<suffix>" as u32; absent keys leave *out unchanged when optional. */
static int get_u32(const struct gguf_file *f, const char *arch, const char *suffix, bool optional,
                   int *out, struct err *e)
{
    char key[128];
    snprintf(key, sizeof key, "%s.%s", arch, suffix);
    uint32_t v;
    int rc = gguf_get_u32(f, key, &v, e);
    if (rc == ERR_NOTFOUND && optional)
        return 0;
    if (rc == ERR_NOTFOUND)
        return err_set(e, ERR_FORMAT, "missing metadata key %s", key);
    if (rc)
        return rc;
    if (v == 0 || v > (1u << 30))
        return err_set(e, ERR_FORMAT, "metadata %s = %u is out of range", key, v);
    *out = (int)v;
    return 0;
}

static int get_f32(const struct gguf_file *f, const char *arch, const char *suffix, float *out,
                   struct err *e)
{
    char key[128];
    snprintf(key, sizeof key, "%s.%s", arch, suffix);
    int rc = gguf_get_f32(f, key, out, e);
    return rc == ERR_NOTFOUND ? 0 : rc;
}

int hparams_from_gguf(const struct gguf_file *f, struct hparams *hp, struct err *e)
{
    memset(hp, 0, sizeof *hp);
    struct gguf_str a;
    int rc = gguf_get_str(f, "general.architecture", &a, e);
    if (rc == ERR_NOTFOUND)
        return err_set(e, ERR_FORMAT, "missing metadata key general.architecture");
    if (rc)
        return rc;
    const struct arch_desc *d = NULL;
    for (size_t i = 0; i < sizeof arches / sizeof arches[0]; i++)
        if (gguf_str_eq(a, arches[i].name))
            d = &arches[i];
    if (!d)
        return err_set(e, ERR_UNSUPPORTED,
                       "architecture '%.*s' is not supported (hearth runs llama, qwen2, qwen3 and bert)",
                       (int)(a.len > 64 ? 64 : a.len), a.ptr);
    snprintf(hp->arch_name, sizeof hp->arch_name, "%s", d->name);
    hp->arch = d->arch;
    hp->rope_neox = d->rope_neox;
    hp->qkv_bias = d->qkv_bias;
    hp->qk_norm = d->qk_norm;
    const char *an = d->name;

    if ((rc = get_u32(f, an, "embedding_length", false, &hp->n_embd, e)) ||
        (rc = get_u32(f, an, "block_count", false, &hp->n_layer, e)) ||
        (rc = get_u32(f, an, "feed_forward_length", false, &hp->n_ff, e)) ||
        (rc = get_u32(f, an, "attention.head_count", false, &hp->n_head, e)))
        return rc;
    hp->n_ctx_train = 2048;
    hp->n_head_kv = hp->n_head;
    if ((rc = get_u32(f, an, "context_length", true, &hp->n_ctx_train, e)) ||
        (rc = get_u32(f, an, "attention.head_count_kv", true, &hp->n_head_kv, e)))
        return rc;
    hp->head_dim = hp->n_embd / hp->n_head;
    if ((rc = get_u32(f, an, "attention.key_length", true, &hp->head_dim, e)))
        return rc;
    int v_len = hp->head_dim;
    if ((rc = get_u32(f, an, "attention.value_length", true, &v_len, e)))
        return rc;
    if (v_len != hp->head_dim)
        return err_set(e, ERR_UNSUPPORTED, "key length %d differs from value length %d", hp->head_dim, v_len);
    hp->n_rot = hp->head_dim;
    if ((rc = get_u32(f, an, "rope.dimension_count", true, &hp->n_rot, e)))
        return rc;
    hp->norm_eps = 1e-5f;
    hp->rope_base = 10000.0f;
    hp->rope_scale = 1.0f;
    if ((rc = get_f32(f, an, "attention.layer_norm_rms_epsilon", &hp->norm_eps, e)) ||
        (rc = get_f32(f, an, "rope.freq_base", &hp->rope_base, e)))
        return rc;

    /* Embedding models say how to pool (0 = none, 1 = mean, 2 = cls, 3 = last, 4 = rank). */
    char key[128];
    hp->pooling = POOL_MEAN;
    snprintf(key, sizeof key, "%s.pooling_type", an);
    uint32_t pool;
    rc = gguf_get_u32(f, key, &pool, e);
    if (rc && rc != ERR_NOTFOUND)
        return rc;
    if (rc == 0 && pool > POOL_RANK)
        return err_set(e, ERR_UNSUPPORTED, "metadata %s = %u is not a pooling type hearth knows", key, pool);
    if (rc == 0)
        hp->pooling = (int)pool;
    if (hp->arch == ARCH_BERT) {
        /* BERT: LayerNorm epsilon under its own key, bidirectional attention, learned positions. */
        if ((rc = get_f32(f, an, "attention.layer_norm_epsilon", &hp->norm_eps, e)))
            return rc;
        bool causal = false;
        rc = gguf_get_bool(f, "bert.attention.causal", &causal, e);
        if (rc && rc != ERR_NOTFOUND)
            return rc;
        if (causal)
            return err_set(e, ERR_UNSUPPORTED, "bert.attention.causal is true: hearth runs BERT bidirectionally only");
        hp->n_ctx_train = 512;
        if ((rc = get_u32(f, an, "context_length", true, &hp->n_ctx_train, e)))
            return rc;
    }

    snprintf(key, sizeof key, "%s.rope.scaling.type", an);
    struct gguf_str st;
    rc = gguf_get_str(f, key, &st, e);
    if (rc && rc != ERR_NOTFOUND)
        return rc;
    if (rc == 0 && !gguf_str_eq(st, "none")) {
        if (gguf_str_eq(st, "linear")) {
            float factor = 1.0f;
            if ((rc = get_f32(f, an, "rope.scaling.factor", &factor, e)))
                return rc;
            if (!(factor > 0.0f))
                return err_set(e, ERR_FORMAT, "rope scaling factor %g is not positive", factor);
            hp->rope_scale = 1.0f / factor;
        } else if (!gguf_str_eq(st, "llama3")) { /* llama3 scaling arrives as rope_freqs.weight */
            return err_set(e, ERR_UNSUPPORTED, "rope scaling type '%.*s' is not supported",
                           (int)(st.len > 32 ? 32 : st.len), st.ptr);
        }
    }

    if (hp->n_head_kv <= 0 || hp->n_head % hp->n_head_kv != 0)
        return err_set(e, ERR_FORMAT, "head count %d is not a multiple of the KV head count %d", hp->n_head,
                       hp->n_head_kv);
    if (hp->n_rot > hp->head_dim || hp->n_rot % 2 != 0)
        return err_set(e, ERR_FORMAT, "rope dimension count %d does not fit head size %d", hp->n_rot,
                       hp->head_dim);
    if (!(hp->norm_eps > 0.0f) || !(hp->rope_base > 0.0f))
        return err_set(e, ERR_FORMAT, "epsilon %g or rope base %g is not positive", hp->norm_eps,
                       hp->rope_base);
    return 0;
}
