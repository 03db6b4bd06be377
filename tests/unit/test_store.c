/* test_store.c — the model store: name grammar and every way a name could escape the store,
 * manifests with reference-counted blobs, atomic blob writes, Modelfile errors naming their line,
 * create from a GGUF path, and quantization: Q8_0 of ../shared/reference/tiny-models/llama-dev-f32.gguf
 * keeps the logits close, and the per-tensor types of the K-quant mixes follow llama.cpp's
 * llama_tensor_get_type (including its name-ordered layer counters). */
#include <dirent.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <utime.h>

#include "testutil.h"
#include "backend/backend.h"
#include "gguf/gguf.h"
#include "model/model.h"
#include "store/store.h"
#include "tensor/tensor.h"

static int count_dir(const char *dir, const char *must_contain)
{
    DIR *d = opendir(dir);
    if (!d)
        return -1;
    int n = 0;
    struct dirent *de;
    while ((de = readdir(d)))
        if (de->d_name[0] != '.' && (!must_contain || strstr(de->d_name, must_contain)))
            n++;
    closedir(d);
    return n;
}

static char *path_in(const char *a, const char *b)
{
    static char buf[4][4096];
    static int k;
    k = (k + 1) % 4;
    int n = snprintf(buf[k], sizeof buf[k], "%s/%s", a, b);
    if (n < 0 || (size_t)n >= sizeof buf[k])
        fail_msg("path too long: %s/%s", a, b);
    return buf[k];
}

static struct store *fresh_store(const char *label)
{
    struct store *s = NULL;
    struct err e = {0};
    if (store_open(path_in(tu_tmpdir(), label), &s, &e))
        fail_msg("store_open: %s", e.msg);
    return s;
}

/* ---- names ---- */

static void test_names_defaults(void **state)
{
    (void)state;
    struct store_name n;
    struct err e = {0};
    char buf[600];
    assert_int_equal(store_name_parse("llama3", &n, &e), 0);
    assert_string_equal(n.host, "registry.ollama.ai");
    assert_string_equal(n.ns, "library");
    assert_string_equal(n.model, "llama3");
    assert_string_equal(n.tag, "latest");
    store_name_display(&n, buf, sizeof buf);
    assert_string_equal(buf, "llama3:latest");
    store_name_full(&n, buf, sizeof buf);
    assert_string_equal(buf, "registry.ollama.ai/library/llama3:latest");

    assert_int_equal(store_name_parse("user/m:q4_K_M", &n, &e), 0);
    assert_string_equal(n.ns, "user");
    assert_string_equal(n.tag, "q4_K_M");
    store_name_display(&n, buf, sizeof buf);
    assert_string_equal(buf, "user/m:q4_K_M");

    /* A host with a port: the ':' before the last '/' is not a tag separator. */
    assert_int_equal(store_name_parse("http://127.0.0.1:5000/library/dev", &n, &e), 0);
    assert_string_equal(n.host, "127.0.0.1:5000");
    assert_string_equal(n.model, "dev");
    assert_string_equal(n.tag, "latest");
    store_name_display(&n, buf, sizeof buf);
    assert_string_equal(buf, "127.0.0.1:5000/library/dev:latest");

    struct store_name a, b;
    assert_int_equal(store_name_parse("Library/LLAMA3:Latest", &a, &e), 0);
    assert_int_equal(store_name_parse("llama3", &b, &e), 0);
    assert_true(store_name_equal(&a, &b));
    assert_int_equal(store_name_parse("llama3:8b", &b, &e), 0);
    assert_false(store_name_equal(&a, &b));
}

