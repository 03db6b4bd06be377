/* blobs.c — content-addressed blobs: blobs/sha256-<hex>, hashed with OpenSSL's EVP sha256 while
 * being written to a temporary file in the same directory, then fsync'd and renamed into place, so
 * a blob's name always matches its bytes. */
#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/file.h"
#include "store/store_impl.h"

int store_digest_parse(const char *digest, char hex[65], struct err *e)
{
    if (!digest || strncmp(digest, "sha256", 6) != 0 || (digest[6] != ':' && digest[6] != '-') ||
        strlen(digest) != 71)
        return err_set(e, ERR_INVALID, "invalid digest format '%s' (want sha256:<64 hex digits>)",
                       digest ? digest : "");
    for (int i = 0; i < 64; i++) {
        char c = digest[7 + i];
        if (c >= 'A' && c <= 'F')
            c = (char)(c - 'A' + 'a');
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')))
            return err_set(e, ERR_INVALID, "invalid digest format '%s' (want sha256:<64 hex digits>)", digest);
        hex[i] = c;
    }
    hex[64] = '\0';
    return 0;
}

int store_blob_path(struct store *s, const char *digest, char **path, struct err *e)
{
    char hex[65];
    int rc = store_digest_parse(digest, hex, e);
    if (rc)
        return rc;
    size_t cap = strlen(s->blobs) + 80;
    *path = malloc(cap);
    if (!*path)
        return err_set(e, ERR_NOMEM, "out of memory");
    snprintf(*path, cap, "%s/sha256-%s", s->blobs, hex);
    return 0;
}

bool store_blob_exists(struct store *s, const char *digest)
{
    char *p = NULL;
    struct err e;
    if (store_blob_path(s, digest, &p, &e))
        return false;
    struct stat st;
    bool ok = stat(p, &st) == 0 && S_ISREG(st.st_mode);
    free(p);
    return ok;
}

static void to_hex(const unsigned char *md, char hex[65])
{
    static const char digits[] = "0123456789abcdef";
    for (int i = 0; i < 32; i++) {
        hex[2 * i] = digits[md[i] >> 4];
        hex[2 * i + 1] = digits[md[i] & 15];
    }
    hex[64] = '\0';
}

struct store_blob_writer {
    struct store *store;
    EVP_MD_CTX *md;
    FILE *fp;
    char *tmp;
};

static atomic_uint tmp_counter;

int store_blob_writer_open(struct store *s, struct store_blob_writer **out, struct err *e)
{
    *out = NULL;
    struct store_blob_writer *w = calloc(1, sizeof *w);
    if (!w)
        return err_set(e, ERR_NOMEM, "out of memory");
    w->store = s;
    size_t cap = strlen(s->blobs) + 64;
    w->tmp = malloc(cap);
    w->md = EVP_MD_CTX_new();
    if (!w->tmp || !w->md || !EVP_DigestInit_ex(w->md, EVP_sha256(), NULL)) {
        store_blob_writer_abort(w);
        return err_set(e, ERR_NOMEM, "out of memory starting a sha256 hash");
    }
    /* The name ends in "-partial" so a pruning pass recognises it as in flight, never as a blob. */
    snprintf(w->tmp, cap, "%s/sha256-tmp%ld-%u-partial", s->blobs, (long)getpid(),
             atomic_fetch_add(&tmp_counter, 1u));
    int fd = open(w->tmp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0 || !(w->fp = fdopen(fd, "wb"))) {
        int rc = err_set(e, ERR_IO, "cannot create %s: %s", w->tmp, strerror(errno));
        if (fd >= 0)
            close(fd);
        free(w->tmp);
        w->tmp = NULL;
        store_blob_writer_abort(w);
        return rc;
    }
    *out = w;
    return 0;
}

int store_blob_writer_write(struct store_blob_writer *w, const void *data, size_t size, struct err *e)
{
    if (size == 0)
        return 0;
    if (fwrite(data, 1, size, w->fp) != size)
        return err_set(e, ERR_IO, "cannot write %s: %s", w->tmp, strerror(errno));
    EVP_DigestUpdate(w->md, data, size);
    return 0;
}

