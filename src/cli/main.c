/* main.c — the hearth command line: one binary, one file per command. */
#include <stdio.h>
#include <string.h>

#include "backend/backend.h"
#include "cli/cli.h"

struct command {
    const char *name;
    int (*fn)(int argc, char **argv);
    const char *help;
};

static const struct command commands[] = {
    {"run", cmd_run, "Generate text from a model"},
    {"tokenize", cmd_tokenize, "Print the token ids of a text"},
    {"detokenize", cmd_detokenize, "Print the text of token ids"},
    {"eval", cmd_eval, "Evaluate token ids and write their logits"},
    {"serve", cmd_serve, "Serve Ollama's and OpenAI's HTTP APIs"},
    {"bench", cmd_bench, "Measure prefill/decode speed and the memory-bandwidth roofline"},
    {"create", cmd_create, "Create a model in the store from a Modelfile"},
    {"show", cmd_show, "Show information about a stored model"},
    {"list", cmd_list, "List the models in the store"},
    {"ls", cmd_list, "Same as list"},
    {"cp", cmd_cp, "Copy a model in the store"},
    {"rm", cmd_rm, "Remove models from the store"},
    {"quantize", cmd_quantize, "Quantize a GGUF model file"},
    {"template", cmd_template, "Print the prompt a chat template makes of a conversation"},
    {"ps", cmd_ps, "List the models a running server has loaded"},
    {"stop", cmd_stop, "Unload a running model from the server"},
    {"pull", cmd_pull, "Download a model from a registry"},
    {"push", cmd_push, "Upload a model to a registry"},
};

static void usage(FILE *fp)
{
    fprintf(fp, "hearth %s — run open language models locally\n\nusage: hearth COMMAND [args]\n\ncommands:\n",
            HEARTH_VERSION);
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        fprintf(fp, "  %-12s %s\n", commands[i].name, commands[i].help);
    fprintf(fp, "\nRun 'hearth COMMAND --help' for a command's flags.\n");
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return EXIT_USAGE;
    }
    if (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "help") == 0) {
        usage(stdout);
        return 0;
    }
    if (strcmp(argv[1], "-v") == 0 || strcmp(argv[1], "--version") == 0 || strcmp(argv[1], "version") == 0) {
        printf("hearth version %s (cpu: %s)\n", HEARTH_VERSION, backend_cpu_isa());
        return 0;
    }
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (strcmp(argv[1], commands[i].name) == 0)
            return commands[i].fn(argc - 1, argv + 1);
    fprintf(stderr, "hearth: unknown command '%s'\n", argv[1]);
    usage(stderr);
    return EXIT_USAGE;
}