static void test_names_rejected(void **state)
{
    (void)state;
    static const char *bad[] = {
        "",          "..",           "../x",       "a/../../b", "x/..",     ".hidden",  "a/b/c/d",
        "x:",        ":tag",         "a//b",       "/abs",      "m:../t",   "m:t/x",    "m/",
        "ns/.m",     "h/ns/-m",      "a b",        "m\\x",      "m:..",     "m\n",      "m\xc3\xa9",
        "h/../m:t",  "..:latest",    "./m",        "m:.t",      "ns/..",    "~/m",      "m*",
    };
    struct store_name n;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct err e = {0};
        int rc = store_name_parse(bad[i], &n, &e);
        if (rc != ERR_INVALID)
            fail_msg("name '%s' accepted (rc %d, model '%s')", bad[i], rc, n.model);
        assert_non_null(strstr(e.msg, "invalid model name"));
    }
    /* Lengths: exactly the maximum is fine, one more is not, for the model, tag and namespace. */
    char s[STORE_HOST_MAX + 3 * STORE_PART_MAX + 64];
    struct err e = {0};
    memset(s, 'a', STORE_PART_MAX);
    s[STORE_PART_MAX] = '\0';
    assert_int_equal(store_name_parse(s, &n, &e), 0);
    s[STORE_PART_MAX] = 'a';
    s[STORE_PART_MAX + 1] = '\0';
    assert_int_equal(store_name_parse(s, &n, &e), ERR_INVALID);
    assert_non_null(strstr(e.msg, "longer than"));
    snprintf(s, sizeof s, "m:%0*d", STORE_PART_MAX + 1, 0);
    assert_int_equal(store_name_parse(s, &n, &e), ERR_INVALID);
    assert_non_null(strstr(e.msg, "tag"));
    memset(s, 'x', sizeof s - 1);
    s[sizeof s - 1] = '\0';
    assert_int_equal(store_name_parse(s, &n, &e), ERR_INVALID);
    /* An embedded NUL ends the string: what follows can never reach a path. */
    const char nul[] = "ok\0/../../etc";
    assert_int_equal(store_name_parse(nul, &n, &e), 0);
    assert_string_equal(n.model, "ok");
    /* A store refuses such names too (they never reach the file system). */
    struct store *st = fresh_store("names");
    assert_int_equal(store_copy(st, "nothing", "../../x", &e), ERR_INVALID);
    assert_int_equal(store_delete(st, "a/../../b", &e), ERR_INVALID);
    store_close(st);
}

/* ---- blobs, manifests, reference counting ---- */

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static void test_blobs_atomic(void **state)
{
    (void)state;
    struct store *s = fresh_store("blobs");
    struct err e = {0};
    char digest[72];
    char blobdir[4096];
    snprintf(blobdir, sizeof blobdir, "%s/blobs", store_root(s));
    /* sha256("abc") */
    const char *abc = "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
    assert_int_equal(store_blob_import_mem(s, "abc", 3, digest, &e), 0);
    assert_string_equal(digest, abc);
    assert_true(store_blob_exists(s, abc));
    assert_true(store_blob_exists(s, "sha256-ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"));

    /* A streamed write whose digest does not match leaves nothing behind and says so. */
    struct store_blob_writer *w = NULL;
    assert_int_equal(store_blob_writer_open(s, &w, &e), 0);
    assert_int_equal(count_dir(blobdir, "partial"), 1);
    assert_int_equal(store_blob_writer_write(w, "abd", 3, &e), 0);
    assert_int_equal(store_blob_writer_finish(w, abc, digest, &e), ERR_INVALID);
    assert_non_null(strstr(e.msg, "digest mismatch"));
    assert_int_equal(count_dir(blobdir, NULL), 1);
    /* An aborted write leaves nothing; a matching one lands under its digest only when finished. */
    assert_int_equal(store_blob_writer_open(s, &w, &e), 0);
    assert_int_equal(store_blob_writer_write(w, "xyz", 3, &e), 0);
    store_blob_writer_abort(w);
    assert_int_equal(count_dir(blobdir, NULL), 1);
    assert_int_equal(store_blob_writer_open(s, &w, &e), 0);
    assert_int_equal(store_blob_writer_write(w, "ab", 2, &e), 0);
    assert_int_equal(store_blob_writer_write(w, "c", 1, &e), 0);
    assert_int_equal(store_blob_writer_finish(w, abc, digest, &e), 0);
    assert_int_equal(count_dir(blobdir, NULL), 1);

    /* Bad digests. */
    char hex[65];
    assert_int_equal(store_digest_parse("sha256:xyz", hex, &e), ERR_INVALID);
    assert_int_equal(store_digest_parse("md5:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad", hex, &e),
                     ERR_INVALID);
    assert_int_equal(store_digest_parse("sha256:../../../../etc/passwd000000000000000000000000000000000000000", hex, &e),
                     ERR_INVALID);
    assert_int_equal(store_digest_parse("sha256:BA7816BF8F01CFEA414140DE5DAE2223B00361A396177A9CB410FF61F20015AD", hex, &e),
                     0);
    assert_string_equal(hex, abc + 7);
    store_close(s);
}

