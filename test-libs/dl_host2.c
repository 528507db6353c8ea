/* dl_host2 - more of <dlfcn.h> and <execinfo.h> as programs use them, run
 * by tests/preload.rs under glibc and with LD_PRELOAD of minld's drop-in,
 * one case per argument; the outputs are compared (addresses aside).
 * RUNPATH $ORIGIN: bare names are found beside it.
 * - backtrace: backtrace() inside libdl_backtrace.so, printed by
 *   backtrace_symbols (one malloc'd block, freed once) and
 *   backtrace_symbols_fd (to stdout), and dladdr's symbol of each frame;
 * - serinfo DIR...: dlinfo RTLD_DI_SERINFOSIZE then RTLD_DI_SERINFO (the
 *   two-call protocol of dlinfo(3)) for libchain_a.so (RUNPATH
 *   $ORIGIN/chain) and librpath_a.so (RPATH $ORIGIN/chain), each
 *   directory printed; RTLD_DI_CONFIGADDR's answer;
 * - serinfo_small (through the drop-in only): a buffer too small refused;
 * - errors LOOPDIR: dlerror of a path through a regular file (ENOTDIR), of
 *   bare names not found (searched through LD_LIBRARY_PATH, which the test
 *   sets to dirs that cannot be searched: a file, a symbolic-link loop)
 *   and of a bare name too long, each checked against glibc's words; a
 *   library after those dirs is still found. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <execinfo.h>
#include <link.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CHECK(cond, ...)                                                      \
    do {                                                                      \
        if (!(cond)) {                                                        \
            printf("FAIL %s:%d: ", __FILE__, __LINE__);                       \
            printf(__VA_ARGS__);                                              \
            printf("\n");                                                     \
            exit(1);                                                          \
        }                                                                     \
    } while (0)

static void *open_or_die(const char *name, int mode)
{
    void *h = dlopen(name, mode);
    CHECK(h != NULL, "dlopen(%s): %s", name, dlerror());
    return h;
}

typedef int (*collect_fn)(void **, int);

static void print_frames(const char *what, collect_fn collect)
{
    void *frames[64];
    int n = collect(frames, 64);
    CHECK(n > 3, "%s: backtrace gave %d frames", what, n);
    char **lines = backtrace_symbols(frames, n);
    CHECK(lines != NULL, "%s: backtrace_symbols gave NULL", what);
    printf("%s: %d frames\n", what, n);
    for (int i = 0; i < n; i++) {
        Dl_info di;
        int found = dladdr(frames[i], &di);
        printf("  %s (dladdr: %s)\n", lines[i], found && di.dli_sname ? di.dli_sname : "no symbol");
    }
    free(lines);
    printf("%s (fd):\n", what);
    fflush(stdout);
    backtrace_symbols_fd(frames, n, 1);
}

static int case_backtrace(void)
{
    void *h = open_or_die("libdl_backtrace.so", RTLD_NOW);
    collect_fn outer = (collect_fn)dlsym(h, "bt_outer");
    collect_fn hidden = (collect_fn)dlsym(h, "bt_via_hidden");
    CHECK(outer && hidden, "dlsym: %s", dlerror());
    print_frames("outer", outer);
    print_frames("hidden", hidden);
    return 0;
}

static void print_serinfo(const char *name)
{
    void *h = open_or_die(name, RTLD_NOW);
    Dl_serinfo size;
    CHECK(dlinfo(h, RTLD_DI_SERINFOSIZE, &size) == 0, "%s: SERINFOSIZE: %s", name, dlerror());
    Dl_serinfo *si = malloc(size.dls_size);
    CHECK(si != NULL, "malloc");
    CHECK(dlinfo(h, RTLD_DI_SERINFOSIZE, si) == 0, "%s: SERINFOSIZE: %s", name, dlerror());
    CHECK(dlinfo(h, RTLD_DI_SERINFO, si) == 0, "%s: SERINFO: %s", name, dlerror());
    printf("%s: %u dirs, %zu bytes\n", name, si->dls_cnt, si->dls_size);
    for (unsigned i = 0; i < si->dls_cnt; i++) {
        const char *d = si->dls_serpath[i].dls_name;
        CHECK(d >= (char *)&si->dls_serpath[si->dls_cnt] && d < (char *)si + si->dls_size,
              "%s: dir %u outside the buffer", name, i);
        printf("  %s (flags %#x)\n", d, si->dls_serpath[i].dls_flags);
    }
    free(si);
}

static int case_serinfo(void)
{
    print_serinfo("libchain_a.so");
    print_serinfo("librpath_a.so");
    void *h = open_or_die("libchain_a.so", RTLD_NOW);
    Dl_info config;
    CHECK(dlinfo(h, RTLD_DI_CONFIGADDR, &config) != 0, "RTLD_DI_CONFIGADDR answered");
    const char *e = dlerror();
    CHECK(e && strncmp(e, "unsupported dlinfo request", 26) == 0, "CONFIGADDR: %s", e);
    printf("configaddr: unsupported dlinfo request\n");
    return 0;
}

/* Through the drop-in only (glibc would write past the buffer): an
 * RTLD_DI_SERINFO buffer whose head does not match the search path is
 * refused with a message, and nothing is written. */
