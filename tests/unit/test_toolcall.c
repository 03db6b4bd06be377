/* test_toolcall.c — tool-call and thinking extraction from streamed output (toolcall.h): every case
 * is pushed whole and in chunks of every size from 1 byte up, and must give the same content,
 * thinking and calls each time, with each call reported exactly once. */
#include "testutil.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "template/toolcall.h"

struct tc_case {
    enum toolcall_format fmt;
    bool thinking, starts_thinking;
    const char *output;
    const char *content, *thinking_text;
    const char *calls; /* JSON array */
};

static const struct tc_case cases[] = {
    {TOOLCALL_QWEN, false, false,
     "Let me check.\n<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}\n</tool_call>",
     "Let me check.\n", "", "[{\"name\":\"get_weather\",\"arguments\":{\"city\":\"Paris\"}}]"},
    {TOOLCALL_QWEN, true, false,
     "<think>\nThe user wants weather <b>now</b>.\n</think>\n\n<tool_call>\n{\"name\": \"a\", \"arguments\": {}}\n</tool_call>\n"
     "<tool_call>\n{\"name\": \"b\", \"arguments\": {\"x\": [1, \"}\"]}}\n</tool_call>",
     "\n", "\nThe user wants weather <b>now</b>.\n",
     "[{\"name\":\"a\",\"arguments\":{}},{\"name\":\"b\",\"arguments\":{\"x\":[1,\"}\"]}}]"},
    {TOOLCALL_QWEN, true, true, "I should greet.</think>\n\nHello! <tool_call is not a tag",
     "Hello! <tool_call is not a tag", "I should greet.", "[]"},
    {TOOLCALL_QWEN, false, false, "<tool_call>\n{not json}\n</tool_call> done",
     "<tool_call>\n{not json}\n</tool_call> done", "", "[]"},
    {TOOLCALL_QWEN, false, false, "cut off <tool_call>\n{\"name\": \"a\", \"argu",
     "cut off <tool_call>\n{\"name\": \"a\", \"argu", "", "[]"},
    {TOOLCALL_LLAMA3, false, false, "<|python_tag|>{\"name\": \"search\", \"parameters\": {\"q\": \"a;b\"}}",
     "", "", "[{\"name\":\"search\",\"arguments\":{\"q\":\"a;b\"}}]"},
    {TOOLCALL_LLAMA3, false, false,
     "{\"name\": \"f\", \"parameters\": {\"n\": 1}}; {\"name\": \"g\", \"parameters\": {\"s\": \"{\\\"\"}}",
     "", "", "[{\"name\":\"f\",\"arguments\":{\"n\":1}},{\"name\":\"g\",\"arguments\":{\"s\":\"{\\\"\"}}]"},
    {TOOLCALL_LLAMA3, false, false, "{\"answer\": 42}", "{\"answer\": 42}", "", "[]"},
    {TOOLCALL_LLAMA3, false, false, "The answer is {\"name\": \"f\"}", "The answer is {\"name\": \"f\"}", "", "[]"},
    {TOOLCALL_MISTRAL, false, false,
     "[TOOL_CALLS][{\"name\": \"add\", \"arguments\": {\"a\": 1, \"b\": 2}}, {\"name\": \"neg\", \"arguments\": {\"a\": 3}}]",
     "", "", "[{\"name\":\"add\",\"arguments\":{\"a\":1,\"b\":2}},{\"name\":\"neg\",\"arguments\":{\"a\":3}}]"},
    {TOOLCALL_MISTRAL, false, false, "Sure.[TOOL_CALLS]get_time[ARGS]{\"tz\": \"UTC\"}",
     "Sure.", "", "[{\"name\":\"get_time\",\"arguments\":{\"tz\":\"UTC\"}}]"},
    {TOOLCALL_MISTRAL, false, false, "No tools [TOOL here.", "No tools [TOOL here.", "", "[]"},
    {TOOLCALL_NONE, true, false, "  <think>a</think>b <tool_call>", "b <tool_call>", "a", "[]"},
    {TOOLCALL_NONE, true, false, "<thin", "<thin", "", "[]"},
};