static void test_manifests_refcount(void **state)
{
    (void)state;
    const char *src = tu_shared("models/stories260K.gguf");
    TU_REQUIRE(src);
    struct store *s = fresh_store("refcount");
    struct err e = {0};
    char blobdir[4096];
    snprintf(blobdir, sizeof blobdir, "%s/blobs", store_root(s));
    char fromcopy[4096];
    snprintf(fromcopy, sizeof fromcopy, "%s", src);
    struct store_create_req req = {.from = fromcopy, .system = "be brief", .params_json = "{\"temperature\":0.5}"};
    if (store_create(s, "Dev:v1", &req, &e))
        fail_msg("create: %s", e.msg);
    int nblobs = count_dir(blobdir, NULL);
    assert_true(nblobs >= 3); /* model, system, params (+ config) */

    struct store_model m;
    assert_int_equal(store_resolve(s, "dev:V1", &m, &e), 0); /* case-insensitive lookup */
    assert_string_equal(m.name, "Dev:v1");
    assert_string_equal(m.system, "be brief");
    assert_non_null(strstr(m.params_json, "temperature"));
    char hex[65];
    assert_int_equal(store_sha256_file(m.model_path, hex, &e), 0);
    assert_string_equal(hex, m.model_digest + 7);
    char src_hex[65];
    assert_int_equal(store_sha256_file(src, src_hex, &e), 0);
    assert_string_equal(src_hex, hex);
    store_model_free(&m);

    /* The manifest is Ollama's: schema 2, docker media types, our layers. */
    char *mpath = path_in(store_root(s), "manifests/registry.ollama.ai/library/Dev/v1");
    json_error_t jerr;
    json_t *man = json_load_file(mpath, 0, &jerr);
    assert_non_null(man);
    assert_int_equal(json_integer_value(json_object_get(man, "schemaVersion")), 2);
    assert_string_equal(json_string_value(json_object_get(man, "mediaType")),
                        "application/vnd.docker.distribution.manifest.v2+json");
    bool has_model = false;
    json_t *layers = json_object_get(man, "layers");
    for (size_t i = 0; i < json_array_size(layers); i++) {
        json_t *l = json_array_get(layers, i);
        if (strcmp(json_string_value(json_object_get(l, "mediaType")), "application/vnd.ollama.image.model") == 0) {
            has_model = true;
            struct stat st;
            assert_int_equal(stat(src, &st), 0);
            assert_int_equal(json_integer_value(json_object_get(l, "size")), st.st_size);
        }
    }
    assert_true(has_model);
    json_decref(man);

    /* Copies share blobs; deleting frees a blob only with its last reference. */
    assert_int_equal(store_copy(s, "dev:v1", "other/dev:v2", &e), 0);
    assert_int_equal(count_dir(blobdir, NULL), nblobs);
    struct store_entry *ents = NULL;
    size_t n = 0;
    assert_int_equal(store_list(s, &ents, &n, &e), 0);
    assert_int_equal(n, 2);
    store_list_free(ents, n);
    /* Re-creating with another system prompt drops only the old system blob. */
    req.system = "be verbose";
    assert_int_equal(store_create(s, "other/dev:v2", &req, &e), 0);
    int after_recreate = count_dir(blobdir, NULL);
    assert_true(after_recreate >= nblobs); /* Dev:v1 still uses the old system blob */
    assert_int_equal(store_delete(s, "DEV:v1", &e), 0);
    assert_true(count_dir(blobdir, NULL) < after_recreate);
    assert_int_equal(store_resolve(s, "dev:v1", &m, &e), ERR_NOTFOUND);
    assert_string_equal(e.msg, "model 'dev:v1' not found");
    assert_int_equal(store_delete(s, "other/dev:v2", &e), 0);
    assert_int_equal(count_dir(blobdir, NULL), 0);
    assert_int_equal(count_dir(path_in(store_root(s), "manifests"), NULL), 0);

    /* Pruning removes stale partial files and unreferenced blobs but nothing in use. */
    write_file(path_in(blobdir, "sha256-tmp1-1-partial"), "junk");
    write_file(path_in(blobdir, "sha256-tmp1-2-partial"), "fresh: an upload still in flight");
    struct utimbuf old = {.actime = time(NULL) - 7200, .modtime = time(NULL) - 7200};
    assert_int_equal(utime(path_in(blobdir, "sha256-tmp1-1-partial"), &old), 0);
    /* A pull's resumable partial file and its part state survive (a later pull resumes them). */
    const char *resumable = "sha256-0000000000000000000000000000000000000000000000000000000000000000-partial";
    write_file(path_in(blobdir, resumable), "half");
    assert_int_equal(utime(path_in(blobdir, resumable), &old), 0);
    char part_state[200];
    snprintf(part_state, sizeof part_state, "%s-3", resumable);
    write_file(path_in(blobdir, part_state), "{}");
    assert_int_equal(utime(path_in(blobdir, part_state), &old), 0);
    write_file(path_in(blobdir, "sha256-ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"), "abc");
    assert_int_equal(store_create(s, "keep", &req, &e), 0);
    int kept = count_dir(blobdir, NULL);
    assert_true(store_prune(s, &e) >= 1);
    assert_int_equal(count_dir(blobdir, "sha256-ba78"), 0);
    assert_int_equal(count_dir(blobdir, "tmp1-1"), 0);
    assert_int_equal(count_dir(blobdir, "tmp1-2"), 1);
    assert_int_equal(count_dir(blobdir, "0000-partial"), 2);
    assert_true(count_dir(blobdir, NULL) < kept);
    assert_int_equal(store_resolve(s, "keep", &m, &e), 0);
    assert_int_equal(access(m.model_path, R_OK), 0);
    store_model_free(&m);
    store_close(s);
}

