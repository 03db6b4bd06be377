/* test_template_select.c — template selection and the one render entry point: Ollama's Go data
 * (collation, zero-valued fields, tool field order, legacy turns cut at .Response), Ollama's Qwen 3
 * template with tools and think off, Jinja variables from Ollama messages (checked on the real
 * Qwen 3 template of ../shared), limits for both engines, and OpenAI-to-Ollama message conversion. */
#include "testutil.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "template/select.h"

static char *render(enum tmpl_kind kind, const char *text, const char *msgs, const char *tools, int think,
                    bool gen)
{
    struct tmpl *t = NULL;
    struct err e = {0};
    if (tmpl_new(kind, text, "<s>", "</s>", &t, &e) != 0)
        fail_msg("compile: %s", e.msg);
    json_t *m = json_loads(msgs, 0, NULL), *tl = tools ? json_loads(tools, 0, NULL) : NULL;
    assert_non_null(m);
    struct tmpl_input in = {.messages = m, .tools = tl, .think = think, .add_generation_prompt = gen};
    char *out = NULL;
    if (tmpl_render(t, &in, &out, NULL, &e) != 0)
        fail_msg("render: %s", e.msg);
    json_decref(m);
    json_decref(tl);
    tmpl_free(t);
    return out;
}

static void expect(char *got, const char *want)
{
    if (strcmp(got, want) != 0) {
        print_message(" got: [%s]\nwant: [%s]\n", got, want);
        fail_msg("rendered prompt differs (above)");
    }
    free(got);
}

static void test_select(void **state)
{
    (void)state;
    struct tmpl *t = NULL;
    struct err e = {0};
    assert_int_equal(tmpl_select("{{ .Prompt }}", "{{ messages }}", NULL, NULL, &t, &e), 0);
    assert_int_equal(tmpl_kind(t), TMPL_GO);
    tmpl_free(t);
    assert_int_equal(tmpl_select("", "{{ messages[0].content }}", NULL, NULL, &t, &e), 0);
    assert_int_equal(tmpl_kind(t), TMPL_JINJA);
    tmpl_free(t);
    assert_int_equal(tmpl_select(NULL, NULL, NULL, NULL, &t, &e), 0);
    assert_int_equal(tmpl_kind(t), TMPL_FALLBACK);
    assert_string_equal(tmpl_source(t), "{{ .Prompt }}");
    tmpl_free(t);
    assert_int_equal(tmpl_select("{{ if .X }}", NULL, NULL, NULL, &t, &e), ERR_FORMAT);
    assert_non_null(strstr(e.msg, "TEMPLATE (Go)"));
    assert_int_equal(tmpl_select(NULL, "{% if x %}", NULL, NULL, &t, &e), ERR_FORMAT);
    assert_non_null(strstr(e.msg, "chat template (Jinja)"));
    assert_true(tmpl_text_is_go("{{- range .Messages }}{{ .Content }}{{ end }}"));
    assert_true(tmpl_text_is_go("[INST] {{ .Prompt }} [/INST]"));
    assert_false(tmpl_text_is_go("{% for m in messages %}{{ m.content }}{% endfor %}"));
    assert_false(tmpl_text_is_go("{{ bos_token }}{{ messages[0]['content'] }}"));
}

static void test_fallback_and_legacy(void **state)
{
    (void)state;
    const char *conv = "[{\"role\":\"user\",\"content\":\"Hi\"},{\"role\":\"assistant\",\"content\":\"Hello\"},"
                       "{\"role\":\"user\",\"content\":\"Bye\"}]";
    /* "{{ .Prompt }}" gets {{ .Response }} appended: turns run one after another, no markup */
    expect(render(TMPL_FALLBACK, NULL, conv, NULL, -1, true), "HiHelloBye");
    /* the last turn stops at .Response: the {{ if .Response }} after it is dropped there */
    const char *tp = "{{ if .System }}({{ .System }}){{ end }}{{ .Prompt }}:{{ .Response }}{{ if .Response }}<eos>{{ end }}";
    expect(render(TMPL_GO, tp, conv, NULL, -1, true), "Hi:Hello<eos>Bye:");
    expect(render(TMPL_GO, tp,
                  "[{\"role\":\"system\",\"content\":\"S\"},{\"role\":\"user\",\"content\":\"a\"},"
                  "{\"role\":\"assistant\",\"content\":\"pre\"}]",
                  NULL, -1, true),
           "(S)a:pre");
}

