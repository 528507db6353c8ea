/* libnodeflib.so - DF_1_NODEFLIB (-z nodefaultlib) and a DT_NEEDED on
 * libz.so.1, which lives only in the system directories: glibc does not
 * search those for it (nor take /etc/ld.so.cache's entry there), so the
 * load fails under glibc as under minld. nodeflib() == 5. */
int nodeflib(void)
{
    return 5;
}