/* ---- Modelfile ---- */

static void expect_mf_error(const char *text, int code, const char *needle)
{
    struct modelfile mf;
    struct err e = {0};
    int rc = modelfile_parse(text, &mf, NULL, 0, &e);
    if (rc != code || !strstr(e.msg, needle))
        fail_msg("Modelfile %s: rc %d, message '%s' (want %d with '%s')", text, rc, e.msg, code, needle);
}

static void test_modelfile(void **state)
{
    (void)state;
    struct modelfile mf;
    struct err e = {0};
    char warn[512];
    const char *good = "# comment\n"
                       "FROM ./model.gguf\n"
                       "\n"
                       "parameter temperature 0.7\n"
                       "PARAMETER stop \"<|eot|>\"\n"
                       "PARAMETER stop </s>\n"
                       "PARAMETER num_ctx 4096\n"
                       "PARAMETER penalize_newline true\n"
                       "SYSTEM \"\"\"two\nlines\"\"\"\n"
                       "TEMPLATE {{ .Prompt }}\n"
                       "MESSAGE user hello there\n"
                       "MESSAGE assistant \"hi\"\n"
                       "LICENSE MIT\n"
                       "LICENSE \"\"\"Apache\n2.0\"\"\"\n";
    assert_int_equal(modelfile_parse(good, &mf, warn, sizeof warn, &e), 0);
    assert_string_equal(mf.from, "./model.gguf");
    assert_string_equal(mf.system, "two\nlines");
    assert_string_equal(mf.template_text, "{{ .Prompt }}");
    assert_int_equal(mf.n_licenses, 2);
    assert_string_equal(mf.licenses[1], "Apache\n2.0");
    assert_int_equal(mf.n_messages, 2);
    assert_string_equal(mf.messages[0].content, "hello there");
    assert_string_equal(mf.messages[1].role, "assistant");
    json_error_t jerr;
    json_t *p = json_loads(mf.params_json, 0, &jerr);
    assert_non_null(p);
    assert_true(fabs(json_real_value(json_object_get(p, "temperature")) - 0.7) < 1e-9);
    assert_int_equal(json_integer_value(json_object_get(p, "num_ctx")), 4096);
    json_t *stop = json_object_get(p, "stop");
    assert_int_equal(json_array_size(stop), 2);
    assert_string_equal(json_string_value(json_array_get(stop, 1)), "</s>");
    json_decref(p);
    assert_non_null(strstr(warn, "(line 8)")); /* penalize_newline is deprecated */
    modelfile_free(&mf);

    expect_mf_error("FROM x\nPARAMETER nosuch 1\n", ERR_INVALID, "(line 2): unknown parameter 'nosuch'");
    expect_mf_error("FROM x\n\n\nPARAMETER num_ctx many\n", ERR_INVALID, "(line 4): invalid int value 'many'");
    expect_mf_error("FROM x\nPARAMETER temperature hot\n", ERR_INVALID, "(line 2): invalid float value 'hot'");
    expect_mf_error("FROM x\nPARAMETER use_mmap maybe\n", ERR_INVALID, "(line 2): invalid bool value 'maybe'");
    expect_mf_error("FROM x\nPARAMETER\n", ERR_FORMAT, "(line 2): missing parameter name");
    expect_mf_error("FROM x\nADAPTER lora.gguf\n", ERR_UNSUPPORTED, "(line 2): ADAPTER is not supported");
    expect_mf_error("FROM x\n# c\nMESSAGE robot hi\n", ERR_FORMAT, "(line 3): message role must be one of");
    expect_mf_error("FROM x\nSYSTEM \"\"\"never\nclosed\n", ERR_FORMAT, "(line 2): unterminated \"\"\"");
    expect_mf_error("FROM x\nSYSTEM \"open\n", ERR_FORMAT, "(line 2): unterminated quoted value");
    expect_mf_error("FROM x\nTEMPLATE \"\"\"a\nb\"\"\"\nBOGUS y\n", ERR_FORMAT, "(line 4): command must be one of");
    expect_mf_error("FROM\n", ERR_FORMAT, "(line 1)");
    expect_mf_error("SYSTEM hi\n", ERR_FORMAT, "no FROM line");
}

