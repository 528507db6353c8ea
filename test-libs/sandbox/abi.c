/* System calls through the other ABIs the filter must not let through. */
#include <stddef.h>
#include <sys/mman.h>
#include <errno.h>

/* x32: the same numbers with bit 30 set (here getpid). */
ptrdiff_t x32(const unsigned char *in, size_t n, unsigned char *out, size_t cap) {
    (void)in; (void)n; (void)out; (void)cap;
    long r;
    __asm__ volatile("syscall" : "=a"(r) : "a"(0x40000000L | 39) : "rcx", "r11", "memory");
    return r;
}

/* i386 through int 0x80 (20 is getpid there, 20 is writev here). */
ptrdiff_t i386(const unsigned char *in, size_t n, unsigned char *out, size_t cap) {
    (void)in; (void)n; (void)out; (void)cap;
    long r;
    __asm__ volatile("int $0x80" : "=a"(r) : "a"(20L) : "memory");
    return r;
}

/* New executable memory: refused with EPERM, the plugin lives on. */
ptrdiff_t jit(const unsigned char *in, size_t n, unsigned char *out, size_t cap) {
    (void)in; (void)n; (void)out; (void)cap;
    void *p = mmap(NULL, 4096, PROT_READ | PROT_WRITE | PROT_EXEC, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p != MAP_FAILED) return 1;
    void *q = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (q == MAP_FAILED) return -1000;
    int rc = mprotect(q, 4096, PROT_READ | PROT_EXEC);
    return rc == 0 ? 2 : -(ptrdiff_t)errno;
}

/* Unbounded recursion: a stack overflow (SIGSEGV on the guard page; the
   runner's handler runs on its alternate stack). */
#pragma GCC diagnostic ignored "-Winfinite-recursion"
ptrdiff_t recurse(const unsigned char *in, size_t n, unsigned char *out, size_t cap) {
    volatile char pad[4096];
    pad[0] = (char)n;
    return recurse(in, n + 1, out, cap) + pad[0];
}

/* madvise: malloc's advice passes, MADV_HWPOISON (100) gets EPERM. */
ptrdiff_t advise(const unsigned char *in, size_t n, unsigned char *out, size_t cap) {
    (void)in; (void)n; (void)out; (void)cap;
    char *p = mmap(NULL, 8192, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    int ok = madvise(p, 4096, MADV_DONTNEED) == 0 && madvise(p, 4096, MADV_FREE) == 0;
    int refused = madvise(p, 4096, 100) == -1 && errno == EPERM;
    return ok && refused ? 0 : -(ok * 10 + refused + 1);
}
