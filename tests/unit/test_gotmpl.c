/* test_gotmpl.c — the Go text/template subset: language cases with outputs worked out from Go's
 * text/template rules, and an Ollama-style Llama 3 template over a conversation with tools. */
#include "testutil.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "template/gotmpl.h"

static void check(const char *tmpl, const char *data, const char *want)
{
    struct gotmpl *t = NULL;
    struct err e = {0};
    if (gotmpl_parse(tmpl, strlen(tmpl), &t, &e) != 0)
        fail_msg("parse %s: %s", tmpl, e.msg);
    json_t *d = json_loads(data, 0, NULL);
    assert_non_null(d);
    char *out = NULL;
    if (gotmpl_render(t, d, NULL, &out, NULL, &e) != 0)
        fail_msg("render: %s (template %.200s)", e.msg, tmpl);
    if (strcmp(out, want) != 0) {
        print_message(" got: [%s]\nwant: [%s]\n", out, want);
        fail_msg("template output differs (above): %.200s", tmpl);
    }
    free(out);
    json_decref(d);
    gotmpl_free(t);
}

static void test_language(void **state)
{
    (void)state;
    check("a {{ .System }} b", "{\"System\":\"S\"}", "a S b");
    check("a  {{- .System -}}  \n b", "{\"System\":\"S\"}", "aSb");
    check("{{ .Missing }}", "{}", "<no value>");
    check("{{/* note */}}x", "{}", "x");
    check("{{ if .A }}y{{ else if .B }}b{{ else }}n{{ end }}", "{\"A\":\"\",\"B\":1}", "b");
    check("{{ if and .A (not .B) }}y{{ else }}n{{ end }}", "{\"A\":[1],\"B\":false}", "y");
    check("{{ range $i, $m := .M }}{{ $i }}={{ $m.R }};{{ end }}", "{\"M\":[{\"R\":\"u\"},{\"R\":\"a\"}]}", "0=u;1=a;");
    check("{{ range .M }}{{ . }}{{ else }}none{{ end }}", "{\"M\":[]}", "none");
    check("{{ with .F }}{{ .Name }}{{ end }}", "{\"F\":{\"Name\":\"f\"}}", "f");
    check("{{ $x := 1 }}{{ if true }}{{ $x = 2 }}{{ end }}{{ $x }}", "{}", "2");
    check("{{ len .M }} {{ index .M 1 }} {{ slice .M 1 }}", "{\"M\":[\"a\",\"b\",\"c\"]}", "3 b [\"b\",\"c\"]");
    check("{{ eq .R \"user\" \"tool\" }} {{ ne 1 2 }} {{ lt 1 2.5 }} {{ ge \"b\" \"a\" }}", "{\"R\":\"tool\"}",
          "true true true true");
    check("{{ json .A }}", "{\"A\":{\"b\":\"<x>\",\"a\":1}}", "{\"b\":\"\\u003cx\\u003e\",\"a\":1}");
    check("{{ .A }}", "{\"A\":{\"q\":[1,2.5]}}", "{\"q\":[1,2.5]}");
    check("{{ printf \"%s-%d-%q\" \"a\" 3 \"b\" }} {{ print 1 2 \"x\" }}", "{}", "a-3-\"b\" 1 2x");
    check("{{ .A | len }}", "{\"A\":\"abcd\"}", "4");
    check("{{ range $k, $v := .O }}{{ $k }}{{ $v }}{{ end }}", "{\"O\":{\"b\":2,\"a\":1}}", "a1b2");
    check("{{ $last := eq (len (slice $.M 1)) 1 }}{{ $last }}", "{\"M\":[1,2]}", "true");
}

static void test_errors(void **state)
{
    (void)state;
    const char *bad[] = {"{{ if .A }}x", "{{ end }}", "{{ nosuch 1 }}", "{{ .A", "{{ define \"x\" }}{{ end }}"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        struct gotmpl *t = NULL;
        struct err e = {0};
        assert_int_equal(gotmpl_parse(bad[i], strlen(bad[i]), &t, &e), ERR_FORMAT);
        assert_non_null(strstr(e.msg, "line 1"));
    }
    struct gotmpl *t = NULL;
    struct err e = {0};
    const char *loop = "{{ range .A }}{{ range $.A }}{{ range $.A }}xxxxxxxx{{ end }}{{ end }}{{ end }}";
    assert_int_equal(gotmpl_parse(loop, strlen(loop), &t, &e), 0);
    json_t *d = json_loads("{\"A\":[1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20]}", 0, NULL);
    struct gotmpl_limits lim = {.max_output = 1000};
    char *out = NULL;
    assert_int_equal(gotmpl_render(t, d, &lim, &out, NULL, &e), ERR_RANGE);
    json_decref(d);
    gotmpl_free(t);
}

