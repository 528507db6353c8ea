/* dl_host - a C program using <dlfcn.h> as any program does, run by
 * tests/preload.rs with LD_PRELOAD of minld's drop-in (and without, for
 * glibc's answers). One case per argument; each prints what it found and
 * exits 0 only if every check held. It links libbasic.so (so the process
 * has glibc's copy of it) and has RUNPATH $ORIGIN (so a bare name is found
 * beside it on its behalf). */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <link.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int basic_add(int a, int b);

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

/* RTLD_GLOBAL: libglobal_user.so (under-linked) links against
 * libglobal_def.so's definitions; dlsym(RTLD_DEFAULT) finds them. */
static int case_global(void)
{
    void *def = open_or_die("libglobal_def.so", RTLD_NOW | RTLD_GLOBAL);
    void *user = open_or_die("libglobal_user.so", RTLD_NOW);
    int (*use)(void) = (int (*)(void))dlsym(user, "use_global");
    CHECK(use != NULL, "dlsym use_global: %s", dlerror());
    CHECK(use() == 42, "use_global() = %d", use());
    void *fn = dlsym(RTLD_DEFAULT, "global_fn");
    CHECK(fn != NULL, "dlsym(RTLD_DEFAULT, global_fn): %s", dlerror());
    CHECK(fn == dlsym(def, "global_fn"), "RTLD_DEFAULT and the handle disagree");
    void *self = dlopen(NULL, RTLD_NOW);
    CHECK(dlopen("", RTLD_NOW) == self, "dlopen(\"\") is not the program");
    CHECK(dlsym(self, "global_value") == dlsym(def, "global_value"),
          "dlsym(dlopen(NULL)) does not see the RTLD_GLOBAL library");
    printf("global: use_global() = %d, global_fn at %p\n", use(), fn);
    return 0;
}

/* A bare name found through the program's RUNPATH $ORIGIN, and its own
 * dependency through its RUNPATH $ORIGIN/chain. */
static int case_origin(void)
{
    void *a = open_or_die("libchain_a.so", RTLD_NOW);
    int (*f)(void) = (int (*)(void))dlsym(a, "chain_a");
    CHECK(f != NULL && f() == 321, "chain_a: %s", f ? "wrong value" : dlerror());
    char origin[4096];
    CHECK(dlinfo(a, RTLD_DI_ORIGIN, origin) == 0, "dlinfo ORIGIN: %s", dlerror());
    struct link_map *lm = NULL;
    CHECK(dlinfo(a, RTLD_DI_LINKMAP, &lm) == 0 && lm != NULL, "dlinfo LINKMAP: %s", dlerror());
    CHECK(strstr(lm->l_name, "libchain_a.so") != NULL, "l_name %s", lm->l_name);
    Dl_info info;
    CHECK(dladdr((void *)f, &info) != 0, "dladdr(chain_a) found nothing");
    CHECK(info.dli_sname && strcmp(info.dli_sname, "chain_a") == 0, "dli_sname %s", info.dli_sname);
    CHECK(strcmp(info.dli_fname, lm->l_name) == 0, "dli_fname %s", info.dli_fname);
    printf("origin: chain_a() = %d, origin %s, l_addr %#lx\n", f(), origin, (unsigned long)lm->l_addr);
    return 0;
}

/* The process's own copies: glibc's libc, and libbasic.so, which the
 * program links. */
static int case_own(void)
{
    void *c = open_or_die("libc.so.6", RTLD_NOW);
    CHECK(dlsym(c, "printf") == (void *)printf, "libc's printf is another copy's");
    void *b = open_or_die("libbasic.so", RTLD_NOW);
    CHECK(dlsym(b, "basic_add") == (void *)basic_add, "libbasic.so mapped a second time");
    struct link_map *lm = NULL;
    CHECK(dlinfo(b, RTLD_DI_LINKMAP, &lm) == 0, "dlinfo: %s", dlerror());
    printf("own: libc and libbasic are the process's (%s)\n", lm->l_name);
    return 0;
}

