/* An ordinary plugin, as a sandbox should let it be: it reads a file the
   host granted in its constructor, reads and writes granted files on
   request, prints, runs a small thread pool, and works in place on a
   buffer it shares with the host. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

/* The constructor's file: the test grants its directory. */
#define CONFIG "/tmp/minld-sandbox-grant/config.txt"

static char config[256];
static ptrdiff_t config_len = -1;

__attribute__((constructor)) static void init(void) {
    FILE *f = fopen(CONFIG, "r");
    if (!f) {
        config_len = -errno;
        return;
    }
    config_len = (ptrdiff_t)fread(config, 1, sizeof config, f);
    fclose(f);
}

static ptrdiff_t give(const void *p, size_t n, unsigned char *out, size_t cap) {
    if (n > cap) n = cap;
    memcpy(out, p, n);
    return (ptrdiff_t)n;
}

/* What the constructor read (or -errno). */
ptrdiff_t config_text(const unsigned char *in, size_t n, unsigned char *out, size_t cap) {
    (void)in; (void)n;
    return config_len < 0 ? config_len : give(config, (size_t)config_len, out, cap);
}

/* The contents of the file named by the input. */
ptrdiff_t cat(const unsigned char *in, size_t n, unsigned char *out, size_t cap) {
    char path[512];
    if (n >= sizeof path) return -ENAMETOOLONG;
    memcpy(path, in, n);
    path[n] = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return -errno;
    ssize_t got = read(fd, out, cap);
    close(fd);
    return got < 0 ? -errno : got;
}

/* Input "path\0data": writes data to path (created or truncated). */
ptrdiff_t save(const unsigned char *in, size_t n, unsigned char *out, size_t cap) {
    (void)out; (void)cap;
    size_t plen = strnlen((const char *)in, n);
    if (plen == n) return -EINVAL;
    int fd = open((const char *)in, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) return -errno;
    ssize_t w = write(fd, in + plen + 1, n - plen - 1);
    close(fd);
    return w < 0 ? -errno : 0;
}

/* Four threads each sum a quarter of 1..=1,000,000; returns the total as
   text, and how many threads ran, as "sum threads". */
struct part { long from, to, sum; };
static void *work(void *arg) {
    struct part *p = arg;
    for (long i = p->from; i <= p->to; i++) p->sum += i;
    return NULL;
}
ptrdiff_t pool(const unsigned char *in, size_t n, unsigned char *out, size_t cap) {
    (void)in; (void)n;
    pthread_t t[4];
    struct part parts[4];
    int started = 0;
    for (int i = 0; i < 4; i++) {
        parts[i] = (struct part){i * 250000L + 1, (i + 1) * 250000L, 0};
        if (pthread_create(&t[i], NULL, work, &parts[i]) == 0) started++;
        else return -EAGAIN;
    }
    long total = 0;
    for (int i = 0; i < started; i++) {
        pthread_join(t[i], NULL);
        total += parts[i].sum;
    }
    char text[64];
    int len = snprintf(text, sizeof text, "%ld %d", total, started);
    return give(text, (size_t)len, out, cap);
}

/* Prints its input as a line on stdout and a note on stderr. */
ptrdiff_t print(const unsigned char *in, size_t n, unsigned char *out, size_t cap) {
    (void)out; (void)cap;
    printf("%.*s\n", (int)n, (const char *)in);
    fprintf(stderr, "printed %zu bytes\n", n);
    return 0;
}

/* In place on a shared buffer: inverts the first n bytes. */
ptrdiff_t invert(const unsigned char *in, size_t n, unsigned char *out, size_t cap) {
    (void)in;
    if (n > cap) return -EINVAL;
    for (size_t i = 0; i < n; i++) out[i] = (unsigned char)~out[i];
    return (ptrdiff_t)n;
}

/* Reads the first descriptor the host passed (5), from its start. */
ptrdiff_t passed(const unsigned char *in, size_t n, unsigned char *out, size_t cap) {
    (void)in; (void)n;
    ssize_t got = pread(5, out, cap, 0);
    return got < 0 ? -errno : got;
}
