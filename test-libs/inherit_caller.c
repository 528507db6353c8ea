/* libinherit_caller.so - DT_RPATH $ORIGIN/inherit and no dependency of its
 * own: it dlopens inherit/libinherit_b.so by path. glibc uses a caller's
 * RPATHs only to find the name it opens, not that object's dependencies
 * (a dlopen'ed object has no loader), so b's libinherit_c.so is not found
 * (tests/rpath_inherit.rs, against minld's Loader::caller). */
#include <dlfcn.h>
#include <string.h>

static char error[512];

/* 1 if dlopen(path) from this library succeeds; else 0, dlerror kept. */
int inherit_caller_open(const char *path)
{
    void *h = dlopen(path, RTLD_NOW);
    if (h == NULL) {
        strncpy(error, dlerror(), sizeof error - 1);
        return 0;
    }
    return 1;
}

const char *inherit_caller_error(void)
{
    return error;
}