/* A destructor run at exit, of a library never closed. */
static int case_dtor(void)
{
    void *h = open_or_die("libdl_dtor.so", RTLD_NOW);
    int (*f)(void) = (int (*)(void))dlsym(h, "dl_dtor_alive");
    CHECK(f != NULL && f() == 5, "dl_dtor_alive");
    printf("dtor: loaded, exiting without dlclose\n");
    fflush(stdout);
    return 0;
}

struct seen {
    const char *want;
    int found;
    unsigned long long adds, subs;
    size_t modid;
};

static int phdr_cb(struct dl_phdr_info *info, size_t size, void *data)
{
    struct seen *s = data;
    (void)size;
    s->adds = info->dlpi_adds;
    s->subs = info->dlpi_subs;
    if (info->dlpi_name && strstr(info->dlpi_name, s->want)) {
        int has_load = 0;
        for (int i = 0; i < info->dlpi_phnum; i++)
            has_load |= info->dlpi_phdr[i].p_type == PT_LOAD;
        CHECK(has_load, "%s: no PT_LOAD in dlpi_phdr", info->dlpi_name);
        s->found++;
        s->modid = info->dlpi_tls_modid;
    }
    return 0;
}

/* dl_iterate_phdr lists the object while it is loaded; adds and subs move. */
static int case_phdr(void)
{
    struct seen before = {"libglobal_def.so", 0, 0, 0, 0};
    dl_iterate_phdr(phdr_cb, &before);
    CHECK(before.found == 0, "listed before it was loaded");
    void *h = open_or_die("libglobal_def.so", RTLD_NOW);
    struct seen during = {"libglobal_def.so", 0, 0, 0, 0};
    dl_iterate_phdr(phdr_cb, &during);
    CHECK(during.found == 1, "listed %d times while loaded", during.found);
    CHECK(during.adds > before.adds, "dlpi_adds %llu -> %llu", before.adds, during.adds);
    CHECK(dlclose(h) == 0, "dlclose: %s", dlerror());
    struct seen after = {"libglobal_def.so", 0, 0, 0, 0};
    dl_iterate_phdr(phdr_cb, &after);
    CHECK(after.found == 0, "still listed after dlclose");
    CHECK(after.subs > during.subs, "dlpi_subs %llu -> %llu", during.subs, after.subs);
    printf("phdr: adds %llu -> %llu, subs %llu -> %llu\n", before.adds, during.adds,
           during.subs, after.subs);
    return 0;
}

static void *failing_open(void *arg)
{
    (void)arg;
    void *h = dlopen("libdl_no_such_library.so", RTLD_NOW);
    CHECK(h == NULL, "a missing library opened");
    return NULL;
}

/* dlerror belongs to the thread that failed, and is read once. */
static int case_dlerror(void)
{
    pthread_t t;
    CHECK(dlerror() == NULL, "an error before any failure");
    pthread_create(&t, NULL, failing_open, NULL);
    pthread_join(t, NULL);
    CHECK(dlerror() == NULL, "another thread's error seen here");
    CHECK(dlopen("libdl_no_such_library.so", RTLD_NOW) == NULL, "opened");
    const char *e = dlerror();
    CHECK(e != NULL, "no error after a failed dlopen");
    const char *glibc = "libdl_no_such_library.so: cannot open shared object file: No such file or directory";
    CHECK(strncmp(e, glibc, strlen(glibc)) == 0, "message %s", e);
    printf("dlerror: %s\n", e);
    CHECK(dlerror() == NULL, "the error was not cleared by reading it");
    /* Each call clears what the one before it left. */
    CHECK(dlopen("libdl_no_such_library.so", RTLD_NOW) == NULL, "opened");
    CHECK(dlopen("libglobal_def.so", RTLD_NOW) != NULL, "libglobal_def.so: %s", dlerror());
    CHECK(dlerror() == NULL, "a failure then a success left a message");
    /* RTLD_NEXT is glibc's (it searches after the program): its message. */
    CHECK(dlsym(RTLD_NEXT, "dl_host_no_such_symbol") == NULL, "RTLD_NEXT found it");
    e = dlerror();
    CHECK(e != NULL && strstr(e, "undefined symbol: dl_host_no_such_symbol") != NULL,
          "RTLD_NEXT message %s", e ? e : "(none)");
    CHECK(dlsym(RTLD_NEXT, "printf") == (void *)printf, "RTLD_NEXT printf");
    CHECK(dlerror() == NULL, "a message after a found RTLD_NEXT");
    CHECK(dlsym(RTLD_DEFAULT, "dl_host_no_such_symbol") == NULL, "found");
    e = dlerror();
    CHECK(e != NULL && strstr(e, "dl_host: undefined symbol: dl_host_no_such_symbol") != NULL,
          "dlsym(RTLD_DEFAULT) message %s", e);
    return 0;
}

