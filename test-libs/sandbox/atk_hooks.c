/* Every way an ELF shared object can have code run for it at load, each
   recording whether it ran before the runner's lock-down: an ifunc
   resolver called for a PLT slot, one called for a data pointer (a
   relocation whose value is the resolver's answer), DT_INIT (-Wl,-init),
   a prioritised and a plain
   .init_array entry. The probe: the runner's control pipe (descriptor 4)
   is open until the lock-down and closed before any plugin code may run,
   so fstat(4) succeeding means "before". (No granted descriptors: nothing
   else is ever at 4 before the plugin opens a file.) `report` answers
   "name=after name=before ..." for each hook that ran, "name=never" for
   the others. */
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

enum { NEVER, AFTER, BEFORE };
enum { IFUNC_PLT, IFUNC_DATA, DT_INIT, INIT_PRIO, INIT_ARRAY, NHOOKS };
static const char *const names[NHOOKS] = {"ifunc_plt", "ifunc_data", "dt_init",
                                          "init_prio", "init_array"};
static int seen[NHOOKS];
static __thread char tls_mark[8] = "tls-ok";

static void probe(int hook) {
    struct stat st;
    int before = fstat(4, &st) == 0;
    if (seen[hook] != BEFORE) seen[hook] = before ? BEFORE : AFTER;
}

static int answer(void) { return 42; }

/* Called through the PLT from `report` (a global ifunc: a JUMP_SLOT). */
static int (*resolve_plt(void))(void) {
    probe(IFUNC_PLT);
    return answer;
}
int hooked_plt(void) __attribute__((ifunc("resolve_plt")));

/* Its address stored in data: the relocation's value is what the
   resolver returns, so a loader must call it to relocate. */
static int (*resolve_data(void))(void) {
    probe(IFUNC_DATA);
    return answer;
}
int hooked_data(void) __attribute__((ifunc("resolve_data")));
int (*const hooked_ptr)(void) = hooked_data;

void atk_dt_init(void) { probe(DT_INIT); }

__attribute__((constructor(101))) static void first(void) { probe(INIT_PRIO); }
__attribute__((constructor)) static void plain(void) { probe(INIT_ARRAY); }

ptrdiff_t report(const unsigned char *in, size_t n, unsigned char *out, size_t cap) {
    (void)in; (void)n;
    char buf[512];
    size_t len = 0;
    int calls = hooked_plt() + hooked_ptr();
    for (int i = 0; i < NHOOKS; i++) {
        const char *s = seen[i] == BEFORE ? "before" : seen[i] == AFTER ? "after" : "never";
        len += (size_t)snprintf(buf + len, sizeof buf - len, "%s=%s ", names[i], s);
    }
    len += (size_t)snprintf(buf + len, sizeof buf - len, "calls=%d %s", calls, tls_mark);
    if (len > cap) len = cap;
    memcpy(out, buf, len);
    return (ptrdiff_t)len;
}