static void test_go_data(void **state)
{
    (void)state;
    /* system texts join into .System; consecutive same-role messages merge, tool results do not */
    expect(render(TMPL_GO, "{{ .System }}|{{ range .Messages }}{{ .Role }}:{{ .Content }};{{ end }}",
                  "[{\"role\":\"system\",\"content\":\"A\"},{\"role\":\"system\",\"content\":\"B\"},"
                  "{\"role\":\"user\",\"content\":\"x\"},{\"role\":\"user\",\"content\":\"y\"},"
                  "{\"role\":\"tool\",\"content\":\"t1\"},{\"role\":\"tool\",\"content\":\"t2\"}]",
                  NULL, -1, true),
           "A\n\nB|system:A\n\nB;user:x\n\ny;tool:t1;tool:t2;");
    /* absent fields are Go's zero values, not <no value> */
    expect(render(TMPL_GO, "{{ range .Messages }}[{{ .Thinking }}|{{ .ToolName }}|{{ len .ToolCalls }}|{{ .ToolCallID }}]{{ end }}",
                  "[{\"role\":\"user\"}]", NULL, -1, true),
           "[||0|]");
    /* tools print in Ollama's struct order whatever order they came in; arguments keep theirs */
    expect(render(TMPL_GO,
                  "{{ range .Tools }}{{ .Function }}{{ end }}|{{ range .Messages }}{{ range .ToolCalls }}"
                  "{{ .Function.Name }}{{ .Function.Arguments }}{{ json .Function.Arguments }}{{ end }}{{ end }}",
                  "[{\"role\":\"assistant\",\"content\":\"\",\"tool_calls\":[{\"function\":{\"name\":\"f\","
                  "\"arguments\":{\"z\":1,\"a\":\"<b>\"}}}]}]",
                  "[{\"function\":{\"parameters\":{\"properties\":{\"a\":{\"description\":\"d\",\"type\":\"string\"}},"
                  "\"type\":\"object\"},\"name\":\"f\",\"description\":\"x\"},\"type\":\"function\"}]",
                  -1, true),
           "{\"name\":\"f\",\"description\":\"x\",\"parameters\":{\"type\":\"object\",\"properties\":{\"a\":"
           "{\"type\":\"string\",\"description\":\"d\"}}}}|f{\"z\":1,\"a\":\"\\u003cb\\u003e\"}"
           "{\"z\":1,\"a\":\"\\u003cb\\u003e\"}");
    expect(render(TMPL_GO, "{{ .Think }} {{ .IsThinkSet }}", "[]", NULL, -1, true), "false false");
    expect(render(TMPL_GO, "{{ .Think }} {{ .IsThinkSet }}", "[]", NULL, 1, true), "true true");
}

/* Ollama's registry template for qwen3 (its shape as published), over tools, a call, its result and
 * think set to false; the expected text follows Go's trimming rules step by step. */
