/* store_impl.h — what the store's files share privately: the store struct, paths and JSON helpers. */
#ifndef HEARTH_STORE_IMPL_H
#define HEARTH_STORE_IMPL_H

#include <jansson.h>

#include "store/store.h"

struct store {
    char *root;
    char *manifests; /* <root>/manifests */
    char *blobs;     /* <root>/blobs */
};

#define MT_MANIFEST "application/vnd.docker.distribution.manifest.v2+json"
#define MT_CONFIG "application/vnd.docker.container.image.v1+json"
#define MT_PREFIX "application/vnd.ollama.image."
#define MT_MODEL MT_PREFIX "model"
#define MT_TEMPLATE MT_PREFIX "template"
#define MT_PROMPT MT_PREFIX "prompt"
#define MT_SYSTEM MT_PREFIX "system"
#define MT_PARAMS MT_PREFIX "params"
#define MT_MESSAGES MT_PREFIX "messages"
#define MT_LICENSE MT_PREFIX "license"
#define MT_ADAPTER MT_PREFIX "adapter"
#define MT_PROJECTOR MT_PREFIX "projector"

/* malloc'd "a/b" (NULL when out of memory). */
char *store_join(const char *a, const char *b);
/* mkdir -p. */
int store_mkdirs(const char *path, struct err *e);

/* Finds the manifest file of a name case-insensitively. *path malloc'd; canon gets the stored casing. */
int store_find_manifest(struct store *s, const struct store_name *n, char **path, struct store_name *canon,
                        struct err *e);
/* Manifest file path for a name as given (for writing). */
char *store_manifest_path(struct store *s, const struct store_name *n);
/* Reads and parses a manifest file. */
int store_read_manifest(const char *path, json_t **out, char **raw, size_t *raw_size, struct err *e);
/* Writes manifest JSON atomically to the name's path (creating directories). */
int store_write_manifest(struct store *s, const struct store_name *n, json_t *manifest, struct err *e);
/* Every manifest's path under manifests/ (exactly four levels), malloc'd array of malloc'd strings. */
int store_manifest_paths(struct store *s, char ***paths, size_t *n, struct err *e);
/* Deletes the blobs in digests (a JSON array of "sha256:" strings) that no manifest references. */
int store_remove_unreferenced(struct store *s, json_t *digests, struct err *e);
/* All digests a manifest references (config + layers) appended to arr. */
void store_manifest_digests(json_t *manifest, json_t *arr);

/* Reads a blob as text (NUL-terminated, malloc'd). */
int store_blob_read(struct store *s, const char *digest, char **text, size_t *size, struct err *e);

#endif
