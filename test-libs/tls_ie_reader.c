/* libtls_ie_reader.so - initial-exec access (R_X86_64_TPOFF64, DF_STATIC_TLS)
 * to tls_ie_ptr, which it does not define and whose definer it does not
 * need: libtls_ie_ptrowner.so defines it and needs this library, so this
 * one is relocated first, before the definer's TLS image (which holds a
 * pointer, relocated by an R_X86_64_64) is.
 *   tls_ie_read_ptr() == tls_ie_target_addr() in every thread. */
extern __thread void *tls_ie_ptr __attribute__((tls_model("initial-exec")));

void *tls_ie_read_ptr(void)
{
    return tls_ie_ptr;
}

void **tls_ie_read_ptr_addr(void)
{
    return &tls_ie_ptr;
}
