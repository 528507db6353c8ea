/* libplugin_evil_ifunc.so - imports system (which a namespace allowing
 * only malloc and free denies) and calls it from an ifunc resolver, which
 * runs during relocation: the namespace must refuse it before relocating
 * anything, so the resolver never runs (it would set MINLD_EVIL_RAN). */
#include <stdlib.h>

const unsigned plugin_abi_version = 1;

static int impl(int x)
{
    return x;
}

static void *resolve_helper(void)
{
    setenv("MINLD_EVIL_RAN", "1", 1);
    system("true");
    return (void *)impl;
}

static int helper(int) __attribute__((ifunc("resolve_helper")));

int plugin_run(int x)
{
    return helper(x);
}
