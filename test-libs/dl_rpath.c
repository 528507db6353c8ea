/* dl_rpath - a program with DT_RPATH $ORIGIN/inherit (no RUNPATH) that
 * dlopens "libinherit_b.so" by bare name: glibc finds it through the
 * program's RPATH (the caller's), and its dependency libinherit_c.so
 * through the program's RPATH again (libinherit_b.so has none of its
 * own). Prints "inherit_b 77"; run by tests/preload.rs under glibc and
 * through the drop-in. */
#include <dlfcn.h>
#include <stdio.h>

int main(void)
{
    void *h = dlopen("libinherit_b.so", RTLD_NOW);
    if (h == NULL) {
        printf("FAIL dlopen: %s\n", dlerror());
        return 1;
    }
    int (*f)(void) = (int (*)(void))dlsym(h, "inherit_b");
    if (f == NULL) {
        printf("FAIL dlsym: %s\n", dlerror());
        return 1;
    }
    printf("inherit_b %d\n", f());
    return dlclose(h) == 0 ? 0 : 1;
}