static void *opener(void *arg)
{
    const char **names = arg;
    for (int i = 0; i < 20; i++) {
        void *h = dlopen(names[0], RTLD_NOW);
        CHECK(h != NULL, "thread dlopen(%s): %s", names[0], dlerror());
        int (*f)(void) = (int (*)(void))dlsym(h, names[1]);
        CHECK(f != NULL, "thread dlsym(%s): %s", names[1], dlerror());
        CHECK(f() == atoi(names[2]), "%s() = %d", names[1], f());
        CHECK(dlclose(h) == 0, "thread dlclose: %s", dlerror());
    }
    return NULL;
}

/* Two threads opening, using and closing libraries at once. */
static int case_threads(void)
{
    const char *a[] = {"libchain_a.so", "chain_a", "321"};
    const char *b[] = {"libdl_dtor.so", "dl_dtor_alive", "5"};
    pthread_t ta, tb;
    pthread_create(&ta, NULL, opener, a);
    pthread_create(&tb, NULL, opener, b);
    pthread_join(ta, NULL);
    pthread_join(tb, NULL);
    printf("threads: 2 x 20 opens\n");
    return 0;
}

/* RTLD_NOLOAD, RTLD_NODELETE, dlmopen(LM_ID_BASE), RTLD_LAZY. */
static int case_flags(void)
{
    CHECK(dlopen("libglobal_def.so", RTLD_NOW | RTLD_NOLOAD) == NULL, "NOLOAD loaded it");
    void *h = open_or_die("libglobal_def.so", RTLD_LAZY);
    void *again = dlopen("libglobal_def.so", RTLD_NOW | RTLD_NOLOAD);
    CHECK(again == h, "NOLOAD gave %p, not the handle %p", again, h);
    void *m = dlmopen(LM_ID_BASE, "libglobal_def.so", RTLD_NOW);
    CHECK(m == h, "dlmopen(LM_ID_BASE) gave %p, not %p", m, h);
    CHECK(dlclose(m) == 0 && dlclose(again) == 0 && dlclose(h) == 0, "dlclose: %s", dlerror());
    CHECK(dlopen("libglobal_def.so", RTLD_NOW | RTLD_NOLOAD) == NULL, "still loaded after 3 closes");
    void *d = open_or_die("libdl_dtor.so", RTLD_NOW | RTLD_NODELETE);
    int (*f)(void) = (int (*)(void))dlsym(d, "dl_dtor_alive");
    CHECK(f != NULL, "dlsym: %s", dlerror());
    CHECK(dlclose(d) == 0, "dlclose: %s", dlerror());
    Dl_info info;
    CHECK(dladdr((void *)f, &info) != 0 && f() == 5, "NODELETE library unloaded");
    CHECK(dlopen("libglobal_def.so", 0) == NULL, "mode 0 accepted");
    CHECK(dlerror() != NULL, "no message for mode 0");
    void *deep = open_or_die("libdl_dtor.so", RTLD_NOW | RTLD_DEEPBIND);
    CHECK(dlsym(deep, "dl_dtor_alive") != NULL, "DEEPBIND dlsym: %s", dlerror());
    CHECK(dlclose(deep) == 0, "DEEPBIND dlclose: %s", dlerror());
    /* dlvsym(RTLD_DEFAULT) sees an RTLD_GLOBAL library's versions. */
    void *v = open_or_die("libversioned.so", RTLD_NOW | RTLD_GLOBAL);
    void *v1 = dlvsym(RTLD_DEFAULT, "vers_value", "VERS_1");
    CHECK(v1 != NULL && v1 == dlvsym(v, "vers_value", "VERS_1"), "dlvsym VERS_1: %s", dlerror());
    CHECK(v1 != dlvsym(RTLD_DEFAULT, "vers_value", "VERS_2"), "VERS_1 and VERS_2 are one");
    CHECK(dlvsym(RTLD_DEFAULT, "vers_value", "VERS_9") == NULL, "VERS_9 found");
    CHECK(dlerror() != NULL, "no message for a missing version");
    printf("flags: NOLOAD, NODELETE, DEEPBIND, LM_ID_BASE, mode 0, dlvsym as glibc\n");
    fflush(stdout);
    return 0;
}

