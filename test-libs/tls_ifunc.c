/* libtls_ifunc.so / libtls_ifunc_ie.so - a TLS image holding an
 * R_X86_64_IRELATIVE: __thread tls_ifunc_fn is initialised with the
 * address of the local ifunc tls_ifunc_chosen, which the linker cannot
 * know, so the word in .tdata is relocated by an IRELATIVE (its resolver
 * picks tls_ifunc_impl). With TLS_IFUNC_IE the variable is accessed
 * initial-exec (R_X86_64_TPOFF64, DF_STATIC_TLS): the block goes to
 * glibc's static TLS, whose copies must start from the resolved image;
 * without it, general-dynamic (minld's own blocks).
 *   In every thread: tls_ifunc_value() == tls_ifunc_expected() (the
 *   resolver's choice), tls_ifunc_call() == 7. */
#ifdef TLS_IFUNC_IE
#define MODEL __attribute__((tls_model("initial-exec")))
#else
#define MODEL
#endif

static int tls_ifunc_impl(void)
{
    return 7;
}

static void *tls_ifunc_pick(void)
{
    return (void *)tls_ifunc_impl;
}

static int tls_ifunc_chosen(void) __attribute__((ifunc("tls_ifunc_pick")));

__thread int (*tls_ifunc_fn)(void) MODEL = tls_ifunc_chosen;

/* What the thread's variable holds. */
void *tls_ifunc_value(void)
{
    return (void *)tls_ifunc_fn;
}

/* What the resolver picks: the IRELATIVE in .tdata gives it directly
 * (the code's own &tls_ifunc_chosen is a PLT entry, which differs). */
void *tls_ifunc_expected(void)
{
    return (void *)tls_ifunc_impl;
}

/* Calls through the thread's variable. */
int tls_ifunc_call(void)
{
    return tls_ifunc_fn();
}

/* The thread's variable's address. */
void *tls_ifunc_addr(void)
{
    return (void *)&tls_ifunc_fn;
}
