/* cmd_create.c — `hearth create NAME [-f Modelfile] [-q TYPE]`: parses the Modelfile here, uploads
 * a FROM file as a blob (HEAD/POST /api/blobs/:digest) and asks the server (started on demand) to
 * build the model with POST /api/create, streaming its status lines. A FROM directory (safetensors)
 * is the one part done in this process: it is converted to a temporary GGUF, which is uploaded. */
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/file.h"
#include "cli/cli.h"
#include "cli/client.h"
#include "store/store.h"

/* FROM resolved like Ollama's CLI: "~/" expanded, relative paths against the Modelfile's directory. */
static void from_path(const char *from, const char *base_dir, char *buf, size_t cap)
{
    const char *home = getenv("HOME");
    if (strncmp(from, "~/", 2) == 0 && home)
        snprintf(buf, cap, "%s/%s", home, from + 2);
    else if (from[0] != '/' && base_dir && *base_dir)
        snprintf(buf, cap, "%s/%s", base_dir, from);
    else
        snprintf(buf, cap, "%s", from);
}

static void import_progress(void *ctx, const char *status, uint64_t done, uint64_t total)
{
    client_bar_update(ctx, status, NULL, total, done);
}

struct upload_bar {
    struct client_bar *bar;
    char status[96];
    const char *digest;
};

static void upload_progress(void *user, uint64_t sent, uint64_t total)
{
    struct upload_bar *u = user;
    if (total)
        client_bar_update(u->bar, u->status, u->digest, total, sent);
}

/* Uploads the GGUF at path (a directory is converted first) and adds it to files. */
static int add_file(const char *path, struct client_bar *bar, json_t *files, struct err *e)
{
    struct stat st;
    char tmp[4200] = "";
    const char *gguf = path;
    int rc = 0;
    if (stat(path, &st) == 0 && S_ISDIR(st.st_mode)) {
        const char *td = getenv("TMPDIR");
        snprintf(tmp, sizeof tmp, "%s/hearth-create-%ld.gguf", td && *td ? td : "/tmp", (long)getpid());
        struct store_import_opts io = {.progress = import_progress, .progress_ctx = bar};
        client_bar_update(bar, "converting model", NULL, 0, 0);
        if ((rc = store_import_dir(path, tmp, &io, e)))
            goto out;
        gguf = tmp;
    }
    char hex[65], digest[80];
    if ((rc = store_sha256_file(gguf, hex, e)))
        goto out;
    snprintf(digest, sizeof digest, "sha256:%s", hex);
    struct upload_bar u = {.bar = bar, .digest = digest};
    snprintf(u.status, sizeof u.status, "copying file %s", digest);
    if ((rc = client_upload_blob(gguf, digest, upload_progress, &u, e)))
        goto out;
    /* The server takes .gguf file names only; the name itself carries no meaning. */
    char *copy = strdup(gguf);
    const char *base = copy ? basename(copy) : "model.gguf";
    size_t n = strlen(base);
    json_object_set_new(files, n > 5 && strcmp(base + n - 5, ".gguf") == 0 && !tmp[0] ? base : "model.gguf",
                        json_string(digest));
    free(copy);
out:
    if (tmp[0])
        unlink(tmp);
    return rc;
}

int cmd_create(int argc, char **argv)
{
    const char *name = NULL, *file = "Modelfile", *quant = NULL;
    for (int i = 1; i < argc; i++) {
        const char *v;
        if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
            puts("usage: hearth create NAME [-f Modelfile] [-q|--quantize TYPE]");
            return 0;
        } else if ((v = opt_value(argc, argv, &i, "-f")) || (v = opt_value(argc, argv, &i, "--file"))) {
            file = v;
        } else if ((v = opt_value(argc, argv, &i, "-q")) || (v = opt_value(argc, argv, &i, "--quantize"))) {
            quant = v;
        } else if (!name && argv[i][0] != '-') {
            name = argv[i];
        } else {
            fprintf(stderr, "hearth create: unexpected argument '%s'\n", argv[i]);
            return EXIT_USAGE;
        }
    }
    if (!name || !*file || (quant && !*quant)) {
        fprintf(stderr, "usage: hearth create NAME [-f Modelfile] [-q TYPE]\n");
        return EXIT_USAGE;
    }
    struct err e = {0};
    char *text = NULL;
    size_t size;
    struct modelfile mf;
    char warn[2048];
    if (file_read_all(file, &text, &size, &e)) {
        fprintf(stderr, "hearth create: %s\n", e.msg);
        return EXIT_RUNTIME;
    }
    if (modelfile_parse(text, &mf, warn, sizeof warn, &e)) {
        fprintf(stderr, "hearth create: %s: %s\n", file, e.msg);
        free(text);
        return EXIT_RUNTIME;
    }
    free(text);
    if (warn[0])
        fprintf(stderr, "%s", warn);
    int rc = client_connect(&e);
    json_t *req = json_pack("{s:s,s:b}", "model", name, "stream", 1);
    struct client_bar bar;
    client_bar_init(&bar);
    if (!rc) {
        char *dir_copy = strdup(file);
        char path[4096];
        from_path(mf.from, dir_copy ? dirname(dir_copy) : NULL, path, sizeof path);
        free(dir_copy);
        if (access(path, F_OK) == 0) {
            client_bar_update(&bar, "gathering model components", NULL, 0, 0);
            json_t *files = json_object();
            rc = add_file(path, &bar, files, &e);
            json_object_set_new(req, "files", files);
        } else {
            json_object_set_new(req, "from", json_string(mf.from));
        }
    }
    if (!rc) {
        if (mf.template_text)
            json_object_set_new(req, "template", json_string(mf.template_text));
        if (mf.system)
            json_object_set_new(req, "system", json_string(mf.system));
        if (mf.params_json)
            json_object_set_new(req, "parameters", json_loads(mf.params_json, 0, NULL));
        if (mf.messages_json)
            json_object_set_new(req, "messages", json_loads(mf.messages_json, 0, NULL));
        if (mf.n_licenses) {
            json_t *lic = json_array();
            for (size_t i = 0; i < mf.n_licenses; i++)
                json_array_append_new(lic, json_string(mf.licenses[i]));
            json_object_set_new(req, "license", lic);
        }
        if (quant)
            json_object_set_new(req, "quantize", json_string(quant));
        rc = client_stream("/api/create", req, client_bar_obj, &bar, &e);
    }
    if (rc)
        fprintf(stderr, "hearth create: %s\n", e.msg);
    json_decref(req);
    modelfile_free(&mf);
    return rc ? EXIT_RUNTIME : 0;
}
