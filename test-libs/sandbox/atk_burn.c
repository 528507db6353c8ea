/* CPU burnt where the host might not charge it: the constructor, the first
   plugin code a fresh instance runs (a zygote's fork runs it straight after
   the host takes its seccomp listener), spins for ever on two threads of
   its own and the main one. The host must stop it with a CPU budget error,
   counting every thread, never letting it burn until the start timeout. */
#include <pthread.h>
#include <stddef.h>

static void *spin(void *arg) {
    volatile unsigned long *n = arg;
    for (;;) (*n)++;
    return NULL;
}

__attribute__((constructor)) static void init(void) {
    static volatile unsigned long counters[3];
    pthread_t t;
    for (int i = 0; i < 2; i++) pthread_create(&t, NULL, spin, (void *)&counters[i]);
    spin((void *)&counters[2]);
}

ptrdiff_t run(const unsigned char *in, size_t n, unsigned char *out, size_t cap) {
    (void)in; (void)n; (void)out; (void)cap;
    return 0;
}
