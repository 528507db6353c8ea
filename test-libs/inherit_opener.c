/* inherit/libinherit_opener.so - no RPATH or RUNPATH of its own; dlopens
 * "libinherit_d.so" by bare name. Loaded at startup as a dependency of
 * libinherit_top.so (RPATH $ORIGIN/inherit), so glibc searches that RPATH,
 * its loader's, for what it opens. inherit_opener_open_d() == 7, or 0
 * with dlerror printed. */
#include <dlfcn.h>
#include <stdio.h>

int inherit_opener_open_d(void)
{
    void *h = dlopen("libinherit_d.so", RTLD_NOW);
    if (h == NULL) {
        printf("FAIL dlopen: %s\n", dlerror());
        return 0;
    }
    int (*f)(void) = (int (*)(void))dlsym(h, "inherit_c");
    return f == NULL ? 0 : f();
}
