/* Hole 6: stderr is unbounded. `flood` writes 1 GiB to fd 2 (write to
   fd 2 is on the serving allow-list), stopping at the first error; it
   returns the number of bytes written, as text. */
#include <stdio.h>
#include "attack.h"

ptrdiff_t flood(const unsigned char *in, size_t n, unsigned char *out, size_t cap) {
    (void)in; (void)n;
    static char chunk[1 << 20];
    memset(chunk, 'A', sizeof chunk);
    chunk[sizeof chunk - 1] = '\n';
    long long total = 0;
    for (int i = 0; i < 1024; i++) {
        ssize_t w = write(2, chunk, sizeof chunk);
        if (w <= 0) break;
        total += w;
    }
    return snprintf((char *)out, cap, "%lld", total);
}
