/* libplugin_finalize.so - a plugin that calls __cxa_finalize with any
 * handle it is given: with NULL, glibc runs every atexit handler of the
 * process (the host's included) there and then.
 *   plugin_abi_version == 1
 *   its constructor registers, with atexit (__cxa_atexit with its own dso
 *   handle), a handler that logs "plugin_finalize: own handler" through
 *   the host-exported host_log: it must run at unload, and only then
 *   plugin_finalize(dso)   calls __cxa_finalize(dso)
 *   plugin_dso_handle()    this copy's own handle, &__dso_handle */
#include <stdlib.h>

extern void host_log(const char *msg);
extern void __cxa_finalize(void *dso);
extern void *__dso_handle __attribute__((visibility("hidden")));

const unsigned plugin_abi_version = 1;

static void own_handler(void)
{
    host_log("plugin_finalize: own handler");
}

__attribute__((constructor)) static void register_own_handler(void)
{
    atexit(own_handler);
}

void plugin_finalize(void *dso)
{
    __cxa_finalize(dso);
}

void *plugin_dso_handle(void)
{
    return &__dso_handle;
}