int store_blob_writer_finish(struct store_blob_writer *w, const char *expected, char out_digest[72],
                             struct err *e)
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned mdlen = 0;
    char hex[65], want[65];
    int rc = 0;
    EVP_DigestFinal_ex(w->md, md, &mdlen);
    to_hex(md, hex);
    if (fflush(w->fp) != 0 || fsync(fileno(w->fp)) != 0) {
        rc = err_set(e, ERR_IO, "cannot write %s: %s", w->tmp, strerror(errno));
        goto done;
    }
    if (expected) {
        if ((rc = store_digest_parse(expected, want, e)))
            goto done;
        if (strcmp(want, hex) != 0) {
            rc = err_set(e, ERR_INVALID, "digest mismatch, expected \"%s\", got \"sha256:%s\"", expected, hex);
            goto done;
        }
    }
    char dig[72];
    snprintf(dig, sizeof dig, "sha256:%s", hex);
    char *path = NULL;
    if ((rc = store_blob_path(w->store, dig, &path, e)))
        goto done;
    fclose(w->fp);
    w->fp = NULL;
    if (rename(w->tmp, path) != 0)
        rc = err_set(e, ERR_IO, "cannot rename %s to %s: %s", w->tmp, path, strerror(errno));
    else {
        free(w->tmp);
        w->tmp = NULL;
    }
    free(path);
    if (!rc && out_digest)
        memcpy(out_digest, dig, 72);
done:
    store_blob_writer_abort(w);
    return rc;
}

void store_blob_writer_abort(struct store_blob_writer *w)
{
    if (!w)
        return;
    if (w->fp)
        fclose(w->fp);
    if (w->tmp) {
        unlink(w->tmp);
        free(w->tmp);
    }
    EVP_MD_CTX_free(w->md);
    free(w);
}

int store_blob_import_mem(struct store *s, const void *data, size_t size, char out_digest[72], struct err *e)
{
    struct store_blob_writer *w;
    int rc = store_blob_writer_open(s, &w, e);
    if (rc)
        return rc;
    if ((rc = store_blob_writer_write(w, data, size, e))) {
        store_blob_writer_abort(w);
        return rc;
    }
    return store_blob_writer_finish(w, NULL, out_digest, e);
}

int store_blob_import_file(struct store *s, const char *path, char out_digest[72], struct err *e)
{
    FILE *fp = fopen(path, "rb");
    if (!fp)
        return err_set(e, ERR_IO, "cannot open %s: %s", path, strerror(errno));
    struct store_blob_writer *w;
    int rc = store_blob_writer_open(s, &w, e);
    if (rc) {
        fclose(fp);
        return rc;
    }
    enum { CHUNK = 1 << 20 };
    char *buf = malloc(CHUNK);
    if (!buf) {
        rc = err_set(e, ERR_NOMEM, "out of memory");
        goto fail;
    }
    size_t n;
    while ((n = fread(buf, 1, CHUNK, fp)) > 0)
        if ((rc = store_blob_writer_write(w, buf, n, e)))
            goto fail;
    if (ferror(fp)) {
        rc = err_set(e, ERR_IO, "cannot read %s: %s", path, strerror(errno));
        goto fail;
    }
    free(buf);
    fclose(fp);
    return store_blob_writer_finish(w, NULL, out_digest, e);
fail:
    free(buf);
    fclose(fp);
    store_blob_writer_abort(w);
    return rc;
}

int store_sha256_file(const char *path, char hex[65], struct err *e)
{
    FILE *fp = fopen(path, "rb");
    if (!fp)
        return err_set(e, ERR_IO, "cannot open %s: %s", path, strerror(errno));
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    char *buf = malloc(1 << 20);
    int rc = 0;
    if (!md || !buf || !EVP_DigestInit_ex(md, EVP_sha256(), NULL)) {
        rc = err_set(e, ERR_NOMEM, "out of memory");
        goto done;
    }
    size_t n;
    while ((n = fread(buf, 1, 1 << 20, fp)) > 0)
        EVP_DigestUpdate(md, buf, n);
    if (ferror(fp)) {
        rc = err_set(e, ERR_IO, "cannot read %s: %s", path, strerror(errno));
        goto done;
    }
    unsigned char out[EVP_MAX_MD_SIZE];
    unsigned len;
    EVP_DigestFinal_ex(md, out, &len);
    to_hex(out, hex);
done:
    EVP_MD_CTX_free(md);
    free(buf);
    fclose(fp);
    return rc;
}

int store_blob_read(struct store *s, const char *digest, char **text, size_t *size, struct err *e)
{
    char *p = NULL;
    int rc = store_blob_path(s, digest, &p, e);
    if (rc)
        return rc;
    rc = file_read_all(p, text, size, e);
    free(p);
    return rc;
}
