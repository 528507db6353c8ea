/* Shared by the attack plugins of tests/sandbox_attacks.rs (issue 11):
   the runner's shared header as a plugin sees it, and how a plugin finds
   it without being told where it is.

   The region is one memfd mapping (header page, request buffer, response
   buffer) at an address the kernel chose. The plugin finds it by probing
   page starts near its own code with FUTEX_WAIT and a zero timeout: the
   kernel reads the word itself and answers EFAULT for an unmapped or
   unreadable page (no signal, so PROT_NONE gaps are harmless), EAGAIN for
   a word that differs from the magic, ETIMEDOUT for the magic. futex is
   allowed by both of today's filters. */
#ifndef MINLD_ATTACK_H
#define MINLD_ATTACK_H

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/futex.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define MNLD_MAGIC 0x6d6e6c64u
#define HEADER_PAGE 4096
/* The tests that answer through the buffers spawn with
   .buffers(ATTACK_BUF, ATTACK_BUF) (ATTACK_BUF in the Rust file): the
   response buffer is at HEADER_PAGE + ATTACK_BUF. */
#define ATTACK_BUF (1 << 16)

enum { ST_BOOT, ST_READY, ST_LOAD_FAILED, ST_REQUEST, ST_RESPONSE, ST_FAULT };

/* The first fields of the header (loader/sandbox/shm.rs). */
struct mnld_header {
    uint32_t magic;
    uint32_t state; /* the futex word */
    uint32_t sleepers;
    uint32_t func;
    uint32_t fault_signal;
    uint32_t pad;
    int64_t fault_syscall;
    uint64_t fault_addr;
    uint64_t req_len;
    int64_t resp_len;
};
_Static_assert(offsetof(struct mnld_header, fault_syscall) == 24, "layout");
_Static_assert(offsetof(struct mnld_header, resp_len) == 48, "layout");

static inline long attack_futex(uint32_t *word, int op, uint32_t val, const struct timespec *ts) {
    return syscall(SYS_futex, word, op, val, ts, NULL, 0);
}

/* Does the page at p start with the header's magic (and a valid state)? */
static inline int attack_is_header(uintptr_t p) {
    const struct timespec zero = {0, 0};
    if (attack_futex((uint32_t *)p, FUTEX_WAIT, MNLD_MAGIC, &zero) == 0 || errno != ETIMEDOUT)
        return 0;
    /* The page is readable now (the kernel just read it). */
    return ((volatile struct mnld_header *)p)->state <= ST_FAULT;
}

/* The header: the nearest page start, above or below this code, that
   holds the magic; at most 4 GiB either way. NULL if none. */
static inline struct mnld_header *attack_find_header(void) {
    uintptr_t here = (uintptr_t)&attack_find_header & ~(uintptr_t)(HEADER_PAGE - 1);
    for (uintptr_t off = 0; off < ((uintptr_t)4 << 30); off += HEADER_PAGE) {
        if (attack_is_header(here + off)) return (struct mnld_header *)(here + off);
        if (off && off <= here && attack_is_header(here - off))
            return (struct mnld_header *)(here - off);
    }
    return NULL;
}

static inline unsigned char *attack_req(struct mnld_header *h) {
    return (unsigned char *)h + HEADER_PAGE;
}

static inline unsigned char *attack_resp(struct mnld_header *h) {
    return (unsigned char *)h + HEADER_PAGE + ATTACK_BUF;
}

/* Publishes a state and wakes the host, as the runner's shm::post does. */
static inline void attack_post(struct mnld_header *h, uint32_t state) {
    __atomic_store_n(&h->state, state, __ATOMIC_SEQ_CST);
    attack_futex(&h->state, FUTEX_WAKE, INT_MAX, NULL);
}

/* Waits for the host's next REQUEST, sleeping on the futex like the
   runner (announced in `sleepers`, so the host's post wakes us). */
static inline void attack_wait_request(struct mnld_header *h) {
    const struct timespec slice = {0, 100 * 1000 * 1000};
    for (;;) {
        uint32_t s = __atomic_load_n(&h->state, __ATOMIC_SEQ_CST);
        if (s == ST_REQUEST) return;
        __atomic_add_fetch(&h->sleepers, 1, __ATOMIC_SEQ_CST);
        if (__atomic_load_n(&h->state, __ATOMIC_SEQ_CST) == s)
            attack_futex(&h->state, FUTEX_WAIT, s, &slice);
        __atomic_sub_fetch(&h->sleepers, 1, __ATOMIC_SEQ_CST);
    }
}

/* Answers the current request with `len` bytes of `data` (or an error
   code < 0 as the length), as the runner's serve loop does. */
static inline void attack_answer(struct mnld_header *h, const void *data, ptrdiff_t len) {
    if (len > 0) memcpy(attack_resp(h), data, (size_t)len);
    __atomic_store_n(&h->resp_len, (int64_t)len, __ATOMIC_RELAXED);
    attack_post(h, ST_RESPONSE);
}

/* Reads up to cap bytes of the file at `path` (NUL-terminated) into out:
   the length, or -errno. */
static inline ptrdiff_t attack_read_file(const char *path, unsigned char *out, size_t cap) {
    int fd = open(path, O_RDONLY);
    if (fd < 0) return -errno;
    ssize_t got = read(fd, out, cap);
    int e = errno;
    close(fd);
    return got < 0 ? -e : got;
}

/* The request's input as a NUL-terminated path (truncated to fit). */
static inline void attack_path(char *dst, size_t dstcap, const unsigned char *in, size_t n) {
    if (n >= dstcap) n = dstcap - 1;
    memcpy(dst, in, n);
    dst[n] = 0;
}

#endif
