/* cmd_show.c — `hearth show MODEL`: a stored model's details, or one part of it (--modelfile,
 * --parameters, --template, --system, --license); -v adds the GGUF metadata. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "gguf/gguf.h"
#include "store/store.h"
#include "tensor/tensor.h"

static void print_value(const struct gguf_value *v)
{
    switch (v->type) {
    case GGUF_TYPE_UINT8: case GGUF_TYPE_UINT16: case GGUF_TYPE_UINT32: case GGUF_TYPE_UINT64:
        printf("%" PRIu64, v->v.u64);
        break;
    case GGUF_TYPE_INT8: case GGUF_TYPE_INT16: case GGUF_TYPE_INT32: case GGUF_TYPE_INT64:
        printf("%" PRId64, v->v.i64);
        break;
    case GGUF_TYPE_FLOAT32: case GGUF_TYPE_FLOAT64:
        printf("%g", v->v.f64);
        break;
    case GGUF_TYPE_BOOL:
        printf("%s", v->v.b ? "true" : "false");
        break;
    case GGUF_TYPE_STRING:
        printf("%.*s", v->v.str.len > 80 ? 80 : (int)v->v.str.len, v->v.str.ptr);
        if (v->v.str.len > 80)
            printf("...");
        break;
    case GGUF_TYPE_ARRAY:
        printf("[%s x %" PRIu64 "]", gguf_type_name(v->v.arr.elem_type), v->v.arr.n);
        break;
    default:
        printf("?");
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
    struct store *s;
    struct store_model m;
    if (store_open(NULL, &s, &e) || store_resolve(s, name, &m, &e)) {
        fprintf(stderr, "hearth show: %s\n", e.msg);
        return EXIT_RUNTIME;
    }
    store_close(s);
    if (part) {
        char *text = NULL;
        const char *out = NULL;
        if (strcmp(part, "modelfile") == 0)
            out = text = store_model_modelfile(&m);
        else if (strcmp(part, "parameters") == 0)
            out = text = store_params_text(m.params_json);
        else if (strcmp(part, "template") == 0)
            out = m.template_text;
        else if (strcmp(part, "system") == 0)
            out = m.system;
        else
            out = m.license;
        if (out && *out)
            printf("%s%s", out, out[strlen(out) - 1] == '\n' ? "" : "\n");
        free(text);
        store_model_free(&m);
        return 0;
    }
    struct gguf_file *f = NULL;
    int rc = m.model_path ? gguf_open(m.model_path, &f, &e) : 0;
    if (rc) {
        fprintf(stderr, "hearth show: %s\n", e.msg);
        store_model_free(&m);
        return EXIT_RUNTIME;
    }
    printf("  Model\n");
    printf("    %-20s %s\n", "architecture", m.family ? m.family : "unknown");
    printf("    %-20s %s\n", "parameters", m.parameter_size ? m.parameter_size : "unknown");
    if (f && m.family) {
        char key[128];
        uint32_t v;
        struct err ignore;
        snprintf(key, sizeof key, "%s.context_length", m.family);
        if (gguf_get_u32(f, key, &v, &ignore) == 0)
            printf("    %-20s %u\n", "context length", v);
        snprintf(key, sizeof key, "%s.embedding_length", m.family);
        if (gguf_get_u32(f, key, &v, &ignore) == 0)
            printf("    %-20s %u\n", "embedding length", v);
    }
    printf("    %-20s %s\n\n", "quantization", m.quantization_level ? m.quantization_level : "unknown");
    char *params = store_params_text(m.params_json);
    indent_block("Parameters", params);
    free(params);
    indent_block("System", m.system);
    indent_block("License", m.license);
    if (verbose && f) {
        printf("  Metadata\n");
        for (uint64_t i = 0; i < f->n_kv; i++) {
            printf("    %-40.*s ", (int)f->kv[i].key.len, f->kv[i].key.ptr);
            print_value(&f->kv[i].value);
            printf("\n");
        }
        printf("\n  Tensors\n");
        for (uint64_t i = 0; i < f->n_tensors; i++) {
            const struct gguf_tensor *t = &f->tensors[i];
            printf("    %-40s %-6s [", t->name, dtype_name(t->type));
            for (uint32_t d = 0; d < t->n_dims; d++)
                printf("%s%" PRId64, d ? " " : "", t->ne[d]);
            printf("]\n");
        }
    }
    gguf_close(f);
    store_model_free(&m);
    return 0;
}
