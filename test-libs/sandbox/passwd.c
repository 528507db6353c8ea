/* Tries to read /etc/passwd: fopen → openat(AT_FDCWD, "/etc/passwd", O_RDONLY). */
#include <stddef.h>
#include <stdio.h>
#include <string.h>
ptrdiff_t run(const unsigned char *in, size_t n, unsigned char *out, size_t cap) {
    (void)in; (void)n;
    FILE *f = fopen("/etc/passwd", "r");
    if (!f) return -1;
    size_t got = fread(out, 1, cap, f);
    fclose(f);
    return (ptrdiff_t)got;
}
