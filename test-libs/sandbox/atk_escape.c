/* Second round of attacks on the serving lock-down, one function each:
   escaping the host's accounting and watch by forking or cloning a
   process (`fork`, `vmclone`, `parentclone`, `clone3`), signalling the
   host (`kill_host`, `tgkill_host`), taking the runner's descriptors
   (`closefds`: closes and dup2s over everything but the region mapping;
   `fdbomb`: dups until EMFILE; `threadbomb`: threads until refused; `readfile`; `claim`: any length; `notify_flood`: statx for ever),
   and `stat`, the host's own stat of a path
   the plugin names: "size ino" of `in` as a path, or -errno. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <linux/sched.h>
#include <sched.h>
#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

static ptrdiff_t text(unsigned char *out, size_t cap, const char *s) {
    size_t l = strlen(s);
    if (l > cap) l = cap;
    memcpy(out, s, l);
    return (ptrdiff_t)l;
}

ptrdiff_t do_fork(const unsigned char *in, size_t n, unsigned char *out, size_t cap) {
    (void)in; (void)n;
    pid_t p = fork();
    if (p == 0) for (;;) ; /* an unaccounted spinner, if it got here */
    return text(out, cap, p < 0 ? "fork failed" : "forked");
}

/* A process sharing our memory but not our thread group: its CPU time
   would be on a clock of its own. */
static char stack[64 * 1024];
static int spin(void *arg) { (void)arg; for (;;) ; return 0; }

ptrdiff_t vmclone(const unsigned char *in, size_t n, unsigned char *out, size_t cap) {
    (void)in; (void)n;
    int p = clone(spin, stack + sizeof stack, CLONE_VM | CLONE_SIGHAND | SIGCHLD, NULL);
    return text(out, cap, p < 0 ? "clone failed" : "cloned");
}

/* A thread, but also CLONE_PARENT (a sibling of the runner, the host's
   child): refused whatever the thread flags. */
ptrdiff_t parentclone(const unsigned char *in, size_t n, unsigned char *out, size_t cap) {
    (void)in; (void)n;
    int p = clone(spin, stack + sizeof stack,
                  CLONE_VM | CLONE_SIGHAND | CLONE_THREAD | CLONE_PARENT, NULL);
    return text(out, cap, p < 0 ? "clone failed" : "cloned");
}

/* clone3 (its flags are in memory, out of a filter's reach): ENOSYS. */
ptrdiff_t do_clone3(const unsigned char *in, size_t n, unsigned char *out, size_t cap) {
    (void)in; (void)n;
    struct clone_args a;
    memset(&a, 0, sizeof a);
    a.exit_signal = SIGCHLD;
    long p = syscall(SYS_clone3, &a, sizeof a);
    if (p == 0) for (;;) ;
    char buf[64];
    snprintf(buf, sizeof buf, "%ld %d", p, p < 0 ? errno : 0);
    return text(out, cap, buf);
}

ptrdiff_t kill_host(const unsigned char *in, size_t n, unsigned char *out, size_t cap) {
    (void)in; (void)n;
    int r = kill(getppid(), SIGTERM);
    return text(out, cap, r == 0 ? "signalled" : "refused");
}

ptrdiff_t tgkill_host(const unsigned char *in, size_t n, unsigned char *out, size_t cap) {
    (void)in; (void)n;
    pid_t host = getppid();
    long r = syscall(SYS_tgkill, host, host, SIGTERM);
    return text(out, cap, r == 0 ? "signalled" : "refused");
}

/* Every descriptor closed, then /dev/null's and stdout's numbers reused
   by dup2 over 3 and 4 (where the region and control pipe were): the
   runner must keep serving through its mapping. */
ptrdiff_t closefds(const unsigned char *in, size_t n, unsigned char *out, size_t cap) {
    (void)in; (void)n;
    int dup1 = dup(1);
    for (int fd = 0; fd < 1024; fd++)
        if (fd != dup1) close(fd);
    dup2(dup1, 3);
    dup2(dup1, 4);
    dup2(dup1, 1);
    return text(out, cap, "closed");
}

ptrdiff_t fdbomb(const unsigned char *in, size_t n, unsigned char *out, size_t cap) {
    (void)in; (void)n;
    long count = 0;
    while (dup(2) >= 0) count++;
    char buf[64];
    snprintf(buf, sizeof buf, "%ld %d", count, errno);
    return text(out, cap, buf);
}

