/* An ordinary plugin that needs the public system files (tests/sandbox.rs),
   one call per use (the input's first byte, then an argument):
   't' localtime of the time_t given in decimal, TZ unset (glibc reads
       /etc/localtime, a link into /usr/share/zoneinfo); twice, the second
       time glibc stats the file to see whether it changed;
   'z' the same with TZ set to the rest of the input (a zone name);
   'n' sysconf(_SC_NPROCESSORS_ONLN), 'c' sysconf(_SC_NPROCESSORS_CONF);
   'l' setlocale(LC_ALL, "C.UTF-8"), then its codeset and strerror(ENOENT);
   'r' open the path given for reading: "fd" or "errno N";
   'w' open the path given for writing (must kill the runner);
   'd' open the path given as a directory, list it: entries or "errno N";
   'k' readlink of the path given: "link TARGET" or "errno N";
   'a' access of the path given for reading, then for writing: "r X w Y",
       each 0 or an errno.
   Answers text. */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <langinfo.h>
#include <locale.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* The broken-down local time of `t`, as "Y-m-d H:M:S offset zone dst". */
static int fmt_local(time_t t, char *out, size_t cap) {
    char a[128], b[128];
    struct tm *tm = localtime(&t);
    if (!tm) return snprintf(out, cap, "localtime failed: errno %d", errno);
    strftime(a, sizeof a, "%Y-%m-%d %H:%M:%S %z %Z", tm);
    int dst = tm->tm_isdst;
    tm = localtime(&t); /* again: glibc checks the file did not change */
    if (!tm) return snprintf(out, cap, "localtime failed: errno %d", errno);
    strftime(b, sizeof b, "%Y-%m-%d %H:%M:%S %z %Z", tm);
    if (strcmp(a, b) != 0) return snprintf(out, cap, "differs: %s / %s", a, b);
    return snprintf(out, cap, "%s %d", a, dst);
}

ptrdiff_t op(const unsigned char *in, size_t n, unsigned char *out, size_t cap) {
    char arg[512];
    char *o = (char *)out;
    if (n < 1 || n - 1 >= sizeof arg) return -22;
    memcpy(arg, in + 1, n - 1);
    arg[n - 1] = 0;
    switch (in[0]) {
    case 't':
        unsetenv("TZ");
        tzset();
        return fmt_local((time_t)strtoll(arg, NULL, 10), o, cap);
    case 'z': {
        char *sp = strchr(arg, ' ');
        if (!sp) return -22;
        *sp = 0;
        setenv("TZ", sp + 1, 1);
        tzset();
        return fmt_local((time_t)strtoll(arg, NULL, 10), o, cap);
    }
    case 'n': return snprintf(o, cap, "%ld", sysconf(_SC_NPROCESSORS_ONLN));
    case 'c': return snprintf(o, cap, "%ld", sysconf(_SC_NPROCESSORS_CONF));
    case 'l': {
        const char *got = setlocale(LC_ALL, "C.UTF-8");
        return snprintf(o, cap, "%s|%s|%s", got ? got : "(null)", nl_langinfo(CODESET),
                        strerror(ENOENT));
    }
    case 'r': {
        int fd = open(arg, O_RDONLY | O_CLOEXEC);
        if (fd < 0) return snprintf(o, cap, "errno %d", errno);
        char buf[8];
        ssize_t r = read(fd, buf, sizeof buf);
        close(fd);
        return snprintf(o, cap, "fd read %zd", r);
    }
    case 'w': {
        int fd = open(arg, O_RDWR);
        return snprintf(o, cap, "opened for writing: %d errno %d", fd, errno);
    }
    case 'd': {
        DIR *d = opendir(arg);
        if (!d) return snprintf(o, cap, "errno %d", errno);
        int k = 0;
        while (readdir(d)) k++;
        closedir(d);
        return snprintf(o, cap, "entries %d", k);
    }
    case 'k': {
        char buf[512];
        ssize_t r = readlink(arg, buf, sizeof buf - 1);
        if (r < 0) return snprintf(o, cap, "errno %d", errno);
        buf[r] = 0;
        return snprintf(o, cap, "link %s", buf);
    }
    case 'a': {
        int r = access(arg, R_OK) == 0 ? 0 : errno;
        int w = access(arg, W_OK) == 0 ? 0 : errno;
        return snprintf(o, cap, "r %d w %d", r, w);
    }
    }
    return -22;
}
