/* Crashes: writes through a null pointer. */
#include <stddef.h>
ptrdiff_t run(const unsigned char *in, size_t n, unsigned char *out, size_t cap) {
    (void)in; (void)n; (void)out; (void)cap;
    volatile int *p = (volatile int *)(size_t)n; /* n is 0: a null pointer the compiler cannot see */
    *p = 1;
    return 0;
}
