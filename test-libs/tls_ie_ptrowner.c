/* libtls_ie_ptrowner.so - DT_NEEDED libtls_ie_reader.so (RUNPATH $ORIGIN);
 * defines __thread void *tls_ie_ptr = &tls_ie_target: an R_X86_64_64
 * against the exported tls_ie_target inside .tdata. Its dependency reads
 * tls_ie_ptr with initial-exec access, so the block goes to static TLS
 * while the dependency is relocated, before this library's image is. */
int tls_ie_target = 42;
__thread void *tls_ie_ptr = &tls_ie_target;

int *tls_ie_target_addr(void)
{
    return &tls_ie_target;
}

void **tls_ie_ptr_addr(void)
{
    return &tls_ie_ptr;
}
