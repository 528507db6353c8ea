/* libplugin_uses_libm.so - a plugin with DT_NEEDED libm.so.6, which a
 * namespace takes from the host or from beside the host's libc.
 *   plugin_cos(x) == cos(x) */
#include <math.h>

double plugin_cos(double x)
{
    return cos(x);
}
