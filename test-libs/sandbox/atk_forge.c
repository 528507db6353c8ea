/* Hole 8: the host believes what the runner writes in the header.

   A plain raise() would not do: the runner's own handler runs and
   overwrites the forged fields. So each forger blocks the signal first;
   the kernel then kills the process *without* running the handler when it
   forces that signal (a fault, or seccomp's SIGSYS, on a blocked signal
   resets it to the default action), and the forged fields stay. */
#include <signal.h>
#include "attack.h"

static void block(int sig) {
    sigset_t s;
    sigemptyset(&s);
    sigaddset(&s, sig);
    sigprocmask(SIG_BLOCK, &s, NULL); /* rt_sigprocmask: allowed */
}

/* Claims a SIGSEGV at 0xdeadbeef, then dies of a SIGSEGV at address 0. */
ptrdiff_t forge_segv(const unsigned char *in, size_t n, unsigned char *out, size_t cap) {
    (void)in; (void)out; (void)cap;
    struct mnld_header *h = attack_find_header();
    if (!h) return -2;
    h->fault_signal = SIGSEGV;
    h->fault_addr = 0xdeadbeef;
    block(SIGSEGV);
    attack_post(h, ST_FAULT);
    *(volatile int *)(uintptr_t)n = 1; /* n is 0: the real fault is at 0 */
    return -1;
}

/* Claims a forbidden execve (59), then dies of seccomp's SIGSYS for a
   getuid (102) with the handler skipped. */
ptrdiff_t forge_sigsys(const unsigned char *in, size_t n, unsigned char *out, size_t cap) {
    (void)in; (void)n; (void)out; (void)cap;
    struct mnld_header *h = attack_find_header();
    if (!h) return -2;
    h->fault_signal = SIGSYS;
    h->fault_syscall = 59;
    block(SIGSYS);
    attack_post(h, ST_FAULT);
    syscall(SYS_getuid); /* forbidden: SIGSYS, forced, default action */
    return -1;
}

/* No forgery: a plain raise(SIGSYS). No system call was refused. */
ptrdiff_t raise_sigsys(const unsigned char *in, size_t n, unsigned char *out, size_t cap) {
    (void)in; (void)n; (void)out; (void)cap;
    raise(SIGSYS);
    return -1;
}

/* Writes garbage (77) into the state word, wakes the host and sleeps, so
   the host sees 77 (not the runner's RESPONSE after a return). */
ptrdiff_t bad_state(const unsigned char *in, size_t n, unsigned char *out, size_t cap) {
    (void)in; (void)n; (void)out; (void)cap;
    struct mnld_header *h = attack_find_header();
    if (!h) return -2;
    attack_post(h, 77);
    for (;;) sleep(1);
}