ptrdiff_t do_stat(const unsigned char *in, size_t n, unsigned char *out, size_t cap) {
    char path[4096];
    if (n >= sizeof path) n = sizeof path - 1;
    memcpy(path, in, n);
    path[n] = 0;
    struct stat st;
    char buf[96];
    if (stat(path, &st) != 0)
        snprintf(buf, sizeof buf, "-%d", errno);
    else
        snprintf(buf, sizeof buf, "%lld %llu", (long long)st.st_size, (unsigned long long)st.st_ino);
    return text(out, cap, buf);
}

/* Threads until pthread_create fails (at most 1024: without a limit this
   would take every process id of the machine), each asleep for ever on a
   16 KiB stack. Answers "made errno". */
static void *sleeper(void *arg) {
    (void)arg;
    for (;;) sleep(1000);
    return NULL;
}

ptrdiff_t threadbomb(const unsigned char *in, size_t n, unsigned char *out, size_t cap) {
    (void)in; (void)n;
    pthread_attr_t a;
    pthread_attr_init(&a);
    pthread_attr_setstacksize(&a, PTHREAD_STACK_MIN);
    int made = 0, err = 0;
    while (made < 1024) {
        pthread_t t;
        err = pthread_create(&t, &a, sleeper, NULL);
        if (err) break;
        made++;
    }
    char buf[64];
    snprintf(buf, sizeof buf, "%d %d", made, err);
    return text(out, cap, buf);
}

/* The runner's environment, "NAME=value;..." (the host's secrets, if the
   runner was started with the host's environment). */
extern char **environ;
ptrdiff_t environment(const unsigned char *in, size_t n, unsigned char *out, size_t cap) {
    (void)in; (void)n;
    size_t len = 0;
    for (char **e = environ; e && *e; e++) {
        size_t l = strlen(*e);
        if (len + l + 1 > cap) break;
        memcpy(out + len, *e, l);
        out[len + l] = ';';
        len += l + 1;
    }
    return (ptrdiff_t)len;
}

/* The file at `in` (a path), or -errno. */
ptrdiff_t readfile(const unsigned char *in, size_t n, unsigned char *out, size_t cap) {
    char path[4096];
    if (n >= sizeof path) n = sizeof path - 1;
    memcpy(path, in, n);
    path[n] = 0;
    int fd = open(path, O_RDONLY);
    if (fd < 0) return -errno;
    ssize_t got = read(fd, out, cap);
    int e = errno;
    close(fd);
    return got < 0 ? -e : got;
}

/* Claims to have written the length in the input's first 8 bytes (any
   value: huge, negative, just past the buffer), writing nothing. */
ptrdiff_t claim(const unsigned char *in, size_t n, unsigned char *out, size_t cap) {
    (void)out; (void)cap;
    int64_t v = 0;
    if (n >= sizeof v) memcpy(&v, in, sizeof v);
    return (ptrdiff_t)v;
}

/* What an ordinary plugin does with files in a read-write grant, one
   operation per call on the path in `in` (its first byte names it):
   'a' access(R_OK), 'u' unlink, 'm' mkdir, 'r' rmdir, 'n' rename to
   path + ".new", 'l' readlink. Answers "0" or "-errno". */
ptrdiff_t fileop(const unsigned char *in, size_t n, unsigned char *out, size_t cap) {
    char path[4096], to[4200];
    if (n < 1) return -22;
    n--;
    if (n >= sizeof path) n = sizeof path - 1;
    memcpy(path, in + 1, n);
    path[n] = 0;
    snprintf(to, sizeof to, "%s.new", path);
    char buf[256];
    long r;
    switch (in[0]) {
    case 'a': r = access(path, R_OK); break;
    case 'u': r = unlink(path); break;
    case 'm': r = mkdir(path, 0755); break;
    case 'r': r = rmdir(path); break;
    case 'n': r = rename(path, to); break;
    case 'l': r = readlink(path, buf, sizeof buf); if (r > 0) r = 0; break;
    default: return -22;
    }
    snprintf(buf, sizeof buf, "%ld", r < 0 ? -(long)errno : r);
    return text(out, cap, buf);
}

/* Makes the host work for ever: statx stops for the host, which answers
   ENOSYS, at little cost to the runner itself. */
ptrdiff_t notify_flood(const unsigned char *in, size_t n, unsigned char *out, size_t cap) {
    (void)in; (void)n; (void)out; (void)cap;
    for (;;) syscall(SYS_statx, AT_FDCWD, "/", 0, 0, NULL);
    return 0;
}
