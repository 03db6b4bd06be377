/* client.h — the CLI's HTTP client for a running `hearth serve` (libcurl): the server address from
 * HEARTH_HOST, JSON requests, NDJSON streams, and starting a server in the background on demand. */
#ifndef HEARTH_CLI_CLIENT_H
#define HEARTH_CLI_CLIENT_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "base/err.h"

/* "http://host:port" from HEARTH_HOST (default 127.0.0.1:11434; 0.0.0.0 is reached as 127.0.0.1). */
void client_base_url(char *buf, size_t cap);

/* True if a server answers GET / there. */
int client_ping(void);

/* Makes sure a server answers: if none does, starts `hearth serve` detached (its log goes to
 * $TMPDIR/hearth-serve-<uid>.log) and waits up to 15 s for it. ERR_IO naming the address otherwise. */
int client_ensure_server(const char *self_exe, struct err *e);

/* One request with an optional JSON body. *status gets the HTTP status; *out (may be NULL) the
 * parsed JSON reply or NULL when the reply is empty or not JSON. A reply >= 400 with an "error"
 * field fails with its message (ERR_NOTFOUND for 404, ERR_INVALID for other 4xx, ERR_IO for 5xx).
 * Transport failures are ERR_IO naming the address. */
int client_call(const char *method, const char *path, const json_t *body, long *status, json_t **out,
                struct err *e);

/* POSTs body and calls on_obj for each NDJSON object of the reply as it arrives; a nonzero return
 * from on_obj aborts the transfer (returns that value). An {"error": ...} object fails like above. */
typedef int (*client_obj_fn)(void *user, json_t *obj);
int client_stream(const char *path, const json_t *body, client_obj_fn on_obj, void *user, struct err *e);

/* While *flag is nonzero, client_stream aborts its transfer and fails with CLIENT_CANCELLED (for
 * Ctrl-C in the REPL). NULL turns this off. */
#define CLIENT_CANCELLED (-200)
void client_set_cancel(volatile sig_atomic_t *flag);

/* client_ensure_server with this very binary (/proc/self/exe) as the server to start. */
int client_connect(struct err *e);

/* Uploads a file as the blob digest ("sha256:<hex>") with POST /api/blobs/:digest, unless
 * HEAD says the server has it already. progress (may be NULL) sees the bytes sent so far. */
typedef void (*client_upload_fn)(void *user, uint64_t sent, uint64_t total);
int client_upload_blob(const char *path, const char *digest, client_upload_fn progress, void *user,
                       struct err *e);

/* Renders Ollama's progress objects ({"status"} or {"status","digest","total","completed"}) on
 * stderr: one live bar per layer on a terminal, plain lines (every quarter) otherwise. */
struct client_bar {
    bool tty;
    char status[96];
    char digest[80];
    double start, last;
    uint64_t total, completed;
    int last_pct;
};
void client_bar_init(struct client_bar *b);
void client_bar_update(struct client_bar *b, const char *status, const char *digest, uint64_t total,
                       uint64_t completed);
/* client_stream callback: feeds each object to the bar passed as user. */
int client_bar_obj(void *user, json_t *obj);

#endif
