/* libplugin_forbidden.so - a plugin that imports what a namespace allowing
 * only malloc and free refuses: system, getenv and fopen. */
#include <stdio.h>
#include <stdlib.h>

const unsigned plugin_abi_version = 1;

int plugin_run(int x)
{
    FILE *f = fopen("/etc/passwd", "r");
    if (getenv("MINLD_NEVER") != NULL)
        return system("true");
    if (f != NULL)
        fclose(f);
    return x;
}
