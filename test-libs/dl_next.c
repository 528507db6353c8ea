/* libdl_next.so - lookups with RTLD_NEXT from a library the drop-in
 * loaded (tests/preload.rs, case `next` of dl_host): what follows it is
 * searched, and a miss names this library (the caller), as glibc's
 * message does. */
#define _GNU_SOURCE
#include <dlfcn.h>

/* dlsym(RTLD_NEXT, "puts"): libc's puts. */
void *dl_next_puts(void)
{
    return dlsym(RTLD_NEXT, "puts");
}

/* dlvsym(RTLD_NEXT, "puts", version). */
void *dl_next_vputs(const char *version)
{
    return dlvsym(RTLD_NEXT, "puts", version);
}

/* dlsym(RTLD_NEXT) of a name nobody defines. */
void *dl_next_missing(void)
{
    return dlsym(RTLD_NEXT, "dl_next_nobody_defines_this");
}
