/* fault/libfault_c.so - third library of a chain, with a reference to a
 * function nothing defines (shared objects may have undefined symbols;
 * the loader must find out): loading libfault_a.so fails on it, after
 * libfault_a, libfault_b and libfault_c and libbasic were mapped. Its
 * constructor records that it ran; it must not run. */
#include <stdlib.h>

extern int fault_nowhere(void);

int fault_c(void)
{
    return fault_nowhere() + 1;
}

__attribute__((constructor)) static void fault_c_ctor(void)
{
    setenv("MINLD_FAULT_CTOR_RAN", "libfault_c", 1);
}
