/* Behaves: the byte-buffer ABI, ptrdiff_t f(in, n, out, cap). */
#include <ctype.h>
#include <stdio.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

ptrdiff_t echo(const unsigned char *in, size_t n, unsigned char *out, size_t cap) {
    if (n > cap) return -1;
    memcpy(out, in, n);
    return (ptrdiff_t)n;
}

ptrdiff_t upper(const unsigned char *in, size_t n, unsigned char *out, size_t cap) {
    if (n > cap) return -1;
    for (size_t i = 0; i < n; i++) out[i] = (unsigned char)toupper(in[i]);
    return (ptrdiff_t)n;
}

/* malloc's paths under the filter: small blocks (brk), a big one (mmap),
   realloc of a big one (mremap), free (munmap, brk trim). */
ptrdiff_t churn(const unsigned char *in, size_t n, unsigned char *out, size_t cap) {
    (void)in; (void)n;
    size_t total = 0;
    for (int i = 0; i < 1000; i++) { char *p = malloc(64 + i); p[0] = 1; total += p[0]; free(p); }
    char *big = malloc(1 << 20); memset(big, 1, 1 << 20);
    big = realloc(big, 8 << 20); memset(big, 2, 8 << 20);
    free(big);
    char *huge = malloc((size_t)64 << 20);       /* grows the heap a lot, then gives it back */
    if (huge) { memset(huge, 3, (size_t)64 << 20); free(huge); }
    int len = 0;
    if (cap >= 16) len = (int)(sizeof "malloc ok" - 1), memcpy(out, "malloc ok", (size_t)len);
    return len + (ptrdiff_t)(total * 0);
}

/* Asks for more than RLIMIT_AS allows: malloc returns NULL, no signal. */
ptrdiff_t hog(const unsigned char *in, size_t n, unsigned char *out, size_t cap) {
    (void)in; (void)n; (void)out; (void)cap;
    void *p = malloc((size_t)4 << 30);
    return p ? 1 : -12; /* -ENOMEM */
}

ptrdiff_t fail(const unsigned char *in, size_t n, unsigned char *out, size_t cap) {
    (void)in; (void)n; (void)out; (void)cap;
    return -42;
}

ptrdiff_t lie(const unsigned char *in, size_t n, unsigned char *out, size_t cap) {
    (void)in; (void)n; (void)out;
    return (ptrdiff_t)cap + 1;
}

ptrdiff_t die(const unsigned char *in, size_t n, unsigned char *out, size_t cap) {
    (void)in; (void)n; (void)out; (void)cap;
    abort();
}

/* printf to stdout: glibc's first output on a stream asks fstat about the
   descriptor (newfstatat, refused), before any write. */
ptrdiff_t say(const unsigned char *in, size_t n, unsigned char *out, size_t cap) {
    (void)out; (void)cap;
    printf("%.*s\n", (int)n, (const char *)in);
    fflush(stdout);
    return 0;
}
