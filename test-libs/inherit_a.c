/* libinherit_a.so (DT_RPATH $ORIGIN/inherit) and libinherit_r.so (the same
 * source with DT_RUNPATH $ORIGIN/inherit) - need inherit/libinherit_b.so.
 * Through libinherit_a.so, libinherit_b.so's own dependency is found by
 * the RPATH it inherits; a RUNPATH is not inherited, so libinherit_r.so
 * fails to load (under glibc as under minld). inherit_a() == 700 + 77. */
int inherit_b(void);

int inherit_a(void)
{
    return 700 + inherit_b();
}
