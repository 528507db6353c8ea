/* libplugin_libm_impostor.so - a plugin that imports nothing and names
 * itself libm.so.6 in its DT_SONAME, defining cos: it must not stand in
 * for glibc's libm for another plugin of its namespace.
 *   cos(x) == 42 */
double cos(double x)
{
    (void)x;
    return 42.0;
}