static void run_case(const struct tc_case *c, size_t chunk)
{
    struct toolcall_parser *p = NULL;
    struct err e = {0};
    assert_int_equal(toolcall_parser_new(c->fmt, c->thinking, c->starts_thinking, &p, &e), 0);
    char content[1024] = "", think[1024] = "";
    json_t *calls = json_array();
    size_t len = strlen(c->output);
    struct toolcall_delta d;
    for (size_t off = 0; off <= len; off += chunk) {
        bool last = off >= len;
        if (!last) {
            size_t n = len - off < chunk ? len - off : chunk;
            assert_int_equal(toolcall_push(p, c->output + off, n, &d, &e), 0);
        } else {
            assert_int_equal(toolcall_finish(p, &d, &e), 0);
        }
        strncat(content, d.content, d.content_len);
        strncat(think, d.thinking, d.thinking_len);
        json_array_extend(calls, (json_t *)d.calls);
        if (last)
            break;
        if (off + chunk >= len) {
            assert_int_equal(toolcall_finish(p, &d, &e), 0);
            strncat(content, d.content, d.content_len);
            strncat(think, d.thinking, d.thinking_len);
            json_array_extend(calls, (json_t *)d.calls);
            break;
        }
    }
    if (strcmp(content, c->content) != 0)
        fail_msg("output \"%s\" chunk %zu: content \"%s\", expected \"%s\"", c->output, chunk, content, c->content);
    if (strcmp(think, c->thinking_text) != 0)
        fail_msg("output \"%s\" chunk %zu: thinking \"%s\", expected \"%s\"", c->output, chunk, think,
                 c->thinking_text);
    json_t *want = json_loads(c->calls, 0, NULL);
    assert_non_null(want);
    if (!json_equal(calls, want)) {
        char *got = json_dumps(calls, JSON_COMPACT);
        fail_msg("output \"%s\" chunk %zu: calls %s, expected %s", c->output, chunk, got, c->calls);
    }
    json_decref(want);
    json_decref(calls);
    toolcall_parser_free(p);
}

static void test_cases_all_chunkings(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        size_t len = strlen(cases[i].output);
        for (size_t chunk = 1; chunk <= len; chunk++)
            run_case(&cases[i], chunk);
    }
}

/* The real chat templates in ../shared announce their formats. */
static void test_detect_from_templates(void **state)
{
    (void)state;
    struct {
        const char *rel;
        enum toolcall_format fmt;
        bool thinks;
    } t[] = {
        {"tokenizers/qwen2.5/tokenizer_config.json", TOOLCALL_QWEN, false},
        {"tokenizers/qwen3/tokenizer_config.json", TOOLCALL_QWEN, true},
        {"tokenizers/llama-3.2/tokenizer_config.json", TOOLCALL_LLAMA3, false},
        {"tokenizers/chat_templates/mistralai-Mistral-Nemo-Instruct-2407.jinja", TOOLCALL_MISTRAL, false},
        {"tokenizers/chat_templates/deepseek-ai-DeepSeek-R1-Distill-Qwen-32B.jinja", TOOLCALL_NONE, true},
    };
    int checked = 0;
    for (size_t i = 0; i < sizeof t / sizeof *t; i++) {
        const char *path = tu_shared(t[i].rel);
        if (!path)
            continue;
        json_t *cfg = NULL;
        char *raw = NULL;
        const char *tmpl;
        if (strstr(path, ".jinja")) {
            raw = tu_read(path, NULL);
            tmpl = raw;
        } else {
            cfg = json_load_file(path, 0, NULL);
            assert_non_null(cfg);
            tmpl = json_string_value(json_object_get(cfg, "chat_template"));
        }
        assert_non_null(tmpl);
        if (toolcall_format_detect(tmpl) != t[i].fmt)
            fail_msg("%s: detected format %d, expected %d", t[i].rel, toolcall_format_detect(tmpl), t[i].fmt);
        assert_int_equal(toolcall_format_detect(tmpl), t[i].fmt);
        assert_int_equal(toolcall_template_thinks(tmpl), t[i].thinks);
        json_decref(cfg);
        free(raw);
        checked++;
    }
    TU_REQUIRE(checked ? "" : NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cases_all_chunkings),
        cmocka_unit_test(test_detect_from_templates),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
