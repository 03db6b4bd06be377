/* chat.c — messages to prompt through the GGUF's Jinja chat template (see chat.h). */
#include "engine/chat.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "gguf/gguf.h"
#include "model/model.h"
#include "template/select.h"
#include "tokenizer/tokenizer.h"

static char *token_text(const struct tokenizer *t, int32_t id)
{
    const char *s = id >= 0 ? tokenizer_token_str(t, id) : NULL;
    return strdup(s ? s : "");
}

int chat_template_load(const struct model *m, struct chat_template *ct, struct err *e)
{
    memset(ct, 0, sizeof *ct);
    ct->bos = token_text(m->tok, tokenizer_bos(m->tok));
    ct->eos = token_text(m->tok, tokenizer_eos(m->tok));
    ct->add_bos = tokenizer_add_bos(m->tok);
    if (!ct->bos || !ct->eos)
        return err_set(e, ERR_NOMEM, "out of memory");
    struct gguf_str s;
    if (!gguf_find_kv(m->gguf, "tokenizer.chat_template"))
        return 0;
    if (gguf_get_str(m->gguf, "tokenizer.chat_template", &s, e))
        return err_prefix(e, "%s", m->path);
    ct->source = gguf_str_dup(s);
    if (!ct->source)
        return err_set(e, ERR_NOMEM, "out of memory");
    if (tmpl_new(TMPL_JINJA, ct->source, ct->bos, ct->eos, &ct->tpl, e))
        return err_prefix(e, "%s: tokenizer.chat_template", m->path);
    return 0;
}

void chat_template_free(struct chat_template *ct)
{
    tmpl_free(ct->tpl);
    free(ct->source);
    free(ct->bos);
    free(ct->eos);
    memset(ct, 0, sizeof *ct);
}

int chat_validate_messages(json_t *messages, struct err *e)
{
    if (!json_is_array(messages))
        return err_set(e, ERR_INVALID, "\"messages\" must be an array of message objects");
    size_t i;
    json_t *msg;
    json_array_foreach(messages, i, msg) {
        if (!json_is_object(msg))
            return err_set(e, ERR_INVALID, "messages[%zu] must be an object", i);
        json_t *role = json_object_get(msg, "role");
        if (!json_is_string(role))
            return err_set(e, ERR_INVALID, "messages[%zu].role must be a string", i);
        char *low = strdup(json_string_value(role));
        if (!low)
            return err_set(e, ERR_NOMEM, "out of memory");
        for (char *p = low; *p; p++)
            *p = (char)tolower((unsigned char)*p);
        json_object_set_new(msg, "role", json_string(low));
        free(low);
        json_t *content = json_object_get(msg, "content");
        if (content && !json_is_string(content) && !json_is_null(content))
            return err_set(e, ERR_INVALID, "messages[%zu].content must be a string", i);
        if (!content)
            json_object_set_new(msg, "content", json_string(""));
    }
    return 0;
}

int chat_render(const struct chat_template *ct, const json_t *messages, const struct chat_render_opts *o,
                char **out, bool *templated, struct err *e)
{
    static const struct chat_render_opts none = {.think = -1};
    if (!o)
        o = &none;
    *out = NULL;
    const struct tmpl *t = o->override ? o->override : ct->tpl;
    *templated = t != NULL;
    if (!t) {
        size_t cap = 1;
        size_t i;
        json_t *msg;
        json_array_foreach(messages, i, msg) {
            const char *c = json_string_value(json_object_get(msg, "content"));
            cap += (c ? strlen(c) : 0) + 2;
        }
        char *buf = malloc(cap), *p = buf;
        if (!buf)
            return err_set(e, ERR_NOMEM, "out of memory");
        bool first = true;
        json_array_foreach(messages, i, msg) {
            const char *c = json_string_value(json_object_get(msg, "content"));
            if (!c || !*c)
                continue;
            if (!first) {
                memcpy(p, "\n\n", 2);
                p += 2;
            }
            size_t n = strlen(c);
            memcpy(p, c, n);
            p += n;
            first = false;
        }
        *p = '\0';
        *out = buf;
        return 0;
    }
    struct tmpl_input in = {
        .messages = messages,
        .tools = json_is_array(o->tools) && json_array_size(o->tools) > 0 ? o->tools : NULL,
        .think = o->think,
        .think_level = o->think_level,
        .add_generation_prompt = true,
    };
    char *text = NULL;
    size_t len = 0;
    if (tmpl_render(t, &in, &text, &len, e))
        return err_prefix(e, "chat template");
    size_t bl = strlen(ct->bos);
    if (ct->add_bos && bl && len >= bl && memcmp(text, ct->bos, bl) == 0)
        memmove(text, text + bl, len - bl + 1);
    *out = text;
    return 0;
}
