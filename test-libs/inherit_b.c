/* inherit/libinherit_b.so - needs libinherit_c.so and has neither DT_RPATH
 * nor DT_RUNPATH: glibc finds its dependency through the DT_RPATH of the
 * object that loaded it (and that object's loader, up the chain), then the
 * program's DT_RPATH. inherit_b() == 70 + inherit_c() == 77. */
int inherit_c(void);

int inherit_b(void)
{
    return 70 + inherit_c();
}
