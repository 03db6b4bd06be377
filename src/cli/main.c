/* main.c — the hearth command line: dispatches to one file per command. */
#include <stdio.h>
#include <string.h>

int main(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    fprintf(stderr, "hearth %s\n", HEARTH_VERSION);
    return 0;
}