/* Ollama's Llama 3.2 template (the shape it ships), over a user turn with tools. */
static const char *llama32 =
    "<|start_header_id|>system<|end_header_id|>\n\n"
    "Cutting Knowledge Date: December 2023\n\n"
    "{{ if .System }}{{ .System }}\n{{- end }}\n"
    "{{- if .Tools }}When you receive a tool call response, use the output to format an answer to the orginal user question.\n\n"
    "You are a helpful assistant with tool calling capabilities.\n{{- end }}<|eot_id|>\n"
    "{{- range $i, $_ := .Messages }}\n"
    "{{- $last := eq (len (slice $.Messages $i)) 1 }}\n"
    "{{- if eq .Role \"user\" }}<|start_header_id|>user<|end_header_id|>\n"
    "{{- if and $.Tools $last }}\n\n"
    "Given the following functions, please respond with a JSON for a function call with its proper arguments that best answers the given prompt.\n\n"
    "Respond in the format {\"name\": function name, \"parameters\": dictionary of argument name and its value}. Do not use variables.\n\n"
    "{{ range $.Tools }}\n{{- . }}\n{{ end }}\n{{ .Content }}<|eot_id|>\n"
    "{{- else }}\n\n{{ .Content }}<|eot_id|>\n{{- end }}{{ if $last }}<|start_header_id|>assistant<|end_header_id|>\n\n{{ end }}\n"
    "{{- else if eq .Role \"assistant\" }}<|start_header_id|>assistant<|end_header_id|>\n"
    "{{- if .ToolCalls }}\n{{ range .ToolCalls }}\n{\"name\": \"{{ .Function.Name }}\", \"parameters\": {{ .Function.Arguments }}}{{ end }}\n"
    "{{- else }}\n\n{{ .Content }}\n{{- end }}{{ if not $last }}<|eot_id|>{{ end }}\n"
    "{{- else if eq .Role \"tool\" }}<|start_header_id|>ipython<|end_header_id|>\n\n"
    "{{ .Content }}<|eot_id|>{{ if $last }}<|start_header_id|>assistant<|end_header_id|>\n\n{{ end }}\n"
    "{{- end }}\n{{- end }}";

static void test_ollama_llama32(void **state)
{
    (void)state;
    check(llama32,
          "{\"System\":\"Be brief.\",\"Messages\":[{\"Role\":\"user\",\"Content\":\"Hi\"},"
          "{\"Role\":\"assistant\",\"Content\":\"Hello!\"},{\"Role\":\"user\",\"Content\":\"Bye\"}]}",
          "<|start_header_id|>system<|end_header_id|>\n\nCutting Knowledge Date: December 2023\n\nBe brief.<|eot_id|>"
          "<|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>"
          "<|start_header_id|>assistant<|end_header_id|>\n\nHello!<|eot_id|>"
          "<|start_header_id|>user<|end_header_id|>\n\nBye<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n");
    check(llama32,
          "{\"Tools\":[{\"Type\":\"function\",\"Function\":{\"Name\":\"w\",\"Parameters\":{}}}],"
          "\"Messages\":[{\"Role\":\"user\",\"Content\":\"Q\"},{\"Role\":\"assistant\",\"Content\":\"\","
          "\"ToolCalls\":[{\"Function\":{\"Name\":\"w\",\"Arguments\":{\"c\":\"P\"}}}]},{\"Role\":\"tool\",\"Content\":\"9\"}]}",
          "<|start_header_id|>system<|end_header_id|>\n\nCutting Knowledge Date: December 2023\n\n"
          "When you receive a tool call response, use the output to format an answer to the orginal user question.\n\n"
          "You are a helpful assistant with tool calling capabilities.<|eot_id|>"
          "<|start_header_id|>user<|end_header_id|>\n\nQ<|eot_id|>"
          "<|start_header_id|>assistant<|end_header_id|>\n\n{\"name\": \"w\", \"parameters\": {\"c\":\"P\"}}<|eot_id|>"
          "<|start_header_id|>ipython<|end_header_id|>\n\n9<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_language),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_ollama_llama32),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
