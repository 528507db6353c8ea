/* libdl_nested.so - its constructor calls dlopen (of libdl_dtor.so, found
 * through this library's RUNPATH $ORIGIN, on its behalf) while the library
 * itself is being loaded: a nested open, which glibc allows.
 * dl_nested_result() is libdl_dtor.so's dl_dtor_alive() (5) when the open
 * worked, -1 otherwise; dl_nested_error() is dlerror()'s message then. */
#include <dlfcn.h>
#include <stddef.h>

static int result = -1;
static const char *error = "constructor did not run";

__attribute__((constructor)) static void dl_nested_init(void)
{
    void *h = dlopen("libdl_dtor.so", RTLD_NOW);
    if (h == NULL) {
        error = dlerror();
        return;
    }
    int (*f)(void) = (int (*)(void))dlsym(h, "dl_dtor_alive");
    error = f ? NULL : dlerror();
    result = f ? f() : -1;
}

int dl_nested_result(void)
{
    return result;
}

const char *dl_nested_error(void)
{
    return error;
}