/* ---- create ---- */

static void test_create_from_gguf(void **state)
{
    (void)state;
    const char *src = tu_shared("reference/tiny-models/llama-dev-f32.gguf");
    TU_REQUIRE(src);
    char dir[4096], base[1024];
    snprintf(dir, sizeof dir, "%s", src);
    char *slash = strrchr(dir, '/');
    snprintf(base, sizeof base, "%s", slash + 1);
    *slash = '\0';
    struct store *s = fresh_store("create");
    struct err e = {0};
    /* A relative FROM is resolved against the Modelfile's directory. */
    struct store_create_req req = {.from = base, .base_dir = dir};
    if (store_create(s, "tiny", &req, &e))
        fail_msg("create: %s", e.msg);
    struct store_model m;
    assert_int_equal(store_resolve(s, "tiny", &m, &e), 0);
    assert_string_equal(m.format, "gguf");
    assert_string_equal(m.family, "llama");
    assert_non_null(m.quantization_level);
    assert_string_equal(m.quantization_level, "F32");
    assert_non_null(m.config_json);
    store_model_free(&m);
    /* A missing file is an error naming it, and writes no manifest. */
    req.from = "missing.gguf";
    assert_int_not_equal(store_create(s, "broken", &req, &e), 0);
    assert_non_null(strstr(e.msg, "missing"));
    assert_int_equal(store_resolve(s, "broken", &m, &e), ERR_NOTFOUND);
    /* FROM another stored model inherits its weights. */
    req.from = "tiny";
    req.system = "child";
    assert_int_equal(store_create(s, "child", &req, &e), 0);
    struct store_model a, b;
    assert_int_equal(store_resolve(s, "child", &a, &e), 0);
    assert_int_equal(store_resolve(s, "tiny", &b, &e), 0);
    assert_string_equal(a.model_digest, b.model_digest);
    assert_string_equal(a.system, "child");
    store_model_free(&a);
    store_model_free(&b);
    store_close(s);
}

/* ---- quantization ---- */

static float max_abs_diff(const float *a, const float *b, size_t n)
{
    float m = 0;
    for (size_t i = 0; i < n; i++) {
        float d = fabsf(a[i] - b[i]);
        if (!(d <= m))
            m = isnan(d) ? INFINITY : d;
    }
    return m;
}

static float *run_logits(const char *path, const int32_t *ids, int n, int *vocab)
{
    struct err e = {0};
    struct backend *be = NULL;
    struct model *m = NULL;
    struct model_ctx *ctx = NULL;
    assert_int_equal(backend_cpu_new(2, &be, &e), 0);
    if (model_load(path, be, &m, &e))
        fail_msg("load %s: %s", path, e.msg);
    *vocab = m->hp.n_vocab;
    float *out = malloc((size_t)n * (size_t)*vocab * sizeof *out);
    assert_non_null(out);
    struct ctx_params cp = {.n_ctx = 64, .n_batch = 64, .kv_type = KV_F32};
    assert_int_equal(model_ctx_new(m, &cp, &ctx, &e), 0);
    assert_int_equal(model_forward(ctx, ids, n, out, true, &e), 0);
    model_ctx_free(ctx);
    model_free(m);
    be->ops->free(be);
    return out;
}

