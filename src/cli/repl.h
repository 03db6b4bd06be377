/* repl.h — `hearth run NAME` through a running server: one streamed /api/generate for a prompt, or
 * the interactive chat (libedit line editing, history, slash commands) over /api/chat, as Ollama's
 * CLI does. cmd_run.c parses the flags into a struct run_config and hands over here. */
#ifndef HEARTH_CLI_REPL_H
#define HEARTH_CLI_REPL_H

#include <stdbool.h>

#include <jansson.h>

struct run_config {
    const char *model;
    json_t *options;         /* Ollama options from the flags (owned; an object) */
    json_t *format;          /* NULL, the string "json", or a JSON Schema object (owned) */
    int think;               /* -1 not set, 0 off, 1 on */
    const char *think_level; /* "low"/"medium"/"high" or NULL */
    bool hide_thinking;
    const char *keep_alive;  /* a duration string or NULL */
    bool verbose;
};

void run_config_init(struct run_config *c);
void run_config_free(struct run_config *c);

/* Parses a --format value: "json", an inline JSON Schema, or @FILE holding one. Prints the problem
 * to stderr and returns nonzero when it is none of these. */
int run_parse_format(const char *v, json_t **out);

/* Standard input up to EOF, malloc'd and NUL-terminated (NULL when out of memory). */
char *run_read_stdin(void);

/* Runs c->model through the server at HEARTH_HOST, starting `hearth serve` when none answers:
 * with a prompt (or standard input that is not a terminal) one completion, else the REPL.
 * self_name is argv[0] of the run command (the executable is found through /proc/self/exe).
 * Returns the process exit status. */
int run_remote(struct run_config *c, const char *prompt, const char *self_name);

#endif
