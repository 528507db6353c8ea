/* Hole 7: what the loading stage leaves stays usable while serving.
   The constructor (loading stage: PROT_EXEC and openat allowed) maps a
   read-write-execute page and opens /usr/lib/os-release; it keeps both.
   `jit` writes code into the page during a call and runs it; `mapfd`
   maps the descriptor (mmap without PROT_EXEC is allowed when serving)
   and returns the file's contents. */
#include <stdio.h>
#include <sys/mman.h>
#include "attack.h"

static unsigned char *rwx = MAP_FAILED;
static int fd = -1;

__attribute__((constructor)) static void init(void) {
    rwx = mmap(NULL, 4096, PROT_READ | PROT_WRITE | PROT_EXEC, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    fd = open("/usr/lib/os-release", O_RDONLY);
}

/* "jit ran: 42" if code written during the call ran. */
ptrdiff_t jit(const unsigned char *in, size_t n, unsigned char *out, size_t cap) {
    (void)in; (void)n;
    if (rwx == MAP_FAILED) return -1;
    static const unsigned char code[] = {0xb8, 42, 0, 0, 0, 0xc3}; /* mov eax, 42; ret */
    memcpy(rwx, code, sizeof code);
    int (*f)(void) = (int (*)(void))(void *)rwx;
    int r = f();
    return snprintf((char *)out, cap, "jit ran: %d", r);
}

ptrdiff_t mapfd(const unsigned char *in, size_t n, unsigned char *out, size_t cap) {
    (void)in; (void)n;
    if (fd < 0) return -1;
    void *p = mmap(NULL, 4096, PROT_READ, MAP_PRIVATE, fd, 0);
    if (p == MAP_FAILED) return -2;
    size_t l = strnlen(p, 4096);
    if (l > cap) l = cap;
    memcpy(out, p, l);
    munmap(p, 4096);
    return (ptrdiff_t)l;
}
