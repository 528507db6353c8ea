/* libplugin_fake_libm.so - a plugin that imports system (which a namespace
 * allowing only malloc and free refuses) and names itself libm.so.6 in its
 * DT_SONAME, hoping to pass for glibc's libm, whose imports are glibc's own
 * business.
 *   plugin_abi_version == 1
 *   plugin_run(x)   system(NULL) (asks whether a shell exists), returns x */
#include <stdlib.h>

const unsigned plugin_abi_version = 1;

int plugin_run(int x)
{
    if (system(NULL) < 0)
        return -1;
    return x;
}
