/* libtls_ifunc_reader.so - initial-exec access (R_X86_64_TPOFF64,
 * DF_STATIC_TLS) to tls_ifunc_fn, which it does not define and whose
 * definer it does not need: libtls_ifunc_owner.so (tls_ifunc.c) defines
 * it, with an R_X86_64_IRELATIVE in its image, and needs this library, so
 * this one is relocated first, before the definer's image is complete.
 *   tls_ifunc_read() == tls_ifunc_expected() in every thread. */
extern __thread int (*tls_ifunc_fn)(void) __attribute__((tls_model("initial-exec")));

/* What the thread's tls_ifunc_fn holds, read initial-exec. */
void *tls_ifunc_read(void)
{
    return (void *)tls_ifunc_fn;
}

/* The thread's tls_ifunc_fn's address, reached initial-exec. */
void *tls_ifunc_read_addr(void)
{
    return (void *)&tls_ifunc_fn;
}