static void test_quantize_q8_0_logits(void **state)
{
    (void)state;
    const char *src = tu_shared("reference/tiny-models/llama-dev-f32.gguf");
    TU_REQUIRE(src);
    char in[4096], out[4096];
    snprintf(in, sizeof in, "%s", src);
    snprintf(out, sizeof out, "%s/llama-dev-q8_0.gguf", tu_tmpdir());
    struct err e = {0};
    if (store_quantize_file(in, out, STORE_FT_Q8_0, 2, NULL, NULL, &e))
        fail_msg("quantize: %s", e.msg);

    /* Every 2-D weight became Q8_0, 1-D tensors stayed F32, like llama.cpp's own Q8_0 file. */
    struct gguf_file *q = NULL, *ref = NULL;
    assert_int_equal(gguf_open(out, &q, &e), 0);
    uint32_t ft = 0;
    assert_int_equal(gguf_get_u32(q, "general.file_type", &ft, &e), 0);
    assert_int_equal(ft, 7);
    const char *llama_q8 = tu_shared("reference/tiny-models/llama-dev-q8_0.gguf");
    if (llama_q8) {
        char refpath[4096];
        snprintf(refpath, sizeof refpath, "%s", llama_q8);
        assert_int_equal(gguf_open(refpath, &ref, &e), 0);
        assert_int_equal(ref->n_tensors, q->n_tensors);
        for (uint64_t i = 0; i < q->n_tensors; i++) {
            const struct gguf_tensor *t = &q->tensors[i];
            const struct gguf_tensor *r = gguf_find_tensor(ref, t->name);
            assert_non_null(r);
            if (t->type != r->type)
                fail_msg("%s: %s, llama.cpp has %s", t->name, dtype_name(t->type), dtype_name(r->type));
        }
        gguf_close(ref);
    }
    gguf_close(q);

    const char *jpath = tu_shared("reference/tiny-models/llama-dev.json");
    TU_REQUIRE(jpath);
    json_error_t jerr;
    json_t *j = json_load_file(jpath, 0, &jerr);
    assert_non_null(j);
    json_t *pr = json_array_get(json_object_get(j, "prompts"), 1);
    json_t *arr = json_object_get(pr, "ids");
    int n = (int)json_array_size(arr);
    assert_true(n > 4 && n <= 64);
    int32_t ids[64];
    for (int i = 0; i < n; i++)
        ids[i] = (int32_t)json_integer_value(json_array_get(arr, (size_t)i));
    int v1 = 0, v2 = 0;
    float *f32 = run_logits(in, ids, n, &v1);
    float *q8 = run_logits(out, ids, n, &v2);
    assert_int_equal(v1, v2);
    float d = max_abs_diff(f32, q8, (size_t)n * (size_t)v1);
    /* and against transformers' own logits for this prompt */
    char rel[256];
    snprintf(rel, sizeof rel, "reference/tiny-models/%s", json_string_value(json_object_get(pr, "logits_file")));
    size_t size = 0;
    float *want = (float *)tu_read(tu_shared(rel), &size);
    assert_int_equal(size, (size_t)n * (size_t)v1 * sizeof(float));
    float d_ref = max_abs_diff(want, q8, (size_t)n * (size_t)v1);
    print_message("Q8_0 vs F32: max abs logit diff %.3g; vs transformers %.3g (tolerance 3e-2)\n", d, d_ref);
    assert_true(d > 0);     /* the weights really changed */
    assert_true(d <= 3e-2f);
    assert_true(d_ref <= 3e-2f);
    free(want);
    free(f32);
    free(q8);
    json_decref(j);
}