/* Under MINLD_POLICY (set by the test): a library failing it is refused,
 * with the report in dlerror; prints the message. */
static int case_policy(void)
{
    void *h = dlopen("libglobal_def.so", RTLD_NOW);
    const char *e = dlerror();
    printf("policy: %s\n", h ? "loaded" : e);
    return 0;
}

/* A library whose constructor calls dlopen. */
static int case_nested(void)
{
    void *h = open_or_die("libdl_nested.so", RTLD_NOW);
    int (*result)(void) = (int (*)(void))dlsym(h, "dl_nested_result");
    const char *(*error)(void) = (const char *(*)(void))dlsym(h, "dl_nested_error");
    CHECK(result && error, "dlsym: %s", dlerror());
    CHECK(result() == 5, "the constructor's dlopen failed: %s", error());
    printf("nested: the constructor's dlopen gave dl_dtor_alive() = %d\n", result());
    fflush(stdout);
    return 0;
}

/* dlvsym asks for one version: an unversioned definition is no answer
 * (NULL, and dlerror names the library, the symbol and the version). */
static int case_vsym(void)
{
    void *a = open_or_die("libchain_a.so", RTLD_NOW);
    CHECK(dlsym(a, "chain_a") != NULL, "dlsym chain_a: %s", dlerror());
    void *p = dlvsym(a, "chain_a", "V9");
    const char *e = dlerror();
    CHECK(p == NULL, "dlvsym(chain_a, V9) found the unversioned chain_a at %p", p);
    CHECK(e && strstr(e, "libchain_a.so: undefined symbol: chain_a, version V9"), "dlerror: %s", e);
    void *v = open_or_die("libversioned.so", RTLD_NOW);
    int (*v1)(void) = (int (*)(void))dlvsym(v, "vers_value", "VERS_1");
    int (*v2)(void) = (int (*)(void))dlvsym(v, "vers_value", "VERS_2");
    CHECK(v1 && v2, "dlvsym vers_value: %s", dlerror());
    CHECK(v1() == 1 && v2() == 2, "vers_value@VERS_1 = %d, @VERS_2 = %d", v1(), v2());
    CHECK(dlvsym(v, "vers_value", "VERS_9") == NULL, "vers_value@VERS_9 found");
    printf("vsym: %s\n", dlerror());
    return 0;
}

/* RTLD_NEXT from a library opened with dlopen: found after it, and a
 * miss names that library (the caller), not the loader's. */