static const char *qwen3 =
    "{{- $lastUserIdx := -1 -}}\n"
    "{{- range $idx, $msg := .Messages -}}\n"
    "{{- if eq $msg.Role \"user\" }}{{ $lastUserIdx = $idx }}{{ end -}}\n"
    "{{- end }}\n"
    "{{- if or .System .Tools }}<|im_start|>system\n"
    "{{ if .System }}\n"
    "{{ .System }}\n"
    "{{- end }}\n"
    "{{- if .Tools }}\n\n# Tools\n\nYou may call one or more functions to assist with the user query.\n\n"
    "You are provided with function signatures within <tools></tools> XML tags:\n<tools>\n"
    "{{- range .Tools }}\n{\"type\": \"function\", \"function\": {{ .Function }}}\n{{- end }}\n</tools>\n\n"
    "For each function call, return a json object with function name and arguments within <tool_call></tool_call> XML tags:\n"
    "<tool_call>\n{\"name\": <function-name>, \"arguments\": <args-json-object>}\n</tool_call>\n"
    "{{- end -}}\n<|im_end|>\n{{ end }}\n"
    "{{- range $i, $_ := .Messages }}\n"
    "{{- $last := eq (len (slice $.Messages $i)) 1 -}}\n"
    "{{- if eq .Role \"user\" }}<|im_start|>user\n{{ .Content }}\n"
    "{{- if and $.IsThinkSet (eq $i $lastUserIdx) }}\n"
    "   {{- if $.Think -}}\n      {{- \" \"}}/think\n   {{- else -}}\n      {{- \" \"}}/no_think\n   {{- end -}}\n"
    "{{- end }}<|im_end|>\n"
    "{{ else if eq .Role \"assistant\" }}<|im_start|>assistant\n"
    "{{ if (and $.IsThinkSet (and .Thinking (or $last (gt $i $lastUserIdx)))) -}}\n<think>{{ .Thinking }}</think>\n{{ end -}}\n"
    "{{ if .Content }}{{ .Content }}\n"
    "{{- else if .ToolCalls }}<tool_call>\n"
    "{{ range .ToolCalls }}{\"name\": \"{{ .Function.Name }}\", \"arguments\": {{ .Function.Arguments }}}\n{{ end }}</tool_call>\n"
    "{{- end }}{{ if not $last }}<|im_end|>\n{{ end }}\n"
    "{{- else if eq .Role \"tool\" }}<|im_start|>user\n<tool_response>\n{{ .Content }}\n</tool_response><|im_end|>\n{{ end }}\n"
    "{{- if and (ne .Role \"assistant\") $last }}<|im_start|>assistant\n"
    "{{ if and $.IsThinkSet (not $.Think) -}}\n<think>\n\n</think>\n\n{{ end -}}\n{{ end }}\n"
    "{{- end }}";

static void test_ollama_qwen3(void **state)
{
    (void)state;
    const char *msgs = "[{\"role\":\"system\",\"content\":\"S\"},{\"role\":\"user\",\"content\":\"Weather in Paris?\"},"
                       "{\"role\":\"assistant\",\"content\":\"\",\"tool_calls\":[{\"function\":{\"name\":\"get_weather\","
                       "\"arguments\":{\"city\":\"Paris\"}}}]},{\"role\":\"tool\",\"content\":\"18C\",\"tool_name\":\"get_weather\"}]";
    const char *tools = "[{\"type\":\"function\",\"function\":{\"name\":\"get_weather\",\"description\":\"Get weather\","
                        "\"parameters\":{\"type\":\"object\",\"required\":[\"city\"],\"properties\":{\"city\":"
                        "{\"type\":\"string\",\"description\":\"City\"}}}}}]";
    expect(render(TMPL_GO, qwen3, msgs, tools, 0, true),
           "<|im_start|>system\n\nS\n\n# Tools\n\nYou may call one or more functions to assist with the user query.\n\n"
           "You are provided with function signatures within <tools></tools> XML tags:\n<tools>\n"
           "{\"type\": \"function\", \"function\": {\"name\":\"get_weather\",\"description\":\"Get weather\","
           "\"parameters\":{\"type\":\"object\",\"required\":[\"city\"],\"properties\":{\"city\":{\"type\":\"string\","
           "\"description\":\"City\"}}}}}\n</tools>\n\n"
           "For each function call, return a json object with function name and arguments within <tool_call></tool_call> XML tags:\n"
           "<tool_call>\n{\"name\": <function-name>, \"arguments\": <args-json-object>}\n</tool_call><|im_end|>\n"
           "<|im_start|>user\nWeather in Paris? /no_think<|im_end|>\n"
           "<|im_start|>assistant\n<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\":\"Paris\"}}\n</tool_call><|im_end|>\n"
           "<|im_start|>user\n<tool_response>\n18C\n</tool_response><|im_end|>\n"
           "<|im_start|>assistant\n<think>\n\n</think>\n\n");
    /* think unset: no /no_think, no empty think block; an earlier reply's thinking is not shown */
    expect(render(TMPL_GO, qwen3,
                  "[{\"role\":\"user\",\"content\":\"a\"},{\"role\":\"assistant\",\"content\":\"b\",\"thinking\":\"t\"},"
                  "{\"role\":\"user\",\"content\":\"c\"}]",
                  NULL, -1, true),
           "<|im_start|>user\na<|im_end|>\n<|im_start|>assistant\nb<|im_end|>\n<|im_start|>user\nc<|im_end|>\n"
           "<|im_start|>assistant\n");
    /* think on, reply being continued: its thinking is shown */
    expect(render(TMPL_GO, qwen3,
                  "[{\"role\":\"user\",\"content\":\"a\"},{\"role\":\"assistant\",\"content\":\"b\",\"thinking\":\"t\"}]",
                  NULL, 1, true),
           "<|im_start|>user\na /think<|im_end|>\n<|im_start|>assistant\n<think>t</think>\nb");
}

