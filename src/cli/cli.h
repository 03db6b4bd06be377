/* cli.h — the hearth commands (one file each) and the option parsing they share. */
#ifndef HEARTH_CLI_CLI_H
#define HEARTH_CLI_CLI_H

#include <stdbool.h>
#include <stdint.h>

#include "backend/backend.h"

int cmd_run(int argc, char **argv);
int cmd_tokenize(int argc, char **argv);
int cmd_detokenize(int argc, char **argv);
int cmd_eval(int argc, char **argv);
int cmd_serve(int argc, char **argv);
int cmd_bench(int argc, char **argv);
int cmd_create(int argc, char **argv);
int cmd_show(int argc, char **argv);
int cmd_list(int argc, char **argv);
int cmd_cp(int argc, char **argv);
int cmd_rm(int argc, char **argv);
int cmd_quantize(int argc, char **argv);
int cmd_template(int argc, char **argv);
int cmd_ps(int argc, char **argv);
int cmd_stop(int argc, char **argv);
int cmd_pull(int argc, char **argv);
int cmd_push(int argc, char **argv);

/* Exit statuses: 0 ok, 1 runtime failure (bad model file, out of memory), 2 misuse (bad flags). */
enum { EXIT_RUNTIME = 1, EXIT_USAGE = 2 };

/* Strict number parsing for flag values; on failure print "hearth CMD: FLAG: ..." and return false. */
bool opt_int(const char *cmd, const char *flag, const char *s, long min, long max, long *out);
bool opt_float(const char *cmd, const char *flag, const char *s, double min, double max, double *out);
/* For "--flag value" and "--flag=value": returns the value (advancing *i) or NULL when absent. */
const char *opt_value(int argc, char **argv, int *i, const char *flag);
/* Parses "f16"/"f32"; false on anything else. */
bool opt_kv_type(const char *cmd, const char *s, enum kv_type *out);

/* Formats a duration the way Ollama prints it (Go's time.Duration: "1.234s", "56.7ms"). */
void fmt_duration(int64_t ns, char *buf, unsigned cap);
/* Formats a size the way Ollama's tables do (decimal units: "532 B", "4.7 GB", "13 GB"). */
void fmt_size(int64_t bytes, char *buf, unsigned cap);

#endif
