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

/* ---- review2 attacks ---- */
#include <dirent.h>
#include <time.h>

struct flip { volatile char *buf; size_t n; const char *a, *b; volatile int stop; long spins; };
static void *flipper(void *p) {
    struct flip *f = p;
    while (!f->stop) {
        for (size_t i = 0; i < f->n; i++) if (f->a[i] != f->b[i]) f->buf[i] = f->b[i];
        for (volatile long i = 0; i < f->spins; i++) ;
        for (size_t i = 0; i < f->n; i++) if (f->a[i] != f->b[i]) f->buf[i] = f->a[i];
        for (volatile long i = 0; i < f->spins; i++) ;
    }
    return NULL;
}

static long once(char op, const char *path, char *info, size_t icap) {
    struct stat st;
    char lb[512];
    int fd;
    long r;
    info[0] = 0;
    switch (op) {
    case 'p': /* O_PATH open */
        fd = open(path, O_PATH);
        if (fd < 0) return -errno;
        if (fstat(fd, &st) == 0)
            snprintf(info, icap, "fd size=%lld ino=%llu mode=%o", (long long)st.st_size,
                     (unsigned long long)st.st_ino, st.st_mode);
        close(fd);
        return 0;
    case 'r': /* read open */
        fd = open(path, O_RDONLY);
        if (fd < 0) return -errno;
        r = read(fd, lb, 60);
        if (r > 0) { lb[r] = 0; for (long i = 0; i < r; i++) if (lb[i] == '\n') lb[i] = '|'; snprintf(info, icap, "read %s", lb); }
        close(fd);
        return 0;
    case 'a':
        return access(path, F_OK) == 0 ? 0 : -errno;
    case 'l':
        r = readlink(path, lb, sizeof lb - 1);
        if (r < 0) return -errno;
        lb[r] = 0;
        snprintf(info, icap, "link %s", lb);
        return 0;
    case 'u':
        return unlink(path) == 0 ? 0 : -errno;
    case 'm':
        return mkdir(path, 0755) == 0 ? 0 : -errno;
    }
    return -22;
}

/* in: op, then A NUL B (same length). Main thread calls op on a buffer
   holding A while a thread flips it to B. Answers the first success. */
ptrdiff_t race(const unsigned char *in, size_t n, unsigned char *out, size_t cap) {
    char op = in[0];
    const char *a = (const char *)in + 1;
    size_t la = strlen(a);
    const char *b = a + la + 1;
    static char buf[4096];
    memcpy(buf, a, la + 1);
    struct flip f = { buf, la, a, b, 0, 2000 };
    pthread_t t;
    pthread_create(&t, NULL, flipper, &f);
    char info[256], res[512];
    long tries, got = 0;
    int other = 0;
    for (tries = 0; tries < 20000; tries++) {
        got = once(op, buf, info, sizeof info);
        if (got == 0) break;
        if (got != -ENOENT && got != -EACCES) other = (int)got;
        f.spins = 500 + (tries % 4000);
    }
    f.stop = 1;
    pthread_join(t, NULL);
    snprintf(res, sizeof res, "tries=%ld rc=%ld other=%d %s", tries, got, other, info);
    (void)n;
    return text(out, cap, res);
}

/* in: op, then DIR NUL PATH. A thread mkdirs and rmdirs DIR while the
   main thread calls op on PATH. */
struct dflip { const char *dir; volatile int stop; };
static void *dirflip(void *p) {
    struct dflip *d = p;
    while (!d->stop) { mkdir(d->dir, 0755); rmdir(d->dir); }
    return NULL;
}
ptrdiff_t race_dir(const unsigned char *in, size_t n, unsigned char *out, size_t cap) {
    char op = in[0];
    const char *dir = (const char *)in + 1;
    const char *path = dir + strlen(dir) + 1;
    struct dflip d = { dir, 0 };
    pthread_t t;
    pthread_create(&t, NULL, dirflip, &d);
    char info[256], res[512];
    long tries, got = 0;
    for (tries = 0; tries < 20000; tries++) {
        got = once(op, path, info, sizeof info);
        if (got == 0) break;
    }
    d.stop = 1;
    pthread_join(t, NULL);
    rmdir(dir);
    snprintf(res, sizeof res, "tries=%ld rc=%ld %s", tries, got, info);
    (void)n;
    return text(out, cap, res);
}

/* in: mode char, then path. open with flags by mode; on success lists
   the directory or fstats. */
ptrdiff_t openls(const unsigned char *in, size_t n, unsigned char *out, size_t cap) {
    char path[4096];
    if (n < 1) return -22;
    n--;
    if (n >= sizeof path) n = sizeof path - 1;
    memcpy(path, in + 1, n);
    path[n] = 0;
    int flags;
    switch (in[0]) {
    case 'n': flags = O_RDONLY | O_DIRECTORY | O_NOFOLLOW; break;
    case 'd': flags = O_RDONLY | O_DIRECTORY; break;
    case 'p': flags = O_PATH | O_NOFOLLOW; break;
    case 'P': flags = O_PATH; break;
    case 'f': flags = O_RDONLY | O_NOFOLLOW; break;
    default: return -22;
    }
    int fd = open(path, flags);
    char res[1024];
    if (fd < 0) { snprintf(res, sizeof res, "-%d", errno); return text(out, cap, res); }
    struct stat st;
    fstat(fd, &st);
    int len = snprintf(res, sizeof res, "ok size=%lld ino=%llu mode=%o:", (long long)st.st_size,
                       (unsigned long long)st.st_ino, st.st_mode);
    char d[4096];
    long k = syscall(SYS_getdents64, fd, d, sizeof d);
    for (long o = 0; o < k && len < 900;) {
        struct dirent64 *e = (struct dirent64 *)(d + o);
        len += snprintf(res + len, sizeof res - len, " %s", e->d_name);
        o += e->d_reclen;
    }
    if (k < 0) {
        long r = read(fd, d, 40);
        if (r > 0) { d[r] = 0; len += snprintf(res + len, sizeof res - len, " read=%.40s", d); }
    }
    close(fd);
    return text(out, cap, res);
}