static void test_jinja_vars(void **state)
{
    (void)state;
    const char *tp = "{% for m in messages %}{{ m.role }}={{ m.content }}/{{ m.reasoning_content }}/{{ m.name }};"
                     "{% endfor %}{{ bos_token }}{{ enable_thinking }}{{ add_generation_prompt }}{{ tools | length }}";
    expect(render(TMPL_JINJA, tp,
                  "[{\"role\":\"assistant\",\"content\":\"x\",\"thinking\":\"t\"},{\"role\":\"tool\",\"content\":\"r\","
                  "\"tool_name\":\"f\"}]",
                  "[{\"type\":\"function\",\"function\":{\"name\":\"f\"}}]", 0, false),
           "assistant=x/t/;tool=r//f;<s>falsefalse1");
    /* the real Qwen 3 template: think off closes an empty reasoning block */
    const char *p = tu_shared("tokenizers/chat_templates/Qwen-Qwen3-0.6B.jinja");
    TU_REQUIRE(p);
    char *src = tu_read(p, NULL);
    char *out = render(TMPL_JINJA, src, "[{\"role\":\"user\",\"content\":\"Hi\"}]", NULL, 0, true);
    expect(out, "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n");
    out = render(TMPL_JINJA, src, "[{\"role\":\"user\",\"content\":\"Hi\"}]", NULL, 1, true);
    expect(out, "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n");
    free(src);
}

static void test_limits(void **state)
{
    (void)state;
    struct err e = {0};
    json_t *m = json_loads("[{\"role\":\"user\",\"content\":\"0123456789\"}]", 0, NULL);
    const char *srcs[] = {"{{ range .Messages }}{{ .Content }}{{ .Content }}{{ end }}",
                          "{% for i in range(100) %}{{ messages[0].content }}{% endfor %}"};
    enum tmpl_kind kinds[] = {TMPL_GO, TMPL_JINJA};
    for (int k = 0; k < 2; k++) {
        struct tmpl *t = NULL;
        assert_int_equal(tmpl_new(kinds[k], srcs[k], NULL, NULL, &t, &e), 0);
        struct tmpl_input in = {.messages = m, .think = -1, .limits = {.max_output = 15}};
        char *out = NULL;
        assert_int_equal(tmpl_render(t, &in, &out, NULL, &e), ERR_RANGE);
        in.limits = (struct tmpl_limits){.max_steps = 2};
        assert_int_equal(tmpl_render(t, &in, &out, NULL, &e), ERR_RANGE);
        in.limits = (struct tmpl_limits){0};
        assert_int_equal(tmpl_render(t, &in, &out, NULL, &e), 0);
        free(out);
        tmpl_free(t);
    }
    json_decref(m);
    /* messages of the wrong shape are named */
    struct tmpl *t = NULL;
    assert_int_equal(tmpl_new(TMPL_GO, "{{ .System }}", NULL, NULL, &t, &e), 0);
    json_t *bad = json_loads("[{\"role\":\"user\",\"content\":\"a\"},{\"role\":\"user\",\"content\":3}]", 0, NULL);
    struct tmpl_input in = {.messages = bad, .think = -1};
    char *out = NULL;
    assert_int_equal(tmpl_render(t, &in, &out, NULL, &e), ERR_INVALID);
    assert_non_null(strstr(e.msg, "messages[1].content"));
    json_decref(bad);
    tmpl_free(t);
}

