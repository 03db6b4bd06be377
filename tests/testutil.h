/* testutil.h — helpers shared by the unit tests: where the reference data lives, reading it,
 * and cmocka includes in the order cmocka needs. */
#ifndef HEARTH_TESTUTIL_H
#define HEARTH_TESTUTIL_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

/* Path of a file in ../shared (HEARTH_SHARED), written to a static buffer; NULL if absent. */
const char *tu_shared(const char *rel);
/* Path of an unpacked .xz file from ../shared (HEARTH_TESTDATA), rel without ".xz"; NULL if absent. */
const char *tu_testdata(const char *rel);
/* Reads a whole file (NUL-terminated); fails the test if it cannot. */
char *tu_read(const char *path, size_t *size);
/* The tokenizer of a GGUF file (closed again: the tokenizer must own its strings); fails the test
 * naming the file and the step when it cannot be built. Free it with tokenizer_free. */
struct tokenizer;
struct tokenizer *tu_load_tokenizer(const char *path);
/* A fresh temporary directory for this test process (removed at exit). */
const char *tu_tmpdir(void);
/* Skips the current test with a message when path is NULL. */
#define TU_REQUIRE(path)                                                                           \
    do {                                                                                           \
        if (!(path)) {                                                                             \
            print_message("reference data not present: skipping\n");                              \
            skip();                                                                                \
        }                                                                                          \
    } while (0)

#endif