/* A small llama-shaped GGUF with F32 weights whose rows are `width` wide, for checking mixes. */
#define MIX_LAYERS 12
static void write_mix_model(const char *path, int width, bool with_output)
{
    struct gguf_writer *w = gguf_writer_new();
    assert_non_null(w);
    gguf_writer_set_str(w, "general.architecture", "llama");
    gguf_writer_set_u32(w, "llama.block_count", MIX_LAYERS);
    gguf_writer_set_u32(w, "llama.embedding_length", (uint32_t)width);
    gguf_writer_set_u32(w, "general.file_type", 0);
    /* Rows of smooth values; 8 rows per matrix is enough for the type decisions, which depend on
     * names, counters and the row length only. */
    const int rows = 8;
    float *data = malloc((size_t)width * rows * sizeof *data);
    assert_non_null(data);
    for (int i = 0; i < width * rows; i++)
        data[i] = sinf((float)i * 0.37f) * 0.1f;
    struct err e = {0};
    int64_t ne2[2] = {width, rows}, ne1[2] = {width, 1};
    assert_int_equal(gguf_writer_add_tensor(w, "token_embd.weight", DT_F32, 2, ne2, data, &e), 0);
    assert_int_equal(gguf_writer_add_tensor(w, "output_norm.weight", DT_F32, 1, ne1, data, &e), 0);
    if (with_output)
        assert_int_equal(gguf_writer_add_tensor(w, "output.weight", DT_F32, 2, ne2, data, &e), 0);
    static const char *mats[] = {"attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down"};
    for (int l = 0; l < MIX_LAYERS; l++) {
        char name[64];
        snprintf(name, sizeof name, "blk.%d.attn_norm.weight", l);
        assert_int_equal(gguf_writer_add_tensor(w, name, DT_F32, 1, ne1, data, &e), 0);
        snprintf(name, sizeof name, "blk.%d.ffn_norm.weight", l);
        assert_int_equal(gguf_writer_add_tensor(w, name, DT_F32, 1, ne1, data, &e), 0);
        for (size_t k = 0; k < sizeof mats / sizeof mats[0]; k++) {
            snprintf(name, sizeof name, "blk.%d.%s.weight", l, mats[k]);
            assert_int_equal(gguf_writer_add_tensor(w, name, DT_F32, 2, ne2, data, &e), 0);
        }
    }
    if (gguf_writer_write(w, path, &e))
        fail_msg("write %s: %s", path, e.msg);
    gguf_writer_free(w);
    free(data);
}

/* What llama.cpp chooses for 12 layers of 256-wide rows. Its attn_v / ffn_down counters advance in
 * tensor-name order (blk.0, blk.1, blk.10, blk.11, blk.2, ...), so "use more bits" (counter i with
 * i < n/8, i >= 7n/8 or (i - n/8) % 3 == 2: counters 0,3,6,9,10,11) lands on layers 0,11,4,7,8,9,
 * and Q4_K_S's "first four attn_v" (counters 0..3) on layers 0,1,10,11. */
static uint32_t expected_type(enum store_ftype ft, const char *name, bool with_output)
{
    static const int more_bits[MIX_LAYERS] = {1, 0, 0, 0, 1, 0, 0, 1, 1, 1, 0, 1};
    static const int first_four_v[MIX_LAYERS] = {1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1};
    uint32_t base = ft == STORE_FT_Q5_K_M ? DT_Q5_K : DT_Q4_K;
    if (strstr(name, "norm"))
        return DT_F32;
    if (strcmp(name, "output.weight") == 0)
        return DT_Q6_K;
    if (strcmp(name, "token_embd.weight") == 0)
        return with_output ? base : DT_Q6_K;
    int layer = -1;
    assert_int_equal(sscanf(name, "blk.%d.", &layer), 1);
    bool v = strstr(name, "attn_v") != NULL, down = strstr(name, "ffn_down") != NULL;
    if (ft == STORE_FT_Q4_K_S) {
        if (v && first_four_v[layer])
            return DT_Q5_K;
        if (down && layer == 0) /* i_ffn_down < n/8 = 1 */
            return DT_Q5_K;
        return base;
    }
    if ((v || down) && more_bits[layer])
        return DT_Q6_K;
    return base;
}