static json_t *convert(const char *openai, int want_rc, const char *want_msg)
{
    json_t *in = json_loads(openai, 0, NULL), *out = NULL;
    assert_non_null(in);
    struct err e = {0};
    assert_int_equal(tmpl_messages_from_openai(in, &out, &e), want_rc);
    if (want_msg)
        assert_non_null(strstr(e.msg, want_msg));
    json_decref(in);
    return out;
}

static void test_openai(void **state)
{
    (void)state;
    json_t *o = convert(
        "[{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"look\"},{\"type\":\"image_url\","
        "\"image_url\":{\"url\":\"data:image/png;base64,AAAA\"}}]},"
        "{\"role\":\"assistant\",\"content\":null,\"reasoning\":\"hmm\",\"tool_calls\":[{\"id\":\"c1\",\"type\":\"function\","
        "\"function\":{\"name\":\"f\",\"arguments\":\"{\\\"a\\\":1}\"}}]},"
        "{\"role\":\"tool\",\"tool_call_id\":\"c1\",\"content\":\"ok\"}]",
        0, NULL);
    char *s = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
    assert_string_equal(s, "[{\"role\":\"user\",\"content\":\"look\"},{\"role\":\"user\",\"content\":\"\",\"images\":[\"AAAA\"]},"
                           "{\"role\":\"assistant\",\"content\":\"\",\"thinking\":\"hmm\",\"tool_calls\":[{\"id\":\"c1\","
                           "\"function\":{\"index\":0,\"name\":\"f\",\"arguments\":{\"a\":1}}}]},"
                           "{\"role\":\"tool\",\"content\":\"ok\",\"tool_call_id\":\"c1\",\"tool_name\":\"f\"}]");
    free(s);
    json_decref(o);
    convert("[]", ERR_INVALID, "[] is too short - 'messages'");
    convert("[{\"role\":\"assistant\",\"content\":\"\",\"tool_calls\":[{\"function\":{\"name\":\"f\",\"arguments\":\"{oops\"}}]}]",
            ERR_INVALID, "invalid tool call arguments");
    convert("[{\"role\":\"user\",\"content\":[{\"type\":\"image_url\",\"image_url\":\"https://x/cat.png\"}]}]", ERR_INVALID,
            "image URLs are not currently supported");
    convert("[{\"content\":\"x\"}]", ERR_INVALID, "messages[0].role");
}

/* ---- Ollama registry templates: qwen2.5 and mistral (v0.3), as the library layers publish them ----
 * Expected prompts are worked out by hand from text/template's rules: "{{-" removes all white space
 * before the action, "-}}" all after it; text between actions is printed verbatim, so a line end
 * before a plain "{{ end }}" or "{{ else if ...}}" survives. Ollama's .Messages keep system
 * messages (no branch of these templates prints them), and .System is their joined text. */

