/* An ordinary plugin with a constructor that computes for 300 ms of CPU
   time (a table built at load), then serves. The start is not idle time:
   the host must not stop it for the idle budget (100 ms per second). */
#include <stddef.h>
#include <string.h>
#include <time.h>

static unsigned long table;

__attribute__((constructor)) static void build(void) {
    struct timespec t0, t;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t0);
    do {
        for (int i = 0; i < 100000; i++) table = table * 6364136223846793005ul + 1;
        clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
    } while ((t.tv_sec - t0.tv_sec) * 1000000000l + (t.tv_nsec - t0.tv_nsec) < 300000000l);
}

ptrdiff_t run(const unsigned char *in, size_t n, unsigned char *out, size_t cap) {
    (void)in; (void)n;
    const char *s = table ? "ready" : "zero";
    size_t l = strlen(s);
    if (l > cap) l = cap;
    memcpy(out, s, l);
    return (ptrdiff_t)l;
}