static void check_mix(const char *path, enum store_ftype ft, bool with_output)
{
    char out[4096];
    snprintf(out, sizeof out, "%s/mix-%s-%d.gguf", tu_tmpdir(), store_ftype_name(ft), with_output);
    struct err e = {0};
    if (store_quantize_file(path, out, ft, 2, NULL, NULL, &e))
        fail_msg("quantize %s: %s", store_ftype_name(ft), e.msg);
    struct gguf_file *f = NULL;
    assert_int_equal(gguf_open(out, &f, &e), 0);
    uint32_t file_type = 0;
    assert_int_equal(gguf_get_u32(f, "general.file_type", &file_type, &e), 0);
    assert_int_equal(file_type, store_ftype_llama(ft));
    int n_q6 = 0;
    for (uint64_t i = 0; i < f->n_tensors; i++) {
        const struct gguf_tensor *t = &f->tensors[i];
        uint32_t want = expected_type(ft, t->name, with_output);
        if (t->type != want)
            fail_msg("%s %s: %s, llama.cpp chooses %s", store_ftype_name(ft), t->name, dtype_name(t->type),
                     dtype_name(want));
        n_q6 += t->type == DT_Q6_K;
        /* The data really is in that format: a row decodes close to the source. */
        if (t->type != DT_F32) {
            float row[256];
            assert_int_equal(dtype_dequantize(t->type, t->data, row, 256, &e), 0);
            for (int k = 0; k < 256; k++)
                assert_true(fabsf(row[k] - sinf((float)k * 0.37f) * 0.1f) < 0.02f);
        }
    }
    gguf_close(f);
    print_message("%s (%s output): %d Q6_K tensors, all types as llama.cpp chooses\n", store_ftype_name(ft),
                  with_output ? "separate" : "tied", n_q6);
}

static void test_quantize_k_mixes(void **state)
{
    (void)state;
    char path[4096], tied[4096];
    snprintf(path, sizeof path, "%s/mix-src.gguf", tu_tmpdir());
    snprintf(tied, sizeof tied, "%s/mix-src-tied.gguf", tu_tmpdir());
    write_mix_model(path, 256, true);
    write_mix_model(tied, 256, false);
    check_mix(path, STORE_FT_Q4_K_M, true);
    check_mix(path, STORE_FT_Q4_K_S, true);
    check_mix(path, STORE_FT_Q5_K_M, true);
    check_mix(tied, STORE_FT_Q4_K_M, false);
}

/* Rows that are not whole 256-element super-blocks fall back as llama.cpp does: Q4_K to Q5_0,
 * Q5_K to Q5_1, Q6_K to Q8_0 (the output matrix goes straight to Q8_0). */
static void test_quantize_fallback(void **state)
{
    (void)state;
    char path[4096], out[4096];
    snprintf(path, sizeof path, "%s/mix-96.gguf", tu_tmpdir());
    snprintf(out, sizeof out, "%s/mix-96-q4km.gguf", tu_tmpdir());
    write_mix_model(path, 96, true);
    struct err e = {0};
    assert_int_equal(store_quantize_file(path, out, STORE_FT_Q4_K_M, 2, NULL, NULL, &e), 0);
    struct gguf_file *f = NULL;
    assert_int_equal(gguf_open(out, &f, &e), 0);
    for (uint64_t i = 0; i < f->n_tensors; i++) {
        const struct gguf_tensor *t = &f->tensors[i];
        uint32_t k = expected_type(STORE_FT_Q4_K_M, t->name, true);
        uint32_t want = k == DT_Q4_K ? DT_Q5_0 : k == DT_Q6_K ? DT_Q8_0 : k;
        if (t->type != want)
            fail_msg("%s: %s, llama.cpp falls back to %s", t->name, dtype_name(t->type), dtype_name(want));
    }
    gguf_close(f);
    /* A type nothing can convert to is refused with the accepted list. */
    enum store_ftype ft;
    assert_int_equal(store_ftype_parse("q4_k_m", &ft, &e), 0);
    assert_int_equal(ft, STORE_FT_Q4_K_M);
    assert_int_equal(store_ftype_parse("IQ2_XXS", &ft, &e), ERR_INVALID);
    assert_non_null(strstr(e.msg, "Q4_K_M"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_names_defaults),      cmocka_unit_test(test_names_rejected),
        cmocka_unit_test(test_blobs_atomic),        cmocka_unit_test(test_manifests_refcount),
        cmocka_unit_test(test_modelfile),           cmocka_unit_test(test_create_from_gguf),
        cmocka_unit_test(test_quantize_q8_0_logits), cmocka_unit_test(test_quantize_k_mixes),
        cmocka_unit_test(test_quantize_fallback),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