static const char *qwen25 =
    "{{- if .Messages }}\n"
    "{{- if or .System .Tools }}<|im_start|>system\n"
    "{{- if .System }}\n"
    "{{ .System }}\n"
    "{{- end }}\n"
    "{{- if .Tools }}\n\n# Tools\n\nYou may call one or more functions to assist with the user query.\n\n"
    "You are provided with function signatures within <tools></tools> XML tags:\n<tools>\n"
    "{{- range .Tools }}\n{\"type\": \"function\", \"function\": {{ .Function }}}\n{{- end }}\n</tools>\n\n"
    "For each function call, return a json object with function name and arguments within <tool_call></tool_call> XML tags:\n"
    "<tool_call>\n{\"name\": <function-name>, \"arguments\": <args-json-object>}\n</tool_call>\n"
    "{{- end }}<|im_end|>\n"
    "{{ end }}\n"
    "{{- range $i, $_ := .Messages }}\n"
    "{{- $last := eq (len (slice $.Messages $i)) 1 -}}\n"
    "{{- if eq .Role \"user\" }}<|im_start|>user\n"
    "{{ .Content }}<|im_end|>\n"
    "{{ else if eq .Role \"assistant\" }}<|im_start|>assistant\n"
    "{{ if .Content }}{{ .Content }}\n"
    "{{- else if .ToolCalls }}<tool_call>\n"
    "{{ range .ToolCalls }}{\"name\": \"{{ .Function.Name }}\", \"arguments\": {{ .Function.Arguments }}}\n"
    "{{ end }}</tool_call>\n"
    "{{- end }}{{ if not $last }}<|im_end|>\n"
    "{{ end }}\n"
    "{{- else if eq .Role \"tool\" }}<|im_start|>user\n"
    "<tool_response>\n"
    "{{ .Content }}\n"
    "</tool_response><|im_end|>\n"
    "{{ end }}\n"
    "{{- if and (ne .Role \"assistant\") $last }}<|im_start|>assistant\n"
    "{{ end }}\n"
    "{{- end }}\n"
    "{{- else }}\n"
    "{{- if .System }}<|im_start|>system\n"
    "{{ .System }}<|im_end|>\n"
    "{{ end }}{{ if .Prompt }}<|im_start|>user\n"
    "{{ .Prompt }}<|im_end|>\n"
    "{{ end }}<|im_start|>assistant\n"
    "{{ end }}{{ .Response }}{{ if .Response }}<|im_end|>{{ end }}";

static const char *mistral03 =
    "{{- if .Messages }}\n"
    "{{- range $index, $_ := .Messages }}\n"
    "{{- if eq .Role \"user\" }}\n"
    "{{- if and (eq (len (slice $.Messages $index)) 1) $.Tools }}[AVAILABLE_TOOLS] {{ $.Tools }}[/AVAILABLE_TOOLS]\n"
    "{{- end }}[INST] {{ if and $.System (eq (len (slice $.Messages $index)) 1) }}{{ $.System }}\n"
    "\n"
    "{{ end }}{{ .Content }}[/INST]\n"
    "{{- else if eq .Role \"assistant\" }}\n"
    "{{- if .Content }}{{ .Content }}\n"
    "{{- else if .ToolCalls }}[TOOL_CALLS] [\n"
    "{{- range .ToolCalls }}{\"name\": \"{{ .Function.Name }}\", \"arguments\": {{ .Function.Arguments }}}\n"
    "{{- end }}]\n"
    "{{- end }}</s>\n"
    "{{- else if eq .Role \"tool\" }}[TOOL_RESULTS] {\"content\": {{ .Content }}} [/TOOL_RESULTS]\n"
    "{{- end }}\n"
    "{{- end }}\n"
    "{{- else }}[INST] {{ if .System }}{{ .System }}\n"
    "\n"
    "{{ end }}{{ .Prompt }}[/INST]\n"
    "{{- end }}{{ .Response }}\n"
    "{{- if .Response }}</s>\n"
    "{{- end }}";

static const char *conv_plain = "[{\"role\":\"user\",\"content\":\"Hello\"}]";
static const char *conv_multi = "[{\"role\":\"system\",\"content\":\"You are terse.\"},{\"role\":\"user\",\"content\":\"Hi\"},"
                                "{\"role\":\"assistant\",\"content\":\"Hello!\"},{\"role\":\"user\",\"content\":\"How are you?\"}]";
