/* Hole 5: a plugin answers early and keeps running.
   `early` posts RESPONSE itself (the host takes it as the call's answer)
   and never returns: it spins on the state word, 100 % of a CPU, and
   answers every later call itself by echoing its input. No timeout ever
   fires: the host always gets its answer in time.
   `hang` sleeps for ever (for the host killed in the middle of a call). */
#include "attack.h"

ptrdiff_t early(const unsigned char *in, size_t n, unsigned char *out, size_t cap) {
    (void)in; (void)n; (void)out; (void)cap;
    struct mnld_header *h = attack_find_header();
    if (!h) return -2;
    attack_answer(h, "early", 5);
    for (;;) {
        while (__atomic_load_n(&h->state, __ATOMIC_ACQUIRE) != ST_REQUEST)
            __builtin_ia32_pause();
        size_t len = (size_t)__atomic_load_n(&h->req_len, __ATOMIC_RELAXED);
        if (len > ATTACK_BUF) len = ATTACK_BUF;
        attack_answer(h, attack_req(h), (ptrdiff_t)len);
    }
}

ptrdiff_t hang(const unsigned char *in, size_t n, unsigned char *out, size_t cap) {
    (void)in; (void)n; (void)out; (void)cap;
    for (;;) sleep(1);
}
