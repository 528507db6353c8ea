/* Constructors run at load, under stage 1 (Landlock: read-only beneath the
   library directories and the plugin's; the loading seccomp filter). */
#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
static char report[256];
__attribute__((constructor)) static void init(void) {
    int w = open("/tmp/sandboxproto-ctor-was-here", O_WRONLY | O_CREAT | O_TRUNC, 0644);
    int we = errno;
    int r = open("/etc/passwd", O_RDONLY);
    int re = errno;
    snprintf(report, sizeof report, "constructor: write /tmp: %s; read /etc/passwd: %s",
             w >= 0 ? "allowed!" : strerror(we), r >= 0 ? "allowed!" : strerror(re));
}
ptrdiff_t run(const unsigned char *in, size_t n, unsigned char *out, size_t cap) {
    (void)in; (void)n;
    size_t l = strlen(report); if (l > cap) l = cap;
    memcpy(out, report, l);
    return (ptrdiff_t)l;
}