/* two calls in one reply, then a result for each (consecutive tool results stay separate) */
static const char *conv_calls =
    "[{\"role\":\"user\",\"content\":\"Weather in Paris and London?\"},"
    "{\"role\":\"assistant\",\"content\":\"\",\"tool_calls\":["
    "{\"function\":{\"name\":\"get_weather\",\"arguments\":{\"city\":\"Paris\"}}},"
    "{\"function\":{\"name\":\"get_weather\",\"arguments\":{\"city\":\"London\",\"unit\":\"C\"}}}]},"
    "{\"role\":\"tool\",\"content\":\"18C\",\"tool_name\":\"get_weather\"},"
    "{\"role\":\"tool\",\"content\":\"12C\",\"tool_name\":\"get_weather\"}]";
static const char *conv_ask = "[{\"role\":\"system\",\"content\":\"S\"},{\"role\":\"user\",\"content\":\"Weather in Paris?\"}]";
static const char *weather_tools =
    "[{\"type\":\"function\",\"function\":{\"name\":\"get_weather\",\"description\":\"Get the weather\","
    "\"parameters\":{\"type\":\"object\",\"required\":[\"city\"],\"properties\":{\"city\":"
    "{\"type\":\"string\",\"description\":\"City name\"}}}}}]";
/* how Go prints that tool's Function (Ollama's ToolFunction through json.Marshal) */
#define WEATHER_FN                                                                                             \
    "{\"name\":\"get_weather\",\"description\":\"Get the weather\",\"parameters\":{\"type\":\"object\","      \
    "\"required\":[\"city\"],\"properties\":{\"city\":{\"type\":\"string\",\"description\":\"City name\"}}}}"

static void test_ollama_qwen25(void **state)
{
    (void)state;
    /* "{{- if or .System .Tools }}" is false: nothing up to "{{ end }}", whose line end the next
     * "{{- range" trims; the user turn's "<|im_end|>\n" ends before a plain "{{ else if", so the
     * line end stays; the last non-assistant turn opens the reply. */
    expect(render(TMPL_GO, qwen25, conv_plain, NULL, -1, true),
           "<|im_start|>user\nHello<|im_end|>\n<|im_start|>assistant\n");
    /* "<|im_start|>system" then "{{- if .System }}" eats that line end, and the text after it puts
     * one back before .System; the system message itself matches no branch; the earlier reply is
     * closed because $last is false there. */
    expect(render(TMPL_GO, qwen25, conv_multi, NULL, -1, true),
           "<|im_start|>system\nYou are terse.<|im_end|>\n"
           "<|im_start|>user\nHi<|im_end|>\n"
           "<|im_start|>assistant\nHello!<|im_end|>\n"
           "<|im_start|>user\nHow are you?<|im_end|>\n"
           "<|im_start|>assistant\n");
    /* no system text: "<|im_start|>system" is followed directly by the "\n\n# Tools" text; each tool
     * line's end is trimmed by "{{- end }}", the text after the range supplies one. Both calls go in
     * one <tool_call> block, one per line (the range body ends with a kept line end). */
    static const char *tools_head =
        "<|im_start|>system\n\n# Tools\n\nYou may call one or more functions to assist with the user query.\n\n"
        "You are provided with function signatures within <tools></tools> XML tags:\n<tools>\n"
        "{\"type\": \"function\", \"function\": " WEATHER_FN "}\n</tools>\n\n"
        "For each function call, return a json object with function name and arguments within <tool_call></tool_call> XML tags:\n"
        "<tool_call>\n{\"name\": <function-name>, \"arguments\": <args-json-object>}\n</tool_call><|im_end|>\n";
    char want[4096];
    snprintf(want, sizeof want, "%s%s", tools_head,
             "<|im_start|>user\nWeather in Paris and London?<|im_end|>\n"
             "<|im_start|>assistant\n<tool_call>\n"
             "{\"name\": \"get_weather\", \"arguments\": {\"city\":\"Paris\"}}\n"
             "{\"name\": \"get_weather\", \"arguments\": {\"city\":\"London\",\"unit\":\"C\"}}\n"
             "</tool_call><|im_end|>\n"
             "<|im_start|>user\n<tool_response>\n18C\n</tool_response><|im_end|>\n"
             "<|im_start|>user\n<tool_response>\n12C\n</tool_response><|im_end|>\n"
             "<|im_start|>assistant\n");
    expect(render(TMPL_GO, qwen25, conv_calls, weather_tools, -1, true), want);
    /* system text and tools together: .System, then the tools block right after it */
    expect(render(TMPL_GO, qwen25, conv_ask, weather_tools, -1, true),
           "<|im_start|>system\nS\n\n# Tools\n\nYou may call one or more functions to assist with the user query.\n\n"
           "You are provided with function signatures within <tools></tools> XML tags:\n<tools>\n"
           "{\"type\": \"function\", \"function\": " WEATHER_FN "}\n</tools>\n\n"
           "For each function call, return a json object with function name and arguments within <tool_call></tool_call> XML tags:\n"
           "<tool_call>\n{\"name\": <function-name>, \"arguments\": <args-json-object>}\n</tool_call><|im_end|>\n"
           "<|im_start|>user\nWeather in Paris?<|im_end|>\n<|im_start|>assistant\n");
}