static int case_next(void)
{
    void *h = open_or_die("libdl_next.so", RTLD_NOW);
    void *(*next_puts)(void) = (void *(*)(void))dlsym(h, "dl_next_puts");
    void *(*vputs)(const char *) = (void *(*)(const char *))dlsym(h, "dl_next_vputs");
    void *(*missing)(void) = (void *(*)(void))dlsym(h, "dl_next_missing");
    CHECK(next_puts && vputs && missing, "dlsym: %s", dlerror());
    CHECK(next_puts() == (void *)puts, "RTLD_NEXT puts is not libc's: %s", dlerror());
    CHECK(vputs("GLIBC_2.2.5") == (void *)puts, "RTLD_NEXT puts@GLIBC_2.2.5: %s", dlerror());
    CHECK(missing() == NULL, "a name nobody defines was found");
    const char *e = dlerror();
    CHECK(e && strstr(e, "libdl_next.so: undefined symbol: dl_next_nobody_defines_this"),
          "dlerror: %s", e);
    CHECK(vputs("GLIBC_9") == NULL, "puts@GLIBC_9 was found");
    e = dlerror();
    CHECK(e && strstr(e, "libdl_next.so: undefined symbol: puts, version GLIBC_9"),
          "dlerror: %s", e);
    printf("next: %s\n", e);
    return 0;
}

/* A handle closed as often as it was opened, used again: dlclose, dlsym,
 * dlvsym and dlinfo fail with "shared object not open" naming the
 * library. Through the drop-in only: with glibc alone the handle points
 * at freed memory (undefined behaviour). */
static int case_closed(void)
{
    void *h = open_or_die("libchain_a.so", RTLD_NOW);
    CHECK(dlclose(h) == 0, "dlclose: %s", dlerror());
    CHECK(dlclose(h) != 0, "a second dlclose succeeded");
    const char *e = dlerror();
    CHECK(e && strncmp(e, "shared object not open", 22) == 0 && strstr(e, "libchain_a.so"),
          "dlclose: %s", e);
    CHECK(dlsym(h, "chain_a") == NULL, "dlsym on a closed handle found chain_a");
    e = dlerror();
    CHECK(e && strncmp(e, "shared object not open", 22) == 0 && strstr(e, "libchain_a.so"),
          "dlsym: %s", e);
    CHECK(dlvsym(h, "chain_a", "V1") == NULL, "dlvsym on a closed handle found chain_a");
    e = dlerror();
    CHECK(e && strstr(e, "libchain_a.so"), "dlvsym: %s", e);
    long lmid = -1;
    CHECK(dlinfo(h, RTLD_DI_LMID, &lmid) != 0, "dlinfo on a closed handle succeeded");
    e = dlerror();
    CHECK(e && strncmp(e, "shared object not open", 22) == 0 && strstr(e, "libchain_a.so"),
          "dlinfo: %s", e);
    printf("closed: %s\n", e);
    void *volatile null_handle = NULL; /* (a null the compiler does not see) */
    CHECK(dlclose(null_handle) != 0, "dlclose(NULL) succeeded");
    const char *n = dlerror();
    CHECK(n && strncmp(n, "shared object not open", 22) == 0, "dlclose(NULL): %s", n);
    return 0;
}

/* Failures whose dlerror programs match on start as glibc's do, and
 * name the file. */
