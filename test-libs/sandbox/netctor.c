/* A constructor that opens a socket: refused during the load (SIGSYS). */
#include <stddef.h>
#include <sys/socket.h>
__attribute__((constructor)) static void init(void) { socket(AF_INET, SOCK_STREAM, 0); }
ptrdiff_t run(const unsigned char *in, size_t n, unsigned char *out, size_t cap) {
    (void)in; (void)n; (void)out; (void)cap;
    return 0;
}
