/* Everyday libc calls an ordinary plugin makes, one per call (the input's
   first byte): 'q' qsort of 100000 ints (glibc asks sysinfo for the memory
   size), 'o' sysconf(_SC_OPEN_MAX) (prlimit64 reading), 'u' uname, 'i'
   getuid, 'g' getcwd, 'r' getrusage, 's' setrlimit (must stay refused).
   Answers the result as text. */
#define _GNU_SOURCE
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/utsname.h>
#include <unistd.h>

static int cmp(const void *a, const void *b) { return *(const int *)a - *(const int *)b; }

ptrdiff_t op(const unsigned char *in, size_t n, unsigned char *out, size_t cap) {
    static int a[100000];
    char buf[512];
    long r = -1;
    if (n < 1) return -22;
    switch (in[0]) {
    case 'q':
        for (int i = 0; i < 100000; i++) a[i] = 100000 - i;
        qsort(a, 100000, sizeof a[0], cmp);
        r = a[0];
        break;
    case 'o': r = sysconf(_SC_OPEN_MAX) > 0; break;
    case 'u': { struct utsname u; r = uname(&u) == 0 && u.sysname[0] == 'L'; break; }
    case 'i': r = getuid() == geteuid(); break;
    case 'g': r = getcwd(buf, sizeof buf) != NULL; break;
    case 'r': { struct rusage ru; r = getrusage(RUSAGE_SELF, &ru) == 0; break; }
    case 's': { struct rlimit rl = {1 << 20, 1 << 20}; r = setrlimit(RLIMIT_AS, &rl); break; }
    }
    return snprintf((char *)out, cap, "%ld", r);
}
