/* fuzz_jinja.c — libFuzzer target for the Jinja template engine: arbitrary bytes are compiled as a
 * template and, when they compile, rendered over a small conversation under tight step and output
 * limits. Every input must compile or fail with a message, and render or fail with a message. */
#include <jansson.h>
#include <stdlib.h>

#include "template/jinja.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static json_t *ctx;
    if (!ctx) {
        json_error_t je;
        ctx = json_loads("{\"messages\":[{\"role\":\"system\",\"content\":\"Be brief.\"},"
                         "{\"role\":\"user\",\"content\":\"Hi <b>\"},{\"role\":\"assistant\",\"content\":"
                         "\"Hello\",\"tool_calls\":[{\"function\":{\"name\":\"f\",\"arguments\":{\"x\":1}}}]}],"
                         "\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"f\"}}],"
                         "\"add_generation_prompt\":true,\"bos_token\":\"<s>\",\"eos_token\":\"</s>\"}",
                         0, &je);
        if (!ctx)
            abort();
    }
    if (size > 8192)
        return 0;
    struct err e = {0};
    struct jinja_template *t = NULL;
    if (jinja_compile((const char *)data, size, &t, &e) != 0) {
        if (!e.msg[0])
            abort(); /* a failure must say why */
        return 0;
    }
    struct jinja_limits lim = {0};
    lim.max_steps = 20000;
    lim.max_output = 1 << 16;
    char *out = NULL;
    size_t out_len = 0;
    if (jinja_render(t, ctx, &lim, &out, &out_len, &e) != 0 && !e.msg[0])
        abort();
    free(out);
    jinja_free(t);
    return 0;
}
