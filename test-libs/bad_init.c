/* libbad_init.so - an init function that cannot be run: its .init_array
 * holds an address (0x1000) outside the library's code, beside a real
 * constructor and a dependency (libbad_init_dep.so) with one. minld checks
 * every init function before running any, so the load fails with none of
 * them run; glibc would jump to 0x1000 and crash. */
#include <stdlib.h>

__attribute__((constructor)) static void bad_init_ctor(void)
{
    setenv("MINLD_BAD_INIT_RAN", "libbad_init", 1);
}

__attribute__((used, section(".init_array"))) static void *bad_entry = (void *)0x1000;

int bad_init_value(void)
{
    return 1;
}