static int case_errors(void)
{
    CHECK(dlopen("libchain_a.so", 0) == NULL, "mode 0 accepted");
    const char *e = dlerror();
    CHECK(e && strncmp(e, "libchain_a.so: invalid mode for dlopen(): Invalid argument", 58) == 0,
          "mode 0: %s", e);
    CHECK(dlopen("libchain_a.so", RTLD_NOW | 0x40000) == NULL, "mode bit 0x40000 accepted");
    e = dlerror();
    CHECK(e && strncmp(e, "invalid mode parameter", 22) == 0, "mode 0x40002: %s", e);
    void *a = open_or_die("libchain_a.so", RTLD_NOW);
    long x = 0;
    /* A name that is not UTF-8: no such symbol, named with the library. */
    CHECK(dlsym(a, "\xff\xfe") == NULL, "dlsym of \\xff\\xfe found something");
    e = dlerror();
    CHECK(e && strstr(e, "libchain_a.so: undefined symbol: "), "dlsym \\xff\\xfe: %s", e);
    CHECK(dlinfo(a, 12345, &x) != 0, "dlinfo request 12345 answered");
    e = dlerror();
    CHECK(e && strncmp(e, "unsupported dlinfo request", 26) == 0, "dlinfo 12345: %s", e);
    CHECK(dlopen("/", RTLD_NOW) == NULL, "dlopen(\"/\") succeeded");
    e = dlerror();
    CHECK(e && strncmp(e, "/: cannot read file data: Is a directory", 40) == 0, "dlopen(/): %s", e);
    /* A name longer than PATH_MAX. */
    char *big = malloc(8000);
    CHECK(big != NULL, "malloc");
    memset(big, 'a', 7999);
    big[0] = '/';
    big[7999] = 0;
    CHECK(dlopen(big, RTLD_NOW) == NULL, "a name of 7999 bytes opened");
    e = dlerror();
    CHECK(e && strncmp(e, big, 7999) == 0 &&
              strncmp(e + 7999, ": cannot open shared object file: File name too long", 52) == 0,
          "7999-byte name: %.100s", e + (e && strlen(e) > 7999 ? 7999 : 0));
    free(big);
    /* An empty file, then libchain_a.so's bytes with EI_CLASS 1 (32-bit). */
    char tmp[] = "/tmp/dl_host_XXXXXX";
    int fd = mkstemp(tmp);
    CHECK(fd >= 0, "mkstemp");
    CHECK(dlopen(tmp, RTLD_NOW) == NULL, "an empty file opened");
    e = dlerror();
    CHECK(e && strncmp(e, tmp, strlen(tmp)) == 0 && strncmp(e + strlen(tmp), ": file too short", 16) == 0,
          "empty file: %s", e);
    CHECK(!strstr(e, "invalid ELF header"), "empty file: %s", e);
    Dl_info info;
    CHECK(dladdr(dlsym(a, "chain_a"), &info) != 0, "dladdr(chain_a)");
    FILE *in = fopen(info.dli_fname, "rb");
    CHECK(in != NULL, "fopen %s", info.dli_fname);
    char buf[65536];
    size_t n = fread(buf, 1, sizeof buf, in);
    fclose(in);
    buf[4] = 1;
    CHECK(write(fd, buf, n) == (ssize_t)n, "write %s", tmp);
    close(fd);
    CHECK(dlopen(tmp, RTLD_NOW) == NULL, "a 32-bit ELF opened");
    e = dlerror();
    CHECK(e && strncmp(e, tmp, strlen(tmp)) == 0 &&
              strncmp(e + strlen(tmp), ": wrong ELF class: ELFCLASS32", 29) == 0,
          "32-bit ELF: %s", e);
    CHECK(!strstr(e, "invalid ELF header"), "32-bit ELF: %s", e);
    unlink(tmp);
    CHECK(dlerror() == NULL, "dlerror twice");
    printf("errors: as glibc's\n");
    return 0;
}

int main(int argc, char **argv)
{
    CHECK(argc == 2, "usage: dl_host CASE");
    const char *c = argv[1];
    if (strcmp(c, "global") == 0) return case_global();
    if (strcmp(c, "origin") == 0) return case_origin();
    if (strcmp(c, "own") == 0) return case_own();
    if (strcmp(c, "dtor") == 0) return case_dtor();
    if (strcmp(c, "phdr") == 0) return case_phdr();
    if (strcmp(c, "dlerror") == 0) return case_dlerror();
    if (strcmp(c, "threads") == 0) return case_threads();
    if (strcmp(c, "flags") == 0) return case_flags();
    if (strcmp(c, "nested") == 0) return case_nested();
    if (strcmp(c, "policy") == 0) return case_policy();
    if (strcmp(c, "vsym") == 0) return case_vsym();
    if (strcmp(c, "next") == 0) return case_next();
    if (strcmp(c, "closed") == 0) return case_closed();
    if (strcmp(c, "errors") == 0) return case_errors();
    CHECK(0, "unknown case %s", c);
    return 1;
}
