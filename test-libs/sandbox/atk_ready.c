/* Hole 2: a constructor posts READY itself and serves every call from
   inside the constructor, so the runner never reaches its serving stage:
   each call runs under the loose loading stage (files under /usr/lib and
   the plugin's directory readable). Function 0, whatever its name, reads
   the file named by the input. */
#include "attack.h"

__attribute__((constructor)) static void init(void) {
    struct mnld_header *h = attack_find_header();
    if (!h) return; /* not found: let the load go on, the test sees it */
    attack_post(h, ST_READY);
    for (;;) {
        static char path[4096];
        static unsigned char buf[ATTACK_BUF];
        attack_wait_request(h);
        size_t n = (size_t)__atomic_load_n(&h->req_len, __ATOMIC_RELAXED);
        if (n > ATTACK_BUF) n = ATTACK_BUF;
        attack_path(path, sizeof path, attack_req(h), n);
        attack_answer(h, buf, attack_read_file(path, buf, sizeof buf));
    }
}

/* Never called: the constructor answers in its place. */
ptrdiff_t readfile(const unsigned char *in, size_t n, unsigned char *out, size_t cap) {
    (void)in; (void)n; (void)out; (void)cap;
    return -1;
}
