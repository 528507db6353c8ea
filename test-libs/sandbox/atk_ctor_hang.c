/* Hole 8: a constructor that never returns (it sleeps, so as not to burn
   a CPU; a spinning one is the same to the host). The host must report a
   start timeout, not a call timeout. */
#include <stddef.h>
#include <unistd.h>

__attribute__((constructor)) static void init(void) {
    for (;;) sleep(1);
}

ptrdiff_t run(const unsigned char *in, size_t n, unsigned char *out, size_t cap) {
    (void)in; (void)n; (void)out; (void)cap;
    return 0;
}
