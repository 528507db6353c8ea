/* Never returns. */
#include <stddef.h>
ptrdiff_t run(const unsigned char *in, size_t n, unsigned char *out, size_t cap) {
    (void)in; (void)n; (void)out; (void)cap;
    for (volatile unsigned long i = 0;; i++) {}
    return 0;
}
