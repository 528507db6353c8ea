/* libplugin_good.so - a plugin that behaves: it imports only malloc, free
 * and snprintf from the host's libc, and host_log, a function the host
 * exports to its namespace; it declares its ABI version.
 *   plugin_abi_version == 1
 *   plugin_run(x)   logs "plugin_run(x)" through host_log, returns x * 2
 *   plugin_calls()  how many times plugin_run ran in this copy */
#include <stdio.h>
#include <stdlib.h>

extern void host_log(const char *msg);

const unsigned plugin_abi_version = 1;
static int calls;

int plugin_run(int x)
{
    char *buf = malloc(64);
    if (buf == NULL)
        return -1;
    snprintf(buf, 64, "plugin_run(%d)", x);
    host_log(buf);
    free(buf);
    calls++;
    return x * 2;
}

int plugin_calls(void)
{
    return calls;
}
