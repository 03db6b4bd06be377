/* cmd_show.c — `hearth show MODEL`: POST /api/show on the server (started on demand) printed in
 * Ollama's layout (Model, Capabilities, Parameters, System, License), or one field of it
 * (--modelfile, --parameters, --template, --system, --license); -v adds the metadata and tensors. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/client.h"

static void print_json_value(const json_t *v)
{
    if (json_is_string(v)) {
        const char *s = json_string_value(v);
        size_t n = strlen(s);
        printf("%.*s%s", n > 80 ? 80 : (int)n, s, n > 80 ? "..." : "");
    } else if (json_is_array(v)) {
        printf("[%zu values]", json_array_size(v));
    } else {
        char *t = json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT);
        printf("%s", t ? t : "?");
        free(t);
    }
}

static void indent_block(const char *title, const char *text)
{
    if (!text || !*text)
        return;
    printf("  %s\n", title);
    const char *p = text;
    while (*p) {
        const char *nl = strchr(p, '\n');
        size_t len = nl ? (size_t)(nl - p) : strlen(p);
        printf("    %.*s\n", (int)len, p);
        p += len + (nl ? 1 : 0);
    }
    printf("\n");
}

static void row(const char *label, const char *value)
{
    printf("    %-20s %s\n", label, value && *value ? value : "unknown");
}

/* "<arch>.<key>" of model_info, as text. */
static void info_row(const json_t *info, const char *arch, const char *key, const char *label)
{
    char k[160];
    snprintf(k, sizeof k, "%s.%s", arch, key);
    json_t *v = json_object_get(info, k);
    if (json_is_integer(v))
        printf("    %-20s %" JSON_INTEGER_FORMAT "\n", label, json_integer_value(v));
}

static void print_show(const json_t *o, bool verbose)
{
    const json_t *det = json_object_get(o, "details"), *info = json_object_get(o, "model_info");
    const char *arch = json_string_value(json_object_get(info, "general.architecture"));
    if (!arch)
        arch = json_string_value(json_object_get(det, "family"));
    printf("  Model\n");
    row("architecture", arch);
    row("parameters", json_string_value(json_object_get(det, "parameter_size")));
    if (arch) {
        info_row(info, arch, "context_length", "context length");
        info_row(info, arch, "embedding_length", "embedding length");
    }
    row("quantization", json_string_value(json_object_get(det, "quantization_level")));
    printf("\n");
    const json_t *caps = json_object_get(o, "capabilities");
    if (json_array_size(caps)) {
        printf("  Capabilities\n");
        for (size_t i = 0; i < json_array_size(caps); i++)
            printf("    %s\n", json_string_value(json_array_get(caps, i)));
        printf("\n");
    }
    indent_block("Parameters", json_string_value(json_object_get(o, "parameters")));
    indent_block("System", json_string_value(json_object_get(o, "system")));
    indent_block("License", json_string_value(json_object_get(o, "license")));
    if (!verbose)
        return;
    printf("  Metadata\n");
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)info, key, v) {
        printf("    %-40s ", key);
        print_json_value(v);
        printf("\n");
    }
    printf("\n");
    const json_t *tensors = json_object_get(o, "tensors");
    if (json_array_size(tensors)) {
        printf("  Tensors\n");
        for (size_t i = 0; i < json_array_size(tensors); i++) {
            const json_t *t = json_array_get(tensors, i), *shape = json_object_get(t, "shape");
            printf("    %-40s %-6s [", json_string_value(json_object_get(t, "name")),
                   json_string_value(json_object_get(t, "type")));
            for (size_t d = 0; d < json_array_size(shape); d++)
                printf("%s%" JSON_INTEGER_FORMAT, d ? " " : "", json_integer_value(json_array_get(shape, d)));
            printf("]\n");
        }
        printf("\n");
    }
}

int cmd_show(int argc, char **argv)
{
    const char *name = NULL, *part = NULL;
    bool verbose = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            puts("usage: hearth show MODEL [--modelfile|--parameters|--template|--system|--license] [-v]");
            return 0;
        } else if (strcmp(a, "-v") == 0 || strcmp(a, "--verbose") == 0) {
            verbose = true;
        } else if (strcmp(a, "--modelfile") == 0 || strcmp(a, "--parameters") == 0 || strcmp(a, "--template") == 0 ||
                   strcmp(a, "--system") == 0 || strcmp(a, "--license") == 0) {
            if (part) {
                fprintf(stderr, "hearth show: only one of --license, --modelfile, --parameters, --system, or --template can be specified\n");
                return EXIT_USAGE;
            }
            part = a + 2;
        } else if (!name && a[0] != '-') {
            name = a;
        } else {
            fprintf(stderr, "hearth show: unexpected argument '%s'\n", a);
            return EXIT_USAGE;
        }
    }
    if (!name) {
        fprintf(stderr, "usage: hearth show MODEL [flags]\n");
        return EXIT_USAGE;
    }
    struct err e = {0};
    json_t *req = json_pack("{s:s,s:b}", "model", name, "verbose", verbose && !part);
    json_t *o = NULL;
    long st;
    int rc = client_connect(&e);
    if (!rc)
        rc = client_call("POST", "/api/show", req, &st, &o, &e);
    json_decref(req);
    if (rc || !json_is_object(o)) {
        fprintf(stderr, "hearth show: %s\n", rc ? e.msg : "the server's reply is not a JSON object");
        json_decref(o);
        return EXIT_RUNTIME;
    }
    if (part) {
        const char *out = json_string_value(json_object_get(o, part));
        if (out && *out)
            printf("%s%s", out, out[strlen(out) - 1] == '\n' ? "" : "\n");
    } else {
        print_show(o, verbose);
    }
    json_decref(o);
    return 0;
}