static void test_ollama_mistral(void **state)
{
    (void)state;
    /* every line end in the .Messages branch is trimmed by a "{{-" on the next line, except the two
     * after .System (the "\n\n" between "{{ $.System }}" and the plain "{{ end }}") */
    expect(render(TMPL_GO, mistral03, conv_plain, NULL, -1, true), "[INST] Hello[/INST]");
    /* .System goes only into the last user turn ("eq (len (slice $.Messages $index)) 1"); a reply
     * is its content and "</s>", with no space after "[/INST]" */
    expect(render(TMPL_GO, mistral03, conv_multi, NULL, -1, true),
           "[INST] Hi[/INST]Hello!</s>[INST] You are terse.\n\nHow are you?[/INST]");
    /* the tool list is shown only when a user turn is the last message, so not here; the calls'
     * range has its line end trimmed, so the calls follow each other with no separator; a tool
     * result's content is pasted raw into {"content": ...} */
    expect(render(TMPL_GO, mistral03, conv_calls, weather_tools, -1, true),
           "[INST] Weather in Paris and London?[/INST]"
           "[TOOL_CALLS] [{\"name\": \"get_weather\", \"arguments\": {\"city\":\"Paris\"}}"
           "{\"name\": \"get_weather\", \"arguments\": {\"city\":\"London\",\"unit\":\"C\"}}]</s>"
           "[TOOL_RESULTS] {\"content\": 18C} [/TOOL_RESULTS][TOOL_RESULTS] {\"content\": 12C} [/TOOL_RESULTS]");
    /* the last user turn: "{{ $.Tools }}" prints Ollama's Tools through its String method
     * (json.Marshal of the list) before "[INST]", then .System */
    expect(render(TMPL_GO, mistral03, conv_ask, weather_tools, -1, true),
           "[AVAILABLE_TOOLS] [{\"type\":\"function\",\"function\":" WEATHER_FN "}][/AVAILABLE_TOOLS]"
           "[INST] S\n\nWeather in Paris?[/INST]");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_select),        cmocka_unit_test(test_fallback_and_legacy),
        cmocka_unit_test(test_go_data),       cmocka_unit_test(test_ollama_qwen3),
        cmocka_unit_test(test_jinja_vars),    cmocka_unit_test(test_limits),
        cmocka_unit_test(test_openai),        cmocka_unit_test(test_ollama_qwen25),
        cmocka_unit_test(test_ollama_mistral),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
