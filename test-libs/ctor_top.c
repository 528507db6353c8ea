/* libctor_top.so - needs libctor_mid.so and libctor_base.so.
 *
 * Proves:
 *   - DT_INIT (top_init, via -Wl,-init) runs before DT_INIT_ARRAY entries and
 *     DT_FINI (top_fini, via -Wl,-fini) runs after DT_FINI_ARRAY entries;
 *   - .init_array constructors receive (argc, argv, envp) like glibc passes
 *     them: records "top:args-ok" when argc > 0 && argv && argv[0] && envp,
 *     "top:args-bad" otherwise;
 *   - atexit() called from a library constructor registers a handler that
 *     runs when the library is unloaded (glibc maps atexit in a shared object
 *     to __cxa_atexit(f, NULL, __dso_handle); crtbegin's __do_global_dtors_aux
 *     calls __cxa_finalize(__dso_handle)): records "top:atexit". */
#include <stdlib.h>

void order_record(const char *event);
int ctor_mid_fn(void);

static void top_atexit(void)
{
    order_record("top:atexit");
}

void top_init(void)
{
    order_record("top:init");
}

void top_fini(void)
{
    order_record("top:fini");
}

__attribute__((constructor))
static void top_ctor(int argc, char **argv, char **envp)
{
    order_record("top:ctor");
    if (argc > 0 && argv != NULL && argv[0] != NULL && envp != NULL)
        order_record("top:args-ok");
    else
        order_record("top:args-bad");
    atexit(top_atexit);
}

__attribute__((destructor))
static void top_dtor(void)
{
    order_record("top:dtor");
}

/* Returns 1 from libctor_mid.so: keeps the DT_NEEDED meaningful. */
int ctor_top_fn(void)
{
    return ctor_mid_fn();
}