/* Single calls the serving filter does not list; in: code, path. */
ptrdiff_t misc(const unsigned char *in, size_t n, unsigned char *out, size_t cap) {
    char path[4096], res[256];
    if (n < 1) return -22;
    n--;
    if (n >= sizeof path) n = sizeof path - 1;
    memcpy(path, in + 1, n);
    path[n] = 0;
    long r = -1;
    switch (in[0]) {
    case '2': { struct { unsigned long long f, m, r; } how = { O_RDONLY, 0, 0 };
                r = syscall(SYS_openat2, AT_FDCWD, path, &how, sizeof how); break; }
    case 'h': { char h[256]; int mnt; ((unsigned int *)h)[0] = 128;
                r = syscall(SYS_name_to_handle_at, AT_FDCWD, path, h, &mnt, 0); break; }
    case 'H': { char h[256] = {0}; ((unsigned int *)h)[0] = 8;
                r = syscall(SYS_open_by_handle_at, AT_FDCWD, h, O_RDONLY); break; }
    case 'L': { char to[4200]; snprintf(to, sizeof to, "%s.hl", path); r = link(path, to); break; }
    case 's': { char to[4200]; snprintf(to, sizeof to, "%s.sl", path); r = symlink("/etc", to); break; }
    case 'F': r = mknod(path, S_IFIFO | 0644, 0); break;
    case 'i': r = syscall(SYS_inotify_init1, 0); break;
    case 'c': r = chdir(path); break;
    case 'C': { int fd = open(path, O_RDONLY | O_DIRECTORY); r = fchdir(fd); break; }
    case 'x': { char to[4200]; snprintf(to, sizeof to, "%s.x", path);
                r = syscall(SYS_renameat2, AT_FDCWD, path, AT_FDCWD, to, 2 /*EXCHANGE*/); break; }
    case 'w': { char to[4200]; snprintf(to, sizeof to, "%s.w", path);
                r = syscall(SYS_renameat2, AT_FDCWD, path, AT_FDCWD, to, 4 /*WHITEOUT*/); break; }
    case 't': { int fd = open(path, O_RDONLY | O_TRUNC); r = fd; break; }
    case 'T': { int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644); r = fd; break; }
    case 'X': { struct statx sx; r = syscall(SYS_statx, AT_FDCWD, path, 0, 0x7ff, &sx); break; }
    case 'k': { int fd = open(path, O_RDWR); struct flock fl = { .l_type = F_WRLCK, .l_whence = SEEK_SET };
                r = fcntl(fd, F_SETLK, &fl); break; }
    case 'U': { int fd = open(path, O_RDWR); struct timespec ts[2] = {{0, UTIME_NOW}, {0, UTIME_NOW}};
                r = futimens(fd, ts); break; }
    case 'M': { int fd = open(path, O_RDWR); r = fchmod(fd, 0600); break; }
    case 'A': { int fd = open(path, O_RDWR); r = posix_fallocate(fd, 0, 4096); if (r) { errno = r; r = -1; } break; }
    }
    snprintf(res, sizeof res, "%ld %d", r, r < 0 ? errno : 0);
    return text(out, cap, res);
}

struct fdflip { int g, z; volatile int stop; };
static void *fdflipper(void *p) {
    struct fdflip *f = p;
    while (!f->stop) {
        dup2(f->z, 50);
        for (volatile int i = 0; i < 300; i++) ;
        dup2(f->g, 50);
        for (volatile int i = 0; i < 3000; i++) ;
    }
    return NULL;
}
/* in: grant dir NUL relative path. fd 50 flips between the grant and
   the public /usr/share/zoneinfo; openat(50, path, O_PATH). */
ptrdiff_t race_fd(const unsigned char *in, size_t n, unsigned char *out, size_t cap) {
    const char *g = (const char *)in;
    const char *p = g + strlen(g) + 1;
    char res[512];
    struct fdflip f = { open(g, O_RDONLY | O_DIRECTORY), open("/usr/share/zoneinfo", O_RDONLY | O_DIRECTORY), 0 };
    if (f.g < 0 || f.z < 0) { snprintf(res, sizeof res, "open %d %d %d", f.g, f.z, errno); return text(out, cap, res); }
    dup2(f.g, 50);
    pthread_t t;
    pthread_create(&t, NULL, fdflipper, &f);
    long tries; int fd = -1, e = 0;
    for (tries = 0; tries < 20000; tries++) {
        fd = openat(50, p, O_PATH);
        if (fd >= 0) break;
        e = errno;
    }
    f.stop = 1;
    pthread_join(t, NULL);
    struct stat st = {0};
    if (fd >= 0) fstat(fd, &st);
    snprintf(res, sizeof res, "tries=%ld fd=%d errno=%d size=%lld ino=%llu", tries, fd, e,
             (long long)st.st_size, (unsigned long long)st.st_ino);
    (void)n;
    return text(out, cap, res);
}
