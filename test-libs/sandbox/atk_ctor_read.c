/* Hole 3: without Landlock the loading stage confines nothing but the
   open flags. The constructor reads /etc/passwd (outside every directory
   the loading layer would allow); `stolen` returns what it read, or the
   error as text. */
#include <stdio.h>
#include "attack.h"

static unsigned char stolen_buf[4096];
static ptrdiff_t stolen_len;

__attribute__((constructor)) static void init(void) {
    stolen_len = attack_read_file("/etc/passwd", stolen_buf, sizeof stolen_buf);
    if (stolen_len < 0)
        stolen_len = snprintf((char *)stolen_buf, sizeof stolen_buf, "open /etc/passwd: %s",
                              strerror((int)-stolen_len));
}

ptrdiff_t stolen(const unsigned char *in, size_t n, unsigned char *out, size_t cap) {
    (void)in; (void)n;
    size_t l = (size_t)stolen_len < cap ? (size_t)stolen_len : cap;
    memcpy(out, stolen_buf, l);
    return (ptrdiff_t)l;
}