static int case_serinfo_small(void)
{
    void *h = open_or_die("libchain_a.so", RTLD_NOW);
    Dl_serinfo size;
    CHECK(dlinfo(h, RTLD_DI_SERINFOSIZE, &size) == 0, "SERINFOSIZE: %s", dlerror());
    Dl_serinfo *si = calloc(1, size.dls_size);
    CHECK(si != NULL, "calloc");
    si->dls_size = sizeof(Dl_serinfo);
    si->dls_cnt = size.dls_cnt;
    CHECK(dlinfo(h, RTLD_DI_SERINFO, si) != 0, "a buffer of %zu bytes filled", si->dls_size);
    const char *e = dlerror();
    CHECK(e && strstr(e, "RTLD_DI_SERINFO: the buffer says dls_size"), "small buffer: %s", e);
    CHECK(si->dls_serpath[0].dls_name == NULL, "written to a buffer refused");
    printf("serinfo_small: %s\n", e);
    free(si);
    return 0;
}

/* dlerror of a failed dlopen(name) starts with `want`. */
static void fails_with(const char *name, const char *want)
{
    CHECK(dlopen(name, RTLD_NOW) == NULL, "%s opened", name);
    const char *e = dlerror();
    CHECK(e && strncmp(e, want, strlen(want)) == 0, "%.80s: %s (want %s)", name, e, want);
}

static int case_errors(const char *self)
{
    char path[4096], want[4096 + 100];
    /* A path through a regular file (the program): ENOTDIR. */
    snprintf(path, sizeof path, "%s/libx.so", self);
    snprintf(want, sizeof want, "%s: cannot open shared object file: Not a directory", path);
    fails_with(path, want);
    /* Bare names: LD_LIBRARY_PATH's dirs cannot be searched; the name is
     * reported, not a path tried. */
    fails_with("libdl_host2_none.so",
               "libdl_host2_none.so: cannot open shared object file: No such file or directory");
    char big[400];
    memset(big, 'a', sizeof big - 1);
    big[sizeof big - 1] = 0;
    snprintf(want, sizeof want, "%s: cannot open shared object file: File name too long", big);
    fails_with(big, want);
    /* The search goes on past those dirs. */
    void *c = open_or_die("libchain_c.so", RTLD_NOW);
    int (*f)(void) = (int (*)(void))dlsym(c, "chain_c");
    CHECK(f && f() == 3, "chain_c: %s", f ? "wrong value" : dlerror());
    printf("errors: as glibc's\n");
    return 0;
}

int main(int argc, char **argv)
{
    CHECK(argc >= 2, "usage: dl_host2 CASE");
    const char *c = argv[1];
    if (strcmp(c, "backtrace") == 0) return case_backtrace();
    if (strcmp(c, "serinfo") == 0) return case_serinfo();
    if (strcmp(c, "errors") == 0) return case_errors(argv[0]);
    if (strcmp(c, "serinfo_small") == 0) return case_serinfo_small();
    CHECK(0, "unknown case %s", c);
    return 1;
}
