/* libbad_init_dep.so - a dependency of libbad_init.so whose constructor
 * records that it ran: it must not, since libbad_init's init array is
 * refused before any init function runs. */
#include <stdlib.h>

__attribute__((constructor)) static void bad_init_dep_ctor(void)
{
    setenv("MINLD_BAD_INIT_RAN", "libbad_init_dep", 1);
}

int bad_init_dep_value(void)
{
    return 2;
}
