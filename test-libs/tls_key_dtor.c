/* libtls_key_dtor.so - a library that creates its own pthread key after
 * its first use of thread-local storage, and whose key destructor reads
 * that storage at thread exit, through a pointer kept as the key's value
 * and directly. glibc runs key destructors in key order, so this one runs
 * after the key minld created at the process's first TLS access: minld
 * must keep the thread's blocks until the last round of destructors.
 *
 *   tls_key_dtor_use(v)  sets this thread's tls_key_value to v and the
 *                        key's value to its address.
 *   tls_key_dtor_seen()  what the last destructor saw: through the pointer
 *                        * 1000 + directly (42042 for v = 42); -1 before. */
#include <pthread.h>

static __thread int tls_key_value;
static pthread_key_t key;
static pthread_once_t once = PTHREAD_ONCE_INIT;
static volatile int seen = -1;

static void dtor(void *p)
{
    seen = *(int *)p * 1000 + tls_key_value;
}

static void make_key(void)
{
    pthread_key_create(&key, dtor);
}

void tls_key_dtor_use(int v)
{
    tls_key_value = v;
    pthread_once(&once, make_key);
    pthread_setspecific(key, &tls_key_value);
}

int tls_key_dtor_seen(void)
{
    return seen;
}
